"""IW-SSIM, information content weighted SSIM (Wang, Li 2011), as in Wang & Li's `iwssim.m`.

MATLAB `rgb2gray`; 5-level Laplacian pyramid of matlabPyrTools' `buildLpyr` (filter binom5 = sqrt(2) [1 4 6 4 1]
/ 16, 'reflect1' borders, subsampling from the first sample); at each level the SSIM contrast-structure map
(11x11 Gaussian, sigma 1.5, 'valid', K = (0.01, 0.03), L = 255; luminance too at the coarsest level) pooled
with the information content weights of the reference band: a Gaussian scale mixture over 3x3 neighbourhoods
plus the parent band (enlarged by `imenlarge2`) for levels 1-3, without parent at level 4, and uniform weights
on the low-pass level; sigma_nsq = 0.4; score = prod(wmcs .^ w) with w = (0.0448, 0.2856, 0.3001, 0.2363,
0.1333) / sum. Not symmetric: `ref` is the original image (`oimg`), `dist` the test image.
Maps and the covariance products in float32, the 10x10 eigen-decomposition and the information-content
log-sum in float64 (measured 5e-8 from the official values; float32 instead of float64 covariance products
changed the score by <= 3e-9 on 35 pairs covering all 25 KADID distortions; all-float64 is 3.4x slower). Deviations: the covariance inverse is a pseudo-inverse (MATLAB's `inv` of a singular matrix gives Inf; only
constant bands reach it), all-zero weights fall back to a plain mean, and a negative pooled value (complex in
MATLAB) is replaced by its absolute value, as piq does.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from deepfl.fr import common
from deepfl.fr.ssim import WINDOW_SIZE, ssim_maps

_RAW_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
WEIGHTS = _RAW_WEIGHTS / _RAW_WEIGHTS.sum()  # iwssim.m normalises the weights (msssim.m does not)
LEVELS = len(WEIGHTS)
MIN_SIZE = (WINDOW_SIZE - 1) * 2 ** (LEVELS - 1) + 1
SIGMA_NSQ = 0.4
BLOCK = 3
TOL = 1e-15
BINOM5 = np.sqrt(2.0) * np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
DTYPE = tf.float32  # float32 maps and covariance products (5e-8 from the official values); eigh in float64


def _filter_axis(x: tf.Tensor, axis: int) -> tf.Tensor:
    """Correlates NHW1 `x` with binom5 along `axis` (1 = rows, 2 = columns) with 'reflect1' borders."""
    if axis == 1:
        x = common.pad_hw(x, 2, 2, 0, 0, "reflect")
        kernel = BINOM5.reshape(5, 1)
    else:
        x = common.pad_hw(x, 0, 0, 2, 2, "reflect")
        kernel = BINOM5.reshape(1, 5)
    return common.correlate(x, kernel, shape="valid")


def _upsample_axis(x: tf.Tensor, axis: int, size: int) -> tf.Tensor:
    """matlabPyrTools `upConv` along `axis`: zero insertion from the first sample, crop to `size`, binom5."""
    z = tf.stack([x, tf.zeros_like(x)], axis=axis + 1)
    shape = tf.unstack(tf.shape(x))
    shape[axis] = shape[axis] * 2
    z = tf.reshape(z, tf.stack(shape))
    z = z[:, :size] if axis == 1 else z[:, :, :size]
    return _filter_axis(z, axis)


def laplacian_pyramid(x: tf.Tensor, levels: int = LEVELS) -> list[tf.Tensor]:
    """`buildLpyr(x, levels)` of NHW1 images: levels-1 band-pass images, then the low-pass residual."""
    bands = []
    for _ in range(levels - 1):
        height, width = x.shape[1], x.shape[2]
        lo = _filter_axis(x, 1)[:, ::2]
        lo = _filter_axis(lo, 2)[:, :, ::2]
        up = _upsample_axis(lo, 2, width)
        up = _upsample_axis(up, 1, height)
        bands.append(x - up)
        x = lo
    bands.append(x)
    return bands


def imenlarge2(x: tf.Tensor) -> tf.Tensor:
    """iwssim.m's `imenlarge2`: bilinear `imresize` to 4M-3, linear extrapolation of a border, every 2nd sample."""
    rows, cols = x.shape[1], x.shape[2]
    t1 = common.imresize(x, (4 * rows - 3, 4 * cols - 3), "bilinear")
    t2 = tf.pad(t1, [[0, 0], [1, 1], [1, 1], [0, 0]])
    t2 = tf.concat([2 * t2[:, 1:2] - t2[:, 2:3], t2[:, 1:-1], 2 * t2[:, -2:-1] - t2[:, -3:-2]], axis=1)
    t2 = tf.concat([2 * t2[:, :, 1:2] - t2[:, :, 2:3], t2[:, :, 1:-1], 2 * t2[:, :, -2:-1] - t2[:, :, -3:-2]], axis=2)
    return t2[:, ::2, ::2]


@functools.lru_cache(maxsize=32)
def enlarge_matrix(in_len: int, start: int, stop: int) -> np.ndarray:
    """Rows start..stop-1 of `imenlarge2` along one axis as a (stop-start) x in_len matrix (float64).

    imenlarge2 is linear and separable: bilinear imresize to 4M-3 (matrix T), one extrapolated row at each end
    (2 T[0] - T[1], 2 T[-1] - T[-2]), every second row. Only the rows IW-SSIM keeps are built, so the parent
    band is enlarged by two small matmuls instead of resizing to 4x and discarding 3/4 of it.
    """
    t = common.imresize_matrix(in_len, 4 * in_len - 3, "bilinear")
    t2 = np.concatenate([2 * t[:1] - t[1:2], t, 2 * t[-1:] - t[-2:-1]], axis=0)
    return t2[::2][start:stop]


def enlarged_parent(parent: tf.Tensor, rows: int, cols: int) -> tf.Tensor:
    """`imenlarge2(parent)[:, 1:rows-1, 1:cols-1, 0]` (the interior IW-SSIM uses) of NHW1 `parent` -> NHW."""
    p_rows, p_cols = parent.shape[1], parent.shape[2]
    left = tf.constant(enlarge_matrix(p_rows, 1, rows - 1), parent.dtype)
    right = tf.constant(enlarge_matrix(p_cols, 1, cols - 1).T, parent.dtype)
    return tf.matmul(tf.matmul(left, parent[..., 0]), right)


def _log2_sum(a: tf.Tensor, b: tf.Tensor, eigenvalues: tf.Tensor, group: int = 5) -> tf.Tensor:
    """sum_k log2(1 + (a lambda_k + b) / sigma_nsq^2) over the eigenvalues, as `info_content_weight_map`.

    a, b: float64 N,h,w,1; eigenvalues: float64 N,n. The terms are multiplied in float64 in groups of `group`
    and one log is taken per group (n/group logs per pixel instead of n): each term is below ~1e40 for any
    8-bit image, so a product of 5 stays far from float64's 1e308, and float64 keeps the sum more accurate
    than the float32 logs it replaces.
    """
    terms = 1.0 + (a * eigenvalues[:, None, None, :] + b) / (SIGMA_NSQ * SIGMA_NSQ)  # N,h,w,n
    n = eigenvalues.shape[-1]
    logs = [tf.math.log(tf.reduce_prod(terms[..., i:i + group], axis=-1)) for i in range(0, n, group)]
    return tf.cast(tf.add_n(logs) / math.log(2.0), tf.float32)


def information_content(ref_band: tf.Tensor, dist_band: tf.Tensor, parent: tf.Tensor | None) -> tf.Tensor:
    """`info_content_weight_map` of one level: NHW1 bands (and the coarser reference band or None) -> N,H-2,W-2."""
    box = np.full((3, 3), 1.0 / 9.0)
    stats = common.correlate(tf.concat([ref_band, dist_band, ref_band * dist_band, ref_band * ref_band,
                                        dist_band * dist_band], axis=-1), box, "same", "zeros")
    mean_x, mean_y, exy, exx, eyy = tf.unstack(stats, axis=-1)
    cov_xy = exy - mean_x * mean_y
    ss_x = tf.nn.relu(exx - mean_x * mean_x)
    ss_y = tf.nn.relu(eyy - mean_y * mean_y)
    g = cov_xy / (ss_x + TOL)
    vv = ss_y - g * cov_xy
    small_x = ss_x < TOL
    g = tf.where(small_x, tf.zeros_like(g), g)
    vv = tf.where(small_x, ss_y, vv)
    small_y = ss_y < TOL
    g = tf.where(small_y, tf.zeros_like(g), g)
    vv = tf.where(small_y, tf.zeros_like(vv), vv)

    y = ref_band[..., 0]
    rows, cols = y.shape[1], y.shape[2]
    nblv, nblh = rows - BLOCK + 1, cols - BLOCK + 1
    # Neighbourhood vectors: shift(y, [dy dx]) cropped to the interior equals a plain slice (no wrap-around).
    columns = [y[:, 1 - dy:1 - dy + nblv, 1 - dx:1 - dx + nblh] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    if parent is not None:
        columns.append(enlarged_parent(parent, rows, cols))
    big_y = tf.stack(columns, axis=-1)  # N, nblv, nblh, n
    n = len(columns)
    flat = tf.reshape(big_y, [-1, nblv * nblh, n])
    cov = tf.cast(tf.matmul(flat, flat, transpose_a=True), tf.float64) / float(nblv * nblh)
    eigvals, eigvecs = tf.linalg.eigh(cov)
    positive = tf.where(eigvals > 0, eigvals, tf.zeros_like(eigvals))
    total = tf.reduce_sum(eigvals, axis=-1, keepdims=True)
    total_pos = tf.reduce_sum(positive, axis=-1, keepdims=True)
    scaled = positive * total / (total_pos + tf.cast(tf.equal(total_pos, 0), total_pos.dtype))
    inv_vals = tf.where(scaled > 0, 1.0 / tf.where(scaled > 0, scaled, tf.ones_like(scaled)), tf.zeros_like(scaled))
    inverse = tf.cast(tf.matmul(eigvecs * inv_vals[:, None, :], eigvecs, transpose_b=True), flat.dtype)
    scaled_eig = scaled
    ss = tf.reduce_sum(tf.matmul(flat, inverse) * flat, axis=-1) / float(n)
    ss = tf.reshape(ss, [-1, nblv, nblh, 1])
    g = g[:, 1:1 + nblv, 1:1 + nblh, None]
    vv = vv[:, 1:1 + nblv, 1:1 + nblh, None]
    infow = _log2_sum(tf.cast((vv + (1.0 + g * g) * SIGMA_NSQ) * ss, tf.float64),
                      tf.cast(SIGMA_NSQ * vv, tf.float64), scaled_eig)
    return tf.where(infow < TOL, tf.zeros_like(infow), infow)


@tf.function(jit_compile=False)  # traced once per input shape: the code needs static H, W
def _iwssim(ref: tf.Tensor, dist: tf.Tensor) -> tf.Tensor:
    x = common.rgb2gray(ref, DTYPE)
    y = common.rgb2gray(dist, DTYPE)
    bands = laplacian_pyramid(tf.concat([x, y], axis=0))
    n = tf.shape(ref)[0]
    bound1 = (WINDOW_SIZE - 1) // 2 - (BLOCK - 1) // 2
    pooled = []
    for level, band in enumerate(bands):
        b_ref, b_dist = band[:n], band[n:]
        ssim_map, cs_map = ssim_maps(b_ref, b_dist)
        if level == LEVELS - 1:
            pooled.append(common.mean64(ssim_map))
            continue
        parent = bands[level + 1][:n] if level < LEVELS - 2 else None
        iw = information_content(b_ref, b_dist, parent)
        iw = iw[:, bound1:-bound1, bound1:-bound1]
        pooled.append(common.weighted_mean(cs_map, iw, axes=(1, 2)))
    values = tf.abs(tf.stack(pooled, axis=0))
    return tf.reduce_prod(tf.pow(values, tf.constant(WEIGHTS, tf.float64)[:, None]), axis=0)


def iwssim(ref: tf.Tensor, dist: tf.Tensor) -> tf.Tensor:
    """IW-SSIM of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical)."""
    ref, dist = common.check_tensors("iwssim", ref, dist, min_size=MIN_SIZE)
    return _iwssim(ref, dist)
