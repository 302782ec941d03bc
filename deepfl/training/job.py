"""`run_multitask(config, out_dir)`: a whole stage-1 run, the job behind `deepfl-train-multitask` and the demo.

It checks the settings against an earlier run in `out_dir` (run_config.json), reads the weak labels, splits
them by content (split.csv), fits the target normalisation (normalizer.json), builds the input pipelines and the
model, trains (resuming from the last checkpoint) and writes the final model. Cheap checks run before
TensorFlow is imported, so a finished run or a bad setting answers at once. On a multi-worker strategy every
worker runs this job with the same config and `out_dir` (on storage they share): the chief writes the outputs,
the others resume from the chief's checkpoint and write to temporary folders of their own.

Outputs in `out_dir`: model.keras (final), best.keras (best mean validation SROCC), normalizer.json, split.csv,
run_config.json, history.csv and history.png (its curves), tensorboard/, checkpoints/, skipped_images.csv (only
when corrupt images were skipped).

Settings (run_config.json, paths resolved) are stored when training starts and matter only once a checkpoint or
a final model exists: a run that failed before training does not hold its `out_dir`. A finished or killed run
may be continued to a larger `epochs`; any other change is refused unless `overwrite`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfl import paper
from deepfl.architectures import PAPER_ARCHITECTURE, PAPER_MIN_SIDE, check_architecture
from deepfl.errors import NoUsableInput
from deepfl.fileio import (
    atomic_output,
    atomic_write_bytes,
    remove_outputs,
    remove_stale_worker_folders,
    worker_folder_prefix,
)
from deepfl.jobs import RECORD_FOLDER, SettingsChanged, folder_lock, same_setting
from deepfl.training.checkpoints import STATE_FILE
from deepfl.training.strategy import STRATEGIES, is_chief, warn_if_cluster_unused
from deepfl.wording import by_caller, setting, shown_value

log = logging.getLogger("deepfl")

# Settings that must not change between a run and its resumption, in the order of run_config.json.
RUN_KEYS = (
    "weak_labels",
    "image_root",
    "kadis_root",
    "tasks",
    "loss_weights",
    "normalization",
    "val_fraction",
    "val_images",
    "image_size",
    "crop_size",
    "flip",
    "batch_size",
    "epochs",
    "steps_per_epoch",
    "warmup_epochs",
    "learning_rate",
    "lr_schedule",
    "weights",
    "arch",
    "pixel_scaling",
    "mixed_precision",
    "seed",
)
LR_SCHEDULES = ("constant", "cosine")
# Settings added after runs were written, with the value those runs were trained with.
_ADDED_KEYS = {"lr_schedule": "constant"}
RUN_CONFIG_FILE = "run_config.json"
SPLIT_FILE = "split.csv"
_PATH_KEYS = ("weak_labels", "image_root", "kadis_root")
# What a run writes to out_dir (removed by `overwrite`).
_OUTPUTS = (
    "model.keras",
    "best.keras",
    "normalizer.json",
    SPLIT_FILE,
    RUN_CONFIG_FILE,
    "history.csv",
    "history.png",
    "skipped_images.csv",
    "tensorboard",
    "checkpoints",
)
# A requested resize that changes an image's width/height ratio by more than this gets a warning.
ASPECT_TOLERANCE = 0.01
# Training at native size on images whose median holds this many pixels or more (10 KADIS images) gets a warning.
KADIS_PIXELS = paper.STAGE1_IMAGE_SIZE[0] * paper.STAGE1_IMAGE_SIZE[1]
LARGE_NATIVE_PIXELS = 10 * KADIS_PIXELS
# Images whose headers are read to check a requested resize's aspect ratios (the first of the table).
ASPECT_PROBE_IMAGES = 256
_COUNTS = {
    "batch_size": 1,
    "epochs": 1,
    "steps_per_epoch": 0,
    "val_steps": 0,
    "warmup_epochs": 0,
    "val_images": 0,
    "virtual_cpu_devices": 0,
}


def check_lr_schedule(name: str) -> None:
    """Raises ValueError naming the choices when `name` is not one of `LR_SCHEDULES`."""
    if name not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule: must be one of {LR_SCHEDULES}, got {name!r}")


def learning_rate_schedule(name: str, learning_rate: float, steps: int):
    """The optimiser's learning rate for one training phase of `steps` steps: `learning_rate` throughout
    ("constant", the paper's), or ("cosine") decayed from it to 0 along a half cosine, so that the last epochs
    take small steps and the final model is not one noisy point of a trajectory at full rate (short runs)."""
    check_lr_schedule(name)
    if name == "constant":
        return learning_rate
    import keras

    return keras.optimizers.schedules.CosineDecay(learning_rate, max(1, steps), alpha=0.0)


@dataclass(frozen=True)
class MultitaskConfig:
    """Every setting of a stage-1 run; the defaults are the paper's (see `deepfl.paper`).

    Data: `weak_labels` (CSV) with `image_root` (its images), or `kadis_root` (the KADIS-700k release).
    `tasks` (empty: every metric column) with optional `loss_weights` {task: weight}; `normalization` of the
    targets ("standard" or "quantile"); validation split by content: `val_images` (> 0) or `val_fraction`.
    Input: `image_size`/`crop_size` (height, width; None = native size / no crop), `flip`. At native size (the
    default) nothing is resized: images of one shared size train at that size, mixed sizes are batched by shape
    (model input (None, None, 3)); a requested `image_size` that changes aspect ratios logs a warning. Training:
    `batch_size` (global, split across replicas), `epochs`, `steps_per_epoch` (0 = one pass), `val_steps`
    (0 = whole validation split), `warmup_epochs` (frozen backbone), `learning_rate` (Adam), `lr_schedule`
    ("constant", the paper's, or "cosine": decayed to 0 over each phase's steps, see `learning_rate_schedule`).
    Model: `weights`
    ("imagenet", "none" or a weights file), `arch`, `pixel_scaling`, `mixed_precision` ("none" or a Keras
    policy), `jit_compile` ("auto", True, False), `run_eagerly`. Distribution: `strategy` (one of
    `STRATEGIES`), `tpu`, `virtual_cpu_devices` (logical CPU devices, to try "mirrored" without GPUs).
    `seed` fixes the split, initialisation, dropout and data order; `tensorboard` logs; `on_error` ("skip" or
    "stop") for corrupt images; `progress` shows Keras' progress bar on a terminal (`deepfl.jobs.keras_verbose`),
    elsewhere (a log file, a pipe) one plain line of steps, rate and ETA every 15 s within each epoch.
    """

    weak_labels: str | None = None
    image_root: str | None = None
    kadis_root: str | None = None
    tasks: Sequence[str] = ()
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    normalization: str = "standard"
    val_fraction: float = paper.STAGE1_VAL_FRACTION
    val_images: int = 0
    image_size: tuple[int, int] | None = None
    crop_size: tuple[int, int] | None = None
    flip: bool = False
    batch_size: int = paper.STAGE1_BATCH_SIZE
    epochs: int = paper.STAGE1_EPOCHS
    steps_per_epoch: int = 0
    val_steps: int = 0
    warmup_epochs: int = 0
    learning_rate: float = paper.STAGE1_LEARNING_RATE
    lr_schedule: str = "constant"
    weights: str | None = "imagenet"  # None: random init, as "none" (the form stored and shown)
    arch: str = PAPER_ARCHITECTURE
    pixel_scaling: str = "unit"
    mixed_precision: str = "none"
    jit_compile: bool | str = "auto"
    run_eagerly: bool = False
    strategy: str = "default"
    tpu: str = ""
    virtual_cpu_devices: int = 0
    seed: int = 0
    tensorboard: bool = True
    on_error: str = "skip"
    progress: bool = True

    def __post_init__(self):
        if self.weights is None:  # what build_backbone and the error messages call random init
            object.__setattr__(self, "weights", "none")
        if bool(self.kadis_root) == bool(self.weak_labels):
            raise ValueError(
                f"weak_labels/kadis_root: give either {setting('kadis_root')} or {setting('weak_labels')} with "
                f"{setting('image_root')}"
            )
        if self.weak_labels and not self.image_root:
            raise ValueError(
                f"image_root: {setting('weak_labels')} needs {setting('image_root')} (the folder of the distorted "
                "images)"
            )
        for name, lowest in _COUNTS.items():
            if getattr(self, name) < lowest:
                raise ValueError(f"{name}: must be >= {lowest}, got {getattr(self, name)}")
        for name in ("image_size", "crop_size"):
            size = getattr(self, name)
            if size is not None and (len(size) != 2 or min(size) < 1):
                raise ValueError(f"{name}: expected two positive integers (height, width), got {size!r}")
        if self.warmup_epochs > self.epochs:  # (the loop checks it too, but only once the split is written)
            raise ValueError(f"warmup_epochs: must be in [0, epochs={self.epochs}], got {self.warmup_epochs}")
        if not self.learning_rate > 0:  # also catches NaN
            raise ValueError(f"learning_rate: must be > 0, got {self.learning_rate}")
        check_lr_schedule(self.lr_schedule)
        check_architecture(self.arch, self.weights)
        for name in ("image_size", "crop_size"):
            size = getattr(self, name)
            if self.arch == PAPER_ARCHITECTURE and size is not None and min(size) < PAPER_MIN_SIDE:
                raise ValueError(
                    f"{name}: {size[1]}x{size[0]} (width x height) is too small for InceptionResNetV2, which needs "
                    f"at least {PAPER_MIN_SIDE} pixels per side; use a larger {setting(name)}, or "
                    f"{setting('arch', 'small')}"
                )
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy: must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.jit_compile not in ("auto", True, False):
            raise ValueError(f"jit_compile: must be 'auto', True or False, got {self.jit_compile!r}")

    def run_record(self) -> dict[str, Any]:
        """The settings a resumed run must share (`RUN_KEYS`), as run_config.json holds them: paths resolved
        (absolute), sizes as lists of strings, loss weights as "task=weight" items (the flags' spelling)."""
        values = {k: getattr(self, k) for k in RUN_KEYS}
        values.update(
            weak_labels=_resolved(self.weak_labels),
            image_root=_resolved(self.image_root),
            kadis_root=_resolved(self.kadis_root),
            tasks=list(self.tasks),
            loss_weights=[f"{task}={_number(w)}" for task, w in self.loss_weights.items()],
            image_size=[str(v) for v in self.image_size or ()],
            crop_size=[str(v) for v in self.crop_size or ()],
        )
        return values


@dataclass
class MultitaskResult:
    """What `run_multitask` did: the trained model (None when `out_dir` held a finished run), epochs and steps, and
    whether this process wrote `out_dir` (False on a multi-worker run's other workers: only the chief writes)."""

    out_dir: Path
    model: Any
    epochs: int
    steps_per_epoch: int
    wrote_outputs: bool = True

    @property
    def already_trained(self) -> bool:
        return self.model is None


def _resolved(value) -> str | None:
    return None if value is None else str(Path(value).resolve())


def _number(value: float) -> str:
    """`value` as the shortest text that reads back as the same float ("0.5", "2")."""
    short = f"{float(value):g}"
    return short if float(short) == float(value) else repr(float(value))


def stored_settings(out_dir: Path) -> dict[str, Any] | None:
    """run_config.json of the run in `out_dir` with its paths resolved (older runs stored them as given,
    relative to the working folder), or None when there is none."""
    path = out_dir / RUN_CONFIG_FILE
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SettingsChanged(
            f"{path}: unreadable stored settings ({exc}); pass {setting('overwrite', True)} to start again"
        ) from None
    return {**stored, **{k: _resolved(stored.get(k)) for k in _PATH_KEYS}}


def check_run_config(out_dir: Path, record: dict[str, Any], trained_epochs: int | None) -> None:
    """Refuses to continue the run in `out_dir` with settings other than those it was trained with.

    `trained_epochs`: epochs of its last checkpoint or final model, None when it never trained (then any
    settings may replace the stored ones). More `epochs` than trained extend the run; fewer, or any other
    change, raise `SettingsChanged` naming each change and the ways on.
    """
    stored = stored_settings(out_dir)
    if stored is None or trained_epochs is None:
        return
    stored = {**_ADDED_KEYS, **stored}
    written_in = stored.pop(RECORD_FOLDER, None)  # a run moved or copied with its data: paths followed there
    changes = [
        f"{k} {shown_value(stored.get(k))} -> {shown_value(record[k])}"
        for k in RUN_KEYS
        if k != "epochs" and not same_setting(stored.get(k), record[k], written_in, out_dir)
    ]
    if record["epochs"] < trained_epochs:
        changes.append(f"epochs {trained_epochs} done -> {record['epochs']}")
    elif record["lr_schedule"] != "constant" and record["epochs"] != stored.get("epochs"):
        changes.append(
            f"epochs {stored.get('epochs')} -> {record['epochs']} (a {record['lr_schedule']} schedule spans the "
            "run's epochs: its run can be neither extended nor shortened)"
        )
    if changes:
        raise SettingsChanged(
            f"{out_dir} holds a run with other settings ({'; '.join(changes)}): rerun with the earlier "
            f"{by_caller('flags', 'arguments')} to resume (a larger {setting('epochs')} extends a constant-rate run), "
            f"use a new {setting('out_dir')}, or pass {setting('overwrite', True)} to discard it"
        )


def _trained_to_its_end(out_dir: Path) -> bool:
    """Whether history.csv holds every epoch the run's record asks for: a finished run (whose model.keras may have
    been deleted since), not one interrupted before its first checkpoint."""
    stored = stored_settings(out_dir)
    try:
        with open(out_dir / "history.csv", encoding="utf-8") as handle:
            epochs = sum(1 for line in handle if line.strip()) - 1
    except OSError:
        return False
    return stored is not None and epochs >= int(stored.get("epochs", 0) or 0) > 0


def _checkpoint_epochs(out_dir: Path) -> int | None:
    """Epochs recorded by the last checkpoint of the run in `out_dir` (None when there is none)."""
    state_file = out_dir / "checkpoints" / STATE_FILE
    return json.loads(state_file.read_text())["epoch"] if state_file.exists() else None


def _trained_epochs(out_dir: Path) -> int | None:
    """Epochs the run in `out_dir` has trained: its last checkpoint's, else (checkpoints removed) those of its
    settings when a final model exists; None when it never finished an epoch."""
    done = _checkpoint_epochs(out_dir)
    if done is not None:
        return done
    if (out_dir / "model.keras").exists():
        stored = stored_settings(out_dir)
        return int(stored["epochs"]) if stored else 0
    return None


def _read_table(config: MultitaskConfig):
    from deepfl import data  # tables and normalisation only: no TensorFlow yet

    if config.kadis_root:
        return data.read_kadis700k(config.kadis_root, on_error=config.on_error)
    return data.read_weak_labels(config.weak_labels, config.image_root, on_error=config.on_error)


def _choose_tasks(table, config: MultitaskConfig) -> list[str]:
    available = list(table.attrs.get("metrics", [c for c in table.columns if c not in ("image", "ref", "content")]))
    tasks = list(config.tasks) or available
    missing = [t for t in tasks if t not in available]
    if missing:
        raise ValueError(f"tasks: {missing} not in the weak labels (columns: {available})")
    unknown = [t for t in config.loss_weights if t not in tasks]
    if unknown:
        raise ValueError(f"loss_weights: {unknown} not among the tasks {tasks}")
    return tasks


def write_split(table, val, path: Path) -> None:
    """split.csv: every image of `table` with its content and part ("train" or "val")."""
    split = table[["image", "content"]].assign(split="train")
    split.loc[val.index, "split"] = "val"
    with atomic_output(path) as tmp:
        split.to_csv(tmp, index=False)


def run_multitask(
    config: MultitaskConfig, out_dir: str | os.PathLike, overwrite: bool = False, keep_checkpoints: bool = False
) -> MultitaskResult:
    """Runs (or resumes, extends, or finds finished) the stage-1 training described by `config` into `out_dir`.

    A killed run restarted with the same config continues after its last finished epoch and ends with the same
    weights as an unbroken run: same batches, dropout masks and optimizer state (with images of mixed sizes
    the data order after a restart is approximate, see `_train`). The resume state (`checkpoints/`, with the
    optimizer's, about three times the model's size) is deleted once the run has trained to its end, unless
    `keep_checkpoints`: a kept run restarted with a larger `epochs` continues from its last checkpoint to the new
    count. Raises `SettingsChanged` when `out_dir` holds a trained run with other settings (unless `overwrite`,
    which first removes that run's outputs) or an extension without checkpoints, DeepflError naming the file
    when a corrupt image stops the job (`on_error="stop"`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    warn_if_cluster_unused(config.strategy)
    chief = is_chief(config.strategy)
    with folder_lock(out_dir) if chief else contextlib.nullcontext():  # the chief writes: one at a time
        return _run_in_folder(config, out_dir, overwrite, keep_checkpoints, chief)


def _run_in_folder(
    config: MultitaskConfig, out_dir: Path, overwrite: bool, keep_checkpoints: bool, chief: bool
) -> MultitaskResult:
    """`run_multitask` once `out_dir` is held (by the chief)."""
    record = config.run_record()
    # With `overwrite`, no worker judges the old run (the others refused its settings, and left the chief waiting
    # for them): the chief removes it in `_train`, once the workers have agreed on their settings.
    if not overwrite:
        finished = _finished_run(config, out_dir, record)
        if finished is not None:
            return finished

    table = _read_table(config)
    tasks = _choose_tasks(table, config)
    if config.virtual_cpu_devices:
        from deepfl.training.strategy import configure_virtual_cpus

        configure_virtual_cpus(config.virtual_cpu_devices)
    with _own_folder(out_dir, chief) as write_dir:
        result = _train(config, table, tasks, out_dir, write_dir, record, remove_old=overwrite and chief)
    if chief and not keep_checkpoints:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return result


def _finished_run(config: MultitaskConfig, out_dir: Path, record: dict[str, Any]) -> MultitaskResult | None:
    """The run `out_dir` holds when it has trained all of `config.epochs` (nothing to do), else None; raises
    `SettingsChanged` when that run cannot be resumed or extended with `record`'s settings."""
    trained_files = [out_dir / "model.keras", out_dir / "checkpoints" / STATE_FILE]
    if any(path.exists() for path in trained_files) and not (out_dir / RUN_CONFIG_FILE).exists():
        raise SettingsChanged(
            f"{out_dir}: holds a trained run (model.keras or checkpoints/) but not its settings record "
            f"{RUN_CONFIG_FILE} (deleted?), so the run can be neither checked, resumed nor extended: restore that "
            f"file, use a new {setting('out_dir')}, or pass {setting('overwrite', True)} to train again"
        )
    trained = _trained_epochs(out_dir)
    if trained is None and _trained_to_its_end(out_dir):  # (not after a Ctrl-C before the first checkpoint)
        log.warning(
            "%s: model.keras is missing and no checkpoint is left: training again from epoch 1 (best.keras and "
            "history.csv are written anew)",
            out_dir,
        )
    check_run_config(out_dir, record, trained)
    if trained is not None and (out_dir / "model.keras").exists():
        if trained >= config.epochs:
            return MultitaskResult(out_dir, None, trained, config.steps_per_epoch)
        if _checkpoint_epochs(out_dir) is None:
            raise SettingsChanged(
                f"{out_dir}: cannot extend the run to {setting('epochs', config.epochs)}: its checkpoints/ are gone "
                f"(a finished run keeps them only with {setting('keep_checkpoints', True)}); use "
                f"{setting('epochs', trained)}, a new {setting('out_dir')}, or {setting('overwrite', True)}"
            )
    return None


@contextlib.contextmanager
def _own_folder(out_dir: Path, chief: bool) -> Iterator[Path]:
    """Where this process writes: `out_dir` for the chief; for another worker of a multi-worker run, a temporary
    folder removed at the end (its writes keep the workers in step, and only the chief's are kept)."""
    if chief:
        yield out_dir
        return
    removed = remove_stale_worker_folders(tempfile.gettempdir())
    if removed:
        log.info("removed %d worker folder(s) that killed runs left in %s", removed, tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix=worker_folder_prefix()) as folder:
        yield Path(folder)


def _check_images_usable(config: MultitaskConfig, train: list[str], val: list[str]) -> None:
    """Refuses a training or validation split none of whose images the pipeline can use (unreadable files, or all
    smaller than --crop_size): the repeated training stream would skip every image and wait forever for a batch,
    at full CPU and deaf to Ctrl-C; an unusable validation split fails after the first epoch. Costs one header
    read and one decode per split where its first image is fine (`data.first_usable_image`)."""
    from deepfl.data import pipeline as data

    crop_size = config.crop_size if config.image_size is None else None  # a crop of a resize always fits
    if crop_size is not None:  # the usual mistake, named by the size to choose from
        crop_h, crop_w = crop_size
        probed = data.header_sizes((train + val)[:ASPECT_PROBE_IMAGES])
        if probed and not any(h >= crop_h and w >= crop_w for h, w in probed):
            big_h, big_w = max(probed, key=lambda hw: hw[0] * hw[1])
            raise ValueError(
                f"crop_size: {crop_w}x{crop_h} (width x height) is larger than each of the first "
                f"{sum(probed.values())} images (the largest is {big_w}x{big_h}); use a smaller {setting('crop_size')}"
            )
    for split, paths in (("training", train), ("validation", val)):
        if not paths or data.first_usable_image(paths, crop_size) is not None:
            continue
        path, reason = next(data.iter_unreadable_images(paths[:1], crop_size), (paths[0], "unreadable"))
        others = f" (and the other {len(paths) - 1} are unusable too)" if len(paths) > 1 else ""
        raise NoUsableInput(
            f"no {split} image can be used: {path}: {reason}{others}; check {setting('image_root')} and the files"
            + (f", or use a smaller {setting('crop_size')}" if crop_size is not None else "")
        )


def _input_plan(
    config: MultitaskConfig, paths: list[str]
) -> tuple[tuple[int, int] | None, dict[str, tuple[int, int] | None] | None]:
    """(model input size or None for any, each path's native (height, width) when the sizes differ, else None)
    for `paths`; logs one warning when a requested resize changes aspect ratios (checked on the first
    ASPECT_PROBE_IMAGES images)."""
    from deepfl.data import pipeline as data
    from deepfl.images import header_sizes_of

    if config.image_size is not None:
        sizes = data.header_sizes(paths[:ASPECT_PROBE_IMAGES])
        distorted = {s: n for s, n in sizes.items() if data.aspect_change(s, config.image_size) > ASPECT_TOLERANCE}
        if distorted:
            worst = max(distorted, key=lambda s: data.aspect_change(s, config.image_size))
            log.warning(
                "image_size %d,%d (height,width) changes the aspect ratio of %d of the first %d images (e.g. "
                "%dx%d, width x height, by %.0f%%); %s to train at native size",
                config.image_size[0],
                config.image_size[1],
                sum(distorted.values()),
                sum(sizes.values()),
                worst[1],
                worst[0],
                100 * data.aspect_change(worst, config.image_size),
                by_caller(f"leave {setting('image_size')} empty", f"pass {setting('image_size', None)}"),
            )
        return config.crop_size or config.image_size, None
    if config.crop_size is not None:
        return config.crop_size, None  # images smaller than the crop are skipped and named by the input pipeline
    each = header_sizes_of(paths)
    sizes = Counter(size for size in each if size is not None)
    _warn_about_large_native_sizes(sizes)
    if len(sizes) == 1:
        size = next(iter(sizes))
        log.info("native size %dx%d, width x height (every image)", size[1], size[0])
        return size, None
    shown = 8
    listed = ", ".join(f"{w}x{h}: {n}" for (h, w), n in sizes.most_common(shown))
    listed += f", and {len(sizes) - shown} more" if len(sizes) > shown else ""
    log.info(
        "native sizes: %d different sizes, each training batch of one size (width x height: images in the "
        "training and validation splits; %s)",
        len(sizes),
        listed,
    )
    return None, dict(zip(map(str, paths), each))


def _warn_about_large_native_sizes(sizes: Counter) -> None:
    """One warning when training at native size on images whose median holds LARGE_NATIVE_PIXELS or more: every
    step then costs about that many times a KADIS step (512x384) in time and memory, which a user training on
    their own 12-24 megapixel photos was not told (99-394 s and 12.8 GB per step of 2 images)."""
    if not sizes:
        return
    pixels = np.repeat([height * width for height, width in sizes], list(sizes.values()))
    median = int(np.quantile(pixels, 0.5, method="lower"))
    if median >= LARGE_NATIVE_PIXELS:
        log.warning(
            "training at native size on large images (median %.1f megapixels, %.0f times a 512x384 KADIS image): "
            "each step costs about that much more time and memory; %s trains on random KADIS-sized crops, %s on "
            "resized images",
            median / 1e6,
            median / KADIS_PIXELS,
            setting("crop_size", (384, 512)),
            setting("image_size", (384, 512)),
        )


def _batches_in_a_pass(split, native_sizes: dict | None, batch_size: int) -> int:
    """Batches in one pass over `split`: ceil(images / batch) when every batch has one size, else the per-size
    plan's count (`size_batches.batches_per_pass`), the same for the training stream and the validation pass."""
    from deepfl.data.size_batches import batches_per_pass
    from deepfl.training.loop import steps_for

    if native_sizes is None:
        return steps_for(len(split), batch_size)
    return batches_per_pass([native_sizes[str(path)] for path in split["image"]], batch_size)


def _validation_batches(val, native_sizes: dict | None, batch_size: int) -> int | None:
    """The validation pass's batches (its progress bar's total); None for an empty split or when some image's size
    is unknown (an unreadable header: the pass then simply runs to its end)."""
    if not len(val) or (native_sizes is not None and any(native_sizes[str(p)] is None for p in val["image"])):
        return None
    return _batches_in_a_pass(val, native_sizes, batch_size)


# Below this many contents (references) the validation SROCC swings from epoch to epoch with the few photos it
# rests on (a walk's 10 references gave 1: per-task SROCC between -1 and 1), and best.keras is chosen on it.
FEW_VALIDATION_CONTENTS = 3


def _warn_if_few_validation_contents(val, contents: int) -> None:
    """One warning when the validation split holds fewer than `FEW_VALIDATION_CONTENTS` contents of `contents`."""
    held = int(val["content"].nunique()) if len(val) else 0
    if 0 < held < FEW_VALIDATION_CONTENTS:
        from deepfl.wording import setting

        log.warning(
            "validation holds %d of the %d references (%d images): its SROCC, and the best.keras chosen on it, rest "
            "on so few photos that they swing from epoch to epoch; raise %s or %s for more",
            held,
            contents,
            len(val),
            setting("val_fraction"),
            setting("val_images"),
        )


def _train(
    config: MultitaskConfig,
    table,
    tasks: list[str],
    out_dir: Path,
    write_dir: Path,
    record: dict[str, Any],
    remove_old: bool = False,
) -> MultitaskResult:
    import keras
    import tensorflow as tf

    from deepfl import data
    from deepfl.errors import DeepflError
    from deepfl.jobs import keras_verbose
    from deepfl.models import build_multitask, compile_multitask
    from deepfl.training.callbacks import SkipReport
    from deepfl.training.checkpoints import read_state
    from deepfl.training.data_order import ROW_COLUMN, DataOrder
    from deepfl.training.loop import steps_for, train_multitask
    from deepfl.training.strategy import (
        check_batch_splits,
        check_same_checkpoint,
        check_workers_agree,
        get_strategy,
        wait_for_workers,
    )

    keras.utils.set_random_seed(config.seed)
    # Before any TensorFlow op runs (the image check below decodes one image eagerly): a multi-worker strategy
    # configures the collective ops, which TensorFlow refuses once its runtime has started.
    strategy = get_strategy(config.strategy, config.tpu)
    check_workers_agree(strategy, record)
    check_batch_splits(strategy, config.batch_size)
    if remove_old:  # (`overwrite`, on the chief) only now: a start refused above keeps the old run
        remove_outputs(out_dir, _OUTPUTS)
    wait_for_workers(strategy)  # the others read the checkpoints after the chief's removal
    state = read_state(out_dir / "checkpoints")
    check_same_checkpoint(strategy, state, out_dir)

    train, val = data.train_val_split(table, config.val_fraction, config.val_images, seed=config.seed)
    _check_images_usable(config, list(train["image"]), list(val["image"]))
    write_split(table, val, write_dir / SPLIT_FILE)
    normalizer = data.TargetNormalizer(config.normalization).fit(train, tasks)
    normalizer.save(write_dir / "normalizer.json")
    log.info("%d training and %d validation images, %d tasks: %s", len(train), len(val), len(tasks), tasks)
    _warn_if_few_validation_contents(val, int(table["content"].nunique()))

    log.info("strategy %s with %d replica(s)", config.strategy, strategy.num_replicas_in_sync)
    # Exact resumption: the training stream is one seeded shuffle + repeat of the training split; each fit call
    # (each phase, each resumed process) starts it after the elements consumed so far (make_dataset(skip=...)).
    # The row index travels as an extra target so that DataOrder counts consumed and skipped images exactly;
    # py_function (which it uses) cannot run in a serialised multi-worker/TPU input pipeline: there, the position
    # is counted as batch_size x steps per epoch (exact unless images are skipped).
    input_size, native_sizes = _input_plan(config, list(table["image"]))
    one_size = native_sizes is None
    # Images of several native sizes are batched per size, pass by pass (deepfl.data.size_batches): every epoch
    # trains each image once, in batches_per_pass steps. That stream counts batches, not images, so DataOrder
    # does not follow it; the loop counts its position as batch_size x steps, which is `skip // batch_size`
    # batches: a restart continues exactly at the next batch (a corrupt image only shrinks its batch).
    train_sizes = None if one_size else [native_sizes[str(path)] for path in train["image"]]
    track = config.strategy in ("default", "mirrored") and one_size
    train = train.assign(**{ROW_COLUMN: np.arange(len(train), dtype=np.float32)})
    # uint8 batches (a quarter of the bytes, no float conversion in the pipeline) when no resize interpolates:
    # the model casts to float32 in its first layer, so its outputs are the same.
    dtype = "float32" if config.image_size is not None else "uint8"
    val_stats = data.PipelineStats()
    common = dict(
        batch_size=config.batch_size,
        image_size=config.image_size,
        crop_size=config.crop_size,
        normalizer=normalizer,
        on_error=config.on_error,
        dtype=dtype,
        same_size=one_size,
    )
    train_targets = tasks + [ROW_COLUMN] if track else tasks

    def train_ds(skip: int):
        return data.make_dataset(
            train,
            train_targets,
            training=True,
            flip=config.flip,
            seed=config.seed,
            repeat=True,
            skip=skip if one_size else skip // config.batch_size,
            image_sizes=train_sizes,
            replicas=strategy.num_replicas_in_sync,
            **common,
        )

    val_ds = data.make_dataset(val, tasks, training=False, seed=config.seed, stats=val_stats, **common)
    steps = config.steps_per_epoch or _batches_in_a_pass(train, native_sizes, config.batch_size)
    input_shape = (*input_size, 3) if input_size else None
    mixed = None if config.mixed_precision == "none" else config.mixed_precision
    weights = None if config.weights.lower() in ("none", "") else config.weights

    def build_and_compile(frozen: bool):
        keras.utils.set_random_seed(config.seed)  # again: clear_session (reset_names) forgets Keras' global seed
        phase_epochs = config.warmup_epochs if frozen else config.epochs - config.warmup_epochs
        model = build_multitask(
            tasks=tasks,
            weights=weights,
            input_shape=input_shape,
            pixel_scaling=config.pixel_scaling,
            mixed_precision=mixed,
            freeze_backbone=frozen,
            arch=config.arch,
            seed=config.seed,
        )
        return compile_multitask(
            model,
            learning_rate_schedule(config.lr_schedule, config.learning_rate, phase_epochs * steps),
            dict(config.loss_weights),
            jit_compile=config.jit_compile,
            run_eagerly=config.run_eagerly,
        )

    tracker = DataOrder(len(train), config.seed) if track else None
    val_exact = not config.val_steps or config.val_steps >= steps_for(len(val), config.batch_size)
    skips = SkipReport(
        write_dir,
        list(train["image"]) + list(val["image"]),
        list(train["image"]),
        val_stats=val_stats,
        val_exact=val_exact,
        train_skipped=state.get("train_skipped", 0) if state else 0,
        crop_size=config.crop_size,
    )
    chief = is_chief(config.strategy)
    if chief:
        stored = {**record, RECORD_FOLDER: str(out_dir.resolve())}
        atomic_write_bytes(out_dir / RUN_CONFIG_FILE, json.dumps(stored, indent=1).encode())
    try:
        model = train_multitask(
            build_and_compile,
            train_ds,
            val_ds,
            write_dir,
            epochs=config.epochs,
            steps_per_epoch=steps,
            tasks=tasks,
            loss_weights=dict(config.loss_weights),
            warmup_epochs=config.warmup_epochs,
            val_steps=config.val_steps or _validation_batches(val, native_sizes, config.batch_size),
            strategy=strategy,
            tensorboard=config.tensorboard,
            verbose=keras_verbose() if config.progress else 0,
            step_lines=config.progress and keras_verbose() == 0,  # a log file or pipe: plain lines instead
            batch_size=config.batch_size,
            tracker=tracker,
            skips=skips,
            reset_names=True,
            resume_dir=out_dir,
        )
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):  # (Unknown: Pillow's decoder in tf.data)
        if config.on_error != "stop":
            raise
        # A corrupt image stream stops tf.data with the decoder's message, which does not name the file: find it.
        culprit = next(data.iter_unreadable_images(list(train["image"]) + list(val["image"]), config.crop_size), None)
        if culprit is None:
            raise
        raise DeepflError(
            f"{culprit[0]}: image cannot be used ({culprit[1]}); training stopped ({setting('on_error', 'stop')})"
        ) from None
    return MultitaskResult(out_dir, model, config.epochs, steps, wrote_outputs=chief)
