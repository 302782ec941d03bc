"""Linear filters of the MATLAB functions the generator calls: `imgaussfilt`, `imfilter(..., 'replicate')` and
the `fspecial` disk and motion kernels, on float64 images in [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from deepfl.distortions._kernels import filters


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """1-D normalised Gaussian; default length 2*ceil(2*sigma)+1 as in MATLAB `imgaussfilt`."""
    if size is None:
        size = 2 * int(np.ceil(2 * sigma)) + 1
    half = (size - 1) / 2.0
    t = np.arange(size) - half
    k = np.exp(-(t * t) / (2.0 * sigma * sigma))
    return k / k.sum()


_FFT_TAPS = 101  # kernels longer than this go through FFTs (below, the compiled direct filter is faster)


def gaussian_filter(x: np.ndarray, sigma: float, size: int | None = None) -> np.ndarray:
    """MATLAB `imgaussfilt(x, sigma)`: separable Gaussian per channel, replicate padding.

    Compiled row and column passes with `ndimage.correlate1d`'s order of operations (identical values).
    Kernels over `_FFT_TAPS` long (sigma > 25, unused by the 25 types) go through real FFTs along each
    axis (the same result to ~1e-15 relative).
    """
    k = gaussian_kernel(sigma, size)
    if k.size > _FFT_TAPS:
        return _fft_correlate1d(_fft_correlate1d(x, k, 0), k, 1)
    x = np.ascontiguousarray(x, dtype=np.float64)
    planes = x.reshape(x.shape[0], x.shape[1], -1)  # HxWxC (C = 1 for a single plane)
    rows = np.empty_like(planes)
    out = np.empty_like(planes)
    filters.correlate_rows(planes.reshape(x.shape[0], -1), k, rows.reshape(x.shape[0], -1))
    filters.correlate_columns(rows, k, out)
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
            top : top + x.shape[0], left : left + x.shape[1]
        ]
    return _fft_valid_convolve(padded, kernel[::-1, ::-1])


def _fft_valid_convolve(padded: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'valid' 2-D convolution of each channel of `padded` with `kernel` through real FFTs in float32.

    float32 transforms are cheaper than float64; the distorted images differ from float64 ones in a few
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
    return full[kh - 1 : ph, kw - 1 : pw].astype(np.float64)


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
        dist2line[last] = np.sqrt(dist2line[last] ** 2 + x2last**2)
    dist2line = linewdt + eps - np.abs(dist2line)
    dist2line[dist2line < 0] = 0
    quarter = dist2line
    rotated = np.rot90(quarter, 2)
    h = np.zeros((2 * quarter.shape[0] - 1, 2 * quarter.shape[1] - 1))
    h[: rotated.shape[0], : rotated.shape[1]] = rotated
    h[rotated.shape[0] - 1 :, rotated.shape[1] - 1 :] = quarter
    h = h / (h.sum() + eps * length * length)
    if cosphi > 0:
        h = np.flipud(h)
    return h
