"""The documented commands for the paper and the authors' release: deepfl-extract-features --weights <Keras 2
file> gives the source model's MLSP features, the offline default fails in one line, and deepfl-reproduce /
deepfl-train-mlp run --protocol=authors_demo with both anchors in the tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from deepfl import features, models
from deepfl.fileio import file_fingerprint
from deepfl.images import write_image
from helpers_keras2 import write_keras2_weights

REPO = Path(__file__).resolve().parents[1]


def run_cli(step: str, *argv: str, prelude: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    code = f"import sys; {prelude}\nfrom deepfl.cli.{step} import run\nsys.argv = sys.argv[:1] + sys.argv[1:]\nrun()"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "DEEPFL_NO_PROGRESS": "1", **(env or {})},
    )


OFFLINE = (
    "import keras\ndef offline(*a, **k):\n    raise Exception('URL fetch failure on https://x: None -- "
    "[Errno -3] Temporary failure in name resolution')\nkeras.utils.get_file = offline"
)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error")]


def test_extract_features_with_a_keras2_weights_file_gives_the_source_features(tmp_path, small_photo):
    keras.utils.set_random_seed(5)
    network = keras.applications.InceptionResNetV2(include_top=False, weights=None, input_shape=(None, None, 3))
    weights = tmp_path / "quality-mlsp-mtl-mse-loss.hdf5"
    write_keras2_weights(network, weights)
    photos = [small_photo, np.ascontiguousarray(small_photo[::-1])]
    for i, photo in enumerate(photos):
        write_image(tmp_path / "images" / f"photo{i}.png", photo)
    out = tmp_path / "feats"
    proc = run_cli("extract_features", f"--images={tmp_path / 'images'}", f"--out_dir={out}", f"--weights={weights}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = [str((tmp_path / "images" / f"photo{i}.png").resolve()) for i in range(2)]
    got = features.load_features(out / "images.h5", keys)
    expected = features.compute_features(models.mlsp_backbone(network), [p.astype(np.float32) for p in photos])
    np.testing.assert_array_equal(got, expected)  # x / 255 pixels, float32, native resolution: identical
    with features.FeatureCache(out / "images.h5", mode="r") as cache:
        origin = f"{weights.resolve()} ({file_fingerprint(weights)})"
        assert cache.source == f"backbone(weights={origin}, pixel_scaling=unit)"


def test_offline_imagenet_default_fails_in_one_line(tmp_path):
    (tmp_path / "images").mkdir()
    write_image(tmp_path / "images" / "a.png", np.zeros((80, 80, 3), np.uint8))
    proc = run_cli(
        "extract_features",
        f"--images={tmp_path / 'images'}",
        f"--out_dir={tmp_path / 'out'}",
        prelude=OFFLINE,
        env={"KERAS_HOME": str(tmp_path / "keras")},
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert models.IMAGENET_WEIGHTS_FILE in lines[0] and f"{tmp_path / 'keras' / 'models'}/" in lines[0]
    assert "--weights FILE" in lines[0]


def test_a_reproduce_run_that_failed_before_any_work_does_not_block_other_settings(tmp_path):
    """The documented first command fails offline (no ImageNet weights); the command its error suggests, into the
    same --out_dir, must run: the failed run recorded its settings but finished nothing, so nothing needs
    --overwrite."""
    write_kadid_layout(tmp_path / "kadid10k", refs=6, levels=2)
    out, data = tmp_path / "tables", f"--kadid10k_dir={tmp_path / 'kadid10k'}"
    proc = run_cli("reproduce", f"--out_dir={out}", data, prelude=OFFLINE, env={"KERAS_HOME": str(tmp_path / "k")})
    assert proc.returncode == 2 and models.IMAGENET_WEIGHTS_FILE in error_lines(proc.stderr)[0], proc.stderr[-3000:]
    model = tmp_path / "tiny.keras"
    models.build_multitask(tasks=("ssim",), weights=None, arch="tiny").save(model)
    quick = ("--num_splits=2", "--epochs=1", "--learning_rates=1e-3")  # the paper's protocol, shortened
    proc = run_cli("reproduce", f"--out_dir={out}", data, f"--model={model}", *quick)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "kadid10k" / "summary.csv").is_file()


def write_kadid_layout(root: Path, refs: int = 10, levels: int = 4) -> None:
    from skimage import data

    rng = np.random.default_rng(0)
    base = data.astronaut()
    rows = []
    for r in range(1, refs + 1):
        ref = np.ascontiguousarray(base[r * 20 : r * 20 + 64, r * 30 : r * 30 + 80])
        write_image(root / "images" / f"I{r:02d}.png", ref)
        for level in range(1, levels + 1):
            noisy = np.clip(ref + rng.normal(0, 12 * level, ref.shape), 0, 255).astype(np.uint8)
            name = f"I{r:02d}_01_{level:02d}.png"
            write_image(root / "images" / name, noisy)
            rows.append(f"{name},I{r:02d}.png,{5 - level + rng.normal(0, 0.2):.3f},0.5")
    (root / "dmos.csv").write_text("dist_img,ref_img,dmos,var\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def authors_demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    write_kadid_layout(tmp / "kadid10k")
    model = tmp / "tiny.keras"
    models.build_multitask(tasks=("ssim",), weights=None, arch="tiny").save(model)
    out = tmp / "tables"
    proc = run_cli(
        "reproduce",
        f"--out_dir={out}",
        f"--kadid10k_dir={tmp / 'kadid10k'}",
        f"--model={model}",
        "--protocol=authors_demo",
        "--epochs=2",
        "--cross=kadid10k:live,kadid10k:kadid10k",  # one pair skipped (no LIVE), one trained
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, out


def test_reproduce_authors_demo_writes_both_anchors(authors_demo_run):
    _, out = authors_demo_run
    within = pd.read_csv(out / "within_authors_demo.csv").set_index("dataset")
    row = within.loc["kadid10k"]
    assert row["status"].startswith("ok (40 of ") and row["protocol"] == "authors_demo" and row["n_splits"] == 5
    assert row["paper_srocc"] == 0.936 and row["authors_demo_srocc"] == 0.926
    assert row["authors_demo_splits"] == "0.937 0.925 0.926 0.921 0.942"
    assert "0.936" in (out / "within_authors_demo.md").read_text() and not (out / "within.csv").exists()
    per_split = pd.read_csv(out / "kadid10k_authors_demo" / "per_split.csv")
    assert len(per_split) == 5 and (per_split["learning_rate"] == 1e-3).all()
    assert not list((out / "kadid10k_authors_demo").glob("*.normalizer.json"))  # raw DMOS targets
    predictions = pd.read_csv(out / "kadid10k_authors_demo" / "predictions.csv")
    assert predictions["score"].max() > 3.5  # the published DMOS (1..5), not the [0, 1] table score


def test_a_finished_reproduce_rerun_reuses_its_runs_without_tensorflow(authors_demo_run):
    # Reruns with nothing to do waited 6-12 s for TensorFlow and the backbone (session 24's walk).
    import killrestart

    tmp, out = authors_demo_run
    before = (out / "within_authors_demo.csv").read_bytes()
    argv = [f"--out_dir={out}", f"--kadid10k_dir={tmp / 'kadid10k'}", f"--model={tmp / 'tiny.keras'}"]
    argv += ["--protocol=authors_demo", "--epochs=2", "--cross=kadid10k:live,kadid10k:kadid10k"]
    cross = (out / "cross_authors_demo.csv").read_bytes()
    again, imported = killrestart.run_noting_tensorflow("reproduce", argv)
    assert again.returncode == 0 and "kadid10k: reusing finished run" in again.stdout, again.stderr[-3000:]
    # a finished cross pair too (it imported TensorFlow to find its record: 5.5 s, a walk of session 36)
    assert "cross kadid10k -> kadid10k: SROCC" in again.stdout and "(kept: an earlier run" in again.stdout
    assert not imported and (out / "within_authors_demo.csv").read_bytes() == before
    assert (out / "cross_authors_demo.csv").read_bytes() == cross


def test_train_mlp_authors_demo_and_explicit_override(authors_demo_run):
    tmp, out = authors_demo_run
    common = [
        "--dataset=kadid10k",
        f"--data_dir={tmp / 'kadid10k'}",
        f"--features={out / 'features' / 'kadid10k.h5'}",
        "--epochs=2",
    ]
    proc = run_cli("train_mlp", *common, f"--out_dir={tmp / 'mlp'}", "--protocol=authors_demo", "--num_splits=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    per_split = pd.read_csv(tmp / "mlp" / "per_split.csv")
    assert len(per_split) == 2 and (per_split["learning_rate"] == 1e-3).all()  # --num_splits given: it wins
    assert '"protocol": "authors_demo"' in (tmp / "mlp" / "mlp_settings.json").read_text()
    assert not list((tmp / "mlp").glob("*.normalizer.json"))


def test_reproduce_heads_are_checked_against_the_model_on_export(authors_demo_run):
    """A head of deepfl-reproduce records its features' source in reproduce_settings.json, as a head of
    deepfl-train-mlp does through its cache: exported with another model it is refused (it was exported without
    a word), and with its own model it exports without the missing-normaliser warning (its targets were raw
    scores, by the authors' demo protocol)."""
    tmp, out = authors_demo_run
    head = out / "kadid10k_authors_demo" / "kadid10k_head_split0.keras"
    other = tmp / "other.keras"
    keras.utils.set_random_seed(11)
    models.build_multitask(tasks=("ssim",), weights=None, arch="tiny").save(other)
    proc = run_cli("export", f"--model={other}", f"--head={head}", f"--output={tmp / 'wrong.keras'}")
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert f"head: {head} was trained on features of" in lines[0] and "reproduce_settings.json" in lines[0]
    assert not (tmp / "wrong.keras").exists()
    proc = run_cli("export", f"--model={tmp / 'tiny.keras'}", f"--head={head}", f"--output={tmp / 'right.keras'}")
    assert proc.returncode == 0 and (tmp / "right.keras").is_file(), proc.stderr[-3000:]
    assert "normaliser" not in proc.stderr, proc.stderr[-3000:]


def test_reproduce_uses_the_caches_of_extract_features(tmp_path):
    """A user walk extracted the features with deepfl-extract-features, then watched deepfl-reproduce extract them
    again into its own folder: --features_dir points it to the caches there."""
    write_kadid_layout(tmp_path / "kadid10k", refs=6, levels=2)
    model, feats = tmp_path / "tiny.keras", tmp_path / "feats"
    models.build_multitask(tasks=("ssim",), weights=None, arch="tiny").save(model)
    data = f"--kadid10k_dir={tmp_path / 'kadid10k'}"
    proc = run_cli(
        "extract_features",
        "--dataset=kadid10k",
        data.replace("kadid10k_dir", "data_dir"),
        f"--out_dir={feats}",
        f"--model={model}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    before = (feats / "kadid10k.h5").read_bytes()
    quick = ("--num_splits=2", "--epochs=1", "--learning_rates=1e-3")
    out = tmp_path / "tables"
    proc = run_cli("reproduce", f"--out_dir={out}", data, f"--model={model}", f"--features_dir={feats}", *quick)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "kadid10k" / "summary.csv").is_file() and not (out / "features").exists()
    assert (feats / "kadid10k.h5").read_bytes() == before  # nothing extracted again, nothing added
    keras.utils.set_random_seed(3)
    other = tmp_path / "other.keras"
    models.build_multitask(tasks=("ssim",), weights=None, arch="tiny").save(other)
    proc = run_cli("reproduce", f"--out_dir={tmp_path / 't2'}", data, f"--model={other}", f"--features_dir={feats}")
    assert proc.returncode == 2 and "kadid10k.h5" in error_lines(proc.stderr)[0], proc.stderr[-3000:]
