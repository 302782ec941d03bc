"""2-D convolutions over very large images, run in row bands so that oneDNN keeps a fast kernel.

With TensorFlow's oneDNN kernels on (deepfl turns them on, `deepfl/__init__.py`) and an x86 CPU without
AVX-512, a convolution on NHWC data runs as oneDNN's im2col GEMM. When one image's input holds about 2^27
values or more, that kernel's scratchpad limit is exceeded and oneDNN falls back to its reference convolution
(`ref:any` in ONEDNN_VERBOSE), two orders of magnitude slower. Splitting the padded input into overlapping row
bands, stacked along the batch axis, computes every output pixel from the same inputs with the same kernel as
the whole convolution, while each band stays far below the limit.

Banding needs the input's height and width at trace time: a layer called on shapes unknown there (the one trace
for every image size, `any_size_predictor`) convolves whole, as before. `batch_predictor` gives large
images static shapes where the fallback can happen.
"""

from __future__ import annotations

import functools
import os
import platform
import weakref
from collections import OrderedDict
from collections.abc import Callable

import keras
import numpy as np

# Per-image padded input values from which oneDNN's GEMM convolution gives up (ONEDNN_MAX_CPU_ISA=AVX2, 3x3
# stride 2, 16 channels: 2^27 - 28,672 values ran at full speed, 2^27 + 64,016 fell back).
ONEDNN_GEMM_LIMIT = 2**27
# The most values one band of one image's padded input holds: a quarter of that limit.
BAND_VALUES = ONEDNN_GEMM_LIMIT // 4
# The most values per image pixel that a convolution's input holds in deepfl's networks (the `small` CNN's first
# stage: 16 channels at full resolution; InceptionResNetV2's stem: 32 channels at half resolution, 8): images
# with fewer pixels than BAND_VALUES / this never need bands.
VALUES_PER_PIXEL = 16
LARGE_IMAGE_PIXELS = BAND_VALUES // VALUES_PER_PIXEL
# Per-shape traced functions a `batch_predictor` keeps for large images.
TRACED_SHAPES = 4


def band_large_convolutions(model: keras.Model, band_values: int = BAND_VALUES) -> int:
    """Makes every `Conv2D` in `model` (nested models included) convolve inputs of more than `band_values`
    values per image in row bands, when called on static shapes; returns how many layers it changed (0 on a
    second call). Other calls run exactly as before. Only under the TensorFlow backend (the one with oneDNN);
    channels-first, grouped and 1x1 stride-1 layers are left alone (the last need no im2col)."""
    if keras.backend.backend() != "tensorflow":
        return 0
    changed = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not _bandable(layer) or getattr(layer, "_deepfl_banded", False):
            continue
        object.__setattr__(layer, "convolution_op", _banded_op(layer, layer.convolution_op, band_values))
        object.__setattr__(layer, "_deepfl_banded", True)
        changed += 1
    return changed


def _bandable(layer: keras.layers.Layer) -> bool:
    if not isinstance(layer, keras.layers.Conv2D) or layer.data_format != "channels_last" or layer.groups != 1:
        return False
    return max(layer.kernel_size) > 1 or max(layer.strides) > 1


def _banded_op(layer: keras.layers.Conv2D, whole: Callable, band_values: int) -> Callable:
    def convolution_op(inputs, kernel):
        return banded_conv2d(
            inputs, kernel, layer.strides, layer.padding, layer.dilation_rate, band_values, whole=whole
        )

    return convolution_op


def banded_conv2d(
    inputs,
    kernel,
    strides: tuple[int, int],
    padding: str,
    dilation_rate: tuple[int, int],
    band_values: int = BAND_VALUES,
    whole: Callable | None = None,
):
    """The NHWC convolution of `inputs` with `kernel` ("same" or "valid" padding, as Keras), computed in row bands
    of at most `band_values` padded values per image (a band holds at least one output row). `whole(inputs,
    kernel)` computes it in one piece (default: `keras.ops.conv`) and is used when one band would do or the
    height or width is unknown."""
    if whole is None:

        def whole(x, k):
            return keras.ops.conv(x, k, strides, padding, "channels_last", dilation_rate)

    height, width = inputs.shape[1], inputs.shape[2]
    if height is None or width is None:
        return whole(inputs, kernel)
    plan = _BandPlan(height, width, kernel.shape, strides, padding, dilation_rate, band_values)
    if plan.bands <= 1:
        return whole(inputs, kernel)
    return plan.convolve(inputs, kernel)


class _BandPlan:
    """Where the bands of one convolution start and end, for a known height and width."""

    def __init__(self, height, width, kernel_shape, strides, padding, dilation_rate, band_values):
        self.strides, self.dilation_rate = tuple(strides), tuple(dilation_rate)
        extent_h = (kernel_shape[0] - 1) * dilation_rate[0] + 1
        extent_w = (kernel_shape[1] - 1) * dilation_rate[1] + 1
        self.out_h, self.pad_top, self.pad_bottom = _padding(height, extent_h, strides[0], padding)
        self.out_w, self.pad_left, self.pad_right = _padding(width, extent_w, strides[1], padding)
        self.padded_w = width + self.pad_left + self.pad_right
        rows = max(band_values // (self.padded_w * kernel_shape[2]), extent_h)
        self.band_out_rows = (rows - extent_h) // strides[0] + 1
        self.bands = -(-self.out_h // self.band_out_rows)
        self.band_rows = (self.band_out_rows - 1) * strides[0] + extent_h
        self.band_step = self.band_out_rows * strides[0]
        # The last band may read past the padded input: zeros, whose output rows are cut off.
        self.needed_h = (self.bands - 1) * self.band_step + self.band_rows
        self.extra_h = max(self.needed_h - (height + self.pad_top + self.pad_bottom), 0)

    def convolve(self, inputs, kernel):
        import tensorflow as tf

        rows = [self.pad_top, self.pad_bottom + self.extra_h]
        padded = tf.pad(inputs, [[0, 0], rows, [self.pad_left, self.pad_right], [0, 0]])[:, : self.needed_h]
        bands = tf.signal.frame(padded, self.band_rows, self.band_step, axis=1)
        batch, channels = tf.shape(inputs)[0], inputs.shape[3]
        bands = tf.reshape(bands, tf.stack([batch * self.bands, self.band_rows, self.padded_w, channels]))
        out = keras.ops.conv(bands, kernel, self.strides, "valid", "channels_last", self.dilation_rate)
        out = tf.reshape(out, tf.stack([batch, self.bands * self.band_out_rows, self.out_w, out.shape[3]]))
        return out[:, : self.out_h]


def _padding(size: int, extent: int, stride: int, padding: str) -> tuple[int, int, int]:
    """Output size and (before, after) padding of one axis, as TensorFlow pads "same" (the odd pixel after)."""
    if padding == "valid":
        return (size - extent) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + extent - size, 0)
    return out, total // 2, total - total // 2


@functools.cache
def onednn_fallback_possible() -> bool:
    """Whether this process can meet oneDNN's slow fallback: TensorFlow backend, oneDNN turned on by
    TF_ENABLE_ONEDNN_OPTS=1 (TensorFlow's default turns it on only with AVX-512), an x86 CPU without AVX-512
    (or oneDNN capped below it by ONEDNN_MAX_CPU_ISA), and no GPU."""
    if keras.backend.backend() != "tensorflow" or os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "1":
        return False
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "ALL")).upper()
    may_use_avx512 = capped == "ALL" or "AVX512" in capped or "AMX" in capped
    if may_use_avx512 and _cpu_has_avx512():
        return False
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")


def _cpu_has_avx512() -> bool:
    """AVX-512 Foundation in /proc/cpuinfo; where that file is missing (not Linux), False (the safe guess)."""
    try:
        with open("/proc/cpuinfo") as info:
            return any(line.startswith("flags") and " avx512f" in line for line in info)
    except OSError:
        return False


# Each model's function of NHWC batches of any size (see `any_size_predictor`), traced once per model.
_ANY_SIZE_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def any_size_predictor(model: keras.Model) -> Callable[[np.ndarray], object]:
    """`model(batch, training=False)` as one function for float32 NHWC batches of every height and width, traced
    once. Keras' `predict_on_batch` traces the first size it meets and then, at the second, once more for unknown
    sizes: on images of mixed sizes two traces instead of one (about 5 s each for InceptionResNetV2 on 2 CPU
    cores), for the same speed afterwards. A model whose input has a fixed size, a non-TensorFlow backend, or a
    model with several inputs keeps `predict_on_batch`."""
    try:
        shape = tuple(model.input_shape)
    except (AttributeError, ValueError):
        shape = None
    if keras.backend.backend() != "tensorflow" or shape is None or len(shape) != 4 or shape[1:3] != (None, None):
        return model.predict_on_batch
    predictor = _ANY_SIZE_PREDICTORS.get(model)
    if predictor is None:
        import tensorflow as tf

        that_model = weakref.ref(model)  # the cache must not keep the model alive
        signature = [tf.TensorSpec((None, None, None, shape[3]), tf.float32)]
        predictor = tf.function(
            lambda images: that_model()(images, training=False), input_signature=signature, autograph=False
        )
        _ANY_SIZE_PREDICTORS[model] = predictor
    return predictor


def batch_predictor(
    model: keras.Model, dtype=np.float32, banded: bool | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """The model's outputs for NHWC batches of any size, through one trace for all sizes (`any_size_predictor`),
    except that with `banded` (by default: where `onednn_fallback_possible`), batches of images of
    `LARGE_IMAGE_PIXELS` or more run through a function traced for their shape (the last `TRACED_SHAPES` kept)
    with banded convolutions, so that no convolution meets the fallback."""

    any_size = any_size_predictor(model)

    def usual(batch: np.ndarray) -> np.ndarray:
        return np.asarray(any_size(batch), dtype=dtype)

    if not (onednn_fallback_possible() if banded is None else banded):
        return usual
    traced: OrderedDict[tuple, Callable] = OrderedDict()

    def predict(batch: np.ndarray) -> np.ndarray:
        if batch.shape[1] * batch.shape[2] < LARGE_IMAGE_PIXELS:
            return usual(batch)
        import tensorflow as tf

        if batch.shape not in traced:
            band_large_convolutions(model)
            traced[batch.shape] = tf.function(lambda images: model(images, training=False), autograph=False)
            while len(traced) > TRACED_SHAPES:
                traced.popitem(last=False)
        traced.move_to_end(batch.shape)
        return np.asarray(traced[batch.shape](batch), dtype=dtype)

    return predict
