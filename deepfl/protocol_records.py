"""What defines a run of the stage-2 protocol and what it leaves behind, free of Keras and TensorFlow.

The head's settings (`HeadConfig`, `protocol_settings`), the splits of a table (`table_splits`), and the record of
each finished split (`<name>_split<k>.done.json` beside its head) with the digests of the inputs it was made from:
a rerun resumes from those records, and one with nothing left to do (`finished_on_these_inputs`) answers without
loading TensorFlow (5-10 s). `deepfl.protocol` trains the heads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepfl import paper
from deepfl.fileio import atomic_write_bytes, normalizer_path
from deepfl.jobs import SettingsChanged
from deepfl.wording import setting

log = logging.getLogger("deepfl")

PAPER_LEARNING_RATES: tuple[float, ...] = paper.STAGE2_LEARNING_RATES
PROTOCOLS = paper.STAGE2_PROTOCOLS
# What deepfl-train-mlp stores in its --out_dir, beside the heads: its resolved settings, `features` (the cache
# the heads were trained on) among them; deepfl-export reads it to check a head against --model.
MLP_SETTINGS_FILE = "mlp_settings.json"
# What deepfl-reproduce stores in each data set's run folder, beside its heads: `features` (the source of the
# features, `features.extractor_source`), `head` (its HeadConfig) among them; deepfl-export reads it as well.
REPRODUCE_SETTINGS_FILE = "reproduce_settings.json"


@dataclass
class HeadConfig:
    """Everything that defines how one head is trained (defaults: the paper's)."""

    hidden: Sequence[int] = paper.STAGE2_HIDDEN
    dropout: Sequence[float] = paper.STAGE2_DROPOUT
    epochs: int = paper.STAGE2_EPOCHS
    batch_size: int = paper.STAGE2_BATCH_SIZE
    learning_rates: Sequence[float] = PAPER_LEARNING_RATES
    lr_selection: str = "first"  # "first": choose on split 0 and reuse; "each": choose on every split
    seed: int = 0
    normalize_targets: bool = True  # z-score on the training rows (paper); False: train on the scores as given
    standardize_features: bool = False  # z-score each feature on the training rows, inside the head (paper: no)

    def __post_init__(self):
        if self.lr_selection not in ("first", "each"):
            raise ValueError(f"lr_selection: must be 'first' or 'each', got {self.lr_selection!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs: must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {self.batch_size}")
        if isinstance(self.learning_rates, (int, float)):
            raise ValueError(f"learning_rates: need a sequence, e.g. ({self.learning_rates},), got a number")
        if not self.learning_rates or any(not lr > 0 for lr in self.learning_rates):
            raise ValueError(f"learning_rates: need positive values, got {list(self.learning_rates)}")


def protocol_settings(name: str) -> dict:
    """The settings that define protocol `name` ("paper" or "authors_demo"): HeadConfig fields (`learning_rates`,
    `epochs`, `batch_size`, `normalize_targets`), `num_splits` and `target_column` (the table column trained on:
    `score`, or `raw_score` for the authors' raw DMOS)."""
    if name == "paper":
        return {
            "learning_rates": list(paper.STAGE2_LEARNING_RATES),
            "epochs": paper.STAGE2_EPOCHS,
            "batch_size": paper.STAGE2_BATCH_SIZE,
            "normalize_targets": True,
            "num_splits": paper.STAGE2_NUM_SPLITS,
            "target_column": "score",
        }
    if name == "authors_demo":
        return {
            "learning_rates": [paper.AUTHORS_DEMO_LEARNING_RATE],
            "epochs": paper.AUTHORS_DEMO_EPOCHS,
            "batch_size": paper.AUTHORS_DEMO_BATCH_SIZE,
            "normalize_targets": False,
            "num_splits": paper.AUTHORS_DEMO_NUM_SPLITS,
            "target_column": "raw_score",
        }
    raise ValueError(f"protocol: must be one of {PROTOCOLS}, got {name!r}")


def split_labels(table: pd.DataFrame, parts: Mapping[str, pd.DataFrame]) -> np.ndarray:
    """Converts a split of `deepfl.data` ({"train"/"val"/"test": sub-table}) to one label per row of `table`."""
    labels = pd.Series("", index=table.index, dtype=object)
    for name, part in parts.items():
        labels.loc[part.index] = name
    return labels.to_numpy().astype(str)


def table_splits(
    table: pd.DataFrame,
    num_splits: int = 10,
    seed: int = 0,
    official: bool = False,
    ratios: Sequence[float] = (0.6, 0.2, 0.2),
) -> list[np.ndarray]:
    """Split labels per row of a data table: the official split, or `num_splits` content-aware random ones.
    Raises ValueError when the table has too few contents for a part (its figures would all be NaN)."""
    from deepfl.data import min_contents, official_split, repeated_splits

    if official:
        return [split_labels(table, official_split(table))]
    if "content" not in table.columns:  # (a bare KeyError from pandas before, walk 39b)
        raise ValueError(
            f"{table.attrs.get('dataset', 'table')}: needs a 'content' column (which scene each image shows; an "
            "image's own name where no two show the same scene), as deepfl.data's readers give"
        )
    count, need = table["content"].astype(str).nunique(), min_contents(ratios)
    if count < need:
        raise ValueError(
            f"{table.attrs.get('dataset', 'table')}: {count} distinct content(s); content-aware "
            f"{'/'.join(f'{r:g}' for r in ratios)} splits need at least {need} (a test part needs a content of its "
            "own; give a 'content' per image where no two images show the same scene)"
        )
    return [split_labels(table, parts) for parts in repeated_splits(table, num_splits, ratios, seed)]


def run_key(features: np.ndarray, scores: np.ndarray, splits: Sequence[Sequence[str]], config: HeadConfig) -> str:
    """A digest of everything a split's result depends on (features, scores, split labels, head settings): a
    finished split is reused only by a run of the same inputs, never by one with other data or flags."""
    digest = hashlib.sha256()
    digest.update(repr((features.shape, str(features.dtype), config)).encode("utf-8"))
    digest.update(np.ascontiguousarray(features).tobytes())
    digest.update(np.ascontiguousarray(scores, np.float64).tobytes())
    for labels in splits:
        digest.update("\x00".join(map(str, labels)).encode("utf-8") + b"\x01")
    return digest.hexdigest()


def cross_run_key(
    train_features: np.ndarray,
    train_scores: np.ndarray,
    train_split: Sequence[str],
    test_features: np.ndarray,
    test_scores: np.ndarray,
    config: HeadConfig,
) -> str:
    """A digest of every input of a cross-data-set run (`deepfl.protocol.cross_dataset`), as its record keeps it."""
    key = run_key(np.asarray(train_features, np.float32), train_scores, [train_split], config)
    digest = hashlib.sha256(key.encode("ascii"))
    digest.update(np.ascontiguousarray(test_features, np.float32).tobytes())
    digest.update(np.ascontiguousarray(test_scores, np.float64).tobytes())
    return digest.hexdigest()


def finished_cross_criteria(record: str | os.PathLike, key: str) -> dict[str, float] | None:
    """The criteria a cross-data-set run stored in `record` for the inputs of `key` (`cross_run_key`); None when
    there is no such record (absent, unreadable, or made from other inputs). Without TensorFlow: a finished
    deepfl-reproduce rerun answers without loading it."""
    try:
        stored = json.loads(Path(record).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return stored["criteria"] if isinstance(stored, dict) and stored.get("run") == key else None


def input_digests(features: np.ndarray, scores: np.ndarray, splits: Sequence[Sequence[str]]) -> dict[str, str]:
    """Digests of each input a split's record is made from, kept in the record so that a rerun on other inputs can
    say which one changed."""

    def sha(*chunks: bytes) -> str:
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)
        return digest.hexdigest()

    return {
        "features": sha(repr((features.shape, str(features.dtype))).encode("utf-8"), features.tobytes()),
        "scores": sha(np.ascontiguousarray(scores, np.float64).tobytes()),
        "splits": sha(*("\x00".join(map(str, labels)).encode("utf-8") + b"\x01" for labels in splits)),
    }


def protocol_arrays(features, scores) -> tuple[np.ndarray, np.ndarray]:
    """Features and scores in the form `run_protocol` trains on and digests: float32 (rows, dim), float64 (rows,)."""
    return np.ascontiguousarray(features, dtype=np.float32), np.asarray(scores, dtype=np.float64).reshape(-1)


_SPLIT_RECORDS = "*_split*.done.json"  # every split record of a folder (`split_record_path`)
_SEARCH_RECORDS = "*_split*.search.json"  # every record of a split's unfinished learning-rate search


def split_record_path(out: Path, name: str, k: int) -> Path:
    """Where split k's criteria row and predictions are kept once its head is saved (what a rerun resumes from)."""
    return out / f"{name}_split{k}.done.json"


def search_record_path(out: Path, name: str, k: int) -> Path:
    """Where split k keeps the learning rates it has tried while its search is unfinished (`LearningRateSearch`)."""
    return out / f"{name}_split{k}.search.json"


def holds_finished_splits(out_dir: str | os.PathLike) -> bool:
    """Whether `out_dir` holds the record of a finished split (`split_record_path`) or of finished learning rates
    of an unfinished one (`search_record_path`): work a run with other settings must not silently replace."""
    return any(Path(out_dir).glob(_SPLIT_RECORDS)) or any(Path(out_dir).glob(_SEARCH_RECORDS))


def discard_finished_splits(out_dir: str | os.PathLike) -> None:
    """Removes the split and search records in `out_dir`, so that the next run retrains every split."""
    for pattern in (_SPLIT_RECORDS, _SEARCH_RECORDS):
        for record in Path(out_dir).glob(pattern):
            record.unlink()


@dataclass
class LearningRateSearch:
    """The learning rates split k of a run (`run_key`) has finished while its search is unfinished, so that a rerun
    after a kill goes on with the next rate instead of training the finished ones again (at the paper's settings
    each rate is 150 epochs). Each trained rate's `(val_loss, epoch)` is in `tried`; the head of the best so far
    (the lowest loss of `tried`, in the order the rates are tried) is saved at the split's head path
    (`<name>_split<k>.keras`) before the record names its rate.

    A rate's training does not depend on the others (`HeadTrainer` resets the head, the optimiser and the seeds
    before each), so a resumed search chooses what an uninterrupted one does, with the same weights."""

    path: Path
    key: str
    tried: dict[float, tuple[float, int]]

    @classmethod
    def read(cls, out: Path, name: str, k: int, key: str) -> LearningRateSearch:
        """Split k's search in `out` as an earlier run of the same inputs and settings left it; empty when there is
        none (absent, unreadable, from other inputs, or its best head is gone)."""
        path = search_record_path(out, name, k)
        empty = cls(path, key, {})
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(stored, dict) or stored.get("run") != key:
                return empty
            tried = {float(lr): (float(loss), int(epoch)) for lr, loss, epoch in stored["tried"]}
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            return empty
        if tried and not (out / f"{name}_split{k}.keras").is_file():  # the best head so far is gone
            return empty
        return cls(path, key, tried)

    def add(self, learning_rate: float, val_loss: float, epoch: int) -> None:
        """Records a trained rate (the caller has saved its head if it is the best so far)."""
        self.tried[float(learning_rate)] = (float(val_loss), int(epoch))
        record = {"run": self.key, "tried": [[lr, *result] for lr, result in self.tried.items()]}
        atomic_write_bytes(self.path, json.dumps(record).encode("utf-8"))


def _read_split_record(out: Path, name: str, k: int) -> dict | None:
    """Split k's record in `out`, or None (absent or unreadable)."""
    try:
        record = json.loads(split_record_path(out, name, k).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _missing_outputs(out: Path, name: str, k: int, normalized: bool) -> list[str]:
    """The files of split k a finished split has beside its record that are not there: its head and, for a head
    trained on normalised scores, its normaliser (a rerun retrains such a split, writing them again)."""
    head = out / f"{name}_split{k}.keras"
    wanted = [head, normalizer_path(head)] if normalized else [head]
    return [path.name for path in wanted if not path.is_file()]


def finished_split(out: Path, name: str, k: int, key: str, normalized: bool) -> tuple[dict, np.ndarray] | None:
    """(criteria row, predictions) of split k if an earlier run of the same inputs (`run_key`) finished it and
    its head (and normaliser, where `normalized`) are still there, else None."""
    record = _read_split_record(out, name, k)
    if record is None or record.get("run") != key or _missing_outputs(out, name, k, normalized):
        return None
    return record["row"], np.asarray(record["pred"], np.float64)


def finished_on_these_inputs(
    out_dir: str | os.PathLike,
    table: pd.DataFrame,
    features: np.ndarray,
    splits: Sequence[Sequence[str]],
    config: HeadConfig,
    name: str = "head",
    target_column: str = "score",
) -> bool:
    """Whether `run_and_report` finished in `out_dir` on exactly these inputs, so that a rerun can reuse it: True
    when its summary is written and every split's record was made from these features, scores, splits and head
    settings; False when no finished run is there. A finished run made from other inputs (a score table edited
    since, features of another model) raises `SettingsChanged` naming what differs: reusing it would report
    results of data the user no longer has, and redoing it would discard finished work without a word."""
    out = Path(out_dir)
    if not (out / "summary.csv").is_file():
        return False
    features, scores = protocol_arrays(features, table[target_column].to_numpy())
    key = run_key(features, scores, splits, config)
    records = [_read_split_record(out, name, k) for k in range(len(splits))]
    if all(record is None or record.get("run") == key for record in records):
        lost = {
            k: _missing_outputs(out, name, k, config.normalize_targets) or [split_record_path(out, name, k).name]
            for k, record in enumerate(records)
            if record is None or _missing_outputs(out, name, k, config.normalize_targets)
        }
        if not lost:
            return True
        log.info(  # a file deleted since: those splits are trained again, the others kept
            "%s: %s missing, so %s trained again",
            out,
            ", ".join(file for files in lost.values() for file in files),
            f"split{'s' if len(lost) > 1 else ''} {', '.join(map(str, lost))} will be",
        )
        return False
    digests = input_digests(features, scores, splits)
    differ = sorted(
        {
            part
            for record in records
            if record
            for part, value in record.get("inputs", {}).items()
            if digests.get(part) != value
        }
    )
    remedy = f"pass {setting('overwrite', True)} to redo it, or write to a new output"
    if not differ and all(record and "inputs" in record for record in records):
        # the same data: the head's settings differ (a program's run_and_report wrote into a job's folder, say);
        # it was blamed on "a score table or feature cache changed since?" (a walk of session 36)
        raise SettingsChanged(f"{out} holds a run finished with other head settings than this one's: {remedy}")
    sizes = sorted({len(record["pred"]) for record in records if record and isinstance(record.get("pred"), list)})
    if sizes and scores.size not in sizes:  # rows added or left out: every digest differs, which named every cause
        raise SettingsChanged(
            f"{out} holds a run finished on {sizes[0]:,} images, this one has {scores.size:,} (images added to "
            f"or left out of the table since?): {remedy}"
        )
    what = " and ".join(differ) if differ else "inputs"
    sources = {"scores": "the score table", "features": "the feature cache", "splits": "the images or their contents"}
    changed = " and ".join(sources[part] for part in differ if part in sources) or "a score table or feature cache"
    raise SettingsChanged(
        f"{out} holds a run finished on other {what} than this one's ({changed} changed since?): " + remedy
    )
