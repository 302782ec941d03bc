"""What happens after each training epoch: validation, history row and its plot (`history.png`), best model,
checkpoint (`EpochEnd`), and the naming and counting of corrupt images the input pipelines skipped (`SkipReport`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from deepfl.fileio import atomic_write_bytes, save_model_atomic
from deepfl.jobs import AppendOnlyCsv, progress
from deepfl.reporting import plot_history
from deepfl.training.checkpoints import write_checkpoint
from deepfl.training.data_order import DataOrder
from deepfl.training.validation import evaluate_tasks

log = logging.getLogger("deepfl")

SKIPPED_FILE = "skipped_images.csv"


class SkipReport:
    """Names and counts the corrupt images the input pipelines dropped (`on_error="skip"`).

    Training skips come exactly from `DataOrder.advance` (prefetched, unused elements do not count, unlike
    `PipelineStats.summary()` on a repeated dataset); validation skips from the validation pipeline's
    `PipelineStats` when each epoch reads the whole validation split (then its counts are exact). On the first
    epoch with a skip, every unreadable file of `paths` (train + validation), or one smaller than `crop_size`, is
    named on stderr, one line each, and listed in `out_dir/skipped_images.csv` (image, reason), once per run (a
    resumed run reuses the file). The per-epoch counts are reads: a file read twice in an epoch counts twice.
    """

    def __init__(
        self,
        out_dir: Path,
        paths: Sequence[str],
        train_paths: Sequence[str],
        val_stats=None,
        val_exact: bool = True,
        train_skipped: int = 0,
        crop_size: Sequence[int] | None = None,
    ):
        self.file = Path(out_dir) / SKIPPED_FILE
        self.crop_size = crop_size
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
        log.warning("epoch %d: %d training and %d validation image reads skipped", epoch, train, val)

    def _scan(self) -> list[tuple[str, str]]:
        from deepfl.data import find_unreadable_images

        bad = find_unreadable_images(self.paths, self.crop_size)
        for path, reason in bad:
            log.warning("%s: image skipped (%s)", path, reason)
        return bad

    def summary(self) -> str:
        # reads, not files: a bad file is read once per epoch, and the repeated training stream reads ahead into
        # the next epoch (walk 39: one bad file, 2 epochs, 3 reads)
        text = f"{self.train_skipped} training image read(s) skipped in total"
        if self.val_stats is not None and self.val_exact:
            text += f", {self.val_skipped} validation image read(s) in the {self.epochs} epoch(s) of this process"
        if self.named:
            text += f"; {len(self.named)} skipped file(s) listed in {self.file}"
        return text


class StepProgress(keras.callbacks.Callback):
    """Progress within each epoch as plain lines (steps, rate, ETA; `deepfl.jobs.progress`), for where Keras' own
    bar is off because the output goes to a log file or pipe: without it an epoch of KADIS-700k, about 20 minutes
    on one H200 and days on a CPU, says nothing until its `epoch N done` line. Reads no logs, so it adds no
    device synchronisation per step."""

    def __init__(self, steps_per_epoch: int, epochs: int):
        super().__init__()
        self.steps_per_epoch, self.epochs = int(steps_per_epoch), int(epochs)
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.close()
        self._bar = progress(total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{self.epochs}", unit="step")

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        self.close()

    def close(self) -> None:
        """Ends the current epoch's bar (its last line shows where it stopped); `train_multitask` also calls it
        after an interruption."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class EpochEnd(keras.callbacks.Callback):
    """After each epoch: validation metrics into `logs`, a history row, best model, resumable checkpoint.

    Runs first among the callbacks so that TensorBoard (after it) sees the `val_*` entries it adds. The
    checkpoint holds the weights with the optimizer state, the dropout RNG states and the position reached in
    the training stream (`tracker.position`, or `position + images_per_epoch` per epoch without a tracker).
    """

    def __init__(
        self,
        out_dir: Path,
        tasks: Sequence[str],
        val_dataset,
        val_steps: int | None,
        loss_weights: Mapping[str, float] | None,
        frozen: bool,
        best: float | None = None,
        best_epoch: int | None = None,
        keep: int = 1,
        tracker: DataOrder | None = None,
        images_per_epoch: int = 0,
        position: int = 0,
        skips: SkipReport | None = None,
    ):
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
        columns = (
            ["epoch", "loss"]
            + [f"{t}_loss" for t in self.tasks]
            + ["val_loss"]
            + [f"val_{t}_loss" for t in self.tasks]
            + [f"val_{t}_srocc" for t in self.tasks]
            + ["val_srocc", "backbone_frozen"]
        )
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
            results = evaluate_tasks(
                self.model,
                self.val_dataset,
                self.tasks,
                self.loss_weights,
                self.val_steps,
                desc=f"validation, epoch {epoch + 1}",
            )
            logs.update({f"val_{k}": v for k, v in results.items()})
        if self.skips is not None:
            self.skips.after_epoch(epoch + 1, skipped)
        row = {c: logs.get(c, float("nan")) for c in self.history.columns}
        row.update(epoch=epoch + 1, backbone_frozen=int(self.frozen))
        self.history.append(
            [{k: (str(int(v)) if k in ("epoch", "backbone_frozen") else f"{float(v):.6g}") for k, v in row.items()}]
        )
        plot_history(self.out_dir / "history.csv", self.out_dir / "history.png")
        score = logs.get("val_srocc", -logs.get("loss", float("nan")))
        if np.isfinite(score) and (self.best is None or score > self.best):
            self.best, self.best_epoch = float(score), epoch + 1
            save_model_atomic(self.model, self.out_dir / "best.keras")
        write_checkpoint(
            self.model,
            self.checkpoint_dir,
            epoch + 1,
            backbone_frozen=self.frozen,
            best=self.best,
            best_epoch=self.best_epoch,
            position=self.position,
            train_skipped=self.skips.train_skipped if self.skips is not None else 0,
            keep=self.keep,
        )
        summary = ", ".join(f"{k}={logs[k]:.4g}" for k in ("loss", "val_loss", "val_srocc") if k in logs)
        log.info(
            "epoch %d done: %s (best val_srocc %s at epoch %s)",
            epoch + 1,
            summary,
            "n/a" if self.best is None else f"{self.best:.4f}",
            self.best_epoch,
        )
