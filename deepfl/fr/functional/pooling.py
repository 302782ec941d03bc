"""Pooling of quality maps into one score per image, accumulated in float64."""

from __future__ import annotations

import tensorflow as tf


def weighted_mean(values: tf.Tensor, weights: tf.Tensor, axes=(1, 2, 3)) -> tf.Tensor:
    """sum(values * weights) / sum(weights) per image; falls back to the plain mean where all weights are 0
    (constant images, where the originals divide 0 by 0)."""
    total = sum64(weights, axes)
    weighted = sum64(values * weights, axes)
    plain = mean64(values, axes)
    return tf.where(total > 0, weighted / tf.where(total > 0, total, tf.ones_like(total)), plain)


def mean64(x: tf.Tensor, axes=(1, 2)) -> tf.Tensor:
    """Mean over `axes` accumulated in float64: float32 sums of ~1e5 values near 1 drift by ~1e-4."""
    return tf.reduce_mean(tf.cast(x, tf.float64), axis=axes)


def sum64(x: tf.Tensor, axes=(1, 2)) -> tf.Tensor:
    """Sum over `axes` accumulated in float64."""
    return tf.reduce_sum(tf.cast(x, tf.float64), axis=axes)
