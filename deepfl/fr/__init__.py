"""The eleven full-reference IQA metrics used as weak labels, in TensorFlow, batched (NHWC).

`METRICS` lists them in the column order of the KADIS-700k release (`kadis700k_friqa.csv`); `fsim` is FSIMc.
Each metric lives in its own module `deepfl/fr/<name>.py` as `<name>(ref, dist, ref_index=None) -> tf.Tensor[N]`
on float32 RGB in [0, 255]; `compute` validates uint8 input, converts once and runs the metrics asked for.
"""

from __future__ import annotations

import importlib
from typing import Callable, Iterable, Sequence

import numpy as np

METRICS: tuple[str, ...] = (
    "ssim", "msssim", "iwssim", "mdsi", "vsi", "fsim", "gmsd", "sff", "scqi", "add_gsim", "sr_sim")

# Lower is better for these two; the others are similarities (1 = identical).
LOWER_IS_BETTER: frozenset[str] = frozenset({"mdsi", "gmsd"})

def metric_function(name: str) -> Callable:
    """Returns the TensorFlow function of metric `name` (one of `METRICS`): `deepfl/fr/<name>.py:<name>`."""
    if name not in METRICS:
        raise ValueError(f"metrics: unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return getattr(importlib.import_module(f"deepfl.fr.{name}"), name)


def compute(ref: np.ndarray, dist: np.ndarray, metrics: Iterable[str] = METRICS,
            ref_index: Sequence[int] | np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Scores distorted images against references with each metric.

    ref, dist: uint8 RGB, HxWx3 or NxHxWx3, same shape; pair i is (ref[i], dist[i]). With `ref_index` (N
    integers), `ref` holds R unique references (RxHxWx3) and pair i is (ref[ref_index[i]], dist[i]): each
    metric then does its reference-only work once per reference (the 5 levels of a KADIS reference share it).
    Returns {metric: float64 array of N scores}.
    """
    from deepfl.fr.common import validate_images

    metrics = list(metrics)
    if not metrics:
        raise ValueError("metrics: at least one metric is needed")
    functions = {name: metric_function(name) for name in metrics}
    ref_t, dist_t, index = validate_images(ref, dist, ref_index)
    return {name: np.asarray(fn(ref_t, dist_t, ref_index=index), dtype=np.float64).reshape(-1)
            for name, fn in functions.items()}
