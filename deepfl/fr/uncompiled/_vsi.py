"""VSI in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_vsi.py`."""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from deepfl.fr._vsi import ALPHA, C_CHROM, C_GM, C_VS, LAMBDA, SDSP_SIZE, SIGMA_C, _sdsp_constants
from deepfl.fr.functional.colour import LMN
from deepfl.fr.functional.filters import auto_downsample_factor
from deepfl.fr.uncompiled import functional
from deepfl.fr.uncompiled._sr_sim import (
    FFT_WORKERS,
    imresize,
    mat2gray,
    scharr_magnitude,
    similarity,
    weighted_mean,
)

# VSI.m's RGB2Lab: sRGB primaries to XYZ, and the D50 white it divides by.
_SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
_WHITE = (0.9642, 1.0, 0.8251)
_EPSILON, _KAPPA = 0.008856, 903.3


def _rgb2lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 255] (..., 3) -> CIELab planes (3, ...) as VSI.m's `RGB2Lab`."""
    x = rgb / 255.0
    linear = np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)
    xyz = linear @ (np.asarray(_SRGB_TO_XYZ) / np.asarray(_WHITE)[:, None]).T
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), (_KAPPA * xyz + 16.0) / 116.0)
    fx, fy, fz = np.moveaxis(f, -1, 0)
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)])


def _small_saliency(images: np.ndarray) -> np.ndarray:
    """SDSP before the resize back, on the 256x256 resize of N,H,W,3 RGB images; returned transposed (N,W',H').

    The log-Gabor transfer function and the centre prior are symmetric in the two axes of the square grid, so
    the transposed layout of the resize gives the transposed saliency; the resize back undoes it.
    """
    lab = _rgb2lab(imresize(images, (SDSP_SIZE, SDSP_SIZE), "bilinear", transposed=True))  # 3,N,S,S
    log_gabor, centre = _sdsp_constants(SDSP_SIZE)
    spectrum = scipy.fft.rfft2(lab, workers=FFT_WORKERS)
    spectrum *= log_gabor[:, : SDSP_SIZE // 2 + 1]
    filtered = scipy.fft.irfft2(spectrum, s=(SDSP_SIZE, SDSP_SIZE), workers=FFT_WORKERS)
    sf_map = np.sqrt(np.einsum("cnhw,cnhw->nhw", filtered, filtered))
    a_norm, b_norm = mat2gray(lab[1]), mat2gray(lab[2])
    sc_map = 1.0 - np.exp(-(a_norm * a_norm + b_norm * b_norm) / SIGMA_C**2)
    return sf_map * centre * sc_map


def _maps(images: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box-downsampled LMN N,h,w,3, SDSP saliency N,h,w and gradient magnitude of L N,h,w."""
    height, width = images.shape[1:3]
    small = _small_saliency(images)
    saliency = mat2gray(imresize(small.swapaxes(1, 2), (height, width), "bilinear"))
    saliency = functional.box_downsample(saliency, factor, "zeros")
    lmn = functional.mix_channels(functional.box_downsample(images, factor, "zeros"), LMN)
    return lmn, saliency, scharr_magnitude(lmn[..., 0])


def _real_power(x: np.ndarray, exponent: float) -> np.ndarray:
    """MATLAB `real(x .^ p)` for real x: |x|^p cos(p pi) where x < 0."""
    magnitude = np.abs(x) ** exponent
    return np.where(x < 0, magnitude * math.cos(exponent * math.pi), magnitude)


def vsi(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """VSI of each pair (1 = identical): saliency, gradient and chroma similarity weighted by the saliency."""
    factor = auto_downsample_factor(ref.shape[1], ref.shape[2])
    lmn, saliency, gm = _maps(np.concatenate([ref, dist]), factor)
    num_refs = len(ref)
    vs1, vs2 = functional.take_refs(saliency[:num_refs], ref_index), saliency[num_refs:]
    g1, g2 = functional.take_refs(gm[:num_refs], ref_index), gm[num_refs:]
    lmn1, lmn2 = functional.take_refs(lmn[:num_refs], ref_index), lmn[num_refs:]
    chroma = similarity(lmn1[..., 1], lmn2[..., 1], C_CHROM) * similarity(lmn1[..., 2], lmn2[..., 2], C_CHROM)
    sim = similarity(g1, g2, C_GM) ** ALPHA * similarity(vs1, vs2, C_VS) * _real_power(chroma, LAMBDA)
    return weighted_mean(sim, np.maximum(vs1, vs2))
