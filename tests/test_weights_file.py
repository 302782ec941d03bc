"""Backbone weights files: the authors' Keras 2 HDF5 layout (weights file and full-model save), misfits, offline
ImageNet weights, and the one-file export from a weights file + head."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from deepfl import features, models
from deepfl.errors import DeepflError
from deepfl.models import backbone as backbone_module
from deepfl.models.weights_file import WeightsFileError, load_weights_file, saved_layers
from helpers_keras2 import write_keras2_weights


@pytest.fixture(scope="module")
def source():
    """A random InceptionResNetV2(include_top=False) (weights do not depend on the input size) and its MLSP model."""
    keras.utils.set_random_seed(3)
    network = keras.applications.InceptionResNetV2(include_top=False, weights=None, input_shape=(None, None, 3))
    return network, models.mlsp_backbone(network)


@pytest.fixture(scope="module")
def images(small_photo):
    return np.stack([small_photo, small_photo[::-1, ::-1]]).astype(np.float32)


@pytest.fixture(scope="module")
def keras2_file(source, tmp_path_factory):
    path = tmp_path_factory.mktemp("keras2") / "quality-mlsp-mtl-mse-loss.hdf5"
    names = write_keras2_weights(source[0], path)
    return path, names


def test_writer_uses_keras2_auto_names(keras2_file):
    path, names = keras2_file
    saved = [name for name, _ in saved_layers(path)]
    assert saved[:2] == ["conv2d_1", "batch_normalization_1"] and "conv_7b" in saved and "block35_1_conv" in saved
    numbers = sorted(int(name.rsplit("_", 1)[1]) for name in saved if name.startswith("conv2d_"))
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 100
    assert names["conv_7b_bn"] == "conv_7b_bn"


@pytest.mark.parametrize("full_model", [False, True], ids=["weights_file", "full_model_save"])
def test_keras2_file_gives_identical_mlsp_features(source, images, keras2_file, tmp_path, full_model):
    path = keras2_file[0]
    if full_model:
        path = tmp_path / "full_model.h5"
        write_keras2_weights(source[0], path, full_model=True)
    expected = keras.ops.convert_to_numpy(source[1](images))
    extractor = features.load_extractor(weights=str(path))  # as deepfl-extract-features --weights FILE builds it
    assert (
        extractor.get_layer("pixel_scaling").scale == pytest.approx(1 / 255)
        and extractor.dtype_policy.name == "float32"
    )
    got = keras.ops.convert_to_numpy(extractor(images))
    assert got.shape == (2, models.MLSP_DIM)
    np.testing.assert_array_equal(got, expected)


def test_misfit_names_the_first_layer(source, tmp_path):
    network = source[0]
    names = write_keras2_weights(network, tmp_path / "ok.h5")
    conv = names[network.layers[1].name]
    assert conv == "conv2d_1"
    bad = tmp_path / "bad.h5"
    block = next(layer for layer in network.layers if layer.name == "block17_3_conv")
    kernel = keras.ops.convert_to_numpy(block.weights[0])
    write_keras2_weights(network, bad, change={"block17_3_conv/kernel:0": kernel[..., :-1]})
    with pytest.raises(WeightsFileError) as caught:
        models.build_backbone(weights=str(bad), input_shape=(None, None, 3))
    message = str(caught.value)
    assert "\n" not in message and "'block17_3_conv' of the file does not fit 'block17_3_conv'" in message
    assert f"kernel shape {kernel[..., :-1].shape} vs {kernel.shape}" in message


def test_misfit_other_architecture_and_not_hdf5(source, tmp_path):
    network = source[0]
    before = keras.ops.convert_to_numpy(network.layers[1].weights[0])
    tiny = models.build_backbone(weights=None, arch="tiny", input_shape=(32, 32, 3))
    path = tmp_path / "tiny.h5"
    write_keras2_weights(tiny.get_layer("tiny"), path)
    with pytest.raises(
        WeightsFileError,
        match=r"layer #1 'tiny_conv_1' of the file does not fit 'conv2d(_\d+)?' of "
        r"inception_resnet_v2 \(different layer\)$",
    ):
        load_weights_file(network, path)
    write_keras2_weights(network, path, skip=network.layers[-2].name)
    with pytest.raises(
        WeightsFileError,
        match=r"holds \d+ layers with weights, inception_resnet_v2 needs \d+; first "
        r"without weights in the file: 'conv_7b_bn'$",
    ):
        load_weights_file(network, path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(network.layers[1].weights[0]), before)  # untouched
    text = tmp_path / "weights.h5"
    text.write_text("not hdf5")
    with pytest.raises(WeightsFileError, match="not an HDF5 weights file"):
        load_weights_file(network, text)
    with pytest.raises(WeightsFileError, match="no such file"):
        load_weights_file(network, tmp_path / "absent.hdf5")


def test_offline_imagenet_fails_in_one_line(monkeypatch, tmp_path, capsys):
    def no_network(*args, **kwargs):
        print("Downloading data from https://storage.googleapis.com/x")  # as Keras does, on stdout
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/x: None -- [Errno -3] Temporary failure "
            "in name resolution\nsecond line"
        )

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(DeepflError) as caught:
        features.load_extractor(weights="imagenet")
    message = str(caught.value)
    assert "\n" not in message
    assert models.IMAGENET_WEIGHTS_FILE in message and f"{tmp_path / 'keras_home' / 'models'}/" in message
    assert "weights=FILE" in message and "URL fetch failure" in message
    assert "is not in" in message
    printed = capsys.readouterr()
    assert printed.out == "" and "Downloading data from" in printed.err  # stdout is for results only
    # A file of that name that is not the expected one (Keras checks its hash, then fetches again): said so, not
    # "is not in" the folder where the user put it (user walk, session 26).
    (tmp_path / "keras_home" / "models").mkdir(parents=True)
    (tmp_path / "keras_home" / "models" / models.IMAGENET_WEIGHTS_FILE).write_bytes(b"partial")
    with pytest.raises(DeepflError, match="is in .* but is not the expected file .*incomplete or other copy"):
        features.load_extractor(weights="imagenet")
    monkeypatch.delenv("KERAS_HOME")
    assert backbone_module.keras_models_dir() == backbone_module.Path("~/.keras/models").expanduser()


def test_imagenet_weights_come_from_the_keras_cache(monkeypatch, tmp_path, source):
    """With the file in the cache, "imagenet" loads it (the Keras 2 layout of Keras' own file) with [-1, 1] pixels."""
    cached = tmp_path / "models" / models.IMAGENET_WEIGHTS_FILE
    cached.parent.mkdir()
    write_keras2_weights(source[0], cached)
    calls = []

    def cache_only(fname, origin, cache_dir, cache_subdir, file_hash):
        calls.append((fname, cache_dir, cache_subdir))
        return str(backbone_module.Path(cache_dir) / cache_subdir / fname)

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras.utils, "get_file", cache_only)
    extractor = features.load_extractor(weights="imagenet")
    assert calls == [(models.IMAGENET_WEIGHTS_FILE, str(tmp_path), "models")]
    assert extractor.get_layer("pixel_scaling").offset == -1.0
    conv = extractor.get_layer("inception_resnet_v2").get_layer("block8_9_conv")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(conv.weights[0]),
        keras.ops.convert_to_numpy(source[0].get_layer("block8_9_conv").weights[0]),
    )


def test_scorer_from_weights_file_and_head(source, images, keras2_file, tmp_path):
    """deepfl-predict --model <weights file> --head <head>: scores like the two parts."""
    from deepfl.prediction import predict

    head = models.build_mlp(hidden=(16,), dropout=(0.0,), batch_norm=False, seed=1)
    head.save(tmp_path / "head.keras")
    manual = keras.ops.convert_to_numpy(head(source[1](images))).ravel()
    np.testing.assert_allclose(
        predict(list(images), str(keras2_file[0]), head=tmp_path / "head.keras"), manual, rtol=1e-5, atol=1e-6
    )


@pytest.mark.slow  # saves and reloads a 55M-parameter .keras file (about 2 minutes on 2 CPU cores)
def test_one_file_export_from_weights_file_and_head(source, images, keras2_file, tmp_path):
    """The one-file model deepfl-predict loads, exported from the authors' weights file + a head."""
    from deepfl.export import export_model
    from deepfl.prediction import predict

    head = models.build_mlp(hidden=(16,), dropout=(0.0,), batch_norm=False, seed=1)
    head.save(tmp_path / "head.keras")
    exported = export_model(keras2_file[0], tmp_path / "head.keras", tmp_path / "deepfl_iqa.keras")
    manual = keras.ops.convert_to_numpy(head(source[1](images))).ravel()
    np.testing.assert_allclose(predict(list(images), exported), manual, rtol=1e-5, atol=1e-6)
