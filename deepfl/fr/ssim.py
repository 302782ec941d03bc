"""SSIM (Wang, Bovik, Sheikh, Simoncelli 2004) as in Wang's `ssim.m` (2009 version).

MATLAB `rgb2gray` first; automatic downsampling by f = max(1, round(min(H, W) / 256)) with a symmetric-border
f x f box filter and subsampling; 11x11 Gaussian window (sigma 1.5), 'valid' filtering, K = (0.01, 0.03), L = 255;
the score is the mean of the SSIM map.
"""

from __future__ import annotations

import tensorflow as tf

from deepfl.fr import common

K1, K2, L = 0.01, 0.03, 255.0
WINDOW_SIZE, WINDOW_SIGMA = 11, 1.5


def reference_moments(x: tf.Tensor) -> tf.Tensor:
    """Windowed mean and mean square of NHW1 reference images ('valid' 11x11 Gaussian): the reference-only
    part of `ssim_maps`, computed once per unique reference. Returns N,h,w,2."""
    window = common.gaussian_kernel2d(WINDOW_SIZE, WINDOW_SIGMA)
    return common.correlate(tf.concat([x, x * x], axis=-1), window, shape="valid")


def ssim_maps(x: tf.Tensor, y: tf.Tensor, data_range: float = L, ref_index: tf.Tensor | None = None
              ) -> tuple[tf.Tensor, tf.Tensor]:
    """SSIM and contrast-structure maps of NHWC gray images ('valid' 11x11 Gaussian window, as `ssim_index`).

    x: R reference images, y: N distorted images; pair i is (x[ref_index[i]], y[i]) (x[i] when ref_index is
    None). The reference's moments are filtered once per reference and gathered per pair.
    """
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    window = common.gaussian_kernel2d(WINDOW_SIZE, WINDOW_SIGMA)
    d = common.take_refs(x, ref_index) - y
    # sigma12 is never formed: 2 sigma12 = s1 + s2 - var(x - y) and 2 mu1 mu2 = mu1^2 + mu2^2 - (mu1 - mu2)^2,
    # so both terms are written as 1 - deficit; exact algebra that keeps float32 accurate for nearly identical
    # images (float32 E[xy] - mu1 mu2 loses ~1e-4).
    if ref_index is None:  # one filtering pass for all moments of both images
        moments = common.correlate(tf.concat([x, x * x, y, y * y, d * d], axis=-1), window, shape="valid")
        mu1, e11, mu2, e22, edd = tf.unstack(moments, axis=-1)
    else:
        mu1, e11 = tf.unstack(common.take_refs(reference_moments(x), ref_index), axis=-1)
        moments = common.correlate(tf.concat([y, y * y, d * d], axis=-1), window, shape="valid")
        mu2, e22, edd = tf.unstack(moments, axis=-1)
    mu_d = mu1 - mu2
    var_sum = (e11 - mu1 * mu1) + (e22 - mu2 * mu2)
    var_d = tf.nn.relu(edd - mu_d * mu_d)
    cs_map = 1.0 - var_d / (var_sum + c2)
    ssim_map = (1.0 - mu_d * mu_d / (mu1 * mu1 + mu2 * mu2 + c1)) * cs_map
    return ssim_map, cs_map


@tf.function(jit_compile=False)  # traced once per input shape (and ref_index None or not): static H, W
def _ssim(ref: tf.Tensor, dist: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    f = common.auto_downsample_factor(ref.shape[1], ref.shape[2])
    x = common.box_downsample(common.rgb2gray(ref, tf.float32), f, "symmetric")
    y = common.box_downsample(common.rgb2gray(dist, tf.float32), f, "symmetric")
    ssim_map, _ = ssim_maps(x, y, ref_index=ref_index)
    return common.mean64(ssim_map)


def ssim(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """SSIM of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical).

    With `ref_index` (N integers), `ref` holds R unique references and pair i is (ref[ref_index[i]], dist[i]).
    """
    ref, dist, ref_index = common.check_indexed("ssim", ref, dist, ref_index)
    f = common.auto_downsample_factor(ref.shape[1], ref.shape[2])
    if min(-(-ref.shape[1] // f), -(-ref.shape[2] // f)) < WINDOW_SIZE:
        raise ValueError(f"ssim: images of {ref.shape[1]}x{ref.shape[2]} are too small for the 11x11 window "
                         f"after downsampling by {f}")
    return _ssim(ref, dist, ref_index)
