"""A stage-1 model saved by one process is scored and exported by others (deepfl-predict --head, deepfl-export).

Each command runs in a fresh interpreter that has imported nothing of deepfl beforehand: the saved multi-task
model carries deepfl's own layers, which must be registered by the loading code itself.
"""

import csv
import subprocess
import sys

import numpy as np
import pytest

import killrestart as kr
from deepfl.images import write_image


@pytest.fixture(scope="module")
def stage1_files(tmp_path_factory, small_photo):
    from deepfl.models import build_multitask, mlsp_extractor
    from deepfl.models.mlp import build_mlp

    folder = tmp_path_factory.mktemp("stage1")
    model = build_multitask(tasks=("ssim", "gmsd"), weights=None, input_shape=(64, 64, 3), arch="tiny")
    model.save(folder / "model.keras")
    dim = mlsp_extractor(model, input_shape=(None, None, 3)).output_shape[-1]
    build_mlp(dim, hidden=(8,), dropout=(0.0,), seed=1).save(folder / "head.keras")
    write_image(folder / "a.png", small_photo)
    write_image(folder / "b.png", np.ascontiguousarray(small_photo[:, ::-1]))
    return folder


def scores_of(path):
    with open(path, newline="") as handle:
        return {row["image"]: float(row["score"]) for row in csv.DictReader(handle)}


def test_new_process_scores_and_exports_a_saved_stage1_model(stage1_files, tmp_path):
    folder = stage1_files
    images = [str(folder / "a.png"), str(folder / "b.png")]
    exported = tmp_path / "deepfl_iqa.keras"
    flags = ["--model", str(folder / "model.keras"), "--head", str(folder / "head.keras"), "--output", str(exported)]
    # A copy of the files whose head is rewritten in place after its export (below).
    rewritten = tmp_path / "rewritten"
    rewritten.mkdir()
    for name in ("model.keras", "head.keras"):
        (rewritten / name).write_bytes((folder / name).read_bytes())
    flags_rewritten = [
        *("--model", str(rewritten / "model.keras"), "--head", str(rewritten / "head.keras")),
        *("--output", str(rewritten / "scorer.keras")),
    ]
    # Each batch is one new process (one TensorFlow import) running the job's command lines one after another.
    first, first_rewritten = kr.run_batch("export", [flags, flags_rewritten])
    assert first.returncode == 0, first.stderr[-2000:]
    assert first_rewritten.returncode == 0, first_rewritten.stderr[-2000:]
    (rewritten / "head.keras").write_bytes((folder / "head.keras").read_bytes() + b"\0")
    assert exported.is_file()
    written = exported.read_bytes()
    # The same command again is done already, and says so without TensorFlow (it took 6-12 s to say so).
    again, imported = kr.run_noting_tensorflow("export", flags)
    assert again.returncode == 0 and "nothing to do" in again.stdout and not imported, again.stderr[-2000:]
    other_head = tmp_path / "other_head.keras"
    other_head.write_bytes((folder / "head.keras").read_bytes() + b"\0")  # another file under the same --output
    # The same model and head copied elsewhere: the same inputs by content, so the export is found done.
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("model.keras", "head.keras"):
        (moved / name).write_bytes((folder / name).read_bytes())
    refused, copied, changed = kr.run_batch(
        "export",
        [
            ["--model", str(folder / "model.keras"), "--head", str(other_head), "--output", str(exported)],
            ["--model", str(moved / "model.keras"), "--head", str(moved / "head.keras"), "--output", str(exported)],
            flags_rewritten,
        ],
    )
    # The same --head path, rewritten since: named as that file changed, not as "another --head".
    assert changed.returncode == 2, changed.stderr[-2000:]
    assert f"made from --head {(rewritten / 'head.keras').resolve()} as it was before it changed" in changed.stderr
    assert refused.returncode == 2, refused.stderr[-2000:]
    last = refused.stderr.strip().splitlines()
    assert len(last) == 1 and "--overwrite" in last[0], last
    assert f"made from another --head ({(folder / 'head.keras').resolve()} (sha256:" in last[0], last
    assert f" then, {other_head.resolve()} now)" in last[0], last
    assert exported.read_bytes() == written  # never overwritten silently
    assert copied.returncode == 0 and "nothing to do" in copied.stdout, copied.stderr[-2000:]

    direct, via_export = kr.run_batch(
        "predict",
        [
            [
                "--model",
                str(folder / "model.keras"),
                "--head",
                str(folder / "head.keras"),
                "--output",
                str(tmp_path / "direct.csv"),
                *images,
            ],
            ["--model", str(exported), "--output", str(tmp_path / "exported.csv"), *images],
        ],
    )
    assert direct.returncode == 0, direct.stderr[-2000:]
    assert via_export.returncode == 0, via_export.stderr[-2000:]
    a, b = scores_of(tmp_path / "direct.csv"), scores_of(tmp_path / "exported.csv")
    assert sorted(a) == sorted(b) == sorted(images)
    np.testing.assert_allclose([a[i] for i in images], [b[i] for i in images], rtol=1e-5, atol=1e-6)


def test_library_loads_a_saved_stage1_model_in_a_fresh_interpreter(stage1_files):
    code = (
        "import sys; from deepfl.fileio import load_model_file; m = load_model_file(sys.argv[1]); "
        "print(sorted(m.output))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(stage1_files / "model.keras")],
        capture_output=True,
        text=True,
        timeout=300,
        env=kr.job_env(),
        cwd=kr.REPO_ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['gmsd', 'ssim']"


def test_a_head_trained_on_another_models_features_is_refused(tmp_path):
    import json

    from deepfl.errors import DeepflError
    from deepfl.export import check_head_matches_model
    from deepfl.features import FeatureCache, extractor_source

    trained_on, other = tmp_path / "s1" / "model.keras", tmp_path / "s2" / "model.keras"
    for path, content in ((trained_on, b"weights one"), (other, b"weights two")):
        path.parent.mkdir()
        path.write_bytes(content)
    cache = FeatureCache(tmp_path / "feats.h5", dim=3, source=extractor_source(trained_on, None, None))
    cache.append(["a.png"], np.zeros((1, 3), np.float32))
    cache.compact()
    cache.close()
    heads = tmp_path / "mlp"
    heads.mkdir()
    head = heads / "ratings_head_split0.keras"
    check_head_matches_model(other, head)  # no record of deepfl-train-mlp beside the head: nothing to check
    (heads / "mlp_settings.json").write_text(json.dumps({"features": str(tmp_path / "feats.h5")}))
    check_head_matches_model(trained_on, head)
    with pytest.raises(DeepflError, match=r"was trained on features of .*s1/model\.keras .*not of model .*s2"):
        check_head_matches_model(other, head)
    # Every way to pair them goes through the same check (the walk of session 18 exported and scored such a pair
    # with rc 0 through export_model, deepfl.predict and deepfl-predict; only deepfl-export refused).
    from deepfl import predict
    from deepfl.export import export_model, load_scorer

    for pair_up in (
        lambda: load_scorer(other, head),
        lambda: export_model(other, head, tmp_path / "scorer.keras"),
        lambda: predict([np.zeros((80, 80, 3), np.uint8)], other, head=head),
    ):
        with pytest.raises(DeepflError, match=r"was trained on features of .*s1/model\.keras"):
            pair_up()
    assert not (tmp_path / "scorer.keras").exists()


def test_the_head_check_follows_a_moved_or_copied_project(tmp_path):
    # Session 25's walk: after a move the check read a feature cache that was gone and let a wrong pair through
    # (rc 0); in a copy it read the original project's cache and refused the right pair.
    import shutil

    from deepfl.errors import DeepflError
    from deepfl.export import check_head_matches_model
    from deepfl.features import FeatureCache, extractor_source
    from deepfl.jobs import check_settings

    project = tmp_path / "proj"
    for name, content in (("stage1", b"weights one"), ("other", b"weights two")):
        (project / name).mkdir(parents=True)
        (project / name / "model.keras").write_bytes(content)
    with FeatureCache(
        project / "feats.h5", dim=3, source=extractor_source(project / "stage1" / "model.keras", None, None)
    ) as cache:
        cache.append(["a.png"], np.zeros((1, 3), np.float32))
        cache.compact()
    check_settings(project / "mlp" / "mlp_settings.json", {"features": str(project / "feats.h5")})
    copy, moved = tmp_path / "copy", tmp_path / "moved"
    shutil.copytree(project, copy)
    (project / "feats.h5").unlink()  # the original's cache remade with the other model
    with FeatureCache(
        project / "feats.h5", dim=3, source=extractor_source(project / "other" / "model.keras", None, None)
    ) as cache:
        cache.append(["a.png"], np.zeros((1, 3), np.float32))
        cache.compact()
    head = copy / "mlp" / "head_split0.keras"
    check_head_matches_model(copy / "stage1" / "model.keras", head)  # the copy's own cache: the right pair
    with pytest.raises(DeepflError, match=r"features of .*/stage1/model\.keras .*\(recorded in .*/copy/feats\.h5\)"):
        check_head_matches_model(copy / "other" / "model.keras", head)
    shutil.move(copy, moved)
    with pytest.raises(DeepflError, match=r"features of .*/stage1/model\.keras .*\(recorded in .*/moved/feats\.h5\)"):
        check_head_matches_model(moved / "other" / "model.keras", moved / "mlp" / "head_split0.keras")


def test_predict_refuses_arrays_it_was_not_trained_on_and_folders_by_name(stage1_files, small_photo):
    # The walk of session 18: a uint16 array scored 1.0077 on the [0, 1] scale and a 0..1 float array scored as
    # if it were fine; a folder was "no such image file" and a pattern "no file matches" although files matched.
    from deepfl import predict

    model, head = stage1_files / "model.keras", stage1_files / "head.keras"
    photo = np.ascontiguousarray(small_photo[:80, :80])
    score = predict([photo], model, head=head)
    assert score.shape == (1,) and np.isfinite(score[0])
    assert predict([photo.astype(np.float32)], model, head=head) == pytest.approx(score)  # 0..255 floats
    bad = {
        "uint16 80x80x3": photo.astype(np.uint16) * 257,
        "uint8 80x80": photo[..., 0],
        "uint8 80x80x4": np.dstack([photo, photo[..., :1]]),
    }
    for described, array in bad.items():
        with pytest.raises(
            ValueError,
            match=rf"images\[1\]: expected an HxWx3 RGB array of uint8 \(or floats in 0\.\.255\), got {described} ",
        ):
            predict([photo, array], model, head=head)
    for array in (photo / 255.0, photo * 2.0 - 255.0):
        with pytest.raises(ValueError, match=r"images\[0\]: float values .*; the models take RGB in 0\.\.255"):
            predict([array], model, head=head)
    for item in (stage1_files, str(stage1_files / "*.png")):
        with pytest.raises(ValueError, match=r"images\[0\]: .* is a folder or a pattern; .*expand_inputs"):
            predict([item], model, head=head)


def test_a_file_that_is_not_a_keras_model_is_named_with_what_it_is(tmp_path):
    """A folder, a text file or a weights file given where a `.keras` model goes: one line saying what is wrong
    (a folder was "no such model file"; a text file got Keras' advice about SavedModels and TFSMLayer)."""
    import pytest

    from deepfl.fileio import load_model_file

    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(IsADirectoryError, match=r"is a folder, not a head file \(\.keras\)"):
        load_model_file(tmp_path, what="head")
    with pytest.raises(
        ValueError, match=r"notes.txt: not a \.keras model file \(a \.keras file is a zip archive"
    ) as text:
        load_model_file(tmp_path / "notes.txt")
    assert "TFSMLayer" not in str(text.value)
    hinted = r"weights.h5: not a \.keras model file .*; weights files \(\.h5, \.hdf5\) go to x"
    with pytest.raises(ValueError, match=hinted):
        load_model_file(tmp_path / "weights.h5", weights_files_go_to="x")
    # where the caller says nothing (deepfl-predict takes a weights file as --model, with --head), no hint is given
    with pytest.raises(ValueError, match=r"weights.h5: not a \.keras model file") as bare:
        load_model_file(tmp_path / "weights.h5")
    assert "go to" not in str(bare.value)
    with pytest.raises(FileNotFoundError, match=r"absent.keras: no such model file"):
        load_model_file(tmp_path / "absent.keras")


def test_a_model_and_a_head_given_the_other_way_round_are_named(stage1_files, tmp_path):
    """An exported scorer given with a head was refused as "trained on features of another model ...; export with
    that model"; a stage-1 model given as the head as "expects 3 features but the extractor gives 56", after a
    warning about its missing normaliser. Each now says what the file is and where it goes."""
    import warnings

    from deepfl.export import export_model, load_scorer

    model, head = stage1_files / "model.keras", stage1_files / "head.keras"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no normaliser beside the test's head
        scorer = export_model(model, head, tmp_path / "scorer.keras")
    with pytest.raises(ValueError, match=r"scorer.keras scores images already .*use it without a head"):
        load_scorer(scorer, head)
    with pytest.raises(ValueError, match=r"head: .*model.keras is not an MLP head on features"):
        load_scorer(model, model)


def test_a_head_on_features_of_another_pixel_scaling_is_not_exported_with_a_weights_file(tmp_path):
    # A head on the ImageNet baseline's features ([-1, 1] pixels) paired with Keras' ImageNet weights file, which
    # a scorer reads with x / 255 pixels: the head check had no fingerprint to compare and let it through, and the
    # scorer would have scored every image wrong without an error (user walk, session 26).
    import h5py

    from deepfl.errors import DeepflError
    from deepfl.export import check_head_matches_model
    from deepfl.features import FeatureCache, extractor_source
    from deepfl.jobs import check_settings

    weights = tmp_path / "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(weights, "w") as handle:
        handle.attrs["layer_names"] = []
    for name, source in (
        ("baseline", extractor_source(None, "imagenet", None)),
        ("symmetric", extractor_source(None, str(weights), "symmetric")),
        ("unit", extractor_source(None, str(weights), None)),
    ):
        with FeatureCache(tmp_path / f"{name}.h5", dim=3, source=source) as cache:
            cache.append(["a.png"], np.zeros((1, 3), np.float32))
            cache.compact()
        check_settings(tmp_path / name / "mlp_settings.json", {"features": str(tmp_path / f"{name}.h5")})
    for name in ("baseline", "symmetric"):
        with pytest.raises(DeepflError, match=r"pixel_scaling=symmetric.*scales pixels unit \(x / 255\)"):
            check_head_matches_model(weights, tmp_path / name / "head_split0.keras")
    check_head_matches_model(weights, tmp_path / "unit" / "head_split0.keras")  # the same scaling: the right pair


def _head_on_features_of(folder, source, dim):
    """A head in `folder` with the records deepfl-train-mlp and deepfl-extract-features leave: mlp_settings.json
    naming a feature cache whose recorded source is `source`."""
    from deepfl.features import FeatureCache
    from deepfl.jobs import check_settings
    from deepfl.models.mlp import build_mlp

    folder.mkdir()
    with FeatureCache(folder / "features.h5", dim=dim, source=source) as cache:
        cache.append(["a.png"], np.zeros((1, dim), np.float32))
        cache.compact()
    # (trained on raw scores: no normaliser is needed beside the head)
    check_settings(folder / "mlp_settings.json", {"features": str(folder / "features.h5"), "normalize_targets": False})
    build_mlp(dim, hidden=(4,), dropout=(0.0,), seed=1).save(folder / "head.keras")
    return folder / "head.keras"


def test_the_imagenet_baselines_head_is_exported_with_model_imagenet_alone(stage1_files, tmp_path, monkeypatch):
    # A head on the paper's baseline features had no model to be exported or scored with: a weights file was
    # refused (its scaling), and a trained model file was let through, which scores every image wrong (session 27).
    import keras

    from deepfl import features
    from deepfl.errors import DeepflError
    from deepfl.export import check_head_matches_model, export_model
    from deepfl.fileio import describe_file
    from deepfl.models import build_backbone

    model = stage1_files / "model.keras"
    tiny = build_backbone(arch="tiny", weights=None, input_shape=(None, None, 3))
    dim = tiny.output_shape[-1]  # the tiny backbone's features stand in for the ImageNet backbone's here
    baseline = _head_on_features_of(tmp_path / "base", features.extractor_source(None, "imagenet", "unit"), dim)
    trained = _head_on_features_of(tmp_path / "trained", features.extractor_source(str(model), None, None), dim)
    random = _head_on_features_of(tmp_path / "random", features.extractor_source(None, None, None), dim)
    with pytest.raises(
        DeepflError,
        match=r"base/head.keras was trained on features of backbone\(weights=imagenet.*"
        r"not of model .*model.keras: for the ImageNet baseline's head, pass model='imagenet'",
    ):
        check_head_matches_model(model, baseline)
    with pytest.raises(DeepflError, match=r"not of the ImageNet backbone \(model='imagenet'\)"):
        check_head_matches_model("imagenet", trained)
    with pytest.raises(DeepflError, match="a random backbone's features have no model file"):
        check_head_matches_model(model, random)
    # With --model=imagenet it said "pair the head with that model", which no file is (walk 42).
    with pytest.raises(DeepflError, match=r"ImageNet backbone \(model='imagenet'\): a random backbone's features"):
        check_head_matches_model("imagenet", random)
    check_head_matches_model("imagenet", baseline)
    assert describe_file(model) in features.extractor_source(str(model), None, None)
    # The scorer: the ImageNet backbone at the scaling recorded for the head's features (x / 255 here, set at
    # extraction with --pixel_scaling unit). Keras' ImageNet file is not on this machine: the extractor is the tiny
    # backbone, built where deepfl would build the ImageNet one.
    built = []

    def stand_in(model, weights, pixel_scaling=None, dtype="float32"):
        built.append((model, weights, pixel_scaling))
        return build_backbone(arch="tiny", weights=None, input_shape=(None, None, 3), pixel_scaling=pixel_scaling)

    monkeypatch.setattr(features, "load_extractor", stand_in)
    scorer = keras.saving.load_model(export_model("imagenet", baseline, tmp_path / "baseline.keras"))
    assert built == [(None, "imagenet", "unit")]
    assert scorer.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0).shape == (1,)
    with pytest.raises(ValueError, match="imagenet gives features, not scores: pass the head"):
        export_model("imagenet", None, tmp_path / "no_head.keras")
    # A weights file alone was sent to "--weights", a flag deepfl-predict and deepfl-export do not have (a walk).
    weights_file = tmp_path / "backbone.weights.h5"
    build_backbone(arch="tiny", weights=None, input_shape=(None, None, 3)).save_weights(weights_file)
    with pytest.raises(ValueError, match=r"backbone.weights.h5 gives features, not scores: pass .* \(head=\)"):
        export_model(weights_file, None, tmp_path / "no_head.keras")


def test_model_imagenet_offline_is_one_line_naming_the_weights_file(stage1_files, tmp_path):
    from deepfl.features import extractor_source

    baseline = _head_on_features_of(tmp_path / "base", extractor_source(None, "imagenet", None), 8)
    flags = ["--model=imagenet", f"--head={baseline}"]
    offline, scored = kr.run_batch(
        "export",
        [flags + [f"--output={tmp_path / 'baseline.keras'}"]],
        env=kr.job_env(KERAS_HOME=str(tmp_path / "keras_home")),
    ) + kr.run_batch(
        "predict",
        [flags + [str(stage1_files / "a.png")]],
        env=kr.job_env(KERAS_HOME=str(tmp_path / "keras_home")),
    )
    for result in (offline, scored):
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 2 and "ImageNet weights: inception_resnet_v2_weights" in last, result.stderr
        # the way around it in this command's terms: neither command has --weights (a walk of session 36)
        assert "or score with a trained model instead of --model=imagenet" in last and "--weights" not in last, last
    assert not (tmp_path / "baseline.keras").exists()


def test_export_model_refuses_an_existing_file_unless_told(tmp_path):
    """A user walk replaced deepfl-export's scorer (head split 0) by calling export_model with another head and
    the same path: no word, and the scores changed. The function now refuses, as the command does."""
    from deepfl.export import export_model
    from deepfl.models.mlp import build_mlp
    from helpers_models import tiny_extractor

    heads = []
    for k in range(2):
        build_mlp(7, hidden=(5,), dropout=(0.0,), seed=k).save(tmp_path / f"head{k}.keras")
        heads.append(tmp_path / f"head{k}.keras")
    first = export_model(tiny_extractor(), heads[0], tmp_path / "scorer.keras")
    before = first.read_bytes()
    with pytest.raises(FileExistsError, match=r"scorer\.keras exists; pass overwrite=True"):
        export_model(tiny_extractor(), heads[1], tmp_path / "scorer.keras")
    assert first.read_bytes() == before
    export_model(tiny_extractor(), heads[1], tmp_path / "scorer.keras", overwrite=True)
    assert first.read_bytes() != before
