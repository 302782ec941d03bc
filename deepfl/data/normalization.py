"""Per-task target normalisation, fitted on the training split only and saved as JSON beside the model.

"standard" (z-score, the default) puts every FR metric / MOS on a common scale so that the 11 MSE losses of the
multi-task model weigh alike. "quantile" is histogram equalisation to a uniform [0, 1] scale (what the paper
hints at for the weak labels): the empirical CDF of the training values, stored as `num_quantiles` quantiles and
applied by linear interpolation, so it is monotone and invertible within the training range (values beyond it
clamp to 0 or 1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deepfl.fileio import atomic_write_bytes

METHODS = ("standard", "quantile")
_FORMAT_VERSION = 1


class TargetNormalizer:
    """Maps each target column to a normalised scale and back; statistics come from `fit` on training data."""

    def __init__(self, method: str = "standard", num_quantiles: int = 1001):
        if method not in METHODS:
            raise ValueError(f"method: must be one of {METHODS}, got {method!r}")
        if int(num_quantiles) != num_quantiles or num_quantiles < 2:
            raise ValueError(f"num_quantiles: must be an integer >= 2, got {num_quantiles!r}")
        self.method = method
        self.num_quantiles = int(num_quantiles)
        self.stats: dict[str, dict] = {}

    @property
    def columns(self) -> list[str]:
        return list(self.stats)

    def fit(
        self, table: pd.DataFrame | Mapping[str, Sequence[float]], columns: Sequence[str] | str
    ) -> TargetNormalizer:
        """Fits the statistics of `columns` on `table` (the training split only); returns self."""
        columns = [columns] if isinstance(columns, str) else list(columns)
        if not columns:
            raise ValueError("columns: name at least one target column")
        self.stats = {}
        for column in columns:
            if column not in table:
                raise ValueError(f"columns: {column!r} is not a column of the table")
            values = np.asarray(table[column], dtype=np.float64)
            if values.size == 0:
                raise ValueError(f"table: no rows to fit column {column!r} on")
            if not np.all(np.isfinite(values)):
                raise ValueError(f"table: column {column!r} holds NaN/inf; clean it before fitting")
            if self.method == "standard":
                std = float(values.std())
                self.stats[column] = {"mean": float(values.mean()), "std": std if std > 0 else 1.0}
            else:
                levels = np.linspace(0.0, 1.0, self.num_quantiles)
                quantiles = np.quantile(values, levels)
                # Ties (many equal scores) give repeated quantiles: keep one knot per value, at its mean level,
                # so the map stays a function and its inverse is well defined.
                unique, inverse = np.unique(quantiles, return_inverse=True)
                mean_levels = np.bincount(inverse, weights=levels) / np.bincount(inverse)
                if unique.size == 1:
                    unique, mean_levels = np.array([unique[0] - 0.5, unique[0] + 0.5]), np.array([0.0, 1.0])
                self.stats[column] = {"quantiles": unique.tolist(), "levels": mean_levels.tolist()}
        return self

    def _check_fitted(self, column: str) -> dict:
        if not self.stats:
            raise ValueError("normalizer: not fitted; call fit(train_table, columns) first")
        if column not in self.stats:
            raise ValueError(f"columns: {column!r} was not fitted (fitted: {self.columns})")
        return self.stats[column]

    def transform_values(self, column: str, values) -> np.ndarray:
        """Normalises one column's values (float64 array)."""
        stats = self._check_fitted(column)
        values = np.asarray(values, dtype=np.float64)
        if self.method == "standard":
            return (values - stats["mean"]) / stats["std"]
        return np.interp(values, stats["quantiles"], stats["levels"])

    def inverse_values(self, column: str, values) -> np.ndarray:
        """Maps normalised values of one column back to the original scale."""
        stats = self._check_fitted(column)
        values = np.asarray(values, dtype=np.float64)
        if self.method == "standard":
            return values * stats["std"] + stats["mean"]
        return np.interp(values, stats["levels"], stats["quantiles"])

    def _apply(self, data, function):
        if not self.stats:
            raise ValueError("normalizer: not fitted; call fit(train_table, columns) first")
        if isinstance(data, pd.DataFrame):
            out = data.copy()
            for column in self.columns:
                if column in out.columns:
                    out[column] = function(column, out[column].to_numpy())
            return out
        if isinstance(data, Mapping):
            return {k: (function(k, v) if k in self.stats else v) for k, v in data.items()}
        raise ValueError(f"data: expected a DataFrame or a dict of column -> values, got {type(data).__name__}")

    def transform(self, data):
        """Normalises the fitted columns of a DataFrame (returns a copy) or of a dict of column -> values."""
        return self._apply(data, self.transform_values)

    def inverse_transform(self, data):
        """Undoes `transform` (for predictions: model outputs back to the metric's / MOS scale)."""
        return self._apply(data, self.inverse_values)

    def to_json(self) -> str:
        """JSON text holding the method and every column's statistics."""
        return json.dumps(
            {
                "format": "deepfl.TargetNormalizer",
                "version": _FORMAT_VERSION,
                "method": self.method,
                "num_quantiles": self.num_quantiles,
                "stats": self.stats,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> TargetNormalizer:
        """Rebuilds a normaliser from `to_json` output; malformed text raises ValueError."""
        try:
            payload = json.loads(text)
            normalizer = cls(payload["method"], payload.get("num_quantiles", 1001))
            normalizer.stats = {str(k): dict(v) for k, v in payload["stats"].items()}
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"text: not a saved TargetNormalizer ({exc})") from None
        return normalizer

    def save(self, path: str | os.PathLike) -> None:
        """Writes the JSON atomically (beside the model, e.g. `model.keras` -> `model.normalizer.json`)."""
        atomic_write_bytes(path, self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> TargetNormalizer:
        """Reads a normaliser saved with `save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such normaliser file")
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def __repr__(self) -> str:
        return f"TargetNormalizer(method={self.method!r}, columns={self.columns})"
