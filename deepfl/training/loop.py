"""`train_multitask`: the stage-1 training loop over its phases (frozen warm-up, then fine-tuning), resumed from
the last checkpoint exactly as an unbroken run would have continued."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import keras

import deepfl.models.layers  # noqa: F401  (registers the custom layers, so saved models reload)
from deepfl.fileio import save_model_atomic
from deepfl.training.callbacks import EpochEnd, SkipReport, StepProgress
from deepfl.training.checkpoints import read_state, restore_checkpoint, seed_states, set_seed_states
from deepfl.training.data_order import DataOrder
from deepfl.training.keras_compat import build_from_spec, is_multi_worker, vector_step_logs
from deepfl.training.strategy import is_lost_worker, lost_worker

log = logging.getLogger("deepfl")


def train_multitask(
    build_and_compile: Callable[[bool], keras.Model],
    train_dataset,
    val_dataset,
    out_dir: str | os.PathLike,
    epochs: int,
    steps_per_epoch: int,
    tasks: Sequence[str],
    loss_weights: Mapping[str, float] | None = None,
    warmup_epochs: int = 0,
    val_steps: int | None = None,
    strategy=None,
    tensorboard: bool = True,
    verbose: int | str = "auto",
    batch_size: int = 0,
    tracker: DataOrder | None = None,
    skips: SkipReport | None = None,
    reset_names: bool = False,
    resume_dir: str | os.PathLike | None = None,
    step_lines: bool = False,
) -> keras.Model:
    """Trains (or resumes) a multi-task model; returns the trained model (also saved as `model.keras`).

    `build_and_compile(frozen)` builds and compiles the model with the backbone frozen or not; it is called in
    the strategy scope. The first `warmup_epochs` train the heads only (frozen backbone), the rest everything
    (with a fresh optimizer, as after any recompilation; weights and dropout RNG states carry over). A
    checkpoint in `out_dir/checkpoints` is resumed: the epoch count, weights, dropout RNG states, best score,
    position in the training stream and optimizer state (when the phase is the same) carry over.

    `train_dataset` is either a dataset (repeated; every `fit` call starts reading it afresh) or, for exact
    resumption, a function `skip -> dataset` that starts the (repeated) stream after `skip` elements, as
    `deepfl.data.make_dataset(skip=...)` does: each `fit` call (each phase, each resumed process) then continues
    at the position reached so far. That position is counted by `tracker` (a `DataOrder`; the dataset's
    targets must then include `ROW_COLUMN`), exact with skipped images, or else as `batch_size` x
    `steps_per_epoch` per epoch. `skips` names and counts skipped images after each epoch. `reset_names` calls
    `keras.backend.clear_session()` before each build (outside the strategy scope), so that auto-generated
    names, which Keras stores in weights files, do not depend on the models built before in this process: the
    checkpoints of a resumed run are then byte-identical to an unbroken run's (it clears Keras' global state,
    including its global seed: `build_and_compile` should seed).

    `step_lines` adds plain progress lines within each epoch (`StepProgress`), for use with `verbose=0` when
    the output goes to a log file.

    `resume_dir` (default `out_dir`) holds the checkpoint to resume from: on a multi-worker strategy, every
    worker resumes from the chief's `out_dir`, and each non-chief worker writes to a folder of its own.
    """
    import tensorflow as tf

    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"epochs/steps_per_epoch: must be >= 1, got {epochs}/{steps_per_epoch}")
    if not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"warmup_epochs: must be in [0, epochs={epochs}], got {warmup_epochs}")
    if tracker is not None and batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1 with a tracker, got {batch_size}")
    strategy = strategy or tf.distribute.get_strategy()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    resume = Path(resume_dir) if resume_dir is not None else out
    state = read_state(resume / "checkpoints")
    start = state["epoch"] if state else 0
    position = int(state.get("position", 0)) if state else 0
    if start:
        log.info("resuming after epoch %d of %d from %s", start, epochs, resume / "checkpoints")
    if tracker is not None:
        tracker.position = position
    phases = [(0, warmup_epochs, True), (warmup_epochs, epochs, False)]
    model = None
    for first, last, frozen in phases:
        if last <= first or start >= last:
            continue
        if reset_names:
            keras.backend.clear_session(free_memory=False)
        with strategy.scope():
            previous = model
            model = build_and_compile(frozen)
            if previous is not None:  # next phase in this process: carry the trained weights over
                model.set_weights(previous.get_weights())
                set_seed_states(model, seed_states(previous))
            elif state is not None:
                restore_checkpoint(model, resume / "checkpoints", with_optimizer=state["backbone_frozen"] == frozen)
        if is_multi_worker(strategy):
            vector_step_logs(model)
        if callable(train_dataset):
            dataset = train_dataset(position)
        else:
            dataset = train_dataset
        if tracker is not None:
            dataset = tracker.attach(dataset)
        build_from_spec(model, dataset.element_spec)
        end = EpochEnd(
            out,
            tasks,
            val_dataset,
            val_steps,
            loss_weights,
            frozen,
            best=state["best"] if state else None,
            best_epoch=state["best_epoch"] if state else None,
            tracker=tracker,
            images_per_epoch=batch_size * steps_per_epoch,
            position=position,
            skips=skips,
        )
        step_progress = StepProgress(steps_per_epoch, epochs) if step_lines else None
        callbacks: list = [step_progress, end] if step_progress else [end]
        if tensorboard and _tensorboard_available():
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / "tensorboard"), write_graph=False))
        try:
            try:
                model.fit(
                    dataset,
                    epochs=last,
                    initial_epoch=max(first, start),
                    steps_per_epoch=steps_per_epoch,
                    callbacks=callbacks,
                    verbose=verbose,
                    shuffle=False,
                )
            finally:  # an interrupted epoch's bar ends before the job's last lines
                if step_progress is not None:
                    step_progress.close()
        except KeyboardInterrupt:
            _log_saved_epochs(resume / "checkpoints", epochs)  # (the chief's, where a worker's rerun resumes)
            raise
        except Exception as exc:
            if not (is_multi_worker(strategy) and is_lost_worker(exc)):
                raise
            _log_saved_epochs(resume / "checkpoints", epochs)
            raise lost_worker(exc) from exc
        state = read_state(out / "checkpoints")
        start, position = state["epoch"], end.position
    if model is None:  # everything was done already: load the last checkpoint to write the final model
        if reset_names:
            keras.backend.clear_session(free_memory=False)
        with strategy.scope():
            model = build_and_compile(warmup_epochs >= epochs)
            restore_checkpoint(
                model, resume / "checkpoints", with_optimizer=state["backbone_frozen"] == (warmup_epochs >= epochs)
            )
    save_model_atomic(model, out / "model.keras")
    if skips is not None and (skips.train_skipped or skips.val_skipped or skips.named):
        log.warning("skipped images: %s", skips.summary())
    return model


def _log_saved_epochs(checkpoint_dir: Path, epochs: int) -> None:
    """One line on what an interrupted run keeps, read from its last checkpoint: a Ctrl-C can land after an
    epoch's checkpoint and before its "done" line, so the line says which epoch a rerun resumes after."""
    try:
        state = read_state(checkpoint_dir)
    except (OSError, ValueError):
        return  # the interruption is reported anyway; a broken checkpoint is named by the rerun
    if state is None:
        log.info("no epoch finished yet: a rerun starts from the beginning")
    else:
        log.info("epochs saved: %d of %d (a rerun resumes after epoch %d)", state["epoch"], epochs, state["epoch"])


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401  (tf.summary needs it)
    except ImportError:
        log.warning("tensorboard is not installed: no TensorBoard logs (history.csv has the same figures)")
        return False
    return True


def steps_for(num_images: int, batch_size: int) -> int:
    """Batches in one pass over `num_images` (the last one may be short)."""
    return max(1, math.ceil(num_images / batch_size))
