"""MATLAB `rgb2gray` of the NumPy forms as one Numba pass over the pixels.

NumPy needs a float64 copy of the whole NHWC array, a product and two more full-size passes (floor, clip): about
0.3 s per 12-megapixel image, and five of the eleven metrics take the gray image of both sides. One pass reading
the pixels as they are gives the same float64 values bit for bit (the same products and sums in the same order;
checked for all 2^24 colours in the tests). Compiled once per machine (`deepfl._numba`), `nogil`.
"""

from __future__ import annotations

import numpy as np

from deepfl._numba import njit as _njit


@_njit
def _gray(rgb, weights, out):
    for i in range(rgb.shape[0]):
        for y in range(rgb.shape[1]):
            for x in range(rgb.shape[2]):
                value = np.float64(rgb[i, y, x, 0]) * weights[0] + np.float64(rgb[i, y, x, 1]) * weights[1]
                value = np.floor(value + np.float64(rgb[i, y, x, 2]) * weights[2] + 0.5)
                out[i, y, x] = min(max(value, 0.0), 255.0)


def rgb2gray(rgb: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """weights . RGB of each pixel of NHWC `rgb` (any real dtype), rounded half up and clipped to [0, 255]:
    N,H,W float64."""
    rgb = np.asarray(rgb)
    if rgb.dtype.kind not in "uif":
        rgb = rgb.astype(np.float64)
    out = np.empty(rgb.shape[:3], np.float64)
    _gray(rgb, np.asarray(weights, np.float64), out)
    return out
