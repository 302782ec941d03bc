"""The command-line scripts (absl flags), one module per pipeline step; each is a console script `deepfl-<step>`.

A script only parses its flags and calls the library; `app` holds what every script shares (common flags and the
one-line error handling of `run_app`).
"""

import os
import signal
import sys
import threading

from deepfl.quiet import QUIET_LOG_LEVEL

# Quiet TensorFlow's C++ log lines before any script imports it (`deepfl.quiet`). `--verbosity=1` (see
# `app.run_app`) or TF_CPP_MIN_LOG_LEVEL set by the user shows them.
TF_LOG_LEVEL_SET_BY_USER = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LOG_LEVEL)


def _interrupted_while_starting(signum, frame) -> None:
    print("interrupted while starting; nothing was done", file=sys.stderr, flush=True)
    raise SystemExit(130)


# A console script (`deepfl-distort`, ...) spends its first half second importing its modules, before
# `app.run_app` installs the job's Ctrl-C handling; a Ctrl-C then would print a KeyboardInterrupt traceback from
# inside an import. Until run_app replaces it, this handler ends such a process with one line and exit code 130.
# Only for our console scripts: a program that imports deepfl.cli (pytest, a bench script) keeps its own.
if (
    os.path.basename(sys.argv[0] if sys.argv else "").startswith("deepfl-")
    and threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGINT) is signal.default_int_handler
):
    signal.signal(signal.SIGINT, _interrupted_while_starting)
