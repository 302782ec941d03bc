"""Frequency-domain helpers of phasecong2, SDSP and the spectral residual: FFT grids, radial log-Gabor, FFT."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def fft_grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised frequency grids (u along columns, v along rows), ifftshift-ed, as in phasecong2/lowpassfilter.

    Odd sizes: (-(n-1)/2 .. (n-1)/2)/(n-1); even sizes: (-n/2 .. n/2-1)/n. Returns (u, v), each rows x cols.
    """

    def axis_range(n):
        if n % 2:
            return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
        return np.arange(-n / 2, n / 2) / n

    u, v = np.meshgrid(axis_range(cols), axis_range(rows))
    return np.fft.ifftshift(u), np.fft.ifftshift(v)


def log_gabor_radial(radius: np.ndarray, center_frequency: float, sigma_on_f: float) -> np.ndarray:
    """Radial log-Gabor transfer function exp(-log(r/f0)^2 / (2 log(sigma_on_f)^2)) with its DC set to 0.

    `sigma_on_f` is the ratio sigma/f0 (phasecong2's sigmaOnf); radius[0, 0] is the DC term.
    """
    r = radius.copy()
    r[0, 0] = 1.0
    with np.errstate(divide="ignore"):
        g = np.exp(-((np.log(r / center_frequency)) ** 2) / (2 * np.log(sigma_on_f) ** 2))
    g[0, 0] = 0.0
    return g


def fft2(x: tf.Tensor) -> tf.Tensor:
    """2-D FFT over the last two axes of a real tensor (complex result in the matching complex dtype)."""
    complex_dtype = tf.complex128 if x.dtype == tf.float64 else tf.complex64
    return tf.signal.fft2d(tf.cast(x, complex_dtype))
