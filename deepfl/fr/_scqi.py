"""SCQI: structural contrast-quality index (Bae & Kim, IEEE TIP 25(5), 2016, "A novel image quality assessment
with globally and locally consilient visual quality perception"), batched TensorFlow.

RECONSTRUCTED, NOT PORTED: the authors' MATLAB (published on the first author's site) is not mirrored anywhere
we could read, and only the paper's abstract-level description was available while writing this. We keep the
paper's named ingredients and choose the details ourselves (see docs/labels.md, fidelity table):
- luminance Y and chrominance I, Q (YIQ, as FSIMc);
- local 4x4 DCT of Y at every pixel (sliding window), AC coefficients weighted by a contrast sensitivity
  function (Mannos-Sakrison, 32 pixels per degree, normalised to peak 1);
- structural contrast index SCI = sqrt(C^2 / kappa): C^2 the mean CSF-weighted AC energy (contrast), kappa
  the kurtosis of the AC coefficients (high for structured edges, low for noise-like texture), as in Bae &
  Kim's SCI of their DCT-based JND model (IEEE TCSVT 2014);
- local quality = SCI similarity x (I similarity x Q similarity)^0.03, pooled with weights max(SCI_ref, SCI_dist).
The score is 1 for identical images and decreases with distortion (higher is better).

Computed as two XLA stages without convolutions (XLA's CPU convolutions are slow; the sliding DCT is a
butterfly on shifted slices); with `ref_index` the reference maps are computed once per unique reference.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from deepfl.fr.functional import arithmetic, batching, colour, staging, validation

BLOCK = 4
PIXELS_PER_DEGREE = 32.0
T_SCI = 4.0  # similarity constant of SCI (gray levels^2)
T_CHROMA = 200.0  # FSIMc's constant for I and Q
LAMBDA_CHROMA = 0.03  # FSIMc's exponent of the chrominance term
EPS_WEIGHT = 1e-3


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal 1-D DCT-II matrix, rows = frequencies."""
    k = np.arange(n)
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    c[0] /= np.sqrt(2.0)
    return c


def _csf_weights(n: int, ppd: float) -> np.ndarray:
    """Mannos-Sakrison CSF at the DCT frequencies (u, v) of an n x n block, peak-normalised; length n^2."""
    u, v = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    f = np.sqrt(u**2 + v**2) / (2.0 * n) * ppd  # cycles per degree
    csf = 2.6 * (0.0192 + 0.114 * f) * np.exp(-((0.114 * f) ** 1.1))
    csf = csf / csf.max()
    return csf.reshape(-1).astype(np.float32)


_DCT = _dct_matrix(BLOCK)


def _window_dct(x: tf.Tensor, axis: int) -> list[tf.Tensor]:
    """The BLOCK = 4 DCT coefficients of every 4-sample window along `axis` (1 or 2) of an NHW map, by the
    even/odd butterfly (sums and differences of mirrored samples first: fewer operations, and the odd
    coefficients come from differences, which are exact for nearby values). Valid windows only."""
    length = tf.shape(x)[axis] - (BLOCK - 1)
    taps = [x[:, k : k + length] if axis == 1 else x[:, :, k : k + length] for k in range(BLOCK)]
    s0, s1 = taps[0] + taps[3], taps[1] + taps[2]
    d0, d1 = taps[0] - taps[3], taps[1] - taps[2]
    b, c = float(_DCT[1, 0]), float(_DCT[1, 1])
    return [(s0 + s1) * float(_DCT[0, 0]), b * d0 + c * d1, (s0 - s1) * float(_DCT[2, 0]), c * d0 - b * d1]


def structural_contrast_index(y: tf.Tensor) -> tf.Tensor:
    """SCI map of luminance NHW in [0, 255] (valid 4x4 windows) -> NHW.

    The sliding 4x4 DCT is separable: a 4-tap pass down the columns, then along the rows; the 15 CSF-weighted
    AC coefficients are squared and averaged on the fly, so no 15-channel map is ever stored (under XLA this
    is one fused loop).
    """
    csf = _csf_weights(BLOCK, PIXELS_PER_DEGREE).reshape(BLOCK, BLOCK)
    energy = fourth = None
    for u, rows in enumerate(_window_dct(y, 1)):
        for v, coefficient in enumerate(_window_dct(rows, 2)):
            if u == v == 0:
                continue  # DC: weight 0
            power = tf.square(coefficient * float(csf[u, v]))
            energy = power if energy is None else energy + power
            fourth = tf.square(power) if fourth is None else fourth + tf.square(power)
    ac = BLOCK * BLOCK - 1
    energy, fourth = energy / ac, fourth / ac  # mean AC c^2 and c^4
    # C^2 / kurtosis = e / (m4 / e^2) = e^3 / m4 (0 for a flat window).
    return tf.sqrt(tf.math.divide_no_nan(energy * energy * energy, fourth))


def _box_mean(x: tf.Tensor) -> tf.Tensor:
    """Mean of every valid BLOCK x BLOCK window of an NHW map (separable sums of shifted slices)."""
    height = tf.shape(x)[1] - (BLOCK - 1)
    x = tf.add_n([x[:, k : k + height] for k in range(BLOCK)])
    width = tf.shape(x)[2] - (BLOCK - 1)
    return tf.add_n([x[:, :, k : k + width] for k in range(BLOCK)]) / float(BLOCK * BLOCK)


def _features(rgb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per-image maps SCQI compares, NHWC RGB -> (SCI, local mean of I, local mean of Q), each NHW (valid)."""
    yiq = colour.mix_channels(rgb, colour.YIQ)
    return structural_contrast_index(yiq[..., 0]), _box_mean(yiq[..., 1]), _box_mean(yiq[..., 2])


@staging.xla_stage(reduce_retracing=True)
def _features_xla(rgb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`_features` as one XLA function: the elementwise chains fuse into a few loops (as TF ops, each made a
    pass over a 16-channel map)."""
    return _features(rgb)


@staging.xla_stage(reduce_retracing=True)
def _pooled_quality(sci_r, i_r, q_r, sci_d, i_d, q_d, ref_index):
    """Local quality pooled with weights max(SCI_ref, SCI_dist); the reference maps gathered per pair."""
    sci_r, i_r, q_r = (batching.take_refs(x, ref_index) for x in (sci_r, i_r, q_r))
    s_structure = arithmetic.similarity(sci_r, sci_d, T_SCI)
    # Chrominance over the same 4x4 windows (local means), so every map has the valid-window size.
    s_chroma = arithmetic.similarity(i_r, i_d, T_CHROMA) * arithmetic.similarity(q_r, q_d, T_CHROMA)
    quality = s_structure * arithmetic.pow_nonneg(tf.maximum(s_chroma, 0.0), LAMBDA_CHROMA)
    weight = tf.maximum(sci_r, sci_d) + EPS_WEIGHT
    quality = tf.cast(quality, tf.float64)
    weight = tf.cast(weight, tf.float64)
    return tf.reduce_sum(quality * weight, [1, 2]) / tf.reduce_sum(weight, [1, 2])


# NumPy until a shape has repeated enough, then a graph
@staging.compile_on_repeat(reduce_retracing=True, uncompiled="scqi")
def _scqi(ref: tf.Tensor, dist: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    """The reference maps once per unique reference. Two XLA stages rather than one: in a single function
    the fuser recomputes the SCI maps inside each consumer."""
    return _pooled_quality(*_features_xla(ref), *_features_xla(dist), ref_index)


def scqi(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """SCQI of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical, higher is better).

    ref_index: see `validation.check_indexed` (pair i = (ref[ref_index[i]], dist[i])); the reference maps are then
    computed once per unique reference.
    """
    ref, dist, ref_index = validation.check_indexed("scqi", ref, dist, ref_index)
    return _scqi(ref, dist, ref_index)
