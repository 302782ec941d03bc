"""The authors' demo protocol beside the paper's: settings, raw targets, fixed lr, anchors in the tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepfl import paper, protocol, reporting


def synthetic_table(n_content: int = 30, per_content: int = 4, dim: int = 4, seed: int = 0):
    """A KADID-like table (raw DMOS 1..5, higher better) whose scores are a noisy linear function of the features."""
    rng = np.random.default_rng(seed)
    n = n_content * per_content
    features = rng.normal(size=(n, dim)).astype(np.float32)
    signal = features @ rng.normal(size=dim)
    raw = 1 + 4 * (signal - signal.min()) / (signal.max() - signal.min()) + rng.normal(0, 0.05, n)
    table = pd.DataFrame(
        {
            "image": [f"img{i}.png" for i in range(n)],
            "ref": "",
            "content": [f"ref{i // per_content:02d}" for i in range(n)],
            "score": (raw - 1) / 4,
            "raw_score": raw,
            "split": "",
        }
    )
    return table, features


def test_settings_of_both_protocols():
    ours = protocol.protocol_settings("paper")
    assert ours["learning_rates"] == list(paper.STAGE2_LEARNING_RATES) and ours["normalize_targets"]
    assert ours["target_column"] == "score" and ours["num_splits"] == paper.STAGE2_NUM_SPLITS
    demo = protocol.protocol_settings("authors_demo")
    assert demo == {
        "learning_rates": [1e-3],
        "epochs": 30,
        "batch_size": 128,
        "normalize_targets": False,
        "num_splits": 5,
        "target_column": "raw_score",
    }
    assert protocol.HeadConfig().learning_rates == paper.STAGE2_LEARNING_RATES  # the default stays the paper's
    with pytest.raises(ValueError, match="protocol: must be one of"):
        protocol.protocol_settings("mine")


def test_authors_demo_protocol_on_a_synthetic_set(tmp_path):
    import keras

    table, features = synthetic_table()
    settings = protocol.protocol_settings("authors_demo")
    config = protocol.HeadConfig(
        hidden=(64, 32),
        dropout=(0.1, 0.1),
        seed=2,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        learning_rates=settings["learning_rates"],
        normalize_targets=settings["normalize_targets"],
    )
    splits = protocol.table_splits(table, settings["num_splits"], seed=0)
    result = protocol.run_and_report(
        table, features, splits, config, tmp_path, name="demo", target_column=settings["target_column"]
    )
    per_split = result.per_split
    assert len(per_split) == 5 and (per_split["learning_rate"] == 1e-3).all()
    assert per_split[["n_train", "n_val", "n_test"]].iloc[0].tolist() == [72, 24, 24]  # 60/20/20 of 30 contents
    assert (per_split["best_epoch"] >= 1).all() and (per_split["best_epoch"] <= 30).all()
    assert result.summary.loc["median", "srocc"] > 0.6  # learnt: chance is about 0
    # Raw targets: no normaliser is written, the head itself predicts on the DMOS scale the criteria compare with.
    assert not list(tmp_path.glob("*.normalizer.json"))
    np.testing.assert_array_equal(result.predictions.query("split == 0")["score"], table["raw_score"])
    head = keras.saving.load_model(result.head_paths[0])
    np.testing.assert_allclose(
        head.predict(features, verbose=0).reshape(-1),
        result.predictions.query("split == 0")["pred"],
        rtol=1e-4,
        atol=1e-4,
    )
    # The best-validation-loss checkpoint: the saved head's val loss is the reported minimum.
    val = splits[0] == "val"
    mse = float(np.mean((head.predict(features[val], verbose=0).reshape(-1) - table["raw_score"][val]) ** 2))
    assert mse == pytest.approx(per_split["val_loss"].iloc[0], rel=1e-3)


def test_within_table_holds_both_anchors():
    summary = pd.DataFrame(
        {"srocc": [0.93], "plcc": [0.94], "plcc_logistic": [0.94], "krocc": [0.78], "rmse": [0.3]}, index=["median"]
    )
    table = reporting.within_table(
        {"kadid10k": summary}, {"kadid10k": 10125}, {"kadid10k": 5}, protocol="authors_demo"
    ).set_index("dataset")
    row = table.loc["kadid10k"]
    assert row["protocol"] == "authors_demo" and row["paper_srocc"] == 0.936
    assert row["authors_demo_srocc"] == 0.926 and row["authors_demo_splits"] == "0.937 0.925 0.926 0.921 0.942"
    assert row["delta_authors_demo_srocc"] == pytest.approx(0.93 - 0.926)
    skipped = reporting.within_table({}).set_index("dataset").loc["kadid10k"]
    assert skipped["status"].startswith("skipped") and skipped["authors_demo_srocc"] == 0.926
    assert np.isnan(table.loc["live", "authors_demo_srocc"])
    markdown = reporting.to_markdown(table.reset_index())
    assert "0.936" in markdown and "0.926" in markdown and "0.937 0.925 0.926 0.921 0.942" in markdown


def test_the_summary_is_written_last_so_a_kill_before_it_is_not_a_finished_run(tmp_path, monkeypatch):
    """deepfl-train-mlp takes summary.csv for a finished run: a kill while the scatter plot was drawn (after the
    summary) left a run that every rerun called finished, without its plot (seen once in the suite's kill test)."""
    table, features = synthetic_table()
    config = protocol.HeadConfig(hidden=(8,), dropout=(0.0,), seed=2, epochs=2, learning_rates=(1e-3,))
    splits = protocol.table_splits(table, 2, seed=0)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reporting, "scatter_plot", killed)
    with pytest.raises(KeyboardInterrupt):
        protocol.run_and_report(table, features, splits, config, tmp_path, name="demo")
    assert (tmp_path / "per_split.csv").exists() and not (tmp_path / "summary.csv").exists()
