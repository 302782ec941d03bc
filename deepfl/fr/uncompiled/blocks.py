"""Row-block operations of the NumPy forms of SR-SIM and VSI (`_sr_sim.py`, `_vsi.py`), written for cold calls:
row blocks that stay in cache, sparse one-axis `imresize` operators, box-downsampled colour planes, `mat2gray`
and the per-pair sums of the blocks' pooling (whose per-pixel arithmetic is in `saliency_kernels`)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse

from deepfl.fr.functional.resize import imresize_matrix

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
        # C order, as the downsampled planes are: the pooling kernels then have one signature to compile
        return np.ascontiguousarray(np.moveaxis(images[which, start:stop], -1, 0), np.float64)
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


def mat2gray(x: np.ndarray) -> np.ndarray:
    """MATLAB `mat2gray` per image over axes 1, 2; a map without a positive finite range (constant, or infinite
    after an overflow) maps to zeros, as the TF form's guard selects."""
    lo = x.min(axis=(1, 2), keepdims=True)
    span = x.max(axis=(1, 2), keepdims=True) - lo
    valid = span > 0
    return np.where(valid, (x - lo) / np.where(valid, span, 1.0), 0.0)


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
