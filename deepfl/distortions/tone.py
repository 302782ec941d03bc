"""Brightness and contrast distortions (KADID types 16-18 and 25), built on the official `curves` tone curve.

Each takes a float64 HxWx3 image in [0, 1], the level's parameter and a numpy Generator; returns float64.
"""

from __future__ import annotations

import numpy as np

from deepfl.distortions._common import curves, lab2rgb, rgb2lab, truncate


def brighten(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Type 16, `imbrighten`: tone curve through (0.5, 0.5+amount/2) on RGB (weight 2/3) and on Lab L* (1/3)."""
    lab = rgb2lab(x)
    lab[..., 0] = curves(lab[..., 0] / 100.0, 0.5 + amount / 2.0) * 100.0
    rgb = curves(x, 0.5 + amount / 2.0)
    return (2.0 * rgb + truncate(lab2rgb(lab))) / 3.0


def darken(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Type 17, `imdarken` (its Lab branch is off by default): tone curve through (0.5, 0.5-amount/2) on RGB."""
    return curves(x, 0.5 - amount / 2.0)


def mean_shift(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Type 18, `immeanshift`: adds `amount` to every sample, clipped to [0, 1]."""
    return truncate(x + amount)


def contrast_change(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Type 25, `imcontrastc`: S-shaped (amount > 0) or flattening spline through (0.3, .25-a/4), (0.7, .75+a/4)."""
    return curves(x, [0.25 - amount / 4.0, 0.75 + amount / 4.0])
