"""MATLAB's quantisers behind KADID types 6 and 22, step by step.

- `rgb2ind(rgb, n)` with its default dither (type 6, `imcolorquantize`): the minimum-variance palette of `cq`
  (Wu's quantiser on the 5-bit colour cube), then `dither` (inverse colormap at Qm = 5 bits, Floyd-Steinberg
  error diffusion at Qe = 8 bits, down each column). Compiled in `_kernels/quantization.py`.
- `multithresh(a, n)` and `imquantize` (type 22, `imnoisequantize`): Otsu's criterion on the 256-bin histogram
  of the image's range, maximised exhaustively for n <= 2 and by `fminsearch` from uniformly spaced thresholds
  for n >= 3; the thresholds are rounded to bins and mapped back to the image's range.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from deepfl.distortions._kernels import quantization as _kernels
from deepfl.distortions._nelder_mead import fminsearch

# ------------------------------------------------------------------------------------------ rgb2ind (type 6)


def minimum_variance_palette(rgb: np.ndarray, colors: int) -> np.ndarray:
    """MATLAB `cq(rgb, colors)`: the (k, 3) uint8 minimum-variance palette of an HxWx3 uint8 image, k <= colors."""
    return _kernels.minimum_variance_palette(np.ascontiguousarray(rgb, dtype=np.uint8), int(colors))


def dither(rgb: np.ndarray, colormap: np.ndarray) -> np.ndarray:
    """MATLAB `dither(rgb, colormap)` (Qm = 5, Qe = 8) of an HxWx3 uint8 image against a (k, 3) colormap with
    entries in [0, 1]: the HxW palette indices (0-based)."""
    levels = (np.asarray(colormap, dtype=np.float64) * 255.0 + 0.5).astype(np.int64)  # C's (int) truncation
    table = _kernels.inverse_colormap(levels)
    return _kernels.error_diffusion(np.ascontiguousarray(rgb, dtype=np.uint8), levels, table)


def rgb2ind(rgb: np.ndarray, colors: int) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB `[X, map] = rgb2ind(rgb, colors)` for an HxWx3 uint8 image: map = double(cq palette)/255 and
    X = dither(rgb, map). Returns (HxW 0-based indices, (k, 3) float64 colormap)."""
    colormap = minimum_variance_palette(rgb, colors).astype(np.float64) / 255.0
    return dither(rgb, colormap), colormap


# ------------------------------------------------------------------------------------ multithresh (type 22)


def _histogram(values: np.ndarray, counts: np.ndarray | None) -> tuple[np.ndarray | None, float, float]:
    """multithresh's `getpdf`: the 256-bin pdf of (values - min)/(max - min) converted as `im2uint8`, with the
    range; None for the pdf when the values are constant. `counts` (optional): samples per entry of `values`."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if counts is not None:
        counts = np.asarray(counts).ravel()
        values, counts = values[counts > 0], counts[counts > 0]
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return None, lo, hi
    bins = np.clip(np.floor((values - lo) / (hi - lo) * 255.0 + 0.5), 0, 255).astype(np.int64)
    histogram = np.bincount(bins, weights=counts, minlength=256).astype(np.float64)
    return histogram / histogram.sum(), lo, hi


def _degenerate_thresholds(unique_values: np.ndarray, n: int) -> np.ndarray:
    """multithresh's `getDegenerateThresholds` (the input has at most n distinct values): those values, preceded by
    1, 2, ... below the smallest one where it exceeds 1, then topped up with the smallest positive integers not
    among them; sorted."""
    unique_values = np.asarray(unique_values, dtype=np.float64)
    if unique_values.size == 0:
        return np.arange(1, n + 1, dtype=np.float64)
    thresholds = list(unique_values)
    missing = n - len(thresholds)
    if missing <= 0:
        return np.asarray(thresholds)
    if unique_values[0] > 1:
        thresholds = (
            list(np.arange(1, min(missing, math.ceil(unique_values[0]) - 1) + 1, dtype=np.float64)) + thresholds
        )
    extra = []
    candidate = max(math.floor(unique_values[0]), 0)
    while len(thresholds) + len(extra) < n:
        candidate += 1
        if np.any(np.abs(unique_values - candidate) < np.spacing(float(candidate))):
            continue
        extra.append(float(candidate))
    return np.sort(np.asarray(thresholds + extra, dtype=np.float64))


def _between_class_variance(thresholds: np.ndarray, omega: list, mu: list, mu_t: float) -> float:
    """multithresh's `objCriteriaND`: minus Otsu's between-class variance of the classes cut at the rounded
    `thresholds` (bins 0..255); +Inf unless the cuts lie strictly inside and increase, or if a class is empty."""
    bounds = [int(b) for b in np.sign(thresholds) * np.floor(np.abs(thresholds) + 0.5)]  # MATLAB round
    edges = [0] + bounds + [255]
    if any(b <= a for a, b in itertools.pairwise(edges)):
        return math.inf
    first = bounds[0]
    if omega[first] == 0:
        return math.inf
    deviation = mu[first] / omega[first] - mu_t
    total = omega[first] * (deviation * deviation)
    previous = first
    for bound in bounds[1:] + [255]:
        weight = omega[bound] - omega[previous]
        if weight == 0:
            return math.inf
        deviation = (mu[bound] - mu[previous]) / weight - mu_t
        total = total + weight * (deviation * deviation)
        previous = bound
    return -total if math.isfinite(total) else math.inf


def _exhaustive_thresholds(n: int, omega: np.ndarray, mu: np.ndarray, mu_t: float) -> np.ndarray | None:
    """multithresh for n = 1 or 2: the criterion at every (pair of) bin(s), the mean position (0-based bins) of
    its maxima; None if the largest value is not finite."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if n == 1:
            sigma = (mu_t * omega - mu) ** 2 / (omega * (1 - omega))
        else:
            omega0 = np.repeat(omega[:, None], 256, axis=1)
            mu_0_t = np.repeat((mu_t - mu / omega)[:, None], 256, axis=1)
            omega1 = omega[None, :] - omega[:, None]
            mu_1_t = mu_t - (mu[None, :] - mu[:, None]) / omega1
            invalid = np.arange(256)[:, None] >= np.arange(256)[None, :]
            omega0[invalid] = np.nan
            omega1[invalid] = np.nan
            omega2 = 1 - (omega0 + omega1)
            omega2[omega2 <= 0] = np.nan
            sigma = omega0 * mu_0_t**2 + omega1 * mu_1_t**2 + (omega0 * mu_0_t + omega1 * mu_1_t) ** 2 / omega2
    finite = sigma[~np.isnan(sigma)]
    best = finite.max() if finite.size else np.nan
    if not np.isfinite(best):
        return None
    if n == 1:
        return np.array([np.flatnonzero(sigma == best).mean()])
    rows, cols = np.nonzero(sigma == best)
    return np.array([rows.mean(), cols.mean()])


def multithresh(values: np.ndarray, n: int, counts: np.ndarray | None = None) -> np.ndarray:
    """MATLAB `multithresh(values, n)`: n Otsu thresholds of the values' histogram (all channels together),
    in the values' range. For n >= 3 the criterion is maximised by `fminsearch` (TolX 1) from thresholds
    evenly spaced over the 256 bins, and the result rounded to bins. `counts` (optional): samples per entry of
    `values` (then `values` lists distinct values; the same thresholds as the expanded samples)."""
    n = int(n)
    pdf, lo, hi = _histogram(values, counts)
    if pdf is None:  # constant input: getThreshForNoPdf
        return np.array([lo]) if n == 1 else _degenerate_thresholds(np.array([lo]), n)
    omega = np.cumsum(pdf)
    mu = np.cumsum(pdf * np.arange(1, 257))
    mu_t = float(mu[-1])
    if n < 3:
        raw = _exhaustive_thresholds(n, omega, mu, mu_t)
        if raw is not None:
            return lo + raw / 255.0 * (hi - lo)
        unique_values = _unique(values, counts)
        raw = _degenerate_thresholds(unique_values, n)
    else:
        start = np.arange(1, n + 1) * 255.0 / (n + 1)  # linspace(0, 255, n + 2)(2:end-1)
        omega_list, mu_list = omega.tolist(), mu.tolist()
        raw, best = fminsearch(lambda t: _between_class_variance(t, omega_list, mu_list, mu_t), start, tol_x=1.0)
        if math.isfinite(best):
            return lo + np.sign(raw) * np.floor(np.abs(raw) + 0.5) / 255.0 * (hi - lo)
        unique_values = _unique(values, counts)
    if unique_values.size <= n:
        return _degenerate_thresholds(unique_values, n)
    return lo + raw / 255.0 * (hi - lo)  # no convergence: MATLAB maps back its last point as it is


def _unique(values: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
    """The distinct values present (those with a non-zero count), sorted."""
    present = np.asarray(values, dtype=np.float64).ravel()
    if counts is not None:
        present = present[np.asarray(counts).ravel() > 0]
    return np.unique(present)


def imquantize(values: np.ndarray, thresholds: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """MATLAB `imquantize(values, thresholds, outputs)`: outputs[k] where k = how many (increasing) thresholds
    each value exceeds."""
    return np.asarray(outputs, dtype=np.float64)[np.searchsorted(thresholds, values, side="left")]
