"""FSIMc in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_fsim.py`.

Phase congruency takes 16 inverse FFTs of every image, most of the time: they and the arithmetic on their
responses run in single precision (complex64, float32), as in the compiled graph; the colour, gradient and
pooling arithmetic in float64, except the chroma power (float32, as in the graph). The inverse FFTs are
TensorFlow's (`tf.signal.ifft2d`, eager), the compiled form's: on sizes with a large prime factor (461, 2 x 173),
which new shapes often bring, they took 0.5-0.66 of SciPy's time (both on two threads). Half of the images' phase
congruency, and then half of the strips' pooling, run on a second thread (`threads.in_parallel`); TensorFlow runs
each FFT call on its own thread pool. The elementwise work runs in strips of rows, and the
whole-image buffers of phase congruency are kept from call to call (`_scratch`): a new shape then reuses memory
that is already mapped instead of paying the page faults of fresh arrays.
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
    quarter_blocks,
)
from deepfl.fr.functional.colour import YIQ
from deepfl.fr.functional.filters import SCHARR_X, auto_downsample_factor
from deepfl.fr.uncompiled import functional
from deepfl.fr.uncompiled.threads import in_parallel

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
    (on the quarter grid), angular parts (float32) and noise factors."""
    radial, angular, factors = filters
    height, width = rgb.shape[:2]
    with _scratch() as take:
        lum = _luminance(rgb, take("lum", (height, width), np.float32))
        spectrum = _spectrum(lum, take("spectrum", (height, width), np.complex64))
        oriented = take("oriented", (height, width), np.complex64)
        products = take("products", (N_SCALES, height, width), np.complex64)
        finest = take("finest", (height, width), np.float32)
        amplitude_sum = take("amplitude_sum", (height, width), np.float32)
        energy_sum = take("energy_sum", (height, width), np.float32)
        amplitude_sum.fill(0.0)
        energy_sum.fill(0.0)
        full_radial = take("radial", (N_SCALES, height, width), np.float32)
        for block, source in quarter_blocks(height, width):
            full_radial[block] = radial[source]
        for o in range(N_ORIENTS):
            np.multiply(spectrum, angular[o], out=oriented)
            np.multiply(oriented, full_radial, out=products)
            responses = tf.signal.ifft2d(products).numpy()  # a new array: `products` is reused
            np.abs(responses[0], out=finest)
            np.square(finest, out=finest)
            threshold = np.float32(math.sqrt(median_last(finest.ravel()) * factors[o]))
            for top, bottom in _strips(height, width):
                eo = responses[:, top:bottom]
                amplitudes = np.abs(eo)
                amplitude_sum[top:bottom] += amplitudes.sum(axis=0)
                total = eo[0] + eo[1]
                for s in range(2, N_SCALES):
                    total += eo[s]
                magnitude = np.abs(total, out=amplitudes[0])
                np.conjugate(total, out=total)
                spread = np.abs((eo * total).imag).sum(axis=0)
                energy = np.square(magnitude)
                energy -= spread
                magnitude += EPSILON
                energy /= magnitude
                energy -= threshold
                np.maximum(energy, 0.0, out=energy)
                energy_sum[top:bottom] += energy
        pc = np.zeros((height, width), np.float32)
        np.divide(energy_sum, amplitude_sum, out=pc, where=amplitude_sum > 0)
    return pc


def _scharr_magnitude(bordered: np.ndarray) -> np.ndarray:
    """|Scharr gradient| (conv2 'same' with `SCHARR_X` = w' (1, 0, -1), w = its first column, and its transpose)
    of the interior of `bordered` (rows + 2, W + 2: the rows' neighbours and zeros around the image) as shifted
    slices; the sign of `conv2` does not matter under the square."""
    outer, centre, _ = SCHARR_X[:, 0]
    dx = bordered[:, 2:] - bordered[:, :-2]
    gx = dx[:-2] + dx[2:]
    gx *= outer
    gx += centre * dx[1:-1]
    dy = bordered[2:] - bordered[:-2]
    gy = dy[:, :-2] + dy[:, 2:]
    gy *= outer
    gy += centre * dy[:, 1:-1]
    gx *= gx
    gy *= gy
    gx += gy
    return np.sqrt(gx)


def _colour_strip(rgb: np.ndarray, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """I, Q and the Scharr gradient magnitude of Y (float64) on rows top..bottom-1 of H,W,3 RGB."""
    height, width = rgb.shape[:2]
    above, below = max(top - 1, 0), min(bottom + 1, height)
    lum, chroma_i, chroma_q = _mix(rgb[above:below], YIQ)
    bordered = np.zeros((bottom - top + 2, width + 2))
    bordered[above - top + 1 : below - top + 1, 1:-1] = lum
    interior = slice(top - above, bottom - above)
    return chroma_i[interior], chroma_q[interior], _scharr_magnitude(bordered)


def _similarity(a: np.ndarray, b: np.ndarray, constant: float) -> np.ndarray:
    """(2ab + c) / (a^2 + b^2 + c) in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (2.0 * a * b + constant) / (a * a + b * b + constant)


def _pooled_sums(
    ref: np.ndarray, dist: np.ndarray, pc1: np.ndarray, pc2: np.ndarray, top: int, bottom: int
) -> tuple[float, float, float]:
    """On rows top..bottom-1 of one pair: the sums of value * weight, of weights and of values, where value is
    the product of the PC, gradient and chroma similarities and weight = max(PC1, PC2)."""
    i1, q1, g1 = _colour_strip(ref, top, bottom)
    i2, q2, g2 = _colour_strip(dist, top, bottom)
    pc1, pc2 = pc1[top:bottom], pc2[top:bottom]
    chroma = _similarity(i1, i2, T3) * _similarity(q1, q2, T4)
    # |chroma| ^ lambda as exp(lambda log |chroma|) in float32, as the compiled form takes it (NumPy's float64 power
    # is a scalar loop); MATLAB's real(x .^ lambda) is |x|^lambda cos(lambda pi) for x < 0.
    magnitude = np.abs(chroma).astype(np.float32)
    with np.errstate(divide="ignore"):  # 0 ** lambda = 0: exp(-inf)
        np.log(magnitude, out=magnitude)
    magnitude *= np.float32(LAMBDA)
    np.exp(magnitude, out=magnitude)
    value = np.where(chroma < 0, magnitude * np.float32(math.cos(LAMBDA * math.pi)), magnitude).astype(np.float64)
    value *= _similarity(g1, g2, T2)
    value *= _similarity(pc1, pc2, T1)
    weight = np.maximum(pc1, pc2).astype(np.float64)
    return float(np.einsum("ij,ij->", value, weight)), float(weight.sum()), float(value.sum())


def fsim(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """FSIMc of each pair (1 = identical): the product of the phase-congruency, gradient and chroma similarities
    pooled with max(PC1, PC2) as weights (a plain mean where all weights are 0)."""
    factor = auto_downsample_factor(ref.shape[1], ref.shape[2])
    if factor > 1:
        ref, dist = (functional.box_downsample(x, factor, "zeros") for x in (ref, dist))
    height, width = dist.shape[1:3]
    radial_quarter, angular, factors = phasecong_filters(height, width, np.float32)
    images = [*ref, *dist]
    pairs = range(len(dist)) if ref_index is None else ref_index
    tasks = [(r, n, top, bottom) for n, r in enumerate(pairs) for top, bottom in _strips(height, width)]

    def pooled(task: tuple[int, int, int, int]) -> tuple[float, float, float]:
        r, n, top, bottom = task
        return _pooled_sums(ref[r], dist[n], pc[r], pc[len(ref) + n], top, bottom)

    pc = in_parallel(lambda image: _phase_congruency(image, (radial_quarter, angular, factors)), images)
    sums = in_parallel(pooled, tasks)
    totals = np.zeros((len(dist), 3))
    for (_, n, _, _), partial in zip(tasks, sums):
        totals[n] += partial
    weighted, weights, values = totals.T
    return np.where(weights > 0, weighted / np.where(weights > 0, weights, 1.0), values / (height * width))
