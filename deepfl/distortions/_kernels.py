"""Compiled (Numba) per-pixel kernels of the distortions: loops that numpy can only run as many full-image passes.

Every kernel implements exactly the maths of the numpy code it replaced, in the same floating-point order where
the output must stay byte-identical (tests/test_distortions.py compares each one with the plain numpy maths).
Kernels are compiled on first use and cached on disk (`cache=True`: `__pycache__` beside this file, or
NUMBA_CACHE_DIR); where no cache location is writable they are compiled per process instead of failing. No
kernel is parallel: the generator already runs one process per core.
"""

from __future__ import annotations

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


# ---------------------------------------------------------------------------------------------- denoise (15)

_EXP_A = 1512775.3951951856938  # 2^20 / ln 2
_EXP_BC = 1072632447  # 1023 * 2^20 - 60801
_POW2 = np.ldexp(1.0, np.arange(1024) - 1023)  # 2^(e - 1023) for the biased exponents e of results <= 1


@_njit
def fast_exp(y):
    """Schraudolph's exp approximation as scikit-image's `_fast_exp` computes it: the double whose high 32 bits are
    int32(2^20/ln2 * y) + (1023 * 2^20 - 60801) and low 32 bits are zero (for y in [-700, 0])."""
    high = np.int64(np.int32(_EXP_A * y)) + _EXP_BC
    return (1.0 + (high & 0xFFFFF) * (1.0 / 1048576.0)) * _POW2[high >> 20]


@_njit
def _integral_of_shift(padded, integral, t_row, t_col, var_diff):
    """scikit-image's `_integral_image_2d`: integral[r, c] = sum over channels of (p[r, c] - p[r + t_row,
    c + t_col])^2 - channels * var_diff, plus integral[r - 1, c] + integral[r, c - 1] - integral[r - 1, c - 1],
    for the rows and columns where the shifted pixel exists (other entries keep their earlier values)."""
    n_row, n_col, n_ch = padded.shape
    for row in range(max(1, -t_row), min(n_row, n_row - t_row)):
        for col in range(1, n_col - t_col):
            distance = 0.0
            for ch in range(n_ch):
                t = padded[row, col, ch] - padded[row + t_row, col + t_col, ch]
                distance += t * t
            distance -= n_ch * var_diff
            integral[row, col] = (distance + integral[row - 1, col] + integral[row, col - 1]
                                  - integral[row - 1, col - 1])


@_njit
def nl_means_fast(padded, s, d, h, var):
    """Non-local means with integral images over patch shifts (Darbon et al. 2008, Froment 2014) exactly as
    scikit-image's `_fast_nl_means_denoising_2d` (float64): for each shift (t_row in -d..d, t_col in 0..d), the
    s x s patch distance of every pixel pair is read from the integral image of the channel-summed squared
    difference minus 2*var per channel, divided by channels*h^2*s^2; pairs with distance <= 5 get weight
    alpha * fast_exp(-distance) (alpha 0.5 for t_col = 0) added to both pixels' weights and weighted sums.

    `padded`: the image reflect-padded by s//2 + d + 1 on each side (float64, HxWxC). Returns the normalised
    padded-size result (the caller crops the padding). Same loop order, so the same values.
    """
    n_row, n_col, n_ch = padded.shape
    offset = s // 2
    pad = offset + d + 1
    weights = np.zeros((n_row, n_col))
    integral = np.zeros((n_row, n_col))
    result = np.zeros((n_row, n_col, n_ch))
    h2s2 = n_ch * h * h * s * s
    var_diff = var * 2.0
    for t_row in range(-d, d + 1):
        row_start = max(offset, offset - t_row)
        row_end = min(n_row - offset, n_row - offset - t_row)
        for t_col in range(0, d + 1):
            alpha = 0.5 if t_col == 0 else 1.0
            _integral_of_shift(padded, integral, t_row, t_col, var_diff)
            for row in range(row_start, row_end):
                row_shift = row + t_row
                for col in range(offset, n_col - offset - t_col):
                    distance = (integral[row + offset, col + offset] + integral[row - offset, col - offset]
                                - integral[row - offset, col + offset] - integral[row + offset, col - offset])
                    distance = max(distance, 0.0) / h2s2
                    if distance > 5.0:
                        continue
                    col_shift = col + t_col
                    weight = alpha * fast_exp(-distance)
                    weights[row, col] += weight
                    weights[row_shift, col_shift] += weight
                    for ch in range(n_ch):
                        result[row, col, ch] += weight * padded[row_shift, col_shift, ch]
                        result[row_shift, col_shift, ch] += weight * padded[row, col, ch]
    for row in range(pad, n_row - pad):
        for col in range(pad, n_col - pad):
            for ch in range(n_ch):
                result[row, col, ch] /= weights[row, col]
    return result


# -------------------------------------------------------------------------------------- Lab conversions (4, 8, 16, 24)


@_njit
def mix_levels(table, pixels, matrix, out):
    """out[k, y, x] = ((t[p0] * m[k, 0]) + (t[p1] * m[k, 1])) + (t[p2] * m[k, 2]) with t = `table` (a per-level
    function such as sRGB linearisation) and p = pixels[y, x] (HxWx3 uint8): the 3x3 colour mix on
    looked-up values, written as 3 planes."""
    h, w, _ = pixels.shape
    for y in range(h):
        for x in range(w):
            r = table[pixels[y, x, 0]]
            g = table[pixels[y, x, 1]]
            b = table[pixels[y, x, 2]]
            for k in range(3):
                out[k, y, x] = r * matrix[k, 0] + g * matrix[k, 1] + b * matrix[k, 2]


@_njit
def mix_pixels(rgb, matrix, out):
    """out[k, y, x] = ((rgb[y, x, 0] * m[k, 0]) + (rgb[y, x, 1] * m[k, 1])) + (rgb[y, x, 2] * m[k, 2])."""
    h, w, _ = rgb.shape
    for y in range(h):
        for x in range(w):
            for k in range(3):
                out[k, y, x] = rgb[y, x, 0] * matrix[k, 0] + rgb[y, x, 1] * matrix[k, 1] + rgb[y, x, 2] * matrix[k, 2]


@_njit
def lab_from_cbrt(xyz, f, eps, kappa, lab):
    """CIE Lab from normalised XYZ planes and their cube roots `f`: f_k = (kappa * xyz_k + 16) / 116 where
    xyz_k <= eps, then L = 116 f_y - 16, a = 500 (f_x - f_y), b = 200 (f_y - f_z) into HxWx3 `lab`."""
    _, h, w = xyz.shape
    for y in range(h):
        for x in range(w):
            fx = f[0, y, x]
            fy = f[1, y, x]
            fz = f[2, y, x]
            if xyz[0, y, x] <= eps:
                fx = (kappa * xyz[0, y, x] + 16.0) / 116.0
            if xyz[1, y, x] <= eps:
                fy = (kappa * xyz[1, y, x] + 16.0) / 116.0
            if xyz[2, y, x] <= eps:
                fz = (kappa * xyz[2, y, x] + 16.0) / 116.0
            lab[y, x, 0] = 116.0 * fy - 16.0
            lab[y, x, 1] = 500.0 * (fx - fy)
            lab[y, x, 2] = 200.0 * (fy - fz)


@_njit
def _inverse_f(t, eps, kappa):
    cube = t * t * t
    if cube <= eps:
        cube = (116.0 * t - 16.0) / kappa
    return cube


@_njit
def linear_from_lab(lab, matrix, eps, kappa, clip, out):
    """Linear RGB planes from HxWx3 Lab (MATLAB `lab2rgb` before companding): f_y = (L + 16) / 116,
    f_x = f_y + a / 500, f_z = f_y - b / 200; X, Z = f^3, or (116 f - 16) / kappa where f^3 <= eps; Y = f_y^3, or
    L / kappa where L <= kappa * eps; then the 3x3 mix `matrix` and, with `clip`, clipping to [0, 1]."""
    h, w, _ = lab.shape
    for y in range(h):
        for x in range(w):
            lum = lab[y, x, 0]
            fy = (lum + 16.0) / 116.0
            cx = _inverse_f(fy + lab[y, x, 1] / 500.0, eps, kappa)
            cz = _inverse_f(fy - lab[y, x, 2] / 200.0, eps, kappa)
            cy = fy * fy * fy
            if lum <= kappa * eps:
                cy = lum / kappa
            for k in range(3):
                v = cx * matrix[k, 0] + cy * matrix[k, 1] + cz * matrix[k, 2]
                if clip:
                    v = min(max(v, 0.0), 1.0)
                out[k, y, x] = v


@_njit
def compand(lin, powered, out):
    """sRGB companding from linear planes and their powers lin^(1/2.4) (or |lin|^(1/2.4)): 12.92 lin where
    lin <= 0.0031308, else 1.055 p - 0.055; written interleaved into HxWx3 `out`."""
    _, h, w = lin.shape
    for y in range(h):
        for x in range(w):
            for k in range(3):
                v = lin[k, y, x]
                out[y, x, k] = 12.92 * v if v <= 0.0031308 else powered[k, y, x] * 1.055 - 0.055
