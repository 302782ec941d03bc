"""FSIMc (Zhang, Zhang, Mou, Zhang 2011) as in Zhang's `FeatureSIM.m` (the colour output, as in KADIS).

YIQ (0.299/0.587/0.114, ...) in double; every channel box-averaged by f = max(1, round(min(H, W) / 256)) with
`conv2(..., 'same')` (zero border) and subsampled; phase congruency of Y by Kovesi's `phasecong2` as shipped
with FSIM (4 scales, 4 orientations, min wavelength 6, mult 2, sigmaOnf 0.55, dThetaOnSigma 1.2, k 2, low-pass
0.45/15, noise threshold from the median of the finest scale, /1.7); Scharr gradients (/16, zero border);
T1 = 0.85, T2 = 160, T3 = T4 = 200, lambda = 0.03 with MATLAB's `real((S_I .* S_Q) .^ lambda)`; pooled
with max(PC1, PC2) as weights.
The log-Gabor filter bank and its noise constants depend only on the size and are built once per size in
numpy (float64). Guard (not in the original, which returns NaN): where the amplitude sum is 0 (constant images)
PC is 0, and all-zero weights fall back to a plain mean.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from deepfl.fr import common

N_SCALES, N_ORIENTS = 4, 4
MIN_WAVELENGTH, MULT, SIGMA_ON_F, D_THETA_ON_SIGMA, K = 6.0, 2.0, 0.55, 1.2, 2.0
EPSILON = 1e-4
T1, T2, T3, T4, LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03


@functools.lru_cache(maxsize=16)
def phasecong_filters(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Frequency responses (orient*scale, rows, cols) of phasecong2's filters and each orientation's noise factor.

    The factor F_o turns the median of |EO(scale 1, o)|^2 into the energy threshold: T_o = sqrt(median * F_o)
    (phasecong2: noisePower = -median/log(0.5)/EM_n; tau = sqrt(noisePower (sum An^2 + 2 sum AiAj));
    T = (tau sqrt(pi/2) + k sqrt(2 - pi/2) tau) / 1.7).
    """
    u, v = common.fft_grid(rows, cols)
    radius = np.sqrt(u ** 2 + v ** 2)
    theta = np.arctan2(-v, u)
    lowpass = 1.0 / (1.0 + (radius / 0.45) ** (2 * 15))
    theta_sigma = math.pi / N_ORIENTS / D_THETA_ON_SIGMA
    filters, factors = [], []
    for o in range(N_ORIENTS):
        angle = o * math.pi / N_ORIENTS
        ds = np.sin(theta) * math.cos(angle) - np.cos(theta) * math.sin(angle)
        dc = np.cos(theta) * math.cos(angle) + np.sin(theta) * math.sin(angle)
        spread = np.exp(-np.abs(np.arctan2(ds, dc)) ** 2 / (2 * theta_sigma ** 2))
        bank = []
        for s in range(N_SCALES):
            gabor = common.log_gabor_radial(radius, 1.0 / (MIN_WAVELENGTH * MULT ** s), SIGMA_ON_F) * lowpass
            gabor[0, 0] = 0.0
            bank.append(gabor * spread)
        spatial = [np.real(np.fft.ifft2(b)) * math.sqrt(rows * cols) for b in bank]
        sum_an2 = sum(np.sum(a ** 2) for a in spatial)
        sum_aiaj = sum(np.sum(spatial[i] * spatial[j]) for i in range(N_SCALES) for j in range(i + 1, N_SCALES))
        em_n = np.sum(bank[0] ** 2)
        factor = (sum_an2 + 2 * sum_aiaj) / em_n / (-math.log(0.5))
        scale = (math.sqrt(math.pi / 2) + K * math.sqrt(2 - math.pi / 2)) / 1.7
        factors.append(factor * scale ** 2)
        filters.extend(bank)
    return np.stack(filters).astype(np.float64), np.asarray(factors, np.float64)


def _median_last(x: tf.Tensor) -> tf.Tensor:
    """MATLAB `median` over the last axis (mean of the two middle values for an even count), in float64.

    numpy's selection (O(n) partition) is ~25x faster here than a full `tf.sort`; it partitions the float32
    values in place of a float64 copy (the same two middle elements, averaged in float64: identical result).
    """
    def median(values: np.ndarray) -> np.ndarray:
        n = values.shape[-1]
        middle = [(n - 1) // 2, n // 2]
        parts = np.partition(values, middle, axis=-1)[..., middle].astype(np.float64)
        return 0.5 * (parts[..., 0] + parts[..., 1])

    result = tf.numpy_function(median, [x], tf.float64, stateful=False)
    return tf.ensure_shape(result, x.shape[:-1])


def phase_congruency(y: tf.Tensor) -> tf.Tensor:
    """phasecong2's ResultPC of gray images NHW (float32) -> NHW."""
    rows, cols = y.shape[1], y.shape[2]
    filters, factors = phasecong_filters(rows, cols)
    spectrum = common.fft2(y)[:, None]  # N,1,H,W
    eo = tf.signal.ifft2d(spectrum * tf.constant(filters.astype(np.complex64)))  # N, O*S, H, W
    eo = tf.reshape(eo, [-1, N_ORIENTS, N_SCALES, rows, cols])
    even, odd = tf.math.real(eo), tf.math.imag(eo)
    amplitude = tf.sqrt(even * even + odd * odd)
    sum_e = tf.reduce_sum(even, axis=2, keepdims=True)
    sum_o = tf.reduce_sum(odd, axis=2, keepdims=True)
    x_energy = tf.sqrt(sum_e * sum_e + sum_o * sum_o) + EPSILON
    mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
    energy = tf.reduce_sum(even * mean_e + odd * mean_o - tf.abs(even * mean_o - odd * mean_e), axis=2)  # N,O,H,W
    finest = tf.reshape(amplitude[:, :, 0] ** 2, [-1, N_ORIENTS, rows * cols])
    median = _median_last(finest)  # N,O (float64)
    threshold = tf.cast(tf.sqrt(median * tf.constant(factors)), tf.float32)[:, :, None, None]
    energy_all = tf.reduce_sum(tf.nn.relu(energy - threshold), axis=1)
    an_all = tf.reduce_sum(amplitude, axis=[1, 2])
    return tf.where(an_all > 0, energy_all / tf.where(an_all > 0, an_all, tf.ones_like(an_all)), 0.0)


def real_power(x: tf.Tensor, exponent: float) -> tf.Tensor:
    """MATLAB `real(x .^ p)` for real x: |x|^p cos(p pi) where x < 0."""
    magnitude = common.pow_nonneg(tf.abs(x), exponent)
    return tf.where(x < 0, magnitude * math.cos(exponent * math.pi), magnitude)


@tf.function(jit_compile=False)  # traced once per input shape: the code needs static H, W
def _fsim(ref: tf.Tensor, dist: tf.Tensor) -> tf.Tensor:
    f = common.auto_downsample_factor(ref.shape[1], ref.shape[2])
    yiq = common.box_downsample(common.linear_color(tf.concat([ref, dist], axis=0), common.YIQ), f, "zeros")
    n = tf.shape(ref)[0]
    lum = yiq[..., 0]
    pc = phase_congruency(lum)
    gm = common.gradient_magnitude(yiq[..., :1], common.SCHARR_X)[..., 0]
    pc1, pc2 = pc[:n], pc[n:]
    g1, g2 = gm[:n], gm[n:]
    i1, i2 = yiq[:n, :, :, 1], yiq[n:, :, :, 1]
    q1, q2 = yiq[:n, :, :, 2], yiq[n:, :, :, 2]
    pc_sim = common.similarity(pc1, pc2, T1)
    g_sim = common.similarity(g1, g2, T2)
    chroma = real_power(common.similarity(i1, i2, T3) * common.similarity(q1, q2, T4), LAMBDA)
    pc_max = tf.maximum(pc1, pc2)
    return common.weighted_mean(g_sim * pc_sim * chroma, pc_max, axes=(1, 2))


def fsim(ref: tf.Tensor, dist: tf.Tensor) -> tf.Tensor:
    """FSIMc of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical)."""
    ref, dist = common.check_tensors("fsim", ref, dist, min_size=3)
    return _fsim(ref, dist)
