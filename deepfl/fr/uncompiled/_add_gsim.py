"""ADD-GSIM in NumPy (first call with a shape); the reconstruction's conventions are in `deepfl/fr/_add_gsim.py`.

The gray pyramid and the gradients are float32 and exact: gray levels of an integer image halved k times are
multiples of 4^-k, the kernels multiples of 1/16, so every sum below is exact in any order. The GSIM map and
the pooling are float64. Each scale runs in strips of rows (no full-size gradient or quality map is stored):
the rank weighting needs only each bin's count and sum, which strips add up.
"""

from __future__ import annotations

import numpy as np

from deepfl.fr._add_gsim import C_ENTROPY, C_FREQUENCY, C_GRADIENT, NUM_SCALES, P_LUMINANCE, RANK_BINS
from deepfl.fr.uncompiled import functional

_STRIP = 32  # output rows per strip


def _similarity(a: np.ndarray, b: np.ndarray, constant: float) -> np.ndarray:
    return (2.0 * a * b + constant) / (a * a + b * b + constant)


def directional_gradient_strip(padded: np.ndarray, top: int, bottom: int) -> np.ndarray:
    """16 x max over Liu et al.'s four kernels of |correlation| on output rows top..bottom (N,rows,W float32)
    of N,H,W maps padded by 2 with a symmetric border. With the offsets (i, j) of the 5x5 window:
    horizontal = sum_j w_j (x(1,j) - x(3,j)), vertical = sum_i w_i (x(i,1) - x(i,3)), w = 1 3 8 3 1;
    diagonals = A +- B + 8 (x(1,1) - x(3,3)) resp. 8 (x(1,3) - x(3,1)), A = x(0,2) - x(4,2) + 3 (x(1,2) - x(3,2)),
    B = x(2,0) - x(2,4) + 3 (x(2,1) - x(2,3))."""
    width = padded.shape[2] - 4
    rows = bottom - top

    def at(i: int, j: int) -> np.ndarray:
        return padded[:, top + i : bottom + i, j : j + width]

    v2 = padded[:, top + 1 : bottom + 1] - padded[:, top + 3 : bottom + 3]  # rows x (width + 4)
    h2 = padded[:, top : bottom + 4, 1 : width + 1] - padded[:, top : bottom + 4, 3 : width + 3]  # (rows + 4) x width
    horizontal = (v2[:, :, :width] + v2[:, :, 4:]) + 3 * (v2[:, :, 1 : width + 1] + v2[:, :, 3 : width + 3])
    horizontal += 8 * v2[:, :, 2 : width + 2]
    vertical = (h2[:, :rows] + h2[:, 4:]) + 3 * (h2[:, 1 : rows + 1] + h2[:, 3 : rows + 3])
    vertical += 8 * h2[:, 2 : rows + 2]
    gradient = np.maximum(np.abs(horizontal, out=horizontal), np.abs(vertical, out=vertical), out=horizontal)
    a = (at(0, 2) - at(4, 2)) + 3 * v2[:, :, 2 : width + 2]
    b = (at(2, 0) - at(2, 4)) + 3 * h2[:, 2 : rows + 2]
    diagonal = a + b + 8 * (at(1, 1) - at(3, 3))
    np.maximum(gradient, np.abs(diagonal, out=diagonal), out=gradient)
    a -= b
    a += 8 * (at(1, 3) - at(3, 1))
    return np.maximum(gradient, np.abs(a, out=a), out=gradient)


def _gray_entropy(gray: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of the 256-bin histogram of each integer gray image N,H,W -> N."""
    n = len(gray)
    values = gray.reshape(n, -1).astype(np.intp) + 256 * np.arange(n)[:, None]
    counts = np.bincount(values.ravel(), minlength=256 * n).reshape(n, 256).astype(np.float64)
    p = counts / counts.sum(-1, keepdims=True)
    terms = np.zeros_like(p)
    np.multiply(np.log(p, out=terms, where=p > 0) / np.log(2.0), p, out=terms, where=p > 0)
    return -terms.sum(-1)


def _halve(x: np.ndarray) -> np.ndarray:
    """2x2 box average + subsampling by 2 with a symmetric border (an odd last row/column averaged with itself)."""
    if x.shape[1] % 2:
        x = np.concatenate([x, x[:, -1:]], 1)
    if x.shape[2] % 2:
        x = np.concatenate([x, x[:, :, -1:]], 2)
    return ((x[:, 0::2, 0::2] + x[:, 0::2, 1::2]) + (x[:, 1::2, 0::2] + x[:, 1::2, 1::2])) * np.float32(0.25)


def _scale(ref_gray: np.ndarray, dist_gray: np.ndarray, ref_index: np.ndarray | None):
    """Rank-weighted GSIM of one scale (N,) and the mean gradients of references (R,) and distorted images (N,)."""
    pad = ((0, 0), (2, 2), (2, 2))
    ref_padded, dist_padded = np.pad(ref_gray, pad, "symmetric"), np.pad(dist_gray, pad, "symmetric")
    n, height, width = dist_gray.shape
    offsets = (RANK_BINS * np.arange(n))[:, None, None]
    counts = np.zeros(n * RANK_BINS)
    sums = np.zeros(n * RANK_BINS)
    ref_gradient_sum = np.zeros(len(ref_gray))
    dist_gradient_sum = np.zeros(n)
    c = C_GRADIENT * 256.0  # the gradients below are 16 x the kernels' responses
    for top in range(0, height, _STRIP):
        bottom = min(top + _STRIP, height)
        g1 = directional_gradient_strip(ref_padded, top, bottom).astype(np.float64)
        g2 = directional_gradient_strip(dist_padded, top, bottom).astype(np.float64)
        ref_gradient_sum += g1.sum((1, 2))
        dist_gradient_sum += g2.sum((1, 2))
        g1 = functional.take_refs(g1, ref_index)
        x = functional.take_refs(ref_gray[:, top:bottom], ref_index)
        q_gradient = _similarity(g1, g2, c)
        difference = (x - dist_gray[:, top:bottom]).astype(np.float64) / 255.0
        q_luminance = 1.0 - difference * difference
        weight = P_LUMINANCE * q_gradient
        quality = (1.0 - weight) * q_gradient + weight * q_luminance
        index = (quality * RANK_BINS).astype(np.intp)  # floor: quality >= 0
        np.minimum(index, RANK_BINS - 1, out=index)
        if n > 1:
            index += offsets
        counts += np.bincount(index.ravel(), minlength=n * RANK_BINS)
        sums += np.bincount(index.ravel(), weights=quality.ravel(), minlength=n * RANK_BINS)
    counts, sums = counts.reshape(n, RANK_BINS), sums.reshape(n, RANK_BINS)
    mid_rank = np.cumsum(counts, -1) - counts + 0.5 * (counts - 1.0)
    weights = height * width - mid_rank
    pooled = (sums * weights).sum(-1) / (counts * weights).sum(-1)
    pixels = 16.0 * height * width
    return pooled, ref_gradient_sum / pixels, dist_gradient_sum / pixels


def _gray(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2gray of NHWC RGB as N,H,W float32 (integers), in strips of rows (small float64 temporaries), one
    image at a time: a strip of one image is contiguous, as the kernel's one compiled signature expects."""
    gray = np.empty(rgb.shape[:3], np.float32)
    for n in range(len(rgb)):
        for top in range(0, rgb.shape[1], _STRIP):
            gray[n : n + 1, top : top + _STRIP] = functional.rgb2gray(rgb[n : n + 1, top : top + _STRIP])
    return gray


def add_gsim(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """ADD-GSIM of each pair (1 = identical): multi-scale rank-weighted GSIM x FVA x EGM; NaN for a pair holding
    NaN or infinite values (as the other metrics give; its histograms cannot count them)."""
    ref_gray, dist_gray = _gray(ref), _gray(dist)
    ref_ok, dist_ok = np.isfinite(ref_gray).all((1, 2)), np.isfinite(dist_gray).all((1, 2))
    if not (ref_ok.all() and dist_ok.all()):
        scores = add_gsim(*(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0) for x in (ref, dist)), ref_index)
        return np.where(functional.take_refs(ref_ok, ref_index) & dist_ok, scores, np.nan)
    entropy_r, entropy_d = _gray_entropy(ref_gray), _gray_entropy(dist_gray)
    egm = _similarity(functional.take_refs(entropy_r, ref_index), entropy_d, C_ENTROPY)
    log_quality = np.zeros(len(dist))
    for scale in range(NUM_SCALES):
        pooled, gradient_r, gradient_d = _scale(ref_gray, dist_gray, ref_index)
        log_quality += np.log(np.maximum(pooled, 1e-12)) / NUM_SCALES
        if scale == 0:  # FVA: similarity of the mean gradient energies at full resolution
            fva = _similarity(functional.take_refs(gradient_r, ref_index), gradient_d, C_FREQUENCY)
        if scale + 1 < NUM_SCALES:
            ref_gray, dist_gray = _halve(ref_gray), _halve(dist_gray)
    return np.exp(log_quality) * fva * egm
