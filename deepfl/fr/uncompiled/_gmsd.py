"""GMSD in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_gmsd.py`."""

from __future__ import annotations

import numpy as np

from deepfl.fr._gmsd import T
from deepfl.fr.functional.filters import PREWITT_X
from deepfl.fr.uncompiled import functional


def _gradients(rgb: np.ndarray) -> np.ndarray:
    """rgb2gray, 2x2 average with zero border and subsampling by 2, Prewitt gradient magnitude: N,h,w."""
    return functional.gradient_magnitude(functional.box_downsample(functional.rgb2gray(rgb), 2, "zeros"), PREWITT_X)


def gmsd(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """GMSD of each pair (0 = identical): the sample standard deviation of the GMS map's deficit from 1."""
    g1 = functional.take_refs(_gradients(ref), ref_index)
    g2 = _gradients(dist)
    deficit = np.square(g1 - g2) / (g1 * g1 + g2 * g2 + T)
    return deficit.reshape(len(deficit), -1).std(axis=1, ddof=1)
