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
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from deepfl.fr import common

BLOCK = 4
PIXELS_PER_DEGREE = 32.0
T_SCI = 4.0           # similarity constant of SCI (gray levels^2)
T_CHROMA = 200.0      # FSIMc's constant for I and Q
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
    f = np.sqrt(u ** 2 + v ** 2) / (2.0 * n) * ppd           # cycles per degree
    csf = 2.6 * (0.0192 + 0.114 * f) * np.exp(-(0.114 * f) ** 1.1)
    csf = csf / csf.max()
    return csf.reshape(-1).astype(np.float32)


_DCT = _dct_matrix(BLOCK)


def _dct_kernels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Separable sliding 2-D DCT as two convolutions (rows: one output per vertical frequency u; columns:
    channel u -> outputs u * BLOCK + v), CSF weights folded in with the DC weight 0, and the 1x1 kernel that
    averages the BLOCK^2 - 1 AC channels. Plain convolutions: much faster on CPU than depthwise or last-axis
    reductions."""
    rows = _DCT.T.reshape(BLOCK, 1, 1, BLOCK)
    cols = np.zeros((1, BLOCK, BLOCK, BLOCK * BLOCK))
    for u in range(BLOCK):
        for v in range(BLOCK):
            cols[0, :, u, u * BLOCK + v] = _DCT[v]
    csf = _csf_weights(BLOCK, PIXELS_PER_DEGREE)
    csf[0] = 0.0
    mean_ac = np.ones((1, 1, BLOCK * BLOCK, 1)) / (BLOCK * BLOCK - 1)
    return rows.astype(np.float32), (cols * csf).astype(np.float32), mean_ac.astype(np.float32)


_DCT_ROWS, _DCT_COLS_CSF, _MEAN_AC = _dct_kernels()

def structural_contrast_index(y: tf.Tensor) -> tf.Tensor:
    """SCI map of luminance NHW1 in [0, 255] (valid 4x4 windows) -> NHW1."""
    rows = tf.nn.conv2d(y, tf.constant(_DCT_ROWS), 1, "VALID")
    power = tf.square(tf.nn.conv2d(rows, tf.constant(_DCT_COLS_CSF), 1, "VALID"))   # DC channel is 0
    energy = tf.nn.conv2d(power, tf.constant(_MEAN_AC), 1, "VALID")                 # mean AC c^2
    fourth = tf.nn.conv2d(tf.square(power), tf.constant(_MEAN_AC), 1, "VALID")       # mean AC c^4
    # C^2 / kurtosis = e / (m4 / e^2) = e^3 / m4 (0 for a flat window).
    return tf.sqrt(tf.math.divide_no_nan(energy * energy * energy, fourth))

@tf.function(reduce_retracing=True)
def _scqi(ref: tf.Tensor, dist: tf.Tensor) -> tf.Tensor:
    yiq_r = common.linear_color(ref, common.YIQ)
    yiq_d = common.linear_color(dist, common.YIQ)
    sci_r, sci_d = tf.split(structural_contrast_index(tf.concat([yiq_r[..., :1], yiq_d[..., :1]], 0)), 2)
    s_structure = common.similarity(sci_r, sci_d, T_SCI)
    # Chrominance over the same 4x4 windows (local means), so every map has the valid-window size.
    chroma_r = tf.nn.avg_pool2d(yiq_r[..., 1:], BLOCK, 1, "VALID")
    chroma_d = tf.nn.avg_pool2d(yiq_d[..., 1:], BLOCK, 1, "VALID")
    s_chroma = tf.reduce_prod(common.similarity(chroma_r, chroma_d, T_CHROMA), -1, keepdims=True)
    quality = s_structure * common.pow_nonneg(tf.maximum(s_chroma, 0.0), LAMBDA_CHROMA)
    weight = tf.maximum(sci_r, sci_d) + EPS_WEIGHT
    quality = tf.cast(quality, tf.float64)
    weight = tf.cast(weight, tf.float64)
    return tf.reduce_sum(quality * weight, [1, 2, 3]) / tf.reduce_sum(weight, [1, 2, 3])


def scqi(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """SCQI of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical, higher is better).

    ref_index: see `common.check_indexed` (pair i = (ref[ref_index[i]], dist[i])).
    """
    ref, dist, ref_index = common.check_indexed("scqi", ref, dist, ref_index, min_size=BLOCK)
    return _scqi(common.take_refs(ref, ref_index), dist)
