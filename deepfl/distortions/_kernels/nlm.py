"""Non-local means denoising as scikit-image computes it (type 15, denoise)."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from deepfl._numba import njit as _njit

_EXP_A = 1512775.3951951856938  # 2^20 / ln 2
_EXP_BC = 1072632447  # 1023 * 2^20 - 60801
_CUTOFF = 5.0  # patch distances above this get weight 0 (exp(-5) < 0.007)


@intrinsic
def _float64_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bit pattern is the int64 `bits` (a register move)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@_njit
def fast_exp(y):
    """Schraudolph's exp approximation as scikit-image's `_fast_exp` computes it: the double whose high 32 bits are
    int32(2^20/ln2 * y) + (1023 * 2^20 - 60801) and low 32 bits are zero (for y in [-700, 0])."""
    return _float64_from_bits((np.int64(np.int32(_EXP_A * y)) + _EXP_BC) << 32)


# Index note: every array index below is a non-negative offset from a row view (j + constant). Numba must
# wrap negative indices, and an index such as `col - 2` it cannot prove non-negative stops vectorisation.


@_njit
def _integral_of_shift(padded, integral, t_row, t_col, var_diff):
    """scikit-image's `_integral_image_2d`: integral[r, c] = sum over channels of (p[r, c] - p[r + t_row,
    c + t_col])^2 - channels * var_diff, plus integral[r - 1, c] + integral[r, c - 1] - integral[r - 1, c - 1],
    for the rows and columns where the shifted pixel exists (other entries keep their earlier values)."""
    n_row, n_col, n_ch = padded.shape
    for row in range(max(1, -t_row), min(n_row, n_row - t_row)):
        here = padded[row]
        there = padded[row + t_row]
        cur = integral[row]
        prev = integral[row - 1]
        for j in range(n_col - t_col - 1):  # column j + 1
            distance = 0.0
            for ch in range(n_ch):
                t = here[j + 1, ch] - there[j + 1 + t_col, ch]
                distance += t * t
            distance -= n_ch * var_diff
            cur[j + 1] = distance + prev[j + 1] + cur[j] - prev[j]


@_njit
def _patch_weights(integral, row, offset, count, h2s2, alpha, out):
    """out[offset + j] = alpha * fast_exp(-distance) for the pixel (row, offset + j), j < count, where distance =
    max(box sum of the integral image around it, 0) / h2s2, or 0 where distance > the cutoff (branch-free)."""
    lo = integral[row - offset]
    hi = integral[row + offset]
    span = 2 * offset
    for j in range(count):
        distance = hi[j + span] + lo[j] - lo[j + span] - hi[j]
        distance = max(distance, 0.0) / h2s2
        weight = alpha * fast_exp(-min(distance, 2.0 * _CUTOFF))
        out[j + offset] = weight if distance <= _CUTOFF else 0.0


@_njit
def _accumulate_shift(padded, wmap, t_row, t_col, weights, result):
    """Adds one shift's pair weights to both pixels of every pair, in the order scikit-image's loop reaches each
    pixel: pixel P gets b = wmap[P] (as the reference of pair (P, P + t), weighted value p[P + t]) and
    a = wmap[P - t] (as the partner of pair (P - t, P), weighted value p[P - t]); the pair (P - t, P) comes first
    in that loop when t points forward in raster order (t_row > 0, or t_row = 0 and t_col > 0), else second."""
    n_row, n_col, n_ch = padded.shape
    forward = t_row > 0 or (t_row == 0 and t_col > 0)
    a_row_shift = abs(t_row)
    for row in range(a_row_shift, n_row - a_row_shift):
        w_b = wmap[row, t_col:]
        w_a = wmap[row - t_row]
        p_b = padded[row + t_row, 2 * t_col :]
        p_a = padded[row - t_row]
        w_out = weights[row, t_col:]
        r_out = result[row, t_col:]
        for j in range(n_col - 2 * t_col):
            a = w_a[j]
            b = w_b[j]
            if forward:
                w_out[j] = (w_out[j] + a) + b
                for ch in range(n_ch):
                    r_out[j, ch] = (r_out[j, ch] + a * p_a[j, ch]) + b * p_b[j, ch]
            else:
                w_out[j] = (w_out[j] + b) + a
                for ch in range(n_ch):
                    r_out[j, ch] = (r_out[j, ch] + b * p_b[j, ch]) + a * p_a[j, ch]


NLM_PATCH = 5  # patch size s and search distance d of the type-15 denoiser: compile-time constants (the kernel
NLM_DISTANCE = 2  # runs faster with constant offsets than with the same values passed as arguments)
_NLM_OFFSET = 2  # NLM_PATCH // 2, as a literal (numba does not fold the division)


@_njit
def nl_means_fast(padded, h, var):
    """Non-local means with integral images over patch shifts (Darbon et al. 2008, Froment 2014) exactly as
    scikit-image's `_fast_nl_means_denoising_2d` with s = NLM_PATCH, d = NLM_DISTANCE (float64): for each shift
    (t_row in -d..d, t_col in 0..d), the s x s patch distance of every pixel pair (P, P + t) is read from the
    integral image of the channel-summed squared difference minus 2*var per channel, divided by
    channels*h^2*s^2; pairs with distance <= 5 get weight alpha * fast_exp(-distance) (alpha 0.5 for t_col = 0),
    added to both pixels' weights and weighted sums. Each pixel receives its additions in scikit-image's order,
    so the sums are the same bit for bit (a pair above the cutoff adds 0, which changes nothing).

    `padded`: the image reflect-padded by s//2 + d + 1 on each side (float64, HxWxC). Returns the normalised
    padded-size result (the caller crops the padding).
    """
    n_row, n_col, n_ch = padded.shape
    offset = _NLM_OFFSET
    pad = offset + NLM_DISTANCE + 1
    weights = np.zeros((n_row, n_col))
    integral = np.zeros((n_row, n_col))
    wmap = np.zeros((n_row, n_col))
    result = np.zeros((n_row, n_col, n_ch))
    h2s2 = n_ch * h * h * NLM_PATCH * NLM_PATCH
    var_diff = var * 2.0
    for t_row in range(-NLM_DISTANCE, NLM_DISTANCE + 1):
        row_start = max(offset, offset - t_row)
        row_end = min(n_row - offset, n_row - offset - t_row)
        for t_col in range(0, NLM_DISTANCE + 1):
            alpha = 0.5 if t_col == 0 else 1.0
            _integral_of_shift(padded, integral, t_row, t_col, var_diff)
            count = n_col - 2 * offset - t_col
            for row in range(n_row):  # pairs (P, P + t) with P in rows row_start.. and columns offset..
                line = wmap[row]
                if row_start <= row < row_end:
                    _patch_weights(integral, row, offset, count, h2s2, alpha, line)
                    for col in range(offset):
                        line[col] = 0.0
                    for col in range(offset + count, n_col):
                        line[col] = 0.0
                else:
                    for col in range(n_col):
                        line[col] = 0.0
            _accumulate_shift(padded, wmap, t_row, t_col, weights, result)
    for row in range(pad, n_row - pad):
        for col in range(pad, n_col - pad):
            for ch in range(n_ch):
                result[row, col, ch] /= weights[row, col]
    return result
