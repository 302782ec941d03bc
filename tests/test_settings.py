"""Reruns into an existing output: the same resolved settings resume (also when a path is spelled another
way), other settings are refused with one line naming each change (exit 2) until --overwrite, and a run that
failed on a bad input does not lock its output. deepfl-predict never overwrites --output silently, writes a CSV
as it scores and resumes it, and refuses an MLP head given as --model with one error."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

import killrestart as kr
from badinputs import png_bytes, textured_image
from helpers_datasets import write_mini_kadid

MLP_FLAGS = ["--dataset=kadid10k", "--num_splits=2", "--batch_size=4", "--learning_rates=1e-3", "--seed=2"]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error")]


def _features(x):
    import numpy as np

    x = np.asarray(x, np.float32)
    return np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1) / 255.0


def test_train_mlp_reruns_resume_or_refuse_by_resolved_settings(tmp_path):
    from deepfl.features import extract_to_cache
    from deepfl.images import list_images

    data = tmp_path / "kadid"
    write_mini_kadid(data)
    cache = tmp_path / "features.h5"
    extract_to_cache(_features, [str(p.resolve()) for p in list_images(data / "images")], cache, source="t", dim=6)
    out = tmp_path / "mlp"
    relative_cache = os.path.relpath(cache, kr.REPO_ROOT)  # run_batch runs in the repository root

    def argv(*extra, features=cache, folder=out):
        return [f"--data_dir={data}", f"--features={features}", f"--out_dir={folder}", *MLP_FLAGS, *extra]

    runs = kr.run_batch(
        "train_mlp",
        [
            argv("--epochs=2", features=tmp_path / "absent.h5"),  # fails on its input: must not lock --out_dir
            argv("--epochs=2"),
            argv("--epochs=2", features=relative_cache),  # the same file, named relative to the cwd
            argv("--epochs=3"),
            argv("--epochs=2", "--hidden=8", "--dropout=0.1"),
            argv("--epochs=3", "--overwrite"),
        ],
    )
    failed, first, same, changed, other_head, overwritten = runs
    assert failed.returncode == 2 and "absent.h5" in failed.stderr
    assert first.returncode == 0, first.stderr[-2000:]
    assert same.returncode == 0 and "finished already" in same.stdout, same.stderr[-2000:]
    assert changed.returncode == 2 and len(error_lines(changed.stderr)) == 1, changed.stderr[-2000:]
    assert "epochs 2 -> 3" in changed.stderr and "--overwrite" in changed.stderr
    # in the words of the command line only (it read "the earlier flags (arguments) ... (overwrite=True from Python)")
    assert "rerun with the earlier flags to resume" in changed.stderr and "overwrite=True" not in changed.stderr
    # The paper's head is not stored (earlier records stay valid): the change was named "hidden unset -> 8".
    assert "dropout 0.25,0.25,0.5 -> 0.1; hidden 2048,1024,256 -> 8" in other_head.stderr, other_head.stderr
    assert overwritten.returncode == 0, overwritten.stderr[-2000:]
    assert '"epochs": 3' in (out / "mlp_settings.json").read_text()
    # A score edited after the run finished: the same flags no longer reuse its results (they did, with exit 0 and
    # the old table), nor redo it silently; --overwrite redoes it on the new scores.
    rows = (data / "dmos.csv").read_text().splitlines()
    name, ref, dmos, var = rows[1].split(",")
    rows[1] = ",".join([name, ref, f"{float(dmos) % 4 + 1.0:.3f}", var])
    (data / "dmos.csv").write_text("\n".join(rows) + "\n")
    predictions = (out / "predictions.csv").read_bytes()
    # A run stopped before its first split left only its settings (epochs 3): other flags start afresh there, as
    # nothing would be lost (they were refused, "pass --overwrite to discard it").
    early = tmp_path / "early"
    early.mkdir()
    shutil.copyfile(out / "mlp_settings.json", early / "mlp_settings.json")
    edited, redone, restarted = kr.run_batch(
        "train_mlp", [argv("--epochs=3"), argv("--epochs=3", "--overwrite"), argv("--epochs=2", folder=early)]
    )
    assert restarted.returncode == 0 and "finished nothing" in restarted.stderr, restarted.stderr[-2000:]
    assert '"epochs": 2' in (early / "mlp_settings.json").read_text()
    assert edited.returncode == 2 and len(error_lines(edited.stderr)) == 1, edited.stderr[-2000:]
    assert "finished on other scores than this one's (the score table changed since?)" in edited.stderr
    assert "--overwrite" in edited.stderr
    assert "finished already" not in edited.stdout
    assert redone.returncode == 0, redone.stderr[-2000:]
    assert (out / "predictions.csv").read_bytes() != predictions


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from deepfl.export import export_model
    from deepfl.models.mlp import build_mlp
    from helpers_models import tiny_extractor

    folder = tmp_path_factory.mktemp("models")
    build_mlp(7, hidden=(5,), dropout=(0.0,), seed=1).save(folder / "head.keras")
    build_mlp(7, hidden=(5,), dropout=(0.0,), seed=2).save(folder / "head2.keras")
    scorer = export_model(tiny_extractor(), folder / "head.keras", folder / "scorer.keras")
    other = export_model(tiny_extractor(), folder / "head2.keras", folder / "other.keras")
    return {"scorer": scorer, "other": other, "head": folder / "head.keras"}


def rows_of(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_predict_resumes_a_csv_and_never_overwrites_silently(models, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(8):
        (images / f"im{i}.png").write_bytes(png_bytes(textured_image(48, 64, i)))
    out, whole, js = tmp_path / "scores.csv", tmp_path / "whole.csv", tmp_path / "scores.json"
    model = f"--model={models['scorer']}"
    same_name, renamed_out = tmp_path / "model.keras", tmp_path / "same_name.csv"
    shutil.copyfile(models["scorer"], same_name)
    first_five = [str(images / f"im{i}.png") for i in range(5)]
    runs = kr.run_batch(
        "predict",
        [
            [model, f"--output={out}", "--chunk=2", *first_five],  # a first run (or a killed one) scored five
            [model, f"--output={out}", "--chunk=2", str(images)],  # the rerun scores the other three
            [model, f"--output={whole}", str(images)],
            [model, f"--output={out}", str(images / "im0.png")],  # scoring one image again: nothing lost
            [f"--model={models['other']}", f"--output={out}", str(images)],  # another model: refused
            [model, f"--output={js}", str(images)],
            [model, f"--output={js}", str(images)],  # JSON cannot resume: refused
            [model, f"--output={js}", "--overwrite", str(images / "im1.png")],
            [f"--model={models['head']}", str(images)],  # an MLP head is not an image model
            [f"--model={same_name}", f"--output={renamed_out}", str(images / "im0.png")],
        ],
    )
    part, rest, uninterrupted, again, other, js_first, js_again, js_over, head, before = runs
    for result in (part, rest, uninterrupted, again, js_first, js_over):
        assert result.returncode == 0, result.stderr[-2000:]
    assert "5 of 8 images already scored" in rest.stderr
    assert "all 1 images already scored, nothing to do" in again.stderr, again.stderr[-2000:]
    assert out.read_bytes() == whole.read_bytes() and len(rows_of(out)) == 9
    assert other.returncode == 2 and len(error_lines(other.stderr)) == 1 and "other.keras" in other.stderr
    assert out.read_bytes() == whole.read_bytes()
    assert js_again.returncode == 2 and "--overwrite" in js_again.stderr
    assert js_over.returncode == 0 and js_over.stderr.count("wrote 1 scores") == 1
    assert head.returncode == 2, head.stderr[-2000:]
    assert len(error_lines(head.stderr)) == 1 and "--head" in error_lines(head.stderr)[0]
    assert "im0.png" not in head.stderr  # blamed once on the model, not on each image
    # Another model re-exported under the same file name: resuming would mix two models' scores in one CSV.
    assert before.returncode == 0, before.stderr[-2000:]
    shutil.copyfile(models["other"], same_name)
    (after,) = kr.run_batch("predict", [[f"--model={same_name}", f"--output={renamed_out}", str(images)]])
    assert after.returncode == 2 and len(error_lines(after.stderr)) == 1 and "model_content" in after.stderr
    assert "changed since" in after.stderr and "earlier flags" not in after.stderr  # the flags are the same
    assert len(rows_of(renamed_out)) == 2  # the header and the first model's one row, untouched
    # A rerun that finds every image scored answers without TensorFlow or the model (it took 6.5 s to say so).
    done, imported = kr.run_noting_tensorflow("predict", [model, f"--output={out}", str(images)])
    assert done.returncode == 0 and "all 8 images already scored, nothing to do" in done.stderr and not imported
    assert out.read_bytes() == whole.read_bytes()


def test_file_fingerprint_reads_a_file_once_and_sees_a_rewrite(tmp_path, monkeypatch):
    # Jobs fingerprint the same model in several places (deepfl-export: the head check and its settings record);
    # the bytes are read once per process, and a changed file is read again.
    import hashlib

    from deepfl import fileio

    reads = []
    real = hashlib.sha256
    monkeypatch.setattr(fileio.hashlib, "sha256", lambda: reads.append(1) or real())
    model = tmp_path / "model.keras"
    model.write_bytes(b"a" * 1000)
    first = fileio.file_fingerprint(model)
    assert fileio.file_fingerprint(str(model)) == first and len(reads) == 1
    stat = model.stat()
    model.write_bytes(b"b" * 1000)  # same size, rewritten in place: another modification time
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = fileio.file_fingerprint(model)
    assert second != first and second == f"sha256:{real(b'b' * 1000).hexdigest()[:16]}" and len(reads) == 2
