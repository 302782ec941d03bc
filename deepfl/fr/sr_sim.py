"""SR-SIM, Spectral Residual based Similarity (Zhang, Li 2012), as in Zhang's `SR_SIM.m`.

Y = 0.299 R + 0.587 G + 0.114 B in double (the original's colour branch, not rounded); box-average by
f = max(1, round(min(H, W) / 256)) with `conv2(..., 'same')` (zero border) and subsampling; spectral-residual
saliency: `imresize(Y, 0.25)` (bicubic, antialiased), log amplitude minus its 3x3 mean (`imfilter`
'replicate'), inverse FFT with the original phase, squared magnitude, 10x10 Gaussian (sigma 3.8, `imfilter`
zero border, MATLAB's centre for even sizes), `mat2gray`, bicubic `imresize` back; Scharr gradients (/16);
C1 = 0.40, C2 = 225, alpha = 0.5; pooled with max(saliency1, saliency2) as weights.
The saliency (small images) is computed in float64. Guards (not in the original, which returns NaN on
constant images): log of a zero amplitude uses 1e-300, a constant map `mat2gray`s to 0, all-zero weights
fall back to a plain mean.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from deepfl.fr import common

SCALE, AVE_KERNEL, GAUSS_SIGMA, GAUSS_SIZE = 0.25, 3, 3.8, 10
C1, C2, ALPHA = 0.40, 225.0, 0.50
MIN_SIZE = 4 * GAUSS_SIZE  # the quarter-size image must hold the 10x10 Gaussian (after any 1/f downsampling)


def spectral_residual_saliency(y: tf.Tensor) -> tf.Tensor:
    """SR_SIM.m's `spectralResidueSaliency` of NHW1 gray images (computed in float64) -> NHW1 float32."""
    rows, cols = y.shape[1], y.shape[2]
    small_hw = (math.ceil(rows * SCALE), math.ceil(cols * SCALE))
    small = common.imresize(tf.cast(y, tf.float64), small_hw, "bicubic", scale=SCALE)[..., 0]
    spectrum = tf.signal.fft2d(tf.cast(small, tf.complex128))
    log_amplitude = tf.math.log(tf.maximum(tf.abs(spectrum), 1e-300))
    phase = tf.math.angle(spectrum)
    box = np.full((AVE_KERNEL, AVE_KERNEL), 1.0 / AVE_KERNEL ** 2)
    residual = log_amplitude - common.correlate(log_amplitude[..., None], box, "same", "replicate")[..., 0]
    rebuilt = tf.complex(tf.exp(residual) * tf.cos(phase), tf.exp(residual) * tf.sin(phase))
    saliency = tf.square(tf.abs(tf.signal.ifft2d(rebuilt)))[..., None]
    saliency = common.correlate(saliency, common.gaussian_kernel2d(GAUSS_SIZE, GAUSS_SIGMA), "same", "zeros")
    saliency = common.mat2gray(saliency)
    return tf.cast(common.imresize(saliency, (rows, cols), "bicubic"), tf.float32)


@tf.function(jit_compile=False)  # traced once per input shape: the code needs static H, W
def _sr_sim(ref: tf.Tensor, dist: tf.Tensor) -> tf.Tensor:
    f = common.auto_downsample_factor(ref.shape[1], ref.shape[2])
    y = common.box_downsample(common.linear_color(tf.concat([ref, dist], axis=0), common.YIQ[:1]), f, "zeros")
    n = tf.shape(ref)[0]
    saliency = spectral_residual_saliency(y)[..., 0]
    gm = common.gradient_magnitude(y, common.SCHARR_X)[..., 0]
    s1, s2 = saliency[:n], saliency[n:]
    g1, g2 = gm[:n], gm[n:]
    sim = common.similarity(s1, s2, C1) * common.pow_nonneg(common.similarity(g1, g2, C2), ALPHA)
    return common.weighted_mean(sim, tf.maximum(s1, s2), axes=(1, 2))


def sr_sim(ref: tf.Tensor, dist: tf.Tensor) -> tf.Tensor:
    """SR-SIM of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical)."""
    ref, dist = common.check_tensors("sr_sim", ref, dist)
    f = common.auto_downsample_factor(ref.shape[1], ref.shape[2])
    if min(-(-ref.shape[1] // f), -(-ref.shape[2] // f)) < MIN_SIZE:
        raise ValueError(f"sr_sim: images of {ref.shape[1]}x{ref.shape[2]} are too small: after downsampling "
                         f"by {f} each side needs at least {MIN_SIZE} pixels for the quarter-size saliency")
    return _sr_sim(ref, dist)
