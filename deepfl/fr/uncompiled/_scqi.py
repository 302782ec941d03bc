"""SCQI in NumPy (first call with a shape); the reconstruction's conventions are in `deepfl/fr/_scqi.py`.

Runs in strips of output rows (each strip reads 3 more input rows, the 4x4 windows being 'valid'), so that no
full-size YIQ image or 16-coefficient map is stored; the pooled sums add up over the strips.
"""

from __future__ import annotations

import numpy as np

from deepfl.fr._scqi import (
    _DCT,
    BLOCK,
    EPS_WEIGHT,
    LAMBDA_CHROMA,
    PIXELS_PER_DEGREE,
    T_CHROMA,
    T_SCI,
    _csf_weights,
)
from deepfl.fr.functional.colour import YIQ
from deepfl.fr.uncompiled import functional

_STRIP = 32  # output rows per strip
_AC = BLOCK * BLOCK - 1


def _coefficient_weights() -> np.ndarray:
    """CSF weight of DCT coefficient (u, v) at [v, u] (the order `_sci_strip` stores them in), 0 for DC."""
    weights = _csf_weights(BLOCK, PIXELS_PER_DEGREE).astype(np.float64).reshape(BLOCK, BLOCK).T.copy()
    weights[0, 0] = 0.0
    return weights[:, :, None, None, None]


_WEIGHTS = _coefficient_weights()
_YIQ = np.asarray(YIQ, np.float64)


def _similarity(a: np.ndarray, b: np.ndarray, constant: float) -> np.ndarray:
    return (2.0 * a * b + constant) / (a * a + b * b + constant)


def _window_dct(x: np.ndarray, axis: int, out: np.ndarray) -> np.ndarray:
    """The 4 DCT coefficients of every 4-sample window along `axis` of x, written to out[0..3] (valid
    windows), by the even/odd butterfly of the TF form."""
    length = x.shape[axis] - (BLOCK - 1)
    lead = (slice(None),) * (axis % x.ndim)
    t0, t1, t2, t3 = (x[lead + (slice(k, k + length),)] for k in range(BLOCK))
    s0, s1, d0, d1 = t0 + t3, t1 + t2, t0 - t3, t1 - t2
    b, c = _DCT[1, 0], _DCT[1, 1]
    np.multiply(s0 + s1, _DCT[0, 0], out=out[0])
    np.add(b * d0, c * d1, out=out[1])
    np.multiply(s0 - s1, _DCT[2, 0], out=out[2])
    np.subtract(c * d0, b * d1, out=out[3])
    return out


def _sci_strip(y: np.ndarray) -> np.ndarray:
    """SCI of the valid 4x4 windows of a strip of luminance rows N,h,W -> N,h-3,W-3: sqrt(C^2 / kurtosis) =
    sqrt(e^3 / m4), e and m4 the means of the CSF-weighted AC coefficients' squares and fourth powers."""
    n, height, width = y.shape
    rows, cols = height - (BLOCK - 1), width - (BLOCK - 1)
    by_rows = _window_dct(y, 1, np.empty((BLOCK, n, rows, width)))  # frequency u down the columns
    coefficients = np.empty((BLOCK, n, rows, cols))
    energy, fourth, part = np.zeros((n, rows, cols)), np.zeros((n, rows, cols)), np.empty((n, rows, cols))
    for u in range(BLOCK):
        _window_dct(by_rows[u], -1, coefficients)  # frequency v along the rows
        coefficients *= _WEIGHTS[:, u]
        coefficients *= coefficients
        energy += np.add.reduce(coefficients, 0, out=part)
        coefficients *= coefficients
        fourth += np.add.reduce(coefficients, 0, out=part)
    energy /= _AC
    fourth /= _AC
    ratio = energy * energy * energy
    np.divide(ratio, fourth, out=ratio, where=fourth != 0)
    ratio[fourth == 0] = 0.0
    return np.sqrt(ratio, out=ratio)


def _box_mean(x: np.ndarray) -> np.ndarray:
    """Mean of every valid 4x4 window of N,h,W maps."""
    rows, cols = x.shape[1] - (BLOCK - 1), x.shape[2] - (BLOCK - 1)
    x = (x[:, :rows] + x[:, 3 : rows + 3]) + (x[:, 1 : rows + 1] + x[:, 2 : rows + 2])
    x = (x[:, :, :cols] + x[:, :, 3 : cols + 3]) + (x[:, :, 1 : cols + 1] + x[:, :, 2 : cols + 2])
    return x / float(BLOCK * BLOCK)


def _features(rgb_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(SCI, local mean of I, local mean of Q) of a strip of NHWC RGB rows, each N,h-3,W-3. The YIQ planes are
    stored channel first: the windows then run over contiguous rows."""
    n, height, width = rgb_rows.shape[:3]
    pixels = np.asarray(rgb_rows, np.float64).reshape(-1, 3)
    yiq = (_YIQ @ pixels.T).reshape(3, n, height, width)
    chroma = _box_mean(yiq[1:].reshape(2 * n, height, width))
    return _sci_strip(yiq[0]), chroma[:n], chroma[n:]


def scqi(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """SCQI of each pair (1 = identical): local quality SCI similarity x (I x Q similarity)^0.03, pooled with
    weights max(SCI_ref, SCI_dist); the pooled sums add up over strips of rows."""
    n, height = len(dist), dist.shape[1]
    weighted, total = np.zeros(n), np.zeros(n)
    for top in range(0, height - (BLOCK - 1), _STRIP):
        bottom = min(top + _STRIP, height - (BLOCK - 1)) + (BLOCK - 1)
        sci_r, i_r, q_r = (functional.take_refs(m, ref_index) for m in _features(ref[:, top:bottom]))
        sci_d, i_d, q_d = _features(dist[:, top:bottom])
        s_chroma = _similarity(i_r, i_d, T_CHROMA) * _similarity(q_r, q_d, T_CHROMA)
        quality = _similarity(sci_r, sci_d, T_SCI) * np.power(np.maximum(s_chroma, 0.0), LAMBDA_CHROMA)
        weight = np.maximum(sci_r, sci_d) + EPS_WEIGHT
        weighted += (quality * weight).sum((1, 2))
        total += weight.sum((1, 2))
    return weighted / total
