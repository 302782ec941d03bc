"""Per-pixel resampling and noise: pixelate (21), impulse (13) and speckle (14) noise."""

from __future__ import annotations

from deepfl._numba import njit as _njit


@_njit
def gather_rows_cols(x, rows, cols, out):
    """out[r, c, :] = x[rows[r], cols[c], :] (a nearest-neighbour resampling given per-axis source indices)."""
    for r in range(rows.size):
        src = x[rows[r]]
        dst = out[r]
        for c in range(cols.size):
            for k in range(x.shape[2]):
                dst[c, k] = src[cols[c], k]


@_njit
def salt_and_pepper(x, u, density, out):
    """`imnoise` salt & pepper on flat arrays: out = 0 where u < d/2, 1 where d/2 <= u < d, else x."""
    half = density / 2.0
    for i in range(x.size):
        v = u[i]
        out[i] = 0.0 if v < half else (1.0 if v < density else x[i])


@_njit
def speckle(x, u, scale, out):
    """`imnoise` speckle on flat arrays: out = clip(x + x * (scale * (u - 0.5)), 0, 1)."""
    for i in range(x.size):
        v = x[i] + x[i] * (scale * (u[i] - 0.5))
        out[i] = min(max(v, 0.0), 1.0)
