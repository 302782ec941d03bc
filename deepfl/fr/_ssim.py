"""SSIM (Wang, Bovik, Sheikh, Simoncelli 2004) as in Wang's `ssim.m` (2009 version).

MATLAB `rgb2gray` first; automatic downsampling by f = max(1, round(min(H, W) / 256)) with a symmetric-border
f x f box filter and subsampling; 11x11 Gaussian window (sigma 1.5), 'valid' filtering, K = (0.01, 0.03), L = 255;
the score is the mean of the SSIM map.
The images to filter and the maps from the window moments are XLA-fused passes (the 11x11 filtering stays a
depthwise convolution). With `ref_index` the reference's gray image and window moments are computed once per
unique reference (`reference_moments`).
"""

from __future__ import annotations

import tensorflow as tf

from deepfl.fr.functional import batching, colour, filters, pooling, staging, validation

K1, K2, L = 0.01, 0.03, 255.0
WINDOW_SIZE, WINDOW_SIGMA = 11, 1.5


@staging.xla_stage
def _sources(a: tf.Tensor, b: tf.Tensor | None = None, d: tf.Tensor | None = None) -> tf.Tensor:
    """The images whose windowed means are the SSIM moments, as channels: a, a^2 (, b, b^2)(, d^2).

    One XLA pass, because TensorFlow's concatenation along a last axis of size 1 costs as much as the
    filtering it feeds. Exact (products only).
    """
    channels = [a, a * a] + ([b, b * b] if b is not None else []) + ([d * d] if d is not None else [])
    return tf.concat(channels, axis=-1)


def reference_moments(x: tf.Tensor) -> tf.Tensor:
    """Windowed mean and mean square of NHW1 reference images ('valid' 11x11 Gaussian): the reference-only
    part of `ssim_maps`, computed once per unique reference. Returns N,h,w,2."""
    window = filters.gaussian_kernel2d(WINDOW_SIZE, WINDOW_SIGMA)
    return filters.correlate(_sources(x), window, shape="valid")


@staging.xla_stage
def _maps(ref_moments: tf.Tensor, dist_moments: tf.Tensor, c1: float, c2: float) -> tuple[tf.Tensor, tf.Tensor]:
    """SSIM and cs maps from the windowed moments, one XLA pass: (mu1, E[x^2]) are the first two channels of
    ref_moments, (mu2, E[y^2], E[(x-y)^2]) the last three of dist_moments (the same tensor when unshared)."""
    mu1, e11 = ref_moments[..., 0], ref_moments[..., 1]
    mu2, e22, edd = dist_moments[..., -3], dist_moments[..., -2], dist_moments[..., -1]
    # sigma12 is never formed: 2 sigma12 = s1 + s2 - var(x - y) and 2 mu1 mu2 = mu1^2 + mu2^2 - (mu1 - mu2)^2,
    # so both terms are written as 1 - deficit; exact algebra that keeps float32 accurate for nearly identical
    # images (float32 E[xy] - mu1 mu2 loses ~1e-4).
    mu_d = mu1 - mu2
    var_sum = (e11 - mu1 * mu1) + (e22 - mu2 * mu2)
    var_d = tf.nn.relu(edd - mu_d * mu_d)
    cs_map = 1.0 - var_d / (var_sum + c2)
    ssim_map = (1.0 - mu_d * mu_d / (mu1 * mu1 + mu2 * mu2 + c1)) * cs_map
    return ssim_map, cs_map


def ssim_maps(
    x: tf.Tensor, y: tf.Tensor, data_range: float = L, ref_index: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """SSIM and contrast-structure maps of NHWC gray images ('valid' 11x11 Gaussian window, as `ssim_index`).

    x: R reference images, y: N distorted images; pair i is (x[ref_index[i]], y[i]) (x[i] when ref_index is
    None). The reference's moments are filtered once per reference and gathered per pair.
    """
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    window = filters.gaussian_kernel2d(WINDOW_SIZE, WINDOW_SIGMA)
    d = batching.take_refs(x, ref_index) - y
    if ref_index is None:  # one filtering pass for all moments of both images
        moments = filters.correlate(_sources(x, y, d), window, shape="valid")
        return _maps(moments, moments, c1, c2)
    ref_moments = batching.take_refs(reference_moments(x), ref_index)
    return _maps(ref_moments, filters.correlate(_sources(y, d=d), window, shape="valid"), c1, c2)


@staging.compile_on_repeat(uncompiled="ssim")  # NumPy until a shape has repeated enough, then a graph
def _ssim(ref: tf.Tensor, dist: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    f = filters.auto_downsample_factor(ref.shape[1], ref.shape[2])
    x = filters.box_downsample(colour.rgb2gray(ref, tf.float32), f, "symmetric")
    y = filters.box_downsample(colour.rgb2gray(dist, tf.float32), f, "symmetric")
    ssim_map, _ = ssim_maps(x, y, ref_index=ref_index)
    return pooling.mean64(ssim_map)


def ssim(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """SSIM of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical).

    With `ref_index` (N integers), `ref` holds R unique references and pair i is (ref[ref_index[i]], dist[i]).
    """
    ref, dist, ref_index = validation.check_indexed("ssim", ref, dist, ref_index)
    return _ssim(ref, dist, ref_index)
