"""deepfl-reproduce under bad inputs and SIGKILLs, on a miniature KADID-10k layout and a tiny multi-task model.

A broken metadata CSV or model gives one line naming the file (exit 2), never a traceback; a run killed at
random points (during feature extraction or the MLP protocol) and restarted ends with the same tables as an
uninterrupted run (`.keras` heads compared by content, HDF5 caches by their rows)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import badinputs
import killrestart
from helpers_datasets import read_feature_cache, write_mini_kadid
from helpers_models import keras_digest

FLAGS = ["--num_splits=2", "--epochs=2", "--batch_size=4", "--learning_rates=1e-3", "--seed=4", "--cross="]


def _argv(kadid, model, out, *extra):
    return [f"--kadid10k_dir={kadid}", f"--model={model}", f"--out_dir={out}", *FLAGS, *extra]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from deepfl.models import build_multitask

    root = tmp_path_factory.mktemp("reproduce runs")
    model = root / "multitask.keras"
    build_multitask(tasks=["ssim", "gmsd"], weights=None, arch="tiny", seed=0).save(model)
    good = root / "kadid"
    write_mini_kadid(good)
    variants = badinputs.make_csv_variants(
        good / "dmos.csv", root / "variants", score_column="dmos", required=["dmos"], file_column="dist_img"
    )
    argvs = {"kill_reference": _argv(good, model, root / "kill_reference")}
    for item in variants:
        folder = root / f"data_{item.name}"
        folder.mkdir()
        (folder / "images").symlink_to(good / "images")
        shutil.copyfile(item.path, folder / "dmos.csv")
        argvs[item.name] = _argv(folder, model, root / f"out_{item.name}")
    broken_model = root / "broken.keras"
    broken_model.write_bytes(model.read_bytes()[:500])
    argvs["broken_model"] = _argv(good, broken_model, root / "out_broken_model")
    argvs["missing_dir"] = _argv(root / "no such folder", model, root / "out_missing_dir")
    # In this order: a first run, the same flags again, other flags (refused), other flags with --overwrite.
    settings_out = root / "out_settings"
    argvs["settings_first"] = _argv(good, model, settings_out)
    argvs["settings_same"] = _argv(good, model, settings_out)
    argvs["settings_changed"] = _argv(good, model, settings_out, "--num_splits=3", "--epochs=3")
    argvs["settings_overwrite"] = _argv(good, model, settings_out, "--num_splits=3", "--overwrite")
    results = dict(zip(argvs, killrestart.run_batch("reproduce", list(argvs.values()))))
    killrestart.record("reproduce", bad_csvs=len(variants), bad_models=1, bad_folders=1)
    return dict(root=root, good=good, model=model, variants=variants, results=results, settings_out=settings_out)


def test_no_reproduce_invocation_prints_a_traceback(runs):
    badinputs.assert_no_tracebacks(runs["results"])


def test_reproduce_metadata_variants(runs):
    for item in runs["variants"]:
        result = runs["results"][item.name]
        line = badinputs.error_line(result.stderr)
        if item.expect == "accept":
            assert result.returncode == 0, (item.name, result.stderr[-1500:])
        elif item.expect == "reject":
            assert result.returncode == 2 and "dmos.csv" in line, (item.name, result.stderr[-1500:])
        else:
            assert result.returncode == 0 or (result.returncode == 2 and "dmos.csv" in line), (item.name, line)


def test_reproduce_broken_model_and_missing_folder(runs):
    broken = runs["results"]["broken_model"]
    assert broken.returncode == 2 and "broken.keras" in badinputs.error_line(broken.stderr), broken.stderr[-1500:]
    missing = runs["results"]["missing_dir"]
    assert missing.returncode == 2 and "no such folder" in badinputs.error_line(missing.stderr), missing.stderr[-1500:]


def test_reproduce_reuses_a_finished_run_only_with_the_same_settings(runs):
    """A finished data set is reused by the same flags; other flags are refused, naming them (before: reused
    silently, and the table printed the new split count beside the old run's numbers); --overwrite redoes it."""
    import pandas as pd

    results, out = runs["results"], runs["settings_out"]
    assert results["settings_first"].returncode == 0, results["settings_first"].stderr[-2000:]
    assert results["settings_same"].returncode == 0, results["settings_same"].stderr[-2000:]
    assert "reusing finished run" in results["settings_same"].stdout
    changed = results["settings_changed"]
    line = badinputs.error_line(changed.stderr)
    assert changed.returncode == 2 and "num_splits 2 -> 3" in line and "epochs" in line, changed.stderr[-2000:]
    redone = results["settings_overwrite"]
    assert redone.returncode == 0, redone.stderr[-2000:]
    assert "reusing" not in redone.stdout
    assert len(pd.read_csv(out / "kadid10k" / "per_split.csv")) == 3


def _same_outputs(reference: Path, candidate: Path) -> None:

    killrestart.assert_same_tree(
        reference, candidate, ignore=lambda rel: killrestart.is_temp(rel) or rel.suffix in (".keras", ".h5")
    )
    for path in reference.rglob("*.keras"):
        assert keras_digest(path) == keras_digest(candidate / path.relative_to(reference)), path.name
    for path in reference.rglob("*.h5"):
        ref_keys, ref_feats = read_feature_cache(path)
        keys, feats = read_feature_cache(candidate / path.relative_to(reference))
        assert keys == ref_keys and (feats == ref_feats).all(), path.name


def _kill_test(runs, kills, seed, out, probe=None):
    reference = runs["root"] / "kill_reference"
    assert runs["results"]["kill_reference"].returncode == 0, runs["results"]["kill_reference"].stderr[-2000:]
    cmd = killrestart.job_command("reproduce", *_argv(runs["good"], runs["model"], out))
    probe = probe or killrestart.count_paths(out, "*")
    report = killrestart.run_killed_to_completion(cmd, probe, kills=kills, seed=seed, max_delay=1.5, timeout=600)
    _same_outputs(reference, out)
    killrestart.record("reproduce", kills=report.kills, starts=report.starts)


def test_reproduce_killed_and_restarted_gives_identical_tables(runs, tmp_path):
    _kill_test(runs, kills=1, seed=0, out=tmp_path / "killed")


@pytest.mark.slow
def test_reproduce_killed_three_times_gives_identical_tables(runs, tmp_path):
    _kill_test(runs, kills=3, seed=1, out=tmp_path / "killed", probe=killrestart.elapsed(3.0))
