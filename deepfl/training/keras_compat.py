"""Keras 3 `fit` on `tf.distribute` strategies with several replicas: two steps of Keras' TensorFlow trainer are
replaced for such a model.

- Before the first step, `fit` builds the model's metrics and optimizer from a batch: it takes the first batch
  of a fresh iterator over the training data, averages it across replicas with `strategy.reduce`, then starts
  the iterator again. That batch is read twice, which breaks `DataOrder`'s count of the rows consumed; and
  outside a `tf.function`, `MultiWorkerMirroredStrategy` cannot reduce a per-replica value at all ("Attempt to
  convert a value (PerReplica ...) to a Tensor"). The build needs shapes and dtypes only, which the dataset's
  `element_spec` gives without reading anything (`build_from_spec`).
- After each step, it averages the per-replica logs with `strategy.reduce("MEAN", value, axis=0)`, which, on a
  multi-worker strategy, fails on the scalars `train_step` returns ("Invalid reduction dimension 0 for input
  with 0 dimensions"). There each replica's step logs are returned as 1-element vectors, whose mean along axis
  0 over all replicas is the scalar the single-worker strategies report (`vector_step_logs`).
"""

from __future__ import annotations


def is_multi_worker(strategy) -> bool:
    """True for a strategy whose replicas span several processes: a `MultiWorkerMirroredStrategy` whose cluster
    has more than one worker. Keras reduces the step logs across replicas only then; a one-worker cluster's logs
    stay as the step returns them, so 1-element vectors there reached TensorBoard ("Expected scalar shape")."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    in_multi_worker_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)  # Keras' own test
    return in_multi_worker_mode() if in_multi_worker_mode is not None else True


def build_from_spec(model, element_spec) -> None:
    """Makes `model.fit` build the model from `element_spec` (the training dataset's) instead of a batch.

    Keras skips that build when the model was not created under a distribution strategy, and builds the model's
    metrics, loss trackers and optimizer slots inside the first trace of its train step instead; TensorFlow then
    traces the step a second time, as variables were created in the first. Such a model is built here, from
    `element_spec`, so that its step is traced once. A no-op where this Keras lacks the methods it calls.
    """
    if getattr(model, "_distribute_strategy", None) is None:
        build = getattr(model, "_symbolic_build", None)
        if build is not None:
            build(data_batch=element_spec)
        return
    original = getattr(model, "_maybe_symbolic_build", None)
    if original is None:
        return

    def symbolic_build(iterator=None, data_batch=None):
        return original(data_batch=element_spec if data_batch is None else data_batch)

    model._maybe_symbolic_build = symbolic_build


def vector_step_logs(model) -> None:
    """Makes `model`'s train step return its scalar logs as 1-element vectors (see the module docstring)."""
    import tensorflow as tf

    train_step = model.train_step

    def step(data):
        logs = train_step(data)
        return {k: tf.reshape(v, [1]) if tf.is_tensor(v) and v.shape.rank == 0 else v for k, v in logs.items()}

    model.train_step = step
