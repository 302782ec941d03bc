"""IQA evaluation criteria: SROCC, PLCC (plain and after a 4-parameter logistic fit), KROCC, RMSE.

The logistic mapping is the one used by VQEG and most IQA papers to remove the monotonic non-linearity between
predictions and subjective scores before computing PLCC/RMSE:

    f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2

`summarize` aggregates per-split results the way the paper reports them (median over splits).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

CRITERIA: tuple[str, ...] = ("srocc", "plcc", "plcc_logistic", "krocc", "rmse", "rmse_logistic")


def _pair(pred: Sequence[float], target: Sequence[float], strict: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validates and converts a prediction/target pair to float64 vectors (`strict=False`: shapes only). A
    column (N x 1) counts as a vector; a table of several columns is refused (flattened, its values were paired
    with targets they do not belong to)."""
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    for name, values in (("pred", pred), ("target", target)):
        if sum(size > 1 for size in values.shape) > 1:
            raise ValueError(f"{name}: need one value per image, got shape {values.shape}")
    pred, target = pred.reshape(-1), target.reshape(-1)
    if pred.shape != target.shape:
        raise ValueError(f"pred: has {pred.size} values but target has {target.size}")
    if not strict:
        return pred, target
    if pred.size < 2:
        raise ValueError(f"pred: need at least 2 values to correlate, got {pred.size}")
    for name, values in (("pred", pred), ("target", target)):
        if not np.all(np.isfinite(values)):
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(f"{name}: non-finite value {values[bad]} at position {bad}")
    return pred, target


def _safe(value: float) -> float:
    """NaN (not an exception) for undefined correlations, e.g. constant predictions."""
    return float(value) if np.isfinite(value) else float("nan")


NAN_POLICIES: tuple[str, ...] = ("raise", "propagate")


def srocc(pred: Sequence[float], target: Sequence[float], nan_policy: str = "raise") -> float:
    """Spearman rank-order correlation (ties get average ranks, as MATLAB's corr(..., 'type', 'Spearman')).

    A constant side gives NaN. `nan_policy="raise"` (reported results) rejects fewer than 2 values and
    non-finite values with a ValueError; `"propagate"` (monitoring a training run, which a diverging model must
    not stop) returns NaN for fewer than 2 values and lets NaN inputs propagate to a NaN result.
    """
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy: must be one of {NAN_POLICIES}, got {nan_policy!r}")
    pred, target = _pair(pred, target, strict=nan_policy == "raise")
    if pred.size < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _safe(stats.spearmanr(pred, target).statistic)


def krocc(pred: Sequence[float], target: Sequence[float]) -> float:
    """Kendall rank-order correlation (tau-b, handles ties)."""
    pred, target = _pair(pred, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _safe(stats.kendalltau(pred, target).statistic)


def plcc(pred: Sequence[float], target: Sequence[float]) -> float:
    """Pearson linear correlation of raw predictions (no fitting)."""
    pred, target = _pair(pred, target)
    if np.ptp(pred) == 0 or np.ptp(target) == 0:
        return float("nan")
    return _safe(np.corrcoef(pred, target)[0, 1])


def rmse(pred: Sequence[float], target: Sequence[float]) -> float:
    """Root mean squared error between predictions and targets (same units as the targets)."""
    pred, target = _pair(pred, target)
    return float(np.sqrt(np.mean((pred - target) ** 2)))


# A fitted logistic whose transition width |b4| is below this fraction of the predictions' standard deviation has
# collapsed into a step (see `fit_logistic`).
STEP_WIDTH = 1e-3


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The monotonic 4-parameter logistic: (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2."""
    z = -(np.asarray(x, dtype=np.float64) - b3) / max(abs(b4), 1e-12)
    return (b1 - b2) / (1.0 + np.exp(np.clip(z, -500.0, 500.0))) + b2


def _logistic4_jacobian(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """Analytic Jacobian of `logistic4` (finite differences stall when a parameter starts at exactly 0)."""
    scale = max(abs(b4), 1e-12)
    u = (np.asarray(x, dtype=np.float64) - b3) / scale
    g = 1.0 / (1.0 + np.exp(np.clip(-u, -500.0, 500.0)))
    slope = (b1 - b2) * g * (1.0 - g)
    return np.stack([g, 1.0 - g, -slope / scale, -slope * u / scale * np.sign(b4 or 1.0)], axis=1)


def fit_logistic(pred: Sequence[float], target: Sequence[float]) -> np.ndarray:
    """Least-squares fit of `logistic4` mapping predictions onto targets; returns (b1, b2, b3, b4).

    Starts from the usual VQEG initial guess (max/min of the targets, mean and spread of the predictions).
    If the optimiser fails to converge, or collapses the curve into a step (a transition narrower than
    `STEP_WIDTH` of the predictions' spread: on few points it can jump between points, and then the
    last bits of the arithmetic decide which way it falls, so a rerun in another process may disagree), falls
    back to the better (least squares) of two smooth curves: the start point, and a logistic so wide that it
    follows the least-squares line through the points (`_nearly_linear`). So a PLCC after fitting is always
    defined and reproducible, and the RMSE after fitting is never much worse than a straight line's (the start
    curve alone spans the targets' whole range, which on poorly ranked points is worse than no mapping).
    """
    pred, target = _pair(pred, target)
    spread = float(np.std(pred)) or 1.0
    start = np.array([target.max(), target.min(), float(np.mean(pred)), spread / 2.0])
    smooth = min(
        (start, _nearly_linear(pred, target, spread)), key=lambda p: np.sum((logistic4(pred, *p) - target) ** 2)
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(logistic4, pred, target, p0=start, jac=_logistic4_jacobian, maxfev=20000)
        if not np.all(np.isfinite(params)):
            raise RuntimeError("non-finite parameters")
        if abs(params[3]) < STEP_WIDTH * spread:
            raise RuntimeError("the fit collapsed into a step")
    except (RuntimeError, optimize.OptimizeWarning, ValueError, TypeError):  # TypeError: fewer than 4 points
        params = smooth
    smooth_err = np.sum((logistic4(pred, *smooth) - target) ** 2)
    fit_err = np.sum((logistic4(pred, *params) - target) ** 2)
    return params if fit_err <= smooth_err else smooth


# Width of `_nearly_linear`'s logistic in standard deviations of the predictions: within +-3 of them it departs
# from a straight line by under 1% of its span.
_LINEAR_WIDTH = 10.0


def _nearly_linear(pred: np.ndarray, target: np.ndarray, spread: float) -> np.ndarray:
    """(b1, b2, b3, b4) of a logistic centred on the predictions' mean, `_LINEAR_WIDTH` spreads wide, whose value
    and slope there are those of the least-squares line of the targets on the predictions."""
    centre = float(np.mean(pred))
    slope = float(np.polyfit(pred, target, 1)[0]) if np.ptp(pred) > 0 else 0.0
    level = float(np.mean(target))  # the least-squares line passes through the means
    width = _LINEAR_WIDTH * spread
    half_span = 2.0 * width * slope  # the logistic's slope at its centre is (b1 - b2) / (4 width)
    return np.array([level + half_span, level - half_span, centre, width])


# The fewest points on which the 4-parameter logistic is fitted: on 4 or fewer it can pass through every point
# (two anti-ranked points gave plcc_logistic 1.0 and rmse_logistic 0.0004).
MIN_POINTS_LOGISTIC = 5


def plcc_logistic(pred: Sequence[float], target: Sequence[float]) -> float:
    """PLCC after mapping the predictions with the fitted 4-parameter logistic; NaN on fewer than
    `MIN_POINTS_LOGISTIC` points."""
    pred, target = _pair(pred, target)
    if pred.size < MIN_POINTS_LOGISTIC:
        return float("nan")
    return plcc(logistic4(pred, *fit_logistic(pred, target)), target)


def evaluate(pred: Sequence[float], target: Sequence[float]) -> dict[str, float]:
    """All criteria at once: srocc, plcc, plcc_logistic, krocc, rmse, rmse_logistic.

    The `_logistic` criteria compare the targets with the predictions mapped by the fitted 4-parameter logistic
    (VQEG): the mapping may fall, so plcc_logistic is not negative even where srocc is (lower-is-better
    predictions). They are NaN on fewer than `MIN_POINTS_LOGISTIC` points, where the fit says nothing.
    """
    pred, target = _pair(pred, target)
    fitted = pred.size >= MIN_POINTS_LOGISTIC
    mapped = logistic4(pred, *fit_logistic(pred, target)) if fitted else None
    return {
        "srocc": srocc(pred, target),
        "plcc": plcc(pred, target),
        "plcc_logistic": plcc(mapped, target) if fitted else float("nan"),
        "krocc": krocc(pred, target),
        "rmse": rmse(pred, target),
        "rmse_logistic": rmse(mapped, target) if fitted else float("nan"),
    }


def summarize(
    results: Iterable[Mapping[str, float]], statistics: Sequence[str] = ("median", "mean", "std")
) -> pd.DataFrame:
    """Aggregates per-split criteria into one row per statistic (index) and one column per criterion.

    The paper reports the median over splits; mean and standard deviation are added for context.
    """
    frame = pd.DataFrame(list(results))
    if frame.empty:
        raise ValueError("results: no per-split results to summarize")
    allowed = {"median", "mean", "std", "min", "max"}
    unknown = [s for s in statistics if s not in allowed]
    if unknown:
        raise ValueError(f"statistics: unknown {unknown}; choose from {sorted(allowed)}")
    numeric = frame.select_dtypes("number")
    rows = {s: getattr(numeric, s)(axis=0) if s != "std" else numeric.std(axis=0, ddof=0) for s in statistics}
    return pd.DataFrame(rows).T
