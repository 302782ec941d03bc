"""Compiled (Numba) per-pixel kernels of the distortions: loops that numpy can only run as many full-image passes.

Every kernel implements exactly the maths of the numpy code it replaced, in the same floating-point order where
the output must stay byte-identical (tests/test_distortions.py compares each one with the plain numpy maths).
Kernels are compiled on first use and cached on disk (`cache=True`: `__pycache__` beside this file, or
NUMBA_CACHE_DIR); where no cache location is writable they are compiled per process instead of failing. No
kernel is parallel: the generator already runs one process per core.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from deepfl._numba import njit as _njit


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
    resampling of the contiguous HxWx3 float32 `image` at (y - dy, x - dx) with replicated edges (MATLAB's bicubic
    kernel).

    The sums run over j first, then over i, left to right, as the numpy implementation did (same float32 values).
    Clamped flat offsets are unsigned, so numba adds no negative-index wrapping (25% faster).
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
                acc = (flat[ra + ca + k] * wx0 + flat[ra + cb + k] * wx1 + flat[ra + cc + k] * wx2
                       + flat[ra + cd + k] * wx3) * wy0
                acc = acc + (flat[rb + ca + k] * wx0 + flat[rb + cb + k] * wx1 + flat[rb + cc + k] * wx2
                             + flat[rb + cd + k] * wx3) * wy1
                acc = acc + (flat[rc + ca + k] * wx0 + flat[rc + cb + k] * wx1 + flat[rc + cc + k] * wx2
                             + flat[rc + cd + k] * wx3) * wy2
                acc = acc + (flat[rd + ca + k] * wx0 + flat[rd + cb + k] * wx1 + flat[rd + cc + k] * wx2
                             + flat[rd + cd + k] * wx3) * wy3
                flat_out[base + k] = acc


# ---------------------------------------------------------------------------------------- input and output maps


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


# ---------------------------------------------------------------------------------------------- denoise (15)

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
# wrap negative indices, and an index such as `col - 2` it cannot prove non-negative stops vectorisation
# (measured 15x slower on the patch-weight loop).


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
        p_b = padded[row + t_row, 2 * t_col:]
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
NLM_DISTANCE = 2  # runs 2x faster with constant offsets than with the same values passed as arguments)
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


# ------------------------------------------------------------------------------ normal draws (types 11, 12, 15, 19)

_U8 = np.uint64(0xFF)
_U52 = np.uint64(0x000FFFFFFFFFFFFF)
_ONE = np.uint64(1)
_F_HALF = np.float32(0.5)


@_njit
def normals_f64(raw, ki, wi, fi, r, inv_r, out):
    """numpy's float64 `standard_normal` (Marsaglia-Tsang ziggurat, 256 layers) from its stream of 64-bit words
    `raw` (one word per draw, plus two per tail try, xx = -log1p(-u) / r, and one per wedge test;
    u = (word >> 11) * 2^-53);
    fills `out` and returns the number of words used, or -1 if `raw` ran out."""
    pos = 0
    n = raw.size
    for i in range(out.size):
        while True:
            if pos >= n:
                return -1
            bits = raw[pos]
            pos += 1
            idx = np.int64(bits & _U8)
            bits = bits >> np.uint64(8)
            rabs = (bits >> _ONE) & _U52
            x = np.float64(rabs) * wi[idx]
            if bits & _ONE:
                x = -x
            if rabs < ki[idx]:
                out[i] = x
                break
            if idx == 0:  # the tail beyond r
                done = False
                while not done:
                    if pos + 2 > n:
                        return -1
                    xx = -inv_r * np.log1p(-(np.float64(raw[pos] >> np.uint64(11)) * (1.0 / 9007199254740992.0)))
                    yy = -np.log1p(-(np.float64(raw[pos + 1] >> np.uint64(11)) * (1.0 / 9007199254740992.0)))
                    pos += 2
                    if yy + yy > xx * xx:
                        out[i] = -(r + xx) if (rabs >> np.uint64(8)) & _ONE else r + xx
                        done = True
                break
            if pos >= n:
                return -1
            u = np.float64(raw[pos] >> np.uint64(11)) * (1.0 / 9007199254740992.0)
            pos += 1
            if (fi[idx - 1] - fi[idx]) * u + fi[idx] < np.exp(-0.5 * x * x):
                out[i] = x
                break
    return pos


@_njit
def normals_f32(words, ki, wi, fi, r, inv_r, out):
    """numpy's float32 `standard_normal` (ziggurat with 23-bit float tables) from its stream of 32-bit words
    `words` (PCG64 gives the low then the high half of each 64-bit output; u = (word >> 8) * 2^-24, tail tries
    xx = -log1pf(-u) / r, wedge test against exp(-x^2 / 2) in double); fills
    `out` and returns the number of words used, or -1 if `words` ran out."""
    pos = 0
    n = words.size
    for i in range(out.size):
        while True:
            if pos >= n:
                return -1
            bits = words[pos]
            pos += 1
            idx = np.int64(bits & np.uint32(0xFF))
            rabs = (bits >> np.uint32(9)) & np.uint32(0x007FFFFF)
            x = np.float32(rabs) * wi[idx]
            if (bits >> np.uint32(8)) & np.uint32(1):
                x = -x
            if rabs < ki[idx]:
                out[i] = x
                break
            if idx == 0:
                done = False
                while not done:
                    if pos + 2 > n:
                        return -1
                    u1 = np.float32(words[pos] >> np.uint32(8)) * np.float32(1.0 / 16777216.0)
                    u2 = np.float32(words[pos + 1] >> np.uint32(8)) * np.float32(1.0 / 16777216.0)
                    pos += 2
                    xx = -inv_r * np.log1p(-u1)
                    yy = -np.log1p(-u2)
                    if yy + yy > xx * xx:
                        out[i] = -(r + xx) if (rabs >> np.uint32(8)) & np.uint32(1) else r + xx
                        done = True
                break
            if pos >= n:
                return -1
            u = np.float32(words[pos] >> np.uint32(8)) * np.float32(1.0 / 16777216.0)
            pos += 1
            if np.float64((fi[idx - 1] - fi[idx]) * u + fi[idx]) < np.exp(-0.5 * np.float64(x) * np.float64(x)):
                out[i] = x
                break
    return pos


# ------------------------------------------------------------------------------------- Gaussian filtering (1, 4, 5, 24)


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
            inner = dst[lo * nc:hi * nc]  # interior: both neighbours inside the row (views, so that every
            left = src[lo * nc - step:hi * nc - step]  # index is a non-negative j and the loop vectorises)
            right = src[lo * nc + step:hi * nc + step]
            for j in range(inner.size):
                inner[j] += (left[j] + right[j]) * wk
            for col in range(hi, w):
                for c in range(nc):
                    dst[col * nc + c] += (src[max(col - k, 0) * nc + c] + src[(w - 1) * nc + c]) * wk


# ---------------------------------------------------------------------------------------------- pixelate (21)


@_njit
def gather_rows_cols(x, rows, cols, out):
    """out[r, c, :] = x[rows[r], cols[c], :] (a nearest-neighbour resampling given per-axis source indices)."""
    for r in range(rows.size):
        src = x[rows[r]]
        dst = out[r]
        for c in range(cols.size):
            for k in range(x.shape[2]):
                dst[c, k] = src[cols[c], k]


# --------------------------------------------------------------------------------------- impulse and speckle (13, 14)


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
