"""MS-SSIM (Wang, Simoncelli, Bovik 2003) as in Wang's `msssim.m`.

MATLAB `rgb2gray`; five scales, each the previous one filtered by a 2x2 box with symmetric borders and
subsampled by 2 (`imfilter(..., 'symmetric', 'same')`, `(1:2:end)`); at each scale the `ssim_index_new` maps
(11x11 Gaussian, sigma 1.5, 'valid', K = (0.01, 0.03), L = 255); score = prod(mcs_1..4 ^ w_1..4) * mssim_5 ^ w_5
with w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). No initial downsampling (unlike `ssim.m`).
Deviation: a negative mean cs/ssim (MATLAB would return a complex number) is clipped to 0, as piq does.
"""

from __future__ import annotations

import tensorflow as tf

from deepfl.fr._ssim import ssim_maps
from deepfl.fr.functional import colour, filters, pooling, staging, validation

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
LEVELS = len(WEIGHTS)


@staging.compile_on_repeat(uncompiled="msssim")  # NumPy until a shape has repeated enough, then a graph
def _msssim(ref: tf.Tensor, dist: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    x = colour.rgb2gray(ref, tf.float32)
    y = colour.rgb2gray(dist, tf.float32)
    values = []
    for level in range(LEVELS):
        if level > 0:
            x = filters.box_downsample(x, 2, "symmetric")
            y = filters.box_downsample(y, 2, "symmetric")
        ssim_map, cs_map = ssim_maps(x, y, ref_index=ref_index)
        values.append(pooling.mean64(ssim_map if level == LEVELS - 1 else cs_map))
    values = tf.nn.relu(tf.stack(values, axis=0))
    weights = tf.constant(WEIGHTS, tf.float64)[:, None]
    return tf.reduce_prod(tf.pow(values, weights), axis=0)


def msssim(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """MS-SSIM of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical).

    With `ref_index` (N integers), `ref` holds R unique references and pair i is (ref[ref_index[i]], dist[i]):
    the reference's gray scales and window moments are computed once per reference.
    """
    ref, dist, ref_index = validation.check_indexed("msssim", ref, dist, ref_index)
    return _msssim(ref, dist, ref_index)
