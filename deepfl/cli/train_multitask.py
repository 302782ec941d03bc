"""Stage 1 of DeepFL-IQA: fine-tune InceptionResNetV2 to predict the eleven FR-IQA weak labels (multi-task).

Example (the paper's setting, KADIS-700k release on disk):
  deepfl-train-multitask --kadis_root=/data/kadis700k --out_dir=runs/stage1
Own weak labels (from deepfl-label):
  deepfl-train-multitask --weak_labels=labels.csv --image_root=dist/ --out_dir=runs/stage1 --val_fraction=0.2

Outputs in --out_dir: model.keras (final), best.keras (best mean validation SROCC), normalizer.json (target
normalisation, fitted on the training split), split.csv, run_config.json, history.csv (per-task losses and
validation SROCC per epoch), tensorboard/, checkpoints/ (resume), skipped_images.csv (only when corrupt images
were skipped). Rerunning the same command after a kill resumes after the last finished epoch and ends with the
same weights as an unbroken run: same batches, dropout masks and optimizer state.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from absl import flags

from deepfl.fileio import atomic_output
from deepfl.cli import app

FLAGS = flags.FLAGS
log = logging.getLogger("deepfl")

flags.DEFINE_string("weak_labels", None, "Weak-label CSV (dist_im, ref_im, <metrics>), as written by deepfl-label "
                    "or the KADIS-700k release's kadis700k_friqa.csv.")
flags.DEFINE_string("image_root", None, "Folder of the distorted images named in --weak_labels.")
flags.DEFINE_string("kadis_root", None, "Root of the KADIS-700k release (kadis700k_friqa.csv, dist_imgs/); "
                    "alternative to --weak_labels/--image_root.")
flags.DEFINE_list("tasks", [], "Metrics to learn (default: every metric column of the CSV).")
flags.DEFINE_list("loss_weights", [], "Per-task loss weights as task=weight (others 1), e.g. gmsd=0.5,sff=2.")
flags.DEFINE_enum("normalization", "standard", ["standard", "quantile"],
                  "Per-task target normalisation fitted on the training split (quantile = histogram equalisation).")
flags.DEFINE_float("val_fraction", 1 / 7, "Fraction of the contents (references) held out for validation "
                   "(1/7 = the paper's 100k of 700k).")
flags.DEFINE_integer("val_images", 0, "About this many validation images instead (the paper: 100000); 0 = use "
                     "--val_fraction.", lower_bound=0)
flags.DEFINE_list("image_size", ["384", "512"], "Resize every image to height,width before training "
                  "(empty = native size; equal-size images are batched together).")
flags.DEFINE_list("crop_size", [], "Random crop height,width for training (centre crop for validation).")
flags.DEFINE_bool("flip", False, "Random horizontal flips for training.")
flags.DEFINE_integer("batch_size", 64, "Global batch size (split across replicas).", lower_bound=1)
flags.DEFINE_integer("epochs", 10, "Epochs (passes over the training split, or --steps_per_epoch steps).",
                     lower_bound=1)
flags.DEFINE_integer("steps_per_epoch", 0, "Training steps per epoch (0 = one pass over the training split).",
                     lower_bound=0)
flags.DEFINE_integer("val_steps", 0, "Validation batches per epoch (0 = the whole validation split).", lower_bound=0)
flags.DEFINE_integer("warmup_epochs", 0, "Train the heads only (frozen backbone) for this many first epochs.",
                     lower_bound=0)
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate (the paper: 1e-4, fixed).")
flags.DEFINE_string("weights", "imagenet", "Backbone initialisation: imagenet, none, or a local weights file.")
flags.DEFINE_enum("arch", "inception_resnet_v2", ["inception_resnet_v2", "tiny"],
                  "Backbone. 'tiny' is a small stand-in CNN for smoke tests and CI only.")
flags.DEFINE_enum("pixel_scaling", "unit", ["unit", "symmetric"],
                  "Pixel scaling inside the model: unit = x/255 (the authors'), symmetric = [-1, 1] (Keras').")
flags.DEFINE_enum("mixed_precision", "none", ["none", "mixed_bfloat16", "mixed_float16"], "Mixed precision policy.")
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "XLA compilation of the training step.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker_mirrored", "tpu"],
                  "tf.distribute strategy (multi_worker_mirrored reads the cluster from env TF_CONFIG).")
flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu ('' = local).")
flags.DEFINE_integer("virtual_cpu_devices", 0, "Split the CPU into this many logical devices (to try "
                     "--strategy=mirrored without GPUs).", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed of the split, the initialisation, dropout and the data order.")
flags.DEFINE_bool("tensorboard", True, "Write TensorBoard logs to out_dir/tensorboard.")
app.define_out_dir()
app.define_on_error()

# Settings that must not change between a run and its resumption.
_RUN_KEYS = ("weak_labels", "image_root", "kadis_root", "tasks", "loss_weights", "normalization", "val_fraction",
             "val_images", "image_size", "crop_size", "flip", "batch_size", "epochs", "steps_per_epoch",
             "warmup_epochs", "learning_rate", "weights", "arch", "pixel_scaling", "mixed_precision", "seed")


def _size(values: list[str], name: str):
    if not values:
        return None
    try:
        size = [int(v) for v in values]
    except ValueError:
        raise ValueError(f"{name}: expected height,width integers, got {','.join(values)!r}") from None
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name}: expected two positive integers height,width, got {','.join(values)!r}")
    return tuple(size)


def _loss_weights(items: list[str], tasks: list[str]) -> dict[str, float]:
    weights = {}
    for item in items:
        task, sep, value = item.partition("=")
        try:
            weights[task.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or task.strip() not in tasks:
            raise ValueError(f"loss_weights: expected task=weight with a task among {tasks}, got {item!r}")
    return weights


def _check_run_config(out_dir: Path, config: dict, write: bool) -> None:
    """Checks that a resumed run uses the settings in run_config.json; writes them (`write`) if absent."""
    path = out_dir / "run_config.json"
    if path.exists():
        old = json.loads(path.read_text())
        changed = {k: (old.get(k), config[k]) for k in _RUN_KEYS if old.get(k) != config[k]}
        if changed:
            raise ValueError(f"out_dir: {out_dir} holds a run with other settings {changed}; use another "
                             f"--out_dir (or delete it) to start afresh")
    elif write:
        from deepfl.fileio import atomic_write_bytes

        atomic_write_bytes(path, json.dumps(config, indent=1).encode())


def main(argv: list[str]) -> int:
    del argv
    # Cheap checks first (no TensorFlow import yet): flags, settings of an earlier run, finished runs.
    if bool(FLAGS.kadis_root) == bool(FLAGS.weak_labels):
        raise ValueError("weak_labels/kadis_root: give either --kadis_root or --weak_labels with --image_root")
    if FLAGS.weak_labels and not FLAGS.image_root:
        raise ValueError("image_root: --weak_labels needs --image_root (the folder of the distorted images)")
    image_size, crop_size = _size(FLAGS.image_size, "image_size"), _size(FLAGS.crop_size, "crop_size")
    out_dir = Path(FLAGS.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {k: FLAGS[k].value for k in _RUN_KEYS}
    config = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in config.items()}
    _check_run_config(out_dir, config, write=False)
    state_file = out_dir / "checkpoints" / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    if state is not None and state["epoch"] >= FLAGS.epochs and (out_dir / "model.keras").exists():
        print(f"{out_dir}: already trained for {state['epoch']} epochs (model.keras); nothing to do")
        return 0

    from deepfl import data  # tables and normalisation only: no TensorFlow yet

    if FLAGS.kadis_root:
        table = data.read_kadis700k(FLAGS.kadis_root, on_error=FLAGS.on_error)
    else:
        table = data.read_weak_labels(FLAGS.weak_labels, FLAGS.image_root, on_error=FLAGS.on_error)
    available = list(table.attrs.get("metrics", [c for c in table.columns if c not in ("image", "ref", "content")]))
    tasks = list(FLAGS.tasks) or available
    missing = [t for t in tasks if t not in available]
    if missing:
        raise ValueError(f"tasks: {missing} not in the weak labels (columns: {available})")
    loss_weights = _loss_weights(FLAGS.loss_weights, tasks)
    _check_run_config(out_dir, config, write=True)

    if FLAGS.virtual_cpu_devices:
        from deepfl.training import configure_virtual_cpus

        configure_virtual_cpus(FLAGS.virtual_cpu_devices)
    import keras
    import tensorflow as tf

    from deepfl import training
    from deepfl.errors import DeepflError
    from deepfl.models import build_multitask, compile_multitask

    keras.utils.set_random_seed(FLAGS.seed)
    state = training.read_state(out_dir / "checkpoints")

    train, val = training.split_by_content(table, FLAGS.val_fraction, FLAGS.val_images, seed=FLAGS.seed)
    split = table[["image", "content"]].assign(split="train")
    split.loc[val.index, "split"] = "val"
    with atomic_output(out_dir / "split.csv") as tmp:
        split.to_csv(tmp, index=False)
    normalizer = data.TargetNormalizer(FLAGS.normalization).fit(train, tasks)
    normalizer.save(out_dir / "normalizer.json")
    log.info("%d training and %d validation images, %d tasks: %s", len(train), len(val), len(tasks), tasks)

    strategy = training.get_strategy(FLAGS.strategy, FLAGS.tpu)
    log.info("strategy %s with %d replica(s)", FLAGS.strategy, strategy.num_replicas_in_sync)
    # Exact resumption: the training stream is one seeded shuffle + repeat of the training split; each fit call
    # (each phase, each resumed process) starts it after the elements consumed so far (make_dataset(skip=...)).
    # The row index travels as an extra target so that DataOrder counts consumed and skipped images exactly;
    # py_function (which it uses) cannot run in a serialised multi-worker/TPU input pipeline: there, the position
    # is counted as batch_size x steps per epoch (exact unless images are skipped).
    track = FLAGS.strategy in ("default", "mirrored")
    train = train.assign(**{training.ROW_COLUMN: np.arange(len(train), dtype=np.float32)})
    # uint8 batches (a quarter of the bytes, no float conversion in the pipeline) when no resize interpolates:
    # the model casts to float32 in its first layer, so its outputs are the same.
    dtype = "float32" if image_size is not None else "uint8"
    val_stats = data.PipelineStats()
    common = dict(batch_size=FLAGS.batch_size, image_size=image_size, crop_size=crop_size, normalizer=normalizer,
                  on_error=FLAGS.on_error, dtype=dtype)
    train_targets = tasks + [training.ROW_COLUMN] if track else tasks

    def train_ds(skip: int):
        return data.make_dataset(train, train_targets, training=True, flip=FLAGS.flip, seed=FLAGS.seed,
                                 repeat=True, skip=skip, **common)

    val_ds = data.make_dataset(val, tasks, training=False, seed=FLAGS.seed, stats=val_stats, **common)
    steps = FLAGS.steps_per_epoch or training.steps_for(len(train), FLAGS.batch_size)
    input_shape = (*(crop_size or image_size), 3) if (crop_size or image_size) else None
    mixed = None if FLAGS.mixed_precision == "none" else FLAGS.mixed_precision
    jit = {"auto": "auto", "true": True, "false": False}[FLAGS.jit_compile]
    weights = None if FLAGS.weights.lower() in ("none", "") else FLAGS.weights

    def build_and_compile(frozen: bool):
        keras.utils.set_random_seed(FLAGS.seed)  # again: clear_session (reset_names) forgets Keras' global seed
        model = build_multitask(tasks=tasks, weights=weights, input_shape=input_shape,
                                pixel_scaling=FLAGS.pixel_scaling, mixed_precision=mixed, freeze_backbone=frozen,
                                arch=FLAGS.arch, seed=FLAGS.seed)
        return compile_multitask(model, FLAGS.learning_rate, loss_weights, jit_compile=jit)

    tracker = training.DataOrder(len(train), FLAGS.seed) if track else None
    val_exact = not FLAGS.val_steps or FLAGS.val_steps >= training.steps_for(len(val), FLAGS.batch_size)
    skips = training.SkipReport(out_dir, list(train["image"]) + list(val["image"]), list(train["image"]),
                                val_stats=val_stats, val_exact=val_exact,
                                train_skipped=state.get("train_skipped", 0) if state else 0)
    try:
        training.train_multitask(build_and_compile, train_ds, val_ds, out_dir, epochs=FLAGS.epochs,
                                 steps_per_epoch=steps, tasks=tasks, loss_weights=loss_weights,
                                 warmup_epochs=FLAGS.warmup_epochs, val_steps=FLAGS.val_steps or None,
                                 strategy=strategy, tensorboard=FLAGS.tensorboard,
                                 verbose=0 if os.environ.get("DEEPFL_NO_PROGRESS") else "auto",
                                 batch_size=FLAGS.batch_size, tracker=tracker, skips=skips, reset_names=True)
    except tf.errors.InvalidArgumentError:
        if FLAGS.on_error != "stop":
            raise
        # A corrupt image stream stops tf.data with the decoder's message, which does not name the file: find it.
        culprit = next(data.iter_unreadable_images(list(train["image"]) + list(val["image"])), None)
        if culprit is None:
            raise
        raise DeepflError(f"{culprit[0]}: unreadable image ({culprit[1]}); training stopped "
                          "(--on_error=stop)") from None
    print(f"trained {FLAGS.epochs} epochs of {steps} steps; model: {out_dir / 'model.keras'}; "
          f"normalizer: {out_dir / 'normalizer.json'}")
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
