"""Spatial distortions (KADID types 19-24): jitter, non-eccentricity patches, pixelate, quantisation, colour
blocks, high sharpening.

Each takes a float64 HxWx3 image in [0, 1], the level's parameter and a numpy Generator; returns float64.
"""

from __future__ import annotations

import numpy as np

from deepfl.distortions._common import Source, gaussian_filter, lab2rgb, matlab_round, rgb2lab


def _keys_weights(t: np.ndarray) -> np.ndarray:
    """(4, N) float32 weights of the taps at offsets -1, 0, 1, 2 of Keys' cubic convolution (a = -0.5, MATLAB
    'cubic') for fractional positions `t` in [0, 1): (t^3 - t^2)/2 for tap 2, 1.5t^3 - 2.5t^2 + 1 for tap 0,
    -w(2) + (t^2 - t)/2 for tap -1 and, as the four sum to one, 1 minus the others for tap 1."""
    out = np.empty((4,) + t.shape, dtype=np.float32)
    t2 = t * t
    t3 = t2 * t
    np.subtract(t3, t2, out=out[3])
    out[3] *= 0.5
    half = t2 - t
    half *= 0.5
    np.subtract(half, out[3], out=out[0])
    np.multiply(t3, 1.5, out=out[1])
    t2 *= 2.5
    out[1] -= t2
    out[1] += 1.0
    np.subtract(1.0, out[0], out=out[2])
    out[2] -= out[1]
    out[2] -= out[3]
    return out


def _four_lanes(weights: np.ndarray) -> np.ndarray:
    """(4, N) -> (4, 4N): each weight repeated for the 4 lanes of its pixel (4 strided copies; np.repeat is
    slower)."""
    out = np.empty(weights.shape + (4,), dtype=weights.dtype)
    for lane in range(4):
        out[..., lane] = weights
    return out.reshape(weights.shape[0], -1)


_CHUNK_ROWS = 16  # rows per block: keeps every temporary of the 16-tap loop in cache


def _warp_keys(image4: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Samples an HxWx4 float32 image at (y - dy, x - dx) per pixel with Keys cubic convolution, edges replicated.

    Each pixel's 4 channels are gathered as one 16-byte item (numpy's fast gather path) from an edge-padded copy
    (so no index clipping; tap (i, j) is a shifted view of the same array, so every tap uses one index array),
    and the work runs block by block (weights, indices and the 16-tap accumulation), so every temporary stays
    in cache.
    """
    h, w = dy.shape
    pad = int(max(np.ceil(np.abs(dy).max()), np.ceil(np.abs(dx).max()))) + 2
    padded = np.pad(image4, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    wp = padded.shape[1]
    items = padded.reshape(-1).view(np.complex128)  # one 16-byte item per pixel (4 float32)
    taps = [items[i * wp + j:] for i in range(4) for j in range(4)]
    dy, dx = dy.ravel(), dx.ravel()
    # Index of tap (-1, -1) of every pixel in the padded image, before adding its integer shifts.
    origin = ((np.arange(h)[:, None] + pad - 1) * wp + (np.arange(w)[None, :] + pad - 1)).ravel()
    out = np.empty(h * w * 4, dtype=np.float32)
    block = _CHUNK_ROWS * w
    gathered = np.empty(block, dtype=np.complex128)
    row_sum = np.empty(4 * block, dtype=np.float32)
    term = np.empty(4 * block, dtype=np.float32)
    for s in range(0, h * w, block):
        e = min(s + block, h * w)
        m = e - s
        fy = np.floor(-dy[s:e])
        fx = np.floor(-dx[s:e])
        wr = _four_lanes(_keys_weights(-dy[s:e] - fy))  # (4, 4m): one weight per lane
        wc = _four_lanes(_keys_weights(-dx[s:e] - fx))
        idx = origin[s:e] + fy.astype(np.intp) * wp + fx.astype(np.intp)
        acc = out[4 * s:4 * e]
        g, rs, tt = gathered[:m], row_sum[:4 * m], term[:4 * m]
        values = g.view(np.float32)
        for i in range(4):
            for j in range(4):
                np.take(taps[4 * i + j], idx, out=g, mode="clip")  # in range; "raise" would copy `out`
                if j == 0:
                    np.multiply(values, wc[0], out=rs)
                else:
                    np.multiply(values, wc[j], out=tt)
                    rs += tt
            if i == 0:
                np.multiply(rs, wr[0], out=acc)
            else:
                np.multiply(rs, wr[i], out=tt)
                acc += tt
    return out.reshape(h, w, 4)


def jitter(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Type 19, `imjitter` = `imscatter(x, [], amount, 5)`: 5 times, every pixel is resampled (bicubic) at a
    position displaced by independent N(0, amount^2) offsets along y and x (float32 arithmetic)."""
    h, w = x.shape[:2]
    image4 = np.zeros((h, w, 4), dtype=np.float32)  # a 4th lane so that a pixel is one 16-byte item
    image4[..., :3] = x
    for _ in range(5):
        shifts = rng.standard_normal((2, h, w), dtype=np.float32)
        shifts *= np.float32(amount)
        image4 = _warp_keys(image4, shifts[0], shifts[1])
    return image4[..., :3].astype(np.float64)


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
        patch = out[h_start - 1:h_start - 1 + size, w_start - 1:w_start - 1 + size].copy()
        dst_w = int(matlab_round((u[2] - 0.5) * radius + w_start))
        dst_h = int(matlab_round((u[3] - 0.5) * radius + h_start))
        out[dst_h - 1:dst_h - 1 + size, dst_w - 1:dst_w - 1 + size] = patch
    return out


def _nearest_indices(in_size: int, out_size: int, scale: float) -> np.ndarray:
    """0-based source indices of MATLAB `imresize(..., 'nearest')` along one axis."""
    u = (np.arange(1, out_size + 1) / scale) + 0.5 * (1.0 - 1.0 / scale)
    return np.clip(np.floor(u + 0.5).astype(np.int64), 1, in_size) - 1


def pixelate(x: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Type 21, `impixelate`: nearest-neighbour downscale by z = 0.95 - strength^0.6, then back up to the size."""
    z = 0.95 - strength ** 0.6
    h, w = x.shape[:2]
    lh, lw = int(np.ceil(z * h)), int(np.ceil(z * w))
    low = x[_nearest_indices(h, lh, z)][:, _nearest_indices(w, lw, z)]
    return low[_nearest_indices(lh, h, h / lh)][:, _nearest_indices(lw, w, w / lw)]


def _multithresh(x: np.ndarray, levels: int, counts: np.ndarray | None = None) -> np.ndarray:
    """Multi-level Otsu thresholds of `x` (values in [0, 1]) on a 256-bin histogram, as MATLAB `multithresh`.

    MATLAB searches the maximum between-class variance with `fminsearch`; we maximise the same criterion by
    exact coordinate ascent over bin boundaries (deterministic), starting from equal-population classes.
    `counts` (optional): how many samples hold each value of `x` (then `x` lists distinct values).
    """
    if counts is not None:
        x = x[counts > 0]
        counts = counts[counts > 0]
    lo, hi = float(x.min()), float(x.max())
    scaled = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    bins = np.floor(scaled.ravel() * 255.0 + 0.5).astype(np.int64)
    p = np.bincount(bins, weights=counts, minlength=256).astype(np.float64)
    p /= p.sum()
    omega = np.concatenate([[0.0], np.cumsum(p)])
    mu = np.concatenate([[0.0], np.cumsum(p * np.arange(256))])

    def score(a, b):  # between-class term of classes covering bins [a, b)
        w = omega[b] - omega[a]
        m = mu[b] - mu[a]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(w > 0, m * m / np.where(w > 0, w, 1.0), 0.0)

    # Start: boundaries at equal cumulative mass, made strictly increasing.
    bounds = np.searchsorted(omega, np.arange(1, levels + 1) / (levels + 1)).clip(1, 255)
    for k in range(levels):
        bounds[k] = max(bounds[k], (bounds[k - 1] + 1) if k else 1)
    for k in range(levels - 1, -1, -1):
        bounds[k] = min(bounds[k], (bounds[k + 1] - 1) if k < levels - 1 else 255)
    full = np.concatenate([[0], bounds, [256]])
    for _ in range(200):
        changed = False
        for k in range(1, levels + 1):
            cand = np.arange(full[k - 1] + 1, full[k + 1])
            if cand.size == 0:
                continue
            best = int(cand[np.argmax(score(full[k - 1], cand) + score(cand, full[k + 1]))])
            if best != full[k]:
                full[k] = best
                changed = True
        if not changed:
            break
    # Threshold = centre of the last bin of the lower class, mapped back to the data range.
    return lo + (full[1:-1] - 1) / 255.0 * (hi - lo)


def quantization(x: np.ndarray, levels: int, rng: np.random.Generator) -> np.ndarray:
    """Type 22, `imnoisequantize`: `levels` Otsu thresholds of the whole RGB image; `imquantize` maps values up
    to the first threshold to 0, those between thresholds k-1 and k to threshold k, those above the last to 1."""
    thresh = _multithresh(x, int(levels))
    values = np.concatenate([[0.0], thresh[1:], [1.0]])
    return values[np.searchsorted(thresh, x, side="left")]


def quantization_levels(levels: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Type 22 on the input levels (thresholds from the level histogram `counts`, then per-sample)."""
    thresh = _multithresh(levels, int(n), counts)
    values = np.concatenate([[0.0], thresh[1:], [1.0]])
    return values[np.searchsorted(thresh, levels, side="left")]


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


def high_sharpen(x: np.ndarray, amount: float, rng: np.random.Generator,
                 source: Source | None = None) -> np.ndarray:
    """Type 24, `imsharpenHi` = `imsharpen(x, 'Radius', 3, 'Amount', amount)`: unsharp masking of Lab L* with a
    Gaussian (sigma 3, 13x13, replicate), back to sRGB, clipped to [0, 1]."""
    lab = rgb2lab(x, source)
    lum = lab[..., 0]
    lab[..., 0] = lum + amount * (lum - gaussian_filter(lum, 3.0, size=13))
    return lab2rgb(lab, clip=True)
