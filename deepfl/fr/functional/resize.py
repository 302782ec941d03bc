"""MATLAB `imresize` (bicubic/bilinear, antialiased when shrinking, mirrored borders) as two 1-D passes that
gather the few taps of each output pixel.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from deepfl.fr.functional import staging
from deepfl.fr.functional.arithmetic import round_half_away


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1.0) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - np.abs(x))


@functools.lru_cache(maxsize=64)
def imresize_matrix(
    in_len: int, out_len: int, method: str = "bicubic", scale: float | None = None, antialias: bool = True
) -> np.ndarray:
    """(out_len x in_len) matrix M with MATLAB `imresize` along one axis = M @ x (float64).

    Follows MATLAB's `contributions`: kernel widened by 1/scale when shrinking with antialiasing, weights
    normalised per output pixel, out-of-range taps mirrored (symmetric border). `scale` defaults to
    out_len / in_len (MATLAB's rule when an output size is given).
    """
    kernels = {"bicubic": (_cubic, 4.0), "bilinear": (_triangle, 2.0)}
    if method not in kernels:
        raise ValueError(f"method: expected bicubic or bilinear, got {method!r}")
    kernel, width = kernels[method]
    scale = out_len / in_len if scale is None else scale
    if scale < 1 and antialias:
        h = lambda v: scale * kernel(scale * v)  # noqa: E731
        width = width / scale
    else:
        h = kernel
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = h(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    cols = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len), np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps), cols.ravel()), weights.ravel())
    return matrix


@functools.lru_cache(maxsize=64)
def imresize_taps(
    in_len: int, out_len: int, method: str = "bicubic", scale: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The nonzero entries of `imresize_matrix` as (indices, weights), each out_len x taps (zero-padded)."""
    matrix = imresize_matrix(in_len, out_len, method, scale)
    taps = int((matrix != 0).sum(axis=1).max())
    indices = np.zeros((out_len, taps), np.int64)
    weights = np.zeros((out_len, taps), np.float64)
    for row in range(out_len):
        cols = np.nonzero(matrix[row])[0]
        indices[row, : len(cols)] = cols
        weights[row, : len(cols)] = matrix[row, cols]
    return indices, weights


def resize_axis(x: tf.Tensor, axis: int, in_len: int, out_len: int, method: str, scale: float) -> tf.Tensor:
    """Resizes NHWC `x` along axis 1 or 2 by gathering the few taps of each output pixel (no dense matmul)."""
    indices, weights = imresize_taps(in_len, out_len, method, scale)
    taps = indices.shape[1]
    gathered = tf.gather(x, indices.reshape(-1), axis=axis)
    shape = tf.unstack(tf.shape(gathered))
    if axis == 1:
        gathered = tf.reshape(gathered, tf.stack([shape[0], out_len, taps, shape[2], shape[3]]))
        w = tf.constant(weights[None, :, :, None, None], x.dtype)
        return tf.reduce_sum(gathered * w, axis=2)
    gathered = tf.reshape(gathered, tf.stack([shape[0], shape[1], out_len, taps, shape[3]]))
    w = tf.constant(weights[None, None, :, :, None], x.dtype)
    return tf.reduce_sum(gathered * w, axis=3)


def imresize_passes(in_hw: tuple[int, int], out_hw: tuple[int, int], scale: float | None = None) -> tuple[tuple, tuple]:
    """The two 1-D passes of MATLAB `imresize` as (axis, in_len, out_len, scale) for `resize_axis`, in MATLAB's
    order: the axis with the smaller scale first (rows first on a tie). `scale` overrides both scales as in
    `imresize(x, scale)`; by default each is out_len / in_len."""
    (rows, cols), (out_rows, out_cols) = in_hw, out_hw
    scale_h = out_rows / rows if scale is None else scale
    scale_w = out_cols / cols if scale is None else scale
    along_h, along_w = (1, rows, out_rows, scale_h), (2, cols, out_cols, scale_w)
    return (along_w, along_h) if scale_w < scale_h else (along_h, along_w)


def imresize(
    x: tf.Tensor, out_hw: tuple[int, int], method: str = "bicubic", scale: float | None = None, uint8: bool = False
) -> tf.Tensor:
    """MATLAB `imresize` of NHWC `x` to out_hw (antialiased when shrinking), as two 1-D passes of a few taps.

    uint8=True mimics a uint8 input: MATLAB resizes the axis with the smaller scale first and rounds (half away
    from zero) and clips to 0..255 after each axis.
    """
    for axis, in_len, out_len, pass_scale in imresize_passes((x.shape[1], x.shape[2]), out_hw, scale):
        x = resize_axis(x, axis, in_len, out_len, method, pass_scale)
        if uint8:
            x = tf.clip_by_value(round_half_away(x), 0.0, 255.0)
    return x


@staging.xla_stage
def resize_pass(x: tf.Tensor, method: str, axis: int, in_len: int, out_len: int, scale: float) -> tf.Tensor:
    """One MATLAB `imresize` pass (`resize_axis`; the passes come from `imresize_passes`) in its own XLA
    cluster, so that its output is materialised before any consumer reads its taps (fused into a consumer, the
    gather would recompute the producer's chain once per tap)."""
    return resize_axis(x, axis, in_len, out_len, method, scale)
