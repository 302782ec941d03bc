"""SSIM in NumPy (a new shape); the original's conventions are in `deepfl/fr/_ssim.py`.

The mean maps are taken on strips of rows (with the window's WINDOW_SIZE - 1 rows of overlap, so every strip's
'valid' maps are exactly those rows of the whole map): the temporaries stay small, in cache and reused from the
heap, where full-size temporaries would each cost a fresh allocation and its page faults; half of the strips run
on a second thread.
"""

from __future__ import annotations

import numpy as np

from deepfl.fr._ssim import K1, K2, WINDOW_SIGMA, WINDOW_SIZE, L
from deepfl.fr.functional.filters import auto_downsample_factor, gaussian_kernel1d
from deepfl.fr.uncompiled import banded, functional
from deepfl.fr.uncompiled.threads import in_parallel

_STRIP_PIXELS = 1 << 15  # map pixels per strip


def _window_means(planes: list[np.ndarray]) -> list[np.ndarray]:
    """'valid' 11x11 Gaussian means of N,H,W images (one batched pair of banded passes for all of them)."""
    taps = gaussian_kernel1d(WINDOW_SIZE, WINDOW_SIGMA)
    stacked = np.concatenate(planes)
    means = banded.correlate_valid(banded.correlate_valid(stacked, taps, 1), taps, 2)
    return np.split(means, np.cumsum([len(p) for p in planes])[:-1])


def ssim_maps(
    x: np.ndarray, y: np.ndarray, ref_index: np.ndarray | None = None, data_range: float = L
) -> tuple[np.ndarray, np.ndarray]:
    """SSIM and contrast-structure maps of N,H,W gray images ('valid' window), pair i = (x[ref_index[i]], y[i]).
    The reference's windowed mean and mean square are taken once per reference."""
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xs = functional.take_refs(x, ref_index)
    mu1, e11, mu2, e22, e12 = _window_means([x, x * x, y, y * y, xs * y])
    mu1, e11 = functional.take_refs(mu1, ref_index), functional.take_refs(e11, ref_index)
    sigma1, sigma2, sigma12 = e11 - mu1 * mu1, e22 - mu2 * mu2, e12 - mu1 * mu2
    cs_map = (2.0 * sigma12 + c2) / (sigma1 + sigma2 + c2)
    ssim_map = (2.0 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1) * cs_map
    return ssim_map, cs_map


def mean_map(x: np.ndarray, y: np.ndarray, ref_index: np.ndarray | None, ssim: bool) -> np.ndarray:
    """Mean of each pair's SSIM map (ssim=True) or cs map over the 'valid' window positions, strip by strip."""
    height, width = x.shape[1] - WINDOW_SIZE + 1, x.shape[2] - WINDOW_SIZE + 1
    step = max(1, _STRIP_PIXELS // width)

    def strip_sum(top: int) -> np.ndarray:
        rows = slice(top, min(top + step, height) + WINDOW_SIZE - 1)
        ssim_map, cs_map = ssim_maps(x[:, rows], y[:, rows], ref_index)
        return (ssim_map if ssim else cs_map).sum(axis=(1, 2))

    total = np.zeros(len(y))
    for part in in_parallel(strip_sum, range(0, height, step)):
        total += part
    return total / (height * width)


def ssim(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """SSIM of each pair (1 = identical): mean of the SSIM map after the automatic downsampling."""
    f = auto_downsample_factor(ref.shape[1], ref.shape[2])
    x = functional.box_downsample(functional.rgb2gray(ref), f, "symmetric")
    y = functional.box_downsample(functional.rgb2gray(dist), f, "symmetric")
    return mean_map(x, y, ref_index, ssim=True)
