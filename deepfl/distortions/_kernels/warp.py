"""Keys cubic resampling (type 19, jitter)."""

from __future__ import annotations

import numpy as np

from deepfl._numba import njit as _njit

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
    resampling of the contiguous HxWx3 float32 `image` at (y - dy, x - dx) with replicated edges (MATLAB's bicubic
    kernel).

    The sums run over j first, then over i, left to right, as the numpy implementation did (same float32 values).
    Clamped flat offsets are unsigned, so numba adds no negative-index wrapping.
    """
    h, w, nc = image.shape
    flat = image.reshape(-1)
    flat_out = out.reshape(-1)
    row = w * nc
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
            ca = np.uint64(min(max(c0, 0), w - 1) * nc)
            cb = np.uint64(min(max(c0 + 1, 0), w - 1) * nc)
            cc = np.uint64(min(max(c0 + 2, 0), w - 1) * nc)
            cd = np.uint64(min(max(c0 + 3, 0), w - 1) * nc)
            ra = np.uint64(min(max(r0, 0), h - 1) * row)
            rb = np.uint64(min(max(r0 + 1, 0), h - 1) * row)
            rc = np.uint64(min(max(r0 + 2, 0), h - 1) * row)
            rd = np.uint64(min(max(r0 + 3, 0), h - 1) * row)
            base = np.uint64(y * row + x * nc)
            for c in range(nc):
                k = np.uint64(c)
                acc = (
                    flat[ra + ca + k] * wx0
                    + flat[ra + cb + k] * wx1
                    + flat[ra + cc + k] * wx2
                    + flat[ra + cd + k] * wx3
                ) * wy0
                acc = (
                    acc
                    + (
                        flat[rb + ca + k] * wx0
                        + flat[rb + cb + k] * wx1
                        + flat[rb + cc + k] * wx2
                        + flat[rb + cd + k] * wx3
                    )
                    * wy1
                )
                acc = (
                    acc
                    + (
                        flat[rc + ca + k] * wx0
                        + flat[rc + cb + k] * wx1
                        + flat[rc + cc + k] * wx2
                        + flat[rc + cd + k] * wx3
                    )
                    * wy2
                )
                acc = (
                    acc
                    + (
                        flat[rd + ca + k] * wx0
                        + flat[rd + cb + k] * wx1
                        + flat[rd + cc + k] * wx2
                        + flat[rd + cd + k] * wx3
                    )
                    * wy3
                )
                flat_out[base + k] = acc
