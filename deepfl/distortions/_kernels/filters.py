"""Separable Gaussian filtering with replicated borders (types 1, 4, 5, 24)."""

from __future__ import annotations

from deepfl._numba import njit as _njit


@_njit
def correlate_rows(x, weights, out):
    """`scipy.ndimage.correlate1d(x, weights, axis=0, mode='nearest')` for an odd, symmetric kernel, in ndimage's
    order of operations: out = x[r] * w[c] + sum over k = size1..1 of (x[r - k] + x[r + k]) * w[c - k] (outermost
    pair first), rows clamped at the edges. x, out: (H, N) contiguous."""
    h, n = x.shape
    half = weights.size // 2
    centre = weights[half]
    for r in range(h):
        row = out[r]
        here = x[r]
        for i in range(n):
            row[i] = here[i] * centre
        for k in range(half, 0, -1):
            up = x[max(r - k, 0)]
            down = x[min(r + k, h - 1)]
            wk = weights[half - k]
            for i in range(n):
                row[i] += (up[i] + down[i]) * wk


@_njit
def correlate_columns(x, weights, out):
    """`scipy.ndimage.correlate1d(x, weights, axis=1, mode='nearest')` for an odd, symmetric kernel on (H, W, C)
    contiguous arrays, in ndimage's order of operations (centre tap, then the symmetric pairs from the outermost
    inwards), columns clamped at the edges."""
    h, w, nc = x.shape
    half = weights.size // 2
    centre = weights[half]
    for r in range(h):
        src = x[r].reshape(-1)
        dst = out[r].reshape(-1)
        for i in range(w * nc):
            dst[i] = src[i] * centre
        for k in range(half, 0, -1):
            wk = weights[half - k]
            lo = min(k, w)  # columns whose left neighbour at distance k is clamped to column 0
            hi = max(w - k, lo)  # columns from here on have their right neighbour clamped to column w - 1
            for col in range(lo):
                for c in range(nc):
                    dst[col * nc + c] += (src[c] + src[min(col + k, w - 1) * nc + c]) * wk
            step = k * nc
            inner = dst[lo * nc : hi * nc]  # interior: both neighbours inside the row (views, so that every
            left = src[lo * nc - step : hi * nc - step]  # index is a non-negative j and the loop vectorises)
            right = src[lo * nc + step : hi * nc + step]
            for j in range(inner.size):
                inner[j] += (left[j] + right[j]) * wk
            for col in range(hi, w):
                for c in range(nc):
                    dst[col * nc + c] += (src[max(col - k, 0) * nc + c] + src[(w - 1) * nc + c]) * wk
