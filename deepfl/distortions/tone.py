"""Brightness and contrast distortions (KADID types 16-18 and 25), built on the official `curves` tone curve.

Each takes a float64 HxWx3 image in [0, 1], the level's parameter and a numpy Generator; returns float64. The
per-sample types also have a `*_levels(levels, counts, parameter)` form that `distort` runs on the 256 input
levels only (same values, looked up).
"""

from __future__ import annotations

import numpy as np

from deepfl.distortions._colour import lab2rgb, rgb2lab
from deepfl.distortions._ranges import Source, truncate
from deepfl.distortions._tone import curves


def brighten(x: np.ndarray, amount: float, rng: np.random.Generator, source: Source | None = None) -> np.ndarray:
    """Type 16, `imbrighten`: tone curve through (0.5, 0.5+amount/2) on RGB (weight 2/3) and on Lab L* (1/3).

    `source` (optional) lets the RGB curve and the companding run on the 256 input levels.
    """
    lab = rgb2lab(x, source)
    lab[..., 0] = curves(lab[..., 0] / 100.0, 0.5 + amount / 2.0) * 100.0
    if source is not None:
        rgb = source.apply(lambda v: curves(v, 0.5 + amount / 2.0))
    else:
        rgb = curves(x, 0.5 + amount / 2.0)
    out = lab2rgb(lab, clip=True)
    out += 2.0 * rgb
    out /= 3.0
    return out


def darken(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Type 17, `imdarken` (its Lab branch is off by default): tone curve through (0.5, 0.5-amount/2) on RGB."""
    return curves(x, 0.5 - amount / 2.0)


def darken_levels(levels: np.ndarray, counts: np.ndarray, amount: float) -> np.ndarray:
    """Type 17 on the input levels (per-sample)."""
    return darken(levels, amount, None)


def mean_shift_levels(levels: np.ndarray, counts: np.ndarray, amount: float) -> np.ndarray:
    """Type 18 on the input levels (per-sample)."""
    return mean_shift(levels, amount, None)


def contrast_change_levels(levels: np.ndarray, counts: np.ndarray, amount: float) -> np.ndarray:
    """Type 25 on the input levels (per-sample)."""
    return contrast_change(levels, amount, None)


def mean_shift(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Type 18, `immeanshift`: adds `amount` to every sample, clipped to [0, 1]."""
    return truncate(x + amount)


def contrast_change(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Type 25, `imcontrastc`: S-shaped (amount > 0) or flattening spline through (0.3, .25-a/4), (0.7, .75+a/4)."""
    return curves(x, [0.25 - amount / 4.0, 0.75 + amount / 4.0])
