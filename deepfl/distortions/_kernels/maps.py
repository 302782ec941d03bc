"""The input and output maps of every type: level lookup and the uint8 rounding of `imwrite`."""

from __future__ import annotations

import numpy as np

from deepfl._numba import njit as _njit


@_njit
def lookup(table, pixels, out):
    """out[i] = table[pixels[i]] for flat uint8 `pixels` and a 256-entry table (np.take, one pass)."""
    for i in range(pixels.size):
        out[i] = table[pixels[i]]


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
