"""One `.keras` file that maps a raw image to a quality score: backbone -> MLSP (16,928) -> MLP head -> score.

The exported model takes float32 RGB images with values in [0, 255] of any size (NHWC) and returns one score per
image on the scale of the training table (higher is better). The head's target normalisation (z-score) is
folded into a built-in `Rescaling` layer, so the file loads with `keras.saving.load_model` alone.
`load_scorer` assembles that model (from an exported file, or a trained model and a head) for prediction;
`export_model` saves it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import keras

from deepfl.architectures import IMAGENET
from deepfl.data.normalization import TargetNormalizer
from deepfl.fileio import load_model_file, normalizer_path, save_model_atomic
from deepfl.wording import by_caller, setting

SCORE_COLUMN = "score"
# `model="imagenet"` (`--model imagenet`): the backbone with Keras' ImageNet weights, for a head trained on the paper's
# baseline features (deepfl-extract-features without --model), at the pixel scaling recorded for those features.
IMAGENET_BACKBONE = IMAGENET


def head_normalizer(head_path: str | os.PathLike) -> TargetNormalizer | None:
    """The normaliser saved beside a head (`head.keras` -> `head.normalizer.json`), or None if there is none."""
    path = normalizer_path(head_path)
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


def combine(
    extractor: keras.Model, head: keras.Model, normalizer: TargetNormalizer | None = None, name: str = "deepfl_iqa"
) -> keras.Model:
    """Chains an MLSP extractor (image -> features) and a head (features -> normalised score) into one model.

    A fitted "standard" normaliser becomes `Rescaling(std, mean)` after the head; other normalisers are not
    linear and cannot be folded into a built-in layer, so they are refused.
    """
    if extractor.output_shape[-1] != head.input_shape[-1]:
        raise ValueError(
            f"head: expects {head.input_shape[-1]} features but the extractor gives {extractor.output_shape[-1]}"
        )
    image = keras.Input(shape=(None, None, 3), dtype="float32", name="image")
    score = head(builtin_layers(extractor)(image))
    if normalizer is not None:
        if normalizer.method != "standard" or SCORE_COLUMN not in normalizer.stats:
            raise ValueError(
                f"normalizer: only a 'standard' normaliser of column {SCORE_COLUMN!r} can be "
                f"exported, got {normalizer!r}"
            )
        stats = normalizer.stats[SCORE_COLUMN]
        score = keras.layers.Rescaling(scale=float(stats["std"]), offset=float(stats["mean"]), name="denormalize")(
            score
        )
    score = keras.layers.Reshape((), name="quality")(score)
    return keras.Model(image, score, name=name)


def _is_multitask(model: keras.Model) -> bool:
    return isinstance(model.output, dict) or len(model.outputs) > 1


def _is_scorer(model: keras.Model) -> bool:
    """Whether `model` gives one score per image (an exported scorer), not features or several outputs."""
    shape = () if _is_multitask(model) else tuple(model.output_shape)
    return len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1)


def as_extractor(model: str | os.PathLike | keras.Model, pixel_scaling: str | None = None) -> keras.Model:
    """The MLSP extractor of a multi-task model (file or model), rebuilt for any input size (native
    resolution); a model already giving one flat vector per image (an extractor) is returned as is. An HDF5
    backbone weights file (e.g. the authors' `quality-mlsp-mtl-mse-loss.hdf5`) gives the backbone with those
    weights and x / 255 pixels, as the authors' demo feeds it. `IMAGENET_BACKBONE` gives the backbone with Keras'
    ImageNet weights (needs their file offline: `features.load_extractor`), with `pixel_scaling` (default [-1, 1],
    the weights' own)."""
    from deepfl.models.weights_file import is_weights_file

    if isinstance(model, str) and model == IMAGENET_BACKBONE:
        from deepfl.features import load_extractor
        from deepfl.models.backbone import ImageNetWeightsMissing

        try:
            return load_extractor(None, "imagenet", pixel_scaling)
        except ImageNetWeightsMissing as missing:  # its "use --weights FILE" is no flag of export or predict
            raise ImageNetWeightsMissing(
                missing.problem, missing.fetch, f"or score with a trained model instead of {setting('model', IMAGENET)}"
            ) from None
    if not isinstance(model, keras.Model) and is_weights_file(model):
        from deepfl.models import build_backbone, default_pixel_scaling

        return build_backbone(
            weights=str(model), input_shape=(None, None, 3), pixel_scaling=default_pixel_scaling(str(model))
        )
    model = model if isinstance(model, keras.Model) else load_model_file(model)
    if not _is_multitask(model) and len(model.output_shape) == 2 and model.output_shape[-1] > 1:
        return model
    from deepfl.models import mlsp_extractor

    return mlsp_extractor(model, input_shape=(None, None, 3))


def load_scorer(
    model: str | os.PathLike | keras.Model, head: str | os.PathLike | keras.Model | None = None, normalizer=None
) -> keras.Model:
    """A model image -> score: an exported file/model as is, or backbone (multi-task model) + MLP head.

    With a head, `normalizer` (a `TargetNormalizer`) maps the head's outputs back to scores; by default the one
    saved beside a head file (`.normalizer.json`) is applied; a head file without one is refused or warned
    about (`_check_unnormalised_head`). Model and head given as files are checked to belong together
    (`check_head_matches_model`): export, prediction and the scripts all come through here.
    """
    from deepfl.models.weights_file import is_weights_file

    if head is None:
        if model == IMAGENET_BACKBONE or (not isinstance(model, keras.Model) and is_weights_file(model)):
            raise ValueError(
                f"model: {model} gives features, not scores: pass the head trained on them "
                f"({by_caller('--head', 'head=')})"
            )
        scorer = model if isinstance(model, keras.Model) else load_model_file(model)
        if len(scorer.input_shape) == 2:  # Keras' shape error deep in the first call before (walk 39b)
            raise ValueError(
                f"model: {getattr(scorer, 'name', model) if isinstance(model, keras.Model) else model} is an MLP head "
                f"(it takes MLSP features, not images): pass it as {by_caller('--head', 'head=')} with the stage-1 "
                f"model as {by_caller('--model', 'model=')}, or export the two into one file (deepfl-export)"
            )
        if not _is_scorer(scorer):
            raise ValueError(
                f"model: {getattr(scorer, 'name', model)} does not output one score per image "
                f"(a multi-task model needs an MLP head: pass {by_caller('--head', 'head=')})"
            )
        return scorer
    if not isinstance(model, keras.Model) and not isinstance(head, keras.Model):
        check_head_matches_model(model, head)  # from the records alone, before loading anything
    # Both loaded before the head's normaliser is looked at, so that a model and a head given the other's way round
    # are named as such.
    built_here = isinstance(model, keras.Model) or model == IMAGENET_BACKBONE or is_weights_file(model)
    loaded = model if built_here else load_model_file(model)
    if isinstance(loaded, keras.Model) and _is_scorer(loaded) and len(loaded.input_shape) == 4:
        raise ValueError(
            f"model: {model if not isinstance(model, keras.Model) else loaded.name} scores images already (an "
            f"exported scorer holds its head): use it without a head (drop {by_caller('--head', 'head=')})"
        )
    head_model = head if isinstance(head, keras.Model) else load_model_file(head, "head")
    if _is_multitask(head_model) or len(head_model.input_shape) != 2:
        raise ValueError(
            f"head: {head if not isinstance(head, keras.Model) else head_model.name} is not an MLP head on "
            f"features (it takes images, or gives several outputs: a stage-1 model goes to "
            f"{by_caller('--model', 'model=')}, the head to {by_caller('--head', 'head=')}, as deepfl-train-mlp saved "
            "it)"
        )
    if normalizer is None and not isinstance(head, keras.Model):
        normalizer = head_normalizer(head)
        if normalizer is None and Path(head).is_file():
            _check_unnormalised_head(head)
    elif normalizer is None:
        import warnings

        warnings.warn(
            "head: a head given as a loaded model carries no normaliser, so the scores stay on the head's "
            "normalised scale (z-scores for deepfl-train-mlp's heads); pass normalizer="
            "deepfl.export.head_normalizer(<head file>), or the head's file instead of the model",
            UserWarning,
            stacklevel=3,
        )
    scaling = _recorded_scaling(head) if loaded == IMAGENET_BACKBONE and not isinstance(head, keras.Model) else None
    return combine(as_extractor(loaded, scaling), head_model, normalizer)


def export_model(
    model: str | os.PathLike | keras.Model,
    head: str | os.PathLike | keras.Model,
    out_path: str | os.PathLike,
    normalizer: TargetNormalizer | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes the one-file scorer: `model` is the trained multi-task model (or its MLSP extractor, or a backbone
    weights file), `head` the MLP head; the normaliser defaults to the one saved beside a head file. An existing
    `out_path` (another head's scorer, say) is refused unless `overwrite`: scores made with it would change
    without a word."""
    if not overwrite and Path(out_path).exists():
        raise FileExistsError(f"out_path: {out_path} exists; pass overwrite=True to replace it, or another path")
    return save_model_atomic(load_scorer(model, head, normalizer), out_path)


def _check_unnormalised_head(head: str | os.PathLike) -> None:
    """For a head file with no normaliser beside it: raises when the settings its job stored beside it say it was
    trained on normalised scores (its normaliser was lost: the scores would be z-scores); logs one warning
    when there are no such settings (a head copied away from its folder, or made elsewhere: its raw outputs are
    used, which are z-scores for a head of deepfl-train-mlp)."""
    from deepfl.errors import DeepflError

    settings = head_settings(head)
    expected = normalizer_path(head)
    if settings.get("normalize_targets", True) is False:
        return
    if settings:
        raise DeepflError(
            f"head: {head} was trained on normalised scores (its folder's settings say so) but its normaliser "
            f"{expected} is missing: without it the scores would be z-scores; restore it beside the head (rerun "
            f"{settings['job']} with its flags: it trains that split again)"
        )
    logging.getLogger("deepfl").warning(
        "head: %s has no normaliser beside it (%s): its outputs are used as they are, which for a head of "
        "deepfl-train-mlp are z-scores, not scores; copy the head's .normalizer.json beside it",
        head,
        expected.name,
    )


def head_settings(head: str | os.PathLike) -> dict:
    """What the job that trained a head stored beside it, with `job` naming that job: deepfl-train-mlp's settings
    (`MLP_SETTINGS_FILE`: its flags, `features` the feature cache) or deepfl-reproduce's
    (`REPRODUCE_SETTINGS_FILE`: given here as `normalize_targets`, `source` the features' recorded source, and
    `record` the file), their paths where they lie now if the head's folder moved with them since
    (`jobs.recorded_path`); {} when there are none (or they cannot be read)."""
    import json

    from deepfl.jobs import RECORD_FOLDER, recorded_path
    from deepfl.protocol_records import MLP_SETTINGS_FILE, REPRODUCE_SETTINGS_FILE

    for name, job in ((MLP_SETTINGS_FILE, "deepfl-train-mlp"), (REPRODUCE_SETTINGS_FILE, "deepfl-reproduce")):
        record = Path(head).parent / name
        try:
            settings = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(settings, dict):
            continue
        if job == "deepfl-reproduce":
            config = settings.get("head") if isinstance(settings.get("head"), dict) else {}
            return {
                "job": job,
                "record": str(record),
                "source": settings.get("features"),
                "data_dir": recorded_path(record, settings, "data_dir"),
                **{key: config[key] for key in ("normalize_targets",) if key in config},
            }
        paths = {key: recorded_path(record, settings, key) for key in ("data_dir", "features")}
        return {"job": job, **{key: value for key, value in {**settings, **paths}.items() if key != RECORD_FOLDER}}
    return {}


def _check_backbone_scaling(model: str | os.PathLike, head: str | os.PathLike, source: str, features: Path) -> None:
    """Raises `DeepflError` when a weights file as `model` would scale pixels otherwise than the backbone whose
    features the head was trained on (`features.extractor_source` records the scaling): a head on the ImageNet
    baseline's features ([-1, 1] pixels) exported with Keras' ImageNet weights file (read with x / 255) would score
    every image wrong without an error."""
    from deepfl.architectures import default_pixel_scaling
    from deepfl.errors import DeepflError
    from deepfl.features import source_pixel_scaling
    from deepfl.models.weights_file import is_weights_file

    recorded = source_pixel_scaling(source)
    if recorded is None or not is_weights_file(model):
        return
    scaling = default_pixel_scaling(str(model))
    if recorded != scaling:
        raise DeepflError(
            f"head: {head} was trained on features of {source} (recorded in {features}), but a scorer of the "
            f"weights file {setting('model')} {model} scales pixels {scaling} "
            f"({'x / 255' if scaling == 'unit' else '[-1, 1]'}): its scores would be wrong; "
            + (
                f"for the ImageNet baseline's head, pass {setting('model', IMAGENET_BACKBONE)}"
                if _is_imagenet_source(source)
                else f"train a head on features extracted with {by_caller('--weights FILE', 'weights=FILE')} (the "
                "same scaling)"
            )
        )


def _is_imagenet_source(source: str) -> bool:
    """Whether a feature cache's recorded source (`features.extractor_source`) is the ImageNet backbone."""
    return source.startswith("backbone(weights=imagenet,")


def _recorded_source(head: str | os.PathLike) -> tuple[str, Path] | None:
    """(the source recorded for the features a head was trained on, the file that records it): from the settings
    deepfl-reproduce stored beside the head, or from the feature cache named by those deepfl-train-mlp stored;
    None where they are missing."""
    from deepfl.features import cache_source

    settings = head_settings(head)
    if isinstance(settings.get("source"), str):
        return settings["source"], Path(settings["record"])
    try:
        features = Path(settings["features"])
        return cache_source(features), features
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _recorded_scaling(head: str | os.PathLike) -> str | None:
    """The pixel scaling recorded for the backbone whose features a head was trained on (None: not recorded)."""
    from deepfl.features import source_pixel_scaling

    recorded = _recorded_source(head)
    return source_pixel_scaling(recorded[0]) if recorded else None


def check_head_matches_model(model: str | os.PathLike, head: str | os.PathLike) -> None:
    """Raises `DeepflError` when the head was trained on features of another model than `model`.

    deepfl-train-mlp records the feature cache a head was trained on (`protocol.MLP_SETTINGS_FILE` beside the
    head), and the cache records the model file it was extracted with (path and content fingerprint);
    deepfl-reproduce records that source itself (`REPRODUCE_SETTINGS_FILE`). When the records are there and name a
    model file whose fingerprint differs from `model`'s, or the ImageNet or a random backbone (no file is that
    model; `IMAGENET_BACKBONE` pairs with the ImageNet one alone), the exported scorer would feed the head features
    it has never seen and score nonsense without an error; elsewhere nothing is known
    and nothing is checked."""
    from deepfl.errors import DeepflError
    from deepfl.features import source_fingerprint
    from deepfl.fileio import file_fingerprint

    found = _recorded_source(head)
    if found is None:
        return
    source, features = found
    trained_on = f"head: {head} was trained on features of {source} (recorded in {features})"
    if model == IMAGENET_BACKBONE:
        if not _is_imagenet_source(source):
            raise DeepflError(
                f"{trained_on}, not of the ImageNet backbone ({setting('model', IMAGENET_BACKBONE)}): "
                + (
                    "a random backbone's features have no model file to pair with; train a head on features of "
                    "the model you will score with"
                    if source.startswith("backbone(") and source_fingerprint(source) is None
                    else "pair the head with that model"
                )
            )
        return
    _check_backbone_scaling(model, head, source, features)
    recorded = source_fingerprint(source)
    if recorded is None and source.startswith("backbone("):  # ImageNet or random weights: no file is that model
        raise DeepflError(
            f"{trained_on}, not of {setting('model')} {model}: "
            + (
                f"for the ImageNet baseline's head, pass {setting('model', IMAGENET_BACKBONE)}"
                if _is_imagenet_source(source)
                else "a random backbone's features have no model file to pair with; train a head on features of "
                "this model"
            )
        )
    if recorded is None or not Path(model).is_file():
        return
    fingerprint = file_fingerprint(model)
    if recorded != fingerprint:
        raise DeepflError(
            f"{trained_on}, not of {setting('model')} {model} ({fingerprint}): pair the head with that model, or "
            "train a head on features of this one (a scorer exported by deepfl-export holds its head already: use "
            "it without one)"
        )
