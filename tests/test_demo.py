"""The demo: its wiring at a tiny scale (fast), and the issue's learning thresholds at the default scale (slow)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfl.demo import FEATURE_SETS, DemoConfig, random_crops, rotating_types, run_demo
from deepfl.jobs import SettingsChanged
from deepfl.kadid_opinion import type_level_dmos
from helpers_models import keras_weight_groups

SMALL = DemoConfig(
    size=(96, 96),
    stage1_photos=("rocket", "coins"),
    held_out_photos=("astronaut", "coffee", "chelsea", "camera", "moon"),
    crops=1,
    held_out_crops=1,
    types=(1, 16),
    levels=(1, 3, 5),
    metrics=("ssim", "gmsd"),
    arch="tiny",
    train_crop=(48, 48),
    train_epochs=1,
    train_batch=4,
    val_fraction=0.5,
    mlp_hidden=(16,),
    mlp_dropout=(0.0,),
    mlp_epochs=3,
    mlp_learning_rates=(1e-3,),
    mlp_batch=8,
    num_splits=2,
)


def test_small_demo_wiring_outputs_and_rerun(tmp_path):
    lines = []
    result = run_demo(tmp_path / "out", SMALL, echo=lines.append)
    out = result.out_dir
    for name in (
        "weak_labels.csv",
        "weak_labels.png",
        "held_out_fr.csv",
        "multitask/model.keras",
        "multitask/history.png",
        "features/weak_supervised.h5",
        "features/random_init.h5",
        "comparison.csv",
        "comparison.md",
        "comparison.png",
        "deepfl_iqa.keras",
        "prediction.csv",
    ):
        assert (out / name).is_file(), name
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison.columns[:3]) == ["features", "srocc", "plcc"]
    assert list(comparison["features"]) == list(FEATURE_SETS)
    assert np.all(np.isfinite(comparison["rmse"])) and list(comparison["splits"]) == [2, 2, 2]
    weak = pd.read_csv(out / "weak_labels.csv")
    assert list(weak.columns) == ["dist_im", "ref_im", "ssim", "gmsd"] and len(weak) == 2 * 2 * 3
    oracle = pd.read_csv(out / "held_out_fr.csv")
    assert len(oracle) == 5 * 2 * 3 and oracle.columns[2] in ("ssim", "gmsd")
    # Held-out photos never reach stage 1; the demo says its backbone is not the paper's and its target a stand-in.
    assert not any(name.startswith(("astronaut", "coffee", "chelsea", "camera", "moon")) for name in weak["ref_im"])
    assert any("STAND-IN" in line for line in lines) and any("NOT the paper's" in line for line in lines)
    # The target: KADID-10k's mean opinion of each image's type at its level (the level stand-in beside it).
    assert any("standin_dmos = the KADID-10k mean opinion" in line for line in lines)
    held_out = pd.read_csv(out / "manifest_stage2.csv")
    expected = type_level_dmos(held_out["dist_type"], held_out["dist_level"])
    np.testing.assert_allclose(held_out["standin_dmos"], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(held_out["standin_level"], 1 - (held_out["dist_level"] - 1) / 4, rtol=0, atol=1e-12)
    predictions = pd.read_csv(out / "mlp" / "weak_supervised" / "predictions.csv")
    by_image = held_out.set_index("dist_im")["standin_dmos"]
    np.testing.assert_allclose(predictions["score"], by_image.loc[[Path(p).name for p in predictions["image"]]])
    # Light: no optimizer state in the final .keras files, no resume state left behind.
    for name in (
        "multitask/model.keras",
        "multitask/best.keras",
        "deepfl_iqa.keras",
        "mlp/weak_supervised/head_split0.keras",
    ):
        if (out / name).exists():
            assert "optimizer" not in keras_weight_groups(out / name), name
    assert not (out / "multitask" / "checkpoints").exists()
    # Stage 1's rate decays to 0 over the run (a short constant-rate run ends on a noisy model).
    assert json.loads((out / "multitask" / "run_config.json").read_text())["lr_schedule"] == "cosine"
    # A rerun with the same settings reuses every step; other settings are refused with the differences named.
    mtime = (out / "multitask/model.keras").stat().st_mtime_ns
    again = run_demo(out, SMALL, echo=lines.append)
    assert (out / "multitask/model.keras").stat().st_mtime_ns == mtime
    assert again.scored[0][1] == pytest.approx(result.scored[0][1], rel=1e-6)
    pd.testing.assert_frame_equal(again.comparison, result.comparison)
    changed = DemoConfig(**{**SMALL.__dict__, "mlp_epochs": 4})
    with pytest.raises(SettingsChanged, match="mlp_epochs 3 -> 4"):
        run_demo(out, changed, echo=lines.append)
    assert not list(Path(tmp_path).rglob("*.tmp*"))


@pytest.mark.slow
def test_default_demo_shows_weak_supervision(tmp_path):
    """The issue's thresholds, on the default settings (minutes on 2 CPU cores)."""
    result = run_demo(tmp_path / "demo", DemoConfig())
    table = pd.read_csv(result.out_dir / "comparison.csv").set_index("features")
    assert table.loc["weak_supervised", "srocc"] >= 0.6
    assert table.loc["weak_supervised", "srocc"] - table.loc["random_init", "srocc"] >= 0.25
    assert (result.out_dir / "comparison.png").stat().st_size > 1000
    assert not (result.out_dir / "multitask" / "checkpoints").exists()


def test_unknown_weak_label_metric_is_refused_before_any_work():
    with pytest.raises(ValueError, match="metrics: .*'nope'"):
        DemoConfig(metrics=("ssim", "nope"))
    assert DemoConfig(metrics=("ssim", "gmsd")).metrics == ("ssim", "gmsd")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("types", (0, 1), "types: .*1..25"),
        ("types", (), "types"),
        ("levels", (6,), "levels: .*1..5"),
        ("seed", -1, "seed: need 0"),
        ("seed", 2**32, "seed: need 0"),
    ],
)
def test_types_levels_and_seeds_the_jobs_cannot_use_are_refused_with_the_settings(field, value, message):
    """Refused where the settings are made, so a library call stores nothing before failing (run_demo stored
    types [0, 1] and then failed inside the distort job, naming its assignment CSV)."""
    with pytest.raises(ValueError, match=message):
        DemoConfig(**{field: value})


def test_rotating_types_use_every_type_equally_and_none_twice_per_crop():
    assignment = rotating_types(13, tuple(range(1, 26)), 5)
    assert all(len(set(types)) == 5 for types in assignment)
    counts = np.bincount(np.concatenate(assignment), minlength=26)[1:]
    assert counts.max() - counts.min() <= 1 and counts.sum() == 13 * 5
    assert rotating_types(3, (1, 16), 5) == [(1, 16)] * 3  # capped at the types there are


@pytest.mark.parametrize("shape", [(300, 451, 3), (451, 300, 3), (120, 150, 3)])
def test_random_crops_have_the_size_and_follow_the_seed(shape):
    photo = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    crops = random_crops(photo, (176, 176), 4, np.random.default_rng(7))
    assert [c.shape for c in crops] == [(176, 176, 3)] * 4
    again = random_crops(photo, (176, 176), 4, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(crops, again))
    if min(shape[:2]) > 176:  # room to move: crops differ from each other
        assert not all(np.array_equal(crops[0], c) for c in crops[1:])
