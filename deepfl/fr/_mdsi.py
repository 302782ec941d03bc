"""MDSI, Mean Deviation Similarity Index (Nafchi, Shahkolaei, Hedjam, Cheriet 2016), as in Nafchi's `MDSI.m`.

Each RGB channel box-averaged by f = max(1, round(min(H, W) / 256)) with `conv2(..., 'same')` (zero border) and
subsampled; luminance L = 0.2989 R + 0.587 G + 0.114 B (not rounded) and chromatic H, M; Prewitt gradient
magnitudes (/3, zero border) of the reference, the distorted image and their average (fusion); gradient
similarity GS = GS(ref, dist; C1=140) + GS(dist, fused; C2=55) - GS(ref, fused; C2=55); chromatic similarity
with C3 = 550; 'sum' combination GCS = 0.6 GS + 0.4 CS; pooling (mean |GCS^0.25 - mean(GCS^0.25)|)^0.25 with
MATLAB's complex powers for negative GCS. Lower is better; 0 = identical.
"""

from __future__ import annotations

import math

import tensorflow as tf

from deepfl.fr.functional import arithmetic, batching, colour, filters, staging, validation

C1, C2, C3 = 140.0, 55.0, 550.0
ALPHA = 0.6
Q_EXPONENT, O_EXPONENT = 0.25, 0.25


def _lhm(rgb: tf.Tensor) -> tf.Tensor:
    """f x f box average with subsampling, then L, H, M channels (NHWC)."""
    f = filters.auto_downsample_factor(rgb.shape[1], rgb.shape[2])
    return colour.linear_color(filters.box_downsample(rgb, f, "zeros"), colour.LHM)


@staging.compile_on_repeat(uncompiled="mdsi")  # NumPy until a shape has repeated enough, then a graph
def _mdsi(ref: tf.Tensor, dist: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    if ref_index is None:  # one pass over both images
        both = _lhm(tf.concat([ref, dist], axis=0))
        lhm_ref, lhm_dist = both[: ref.shape[0]], both[ref.shape[0] :]
        l1, l2 = lhm_ref[..., :1], lhm_dist[..., :1]
        gm = filters.gradient_magnitude(tf.concat([l1, l2, 0.5 * (l1 + l2)], axis=-1), filters.PREWITT_X)
        g_ref, g_dist, g_fused = gm[..., 0], gm[..., 1], gm[..., 2]
    else:  # colour conversion and gradients of each unique reference once
        lhm_ref = _lhm(ref)
        g_ref = batching.take_refs(filters.gradient_magnitude(lhm_ref[..., :1], filters.PREWITT_X)[..., 0], ref_index)
        lhm_ref = batching.take_refs(lhm_ref, ref_index)
        lhm_dist = _lhm(dist)
        l1, l2 = lhm_ref[..., :1], lhm_dist[..., :1]
        gm = filters.gradient_magnitude(tf.concat([l2, 0.5 * (l1 + l2)], axis=-1), filters.PREWITT_X)
        g_dist, g_fused = gm[..., 0], gm[..., 1]
    return _pooled_deviation(g_ref, g_dist, g_fused, lhm_ref, lhm_dist)


@staging.xla_stage
def _pooled_deviation(
    g_ref: tf.Tensor, g_dist: tf.Tensor, g_fused: tf.Tensor, lhm_ref: tf.Tensor, lhm_dist: tf.Tensor
) -> tf.Tensor:
    """GCS map and its deviation pooling from the gradient magnitudes and LHM images, one XLA-fused pass
    (the float64 powers, cos/sin and means are ~30 elementwise ops over the map)."""
    # GCS is formed as 1 - deficit (exact algebra): the 0.25 powers of the pooling turn float32 noise of ~1e-7
    # in GCS into errors of ~1e-2, while the deficits are accurate and exactly 0 for identical images.
    gs_deficit = (
        arithmetic.dissimilarity(g_ref, g_dist, C1)
        + arithmetic.dissimilarity(g_dist, g_fused, C2)
        - arithmetic.dissimilarity(g_ref, g_fused, C2)
    )
    h1, m1 = lhm_ref[..., 1], lhm_ref[..., 2]
    h2, m2 = lhm_dist[..., 1], lhm_dist[..., 2]
    cs_deficit = (tf.square(h1 - h2) + tf.square(m1 - m2)) / (h1 * h1 + h2 * h2 + m1 * m1 + m2 * m2 + C3)
    deficit = ALPHA * gs_deficit + (1.0 - ALPHA) * cs_deficit
    gcs = 1.0 - tf.cast(deficit, tf.float64)
    # GCS .^ 0.25 as MATLAB computes it: a negative base gives |x|^q * exp(i q pi).
    magnitude = arithmetic.pow_nonneg(tf.abs(gcs), Q_EXPONENT)
    angle = tf.where(gcs < 0, tf.constant(Q_EXPONENT * math.pi, tf.float64), tf.constant(0.0, tf.float64))
    re, im = magnitude * tf.cos(angle), magnitude * tf.sin(angle)
    re_c = re - tf.reduce_mean(re, axis=[1, 2], keepdims=True)
    im_c = im - tf.reduce_mean(im, axis=[1, 2], keepdims=True)
    deviation = tf.reduce_mean(tf.sqrt(re_c * re_c + im_c * im_c), axis=[1, 2])
    return arithmetic.pow_nonneg(deviation, O_EXPONENT)


def mdsi(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """MDSI of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (0 = identical, lower is better).

    With `ref_index` (N integers), `ref` holds R unique references and pair i is (ref[ref_index[i]], dist[i]):
    the reference's colour conversion and gradients are computed once per reference.
    """
    ref, dist, ref_index = validation.check_indexed("mdsi", ref, dist, ref_index)
    return _mdsi(ref, dist, ref_index)
