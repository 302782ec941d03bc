"""Content-aware splits (no content shared between parts) and the target normaliser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepfl import data as dd


def fake_table(num_contents: int = 20, per_content: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = num_contents * per_content
    content = [f"ref{i:03d}" for i in range(num_contents) for _ in range(per_content)]
    raw = rng.uniform(1, 5, n)
    return dd.make_table(
        "fake", [f"/x/{i}.png" for i in range(n)], [f"/x/{c}.png" for c in content], content, raw, None, (1, 5), False
    )


def contents(part: pd.DataFrame) -> set:
    return set(part["content"])


@settings(max_examples=30, deadline=None)
@given(
    num_contents=st.integers(3, 40),
    per_content=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    train=st.floats(0.1, 0.8),
)
def test_content_split_disjoint_and_complete(num_contents, per_content, seed, train):
    table = fake_table(num_contents, per_content)
    rest = 1 - train
    parts = dd.content_split(table, (train, rest / 2, rest / 2), seed=seed)
    dd.check_disjoint(parts)
    assert not contents(parts["train"]) & contents(parts["test"])
    assert not contents(parts["train"]) & contents(parts["val"])
    assert not contents(parts["val"]) & contents(parts["test"])
    assert sum(len(p) for p in parts.values()) == len(table)
    assert set().union(*map(contents, parts.values())) == set(table["content"])


def test_ratios_count_contents_and_seed_reproduces():
    table = fake_table(81, 3)  # KADID-like: 81 references
    parts = dd.content_split(table, seed=3)
    assert [len(contents(parts[k])) for k in ("train", "val", "test")] == [49, 16, 16]
    again = dd.content_split(table, seed=3)
    assert all(parts[k].index.equals(again[k].index) for k in parts)
    other = dd.content_split(table, seed=4)
    assert not parts["test"].index.equals(other["test"].index)


def test_repeated_splits_differ_and_are_stable():
    table = fake_table(30, 2)
    splits = dd.repeated_splits(table, n=5, seed=7)
    assert len(splits) == 5
    for parts in splits:
        dd.check_disjoint(parts)
    tests = {tuple(sorted(contents(p["test"]))) for p in splits}
    assert len(tests) > 1
    more = dd.repeated_splits(table, n=8, seed=7)
    assert all(a["train"].index.equals(b["train"].index) for a, b in zip(splits, more))


def test_check_disjoint_catches_leak():
    table = fake_table(5, 2)
    parts = {"train": table.iloc[:4], "val": table.iloc[3:6], "test": table.iloc[6:]}
    with pytest.raises(ValueError, match="content 'ref001' is in both 'train' and 'val'"):
        dd.check_disjoint(parts)


def test_split_argument_errors():
    table = fake_table(5, 2)
    with pytest.raises(ValueError, match="ratios: must sum to 1"):
        dd.content_split(table, (0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="ratios: expected three"):
        dd.content_split(table, (0.5, 0.5))
    with pytest.raises(ValueError, match="n: must be a positive integer"):
        dd.repeated_splits(table, n=0)
    zero_val = dd.content_split(table, (0.8, 0.0, 0.2))
    assert len(zero_val["val"]) == 0 and len(contents(zero_val["train"])) == 4


def test_official_split_keeps_rows():
    table = fake_table(4, 1)
    table["split"] = ["train", "train", "val", "test"]
    parts = dd.official_split(table)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [2, 1, 1]
    table.loc[0, "split"] = ""
    with pytest.raises(ValueError, match="have no official split"):
        dd.official_split(table)


# ---------------------------------------------------------------- target normaliser


@pytest.mark.parametrize("method", ["standard", "quantile"])
def test_normalizer_roundtrip_and_json(tmp_path, method):
    table = fake_table(30, 3)
    rng = np.random.default_rng(1)
    table["ssim"] = rng.beta(5, 1, len(table))
    parts = dd.content_split(table, seed=0)
    normalizer = dd.TargetNormalizer(method).fit(parts["train"], ["score", "ssim"])
    out = normalizer.transform(parts["train"])
    if method == "standard":
        assert out["ssim"].mean() == pytest.approx(0, abs=1e-9) and out["ssim"].std(ddof=0) == pytest.approx(1)
    else:
        assert out["ssim"].min() == pytest.approx(0) and out["ssim"].max() == pytest.approx(1)
        # histogram equalisation: the training values become (nearly) uniform
        hist, _ = np.histogram(out["ssim"], bins=4, range=(0, 1))
        assert hist.max() - hist.min() <= 2
    test = parts["test"]
    back = normalizer.inverse_transform(normalizer.transform(test))
    inside = (test["ssim"] >= parts["train"]["ssim"].min()) & (test["ssim"] <= parts["train"]["ssim"].max())
    np.testing.assert_allclose(back["ssim"][inside], test["ssim"][inside], rtol=1e-9, atol=1e-12)
    path = tmp_path / "model.normalizer.json"
    normalizer.save(path)
    loaded = dd.TargetNormalizer.load(path)
    np.testing.assert_allclose(loaded.transform(test)["score"], normalizer.transform(test)["score"])
    assert loaded.method == method and loaded.columns == ["score", "ssim"]


def test_normalizer_fits_train_only_and_errors():
    train = pd.DataFrame({"y": [1.0, 2.0, 3.0]})
    test = pd.DataFrame({"y": [100.0]})
    normalizer = dd.TargetNormalizer().fit(train, "y")
    assert normalizer.transform(test)["y"].iloc[0] == pytest.approx((100 - 2) / np.std([1, 2, 3]))
    with pytest.raises(ValueError, match="method: must be one of"):
        dd.TargetNormalizer("minmax")
    with pytest.raises(ValueError, match="'z' is not a column"):
        dd.TargetNormalizer().fit(train, ["z"])
    with pytest.raises(ValueError, match="not fitted"):
        dd.TargetNormalizer().transform(train)
    with pytest.raises(ValueError, match="NaN/inf"):
        dd.TargetNormalizer().fit(pd.DataFrame({"y": [1.0, np.nan]}), "y")
    with pytest.raises(ValueError, match="not a saved TargetNormalizer"):
        dd.TargetNormalizer.from_json("{}")
    constant = dd.TargetNormalizer("quantile").fit(pd.DataFrame({"y": [2.0, 2.0]}), "y")
    assert np.isfinite(constant.transform({"y": np.array([2.0])})["y"]).all()


def _distinct_splits(splits: list) -> int:
    return len({tuple(frozenset(contents(parts[k])) for k in ("train", "val", "test")) for parts in splits})


def test_repeated_splits_warn_once_when_few_contents_repeat_a_split(caplog):
    table = fake_table(4, 3)  # 4 references: only 12 distinct 2/1/1 splits, so 10 random ones repeat
    with caplog.at_level("WARNING", logger="deepfl"):
        splits = dd.repeated_splits(table, n=10, seed=0)
    repeated = 10 - _distinct_splits(splits)
    assert repeated > 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith(f"splits: {repeated} of 10 content splits repeat")


def test_repeated_splits_do_not_warn_when_all_differ(caplog):
    table = fake_table(30, 2)
    with caplog.at_level("WARNING", logger="deepfl"):
        splits = dd.repeated_splits(table, n=10, seed=0)
    assert _distinct_splits(splits) == 10
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_too_few_contents_for_a_part_are_warned_once(caplog):
    """3 contents at 60/20/20 gave an empty test part without a word."""
    table = fake_table(3, 2)
    with caplog.at_level("WARNING", logger="deepfl"):
        parts = dd.content_split(table)
        dd.repeated_splits(table, n=5, seed=0)
    assert len(parts["test"]) == 0
    empty = [r.getMessage() for r in caplog.records if "part empty" in r.getMessage()]
    assert empty == ["splits: 3 content(s) leave the test part empty; ratios 0.6/0.2/0.2 need at least 4 contents"] * 2
    caplog.clear()
    with caplog.at_level("WARNING", logger="deepfl"):
        dd.content_split(fake_table(4, 2))
        dd.content_split(table, ratios=(0.5, 0.5, 0.0))
    assert not caplog.records
