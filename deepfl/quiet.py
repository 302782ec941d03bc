"""Quiet start of TensorFlow: none of its C++ start-up lines unless asked for.

TensorFlow 2.21 writes its start-up notices (the absl "All log messages before absl::InitializeLog()" line, the
oneDNN notice, "Could not find cuda drivers", "failed call to cuInit") straight to file descriptor 2 while it is
imported and while it probes its devices; TF_CPP_MIN_LOG_LEVEL does not reach the lines written before absl's
logging is initialised. So the import (and the device probe) runs with descriptor 2 sent to a temporary file,
which is replayed on stderr only if the import fails. Later C++ messages follow TF_CPP_MIN_LOG_LEVEL (3 where
the user has not set it), and TensorFlow's Python warnings (e.g. tf.function retracing) are raised to ERROR.
Numerics are untouched: only where log lines go changes.

Every command-line job calls `quiet_tensorflow` (unless `--verbosity` asks for the lines). The library does not
call it by itself: while TensorFlow is imported, whatever else the process writes to descriptor 2 (another
thread's output, say) would be hidden too, so in a script it is the user's choice, one call before
anything imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator

from deepfl.import_hooks import WrappedExecFinder

_MODULE = "tensorflow"
# TF_CPP_MIN_LOG_LEVEL of a quiet start: 3 also hides the notices TensorFlow logs at ERROR level while working
# normally (e.g. "oneDNN supports DT_UINT8 only on platforms with AVX-512", written at the first uint8 transpose).
QUIET_LOG_LEVEL = "3"


# The user's stderr while `stderr_to_file` redirects file descriptor 2, else None.
_REAL_STDERR_FD: int | None = None


@contextlib.contextmanager
def stderr_to_file(interrupted: Callable[[], bool] | None = None) -> Iterator[None]:
    """Sends file descriptor 2 (C and C++ writers included) to a temporary file for the block; replays what was
    written there on stderr if the block raises (but not for Ctrl-C, which is no failure of the import: neither
    a KeyboardInterrupt nor another error raised while `interrupted()` is true, as a KeyboardInterrupt inside
    TensorFlow's C++ import code can come up as some other error)."""
    global _REAL_STDERR_FD
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            try:  # from the redirection on: a Ctrl-C at any point still gives descriptor 2 back
                os.dup2(sink.fileno(), 2)
                _REAL_STDERR_FD = saved
                yield
            except KeyboardInterrupt:
                raise  # Ctrl-C during the import: the caller reports it in one line; TF's lines stay hidden
            except BaseException:
                if interrupted is not None and interrupted():
                    raise  # the Ctrl-C's doing (see above): TF's lines stay hidden
                os.dup2(saved, 2)
                sink.seek(0)
                sys.stderr.write(sink.read().decode("utf-8", "replace"))
                raise
            finally:
                _REAL_STDERR_FD = None
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def print_to_user(line: str) -> None:
    """Prints a line where the user sees it, also while `stderr_to_file` holds file descriptor 2 (e.g. a Ctrl-C
    message written by another thread during the TensorFlow import)."""
    fd = _REAL_STDERR_FD
    if fd is None:
        print(line, file=sys.stderr, flush=True)
    else:
        os.write(fd, (line + "\n").encode("utf-8", "replace"))


class _QuietTensorflowFinder(WrappedExecFinder):
    """Executes `tensorflow` with stderr sent to a file, and probes its devices there (see the module docstring)."""

    def __init__(self, interrupted: Callable[[], bool] | None = None):
        super().__init__(_MODULE)
        self.interrupted = interrupted  # see `stderr_to_file`

    def execute(self, module, run) -> None:
        with stderr_to_file(self.interrupted):
            run(module)
            module.config.list_physical_devices()  # the CUDA probe writes its lines here, not at the first op
        logging.getLogger(_MODULE).setLevel(logging.ERROR)


def quiet_tensorflow(verbose: bool = False, interrupted: Callable[[], bool] | None = None) -> None:
    """Makes the first `import tensorflow` of this process quiet (see the module docstring), and its later C++ log
    lines too where the user has not set TF_CPP_MIN_LOG_LEVEL (`QUIET_LOG_LEVEL`); `verbose` leaves TensorFlow's
    start-up lines and Python warnings as they are. `interrupted()` true when the import fails: a Ctrl-C's doing,
    so the held-back lines are not replayed (`stderr_to_file`)."""
    if verbose:
        return
    logging.getLogger(_MODULE).setLevel(logging.ERROR)
    if _MODULE in sys.modules:
        return
    for finder in sys.meta_path:
        if isinstance(finder, _QuietTensorflowFinder):
            finder.interrupted = interrupted or finder.interrupted
            return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LOG_LEVEL)  # read by TensorFlow at its import
    sys.meta_path.insert(0, _QuietTensorflowFinder(interrupted))
