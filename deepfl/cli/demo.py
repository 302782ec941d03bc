"""deepfl-demo: weak supervision in miniature, on photos bundled with installed packages, on a CPU in minutes.

  deepfl-demo --out_dir demo_out

Crops photos bundled with scikit-image, scikit-learn and matplotlib, distorts them (KADIS-style for stage 1: each
crop gets 5 of the 25 KADID types at all 5 levels; every held-out crop all 25 x 5), labels the stage-1 pairs
with the eleven FR metrics (the weak labels), trains the multi-task model on them from random weights (nothing
is downloaded), and then compares, on held-out photos and through the paper's split protocol (10 content-aware
60/20/20 splits) with a smaller head (256 units, dropout 0.5, features z-scored), three feature sets: MLSP
(multi-level spatially pooled) features of the trained backbone, of the same backbone untrained, and the FR
metric that follows the target best (a ceiling that needs the reference). The target is a STAND-IN (no human
scores of these images exist): the KADID-10k mean opinion of each image's distortion type at its level, averaged
over KADID-10k's 81 contents (--target=standin_level: 1 - (level - 1) / 4 instead). Writes comparison.csv and
comparison.png, exports the one-file model and scores one image with the deepfl-predict code. The default
backbone is a small CNN with the MLSP interface, not the paper's InceptionResNetV2 (--arch=inception_resnet_v2:
same story, much slower). A rerun with the same flags reuses finished steps; every file goes under --out_dir.
"""

from __future__ import annotations

from absl import flags

from deepfl.architectures import ARCHITECTURES
from deepfl.cli import app
from deepfl.demo import DemoConfig
from deepfl.training.job import LR_SCHEDULES

FLAGS = flags.FLAGS
DEFAULTS = DemoConfig()
app.define_out_dir(default="demo_out")
flags.DEFINE_enum(
    "arch",
    "small",
    list(ARCHITECTURES),
    "Backbone: 'small' (a 5-stage CNN with the MLSP interface, learns in minutes on a CPU), "
    "'inception_resnet_v2' (the paper's network; much slower), 'tiny' (smoke tests only).",
)
flags.DEFINE_integer(
    "train_epochs", DEFAULTS.train_epochs, "Stage-1 epochs over the weakly labelled crops.", lower_bound=1
)
flags.DEFINE_enum(
    "lr_schedule",
    DEFAULTS.lr_schedule,
    list(LR_SCHEDULES),
    "Stage 1's learning rate: decayed to 0 along a half cosine over the run (cosine) or fixed (constant, the "
    "paper's; a short run then ends on a noisier model).",
)
flags.DEFINE_integer(
    "crops",
    DEFAULTS.crops,
    "Random crops per stage-1 photo (each gets 5 of the 25 types at every level).",
    lower_bound=1,
)
flags.DEFINE_integer("mlp_epochs", DEFAULTS.mlp_epochs, "MLP epochs per learning rate (the paper: 30).", lower_bound=1)
flags.DEFINE_integer(
    "num_splits", DEFAULTS.num_splits, "Content-aware splits of the held-out photos (the paper: 10).", lower_bound=1
)
flags.DEFINE_list("types", [str(t) for t in DEFAULTS.types], "Distortion types (1..25) to generate.")


def _is_kadid_type(number: int) -> bool:
    from deepfl.distortions import DISTORTION_NAMES  # imported when the flag is checked: Numba loads with it

    return number in DISTORTION_NAMES


app.require_numbers("types", "integers in 1 .. 25 (the KADID-10k types)", _is_kadid_type, integers=True)
flags.DEFINE_enum(
    "target",
    "standin_dmos",
    ["standin_dmos", "standin_level"],
    "Stand-in target of the MLP comparison: 'standin_dmos' (KADID-10k's mean opinion of the image's "
    "type at its level, over 81 contents) or 'standin_level' (1 - (level - 1) / 4).",
)
flags.DEFINE_list(
    "metrics",
    None,
    "FR metrics of the weak labels, comma-separated (default: all eleven, as in the paper); fewer label faster.",
)
app.define_seed("Seed of every random step.")
flags.DEFINE_bool("keep_checkpoints", False, "Keep stage 1's resume state (multitask/checkpoints) after it ends.")
flags.DEFINE_bool(
    "overwrite",
    False,
    "Remove the outputs of an earlier demo run in --out_dir made with other flags, then start afresh.",
)


def main(argv: list[str]) -> int:
    from deepfl.demo import run_demo

    config = DemoConfig(
        arch=FLAGS.arch,
        train_epochs=FLAGS.train_epochs,
        lr_schedule=FLAGS.lr_schedule,
        crops=FLAGS.crops,
        mlp_epochs=FLAGS.mlp_epochs,
        num_splits=FLAGS.num_splits,
        types=tuple(int(t) for t in FLAGS.types),
        seed=FLAGS.seed,
        target=FLAGS.target,
        metrics=tuple(FLAGS.metrics) if FLAGS.metrics else None,
    )
    run_demo(FLAGS.out_dir, config, keep_checkpoints=FLAGS.keep_checkpoints, overwrite=FLAGS.overwrite)
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
