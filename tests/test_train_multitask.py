"""deepfl.training and deepfl-train-multitask: split, validation SROCC, logs, checkpoints, kill + resume,
mirrored strategy on two logical CPU devices, error exits.

The job runs in subprocesses (as users run it) with the tiny stand-in backbone and 32x32 inputs; the real
InceptionResNetV2 job is the slow-marked test at the end.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from deepfl import training
from deepfl.images import write_image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weak_labels(tmp_path_factory, small_photo):
    """18 noisy crops of 6 contents with two weak labels that fall (ssim) / rise (gmsd) with the noise."""
    folder = tmp_path_factory.mktemp("weak")
    rng = np.random.default_rng(0)
    rows = []
    for r in range(6):
        ref = small_photo[(r % 2) * 40:(r % 2) * 40 + 48, r * 12:r * 12 + 48].astype(float)
        for level in range(1, 4):
            noisy = np.clip(ref + rng.normal(0, 12 * level, ref.shape), 0, 255).astype(np.uint8)
            name = f"c{r}_{level:02d}.png"
            write_image(folder / name, noisy)
            rows.append((name, f"c{r}.png", 1 - 0.1 * level + rng.normal(0, 0.01), 0.05 * level))
    pd.DataFrame(rows, columns=["dist_im", "ref_im", "ssim", "gmsd"]).to_csv(folder / "labels.csv", index=False)
    return folder


def run_job(weak_labels, out_dir, *extra, env_extra=None, check=True, **popen):
    args = [sys.executable, "-m", "experiments.train_multitask", f"--weak_labels={weak_labels / 'labels.csv'}",
            f"--image_root={weak_labels}", f"--out_dir={out_dir}", "--arch=tiny", "--weights=none",
            "--image_size=32,32", "--batch_size=4", "--val_fraction=0.34", "--val_steps=1", *extra]
    env = dict(os.environ, DEEPFL_NO_PROGRESS="1", TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    if popen:
        return subprocess.Popen(args, cwd=REPO, env=env, **popen)
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stderr[-3000:]}")
    return result


def history(out_dir):
    with open(Path(out_dir) / "history.csv") as handle:
        return list(csv.DictReader(handle))


def test_split_by_content_is_disjoint_and_seeded():
    table = pd.DataFrame({"image": [f"{c}_{i}" for c in range(70) for i in range(5)],
                          "content": [str(c) for c in range(70) for _ in range(5)]})
    train, val = training.split_by_content(table, seed=1)
    assert set(train["content"]).isdisjoint(val["content"])
    assert len(train) + len(val) == len(table) and len(val) == 10 * 5  # 1/7 of 70 contents
    again = training.split_by_content(table, seed=1)[1]
    assert list(again["image"]) == list(val["image"])
    assert list(training.split_by_content(table, seed=2)[1]["image"]) != list(val["image"])
    assert len(training.split_by_content(table, val_images=100)[1]) == 100
    for kwargs in ({"val_fraction": 1.0}, {"val_images": 350}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            training.split_by_content(table, **kwargs)


class _FixedModel:
    """Stands in for a keras model: predicts given arrays batch by batch."""

    def __init__(self, outputs):
        self.outputs, self.i = outputs, 0

    def predict_on_batch(self, images):
        n = len(images)
        out = {t: v[self.i:self.i + n, None] for t, v in self.outputs.items()}
        self.i += n
        return out


def test_evaluate_tasks_matches_scipy():
    rng = np.random.default_rng(0)
    y = {"ssim": rng.normal(size=10), "gmsd": rng.normal(size=10)}
    p = {"ssim": y["ssim"] * 2 + 1, "gmsd": rng.normal(size=10)}
    batches = [(np.zeros((5, 2, 2, 3)), {t: v[i:i + 5] for t, v in y.items()}) for i in (0, 5)]
    result = training.evaluate_tasks(_FixedModel(p), batches, ["ssim", "gmsd"], {"gmsd": 2.0})
    assert result["ssim_srocc"] == pytest.approx(1.0)
    assert result["gmsd_srocc"] == pytest.approx(stats.spearmanr(p["gmsd"], y["gmsd"]).statistic)
    mse = {t: np.mean((p[t] - y[t]) ** 2) for t in y}
    assert result["loss"] == pytest.approx(mse["ssim"] + 2 * mse["gmsd"])
    assert result["srocc"] == pytest.approx((1.0 + result["gmsd_srocc"]) / 2)
    assert np.isnan(training.srocc(np.ones(4), np.arange(4)))


def test_kill_then_resume_continues_with_the_optimizer_state(weak_labels, tmp_path):
    out = tmp_path / "run"
    flags = ["--epochs=10", "--steps_per_epoch=2", "--warmup_epochs=1", "--notensorboard"]
    job = run_job(weak_labels, out, *flags, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = out / "checkpoints" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and job.poll() is None:
        if state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 3:
            break
        time.sleep(0.05)
    assert job.poll() is None, "the job ended before it could be killed; raise --epochs"
    job.send_signal(signal.SIGKILL)
    job.wait()
    killed_at = json.loads(state_file.read_text())["epoch"]
    assert 3 <= killed_at < 10 and not (out / "model.keras").exists()

    result = run_job(weak_labels, out, *flags)
    assert f"resuming after epoch {killed_at} of 10" in result.stderr
    rows = history(out)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 11))
    assert [r["backbone_frozen"] for r in rows[:2]] == ["1", "0"]
    assert all(np.isfinite(float(r["val_srocc"])) for r in rows)
    assert {"ssim_loss", "gmsd_loss", "val_ssim_srocc", "val_gmsd_srocc"} <= set(rows[0])
    import keras

    import deepfl.models  # noqa: F401  (registers deepfl's layers)

    model = keras.saving.load_model(out / "model.keras")
    # 9 unfrozen epochs x 2 steps on one optimizer: only true if its state survived the kill.
    assert int(model.optimizer.iterations) == 18
    assert json.loads(state_file.read_text())["epoch"] == 10
    assert (out / "best.keras").exists() and (out / "normalizer.json").exists()
    assert len(list((out / "checkpoints").glob("epoch_*.weights.h5"))) == 1

    again = run_job(weak_labels, out, *flags)
    assert "nothing to do" in again.stdout
    changed = run_job(weak_labels, out, "--epochs=10", "--steps_per_epoch=3", "--warmup_epochs=1",
                      "--notensorboard", check=False)
    assert changed.returncode == 2 and "steps_per_epoch" in changed.stderr.strip().splitlines()[-1]


def test_mirrored_strategy_on_two_logical_cpus(weak_labels, tmp_path):
    out = tmp_path / "mirrored"
    result = run_job(weak_labels, out, "--strategy=mirrored", "--virtual_cpu_devices=2", "--epochs=1",
                     "--steps_per_epoch=2")
    assert "with 2 replica(s)" in result.stderr
    rows = history(out)
    assert len(rows) == 1 and np.isfinite(float(rows[0]["loss"]))
    assert (out / "model.keras").exists() and any((out / "tensorboard").rglob("events.out.tfevents.*"))


def test_bad_arguments_exit_with_one_line(weak_labels, tmp_path):
    result = run_job(weak_labels, tmp_path / "bad", "--tasks=ssim,vsi", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error") and "vsi" in result.stderr


@pytest.mark.slow
def test_inception_resnet_v2_job_runs(weak_labels, tmp_path):
    out = tmp_path / "irv2"
    run_job(weak_labels, out, "--arch=inception_resnet_v2", "--image_size=75,75", "--epochs=1",
            "--steps_per_epoch=1", "--jit_compile=false", "--mixed_precision=mixed_bfloat16")
    assert len(history(out)) == 1 and (out / "model.keras").exists()
