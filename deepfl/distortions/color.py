"""Colour distortions (KADID types 4-8): colour diffusion, colour shift, colour quantisation, saturation.

Each takes a float64 HxWx3 image in [0, 1], the level's parameter and a numpy Generator; returns float64.
"""

from __future__ import annotations

import numpy as np

from deepfl.distortions import quantization
from deepfl.distortions._colour import lab2rgb, rgb2gray, rgb2lab
from deepfl.distortions._filters import gaussian_filter
from deepfl.distortions._ranges import Source, mapmm, matlab_round, ps2, to_double_uint8_roundtrip, truncate


def color_diffusion(x: np.ndarray, amount: float, rng: np.random.Generator, source: Source | None = None) -> np.ndarray:
    """Type 4, `imcolordiffuse`: Gaussian blur (sigma 1.5*amount+2) of Lab a*, b*, which are then scaled by amount."""
    lab = rgb2lab(x, source)
    lab[..., 1:] = gaussian_filter(lab[..., 1:], 1.5 * amount + 2.0) * amount
    return lab2rgb(lab, clip=True)


def _shift_replicate(channel: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The official `imshift` for non-negative shifts: moves content down/right, repeating the edge rows/cols."""
    h, w = channel.shape
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return channel[rows[:, None], cols[None, :]]


def color_shift(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Type 5, `imcolorshift`: the green channel shifted by `amount` pixels in a random direction (rand(1,2)
    normalised), blended in where edges are strong (smoothed, percentile-stretched gradient magnitude)."""
    gy, gx = np.gradient(rgb2gray(x))
    edges = mapmm(gaussian_filter(np.sqrt(gx * gx + gy * gy), 4.0))
    weight = ps2(truncate(edges, 0.1, 1.0))
    direction = rng.random(2)
    norm = np.sqrt(np.sum(direction**2))
    dy, dx = (int(v) for v in matlab_round(direction / norm * amount)) if norm > 0 else (0, 0)
    out = x.copy()
    green = x[..., 1]
    out[..., 1] = _shift_replicate(green, dy, dx) * weight + green * (1.0 - weight)
    return out


def color_quantization(x: np.ndarray, colors: int, rng: np.random.Generator) -> np.ndarray:
    """Type 6, `imcolorquantize`: `[X, map] = rgb2ind(x, n)` then `ind2rgb(X, map)`.

    `rgb2ind` converts x with `im2uint8`, builds MATLAB's minimum-variance palette (`cq`) and maps the pixels to
    it with MATLAB's error-diffusion `dither` (see `quantization`); the output is the palette colour of each
    pixel, double(palette)/255.
    """
    indices, colormap = quantization.rgb2ind(to_double_uint8_roundtrip(x), int(colors))
    return colormap[indices]


def color_saturation_hsv(x: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Type 7, `imcolorsaturate`: HSV saturation multiplied by `factor` (negative values invert the hue tint).

    `hsv2rgb(h, f*s, v)` after `rgb2hsv` in closed form: each channel is v*(1 - s*m) with s*m = (v - c)/v in
    every hue sector, so scaling s by f gives v + f*(c - v) (v = max channel); no colour-space round trip.
    """
    v = np.maximum(np.maximum(x[..., 0], x[..., 1]), x[..., 2])[..., None]
    out = x - v
    out *= factor
    out += v
    return out


def color_saturation_lab(
    x: np.ndarray, factor: float, rng: np.random.Generator, source: Source | None = None
) -> np.ndarray:
    """Type 8, `imsaturate`: Lab a*, b* multiplied by `factor`, back to sRGB and clipped to [0, 1]."""
    lab = rgb2lab(x, source)
    lab[..., 1:] *= factor
    return lab2rgb(lab, clip=True)
