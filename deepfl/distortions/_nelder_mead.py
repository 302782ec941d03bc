"""MATLAB's `fminsearch`: the Nelder-Mead simplex search of Lagarias et al. (1998) with MATLAB's coefficients,
initial simplex, ordering and stopping rules, so that the same objective visits the same points."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# Reflection, expansion, contraction and shrink coefficients (MATLAB's rho, chi, psi, sigma).
_RHO, _CHI, _PSI, _SIGMA = 1.0, 2.0, 0.5, 0.5
# The initial simplex moves each coordinate by 5% of itself, or to 0.00025 where it is zero.
_USUAL_DELTA, _ZERO_TERM_DELTA = 0.05, 0.00025


def _eps(value: float) -> float:
    """MATLAB `eps(value)`: the spacing of doubles at |value| (NaN for Inf or NaN)."""
    return float(np.spacing(abs(value))) if math.isfinite(value) else math.nan


def _matlab_max(values) -> float:
    """MATLAB `max` of a vector: NaNs are ignored unless every entry is NaN."""
    kept = [v for v in values if not math.isnan(v)]
    return max(kept) if kept else math.nan


def fminsearch(
    objective: Callable[[np.ndarray], float],
    x0,
    tol_x: float = 1e-4,
    tol_fun: float = 1e-4,
    max_iter: int | None = None,
    max_fun_evals: int | None = None,
) -> tuple[np.ndarray, float]:
    """Minimises `objective` from `x0` as MATLAB `fminsearch(fun, x0, optimset('TolX', tol_x, 'TolFun',
    tol_fun))` does; returns (x, f(x)) of the best vertex.

    MATLAB's rules: vertex j+1 of the initial simplex is x0 with coordinate j scaled by 1.05 (0.00025 if zero);
    vertices are kept sorted by value with a stable sort; each iteration reflects the worst vertex through the
    mean of the others, then expands, contracts outside or inside, or shrinks towards the best; the search stops
    when every vertex is within `tol_x` (infinity norm) and every value within `tol_fun` of the best, or after
    `max_iter` iterations or `max_fun_evals` evaluations (both 200 * len(x0) by default).
    """
    x = np.array(x0, dtype=np.float64).ravel()
    n = x.size
    max_iter = 200 * n if max_iter is None else max_iter
    max_fun_evals = 200 * n if max_fun_evals is None else max_fun_evals
    vertices = np.empty((n + 1, n))
    values = np.empty(n + 1)
    vertices[0] = x
    values[0] = objective(x.copy())
    for j in range(n):
        y = x.copy()
        y[j] = (1 + _USUAL_DELTA) * y[j] if y[j] != 0 else _ZERO_TERM_DELTA
        vertices[j + 1] = y
        values[j + 1] = objective(y.copy())
    order = np.argsort(values, kind="stable")
    vertices, values = vertices[order], values[order]
    evaluations, iterations = n + 1, 1
    while evaluations < max_fun_evals and iterations < max_iter:
        best = float(values[0])
        value_spread = _matlab_max([abs(best - float(v)) for v in values[1:]])
        point_spread = float(np.max(np.abs(vertices[1:] - vertices[0])))
        if value_spread <= _matlab_max([tol_fun, 10 * _eps(best)]) and point_spread <= _matlab_max(
            [tol_x, 10 * _eps(float(np.max(vertices[0])))]
        ):
            break
        centroid = vertices[0].copy()
        for j in range(1, n):  # summed in order, as MATLAB's sum along rows
            centroid += vertices[j]
        centroid /= n
        worst = vertices[n]
        reflected = (1 + _RHO) * centroid - _RHO * worst
        f_reflected = objective(reflected.copy())
        evaluations += 1
        shrink = False
        if f_reflected < values[0]:
            expanded = (1 + _RHO * _CHI) * centroid - _RHO * _CHI * worst
            f_expanded = objective(expanded.copy())
            evaluations += 1
            if f_expanded < f_reflected:
                vertices[n], values[n] = expanded, f_expanded
            else:
                vertices[n], values[n] = reflected, f_reflected
        elif f_reflected < values[n - 1]:
            vertices[n], values[n] = reflected, f_reflected
        elif f_reflected < values[n]:
            outside = (1 + _PSI * _RHO) * centroid - _PSI * _RHO * worst
            f_outside = objective(outside.copy())
            evaluations += 1
            if f_outside <= f_reflected:
                vertices[n], values[n] = outside, f_outside
            else:
                shrink = True
        else:
            inside = (1 - _PSI) * centroid + _PSI * worst
            f_inside = objective(inside.copy())
            evaluations += 1
            if f_inside < values[n]:
                vertices[n], values[n] = inside, f_inside
            else:
                shrink = True
        if shrink:
            for j in range(1, n + 1):
                vertices[j] = vertices[0] + _SIGMA * (vertices[j] - vertices[0])
                values[j] = objective(vertices[j].copy())
            evaluations += n
        order = np.argsort(values, kind="stable")
        vertices, values = vertices[order], values[order]
        iterations += 1
    return vertices[0].copy(), float(values[0])
