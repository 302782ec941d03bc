"""Library side of the multi-task training job: strategies, data split, validation SROCC, logging, resume.

`train_multitask` runs `model.fit` epoch by epoch state: after every epoch it evaluates the validation set
(per-task MSE and SROCC), appends one row to `history.csv`, writes TensorBoard scalars, saves the best model
(`best.keras`, by mean validation SROCC) and a resumable checkpoint (weights + optimizer state + dropout RNG
state + epoch + position in the training stream, written atomically), so a killed job restarted with the same
arguments continues at the next epoch exactly as an unbroken run would: same batches, same dropout masks, same
optimizer state, hence the same weights. `DataOrder` follows which training images the model consumed (exact
even when corrupt images are skipped), so the resumed input pipeline starts where the unbroken one was.
TensorFlow is required here (tf.data, tf.distribute); the models themselves are pure Keras.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import Callable, Mapping, Sequence

import keras
import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

import deepfl.models.layers  # noqa: F401  (registers the custom layers, so saved models reload)
from deepfl.fileio import atomic_output, atomic_write_bytes, save_model_atomic
from deepfl.jobs import AppendOnlyCsv, progress

log = logging.getLogger("deepfl")

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")
STATE_FILE = "state.json"
SKIPPED_FILE = "skipped_images.csv"
# Extra "target" column carrying each training row's index through the input pipeline (see DataOrder).
ROW_COLUMN = "_deepfl_row"


def configure_virtual_cpus(count: int) -> None:
    """Splits the host CPU into `count` logical devices (to try distribution strategies without GPUs).

    Must run before TensorFlow initialises its devices (before any op runs).
    """
    import tensorflow as tf

    if count < 2:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(count))


def get_strategy(name: str = "default", tpu: str = ""):
    """A `tf.distribute` strategy by name: default (one device), mirrored (all local GPUs/devices),
    multi_worker_mirrored (several machines; each reads the cluster from env TF_CONFIG), tpu (`tpu` = address
    or name, "" for the local TPU)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy: must be one of {STRATEGIES}, got {name!r}")


def split_by_content(table: pd.DataFrame, val_fraction: float = 1 / 7, val_images: int = 0,
                     seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits a weak-label table into (train, val) by content (all images of one reference on one side).

    `val_images` > 0 asks for about that many validation images (the paper: 100,000 of KADIS-700k's 700,000),
    otherwise `val_fraction` of the contents go to validation (default 1/7, the paper's ratio). Seeded.
    """
    if "content" not in table.columns:
        raise ValueError("table: needs a 'content' column (a deepfl.data weak-label table)")
    contents = np.array(sorted(set(table["content"].astype(str))), dtype=object)
    if len(contents) < 2:
        raise ValueError(f"table: needs at least 2 distinct contents to split, got {len(contents)}")
    if val_images:
        if not 0 < val_images < len(table):
            raise ValueError(f"val_images: must be in (0, {len(table)}), got {val_images}")
        fraction = val_images / len(table)
    else:
        fraction = float(val_fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"val_fraction: must be in (0, 1), got {val_fraction}")
    n_val = min(len(contents) - 1, max(1, int(round(fraction * len(contents)))))
    order = np.random.default_rng(seed).permutation(len(contents))
    is_val = table["content"].astype(str).isin(set(contents[order[:n_val]]))
    return table[~is_val.to_numpy()], table[is_val.to_numpy()]


def srocc(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (NaN when either side is constant)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(scipy_stats.spearmanr(a, b).statistic)


def evaluate_tasks(model: keras.Model, dataset, tasks: Sequence[str], loss_weights: Mapping[str, float] | None = None,
                   steps: int | None = None, desc: str = "validation") -> dict[str, float]:
    """One pass over `dataset` ((images, {task: targets})): per-task MSE and SROCC, weighted total loss.

    Returns keys `<task>_loss`, `<task>_srocc`, `loss` (weighted sum of the MSEs) and `srocc` (mean over
    tasks, NaNs ignored).
    """
    predictions: dict[str, list] = {t: [] for t in tasks}
    targets: dict[str, list] = {t: [] for t in tasks}
    strategy = getattr(model, "distribute_strategy", None)
    distributed = strategy is not None and strategy.num_replicas_in_sync > 1
    for i, (images, values) in enumerate(progress(dataset, total=steps, desc=desc, unit="batch")):
        if steps is not None and i >= steps:
            break
        if distributed:  # predict_on_batch does not split a batch over replicas; predict does
            outputs = model.predict(images, batch_size=len(images), verbose=0)
        else:
            outputs = model.predict_on_batch(images)
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
        result[f"{t}_srocc"] = srocc(p, y)
        total += float(weights.get(t, 1.0)) * mse
        sroccs.append(result[f"{t}_srocc"])
    result["loss"] = total
    finite = [s for s in sroccs if np.isfinite(s)]
    result["srocc"] = float(np.mean(finite)) if finite else float("nan")
    return result


def read_state(checkpoint_dir: str | os.PathLike) -> dict | None:
    """The last checkpoint's state (epoch done, weights file, best score), or None when there is none."""
    path = Path(checkpoint_dir) / STATE_FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    if not (Path(checkpoint_dir) / state["weights"]).exists():
        raise ValueError(f"checkpoint: {path} names {state['weights']}, which is missing")
    return state


def restore_checkpoint(model: keras.Model, checkpoint_dir: str | os.PathLike, with_optimizer: bool = True) -> dict:
    """Loads the last checkpoint into a compiled `model` (weights, and the optimizer state when
    `with_optimizer`); returns its state. Call inside the strategy scope."""
    state = read_state(checkpoint_dir)
    if state is None:
        raise ValueError(f"checkpoint_dir: no {STATE_FILE} in {checkpoint_dir}")
    if with_optimizer:
        model.optimizer.build(model.trainable_variables)  # the optimizer's slots must exist to be loaded
        model.load_weights(str(Path(checkpoint_dir) / state["weights"]))
    else:
        import warnings

        with warnings.catch_warnings():  # "Skipping variable loading for optimizer": intended here
            warnings.simplefilter("ignore", UserWarning)
            model.load_weights(str(Path(checkpoint_dir) / state["weights"]))
    if state.get("seed_states") is not None:  # dropout RNG: not part of Keras' weights files
        set_seed_states(model, state["seed_states"])
    return state


def seed_states(model: keras.Model) -> list[list[int]]:
    """The states of the model's random seed generators (dropout masks), in layer order.

    Keras does not save them with the weights, so a resumed run would otherwise replay the dropout masks of its
    first steps; the checkpoint stores them beside the weights.
    """
    return [[int(x) for x in np.asarray(v.numpy()).ravel()] for v in model.variables
            if v.path.endswith("seed_generator_state")]


def set_seed_states(model: keras.Model, states: Sequence[Sequence[int]]) -> None:
    """Restores what `seed_states` returned (same architecture)."""
    variables = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    if len(variables) != len(states):
        raise ValueError(f"states: {len(states)} seed generator states for a model with {len(variables)}")
    for variable, value in zip(variables, states):
        variable.assign(np.asarray(value, dtype=variable.dtype).reshape(variable.shape))


class DataOrder:
    """Follows the training stream at the consumer side: which table rows the model actually trained on.

    The training table carries its row index as an extra target column (`ROW_COLUMN`); `attach` strips it from
    each batch as the batch is taken and records it. After an epoch of `n` images, `advance(n)` lines the first
    `n` recorded rows up with the shuffled order of the table (the same seeded `tf.data` shuffle + repeat that
    `deepfl.data.make_dataset` applies to the paths), which gives the exact position reached in the stream and
    the rows that were skipped on the way (corrupt images dropped by `on_error="skip"`). A resumed job passes
    `position` as `make_dataset(skip=...)` and sees exactly the images an unbroken run would see next. Batches
    prefetched beyond the epoch stay queued for the next one, so the pipeline's look-ahead does not matter.
    """

    def __init__(self, num_rows: int, seed: int, position: int = 0, chunk: int = 65536):
        if num_rows < 1 or num_rows >= 2 ** 24:  # row indices travel as float32 targets: exact below 2**24
            raise ValueError(f"num_rows: must be in [1, 2**24), got {num_rows}")
        self.num_rows, self.seed, self.position, self.chunk = int(num_rows), int(seed), int(position), int(chunk)
        self._lock = threading.Lock()
        self._delivered: list[np.ndarray] = []
        self._generation = 0
        self._order = None
        self._pending = np.empty(0, np.int64)

    def attach(self, dataset):
        """`dataset` (batches whose target dict has `ROW_COLUMN`) without that column, recording it per batch.

        Call once per fresh input pipeline (each `fit`); rows recorded by an earlier pipeline are discarded.
        """
        import tensorflow as tf

        with self._lock:
            self._generation += 1
            self._delivered = []
            generation = self._generation

        def record_rows(rows):
            with self._lock:
                if generation == self._generation:
                    self._delivered.append(np.rint(rows.numpy()).astype(np.int64))
            return np.int64(0)

        def strip(images, values):
            values = dict(values)
            rows = values.pop(ROW_COLUMN)
            done = tf.py_function(record_rows, [rows], tf.int64)
            with tf.control_dependencies([done]):
                images = tf.identity(images)
            return images, values

        return dataset.map(strip)  # synchronous: runs as the batch is taken, in stream order

    def _stream(self):
        import tensorflow as tf

        order = (tf.data.Dataset.range(self.num_rows).shuffle(self.num_rows, seed=self.seed,
                                                              reshuffle_each_iteration=True)
                 .repeat().skip(self.position).batch(self.chunk))
        for block in order.as_numpy_iterator():
            yield block

    def _pull(self, count: int) -> None:
        if self._order is None:
            self._order = self._stream()
        while len(self._pending) < count:
            self._pending = np.concatenate([self._pending, next(self._order)])

    def advance(self, images: int) -> np.ndarray:
        """Consumes the next `images` recorded rows; returns the rows skipped before them (one entry per skip)."""
        with self._lock:
            delivered = np.concatenate(self._delivered) if self._delivered else np.empty(0, np.int64)
            if len(delivered) < images:
                raise RuntimeError(f"DataOrder: {len(delivered)} rows recorded, {images} expected (is the "
                                   f"dataset attached?)")
            taken, rest = delivered[:images], delivered[images:]
            self._delivered = [rest] if len(rest) else []
        self._pull(images)
        if np.array_equal(self._pending[:images], taken):  # nothing skipped: the common case
            self.position += images
            self._pending = self._pending[images:]
            return np.empty(0, np.int64)
        skipped, i, j = [], 0, 0
        while i < images:
            if j >= len(self._pending):
                self._pull(j + self.chunk)
            if self._pending[j] == taken[i]:
                i += 1
            else:
                skipped.append(self._pending[j])
                if len(skipped) > self.num_rows + images:  # would mean the orders disagree: a bug, not bad data
                    raise RuntimeError("DataOrder: the recorded rows do not follow the shuffled table order")
            j += 1
        self.position += j
        self._pending = self._pending[j:]
        return np.asarray(skipped, np.int64)


class SkipReport:
    """Names and counts the corrupt images the input pipelines dropped (`on_error="skip"`).

    Training skips come exactly from `DataOrder.advance` (prefetched, unused elements do not count, unlike
    `PipelineStats.summary()` on a repeated dataset); validation skips from the validation pipeline's
    `PipelineStats` when each epoch reads the whole validation split (then its counts are exact). On the first
    epoch with a skip, every unreadable file of `paths` (train + validation) is named on stderr, one line each,
    and listed in `out_dir/skipped_images.csv` (image, reason), once per run (a resumed run reuses the file).
    """

    def __init__(self, out_dir: Path, paths: Sequence[str], train_paths: Sequence[str], val_stats=None,
                 val_exact: bool = True, train_skipped: int = 0):
        self.file = Path(out_dir) / SKIPPED_FILE
        self.paths, self.train_paths = list(paths), np.asarray(train_paths, dtype=object)
        self.val_stats, self.val_exact = val_stats, val_exact
        self.train_skipped, self.val_skipped, self.epochs = int(train_skipped), 0, 0
        self._val_seen = 0
        self.named: set[str] | None = None
        if self.file.exists():
            self.named = set(pd.read_csv(self.file, dtype=str, keep_default_na=False)["image"])

    def after_epoch(self, epoch: int, skipped_rows: np.ndarray) -> None:
        """Counts this epoch's skips; names the unreadable files on the first epoch that had any."""
        train = len(skipped_rows)
        val = 0
        if self.val_stats is not None and self.val_exact:
            val = self.val_stats.skipped - self._val_seen
            self._val_seen = self.val_stats.skipped
        self.train_skipped += train
        self.val_skipped += val
        self.epochs += 1
        if not (train or val):
            return
        if self.named is None:
            # A plain scan, not PipelineStats.name_skipped: a prefetching pipeline's count can still read 0.
            bad = self._scan()
            frame = pd.DataFrame(bad, columns=["image", "reason"])
            atomic_write_bytes(self.file, frame.to_csv(index=False).encode())
            self.named = set(frame["image"])
        for path in sorted(set(self.train_paths[skipped_rows]) - self.named):  # decodable now, not then
            log.warning("%s: image skipped by the input pipeline", path)
            self.named.add(path)
        log.warning("epoch %d: %d training and %d validation images skipped (unreadable)", epoch, train, val)

    def _scan(self) -> list[tuple[str, str]]:
        from deepfl.data import find_unreadable_images

        bad = find_unreadable_images(self.paths)
        for path, reason in bad:
            log.warning("%s: unreadable image skipped (%s)", path, reason)
        return bad

    def summary(self) -> str:
        text = f"{self.train_skipped} training image(s) skipped in total"
        if self.val_stats is not None and self.val_exact:
            text += f", {self.val_skipped} validation image(s) in the {self.epochs} epoch(s) of this process"
        if self.named:
            text += f"; {len(self.named)} unreadable file(s) listed in {self.file}"
        return text


class EpochEnd(keras.callbacks.Callback):
    """After each epoch: validation metrics into `logs`, a history row, best model, resumable checkpoint.

    Runs first among the callbacks so that TensorBoard (after it) sees the `val_*` entries it adds. The
    checkpoint holds the weights with the optimizer state, the dropout RNG states and the position reached in
    the training stream (`tracker.position`, or `position + images_per_epoch` per epoch without a tracker).
    """

    def __init__(self, out_dir: Path, tasks: Sequence[str], val_dataset, val_steps: int | None,
                 loss_weights: Mapping[str, float] | None, frozen: bool, best: float | None = None,
                 best_epoch: int | None = None, keep: int = 1, tracker: DataOrder | None = None,
                 images_per_epoch: int = 0, position: int = 0, skips: SkipReport | None = None):
        super().__init__()
        self.out_dir = Path(out_dir)
        self.checkpoint_dir = self.out_dir / "checkpoints"
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.tasks = list(tasks)
        self.val_dataset, self.val_steps = val_dataset, val_steps
        self.loss_weights = loss_weights
        self.frozen = frozen
        self.best = best
        self.best_epoch = best_epoch
        self.keep = keep
        self.tracker, self.images_per_epoch, self.position = tracker, int(images_per_epoch), int(position)
        self.skips = skips
        columns = (["epoch", "loss"] + [f"{t}_loss" for t in self.tasks] + ["val_loss"]
                   + [f"val_{t}_loss" for t in self.tasks] + [f"val_{t}_srocc" for t in self.tasks]
                   + ["val_srocc", "backbone_frozen"])
        self.history = AppendOnlyCsv(self.out_dir / "history.csv", columns, key="epoch")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        if self.tracker is not None:
            skipped = self.tracker.advance(self.images_per_epoch)
            self.position = self.tracker.position
        else:
            skipped = np.empty(0, np.int64)
            self.position += self.images_per_epoch
        if self.val_dataset is not None:
            results = evaluate_tasks(self.model, self.val_dataset, self.tasks, self.loss_weights, self.val_steps,
                                     desc=f"validation, epoch {epoch + 1}")
            logs.update({f"val_{k}": v for k, v in results.items()})
        if self.skips is not None:
            self.skips.after_epoch(epoch + 1, skipped)
        row = {c: logs.get(c, float("nan")) for c in self.history.columns}
        row.update(epoch=epoch + 1, backbone_frozen=int(self.frozen))
        self.history.append([{k: (str(int(v)) if k in ("epoch", "backbone_frozen") else f"{float(v):.6g}")
                              for k, v in row.items()}])
        score = logs.get("val_srocc", -logs.get("loss", float("nan")))
        if np.isfinite(score) and (self.best is None or score > self.best):
            self.best, self.best_epoch = float(score), epoch + 1
            save_model_atomic(self.model, self.out_dir / "best.keras")
        self._checkpoint(epoch + 1)
        summary = ", ".join(f"{k}={logs[k]:.4g}" for k in ("loss", "val_loss", "val_srocc") if k in logs)
        log.info("epoch %d done: %s (best val_srocc %s at epoch %s)", epoch + 1, summary,
                 "n/a" if self.best is None else f"{self.best:.4f}", self.best_epoch)

    def _checkpoint(self, epochs_done: int) -> None:
        name = f"epoch_{epochs_done:04d}.weights.h5"
        with atomic_output(self.checkpoint_dir / name, suffix=".tmp.weights.h5") as tmp:
            self.model.save_weights(str(tmp))  # holds the optimizer state too
        state = {"epoch": epochs_done, "weights": name, "backbone_frozen": self.frozen, "best": self.best,
                 "best_epoch": self.best_epoch, "position": self.position, "seed_states": seed_states(self.model),
                 "train_skipped": self.skips.train_skipped if self.skips is not None else 0}
        atomic_write_bytes(self.checkpoint_dir / STATE_FILE, json.dumps(state, indent=1).encode())
        # The state now names the new file: older checkpoints can go.
        for old in sorted(self.checkpoint_dir.glob("epoch_*.weights.h5"))[:-self.keep]:
            if old.name != name:
                old.unlink(missing_ok=True)


def train_multitask(build_and_compile: Callable[[bool], keras.Model], train_dataset, val_dataset,
                    out_dir: str | os.PathLike, epochs: int, steps_per_epoch: int, tasks: Sequence[str],
                    loss_weights: Mapping[str, float] | None = None, warmup_epochs: int = 0,
                    val_steps: int | None = None, strategy=None, tensorboard: bool = True,
                    verbose: int | str = "auto", batch_size: int = 0, tracker: DataOrder | None = None,
                    skips: SkipReport | None = None, reset_names: bool = False) -> keras.Model:
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
    """
    import tensorflow as tf

    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"epochs/steps_per_epoch: must be >= 1, got {epochs}/{steps_per_epoch}")
    if not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"warmup_epochs: must be in [0, epochs={epochs}], got {warmup_epochs}")
    if tracker is not None and batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1 with a tracker, got {batch_size}")
    strategy = strategy or tf.distribute.get_strategy()
    out = worker_dir(Path(out_dir), strategy)
    out.mkdir(parents=True, exist_ok=True)
    state = read_state(out / "checkpoints")
    start = state["epoch"] if state else 0
    position = int(state.get("position", 0)) if state else 0
    if start:
        log.info("resuming after epoch %d of %d from %s", start, epochs, out / "checkpoints")
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
                restore_checkpoint(model, out / "checkpoints", with_optimizer=state["backbone_frozen"] == frozen)
        if callable(train_dataset):
            dataset = train_dataset(position)
        else:
            dataset = train_dataset
        if tracker is not None:
            dataset = tracker.attach(dataset)
        end = EpochEnd(out, tasks, val_dataset, val_steps, loss_weights, frozen,
                       best=state["best"] if state else None, best_epoch=state["best_epoch"] if state else None,
                       tracker=tracker, images_per_epoch=batch_size * steps_per_epoch, position=position,
                       skips=skips)
        callbacks: list = [end]
        if tensorboard and _tensorboard_available():
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / "tensorboard"), write_graph=False))
        model.fit(dataset, epochs=last, initial_epoch=max(first, start), steps_per_epoch=steps_per_epoch,
                  callbacks=callbacks, verbose=verbose, shuffle=False)
        state = read_state(out / "checkpoints")
        start, position = state["epoch"], end.position
    if model is None:  # everything was done already: load the last checkpoint to write the final model
        if reset_names:
            keras.backend.clear_session(free_memory=False)
        with strategy.scope():
            model = build_and_compile(warmup_epochs >= epochs)
            restore_checkpoint(model, out / "checkpoints", with_optimizer=state["backbone_frozen"] ==
                               (warmup_epochs >= epochs))
    save_model_atomic(model, out / "model.keras")
    if skips is not None and (skips.train_skipped or skips.val_skipped or skips.named):
        log.warning("skipped images: %s", skips.summary())
    return model


def worker_dir(out_dir: Path, strategy) -> Path:
    """`out_dir` for the chief (or a single machine); `out_dir/workers/<type>_<id>` for the other workers of a
    multi-worker strategy, so that only the chief writes the shared outputs and checkpoints."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    if task_type in (None, "chief"):
        return out_dir
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if task_type == "worker" and task_id == 0 and "chief" not in cluster:
        return out_dir  # without a chief, worker 0 plays its part
    return out_dir / "workers" / f"{task_type}_{task_id}"


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
