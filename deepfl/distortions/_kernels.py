"""Compiled (Numba) per-pixel kernels of the distortions: loops that numpy can only run as many full-image passes.

Every kernel implements exactly the maths of the numpy code it replaced, in the same floating-point order where
the output must stay byte-identical (tests/test_distortions.py compares each one with the plain numpy maths).
Kernels are compiled on first use and cached on disk (`cache=True`: `__pycache__` beside this file, or
NUMBA_CACHE_DIR); where no cache location is writable they are compiled per process instead of failing. No
kernel is parallel: the generator already runs one process per core.
"""

from __future__ import annotations

import math
import warnings

import numba
import numpy as np


def _njit(function):
    """`numba.njit(cache=True, nogil=True)`, falling back to an uncached kernel where no cache dir is writable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", numba.NumbaWarning)
            return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available" (read-only install)
        return numba.njit(cache=False, nogil=True)(function)


# ----------------------------------------------------------------------------------------------- jitter (19)

_F32_HALF = np.float32(0.5)
_F32_ONE = np.float32(1.0)
_F32_1P5 = np.float32(1.5)
_F32_2P5 = np.float32(2.5)


@_njit
def keys_weights(t):
    """Keys cubic convolution weights (a = -0.5) of the taps at offsets -1, 0, 1, 2 for a float32 fraction t in
    [0, 1), in float32 and in this order: w2 = (t^3 - t^2)/2, w-1 = (t^2 - t)/2 - w2, w0 = 1.5t^3 - 2.5t^2 + 1
    and w1 = 1 - w-1 - w0 - w2 (the four sum to one)."""
    t2 = t * t
    t3 = t2 * t
    w3 = (t3 - t2) * _F32_HALF
    w0 = (t2 - t) * _F32_HALF - w3
    w1 = t3 * _F32_1P5 - t2 * _F32_2P5 + _F32_ONE
    w2 = _F32_ONE - w0 - w1 - w3
    return w0, w1, w2, w3


@_njit
def warp_keys(image, dy, dx, out):
    """out[y, x, c] = sum_i wy_i * (sum_j wx_j * image[clamp(y + fy + i - 1), clamp(x + fx + j - 1), c]) in
    float32, where fy = floor(-dy[y, x]), wy = keys_weights(-dy - fy) (and the same along x): Keys cubic
    resampling of the HxWxC float32 `image` at (y - dy, x - dx) with replicated edges (MATLAB's bicubic kernel).

    The sums run over j first, then over i, left to right, as the numpy implementation did (same float32 values).
    """
    h, w, nc = image.shape
    for y in range(h):
        for x in range(w):
            py = -dy[y, x]
            px = -dx[y, x]
            fy = np.floor(py)
            fx = np.floor(px)
            wy0, wy1, wy2, wy3 = keys_weights(py - fy)
            wx0, wx1, wx2, wx3 = keys_weights(px - fx)
            r0 = y + np.int64(fy) - 1
            c0 = x + np.int64(fx) - 1
            ca = min(max(c0, 0), w - 1)
            cb = min(max(c0 + 1, 0), w - 1)
            cc = min(max(c0 + 2, 0), w - 1)
            cd = min(max(c0 + 3, 0), w - 1)
            ra = min(max(r0, 0), h - 1)
            rb = min(max(r0 + 1, 0), h - 1)
            rc = min(max(r0 + 2, 0), h - 1)
            rd = min(max(r0 + 3, 0), h - 1)
            for k in range(nc):
                acc = (image[ra, ca, k] * wx0 + image[ra, cb, k] * wx1 + image[ra, cc, k] * wx2
                       + image[ra, cd, k] * wx3) * wy0
                acc = acc + (image[rb, ca, k] * wx0 + image[rb, cb, k] * wx1 + image[rb, cc, k] * wx2
                             + image[rb, cd, k] * wx3) * wy1
                acc = acc + (image[rc, ca, k] * wx0 + image[rc, cb, k] * wx1 + image[rc, cc, k] * wx2
                             + image[rc, cd, k] * wx3) * wy2
                acc = acc + (image[rd, ca, k] * wx0 + image[rd, cb, k] * wx1 + image[rd, cc, k] * wx2
                             + image[rd, cd, k] * wx3) * wy3
                out[y, x, k] = acc


# ---------------------------------------------------------------------------------------- input and output maps


@_njit
def lookup(table, pixels, out):
    """out[i] = table[pixels[i]] for flat uint8 `pixels` and a 256-entry table (np.take, one pass)."""
    for i in range(pixels.size):
        out[i] = table[pixels[i]]


@_njit
def min_max(x):
    """(min, max) of a flat float64 array in one pass (NaN-free input)."""
    lo = x[0]
    hi = x[0]
    for i in range(1, x.size):
        v = x[i]
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    return lo, hi


@_njit
def scale_round_uint8(x, lo, scale, out):
    """out = clip(floor(((x - lo) * scale) * 255 + 0.5), 0, 255) as uint8, in this order of float64 operations
    (the output `mapmm` followed by `imwrite`'s rounding); flat arrays."""
    for i in range(x.size):
        y = np.floor((x[i] - lo) * scale * 255.0 + 0.5)
        out[i] = np.uint8(min(max(y, 0.0), 255.0))


@_njit
def round_uint8(x, out):
    """out = clip(floor(x * 255 + 0.5), 0, 255) as uint8 (`imwrite` of a double image); flat arrays."""
    for i in range(x.size):
        y = np.floor(x[i] * 255.0 + 0.5)
        out[i] = np.uint8(min(max(y, 0.0), 255.0))
