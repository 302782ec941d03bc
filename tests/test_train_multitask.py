"""deepfl.training and deepfl-train-multitask: split, validation SROCC, logs, checkpoints, kill + exact resume,
exact data position and skip counts (DataOrder), skipped images named, uint8 batches, mirrored strategy on two
logical CPU devices, error exits.

The job runs in subprocesses (as users run it) with the tiny stand-in backbone and 32x32 inputs; the real
InceptionResNetV2 job is the slow-marked test at the end.
"""

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import killrestart as kr
from deepfl import training
from deepfl.evaluation import srocc
from deepfl.images import write_image
from deepfl.jobs import SettingsChanged
from helpers_datasets import train_multitask_command, train_multitask_flags, write_weak_label_set
from helpers_models import keras_weight_groups

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weak_labels(tmp_path_factory, small_photo):
    return write_weak_label_set(tmp_path_factory.mktemp("weak"), small_photo)


JOB_FLAGS = (
    "--arch=tiny",
    "--weights=none",
    "--image_size=32,32",
    "--batch_size=4",
    "--val_fraction=0.34",
    "--val_steps=1",
)


def job_argv(weak_labels, out_dir, *extra) -> list[str]:
    """The job's flags (without the interpreter), for `killrestart.run_batch`."""
    return train_multitask_flags(weak_labels, out_dir, *JOB_FLAGS, *extra)


def run_job(weak_labels, out_dir, *extra, env_extra=None, check=True, **popen):
    args = train_multitask_command(weak_labels, out_dir, *JOB_FLAGS, *extra)
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


def test_train_val_split_is_disjoint_and_seeded():
    from deepfl.data import train_val_split

    table = pd.DataFrame(
        {
            "image": [f"{c}_{i}" for c in range(70) for i in range(5)],
            "content": [str(c) for c in range(70) for _ in range(5)],
        }
    )
    train, val = train_val_split(table, seed=1)
    assert set(train["content"]).isdisjoint(val["content"])
    assert len(train) + len(val) == len(table) and len(val) == 10 * 5  # 1/7 of 70 contents
    again = train_val_split(table, seed=1)[1]
    assert list(again["image"]) == list(val["image"])
    assert list(train_val_split(table, seed=2)[1]["image"]) != list(val["image"])
    assert len(train_val_split(table, val_images=100)[1]) == 100
    for kwargs in ({"val_fraction": 1.0}, {"val_images": 350}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            train_val_split(table, **kwargs)


class _FixedModel:
    """Stands in for a keras model: predicts given arrays batch by batch."""

    def __init__(self, outputs):
        self.outputs, self.i = outputs, 0

    def predict_on_batch(self, images):
        n = len(images)
        out = {t: v[self.i : self.i + n, None] for t, v in self.outputs.items()}
        self.i += n
        return out


def test_evaluate_tasks_matches_scipy():
    rng = np.random.default_rng(0)
    y = {"ssim": rng.normal(size=10), "gmsd": rng.normal(size=10)}
    p = {"ssim": y["ssim"] * 2 + 1, "gmsd": rng.normal(size=10)}
    batches = [(np.zeros((5, 2, 2, 3)), {t: v[i : i + 5] for t, v in y.items()}) for i in (0, 5)]
    result = training.evaluate_tasks(_FixedModel(p), batches, ["ssim", "gmsd"], {"gmsd": 2.0})
    assert result["ssim_srocc"] == pytest.approx(1.0)
    assert result["gmsd_srocc"] == pytest.approx(stats.spearmanr(p["gmsd"], y["gmsd"]).statistic)
    mse = {t: np.mean((p[t] - y[t]) ** 2) for t in y}
    assert result["loss"] == pytest.approx(mse["ssim"] + 2 * mse["gmsd"])
    assert result["srocc"] == pytest.approx((1.0 + result["gmsd_srocc"]) / 2)
    assert np.isnan(srocc(np.ones(4), np.arange(4), nan_policy="propagate"))


def test_each_phase_traces_its_train_step_once(weak_labels, tmp_path, monkeypatch):
    """Keras builds a model made outside a distribution strategy inside the first trace of its train step, and
    the variables made there (loss trackers, Adam's slots) had TensorFlow trace the step again: 6-9 s of every
    run. `keras_compat.build_from_spec` builds it beforehand."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traces = []
    train_step = TensorFlowTrainer.train_step

    def counted(self, data):
        traces.append(self)
        return train_step(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counted)
    training.run_multitask(_config(weak_labels, epochs=2, warmup_epochs=1), tmp_path / "run")
    assert len(traces) == 2 and traces[0] is not traces[1]  # the warm-up's model, then the fine-tuning's


def test_kill_then_resume_continues_with_the_optimizer_state(weak_labels, tmp_path):
    out = tmp_path / "run"
    flags = ["--epochs=10", "--steps_per_epoch=2", "--warmup_epochs=1", "--notensorboard", "--keep_checkpoints"]
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

    # The resumed run, an unbroken one, a rerun and a changed rerun in one new process (one TensorFlow import).
    unbroken = tmp_path / "unbroken"
    changed_flags = ["--epochs=10", "--steps_per_epoch=3", "--warmup_epochs=1", "--notensorboard"]
    result, unbroken_run, again, changed = kr.run_batch(
        "train_multitask",
        [job_argv(weak_labels, folder, *extra) for folder, extra in ((out, flags), (unbroken, flags), (out, flags))]
        + [job_argv(weak_labels, out, *changed_flags)],
    )
    assert result.returncode == 0 and unbroken_run.returncode == 0, result.stderr[-3000:] + unbroken_run.stderr[-3000:]
    assert f"resuming after epoch {killed_at} of 10" in result.stderr
    rows = history(out)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 11))
    assert [r["backbone_frozen"] for r in rows[:2]] == ["1", "0"]
    assert all(np.isfinite(float(r["val_srocc"])) for r in rows)
    assert {"ssim_loss", "gmsd_loss", "val_ssim_srocc", "val_gmsd_srocc"} <= set(rows[0])
    import h5py

    # 9 unfrozen epochs x 2 steps on one optimizer: only true if its state survived the kill. The optimizer state
    # is in the last checkpoint (the final model is saved without it); its first variable counts the steps.
    state = json.loads(state_file.read_text())
    assert state["epoch"] == 10
    with h5py.File(out / "checkpoints" / state["weights"], "r") as weights:
        assert int(weights["optimizer/vars/0"][()]) == 18
    assert (out / "best.keras").exists() and (out / "normalizer.json").exists()
    assert len(list((out / "checkpoints").glob("epoch_*.weights.h5"))) == 1
    # Exact resumption: an unbroken run (same seed) ends with the same history and weights, byte for byte,
    # across the warm-up/fine-tuning switch (same batches, dropout masks and optimizer state).
    assert (out / "history.csv").read_bytes() == (unbroken / "history.csv").read_bytes()
    # The training curves are drawn from history.csv after every epoch: the resumed run's plot is the unbroken's.
    assert (out / "history.png").read_bytes() == (unbroken / "history.png").read_bytes()
    for name in ("model.keras", "best.keras"):
        for a, b in zip(_model_weights(out / name), _model_weights(unbroken / name), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert (out / "checkpoints" / "state.json").read_bytes() == (unbroken / "checkpoints" / "state.json").read_bytes()

    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert changed.returncode == 2 and "steps_per_epoch" in changed.stderr.strip().splitlines()[-1]


def test_mirrored_strategy_on_two_logical_cpus(weak_labels, tmp_path):
    out = tmp_path / "mirrored"
    result = run_job(
        weak_labels, out, "--strategy=mirrored", "--virtual_cpu_devices=2", "--epochs=1", "--steps_per_epoch=2"
    )
    assert "with 2 replica(s)" in result.stderr
    rows = history(out)
    assert len(rows) == 1 and np.isfinite(float(rows[0]["loss"]))
    assert (out / "model.keras").exists() and any((out / "tensorboard").rglob("events.out.tfevents.*"))


def test_mirrored_strategy_on_many_sizes_gives_every_replica_a_share(mixed_labels, tmp_path):
    """8 training images of each of two sizes at batch 5: each size's last batch (3 images) is topped up to 4 for
    the 2 replicas; a batch of 3 split 2 + 1 had failed inside the model ("Incompatible shapes: [8] vs. [3]")."""
    out = tmp_path / "mirrored"
    result = run_job(
        mixed_labels,
        out,
        "--image_size=",
        "--batch_size=5",
        "--strategy=mirrored",
        "--virtual_cpu_devices=2",
        "--epochs=2",
        "--steps_per_epoch=0",
    )
    assert "with 2 replica(s)" in result.stderr and "2 different sizes" in result.stderr
    rows = history(out)
    assert len(rows) == 2 and all(np.isfinite(float(row["loss"])) for row in rows)


def test_bad_arguments_exit_with_one_line(weak_labels, tmp_path):
    result = run_job(weak_labels, tmp_path / "bad", "--tasks=ssim,vsi", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error") and "vsi" in result.stderr


def test_every_library_backbone_is_a_choice_and_only_the_papers_takes_pretrained_weights(weak_labels, tmp_path):
    """--arch offers the library's backbones (the demo's 'small' included: the flag accepts it, so the refusal is
    about the weights, not the name); 'small' with the default --weights=imagenet is refused with one line before
    anything trains, and with weights=none the job's settings accept it (the small CNN's training itself is
    covered by the demo's tests)."""
    refused = run_job(weak_labels, tmp_path / "refused", "--arch=small", "--weights=imagenet", check=False)
    assert refused.returncode == 2, refused.stderr[-2000:]
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("error") and "weights" in line and "'small'" in line, line
    assert not (tmp_path / "refused" / "checkpoints").exists()
    from deepfl.architectures import ARCHITECTURES

    for arch in ARCHITECTURES:
        weights = "imagenet" if arch == "inception_resnet_v2" else "none"
        training.MultitaskConfig(weak_labels=str(weak_labels), image_root=str(tmp_path), arch=arch, weights=weights)
    with pytest.raises(ValueError, match="arch: must be one of"):
        training.MultitaskConfig(weak_labels=str(weak_labels), image_root=str(tmp_path), arch="resnet50")
    # Checked with the other flags, before the split is written (it was refused by the training loop, after it).
    with pytest.raises(ValueError, match=r"warmup_epochs: must be in \[0, epochs=2\], got 3"):
        training.MultitaskConfig(weak_labels=str(weak_labels), image_root=str(tmp_path), epochs=2, warmup_epochs=3)
    for rate in (0.0, -1.0, float("nan")):  # a negative rate trained "fine" to losses of 1e22 and exit 0
        with pytest.raises(ValueError, match="learning_rate: must be > 0"):
            training.MultitaskConfig(weak_labels=str(weak_labels), image_root=str(tmp_path), learning_rate=rate)
    # A walk of session 36: the refusal above told a program "use weights=None", which then failed after loading
    # the data ('NoneType' object has no attribute 'lower'); None is random init, stored as "none".
    common = {"weak_labels": str(weak_labels), "image_root": str(tmp_path)}
    assert training.MultitaskConfig(**common, arch="small", weights=None).weights == "none"
    # ... and a crop the paper's network cannot take was "input_shape: height and width must be >= 75", naming
    # neither the flag nor the argument
    with pytest.raises(ValueError, match=r"^crop_size: 32x48 \(width x height\) is too small for Incep.* crop_size"):
        training.MultitaskConfig(**common, crop_size=(48, 32))
    with pytest.raises(ValueError, match=r"^image_size: 80x60 .*use a larger image_size, or arch='small'$"):
        training.MultitaskConfig(**common, image_size=(60, 80))


@pytest.mark.slow
def test_inception_resnet_v2_job_runs(weak_labels, tmp_path):
    out = tmp_path / "irv2"
    run_job(
        weak_labels,
        out,
        "--arch=inception_resnet_v2",
        "--image_size=75,75",
        "--epochs=1",
        "--steps_per_epoch=1",
        "--jit_compile=false",
        "--mixed_precision=mixed_bfloat16",
    )
    assert len(history(out)) == 1 and (out / "model.keras").exists()


def _stream_table(folder, count=10, corrupt=(3, 7)):
    """`count` 16x16 PNGs (row i is uniform gray i*20), the rows in `corrupt` written as broken files."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        path = folder / f"im{i:02d}.png"
        if i in corrupt:
            path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        else:
            write_image(path, np.full((16, 16, 3), i * 20, np.uint8))
        rows.append((str(path), i * 20.0))
    table = pd.DataFrame(rows, columns=["image", "y"])
    return table.assign(**{training.ROW_COLUMN: np.arange(count, dtype=np.float32)})


def test_data_order_gives_the_exact_position_and_skipped_rows(tmp_path):
    """DataOrder against an independent reference: the same seeded stream with the corrupt files repaired."""
    from deepfl import data

    table = _stream_table(tmp_path / "bad")
    repaired = _stream_table(tmp_path / "good", corrupt=())
    targets = ["y", training.ROW_COLUMN]
    kwargs = dict(training=True, repeat=True, seed=5, batch_size=4, dtype="uint8")
    full = [
        int(r)
        for _, v in data.make_dataset(repaired, targets, **kwargs).take(12).as_numpy_iterator()
        for r in v[training.ROW_COLUMN]
    ]  # 48 elements of the stream, nothing skipped
    stats = data.PipelineStats()
    order = training.DataOrder(len(table), seed=5)
    batches = iter(order.attach(data.make_dataset(table, targets, stats=stats, **kwargs)))
    position, delivered = 0, []
    for epoch_batches in (3, 2, 3):  # three "epochs" of 12, 8 and 12 images
        for _ in range(epoch_batches):
            images, values = next(batches)
            assert training.ROW_COLUMN not in values and images.dtype.name == "uint8"
            delivered += [int(round(float(v) / 20)) for v in values["y"].numpy()]
        skipped = order.advance(4 * epoch_batches)
        # Reference: walk the repaired stream until as many good images were delivered.
        good, end = 0, position
        while good < 4 * epoch_batches:
            good += full[end] not in (3, 7)
            end += 1
        assert order.position == end
        assert sorted(skipped) == sorted(r for r in full[position:end] if r in (3, 7))
        position = end
    assert delivered == [r for r in full[:position] if r not in (3, 7)]
    # The test exercised skips. (The pipeline's own PipelineStats count runs ahead with the prefetch, and even
    # changes while it is read: DataOrder's exact count is the one the job reports.)
    assert sum(r in (3, 7) for r in full[:position]) > 0
    # A pipeline restarted at that position yields exactly what the unbroken one yields next.
    resumed = training.DataOrder(len(table), seed=5, position=position)
    restarted = iter(resumed.attach(data.make_dataset(table, targets, skip=position, **kwargs)))
    for _ in range(3):
        a, b = next(batches), next(restarted)
        np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
        np.testing.assert_array_equal(a[1]["y"].numpy(), b[1]["y"].numpy())
    resumed.advance(12)
    order.advance(12)
    assert resumed.position == order.position


def test_uint8_batches_give_the_same_model_outputs():
    from deepfl.models import build_multitask

    model = build_multitask(tasks=["ssim", "gmsd"], weights=None, input_shape=(32, 32, 3), arch="tiny", seed=3)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    as_uint8 = model.predict_on_batch(images)
    as_float = model.predict_on_batch(images.astype(np.float32))
    for task in ("ssim", "gmsd"):
        np.testing.assert_array_equal(np.asarray(as_uint8[task]), np.asarray(as_float[task]))
    states = training.seed_states(model)
    assert len(states) == 4  # two dropouts per head: their RNG states go into the checkpoint
    training.set_seed_states(model, [[s[0], s[1] + 7] for s in states])
    assert [s[1] for s in training.seed_states(model)] == [s[1] + 7 for s in states]
    with pytest.raises(ValueError, match="states"):
        training.set_seed_states(model, states[:1])


def _model_weights(path):
    import keras

    import deepfl.models  # noqa: F401  (registers deepfl's layers)

    return keras.saving.load_model(path, compile=False).get_weights()


def test_skipped_images_are_named_and_counted(weak_labels, tmp_path):
    folder = tmp_path / "labels"
    folder.mkdir()
    for png in weak_labels.glob("*.png"):
        (folder / png.name).write_bytes(png.read_bytes())
    (folder / "c0_01.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # a training or validation image
    (folder / "c5_02.png").write_bytes(b"")
    (folder / "labels.csv").write_bytes((weak_labels / "labels.csv").read_bytes())
    out = tmp_path / "skip"
    result = run_job(
        folder,
        out,
        "--epochs=2",
        "--steps_per_epoch=3",
        "--notensorboard",
        "--on_error=skip",
        "--val_steps=0",
        "--seed=2",
        "--keep_checkpoints",
    )
    lines = result.stderr.splitlines()
    for name in ("c0_01.png", "c5_02.png"):
        assert sum(name in line and "image skipped (" in line for line in lines) == 1, result.stderr[-2000:]
    listed = pd.read_csv(out / "skipped_images.csv")
    assert sorted(Path(p).name for p in listed["image"]) == ["c0_01.png", "c5_02.png"]
    summary = [line for line in lines if "skipped images:" in line]
    assert len(summary) == 1, result.stderr[-2000:]
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    # 2 epochs x 3 steps x 4 images delivered; the position counts the skipped elements on top.
    assert state["position"] == 24 + state["train_skipped"]
    assert f"{state['train_skipped']} training image read(s) skipped in total" in summary[0]


def test_skip_report_names_each_file_once_and_counts_every_skip(tmp_path, caplog):
    table = _stream_table(tmp_path / "images")
    paths = list(table["image"])
    report = training.SkipReport(tmp_path, paths, paths)  # scans by itself: no pipeline count is consulted
    with caplog.at_level("WARNING", logger="deepfl"):
        report.after_epoch(1, np.array([3]))
        report.after_epoch(2, np.array([7, 3]))
        report.after_epoch(3, np.empty(0, np.int64))
    named = [r.getMessage() for r in caplog.records if "image skipped (" in r.getMessage()]
    assert sorted(Path(m.split(": ")[0]).name for m in named) == ["im03.png", "im07.png"]
    assert report.train_skipped == 3 and report.summary().startswith("3 training image read(s) skipped in total")
    resumed = training.SkipReport(tmp_path, paths, paths, train_skipped=3)  # reads skipped_images.csv
    assert resumed.named == {paths[3], paths[7]}


def test_images_smaller_than_the_crop_are_named_with_their_size(tmp_path, caplog):
    table = _stream_table(tmp_path / "images", corrupt=(3,))
    paths = list(table["image"])
    write_image(paths[5], np.zeros((16, 12, 3), np.uint8))  # 12 wide: below a 14x14 crop
    report = training.SkipReport(tmp_path / "run", paths, paths, crop_size=(14, 14))
    (tmp_path / "run").mkdir()
    with caplog.at_level("WARNING", logger="deepfl"):
        report.after_epoch(1, np.array([5]))
    reasons = dict(pd.read_csv(tmp_path / "run" / training.SKIPPED_FILE).itertuples(index=False))
    assert set(reasons) == {paths[3], paths[5]}
    assert reasons[paths[5]] == "12x16 pixels (width x height), smaller than the crop of 14x14", reasons
    assert f"{paths[5]}: image skipped (12x16 pixels" in caplog.text


# --- native size (no squashing) and settings of a stage-1 run, in process: tiny backbone, a few steps ---------


def _config(labels: Path, **overrides) -> "training.MultitaskConfig":
    settings = dict(
        weak_labels=str(labels / "labels.csv"),
        image_root=str(labels),
        arch="tiny",
        weights="none",
        batch_size=4,
        epochs=1,
        steps_per_epoch=2,
        val_fraction=0.34,
        val_steps=1,
        tensorboard=False,
        progress=False,
        jit_compile=False,
    )
    settings.update(overrides)
    return training.MultitaskConfig(**settings)


@pytest.fixture(scope="module")
def mixed_labels(tmp_path_factory, small_photo):
    """24 crops of 6 contents, landscape (40x56) for even contents and portrait (56x40) for odd ones."""
    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(1)
    rows = []
    for r in range(6):
        height, width = (40, 56) if r % 2 == 0 else (56, 40)
        ref = small_photo[r * 6 : r * 6 + height, r * 10 : r * 10 + width].astype(float)
        for level in range(1, 5):
            name = f"m{r}_{level}.png"
            write_image(folder / name, np.clip(ref + rng.normal(0, 10 * level, ref.shape), 0, 255).astype(np.uint8))
            rows.append((name, f"m{r}.png", 1 - 0.1 * level, 0.05 * level))
    pd.DataFrame(rows, columns=["dist_im", "ref_im", "ssim", "gmsd"]).to_csv(folder / "labels.csv", index=False)
    return folder


def test_native_size_is_the_default_and_mixed_shapes_are_not_squashed(mixed_labels, tmp_path, caplog):
    from deepfl import data

    config = _config(mixed_labels)
    assert config.image_size is None
    with caplog.at_level("INFO", logger="deepfl"):
        result = training.run_multitask(config, tmp_path / "native")
    assert tuple(result.model.input_shape[1:]) == (None, None, 3)
    assert any("native sizes: 2 different sizes" in r.getMessage() for r in caplog.records)
    assert not any("aspect ratio" in r.getMessage() for r in caplog.records)
    # 6 references, val_fraction 0.34: two of them validate, which a walk found gave a noisy best.keras unannounced
    assert any(
        r.getMessage().startswith("validation holds 2 of the 6 references (8 images): its SROCC")
        and r.getMessage().endswith("raise val_fraction or val_images for more")
        for r in caplog.records
    ), caplog.text
    # The job's training split through the job's pipeline settings: batches keep each image's own shape.
    split = pd.read_csv(tmp_path / "native" / "split.csv")
    train = data.read_weak_labels(mixed_labels / "labels.csv", mixed_labels)
    train = train[train["image"].isin(split.loc[split["split"] == "train", "image"])]
    shapes = {
        images.shape[1:3]
        for images, _ in data.make_dataset(
            train, ["ssim"], batch_size=4, training=True, dtype="uint8"
        ).as_numpy_iterator()
    }
    assert shapes == {(40, 56), (56, 40)}
    assert (tmp_path / "native" / "model.keras").exists()


def test_validation_of_three_or_more_references_is_not_warned_about(caplog):
    from deepfl.training.job import _warn_if_few_validation_contents

    with caplog.at_level("WARNING", logger="deepfl"):
        _warn_if_few_validation_contents(pd.DataFrame({"content": ["a", "a", "b", "c"]}), 20)
        _warn_if_few_validation_contents(pd.DataFrame({"content": []}), 20)  # no validation: nothing to warn of
    assert not caplog.records
    with caplog.at_level("WARNING", logger="deepfl"):
        _warn_if_few_validation_contents(pd.DataFrame({"content": ["a", "a", "b"]}), 20)
    assert [r.getMessage()[:41] for r in caplog.records] == ["validation holds 2 of the 20 references ("]


def test_many_sizes_train_each_image_once_per_epoch_and_resume_exactly(mixed_labels, tmp_path, monkeypatch):
    """16 training images in two sizes, batch 64: an epoch is one batch of each size (it was one batch of one
    size, filled by repeating its 8 images); a run stopped after epoch 2 and resumed ends as the unbroken one."""
    from helpers_models import assert_same_training_outputs, run_interrupted_after_epoch

    settings = dict(batch_size=64, steps_per_epoch=0, val_steps=0, epochs=3, warmup_epochs=1, flip=True)
    result = training.run_multitask(_config(mixed_labels, **settings), tmp_path / "run")
    assert result.steps_per_epoch == 2
    assert int(result.model.optimizer.iterations) == 4  # the fine-tuning phase: 2 epochs x 2 steps
    stopped = tmp_path / "stopped"
    run_interrupted_after_epoch(
        lambda: training.run_multitask(_config(mixed_labels, **settings), stopped), 2, monkeypatch
    )
    training.run_multitask(_config(mixed_labels, **settings), stopped)
    assert assert_same_training_outputs(tmp_path / "run", stopped) >= 6


def test_an_interrupted_run_says_which_epoch_a_rerun_resumes_after(weak_labels, tmp_path, monkeypatch, caplog):
    """A Ctrl-C can land after an epoch's checkpoint and before its "done" line: the job's last log line then
    says what was saved, read from the checkpoint, so the log never understates the work kept."""
    from deepfl.training import callbacks

    write = callbacks.write_checkpoint

    def interrupted(before: bool):
        def write_then_stop(model, checkpoint_dir, epochs_done, **kwargs):
            if not before:
                write(model, checkpoint_dir, epochs_done, **kwargs)
            raise KeyboardInterrupt

        return write_then_stop

    out = tmp_path / "run"
    for before, saved_line in (
        (True, "no epoch finished yet: a rerun starts from the beginning"),
        (False, "epochs saved: 1 of 2 (a rerun resumes after epoch 1)"),
    ):
        caplog.clear()
        with monkeypatch.context() as patch, caplog.at_level("INFO", logger="deepfl"):
            patch.setattr(callbacks, "write_checkpoint", interrupted(before))
            with pytest.raises(KeyboardInterrupt):
                training.run_multitask(_config(weak_labels, epochs=2), out)
        lines = [r.getMessage() for r in caplog.records]
        assert lines[-1] == saved_line and not any(line.startswith("epoch 1 done") for line in lines), lines
    with caplog.at_level("INFO", logger="deepfl"):
        training.run_multitask(_config(weak_labels, epochs=2), out)
    assert any(r.getMessage().startswith("resuming after epoch 1 of 2") for r in caplog.records)


def test_training_into_a_log_file_prints_plain_step_lines(mixed_labels, tmp_path, monkeypatch, capsys):
    """Output to a file or pipe (as under pytest): no Keras bar, but a plain progress line per epoch (and one
    every 15 s within it), ending before the epoch's validation and its `epoch N done` line."""
    monkeypatch.delenv("DEEPFL_NO_PROGRESS", raising=False)
    training.run_multitask(
        _config(mixed_labels, epochs=2, steps_per_epoch=3, val_steps=0, progress=True), tmp_path / "run"
    )
    err = capsys.readouterr().err
    # The validation pass of 8 images, 4 of each size at batch 4: a total of 2 batches (it showed none).
    validation = [line for line in err.splitlines() if line.startswith("validation, epoch 1")]
    assert "| 2/2 [" in validation[-1], validation
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    by_epoch = {}
    for line in lines:
        by_epoch.setdefault(line.split(":")[0], []).append(line)
    assert list(by_epoch) == ["epoch 1/2", "epoch 2/2"], lines
    assert all("| 3/3 [" in epoch[-1] and "step" in epoch[-1] for epoch in by_epoch.values()), lines
    assert "\r" not in "".join(lines)


def test_an_interrupted_epoch_shows_where_it_stopped_before_the_job_ends(mixed_labels, tmp_path, monkeypatch, capsys):
    """Ctrl-C mid-epoch: the epoch's progress line ends (showing the step reached) before the interruption leaves
    the job, so the job's "interrupted" line is the log's last (it came after a stale progress line)."""
    from deepfl.training.callbacks import StepProgress

    monkeypatch.delenv("DEEPFL_NO_PROGRESS", raising=False)
    step_done = StepProgress.on_train_batch_end

    def stop_after_two_steps(self, batch, logs=None):
        step_done(self, batch, logs)
        if batch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(StepProgress, "on_train_batch_end", stop_after_two_steps)
    try:
        training.run_multitask(_config(mixed_labels, steps_per_epoch=3, progress=True), tmp_path / "run")
    except KeyboardInterrupt:
        written = capsys.readouterr().err  # what is on the log when the job reports the interruption
    else:
        raise AssertionError("the job was not interrupted")
    lines = [line for line in written.splitlines() if line.startswith("epoch 1/1")]
    assert "| 2/3 [" in lines[-1], lines


def test_a_crop_larger_than_every_image_is_refused_before_training(mixed_labels, tmp_path):
    # Before: every image was dropped by the pipeline and the empty training stream repeated forever (a hang at
    # 200% CPU that Ctrl-C could not stop).
    with pytest.raises(ValueError, match=r"crop_size: 100x100 \(width x height\) is larger than each of the first"):
        training.run_multitask(_config(mixed_labels, crop_size=(100, 100)), tmp_path / "run")


@pytest.fixture(scope="module")
def unreadable_labels(tmp_path_factory):
    """The layout of `mixed_labels` with files that are not images (a wrong folder, a failed copy)."""
    folder = tmp_path_factory.mktemp("unreadable")
    rows = []
    for r in range(6):
        for level in range(1, 5):
            (folder / f"m{r}_{level}.png").write_bytes(b"not an image " * 10)
            rows.append((f"m{r}_{level}.png", f"m{r}.png", 1 - 0.1 * level, 0.05 * level))
    pd.DataFrame(rows, columns=["dist_im", "ref_im", "ssim", "gmsd"]).to_csv(folder / "labels.csv", index=False)
    return folder


@pytest.mark.parametrize("size", [{}, {"image_size": (32, 32)}])
def test_a_split_of_unusable_images_is_refused_before_training(unreadable_labels, mixed_labels, tmp_path, size):
    # Before: with every image skipped, the repeated training stream waited forever for its first batch (seen:
    # 150 s at full CPU at native size and with a resize, until killed).
    from deepfl.errors import NoUsableInput

    with pytest.raises(
        NoUsableInput,
        match=r"^no training image can be used: .*m\d_\d\.png: not an image file .*"
        r"\(and the other 15 are unusable too\); check image_root and the files$",
    ):
        training.run_multitask(_config(unreadable_labels, **size), tmp_path / "run")
    assert not (tmp_path / "run" / "split.csv").exists()
    if size:  # the job as users run it (run_job times out after 600 s where the old code hung): one line, exit 3
        result = run_job(unreadable_labels, tmp_path / "cli", check=False)
        assert result.returncode == 3, result.stderr[-2000:]
        assert result.stderr.strip().splitlines()[-1].startswith("error: no training image can be used: ")
    # One image large enough for the crop passes the header probe, but one of the splits has none: named too.
    labels = pd.read_csv(mixed_labels / "labels.csv")
    small = tmp_path / "small"
    small.mkdir()
    for name in labels["dist_im"]:
        write_image(small / name, np.zeros((60, 60, 3) if name == "m0_1.png" else (40, 40, 3), np.uint8))
    labels.to_csv(small / "labels.csv", index=False)
    with pytest.raises(
        NoUsableInput,
        match=r"^no (training|validation) image can be used: .*: 40x40 pixels \(width x "
        r"height\), smaller than the crop of 50x50 .*, or use a smaller crop_size$",
    ):
        training.run_multitask(_config(small, crop_size=(50, 50)), tmp_path / "crop")


def test_one_shared_size_trains_at_that_size_and_a_resize_warns_once(weak_labels, mixed_labels, tmp_path, caplog):
    result = training.run_multitask(_config(weak_labels), tmp_path / "shared")
    assert tuple(result.model.input_shape[1:]) == (48, 48, 3)
    with caplog.at_level("WARNING", logger="deepfl"):
        resized = training.run_multitask(_config(mixed_labels, image_size=(40, 56)), tmp_path / "resized")
    assert tuple(resized.model.input_shape[1:]) == (40, 56, 3)
    warnings = [r.getMessage() for r in caplog.records if "aspect ratio" in r.getMessage()]
    # 40x56 keeps the landscapes as they are and squashes the 56x40 portraits: those are counted.
    assert len(warnings) == 1 and "12 of the first 24 images" in warnings[0], warnings
    # The flag's order as it is given, the example image's as every size line prints it (distort's too).
    assert (
        warnings[0].startswith("image_size 40,56 (height,width) changes")
        and "e.g. 40x56, width x height" in (warnings[0])
    ), warnings
    caplog.clear()
    with caplog.at_level("WARNING", logger="deepfl"):
        training.run_multitask(_config(weak_labels, image_size=(32, 32)), tmp_path / "square")
    assert not any("aspect ratio" in r.getMessage() for r in caplog.records)


def test_a_path_given_relative_or_absolute_is_the_same_setting(weak_labels, tmp_path, monkeypatch):
    monkeypatch.chdir(weak_labels.parent)
    relative = Path(weak_labels.name)
    first = training.run_multitask(_config(relative), tmp_path / "run")
    assert not first.already_trained
    stored = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert stored["weak_labels"] == str(weak_labels.resolve() / "labels.csv")
    monkeypatch.chdir(tmp_path)
    assert training.run_multitask(_config(weak_labels.resolve()), tmp_path / "run").already_trained


def test_a_run_moved_with_its_data_resumes_there(weak_labels, tmp_path):
    # Session 25's walk: an interrupted run moved with its data to a bigger disk was refused ("image_root
    # .../proj/kadis -> .../proj_moved/kadis"), and --overwrite, the only way on, discarded its checkpoints.
    import shutil

    project = tmp_path / "proj"
    shutil.copytree(weak_labels, project / "kadis")
    first = training.run_multitask(_config(project / "kadis", epochs=2), project / "run", keep_checkpoints=True)
    assert not first.already_trained
    moved = tmp_path / "disk2" / "proj"
    moved.parent.mkdir()
    shutil.move(project, moved)
    assert training.run_multitask(_config(moved / "kadis", epochs=2), moved / "run").already_trained
    longer = training.run_multitask(_config(moved / "kadis", epochs=3), moved / "run")  # extends from checkpoint
    assert not longer.already_trained and [int(r["epoch"]) for r in history(moved / "run")] == [1, 2, 3]
    with pytest.raises(SettingsChanged, match=r"image_root .*/proj/kadis -> .*/disk2/other"):
        shutil.copytree(moved / "kadis", tmp_path / "disk2" / "other")
        training.run_multitask(_config(tmp_path / "disk2" / "other", epochs=3), moved / "run")
    # The run folder alone moved (to a scratch disk, deeper), its data where it was: the paths as recorded hold.
    scratch = tmp_path / "scratch" / "deeper" / "run"
    scratch.parent.mkdir(parents=True)
    shutil.move(moved / "run", scratch)
    assert training.run_multitask(_config(moved / "kadis", epochs=3), scratch).already_trained


def test_a_run_missing_its_record_or_its_model_says_so(weak_labels, tmp_path, caplog):
    # Session 25's walk: with run_config.json deleted the same command said "cannot extend the run to --epochs=2
    # ... use --epochs=0" (a flag value it refuses); with model.keras deleted it trained again without a word.
    out = tmp_path / "run"
    training.run_multitask(_config(weak_labels), out)
    (out / "run_config.json").rename(tmp_path / "kept.json")
    with pytest.raises(SettingsChanged, match=r"holds a trained run \(model.keras or checkpoints/\) but not its sett"):
        training.run_multitask(_config(weak_labels), out)
    (tmp_path / "kept.json").rename(out / "run_config.json")
    (out / "model.keras").unlink()
    with caplog.at_level("WARNING", logger="deepfl"):
        assert not training.run_multitask(_config(weak_labels), out).already_trained
    assert "model.keras is missing and no checkpoint is left: training again from epoch 1" in caplog.text
    # An interrupted run (checkpoints, no model yet) without its record resumed with whatever flags were given.
    interrupted = tmp_path / "interrupted"
    training.run_multitask(_config(weak_labels), interrupted, keep_checkpoints=True)
    (interrupted / "model.keras").unlink()
    (interrupted / "run_config.json").unlink()
    with pytest.raises(SettingsChanged, match=r"holds a trained run .* neither checked, resumed nor extended"):
        training.run_multitask(_config(weak_labels, seed=7), interrupted)


def test_the_same_run_started_twice_at_once_is_refused(weak_labels, tmp_path):
    from deepfl.errors import DeepflError
    from deepfl.jobs import folder_lock

    (tmp_path / "run").mkdir()
    with folder_lock(tmp_path / "run"):  # as another process running the same command holds it
        with pytest.raises(DeepflError, match="being written by another job"):
            training.run_multitask(_config(weak_labels), tmp_path / "run")
    assert not (tmp_path / "run" / "run_config.json").exists()


def test_a_finished_run_extends_to_more_epochs_as_if_started_with_them(weak_labels, tmp_path):
    from helpers_models import assert_same_training_outputs

    extended, unbroken = tmp_path / "extended", tmp_path / "unbroken"
    training.run_multitask(_config(weak_labels, epochs=2, warmup_epochs=1), extended, keep_checkpoints=True)
    result = training.run_multitask(_config(weak_labels, epochs=3, warmup_epochs=1), extended, keep_checkpoints=True)
    assert not result.already_trained and [int(r["epoch"]) for r in history(extended)] == [1, 2, 3]
    training.run_multitask(_config(weak_labels, epochs=3, warmup_epochs=1), unbroken, keep_checkpoints=True)
    assert assert_same_training_outputs(unbroken, extended) >= 6
    assert training.run_multitask(_config(weak_labels, epochs=3, warmup_epochs=1), extended).already_trained

    with pytest.raises(SettingsChanged) as fewer:
        training.run_multitask(_config(weak_labels, epochs=2, warmup_epochs=1), extended)
    assert "epochs 3 done -> 2" in str(fewer.value) and "\n" not in str(fewer.value)
    with pytest.raises(SettingsChanged) as changed:
        training.run_multitask(_config(weak_labels, epochs=3, warmup_epochs=1, steps_per_epoch=3, seed=4), extended)
    message = str(changed.value)
    for part in ("steps_per_epoch 2 -> 3", "seed 0 -> 4", "overwrite=True", "new out_dir", "earlier arguments"):
        assert part in message, message
    fresh = training.run_multitask(_config(weak_labels, epochs=1, steps_per_epoch=3, seed=4), extended, overwrite=True)
    assert not fresh.already_trained and len(history(extended)) == 1
    # By default the resume state goes at the end; the run then counts as finished but cannot be extended.
    assert not (extended / "checkpoints").exists() and (extended / "model.keras").exists()
    assert training.run_multitask(_config(weak_labels, epochs=1, steps_per_epoch=3, seed=4), extended).already_trained
    with pytest.raises(SettingsChanged) as gone:
        training.run_multitask(_config(weak_labels, epochs=2, steps_per_epoch=3, seed=4), extended)
    assert "checkpoints/ are gone" in str(gone.value) and "keep_checkpoints=True" in str(gone.value)


def test_a_run_that_failed_before_training_does_not_hold_its_out_dir(weak_labels, tmp_path):
    out = tmp_path / "run"
    with pytest.raises((ValueError, OSError)):
        training.run_multitask(_config(weak_labels, weights=str(tmp_path / "missing.weights.h5")), out)
    assert not (out / "checkpoints").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "labels.csv").write_text("dist_im,ref_im,ssim\nnot_there.png,r.png,0.5\n")
    with pytest.raises(ValueError, match="not_there.png"):
        training.run_multitask(_config(broken, on_error="stop"), out)
    # Corrected flags (weights, labels, seed) proceed: nothing was trained under the failed settings.
    assert not training.run_multitask(_config(weak_labels, seed=3), out).already_trained
    assert json.loads((out / "run_config.json").read_text())["seed"] == 3


def test_learning_rate_schedules_constant_and_cosine():
    from deepfl.training.job import learning_rate_schedule

    assert learning_rate_schedule("constant", 1e-3, 100) == 1e-3
    cosine = learning_rate_schedule("cosine", 1e-3, 100)
    for step, expected in ((0, 1e-3), (50, 5e-4), (100, 0.0), (150, 0.0)):
        assert float(cosine(step)) == pytest.approx(expected, abs=1e-9), step
    with pytest.raises(ValueError, match="lr_schedule: must be one of"):
        learning_rate_schedule("step", 1e-3, 100)
    with pytest.raises(ValueError, match="lr_schedule: must be one of"):
        _config(Path("."), lr_schedule="linear")


def test_a_cosine_run_decays_over_each_phase_resumes_exactly_and_cannot_be_extended(weak_labels, tmp_path, monkeypatch):
    from helpers_models import assert_same_training_outputs, run_interrupted_after_epoch

    settings = dict(epochs=3, warmup_epochs=1, lr_schedule="cosine")
    result = training.run_multitask(_config(weak_labels, **settings), tmp_path / "run")
    # The final and best models are saved for scoring: the weights without Adam's slots (those are in checkpoints/).
    for name in ("model.keras", "best.keras"):
        groups = keras_weight_groups(tmp_path / "run" / name)
        assert "optimizer" not in groups and groups, (name, groups)
    saved = _model_weights(tmp_path / "run" / "model.keras")
    assert len(saved) == len(result.model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(saved, result.model.get_weights()))
    optimizer = result.model.optimizer
    # The fine-tuning phase: 2 epochs x 2 steps, decayed from 1e-4 to 0 over them.
    assert int(optimizer.iterations) == 4 and float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-12)
    # Interrupted after epoch 2 (its checkpoint written, half-way down the cosine) and resumed: as if never stopped.
    stopped = tmp_path / "stopped"
    run_interrupted_after_epoch(
        lambda: training.run_multitask(_config(weak_labels, **settings), stopped), 2, monkeypatch
    )
    assert not (stopped / "model.keras").exists()
    training.run_multitask(_config(weak_labels, **settings), stopped)
    assert assert_same_training_outputs(tmp_path / "run", stopped) >= 6
    with pytest.raises(SettingsChanged, match=r"epochs 3 -> 4 \(a cosine schedule spans the run's epochs"):
        training.run_multitask(_config(weak_labels, **{**settings, "epochs": 4}), tmp_path / "run")
    with pytest.raises(SettingsChanged, match="lr_schedule cosine -> constant"):
        training.run_multitask(_config(weak_labels, epochs=3, warmup_epochs=1), tmp_path / "run")
    constant = training.run_multitask(_config(weak_labels, epochs=3, warmup_epochs=1), tmp_path / "constant")
    assert float(constant.model.optimizer.learning_rate) == pytest.approx(1e-4)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(
            _model_weights(tmp_path / "run" / "model.keras"), _model_weights(tmp_path / "constant" / "model.keras")
        )
    )


def test_the_missing_model_warning_is_for_finished_runs_only(tmp_path):
    # The final walk of session 25: a Ctrl-C during epoch 1's checkpoint was followed by "model.keras is missing"
    # on the rerun, as if a finished run had lost its model.
    from deepfl.training.job import _trained_to_its_end

    (tmp_path / "run_config.json").write_text(json.dumps({"epochs": 2}))
    (tmp_path / "history.csv").write_text("epoch,loss\n1,0.5\n")
    assert not _trained_to_its_end(tmp_path)
    (tmp_path / "history.csv").write_text("epoch,loss\n1,0.5\n2,0.4\n")
    assert _trained_to_its_end(tmp_path)


def test_training_at_native_size_on_large_photos_is_warned_about(tmp_path, caplog):
    """A user's own 12 MP photos at native size cost each step 150 KADIS images' time and memory (99-394 s and
    12.8 GB per step of 2 in a walk), with no word before. Only the headers are read, so one-colour JPEGs of
    those sizes do."""
    from PIL import Image

    from deepfl.training import job

    def plan_for(size: tuple[int, int], count: int) -> list[str]:
        paths = []
        for k in range(count):
            path = tmp_path / f"{size[0]}x{size[1]}_{k}.jpg"
            Image.new("RGB", size, (k, 100, 150)).save(path, quality=50)
            paths.append(str(path))
        return paths

    config = _config(tmp_path)
    with caplog.at_level("WARNING", logger="deepfl"):
        job._input_plan(config, plan_for((4000, 3000), 2) + plan_for((512, 384), 1))
    warned = [r.getMessage() for r in caplog.records if "native size on large images" in r.getMessage()]
    assert len(warned) == 1 and "median 12.0 megapixels, 61 times" in warned[0] and "crop_size=(384, 512)" in warned[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="deepfl"):
        job._input_plan(config, plan_for((1024, 768), 3) + plan_for((4000, 3000), 1))  # KonIQ-sized: no warning
        job._input_plan(_config(tmp_path, crop_size=(384, 512)), plan_for((4000, 3000), 2))
    assert not [r for r in caplog.records if "native size on large images" in r.getMessage()]
