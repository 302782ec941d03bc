"""Blur distortions (KADID types 1-3): `imblurgauss`, `imblurlens`, `imblurmotion` of the official code.

Each takes a float64 HxWx3 image in [0, 1], the level's parameter and a numpy Generator; returns float64.
"""

from __future__ import annotations

import numpy as np

from deepfl.distortions._filters import disk_kernel, filter2d_replicate, gaussian_filter, motion_kernel


def gaussian_blur(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Type 1, `imgaussfilt(x, sigma)`: Gaussian of size 2*ceil(2*sigma)+1, replicate padding."""
    return gaussian_filter(x, sigma)


def lens_blur(x: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Type 2, `imfilter(x, fspecial('disk', radius), 'replicate')`: a pill-box (defocus) blur."""
    return filter2d_replicate(x, disk_kernel(radius))


def motion_blur(x: np.ndarray, length: float, rng: np.random.Generator) -> np.ndarray:
    """Type 3, `imfilter(x, fspecial('motion', length, angle), 'replicate')`, angle = randi([0, 180]) degrees."""
    angle = int(rng.integers(0, 181))
    return filter2d_replicate(x, motion_kernel(length, angle))
