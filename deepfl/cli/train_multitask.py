"""Stage 1 of DeepFL-IQA: fine-tune InceptionResNetV2 to predict the eleven FR-IQA weak labels (multi-task).

Example (the paper's setting, KADIS-700k release on disk):
  deepfl-train-multitask --kadis_root=/data/kadis700k --out_dir=runs/stage1
Own weak labels (from deepfl-label):
  deepfl-train-multitask --weak_labels=labels.csv --image_root=dist/ --out_dir=runs/stage1 --val_fraction=0.2

Outputs in --out_dir: model.keras (final), best.keras (best mean validation SROCC; both without optimizer state),
normalizer.json (target normalisation, fitted on the training split), split.csv, run_config.json, history.csv
(per-task losses and validation SROCC per epoch) and history.png (the same as curves), tensorboard/,
skipped_images.csv (only when corrupt images were skipped), and while it trains checkpoints/ (resume state, with
the optimizer's; deleted at the end unless --keep_checkpoints). Rerunning the same command after a kill resumes
after the last finished epoch and ends with the same weights as an unbroken run: same batches, dropout masks and
optimizer state. A larger --epochs extends a finished run kept with --keep_checkpoints under --lr_schedule=constant
(a cosine schedule spans its run and cannot be extended); other changed settings are refused (--overwrite discards
the old run). Exit code 3: no usable training image or row.

Images train at their native size unless --image_size or --crop_size is given. Images of several sizes are batched
by size: each epoch trains every image once, in sum over sizes of ceil(images of that size / --batch_size) steps
(the last batch of a size smaller). Progress: Keras' bar on a terminal; in a log file or pipe, one plain line of
steps, rate and ETA every 15 s within each epoch (DEEPFL_NO_PROGRESS=1 turns both off).
The job itself is `deepfl.training.run_multitask`.
"""

from __future__ import annotations

from absl import flags

from deepfl import paper
from deepfl.architectures import ARCHITECTURES, PAPER_ARCHITECTURE
from deepfl.cli import app
from deepfl.training.job import LR_SCHEDULES, MultitaskConfig, run_multitask
from deepfl.training.strategy import STRATEGIES

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "weak_labels",
    None,
    "Weak-label CSV (dist_im, ref_im, <metrics>), as written by deepfl-label "
    "or the KADIS-700k release's kadis700k_friqa.csv.",
)
flags.DEFINE_string("image_root", None, "Folder of the distorted images named in --weak_labels.")
flags.DEFINE_string(
    "kadis_root",
    None,
    "Root of the KADIS-700k release (kadis700k_friqa.csv, dist_imgs/); alternative to --weak_labels/--image_root.",
)
app.require_folder("image_root")
app.require_folder("kadis_root")
flags.DEFINE_list("tasks", [], "Metrics to learn (default: every metric column of the CSV).")
flags.DEFINE_list("loss_weights", [], "Per-task loss weights as task=weight (others 1), e.g. gmsd=0.5,sff=2.")
flags.DEFINE_enum(
    "normalization",
    "standard",
    ["standard", "quantile"],
    "Per-task target normalisation fitted on the training split (quantile = histogram equalisation).",
)
flags.DEFINE_float(
    "val_fraction",
    paper.STAGE1_VAL_FRACTION,
    "Fraction of the contents (references) held out for validation, between 0 and 1 exclusive (1/7 = the "
    "paper's 100k of 700k).",
)
flags.DEFINE_integer(
    "val_images",
    0,
    "About this many validation images instead (the paper: 100000); 0 = use --val_fraction.",
    lower_bound=0,
)
flags.DEFINE_list(
    "image_size",
    [],
    "Resize every image to height,width pixels before training (warns when that changes "
    "aspect ratios). Default: native size (KADIS-700k: 384,512, the paper's input); images of mixed "
    "sizes are batched by shape.",
)
flags.DEFINE_list(
    "crop_size",
    [],
    "Random crop height,width in pixels for training (centre crop for validation; InceptionResNetV2 needs at "
    "least 75,75); empty: no crop.",
)
flags.DEFINE_bool("flip", False, "Random horizontal flips for training.")
flags.DEFINE_integer("batch_size", paper.STAGE1_BATCH_SIZE, "Global batch size (split across replicas).", lower_bound=1)
flags.DEFINE_integer(
    "epochs", paper.STAGE1_EPOCHS, "Epochs (passes over the training split, or --steps_per_epoch steps).", lower_bound=1
)
flags.DEFINE_integer(
    "steps_per_epoch", 0, "Training steps per epoch (0 = one pass over the training split).", lower_bound=0
)
flags.DEFINE_integer("val_steps", 0, "Validation batches per epoch (0 = the whole validation split).", lower_bound=0)
flags.DEFINE_integer(
    "warmup_epochs", 0, "Train the heads only (frozen backbone) for this many first epochs.", lower_bound=0
)
flags.DEFINE_float("learning_rate", paper.STAGE1_LEARNING_RATE, "Adam learning rate, > 0 (the paper: 1e-4, fixed).")
flags.DEFINE_enum(
    "lr_schedule",
    "constant",
    list(LR_SCHEDULES),
    "constant: --learning_rate throughout (the paper); cosine: decayed from --learning_rate to 0 along a half cosine "
    "over the run (over each phase with --warmup_epochs). Short runs end on a steadier model with cosine.",
)
flags.DEFINE_string(
    "weights",
    "imagenet",
    "Backbone initialisation: imagenet (Keras' file, fetched once into $KERAS_HOME/models, default ~/.keras/models; "
    "offline without it the job stops with one line), none (random weights), or a local weights file.",
)
flags.DEFINE_enum(
    "arch",
    PAPER_ARCHITECTURE,
    list(ARCHITECTURES),
    "Backbone: 'inception_resnet_v2' (the paper's), 'small' (a 5-stage CNN with the MLSP interface, the demo's; "
    "learns weak labels on a CPU in minutes; needs --weights=none), 'tiny' (smoke tests only; --weights=none).",
)
flags.DEFINE_enum(
    "pixel_scaling",
    "unit",
    ["unit", "symmetric"],
    "Pixel scaling inside the model: unit = x/255 (the authors'), symmetric = [-1, 1] (Keras').",
)
flags.DEFINE_enum(
    "mixed_precision",
    "none",
    ["none", "mixed_bfloat16", "mixed_float16"],
    "Keras mixed precision policy: float16/bfloat16 compute with float32 weights, faster on GPUs (mixed_bfloat16 "
    "on Ampere or newer, mixed_float16 on older cards); none on CPUs.",
)
flags.DEFINE_enum(
    "jit_compile",
    "auto",
    ["auto", "true", "false"],
    "XLA compilation of the training step; auto: Keras compiles it where the model allows (its own default).",
)
flags.DEFINE_enum(
    "strategy",
    "default",
    list(STRATEGIES),
    "tf.distribute strategy (multi_worker_mirrored reads the cluster from env TF_CONFIG).",
)
flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu ('' = local).")
flags.DEFINE_integer(
    "virtual_cpu_devices",
    0,
    "Split the CPU into this many logical devices (to try --strategy=mirrored without GPUs).",
    lower_bound=0,
)
app.define_seed("Seed of the split, the initialisation, dropout and the data order.")
flags.DEFINE_bool("tensorboard", True, "Write TensorBoard logs to out_dir/tensorboard.")
flags.DEFINE_bool(
    "keep_checkpoints",
    False,
    "Keep checkpoints/ (the resume state, with the optimizer's: about 3x model.keras; while a new one is written "
    "the previous one stays, so a run needs room for about 7x model.keras) after the run has finished, "
    "to extend it later with a larger --epochs. By default it is deleted at the end.",
)
flags.DEFINE_bool(
    "overwrite", False, "Discard the outputs of an earlier run in --out_dir made with other settings and start afresh."
)
app.define_out_dir()
app.define_on_error()


def _size(values: list[str], name: str) -> tuple[int, int] | None:
    if not values:
        return None
    try:
        size = [int(v) for v in values]
    except ValueError:
        raise ValueError(f"{name}: expected height,width integers, got {','.join(values)!r}") from None
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name}: expected two positive integers height,width, got {','.join(values)!r}")
    return (size[0], size[1])


def _loss_weights(items: list[str]) -> dict[str, float]:
    weights = {}
    for item in items:
        task, sep, value = item.partition("=")
        try:
            weights[task.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not task.strip():
            raise ValueError(f"loss_weights: expected task=weight, got {item!r}")
    return weights


def config_from_flags() -> MultitaskConfig:
    """The run's settings from the command line."""
    return MultitaskConfig(
        weak_labels=FLAGS.weak_labels,
        image_root=FLAGS.image_root,
        kadis_root=FLAGS.kadis_root,
        tasks=tuple(FLAGS.tasks),
        loss_weights=_loss_weights(FLAGS.loss_weights),
        normalization=FLAGS.normalization,
        val_fraction=FLAGS.val_fraction,
        val_images=FLAGS.val_images,
        image_size=_size(FLAGS.image_size, "image_size"),
        crop_size=_size(FLAGS.crop_size, "crop_size"),
        flip=FLAGS.flip,
        batch_size=FLAGS.batch_size,
        epochs=FLAGS.epochs,
        steps_per_epoch=FLAGS.steps_per_epoch,
        val_steps=FLAGS.val_steps,
        warmup_epochs=FLAGS.warmup_epochs,
        learning_rate=FLAGS.learning_rate,
        lr_schedule=FLAGS.lr_schedule,
        weights=FLAGS.weights,
        arch=FLAGS.arch,
        pixel_scaling=FLAGS.pixel_scaling,
        mixed_precision=FLAGS.mixed_precision,
        jit_compile={"auto": "auto", "true": True, "false": False}[FLAGS.jit_compile],
        strategy=FLAGS.strategy,
        tpu=FLAGS.tpu,
        virtual_cpu_devices=FLAGS.virtual_cpu_devices,
        seed=FLAGS.seed,
        tensorboard=FLAGS.tensorboard,
        on_error=FLAGS.on_error,
    )


def main(argv: list[str]) -> int:
    del argv
    result = run_multitask(
        config_from_flags(), FLAGS.out_dir, overwrite=FLAGS.overwrite, keep_checkpoints=FLAGS.keep_checkpoints
    )
    out_dir = result.out_dir
    epochs = f"{result.epochs} epoch{'s' * (result.epochs != 1)}"
    if result.already_trained:
        print(f"{out_dir}: already trained for {epochs} (model.keras); nothing to do")
    elif not result.wrote_outputs:
        print(f"trained {epochs} of {result.steps_per_epoch} steps with the cluster; the chief writes {out_dir}")
    else:
        print(
            f"trained {epochs} of {result.steps_per_epoch} steps; model: {out_dir / 'model.keras'}; "
            f"normalizer: {out_dir / 'normalizer.json'}"
        )
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
