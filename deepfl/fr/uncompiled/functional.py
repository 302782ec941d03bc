"""MATLAB conventions on NumPy arrays (N,H,W maps, float64): exact `rgb2gray`, border padding,
`filter2`/`imfilter`/`conv2` filtering, box downsampling, gradient magnitudes and reference sharing.

The kernels and weights are the ones of `deepfl.fr.functional` (one home each); only the
operations on images are written again here, for arrays.
"""

from __future__ import annotations

import functools

import numpy as np

from deepfl.fr.functional.colour import _RGB2GRAY
from deepfl.fr.functional.filters import correlation_padding
from deepfl.fr.uncompiled import banded, gray_kernel

_NUMPY_PAD_MODES = {
    "zeros": "constant",
    "symmetric": "symmetric",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
}


def rgb2gray(rgb: np.ndarray) -> np.ndarray:
    """MATLAB `rgb2gray` on uint8 data (double arithmetic, rounded half away from zero): NHWC -> N,H,W float64."""
    return gray_kernel.rgb2gray(rgb, np.asarray(_RGB2GRAY))


def take_refs(x: np.ndarray, ref_index: np.ndarray | None) -> np.ndarray:
    """Per-reference maps -> per-pair maps (unchanged when ref_index is None)."""
    return x if ref_index is None else x[ref_index]


def pad_hw(x: np.ndarray, top: int, bottom: int, left: int, right: int, padding: str = "zeros") -> np.ndarray:
    """Pads axes 1 and 2 (H, W) with a MATLAB border mode: zeros, symmetric, reflect, replicate or circular."""
    if padding not in _NUMPY_PAD_MODES:
        raise ValueError(f"padding: expected one of {', '.join(_NUMPY_PAD_MODES)}, got {padding!r}")
    if top == bottom == left == right == 0:
        return x
    widths = [(0, 0), (top, bottom), (left, right)] + [(0, 0)] * (x.ndim - 3)
    return np.pad(x, widths, mode=_NUMPY_PAD_MODES[padding])


def correlate(x: np.ndarray, kernel: np.ndarray, shape: str = "same", padding: str = "zeros") -> np.ndarray:
    """2-D correlation over axes 1, 2 (MATLAB `filter2`/`imfilter`): "same" centres the kernel at
    floor((size+1)/2) as MATLAB does, "valid" keeps fully covered positions; rank-one kernels run as two passes."""
    kernel = np.asarray(kernel, np.float64)
    kh, kw = kernel.shape
    x = np.asarray(pad_hw(x, *correlation_padding(kernel.shape, shape), padding), np.float64)
    factors = _rank_one_factors(kernel.tobytes(), kh, kw)
    if factors is not None:  # separable: two banded passes
        planes = np.moveaxis(x, (1, 2), (-2, -1)) if x.ndim > 3 else x  # N,H,W,C -> N,C,H,W
        shape = planes.shape
        planes = np.ascontiguousarray(planes).reshape((-1,) + shape[-2:])
        filtered = banded.correlate_valid(banded.correlate_valid(planes, factors[0], 1), factors[1], 2)
        filtered = filtered.reshape(shape[:-2] + filtered.shape[-2:])
        return np.moveaxis(filtered, (-2, -1), (1, 2)) if x.ndim > 3 else filtered
    out = np.zeros(x.shape[:1] + (x.shape[1] - kh + 1, x.shape[2] - kw + 1) + x.shape[3:], np.float64)
    for i in range(kh):
        for j in range(kw):
            if kernel[i, j]:
                out += kernel[i, j] * x[:, i : i + out.shape[1], j : j + out.shape[2]]
    return out


@functools.lru_cache(maxsize=64)
def _rank_one_factors(kernel_bytes: bytes, height: int, width: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(column, row) with outer product equal to the float64 kernel of these bytes where it has rank one (and
    more than one row and column), else None. Cached: the metrics filter with a few fixed kernels, call after call."""
    kernel = np.frombuffer(kernel_bytes, np.float64).reshape(height, width)
    u, s, vt = np.linalg.svd(kernel)
    if height > 1 and width > 1 and s[1] <= 1e-12 * s[0]:
        column, row = u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])
        column.flags.writeable = row.flags.writeable = False  # shared by every later call
        return column, row
    return None


def conv2_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB `conv2(x, kernel, 'same')` (true convolution, zero borders) over axes 1, 2."""
    kernel = np.asarray(kernel, np.float64)[::-1, ::-1]
    kh, kw = kernel.shape
    top, left = kh // 2, kw // 2
    return correlate(pad_hw(x, top, kh - 1 - top, left, kw - 1 - left, "zeros"), kernel, shape="valid")


def box_downsample(x: np.ndarray, factor: int, padding: str = "zeros") -> np.ndarray:
    """Mean of factor x factor blocks, every factor-th pixel (see `deepfl.fr.functional.filters.box_downsample`
    for the MATLAB forms it equals); output ceil(H/f) x ceil(W/f)."""
    if factor <= 1:
        return np.asarray(x, np.float64)
    height, width = x.shape[1], x.shape[2]
    before = (factor - 1) // 2
    out_h, out_w = -(-height // factor), -(-width // factor)
    # Rows -before .. out_h * f - before - 1 are averaged: pad what lies outside the image, drop what is left
    # over (with f >= 3 and H a multiple of f the last f - 1 - before rows belong to no block).
    after_h, after_w = out_h * factor - height - before, out_w * factor - width - before
    x = pad_hw(x, before, max(after_h, 0), before, max(after_w, 0), padding)[:, : out_h * factor, : out_w * factor]
    x = np.asarray(x, np.float64)
    total = sum(x[:, i::factor, j::factor] for i in range(factor) for j in range(factor))  # strided slices
    return total / (factor * factor)


def gradient_magnitude(x: np.ndarray, kernel_x: np.ndarray) -> np.ndarray:
    """sqrt(conv2(x, kx, 'same')^2 + conv2(x, kx', 'same')^2) with zero borders, over axes 1, 2."""
    kx = np.asarray(kernel_x, np.float64)
    gx = conv2_same(x, kx)
    gy = conv2_same(x, kx.T)
    return np.sqrt(gx * gx + gy * gy)


def mean_per_image(x: np.ndarray) -> np.ndarray:
    """Mean over all axes but the first, in float64."""
    return np.asarray(x, np.float64).reshape(len(x), -1).mean(axis=1)
