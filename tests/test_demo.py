"""End-to-end demo chain: a fast small-scale run (tiny CNN, few types) and the full default run (slow)."""

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from deepfl.demo import DemoConfig, run_demo

SMALL = DemoConfig(stage1_refs=2, stage2_refs=5, types=(1, 16), levels=(1, 3, 5), metrics=("ssim", "gmsd"),
                   arch="tiny", train_size=(48, 48), train_steps=2, train_batch=4, mlp_hidden=(16,),
                   mlp_dropout=(0.0,), mlp_epochs=3, mlp_learning_rates=(1e-3,), mlp_batch=8, num_splits=2)


def test_small_chain_end_to_end_and_resume(tmp_path):
    lines = []
    result = run_demo(tmp_path / "out", SMALL, echo=lines.append)
    out = result.out_dir
    for name in ("weak_labels.csv", "multitask/model.keras", "features.h5", "mlp/summary.md", "mlp/scatter.png",
                 "mlp/predictions.csv", "deepfl_iqa.keras", "prediction.csv"):
        assert (out / name).is_file(), name
    labels = pd.read_csv(out / "weak_labels.csv")
    assert list(labels.columns) == ["dist_im", "ref_im", "ssim", "gmsd"] and len(labels) == 2 * 2 * 3
    assert len(result.per_split) == 2 and np.isfinite(result.summary.loc["median", "rmse"])
    assert any("STAND-IN" in line for line in lines)
    # The exported file scores like the chain it was built from, and agrees with prediction.csv.
    scorer = keras.saving.load_model(result.exported)
    image, score = result.scored[0]
    from deepfl.images import read_image

    direct = float(np.asarray(scorer.predict(read_image(image)[None].astype("float32"), verbose=0)).reshape(-1)[0])
    assert direct == pytest.approx(score, rel=1e-5, abs=1e-6)
    assert pd.read_csv(out / "prediction.csv")["score"].iloc[0] == pytest.approx(score, abs=1e-5)
    # Everything written stays under out_dir, and a rerun reuses every finished step.
    mtime = (out / "multitask/model.keras").stat().st_mtime_ns
    again = run_demo(out, SMALL, echo=lines.append)
    assert (out / "multitask/model.keras").stat().st_mtime_ns == mtime
    assert again.scored[0][1] == pytest.approx(score, rel=1e-6)
    assert not list(Path(tmp_path).glob("*.tmp"))


@pytest.mark.slow
def test_full_default_demo(tmp_path):
    result = run_demo(tmp_path / "demo", DemoConfig())
    assert result.summary.loc["median", "srocc"] == result.summary.loc["median", "srocc"]  # finite, not NaN
    assert (result.out_dir / "mlp" / "scatter.png").stat().st_size > 1000
