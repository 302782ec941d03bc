"""IW-SSIM in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_iwssim.py`.

At each band-pass level the SSIM moments (11x11 Gaussian means of x, x^2, y, y^2, x y) and the statistics of
the information content weights (3x3 means of the same images, on the pixels the SSIM window keeps) are taken
strip by strip of output rows, so that a strip's images stay in the processor's cache through the whole chain
(moments, cs map, GSM multiplier, weights, pooled sums); the whole-level images would each make a round trip to
memory per operation. The 1-D filter passes are products with small banded matrices (`banded.banded_product`), which
BLAS runs far faster than a loop over the taps; the pyramid's filters are such products too.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from deepfl.fr._iwssim import BINOM5, BLOCK, LEVELS, SIGMA_NSQ, TOL, WEIGHTS, enlarge_matrix
from deepfl.fr._ssim import K1, K2, WINDOW_SIGMA, WINDOW_SIZE, L
from deepfl.fr.functional.filters import gaussian_kernel1d
from deepfl.fr.uncompiled import banded, functional
from deepfl.fr.uncompiled.threads import in_parallel

_CROP = (WINDOW_SIZE - 1) // 2 - (BLOCK - 1) // 2  # first band pixel whose 3x3 neighbourhood IW-SSIM pools
_STRIP_PIXELS = 16384  # pixels per strip of output rows


def _polyphase_matrix(even_taps: np.ndarray, odd_taps: np.ndarray, count: int) -> np.ndarray:
    """2 count x (count + 2) matrix: rows 2i and 2i+1 hold `even_taps` and `odd_taps` from column i."""
    return np.stack([banded.band_matrix(even_taps, count), banded.band_matrix(odd_taps, count)], axis=1).reshape(
        2 * count, -1
    )


# The banded matrices of one block along each axis (1: rows, 2: columns).
_BLOCKS = banded.BLOCKS
_GAUSSIAN = gaussian_kernel1d(WINDOW_SIZE, WINDOW_SIGMA)  # taps of `banded.correlate_valid`
_BOX = np.full(BLOCK, 1.0 / BLOCK)
_DOWN = {axis: banded.band_matrix(BINOM5, b, step=2) for axis, b in _BLOCKS.items()}
_UP = {axis: _polyphase_matrix(BINOM5[0::2], np.array([0.0, *BINOM5[1::2]]), b // 2) for axis, b in _BLOCKS.items()}


def _take(x: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    """x[:, start:stop] or x[:, :, start:stop]."""
    return x[:, start:stop] if axis == 1 else x[:, :, start:stop]


def _downsample(x: np.ndarray, axis: int) -> np.ndarray:
    """matlabPyrTools `corrDn` with binom5 along axis 1 or 2: 'reflect1' borders, every second sample from the
    first."""
    n = x.shape[axis]
    padded = np.concatenate(
        [_take(x, axis, 2, 3), _take(x, axis, 1, 2), x, _take(x, axis, n - 2, n - 1), _take(x, axis, n - 3, n - 2)],
        axis=axis,
    )
    return banded.banded_product(padded, _DOWN[axis], 2 * _BLOCKS[axis], -(-n // 2), axis)


def _upsample(x: np.ndarray, axis: int, size: int) -> np.ndarray:
    """matlabPyrTools `upConv` with binom5 along axis 1 or 2 to `size` samples: zeros inserted after each sample,
    'reflect1' borders. Polyphase: sample 2i is w0 e[i] + w2 e[i+1] + w4 e[i+2] and sample 2i+1 is
    w1 e[i+1] + w3 e[i+2], where e is x extended by x[1] before it and by x[m-1] (even size) or x[m-2] (odd size)
    after it."""
    m = x.shape[axis]
    last = m - 1 if size % 2 == 0 else m - 2
    extended = np.concatenate([_take(x, axis, 1, 2), x, _take(x, axis, last, last + 1)], axis=axis)
    return banded.banded_product(extended, _UP[axis], _BLOCKS[axis] // 2, size, axis)


def laplacian_pyramid(x: np.ndarray) -> list[np.ndarray]:
    """`buildLpyr(x, LEVELS)` of N,H,W images: LEVELS-1 band-pass images, then the low-pass residual."""
    bands = []
    for _ in range(LEVELS - 1):
        lo = _downsample(_downsample(x, 1), 2)
        bands.append(x - _upsample(_upsample(lo, 2, x.shape[2]), 1, x.shape[1]))
        x = lo
    return bands + [x]


def _row_taps(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A matrix with few adjacent nonzeros per row as (first column per row, width x rows weights from it)."""
    nonzero = matrix != 0
    first = np.argmax(nonzero, axis=1)
    last = matrix.shape[1] - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    width = int((last - first).max()) + 1
    start = np.minimum(first, matrix.shape[1] - width)
    return start, np.take_along_axis(matrix, start[:, None] + np.arange(width), axis=1).T.copy()


def enlarged_parent(parent: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """`imenlarge2(parent)[:, 1:rows-1, 1:cols-1]` of R,h,w parent bands (the interior IW-SSIM uses).

    Each enlarged row and column mixes two neighbouring samples (bilinear), so the rows of `enlarge_matrix` are
    applied as their few taps rather than as dense products, columns first (on the smaller image)."""
    start, weights = _row_taps(enlarge_matrix(parent.shape[2], 1, cols - 1))
    wide = sum(np.take(parent, start + t, axis=2) * w for t, w in enumerate(weights))
    start, weights = _row_taps(enlarge_matrix(parent.shape[1], 1, rows - 1))
    return sum(np.take(wide, start + t, axis=1) * w[:, None] for t, w in enumerate(weights))


def _neighbourhoods(
    band: np.ndarray, parent: np.ndarray | None, top: int, rows: int, left: int, cols: int
) -> np.ndarray:
    """The GSM vectors of the 3x3 neighbourhoods of band pixels top+1..top+rows, left+1..left+cols (+ the enlarged
    parent band at the centre pixel), R,n,rows*cols: `info_content_weight_map`'s shifted copies, cropped."""
    n = BLOCK * BLOCK + (parent is not None)
    vectors = np.empty((len(band), n, rows, cols))
    for k in range(BLOCK * BLOCK):
        dy, dx = divmod(k, BLOCK)
        vectors[:, k] = band[:, top + dy : top + dy + rows, left + dx : left + dx + cols]
    if parent is not None:
        vectors[:, -1] = parent[:, top : top + rows, left : left + cols]
    return vectors.reshape(len(band), n, rows * cols)


class ReferenceGSM(NamedTuple):
    """The Gaussian scale mixture model of a reference band (R references): the enlarged parent band in its
    neighbourhood vectors (R,H-2,W-2, or None), the pseudo-inverse of the vectors' corrected covariance (R,n,n),
    the corrected eigenvalues (R,n) and their elementary symmetric polynomials (R,n+1)."""

    parent: np.ndarray | None
    inverse: np.ndarray
    eigenvalues: np.ndarray
    coefficients: np.ndarray


def reference_gsm(band: np.ndarray, parent: np.ndarray | None) -> ReferenceGSM:
    """Fits `ReferenceGSM` to R,H,W reference bands with their enlarged parents (`enlarged_parent`, or None).

    The covariance of the neighbourhood vectors accumulates over strips of rows; its eigenvalues are made
    non-negative with their sum kept, and the pseudo-inverse stands for MATLAB's `inv` of the corrected matrix
    (singular only for constant bands).
    """
    rows, cols = band.shape[1] - BLOCK + 1, band.shape[2] - BLOCK + 1
    n = BLOCK * BLOCK + (parent is not None)
    cov = np.zeros((len(band), n, n))
    strip = max(1, _STRIP_PIXELS // cols)
    for top in range(0, rows, strip):
        vectors = _neighbourhoods(band, parent, top, min(strip, rows - top), 0, cols)
        cov += vectors @ vectors.transpose(0, 2, 1)
    eigvals, eigvecs = np.linalg.eigh(cov / (rows * cols))
    positive = np.maximum(eigvals, 0.0)
    total_pos = positive.sum(axis=-1, keepdims=True)
    scaled = positive * eigvals.sum(axis=-1, keepdims=True) / (total_pos + (total_pos == 0))
    inv_vals = np.divide(1.0, scaled, out=np.zeros_like(scaled), where=scaled > 0)
    inverse = (eigvecs * inv_vals[:, None, :]) @ eigvecs.transpose(0, 2, 1)
    return ReferenceGSM(parent, inverse, scaled, _symmetric_polynomials(scaled))


def _log2_sum(a: np.ndarray, vv: np.ndarray, coefficients: np.ndarray, eigenvalues: np.ndarray) -> np.ndarray:
    """sum_k log2(1 + (a lambda_k + sigma_nsq vv) / sigma_nsq^2) per pixel; a, vv: N,h,w; `coefficients`:
    N,n+1 elementary symmetric polynomials of the eigenvalues (N,n).

    With t = a / (sigma_nsq (sigma_nsq + vv)) the sum is n log2(1 + vv / sigma_nsq) + log2 prod_k (1 + lambda_k t),
    and the product is the polynomial sum_j c_j t^j with positive coefficients, evaluated by Horner's rule: two
    logarithms per pixel instead of n. Where it overflows, the sum of logarithms is taken term by term.
    """
    n = eigenvalues.shape[-1]
    t = a / (SIGMA_NSQ * (SIGMA_NSQ + vv))
    poly = t * coefficients[:, n, None, None]
    for j in range(n - 1, 0, -1):
        poly += coefficients[:, j, None, None]
        poly *= t
    poly += 1.0
    # A GSM fitted to rounding noise (flat or linear reference bands) can make the argument negative: NaN, as in
    # the graph, and the level's pooling then falls back to the plain mean.
    with np.errstate(invalid="ignore", divide="ignore"):
        if not np.all(np.isfinite(poly)):
            terms = (a[..., None] * eigenvalues[:, None, None, :] + SIGMA_NSQ * vv[..., None]) / SIGMA_NSQ**2
            return np.log1p(terms).sum(axis=-1) / np.log(2.0)
        return (np.log(poly) + n * np.log1p(vv / SIGMA_NSQ)) / np.log(2.0)


def _symmetric_polynomials(eigenvalues: np.ndarray) -> np.ndarray:
    """Coefficients c_0..c_n of prod_k (1 + lambda_k t) = sum_j c_j t^j per row of N,n eigenvalues: N,n+1."""
    coefficients = np.zeros((len(eigenvalues), eigenvalues.shape[-1] + 1))
    coefficients[:, 0] = 1.0
    for k in range(eigenvalues.shape[-1]):
        coefficients[:, 1:] += eigenvalues[:, k : k + 1] * coefficients[:, :-1].copy()
    return coefficients


def _strip_sums(
    x: np.ndarray, y: np.ndarray, ref_index: np.ndarray | None, gsm: ReferenceGSM, top: int, rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output rows top..top+rows-1 of a band-pass level (pooled pixels, 'valid' for the 11x11 window): per pair
    the sums of the information content weights, of the weighted cs map and of the cs map."""
    refs, pairs, width = len(x), len(y), x.shape[2] - WINDOW_SIZE + 1
    # x, x^2 of the references, then y, y^2, x y of the pairs, on the band rows the strip's windows cover.
    planes = np.empty((2 * refs + 3 * pairs, rows + WINDOW_SIZE - 1, x.shape[2]))
    xs, ys = x[:, top : top + rows + WINDOW_SIZE - 1], y[:, top : top + rows + WINDOW_SIZE - 1]
    planes[:refs] = xs
    np.multiply(xs, xs, out=planes[refs : 2 * refs])
    planes[2 * refs : 2 * refs + pairs] = ys
    np.multiply(ys, ys, out=planes[2 * refs + pairs : 2 * refs + 2 * pairs])
    np.multiply(functional.take_refs(xs, ref_index), ys, out=planes[2 * refs + 2 * pairs :])

    # SSIM contrast-structure map from the 11x11 Gaussian moments.
    mu = banded.correlate_valid(banded.correlate_valid(planes, _GAUSSIAN, 1), _GAUSSIAN, 2)
    mu_x, mu_y = functional.take_refs(mu[:refs], ref_index), mu[2 * refs : 2 * refs + pairs]
    var_x = functional.take_refs(mu[refs : 2 * refs] - mu[:refs] ** 2, ref_index)
    var_y = mu[2 * refs + pairs : 2 * refs + 2 * pairs] - mu_y * mu_y
    cov = mu[2 * refs + 2 * pairs :] - mu_x * mu_y
    c2 = (K2 * L) ** 2
    cs_map = (2.0 * cov + c2) / (var_x + var_y + c2)

    # Information content weights (`info_content_weight_map`) from the 3x3 moments and the reference's GSM; the
    # 3x3 windows of the pooled pixels start _CROP band pixels in.
    box_rows = banded.correlate_valid(
        planes[:, _CROP : _CROP + rows + BLOCK - 1, _CROP : _CROP + width + BLOCK - 1], _BOX, 1
    )
    local = box_rows[:, :, :-2] + box_rows[:, :, 1:-1]  # the column pass as slices: 3 taps
    local += box_rows[:, :, 2:]
    local *= 1.0 / BLOCK
    vectors = _neighbourhoods(x, gsm.parent, top + _CROP, rows, _CROP, width)
    ss = np.einsum("rkp,rkp->rp", gsm.inverse @ vectors, vectors).reshape(refs, rows, width) / vectors.shape[1]
    ss_x = np.maximum(local[refs : 2 * refs] - local[:refs] ** 2, 0.0)
    e_x, ss_x, ss = (functional.take_refs(v, ref_index) for v in (local[:refs], ss_x, ss))
    e_y = local[2 * refs : 2 * refs + pairs]
    ss_y = np.maximum(local[2 * refs + pairs : 2 * refs + 2 * pairs] - e_y * e_y, 0.0)
    cov = local[2 * refs + 2 * pairs :] - e_x * e_y
    g = cov / (ss_x + TOL)
    vv = ss_y - g * cov
    small_x, small_y = ss_x < TOL, ss_y < TOL
    np.copyto(vv, ss_y, where=small_x)
    np.copyto(g, 0.0, where=small_x | small_y)
    np.copyto(vv, 0.0, where=small_y)
    coefficients, eigenvalues = (functional.take_refs(v, ref_index) for v in (gsm.coefficients, gsm.eigenvalues))
    infow = _log2_sum((vv + (1.0 + g * g) * SIGMA_NSQ) * ss, vv, coefficients, eigenvalues)
    infow[infow < TOL] = 0.0
    return infow.sum(axis=(1, 2)), np.einsum("nij,nij->n", cs_map, infow), cs_map.sum(axis=(1, 2))


def _pooled_cs(x: np.ndarray, y: np.ndarray, ref_index: np.ndarray | None, parent: np.ndarray | None) -> np.ndarray:
    """The information-weighted mean of the cs map of each pair at one band-pass level (the plain mean where
    all weights are 0, as `pooling.weighted_mean`), taken strip by strip."""
    gsm = reference_gsm(x, parent)
    height, width = x.shape[1] - WINDOW_SIZE + 1, x.shape[2] - WINDOW_SIZE + 1
    strip = max(1, _STRIP_PIXELS // width)
    tops = range(0, height, strip)
    sums = in_parallel(lambda top: _strip_sums(x, y, ref_index, gsm, top, min(strip, height - top)), tops)
    total, weighted, plain = (np.sum(s, axis=0) for s in zip(*sums))
    return np.where(total > 0, weighted / np.where(total > 0, total, 1.0), plain / (height * width))


def _mean_ssim(x: np.ndarray, y: np.ndarray, ref_index: np.ndarray | None) -> np.ndarray:
    """Mean SSIM map (luminance included) of each pair of N,H,W images."""
    refs, pairs = len(x), len(y)
    xs = functional.take_refs(x, ref_index)
    planes = np.concatenate([x, x * x, y, y * y, xs * y])
    mu = banded.correlate_valid(banded.correlate_valid(planes, _GAUSSIAN, 1), _GAUSSIAN, 2)
    mu_x, e_xx = (functional.take_refs(m, ref_index) for m in (mu[:refs], mu[refs : 2 * refs]))
    mu_y, e_yy, e_xy = (mu[2 * refs + k * pairs : 2 * refs + (k + 1) * pairs] for k in range(3))
    c1, c2 = (K1 * L) ** 2, (K2 * L) ** 2
    var_x, var_y, cov = e_xx - mu_x * mu_x, e_yy - mu_y * mu_y, e_xy - mu_x * mu_y
    ssim_map = (2.0 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1) * (2.0 * cov + c2) / (var_x + var_y + c2)
    return functional.mean_per_image(ssim_map)


def iwssim(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """IW-SSIM of each pair (1 = identical): information-weighted cs means of the band-pass levels and the mean
    SSIM of the low-pass level, combined as a weighted geometric mean."""
    ref_bands, dist_bands = in_parallel(lambda rgb: laplacian_pyramid(functional.rgb2gray(rgb)), [ref, dist])
    pooled = []
    for level, (x, y) in enumerate(zip(ref_bands, dist_bands)):
        if level == LEVELS - 1:
            pooled.append(_mean_ssim(x, y, ref_index))
            continue
        parent = None
        if level < LEVELS - 2:
            parent = enlarged_parent(ref_bands[level + 1], x.shape[1], x.shape[2])
        pooled.append(_pooled_cs(x, y, ref_index, parent))
    return np.prod(np.abs(np.stack(pooled)) ** WEIGHTS[:, None], axis=0)
