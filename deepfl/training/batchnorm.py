"""Re-estimating a trained model's BatchNormalization statistics on the images it will be used on.

A backbone trained on crops smaller than the images it later sees (the demo trains on 64x64 crops of 176x176
images) keeps moving means and variances of crop-sized inputs. At the larger size the deeper layers see other
statistics (less of each map is zero padding), so the MLSP features of full-size images are normalised with the
wrong constants: the train-test resolution discrepancy of Touvron et al. (2019). Running the images through the
model in training mode and averaging each layer's batch statistics (precise BatchNorm) fixes the constants
without changing a single trained weight.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np


def _numpy(variable) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(variable), np.float64)


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of `model`, nested models included, in order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(batchnorm_layers(layer))
    return found


def recalibrate_batchnorm(model: keras.Model, batches: Iterable[np.ndarray]) -> int:
    """Sets each BatchNormalization layer's moving mean and variance of `model` to the mean, over `batches`
    (image arrays as the model takes them), of the statistics of that layer's inputs in training mode; returns
    the number of batches. Nothing else changes: no weight is trained, no layer is left in training mode.
    A model without BatchNormalization layers is left as it is; a pass that fails or is interrupted leaves the
    statistics as they were.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    before = [(_numpy(layer.moving_mean), _numpy(layer.moving_variance)) for layer in layers]
    momenta = [layer.momentum for layer in layers]
    sums = [[np.zeros(layer.moving_mean.shape, np.float64) for _ in range(2)] for layer in layers]
    count = 0
    try:
        for layer in layers:
            layer.momentum = 0.0  # the moving statistics become the last batch's: read after each batch
        for batch in batches:
            model(np.asarray(batch, np.float32), training=True)
            for layer, (mean_sum, variance_sum) in zip(layers, sums):
                mean_sum += _numpy(layer.moving_mean)
                variance_sum += _numpy(layer.moving_variance)
            count += 1
        if not count:
            raise ValueError("batches: no batch to estimate the BatchNormalization statistics from")
    except BaseException:  # an interrupted or failed pass leaves the model as it was
        for layer, (mean, variance) in zip(layers, before):
            layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
            layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
        raise
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    for layer, (mean_sum, variance_sum) in zip(layers, sums):
        layer.moving_mean.assign((mean_sum / count).astype(layer.moving_mean.dtype))
        layer.moving_variance.assign((variance_sum / count).astype(layer.moving_variance.dtype))
    return count
