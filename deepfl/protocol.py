"""The paper's stage-2 protocol: train the MLP head on MLSP features over N splits, evaluate on the test sets.

Per split: targets are normalised with statistics of the training rows only; the head is trained for `epochs`
with Adam/MSE at each candidate learning rate, keeping the weights of the epoch with the lowest validation loss
(the best-validation checkpoint); the learning rate whose checkpoint has the lowest validation loss wins (chosen
on the first split and reused by default, or per split); the winner is evaluated on the test rows.

`protocol_settings("authors_demo")` gives the protocol of the authors' demo notebook instead: one fixed learning
rate, raw published scores as targets (no normalisation), 5 splits; `PROTOCOLS` names both.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from deepfl import protocol_records
from deepfl.data.normalization import TargetNormalizer
from deepfl.data.tables import SPLIT_NAMES
from deepfl.evaluation import MIN_POINTS_LOGISTIC, evaluate, summarize
from deepfl.fileio import atomic_write_bytes, normalizer_path, save_model_atomic
from deepfl.jobs import folder_lock, progress
from deepfl.models.mlp import build_mlp
from deepfl.protocol_records import (
    MLP_SETTINGS_FILE,
    PAPER_LEARNING_RATES,
    PROTOCOLS,
    HeadConfig,
    discard_finished_splits,
    finished_on_these_inputs,
    protocol_settings,
    split_labels,
    table_splits,
)

# The stage-2 API in one place: the settings, splits and records of a run live in `deepfl.protocol_records` (free
# of TensorFlow, for reruns that have nothing to do) and are offered here too.
__all__ = [
    "FORWARD_CHUNK",
    "MLP_SETTINGS_FILE",
    "PAPER_LEARNING_RATES",
    "PROTOCOLS",
    "HeadConfig",
    "HeadTrainer",
    "ProtocolResult",
    "cross_dataset",
    "discard_finished_splits",
    "finished_on_these_inputs",
    "fit_normalizer",
    "protocol_settings",
    "run_and_report",
    "run_protocol",
    "split_labels",
    "table_splits",
    "train_head",
]

log = logging.getLogger("deepfl")


def fit_normalizer(train_scores: np.ndarray) -> TargetNormalizer:
    """z-score of the `score` column fitted on the training rows only (the project's contract)."""
    return TargetNormalizer("standard").fit({"score": np.asarray(train_scores, np.float64)}, "score")


def _targets(
    scores: np.ndarray, train_rows: np.ndarray, config: HeadConfig
) -> tuple[np.ndarray, TargetNormalizer | None]:
    """Training targets for every row and the normaliser that maps predictions back (None: used as given)."""
    if not config.normalize_targets:
        return scores.astype(np.float32), None
    norm = fit_normalizer(scores[train_rows])
    return norm.transform_values("score", scores).astype(np.float32), norm


def _scores_of(norm: TargetNormalizer | None, predictions: np.ndarray) -> np.ndarray:
    return predictions if norm is None else norm.inverse_values("score", predictions)


# Rows per forward pass when a head scores many rows.
FORWARD_CHUNK = 4096


def _predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The head's outputs for every row, by direct forward passes: `Model.predict` would trace a new predict
    function for every head (and build an input pipeline per call)."""
    x = np.asarray(x, np.float32)
    chunks = [
        np.asarray(model(x[i : i + FORWARD_CHUNK], training=False), np.float64).reshape(-1)
        for i in range(0, len(x), FORWARD_CHUNK)
    ]
    return np.concatenate(chunks) if chunks else np.zeros(0)


def _feature_statistics(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (mean, variance) of the training rows; constant features get variance 1."""
    variance = np.var(x_train, axis=0, dtype=np.float64)
    return np.mean(x_train, axis=0, dtype=np.float64), np.where(variance > 0, variance, 1.0)


def _standardized(x: np.ndarray, statistics: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """What the head's `standardize` layer (keras.layers.Normalization) computes, in the same float32 steps."""
    mean, variance = (np.asarray(v, np.float32) for v in statistics)
    return (np.asarray(x, np.float32) - mean) / np.maximum(np.sqrt(variance), np.float32(keras.config.epsilon()))


class HeadTrainer:
    """Trains the heads of one `HeadConfig` on features of one width with a single model and optimiser, reset to
    their initial state (weights, dropout seeds, Adam's slots) before each head.

    Each epoch is one call of a traced function (traced once per trainer, whatever the number of rows): the
    minibatches of a seeded permutation of the training rows (the last one partial), one Adam step on the MSE
    each (as `compile_mlp`: beta 0.9/0.999), then the validation MSE. Keras' `fit` would build a new input
    pipeline every epoch and predict in eager steps, which on a 2-core CPU took twice as long as training a
    small head itself. When `config.standardize_features`, the features are z-scored before the shared model
    sees them, and each returned head is built fresh with that z-scoring as its first layer and the trained
    weights, so it takes raw features like any head.
    """

    def __init__(self, input_dim: int, config: HeadConfig = HeadConfig()):
        self.config = config
        self.input_dim = int(input_dim)
        self.model = build_mlp(self.input_dim, config.hidden, config.dropout, seed=config.seed)
        self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rates[0], beta_1=0.9, beta_2=0.999)
        self.optimizer.build(self.model.trainable_variables)
        self._state = self.model.variables + self.optimizer.variables
        self._initial = [np.array(v.numpy()) for v in self._state]
        self._seeded = False
        rows = tf.TensorSpec([None, self.input_dim], tf.float32)
        targets = tf.TensorSpec([None], tf.float32)
        order = tf.TensorSpec([None], tf.int32)
        # No autograph (the loop is an explicit tf.while_loop): it would read this file's source when tracing.
        self._epoch = tf.function(
            self._one_epoch, input_signature=[rows, targets, order, rows, targets], autograph=False
        )

    def _one_epoch(self, x, y, order, x_val, y_val):
        """One pass over the rows of `order` in minibatches (one Adam step each); returns the validation MSE."""
        variables = self.model.trainable_variables
        batch = self.config.batch_size

        def step(start):
            rows = order[start : start + batch]
            with tf.GradientTape() as tape:
                predicted = tf.reshape(self.model(tf.gather(x, rows), training=True), [-1])
                loss = tf.reduce_mean(tf.square(tf.gather(y, rows) - predicted))
            self.optimizer.apply(tape.gradient(loss, variables), variables)
            return (start + batch,)

        tf.while_loop(lambda start: start < tf.shape(order)[0], step, (tf.constant(0),), parallel_iterations=1)
        predicted = tf.reshape(self.model(x_val, training=False), [-1])
        return tf.reduce_mean(tf.square(tf.cast(predicted, tf.float64) - tf.cast(y_val, tf.float64)))

    def train(
        self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, learning_rate: float
    ) -> tuple[keras.Model, float, int]:
        """One head; returns (uncompiled head at its best-validation epoch, best val loss, best epoch index)."""
        if not learning_rate > 0:
            raise ValueError(f"learning_rate: must be > 0, got {learning_rate}")
        config = self.config
        statistics = _feature_statistics(x_train) if config.standardize_features else None

        def inputs(x: np.ndarray) -> tf.Tensor:
            return tf.constant(np.asarray(x, np.float32) if statistics is None else _standardized(x, statistics))

        def targets(values: np.ndarray) -> tf.Tensor:
            return tf.constant(np.asarray(values, np.float32).reshape(-1))

        for variable, value in zip(self._state, self._initial):
            variable.assign(value)
        self.optimizer.learning_rate = learning_rate
        # TensorFlow's global seed is set for the first head only: setting it clears TensorFlow's kernel caches,
        # so that the traced epoch was set up again for every head (0.2-0.35 s each), and no head draws from it
        # (dropout's seed state is in `_state`).
        if self._seeded:
            random.seed(config.seed)
            np.random.seed(config.seed)
        else:
            keras.utils.set_random_seed(config.seed)
            self._seeded = True
        shuffles = np.random.default_rng(config.seed)
        x_t, y_t, x_v, y_v = inputs(x_train), targets(y_train), inputs(x_val), targets(y_val)
        best, best_epoch, best_weights = np.inf, -1, None
        for epoch in range(config.epochs):
            order = tf.constant(shuffles.permutation(len(x_train)).astype(np.int32))
            loss = float(self._epoch(x_t, y_t, order, x_v, y_v))
            if np.isfinite(loss) and loss < best:
                best, best_epoch, best_weights = loss, epoch, self.model.get_weights()
        if best_weights is not None:
            self.model.set_weights(best_weights)
        head = build_mlp(self.input_dim, config.hidden, config.dropout, seed=config.seed, standardize=statistics)
        for layer in self.model.layers:
            if layer.weights:
                head.get_layer(layer.name).set_weights(layer.get_weights())
        if best_weights is None:  # every epoch diverged (NaN): report it as such, never as a good model
            return head, float("inf"), -1
        return head, best, best_epoch


def train_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    learning_rate: float,
    config: HeadConfig = HeadConfig(),
) -> tuple[keras.Model, float, int]:
    """Trains one head; returns (model at its best-validation epoch, best val loss, best epoch index). For many
    heads of one config, one `HeadTrainer` saves building and tracing a model per head."""
    return HeadTrainer(np.shape(x_train)[1], config).train(x_train, y_train, x_val, y_val, learning_rate)


def _split_indices(labels: Sequence[str], num_rows: int, which: str) -> dict[str, np.ndarray]:
    """{"train"/"val"/"test": row indices} of one split given as one label per row (`which` names it in errors):
    refuses another form (data.repeated_splits' tables of rows), another length, other labels and a set of
    fewer than 2 rows."""
    if isinstance(labels, Mapping) or np.size(labels) != num_rows:
        raise ValueError(
            f"splits: {which} must give one label (train/val/test) per row, {num_rows} in all, got "
            + (f"a mapping of {sorted(map(str, labels))}" if isinstance(labels, Mapping) else f"{np.size(labels)}")
            + " (data.repeated_splits' tables of rows become labels through protocol.split_labels(table, parts); "
            "protocol.table_splits makes them from a table)"
        )
    labels = np.asarray(labels).astype(str)
    unknown = sorted(set(labels.tolist()) - set(SPLIT_NAMES) - {""})
    if unknown:
        raise ValueError(
            f"splits: labels must be {'/'.join(SPLIT_NAMES)} (or empty for a row left out), got {unknown[:3]}"
        )
    out = {name: np.flatnonzero(labels == name) for name in SPLIT_NAMES}
    for name in SPLIT_NAMES:
        if out[name].size < 2:
            raise ValueError(f"splits: the {name!r} set has {out[name].size} rows; need at least 2")
    return out


@dataclass
class ProtocolResult:
    """Per-split criteria, every prediction, the summary over splits and the chosen learning rates."""

    per_split: pd.DataFrame
    predictions: pd.DataFrame
    summary: pd.DataFrame
    head_paths: list[str] = field(default_factory=list)


def run_protocol(
    features: np.ndarray,
    scores: np.ndarray,
    splits: Sequence[Sequence[str]],
    config: HeadConfig = HeadConfig(),
    out_dir: str | os.PathLike | None = None,
    images: Sequence[str] | None = None,
    content: Sequence[str] | None = None,
    name: str = "head",
) -> ProtocolResult:
    """Trains and tests one head per split; `splits` holds, per split, one label (train/val/test) per row.

    With `out_dir`, each head is saved as `<name>_split<k>.keras` with `<name>_split<k>.normalizer.json` (the
    target normalisation, a `deepfl.data.TargetNormalizer`; none when `config.normalize_targets` is False)
    beside it, and then `<name>_split<k>.done.json` (its criteria and predictions): a rerun of the same inputs
    and settings (an interrupted run, started again) keeps those splits and trains only the others, with the
    same results as an uninterrupted run. Criteria compare the de-normalised predictions with `scores`.
    """
    features, scores = protocol_records.protocol_arrays(features, scores)
    if features.ndim != 2 or features.shape[0] != scores.size:
        raise ValueError(f"features: expected ({scores.size}, dim), got {features.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"scores: non-finite value at row {int(np.flatnonzero(~np.isfinite(scores))[0])}")
    finite_rows = np.isfinite(features).all(axis=1)
    if not finite_rows.all():  # else blamed on the predictions, after the first head trained (walk 39b)
        raise ValueError(f"features: non-finite value at row {int(np.flatnonzero(~finite_rows)[0])}")
    if not len(splits):
        raise ValueError("splits: at least one split is needed")
    indices = [_split_indices(labels, scores.size, f"split {k}") for k, labels in enumerate(splits)]  # all first
    images = list(images) if images is not None else [str(i) for i in range(scores.size)]
    content = list(content) if content is not None else [""] * scores.size
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    rows, predictions, head_paths = [], [], []
    chosen_lr: float | None = None
    trainer = None
    run_key = protocol_records.run_key(features, scores, splits, config) if out is not None else ""
    inputs = protocol_records.input_digests(features, scores, splits) if out is not None else {}
    label = f"{out.name}/{name}" if out is not None else name  # which run a log line or bar belongs to
    for k, labels in progress(enumerate(splits), total=len(splits), desc=label, unit="split"):
        idx = indices[k]
        set_of = np.asarray(labels).astype(str)
        finished = (
            protocol_records.finished_split(out, name, k, run_key, config.normalize_targets)
            if out is not None
            else None
        )
        if finished is not None:  # trained by an earlier (interrupted) run of the same inputs and settings
            row, pred = finished
            log.info("%s split %d: finished by an earlier run, kept", label, k)
            if config.lr_selection == "first" and chosen_lr is None:
                chosen_lr = row["learning_rate"]
            rows.append(row)
            predictions.append(
                pd.DataFrame(
                    {"split": k, "image": images, "content": content, "set": set_of, "score": scores, "pred": pred}
                )
            )
            head_paths.append(str(out / f"{name}_split{k}.keras"))
            continue
        trainer = trainer or HeadTrainer(features.shape[1], config)
        y, norm = _targets(scores, idx["train"], config)
        candidates = [chosen_lr] if chosen_lr is not None else list(config.learning_rates)
        head_path = out / f"{name}_split{k}.keras" if out is not None else None
        # A search over several rates keeps each finished one (and the best head so far) for a rerun after a kill.
        search = (
            protocol_records.LearningRateSearch.read(out, name, k, run_key)
            if out is not None and len(candidates) > 1
            else None
        )
        best = None
        for lr in candidates:
            if search is not None and float(lr) in search.tried:
                val_loss, epoch = search.tried[float(lr)]
                model = None  # the best of the earlier run's rates is read from head_path below
                log.info(
                    "%s split %d: lr %g -> best val loss %.4f at epoch %d (an earlier run's, kept)",
                    label,
                    k,
                    lr,
                    val_loss,
                    epoch + 1,
                )
            else:
                model, val_loss, epoch = trainer.train(
                    features[idx["train"]], y[idx["train"]], features[idx["val"]], y[idx["val"]], lr
                )
                log.info("%s split %d: lr %g -> best val loss %.4f at epoch %d", label, k, lr, val_loss, epoch + 1)
            if best is None or val_loss < best[1]:
                best = (model, val_loss, epoch, lr)
                if search is not None and model is not None:
                    save_model_atomic(model, head_path)  # before the record names it
            if search is not None and model is not None:
                search.add(lr, val_loss, epoch)
        model, val_loss, epoch, lr = best
        if model is None:
            model = keras.saving.load_model(head_path, compile=False)
        if config.lr_selection == "first":
            chosen_lr = lr
        pred = _scores_of(norm, _predict(model, features))
        test = idx["test"]
        metrics = evaluate(pred[test], scores[test])
        _warn_if_undefined(label, k, pred[test], scores[test], np.asarray(content)[test])
        rows.append(
            {
                "split": k,
                "learning_rate": lr,
                "best_epoch": epoch + 1,
                "val_loss": val_loss,
                "n_train": idx["train"].size,
                "n_val": idx["val"].size,
                "n_test": test.size,
                **metrics,
            }
        )
        predictions.append(
            pd.DataFrame(
                {"split": k, "image": images, "content": content, "set": set_of, "score": scores, "pred": pred}
            )
        )
        if out is not None:
            if search is None:  # a search saved its best head there already, as it found it
                save_model_atomic(model, head_path)  # without optimiser state: 140 MB, not 445 MB (paper's head)
            if norm is not None:
                norm.save(normalizer_path(head_path))
            head_paths.append(str(head_path))
            row = {key: value.item() if isinstance(value, np.generic) else value for key, value in rows[-1].items()}
            record = {  # written last: the commit
                "run": run_key,
                "inputs": inputs,
                "row": row,
                "pred": [float(v) for v in pred],
            }
            atomic_write_bytes(protocol_records.split_record_path(out, name, k), json.dumps(record).encode("utf-8"))
            if search is not None:  # the split's record replaces it
                search.path.unlink(missing_ok=True)
    per_split = pd.DataFrame(rows)
    _warn_if_too_few_for_logistic(label, per_split["n_test"].to_numpy())
    crit = ["srocc", "plcc", "plcc_logistic", "krocc", "rmse", "rmse_logistic"]
    summary = summarize(per_split[crit].to_dict("records"))
    return ProtocolResult(per_split, pd.concat(predictions, ignore_index=True), summary, head_paths)


def _warn_if_too_few_for_logistic(label: str, test_sizes: np.ndarray) -> None:
    """One warning for a run whose test sets are too small for the 4-parameter logistic: its `_logistic` criteria
    are NaN there (a fit through 4 points says nothing), which the tables show as empty cells."""
    small = test_sizes < MIN_POINTS_LOGISTIC
    if small.any():
        log.warning(
            "%s: %d of %d splits have fewer than %d test images (the smallest: %d): plcc_logistic and rmse_logistic "
            "are NaN there, as the 4-parameter logistic needs at least %d points (more contents give larger test sets)",
            label,
            int(small.sum()),
            small.size,
            MIN_POINTS_LOGISTIC,
            int(test_sizes.min()),
            MIN_POINTS_LOGISTIC,
        )


def _warn_if_undefined(label: str, split: int, pred: np.ndarray, scores: np.ndarray, content: np.ndarray) -> None:
    """One warning when a split's correlations are undefined (NaN) because its predictions or its subjective
    scores do not vary over its test images; `summarize` then takes the median over the other splits."""
    constant = [what for what, values in (("predictions", pred), ("subjective scores", scores)) if np.ptp(values) == 0]
    if constant and len(pred):
        contents = ", ".join(map(str, sorted(set(np.asarray(content).tolist()))[:3]))
        log.warning(
            "%s split %d: the %s are the same for all %d test images (contents: %s): SROCC, PLCC and KROCC are "
            "undefined (NaN) there, and the median leaves the split out",
            label,
            split,
            " and the ".join(constant),
            len(pred),
            contents,
        )


def cross_dataset(
    train_features: np.ndarray,
    train_scores: np.ndarray,
    train_split: Sequence[str],
    test_features: np.ndarray,
    test_scores: np.ndarray,
    config: HeadConfig = HeadConfig(),
    record: str | os.PathLike | None = None,
) -> dict[str, float]:
    """Trains on one data set (its train rows; lr and checkpoint chosen on its val rows) and tests on all of
    another: the paper's cross-data-set setting. Returns the criteria on the second set.

    With `record` (a JSON file), the criteria are kept there with a digest of every input: a rerun with the
    same inputs returns them without training (hours at the paper's settings), one with other inputs retrains.
    """
    train_features = np.asarray(train_features, np.float32)
    test_features = np.asarray(test_features, np.float32)
    run_key = ""
    if record is not None:
        run_key = protocol_records.cross_run_key(
            train_features, train_scores, train_split, test_features, test_scores, config
        )
        finished = protocol_records.finished_cross_criteria(record, run_key)
        if finished is not None:
            return finished
    idx = _split_indices(train_split, len(train_features), "train_split")
    y, norm = _targets(np.asarray(train_scores, np.float64), idx["train"], config)
    best = None
    trainer = HeadTrainer(train_features.shape[1], config)
    rates = list(config.learning_rates)
    for lr in progress(rates, total=len(rates), desc="cross-data-set head", unit="lr"):  # minutes at the paper's size
        model, val_loss, _ = trainer.train(
            train_features[idx["train"]], y[idx["train"]], train_features[idx["val"]], y[idx["val"]], lr
        )
        if best is None or val_loss < best[1]:
            best = (model, val_loss)
    pred = _scores_of(norm, _predict(best[0], test_features))
    criteria = {key: float(value) for key, value in evaluate(pred, test_scores).items()}
    if record is not None:
        atomic_write_bytes(Path(record), json.dumps({"run": run_key, "criteria": criteria}).encode("utf-8"))
    return criteria


def run_and_report(
    table: pd.DataFrame,
    features: np.ndarray,
    splits: Sequence[Sequence[str]],
    config: HeadConfig,
    out_dir: str | os.PathLike,
    name: str = "head",
    title: str = "",
    score_label: str = "subjective score (normalised, higher is better)",
    target_column: str = "score",
    overwrite: bool = False,
) -> ProtocolResult:
    """`run_protocol` on a data table's `target_column` (`score`, or `raw_score`: the scores as published, as
    the authors' demo trains on them), then writes its outputs into `out_dir`.

    Files: `<name>_split<k>.keras` (+ `.normalizer.json`), `predictions.csv` (every image of every split),
    `per_split.csv`, `summary.csv`/`summary.md` (median/mean/std over splits) and `scatter.png` (test images of
    all splits: predicted vs target). A run finished in `out_dir` on other inputs or head settings is refused
    (`deepfl.jobs.SettingsChanged`, naming what differs) unless `overwrite`, which trains every split again; one
    finished on the same is reused split by split.
    """
    out = Path(out_dir)
    if target_column not in ("score", "raw_score"):
        raise ValueError(f"target_column: must be 'score' or 'raw_score', got {target_column!r}")
    if target_column == "raw_score" and score_label.startswith("subjective score (normalised"):
        score_label = "subjective score (as published)"
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):  # the same command started twice: the second is refused, not run alongside
        if overwrite:
            protocol_records.discard_finished_splits(out)
        else:  # finished work is not replaced without a word (a program's run into deepfl-train-mlp's folder was)
            protocol_records.finished_on_these_inputs(out, table, features, splits, config, name, target_column)
        return _report(table, features, splits, config, out, name, title, score_label, target_column)


def _report(
    table: pd.DataFrame,
    features: np.ndarray,
    splits: Sequence[Sequence[str]],
    config: HeadConfig,
    out: Path,
    name: str,
    title: str,
    score_label: str,
    target_column: str,
) -> ProtocolResult:
    """`run_and_report` once its `out` folder is held."""
    from deepfl import reporting

    result = run_protocol(
        features,
        table[target_column].to_numpy(),
        splits,
        config,
        out_dir=out,
        images=table["image"].astype(str).tolist(),
        content=table["content"].astype(str).tolist(),
        name=name,
    )
    atomic_write_bytes(out / "predictions.csv", result.predictions.to_csv(index=False).encode("utf-8"))
    atomic_write_bytes(out / "per_split.csv", result.per_split.to_csv(index=False).encode("utf-8"))
    test = result.predictions[result.predictions["set"] == "test"]
    reporting.scatter_plot(
        test["pred"],
        test["score"],
        out / "scatter.png",
        title=f"{title or name}: test images of {len(splits)} split(s)",
        ylabel=score_label,
    )
    # The summary last: deepfl-train-mlp takes its presence for a finished run (a kill between the two left a
    # "finished" run without its plot, which no rerun wrote).
    summary = result.summary.reset_index(names="statistic")
    reporting.write_table(summary, out, "summary", title or name)
    return result
