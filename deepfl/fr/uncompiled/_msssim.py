"""MS-SSIM in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_msssim.py`.

Each scale's maps are computed by `ssim_maps` on strips of rows (with the window's WINDOW_SIZE - 1 rows of
overlap, so every strip's 'valid' maps are exactly those rows of the whole map): the temporaries then stay small,
in cache and reused from the heap, where full-size temporaries would each cost a fresh allocation and its page
faults.
"""

from __future__ import annotations

import numpy as np

from deepfl.fr._msssim import LEVELS, WEIGHTS
from deepfl.fr._ssim import WINDOW_SIZE
from deepfl.fr.uncompiled import functional
from deepfl.fr.uncompiled._ssim import ssim_maps

_STRIP_PIXELS = 1 << 15  # map pixels per strip


def _mean_map(x: np.ndarray, y: np.ndarray, ref_index: np.ndarray | None, ssim: bool) -> np.ndarray:
    """Mean of each pair's SSIM map (ssim=True) or cs map over the 'valid' window positions, strip by strip."""
    height, width = x.shape[1] - WINDOW_SIZE + 1, x.shape[2] - WINDOW_SIZE + 1
    step = max(1, _STRIP_PIXELS // width)
    total = np.zeros(len(y))
    for top in range(0, height, step):
        rows = slice(top, min(top + step, height) + WINDOW_SIZE - 1)
        ssim_map, cs_map = ssim_maps(x[:, rows], y[:, rows], ref_index)
        total += (ssim_map if ssim else cs_map).sum(axis=(1, 2))
    return total / (height * width)


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
        values.append(_mean_map(x, y, ref_index, ssim=level == LEVELS - 1))
    values = np.maximum(np.stack(values), 0.0)
    return np.prod(values ** np.asarray(WEIGHTS)[:, None], axis=0)
