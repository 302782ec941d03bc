"""Validation of a multi-task model: per-task MSE and SROCC over one pass of the validation set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from deepfl.evaluation import srocc
from deepfl.jobs import progress


def evaluate_tasks(
    model,
    dataset,
    tasks: Sequence[str],
    loss_weights: Mapping[str, float] | None = None,
    steps: int | None = None,
    desc: str = "validation",
) -> dict[str, float]:
    """One pass over `dataset` ((images, {task: targets})): per-task MSE and SROCC, weighted total loss.

    Returns keys `<task>_loss`, `<task>_srocc`, `loss` (weighted sum of the MSEs) and `srocc` (mean over
    tasks, NaNs ignored). SROCC is NaN, not an error, for constant or non-finite predictions: a diverging
    model shows in the history instead of stopping the job.
    """
    predictions: dict[str, list] = {t: [] for t in tasks}
    targets: dict[str, list] = {t: [] for t in tasks}
    predict = _batch_predictor(model)
    for i, (images, values) in enumerate(progress(dataset, total=steps, desc=desc, unit="batch")):
        if steps is not None and i >= steps:
            break
        outputs = predict(images)
        for t in tasks:
            predictions[t].append(np.asarray(outputs[t], np.float64).reshape(-1))
            targets[t].append(np.asarray(values[t], np.float64).reshape(-1))
    if not predictions[tasks[0]]:
        raise ValueError("dataset: the validation set yielded no batch")
    weights = dict(loss_weights or {})
    result: dict[str, float] = {}
    total, sroccs = 0.0, []
    for t in tasks:
        p, y = np.concatenate(predictions[t]), np.concatenate(targets[t])
        mse = float(np.mean((p - y) ** 2))
        result[f"{t}_loss"] = mse
        result[f"{t}_srocc"] = srocc(p, y, nan_policy="propagate")
        total += float(weights.get(t, 1.0)) * mse
        sroccs.append(result[f"{t}_srocc"])
    result["loss"] = total
    finite = [s for s in sroccs if np.isfinite(s)]
    result["srocc"] = float(np.mean(finite)) if finite else float("nan")
    return result


def _batch_predictor(model):
    """images -> {task: predictions} for one whole batch.

    On one replica, `predict_on_batch`. On several (mirrored devices or workers), a plain forward pass with the
    (mirrored) weights on this process's first device: `predict` would split each batch over the replicas, which
    fails on a batch smaller than the replica count (the last one) and, across workers, gathers the parts with
    collectives. Every worker then scores the whole validation set itself.
    """
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return model.predict_on_batch
    import tensorflow as tf

    return tf.function(lambda images: model(images, training=False), reduce_retracing=True, autograph=False)
