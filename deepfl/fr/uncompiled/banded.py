"""Banded linear maps along one axis of P,H,W float64 arrays, run as batched BLAS products.

A 1-D filter along an axis is a banded matrix; applied block by block (a few output samples per block, their
input slab an overlapping strided view with no copy), all full blocks make one batched `matmul`, far faster than
a loop over the taps or `scipy.ndimage` for the short filters of the metrics. Call with BLAS on one thread
(`staging` does for the NumPy forms): the products are small and many.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

ROW_BLOCK = 8  # output rows per block of a banded product along axis 1
COLUMN_BLOCK = 32  # output columns per block of a banded product along axis 2
BLOCKS = {1: ROW_BLOCK, 2: COLUMN_BLOCK}


def window_view(x: np.ndarray, shape: tuple, strides: tuple) -> np.ndarray:
    """A strided (overlapping) view of x: `np.ndarray` on x's buffer where x is contiguous (as_strided costs more
    than many of the small products it feeds)."""
    if x.flags.c_contiguous:
        return np.ndarray(shape, x.dtype, buffer=x, strides=strides)
    return as_strided(x, shape, strides, writeable=False)


def banded_product(x: np.ndarray, matrix: np.ndarray, step: int, size: int, axis: int) -> np.ndarray:
    """A banded linear map along axis 1 or 2 of a P,H,W array, applied block by block with BLAS.

    Output samples b*k .. b*k + k-1 (k = len(matrix)) are `matrix` times the input samples b*step ..
    b*step + matrix.shape[1] - 1: a filter of `step` input samples per block, polyphase when k != step. The
    input slabs are an overlapping strided view (no copy) and all full blocks are one batched product; the
    last size % k samples take `matrix`'s first rows on what input is left.
    """
    per_block, slab = matrix.shape
    count = size // per_block
    done = count * per_block
    planes, rows, cols = x.shape
    out_shape = (planes, rows, size)
    if axis == 1:
        out = np.empty((planes, size, cols))
        if count:
            view = window_view(x, (planes, count, slab, cols), (x.strides[0], step * x.strides[1], *x.strides[1:]))
            np.matmul(matrix, view, out=out[:, :done].reshape(planes, count, per_block, cols))
        if done < size:
            rest = x[:, count * step :]
            out[:, done:] = matrix[: size - done, : rest.shape[1]] @ rest
        return out
    out = np.empty((planes, rows, size))
    if x.strides[0] == rows * x.strides[1]:  # planes x rows as one axis: fewer, larger products
        x, out, planes, rows = x.reshape(1, planes * rows, cols), out.reshape(1, planes * rows, size), 1, planes * rows
    if count:
        view = window_view(x, (count, planes, rows, slab), (step * x.strides[2], *x.strides))
        target = out[:, :, :done].reshape(planes, rows, count, per_block).transpose(2, 0, 1, 3)
        np.matmul(view, matrix.T, out=target)
    if done < size:
        rest = x[:, :, count * step :]
        out[:, :, done:] = rest @ matrix[: size - done, : rest.shape[2]].T
    return out.reshape(out_shape)


def band_matrix(taps: np.ndarray, count: int, step: int = 1) -> np.ndarray:
    """count x (step (count - 1) + len(taps)) matrix whose row i holds `taps` from column step i."""
    matrix = np.zeros((count, step * (count - 1) + len(taps)))
    rows = np.arange(count)[:, None]
    matrix[rows, step * rows + np.arange(len(taps))] = taps
    return matrix


@functools.lru_cache(maxsize=32)
def _taps_matrices(taps: tuple[float, ...]) -> dict[int, np.ndarray]:
    return {axis: band_matrix(np.asarray(taps), block) for axis, block in BLOCKS.items()}


def correlate_valid(x: np.ndarray, taps: np.ndarray | tuple, axis: int) -> np.ndarray:
    """'valid' correlation along axis 1 or 2 of a P,H,W array: out[i] = sum_j taps[j] x[i + j]."""
    matrix = _taps_matrices(tuple(float(t) for t in taps))[axis]
    return banded_product(x, matrix, len(matrix), x.shape[axis] - (matrix.shape[1] - len(matrix)), axis)
