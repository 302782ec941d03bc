"""Stage 1 of DeepFL-IQA: multi-task training of the backbone on the weak labels, resumable and distributable.

One module per job:
  job          `run_multitask(config, out_dir)`: the whole stage-1 run (settings check, split, datasets, model,
               training, final model) that `deepfl-train-multitask` and the demo call; `MultitaskConfig`.
  loop         `train_multitask`: phases (frozen warm-up, fine-tuning) of `model.fit`, resume from a checkpoint.
  callbacks    `EpochEnd` (validation, history.csv, best model, checkpoint) and `SkipReport` (corrupt images).
  validation   `evaluate_tasks`: per-task MSE and SROCC over the validation set.
  batchnorm    `recalibrate_batchnorm`: BatchNorm statistics re-estimated at the size the model will see.
  checkpoints  the resumable state: weights + optimizer, dropout RNG states, epoch, stream position.
  data_order   `DataOrder`: which training rows the model consumed, for exact resumption.
  strategy     `tf.distribute` strategies by name, logical CPU devices, which worker writes the outputs.
  keras_compat  Keras' `fit` on strategies with several replicas (multi-worker included).

Names are re-exported lazily: `from deepfl.training import run_multitask` loads neither Keras nor TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MultitaskConfig": "job",
    "MultitaskResult": "job",
    "run_multitask": "job",
    "RUN_KEYS": "job",
    "train_multitask": "loop",
    "steps_for": "loop",
    "EpochEnd": "callbacks",
    "SkipReport": "callbacks",
    "SKIPPED_FILE": "callbacks",
    "evaluate_tasks": "validation",
    "recalibrate_batchnorm": "batchnorm",
    "batchnorm_layers": "batchnorm",
    "STATE_FILE": "checkpoints",
    "read_state": "checkpoints",
    "restore_checkpoint": "checkpoints",
    "write_checkpoint": "checkpoints",
    "seed_states": "checkpoints",
    "set_seed_states": "checkpoints",
    "DataOrder": "data_order",
    "ROW_COLUMN": "data_order",
    "STRATEGIES": "strategy",
    "get_strategy": "strategy",
    "configure_virtual_cpus": "strategy",
    "is_chief": "strategy",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"deepfl.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'deepfl.training' has no attribute {name!r}")
