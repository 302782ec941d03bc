"""One `.keras` file that maps a raw image to a quality score: backbone -> MLSP (16,928) -> MLP head -> score.

The exported model takes float32 RGB images with values in [0, 255] of any size (NHWC) and returns one score per
image on the scale of the training table (higher is better). The head's target normalisation (z-score) is
folded into a built-in `Rescaling` layer, so the file loads with `keras.saving.load_model` alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from deepfl.data.normalization import TargetNormalizer
from deepfl.images import atomic_output

SCORE_COLUMN = "score"


def load_model_file(path: str | os.PathLike, what: str = "model") -> keras.Model:
    """Loads a `.keras` file without its optimiser; one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # keras raises many types for bad archives
        raise ValueError(f"{path}: not a loadable .keras {what} ({str(exc).splitlines()[0]})") from None


def head_normalizer(head_path: str | os.PathLike) -> TargetNormalizer | None:
    """The normaliser saved beside a head (`head.keras` -> `head.normalizer.json`), or None if there is none."""
    path = Path(head_path).with_suffix(".normalizer.json")
    return TargetNormalizer.load(path) if path.is_file() else None


def builtin_layers(model: keras.Model) -> keras.Model:
    """A copy of an MLSP extractor (sharing its weights) whose deepfl layers are swapped for built-in ones.

    `PixelScaling(scale, offset)` becomes `Rescaling(scale, offset)` and `MultiLevelPooling` becomes a small
    functional block of `GlobalAveragePooling2D` + `Concatenate` (float32, as before), so a saved file needs no
    registered custom class to load. Other layers are shared as they are.
    """
    from deepfl.models.layers import MultiLevelPooling, PixelScaling

    if not any(isinstance(layer, (PixelScaling, MultiLevelPooling)) for layer in model.layers):
        return model

    def swap(layer):
        if isinstance(layer, PixelScaling):
            return keras.layers.Rescaling(layer.scale, layer.offset, name=layer.name)
        if isinstance(layer, MultiLevelPooling):
            inputs = [keras.Input(tuple(t.shape[1:]), dtype="float32") for t in layer.input]
            pooled = [keras.layers.GlobalAveragePooling2D(dtype="float32")(x) for x in inputs]
            return keras.Model(inputs, keras.layers.Concatenate(dtype="float32")(pooled), name=layer.name)
        return layer

    return keras.models.clone_model(model, clone_function=swap)


def combine(extractor: keras.Model, head: keras.Model, normalizer: TargetNormalizer | None = None,
            name: str = "deepfl_iqa") -> keras.Model:
    """Chains an MLSP extractor (image -> features) and a head (features -> normalised score) into one model.

    A fitted "standard" normaliser becomes `Rescaling(std, mean)` after the head; other normalisers are not
    linear and cannot be folded into a built-in layer, so they are refused.
    """
    if extractor.output_shape[-1] != head.input_shape[-1]:
        raise ValueError(f"head: expects {head.input_shape[-1]} features but the extractor gives "
                         f"{extractor.output_shape[-1]}")
    image = keras.Input(shape=(None, None, 3), dtype="float32", name="image")
    score = head(builtin_layers(extractor)(image))
    if normalizer is not None:
        if normalizer.method != "standard" or SCORE_COLUMN not in normalizer.stats:
            raise ValueError(f"normalizer: only a 'standard' normaliser of column {SCORE_COLUMN!r} can be "
                             f"exported, got {normalizer!r}")
        stats = normalizer.stats[SCORE_COLUMN]
        score = keras.layers.Rescaling(scale=float(stats["std"]), offset=float(stats["mean"]),
                                       name="denormalize")(score)
    score = keras.layers.Reshape((), name="quality")(score)
    return keras.Model(image, score, name=name)


def save_atomic(model: keras.Model, path: str | os.PathLike) -> Path:
    """Saves a model as `.keras` through a temporary file in the same folder, so a kill leaves no half file."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"path: must end with .keras, got {path}")
    with atomic_output(path, suffix=".tmp.keras") as tmp:
        model.save(tmp)
    return path


def export_model(model: str | os.PathLike | keras.Model, head: str | os.PathLike | keras.Model,
                 out_path: str | os.PathLike, normalizer: TargetNormalizer | None = None) -> Path:
    """Writes the one-file scorer: `model` is the trained multi-task model (or its MLSP extractor), `head` the
    MLP head; the normaliser defaults to the one saved beside a head file."""
    from deepfl.prediction import load_scorer

    return save_atomic(load_scorer(model, head, normalizer), out_path)
