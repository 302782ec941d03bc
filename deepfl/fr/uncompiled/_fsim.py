"""FSIMc in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_fsim.py`.

Phase congruency takes 16 inverse FFTs of every image, most of the time: they run in single precision
(complex64, as in the compiled graph), the rest in float64. The elementwise work on the 16 responses and the
maps runs in strips of rows, so that its temporaries stay small and are reused from the heap instead of each
costing a fresh allocation and its page faults.
"""

from __future__ import annotations

import concurrent.futures
import math

import numpy as np
import scipy.fft

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
    unfold,
)
from deepfl.fr.functional.colour import YIQ
from deepfl.fr.functional.filters import auto_downsample_factor
from deepfl.fr.uncompiled import functional

_THREADS = 2  # images whose maps are computed at the same time (each FFT on one thread)
_STRIP_PIXELS = 1 << 14  # pixels per strip: 128 KiB per float64 temporary


def _strips(height: int, width: int) -> list[tuple[int, int]]:
    """Row ranges of about `_STRIP_PIXELS` pixels covering `height` rows."""
    step = max(1, _STRIP_PIXELS // width)
    return [(top, min(top + step, height)) for top in range(0, height, step)]


def _scharr_magnitude(bordered: np.ndarray) -> np.ndarray:
    """|Scharr gradient| (conv2 'same' with (3, 10, 3)' (1, 0, -1) / 16 and its transpose) of the interior of
    `bordered` (N, rows + 2, W + 2: the rows' neighbours and zeros around the image); the sign of `conv2` does not
    matter under the square."""
    dx = bordered[:, :, 2:] - bordered[:, :, :-2]
    gx = dx[:, :-2] + dx[:, 2:]
    gx *= 3.0
    gx += 10.0 * dx[:, 1:-1]
    dy = bordered[:, 2:] - bordered[:, :-2]
    gy = dy[:, :, :-2] + dy[:, :, 2:]
    gy *= 3.0
    gy += 10.0 * dy[:, :, 1:-1]
    gx *= gx
    gy *= gy
    gx += gy
    return np.sqrt(gx) / 16.0


def _colour_maps(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """H,W,3 RGB (already box-downsampled) -> Y (float32, the phase-congruency input), I, Q and the Scharr
    gradient magnitude of Y (float64), each H,W."""
    height, width = rgb.shape[:2]
    lum = np.empty((height, width), np.float32)
    chroma_i, chroma_q, gradient = (np.empty((height, width)) for _ in range(3))
    for top, bottom in _strips(height, width):
        above, below = max(top - 1, 0), min(bottom + 1, height)
        yiq = functional.mix_channels(rgb[above:below], YIQ)
        bordered = np.zeros((1, bottom - top + 2, width + 2))
        bordered[0, above - top + 1 : below - top + 1, 1:-1] = yiq[..., 0]
        interior = slice(top - above, bottom - above)
        lum[top:bottom] = yiq[interior, :, 0]
        chroma_i[top:bottom] = yiq[interior, :, 1]
        chroma_q[top:bottom] = yiq[interior, :, 2]
        gradient[top:bottom] = _scharr_magnitude(bordered)[0]
    return lum, chroma_i, chroma_q, gradient


def _spectrum(lum: np.ndarray) -> np.ndarray:
    """2-D FFT of a real H,W image as complex64: `rfft2`'s half and the other half by X(-k) = conj(X(k))."""
    height, width = lum.shape
    half = width // 2 + 1
    spectrum = np.empty((height, width), np.complex64)
    spectrum[:, :half] = scipy.fft.rfft2(lum)
    if width > half:
        mirrored = spectrum[:, width - half : 0 : -1]  # columns W - j for j = half .. W - 1
        spectrum[0, half:] = mirrored[0]
        spectrum[1:, half:] = mirrored[:0:-1]  # rows H - i for i = 1 .. H - 1
        np.conjugate(spectrum[:, half:], out=spectrum[:, half:])
    return spectrum


def _phase_congruency(lum: np.ndarray, radial: np.ndarray, angular: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """phasecong2's ResultPC of one H,W image (float32 Y) from the unfolded radial (S,H,W float32) and angular
    (O,H,W float64) filter parts: sum over orientations of max(energy - T_o, 0) / sum of amplitudes, 0 where that
    sum is 0. Energy per orientation = (|sum_s EO_s|^2 - sum_s |Im(EO_s conj(sum EO))|) / (|sum EO| + epsilon),
    phasecong2's sum of e MeanE + o MeanO - |e MeanO - o MeanE| multiplied out."""
    height, width = lum.shape
    spectrum = _spectrum(lum)
    oriented = np.empty((height, width), np.complex64)
    responses = np.empty((N_SCALES, height, width), np.complex64)
    finest = np.empty((height, width), np.float32)
    amplitude_sum = np.zeros((height, width), np.float32)
    energy_sum = np.zeros((height, width), np.float32)
    for o in range(N_ORIENTS):
        np.multiply(spectrum, angular[o], out=oriented, casting="same_kind")
        np.multiply(oriented, radial, out=responses)
        responses = scipy.fft.ifft2(responses, overwrite_x=True)
        np.abs(responses[0], out=finest)
        np.square(finest, out=finest)
        threshold = np.float32(math.sqrt(median_last(finest.ravel()) * factors[o]))
        for top, bottom in _strips(height, width):
            eo = responses[:, top:bottom]
            amplitudes = np.abs(eo)
            amplitude_sum[top:bottom] += amplitudes.sum(axis=0)
            total = eo.sum(axis=0)
            np.abs(total, out=amplitudes[0])
            magnitude = amplitudes[0]
            np.conjugate(total, out=total)
            spread = np.abs((eo * total).imag).sum(axis=0)
            energy = np.square(magnitude)
            energy -= spread
            magnitude += EPSILON
            energy /= magnitude
            energy -= threshold
            np.maximum(energy, 0.0, out=energy)
            energy_sum[top:bottom] += energy
    with np.errstate(divide="ignore", invalid="ignore"):
        pc = energy_sum / amplitude_sum
    pc[amplitude_sum <= 0] = 0.0
    return pc


def _image_maps(rgb: np.ndarray, filters: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
    """One H,W,3 RGB image (already box-downsampled) -> its I, Q, gradient magnitude (float64) and phase
    congruency (float32) maps, each H,W; `filters` are the unfolded radial, angular and noise factors."""
    lum, chroma_i, chroma_q, gradient = _colour_maps(rgb)
    return chroma_i, chroma_q, gradient, _phase_congruency(lum, *filters)


def _maps(images: list[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
    """`_image_maps` of each H,W,3 image (all of one size), `_THREADS` images at a time: NumPy's and SciPy's
    loops release the GIL, and each image's maps are independent."""
    height, width = images[0].shape[:2]
    radial_quarter, angular, factors = phasecong_filters(height, width)
    filters = (unfold(radial_quarter, height, width, np.float32), angular, factors)
    with concurrent.futures.ThreadPoolExecutor(min(_THREADS, len(images))) as pool:
        return list(pool.map(_image_maps, images, [filters] * len(images)))


def _similarity(a: np.ndarray, b: np.ndarray, constant: float) -> np.ndarray:
    """(2ab + c) / (a^2 + b^2 + c) in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (2.0 * a * b + constant) / (a * a + b * b + constant)


def fsim(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """FSIMc of each pair (1 = identical): the product of the phase-congruency, gradient and chroma similarities
    pooled with max(PC1, PC2) as weights (a plain mean where all weights are 0)."""
    factor = auto_downsample_factor(ref.shape[1], ref.shape[2])
    if factor > 1:
        ref, dist = (functional.box_downsample(x, factor, "zeros") for x in (ref, dist))
    maps = _maps(list(ref) + list(dist))
    ref_maps, dist_maps = maps[: len(ref)], maps[len(ref) :]
    if ref_index is None:
        ref_index = range(len(dist))
    height, width = dist.shape[1:3]
    scores = np.empty(len(dist))
    for n, (r, (i2, q2, g2, pc2)) in enumerate(zip(ref_index, dist_maps)):
        i1, q1, g1, pc1 = ref_maps[r]
        weighted = weights = values = 0.0
        for top, bottom in _strips(height, width):
            rows = slice(top, bottom)
            chroma = _similarity(i1[rows], i2[rows], T3) * _similarity(q1[rows], q2[rows], T4)
            magnitude = np.abs(chroma) ** LAMBDA  # MATLAB real(x .^ lambda): |x|^lambda cos(lambda pi) for x < 0
            value = np.where(chroma < 0, magnitude * math.cos(LAMBDA * math.pi), magnitude)
            value *= _similarity(g1[rows], g2[rows], T2)
            value *= _similarity(pc1[rows], pc2[rows], T1)
            weight = np.maximum(pc1[rows], pc2[rows]).astype(np.float64)
            weighted += np.einsum("ij,ij->", value, weight)
            weights += weight.sum()
            values += value.sum()
        scores[n] = weighted / weights if weights > 0 else values / (height * width)
    return scores
