"""The one way deepfl compiles its Numba kernels (distortions, PNG writer and reader)."""

from __future__ import annotations

import warnings

import numba


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
