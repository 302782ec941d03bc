"""SR-SIM in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_sr_sim.py`.

Every call here meets a new image size, so the work is organised for cold calls:
- full-size maps are never stored: the luma is computed in blocks of rows, once for the 1/4-size image and once
  more (with a row of margin) for the gradients, and each block's similarity is pooled at once into per-pair sums.
  Blocks stay in the cache, and a new size allocates no large buffers (fresh memory is paid for in page faults);
- the images (saliency) and the two halves of the rows (pooling) run on two threads: NumPy's ufuncs and SciPy's
  sparse products and FFTs release the GIL;
- `imresize` runs as sparse one-axis operators (a few taps per output pixel); nothing calls BLAS, whose own threads
  would compete with these.

Also the block operations SR-SIM shares with VSI (`deepfl.fr.uncompiled._vsi` imports them): row blocks,
sparse `imresize` operators, box-downsampled colour planes, Scharr gradients by slicing, `mat2gray`, the
similarity terms and the weighted pooling.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import scipy.fft
import scipy.sparse

from deepfl.fr._sr_sim import ALPHA, AVE_KERNEL, C1, C2, GAUSS_SIGMA, GAUSS_SIZE, SCALE
from deepfl.fr.functional.colour import YIQ
from deepfl.fr.functional.filters import SCHARR_X, auto_downsample_factor, gaussian_kernel2d
from deepfl.fr.functional.resize import imresize_matrix
from deepfl.fr.uncompiled import functional
from deepfl.fr.uncompiled.threads import in_parallel

BLOCK_VALUES = 1 << 16  # float64 values of one map, all images of a block together, per block of rows
MIN_BLOCK_ROWS = 32  # a large batch is pooled in groups of pairs, so that each block still has this many rows


def row_blocks(start: int, stop: int, values_per_row: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive blocks of the rows start..stop-1, about BLOCK_VALUES values each."""
    step = max(1, BLOCK_VALUES // max(values_per_row, 1))
    for first in range(start, stop, step):
        yield first, min(stop, first + step)


def halves(rows: int) -> list[tuple[int, int]]:
    """The rows 0..rows-1 in two halves (start, stop), one per thread."""
    middle = (rows + 1) // 2
    return [(0, middle), (middle, rows)]


def item_groups(count: int, values_per_item_row: int) -> list[slice]:
    """`count` items (images, or pairs) in groups of consecutive items few enough for blocks of MIN_BLOCK_ROWS
    rows. The groups share the threads; a single group shares them by halves of its rows (`spans`)."""
    size = max(1, BLOCK_VALUES // (MIN_BLOCK_ROWS * values_per_item_row))
    return [slice(first, min(count, first + size)) for first in range(0, count, size)]


def spans(groups: Sequence[slice], height: int) -> list[tuple[int, int]]:
    """The rows each group works on as (start, stop) pieces: two halves for a single group, else all rows."""
    return halves(height) if len(groups) == 1 else [(0, height)]


def pair_references(pairs: slice, ref_index: np.ndarray | None) -> tuple[slice | np.ndarray, np.ndarray | None]:
    """The references that some pairs use, and the position of each pair's reference among them (None: pair i
    uses reference i)."""
    if ref_index is None:
        return pairs, None
    return np.unique(ref_index[pairs], return_inverse=True)


@functools.lru_cache(maxsize=64)
def resize_operator(in_len: int, out_len: int, method: str, scale: float) -> scipy.sparse.csr_array:
    """`imresize_matrix` (one axis of MATLAB `imresize`) as a sparse band: each output row keeps the columns from
    its first to its last tap."""
    dense = imresize_matrix(in_len, out_len, method, scale)
    nonzero = dense != 0
    first = nonzero.argmax(axis=1)
    last = in_len - 1 - nonzero[:, ::-1].argmax(axis=1)
    width = int((last - first).max()) + 1
    cols = np.minimum(first, in_len - width)[:, None] + np.arange(width)
    data = np.take_along_axis(dense, cols, axis=1)
    indptr = np.arange(0, out_len * width + 1, width)
    return scipy.sparse.csr_array((data.ravel(), cols.ravel(), indptr), shape=(out_len, in_len))


def resize_operators(
    in_hw: tuple[int, int], out_hw: tuple[int, int], method: str, scale: float | None = None
) -> tuple[scipy.sparse.csr_array, scipy.sparse.csr_array]:
    """The row and column operators of `imresize(x, out_hw)` (or `imresize(x, scale)`): out = A_h @ x @ A_w.T.

    The two passes are linear and act on different axes, so applying them in another order than MATLAB's (the
    smaller scale first) changes only the rounding.
    """
    (rows, cols), (out_rows, out_cols) = in_hw, out_hw
    along_h = resize_operator(rows, out_rows, method, out_rows / rows if scale is None else scale)
    along_w = resize_operator(cols, out_cols, method, out_cols / cols if scale is None else scale)
    return along_h, along_w


def operator_rows(operator: scipy.sparse.csr_array, start: int, stop: int) -> scipy.sparse.csr_array:
    """Rows start..stop-1 of a CSR operator, built from its arrays (SciPy's slicing costs far more per call)."""
    lo, hi = operator.indptr[start], operator.indptr[stop]
    indptr = operator.indptr[start : stop + 1] - lo
    shape = (stop - start, operator.shape[1])
    return scipy.sparse.csr_array((operator.data[lo:hi], operator.indices[lo:hi], indptr), shape=shape)


def apply_rows(operator: scipy.sparse.sparray, x: np.ndarray) -> np.ndarray:
    """operator (out x H) applied along axis 1 of N,H,W maps -> N,out,W."""
    return np.stack([operator @ image for image in x])


def apply_cols(operator: scipy.sparse.sparray, x: np.ndarray) -> np.ndarray:
    """operator (out x W) applied along axis 2 of N,H,W maps -> N,H,out (C-ordered)."""
    rows = x.shape[1]
    flat = np.ascontiguousarray(x.reshape(-1, x.shape[2]).T)
    return np.ascontiguousarray((operator @ flat).T).reshape(len(x), rows, operator.shape[0])


def rgb_planes(images: np.ndarray, factor: int, start: int, stop: int, which: slice | np.ndarray) -> np.ndarray:
    """Rows start..stop-1 of the images `which` of N,H,W,3 images, box-downsampled by factor, as float64 colour
    planes (3,n,rows,w).

    The box is `conv2(x, ones(f)/f^2, 'same')` subsampled from the first pixel: output i averages the input rows
    and columns i*f - floor((f-1)/2) .. i*f + floor(f/2), zeros outside the image; w = ceil(W/f).
    """
    if factor == 1:
        return np.moveaxis(images[which, start:stop], -1, 0).astype(np.float64)
    height, width = images.shape[1:3]
    out_w = -(-width // factor)
    before = (factor - 1) // 2
    top, bottom = start * factor - before, stop * factor - before
    lo, hi = max(top, 0), min(bottom, height)
    kept = min(width, out_w * factor - before)
    rgb = np.moveaxis(images[which, lo:hi, :kept], -1, 0)
    padded = np.zeros(rgb.shape[:2] + (bottom - top, out_w * factor))
    padded[:, :, lo - top : hi - top, before : before + kept] = rgb
    planes = np.zeros(rgb.shape[:2] + (stop - start, out_w))
    for i in range(factor):
        for j in range(factor):
            planes += padded[:, :, i::factor, j::factor]
    planes *= 1.0 / factor**2
    return planes


def mix(planes: np.ndarray, weights: Sequence[float], out: np.ndarray | None = None) -> np.ndarray:
    """weights[0] * R + weights[1] * G + weights[2] * B of colour planes (3, ...)."""
    out = np.multiply(planes[0], weights[0], out=out)
    term = planes[1] * weights[1]
    out += term
    np.multiply(planes[2], weights[2], out=term)
    out += term
    return out


def scharr_squared(padded: np.ndarray) -> np.ndarray:
    """Squared Scharr gradient magnitude (`gradient_magnitude(y, SCHARR_X)` squared) of the interior of
    N,h+2,w+2 maps whose margin holds the neighbouring rows and columns (zeros outside the image): the difference
    x(j+1) - x(j-1) in one direction, the (3, 10, 3) / 16 smoothing in the other."""
    outer, centre = SCHARR_X[0, 0], SCHARR_X[1, 0]
    dx = padded[:, :, 2:] - padded[:, :, :-2]
    gx = dx[:, :-2] + dx[:, 2:]
    gx *= outer
    dx *= centre
    gx += dx[:, 1:-1]
    dy = padded[:, 2:] - padded[:, :-2]
    gy = dy[:, :, :-2] + dy[:, :, 2:]
    gy *= outer
    dy *= centre
    gy += dy[:, :, 1:-1]
    gx *= gx
    gy *= gy
    gx += gy
    return gx


def mat2gray(x: np.ndarray) -> np.ndarray:
    """MATLAB `mat2gray` per image over axes 1, 2; a map without a positive finite range (constant, or infinite
    after an overflow) maps to zeros, as the TF form's guard selects."""
    lo = x.min(axis=(1, 2), keepdims=True)
    span = x.max(axis=(1, 2), keepdims=True) - lo
    valid = span > 0
    return np.where(valid, (x - lo) / np.where(valid, span, 1.0), 0.0)


def similarity(a: np.ndarray, b: np.ndarray, constant: float) -> np.ndarray:
    """(2ab + c) / (a^2 + b^2 + c)."""
    num = a * b
    num *= 2.0
    num += constant
    den = a * a
    den += b * b
    den += constant
    num /= den
    return num


def gradient_similarity(q1: np.ndarray, q2: np.ndarray, constant: float) -> np.ndarray:
    """`similarity` of two gradient magnitudes given squared: (2 g1 g2 + c) / (g1^2 + g2^2 + c)."""
    num = q1 * q2
    np.sqrt(num, out=num)
    num *= 2.0
    num += constant
    den = q1 + q2
    den += constant
    num /= den
    return num


def pooled(num_pairs: int, groups: Sequence[slice], sums: Sequence[list], pixels: int) -> np.ndarray:
    """sum(sim * w) / sum(w) per pair from the (weighted, total weight, plain) sums of each group's row blocks, the
    plain mean where all weights are 0 (the TF form's guard)."""
    weighted, total, plain = np.zeros(num_pairs), np.zeros(num_pairs), np.zeros(num_pairs)
    for pairs, blocks in zip(groups, sums):
        for block_weighted, block_total, block_plain in blocks:
            weighted[pairs] += block_weighted
            total[pairs] += block_total
            plain[pairs] += block_plain
    return np.where(total > 0, weighted / np.where(total > 0, total, 1.0), plain / pixels)


def block_sums(sim: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sum(sim * weights), sum(weights), sum(sim)) per pair of N,rows,w maps."""
    return np.einsum("nhw,nhw->n", sim, weights), weights.sum(axis=(1, 2)), sim.sum(axis=(1, 2))


def _small_luma(image: np.ndarray, factor: int, small_hw: tuple[int, int]) -> np.ndarray:
    """`imresize(Y, 0.25)` (bicubic, antialiased) of the box-downsampled luma of an H,W,3 image: the column pass on
    blocks of luma rows, the row pass on the (four times narrower) result."""
    height, width = -(-image.shape[0] // factor), -(-image.shape[1] // factor)
    along_h, along_w = resize_operators((height, width), small_hw, "bicubic", SCALE)
    narrow = np.empty((1, height, small_hw[1]))
    for start, stop in row_blocks(0, height, width):
        narrow[:, start:stop] = apply_cols(
            along_w, mix(rgb_planes(image[None], factor, start, stop, slice(None)), YIQ[0])
        )
    return apply_rows(along_h, narrow)[0]


@np.errstate(over="ignore", invalid="ignore")  # a constant image overflows to inf, which `mat2gray` maps to 0
def _spectral_residual(small: np.ndarray) -> np.ndarray:
    """Spectral residual saliency of an h,w map: `mat2gray` of the smoothed squared inverse FFT."""
    spectrum = scipy.fft.fft2(small)
    amplitude = np.abs(spectrum)
    log_amplitude = np.log(np.maximum(amplitude, 1e-300))[None]
    box = np.full((AVE_KERNEL, AVE_KERNEL), 1.0 / AVE_KERNEL**2)
    residual = np.exp(log_amplitude - functional.correlate(log_amplitude, box, "same", "replicate"))[0]
    unit = np.where(amplitude > 0, spectrum / np.where(amplitude > 0, amplitude, 1.0), 1.0)  # angle(0) = 0
    rebuilt = scipy.fft.ifft2(residual * unit)
    energy = (rebuilt.real**2 + rebuilt.imag**2)[None]
    return mat2gray(functional.correlate(energy, gaussian_kernel2d(GAUSS_SIZE, GAUSS_SIGMA), "same", "zeros"))[0]


def _squared_gradient_rows(
    images: np.ndarray, which: slice | np.ndarray, factor: int, start: int, stop: int, hw: tuple[int, int]
) -> np.ndarray:
    """Squared Scharr gradient magnitude of the luma rows start..stop-1 (n,rows,w) of the images `which`."""
    height, width = hw
    rgb = rgb_planes(images, factor, max(start - 1, 0), min(stop + 1, height), which)
    padded = np.zeros((rgb.shape[1], stop - start + 2, width + 2))
    top = 1 if start == 0 else 0
    mix(rgb, YIQ[0], padded[:, top : top + rgb.shape[2], 1:-1])
    return scharr_squared(padded)


def sr_sim(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """SR-SIM of each pair (1 = identical): gradient and spectral-residual similarity weighted by the saliency."""
    factor = auto_downsample_factor(ref.shape[1], ref.shape[2])
    hw = height, width = -(-ref.shape[1] // factor), -(-ref.shape[2] // factor)
    small_hw = (math.ceil(height * SCALE), math.ceil(width * SCALE))
    small = np.stack(in_parallel(lambda image: _spectral_residual(_small_luma(image, factor, small_hw)), [*ref, *dist]))
    # Saliency at full size = along_h @ small @ along_w.T: the column pass here, the rows per block.
    along_h, along_w = resize_operators(small_hw, hw, "bicubic")
    wide = apply_cols(along_w, small).transpose(1, 0, 2)  # h/4, N, w
    num_refs, num_pairs = len(ref), len(dist)
    groups = item_groups(num_pairs, 2 * width)

    def pool(pairs: slice) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        refs, index = pair_references(pairs, ref_index)
        images = np.concatenate([np.arange(num_refs)[refs], num_refs + np.arange(num_pairs)[pairs]])
        group_wide = wide[:, images].reshape(small_hw[0], -1)
        used = len(images) - (pairs.stop - pairs.start)

        def pool_rows(rows: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            sums = []
            for start, stop in row_blocks(*rows, len(images) * width):
                saliency = (operator_rows(along_h, start, stop) @ group_wide).reshape(stop - start, -1, width)
                saliency = saliency.transpose(1, 0, 2)
                s1, s2 = functional.take_refs(saliency[:used], index), saliency[used:]
                q1 = functional.take_refs(_squared_gradient_rows(ref, refs, factor, start, stop, hw), index)
                sim = gradient_similarity(q1, _squared_gradient_rows(dist, pairs, factor, start, stop, hw), C2)
                sim **= ALPHA
                sim *= similarity(s1, s2, C1)
                sums.append(block_sums(sim, np.maximum(s1, s2)))
            return sums

        return [block for part in in_parallel(pool_rows, spans(groups, height)) for block in part]

    return pooled(num_pairs, groups, in_parallel(pool, groups), height * width)
