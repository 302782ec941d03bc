"""SR-SIM, Spectral Residual based Similarity (Zhang, Li 2012), as in Zhang's `SR_SIM.m`.

Y = 0.299 R + 0.587 G + 0.114 B in double (the original's colour branch, not rounded); box-average by
f = max(1, round(min(H, W) / 256)) with `conv2(..., 'same')` (zero border) and subsampling; spectral-residual
saliency: `imresize(Y, 0.25)` (bicubic, antialiased), log amplitude minus its 3x3 mean (`imfilter`
'replicate'), inverse FFT with the original phase, squared magnitude, 10x10 Gaussian (sigma 3.8, `imfilter`
zero border, MATLAB's centre for even sizes), `mat2gray`, bicubic `imresize` back; Scharr gradients (/16);
C1 = 0.40, C2 = 225, alpha = 0.5; pooled with max(saliency1, saliency2) as weights.
The saliency (small images) is computed in float64. XLA stages (every resize pass closes one,
`resize.resize_pass`); with `ref_index` the saliency and gradient of each unique reference are computed
once. Guards (not in the original, which returns NaN on constant images): log of a zero amplitude uses 1e-300,
a constant map `mat2gray`s to 0, all-zero weights fall back to a plain mean.
"""

from __future__ import annotations

import math

import tensorflow as tf

from deepfl.fr.functional import arithmetic, batching, colour, filters, pooling, resize, staging, validation

SCALE, AVE_KERNEL, GAUSS_SIGMA, GAUSS_SIZE = 0.25, 3, 3.8, 10
C1, C2, ALPHA = 0.40, 225.0, 0.50


def _replicate_box3(x: tf.Tensor) -> tf.Tensor:
    """3x3 mean of NHW maps with replicated borders (`imfilter(x, fspecial('average', 3), 'replicate')`)."""
    p = tf.concat([x[:, :1], x, x[:, -1:]], axis=1)
    p = tf.concat([p[:, :, :1], p, p[:, :, -1:]], axis=2)
    rows = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    return (rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]) / 9.0


def _gaussian_same(x: tf.Tensor) -> tf.Tensor:
    """`imfilter(x, fspecial('gaussian', 10, 3.8))` of NHW maps (zero border, MATLAB's centre for the even
    size: 4 taps before, 5 after) as two passes of shifted slices (XLA fuses them; a depthwise convolution
    compiles to a slow loop)."""
    g = filters.gaussian_kernel1d(GAUSS_SIZE, GAUSS_SIGMA)
    before = (GAUSS_SIZE - 1) // 2
    rows, cols = x.shape[1], x.shape[2]
    p = tf.pad(x, [[0, 0], [before, GAUSS_SIZE - 1 - before], [0, 0]])
    x = tf.add_n([g[k] * p[:, k : k + rows] for k in range(GAUSS_SIZE)])
    p = tf.pad(x, [[0, 0], [0, 0], [before, GAUSS_SIZE - 1 - before]])
    return tf.add_n([g[k] * p[:, :, k : k + cols] for k in range(GAUSS_SIZE)])


@staging.xla_stage
def _luma_gradient(images: tf.Tensor, factor: int) -> tuple[tf.Tensor, tf.Tensor]:
    """RGB M,H,W,3 -> box-downsampled Y as float64 M,h,w,1 and its Scharr gradient magnitude M,h,w (float32).

    The box average is linear, so it commutes with the Y weights: averaging RGB first mixes 1/f^2 of the
    pixels (float32 rounding differs, ~1e-7 relative).
    """
    y = colour.mix_channels(filters.box_downsample(images, factor, "zeros"), colour.YIQ[:1])
    return tf.cast(y, tf.float64), filters.scharr_magnitude(y[..., 0])


@staging.xla_stage
def _small_saliency(y: tf.Tensor, axis: int, in_len: int, out_len: int, scale: float) -> tf.Tensor:
    """Second pass of `imresize(Y, 0.25)` and the spectral residual (float64) -> `mat2gray`ed map M,h/4,w/4,1."""
    small = resize.resize_axis(y, axis, in_len, out_len, "bicubic", scale)[..., 0]
    spectrum = tf.signal.fft2d(tf.cast(small, tf.complex128))
    log_amplitude = tf.math.log(tf.maximum(tf.abs(spectrum), 1e-300))
    phase = tf.math.angle(spectrum)
    residual = tf.exp(log_amplitude - _replicate_box3(log_amplitude))
    rebuilt = tf.complex(residual * tf.cos(phase), residual * tf.sin(phase))
    saliency = _gaussian_same(tf.square(tf.abs(tf.signal.ifft2d(rebuilt))))
    return arithmetic.mat2gray(saliency)[..., None]


def spectral_residual_saliency(y: tf.Tensor) -> tf.Tensor:
    """SR_SIM.m's `spectralResidueSaliency` of NHW1 gray images (computed in float64) -> NHW1 float32."""
    rows, cols = y.shape[1], y.shape[2]
    small_hw = (math.ceil(rows * SCALE), math.ceil(cols * SCALE))
    first, second = resize.imresize_passes((rows, cols), small_hw, SCALE)
    small = _small_saliency(resize.resize_pass(tf.cast(y, tf.float64), "bicubic", *first), *second)
    for axis, in_len, out_len, scale in resize.imresize_passes(small_hw, (rows, cols)):
        small = resize.resize_pass(small, "bicubic", axis, in_len, out_len, scale)
    return tf.cast(small, tf.float32)


@staging.xla_stage  # elementwise chain and pooling fused
def _sr_sim_pool(saliency: tf.Tensor, gm: tf.Tensor, num_refs: int, ref_index: tf.Tensor | None) -> tf.Tensor:
    """Per-image maps of the R references followed by the N distorted images -> N SR-SIM scores."""
    s1, s2 = batching.split_batch(saliency[..., 0], num_refs, ref_index)
    g1, g2 = batching.split_batch(gm, num_refs, ref_index)
    sim = arithmetic.similarity(s1, s2, C1) * arithmetic.pow_nonneg(arithmetic.similarity(g1, g2, C2), ALPHA)
    return pooling.weighted_mean(sim, tf.maximum(s1, s2), axes=(1, 2))


@staging.compile_on_repeat(uncompiled="sr_sim")  # NumPy until a shape has repeated enough, then a graph
def _sr_sim(ref: tf.Tensor, dist: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    f = filters.auto_downsample_factor(ref.shape[1], ref.shape[2])
    y, gm = _luma_gradient(tf.concat([ref, dist], axis=0), f)
    return _sr_sim_pool(spectral_residual_saliency(y), gm, ref.shape[0], ref_index)


def sr_sim(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """SR-SIM of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical).

    With `ref_index` (N integers), `ref` holds R unique references and pair i is (ref[ref_index[i]], dist[i]):
    each reference's saliency and gradient are computed once.
    """
    ref, dist, index = validation.check_indexed("sr_sim", ref, dist, ref_index)
    return _sr_sim(ref, dist, index)
