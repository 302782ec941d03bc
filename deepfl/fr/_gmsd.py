"""GMSD (Xue, Zhang, Mou, Bovik 2014) as in Xue's `GMSD.m`.

MATLAB `rgb2gray`; 2x2 average with `conv2(..., 'same')` (zero border) and subsampling by 2 (always, whatever
the size); Prewitt gradients (/3) with zero borders; GMS map with T = 170 (data in 0..255); score = `std2` of the
map (N - 1 normalisation). Lower is better; 0 = identical.
"""

from __future__ import annotations

import tensorflow as tf

from deepfl.fr.functional import batching, colour, filters, staging, validation

T = 170.0


def _gradients(rgb: tf.Tensor) -> tf.Tensor:
    """MATLAB rgb2gray, 2x2 average with subsampling, Prewitt gradient magnitude: NHWC RGB -> N,h,w."""
    x = filters.box_downsample(colour.rgb2gray(rgb, tf.float32), 2, "zeros")
    return filters.gradient_magnitude(x, filters.PREWITT_X)[..., 0]


@staging.compile_on_repeat(uncompiled="gmsd")  # NumPy until a shape has repeated enough, then a graph
def _gmsd(ref: tf.Tensor, dist: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    g1 = batching.take_refs(_gradients(ref), ref_index)  # once per unique reference
    g2 = _gradients(dist)
    # GMS = (2 g1 g2 + T) / (g1^2 + g2^2 + T) = 1 - (g1 - g2)^2 / (g1^2 + g2^2 + T): the std of the GMS map is
    # the std of that deficit, which float32 holds accurately even for nearly identical images.
    deficit = tf.square(g1 - g2) / (g1 * g1 + g2 * g2 + T)
    deficit = tf.cast(deficit, tf.float64)
    count = tf.cast(tf.shape(deficit)[1] * tf.shape(deficit)[2], tf.float64)
    centred = deficit - tf.reduce_mean(deficit, axis=[1, 2], keepdims=True)
    return tf.sqrt(tf.reduce_sum(centred * centred, axis=[1, 2]) / (count - 1.0))


def gmsd(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """GMSD of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (0 = identical, lower is better).

    With `ref_index` (N integers), `ref` holds R unique references and pair i is (ref[ref_index[i]], dist[i]):
    the reference's gradients are computed once per reference.
    """
    ref, dist, ref_index = validation.check_indexed("gmsd", ref, dist, ref_index)
    return _gmsd(ref, dist, ref_index)
