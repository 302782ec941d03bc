"""deepfl-train-mlp under bad inputs and SIGKILLs, on a miniature KADID-10k layout (18 images, 6 contents)
with an 8-float feature cache written by `deepfl.features.extract_to_cache` (a tiny callable extractor).

Broken metadata CSVs (dmos.csv), broken or incomplete feature caches give one line naming the file/row and
exit 2; a run killed at random points and restarted ends with the same outputs as an uninterrupted run
(`.keras` heads compared by content, since they carry a save date)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import badinputs
import killrestart
from helpers_datasets import write_mini_kadid
from helpers_models import assert_same_training_outputs

HEAD_FLAGS = [
    "--dataset=kadid10k",
    "--num_splits=2",
    "--epochs=3",
    "--batch_size=4",
    "--learning_rates=1e-3",
    "--seed=2",
]


def _features(x: np.ndarray) -> np.ndarray:
    """8 floats per image: per-channel means and stds, plus two global statistics."""
    x = np.asarray(x, np.float32)
    return (
        np.concatenate(
            [x.mean(axis=(1, 2)), x.std(axis=(1, 2)), x.mean(axis=(1, 2, 3))[:, None], x.max(axis=(1, 2, 3))[:, None]],
            axis=1,
        )
        / 255.0
    )


def _cache(root: Path, out: Path) -> Path:
    from deepfl.features import extract_to_cache
    from deepfl.images import list_images

    paths = [str(p.resolve()) for p in list_images(root / "images")]
    extract_to_cache(_features, paths, out, batch_size=4, source="test", dim=8)
    return out


def _argv(data_dir, features, out, *extra):
    return [f"--data_dir={data_dir}", f"--features={features}", f"--out_dir={out}", *HEAD_FLAGS, *extra]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train mlp runs")
    good = root / "kadid"
    write_mini_kadid(good)
    cache = _cache(good, root / "features.h5")
    # Broken metadata: each variant of dmos.csv in its own copy of the data set folder.
    variants = badinputs.make_csv_variants(
        good / "dmos.csv", root / "variants", score_column="dmos", required=["dmos"], file_column="dist_img"
    )
    folders = {}
    for item in variants:
        folder = root / f"data_{item.name}"
        folder.mkdir()
        (folder / "images").symlink_to(good / "images")  # same resolved paths as the cache keys
        shutil.copyfile(item.path, folder / "dmos.csv")
        folders[item.name] = folder
    # Broken feature caches.
    caches = root / "caches"
    caches.mkdir()
    (caches / "empty.h5").write_bytes(b"")
    (caches / "truncated.h5").write_bytes(cache.read_bytes()[:2000])
    (caches / "text.h5").write_bytes(b"not an HDF5 file\n")
    partial = _cache_subset(good, caches / "partial.h5")
    bad_caches = {
        "cache_zero_byte": caches / "empty.h5",
        "cache_truncated": caches / "truncated.h5",
        "cache_text": caches / "text.h5",
        "cache_missing_rows": partial,
        "cache_absent": caches / "absent.h5",
    }
    argvs = {"kill_reference": _argv(good, cache, root / "kill_reference")}
    for name, folder in folders.items():
        argvs[name] = _argv(folder, cache, root / f"out_{name}")
    for name, path in bad_caches.items():
        argvs[name] = _argv(good, path, root / f"out_{name}")
    argvs["skip_uncached"] = _argv(good, partial, root / "out_skip_uncached", "--skip_uncached")
    results = dict(zip(argvs, killrestart.run_batch("train_mlp", list(argvs.values()))))
    killrestart.record("train_mlp", bad_csvs=len(variants), bad_caches=len(bad_caches))
    return dict(root=root, good=good, cache=cache, variants=variants, bad_caches=bad_caches, results=results)


def _cache_subset(data: Path, out: Path) -> Path:
    from deepfl.features import extract_to_cache
    from deepfl.images import list_images

    paths = [str(p.resolve()) for p in list_images(data / "images")][:-3]
    extract_to_cache(_features, paths, out, batch_size=4, source="test", dim=8)
    return out


def test_no_train_mlp_invocation_prints_a_traceback(runs):
    badinputs.assert_no_tracebacks(runs["results"])


def test_train_mlp_metadata_variants(runs):
    for item in runs["variants"]:
        result = runs["results"][item.name]
        line = badinputs.error_line(result.stderr)
        if item.expect == "accept":
            assert result.returncode == 0, (item.name, result.stderr[-1500:])
        elif item.expect == "reject":
            assert result.returncode == 2, (item.name, result.stderr[-1500:])
            assert "dmos.csv" in line, (item.name, line)
            if "row" in item.extra:
                assert f"line {item.extra['row'] + 1}" in line, (item.name, line)
        else:
            assert result.returncode == 0 or (result.returncode == 2 and "dmos.csv" in line), (item.name, line)


@pytest.mark.parametrize(
    "name", ["cache_zero_byte", "cache_truncated", "cache_text", "cache_missing_rows", "cache_absent"]
)
def test_train_mlp_broken_feature_cache_is_one_line_exit_2(runs, name):
    result = runs["results"][name]
    assert result.returncode == 2, result.stderr[-1500:]
    line = badinputs.error_line(result.stderr)
    assert runs["bad_caches"][name].name in line, line


def test_train_mlp_skip_uncached_trains_without_the_images_the_cache_lacks(runs):
    """A benchmark's table cannot be edited: images deepfl-extract-features skipped as unreadable are left out
    on request, named, as deepfl-reproduce leaves them out; without the flag the refusal points to it."""
    assert "--skip_uncached" in badinputs.error_line(runs["results"]["cache_missing_rows"].stderr)
    result = runs["results"]["skip_uncached"]
    assert result.returncode == 0, result.stderr[-1500:]
    assert "3 image(s) without cached features left out (--skip_uncached): " in result.stdout, result.stdout[-1500:]
    predictions = pd.read_csv(runs["root"] / "out_skip_uncached" / "predictions.csv")
    assert predictions["image"].nunique() == 15  # the mini KADID's 18 images, 3 of them not in the cache


def _kill_test(runs, kills, seed, out, probe=None):
    reference = runs["root"] / "kill_reference"
    assert runs["results"]["kill_reference"].returncode == 0, runs["results"]["kill_reference"].stderr[-2000:]
    cmd = killrestart.job_command("train_mlp", *_argv(runs["good"], runs["cache"], out))
    probe = probe or killrestart.count_paths(out, "*.keras")
    report = killrestart.run_killed_to_completion(cmd, probe, kills=kills, seed=seed, max_delay=1.0, timeout=600)
    assert_same_training_outputs(reference, out)
    killrestart.record("train_mlp", kills=report.kills, starts=report.starts)


def test_train_mlp_killed_and_restarted_gives_identical_outputs(runs, tmp_path):
    _kill_test(runs, kills=1, seed=0, out=tmp_path / "killed")


@pytest.mark.slow
def test_train_mlp_killed_three_times_gives_identical_outputs(runs, tmp_path):
    _kill_test(runs, kills=3, seed=1, out=tmp_path / "killed", probe=killrestart.elapsed(3.0))
