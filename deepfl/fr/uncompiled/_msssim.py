"""MS-SSIM in NumPy (a new shape); the original's conventions are in `deepfl/fr/_msssim.py`. Each scale's mean
map is `_ssim.mean_map`'s, strip by strip."""

from __future__ import annotations

import numpy as np

from deepfl.fr._msssim import LEVELS, WEIGHTS
from deepfl.fr.uncompiled import functional
from deepfl.fr.uncompiled._ssim import mean_map


def msssim(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """MS-SSIM of each pair (1 = identical): mean cs at scales 1-4 and mean SSIM at scale 5, each clipped at 0,
    combined as a weighted geometric product; the references are downsampled once each."""
    x = functional.rgb2gray(ref)
    y = functional.rgb2gray(dist)
    values = []
    for level in range(LEVELS):
        if level > 0:
            x = functional.box_downsample(x, 2, "symmetric")
            y = functional.box_downsample(y, 2, "symmetric")
        values.append(mean_map(x, y, ref_index, ssim=level == LEVELS - 1))
    values = np.maximum(np.stack(values), 0.0)
    return np.prod(values ** np.asarray(WEIGHTS)[:, None], axis=0)
