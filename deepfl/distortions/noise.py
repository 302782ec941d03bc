"""Noise distortions (KADID types 11-15), following MATLAB `imnoise` on double images (results clipped to [0, 1]).

Each takes a float64 HxWx3 image in [0, 1], the level's parameter and a numpy Generator; returns float64.
"""

from __future__ import annotations

import numpy as np

from deepfl.distortions._colour import rgb2ycbcr, ycbcr2rgb
from deepfl.distortions._kernels import nlm, pixels
from deepfl.distortions._random import standard_normal


def _imnoise_gaussian(x: np.ndarray, var: float, rng: np.random.Generator) -> np.ndarray:
    """`imnoise(x, 'gaussian', 0, var)`: additive N(0, var) noise per pixel and channel, clipped to [0, 1].

    The draws are numpy's `rng.standard_normal(x.shape)` (through the faster `standard_normal`)."""
    noise = standard_normal(rng, x.shape)
    noise *= np.sqrt(var)
    noise += x
    return np.clip(noise, 0.0, 1.0, out=noise)


def white_noise(x: np.ndarray, var: float, rng: np.random.Generator) -> np.ndarray:
    """Type 11, `imnoisegauss`: additive white Gaussian noise of variance `var` in RGB."""
    return _imnoise_gaussian(x, var, rng)


def white_noise_color_component(x: np.ndarray, var: float, rng: np.random.Generator) -> np.ndarray:
    """Type 12, `imnoisecolorcomp`: Gaussian noise of variance `var` added to Y, Cb and Cr (BT.601), back to RGB."""
    return ycbcr2rgb(_imnoise_gaussian(rgb2ycbcr(x), var, rng))


def impulse_noise(x: np.ndarray, density: float, rng: np.random.Generator) -> np.ndarray:
    """Type 13, `imnoise(x, 'salt & pepper', d)`: each sample independently 0 with prob. d/2, 1 with prob. d/2."""
    u = rng.random(x.shape)
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    pixels.salt_and_pepper(x.reshape(-1), u.reshape(-1), density, out.reshape(-1))
    return out


def multiplicative_noise(x: np.ndarray, var: float, rng: np.random.Generator) -> np.ndarray:
    """Type 14, `imnoise(x, 'speckle', var)`: x + x*n with n uniform of zero mean and variance `var`, clipped."""
    u = rng.random(x.shape)
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    pixels.speckle(x.reshape(-1), u.reshape(-1), np.sqrt(12.0 * var), out.reshape(-1))
    return out


def denoise(x: np.ndarray, var: float, rng: np.random.Generator) -> np.ndarray:
    """Type 15, `imdenoise`: Gaussian noise of variance `var` (as `imnoise`), then denoised.

    The original denoises each channel with MATLAB's pretrained DnCNN (`denoisingNetwork('DnCNN')`), whose
    weights are not available here. We use non-local means (scikit-image's fast mode: 5x5 patches, 5x5 search
    window, h = 0.8*sigma with sigma = sqrt(var) known), the classical denoiser closest in effect: noise removed,
    fine texture flattened, residual blotches at high levels. The patch distance is taken over the three
    channels jointly (one weight map for R, G and B): as strong as one run per channel with a 7x7 window and
    cheaper (`bench/denoise.py`, docs/distortions.md). DnCNN is a blind CNN and leaves fewer blotches and
    sharper edges.

    Computed by `nl_means`.
    """
    return nl_means(_imnoise_gaussian(x, var, rng), float(np.sqrt(var)))


def nl_means(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Type 15's denoiser on an HxWxC image with Gaussian noise of standard deviation `sigma`: the compiled
    `nlm.nl_means_fast`, which gives exactly scikit-image's `denoise_nl_means(noisy.astype(float32),
    h=0.8*sigma, sigma=sigma, patch_size=5, patch_distance=2, fast_mode=True, channel_axis=-1)` (float64 inside,
    float32 result, returned as float64).
    """
    pad = nlm.NLM_PATCH // 2 + nlm.NLM_DISTANCE + 1
    padded = np.pad(noisy.astype(np.float32), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = nlm.nl_means_fast(padded.astype(np.float64), 0.8 * sigma, sigma * sigma)[pad:-pad, pad:-pad]
    return out.astype(np.float32).astype(np.float64)
