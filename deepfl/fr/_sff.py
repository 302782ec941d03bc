"""SFF: Sparse Feature Fidelity (Chang, Yang, Gan, Wang, IEEE TIP 22(10), 2013), batched TensorFlow.

A port of the authors' `SFF.m` v2.0: the colour images are cut into non-overlapping 8x8x3 blocks (the grid of
the original, which drops the last block row/column when the size is a multiple of 8); per-block means are
removed; blocks whose mean absolute difference reaches the median are kept; their ICA responses W @ x are
compared where the reference response energy exceeds 0.4 x its mean (feature similarity, C = 0.08); block means
of the selected blocks are correlated (luminance correlation, Cm = 0.001); score = 0.8 lum + 0.2 feature.
W is our own ICA basis (`deepfl/fr/data/sff_ica.npz`, see `deepfl.fr.sff_basis`); pass `w=` for another one.
Everything after the pixels is float64 as in MATLAB. Where no selected block of the reference has any
feature response (a flat grey reference, or one flat grey wherever the change reaches the median; a flat
colour still responds, across its channels), the original averages an empty selection and scores NaN, and so
does this port: any number there would be invented (a feature term of 1, as before, rated a grey reference
identical to a photo, black or heavy noise). `deepfl-label` reports such a pair by name and skips its row.
With `ref_index` the reference's block vectors and ICA responses are computed once per unique reference
(values equal the unshared ones to 1e-16).
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from deepfl.fr.functional import batching, staging, validation

C_FEATURE = 0.08
C_LUMINANCE = 0.001
LAMBDA = 0.8
T_VISUAL = 0.4


@functools.lru_cache(maxsize=4)
def _default_basis() -> np.ndarray:
    from deepfl.fr.sff_basis import load_basis

    return load_basis()


def _natural_order(w: np.ndarray) -> np.ndarray:
    """W's columns reordered from MATLAB's column-major patch order (row fastest, then column, then channel)
    to the row-major (row, column, channel) order in which an NHWC block is stored, so that block vectors need
    no transpose of single values (`_block_vectors`); W @ x is the same sum in another order."""
    k, d = w.shape
    patch = int(round((d // 3) ** 0.5))
    return w.reshape(k, 3, patch, patch).transpose(0, 3, 2, 1).reshape(k, d)


def _block_vectors(images: tf.Tensor, patch: int) -> tf.Tensor:
    """NHWC -> (N, blocks, 3*patch*patch) float64 in row-major (row, column, channel) order, on the grid
    `1:patch:size-patch` of the original. Only whole rows of patch*3 values move, which is cheap; a transpose
    to MATLAB's order of single values would cost more than the rest of SFF."""
    shape = tf.shape(images)
    rows = (shape[1] - patch - 1) // patch + 1
    cols = (shape[2] - patch - 1) // patch + 1
    x = images[:, : rows * patch, : cols * patch, :]
    x = tf.reshape(x, [shape[0], rows, patch, cols, patch * 3])
    x = tf.transpose(x, [0, 1, 3, 2, 4])  # N, by, bx, row, (col, channel)
    return tf.cast(tf.reshape(x, [shape[0], rows * cols, 3 * patch * patch]), tf.float64)


def _median(values: tf.Tensor) -> tf.Tensor:
    """MATLAB `median` along the last axis (mean of the two middle values for even counts)."""
    ordered = tf.sort(values, axis=-1)
    n = tf.shape(values)[-1]
    return 0.5 * (tf.gather(ordered, (n - 1) // 2, axis=-1) + tf.gather(ordered, n // 2, axis=-1))


def _masked_mean(values: tf.Tensor, mask: tf.Tensor, axis) -> tf.Tensor:
    mask = tf.cast(mask, values.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(values * mask, axis), tf.reduce_sum(mask, axis))


def _features(images: tf.Tensor, w: tf.Tensor, patch: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Mean-removed block vectors, block means, ICA responses W @ x and their energies of each image (N, B, ...).
    W @ x is one 2-D matmul over all blocks of the batch (bit-identical to the batched form)."""
    x = _block_vectors(images, patch)
    mean = tf.reduce_mean(x, -1)
    x = x - mean[..., None]
    shape = tf.shape(x)
    a = tf.reshape(tf.matmul(tf.reshape(x, [-1, shape[2]]), w, transpose_b=True), [shape[0], shape[1], -1])
    return x, mean, a, tf.reduce_sum(a * a, -1)


@staging.xla_stage(reduce_retracing=True)
def _abs_difference(xr: tf.Tensor, xd: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    """|xr - xd| of every block pair, the reference blocks gathered per pair inside one XLA loop (TF's gather,
    subtract and abs made three passes over the float64 block vectors). Elementwise only: the values are
    exactly TF's."""
    return tf.abs(batching.take_refs(xr, ref_index) - xd)


# NumPy until a shape has repeated enough, then a graph
@staging.compile_on_repeat(reduce_retracing=True, uncompiled="sff")
def _sff(ref: tf.Tensor, dist: tf.Tensor, w: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    """w in row-major patch order (`_natural_order`); the reference features once per unique reference."""
    patch = int(round((w.shape[1] // 3) ** 0.5))
    xr, mr, a, energy = _features(ref, w, patch)
    xd, md, b, _ = _features(dist, w, patch)
    mr, a, energy = (batching.take_refs(t, ref_index) for t in (mr, a, energy))

    # Feature similarity on the blocks that changed at least as much as the median block. err is a TF sum, not
    # an XLA one: the summation order decides blocks that sit exactly on the median threshold.
    err = tf.reduce_mean(_abs_difference(xr, xd, ref_index), -1)
    chosen = err >= _median(err)[:, None]
    threshold = T_VISUAL * _masked_mean(energy, chosen, -1)
    visible = tf.logical_and(chosen, energy > threshold[:, None])
    similarity = tf.reduce_mean((2 * a * b + C_FEATURE) / (a * a + b * b + C_FEATURE), -1)
    count = tf.reduce_sum(tf.cast(visible, tf.float64), -1)
    feature = tf.where(
        count > 0, _masked_mean(similarity, visible, -1), tf.fill(tf.shape(count), tf.constant(np.nan, tf.float64))
    )

    # Luminance correlation of the block means whose change reaches the median change.
    merr = tf.abs(mr - md)
    mchosen = tf.cast(merr >= _median(merr)[:, None], tf.float64)
    cr = (mr - _masked_mean(mr, mchosen > 0, -1)[:, None]) * mchosen
    cd = (md - _masked_mean(md, mchosen > 0, -1)[:, None]) * mchosen
    luminance = (tf.reduce_sum(cr * cd, -1) + C_LUMINANCE) / (
        tf.sqrt(tf.reduce_sum(cr * cr, -1) * tf.reduce_sum(cd * cd, -1)) + C_LUMINANCE
    )
    return LAMBDA * luminance + (1 - LAMBDA) * feature


def sff(ref: tf.Tensor, dist: tf.Tensor, ref_index=None, w: np.ndarray | None = None) -> tf.Tensor:
    """SFF of float32 NHWC RGB batches in [0, 255] -> float64 tensor of N scores (1 = identical).

    ref_index: see `validation.check_indexed` (pair i = (ref[ref_index[i]], dist[i])); the reference's block
    vectors and ICA responses are then computed once per unique reference.
    w: the k x 3*p*p ICA feature detector (MATLAB column-major patch order); default: the shipped basis.
    """
    w = _default_basis() if w is None else np.asarray(w, np.float64)
    if w.ndim != 2 or w.shape[1] % 3 or int(round((w.shape[1] // 3) ** 0.5)) ** 2 * 3 != w.shape[1]:
        raise ValueError(f"w: expected a k x 3*p*p feature detector, got shape {w.shape}")
    patch = int(round((w.shape[1] // 3) ** 0.5))
    ref, dist, ref_index = validation.check_indexed("sff", ref, dist, ref_index, min_size=patch + 1)
    return _sff(ref, dist, tf.constant(_natural_order(w), tf.float64), ref_index)
