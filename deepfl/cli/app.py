"""What every script in deepfl.cli shares: flags for output, sharding and error policy, and a main wrapper.

`run_app(main)` turns deliberate errors (bad inputs, missing files, bad flags) into one line on stderr and
exit code 2, so users see the culprit rather than a traceback.
"""

from __future__ import annotations

import atexit
import errno
import gc
import logging
import multiprocessing
import os
import re
import signal
import socket
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from absl import app, flags

from deepfl.cli import TF_LOG_LEVEL_SET_BY_USER
from deepfl.errors import DeepflError, NoUsableInput, WorkerLost, failure_reason, one_line
from deepfl.fileio import output_path_of, remove_stale_temp_files
from deepfl.jobs import ON_ERROR_CHOICES, SEED_MAX, JobStopped, request_stop, setup_logging
from deepfl.lean_keras import keras_without_extras
from deepfl.quiet import print_to_user, quiet_tensorflow
from deepfl.wording import command_line_names

EXIT_UNEXPECTED = 1  # an error that is not about the inputs (a bug, the environment: a full or read-only disk)
# Deliberate errors name their culprit (paths, settings): they keep a longer line than unexpected ones.
BAD_INPUT_MESSAGE_CHARS = 1000
EXIT_BAD_INPUT = 2
EXIT_NOTHING_DONE = 3  # the job ran but produced nothing (e.g. every input was skipped)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a job stopped by Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM: `kill`, `timeout`, a batch scheduler's time limit (SLURM, PBS)
INTERRUPTED_MESSAGE = "interrupted; rerun the same command to resume"
# The end of every script's --help (one home, beside the codes).
EXIT_CODES_HELP = (
    "Exit codes: 0 the job did its work; 2 a bad input or flag (one `error:` line naming it); 3 nothing could be "
    "done (every input skipped, or none given); 130 interrupted by Ctrl-C, 143 by SIGTERM (kill, timeout, a "
    "scheduler's time limit): rerun the same command to resume; 1 the outputs could not be written (a full or "
    "read-only disk: one `error:` line naming the file; rerun to resume), or anything unexpected. "
    "--verbosity=1 shows TensorFlow's log lines and the traceback of an unexpected error, --verbosity=-1 only "
    "warnings and errors; DEEPFL_NO_PROGRESS=1 turns the progress bars off."
)
# For a run whose outputs cannot resume (deepfl-predict printing its table): `nothing_to_resume()` selects it.
INTERRUPTED_WITHOUT_RESUME_MESSAGE = "interrupted; nothing was saved (write --output to a CSV to resume a long run)"
_interrupted_message = INTERRUPTED_MESSAGE
# How long the main thread gets to unwind after Ctrl-C before the process is ended from the watcher thread
# (the main thread may be inside native code: XLA compilation, a TensorFlow op, a C decoder).
INTERRUPT_GRACE_S = 5.0


def define_out_dir(default: str | None = None, help_text: str = "Folder that receives every output file.") -> None:
    flags.DEFINE_string("out_dir", default, help_text, required=default is None)
    flags.register_validator(
        "out_dir", _is_or_can_be_a_folder, message="not a folder: it, or a folder above it, is a file"
    )


def _is_or_can_be_a_folder(path: str | None) -> bool:
    """False where `path`, or the nearest of its parents that exists, is a file: the folder cannot be made there
    (mkdir said "File exists" or "Not a directory", without the flag)."""
    if not path:
        return True
    for existing in (Path(path), *Path(path).parents):
        if existing.exists():
            return existing.is_dir()
    return True


def require_folder(name: str, patterns: bool = False) -> None:
    """Checks when the flags are parsed that the string flag `name`, when given, names an existing folder: a wrong
    path is refused with one line naming the flag (exit code 2) before the job creates or writes anything. With
    `patterns`, a glob pattern (`'photos/**/*.jpg'`) passes when the folder it searches from exists."""
    exists = os.path.isdir
    if patterns:
        import glob

        from deepfl.images import pattern_folder

        def exists(path: str) -> bool:
            if glob.has_magic(path) and not os.path.exists(path):
                if not pattern_folder(path).is_dir():
                    raise flags.ValidationError(f"no such folder: {pattern_folder(path)} (where the pattern searches)")
                return True
            return os.path.isdir(path)

    _require_path(name, "folder", exists, "a folder (. for the current one)")


def require_file(name: str, names: tuple[str, ...] = ()) -> None:
    """Checks when the flags are parsed that the string flag `name`, when given, names an existing file (or is one
    of `names`, such as imagenet): a wrong path is refused with one line naming the flag (exit code 2) before the
    job loads TensorFlow (4-5 s) to find it missing."""
    _require_path(name, "file", os.path.isfile, "a file", names)


def _require_path(
    name: str, kind: str, exists: Callable[[str], bool], wanted: str, names: tuple[str, ...] = ()
) -> None:
    """Registers the check of `require_folder` / `require_file`: `kind` "folder" or "file", `exists` its test."""
    other = "file" if kind == "folder" else "folder"

    def existing(path: str | None) -> bool:
        if path is None or path in names:
            return True
        if not path.strip():  # (os.path.isdir("") is False, but an empty flag must not mean the current folder)
            raise flags.ValidationError(f"empty: give {wanted}")
        if exists(path):
            return True
        if os.path.exists(path):
            raise flags.ValidationError(f"is a {other}, not a {kind}")
        tilde = path.startswith("~") and exists(os.path.expanduser(path))
        # `--data_dir=~/data`: the shell expands ~ only at the start of a word, so the flag got a literal "~"
        raise flags.ValidationError(
            f"no such {kind} (a literal '~': write --{name} {path} or --{name}={os.path.expanduser(path)})"
            if tilde
            else f"no such {kind}"
        )

    flags.register_validator(name, existing)


def define_seed(help_text: str) -> None:
    """--seed: a non-negative integer NumPy and Keras both take, checked when the flags are parsed (before a job
    stores its settings, so a refused value never locks its --out_dir)."""
    flags.DEFINE_integer("seed", 0, f"{help_text} (0 .. 2**32 - 1)", lower_bound=0, upper_bound=SEED_MAX)


def define_dataset_option() -> None:
    """--dataset_option key=value (repeatable): options of --dataset's reader (`deepfl.data.reader_options` types
    and checks them)."""
    flags.DEFINE_multi_string(
        "dataset_option",
        [],
        "key=value for --dataset's reader; repeat the flag for several. live: realigned=true (the scores of "
        "dmos_realigned.mat instead of dmos.mat), include_references=true (the 203 reference entries, DMOS 0); "
        "clive: include_training_images=true (the release's 7 training images, dropped by default); koniq10k: "
        "resolution=512x384 (that folder of the release; by default 1024x768 where present). Default: none (the "
        "paper's tables)",
    )


def require_numbers(name: str, wanted: str, accept: Callable[[float], bool], integers: bool = False) -> None:
    """Checks the list flag `name` when the flags are parsed: every item a number (an integer where `integers`)
    that `accept` takes; `wanted` says which, e.g. "positive numbers". A refusal is one line naming the flag, and
    nothing has been written yet."""

    def parse(item: str) -> float | None:
        try:
            return int(item) if integers else float(item)
        except ValueError:
            return None

    def fine(values: list[str] | None) -> bool:
        numbers = [parse(str(item).strip()) for item in values or ()]
        return all(number is not None and accept(number) for number in numbers)

    flags.register_validator(name, fine, message=f"need comma-separated {wanted}")


def define_sharding(merge_help: str) -> None:
    """--num_shards, --shard_index and --merge (`merge_help`: what this job's merge joins). A merge joins every
    shard, so a --shard_index beside --merge (a shard's command line edited into the merge's) is refused when the
    flags are parsed rather than ignored."""
    flags.DEFINE_integer(
        "num_shards",
        1,
        "Split the work into this many shards (e.g. one per machine); every shard of one output uses the same count.",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "shard_index", 0, "Which shard this process handles, 0 <= shard_index < num_shards.", lower_bound=0
    )
    flags.DEFINE_boolean("merge", False, merge_help)
    flags.register_multi_flags_validator(
        ["merge", "shard_index"],
        lambda values: not (values["merge"] and flags.FLAGS["shard_index"].present),
        message="--merge joins all --num_shards shards; --shard_index names one: drop --shard_index to merge",
    )


def define_on_error(bad_input: str = "unreadable image, bad row") -> None:
    """--on_error; `bad_input` says what this job counts as a bad input."""
    flags.DEFINE_enum(
        "on_error",
        "skip",
        list(ON_ERROR_CHOICES),
        f"What to do with a bad input ({bad_input}): 'skip' logs it and counts it, "
        "'stop' ends the job at the first one (finished work is kept either way).",
    )


class NothingDone(Exception):
    """Raised by a script whose job ran but did none of its work (every input skipped): one line, exit code 3."""


def _out_dir() -> str | None:
    return flags.FLAGS["out_dir"].value if "out_dir" in flags.FLAGS else None


def _first_missing_folder(path: str) -> str | None:
    """The outermost folder of `path` that does not exist yet (`path` itself, or a parent the run will make with
    it); None when `path` exists."""
    missing = None
    for folder in (Path(path), *Path(path).parents):
        if folder.exists():
            break
        missing = str(folder)
    return missing


def _remove_empty_folders(folder: str) -> None:
    """Removes `folder` and the folders under it, deepest first, where they hold nothing: a failed job whose
    --out_dir it made itself leaves no empty folder behind. A folder holding a file stays (rmdir refuses it, also
    when another process wrote there meanwhile)."""
    for path, _, _ in sorted(os.walk(folder), key=lambda entry: -entry[0].count(os.sep)):
        try:
            os.rmdir(path)
        except OSError:
            pass


def _remove_dead_runs_temp_files() -> None:
    """A restarted job first removes the temporary files its killed runs left under --out_dir (see fileio)."""
    out_dir = _out_dir()
    if out_dir and os.path.isdir(out_dir):
        removed = remove_stale_temp_files(out_dir)
        if removed:
            logging.getLogger("deepfl").info("removed %d temporary files left by killed runs in %s", removed, out_dir)


# Failures of the storage a job writes to, not of its inputs or its code: one line naming the file, exit code 1.
_MAKE_ROOM = "make room, or write to another folder"
_WRITABLE = "write to a folder you can write to"
_STORAGE_ERRORS = {  # errno: (what happened, what to do before the rerun)
    errno.ENOSPC: ("no space left on the device", _MAKE_ROOM),
    errno.EDQUOT: ("disk quota exceeded", _MAKE_ROOM),
    errno.EFBIG: ("file too large for this process's file size limit (ulimit -f)", "raise the limit"),
    errno.EROFS: ("read-only file system", _WRITABLE),
    errno.EACCES: ("permission denied", _WRITABLE),
}


def _storage_failure(exc: BaseException) -> OSError | None:
    """The OSError of a full, read-only or forbidden file system behind `exc` (itself, or what it was raised
    from: h5py and Keras wrap it), or None."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain of causes, never a cycle in practice
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in _STORAGE_ERRORS:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


_STORAGE_FAILED = threading.Event()  # set once a job of this process has failed on a full or read-only disk


def _end_after_storage_failure(code: int) -> None:
    """After a storage failure: ends the process now, with `code`, its outputs flushed, without finalizers or
    garbage collection (see `_report_failure`). Every output is written atomically, and the temporary files
    are gone already, so nothing is left half done."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def _is_the_script_process() -> bool:
    """Whether this process was started only to run the job: its main module is the script (`python -m
    deepfl.cli.<step>`) or the console script's wrapper (`deepfl-<step>`), which calls the script's `run` (or
    `run_app`) and nothing else. Not a program that runs a job inside its own process and may go on after it: a
    test, a batch of jobs (`python -c`), a profiler, tracer or coverage tool (`python -m cProfile -m ...`)."""
    frames = []
    frame = sys._getframe()
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()  # outermost first
    while frames and "runpy" in os.path.basename(frames[0].f_code.co_filename):
        frames.pop(0)  # `python -m` starts the main module through runpy
    inner = next((k for k, f in enumerate(frames) if f.f_code is run_app.__code__), None)
    if inner not in (1, 2) or frames[0].f_code.co_name != "<module>":
        return False
    main_globals = frames[0].f_globals
    spec = main_globals.get("__spec__")
    if spec is not None and spec.name.startswith("deepfl.cli."):
        return True
    entry = main_globals.get("run")
    return (
        os.path.basename(main_globals.get("__file__") or "").startswith("deepfl-")
        and inner == 2
        and frames[1].f_code is getattr(entry, "__code__", None)
        and entry.__module__.startswith("deepfl.cli.")
    )


def _exit_without_unloading(code: int | None) -> None:
    """Ends a job's process the way Python does, minus its last phase: joins nothing (unless a thread that Python
    would wait for is still running: then returns, and Python exits as usual), runs the exit handlers (logging,
    multiprocessing, temporary folders, HDF5), flushes stdout and stderr, and ends the process with `code`
    without unloading modules. That last phase frees TensorFlow's and Keras' objects one by one: about a second
    of CPU per job, with nothing left to write (every output is closed, written atomically or appended whole
    before the job returns)."""
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    if others or not (code is None or isinstance(code, int)):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(code or 0)


def _report_failure(exc: Exception) -> int:
    """Prints the one line for a job's exception and returns its exit code: 3 for nothing done, 2 for a bad input
    or flag (the message names the culprit; the exception's class would add nothing), 1 for anything else (a full
    or read-only disk among them, named as such)."""
    storage = _storage_failure(exc)
    if storage is not None:
        where = output_path_of(storage.filename) if storage.filename else _out_dir()
        what, advice = _STORAGE_ERRORS[storage.errno]
        print(
            f"error: {where or 'an output'}: {what}; {advice}, then rerun the same command (finished work is kept "
            "and resumed)",
            file=sys.stderr,
        )
        # A native writer (HDF5 under h5py and Keras) can be left in a broken state by the failed write, and
        # crashed the process when its objects were collected (exit 139 after this line): no more collections,
        # and `run_app` ends the process without its finalizers (`_end_after_storage_failure`).
        gc.disable()
        _STORAGE_FAILED.set()
        return EXIT_UNEXPECTED
    if isinstance(exc, WorkerLost):
        print(f"error: {one_line(exc, limit=BAD_INPUT_MESSAGE_CHARS)}", file=sys.stderr)
        return EXIT_UNEXPECTED
    if isinstance(exc, (NothingDone, NoUsableInput)):
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_NOTHING_DONE
    if isinstance(exc, (DeepflError, FileNotFoundError, NotADirectoryError, IsADirectoryError, JobStopped, ValueError)):
        print(f"error: {one_line(exc, limit=BAD_INPUT_MESSAGE_CHARS)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if _is_input_op_error(exc):
        # A tf.data input failure (e.g. a corrupt image with --on_error=stop): one line, not a traceback.
        print(f"error: {one_line(Exception(tensorflow_message(exc)))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # Anything else is a bug or a failure of the environment: one capped line (no tensor dumps), the traceback only
    # on request.
    if flags.FLAGS.verbosity >= 1:
        traceback.print_exception(exc)
    print(
        f"error ({type(exc).__name__}): {one_line(exc)} (unexpected; --verbosity=1 shows the traceback)",
        file=sys.stderr,
    )
    return EXIT_UNEXPECTED


def run_app(main: Callable[[list[str]], int | None], takes_arguments: bool = False) -> None:
    """absl `app.run` with one-line errors (the first line, capped, see `deepfl.errors.one_line`): a bad or
    missing flag, DeepflError, FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError -> exit code
    2; NothingDone and `deepfl.errors.NoUsableInput` -> exit code 3; Ctrl-C -> one line and exit code 130; any
    other exception -> exit code 1 (its traceback with --verbosity=1). A word on the command line that is not a
    flag is refused (exit code 2) unless `takes_arguments` (deepfl-predict's image paths): absl would hand it to
    `main` unread, so `--overwrite false` would run with --overwrite on and `false` ignored."""
    interrupt = _interrupt_handler()

    def wrapped(argv: list[str]) -> int | None:
        # --verbosity=-1: warnings and errors only. absl's own default is -1 until its logging starts (0 after), so
        # only a value given on the command line counts.
        setup_logging(flags.FLAGS.verbosity if flags.FLAGS["verbosity"].present else 0)
        if flags.FLAGS.verbosity >= 1 and not TF_LOG_LEVEL_SET_BY_USER:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # read by TensorFlow at its import, which comes later
        # TF's C++ start-up lines only with --verbosity=1; not replayed when a Ctrl-C breaks the import
        quiet_tensorflow(verbose=flags.FLAGS.verbosity >= 1, interrupted=interrupt.interrupted.is_set)
        keras_without_extras()  # a third of Keras' import goes to scikit-learn and matplotlib, unused by jobs
        out_dir = _out_dir()
        made_from = _first_missing_folder(out_dir) if out_dir else None  # the top folder this run would make
        code = job(argv)
        if code and made_from is not None:
            _remove_empty_folders(made_from)
        if _STORAGE_FAILED.is_set():
            _end_after_storage_failure(code)
        if _is_the_script_process() and not interrupt.interrupted.is_set():
            _exit_without_unloading(code)
        return code

    def job(argv: list[str]) -> int | None:
        interrupt.job_done = False
        try:
            _remove_dead_runs_temp_files()
            with command_line_names():  # library messages name the flags a user types
                code = main(argv)
            if interrupt.interrupted.is_set():
                # The KeyboardInterrupt was swallowed on its way up (e.g. raised inside a TensorFlow call that
                # turned it into its own error, which a skip policy absorbed): still report it and exit 130.
                interrupt.report()
                return interrupt.exit_code
            interrupt.job_done = True  # its outputs are written: a Ctrl-C from here on changes nothing
            interrupt.ignore_sigint_at_exit()
            # Again at the end: a killed run's processes may still have been dying when this one started. Only
            # cleaning up (a walk of the output folder: 0.3 s after deepfl-distort's summary line), so after the
            # job is done.
            _remove_dead_runs_temp_files()
            return code
        except KeyboardInterrupt:
            interrupt.report()
            return interrupt.exit_code
        except Exception as exc:
            if interrupt.interrupted.is_set():
                # The error is the Ctrl-C's doing: a KeyboardInterrupt raised inside a C call can surface as
                # another error (a SystemError "bad argument to internal function" was seen once in ~80 Ctrl-Cs of
                # extract-features). Report the interrupt, as on the success path above.
                interrupt.report()
                return interrupt.exit_code
            return _report_failure(exc)

    _show_script_help(main.__module__)
    argv = _help_alias(sys.argv)
    if _asks_for_version(argv):  # before the flags are parsed: a job's required flags do not apply
        import deepfl

        print(f"deepfl {deepfl.__version__}")
        raise SystemExit(0)
    try:
        app.run(wrapped, argv=argv, flags_parser=lambda args: _parse_flags(args, takes_arguments))
    except KeyboardInterrupt:  # before main (flag parsing) or while a `finally` in main was unwinding
        interrupt.report()
        raise SystemExit(interrupt.exit_code) from None
    except SystemExit as exc:
        if exc.code == 1 and _asks_for_help(argv):
            raise SystemExit(0) from None  # absl exits 1 after printing the help it was asked for
        raise


def nothing_to_resume() -> None:
    """For a script whose run keeps nothing a rerun could resume from: its Ctrl-C line says so instead of telling
    the user to rerun to resume."""
    global _interrupted_message
    _interrupted_message = INTERRUPTED_WITHOUT_RESUME_MESSAGE


class _InterruptHandler:
    """Ctrl-C for a job: one line on stderr and exit code 130, at once or within INTERRUPT_GRACE_S. SIGTERM (kill,
    timeout, a scheduler's time limit) ends it the same way, with its own line and exit code 143.

    The SIGINT handler raises KeyboardInterrupt in the main thread (run_app turns it into the line and 130). A
    Python handler only runs when the main thread executes Python code, so the signal also wakes a watcher
    thread (through `signal.set_wakeup_fd`, written by the C-level handler whatever the main thread is doing);
    if the process is still alive after the grace period, the watcher prints the line, terminates worker
    processes and ends the process. Forked worker processes inherit the handler and ignore the signal: the
    parent terminates them. Finished work is safe either way: every output is written atomically or appended
    whole.
    """

    def __init__(self, grace_s: float = INTERRUPT_GRACE_S):
        self.grace_s = grace_s
        self.pid = os.getpid()
        self.interrupted = threading.Event()
        self._raised = False  # the Python-level handler raised KeyboardInterrupt (once: a second Ctrl-C unwinds)
        self._reported = threading.Lock()
        self._reported_once = False
        # Set once the job's main has returned with its work done: a Ctrl-C from then on (while the process
        # exits) changes nothing, so it must not turn the exit code into 130.
        self.job_done = False
        self.terminated = False  # the signal was SIGTERM, not Ctrl-C
        self._installed = False  # the handlers are this process's (set from the main thread only)
        self._ignores_sigint_at_exit = False

    @property
    def exit_code(self) -> int:
        return EXIT_TERMINATED if self.terminated else EXIT_INTERRUPTED

    def install(self) -> None:
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        # A forked worker must not write its signals into this process's wakeup socket (the watcher would take a
        # pool's SIGTERM to its workers, sent as it closes, for the job's own) and must die on SIGTERM as usual.
        os.register_at_fork(after_in_child=_default_signals_in_child)
        self._sockets = (reader, writer)  # kept open for the life of the process
        self._installed = True
        threading.Thread(target=self._watch, args=(reader,), name="deepfl-sigint", daemon=True).start()

    def ignore_sigint_at_exit(self) -> None:
        """Once the job's work is done, a Ctrl-C while the process exits must not make its exit code 130. The
        handler above ignores it while Python runs, but the interpreter's teardown puts the default action back
        before it unloads modules (TensorFlow's take a second or more), and a Ctrl-C then killed the finished job
        by SIGINT. An exit handler (run before that point) ignores SIGINT for the rest of the exit; SIGTERM still
        ends a process whose exit hangs."""
        if self._installed and not self._ignores_sigint_at_exit and os.getpid() == self.pid:
            self._ignores_sigint_at_exit = True
            atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)

    def _on_sigint(self, signum, frame) -> None:
        if os.getpid() != self.pid or self._raised or self.job_done:
            return  # a forked worker (the parent ends it), a second Ctrl-C while unwinding, or the job is done
        self.interrupted.set()
        request_stop()
        if frame is not None and frame.f_code.co_name == "__del__":
            # Python would print an exception raised in a finalizer as "Exception ignored in ..." plus a
            # traceback, and go on: the job loop stops at its next progress update instead.
            return
        self._raised = True
        raise KeyboardInterrupt

    def _on_sigterm(self, signum, frame) -> None:
        if os.getpid() != self.pid:  # a forked worker, ended by its parent with SIGTERM: it must die as usual
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if not self.interrupted.is_set():
            self.terminated = True
        self._on_sigint(signum, frame)

    def report(self) -> None:
        """Prints the interruption line once, whichever thread gets there first."""
        with self._reported:
            if self._reported_once:
                return
            self._reported_once = True
        if sys.stdout.isatty():  # a redrawing bar (Keras') leaves the cursor at the end of its line
            sys.stdout.write("\n")
        sys.stdout.flush()
        message = _interrupted_message
        print_to_user(message.replace("interrupted", "terminated (SIGTERM)", 1) if self.terminated else message)
        _forget_caught_keyboard_interrupt()

    def _watch(self, reader: socket.socket) -> None:
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            if (signal.SIGINT in data or signal.SIGTERM in data) and os.getpid() == self.pid and not self.job_done:
                if signal.SIGTERM in data and not self.interrupted.is_set():
                    self.terminated = True
                break
        # The Python-level handler may not run for a while (the main thread is inside a long TensorFlow call):
        # the job loop's next progress update stops the job meanwhile.
        self.interrupted.set()
        request_stop()
        time.sleep(self.grace_s)
        self.report()
        for child in multiprocessing.active_children():
            child.terminate()
        os._exit(self.exit_code)


def _default_signals_in_child() -> None:
    """In a process forked from a job: no wakeup socket of the parent's, SIGTERM's default action."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:  # not the main thread of the main interpreter: nothing was installed for it
        pass


def _forget_caught_keyboard_interrupt() -> None:
    """Keeps exit code 130 under `python -m`. CPython records a KeyboardInterrupt that escapes code a C extension
    ran through `PyRun_String` (pybind11's `exec` does, e.g. while TensorFlow is imported) as unhandled, even when
    Python code caught it further up; `python -m` then ends the process by SIGINT (-2) whatever exit code it was
    given. A successful `PyRun_String` clears that record."""
    if sys.implementation.name != "cpython":
        return
    import ctypes

    run_string = ctypes.pythonapi.PyRun_String
    run_string.restype = ctypes.py_object
    run_string.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
    py_file_input = 257  # the start symbol for a module's statements (Include/compile.h)
    run_string(b"", py_file_input, {}, {})


_INTERRUPT_HANDLER: _InterruptHandler | None = None


def _interrupt_handler() -> _InterruptHandler:
    """The process's Ctrl-C handler, installed on first use (once, also when several jobs run in one process).
    Signal handlers can only be set from the main thread; elsewhere the handler is made but not installed."""
    global _INTERRUPT_HANDLER
    if _INTERRUPT_HANDLER is None or _INTERRUPT_HANDLER.pid != os.getpid():
        _INTERRUPT_HANDLER = _InterruptHandler()
        if threading.current_thread() is threading.main_thread():
            _INTERRUPT_HANDLER.install()
    return _INTERRUPT_HANDLER


def _parse_flags(argv: list[str], takes_arguments: bool = True) -> list[str]:
    """absl's flag parsing with a bad or missing flag reported as one `error:` line and exit code 2, as every
    other bad input (absl's own parser prints "FATAL Flags parsing error" and exits 1, the code of a partial
    failure); without `takes_arguments`, a word that is not a flag as well (`_stray_argument_message`)."""
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as exc:
        # absl says of a required flag left out "flag --x=None: Flag --x must have a value other than None."
        missing = re.fullmatch(r"flag --(\w+)=None: Flag --\1 must have a value other than None\.?", one_line(exc))
        message = f"--{missing.group(1)} is required" if missing else one_line(exc)
        print(f"error: {message} (--help lists the flags)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    if not takes_arguments and len(rest) > 1 and not _asks_for_help(argv):
        print(f"error: {_stray_argument_message(argv, rest[1])}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)
    return rest


def _stray_argument_message(argv: list[str], word: str) -> str:
    """Why `word`, left over after the flags, is refused; for a word after a boolean flag (`--overwrite false`),
    how to give that flag's value."""
    position = argv.index(word) if word in argv else 0
    before = argv[position - 1] if position > 1 else ""
    name = before.lstrip("-").partition("=")[0]
    flag = flags.FLAGS[name] if before.startswith("-") and "=" not in before and name in flags.FLAGS else None
    if flag is not None and flag.boolean and word.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        return (
            f"unexpected argument {word!r} after {before}: a true/false flag takes no separate value; write "
            f"--{name}={word} (or --{name} for true, --no{name} for false)"
        )
    return f"unexpected argument {word!r}: this command takes flags only, such as --name=value (--help lists them)"


# absl's help flags (it has no -h; `_help_alias` maps -h to --help).
_HELP_FLAGS = ("--help", "-?", "--helpshort", "--helpfull", "--helpxml")


def _help_alias(argv: list[str]) -> list[str]:
    """argv with `-h` (before a `--`) replaced by `--help`, the short form users try first."""
    out, ended = [], False
    for arg in argv:
        ended = ended or arg == "--"
        out.append("--help" if arg == "-h" and not ended else arg)
    return out


def _asks_for(argv: list[str], names) -> bool:
    """True when one of the flags `names` (before any `--`, and not given as false) is on the command line."""
    for arg in argv[1:]:
        if arg == "--":
            return False
        name, _, value = arg.partition("=")
        if name in names and value.lower() not in ("false", "0"):
            return True
    return False


def _asks_for_version(argv: list[str]) -> bool:
    return _asks_for(argv, ("--version",))


def _asks_for_help(argv: list[str]) -> bool:
    return _asks_for(argv, _HELP_FLAGS)


def _show_script_help(module_name: str) -> None:
    """Makes `--help` list the script's own flags and print its docstring (and the exit codes), also when run as a
    console script.

    absl shows only the flags of the module named by sys.argv[0] (the console-script wrapper or an experiments/
    shim, which define none) and that module's docstring; register under that name the flags of the script, of
    this module and of the shared flag modules the script imported (`deepfl.cli.extraction_flags`, ...), and show
    the script's docstring.
    """
    main_module = sys.modules.get("__main__")
    script = sys.modules.get(module_name)
    if main_module is not None and script is not None and script.__doc__:
        main_module.__doc__ = (
            script.__doc__.rstrip()
            + "\n\n"
            + textwrap.fill(EXIT_CODES_HELP, 116)
            + "\n--version prints deepfl's version.\n"
        )
    shared = [name for name in sys.modules if name.startswith(f"{__package__}.")]
    for owner in dict.fromkeys((module_name, __name__, *shared)):
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
    if first.endswith(":") and len(text.strip().splitlines()) > 1:  # a header ("Graph execution error:")
        first = failure_reason(exc)
    first = re.sub(r"\{\{[^}]*\}\}\s*", "", first)
    if "assertion failed:" in first:
        parts = re.findall(r"\[([^\[\]]*)\]", first.split("assertion failed:", 1)[1])
        if parts:
            return " ".join(p.strip() for p in parts)
    first = re.sub(r"^.*?transformation with iterator: [\w:]+: ", "", first)
    return re.sub(r"\s*\[Op:\w+\].*$", "", first).strip() or type(exc).__name__
