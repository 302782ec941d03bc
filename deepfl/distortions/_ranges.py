"""Value ranges of the official generator: `mapmm` in and out, the 256-level tables of a uint8 input, MATLAB
`round`, `truncate`, `percentile1`/`ps2` and `im2uint8`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from deepfl.distortions._kernels import maps


def mapmm(x: np.ndarray) -> np.ndarray:
    """MATLAB `mapmm`: maps the global min and max of `x` to 0 and 1 (a constant array is returned as is)."""
    x = np.asarray(x, dtype=np.float64)
    lo = float(x.min())
    hi = float(x.max())
    if lo < hi:
        return (x - lo) * (1.0 / (hi - lo))
    return x


class Source(NamedTuple):
    """The uint8 input of `distort` and the value of each of its 256 levels after `mapmm` (x == levels[pixels]).

    Any per-sample function of x can then be evaluated on the 256 levels and looked up (`apply`), which gives
    the same values as evaluating it on every sample, at a fraction of the cost.
    """

    pixels: np.ndarray
    levels: np.ndarray

    def apply(self, function: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """function(x) for a per-sample (elementwise) `function`, through a 256-entry table."""
        return take_levels(function(self.levels), self.pixels)


def take_levels(table: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """`np.take(table, pixels)` for a 256-entry table and uint8 pixels, in one compiled pass."""
    pixels = np.ascontiguousarray(pixels)
    table = np.ascontiguousarray(table)
    out = np.empty(pixels.shape, dtype=table.dtype)
    maps.lookup(table, pixels.reshape(-1), out.reshape(-1))
    return out


def input_levels(image: np.ndarray) -> np.ndarray:
    """The float64 value `mapmm(double(image))` gives each uint8 level 0..255 (x/255 for a constant image).

    Levels absent from the image (below its min or above its max) are clamped to [0, 1]; they are never used.
    """
    lo, hi = float(image.min()), float(image.max())
    levels = np.arange(256, dtype=np.float64)
    if lo < hi:
        return np.clip((levels - lo) * (1.0 / (hi - lo)), 0.0, 1.0)
    return levels / 255.0  # MATLAB leaves a constant image as is: treat as im2double


# The widest range of an output that counts as constant: 1/400 of one uint8 step. A flat image stays flat under
# every type's exact maths, but rounding leaves it 1e-16..1.3e-6 apart (Lab or HSV round trips per channel, float32
# FFTs and warps per pixel), and the output's mapmm stretched that to 0..255: false cyan, noise or black. Real
# outputs of flat images (the noise types, colour blocks) span 0.05 or more (measured over the 25 types, 5 levels,
# black, grey and white).
FLAT_OUTPUT_RANGE = 1e-5


def mapmm_to_uint8(x: np.ndarray) -> np.ndarray:
    """`to_double_uint8_roundtrip(mapmm(x))` with the same float64 arithmetic: numpy's min and max, then one
    compiled pass (map + round + clip). An output whose range is at most `FLAT_OUTPUT_RANGE` is rounding noise
    on a flat image and is rounded as is, as MATLAB's `mapmm` leaves an exactly constant array (the one
    deviation: MATLAB stretches any range above 0)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty(x.shape, dtype=np.uint8)
    if x.size == 0:
        return out
    lo, hi = float(x.min()), float(x.max())
    if hi - lo > FLAT_OUTPUT_RANGE:
        maps.scale_round_uint8(x.reshape(-1), lo, 1.0 / (hi - lo), out.reshape(-1))
    else:
        maps.round_uint8(x.reshape(-1), out.reshape(-1))
    return out


def truncate(x: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """MATLAB `truncate`: clips to [lo, hi]."""
    return np.clip(x, lo, hi)


def matlab_round(x):
    """MATLAB `round`: halves away from zero (numpy rounds halves to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _percentile_rank(n: int, perc: float) -> int:
    """`percentile1`'s 0-based rank in n sorted values: round(n*perc/100), 1-based and clamped to 1..n."""
    return int(matlab_round(min(max(n * perc / 100.0, 1.0), float(n)))) - 1


def _order_statistics(flat: np.ndarray, ranks: tuple[int, int]) -> tuple[float, float]:
    """The values at two 0-based ranks of sorted(flat), from one partition of a copy.

    Always two ranks (a repeated one is fine): NumPy gives a partition with a single rank to its SIMD
    quickselect, which on AVX-512 CPUs degrades on data with many ties, such as `ps2`'s clipped edge maps, where
    most values are 0 (a 4000x3000 map: 2.4 s against 0.08 s with two ranks; bench/distort.py --size).
    """
    part = np.partition(flat, ranks)
    return float(part[ranks[0]]), float(part[ranks[1]])


def percentile1(x: np.ndarray, perc: float) -> float:
    """The official `percentile1`: the sorted value at index round(n*perc/100) (1-based, clamped)."""
    rank = _percentile_rank(x.size, perc)
    return _order_statistics(x.ravel(), (rank, rank))[0]


def ps2(a: np.ndarray, percdev: float = 1.0) -> np.ndarray:
    """The official `ps2`: clips the top and bottom `percdev` percent, then min-max maps to [0, 1].

    Its lower bound, 1 - percentile1(1 - a), is taken from `a` itself: 1 - x never reverses the order of two
    values (float rounding included), so the value at rank r of sorted(1 - a) is 1 - (the value at rank n-1-r of
    sorted(a)); both bounds then come from one partition, with no 1 - a array.
    """
    a = mapmm(a)
    rank = _percentile_rank(a.size, 100.0 - percdev)
    mirrored, hi = _order_statistics(a.ravel(), (a.size - 1 - rank, rank))
    lo = 1.0 - (1.0 - mirrored)
    return mapmm(np.maximum(np.minimum(a, hi), lo))


def to_double_uint8_roundtrip(x: np.ndarray) -> np.ndarray:
    """MATLAB `im2uint8` of a double image: round(255*x) after clipping to [0, 1]."""
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)
