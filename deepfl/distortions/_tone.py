"""Tone curves of the official generator: the spline `curves` tabulated on [0, 1]."""

from __future__ import annotations

import numpy as np


def lookup_uniform(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Linear interpolation in a table sampled uniformly on [0, 1] (values outside are clamped to the ends).

    Used instead of `np.interp` because the uniform spacing lets the cell index be computed directly, with no
    binary search per value.
    """
    n = table.size - 1
    pos = np.clip(x, 0.0, 1.0) * n
    idx = np.minimum(pos.astype(np.int32), n - 1)
    frac = pos - idx
    lo = table[idx]
    return lo + (table[idx + 1] - lo) * frac


_CURVE_TABLE = 8193  # samples of the tone curve on [0, 1]; linear interpolation error < 1e-8


def curves(x: np.ndarray, coef) -> np.ndarray:
    """The official `curves`: a not-a-knot spline tone curve through (0,0), control points, (1,1), clipped.

    MATLAB `spline` with not-a-knot ends (3 points: the interpolating parabola). The curve is tabulated
    finely and interpolated linearly, which is cheaper than evaluating the spline per pixel.
    """
    from scipy.interpolate import CubicSpline

    coef = np.atleast_1d(np.asarray(coef, dtype=np.float64))
    if coef.size == 1:
        xs = np.array([0.0, 0.5, 1.0])
        ys = np.array([0.0, coef[0], 1.0])
    elif coef.size == 2:
        xs = np.array([0.0, 0.3, 0.5, 0.7, 1.0])
        ys = np.array([0.0, coef[0], 0.5, coef[1], 1.0])
    else:
        raise ValueError(f"coef: expected 1 or 2 control values, got {coef.size}")
    grid = np.linspace(0.0, 1.0, _CURVE_TABLE)
    if xs.size == 3:
        table = np.polyval(np.polyfit(xs, ys, 2), grid)
    else:
        table = CubicSpline(xs, ys, bc_type="not-a-knot")(grid)
    x = np.asarray(x, dtype=np.float64)
    inside = lookup_uniform(x, table)
    if x.min() < 0.0 or x.max() > 1.0:  # outside [0, 1] evaluate exactly (ppval extrapolates)
        outside = (x < 0.0) | (x > 1.0)
        poly = (
            np.polyval(np.polyfit(xs, ys, 2), x[outside])
            if xs.size == 3
            else CubicSpline(xs, ys, bc_type="not-a-knot")(x[outside])
        )
        inside[outside] = poly
    return np.clip(inside, 0.0, 1.0)
