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

Computed as separate XLA stages (gray, gradients as shifted-slice differences, GSIM + rank weighting,
halving); with `ref_index` the reference pyramid is computed once per unique reference.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from deepfl.fr.functional import arithmetic, batching, colour, staging, validation

C_GRADIENT = 200.0
P_LUMINANCE = 0.1
NUM_SCALES = 3
C_FREQUENCY = 1.0
C_ENTROPY = 1e-3
RANK_BINS = 4096

# Liu et al.'s four directional kernels (horizontal, two diagonals, vertical); positive weights sum to 16.
_KERNELS = (
    np.stack(
        [
            np.array([[0, 0, 0, 0, 0], [1, 3, 8, 3, 1], [0, 0, 0, 0, 0], [-1, -3, -8, -3, -1], [0, 0, 0, 0, 0]]),
            np.array([[0, 0, 1, 0, 0], [0, 8, 3, 0, 0], [1, 3, 0, -3, -1], [0, 0, -3, -8, 0], [0, 0, -1, 0, 0]]),
            np.array([[0, 0, 1, 0, 0], [0, 0, 3, 8, 0], [-1, -3, 0, 3, 1], [0, -8, -3, 0, 0], [0, 0, -1, 0, 0]]),
            np.array([[0, 1, 0, -1, 0], [0, 3, 0, -3, 0], [0, 8, 0, -8, 0], [0, 3, 0, -3, 0], [0, 1, 0, -1, 0]]),
        ],
        axis=-1,
    ).astype(np.float32)
    / 16.0
)  # 5 x 5 x 4


def _antisymmetric_taps(kernel: np.ndarray) -> list[tuple[int, int, float]]:
    """The taps (row, col, weight) of the first half of a point-antisymmetric 5x5 kernel, K(-p) = -K(p)."""
    assert np.array_equal(kernel[::-1, ::-1], -kernel)
    return [(i, j, float(kernel[i, j])) for i in range(5) for j in range(5) if kernel[i, j] and (i, j) < (2, 2)]


_TAPS = [_antisymmetric_taps(_KERNELS[:, :, k]) for k in range(_KERNELS.shape[-1])]


def directional_gradient(gray: tf.Tensor) -> tf.Tensor:
    """max_k |gray (*) K_k| over the four 5x5 kernels, symmetric borders; NHW -> NHW.

    Each kernel is point-antisymmetric, so its response is a sum over half the taps of w * (x(p) - x(-p)),
    written as shifted slices for XLA to fuse (its convolutions are slow on CPU). On gray levels that are
    multiples of 1/64 (the pyramid of an integer image) every sum is exact, so the order does not matter.
    """
    height, width = tf.shape(gray)[1], tf.shape(gray)[2]
    padded = tf.pad(gray, [[0, 0], [2, 2], [2, 2]], mode="SYMMETRIC")

    def shifted(i, j):
        return padded[:, i : i + height, j : j + width]

    gradient = None
    for taps in _TAPS:
        response = tf.add_n([w * (shifted(i, j) - shifted(4 - i, 4 - j)) for i, j, w in taps])
        gradient = tf.abs(response) if gradient is None else tf.maximum(gradient, tf.abs(response))
    return gradient


def gsim_map(ref_gray: tf.Tensor, dist_gray: tf.Tensor, g1: tf.Tensor, g2: tf.Tensor) -> tf.Tensor:
    """GSIM local quality map from gray images in [0, 255] and their gradient maps (all of one shape)."""
    q_gradient = arithmetic.similarity(g1, g2, C_GRADIENT)
    q_luminance = 1.0 - tf.square((ref_gray - dist_gray) / 255.0)
    weight = P_LUMINANCE * q_gradient
    return (1.0 - weight) * q_gradient + weight * q_luminance


def rank_weighted_mean(quality: tf.Tensor, bins: int = RANK_BINS) -> tf.Tensor:
    """RW pooling: weights each local quality by (n - rank), rank 0 = worst; N x ... in [0, 1] -> N (float64).

    Ranks come from a `bins`-bin histogram (mid-rank within a bin) instead of a full sort, which makes it
    O(n); the rank error is at most half a bin's population (effect < 1e-4 on the score).
    Counts and sums of each bin come from one segment sum of (1, q) pairs.
    """
    batch = tf.shape(quality)[0]
    flat = tf.cast(tf.reshape(quality, [batch, -1]), tf.float64)
    n = tf.cast(tf.shape(flat)[1], tf.float64)
    index = tf.clip_by_value(tf.cast(tf.floor(flat * bins), tf.int32), 0, bins - 1)
    segments = index + bins * tf.range(batch)[:, None]
    both = tf.math.unsorted_segment_sum(tf.stack([tf.ones_like(flat), flat], -1), segments, batch * bins)
    both = tf.reshape(both, [batch, bins, 2])
    counts, sums = both[..., 0], both[..., 1]
    mid_rank = tf.cumsum(counts, axis=-1, exclusive=True) + 0.5 * (counts - 1.0)
    weights = n - mid_rank
    return tf.reduce_sum(sums * weights, -1) / tf.reduce_sum(counts * weights, -1)


def gray_entropy(gray: tf.Tensor) -> tf.Tensor:
    """Shannon entropy (bits) of the 256-bin histogram of each gray image; N x ... in [0, 255] -> N (float64).
    Uses TF's bincount (not XLA-compatible), which beats a segment sum under XLA on CPU."""
    values = tf.cast(tf.reshape(gray, [tf.shape(gray)[0], -1]), tf.int32)
    counts = tf.cast(tf.math.bincount(values, minlength=256, maxlength=256, axis=-1), tf.float64)
    p = counts / tf.reduce_sum(counts, -1, keepdims=True)
    return -tf.reduce_sum(tf.math.multiply_no_nan(tf.math.log(p) / np.log(2.0), p), -1)


def _halve(x: tf.Tensor) -> tf.Tensor:
    """2x2 box average + subsampling by 2 of NHW maps with a symmetric border (filters.box_downsample(x, 2,
    "symmetric")): an odd last row/column is repeated, so that its 2x2 block averages it with itself."""
    shape = tf.shape(x)
    x = tf.pad(x, [[0, 0], [0, shape[1] % 2], [0, shape[2] % 2]], mode="SYMMETRIC")
    half = tf.shape(x) // 2
    blocks = tf.reshape(x, [shape[0], half[1], 2, half[2], 2])
    return (blocks[:, :, 0, :, 0] + blocks[:, :, 0, :, 1] + blocks[:, :, 1, :, 0] + blocks[:, :, 1, :, 1]) / 4.0


def _xla(fn):
    """An XLA-compiled stage. The stages are compiled separately on purpose: in one XLA function the fuser
    recomputes shared maps (gray, gradients) inside each consumer."""
    return staging.xla_stage(fn, reduce_retracing=True)


_gradient = _xla(directional_gradient)
_halve_xla = _xla(_halve)


@_xla
def _scale_log_quality(gray_maps, gradients, ref_index, num_refs: int):
    """log of the rank-weighted GSIM of one scale / NUM_SCALES. The maps hold the R references, then the N
    distorted images; the reference maps are gathered per pair (`batching.split_batch`)."""
    x, y = batching.split_batch(gray_maps, num_refs, ref_index)
    g1, g2 = batching.split_batch(gradients, num_refs, ref_index)
    quality = gsim_map(x, y, g1, g2)
    return tf.math.log(tf.maximum(rank_weighted_mean(quality), 1e-12)) / NUM_SCALES


def _gradient_mean(g: tf.Tensor) -> tf.Tensor:
    """Mean of full-resolution gradient maps NHW -> N (float64), row sums in float32 first (cheaper than a
    float64 sum). The row sums are exact, hence equal to float64 sums, because the gradients of an integer
    gray image are multiples of 1/16 below 256 (exact while a row has < 4112 pixels)."""
    return tf.reduce_mean(tf.cast(tf.reduce_sum(g, 2), tf.float64), 1) / tf.cast(tf.shape(g)[2], tf.float64)


@staging.compile_on_repeat(uncompiled="add_gsim")  # NumPy until a shape has repeated enough, then a graph
def _add_gsim(ref: tf.Tensor, dist: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    """The gray pyramid, gradients and entropy of each reference once per unique reference. References and
    distorted images share one batch (R + N maps) so that each XLA stage compiles once per scale rather than
    once per group (each compilation is paid per stage and shape); they meet only in `_scale_log_quality`.
    Traced per input shape."""
    num_refs = ref.shape[0]
    maps = tf.squeeze(tf.concat([colour.rgb2gray(ref), colour.rgb2gray(dist)], 0), -1)  # MATLAB rgb2gray
    # A map holding NaN or infinite values gives NaN (as the other metrics do): its histograms cannot count them.
    finite = tf.reduce_all(tf.math.is_finite(maps), axis=[1, 2])
    maps = tf.where(tf.math.is_finite(maps), maps, tf.zeros_like(maps))
    ref_ok, dist_ok = batching.split_batch(finite, num_refs, ref_index)
    egm = arithmetic.similarity(*batching.split_batch(gray_entropy(maps), num_refs, ref_index), C_ENTROPY)
    log_quality = fva = None
    for scale in range(NUM_SCALES):
        gradients = _gradient(maps)
        log_q = _scale_log_quality(maps, gradients, ref_index, num_refs)
        log_quality = log_q if log_quality is None else log_quality + log_q
        if scale == 0:  # FVA: similarity of the mean gradient energies at full resolution
            fva = arithmetic.similarity(
                *batching.split_batch(_gradient_mean(gradients), num_refs, ref_index), C_FREQUENCY
            )
        if scale + 1 < NUM_SCALES:
            maps = _halve_xla(maps)
    scores = tf.exp(log_quality) * fva * egm
    return tf.where(tf.logical_and(ref_ok, dist_ok), scores, tf.constant(float("nan"), scores.dtype))


def add_gsim(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """ADD-GSIM of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical, higher better).

    ref_index: see `validation.check_indexed` (pair i = (ref[ref_index[i]], dist[i])); the reference's gray
    pyramid, gradients and entropy are then computed once per unique reference.
    """
    ref, dist, ref_index = validation.check_indexed("add_gsim", ref, dist, ref_index)
    return _add_gsim(ref, dist, ref_index)
