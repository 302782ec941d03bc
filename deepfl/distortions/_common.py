"""Shared maths of the KADID-10k distortions, each following the MATLAB function the official code calls.

Images here are float64 HxWx3 arrays in [0, 1] (the official code works on doubles after `mapmm`). Filters use
replicate padding where MATLAB's `imgaussfilt`/`imfilter(..., 'replicate')` do; colour spaces follow MATLAB's
`rgb2lab`/`lab2rgb` (sRGB, D65), `rgb2hsv`/`hsv2rgb`, `rgb2ycbcr`/`ycbcr2rgb` and `rgb2gray` definitions.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from scipy import fft as sfft
from numba.np.random import _constants as _zig
from scipy import ndimage

from deepfl.distortions import _kernels

# ---------------------------------------------------------------------------------------------- range mapping


def mapmm(x: np.ndarray) -> np.ndarray:
    """MATLAB `mapmm`: maps the global min and max of `x` to 0 and 1 (a constant array is returned as is)."""
    x = np.asarray(x, dtype=np.float64)
    lo = float(x.min())
    hi = float(x.max())
    if lo < hi:
        return (x - lo) * (1.0 / (hi - lo))
    return x


class Source(NamedTuple):
    """The uint8 input of `distort` and the value of each of its 256 levels after `mapmm` (x == levels[pixels]).

    Any per-sample function of x can then be evaluated on the 256 levels and looked up (`apply`), which gives
    the same values as evaluating it on every sample, at a fraction of the cost.
    """

    pixels: np.ndarray
    levels: np.ndarray

    def apply(self, function: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """function(x) for a per-sample (elementwise) `function`, through a 256-entry table."""
        return take_levels(function(self.levels), self.pixels)


def take_levels(table: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """`np.take(table, pixels)` for a 256-entry table and uint8 pixels, in one compiled pass."""
    pixels = np.ascontiguousarray(pixels)
    table = np.ascontiguousarray(table)
    out = np.empty(pixels.shape, dtype=table.dtype)
    _kernels.lookup(table, pixels.reshape(-1), out.reshape(-1))
    return out


def input_levels(image: np.ndarray) -> np.ndarray:
    """The float64 value `mapmm(double(image))` gives each uint8 level 0..255 (x/255 for a constant image).

    Levels absent from the image (below its min or above its max) are clamped to [0, 1]; they are never used.
    """
    lo, hi = float(image.min()), float(image.max())
    levels = np.arange(256, dtype=np.float64)
    if lo < hi:
        return np.clip((levels - lo) * (1.0 / (hi - lo)), 0.0, 1.0)
    return levels / 255.0  # MATLAB leaves a constant image as is: treat as im2double


def mapmm_to_uint8(x: np.ndarray) -> np.ndarray:
    """`to_double_uint8_roundtrip(mapmm(x))` with the same float64 arithmetic: numpy's min and max, then one
    compiled pass (map + round + clip)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty(x.shape, dtype=np.uint8)
    if x.size == 0:
        return out
    lo, hi = float(x.min()), float(x.max())
    if lo < hi:
        _kernels.scale_round_uint8(x.reshape(-1), lo, 1.0 / (hi - lo), out.reshape(-1))
    else:
        _kernels.round_uint8(x.reshape(-1), out.reshape(-1))
    return out


def truncate(x: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """MATLAB `truncate`: clips to [lo, hi]."""
    return np.clip(x, lo, hi)


def matlab_round(x):
    """MATLAB `round`: halves away from zero (numpy rounds halves to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


# ------------------------------------------------------------------------------------------------ random draws


def standard_normal(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """`rng.standard_normal(shape, dtype=dtype)`: the same values, and `rng` left in the same state, 2-3x faster.

    For numpy's default bit generator (PCG64) the raw 64-bit words are drawn in bulk (`random_raw`) and a compiled
    copy of numpy's ziggurat turns them into normals; the generator is then set to just after the words used
    (`advance`, plus the buffered upper half-word the float32 path leaves). Other bit generators: numpy itself.
    """
    bits = rng.bit_generator
    dtype = np.dtype(dtype)
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1)
    if type(bits) is not np.random.PCG64 or dtype not in (np.float32, np.float64) or flat.size == 0:
        return rng.standard_normal(shape, dtype=dtype)
    start = bits.state
    extra = 64 + flat.size // 32
    while True:
        if dtype == np.float64:
            raw = bits.random_raw(flat.size + extra)
            used = _kernels.normals_f64(raw, _zig.ki_double, _zig.wi_double, _zig.fi_double, _zig.ziggurat_nor_r,
                                        _zig.ziggurat_nor_inv_r, flat)
            words = used
        else:
            raw = bits.random_raw(flat.size // 2 + extra)
            half = np.empty(2 * raw.size + 1, dtype=np.uint32)
            half[0] = start["uinteger"]
            half[1:] = raw.view(np.uint32)  # PCG64's next32: the low half of a word, then its high half
            skip = 0 if start["has_uint32"] else 1
            used = _kernels.normals_f32(half[skip:], _zig.ki_float, _zig.wi_float, _zig.fi_float,
                                        _zig.ziggurat_nor_r_f, _zig.ziggurat_nor_inv_r_f, flat)
            last = skip + used - 1  # index in `half` of the last half-word used
            words = (last - 1) // 2 + 1 if last >= 1 else 0
            # numpy's next32 keeps the high half of its last 64-bit word (pending when only the low half was used)
            pending = last >= 1 and last % 2 == 1
            high = int(half[last + 1] if pending else half[last]) if last >= 1 else start["uinteger"]
        bits.state = start
        if used >= 0:
            break
        extra *= 4  # rare: more rejections than the margin allowed; draw again with a larger one
    bits.advance(words)
    state = bits.state
    if dtype == np.float64:
        state["has_uint32"], state["uinteger"] = start["has_uint32"], start["uinteger"]
    else:
        state["has_uint32"], state["uinteger"] = int(pending), high
    bits.state = state
    return out


# ------------------------------------------------------------------------------------------------- filtering


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """1-D normalised Gaussian; default length 2*ceil(2*sigma)+1 as in MATLAB `imgaussfilt`."""
    if size is None:
        size = 2 * int(np.ceil(2 * sigma)) + 1
    half = (size - 1) / 2.0
    t = np.arange(size) - half
    k = np.exp(-(t * t) / (2.0 * sigma * sigma))
    return k / k.sum()


_FFT_TAPS = 101  # kernels longer than this go through FFTs (the compiled direct filter is faster up to ~100 taps)


def gaussian_filter(x: np.ndarray, sigma: float, size: int | None = None) -> np.ndarray:
    """MATLAB `imgaussfilt(x, sigma)`: separable Gaussian per channel, replicate padding.

    Compiled row and column passes with `ndimage.correlate1d`'s order of operations (identical values, 3-5x
    faster). Kernels over `_FFT_TAPS` long (sigma > 25, unused by the 25 types) go through real FFTs along each
    axis (the same result to ~1e-15 relative).
    """
    k = gaussian_kernel(sigma, size)
    if k.size > _FFT_TAPS:
        return _fft_correlate1d(_fft_correlate1d(x, k, 0), k, 1)
    x = np.ascontiguousarray(x, dtype=np.float64)
    planes = x.reshape(x.shape[0], x.shape[1], -1)  # HxWxC (C = 1 for a single plane)
    rows = np.empty_like(planes)
    out = np.empty_like(planes)
    _kernels.correlate_rows(planes.reshape(x.shape[0], -1), k, rows.reshape(x.shape[0], -1))
    _kernels.correlate_columns(rows, k, out)
    return out.reshape(x.shape)


def _fft_correlate1d(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """`ndimage.correlate1d(x, kernel, axis, mode='nearest')` for an odd-length kernel, through real FFTs."""
    r = kernel.size // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    padded = np.pad(x, pad, mode="edge")
    n = x.shape[axis]
    length = sfft.next_fast_len(n + 2 * r, real=True)  # circular wrap only touches the discarded outputs
    spec = sfft.rfft(padded, length, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    spec *= sfft.rfft(kernel[::-1], length).reshape(shape)
    full = sfft.irfft(spec, length, axis=axis)
    return np.take(full, np.arange(2 * r, 2 * r + n), axis=axis)


def filter2d_replicate(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB `imfilter(x, kernel, 'replicate', 'same')` (correlation) per channel, via FFT for large kernels."""
    kh, kw = kernel.shape
    # imfilter's centre is floor((size + 1) / 2) (1-based): pad so that 'valid' output keeps the input size.
    top, left = (kh - 1) // 2, (kw - 1) // 2
    bottom, right = kh - 1 - top, kw - 1 - left
    pad = ((top, bottom), (left, right)) + ((0, 0),) * (x.ndim - 2)
    padded = np.pad(x, pad, mode="edge")
    if kh * kw <= 9:
        return ndimage.correlate(padded, kernel if x.ndim == 2 else kernel[:, :, None], mode="constant")[
            top:top + x.shape[0], left:left + x.shape[1]]
    return _fft_valid_convolve(padded, kernel[::-1, ::-1])


def _fft_valid_convolve(padded: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'valid' 2-D convolution of each channel of `padded` with `kernel` through real FFTs in float32.

    float32 transforms are 1.6x faster than float64; the distorted images differ from float64 ones in a few
    samples in 10^5 by one 8-bit level (PSNR > 90 dB for lens blur).
    """
    kh, kw = kernel.shape
    ph, pw = padded.shape[:2]
    shape = (sfft.next_fast_len(ph, real=True), sfft.next_fast_len(pw, real=True))
    spec = sfft.rfft2(padded.astype(np.float32), shape, axes=(0, 1))
    kspec = sfft.rfft2(kernel.astype(np.float32), shape)
    if padded.ndim == 3:
        kspec = kspec[:, :, None]
    spec *= kspec
    full = sfft.irfft2(spec, shape, axes=(0, 1))
    return full[kh - 1:ph, kw - 1:pw].astype(np.float64)


def disk_kernel(radius: float) -> np.ndarray:
    """MATLAB `fspecial('disk', r)`: each weight is the area of its pixel square covered by a disk of radius r.

    The area is integrated numerically (fine sampling along x of the clipped chord height), which is the exact
    coverage MATLAB's closed form approximates.
    """
    crad = int(np.ceil(radius - 0.5))
    n = 2 * crad + 1
    samples = 400
    # Sub-sample x positions inside each pixel column (midpoint rule) and integrate the covered height exactly.
    offsets = (np.arange(samples) + 0.5) / samples - 0.5
    centers = np.arange(-crad, crad + 1, dtype=np.float64)
    xs = (centers[:, None] + offsets[None, :]).ravel()  # (n*samples,)
    half_chord = np.sqrt(np.maximum(radius * radius - xs * xs, 0.0))
    lo = centers[:, None] - 0.5  # pixel row bounds (n, 1)
    hi = centers[:, None] + 0.5
    covered = np.clip(np.minimum(hi, half_chord[None, :]) - np.maximum(lo, -half_chord[None, :]), 0.0, 1.0)
    area = covered.reshape(n, n, samples).mean(axis=2)  # rows = y, cols = x
    area = (area + area.T) / 2.0  # the true coverage is symmetric; averaging cancels the sampling bias
    return area / area.sum()


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """MATLAB `fspecial('motion', len, theta)`: a 1-pixel-wide anti-aliased line of `length` at `angle` degrees.

    Follows MATLAB's construction: weights are 1 minus the distance to the line segment (clipped at 0), with the
    segment ends rounded off at half the length; normalised to sum 1.
    """
    eps = np.finfo(np.float64).eps
    length = max(1.0, float(length))
    half = (length - 1.0) / 2.0
    phi = np.mod(angle, 180.0) / 180.0 * np.pi
    cosphi, sinphi = np.cos(phi), np.sin(phi)
    xsign = 1 if cosphi >= 0 else -1  # MATLAB sign(0) = 0 never happens here: phi in [0, pi)
    linewdt = 1.0
    sx = int(np.fix(half * cosphi + linewdt * xsign - length * eps))
    sy = int(np.fix(half * sinphi + linewdt - length * eps))
    xr = np.arange(0, sx + xsign, xsign) if sx * xsign >= 0 else np.array([0])
    yr = np.arange(0, sy + 1)
    x, y = np.meshgrid(xr.astype(np.float64), yr.astype(np.float64))
    dist2line = y * cosphi - x * sinphi
    rad = np.sqrt(x * x + y * y)
    last = (rad >= half) & (np.abs(dist2line) <= linewdt)
    if np.any(last):
        with np.errstate(divide="ignore", invalid="ignore"):
            x2last = half - np.abs((x[last] + dist2line[last] * sinphi) / cosphi)
        dist2line[last] = np.sqrt(dist2line[last] ** 2 + x2last ** 2)
    dist2line = linewdt + eps - np.abs(dist2line)
    dist2line[dist2line < 0] = 0
    quarter = dist2line
    rotated = np.rot90(quarter, 2)
    h = np.zeros((2 * quarter.shape[0] - 1, 2 * quarter.shape[1] - 1))
    h[:rotated.shape[0], :rotated.shape[1]] = rotated
    h[rotated.shape[0] - 1:, rotated.shape[1] - 1:] = quarter
    h = h / (h.sum() + eps * length * length)
    if cosphi > 0:
        h = np.flipud(h)
    return h


# --------------------------------------------------------------------------------------------- colour spaces

_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])  # MATLAB whitepoint('d65')
_XYZ_TO_SRGB = np.linalg.inv(_SRGB_TO_XYZ)
_LAB_EPS = 216.0 / 24389.0
_LAB_KAPPA = 24389.0 / 27.0


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB companding undone (the first step of MATLAB `rgb2lab`)."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


_RGB_TO_XYZN = _SRGB_TO_XYZ / _WHITE_D65[:, None]  # XYZ normalised by the white point
_XYZN_TO_RGB = _XYZ_TO_SRGB * _WHITE_D65[None, :]


def rgb2lab(rgb: np.ndarray, source: Source | None = None) -> np.ndarray:
    """MATLAB `rgb2lab` (sRGB, D65): L in [0, 100], a/b unbounded.

    With `source` (rgb == source.levels[source.pixels]) the companding runs on the 256 levels only. The colour
    mix and the Lab formulas are compiled per-pixel passes around one vectorised cube root (same values as the
    plane-by-plane numpy maths).
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim == 1:  # a single colour
        return rgb2lab(rgb[None])[0]
    xyz = np.empty((3,) + rgb.shape[:-1], dtype=np.float64)
    if source is not None:
        table = srgb_to_linear(source.levels)
        _kernels.mix_levels(table, _as_image(source.pixels), _RGB_TO_XYZN, _as_planes(xyz))
    else:
        _kernels.mix_pixels(_as_image(srgb_to_linear(rgb)), _RGB_TO_XYZN, _as_planes(xyz))
    lab = np.empty(rgb.shape, dtype=np.float64)
    _kernels.lab_from_cbrt(_as_planes(xyz), _as_planes(np.cbrt(xyz)), _LAB_EPS, _LAB_KAPPA, _as_image(lab))
    return lab


def _as_image(x: np.ndarray) -> np.ndarray:
    """A contiguous ...x3 array as HxWx3 (1-D pixel lists become 1xNx3)."""
    x = np.ascontiguousarray(x)
    return x.reshape(1, -1, 3) if x.ndim == 2 else x.reshape(-1, x.shape[-2], 3)


def _as_planes(x: np.ndarray) -> np.ndarray:
    """A contiguous 3x... array of planes as 3xHxW."""
    return x.reshape(3, 1, -1) if x.ndim == 2 else x.reshape(3, -1, x.shape[-1])


def lab2rgb(lab: np.ndarray, clip: bool = False) -> np.ndarray:
    """MATLAB `lab2rgb` (sRGB, D65) for double input.

    Not clipped by default (callers `truncate` as the original does); `clip=True` gives `truncate(lab2rgb(lab))`
    faster, by clipping the linear values before companding (monotone, so the same up to rounding). Compiled
    per-pixel passes around one vectorised power.
    """
    lab = np.asarray(lab, dtype=np.float64)
    if lab.ndim == 1:  # a single colour
        return lab2rgb(lab[None], clip)[0]
    lin = np.empty((3,) + lab.shape[:-1], dtype=np.float64)
    _kernels.linear_from_lab(_as_image(lab), _XYZN_TO_RGB, _LAB_EPS, _LAB_KAPPA, bool(clip), _as_planes(lin))
    with np.errstate(invalid="ignore"):
        powered = np.power(lin if clip else np.abs(lin), 1.0 / 2.4)
    out = np.empty(lab.shape, dtype=np.float64)
    _kernels.compand(_as_planes(lin), _as_planes(powered), _as_image(out))
    return out


def rgb2hsv(rgb: np.ndarray) -> np.ndarray:
    """MATLAB `rgb2hsv` for doubles: H and S in [0, 1], V = max channel."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    delta = v - rgb.min(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(v > 0, delta / v, 0.0)
        safe = np.where(delta > 0, delta, 1.0)
        h = np.where(r == v, (g - b) / safe, np.where(g == v, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = np.where(delta > 0, h / 6.0, 0.0)
    h = np.where(h < 0, h + 1.0, h)
    return np.stack([h, s, v], axis=-1)


def hsv2rgb(hsv: np.ndarray) -> np.ndarray:
    """MATLAB `hsv2rgb`: sector formula, linear in S (so negative saturations extrapolate like MATLAB)."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    h6 = 6.0 * h
    k = np.floor(h6)
    frac = h6 - k
    k = np.where(k >= 6, 0, k).astype(np.int8)
    # Per sector, each channel is v*(1 - s*m) with m in {0, 1, frac, 1-frac}: pick m per channel and pixel.
    choices = np.stack([np.zeros_like(h), np.ones_like(h), frac, 1.0 - frac])
    # m index per sector for r, g, b: 0 -> 0, 1 -> 1, 2 -> frac, 3 -> 1-frac
    table = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]], dtype=np.int8)
    out = np.empty(hsv.shape, dtype=np.float64)
    for ch in range(3):
        m = np.take_along_axis(choices, table[k, ch][None].astype(np.int64), axis=0)[0]
        out[..., ch] = v * (1.0 - s * m)
    return out


_YCBCR = np.array([[65.481, 128.553, 24.966],
                   [-37.797, -74.203, 112.0],
                   [112.0, -93.786, -18.214]]) / 255.0
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
_YCBCR_INV = np.linalg.inv(_YCBCR)


def rgb2ycbcr(rgb: np.ndarray) -> np.ndarray:
    """MATLAB `rgb2ycbcr` for doubles (ITU-R BT.601, Y in [16, 235]/255)."""
    return rgb @ _YCBCR.T + _YCBCR_OFFSET


def ycbcr2rgb(ycc: np.ndarray) -> np.ndarray:
    """MATLAB `ycbcr2rgb` for doubles, clipped to [0, 1] as MATLAB does for floating-point output."""
    return np.clip((ycc - _YCBCR_OFFSET) @ _YCBCR_INV.T, 0.0, 1.0)


_GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])  # MATLAB rgb2gray on doubles


def rgb2gray(rgb: np.ndarray) -> np.ndarray:
    """MATLAB `rgb2gray` for doubles (exact weights, no rounding)."""
    return rgb @ _GRAY


# ----------------------------------------------------------------------------------------------- tone curves


def lookup_uniform(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Linear interpolation in a table sampled uniformly on [0, 1] (values outside are clamped to the ends).

    Much faster than `np.interp` (no binary search): the cell index is computed directly.
    """
    n = table.size - 1
    pos = np.clip(x, 0.0, 1.0) * n
    idx = np.minimum(pos.astype(np.int32), n - 1)
    frac = pos - idx
    lo = table[idx]
    return lo + (table[idx + 1] - lo) * frac


_CURVE_TABLE = 8193  # samples of the tone curve on [0, 1]; linear interpolation error < 1e-8


def curves(x: np.ndarray, coef) -> np.ndarray:
    """The official `curves`: a not-a-knot spline tone curve through (0,0), control points, (1,1), clipped.

    MATLAB `spline` with not-a-knot ends (3 points: the interpolating parabola). The curve is tabulated
    finely and interpolated linearly, which is 8x faster than evaluating the spline per pixel.
    """
    from scipy.interpolate import CubicSpline

    coef = np.atleast_1d(np.asarray(coef, dtype=np.float64))
    if coef.size == 1:
        xs = np.array([0.0, 0.5, 1.0])
        ys = np.array([0.0, coef[0], 1.0])
    elif coef.size == 2:
        xs = np.array([0.0, 0.3, 0.5, 0.7, 1.0])
        ys = np.array([0.0, coef[0], 0.5, coef[1], 1.0])
    else:
        raise ValueError(f"coef: expected 1 or 2 control values, got {coef.size}")
    grid = np.linspace(0.0, 1.0, _CURVE_TABLE)
    if xs.size == 3:
        table = np.polyval(np.polyfit(xs, ys, 2), grid)
    else:
        table = CubicSpline(xs, ys, bc_type="not-a-knot")(grid)
    x = np.asarray(x, dtype=np.float64)
    inside = lookup_uniform(x, table)
    if x.min() < 0.0 or x.max() > 1.0:  # outside [0, 1] evaluate exactly (ppval extrapolates)
        outside = (x < 0.0) | (x > 1.0)
        poly = (np.polyval(np.polyfit(xs, ys, 2), x[outside]) if xs.size == 3
                else CubicSpline(xs, ys, bc_type="not-a-knot")(x[outside]))
        inside[outside] = poly
    return np.clip(inside, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------------ misc


def percentile1(x: np.ndarray, perc: float) -> float:
    """The official `percentile1`: the sorted value at index round(n*perc/100) (1-based, clamped)."""
    flat = x.ravel()
    n = flat.size
    i = int(matlab_round(min(max(n * perc / 100.0, 1.0), float(n)))) - 1
    return float(np.partition(flat, i)[i])


def ps2(a: np.ndarray, percdev: float = 1.0) -> np.ndarray:
    """The official `ps2`: clips the top and bottom `percdev` percent, then min-max maps to [0, 1]."""
    a = mapmm(a)
    hi = percentile1(a, 100.0 - percdev)
    lo = 1.0 - percentile1(1.0 - a, 100.0 - percdev)
    return mapmm(np.maximum(np.minimum(a, hi), lo))


def to_double_uint8_roundtrip(x: np.ndarray) -> np.ndarray:
    """MATLAB `im2uint8` of a double image: round(255*x) after clipping to [0, 1]."""
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)
