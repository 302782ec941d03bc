"""Spatial distortions (KADID types 19-24): jitter, non-eccentricity patches, pixelate, quantisation, colour
blocks, high sharpening.

Each takes a float64 HxWx3 image in [0, 1], the level's parameter and a numpy Generator; returns float64.
"""

from __future__ import annotations

import numpy as np

from deepfl.distortions import quantization as _quantization
from deepfl.distortions._colour import lab2rgb, rgb2lab
from deepfl.distortions._filters import gaussian_filter
from deepfl.distortions._kernels import pixels, warp
from deepfl.distortions._random import standard_normal
from deepfl.distortions._ranges import Source, matlab_round


def jitter(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Type 19, `imjitter` = `imscatter(x, [], amount, 5)`: 5 times, every pixel is resampled (bicubic) at a
    position displaced by independent N(0, amount^2) offsets along y and x (float32 arithmetic).

    Each resampling is the compiled Keys kernel `warp.warp_keys` (a = -0.5, edges replicated); the shifts are
    drawn as before (float32, y then x, one (2, H, W) draw per pass; `standard_normal` gives numpy's values).
    """
    h, w = x.shape[:2]
    image = x.astype(np.float32)
    warped = np.empty_like(image)
    for _ in range(5):
        shifts = standard_normal(rng, (2, h, w), np.float32)
        shifts *= np.float32(amount)
        warp.warp_keys(image, shifts[0], shifts[1], warped)
        image, warped = warped, image
    return image.astype(np.float64)


def non_eccentricity_patch(x: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Type 20, `imnoneccentricity`: `count` times, a 16x16 patch is copied to a spot up to 8 px away (the patch
    starts at least 16 px from the top/left and 32 px from the bottom/right border). Needs H, W >= 48."""
    size, radius = 16, 16
    h, w = x.shape[:2]
    out = x.copy()
    h_min, w_min = radius, radius
    h_max, w_max = h - size - radius, w - size - radius
    for _ in range(int(count)):
        u = rng.random(4)
        # 1-based MATLAB indices converted to 0-based by the final "- 1".
        w_start = int(matlab_round(u[0] * (w_max - w_min))) + w_min
        h_start = int(matlab_round(u[1] * (h_max - h_min))) + h_min
        patch = out[h_start - 1 : h_start - 1 + size, w_start - 1 : w_start - 1 + size].copy()
        dst_w = int(matlab_round((u[2] - 0.5) * radius + w_start))
        dst_h = int(matlab_round((u[3] - 0.5) * radius + h_start))
        out[dst_h - 1 : dst_h - 1 + size, dst_w - 1 : dst_w - 1 + size] = patch
    return out


def _nearest_indices(in_size: int, out_size: int, scale: float) -> np.ndarray:
    """0-based source indices of MATLAB `imresize(..., 'nearest')` along one axis."""
    u = (np.arange(1, out_size + 1) / scale) + 0.5 * (1.0 - 1.0 / scale)
    return np.clip(np.floor(u + 0.5).astype(np.int64), 1, in_size) - 1


def pixelate(x: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Type 21, `impixelate`: nearest-neighbour downscale by z = 0.95 - strength^0.6, then back up to the size."""
    z = 0.95 - strength**0.6
    h, w = x.shape[:2]
    lh, lw = int(np.ceil(z * h)), int(np.ceil(z * w))
    # Down then up is one index map per axis: source index of the low-res index of each output pixel.
    rows = _nearest_indices(h, lh, z)[_nearest_indices(lh, h, h / lh)]
    cols = _nearest_indices(w, lw, z)[_nearest_indices(lw, w, w / lw)]
    if x.ndim == 2:
        return x[rows][:, cols]
    out = np.empty((h, w, x.shape[2]), dtype=x.dtype)
    pixels.gather_rows_cols(np.ascontiguousarray(x), rows, cols, out)
    return out


def quantization(x: np.ndarray, levels: int, rng: np.random.Generator) -> np.ndarray:
    """Type 22, `imnoisequantize`: `levels` thresholds from MATLAB `multithresh` of the whole RGB image, then
    `imquantize` maps values up to the first threshold to 0, those between thresholds k-1 and k to threshold k,
    those above the last to 1."""
    thresh = _quantization.multithresh(x, int(levels))
    return _quantization.imquantize(x, thresh, np.concatenate([[0.0], thresh[1:], [1.0]]))


def quantization_levels(levels: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Type 22 on the input levels (thresholds from the level histogram `counts`, then per-sample)."""
    thresh = _quantization.multithresh(levels, int(n), counts)
    return _quantization.imquantize(levels, thresh, np.concatenate([[0.0], thresh[1:], [1.0]]))


def color_block(x: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Type 23, `imcolorblock`: `count` opaque 32x32 squares of a uniformly random colour at uniformly random
    positions (top-left in [0, W-32] x [0, H-32], rounded as `insertShape` does). Needs H, W >= 32."""
    size = 32
    h, w = x.shape[:2]
    out = x.copy()
    for _ in range(int(count)):
        color = rng.random(3)
        left = rng.random() * (w - size)
        top = rng.random() * (h - size)
        c0 = max(int(matlab_round(left)) - 1, 0)  # 1-based pixel round(left) -> 0-based, clipped to the image
        r0 = max(int(matlab_round(top)) - 1, 0)
        c1 = int(matlab_round(left)) - 1 + size
        r1 = int(matlab_round(top)) - 1 + size
        out[r0:r1, c0:c1] = color
    return out


def high_sharpen(x: np.ndarray, amount: float, rng: np.random.Generator, source: Source | None = None) -> np.ndarray:
    """Type 24, `imsharpenHi` = `imsharpen(x, 'Radius', 3, 'Amount', amount)`: unsharp masking of Lab L* with a
    Gaussian (sigma 3, 13x13, replicate), back to sRGB, clipped to [0, 1]."""
    lab = rgb2lab(x, source)
    lum = lab[..., 0]
    lab[..., 0] = lum + amount * (lum - gaussian_filter(lum, 3.0, size=13))
    return lab2rgb(lab, clip=True)
