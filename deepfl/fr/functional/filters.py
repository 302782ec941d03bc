"""Kernels and filtering with MATLAB's border and centre conventions (`fspecial`, `filter2`/`imfilter`,
`conv2`), box downsampling and gradient magnitudes, on NHWC tensors.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from deepfl.fr.functional.arithmetic import matlab_round


def gaussian_kernel1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB `fspecial('gaussian', size, sigma)` (normalised; the 2-D kernel is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def gaussian_kernel2d(size: int, sigma: float) -> np.ndarray:
    """MATLAB `fspecial('gaussian', size, sigma)`."""
    g = gaussian_kernel1d(size, sigma)
    return np.outer(g, g)


PREWITT_X = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], np.float64) / 3.0  # GMSD.m, MDSI.m
SCHARR_X = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]], np.float64) / 16.0  # FSIM, VSI, SR-SIM


def _pad_mode(padding: str) -> str:
    modes = {"zeros": "CONSTANT", "symmetric": "SYMMETRIC", "reflect": "REFLECT"}
    if padding not in modes and padding not in ("replicate", "circular"):
        raise ValueError(f"padding: expected zeros, symmetric, reflect, replicate or circular, got {padding!r}")
    return modes.get(padding, padding)


def pad_hw(x: tf.Tensor, top: int, bottom: int, left: int, right: int, padding: str = "zeros") -> tf.Tensor:
    """Pads the H and W axes of NHWC `x` with a MATLAB border mode (zeros/symmetric/reflect/replicate/circular)."""
    if top == bottom == left == right == 0:
        return x
    mode = _pad_mode(padding)
    if mode == "replicate":
        if top or bottom:
            x = tf.concat([tf.repeat(x[:, :1], top, axis=1), x, tf.repeat(x[:, -1:], bottom, axis=1)], axis=1)
        if left or right:
            x = tf.concat([tf.repeat(x[:, :, :1], left, axis=2), x, tf.repeat(x[:, :, -1:], right, axis=2)], axis=2)
        return x
    if mode == "circular":
        height, width = x.shape[1], x.shape[2]
        x = tf.concat([x[:, height - top :], x, x[:, :bottom]], axis=1) if (top or bottom) else x
        x = tf.concat([x[:, :, width - left :], x, x[:, :, :right]], axis=2) if (left or right) else x
        return x
    return tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]], mode=mode)


def correlation_padding(kernel_shape: tuple[int, int], shape: str) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) border that `filter2`/`imfilter` put around an image before a 'valid'
    correlation: for "same" the kernel centre sits at floor((size+1)/2) (this matters for even sizes); none for
    "valid"."""
    kh, kw = kernel_shape
    if shape == "same":
        top, left = (kh - 1) // 2, (kw - 1) // 2
        return top, kh - 1 - top, left, kw - 1 - left
    if shape != "valid":
        raise ValueError(f"shape: expected 'same' or 'valid', got {shape!r}")
    return 0, 0, 0, 0


def correlate(x: tf.Tensor, kernel: np.ndarray, shape: str = "same", padding: str = "zeros") -> tf.Tensor:
    """2-D correlation of every channel of NHWC `x` with `kernel` (MATLAB `filter2`/`imfilter`).

    shape "same" centres the kernel at floor((size+1)/2) as MATLAB does (this matters for even sizes);
    "valid" keeps only fully covered positions. A separable kernel is applied as two 1-D passes.
    """
    kernel = np.asarray(kernel, np.float64)
    kh, kw = kernel.shape
    x = pad_hw(x, *correlation_padding(kernel.shape, shape), padding)
    channels = x.shape[-1]
    u, s, vt = np.linalg.svd(kernel)
    if kh > 1 and kw > 1 and s[1] <= 1e-12 * s[0]:  # separable: rank one
        col = u[:, 0] * np.sqrt(s[0])
        row = vt[0] * np.sqrt(s[0])
        kc = tf.constant(np.tile(col.reshape(kh, 1, 1, 1), (1, 1, channels, 1)), x.dtype)
        kr = tf.constant(np.tile(row.reshape(1, kw, 1, 1), (1, 1, channels, 1)), x.dtype)
        x = tf.nn.depthwise_conv2d(x, kc, [1, 1, 1, 1], "VALID")
        return tf.nn.depthwise_conv2d(x, kr, [1, 1, 1, 1], "VALID")
    k = tf.constant(np.tile(kernel.reshape(kh, kw, 1, 1), (1, 1, channels, 1)), x.dtype)
    return tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "VALID")


def conv2_same(x: tf.Tensor, kernel: np.ndarray) -> tf.Tensor:
    """MATLAB `conv2(x, kernel, 'same')` (true convolution, zero borders) on every channel of NHWC `x`."""
    kernel = np.asarray(kernel, np.float64)[::-1, ::-1]
    kh, kw = kernel.shape
    # conv2 'same' takes the central part of the full convolution starting at floor(size/2) + 1.
    top, left = kh // 2, kw // 2
    x = pad_hw(x, top, kh - 1 - top, left, kw - 1 - left, "zeros")
    return correlate(x, kernel, shape="valid")


def auto_downsample_factor(height: int, width: int) -> int:
    """max(1, round(min(H, W) / 256)): the automatic scale of SSIM, MDSI, VSI, FSIM and SR-SIM (MATLAB round)."""
    return max(1, matlab_round(min(height, width) / 256))


def box_downsample(x: tf.Tensor, factor: int, padding: str = "zeros") -> tf.Tensor:
    """Averages factor x factor blocks and keeps every factor-th pixel, as the originals do.

    Equals MATLAB `y = conv2(x, ones(f)/f^2, 'same'); y(1:f:end, 1:f:end)` (padding "zeros": FSIM, VSI,
    SR-SIM, MDSI, GMSD) or `imfilter(x, ones(f)/f^2, 'symmetric', 'same')` (padding "symmetric": SSIM, MS-SSIM):
    both put the kernel centre at floor((f+1)/2), so output i averages rows i-floor((f-1)/2) .. i+floor(f/2).
    Output size ceil(H/f) x ceil(W/f).
    """
    if factor <= 1:
        return x
    height, width = x.shape[1], x.shape[2]
    before = (factor - 1) // 2
    out_h, out_w = -(-height // factor), -(-width // factor)
    # Rows -before .. out_h * f - before - 1 are averaged: pad what lies outside the image, drop what is left
    # over (with f >= 3 and H a multiple of f the last f - 1 - before rows belong to no block).
    after_h, after_w = out_h * factor - height - before, out_w * factor - width - before
    x = pad_hw(x, before, max(after_h, 0), before, max(after_w, 0), padding)[:, : out_h * factor, : out_w * factor]
    return tf.nn.avg_pool2d(x, factor, factor, "VALID")


def gradient_magnitude(x: tf.Tensor, kernel_x: np.ndarray) -> tf.Tensor:
    """sqrt(conv2(x, kx, 'same')^2 + conv2(x, kx', 'same')^2) with zero borders, per channel."""
    kx = np.asarray(kernel_x, np.float64)
    gx = conv2_same(x, kx)
    gy = conv2_same(x, kx.T)
    return tf.sqrt(gx * gx + gy * gy)


def scharr_magnitude(y: tf.Tensor) -> tf.Tensor:
    """`gradient_magnitude(y, SCHARR_X)` of NHW maps as shifted slices (zero border), which XLA fuses into
    the surrounding stage (it compiles depthwise convolutions into slow loops on CPU).

    gx = (3, 10, 3) / 16 down the rows of x(j+1) - x(j-1), gy likewise across the columns; the sign of
    MATLAB's `conv2` does not matter under the square.
    """
    padded = tf.pad(y, [[0, 0], [1, 1], [1, 1]])
    dx = padded[:, :, 2:] - padded[:, :, :-2]
    dy = padded[:, 2:, :] - padded[:, :-2, :]
    gx = (3.0 * dx[:, :-2] + 10.0 * dx[:, 1:-1] + 3.0 * dx[:, 2:]) / 16.0
    gy = (3.0 * dy[:, :, :-2] + 10.0 * dy[:, :, 1:-1] + 3.0 * dy[:, :, 2:]) / 16.0
    return tf.sqrt(gx * gx + gy * gy)
