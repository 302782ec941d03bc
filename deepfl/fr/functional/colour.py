"""Colour conversions of the MATLAB originals on NHWC RGB in [0, 255]: exact `rgb2gray`, the 3x3 colour
matrices (YIQ, LMN, LHM) and VSI's CIELab.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from deepfl.fr.functional import staging
from deepfl.fr.functional.arithmetic import pow_nonneg

_RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _split_weight(w: float, bits: int = 12) -> tuple[float, float]:
    hi = round(w * 2**bits) / 2**bits
    return hi, w - hi


def rgb2gray(rgb: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """MATLAB `rgb2gray` on uint8 data: 0.2989 R + 0.5870 G + 0.1140 B rounded half away from zero; NHWC -> NHW1.

    MATLAB computes in double; float64 is slow here, so the weights are split as w = w_hi + w_lo with w_hi on a
    2^-12 grid: the w_hi part of the sum is exact in float32 and the rounding decision compares the small w_lo
    part (error < 1e-8) with exact thresholds. This reproduces the float64 result for all 2^24 colours (tested).
    The ~25 elementwise ops run as one XLA-fused pass.
    """
    return _rgb2gray_fused(tf.cast(rgb, tf.float32), dtype)


@staging.xla_stage
def _rgb2gray_fused(x: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """The body of `rgb2gray` on float32 NHWC RGB."""
    r, g, b = x[..., 0:1], x[..., 1:2], x[..., 2:3]
    (rh, rl), (gh, gl), (bh, bl) = (_split_weight(w) for w in _RGB2GRAY)
    high = r * rh + g * gh + b * bh + 0.5  # exact: multiples of 2^-12 below 2^9
    low = r * rl + g * gl + b * bl  # |low| < 0.1
    base = tf.floor(high)
    rem = high - base  # exact, in [0, 1)
    gray = base + tf.where(low >= 1.0 - rem, 1.0, tf.where(low < -rem, -1.0, 0.0))
    return tf.cast(tf.clip_by_value(gray, 0.0, 255.0), dtype)


def linear_color(rgb: tf.Tensor, matrix) -> tf.Tensor:
    """Applies a 3x3 colour matrix (rows = output channels) to NHWC RGB."""
    matrix = tf.constant(np.asarray(matrix, np.float64).T, rgb.dtype)
    return tf.tensordot(rgb, matrix, axes=[[3], [0]])


def mix_channels(rgb: tf.Tensor, matrix) -> tf.Tensor:
    """`linear_color` as explicit multiply-adds (rows of `matrix` = output channels), the form XLA fuses best
    (its 3-channel `tensordot` is slower than the multiply-adds)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return tf.stack([r * row[0] + g * row[1] + b * row[2] for row in matrix], axis=-1)


# FSIMc / SR-SIM: Y (0.299, 0.587, 0.114), I, Q as in FeatureSIM.m.
YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))
# VSI: L (0.06, 0.63, 0.27) and the opponent channels M, N as in VSI.m.
LMN = ((0.06, 0.63, 0.27), (0.30, 0.04, -0.35), (0.34, -0.60, 0.17))
# MDSI: luminance with rgb2gray's weights (not rounded) and the H, M opponent channels as in MDSI.m.
LHM = ((0.2989, 0.5870, 0.1140), (0.30, 0.04, -0.35), (0.34, -0.60, 0.17))


def rgb2lab_vsi(rgb: tf.Tensor) -> tf.Tensor:
    """sRGB (0..255) -> CIELab as in VSI.m's `RGB2Lab` (sRGB/D65 primaries, D50 white 0.9642/1/0.8251, kappa 903.3)."""
    x = rgb / 255.0
    x = tf.where(x <= 0.04045, x / 12.92, pow_nonneg((tf.maximum(x, 0.04045) + 0.055) / 1.055, 2.4))
    xyz = linear_color(
        x, ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
    )
    xyz = xyz / tf.constant([0.9642, 1.0, 0.8251], rgb.dtype)
    epsilon, kappa = 0.008856, 903.3
    f = tf.where(xyz > epsilon, pow_nonneg(tf.maximum(xyz, epsilon), 1.0 / 3.0), (kappa * xyz + 16.0) / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)
