"""ADD-GSIM: gradient similarity (GSIM, Liu, Lin, Narwaria, IEEE TIP 2012) pooled by the analysis of distortion
distribution (ADD, Gu, Wang, Zhai, Lin, Yang, Zhang, IEEE Trans. Broadcasting 62(2), 2016), batched TensorFlow.

RECONSTRUCTED, NOT PORTED: no public copy of the authors' MATLAB (GSM.m with the ADD pooling) or of the ADD
paper's full text could be read while writing this, so the maths below follows the two papers' published
structure with our own choices where the details were not available (see docs/labels.md, fidelity table):
- GSIM local map on MATLAB `rgb2gray` luminance: gradient = max over the four 5x5 directional high-pass kernels
  of Liu et al. (Chou & Li's JND kernels, /16) of |correlation|; gradient similarity (2 g1 g2 + C)/(g1^2+g2^2+C)
  with C = 200; luminance similarity 1 - ((Y1 - Y2)/255)^2; adaptive mix q = (1 - W) q_g + W q_l, W = 0.1 q_g.
- ADD pooling with the paper's four named parts: multi-scale (MS, 3 dyadic scales, geometric mean),
  ranking-based weighting (RW: local qualities sorted worst first, linearly decreasing weights), a
  frequency-variation adjuster (FVA: similarity of the mean gradient energy of reference and distorted image)
  and an entropy-gain multiplier (EGM: similarity of the gray-level histogram entropies).
The score is 1 for identical images and decreases with distortion (higher is better).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from deepfl.fr import common

C_GRADIENT = 200.0
P_LUMINANCE = 0.1
NUM_SCALES = 3
C_FREQUENCY = 1.0
C_ENTROPY = 1e-3
RANK_BINS = 4096

# Liu et al.'s four directional kernels (horizontal, two diagonals, vertical); positive weights sum to 16.
_KERNELS = np.stack([
    np.array([[0, 0, 0, 0, 0], [1, 3, 8, 3, 1], [0, 0, 0, 0, 0], [-1, -3, -8, -3, -1], [0, 0, 0, 0, 0]]),
    np.array([[0, 0, 1, 0, 0], [0, 8, 3, 0, 0], [1, 3, 0, -3, -1], [0, 0, -3, -8, 0], [0, 0, -1, 0, 0]]),
    np.array([[0, 0, 1, 0, 0], [0, 0, 3, 8, 0], [-1, -3, 0, 3, 1], [0, -8, -3, 0, 0], [0, 0, -1, 0, 0]]),
    np.array([[0, 1, 0, -1, 0], [0, 3, 0, -3, 0], [0, 8, 0, -8, 0], [0, 3, 0, -3, 0], [0, 1, 0, -1, 0]]),
], axis=-1).astype(np.float32) / 16.0          # 5 x 5 x 4


def directional_gradient(gray: tf.Tensor) -> tf.Tensor:
    """max_k |gray (*) K_k| over the four 5x5 kernels, symmetric borders; NHW1 -> NHW1."""
    padded = common.pad_hw(gray, 2, 2, 2, 2, "symmetric")
    responses = tf.nn.conv2d(padded, tf.constant(_KERNELS[:, :, None, :]), 1, "VALID")
    return tf.reduce_max(tf.abs(responses), axis=-1, keepdims=True)


def gsim_map(ref_gray: tf.Tensor, dist_gray: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """GSIM local quality map (NHW1) and the two gradient maps, for gray NHW1 inputs in [0, 255]."""
    g1 = directional_gradient(ref_gray)
    g2 = directional_gradient(dist_gray)
    q_gradient = common.similarity(g1, g2, C_GRADIENT)
    q_luminance = 1.0 - tf.square((ref_gray - dist_gray) / 255.0)
    weight = P_LUMINANCE * q_gradient
    return (1.0 - weight) * q_gradient + weight * q_luminance, g1, g2


def rank_weighted_mean(quality: tf.Tensor, bins: int = RANK_BINS) -> tf.Tensor:
    """RW pooling: weights each local quality by (n - rank), rank 0 = worst; NHW1 in [0, 1] -> N (float64).

    Ranks come from a `bins`-bin histogram (mid-rank within a bin) instead of a full sort, which is O(n) and
    ~50x faster; the rank error is at most half a bin's population (measured effect < 1e-4 on the score).
    """
    batch = tf.shape(quality)[0]
    flat = tf.cast(tf.reshape(quality, [batch, -1]), tf.float64)
    n = tf.cast(tf.shape(flat)[1], tf.float64)
    index = tf.clip_by_value(tf.cast(tf.floor(flat * bins), tf.int32), 0, bins - 1)
    segments = index + bins * tf.range(batch)[:, None]
    counts = tf.reshape(tf.math.unsorted_segment_sum(tf.ones_like(flat), segments, batch * bins), [batch, bins])
    sums = tf.reshape(tf.math.unsorted_segment_sum(flat, segments, batch * bins), [batch, bins])
    mid_rank = tf.cumsum(counts, axis=-1, exclusive=True) + 0.5 * (counts - 1.0)
    weights = n - mid_rank
    return tf.reduce_sum(sums * weights, -1) / tf.reduce_sum(counts * weights, -1)


def gray_entropy(gray: tf.Tensor) -> tf.Tensor:
    """Shannon entropy (bits) of the 256-bin histogram of each gray image; NHW1 in [0, 255] -> N (float64)."""
    values = tf.cast(tf.reshape(gray, [tf.shape(gray)[0], -1]), tf.int32)
    counts = tf.cast(tf.math.bincount(values, minlength=256, maxlength=256, axis=-1), tf.float64)
    p = counts / tf.reduce_sum(counts, -1, keepdims=True)
    return -tf.reduce_sum(tf.math.multiply_no_nan(tf.math.log(p) / np.log(2.0), p), -1)


def _halve(x: tf.Tensor) -> tf.Tensor:
    """2x2 box average + subsampling by 2 with a symmetric border (common.box_downsample(x, 2, "symmetric")),
    written with dynamic shapes so that the traced function accepts any image size."""
    shape = tf.shape(x)
    x = tf.pad(x, [[0, 0], [0, shape[1] % 2], [0, shape[2] % 2], [0, 0]], mode="SYMMETRIC")
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


@tf.function(reduce_retracing=True)
def _add_gsim(ref: tf.Tensor, dist: tf.Tensor) -> tf.Tensor:
    x = common.rgb2gray(ref, tf.float32)
    y = common.rgb2gray(dist, tf.float32)
    log_quality = tf.zeros(tf.shape(x)[:1], tf.float64)
    fva = None
    xs, ys = x, y
    for scale in range(NUM_SCALES):
        quality, g1, g2 = gsim_map(xs, ys)
        log_quality += tf.math.log(tf.maximum(rank_weighted_mean(quality), 1e-12)) / NUM_SCALES
        if scale == 0:
            e1 = tf.reduce_mean(tf.cast(g1, tf.float64), [1, 2, 3])
            e2 = tf.reduce_mean(tf.cast(g2, tf.float64), [1, 2, 3])
            fva = common.similarity(e1, e2, C_FREQUENCY)
        if scale + 1 < NUM_SCALES:
            xs = _halve(xs)
            ys = _halve(ys)
    egm = common.similarity(gray_entropy(x), gray_entropy(y), C_ENTROPY)
    return tf.exp(log_quality) * fva * egm


def add_gsim(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """ADD-GSIM of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical, higher better).

    ref_index: see `common.check_indexed` (pair i = (ref[ref_index[i]], dist[i])).
    """
    ref, dist, ref_index = common.check_indexed("add_gsim", ref, dist, ref_index,
                                                min_size=4 * 2 ** (NUM_SCALES - 1))
    return _add_gsim(common.take_refs(ref, ref_index), dist)
