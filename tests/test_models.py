"""deepfl.models: InceptionResNetV2 MLSP backbone, multi-task heads, custom layers, save/load, options.

The real InceptionResNetV2 is built once per module (weights=None, no network) and run at 75x75; option
mechanics (mixed precision, freezing, seeds) use the tiny stand-in backbone, which shares the code paths.
"""

import ast
import os
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest

from deepfl import models
from deepfl.models import (
    MLSP_DIM,
    MLSP_LAYER_NAMES,
    TASKS,
    MultiLevelPooling,
    PixelScaling,
    build_backbone,
    build_multitask,
    compile_multitask,
    mlsp_extractor,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def irv2_model():
    keras.utils.set_random_seed(0)
    return build_multitask(tasks=("ssim", "gmsd"), weights=None, seed=0)


@pytest.fixture(scope="module")
def images(small_photo):
    crops = [small_photo[:75, :75], small_photo[10:85, 40:115]]
    return np.stack(crops).astype("float32")


@pytest.fixture(scope="module")
def irv2_outputs(irv2_model, images):
    return {k: np.asarray(v) for k, v in irv2_model(images, training=False).items()}


def test_mlsp_layer_names_match_the_keras_application(irv2_model):
    blocks = models.get_backbone(irv2_model).get_layer("inception_resnet_v2")
    mixed = [layer.name for layer in blocks.layers if "mixed" in layer.name]
    assert mixed == list(MLSP_LAYER_NAMES)
    assert len(MLSP_LAYER_NAMES) == 43
    assert sum(int(blocks.get_layer(n).output.shape[-1]) for n in MLSP_LAYER_NAMES) == MLSP_DIM == 16928


def test_mlsp_features_are_the_pooled_mixed_blocks_of_x_over_255(irv2_model, images):
    backbone = mlsp_extractor(irv2_model)
    features = np.asarray(backbone(images, training=False))
    assert features.shape == (2, MLSP_DIM) and np.isfinite(features).all()
    blocks = backbone.get_layer("inception_resnet_v2")
    maps = blocks(images / 255.0, training=False)  # the authors' scaling, done by hand
    expected = np.concatenate([np.asarray(m).mean(axis=(1, 2)) for m in maps], axis=1)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    # Same features once the inputs are scaled to [-1, 1] instead: they differ (the scaling matters).
    other = np.concatenate(
        [np.asarray(m).mean(axis=(1, 2)) for m in blocks(images / 127.5 - 1.0, training=False)], axis=1
    )
    assert np.abs(other - features).max() > 1e-3


def test_heads_follow_the_paper(irv2_model, irv2_outputs):
    assert models.model_tasks(irv2_model) == ["ssim", "gmsd"]
    assert set(irv2_outputs) == {"ssim", "gmsd"}
    assert all(v.shape == (2, 1) and v.dtype == np.float32 for v in irv2_outputs.values())
    for task in ("ssim", "gmsd"):
        fc1, fc2, out = (irv2_model.get_layer(n) for n in (f"{task}_fc512", f"{task}_fc256", task))
        d1, d2 = irv2_model.get_layer(f"{task}_dropout1"), irv2_model.get_layer(f"{task}_dropout2")
        assert (fc1.units, fc2.units, out.units) == (512, 256, 1)
        assert (d1.rate, d2.rate) == (0.25, 0.5)
        assert fc1.activation.__name__ == fc2.activation.__name__ == "relu" and out.activation.__name__ == "linear"
        assert all(isinstance(layer.kernel_initializer, keras.initializers.HeNormal) for layer in (fc1, fc2, out))
        assert fc1.kernel.shape == (MLSP_DIM, 512)
        # He normal: std ~ sqrt(2 / fan_in) (truncated normal keeps ~0.88 of it).
        std = float(np.std(np.asarray(fc1.kernel)))
        assert 0.8 * np.sqrt(2 / MLSP_DIM) < std < 1.05 * np.sqrt(2 / MLSP_DIM)


def test_a_compiled_model_is_saved_without_optimizer_through_one_bare_copy_per_configuration(tmp_path, monkeypatch):
    # Building the bare copy was 5.7 s of a 10-s save of the paper's multi-task model (session 44), paid at every
    # epoch that improved best.keras.
    from deepfl.fileio import load_model_file, save_model_atomic
    from helpers_models import keras_weight_groups

    model = build_multitask(tasks=["ssim", "gmsd"], weights=None, arch="tiny", input_shape=(None, None, 3), seed=1)
    compile_multitask(model)
    built, builds = [], []
    from_config = keras.Model.from_config
    monkeypatch.setattr(
        keras.Model, "from_config", classmethod(lambda cls, *a, **k: built.append(1) or from_config(*a, **k))
    )
    x = np.random.default_rng(0).uniform(0, 255, (2, 24, 32, 3)).astype("float32")
    for round_ in range(3):
        if round_ == 1:  # new weights between saves: the file holds the model's current ones
            model.set_weights([w + 0.01 for w in model.get_weights()])
        if round_ == 2:  # another configuration (a phase that freezes the backbone): a new copy
            models.set_backbone_trainable(model, False)
        before = len(built)
        save_model_atomic(model, tmp_path / f"model{round_}.keras")
        builds.append(len(built) > before)
        assert "optimizer" not in keras_weight_groups(tmp_path / f"model{round_}.keras")
        loaded = load_model_file(tmp_path / f"model{round_}.keras")
        for task, values in model(x, training=False).items():
            np.testing.assert_array_equal(np.asarray(loaded(x, training=False)[task]), np.asarray(values))
    assert builds == [True, False, True]  # the first save and the changed configuration, not the second


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # saved before any step
def test_saved_tiny_model_reloads_with_identical_outputs(tmp_path):
    model = build_multitask(
        tasks=["ssim", "gmsd", "sr_sim"],
        weights=None,
        arch="tiny",
        input_shape=(None, None, 3),
        pixel_scaling="symmetric",
        seed=5,
    )
    x = np.random.default_rng(3).uniform(0, 255, (3, 24, 40, 3)).astype("float32")
    compile_multitask(model, loss_weights={"gmsd": 0.5})
    model.save(tmp_path / "tiny.keras")
    loaded = keras.saving.load_model(tmp_path / "tiny.keras")
    expected, outputs = model(x, training=False), loaded(x, training=False)
    assert set(outputs) == {"ssim", "gmsd", "sr_sim"}
    for task in expected:
        np.testing.assert_array_equal(np.asarray(outputs[task]), np.asarray(expected[task]))
    assert loaded.get_layer("mlsp_backbone").get_layer("pixel_scaling").get_config()["offset"] == -1.0
    np.testing.assert_array_equal(np.asarray(mlsp_extractor(loaded)(x)), np.asarray(mlsp_extractor(model)(x)))


@pytest.mark.slow
def test_saved_model_reloads_with_identical_outputs(irv2_model, images, irv2_outputs, tmp_path):
    path = tmp_path / "model.keras"
    irv2_model.save(path)
    loaded = keras.saving.load_model(path)
    outputs = loaded(images, training=False)
    for task, value in irv2_outputs.items():
        np.testing.assert_array_equal(np.asarray(outputs[task]), value)
    assert isinstance(loaded.get_layer("mlsp_backbone").get_layer("pixel_scaling"), PixelScaling)
    assert isinstance(loaded.get_layer("mlsp_backbone").get_layer("mlsp"), MultiLevelPooling)


def test_input_size_limits(irv2_model):
    with pytest.raises(ValueError, match="input_shape"):
        build_backbone(weights=None, input_shape=(74, 100, 3))
    with pytest.raises(ValueError, match="input_shape"):
        build_backbone(weights=None, input_shape=(100, 100, 1))
    assert tuple(irv2_model.input.shape) == (None, None, None, 3)  # any size >= 75


@pytest.mark.parametrize("layer", [PixelScaling(2 / 255, -1.0, name="p"), MultiLevelPooling(name="m")])
def test_custom_layers_round_trip_their_config(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


def test_layers_compute_what_they_say():
    x = np.array([[[[0.0, 127.5, 255.0]]]], dtype="float32")
    np.testing.assert_allclose(np.asarray(PixelScaling(2 / 255, -1.0)(x)), [[[[-1.0, 0.0, 1.0]]]], atol=1e-6)
    a = np.arange(2 * 3 * 4 * 2, dtype="float32").reshape(2, 3, 4, 2)
    b = np.ones((2, 5, 5, 3), dtype="float32")
    pooled = np.asarray(MultiLevelPooling()([a, b]))
    np.testing.assert_allclose(pooled, np.concatenate([a.mean(axis=(1, 2)), b.mean(axis=(1, 2))], axis=1))


def test_all_eleven_tasks_by_default_and_subset_validation():
    model = build_multitask(weights=None, arch="tiny", input_shape=(16, 16, 3))
    assert models.model_tasks(model) == list(TASKS) and len(TASKS) == 11
    with pytest.raises(ValueError, match="tasks"):
        build_multitask(tasks=["ssim", "psnr"], weights=None, arch="tiny")
    with pytest.raises(ValueError, match="tasks"):
        build_multitask(tasks=[], weights=None, arch="tiny")
    with pytest.raises(ValueError, match="pixel_scaling"):
        build_backbone(weights=None, pixel_scaling="imagenet")
    with pytest.raises(ValueError, match="mixed_precision"):
        build_multitask(tasks="ssim", weights=None, arch="tiny", mixed_precision="float16")


def test_loss_weights_weight_the_total_loss():
    keras.utils.set_random_seed(1)
    model = build_multitask(
        tasks=["ssim", "gmsd"], weights=None, arch="tiny", input_shape=(16, 16, 3), dropout=(0.0, 0.0)
    )
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    y = {"ssim": np.ones(4, "float32"), "gmsd": -np.ones(4, "float32")}
    compile_multitask(model, loss_weights={"gmsd": 3.0})
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["ssim_loss"] + 3.0 * logs["gmsd_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="loss_weights"):
        compile_multitask(model, loss_weights={"vsi": 1.0})


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision(policy):
    before = keras.config.dtype_policy().name
    model = build_multitask(tasks=["ssim"], weights=None, arch="tiny", input_shape=(16, 16, 3), mixed_precision=policy)
    assert keras.config.dtype_policy().name == before  # the global policy is restored
    assert model.get_layer("ssim_fc512").dtype_policy.name == policy
    assert models.get_backbone(model).get_layer("tiny").get_layer("tiny_conv_1").dtype_policy.name == policy
    assert model.get_layer("ssim").dtype_policy.name == "float32"
    out = model(np.zeros((1, 16, 16, 3), "float32"))["ssim"]
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    compile_multitask(model)
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_freezing_the_backbone_leaves_only_heads_trainable():
    model = build_multitask(tasks=["ssim"], weights=None, arch="tiny", input_shape=(16, 16, 3), freeze_backbone=True)
    names = {w.path for w in model.trainable_weights}
    assert names and all(n.startswith("ssim") for n in names)
    models.set_backbone_trainable(model, True)
    assert any(n.startswith("tiny") for n in (w.path for w in model.trainable_weights))


def test_seed_fixes_initialisation():
    a, b, c = (
        build_multitask(tasks=["vsi"], weights=None, arch="tiny", input_shape=(16, 16, 3), seed=s) for s in (3, 3, 4)
    )
    wa, wb, wc = (m.get_layer("vsi_fc512").get_weights()[0] for m in (a, b, c))
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, wc)


def test_extractor_rebuilds_at_another_input_shape():
    model = build_multitask(tasks=["ssim"], weights=None, arch="tiny", input_shape=(32, 32, 3))
    fixed = mlsp_extractor(model)
    assert fixed is models.get_backbone(model)
    flexible = mlsp_extractor(model, input_shape=(None, None, 3))
    x = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(flexible(x)), np.asarray(fixed(x)), rtol=1e-6, atol=1e-6)
    assert np.asarray(flexible(np.zeros((1, 40, 56, 3), "float32"))).shape == (1, 56)


def test_models_package_does_not_import_tensorflow_at_module_level():
    for path in (REPO / "deepfl" / "models").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module-level statements only
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "tensorflow" for n in names), f"{path.name} imports tensorflow"


@pytest.mark.skipif(not os.environ.get("DEEPFL_JAX_PYTHON"), reason="set DEEPFL_JAX_PYTHON to a python with jax")
def test_models_build_under_jax_without_tensorflow():
    code = (
        "import sys; from deepfl.models import build_multitask; import numpy as np; "
        "m = build_multitask(tasks=['ssim'], weights=None, arch='tiny', input_shape=(16, 16, 3)); "
        "print(np.asarray(m(np.zeros((1, 16, 16, 3), 'float32'))['ssim']).shape, 'tensorflow' in sys.modules)"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(REPO))
    out = subprocess.run(
        [os.environ["DEEPFL_JAX_PYTHON"], "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[-1] == "False"


@pytest.mark.slow
def test_irv2_trains_one_step_at_the_minimum_size(irv2_model, images):
    model = build_multitask(tasks=["ssim"], weights=None, input_shape=(75, 75, 3))
    compile_multitask(model, jit_compile=False)
    before = [np.array(w) for w in model.trainable_weights[:3]]
    logs = model.train_on_batch(images, {"ssim": np.array([0.5, -0.5], "float32")}, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert any(not np.array_equal(b, np.asarray(w)) for b, w in zip(before, model.trainable_weights[:3]))


def test_a_size_below_the_paper_networks_minimum_is_the_reason_given():
    from deepfl.architectures import PAPER_MIN_SIDE, too_small_reason

    assert "75x75" in too_small_reason(60, 80) and PAPER_MIN_SIDE == 75
    assert too_small_reason(75, 75) is None and too_small_reason(75, 2000) is None
