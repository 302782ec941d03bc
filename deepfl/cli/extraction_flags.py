"""Flags shared by deepfl-extract-features and deepfl-reproduce: which backbone makes the MLSP features and how.

`define_extraction_flags()` defines --model, --weights, --pixel_scaling and --extract_dtype;
`extractor_arguments()` turns them into the arguments of `deepfl.features.load_extractor`.
"""

from __future__ import annotations

from absl import flags

FLAGS = flags.FLAGS
PIXEL_SCALING_CHOICES = ("unit", "symmetric")  # deepfl.models.PIXEL_SCALINGS, named here to keep --help light
EXTRACT_DTYPES = ("float32", "mixed_bfloat16")


def define_extraction_flags() -> None:
    flags.DEFINE_string(
        "model",
        None,
        "Trained multi-task model (.keras). Omitted: the backbone with --weights "
        "(the paper's ImageNet baseline by default).",
    )
    flags.DEFINE_string(
        "weights",
        "imagenet",
        "Backbone weights when --model is omitted: 'imagenet' (Keras' file, "
        "fetched once into $KERAS_HOME/models, default ~/.keras/models), a local weights file "
        "(e.g. the authors' quality-mlsp-mtl-mse-loss.hdf5, Keras 2 HDF5), or 'none' (random weights, "
        "the same in every run: for trying the pipeline offline; its features measure nothing).",
    )
    flags.DEFINE_enum(
        "pixel_scaling",
        None,
        list(PIXEL_SCALING_CHOICES),
        "Backbone input scaling without --model: "
        "'unit' (x/255, the authors' weights) or 'symmetric' ([-1, 1], Keras' preprocessing for the "
        "ImageNet weights). Default: the one the weights were trained with.",
    )
    flags.DEFINE_enum(
        "extract_dtype",
        "float32",
        list(EXTRACT_DTYPES),
        "Precision of the feature extraction "
        "(float32 whatever the model was trained with; mixed_bfloat16 only when asked).",
    )


def extractor_arguments() -> dict:
    """{model, weights, pixel_scaling, dtype} for `deepfl.features.load_extractor` / `extractor_source`."""
    weights = None if FLAGS.weights.lower() == "none" else FLAGS.weights
    if FLAGS.model and FLAGS["weights"].present:
        raise ValueError("weights: --weights applies to the backbone without --model; a trained --model has its own")
    return {
        "model": FLAGS.model,
        "weights": weights,
        "pixel_scaling": FLAGS.pixel_scaling,
        "dtype": FLAGS.extract_dtype,
    }
