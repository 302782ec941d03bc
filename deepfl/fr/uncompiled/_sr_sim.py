"""SR-SIM in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_sr_sim.py`.

Also the array operations SR-SIM shares with VSI (`deepfl.fr.uncompiled._vsi` imports them): `imresize` as
sparse passes, Scharr gradient magnitudes by slicing, `mat2gray`, the similarity term and the weighted pooling.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft
import scipy.sparse

from deepfl.fr._sr_sim import ALPHA, AVE_KERNEL, C1, C2, GAUSS_SIGMA, GAUSS_SIZE, SCALE
from deepfl.fr.functional.colour import YIQ
from deepfl.fr.functional.filters import SCHARR_X, auto_downsample_factor, gaussian_kernel2d
from deepfl.fr.functional.resize import imresize_matrix
from deepfl.fr.uncompiled import functional

FFT_WORKERS = 2


@functools.lru_cache(maxsize=64)
def _resize_operator(in_len: int, out_len: int, method: str, scale: float) -> scipy.sparse.csr_array:
    """`imresize_matrix` as a sparse band: each output row keeps the columns from its first to its last tap."""
    dense = imresize_matrix(in_len, out_len, method, scale)
    nonzero = dense != 0
    first = nonzero.argmax(axis=1)
    last = in_len - 1 - nonzero[:, ::-1].argmax(axis=1)
    width = int((last - first).max()) + 1
    cols = np.minimum(first, in_len - width)[:, None] + np.arange(width)
    data = np.take_along_axis(dense, cols, axis=1)
    indptr = np.arange(0, out_len * width + 1, width)
    return scipy.sparse.csr_array((data.ravel(), cols.ravel(), indptr), shape=(out_len, in_len))


def imresize(
    x: np.ndarray, out_hw: tuple[int, int], method: str, scale: float | None = None, transposed: bool = False
) -> np.ndarray:
    """MATLAB `imresize` of N,H,W[,C] maps over axes 1, 2 as two sparse passes (float64).

    The two 1-D passes are linear and act on different axes, so their order (MATLAB's: the smaller scale first)
    changes only the rounding. transposed=True returns the result with H and W swapped (N,W',H'[,C], C-ordered),
    which spares the final transposition when the consumer does not mind the layout.
    """
    (rows, cols), (out_rows, out_cols) = x.shape[1:3], out_hw
    along_h = _resize_operator(rows, out_rows, method, out_rows / rows if scale is None else scale)
    along_w = _resize_operator(cols, out_cols, method, out_cols / cols if scale is None else scale)
    tail = x.shape[3:]
    out = np.empty((len(x), out_cols, out_rows) + tail)
    for image, result in zip(x, out):
        tall = along_h @ np.asarray(image, np.float64).reshape(rows, -1)
        wide = np.ascontiguousarray(tall.reshape((out_rows, cols, -1)).swapaxes(0, 1)).reshape(cols, -1)
        result[...] = (along_w @ wide).reshape(result.shape)
    return out if transposed else np.ascontiguousarray(out.swapaxes(1, 2))


def scharr_magnitude(y: np.ndarray) -> np.ndarray:
    """`gradient_magnitude(y, SCHARR_X)` of N,h,w maps (zero border) by slicing: the derivative x(j+1) - x(j-1)
    across, then the (3, 10, 3) / 16 smoothing along the other axis."""
    outer, centre = SCHARR_X[0, 0], SCHARR_X[1, 0]
    padded = np.zeros((len(y), y.shape[1] + 2, y.shape[2] + 2))
    padded[:, 1:-1, 1:-1] = y
    dx = padded[:, :, 2:] - padded[:, :, :-2]
    dy = padded[:, 2:] - padded[:, :-2]
    gx = (dx[:, :-2] + dx[:, 2:]) * outer
    gx += dx[:, 1:-1] * centre
    gy = (dy[:, :, :-2] + dy[:, :, 2:]) * outer
    gy += dy[:, :, 1:-1] * centre
    gx *= gx
    gy *= gy
    gx += gy
    return np.sqrt(gx, out=gx)


def mat2gray(x: np.ndarray) -> np.ndarray:
    """MATLAB `mat2gray` per image over axes 1, 2; a constant image maps to zeros (the TF form's guard)."""
    lo = x.min(axis=(1, 2), keepdims=True)
    span = x.max(axis=(1, 2), keepdims=True) - lo
    return (x - lo) * np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)


def similarity(a: np.ndarray, b: np.ndarray, constant: float) -> np.ndarray:
    """(2ab + c) / (a^2 + b^2 + c)."""
    return (2.0 * a * b + constant) / (a * a + b * b + constant)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum(values * weights) / sum(weights) per image, the plain mean where all weights are 0 (the TF guard)."""
    total = weights.sum(axis=(1, 2))
    weighted = np.einsum("nhw,nhw->n", values, weights)
    return np.where(total > 0, weighted / np.where(total > 0, total, 1.0), values.mean(axis=(1, 2)))


def _spectral_residual_small(y: np.ndarray) -> np.ndarray:
    """`imresize(Y, 0.25)` and the spectral residual saliency of N,h,w luma maps -> `mat2gray`ed small maps."""
    rows, cols = y.shape[1:]
    small = imresize(y, (math.ceil(rows * SCALE), math.ceil(cols * SCALE)), "bicubic", SCALE)
    spectrum = scipy.fft.fft2(small, workers=FFT_WORKERS)
    amplitude = np.abs(spectrum)
    log_amplitude = np.log(np.maximum(amplitude, 1e-300))
    box = np.full((AVE_KERNEL, AVE_KERNEL), 1.0 / AVE_KERNEL**2)
    residual = np.exp(log_amplitude - functional.correlate(log_amplitude, box, "same", "replicate"))
    unit = np.where(amplitude > 0, spectrum / np.where(amplitude > 0, amplitude, 1.0), 1.0)  # angle(0) = 0
    rebuilt = scipy.fft.ifft2(residual * unit, workers=FFT_WORKERS)
    energy = rebuilt.real**2 + rebuilt.imag**2
    saliency = functional.correlate(energy, gaussian_kernel2d(GAUSS_SIZE, GAUSS_SIGMA), "same", "zeros")
    return mat2gray(saliency)


def sr_sim(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """SR-SIM of each pair (1 = identical): gradient and spectral-residual similarity weighted by the saliency."""
    factor = auto_downsample_factor(ref.shape[1], ref.shape[2])
    images = np.concatenate([ref, dist])
    y = functional.box_downsample(functional.mix_channels(images, YIQ[:1])[..., 0], factor, "zeros")
    gm = scharr_magnitude(y)
    saliency = imresize(_spectral_residual_small(y), y.shape[1:], "bicubic")
    num_refs = len(ref)
    s1, s2 = functional.take_refs(saliency[:num_refs], ref_index), saliency[num_refs:]
    g1, g2 = functional.take_refs(gm[:num_refs], ref_index), gm[num_refs:]
    sim = similarity(s1, s2, C1) * similarity(g1, g2, C2) ** ALPHA
    return weighted_mean(sim, np.maximum(s1, s2))
