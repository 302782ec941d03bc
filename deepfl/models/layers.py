"""Custom Keras layers of the deepfl models, registered so that saved `.keras` files reload with deepfl alone.

Both layers are pure Keras 3 (`keras.ops`), so the models run under the TensorFlow, JAX and PyTorch backends.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="deepfl")
class PixelScaling(keras.layers.Layer):
    """`x * scale + offset`: maps raw RGB pixels in [0, 255] to what the backbone expects.

    Carrying the scaling inside the model means a saved model takes raw pixels, whatever scaling it was
    trained with.
    """

    def __init__(self, scale: float = 1.0 / 255.0, offset: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.offset = float(offset)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        return x * ops.cast(self.scale, self.compute_dtype) + ops.cast(self.offset, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(scale=self.scale, offset=self.offset)
        return config


@keras.saving.register_keras_serializable(package="deepfl")
class MultiLevelPooling(keras.layers.Layer):
    """MLSP ("narrow"): global average pooling of each input feature map, concatenated along channels.

    Takes a list of NHWC tensors, returns [N, sum of channels]. The means are taken in float32 even under a
    mixed-precision policy (a bf16 sum over a 48x63 map loses about 3 significant digits), so this layer
    defaults to float32.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs: Sequence):
        pooled = [ops.mean(ops.cast(x, self.compute_dtype), axis=(1, 2)) for x in inputs]
        return ops.concatenate(pooled, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], sum(int(shape[-1]) for shape in input_shape))
