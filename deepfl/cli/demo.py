"""deepfl-demo: the whole DeepFL-IQA chain on images bundled with scikit-image, on a CPU in minutes.

  deepfl-demo --out_dir demo_out

Distorts bundled photos (all 25 KADID types x 5 levels by default), labels the stage-1 pairs with the eleven FR
metrics, trains the multi-task InceptionResNetV2 for a few steps at a small input size (random init: nothing is
downloaded), extracts MLSP features of held-out distorted images, trains the paper's MLP head on content-aware
splits with a STAND-IN target (no human scores ship with any package), prints the table, saves the scatter plot,
exports the one-file model and scores one image with the deepfl-predict code. Rerunning resumes/reuses finished
steps; every file goes under --out_dir.
"""

from __future__ import annotations

from absl import flags

from deepfl.cli import app

FLAGS = flags.FLAGS
app.define_out_dir(default="demo_out")
flags.DEFINE_integer("stage1_refs", 2, "References labelled with the FR metrics (multi-task training).", lower_bound=2)
flags.DEFINE_integer("stage2_refs", 5, "Held-out references for the MLP (content-aware 60/20/20 splits).",
                     lower_bound=5)
flags.DEFINE_list("types", [str(t) for t in range(1, 26)], "Distortion types (1..25) to generate.")
flags.DEFINE_integer("train_steps", 6, "Multi-task training steps.", lower_bound=1)
flags.DEFINE_integer("mlp_epochs", 5, "MLP epochs per learning rate (the paper: 30).", lower_bound=1)
flags.DEFINE_integer("num_splits", 2, "Content-aware splits of the held-out images.", lower_bound=1)
flags.DEFINE_enum("arch", "inception_resnet_v2", ["inception_resnet_v2", "tiny"],
                  "Backbone; 'tiny' is a small CNN for smoke tests only.")
flags.DEFINE_integer("seed", 0, "Seed of every random step.")


def main(argv: list[str]) -> int:
    from deepfl.demo import DemoConfig, run_demo

    config = DemoConfig(stage1_refs=FLAGS.stage1_refs, stage2_refs=FLAGS.stage2_refs,
                        types=tuple(int(t) for t in FLAGS.types), train_steps=FLAGS.train_steps,
                        mlp_epochs=FLAGS.mlp_epochs, num_splits=FLAGS.num_splits, arch=FLAGS.arch, seed=FLAGS.seed)
    run_demo(FLAGS.out_dir, config)
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
