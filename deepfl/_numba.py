"""The one way deepfl compiles its Numba kernels (distortions, PNG writer and reader), and says so when it is slow."""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator

import numba

log = logging.getLogger("deepfl")


def njit(function):
    """`numba.njit(cache=True, nogil=True)`: compiled once per machine and cached on disk (`__pycache__` beside
    the module, or NUMBA_CACHE_DIR); where no cache location is writable (a read-only install) the kernel is
    compiled per process instead of failing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", numba.NumbaWarning)
            return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(cache=False, nogil=True)(function)


@contextlib.contextmanager
def said_if_slow(message: str, after_s: float = 2.0) -> Iterator[None]:
    """Logs `message` once if the block is still running after `after_s` seconds. Loading cached kernels takes
    about a second, but the first use on a machine compiles them (tens of seconds), and a job should not sit
    silent meanwhile: only that first run says so."""
    timer = threading.Timer(after_s, log.info, args=("%s", message))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def said_while_compiling(kernels: str) -> contextlib.AbstractContextManager[None]:
    """`said_if_slow` for a block that loads `kernels` (e.g. "the distortion and PNG kernels"): on a machine's first
    use it compiles them, and the line says that this happens once."""
    return said_if_slow(f"compiling {kernels}: once per installation (later runs load them from Numba's cache)")
