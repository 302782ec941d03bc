"""MDSI in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_mdsi.py`.

The GCS map is built in strips of rows: every temporary of the ~70 elementwise steps then stays small, in cache
and reused from the heap, where full-size temporaries would each cost a fresh allocation and its page faults.
"""

from __future__ import annotations

import math

import numpy as np

from deepfl.fr._mdsi import ALPHA, C1, C2, C3, O_EXPONENT, Q_EXPONENT
from deepfl.fr.functional.colour import LHM
from deepfl.fr.functional.filters import auto_downsample_factor
from deepfl.fr.uncompiled import functional

_STRIP_PIXELS = 1 << 14  # pixels per strip: 128 KiB per float64 temporary


def _lhm(rgb: np.ndarray, top: int, bottom: int) -> np.ndarray:
    """The L, H, M planes of rows top..bottom-1 of NHWC `rgb`: 3, N, rows, W float64."""
    rows = rgb[:, top:bottom].reshape(-1, 3).astype(np.float64)
    return np.matmul(np.asarray(LHM, np.float64), rows.T).reshape(3, len(rgb), bottom - top, rgb.shape[2])


def _strip_planes(rgb: np.ndarray, top: int, bottom: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows top..bottom-1: the L plane with one more row and column each side (the image's neighbouring rows,
    zeros beyond its border, as `conv2(..., 'same')` sees them), and the H and M planes."""
    above, below = max(top - 1, 0), min(bottom + 1, rgb.shape[1])
    lum, h, m = _lhm(rgb, above, below)
    bordered = np.zeros((len(rgb), bottom - top + 2, rgb.shape[2] + 2))
    bordered[:, above - top + 1 : below - top + 1, 1:-1] = lum
    return bordered, h[:, top - above : bottom - above], m[:, top - above : bottom - above]


def _prewitt_sums(bordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3 times the responses to `PREWITT_X` and its transpose (`conv2` 'same', up to sign) of the interior of
    `bordered`: the differences x(j-1) - x(j+1) summed over three rows, and the same across the columns."""
    rows3 = bordered[:, :-2] + bordered[:, 1:-1]
    rows3 += bordered[:, 2:]
    cols3 = bordered[:, :, :-2] + bordered[:, :, 1:-1]
    cols3 += bordered[:, :, 2:]
    return rows3[:, :, :-2] - rows3[:, :, 2:], cols3[:, :-2] - cols3[:, 2:]


def _squared_norm(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x^2 + y^2 (overwrites x and y)."""
    x *= x
    y *= y
    x += y
    return x


def _dissimilarity(a: np.ndarray, b: np.ndarray, a2: np.ndarray, b2: np.ndarray, constant: float) -> np.ndarray:
    """1 - (2ab + c) / (a^2 + b^2 + c) = (a - b)^2 / (a^2 + b^2 + c), given a^2 and b^2; exactly 0 where a = b."""
    numerator = a - b
    numerator *= numerator
    denominator = a2 + b2
    denominator += constant
    numerator /= denominator
    return numerator


def _gcs_deficit(ref_planes: tuple, dist_planes: tuple, ref_index: np.ndarray | None) -> np.ndarray:
    """1 - GCS on one strip, from `_strip_planes` of the R references and of the N distorted images."""
    bordered1, h1, m1 = ref_planes
    bordered2, h2, m2 = dist_planes
    gx1, gy1 = (functional.take_refs(g, ref_index) for g in _prewitt_sums(bordered1))
    h1, m1 = functional.take_refs(h1, ref_index), functional.take_refs(m1, ref_index)
    gx2, gy2 = _prewitt_sums(bordered2)
    # The fused image 0.5 (L1 + L2) has the average of the two gradients (conv2 is linear). The Prewitt sums are
    # 3 times the responses, so every square below is 9 times the original's: the constants are scaled to match.
    gxf = gx1 + gx2
    gxf *= 0.5
    gyf = gy1 + gy2
    gyf *= 0.5
    s1, s2, sf = _squared_norm(gx1, gy1), _squared_norm(gx2, gy2), _squared_norm(gxf, gyf)
    g1, g2, gf = np.sqrt(s1), np.sqrt(s2), np.sqrt(sf)
    gs_deficit = _dissimilarity(g1, g2, s1, s2, 9.0 * C1)
    gs_deficit += _dissimilarity(g2, gf, s2, sf, 9.0 * C2)
    gs_deficit -= _dissimilarity(g1, gf, s1, sf, 9.0 * C2)
    gs_deficit *= ALPHA
    dh, dm = h1 - h2, m1 - m2
    cs_deficit = dh * dh
    cs_deficit += dm * dm
    denominator = h1 * h1
    denominator += h2 * h2
    denominator += m1 * m1
    denominator += m2 * m2
    denominator += C3
    cs_deficit *= 1.0 - ALPHA
    cs_deficit /= denominator
    gs_deficit += cs_deficit
    return gs_deficit


def _deviation_pooling(gcs: np.ndarray) -> np.ndarray:
    """(mean |GCS^q - mean(GCS^q)|)^o per image, with MATLAB's complex power |x|^q exp(i q pi) where GCS < 0
    (overwrites gcs)."""
    negative = gcs < 0
    if negative.any():
        powered = np.abs(gcs) ** Q_EXPONENT * np.exp(1j * Q_EXPONENT * math.pi * negative)
        deviation = np.abs(powered - powered.mean(axis=(1, 2), keepdims=True)).mean(axis=(1, 2))
        return deviation**O_EXPONENT
    powered = np.sqrt(np.sqrt(gcs, out=gcs), out=gcs) if Q_EXPONENT == 0.25 else np.power(gcs, Q_EXPONENT, out=gcs)
    powered -= powered.mean(axis=(1, 2), keepdims=True)
    return np.abs(powered, out=powered).mean(axis=(1, 2)) ** O_EXPONENT


def mdsi(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """MDSI of each pair (0 = identical, lower is better); a reference's planes and gradients once per strip."""
    f = auto_downsample_factor(ref.shape[1], ref.shape[2])
    if f > 1:
        ref, dist = functional.box_downsample(ref, f, "zeros"), functional.box_downsample(dist, f, "zeros")
    gcs = np.empty(dist.shape[:3])
    step = max(1, _STRIP_PIXELS // dist.shape[2])
    for top in range(0, dist.shape[1], step):
        bottom = min(top + step, dist.shape[1])
        deficit = _gcs_deficit(_strip_planes(ref, top, bottom), _strip_planes(dist, top, bottom), ref_index)
        np.subtract(1.0, deficit, out=gcs[:, top:bottom])
    return _deviation_pooling(gcs)
