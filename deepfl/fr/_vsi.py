"""VSI, Visual Saliency-induced Index (Zhang, Shen, Li 2014), as in Zhang's `VSI.m` with its `SDSP` saliency.

SDSP on the full-size image converted to double: `imresize` to 256x256 (bilinear, antialiased), `RGB2Lab` of
VSI.m (D50 white), log-Gabor band-pass (omega0 0.021, sigmaF 1.34, frequencies beyond radius 0.5
masked) on L, a, b; centre prior (sigmaD 145) and warm-colour prior (sigmaC 0.001) multiplied in; bilinear
`imresize` back to full size; `mat2gray`. Then L = 0.06 R + 0.63 G + 0.27 B and opponent M, N; every map
box-averaged by f = max(1, round(min(H, W) / 256)) with `conv2(..., 'same')` (zero border) and subsampled;
Scharr gradients (/16); constants 1.27 / 386 / 130, alpha 0.40, lambda 0.020 with MATLAB's
`real((S_M .* S_N) .^ lambda)`; pooled with max(VS1, VS2) as weights.
Everything runs in float32 (effect on the TID2013 pairs: < 1e-6), as XLA stages (every resize pass closes
one, `resize.resize_pass`); the log-Gabor band-pass uses real FFTs. With `ref_index` the saliency, LMN and
gradient maps of each unique reference are computed once. Guards (not in the original, which returns NaN on
constant images): a constant a/b channel normalises to 0, a constant map `mat2gray`s to 0, all-zero weights
fall back to a plain mean.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from deepfl.fr.functional import arithmetic, batching, colour, filters, pooling, resize, spectral, staging, validation

C_VS, C_GM, C_CHROM = 1.27, 386.0, 130.0
ALPHA, LAMBDA = 0.40, 0.020
SIGMA_F, OMEGA0, SIGMA_D, SIGMA_C = 1.34, 0.021, 145.0, 0.001
SDSP_SIZE = 256


@functools.lru_cache(maxsize=4)
def _sdsp_constants(size: int) -> tuple[np.ndarray, np.ndarray]:
    """SDSP's log-Gabor transfer function and centre prior on a size x size grid (float64)."""
    u, v = spectral.fft_grid(size, size)  # equals logGabor's grid for even sizes (and the usual one for odd)
    radius = np.sqrt(u**2 + v**2)
    radius = np.where(radius > 0.5, 0.0, radius)
    r = radius.copy()
    r[0, 0] = 1.0
    with np.errstate(divide="ignore"):
        log_gabor = np.exp(-((np.log(r / OMEGA0)) ** 2) / (2 * SIGMA_F**2))
    log_gabor[0, 0] = 0.0
    idx = np.arange(1, size + 1, dtype=np.float64) - size / 2
    centre = np.exp(-(idx[:, None] ** 2 + idx[None, :] ** 2) / SIGMA_D**2)
    return log_gabor, centre


# XLA clusters: every resize pass closes one (`resize.resize_pass`).
@staging.xla_stage
def _lab_planes(x: tf.Tensor, axis: int, in_len: int, out_len: int, scale: float) -> tf.Tensor:
    """Second pass of the resize to 256x256, then VSI's Lab: M,256,256,3 -> M,3,256,256 (planes for the FFT)."""
    lab = colour.rgb2lab_vsi(resize.resize_axis(x, axis, in_len, out_len, "bilinear", scale))
    return tf.transpose(lab, [0, 3, 1, 2])


@staging.xla_stage
def _small_saliency(lab: tf.Tensor) -> tf.Tensor:
    """Lab planes M,3,S,S -> SDSP's saliency before the resize back: log-Gabor energy x centre x colour prior.

    The log-Gabor filter is real and symmetric (a function of the radius), so the three band-pass images are
    real: one real FFT and one inverse real FFT per plane (half the work of complex transforms).
    """
    size = lab.shape[-1]
    log_gabor, centre = _sdsp_constants(size)
    half = tf.constant(log_gabor[:, : size // 2 + 1].astype(np.complex64))
    filtered = tf.signal.irfft2d(tf.signal.rfft2d(lab) * half, [size, size])
    sf_map = tf.sqrt(tf.reduce_sum(filtered * filtered, axis=1))
    a_norm = arithmetic.mat2gray(lab[:, 1])
    b_norm = arithmetic.mat2gray(lab[:, 2])
    sc_map = 1.0 - tf.exp(-(a_norm * a_norm + b_norm * b_norm) / SIGMA_C**2)
    return (sf_map * tf.constant(centre, tf.float32) * sc_map)[..., None]


@staging.xla_stage
def _full_maps(
    small: tf.Tensor, images: tf.Tensor, factor: int, axis: int, in_len: int, out_len: int, scale: float
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Last resize pass of the saliency, `mat2gray`, box-downsampling; LMN and the gradient of L.

    Returns box-downsampled LMN M,h,w,3, saliency M,h,w and gradient magnitude M,h,w. The box average is
    linear, so it commutes with the LMN matrix: averaging RGB first mixes 1/f^2 of the pixels (float32
    rounding differs, ~1e-7 relative).
    """
    saliency = arithmetic.mat2gray(resize.resize_axis(small, axis, in_len, out_len, "bilinear", scale))
    saliency = filters.box_downsample(saliency, factor, "zeros")[..., 0]
    lmn = colour.mix_channels(filters.box_downsample(images, factor, "zeros"), colour.LMN)
    return lmn, saliency, filters.scharr_magnitude(lmn[..., 0])


def _vsi_maps(images: tf.Tensor, factor: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """RGB images M,H,W,3 -> box-downsampled LMN, SDSP saliency and gradient magnitude of L (see `_full_maps`)."""
    size = (images.shape[1], images.shape[2])
    first, second = resize.imresize_passes(size, (SDSP_SIZE, SDSP_SIZE))
    small = _small_saliency(_lab_planes(resize.resize_pass(images, "bilinear", *first), *second))
    first, second = resize.imresize_passes((SDSP_SIZE, SDSP_SIZE), size)
    return _full_maps(resize.resize_pass(small, "bilinear", *first), images, factor, *second)


@staging.xla_stage  # elementwise chain and pooling fused
def _vsi_pool(
    lmn: tf.Tensor, saliency: tf.Tensor, gm: tf.Tensor, num_refs: int, ref_index: tf.Tensor | None
) -> tf.Tensor:
    """Per-image maps of the R references followed by the N distorted images -> N VSI scores."""
    vs1, vs2 = batching.split_batch(saliency, num_refs, ref_index)
    g1, g2 = batching.split_batch(gm, num_refs, ref_index)
    lmn1, lmn2 = batching.split_batch(lmn, num_refs, ref_index)
    chroma = arithmetic.similarity(lmn1[..., 1], lmn2[..., 1], C_CHROM) * arithmetic.similarity(
        lmn1[..., 2], lmn2[..., 2], C_CHROM
    )
    sim = (
        arithmetic.pow_nonneg(arithmetic.similarity(g1, g2, C_GM), ALPHA)
        * arithmetic.similarity(vs1, vs2, C_VS)
        * arithmetic.real_power(chroma, LAMBDA)
    )
    return pooling.weighted_mean(sim, tf.maximum(vs1, vs2), axes=(1, 2))


@staging.compile_on_repeat(uncompiled="vsi")  # NumPy until a shape has repeated enough, then a graph
def _vsi(ref: tf.Tensor, dist: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    f = filters.auto_downsample_factor(ref.shape[1], ref.shape[2])
    lmn, saliency, gm = _vsi_maps(tf.concat([ref, dist], axis=0), f)
    return _vsi_pool(lmn, saliency, gm, ref.shape[0], ref_index)


def vsi(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """VSI of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical).

    With `ref_index` (N integers), `ref` holds R unique references and pair i is (ref[ref_index[i]], dist[i]):
    each reference's saliency, gradient and colour channels are computed once.
    """
    ref, dist, index = validation.check_indexed("vsi", ref, dist, ref_index)
    return _vsi(ref, dist, index)
