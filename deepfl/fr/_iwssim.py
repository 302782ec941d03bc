"""IW-SSIM, information content weighted SSIM (Wang, Li 2011), as in Wang & Li's `iwssim.m`.

MATLAB `rgb2gray`; 5-level Laplacian pyramid of matlabPyrTools' `buildLpyr` (filter binom5 = sqrt(2) [1 4 6 4 1]
/ 16, 'reflect1' borders, subsampling from the first sample); at each level the SSIM contrast-structure map
(11x11 Gaussian, sigma 1.5, 'valid', K = (0.01, 0.03), L = 255; luminance too at the coarsest level) pooled
with the information content weights of the reference band: a Gaussian scale mixture over 3x3 neighbourhoods
plus the parent band (enlarged by `imenlarge2`) for levels 1-3, without parent at level 4, and uniform weights
on the low-pass level; sigma_nsq = 0.4; score = prod(wmcs .^ w) with w = (0.0448, 0.2856, 0.3001, 0.2363,
0.1333) / sum. Not symmetric: `ref` is the original image (`oimg`), `dist` the test image.
The pyramid in float64 (returned as float32 bands), maps and covariance products in float32, the 10x10
eigen-decomposition and the information-content log-sum in float64 (7.5e-8 from the official values; float32
instead of float64 covariance products changed the score by <= 3e-9 on 35 pairs covering all 25 KADID
distortions). The pyramid, the SSIM moment maps and the per-pixel
information content run as XLA-fused functions. With `ref_index` the reference's pyramid, moments and GSM
model are computed once per unique reference.
Deviations: the covariance inverse is a pseudo-inverse (MATLAB's `inv` of a singular matrix gives Inf; only
constant bands reach it), all-zero weights fall back to a plain mean, and a negative pooled value (complex in
MATLAB) is replaced by its absolute value, as piq does.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from deepfl.fr._ssim import WINDOW_SIZE, ssim_maps
from deepfl.fr.functional import batching, colour, pooling, resize, staging, validation

_RAW_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
WEIGHTS = _RAW_WEIGHTS / _RAW_WEIGHTS.sum()  # iwssim.m normalises the weights (msssim.m does not)
LEVELS = len(WEIGHTS)
SIGMA_NSQ = 0.4
BLOCK = 3
TOL = 1e-15
BINOM5 = np.sqrt(2.0) * np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
DTYPE = tf.float32  # float32 maps and covariance products (5e-8 from the official values); eigh in float64


def _take(x: tf.Tensor, axis: int, start: int, stop: int, step: int = 1) -> tf.Tensor:
    """x[start:stop:step] along axis 1 or 2 of an N,H,W tensor."""
    return x[:, start:stop:step] if axis == 1 else x[:, :, start:stop:step]


def _downsample_axis(x: tf.Tensor, axis: int) -> tf.Tensor:
    """matlabPyrTools `corrDn` along `axis` of N,H,W: binom5 with 'reflect1' borders, every second sample from
    the first (only the kept samples are computed)."""
    n = x.shape[axis]
    padded = tf.concat(
        [_take(x, axis, 2, 3), _take(x, axis, 1, 2), x, _take(x, axis, n - 2, n - 1), _take(x, axis, n - 3, n - 2)],
        axis=axis,
    )
    count = -(-n // 2)
    terms = [_take(padded, axis, k, k + 2 * count - 1, 2) * BINOM5[k] for k in range(5)]
    return terms[0] + terms[1] + terms[2] + terms[3] + terms[4]


def _upsample_axis(x: tf.Tensor, axis: int, size: int) -> tf.Tensor:
    """matlabPyrTools `upConv` along `axis` of N,H,W: zero insertion from the first sample, crop to `size`,
    binom5 with 'reflect1' borders; computed in polyphase form without the zeros.

    Sample 2i is w0 x[i-1] + w2 x[i] + w4 x[i+1] and sample 2i+1 is w1 x[i] + w3 x[i+1], where the reflected
    zero-inserted signal extends x by x[1] before its start and by x[m-1] (even size) or x[m-2] (odd size)
    after its end. The two phases are interleaved by a stack and a reshape.
    """
    m = x.shape[axis]
    last = m - 1 if size % 2 == 0 else m - 2
    ext = tf.concat([_take(x, axis, 1, 2), x, _take(x, axis, last, last + 1)], axis=axis)
    before, centre, after = _take(ext, axis, 0, m), _take(ext, axis, 1, m + 1), _take(ext, axis, 2, m + 2)
    w = BINOM5
    even = before * w[0] + centre * w[2] + after * w[4]
    odd = centre * w[1] + after * w[3]
    shape = [-1, x.shape[1], x.shape[2]]
    shape[axis] = 2 * m
    return _take(tf.reshape(tf.stack([even, odd], axis=axis + 1), shape), axis, 0, size)


@staging.xla_stage
def laplacian_pyramid(x: tf.Tensor, levels: int = LEVELS, dtype: tf.DType = DTYPE) -> list[tf.Tensor]:
    """`buildLpyr(x, levels)` of NHW1 images: levels-1 band-pass images, then the low-pass residual, as `dtype`.

    The 5-tap filters are written as sums of shifted (strided) slices and the whole pyramid is one XLA
    function (no convolutions, pads or concatenations). IW-SSIM builds it in float64 and returns float32
    bands: a float32 pyramid's rounding moved TID2013 I08 by 2.6e-7 (the coarse bands carry a gain of 2 per
    level and the level-3 GSM weights are sensitive to it); float64 keeps 7e-8.
    """
    x = x[..., 0]
    bands = []
    for _ in range(levels - 1):
        height, width = x.shape[1], x.shape[2]
        lo = _downsample_axis(_downsample_axis(x, 1), 2)
        up = _upsample_axis(_upsample_axis(lo, 2, width), 1, height)
        bands.append(tf.cast(x - up, dtype)[..., None])
        x = lo
    bands.append(tf.cast(x, dtype)[..., None])
    return bands


def imenlarge2(x: tf.Tensor) -> tf.Tensor:
    """iwssim.m's `imenlarge2`: bilinear `imresize` to 4M-3, linear extrapolation of a border, every 2nd sample."""
    rows, cols = x.shape[1], x.shape[2]
    t1 = resize.imresize(x, (4 * rows - 3, 4 * cols - 3), "bilinear")
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
    t = resize.imresize_matrix(in_len, 4 * in_len - 3, "bilinear")
    t2 = np.concatenate([2 * t[:1] - t[1:2], t, 2 * t[-1:] - t[-2:-1]], axis=0)
    return t2[::2][start:stop]


def enlarged_parent(parent: tf.Tensor, rows: int, cols: int) -> tf.Tensor:
    """`imenlarge2(parent)[:, 1:rows-1, 1:cols-1, 0]` (the interior IW-SSIM uses) of NHW1 `parent` -> NHW."""
    p_rows, p_cols = parent.shape[1], parent.shape[2]
    left = tf.constant(enlarge_matrix(p_rows, 1, rows - 1), parent.dtype)
    right = tf.constant(enlarge_matrix(p_cols, 1, cols - 1).T, parent.dtype)
    return tf.matmul(tf.matmul(left, parent[..., 0]), right)


def _log2_sum_groups(a: tf.Tensor, b: tf.Tensor, eigenvalues: tf.Tensor, group: int = 5) -> tf.Tensor:
    """sum_k log2(1 + (a lambda_k + b) / sigma_nsq^2), one log per product of `group` float64 terms.

    a, b: float64 N,h,w; eigenvalues: float64 N,n. The overflow-safe fallback of `_log2_sum` (a product of 5
    terms, each below ~1e40 for any 8-bit image, stays far from float64's 1e308).
    """
    terms = 1.0 + (a[..., None] * eigenvalues[:, None, None, :] + b[..., None]) / (SIGMA_NSQ * SIGMA_NSQ)
    n = eigenvalues.shape[-1]
    logs = [tf.math.log(tf.reduce_prod(terms[..., i : i + group], axis=-1)) for i in range(0, n, group)]
    return tf.add_n(logs) / math.log(2.0)


def _product_coefficients(eigenvalues: tf.Tensor) -> tf.Tensor:
    """Coefficients c_0..c_n of prod_k (1 + lambda_k t) = sum_j c_j t^j (elementary symmetric polynomials): N,n+1."""
    coefficients = tf.ones_like(eigenvalues[:, :1])
    for k in range(eigenvalues.shape[-1]):
        shifted = coefficients * eigenvalues[:, k : k + 1]
        coefficients = tf.pad(coefficients, [[0, 0], [0, 1]]) + tf.pad(shifted, [[0, 0], [1, 0]])
    return coefficients


def _log2_sum(a: tf.Tensor, b: tf.Tensor, eigenvalues: tf.Tensor) -> tf.Tensor:
    """sum_k log2(1 + (a lambda_k + b) / sigma_nsq^2) over the eigenvalues, as `info_content_weight_map`.

    a, b: float64 N,h,w; eigenvalues: float64 N,n (>= 0). With u = sigma_nsq^2 + b and t = a / u each term is
    (u / sigma_nsq^2) (1 + lambda_k t), so the sum is n log2(u / sigma_nsq^2) + log2 P(t) with the polynomial
    P(t) = prod_k (1 + lambda_k t) evaluated by Horner's rule from its n+1 coefficients (positive
    coefficients and t >= 0: no cancellation): 2 logs per pixel instead of n. Should P overflow float64
    (not seen on natural images), the per-group product form is used instead.
    """
    n = eigenvalues.shape[-1]
    u = SIGMA_NSQ * SIGMA_NSQ + b
    t = a / u
    coefficients = _product_coefficients(eigenvalues)[:, :, None, None]
    poly = coefficients[:, n]
    for j in range(n - 1, -1, -1):
        poly = poly * t + coefficients[:, j]
    fast = (tf.math.log(poly) + n * tf.math.log(u / (SIGMA_NSQ * SIGMA_NSQ))) / math.log(2.0)
    return tf.cond(tf.reduce_all(tf.math.is_finite(poly)), lambda: fast, lambda: _log2_sum_groups(a, b, eigenvalues))


def reference_gsm(band: tf.Tensor, parent: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
    """Reference-only part of `info_content_weight_map` for NHW1 reference bands (and their coarser band).

    Fits the Gaussian scale mixture of the 3x3 neighbourhood (+ parent) vectors: covariance (float32
    products, float64 eigen-decomposition), eigenvalue correction, pseudo-inverse. Returns the multiplier
    estimate ss = y' C^-1 y / n (N,H-10,W-10 on the pooled pixels) and the corrected eigenvalues (float64 N,n).
    """
    y = band[..., 0]
    rows, cols = y.shape[1], y.shape[2]
    nblv, nblh = rows - BLOCK + 1, cols - BLOCK + 1
    # Neighbourhood vectors: shift(y, [dy dx]) cropped to the interior equals a plain slice (no wrap-around).
    columns = [y[:, 1 - dy : 1 - dy + nblv, 1 - dx : 1 - dx + nblh] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    if parent is not None:
        columns.append(enlarged_parent(parent, rows, cols))
    n = len(columns)
    # Vectors as rows (N, n, pixels): stacking whole planes is a block copy (interleaving them as the last axis
    # is not), and both products below contract over the long pixel axis.
    flat = tf.reshape(tf.stack(columns, axis=1), [-1, n, nblv * nblh])
    cov = tf.cast(tf.matmul(flat, flat, transpose_b=True), tf.float64) / float(nblv * nblh)
    eigvals, eigvecs = tf.linalg.eigh(cov)
    positive = tf.where(eigvals > 0, eigvals, tf.zeros_like(eigvals))
    total = tf.reduce_sum(eigvals, axis=-1, keepdims=True)
    total_pos = tf.reduce_sum(positive, axis=-1, keepdims=True)
    scaled = positive * total / (total_pos + tf.cast(tf.equal(total_pos, 0), total_pos.dtype))
    inv_vals = tf.where(scaled > 0, 1.0 / tf.where(scaled > 0, scaled, tf.ones_like(scaled)), tf.zeros_like(scaled))
    inverse = tf.cast(tf.matmul(eigvecs * inv_vals[:, None, :], eigvecs, transpose_b=True), flat.dtype)
    ss = tf.reduce_sum(tf.matmul(inverse, flat) * flat, axis=1) / float(n)
    m = (WINDOW_SIZE - 1) // 2 - (BLOCK - 1) // 2  # the pooled pixels: interior index j is band row j + 1
    ss = tf.reshape(ss, [-1, nblv, nblh])[:, m : nblv - m, m : nblh - m]
    return ss, scaled


def _box3(x: tf.Tensor) -> tf.Tensor:
    """3x3 'valid' means of N,H,W maps as sums of shifted slices (fused by XLA into the caller's loop)."""
    rows = x[:, :-2] + x[:, 1:-1] + x[:, 2:]
    return (rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]) * (1.0 / BLOCK**2)


@staging.xla_stage
def information_content(ss: tf.Tensor, eigenvalues: tf.Tensor, ref_band: tf.Tensor, dist_band: tf.Tensor) -> tf.Tensor:
    """`info_content_weight_map` of one level on the pooled pixels -> N,H-10,W-10, one XLA-fused pass.

    ss, eigenvalues: `reference_gsm` of each pair's reference; ref_band, dist_band: NHW1. The map is only
    used where the 11x11 SSIM window is valid (rows/columns 5 .. size-6), so the 3x3 statistics are taken
    'valid' on rows/columns 4 .. size-5. The ~70 elementwise ops (3x3 sums by shifted slices, regression
    gain g, residual variance vv, float64 Horner log-sum) fuse into one pass; XLA contracts float32 products
    into FMAs (scores moved by <= 7e-8 on TID2013).
    """
    m = (WINDOW_SIZE - 1) // 2 - (BLOCK - 1) // 2
    x = ref_band[:, m : ref_band.shape[1] - m, m : ref_band.shape[2] - m, 0]
    y = dist_band[:, m : dist_band.shape[1] - m, m : dist_band.shape[2] - m, 0]
    mean_x, mean_y, exx, eyy, exy = _box3(x), _box3(y), _box3(x * x), _box3(y * y), _box3(x * y)
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
    infow = _log2_sum(
        tf.cast((vv + (1.0 + g * g) * SIGMA_NSQ) * ss, tf.float64), tf.cast(SIGMA_NSQ * vv, tf.float64), eigenvalues
    )
    infow = tf.cast(infow, tf.float32)
    return tf.where(infow < TOL, tf.zeros_like(infow), infow)


@staging.compile_on_repeat(uncompiled="iwssim")  # NumPy until a shape has repeated enough, then a graph
def _iwssim(ref: tf.Tensor, dist: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    ref_bands = laplacian_pyramid(colour.rgb2gray(ref, tf.float64))  # once per unique reference
    dist_bands = laplacian_pyramid(colour.rgb2gray(dist, tf.float64))
    pooled = []
    for level, (b_ref, b_dist) in enumerate(zip(ref_bands, dist_bands)):
        if level == LEVELS - 1:
            ssim_map, _ = ssim_maps(tf.cast(b_ref, tf.float64), tf.cast(b_dist, tf.float64), ref_index=ref_index)
            pooled.append(pooling.mean64(ssim_map))
            continue
        _, cs_map = ssim_maps(b_ref, b_dist, ref_index=ref_index)
        parent = ref_bands[level + 1] if level < LEVELS - 2 else None
        ss, eigenvalues = (batching.take_refs(t, ref_index) for t in reference_gsm(b_ref, parent))
        iw = information_content(ss, eigenvalues, batching.take_refs(b_ref, ref_index), b_dist)
        pooled.append(pooling.weighted_mean(cs_map, iw, axes=(1, 2)))
    values = tf.abs(tf.stack(pooled, axis=0))
    return tf.reduce_prod(tf.pow(values, tf.constant(WEIGHTS, tf.float64)[:, None]), axis=0)


def iwssim(ref: tf.Tensor, dist: tf.Tensor, ref_index=None) -> tf.Tensor:
    """IW-SSIM of each (ref, dist) pair: float NHWC RGB in [0, 255] -> N scores (1 = identical).

    With `ref_index` (N integers), `ref` holds R unique references and pair i is (ref[ref_index[i]], dist[i]):
    the reference's pyramid, window moments and GSM model (covariance, eigen-decomposition, multiplier map)
    are computed once per reference.
    """
    ref, dist, ref_index = validation.check_indexed("iwssim", ref, dist, ref_index)
    return _iwssim(ref, dist, ref_index)
