"""Re-estimating BatchNorm statistics at the size a model will be used at (deepfl.training.batchnorm)."""

import keras
import numpy as np
import pytest

from deepfl.models import build_backbone
from deepfl.training import batchnorm_layers, recalibrate_batchnorm


def _values(variable) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(variable))


def _normalizing_model() -> keras.Model:
    """Input -> BatchNorm -> a nested model with a conv and a second BatchNorm: both layers' inputs are known."""
    inner_input = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", kernel_initializer=keras.initializers.HeNormal(1), name="conv")
    inner = keras.Model(inner_input, keras.layers.BatchNormalization(name="bn_inner")(conv(inner_input)), name="inner")
    outer_input = keras.Input((None, None, 3))
    first = keras.layers.BatchNormalization(name="bn_outer")(outer_input)
    return keras.Model(outer_input, inner(first), name="outer")


def _batches(rng: np.random.Generator, count: int = 4) -> list[np.ndarray]:
    # Channel means 10, 20, 30 and scales 1, 2, 3, with the batches' own means and spreads differing.
    return [
        rng.normal([10.0, 20.0, 30.0], [1.0, 2.0, 3.0], size=(5, 12, 16, 3)) * (1 + 0.2 * k) + k for k in range(count)
    ]


def test_statistics_become_the_mean_of_each_batch_statistics_nested_layers_included():
    model = _normalizing_model()
    batches = _batches(np.random.default_rng(0))
    assert [layer.name for layer in batchnorm_layers(model)] == ["bn_outer", "bn_inner"]
    assert recalibrate_batchnorm(model, iter(batches)) == len(batches)
    outer = model.get_layer("bn_outer")
    np.testing.assert_allclose(
        _values(outer.moving_mean), np.mean([b.mean(axis=(0, 1, 2)) for b in batches], 0), rtol=1e-5
    )
    np.testing.assert_allclose(
        _values(outer.moving_variance), np.mean([b.var(axis=(0, 1, 2)) for b in batches], 0), rtol=1e-4
    )
    # The inner layer's inputs: the conv of the outer layer's output in training mode (its batch statistics).
    inner = model.get_layer("inner")
    conv, inner_bn = inner.get_layer("conv"), inner.get_layer("bn_inner")
    normalised = [(b - b.mean((0, 1, 2))) / np.sqrt(b.var((0, 1, 2)) + outer.epsilon) for b in batches]
    conv_out = [np.asarray(conv(n.astype(np.float32)), np.float64) for n in normalised]
    np.testing.assert_allclose(
        _values(inner_bn.moving_mean), np.mean([c.mean((0, 1, 2)) for c in conv_out], 0), atol=1e-5
    )
    np.testing.assert_allclose(
        _values(inner_bn.moving_variance), np.mean([c.var((0, 1, 2)) for c in conv_out], 0), rtol=1e-4
    )
    assert outer.momentum == inner_bn.momentum == 0.99  # the layers' own setting is given back


def test_only_the_statistics_change_and_inference_uses_them():
    model = _normalizing_model()
    weights = [_values(w) for w in model.get_layer("inner").get_layer("conv").get_weights()]
    gamma_beta = [_values(v) for v in (model.get_layer("bn_outer").gamma, model.get_layer("bn_outer").beta)]
    batches = _batches(np.random.default_rng(1))
    before = np.asarray(model(batches[0].astype(np.float32), training=False))
    recalibrate_batchnorm(model, batches)
    after = np.asarray(model(batches[0].astype(np.float32), training=False))
    for old, new in zip(weights, model.get_layer("inner").get_layer("conv").get_weights()):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(gamma_beta[0], _values(model.get_layer("bn_outer").gamma))
    np.testing.assert_array_equal(gamma_beta[1], _values(model.get_layer("bn_outer").beta))
    # Before, inference normalised with the initial statistics (mean 0, variance 1): values far from 0.
    assert np.abs(before).mean() > 5 * np.abs(after).mean()


def test_a_failed_or_empty_pass_leaves_the_statistics_as_they_were():
    model = _normalizing_model()
    recalibrate_batchnorm(model, _batches(np.random.default_rng(2)))
    saved = [(_values(layer.moving_mean), _values(layer.moving_variance)) for layer in batchnorm_layers(model)]

    def failing():
        yield from _batches(np.random.default_rng(3), 2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recalibrate_batchnorm(model, failing())
    with pytest.raises(ValueError, match="batches: no batch"):
        recalibrate_batchnorm(model, [])
    for layer, (mean, variance) in zip(batchnorm_layers(model), saved):
        np.testing.assert_array_equal(_values(layer.moving_mean), mean)
        np.testing.assert_array_equal(_values(layer.moving_variance), variance)
        assert layer.momentum == 0.99


def test_a_backbone_without_batchnorm_is_left_alone():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    assert recalibrate_batchnorm(model, [np.zeros((1, 8, 8, 3))]) == 0


def test_the_small_backbone_gets_full_size_statistics():
    backbone = build_backbone(weights=None, input_shape=(None, None, 3), arch="tiny", seed=0)
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, size=(4, 40, 56, 3)).astype(np.float32) for _ in range(3)]
    assert recalibrate_batchnorm(backbone, images) == 3
    first = batchnorm_layers(backbone)[0]
    assert float(np.abs(_values(first.moving_mean)).max()) > 0  # no longer the initial zeros
