"""SR-SIM in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_sr_sim.py`.

Every call here meets a new image size, so the work is organised for cold calls:
- full-size maps are never stored: the luma is computed in blocks of rows, once for the 1/4-size image and once
  more (with a row of margin) for the gradients, and each block's similarity is pooled at once into per-pair sums.
  Blocks stay in the cache, and a new size allocates no large buffers (fresh memory is paid for in page faults);
- the images (saliency) and the two halves of the rows (pooling) run on two threads: NumPy's ufuncs and SciPy's
  sparse products and FFTs release the GIL;
- `imresize` runs as sparse one-axis operators (a few taps per output pixel); nothing calls BLAS, whose own threads
  would compete with these.

The row-block operations it shares with VSI are in `deepfl.fr.uncompiled.blocks`; each block's gradients,
similarities and sums are one Numba kernel (`saliency_kernels.pool_block_sr_sim`).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
import scipy.sparse

from deepfl.fr._sr_sim import ALPHA, AVE_KERNEL, C1, C2, GAUSS_SIGMA, GAUSS_SIZE, SCALE
from deepfl.fr.functional.colour import YIQ
from deepfl.fr.functional.filters import SCHARR_X, auto_downsample_factor, gaussian_kernel2d
from deepfl.fr.uncompiled import functional, saliency_kernels
from deepfl.fr.uncompiled.blocks import (
    apply_cols,
    apply_rows,
    item_groups,
    mat2gray,
    mix,
    operator_rows,
    pair_references,
    pooled,
    resize_operators,
    rgb_planes,
    row_blocks,
    spans,
)
from deepfl.fr.uncompiled.threads import in_parallel


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
    luma = np.array(YIQ[0])
    constants = (C1, C2, ALPHA, SCHARR_X[0, 0], SCHARR_X[1, 0])

    def pool(pairs: slice) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        refs, index = pair_references(pairs, ref_index)
        images = np.concatenate([np.arange(num_refs)[refs], num_refs + np.arange(num_pairs)[pairs]])
        group_wide = wide[:, images].reshape(small_hw[0], -1)
        used = len(images) - (pairs.stop - pairs.start)
        slots = np.arange(pairs.stop - pairs.start) if index is None else np.asarray(index, np.int64)

        def pool_rows(rows: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            sums = []
            for start, stop in row_blocks(*rows, len(images) * width):
                saliency = (operator_rows(along_h, start, stop) @ group_wide).reshape(stop - start, -1, width)
                saliency = np.ascontiguousarray(saliency.transpose(1, 0, 2))
                lo, hi = max(start - 1, 0), min(stop + 1, height)
                block = saliency_kernels.pool_block_sr_sim(
                    rgb_planes(ref, factor, lo, hi, refs),
                    rgb_planes(dist, factor, lo, hi, pairs),
                    slots,
                    lo,
                    start,
                    stop,
                    height,
                    saliency[:used],
                    saliency[used:],
                    luma,
                    constants,
                )
                sums.append((block[:, 0], block[:, 1], block[:, 2]))
            return sums

        return [block for part in in_parallel(pool_rows, spans(groups, height)) for block in part]

    return pooled(num_pairs, groups, in_parallel(pool, groups), height * width)
