"""Prediction API, one-file export (loadable by Keras alone) and the deepfl-predict command."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepfl.data import TargetNormalizer
from deepfl.errors import ImageReadError
from deepfl.export import combine, export_model
from deepfl.images import write_image
from deepfl.models.mlp import build_mlp
from deepfl.prediction import expand_inputs, load_scorer, predict
from helpers_models import tiny_extractor

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A tiny extractor, a head saved with its normaliser, and an exported one-file model."""
    folder = tmp_path_factory.mktemp("model")
    extractor = tiny_extractor()
    head = build_mlp(7, hidden=(5,), dropout=(0.0,), seed=1)
    head.save(folder / "head.keras")
    norm = TargetNormalizer("standard").fit({"score": [0.2, 0.4, 0.9]}, "score")
    norm.save(folder / "head.normalizer.json")
    exported = export_model(extractor, folder / "head.keras", folder / "scorer.keras")
    return extractor, head, norm, exported


def test_export_equals_manual_chain_and_loads_with_keras_alone(parts, small_photo, tmp_path):
    extractor, head, norm, exported = parts
    imgs = [small_photo, small_photo[:64, :80], small_photo[::-1]]
    manual = [
        norm.inverse_values(
            "score", head.predict(extractor.predict(i[None].astype("float32"), verbose=0), verbose=0).reshape(-1)
        )[0]
        for i in imgs
    ]
    np.testing.assert_allclose(predict(imgs, exported), manual, rtol=1e-5, atol=1e-6)
    # Backbone + head (+ normaliser beside the head) gives the same scores as the exported file.
    np.testing.assert_allclose(
        predict(imgs, extractor, head=exported.parent / "head.keras"), manual, rtol=1e-5, atol=1e-6
    )
    np.save(tmp_path / "x.npy", np.stack([small_photo]).astype("float32"))
    code = (
        "import sys, numpy as np, keras; m = keras.saving.load_model(sys.argv[1]); "
        "print(float(np.asarray(m.predict(np.load(sys.argv[2]), verbose=0)).reshape(-1)[0])); "
        "assert 'deepfl' not in sys.modules"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(exported), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) == pytest.approx(manual[0], rel=1e-5, abs=1e-6)


def test_predict_errors_name_the_culprit(parts, tmp_path):
    extractor, head, _, exported = parts
    with pytest.raises(ImageReadError, match="missing.png: no such image file"):
        predict([tmp_path / "missing.png"], exported)
    with pytest.raises(ValueError, match=r"nothing-\*\.png is a folder or a pattern"):
        predict(["nothing-*.png"], exported)  # the API scores files one to one (deepfl-predict expands patterns)
    with pytest.raises(ValueError, match="head"):
        load_scorer(extractor)
    with pytest.raises(ValueError, match="head"):
        combine(extractor, build_mlp(9, hidden=(3,), dropout=(0.0,)))
    with pytest.raises(ValueError, match="normalizer"):
        combine(extractor, head, TargetNormalizer("quantile").fit({"score": [1.0, 2.0]}, "score"))


def test_predict_in_a_loop_loads_the_same_files_once(parts, small_photo, tmp_path, monkeypatch):
    """Each call loaded the model again (seconds) and traced a new function: TensorFlow warned of retracing from
    the fifth call of a loop over images (walk 39b). A changed file, or another head, is loaded afresh."""
    import shutil

    import deepfl.prediction as prediction

    extractor, _, norm, exported = parts
    loads = []
    monkeypatch.setattr(prediction, "load_scorer", lambda *args: loads.append(args) or load_scorer(*args))
    model_file = shutil.copy(exported, tmp_path / "scorer.keras")
    first = [predict(small_photo[: 40 + k], model_file)[0] for k in range(3)]
    assert len(loads) == 1
    head_file = exported.parent / "head.keras"
    with_head = [predict(small_photo, extractor, head=head_file) for _ in range(2)]  # a model object: as it is
    assert len(loads) == 3
    np.testing.assert_allclose(with_head[1], predict(small_photo, model_file), rtol=1e-5, atol=1e-6)
    assert len(loads) == 3  # a scorer built from a model object leaves the file's in place
    other = export_model(
        extractor,
        head_file,
        tmp_path / "other.keras",
        normalizer=TargetNormalizer("standard").fit({"score": [1.0, 5.0, 9.0]}, "score"),
    )
    shutil.copy(other, model_file)  # the same path, another model
    changed = predict(small_photo[:40], model_file)[0]
    assert len(loads) == 4 and not np.isclose(changed, first[0])
    with pytest.raises(FileNotFoundError, match="gone.keras: no such model file"):  # named by load_scorer
        predict(small_photo, tmp_path / "gone.keras")


def test_a_head_given_as_a_model_takes_its_normaliser_or_warns(parts, small_photo):
    """A loaded head has no file beside which its normaliser lies: its scores were z-scores, without a word."""
    import keras

    extractor, _, norm, exported = parts
    expected = predict([small_photo], exported)
    head_model = keras.saving.load_model(exported.parent / "head.keras")
    np.testing.assert_allclose(
        predict([small_photo], extractor, head=head_model, normalizer=norm), expected, rtol=1e-5, atol=1e-6
    )
    with pytest.warns(UserWarning, match="normalizer=deepfl.export.head_normalizer"):
        raw = predict([small_photo], extractor, head=head_model)
    np.testing.assert_allclose(norm.inverse_values("score", raw), expected, rtol=1e-5, atol=1e-6)


def test_predict_names_arrays_with_nan_without_the_advice_for_0_to_1_images(parts, small_photo):
    _, _, _, exported = parts
    image = small_photo.astype(np.float32)
    image[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"images\[0\]: holds 1 NaN or infinite value\(s\)$"):
        predict([image], exported)
    # a head given as the model: named as a head, not Keras' "incompatible with the layer: expected shape=(None, 7)"
    head_file = exported.parent / "head.keras"
    with pytest.raises(
        ValueError, match=r"^model: .*head\.keras is an MLP head \(it takes MLSP features, not images\)"
    ):
        predict([small_photo], head_file)
    with pytest.raises(ValueError, match=r"images\[0\]: .* got uint8 48x64 \(convert to 0\.\.255 RGB; a gray image"):
        predict(np.ascontiguousarray(small_photo[:48, :64, 0]), exported)  # one gray image, not 48 rows
    with pytest.raises(ValueError, match=r"images\[0\]: float values -3\.\.[0-9]+; the models take RGB in 0\.\.255$"):
        predict([np.clip(small_photo.astype(np.float32) - 3, -3, 255)], exported)


def test_expand_inputs(tmp_path, small_photo):
    for name in ("b.png", "a.png"):
        write_image(tmp_path / name, small_photo)
    (tmp_path / "notes.txt").write_text("x")
    got = expand_inputs([str(tmp_path), str(tmp_path / "*.png"), "nothing-*.png"])
    assert got == [str(tmp_path / "a.png"), str(tmp_path / "b.png"), "nothing-*.png"]
    # A folder that is not there keeps its slash, and its error says folder (it said "no such image file").
    missing = f"{tmp_path / 'nosuch'}/"
    assert expand_inputs([missing]) == [missing]
    from deepfl.images import read_image

    for name, words in ((missing, "no such folder"), (tmp_path / "gone.png", "no such image file")):
        with pytest.raises(ImageReadError, match=words):
            read_image(name)


def test_cli_scores_good_files_and_fails_at_the_end(parts, tmp_path, small_photo):
    _, _, _, exported = parts
    good = [tmp_path / "g1.png", tmp_path / "g2.png"]
    write_image(good[0], small_photo)
    write_image(good[1], small_photo[:48, :64])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    out_json = tmp_path / "scores.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepfl.cli.predict",
            f"--model={exported}",
            f"--output={out_json}",
            str(good[0]),
            str(bad),
            str(good[1]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**__import__("os").environ, "DEEPFL_NO_PROGRESS": "1"},
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "bad.jpg" in proc.stderr and "Traceback" not in proc.stderr
    rows = json.loads(out_json.read_text())
    assert [r["image"] for r in rows] == [str(g) for g in good]
    np.testing.assert_allclose([r["score"] for r in rows], predict(good, exported), rtol=1e-5, atol=1e-6)


def test_builtin_swap_keeps_outputs_and_drops_deepfl_layers(small_photo):
    from deepfl.export import builtin_layers
    from deepfl.models import MultiLevelPooling, PixelScaling, build_multitask, mlsp_extractor

    model = build_multitask(tasks=("ssim",), weights=None, arch="tiny", input_shape=(64, 64, 3))
    extractor = mlsp_extractor(model, input_shape=(None, None, 3))
    swapped = builtin_layers(extractor)
    assert not any(isinstance(l, (PixelScaling, MultiLevelPooling)) for l in swapped.layers)
    x = np.stack([small_photo, small_photo[::-1]]).astype("float32")
    np.testing.assert_allclose(swapped.predict(x, verbose=0), extractor.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_a_head_file_without_its_normaliser_is_refused_or_warned(parts, small_photo, tmp_path, caplog):
    """A head copied without its .normalizer.json scored in z-scores, exit 0 (found by the session-22 walk): in
    its deepfl-train-mlp folder (settings say normalised) it is refused; alone it is warned about, naming it; a
    head trained on scores as given (settings say so) needs no normaliser."""
    from deepfl.errors import DeepflError
    from deepfl.protocol import MLP_SETTINGS_FILE

    extractor, head, _, _ = parts
    alone = tmp_path / "alone"
    alone.mkdir()
    head.save(alone / "head.keras")
    with caplog.at_level("WARNING", logger="deepfl"):
        raw = predict([small_photo], extractor, head=alone / "head.keras")
    warned = [r.getMessage() for r in caplog.records if "no normaliser beside it" in r.getMessage()]
    assert len(warned) == 1 and str(alone / "head.keras") in warned[0] and "z-scores" in warned[0], warned
    expected = head.predict(extractor.predict(small_photo[None].astype("float32"), verbose=0), verbose=0)
    np.testing.assert_allclose(raw, expected.reshape(-1), rtol=1e-5, atol=1e-6)

    (alone / MLP_SETTINGS_FILE).write_text(json.dumps({"features": "f.h5", "epochs": 3}))
    with pytest.raises(DeepflError, match=r"head: .*head.keras was trained on normalised scores .*normalizer.json"):
        predict([small_photo], extractor, head=alone / "head.keras")
    (alone / MLP_SETTINGS_FILE).write_text(json.dumps({"features": "f.h5", "normalize_targets": False}))
    caplog.clear()
    with caplog.at_level("WARNING", logger="deepfl"):
        predict([small_photo], extractor, head=alone / "head.keras")
    assert not [r for r in caplog.records if "normaliser" in r.getMessage()]
