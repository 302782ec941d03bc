"""FSIMc in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_fsim.py`.

Phase congruency takes 16 inverse FFTs of every image, most of the time: they and the arithmetic on their
responses run in single precision (complex64, float32), as in the compiled graph; the colour, gradient and
pooling arithmetic in float64, except the chroma power (float32, as in the graph). The inverse FFTs are
TensorFlow's (`tf.signal.ifft2d`, eager), the compiled form's: on sizes with a large prime factor (461, 2 x 173),
which new shapes often bring, they took 0.5-0.66 of SciPy's time (both on two threads). The per-pixel work around
them (the filtered spectra, each orientation's energy, the pooling) runs as Numba kernels (`fsim_kernels`), one
pass each. Half of the images' phase congruency, and then half of the rows' pooling, run on a second thread
(`threads.in_parallel`); TensorFlow runs each FFT call on its own thread pool. The whole-image buffers of phase
congruency are kept from call to call (`_scratch`): a new shape then reuses memory that is already mapped instead
of paying the page faults of fresh arrays.
"""

from __future__ import annotations

import contextlib
import math
import queue
from collections.abc import Callable, Iterator

import numpy as np
import scipy.fft
import tensorflow as tf

from deepfl.fr._fsim import (
    EPSILON,
    LAMBDA,
    N_ORIENTS,
    N_SCALES,
    T1,
    T2,
    T3,
    T4,
    median_last,
    phasecong_filters,
)
from deepfl.fr.functional.colour import YIQ
from deepfl.fr.functional.filters import SCHARR_X, auto_downsample_factor
from deepfl.fr.uncompiled import fsim_kernels as kernels
from deepfl.fr.uncompiled import functional
from deepfl.fr.uncompiled.threads import WORKERS, in_parallel

_STRIP_PIXELS = 1 << 14  # pixels per strip: 128 KiB per float64 temporary
_SCRATCH: queue.SimpleQueue = queue.SimpleQueue()  # free sets of scratch buffers, one per concurrent task

Take = Callable[[str, tuple[int, ...], type], np.ndarray]


@contextlib.contextmanager
def _scratch() -> Iterator[Take]:
    """`take(name, shape, dtype)`: an uninitialised array that views this task's buffer `name`, kept after the call
    and grown to the largest size asked so far."""
    try:
        buffers = _SCRATCH.get_nowait()
    except queue.Empty:
        buffers = {}

    def take(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        size = math.prod(shape) * np.dtype(dtype).itemsize
        if name not in buffers or buffers[name].nbytes < size:
            buffers[name] = np.empty(size, np.uint8)
        return buffers[name][:size].view(dtype).reshape(shape)

    try:
        yield take
    finally:
        _SCRATCH.put(buffers)


def _strips(height: int, width: int) -> list[tuple[int, int]]:
    """Row ranges of about `_STRIP_PIXELS` pixels covering `height` rows."""
    step = max(1, _STRIP_PIXELS // width)
    return [(top, min(top + step, height)) for top in range(0, height, step)]


def _mix(rgb: np.ndarray, matrix) -> list[np.ndarray]:
    """The planes (float64) of ...,3 RGB mixed by the rows of a colour matrix, as multiply-adds: a BLAS product
    here is slower and does not run side by side on two threads."""
    red, green, blue = (rgb[..., c].astype(np.float64) for c in range(3))
    return [red * row[0] + green * row[1] + blue * row[2] for row in matrix]


def _luminance(rgb: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Y of H,W,3 RGB into the H,W float32 `out`."""
    for top, bottom in _strips(*rgb.shape[:2]):
        out[top:bottom] = _mix(rgb[top:bottom], YIQ[:1])[0]
    return out


def _spectrum(lum: np.ndarray, out: np.ndarray) -> np.ndarray:
    """2-D FFT of a real H,W image into the H,W complex64 `out`: `rfft2`'s half and the rest by X(-k) = conj X(k)."""
    height, width = lum.shape
    half = width // 2 + 1
    out[:, :half] = scipy.fft.rfft2(lum)
    if width > half:
        mirrored = out[:, width - half : 0 : -1]  # columns W - j for j = half .. W - 1
        out[0, half:] = mirrored[0]
        out[1:, half:] = mirrored[:0:-1]  # rows H - i for i = 1 .. H - 1
        np.conjugate(out[:, half:], out=out[:, half:])
    return out


def _phase_congruency(rgb: np.ndarray, filters: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """phasecong2's ResultPC of the Y channel of one H,W,3 RGB image (already box-downsampled), float32 H,W:
    sum over orientations of max(energy - T_o, 0) / sum of amplitudes, 0 where that sum is 0. Energy per
    orientation = (|sum_s EO_s|^2 - sum_s |Im(EO_s conj(sum EO))|) / (|sum EO| + epsilon), phasecong2's
    sum of e MeanE + o MeanO - |e MeanO - o MeanE| multiplied out. `filters`: `phasecong_filters`' radial parts
    (on the quarter grid, float32 here), angular parts (float32) and noise factors."""
    radial, angular, factors = filters
    height, width = rgb.shape[:2]
    with _scratch() as take:
        lum = _luminance(rgb, take("lum", (height, width), np.float32))
        spectrum = _spectrum(lum, take("spectrum", (height, width), np.complex64))
        products = take("products", (N_SCALES, height, width), np.complex64)
        energy = take("energy", (height, width), np.float32)
        finest = take("finest", (height, width), np.float32)
        amplitude_sum = take("amplitude_sum", (height, width), np.float32)
        energy_sum = take("energy_sum", (height, width), np.float32)
        amplitude_sum.fill(0.0)
        energy_sum.fill(0.0)
        for o in range(N_ORIENTS):
            kernels.oriented_products(spectrum, angular[o], radial, products)
            # np.asarray views the result's buffer (`.numpy()` copies it, into fresh pages for each new size);
            # a new buffer per call, as `products` is reused
            responses = np.asarray(tf.signal.ifft2d(products))
            kernels.orientation_energy(responses, EPSILON, amplitude_sum, energy, finest)
            threshold = math.sqrt(median_last(finest.ravel()) * factors[o])
            kernels.add_thresholded(energy, threshold, energy_sum)
        pc = np.zeros((height, width), np.float32)
        np.divide(energy_sum, amplitude_sum, out=pc, where=amplitude_sum > 0)
    return pc


def _bands(height: int) -> list[tuple[int, int]]:
    """Row ranges splitting `height` rows into one band per worker thread (`threads.WORKERS`)."""
    step = -(-height // WORKERS)
    return [(top, min(top + step, height)) for top in range(0, height, step)]


def fsim(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """FSIMc of each pair (1 = identical): the product of the phase-congruency, gradient and chroma similarities
    pooled with max(PC1, PC2) as weights (a plain mean where all weights are 0)."""
    factor = auto_downsample_factor(ref.shape[1], ref.shape[2])
    # float64 at every factor (a copy where it is 1): the pooling kernel then has one signature to compile
    ref, dist = (functional.box_downsample(x, factor, "zeros") for x in (ref, dist))
    height, width = dist.shape[1:3]
    radial_quarter, angular, factors = phasecong_filters(height, width, np.float32)
    images = [*ref, *dist]
    pairs = range(len(dist)) if ref_index is None else ref_index
    tasks = [(r, n, top, bottom) for n, r in enumerate(pairs) for top, bottom in _bands(height)]
    outer, centre, _ = SCHARR_X[:, 0]
    matrix = np.array(YIQ)

    def pooled(task: tuple[int, int, int, int]) -> tuple[float, float, float]:
        r, n, top, bottom = task
        return kernels.pooled_sums(
            ref[r], dist[n], pc[r], pc[len(ref) + n], top, bottom, matrix, outer, centre, T1, T2, T3, T4, LAMBDA
        )

    radial = radial_quarter.astype(np.float32)
    pc = in_parallel(lambda image: _phase_congruency(image, (radial, angular, factors)), images)
    sums = in_parallel(pooled, tasks)
    totals = np.zeros((len(dist), 3))
    for (_, n, _, _), partial in zip(tasks, sums):
        totals[n] += partial
    weighted, weights, values = totals.T
    return np.where(weights > 0, weighted / np.where(weights > 0, weights, 1.0), values / (height * width))
