"""FSIMc (Zhang, Zhang, Mou, Zhang 2011) as in Zhang's `FeatureSIM.m` (the colour output, as in KADIS).

YIQ (0.299/0.587/0.114, ...) in double; every channel box-averaged by f = max(1, round(min(H, W) / 256)) with
`conv2(..., 'same')` (zero border) and subsampled; phase congruency of Y by Kovesi's `phasecong2` as shipped
with FSIM (4 scales, 4 orientations, min wavelength 6, mult 2, sigmaOnf 0.55, dThetaOnSigma 1.2, k 2, low-pass
0.45/15, noise threshold from the median of the finest scale, /1.7); Scharr gradients (/16, zero border);
T1 = 0.85, T2 = 160, T3 = T4 = 200, lambda = 0.03 with MATLAB's `real((S_I .* S_Q) .^ lambda)`; pooled
with max(PC1, PC2) as weights.
The log-Gabor filter bank and its noise constants depend only on the size and are built once per size in
numpy (float64; `phasecong_filters`, shared with the NumPy form that runs a shape's first call). The maps run
as two XLA stages (box + YIQ + gradient + FFT bank + energy; threshold + pooling) around the numpy median; with
`ref_index` the maps of each unique reference are computed once. Guard (not in the original, which returns
NaN): where the amplitude sum is 0 (constant images) PC is 0, and all-zero weights fall back to a plain mean.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from deepfl.fr.functional import arithmetic, batching, colour, filters, pooling, spectral, staging, validation
from deepfl.fr.uncompiled.threads import in_parallel

N_SCALES, N_ORIENTS = 4, 4
MIN_WAVELENGTH, MULT, SIGMA_ON_F, D_THETA_ON_SIGMA, K = 6.0, 2.0, 0.55, 1.2, 2.0
EPSILON = 1e-4
T1, T2, T3, T4, LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03


def quarter_blocks(rows: int, cols: int) -> list[tuple[tuple, tuple]]:
    """(block of the rows x cols grid, the matching view of the quarter grid) pairs that tile phasecong2's
    frequency grid, indexing the last two axes: the grid holds -u at index n - k where it holds u at index k
    (exactly: only the sign differs), so a function of |u| and |v| at any index is its value at index
    min(k, n - k), in the quarter of indices 0 .. rows // 2 and 0 .. cols // 2."""
    top, left = rows // 2 + 1, cols // 2 + 1
    row_parts = ((slice(0, top), slice(0, top)), (slice(top, rows), slice(rows - top, 0, -1)))
    col_parts = ((slice(0, left), slice(0, left)), (slice(left, cols), slice(cols - left, 0, -1)))
    return [((..., r, c), (..., r_q, c_q)) for r, r_q in row_parts for c, c_q in col_parts]


def unfold(quarter: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A function of |u| and |v| on the whole rows x cols grid from its quarter (see `quarter_blocks`)."""
    full = np.empty(quarter.shape[:-2] + (rows, cols), quarter.dtype)
    for block, source in quarter_blocks(rows, cols):
        full[block] = quarter[source]
    return full


@functools.lru_cache(maxsize=16)
def phasecong_filters(rows: int, cols: int, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """phasecong2's filters and each orientation's noise factor: filter (o, s) is angular[o] * radial[s], the
    angular parts (orientation, rows, cols) in full, stored in `dtype` (their Gaussian is taken in float32), and the
    radial parts (scale, rows // 2 + 1, cols // 2 + 1) in float64 on the quarter of the grid (`quarter_blocks`,
    `unfold`). The orientations are built on both cores (`threads.in_parallel`): a new image size pays this once.

    The radial part (log-Gabor times the low-pass) depends on |u| and |v| only. The angular spread
    exp(-dtheta^2 / (2 thetaSigma^2)) takes dtheta = theta - angle wrapped into [-pi, pi], which phasecong2 obtains
    as atan2(ds, dc) of the rotated sine and cosine.

    The factor F_o turns the median of |EO(scale 1, o)|^2 into the energy threshold: T_o = sqrt(median * F_o)
    (phasecong2: noisePower = -median/log(0.5)/EM_n; tau = sqrt(noisePower (sum An^2 + 2 sum AiAj));
    T = (tau sqrt(pi/2) + k sqrt(2 - pi/2) tau) / 1.7). phasecong2 sums products of the filters' spatial responses
    real(ifft2(b)) * sqrt(rows * cols). The real part is the inverse transform of b's symmetric part
    (b(k) + b(-k)) / 2, so by Parseval's theorem these sums equal the same sums over the symmetric parts in the
    frequency domain (no inverse FFTs); sum An^2 + 2 sum AiAj is the sum of the squared sum over scales, and as
    the radial parts are symmetric the symmetric part of orientation o's sum is sum_s radial[s] times angular[o]'s.
    """
    u = spectral.fft_grid(2, cols)[0][:1]  # 1 x cols (the grid along one axis does not depend on the other's size)
    v = spectral.fft_grid(rows, 2)[1][:, :1]  # rows x 1
    radius = np.sqrt(u[:, : cols // 2 + 1] ** 2 + v[: rows // 2 + 1] ** 2)
    lowpass = 1.0 / (1.0 + (radius / 0.45) ** (2 * 15))
    radial = np.stack(
        [
            spectral.log_gabor_radial(radius, 1.0 / (MIN_WAVELENGTH * MULT**s), SIGMA_ON_F) * lowpass
            for s in range(N_SCALES)
        ]
    )

    theta = np.arctan2(-v, u)
    theta_sigma = math.pi / N_ORIENTS / D_THETA_ON_SIGMA
    blocks = quarter_blocks(rows, cols)
    sum_sq, finest_sq = np.sum(radial, axis=0) ** 2, radial[0] ** 2
    scale = (math.sqrt(math.pi / 2) + K * math.sqrt(2 - math.pi / 2)) / 1.7
    angular = np.empty((N_ORIENTS, rows, cols), dtype)

    def orientation(o: int) -> float:
        """Writes angular[o] and returns the orientation's noise factor."""
        spread = np.subtract(theta, o * math.pi / N_ORIENTS)  # dtheta in [-7 pi / 4, pi]
        np.add(spread, 2 * math.pi, out=spread, where=spread < -math.pi)
        np.square(spread, out=spread)
        spread = spread.astype(np.float32)
        spread *= np.float32(-1.0 / (2 * theta_sigma**2))
        np.exp(spread, out=spread)  # float32 (NumPy's float64 exp is a scalar loop on CPUs without AVX-512)
        angular[o] = spread
        spread = spread.astype(np.float64)
        symmetric = np.roll(spread[::-1, ::-1], 1, axis=(0, 1))  # spread(-k)
        symmetric += spread  # twice the symmetric part
        energy = 0.25 * sum(np.einsum("ij,ij,ij->", sum_sq[q], symmetric[b], symmetric[b]) for b, q in blocks)
        em_n = sum(np.einsum("ij,ij,ij->", finest_sq[q], spread[b], spread[b]) for b, q in blocks)
        return energy / em_n / (-math.log(0.5)) * scale**2

    factors = np.array(in_parallel(orientation, range(N_ORIENTS)))
    return radial, angular, factors


def median_last(values: np.ndarray) -> np.ndarray:
    """MATLAB `median` over the last axis (mean of the two middle values for an even count) in float64.

    The two middle order statistics are selected exactly but without partitioning whole rows: a strided sample of
    each row brackets them, and only the values between the brackets are partitioned (a row whose brackets miss
    is partitioned whole). The selected elements are those of a full sort, so the result equals `np.median`'s
    computed in float64.
    """
    n = values.shape[-1]
    rows = values.reshape(-1, n)
    lower_rank, upper_rank = (n - 1) // 2, n // 2
    sample = np.sort(rows[:, :: max(1, n // 4096)], axis=1)
    size = sample.shape[1]
    margin = 2 * math.isqrt(size) + 4  # > 4 standard deviations of the rank of the row's median in the sample
    low = sample[:, max(0, lower_rank * size // n - margin)][:, None]
    high = sample[:, min(size - 1, upper_rank * size // n + margin)][:, None]
    below = [np.count_nonzero(row) for row in rows < low]
    inside = rows >= low
    inside &= rows <= high
    counts = [np.count_nonzero(row) for row in inside]
    bands = np.split(np.compress(inside.ravel(), rows.ravel()), np.cumsum(counts)[:-1])
    result = np.empty(len(rows))
    for i, (row, band, skipped, count) in enumerate(zip(rows, bands, below, counts)):
        if not skipped <= lower_rank <= upper_rank < skipped + count:
            band, skipped = row, 0
        picked = np.partition(band, (lower_rank - skipped, upper_rank - skipped))
        result[i] = 0.5 * (float(picked[lower_rank - skipped]) + float(picked[upper_rank - skipped]))
    return result.reshape(values.shape[:-1])


def _median_last(x: tf.Tensor) -> tf.Tensor:
    """`median_last` of a tensor, in float64 (numpy's O(n) selection instead of a full `tf.sort`)."""
    result = tf.numpy_function(median_last, [x], tf.float64, stateful=False)
    return tf.ensure_shape(result, x.shape[:-1])


def _pc_energy(y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Gray images M,H,W -> phasecong2's energy per orientation M,O,H,W, amplitude sum M,H,W and the finest
    scale's squared amplitude M,O,H*W (whose median sets the noise threshold).

    Written per (orientation, scale) slice so that XLA fuses the whole chain into one pass over the 16
    responses instead of ~17 separate TensorFlow passes.
    """
    rows, cols = y.shape[1], y.shape[2]
    radial, angular, _ = phasecong_filters(rows, cols)
    filters = (angular[:, None] * unfold(radial, rows, cols)[None]).reshape(N_ORIENTS * N_SCALES, rows, cols)
    eo = tf.signal.ifft2d(spectral.fft2(y)[:, None] * tf.constant(filters.astype(np.complex64)))  # M, O*S, H, W
    energies, finest, an_all = [], [], 0.0
    for o in range(N_ORIENTS):
        even = [tf.math.real(eo[:, o * N_SCALES + s]) for s in range(N_SCALES)]
        odd = [tf.math.imag(eo[:, o * N_SCALES + s]) for s in range(N_SCALES)]
        amplitude = [tf.sqrt(e * e + q * q) for e, q in zip(even, odd)]
        sum_e, sum_o = tf.add_n(even), tf.add_n(odd)
        # phasecong2: sum_s (e MeanE + o MeanO - |e MeanO - o MeanE|) with Mean = sum / XEnergy. Multiplied out:
        # (sumE^2 + sumO^2 - sum_s |e sumO - o sumE|) / XEnergy, one division per pixel instead of 2 + 16
        # products by the means (float32 rounding differs, ~2e-7 relative).
        squared = sum_e * sum_e + sum_o * sum_o
        spread = tf.add_n([tf.abs(e * sum_o - q * sum_e) for e, q in zip(even, odd)])
        energies.append((squared - spread) / (tf.sqrt(squared) + EPSILON))
        finest.append(tf.square(amplitude[0]))
        an_all = an_all + tf.add_n(amplitude)
    return tf.stack(energies, axis=1), an_all, tf.reshape(tf.stack(finest, axis=1), [-1, N_ORIENTS, rows * cols])


@staging.xla_stage  # elementwise chains fused; the FFTs run as fast as TensorFlow's own
def _fsim_maps(images: tf.Tensor, factor: int) -> tuple[tf.Tensor, ...]:
    """RGB images M,H,W,3 -> box-downsampled YIQ, Scharr gradient of Y and `_pc_energy` of Y.

    The box average is linear, so it commutes with the YIQ matrix: averaging RGB first mixes 1/f^2 of the
    pixels (float32 rounding differs, ~1e-7 relative).
    """
    yiq = colour.mix_channels(filters.box_downsample(images, factor, "zeros"), colour.YIQ)
    lum = yiq[..., 0]
    return (yiq, filters.scharr_magnitude(lum)) + _pc_energy(lum)


def _pc_from_energy(energy: tf.Tensor, an_all: tf.Tensor, median: tf.Tensor, factors: np.ndarray) -> tf.Tensor:
    """ResultPC = sum over orientations of max(energy - T_o, 0) / sum of amplitudes (0 where that sum is 0)."""
    threshold = tf.cast(tf.sqrt(median * tf.constant(factors)), tf.float32)[:, :, None, None]
    energy_all = tf.reduce_sum(tf.nn.relu(energy - threshold), axis=1)
    return tf.where(an_all > 0, energy_all / tf.where(an_all > 0, an_all, tf.ones_like(an_all)), 0.0)


@staging.xla_stage  # elementwise chain and pooling fused
def _fsim_pool(
    yiq: tf.Tensor,
    gm: tf.Tensor,
    energy: tf.Tensor,
    an_all: tf.Tensor,
    median: tf.Tensor,
    num_refs: int,
    ref_index: tf.Tensor | None,
) -> tf.Tensor:
    """Per-image maps of the R references followed by the N distorted images -> N FSIMc scores."""
    _, _, factors = phasecong_filters(yiq.shape[1], yiq.shape[2])
    pc1, pc2 = batching.split_batch(_pc_from_energy(energy, an_all, median, factors), num_refs, ref_index)
    g1, g2 = batching.split_batch(gm, num_refs, ref_index)
    yiq1, yiq2 = batching.split_batch(yiq, num_refs, ref_index)
    pc_sim = arithmetic.similarity(pc1, pc2, T1)
    g_sim = arithmetic.similarity(g1, g2, T2)
    chroma = arithmetic.real_power(
        arithmetic.similarity(yiq1[..., 1], yiq2[..., 1], T3) * arithmetic.similarity(yiq1[..., 2], yiq2[..., 2], T4),
        LAMBDA,
    )
    return pooling.weighted_mean(g_sim * pc_sim * chroma, tf.maximum(pc1, pc2), axes=(1, 2))


@staging.compile_on_repeat(uncompiled="fsim")  # NumPy until a shape has repeated enough, then a graph
def _fsim(ref: tf.Tensor, dist: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    f = filters.auto_downsample_factor(ref.shape[1], ref.shape[2])
    yiq, gm, energy, an_all, finest = _fsim_maps(tf.concat([ref, dist], axis=0), f)
    return _fsim_pool(yiq, gm, energy, an_all, _median_last(finest), ref.shape[0], ref_index)


def fsim(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """FSIMc of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical).

    With `ref_index` (N integers), `ref` holds R unique references and pair i is (ref[ref_index[i]], dist[i]):
    each reference's YIQ, gradient and phase congruency are computed once.
    """
    ref, dist, index = validation.check_indexed("fsim", ref, dist, ref_index)
    return _fsim(ref, dist, index)
