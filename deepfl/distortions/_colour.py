"""Colour spaces as MATLAB defines them for doubles in [0, 1]: `rgb2lab`/`lab2rgb` (sRGB, D65), `rgb2hsv`/
`hsv2rgb`, `rgb2ycbcr`/`ycbcr2rgb` (BT.601) and `rgb2gray`.
"""

from __future__ import annotations

import numpy as np

from deepfl.distortions._kernels import lab as lab_kernels
from deepfl.distortions._ranges import Source

_SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
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
        lab_kernels.mix_levels(table, _as_image(source.pixels), _RGB_TO_XYZN, _as_planes(xyz))
    else:
        lab_kernels.mix_pixels(_as_image(srgb_to_linear(rgb)), _RGB_TO_XYZN, _as_planes(xyz))
    lab = np.empty(rgb.shape, dtype=np.float64)
    lab_kernels.lab_from_cbrt(_as_planes(xyz), _as_planes(np.cbrt(xyz)), _LAB_EPS, _LAB_KAPPA, _as_image(lab))
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
    lab_kernels.linear_from_lab(_as_image(lab), _XYZN_TO_RGB, _LAB_EPS, _LAB_KAPPA, bool(clip), _as_planes(lin))
    with np.errstate(invalid="ignore"):
        powered = np.power(lin if clip else np.abs(lin), 1.0 / 2.4)
    out = np.empty(lab.shape, dtype=np.float64)
    lab_kernels.compand(_as_planes(lin), _as_planes(powered), _as_image(out))
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


_YCBCR = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
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
