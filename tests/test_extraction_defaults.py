"""Faithful extraction defaults: float32 MLSP whatever the training policy, pixel scaling matching the weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from deepfl import features, models


def compute_dtypes(extractor: keras.Model) -> set[str]:
    return {layer.dtype_policy.compute_dtype for layer in extractor.get_layer("tiny").layers}


def test_extraction_is_float32_for_a_model_trained_in_bfloat16(tmp_path):
    model = models.build_multitask(
        tasks=["ssim"], weights=None, arch="tiny", input_shape=(32, 32, 3), mixed_precision="mixed_bfloat16"
    )
    assert compute_dtypes(models.get_backbone(model)) == {"bfloat16"}
    model.save(tmp_path / "multitask.keras")
    extractor = features.load_extractor(tmp_path / "multitask.keras")
    assert compute_dtypes(extractor) == {"float32"}
    reference = models.build_backbone(weights=None, arch="tiny", input_shape=(None, None, 3))
    reference.set_weights(models.get_backbone(model).get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (2, 40, 48, 3)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(extractor(x)), keras.ops.convert_to_numpy(reference(x)))
    on_request = features.load_extractor(tmp_path / "multitask.keras", dtype="mixed_bfloat16")
    assert "bfloat16" in compute_dtypes(on_request)


def test_pixel_scaling_follows_the_weights():
    assert models.default_pixel_scaling("imagenet") == "symmetric"  # Keras' preprocess_input for IRV2: [-1, 1]
    assert models.default_pixel_scaling("quality-mlsp-mtl-mse-loss.hdf5") == "unit"  # the authors' x / 255
    assert models.default_pixel_scaling(None) == "unit"
    with pytest.raises(ValueError, match="pixel_scaling: a trained model keeps"):
        features.load_extractor("model.keras", pixel_scaling="unit")


def test_the_random_backbone_is_the_same_network_in_every_run():
    # Unseeded, two deepfl-extract-features --weights=none runs differed by up to 0.12, and a cache resumed after
    # a kill held rows of two random networks under one recorded source (session 18's walk).
    first = features.load_extractor(weights=None)
    np.random.default_rng(1).normal(size=3)  # whatever the process drew in between
    keras.random.normal((2,))
    second = features.load_extractor(weights=None)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    source = features.extractor_source(None, None, None)
    assert source == f"backbone(weights=random seed {features.RANDOM_WEIGHTS_SEED}, pixel_scaling=unit)"
