"""FSIMc's per-pixel loops as Numba kernels: one pass over the data where NumPy needs a dozen temporaries.

Phase congruency reads each orientation's four complex responses once (`orientation_energy`) instead of through
abs, sum, conjugate, product and reduction passes, and the pooling computes colour, gradients, similarities and
the three sums of a band of rows in one loop (`pooled_sums`). The arithmetic on the responses is float32 (as in the
compiled graph), the colour, gradient and pooling arithmetic float64. Compiled once per machine (`deepfl._numba`),
never per image size; `nogil`, so two threads run side by side.
"""

from __future__ import annotations

import math

import numpy as np

from deepfl._numba import njit as _njit


@_njit
def oriented_products(spectrum, angular, radial, out):
    """out[s, i, j] = spectrum[i, j] * angular[i, j] * radial[s, min(i, H - i), min(j, W - j)]: one orientation's
    filtered spectra (complex64), the radial parts given on the quarter grid (float32; `_fsim.quarter_blocks`)."""
    n_scales, height, width = out.shape
    half = width // 2 + 1
    oriented = np.empty(width, np.complex64)
    for i in range(height):
        qi = min(i, height - i)
        for j in range(width):
            oriented[j] = spectrum[i, j] * angular[i, j]
        for s in range(n_scales):
            row = radial[s, qi]
            target = out[s, i]
            for j in range(half):
                target[j] = oriented[j] * row[j]
            for j in range(half, width):
                target[j] = oriented[j] * row[width - j]


@_njit
def _modulus(z):
    return np.float32(math.sqrt(z.real * z.real + z.imag * z.imag))


@_njit
def _spread(z, total_re, total_im):
    """|Im(z conj(total))|."""
    return abs(z.imag * total_re - z.real * total_im)


@_njit
def orientation_energy(responses, epsilon, amplitude_sum, energy, finest):
    """One orientation's responses EO_s (4 scales, H, W, complex64) -> adds sum_s |EO_s| to `amplitude_sum`,
    writes the energy before its noise threshold, (|sum EO|^2 - sum_s |Im(EO_s conj(sum EO))|) / (|sum EO| +
    epsilon), to `energy` and |EO_0|^2 to `finest` (the threshold's median is taken from it)."""
    height, width = responses.shape[1:]
    eps = np.float32(epsilon)
    for i in range(height):
        scale0, scale1, scale2, scale3 = responses[0, i], responses[1, i], responses[2, i], responses[3, i]
        amplitudes, energies, finests = amplitude_sum[i], energy[i], finest[i]
        for j in range(width):
            e0, e1, e2, e3 = scale0[j], scale1[j], scale2[j], scale3[j]
            total_re = ((e0.real + e1.real) + e2.real) + e3.real
            total_im = ((e0.imag + e1.imag) + e2.imag) + e3.imag
            amplitudes[j] += ((_modulus(e0) + _modulus(e1)) + _modulus(e2)) + _modulus(e3)
            spread = (
                (_spread(e0, total_re, total_im) + _spread(e1, total_re, total_im)) + _spread(e2, total_re, total_im)
            ) + _spread(e3, total_re, total_im)
            squared = total_re * total_re + total_im * total_im
            energies[j] = (squared - spread) / (np.float32(math.sqrt(squared)) + eps)
            finests[j] = e0.real * e0.real + e0.imag * e0.imag


@_njit
def add_thresholded(energy, threshold, energy_sum):
    """energy_sum += max(energy - threshold, 0) (float32)."""
    height, width = energy.shape
    t = np.float32(threshold)
    for i in range(height):
        for j in range(width):
            value = energy[i, j] - t
            if value > 0:
                energy_sum[i, j] += value


@_njit
def _yiq_row(rgb, i, matrix, y, chroma_i, chroma_q):
    """Y, I and Q (float64) of row i of H,W,3 RGB."""
    for j in range(rgb.shape[1]):
        r, g, b = np.float64(rgb[i, j, 0]), np.float64(rgb[i, j, 1]), np.float64(rgb[i, j, 2])
        y[j] = r * matrix[0, 0] + g * matrix[0, 1] + b * matrix[0, 2]
        chroma_i[j] = r * matrix[1, 0] + g * matrix[1, 1] + b * matrix[1, 2]
        chroma_q[j] = r * matrix[2, 0] + g * matrix[2, 1] + b * matrix[2, 2]


@_njit
def _luminance_rows(rgb, top, bottom, matrix, out):
    """Y of rows top - 1 .. bottom (zeros outside the image) into out (rows + 2, W + 2), zero-bordered."""
    height, width = rgb.shape[:2]
    out[:] = 0.0
    for k in range(bottom - top + 2):
        i = top - 1 + k
        if 0 <= i < height:
            for j in range(width):
                out[k, j + 1] = rgb[i, j, 0] * matrix[0, 0] + rgb[i, j, 1] * matrix[0, 1] + rgb[i, j, 2] * matrix[0, 2]


@_njit
def _gradient(lum, k, j, outer, centre):
    """|Scharr gradient| at row k + 1, column j + 1 of the zero-bordered luminance `lum`."""
    dx_above = lum[k, j + 2] - lum[k, j]
    dx_here = lum[k + 1, j + 2] - lum[k + 1, j]
    dx_below = lum[k + 2, j + 2] - lum[k + 2, j]
    gx = (dx_above + dx_below) * outer + centre * dx_here
    dy_left = lum[k + 2, j] - lum[k, j]
    dy_here = lum[k + 2, j + 1] - lum[k, j + 1]
    dy_right = lum[k + 2, j + 2] - lum[k, j + 2]
    gy = (dy_left + dy_right) * outer + centre * dy_here
    return math.sqrt(gx * gx + gy * gy)


@_njit
def _similarity(a, b, constant):
    return (2.0 * a * b + constant) / (a * a + b * b + constant)


@_njit
def pooled_sums(ref, dist, pc1, pc2, top, bottom, matrix, outer, centre, t1, t2, t3, t4, lam):
    """On rows top..bottom-1 of one pair (H,W,3 RGB, float32 PC maps): the sums of value * weight, of weights and
    of values, where value = S_PC * S_G * real((S_I S_Q)^lambda) and weight = max(PC1, PC2). The chroma power is
    taken as exp(lambda log |x|) in float32 (as the compiled form), times cos(lambda pi) where S_I S_Q < 0 (MATLAB's
    real part of a negative base's power)."""
    width = ref.shape[1]
    rows = bottom - top
    lum1 = np.empty((rows + 2, width + 2))
    lum2 = np.empty((rows + 2, width + 2))
    _luminance_rows(ref, top, bottom, matrix, lum1)
    _luminance_rows(dist, top, bottom, matrix, lum2)
    y = np.empty(width)
    i1, q1, i2, q2 = np.empty(width), np.empty(width), np.empty(width), np.empty(width)
    negative = np.float32(math.cos(lam * math.pi))
    lam32 = np.float32(lam)
    weighted, weights, values = 0.0, 0.0, 0.0
    for k in range(rows):
        i = top + k
        _yiq_row(ref, i, matrix, y, i1, q1)
        _yiq_row(dist, i, matrix, y, i2, q2)
        for j in range(width):
            chroma = _similarity(i1[j], i2[j], t3) * _similarity(q1[j], q2[j], t4)
            magnitude = np.float32(abs(chroma))
            if magnitude > 0:
                power = np.float32(math.exp(lam32 * np.float32(math.log(magnitude))))
            else:
                power = np.float32(0.0)
            if chroma < 0:
                power = power * negative
            g1 = _gradient(lum1, k, j, outer, centre)
            g2 = _gradient(lum2, k, j, outer, centre)
            a, b = np.float64(pc1[i, j]), np.float64(pc2[i, j])
            value = np.float64(power) * _similarity(g1, g2, t2) * _similarity(a, b, t1)
            weight = max(a, b)
            weighted += value * weight
            weights += weight
            values += value
    return weighted, weights, values
