"""Loads a backbone weights file: Keras 2 HDF5 (the authors' `quality-mlsp-mtl-mse-loss.hdf5`, Keras' own
ImageNet file) or a Keras 3 `.weights.h5`, with one-line errors naming the first layer that does not fit.

A Keras 2 file lists its layers in the root attribute `layer_names` (or under the group `model_weights` in a
full-model save), each layer group listing its arrays in the attribute `weight_names` (`conv2d_1/kernel:0`).
Keras 2 numbered unnamed layers from 1 per session (`conv2d_1`, `batch_normalization_1`), Keras 3 from its own
counter (`conv2d`, `conv2d_7`), so layers are paired in order (the order both Keras versions build
InceptionResNetV2 in, the way Keras itself loads these files) and each pair is checked: same kind of name (the
name without its number), the same arrays by name, the same shapes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import keras
import numpy as np

from deepfl.errors import DeepflError


class WeightsFileError(DeepflError, ValueError):
    """A weights file is missing, not HDF5, or does not fit the model it is loaded into."""


def _strings(group: h5py.Group, name: str) -> list[str]:
    """A string-list attribute as Keras 2 wrote it: whole, or chunked as `name0`, `name1`, ... when large."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _keras2_root(handle: h5py.File) -> h5py.Group | None:
    """The group holding `layer_names` (root of a weights file, `model_weights` of a full-model save), or None."""
    for group in (handle, handle.get("model_weights")):
        if isinstance(group, h5py.Group) and (_strings(group, "layer_names")):
            return group
    return None


def _kind(layer_name: str) -> str:
    """A layer name without the number Keras appends to unnamed layers: `conv2d_12` -> `conv2d`."""
    return re.sub(r"_\d+$", "", layer_name)


def _short(weight_name: str) -> str:
    """`conv2d_1/kernel:0` (Keras 2) or `kernel` (Keras 3) -> `kernel`."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def saved_layers(path: str | os.PathLike) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The layers with weights of a Keras 2 HDF5 file, in file order: [(layer name, {array name: array})]."""
    with h5py.File(path, "r") as handle:
        root = _keras2_root(handle)
        if root is None:
            raise WeightsFileError(f"weights: {path}: not a Keras 2 HDF5 weights file (no 'layer_names' attribute)")
        layers = []
        for name in _strings(root, "layer_names"):
            if name not in root:
                raise WeightsFileError(f"weights: {path}: layer {name!r} is listed in 'layer_names' but has no group")
            group = root[name]
            weight_names = _strings(group, "weight_names")
            if weight_names:
                arrays = {}
                for weight in weight_names:
                    if weight not in group:
                        raise WeightsFileError(f"weights: {path}: layer {name!r} lists array {weight!r} but has none")
                    arrays[_short(weight)] = np.asarray(group[weight])
                layers.append((name, arrays))
    return layers


def load_keras2_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Loads a Keras 2 HDF5 weights file into `model`, pairing layers with weights in order (as Keras does).

    Raises WeightsFileError naming the first layer that does not fit (count, kind of name, array names or
    shapes); nothing is assigned unless every layer fits.
    """
    saved = saved_layers(path)
    targets = [layer for layer in model.layers if layer.weights]
    assignments = []
    for k, layer in enumerate(targets):
        if k >= len(saved):
            raise WeightsFileError(
                f"weights: {path}: holds {len(saved)} layers with weights, {model.name} needs "
                f"{len(targets)}; first without weights in the file: {layer.name!r}"
            )
        name, arrays = saved[k]
        where = f"weights: {path}: layer #{k + 1} {name!r} of the file does not fit {layer.name!r} of {model.name}"
        if _kind(name) != _kind(layer.name):
            raise WeightsFileError(f"{where} (different layer)")
        variables = {_short(v.name): v for v in layer.weights}
        if sorted(arrays) != sorted(variables):
            raise WeightsFileError(f"{where}: arrays {sorted(arrays)} vs {sorted(variables)}")
        for short, variable in variables.items():
            if tuple(arrays[short].shape) != tuple(variable.shape):
                raise WeightsFileError(
                    f"{where}: {short} shape {tuple(arrays[short].shape)} vs {tuple(variable.shape)}"
                )
            assignments.append((variable, arrays[short]))
    if len(saved) > len(targets):
        raise WeightsFileError(
            f"weights: {path}: holds {len(saved)} layers with weights, {model.name} has "
            f"{len(targets)}; first extra layer in the file: {saved[len(targets)][0]!r}"
        )
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))


def is_keras2_file(path: str | os.PathLike) -> bool:
    """True if `path` is an HDF5 file in the Keras 2 layout (weights file or full-model save)."""
    if not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as handle:
        return _keras2_root(handle) is not None


def is_weights_file(path: str | os.PathLike) -> bool:
    """True if `path` is an HDF5 file (a weights file, Keras 2 or 3), not a `.keras` archive (a zip)."""
    path = Path(path).expanduser()
    return path.is_file() and h5py.is_hdf5(path)


def load_weights_file(model: keras.Model, path: str | os.PathLike) -> None:
    """Loads a weights file into `model`: Keras 2 HDF5 (own checks) or a Keras 3 `.weights.h5` (Keras' loader)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsFileError(f"weights: {path}: no such file (give 'imagenet', a weights file, or 'none')")
    if not h5py.is_hdf5(path):
        raise WeightsFileError(f"weights: {path}: not an HDF5 weights file (Keras 2 .h5/.hdf5 or Keras 3 .weights.h5)")
    if is_keras2_file(path):
        load_keras2_weights(model, path)
        return
    try:
        model.load_weights(path)
    except (ValueError, KeyError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsFileError(f"weights: {path}: does not fit {model.name} ({first})") from None
