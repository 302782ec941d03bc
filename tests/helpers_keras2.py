"""Writes Keras 2 HDF5 files (weights file or full-model save) from a Keras 3 model, for the loader's tests.

Keras 2 named unnamed layers `<kind>_<n>` with n counted from 1 in creation order per kind (`conv2d_1`,
`batch_normalization_1`); Keras 3 counts from its own session counter (`conv2d`, `conv2d_5`, ...), which also
follows creation order. Layers are written in the model's layer order with `layer_names` / `weight_names`
attributes and the arrays at `<layer>/<layer>/<array>:0`, as Keras 2's `save_weights` laid them out.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import h5py
import keras
import numpy as np


def _snake(class_name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", class_name).lower()


def keras2_names(model: keras.Model) -> dict[str, str]:
    """{Keras 3 layer name: the name Keras 2 would have given it} (explicit names are kept)."""
    numbered: dict[str, list[tuple[int, str]]] = defaultdict(list)
    names = {}
    for layer in model.layers:
        kind = _snake(type(layer).__name__)
        match = re.fullmatch(re.escape(kind) + r"(?:_(\d+))?", layer.name)
        if match:
            numbered[kind].append((int(match.group(1) or 0), layer.name))
        else:
            names[layer.name] = layer.name
    for kind, entries in numbered.items():
        for n, (_, name) in enumerate(sorted(entries), start=1):
            names[name] = f"{kind}_{n}"
    return names


def _write_layers(
    group: h5py.Group,
    model: keras.Model,
    names: dict[str, str],
    change: dict[str, np.ndarray] | None = None,
    skip: str | None = None,
) -> None:
    change = change or {}
    layers = [layer for layer in model.layers if layer.name != skip]
    group.attrs["layer_names"] = np.array([names[layer.name].encode("utf8") for layer in layers])
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = b"2.2.4"
    for layer in layers:
        name = names[layer.name]
        layer_group = group.create_group(name)
        weight_names = []
        for variable in layer.weights:
            weight_name = f"{name}/{variable.name}:0"
            value = change.get(weight_name, keras.ops.convert_to_numpy(variable))
            layer_group.create_dataset(weight_name, data=value)
            weight_names.append(weight_name.encode("utf8"))
        layer_group.attrs["weight_names"] = np.array(weight_names, dtype="S")


def write_keras2_weights(
    model: keras.Model,
    path: Path,
    full_model: bool = False,
    change: dict[str, np.ndarray] | None = None,
    skip: str | None = None,
) -> dict[str, str]:
    """Writes `model`'s weights in the Keras 2 layout; `full_model` puts them under `model_weights` beside a
    `model_config`, as `model.save("x.h5")` did. `change` replaces arrays by Keras 2 weight name, `skip` leaves
    out one layer (Keras 3 name). Returns the name map (Keras 3 -> Keras 2)."""
    names = keras2_names(model)
    with h5py.File(path, "w") as handle:
        if full_model:
            handle.attrs["model_config"] = json.dumps({"class_name": "Model", "config": {"name": model.name}})
            handle.attrs["keras_version"] = b"2.2.4"
            handle.attrs["backend"] = b"tensorflow"
            _write_layers(handle.create_group("model_weights"), model, names, change, skip)
        else:
            _write_layers(handle, model, names, change, skip)
    return names
