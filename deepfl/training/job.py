"""`run_multitask(config, out_dir)`: a whole stage-1 run, the job behind `deepfl-train-multitask` and the demo.

It checks the settings against an earlier run in `out_dir` (run_config.json), reads the weak labels, splits
them by content (split.csv), fits the target normalisation (normalizer.json), builds the input pipelines and the
model, trains (resuming from the last checkpoint) and writes the final model. Cheap checks run before
TensorFlow is imported, so a finished run or a bad setting answers at once. On a multi-worker strategy every
worker runs this job with the same config and `out_dir` (on storage they share): the chief writes the outputs,
the others resume from the chief's checkpoint and write to temporary folders of their own.

Outputs in `out_dir`: model.keras (final), best.keras (best mean validation SROCC), normalizer.json, split.csv,
run_config.json, history.csv, tensorboard/, checkpoints/, skipped_images.csv (only when corrupt images were
skipped).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfl import paper
from deepfl.fileio import atomic_output, atomic_write_bytes
from deepfl.training.checkpoints import STATE_FILE
from deepfl.training.strategy import STRATEGIES, is_chief

log = logging.getLogger("deepfl")

# Settings that must not change between a run and its resumption, in the order of run_config.json.
RUN_KEYS = ("weak_labels", "image_root", "kadis_root", "tasks", "loss_weights", "normalization", "val_fraction",
            "val_images", "image_size", "crop_size", "flip", "batch_size", "epochs", "steps_per_epoch",
            "warmup_epochs", "learning_rate", "weights", "arch", "pixel_scaling", "mixed_precision", "seed")
RUN_CONFIG_FILE = "run_config.json"
SPLIT_FILE = "split.csv"
_COUNTS = {"batch_size": 1, "epochs": 1, "steps_per_epoch": 0, "val_steps": 0, "warmup_epochs": 0,
           "val_images": 0, "virtual_cpu_devices": 0}


@dataclass(frozen=True)
class MultitaskConfig:
    """Every setting of a stage-1 run; the defaults are the paper's (see `deepfl.paper`).

    Data: `weak_labels` (CSV) with `image_root` (its images), or `kadis_root` (the KADIS-700k release).
    `tasks` (empty: every metric column) with optional `loss_weights` {task: weight}; `normalization` of the
    targets ("standard" or "quantile"); validation split by content: `val_images` (> 0) or `val_fraction`.
    Input: `image_size`/`crop_size` (height, width; None = native size / no crop), `flip`. Training:
    `batch_size` (global, split across replicas), `epochs`, `steps_per_epoch` (0 = one pass), `val_steps`
    (0 = whole validation split), `warmup_epochs` (frozen backbone), `learning_rate` (Adam). Model: `weights`
    ("imagenet", "none" or a weights file), `arch`, `pixel_scaling`, `mixed_precision` ("none" or a Keras
    policy), `jit_compile` ("auto", True, False), `run_eagerly`. Distribution: `strategy` (one of
    `STRATEGIES`), `tpu`, `virtual_cpu_devices` (logical CPU devices, to try "mirrored" without GPUs).
    `seed` fixes the split, initialisation, dropout and data order; `tensorboard` logs; `on_error` ("skip" or
    "stop") for corrupt images; `progress` shows Keras' progress bar (also off when DEEPFL_NO_PROGRESS is set).
    """

    weak_labels: str | None = None
    image_root: str | None = None
    kadis_root: str | None = None
    tasks: Sequence[str] = ()
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    normalization: str = "standard"
    val_fraction: float = paper.STAGE1_VAL_FRACTION
    val_images: int = 0
    image_size: tuple[int, int] | None = paper.STAGE1_IMAGE_SIZE
    crop_size: tuple[int, int] | None = None
    flip: bool = False
    batch_size: int = paper.STAGE1_BATCH_SIZE
    epochs: int = paper.STAGE1_EPOCHS
    steps_per_epoch: int = 0
    val_steps: int = 0
    warmup_epochs: int = 0
    learning_rate: float = paper.STAGE1_LEARNING_RATE
    weights: str = "imagenet"
    arch: str = "inception_resnet_v2"
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
        if bool(self.kadis_root) == bool(self.weak_labels):
            raise ValueError("weak_labels/kadis_root: give either --kadis_root or --weak_labels with --image_root")
        if self.weak_labels and not self.image_root:
            raise ValueError("image_root: --weak_labels needs --image_root (the folder of the distorted images)")
        for name, lowest in _COUNTS.items():
            if getattr(self, name) < lowest:
                raise ValueError(f"{name}: must be >= {lowest}, got {getattr(self, name)}")
        for name in ("image_size", "crop_size"):
            size = getattr(self, name)
            if size is not None and (len(size) != 2 or min(size) < 1):
                raise ValueError(f"{name}: expected two positive integers (height, width), got {size!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy: must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.jit_compile not in ("auto", True, False):
            raise ValueError(f"jit_compile: must be 'auto', True or False, got {self.jit_compile!r}")

    def run_record(self) -> dict[str, Any]:
        """The settings a resumed run must share (`RUN_KEYS`), as run_config.json holds them: paths as
        given, sizes as lists of strings, loss weights as "task=weight" items (the flags' spelling)."""
        values = {k: getattr(self, k) for k in RUN_KEYS}
        values.update(weak_labels=_text(self.weak_labels), image_root=_text(self.image_root),
                      kadis_root=_text(self.kadis_root), tasks=list(self.tasks),
                      loss_weights=[f"{task}={_number(w)}" for task, w in self.loss_weights.items()],
                      image_size=[str(v) for v in self.image_size or ()],
                      crop_size=[str(v) for v in self.crop_size or ()])
        return values


@dataclass
class MultitaskResult:
    """What `run_multitask` did: the trained model (None when `out_dir` held a finished run), epochs and steps."""

    out_dir: Path
    model: Any
    epochs: int
    steps_per_epoch: int

    @property
    def already_trained(self) -> bool:
        return self.model is None


def _text(value) -> str | None:
    return None if value is None else str(value)


def _number(value: float) -> str:
    """`value` as the shortest text that reads back as the same float ("0.5", "2")."""
    short = f"{float(value):g}"
    return short if float(short) == float(value) else repr(float(value))


def check_run_config(out_dir: Path, record: dict[str, Any], write: bool) -> None:
    """Checks that a resumed run uses the settings in run_config.json; writes them (`write`) if absent."""
    path = out_dir / RUN_CONFIG_FILE
    if path.exists():
        old = json.loads(path.read_text())
        changed = {k: (old.get(k), record[k]) for k in RUN_KEYS if old.get(k) != record[k]}
        if changed:
            raise ValueError(f"out_dir: {out_dir} holds a run with other settings {changed}; use another "
                             f"--out_dir (or delete it) to start afresh")
    elif write:
        atomic_write_bytes(path, json.dumps(record, indent=1).encode())


def _finished_epochs(out_dir: Path) -> int:
    """Epochs recorded by the last checkpoint of the run in `out_dir` (0 when there is none)."""
    state_file = out_dir / "checkpoints" / STATE_FILE
    return json.loads(state_file.read_text())["epoch"] if state_file.exists() else 0


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


def run_multitask(config: MultitaskConfig, out_dir: str | os.PathLike) -> MultitaskResult:
    """Runs (or resumes, or finds finished) the stage-1 training described by `config` into `out_dir`.

    A killed run restarted with the same config continues after its last finished epoch and ends with the same
    weights as an unbroken run: same batches, dropout masks and optimizer state. Raises ValueError when
    `out_dir` holds a run with other settings, DeepflError naming the file when a corrupt image stops the job
    (`on_error="stop"`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = config.run_record()
    check_run_config(out_dir, record, write=False)
    done = _finished_epochs(out_dir)
    if done >= config.epochs and (out_dir / "model.keras").exists():
        return MultitaskResult(out_dir, None, done, config.steps_per_epoch)

    table = _read_table(config)
    tasks = _choose_tasks(table, config)
    chief = is_chief(config.strategy)
    if chief:
        check_run_config(out_dir, record, write=True)
    if config.virtual_cpu_devices:
        from deepfl.training.strategy import configure_virtual_cpus

        configure_virtual_cpus(config.virtual_cpu_devices)
    with _own_folder(out_dir, chief) as write_dir:
        return _train(config, table, tasks, out_dir, write_dir)


@contextlib.contextmanager
def _own_folder(out_dir: Path, chief: bool) -> Iterator[Path]:
    """Where this process writes: `out_dir` for the chief; for another worker of a multi-worker run, a temporary
    folder removed at the end (its writes keep the workers in step, and only the chief's are kept)."""
    if chief:
        yield out_dir
        return
    with tempfile.TemporaryDirectory(prefix="deepfl-worker-") as folder:
        yield Path(folder)


def _train(config: MultitaskConfig, table, tasks: list[str], out_dir: Path, write_dir: Path) -> MultitaskResult:
    import keras
    import tensorflow as tf

    from deepfl import data
    from deepfl.errors import DeepflError
    from deepfl.models import build_multitask, compile_multitask
    from deepfl.training.callbacks import SkipReport
    from deepfl.training.checkpoints import read_state
    from deepfl.training.data_order import ROW_COLUMN, DataOrder
    from deepfl.training.loop import steps_for, train_multitask
    from deepfl.training.strategy import get_strategy

    keras.utils.set_random_seed(config.seed)
    state = read_state(out_dir / "checkpoints")

    train, val = data.train_val_split(table, config.val_fraction, config.val_images, seed=config.seed)
    write_split(table, val, write_dir / SPLIT_FILE)
    normalizer = data.TargetNormalizer(config.normalization).fit(train, tasks)
    normalizer.save(write_dir / "normalizer.json")
    log.info("%d training and %d validation images, %d tasks: %s", len(train), len(val), len(tasks), tasks)

    strategy = get_strategy(config.strategy, config.tpu)
    log.info("strategy %s with %d replica(s)", config.strategy, strategy.num_replicas_in_sync)
    # Exact resumption: the training stream is one seeded shuffle + repeat of the training split; each fit call
    # (each phase, each resumed process) starts it after the elements consumed so far (make_dataset(skip=...)).
    # The row index travels as an extra target so that DataOrder counts consumed and skipped images exactly;
    # py_function (which it uses) cannot run in a serialised multi-worker/TPU input pipeline: there, the position
    # is counted as batch_size x steps per epoch (exact unless images are skipped).
    track = config.strategy in ("default", "mirrored")
    train = train.assign(**{ROW_COLUMN: np.arange(len(train), dtype=np.float32)})
    # uint8 batches (a quarter of the bytes, no float conversion in the pipeline) when no resize interpolates:
    # the model casts to float32 in its first layer, so its outputs are the same.
    dtype = "float32" if config.image_size is not None else "uint8"
    val_stats = data.PipelineStats()
    common = dict(batch_size=config.batch_size, image_size=config.image_size, crop_size=config.crop_size,
                  normalizer=normalizer, on_error=config.on_error, dtype=dtype)
    train_targets = tasks + [ROW_COLUMN] if track else tasks

    def train_ds(skip: int):
        return data.make_dataset(train, train_targets, training=True, flip=config.flip, seed=config.seed,
                                 repeat=True, skip=skip, **common)

    val_ds = data.make_dataset(val, tasks, training=False, seed=config.seed, stats=val_stats, **common)
    steps = config.steps_per_epoch or steps_for(len(train), config.batch_size)
    input_size = config.crop_size or config.image_size
    input_shape = (*input_size, 3) if input_size else None
    mixed = None if config.mixed_precision == "none" else config.mixed_precision
    weights = None if config.weights.lower() in ("none", "") else config.weights

    def build_and_compile(frozen: bool):
        keras.utils.set_random_seed(config.seed)  # again: clear_session (reset_names) forgets Keras' global seed
        model = build_multitask(tasks=tasks, weights=weights, input_shape=input_shape,
                                pixel_scaling=config.pixel_scaling, mixed_precision=mixed, freeze_backbone=frozen,
                                arch=config.arch, seed=config.seed)
        return compile_multitask(model, config.learning_rate, dict(config.loss_weights),
                                 jit_compile=config.jit_compile, run_eagerly=config.run_eagerly)

    tracker = DataOrder(len(train), config.seed) if track else None
    val_exact = not config.val_steps or config.val_steps >= steps_for(len(val), config.batch_size)
    skips = SkipReport(write_dir, list(train["image"]) + list(val["image"]), list(train["image"]),
                       val_stats=val_stats, val_exact=val_exact,
                       train_skipped=state.get("train_skipped", 0) if state else 0)
    show_progress = config.progress and not os.environ.get("DEEPFL_NO_PROGRESS")
    try:
        model = train_multitask(build_and_compile, train_ds, val_ds, write_dir, epochs=config.epochs,
                                steps_per_epoch=steps, tasks=tasks, loss_weights=dict(config.loss_weights),
                                warmup_epochs=config.warmup_epochs, val_steps=config.val_steps or None,
                                strategy=strategy, tensorboard=config.tensorboard,
                                verbose="auto" if show_progress else 0, batch_size=config.batch_size,
                                tracker=tracker, skips=skips, reset_names=True, resume_dir=out_dir)
    except tf.errors.InvalidArgumentError:
        if config.on_error != "stop":
            raise
        # A corrupt image stream stops tf.data with the decoder's message, which does not name the file: find it.
        culprit = next(data.iter_unreadable_images(list(train["image"]) + list(val["image"])), None)
        if culprit is None:
            raise
        raise DeepflError(f"{culprit[0]}: unreadable image ({culprit[1]}); training stopped "
                          "(--on_error=stop)") from None
    return MultitaskResult(out_dir, model, config.epochs, steps)
