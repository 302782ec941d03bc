"""deepfl-extract-features under bad inputs and SIGKILLs (a tiny multi-task model, 48x64 images).

Bad images are named once each and skipped (or stop the job, exit 2); a broken model file is one line; a run
killed several times while it appends to the HDF5 cache and restarted ends with a cache that is
byte-identical to an uninterrupted run's (and readable, with every image exactly once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import badinputs
import killrestart
from helpers_datasets import read_feature_cache


def file_size(path: Path):
    """Progress probe: the size of the cache plus its journal (`<name>.journal`, where new rows go until the
    final compaction); 0 while absent."""

    def probe() -> int:
        total = 0
        for part in (path, path.with_name(path.name + ".journal")):
            try:
                total += part.stat().st_size
            except FileNotFoundError:
                pass
        return total

    return probe


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from deepfl.models import build_multitask

    path = tmp_path_factory.mktemp("extract model") / "multitask.keras"
    build_multitask(tasks=["ssim", "gmsd"], weights=None, arch="tiny", seed=0).save(path)
    return path


def _argv(images, out, model, *extra):
    return [f"--images={images}", f"--out_dir={out}", f"--model={model}", "--name=cache", *extra]


@pytest.fixture(scope="module")
def runs(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("extract runs")
    corpus = root / "corpus images"
    items = badinputs.make_image_corpus(corpus)
    for i in range(2):
        (corpus / f"good {i}.png").write_bytes(badinputs.png_bytes(badinputs.textured_image(48, 64, 60 + i)))
    kill_images = root / "kill images"
    kill_images.mkdir()
    for i in range(40):
        size = (48, 64) if i % 3 else (40, 56)
        (kill_images / f"k{i:02d}.png").write_bytes(badinputs.png_bytes(badinputs.textured_image(*size, 80 + i)))
    bad_model = root / "broken.keras"
    bad_model.write_bytes(model.read_bytes()[:1000])
    argvs = {
        "skip": _argv(corpus, root / "skip", model, "--on_error=skip"),
        "stop": _argv(corpus, root / "stop", model, "--on_error=stop"),
        "bad_model": _argv(corpus, root / "bad_model", bad_model),
        "kill_reference": _argv(kill_images, root / "kill_reference", model, "--batch_size=1"),
    }
    results = dict(zip(argvs, killrestart.run_batch("extract_features", list(argvs.values()))))
    killrestart.record("extract_features", bad_images=len(items), bad_models=1)
    return dict(root=root, items=items, results=results, model=model, kill_images=kill_images, bad_model=bad_model)


def test_no_extract_features_invocation_prints_a_traceback(runs):
    badinputs.assert_no_tracebacks(runs["results"])


def test_extract_features_names_and_skips_bad_images(runs):
    result = runs["results"]["skip"]
    assert result.returncode == 0, result.stderr[-2000:]
    keys, feats = read_feature_cache(runs["root"] / "skip" / "cache.h5")
    assert len(keys) == len(set(keys)) == len(feats) and np.all(np.isfinite(feats))
    cached = {Path(k).name for k in keys}
    skipped = 0
    for item in runs["items"]:
        lines = [line for line in result.stderr.splitlines() if badinputs.names_culprit(line, item.path)]
        if item.expect == "reject" or (item.expect == "either" and item.path.name not in cached):
            assert item.path.name not in cached and len(lines) == 1, (item.name, result.stderr[-2000:])
            skipped += 1
        else:
            assert item.path.name in cached, (item.name, item.what)
    assert {"good 0.png", "good 1.png"} <= cached
    assert f"{skipped} bad image{'s' if skipped != 1 else ''} skipped" in result.stdout


def test_extract_features_stops_on_a_bad_image_and_on_a_bad_model(runs):
    stop = runs["results"]["stop"]
    assert stop.returncode == 2, stop.stderr[-2000:]
    assert any(badinputs.names_culprit(badinputs.error_line(stop.stderr), it.path) for it in runs["items"])
    bad_model = runs["results"]["bad_model"]
    assert bad_model.returncode == 2 and runs["bad_model"].name in badinputs.error_line(bad_model.stderr), (
        bad_model.stderr[-2000:]
    )


def _kill_test(runs, kills, seed, out, max_delay=0.2):
    reference = runs["root"] / "kill_reference"
    assert runs["results"]["kill_reference"].returncode == 0, runs["results"]["kill_reference"].stderr[-2000:]
    cmd = killrestart.job_command("extract_features", *_argv(runs["kill_images"], out, runs["model"], "--batch_size=1"))
    report = killrestart.run_killed_to_completion(
        cmd, file_size(out / "cache.h5"), kills=kills, seed=seed, max_delay=max_delay
    )
    keys, feats = read_feature_cache(out / "cache.h5")
    ref_keys, ref_feats = read_feature_cache(reference / "cache.h5")
    assert len(keys) == len(set(keys)) == 40, "missing or duplicated cache rows"
    assert keys == ref_keys and np.array_equal(feats, ref_feats), "cache content differs from the uninterrupted run"
    killrestart.assert_same_tree(reference, out, ignore=lambda rel: killrestart.is_temp(rel) or rel.suffix == ".h5")
    killrestart.record("extract_features", kills=report.kills, starts=report.starts)
    return reference, out


@pytest.fixture(scope="module")
def killed_twice(runs, tmp_path_factory):
    return _kill_test(runs, kills=2, seed=0, out=tmp_path_factory.mktemp("extract killed"))


def test_extract_features_killed_twice_gives_identical_cache_content(killed_twice):
    """Same keys, same features, same order, nothing missing or duplicated (checked inside _kill_test)."""
    reference, out = killed_twice
    assert (out / "cache.h5").is_file()


def test_extract_features_killed_twice_gives_byte_identical_cache(killed_twice):
    """deepfl.features rewrites a finished cache in canonical form, so the HDF5 bytes match too."""
    reference, out = killed_twice
    killrestart.assert_same_tree(reference, out, ignore=killrestart.is_temp)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_extract_features_killed_five_times_gives_identical_cache(runs, tmp_path, seed):
    _kill_test(runs, kills=5, seed=seed, out=tmp_path / "killed", max_delay=0.02)
