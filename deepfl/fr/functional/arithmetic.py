"""MATLAB arithmetic on numbers and tensors: `round`, real parts of powers, `mat2gray`, and the similarity
terms (2ab + c) / (a^2 + b^2 + c) shared by the SSIM-like metrics.
"""

from __future__ import annotations

import math

import tensorflow as tf


def matlab_round(x: float) -> int:
    """MATLAB `round` on a Python number: half away from zero (Python's `round` rounds half to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def round_half_away(x: tf.Tensor) -> tf.Tensor:
    """MATLAB `round` on tensors: half away from zero (tf.round rounds half to even)."""
    return tf.sign(x) * tf.floor(tf.abs(x) + 0.5)


def pow_nonneg(x: tf.Tensor, exponent: float) -> tf.Tensor:
    """x ** exponent for x >= 0 and exponent > 0 as exp(exponent * log(x)) (0 ** p = 0).

    TensorFlow's CPU `pow` kernel is scalar, the exp/log pair vectorises; the relative difference is <= 3e-6,
    far below the metrics' tolerances.
    """
    return tf.exp(exponent * tf.math.log(x))


def real_power(x: tf.Tensor, exponent: float) -> tf.Tensor:
    """MATLAB `real(x .^ p)` for real x: |x|^p cos(p pi) where x < 0."""
    magnitude = pow_nonneg(tf.abs(x), exponent)
    return tf.where(x < 0, magnitude * math.cos(exponent * math.pi), magnitude)


def similarity(a: tf.Tensor, b: tf.Tensor, constant: float) -> tf.Tensor:
    """(2ab + c) / (a^2 + b^2 + c), the similarity used by SSIM-like metrics."""
    return (2.0 * a * b + constant) / (a * a + b * b + constant)


def dissimilarity(a: tf.Tensor, b: tf.Tensor, constant: float) -> tf.Tensor:
    """1 - similarity(a, b, c) = (a - b)^2 / (a^2 + b^2 + c), accurate in float32 when a and b are close."""
    return tf.square(a - b) / (a * a + b * b + constant)


def mat2gray(x: tf.Tensor, axes=(1, 2)) -> tf.Tensor:
    """MATLAB `mat2gray` per image: (x - min) / (max - min); a constant image maps to zeros (not NaN)."""
    lo = tf.reduce_min(x, axis=axes, keepdims=True)
    hi = tf.reduce_max(x, axis=axes, keepdims=True)
    span = hi - lo
    return tf.where(span > 0, (x - lo) / tf.where(span > 0, span, tf.ones_like(span)), tf.zeros_like(x))
