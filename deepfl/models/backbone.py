"""InceptionResNetV2 backbone with multi-level spatially pooled (MLSP) features, pure Keras 3.

MLSP (Hosu et al. 2019; DeepFL-IQA stage 1 and 2) = global average pooling of the 43 blocks of
InceptionResNetV2 whose name contains "mixed", concatenated: 16,928 features per image.

Pixel scaling: models take float32 RGB in [0, 255] and scale inside the model. "unit" (x / 255) is what the
authors' DeepFL-IQA demo feeds their fine-tuned network (and so what it was trained with); Keras' own
`preprocess_input` for the ImageNet weights maps to [-1, 1] ("symmetric").
`deepfl.architectures.default_pixel_scaling` picks the one that matches the weights: "symmetric" for the ImageNet
weights, "unit" otherwise.

Weights: "imagenet" is Keras' file (`IMAGENET_WEIGHTS_FILE`), fetched into the Keras cache folder
(`$KERAS_HOME/models/`, default `~/.keras/models/`) once; offline, the build fails with one line saying which file
to put where. A local file is loaded by `deepfl.models.weights_file` (Keras 2 HDF5 such as the authors'
`quality-mlsp-mtl-mse-loss.hdf5`, or a Keras 3 `.weights.h5`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import keras

from deepfl.architectures import ARCHITECTURES, PAPER_ARCHITECTURE, check_architecture
from deepfl.models.banded_conv import band_large_convolutions, onednn_fallback_possible
from deepfl.models.layers import MultiLevelPooling, PixelScaling
from deepfl.models.weights_file import WeightsFileError, load_weights_file
from deepfl.wording import by_caller

MLSP_LAYER_NAMES: tuple[str, ...] = (
    ("mixed_5b",)
    + tuple(f"block35_{i}_mixed" for i in range(1, 11))
    + ("mixed_6a",)
    + tuple(f"block17_{i}_mixed" for i in range(1, 21))
    + ("mixed_7a",)
    + tuple(f"block8_{i}_mixed" for i in range(1, 11))
)
MIN_INPUT_SIZE = 75

PIXEL_SCALINGS: dict[str, tuple[float, float]] = {
    "unit": (1.0 / 255.0, 0.0),  # x / 255, the authors' choice
    "symmetric": (2.0 / 255.0, -1.0),  # Keras' preprocess_input for InceptionResNetV2 ([-1, 1])
}
IMAGENET_WEIGHTS_FILE = "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/inception_resnet_v2/"
IMAGENET_WEIGHTS_MD5 = "d19885ff4a710c122648d3b5c3b684e4"  # the hash Keras checks for this file
# Channels of the "small" CNN's five stages (each halves the resolution): MLSP of 16+32+64+128+192 = 432 features.
SMALL_WIDTHS = (16, 32, 64, 128, 192)
MIXED_PRECISION_POLICIES = (None, "float32", "mixed_bfloat16", "mixed_float16")
BACKBONE_NAME = "mlsp_backbone"


@contextlib.contextmanager
def dtype_policy(policy: str | None) -> Iterator[None]:
    """Temporarily sets Keras' global dtype policy (layers record it, so it stays with the built model)."""
    if policy not in MIXED_PRECISION_POLICIES:
        raise ValueError(f"mixed_precision: must be one of {MIXED_PRECISION_POLICIES}, got {policy!r}")
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _check_input_shape(input_shape: Sequence[int | None] | None, minimum: int) -> tuple:
    if input_shape is None:
        return (None, None, 3)
    shape = tuple(None if s is None else int(s) for s in input_shape)
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"input_shape: must be (height, width, 3), got {input_shape!r}")
    if any(s is not None and s < minimum for s in shape[:2]):
        raise ValueError(f"input_shape: height and width must be >= {minimum}, got {input_shape!r}")
    return shape


def _tiny_network(input_shape: tuple, seed: int) -> tuple[keras.Model, tuple[str, ...]]:
    """A ~6k-parameter CNN with three "mixed" blocks: same interfaces as IRV2, for smoke tests and CI only."""
    inputs = keras.Input(input_shape)
    x = inputs
    names = []
    for i, channels in enumerate((8, 16, 32), start=1):
        x = keras.layers.Conv2D(
            channels,
            3,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=keras.initializers.HeNormal(seed + i),
            name=f"tiny_conv_{i}",
        )(x)
        x = keras.layers.BatchNormalization(name=f"tiny_bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"tiny_{i}_mixed")(x)
        names.append(f"tiny_{i}_mixed")
    return keras.Model(inputs, x, name="tiny"), tuple(names)


def _small_network(input_shape: tuple, seed: int) -> tuple[keras.Model, tuple[str, ...]]:
    """A CNN of five stages (3x3 conv, then 3x3 conv with stride 2, each with BatchNorm + ReLU; 0.85M weights)
    whose stage outputs are its "mixed" blocks: IRV2's MLSP interface at a cost that lets the demo learn weak
    labels on a CPU in minutes."""
    inputs = keras.Input(input_shape)
    x = inputs
    names = []
    for i, channels in enumerate(SMALL_WIDTHS, start=1):
        for j, stride in enumerate((1, 2)):
            x = keras.layers.Conv2D(
                channels,
                3,
                strides=stride,
                padding="same",
                use_bias=False,
                kernel_initializer=keras.initializers.HeNormal(seed + 10 * i + j),
                name=f"small_conv_{i}{'ab'[j]}",
            )(x)
            x = keras.layers.BatchNormalization(name=f"small_bn_{i}{'ab'[j]}")(x)
            x = keras.layers.Activation("relu", name=f"small_{i}_mixed" if stride == 2 else f"small_relu_{i}a")(x)
        names.append(f"small_{i}_mixed")
    return keras.Model(inputs, x, name="small"), tuple(names)


def keras_models_dir() -> Path:
    """Where Keras keeps downloaded application weights: `$KERAS_HOME/models`, by default `~/.keras/models`."""
    return Path(os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser()) / "models"


def imagenet_weights_path() -> str:
    """The local path of Keras' ImageNet weights file, fetched into `keras_models_dir()` if absent.

    Without network and without the file this raises one WeightsFileError naming the file, the folder to put it
    in, and the alternative of a local weights file, instead of Keras' multi-line "URL fetch failure".
    """
    folder = keras_models_dir()
    try:  # Keras prints "Downloading data from" and its bar on stdout: to stderr, so stdout holds only results
        with contextlib.redirect_stdout(sys.stderr):
            return keras.utils.get_file(
                IMAGENET_WEIGHTS_FILE,
                IMAGENET_WEIGHTS_URL + IMAGENET_WEIGHTS_FILE,
                cache_dir=str(folder.parent),
                cache_subdir=folder.name,
                file_hash=IMAGENET_WEIGHTS_MD5,
            )
    except Exception as exc:  # keras.utils.get_file raises a bare Exception on fetch failures
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        # Keras fetches again a file whose hash is not the expected one (an incomplete or other copy)
        where = (
            f"is in {folder}/ but is not the expected file (MD5 {IMAGENET_WEIGHTS_MD5}: an incomplete or other "
            "copy?) and cannot be downloaded again"
            if (folder / IMAGENET_WEIGHTS_FILE).is_file()
            else f"is not in {folder}/ and cannot be downloaded"
        )
        raise ImageNetWeightsMissing(
            f"ImageNet weights: {IMAGENET_WEIGHTS_FILE} {where} ({reason})",
            f"copy it there from {IMAGENET_WEIGHTS_URL} (KERAS_HOME moves the folder)",
            f"use {by_caller('--weights FILE', 'weights=FILE')} with a local weights file, or "
            f"{by_caller('--weights=none', 'weights=None')} to start from random weights",
        ) from None


class ImageNetWeightsMissing(WeightsFileError):
    """Keras' ImageNet weights file is not there and cannot be fetched: `problem` (the file, where, why), `fetch`
    (how to put it there) and the ways around it, which a caller with other arguments replaces with its own
    (`deepfl-predict --model imagenet` has no --weights)."""

    def __init__(self, problem: str, fetch: str, alternatives: str):
        super().__init__(f"{problem}; {fetch}, {alternatives}")
        self.problem, self.fetch = problem, fetch


def _inception_resnet_v2(weights: str | None, shape: tuple) -> keras.Model:
    """InceptionResNetV2(include_top=False) with `weights`: "imagenet", None, or a local file."""
    path = imagenet_weights_path() if weights == "imagenet" else weights
    network = keras.applications.InceptionResNetV2(include_top=False, weights=None, input_shape=shape)
    if path:
        load_weights_file(network, path)
    return network


def mlsp_backbone(
    network: keras.Model,
    layer_names: Sequence[str] = MLSP_LAYER_NAMES,
    pixel_scaling: str = "unit",
    name: str = BACKBONE_NAME,
) -> keras.Model:
    """Wraps a network (sharing its weights): float32 RGB images in [0, 255] -> pixel scaling -> MLSP features."""
    if pixel_scaling not in PIXEL_SCALINGS:
        raise ValueError(f"pixel_scaling: must be one of {tuple(PIXEL_SCALINGS)}, got {pixel_scaling!r}")
    scale, offset = PIXEL_SCALINGS[pixel_scaling]
    blocks = keras.Model(network.input, [network.get_layer(n).output for n in layer_names], name=network.name)
    inputs = keras.Input(tuple(network.input.shape[1:]), name="image")
    x = PixelScaling(scale, offset, name="pixel_scaling")(inputs)
    features = MultiLevelPooling(name="mlsp")(blocks(x))
    return keras.Model(inputs, features, name=name)


def build_backbone(
    weights: str | None = "imagenet",
    input_shape: Sequence[int | None] | None = None,
    pixel_scaling: str = "unit",
    arch: str = PAPER_ARCHITECTURE,
    mixed_precision: str | None = None,
    trainable: bool = True,
    seed: int = 0,
    name: str = BACKBONE_NAME,
) -> keras.Model:
    """Builds the MLSP feature extractor: float32 RGB images in [0, 255] -> [N, 16,928] features.

    `weights`: "imagenet" (Keras' file, see `imagenet_weights_path`), None (random init, for tests) or a local
    weights file of `InceptionResNetV2(include_top=False)` (Keras 2 HDF5, e.g. the authors' release, or Keras 3
    `.weights.h5`). `input_shape` (H, W, 3) with H, W >= 75, or None for any size >= 75 (extraction at native
    resolution). `arch="small"` swaps in a small CNN with the same interfaces (432 features; learns weak labels on
    a CPU in minutes), `arch="tiny"` a smaller one for smoke tests only.
    `mixed_precision` sets the dtype policy of the built layers. Where oneDNN's slow fallback threatens, its
    convolutions run in bands on very large images (`deepfl.models.banded_conv`).
    """
    if pixel_scaling not in PIXEL_SCALINGS:
        raise ValueError(f"pixel_scaling: must be one of {tuple(PIXEL_SCALINGS)}, got {pixel_scaling!r}")
    check_architecture(arch, weights)
    shape = _check_input_shape(input_shape, MIN_INPUT_SIZE if arch == PAPER_ARCHITECTURE else 8)
    with dtype_policy(mixed_precision):
        if arch == PAPER_ARCHITECTURE:
            network = _inception_resnet_v2(weights or None, shape)
            layer_names = MLSP_LAYER_NAMES
        elif arch == "small":
            network, layer_names = _small_network(shape, seed)
        else:
            network, layer_names = _tiny_network(shape, seed)
        backbone = mlsp_backbone(network, layer_names, pixel_scaling, name)
    if not trainable:
        set_trainable(backbone, False)
    if onednn_fallback_possible():
        band_large_convolutions(backbone)
    return backbone


def set_trainable(layer: keras.layers.Layer, trainable: bool) -> None:
    """Sets `trainable` on a layer and, explicitly, on every layer nested in it (frozen BatchNorm layers then
    run in inference mode)."""
    layer.trainable = bool(trainable)
    for sub in getattr(layer, "layers", []):
        set_trainable(sub, trainable)


def backbone_settings(backbone: keras.Model) -> dict:
    """Recovers `build_backbone` arguments (arch, pixel_scaling, input_shape) from a built backbone."""
    scaling = backbone.get_layer("pixel_scaling")
    pixel = next(
        (
            k
            for k, (s, o) in PIXEL_SCALINGS.items()
            if abs(s - scaling.scale) < 1e-12 and abs(o - scaling.offset) < 1e-12
        ),
        None,
    )
    if pixel is None:
        raise ValueError(f"backbone: pixel scaling ({scaling.scale}, {scaling.offset}) is not a known one")
    arch = next(layer.name for layer in backbone.layers if layer.name in ARCHITECTURES)
    return {"arch": arch, "pixel_scaling": pixel, "input_shape": tuple(backbone.input.shape[1:])}
