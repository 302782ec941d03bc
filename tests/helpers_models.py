"""Tiny Keras models and comparisons of saved models that several test modules share."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import killrestart


def tiny_extractor():
    """Image [0, 255] -> 7 floats: two pooled levels, like a miniature MLSP (fixed seed)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    a = keras.layers.Conv2D(4, 3, activation="relu")(x)
    b = keras.layers.Conv2D(3, 3, strides=2, activation="relu")(a)
    pooled = [keras.layers.GlobalAveragePooling2D()(a), keras.layers.GlobalAveragePooling2D()(b)]
    out = keras.layers.Concatenate()(pooled)
    return keras.Model(inp, out)


def keras_digest(path: Path) -> str:
    """sha256 of a .keras archive's members (name + bytes), blind to the two per-process artefacts Keras writes:
    the save date in metadata.json and `shared_object_id` values (Python `id()`s) in config.json, which are
    renumbered in order of appearance. Weights (model.weights.h5) are compared byte for byte."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            data = archive.read(name)
            if name == "metadata.json":
                meta = json.loads(data)
                meta.pop("date_saved", None)
                data = json.dumps(meta, sort_keys=True).encode()
            elif name == "config.json":
                ids: dict[str, str] = {}
                data = re.sub(
                    rb'"shared_object_id": (\d+)',
                    lambda m: b'"shared_object_id": ' + ids.setdefault(m.group(1), str(len(ids))).encode(),  # noqa: B023
                    data,
                )  # (re.sub calls the lambda within this iteration, on this `ids`)
            digest.update(name.encode() + b"\0" + data)
    return digest.hexdigest()


def assert_same_training_outputs(reference: Path, candidate: Path) -> int:
    """Byte-identical files, .keras by content; returns the number of files compared."""
    killrestart.assert_same_tree(
        reference, candidate, ignore=lambda rel: killrestart.is_temp(rel) or rel.suffix == ".keras"
    )
    ref_models = sorted(p.relative_to(reference) for p in reference.rglob("*.keras") if not killrestart.is_temp(p))
    new_models = sorted(p.relative_to(candidate) for p in candidate.rglob("*.keras") if not killrestart.is_temp(p))
    assert ref_models == new_models, (ref_models, new_models)
    for rel in ref_models:
        assert keras_digest(reference / rel) == keras_digest(candidate / rel), f"{rel}: model content differs"
    return len(killrestart.tree_digest(reference))


def keras_weight_groups(keras_file: Path) -> set[str]:
    """Top-level groups of the weights inside a .keras archive ('optimizer' when it holds optimizer state)."""
    import h5py

    with zipfile.ZipFile(keras_file) as archive:
        data = archive.read("model.weights.h5")
    with h5py.File(io.BytesIO(data), "r") as weights:
        return set(weights.keys())


def run_interrupted_after_epoch(run, epoch: int, monkeypatch) -> None:
    """Calls `run()` (a training job) with a KeyboardInterrupt raised just after epoch `epoch` (counted from 1)
    has written its checkpoint, as a Ctrl-C at that moment would; the job must let it through."""
    import pytest

    from deepfl.training.callbacks import EpochEnd

    finish_epoch = EpochEnd.on_epoch_end

    def stop_after(self, index, logs=None):
        finish_epoch(self, index, logs)
        if index == epoch - 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(EpochEnd, "on_epoch_end", stop_after)
        with pytest.raises(KeyboardInterrupt):
            run()
