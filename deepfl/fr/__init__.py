"""The eleven full-reference IQA metrics used as weak labels, in TensorFlow, batched (NHWC).

`METRICS` lists them in the column order of the KADIS-700k release (`kadis700k_friqa.csv`); `fsim` is FSIMc.
`from deepfl.fr import ssim` gives the metric function `ssim(ref, dist, ref_index=None) -> tf.Tensor[N]` on
float32 RGB in [0, 255] (each lives in `deepfl/fr/_<name>.py`); `compute` validates uint8 input, converts once
and runs the metrics asked for. `SPECS` (`deepfl/fr/specs.py`) holds each metric's direction, minimum size and
original. Importing this package loads no TensorFlow: the metric functions are imported on first access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from deepfl.fr.specs import SPEC_BY_NAME, SPECS, MetricSpec

METRICS: tuple[str, ...] = tuple(spec.name for spec in SPECS)

# Lower is better for these (MDSI, GMSD); the others are similarities (1 = identical).
LOWER_IS_BETTER: frozenset[str] = frozenset(spec.name for spec in SPECS if spec.lower_is_better)


def _spelling_of(name: str) -> str:
    """`name` without case, hyphens and underscores: "MS-SSIM" and "ms_ssim" both read "msssim"."""
    return str(name).lower().replace("-", "").replace("_", "")


def metric_meant(name: str) -> str | None:
    """The metric of `METRICS` that `name` spells another way ("MS-SSIM", "FSIMc"), or None."""
    spellings = {_spelling_of(metric): metric for metric in METRICS} | {"fsimc": "fsim"}
    return spellings.get(_spelling_of(name))


def metric_function(name: str) -> Callable:
    """Returns the TensorFlow function of metric `name` (one of `METRICS`): `deepfl/fr/_<name>.py:<name>`."""
    if name not in METRICS:
        close = metric_meant(name)
        hint = f"; did you mean {close!r}?" if close else ""
        raise ValueError(f"metrics: unknown metric {name!r}{hint} (choose from {', '.join(METRICS)})")
    return getattr(importlib.import_module(f"deepfl.fr._{name}"), name)


def compute(
    ref: np.ndarray,
    dist: np.ndarray,
    metrics: str | Iterable[str] | None = METRICS,
    ref_index: Sequence[int] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Scores distorted images against references with each metric.

    ref, dist: uint8 RGB, HxWx3 or NxHxWx3, same shape; pair i is (ref[i], dist[i]). With `ref_index` (N
    integers), `ref` holds R unique references (RxHxWx3) and pair i is (ref[ref_index[i]], dist[i]): each
    metric then does its reference-only work once per reference (the 5 levels of a KADIS reference share it).
    `metrics`: names from `METRICS` (all eleven by default or with None; one name may be given as a string).
    Returns {metric: float64 array of N scores}. Two metrics run at a time on two cores (`deepfl.fr.running`).
    """
    from deepfl.fr.functional.validation import check_min_sizes, converted_from_integers, validate_images
    from deepfl.fr.running import score_metrics

    metrics = list(METRICS if metrics is None else [metrics] if isinstance(metrics, str) else metrics)
    if not metrics:
        raise ValueError("metrics: at least one metric is needed")
    functions = {name: metric_function(name) for name in metrics}
    ref_t, dist_t, index = validate_images(ref, dist, ref_index)  # uint8 only: no NaN or infinity to look for
    # every metric the images are too small for at once (each metric's own check names only itself)
    check_min_sizes({name: SPEC_BY_NAME[name].min_size for name in functions}, *dist_t.shape[1:3])
    with converted_from_integers(ref, dist):
        return score_metrics(functions, ref_t, dist_t, index)


def __getattr__(name: str):
    """The metric functions on first access (`deepfl.fr.ssim`), so that importing the package loads no
    TensorFlow. The metric modules are private (`_ssim`), so no submodule import can shadow a function."""
    if name in METRICS:
        function = metric_function(name)
        globals()[name] = function
        return function
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(METRICS))


__all__ = ["LOWER_IS_BETTER", "METRICS", "SPECS", "SPEC_BY_NAME", "MetricSpec", "compute", "metric_function", *METRICS]
