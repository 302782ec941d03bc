"""What every script in deepfl.cli shares: flags for output, sharding and error policy, and a main wrapper.

`run_app(main)` turns deliberate errors (bad inputs, missing files, bad flags) into one line on stderr and
exit code 2, so users see the culprit rather than a traceback.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Callable

from absl import app, flags

from deepfl.errors import DeepflError
from deepfl.jobs import ON_ERROR_CHOICES, JobStopped, setup_logging

EXIT_BAD_INPUT = 2


def define_out_dir(default: str | None = None, help_text: str = "Folder that receives every output file.") -> None:
    flags.DEFINE_string("out_dir", default, help_text, required=default is None)


def define_sharding() -> None:
    flags.DEFINE_integer("num_shards", 1, "Split the work into this many shards (e.g. one per machine).", lower_bound=1)
    flags.DEFINE_integer("shard_index", 0, "Which shard this process handles, 0 <= shard_index < num_shards.",
                         lower_bound=0)


def define_on_error() -> None:
    flags.DEFINE_enum("on_error", "skip", list(ON_ERROR_CHOICES),
                      "What to do with a bad input (unreadable image, bad row): 'skip' logs it and counts it, "
                      "'stop' ends the job at the first one (finished work is kept either way).")


def run_app(main: Callable[[list[str]], int | None]) -> None:
    """absl `app.run` with one-line errors: DeepflError, FileNotFoundError, ValueError -> exit code 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def wrapped(argv: list[str]) -> int | None:
        setup_logging()
        try:
            return main(argv)
        except (DeepflError, FileNotFoundError, JobStopped, ValueError) as exc:
            name = type(exc).__name__
            print(f"error: {exc}" if isinstance(exc, DeepflError) else f"error ({name}): {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except Exception as exc:
            if not _is_input_op_error(exc):
                raise
            # A tf.data input failure (e.g. a corrupt image with --on_error=stop): one line, not a traceback.
            print(f"error: {tensorflow_message(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT

    _show_script_help(main.__module__)
    argv = _help_alias(sys.argv)
    try:
        app.run(wrapped, argv=argv)
    except SystemExit as exc:
        if exc.code == 1 and _asks_for_help(argv):
            raise SystemExit(0) from None  # absl exits 1 after printing the help it was asked for
        raise


# absl's help flags (it has no -h; `_help_alias` maps -h to --help).
_HELP_FLAGS = ("--help", "-?", "--helpshort", "--helpfull", "--helpxml")


def _help_alias(argv: list[str]) -> list[str]:
    """argv with `-h` (before a `--`) replaced by `--help`, the short form users try first."""
    out, ended = [], False
    for arg in argv:
        ended = ended or arg == "--"
        out.append("--help" if arg == "-h" and not ended else arg)
    return out


def _asks_for_help(argv: list[str]) -> bool:
    """True when a help flag (before any `--`) is on the command line."""
    for arg in argv[1:]:
        if arg == "--":
            return False
        name, _, value = arg.partition("=")
        if name in _HELP_FLAGS and value.lower() not in ("false", "0"):
            return True
    return False


def _show_script_help(module_name: str) -> None:
    """Makes `--help` list the script's own flags and print its docstring, also when run as a console script.

    absl shows only the flags of the module named by sys.argv[0] (the console-script wrapper or an experiments/
    shim, which define none) and that module's docstring; register the script's and this module's flags under
    that name and show the script's docstring.
    """
    main_module = sys.modules.get("__main__")
    script = sys.modules.get(module_name)
    if main_module is not None and script is not None and script is not main_module and script.__doc__:
        main_module.__doc__ = script.__doc__
    for owner in dict.fromkeys((module_name, __name__)):
        for flag in flags.FLAGS.get_flags_for_module(owner):
            flags.FLAGS.register_flag_by_module(sys.argv[0], flag)


def _is_input_op_error(exc: BaseException) -> bool:
    """True for TensorFlow errors that bad input data raises (InvalidArgument, NotFound, DataLoss)."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return False
    return isinstance(exc, (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.DataLossError))


def tensorflow_message(exc: BaseException) -> str:
    """Condenses a TensorFlow op error to one line: the failed assertion's text (which names the file) or the
    first line without TF's '{{function_node ...}}' and iterator prefixes."""
    text = getattr(exc, "message", None) or str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    first = re.sub(r"\{\{[^}]*\}\}\s*", "", first)
    if "assertion failed:" in first:
        parts = re.findall(r"\[([^\[\]]*)\]", first.split("assertion failed:", 1)[1])
        if parts:
            return " ".join(p.strip() for p in parts)
    first = re.sub(r"^.*?transformation with iterator: [\w:]+: ", "", first)
    return re.sub(r"\s*\[Op:\w+\].*$", "", first).strip() or type(exc).__name__
