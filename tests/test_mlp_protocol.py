"""MLP head (paper layout) and the split protocol on small synthetic features."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from deepfl.data import TargetNormalizer
from deepfl.models.mlp import build_mlp
from deepfl.protocol import HeadConfig, HeadTrainer, cross_dataset, run_protocol, split_labels


def test_paper_head_layout():
    model = build_mlp()
    assert model.input_shape == (None, 16928)
    dense = [l for l in model.layers if l.__class__.__name__ == "Dense"]
    assert [l.units for l in dense] == [2048, 1024, 256, 1]
    assert [l.activation.__name__ for l in dense] == ["relu", "relu", "relu", "linear"]
    rates = [l.rate for l in model.layers if l.__class__.__name__ == "Dropout"]
    assert rates == [0.25, 0.25, 0.5]
    assert sum(l.__class__.__name__ == "BatchNormalization" for l in model.layers) == 3


def test_bad_head_arguments():
    with pytest.raises(ValueError, match="dropout"):
        build_mlp(8, hidden=(4, 4), dropout=(0.1,))
    with pytest.raises(ValueError, match="lr_selection"):
        HeadConfig(lr_selection="sometimes")


def test_standardized_head_carries_its_z_scoring(tmp_path):
    """With `standardize_features` the head z-scores on the training rows inside itself: features on wildly
    different scales still train, and the saved head takes the raw features."""
    import keras

    x, score, content = _synthetic()
    scaled = x * np.logspace(-3, 3, x.shape[1], dtype=np.float32) + 50.0
    config = HeadConfig(
        hidden=(32,), dropout=(0.1,), epochs=8, batch_size=16, learning_rates=(1e-2,), seed=3, standardize_features=True
    )
    result = run_protocol(scaled, score, _splits(content, 2), config, out_dir=tmp_path, content=content)
    assert result.summary.loc["median", "srocc"] > 0.6
    head = keras.saving.load_model(result.head_paths[0])
    assert head.get_layer("standardize") is not None
    norm = TargetNormalizer.load(tmp_path / "head_split0.normalizer.json")
    pred = norm.inverse_values("score", head.predict(scaled, verbose=0).reshape(-1))
    np.testing.assert_allclose(pred, result.predictions.query("split == 0")["pred"], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="standardize"):
        build_mlp(4, hidden=(2,), dropout=(0.0,), standardize=(np.zeros(4), np.array([1.0, 0.0, 1.0, 1.0])))


def _synthetic(n=120, dim=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    score = np.tanh(x[:, :3].sum(axis=1) / 2) * 0.4 + 0.5
    content = np.repeat(np.arange(n // 4), 4).astype(str)
    return x, score, content


def _count_trainings(monkeypatch) -> list:
    """The learning rate of every head `HeadTrainer.train` trains from now on, in order."""
    import deepfl.protocol as protocol

    trained = []
    original = protocol.HeadTrainer.train

    def counting(self, *args):
        trained.append(args[-1])
        return original(self, *args)

    monkeypatch.setattr(protocol.HeadTrainer, "train", counting)
    return trained


def _splits(content, n_splits, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    ids = np.unique(content)
    for _ in range(n_splits):
        perm = rng.permutation(ids)
        cut1, cut2 = int(0.6 * len(ids)), int(0.8 * len(ids))
        label = (
            {c: "train" for c in perm[:cut1]} | {c: "val" for c in perm[cut1:cut2]} | {c: "test" for c in perm[cut2:]}
        )
        out.append(np.array([label[c] for c in content]))
    return out


def test_protocol_learns_and_saves(tmp_path):
    import keras

    x, score, content = _synthetic()
    config = HeadConfig(
        hidden=(32, 16), dropout=(0.1, 0.1), epochs=8, batch_size=16, learning_rates=(1e-2, 1e-5), seed=3
    )
    result = run_protocol(x, score, _splits(content, 2), config, out_dir=tmp_path, content=content)
    assert len(result.per_split) == 2
    # 1e-5 cannot learn in 8 epochs; validation must pick 1e-2 and the test SROCC must be clearly positive.
    assert (result.per_split["learning_rate"] == 1e-2).all()
    assert result.summary.loc["median", "srocc"] > 0.6
    assert len(result.predictions) == 2 * len(x)
    # Saved heads reproduce the reported predictions through their JSON normalisation.
    head = keras.saving.load_model(result.head_paths[1])
    norm = TargetNormalizer.load(tmp_path / "head_split1.normalizer.json")
    pred = norm.inverse_values("score", head.predict(x, verbose=0).reshape(-1))
    np.testing.assert_allclose(pred, result.predictions.query("split == 1")["pred"], rtol=1e-4, atol=1e-5)


def test_protocol_is_deterministic():
    x, score, content = _synthetic(n=60, dim=8)
    config = HeadConfig(hidden=(8,), dropout=(0.0,), epochs=2, batch_size=8, learning_rates=(1e-2,), seed=1)
    splits = _splits(content, 1)
    a = run_protocol(x, score, splits, config).predictions["pred"].to_numpy()
    b = run_protocol(x, score, splits, config).predictions["pred"].to_numpy()
    np.testing.assert_array_equal(a, b)


def test_an_interrupted_protocol_keeps_its_finished_splits_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    """A rerun trains only the splits an earlier run did not finish (the lr chosen on split 0 comes back with it)
    and reports what an uninterrupted run reports; other inputs or settings never reuse a finished split."""

    x, score, content = _synthetic(n=80, dim=8)
    config = HeadConfig(hidden=(8,), dropout=(0.0,), epochs=3, batch_size=8, learning_rates=(1e-2, 1e-4), seed=2)
    splits = _splits(content, 3)
    whole = run_protocol(x, score, splits, config, out_dir=tmp_path / "whole")
    trained = _count_trainings(monkeypatch)
    run_protocol(x, score, splits, config, out_dir=tmp_path / "run")
    (tmp_path / "run" / "head_split2.done.json").unlink()  # as if killed while training split 2
    trained.clear()
    resumed = run_protocol(x, score, splits, config, out_dir=tmp_path / "run")
    assert trained == [whole.per_split["learning_rate"].iloc[0]]  # split 2 only, at split 0's chosen rate
    pd.testing.assert_frame_equal(resumed.per_split, whole.per_split)
    pd.testing.assert_frame_equal(resumed.predictions, whole.predictions)
    trained.clear()
    run_protocol(x, score * 0.5, splits, config, out_dir=tmp_path / "run")  # other scores: nothing reused
    assert len(trained) == 2 + 2  # split 0 at both rates, then splits 1 and 2


@pytest.mark.parametrize("stop_at", [1, 3])  # the best rate (1e-2) not trained before the stop; trained, then a worse
def test_a_kill_during_the_learning_rate_search_keeps_the_finished_rates(tmp_path, monkeypatch, caplog, stop_at):
    """A run stopped while split 0 tries its learning rates goes on with the next rate on the rerun, and ends as an
    uninterrupted run (a walk lost split 0's finished rates to a Ctrl-C: at the paper's settings, hours)."""
    import deepfl.protocol as protocol

    x, score, content = _synthetic(n=80, dim=8)
    rates = (1e-3, 1e-2, 1e-4, 1e-5)
    config = HeadConfig(hidden=(8,), dropout=(0.0,), epochs=3, batch_size=8, learning_rates=rates, seed=2)
    splits = _splits(content, 2)
    whole = run_protocol(x, score, splits, config, out_dir=tmp_path / "whole")
    assert whole.per_split["learning_rate"].iloc[0] == 1e-2

    trained = _count_trainings(monkeypatch)
    counting = protocol.HeadTrainer.train

    def stopping(self, *args):
        if len(trained) == stop_at:
            raise KeyboardInterrupt
        return counting(self, *args)

    monkeypatch.setattr(protocol.HeadTrainer, "train", stopping)
    with pytest.raises(KeyboardInterrupt):
        run_protocol(x, score, splits, config, out_dir=tmp_path / "run")
    assert protocol.protocol_records.holds_finished_splits(tmp_path / "run")  # the job's folder refuses other flags
    monkeypatch.setattr(protocol.HeadTrainer, "train", counting)
    trained.clear()
    with caplog.at_level("INFO", logger="deepfl"):
        resumed = run_protocol(x, score, splits, config, out_dir=tmp_path / "run")
    assert trained == [*rates[stop_at:], 1e-2]  # the rest of split 0's rates, then split 1
    assert sum("(an earlier run's, kept)" in r.getMessage() for r in caplog.records) == stop_at
    pd.testing.assert_frame_equal(resumed.per_split, whole.per_split)
    pd.testing.assert_frame_equal(resumed.predictions, whole.predictions)
    assert not list((tmp_path / "run").glob("*.search.json"))  # the split's record replaced it

    if stop_at == 1:
        return
    # Other inputs never reuse a search; --overwrite's discard removes it.
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(protocol.HeadTrainer, "train", stopping)
        trained.clear()
        run_protocol(x, score * 0.5, splits, config, out_dir=tmp_path / "other")
    monkeypatch.setattr(protocol.HeadTrainer, "train", counting)
    trained.clear()
    run_protocol(x, score, splits, config, out_dir=tmp_path / "other")
    assert trained == [*rates, 1e-2]
    protocol.discard_finished_splits(tmp_path / "run")
    assert not protocol.protocol_records.holds_finished_splits(tmp_path / "run")


def test_a_finished_run_missing_a_head_or_normaliser_retrains_only_that_split(tmp_path, monkeypatch, caplog):
    # Session 25's walk: a deleted .normalizer.json left the run "finished already" while deepfl-export asked to
    # "restore it beside the head" (no command could); a deleted head was refused as "finished on other inputs".
    import deepfl.protocol as protocol
    from deepfl.protocol_records import finished_on_these_inputs

    x, score, content = _synthetic(n=80, dim=8)
    table = pd.DataFrame({"image": [f"{i}.png" for i in range(80)], "content": content, "score": score})
    config = HeadConfig(hidden=(8,), dropout=(0.0,), epochs=2, batch_size=8, learning_rates=(1e-2,), seed=2)
    splits = _splits(content, 3)
    out = tmp_path / "run"
    protocol.run_and_report(table, x, splits, config, out)
    before = {path.name: path.read_bytes() for path in out.glob("*.json")}
    assert finished_on_these_inputs(out, table, x, splits, config)
    (out / "head_split0.normalizer.json").unlink()
    (out / "head_split2.keras").unlink()
    with caplog.at_level("INFO", logger="deepfl"):
        assert not finished_on_these_inputs(out, table, x, splits, config)
    assert "head_split0.normalizer.json, head_split2.keras missing, so splits 0, 2 will be trained again" in caplog.text
    trained = _count_trainings(monkeypatch)
    protocol.run_and_report(table, x, splits, config, out)
    assert len(trained) == 2 and finished_on_these_inputs(out, table, x, splits, config)
    assert {path.name: path.read_bytes() for path in out.glob("*.json")} == before  # the same files again
    # The same data with other head settings (a program's run into a job's folder) was blamed on "a score table
    # or feature cache changed since?" (a walk of session 36); the data changed is still named as such.
    from deepfl.jobs import SettingsChanged

    longer = dataclasses.replace(config, epochs=3)
    with pytest.raises(SettingsChanged, match=r"run finished with other head settings than this one's: pass overwrite"):
        finished_on_these_inputs(out, table, x, splits, longer)
    # run_and_report itself retrained such a run's heads without a word; it refuses, unless told
    with pytest.raises(SettingsChanged, match="other head settings"):
        protocol.run_and_report(table, x, splits, longer, out)
    assert {path.name: path.read_bytes() for path in out.glob("*.json")} == before and len(trained) == 2
    protocol.run_and_report(table, x, splits, longer, out, overwrite=True)
    assert len(trained) == 5 and finished_on_these_inputs(out, table, x, splits, longer)
    with pytest.raises(SettingsChanged, match=r"on other scores than this one's \(the score table changed since\?\)"):
        finished_on_these_inputs(out, table.assign(score=score[::-1]), x, splits, config)
    # One image more: every digest differs, and the line named the feature cache, the scores and the images at once
    # (walk 42); the counts say what happened.
    grown = pd.concat([table, table.iloc[:1]], ignore_index=True)
    more = [np.append(labels, labels[0]) for labels in splits]
    with pytest.raises(SettingsChanged, match=rf"finished on {len(table)} images, this one has {len(table) + 1} "):
        finished_on_these_inputs(out, grown, np.vstack([x, x[:1]]), more, config)


def test_the_same_protocol_run_started_twice_at_once_is_refused(tmp_path):
    import deepfl.protocol as protocol
    from deepfl.errors import DeepflError
    from deepfl.jobs import folder_lock

    x, score, content = _synthetic(n=40, dim=4)
    table = pd.DataFrame({"image": [f"{i}.png" for i in range(40)], "content": content, "score": score})
    config = HeadConfig(hidden=(4,), dropout=(0.0,), epochs=1, batch_size=8, learning_rates=(1e-2,))
    (tmp_path / "run").mkdir()
    with folder_lock(tmp_path / "run"):  # as another process running the same command holds it
        with pytest.raises(DeepflError, match="being written by another job"):
            protocol.run_and_report(table, x, _splits(content, 2), config, tmp_path / "run")
    assert list((tmp_path / "run").iterdir()) == []


def test_cross_dataset_and_bad_splits():
    x, score, content = _synthetic(n=80, dim=8)
    config = HeadConfig(hidden=(16,), dropout=(0.0,), epochs=15, batch_size=16, learning_rates=(1e-2,))
    res = cross_dataset(x, score, _splits(content, 1)[0], x[:40], score[:40], config)
    assert res["srocc"] > 0.5
    with pytest.raises(ValueError, match="splits"):
        run_protocol(x, score, [np.array(["train"] * 80)], config)
    # NaN features are named before any head trains (they were blamed on the predictions: "pred: non-finite")
    bad = x.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"^features: non-finite value at row 7$"):
        run_protocol(bad, score, _splits(content, 1), config)


def test_table_splits_names_a_missing_content_column():
    import pandas as pd

    from deepfl.protocol import table_splits

    with pytest.raises(ValueError, match=r"^table: needs a 'content' column"):  # a bare KeyError from pandas before
        table_splits(pd.DataFrame({"image": ["a.png", "b.png"], "score": [0.1, 0.2]}), 2)


def test_splits_in_another_form_are_refused_with_the_way_to_labels():
    """deepfl.data.repeated_splits' tables, and labels spelled otherwise, said "the 'train' set has 0 rows"."""
    from deepfl import data

    x, score, content = _synthetic(n=40, dim=4)
    table = pd.DataFrame({"image": [f"{i}.png" for i in range(40)], "content": content, "score": score})
    parts = data.repeated_splits(table, n=2, ratios=(0.6, 0.2, 0.2), seed=0)
    config = HeadConfig(hidden=(4,), dropout=(0.0,), epochs=1, batch_size=8, learning_rates=(1e-2,))
    with pytest.raises(ValueError, match=r"split 0 must give one label .* 40 in all, got a mapping of \['test', "):
        run_protocol(x, score, parts, config)
    with pytest.raises(ValueError, match="protocol.split_labels"):
        run_protocol(x, score, [np.array(["train"] * 39)], config)
    labels = split_labels(table, parts[0])
    with pytest.raises(ValueError, match=r"labels must be train/val/test .* got \['training'\]"):
        run_protocol(x, score, [np.where(labels == "train", "training", labels)], config)
    assert len(run_protocol(x, score, [split_labels(table, p) for p in parts], config).per_split) == 2
    with pytest.raises(ValueError, match=r"learning_rates: need a sequence, e.g. \(0.001,\), got a number"):
        HeadConfig(learning_rates=1e-3)


def test_split_labels_from_data_parts():

    table = pd.DataFrame({"content": list("aabbcc")}, index=[10, 11, 12, 13, 14, 15])
    parts = {"train": table.loc[[10, 11]], "val": table.loc[[12, 13]], "test": table.loc[[14, 15]]}
    assert list(split_labels(table, parts)) == ["train", "train", "val", "val", "test", "test"]


def test_within_table_lists_skipped_sets_and_paper_numbers(tmp_path):

    from deepfl import reporting

    summary = pd.DataFrame(
        {"srocc": [0.9], "plcc": [0.8], "plcc_logistic": [0.85], "krocc": [0.7], "rmse": [0.1]}, index=["median"]
    )
    table = reporting.within_table({"tid2013": summary}, {"tid2013": 40}, {"tid2013": 2})
    row = table.set_index("dataset").loc["tid2013"]
    assert row["status"] == "ok (40 of the release's 3,000 images)" and row["paper_srocc"] == 0.858
    assert row["delta_srocc"] == pytest.approx(0.9 - 0.858)
    assert table.set_index("dataset").loc["kadid10k", "status"].startswith("skipped")
    assert np.isnan(table.set_index("dataset").loc["kadid10k", "srocc"])
    csv_path, md_path = reporting.write_table(table, tmp_path, "within")
    assert "| tid2013 |" in md_path.read_text() and pd.read_csv(csv_path).shape[0] == len(table)


def test_reproduce_cli_on_a_small_tid2013_layout(tmp_path):
    """deepfl-reproduce end to end: features, splits, heads, within/cross tables (tiny CNN backbone)."""
    import subprocess
    import sys
    from pathlib import Path

    from skimage import data

    from deepfl.images import write_image
    from deepfl.models import build_multitask

    root = tmp_path / "tid2013"
    rng = np.random.default_rng(0)
    base = data.astronaut()
    lines = []
    for r in range(1, 11):
        ref = np.ascontiguousarray(base[r * 20 : r * 20 + 64, r * 30 : r * 30 + 80])
        write_image(root / "reference_images" / f"I{r:02d}.BMP", ref)
        for level in range(1, 5):
            noisy = np.clip(ref + rng.normal(0, 12 * level, ref.shape), 0, 255).astype(np.uint8)
            name = f"i{r:02d}_01_{level}.bmp"
            write_image(root / "distorted_images" / name, noisy)
            lines.append(f"{7 - level + rng.normal(0, 0.2):.4f} {name}")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    model_path = tmp_path / "tiny.keras"
    build_multitask(tasks=("ssim", "gmsd"), weights=None, arch="tiny").save(model_path)
    out = tmp_path / "tables"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepfl.cli.reproduce",
            f"--out_dir={out}",
            f"--tid2013_dir={root}",
            f"--model={model_path}",
            "--num_splits=2",
            "--epochs=2",
            "--learning_rates=1e-3",
            "--batch_size=8",
            "--cross=kadid10k:tid2013",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
        env={**__import__("os").environ, "DEEPFL_NO_PROGRESS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    within = pd.read_csv(out / "within.csv").set_index("dataset")
    # 40 images of TID2013's 3,000, and the protocol's epochs, batch, rates and splits changed by flags: the tables
    # say both (they looked like the paper's setting, walk 42).
    assert within.loc["tid2013", "status"] == "ok (40 of the release's 3,000 images)"
    assert within.loc["tid2013", "n_images"] == 40
    assert within.loc["live", "status"].startswith("skipped")
    changed = "; changed: learning_rates=0.001, epochs=2, batch_size=8, num_splits=2)"
    for table in ("within.md", "cross.md"):
        assert f"protocol paper{changed}" in (out / table).read_text().splitlines()[0]
    assert pd.read_csv(out / "cross.csv")["status"].iloc[0].startswith("skipped")
    assert (out / "tid2013" / "scatter.png").is_file() and (out / "features" / "tid2013.h5").is_file()
    assert len(pd.read_csv(out / "tid2013" / "predictions.csv")) == 2 * 40


def test_a_reused_head_trainer_starts_every_head_afresh():
    """Heads of one run share one compiled model: a head trained after another (other rows, other learning rate)
    equals the same head trained by a new trainer, weights, dropout masks and optimiser state all reset."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(160, 12)).astype(np.float32) * 3.0 + 1.0
    y = (x[:, 0] - 0.5 * x[:, 1] + rng.normal(scale=0.3, size=160)).astype(np.float32)
    config = HeadConfig(
        hidden=(16,), dropout=(0.5,), epochs=4, batch_size=16, learning_rates=(1e-2,), standardize_features=True
    )
    reused = HeadTrainer(12, config)
    reused.train(x[40:], y[40:] * 2.0, x[:20], y[:20], 3e-2)  # a different head first
    head, loss, epoch = reused.train(x[:120], y[:120], x[120:], y[120:], 1e-2)
    fresh_head, fresh_loss, fresh_epoch = HeadTrainer(12, config).train(x[:120], y[:120], x[120:], y[120:], 1e-2)
    assert (loss, epoch) == (fresh_loss, fresh_epoch) and np.isfinite(loss)
    for a, b in zip(head.get_weights(), fresh_head.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(head.predict(x, verbose=0), fresh_head.predict(x, verbose=0))
    # Heads on other row counts (the other split sizes) reuse the one traced epoch function.
    assert reused._epoch.experimental_get_tracing_count() == 1


def test_a_head_keeps_its_best_validation_epoch_and_its_loss_is_that_epochs():
    """The returned head is the one of the lowest validation MSE, and that MSE is what the head scores on the
    validation rows (the loss is measured on the model it reports, not a neighbouring epoch's)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    y = (x[:, 0] + rng.normal(scale=0.5, size=200)).astype(np.float32)
    config = HeadConfig(hidden=(8,), dropout=(0.0,), epochs=6, batch_size=32, learning_rates=(1e-2,))
    head, loss, epoch = HeadTrainer(6, config).train(x[:150], y[:150], x[150:], y[150:], 5e-2)
    assert 0 <= epoch < 6
    val_mse = float(np.mean((head.predict(x[150:], verbose=0).reshape(-1) - y[150:]) ** 2))
    assert val_mse == pytest.approx(loss, rel=1e-5)
    assert loss < float(np.var(y[150:]))  # it learned something: better than predicting the mean


def test_cross_dataset_record_is_reused_only_for_the_same_inputs(tmp_path, monkeypatch):
    """deepfl-reproduce retrained every cross pair on every rerun (hours at the paper's settings)."""
    import dataclasses

    x, score, content = _synthetic(n=80, dim=8)
    split = _splits(content, 1)[0]
    config = HeadConfig(hidden=(16,), dropout=(0.0,), epochs=5, batch_size=16, learning_rates=(1e-2,))
    record = tmp_path / "cross.json"
    first = cross_dataset(x, score, split, x[:40], score[:40], config, record=record)
    trained = []
    original = HeadTrainer.train
    monkeypatch.setattr(HeadTrainer, "train", lambda self, *a: trained.append(1) or original(self, *a))
    assert cross_dataset(x, score, split, x[:40], score[:40], config, record=record) == first
    assert not trained
    other = cross_dataset(x, score, split, x[:40], score[:40], dataclasses.replace(config, epochs=6), record=record)
    assert trained and other != first
    assert cross_dataset(x, score, split, x[:40], score[:40], config) == pytest.approx(first)


def test_run_protocol_shows_progress_over_splits_named_after_the_run(tmp_path, capsys, caplog, monkeypatch):
    """deepfl-train-mlp and deepfl-reproduce showed no progress through hours of heads, and the demo's three
    feature sets all logged as 'head split 0'."""
    import logging

    monkeypatch.delenv("DEEPFL_NO_PROGRESS", raising=False)
    x, score, content = _synthetic(n=80, dim=8)
    config = HeadConfig(hidden=(8,), dropout=(0.0,), epochs=2, batch_size=16, learning_rates=(1e-2,))
    with caplog.at_level(logging.INFO, logger="deepfl"):
        run_protocol(x, score, _splits(content, 2), config, tmp_path / "random_init")
    err = capsys.readouterr().err
    assert "random_init/head" in err and "2/2" in err and "split" in err, err
    assert any(r.getMessage().startswith("random_init/head split 1: lr") for r in caplog.records)


def test_a_split_whose_test_scores_do_not_vary_is_named_and_left_out_of_the_median(caplog):
    x, score, content = _synthetic(n=60, dim=8)
    splits = _splits(content, 2)
    score = score.copy()
    score[splits[1] == "test"] = 0.5  # split 1 tests on images that all have one subjective score
    config = HeadConfig(hidden=(8,), dropout=(0.0,), epochs=2, batch_size=8, learning_rates=(1e-2,), seed=1)
    with caplog.at_level("WARNING", logger="deepfl"):
        result = run_protocol(x, score, splits, config, content=content)
    named = [r.getMessage() for r in caplog.records if "are the same for all" in r.getMessage()]
    assert len(named) == 1 and "split 1: the subjective scores are the same for all" in named[0], named
    assert np.isnan(result.per_split.loc[1, "srocc"]) and np.isfinite(result.per_split.loc[0, "srocc"])
    assert result.summary.loc["median", "srocc"] == result.per_split.loc[0, "srocc"]


def test_test_sets_too_small_for_the_logistic_are_warned_once(caplog):
    """A study of 5 contents tests on 4 images per split: plcc_logistic and rmse_logistic are NaN there, which the
    tables showed as empty cells without a word."""
    x, score, content = _synthetic(n=20, dim=8)  # 5 contents of 4 images: one content (4 images) per test set
    splits = _splits(content, 2)
    config = HeadConfig(hidden=(8,), dropout=(0.0,), epochs=2, batch_size=8, learning_rates=(1e-2,), seed=1)
    with caplog.at_level("WARNING", logger="deepfl"):
        result = run_protocol(x, score, splits, config, content=content)
    warned = [r.getMessage() for r in caplog.records if "plcc_logistic and rmse_logistic" in r.getMessage()]
    assert len(warned) == 1 and "2 of 2 splits have fewer than 5 test images (the smallest: 4)" in warned[0], warned
    assert result.per_split["plcc_logistic"].isna().all() and result.per_split["srocc"].notna().all()
    caplog.clear()
    x, score, content = _synthetic(n=60, dim=8)  # 15 contents: 3 contents (12 images) per test set
    with caplog.at_level("WARNING", logger="deepfl"):
        run_protocol(x, score, _splits(content, 2), config, content=content)
    assert not [r for r in caplog.records if "plcc_logistic and rmse_logistic" in r.getMessage()]
