"""SCQI in NumPy (first call with a shape); the reconstruction's conventions are in `deepfl/fr/_scqi.py`.

Runs in strips of output rows (each strip reads 3 more input rows, the 4x4 windows being 'valid'), so that no
full-size YIQ image or 16-coefficient map is stored; the pooled sums add up over the strips.
"""

from __future__ import annotations

import functools

import numpy as np
from threadpoolctl import ThreadpoolController

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
    # Down the columns (axis 1: frequency u), then along the rows (frequency v): coefficient (u, v) at [v, u].
    by_rows = _window_dct(y, 1, np.empty((BLOCK, n, rows, width)))  # u, N, rows, W
    coefficients = _window_dct(by_rows, -1, np.empty((BLOCK, BLOCK, n, rows, cols)))  # v, u, N, rows, cols
    weights = _csf_weights(BLOCK, PIXELS_PER_DEGREE).astype(np.float64).reshape(BLOCK, BLOCK).T.copy()
    weights[0, 0] = 0.0  # DC
    coefficients *= weights[:, :, None, None, None]
    coefficients *= coefficients
    power = coefficients.reshape(BLOCK * BLOCK, n, rows, cols)
    energy = power.sum(0) / _AC
    power *= power
    fourth = power.sum(0) / _AC
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
    """(SCI, local mean of I, local mean of Q) of a strip of NHWC RGB rows, each N,h-3,W-3."""
    yiq = functional.mix_channels(rgb_rows, YIQ)
    return _sci_strip(yiq[..., 0]), _box_mean(yiq[..., 1]), _box_mean(yiq[..., 2])


@functools.lru_cache(maxsize=1)
def _thread_pools() -> ThreadpoolController:
    """The process's BLAS pools (found once: the search scans every loaded library)."""
    return ThreadpoolController()


def scqi(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """SCQI of each pair (1 = identical): local quality SCI similarity x (I x Q similarity)^0.03, pooled with
    weights max(SCI_ref, SCI_dist). BLAS (the colour product) on one thread: a second BLAS thread on a busy
    machine costs more than it saves."""
    with _thread_pools().limit(limits=1, user_api="blas"):
        return _scqi(ref, dist, ref_index)


def _scqi(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None) -> np.ndarray:
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
