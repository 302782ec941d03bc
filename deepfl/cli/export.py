"""deepfl-export: one `.keras` file that scores images, from a trained stage-1 model and an MLP head.

  deepfl-export --model runs/stage1/model.keras --head mlp/kadid10k_head_split0.keras --output deepfl_iqa.keras
  deepfl-export --model quality-mlsp-mtl-mse-loss.hdf5 --head head.keras --output deepfl_iqa.keras

--model is the multi-task model of deepfl-train-multitask (its MLSP extractor is used, at any input size), or a
backbone weights file such as the authors' Keras 2 `quality-mlsp-mtl-mse-loss.hdf5`; --head is an MLP head of
deepfl-train-mlp (its <head>.normalizer.json beside it maps outputs back to the head's target scale). The output
takes RGB images in [0, 255] and gives one score per image; it loads with `keras.saving.load_model` alone (deepfl's
own layers are replaced by built-in ones) and is what `deepfl-predict --model` takes. An existing --output is
refused (exit 2) unless --overwrite.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from deepfl.cli import app

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "model", None, "Trained multi-task model (.keras) or a backbone weights file (.h5/.hdf5).", required=True
)
flags.DEFINE_string("head", None, "MLP head (.keras) trained on MLSP features of --model.", required=True)
flags.DEFINE_string("output", None, "The one-file scorer to write (.keras).", required=True)
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")


def main(argv: list[str]) -> int:
    del argv
    from deepfl.export import export_model

    output = Path(FLAGS.output)
    if output.suffix != ".keras":
        raise ValueError(f"output: must end with .keras, got {output}")
    if output.exists() and not FLAGS.overwrite:
        raise ValueError(f"output: {output} exists; pass --overwrite to replace it, or choose another --output")
    path = export_model(FLAGS.model, FLAGS.head, output)
    print(f"exported {path} (image -> score; loads with keras.saving.load_model alone)")
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
