"""deepfl-predict under bad inputs and SIGKILLs: unreadable images are named one per line and the rest are
still scored (exit 1 at the end), broken model files give one line naming the file (exit 2), and a killed run
leaves no partial output; restarted, it writes the same bytes as an uninterrupted run."""

from __future__ import annotations

import os

import pytest
from PIL import Image

import badinputs
import killrestart

EXIT_SOME_UNREADABLE = 1


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    """A tiny exported one-file scorer (image -> score), as deepfl-train-mlp + export would write it."""
    from deepfl.export import export_model
    from deepfl.models.mlp import build_mlp
    from helpers_models import tiny_extractor

    folder = tmp_path_factory.mktemp("predict model")
    head = build_mlp(7, hidden=(5,), dropout=(0.0,), seed=1)
    head.save(folder / "head.keras")
    return export_model(tiny_extractor(), folder / "head.keras", folder / "scorer.keras")


@pytest.fixture(scope="module")
def runs(scorer, tmp_path_factory):
    root = tmp_path_factory.mktemp("predict runs")
    images = root / "images with spaces"
    items = badinputs.make_image_corpus(images)
    for i in range(2):
        (images / f"good {i}.png").write_bytes(badinputs.png_bytes(badinputs.textured_image(48, 64, 40 + i)))
    models = root / "models"
    models.mkdir()
    model_bytes = scorer.read_bytes()
    bad_models = {
        "zero_byte_model": (models / "empty.keras", b""),
        "text_as_model": (models / "text.keras", b"not a zip archive\n"),
        "truncated_model": (models / "truncated.keras", model_bytes[: len(model_bytes) // 2]),
        "missing_model": (models / "absent.keras", None),
    }
    for path, data in bad_models.values():
        if data is not None:
            path.write_bytes(data)
    good = [str(images / f"good {i}.png") for i in range(2)]
    argvs = {
        "folder": [f"--model={scorer}", f"--output={root / 'folder.csv'}", str(images)],
        "one_missing_file": [
            f"--model={scorer}",
            f"--output={root / 'missing.csv'}",
            good[0],
            str(images / "no such file.png"),
        ],
        "kill_reference": [f"--model={scorer}", f"--output={root / 'reference' / 'scores.csv'}", *good],
        "no_inputs": [f"--model={scorer}"],
        "txt_output": [f"--model={scorer}", f"--output={root / 'scores.txt'}", good[0]],
        "all_missing": [f"--model={scorer}", str(root / "nowhere.png"), str(root / "nothing here" / "*.png")],
    }
    for name, (path, _) in bad_models.items():
        argvs[name] = [f"--model={path}", good[0]]
    results = dict(zip(argvs, killrestart.run_batch("predict", list(argvs.values()))))
    killrestart.record("predict", bad_images=len(items) + 1, bad_models=len(bad_models))
    return dict(root=root, images=images, items=items, good=good, results=results, bad_models=bad_models, scorer=scorer)


def test_no_predict_invocation_prints_a_traceback(runs):
    badinputs.assert_no_tracebacks(runs["results"])


def test_predict_names_each_unreadable_image_and_scores_the_rest(runs):
    result = runs["results"]["folder"]
    assert result.returncode == EXIT_SOME_UNREADABLE, result.stderr[-2000:]
    rows = killrestart.check_csv(runs["root"] / "folder.csv", key="image")
    scored = {os.path.basename(r["image"]) for r in rows}
    failed = 0
    for item in runs["items"]:
        lines = [line for line in result.stderr.splitlines() if badinputs.names_culprit(line, item.path)]
        if item.expect == "reject" or (item.expect == "either" and item.path.name not in scored):
            assert item.path.name not in scored, item.name
            assert len(lines) == 1 and lines[0].startswith("error"), (item.name, result.stderr[-2000:])
            failed += 1
        else:
            assert item.path.name in scored, (item.name, item.what, result.stderr[-2000:])
    assert {"good 0.png", "good 1.png"} <= scored
    assert f"error: {failed} of " in result.stderr


def test_predict_missing_file_and_no_inputs(runs):
    missing = runs["results"]["one_missing_file"]
    assert missing.returncode == EXIT_SOME_UNREADABLE and "no such file.png" in missing.stderr
    killrestart.check_csv(runs["root"] / "missing.csv", key="image", expected_rows=1)
    none = runs["results"]["no_inputs"]
    assert none.returncode == 2 and badinputs.error_line(none.stderr)


def test_predict_exits_3_when_no_file_could_be_scored(runs):
    result = runs["results"]["all_missing"]
    assert result.returncode == 3, result.stderr[-2000:]
    assert "nowhere.png" in result.stderr and "no image could be scored: all 2" in result.stderr
    assert result.stdout == ""


def test_predict_refuses_an_output_that_is_neither_csv_nor_json(runs):
    result = runs["results"]["txt_output"]
    assert result.returncode == 2, result.stderr[-2000:]
    assert "scores.txt" in badinputs.error_line(result.stderr)
    assert not (runs["root"] / "scores.txt").exists()


def test_predict_csv_resumes_from_another_folder_and_spelling(runs, tmp_path):
    """The CSV's rows name absolute paths: a rerun from another working folder, or naming a scored file another
    way, scores only what is new (no duplicate row, no wrongly skipped namesake)."""
    out = tmp_path / "scores.csv"
    first = killrestart.run_job(
        killrestart.job_command("predict", f"--model={runs['scorer']}", f"--output={out}", "good 0.png"),
        cwd=runs["images"],
    )
    assert first.returncode == 0, first.stderr[-2000:]
    cut = tmp_path / "cut.jpg"  # its header reads, its pixels do not: named while scoring, as it was spelled
    whole = badinputs.pil_bytes(Image.fromarray(badinputs.textured_image(48, 64, 7)), "JPEG")
    cut.write_bytes(whole[: len(whole) * 3 // 5])
    spelled = os.path.relpath(cut, runs["images"].parent)
    again = killrestart.run_job(
        killrestart.job_command(
            "predict",
            f"--model={runs['scorer']}",
            f"--output={out}",
            f"{runs['images'].name}/./good 0.png",
            runs["good"][1],
            spelled,
        ),
        cwd=runs["images"].parent,
    )
    assert again.returncode == 1, again.stderr[-2000:]
    assert "1 of 3 images already scored, scoring the other 2" in again.stderr, again.stderr[-2000:]
    assert f"error: {spelled}: " in again.stderr and str(cut) not in again.stderr, again.stderr[-2000:]
    rows = killrestart.check_csv(out, key="image", expected_rows=2)
    assert sorted(r["image"] for r in rows) == sorted(os.path.abspath(p) for p in runs["good"])


def test_predict_names_files_that_are_no_images_before_it_loads_a_model(runs, tmp_path):
    """Missing files and folders, empty files and files that are no images are named from their headers before
    TensorFlow is loaded: a run with nothing else to score ends in a second (it loaded the model first, 4-5 s), and
    a CSV rerun whose only unscored file is such a one stays a quick rerun (a walk found it retried each time)."""
    (tmp_path / "x.jpg").write_text("not a photo")
    (tmp_path / "empty.png").write_bytes(b"")
    nothing, imported = killrestart.run_noting_tensorflow(
        "predict",
        [f"--model={runs['scorer']}", str(tmp_path / "x.jpg"), str(tmp_path / "empty.png"), f"{tmp_path / 'nosuch'}/"],
    )
    assert nothing.returncode == 3 and not imported, nothing.stderr[-2000:]
    errors = [line for line in nothing.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        f"error: {tmp_path / 'x.jpg'}: not an image file (unknown or corrupt format)",
        f"error: {tmp_path / 'empty.png'}: empty file (0 bytes)",
        f"error: {tmp_path / 'nosuch'}/: no such folder",
        "error: no image could be scored: all 3 file(s) failed (listed above)",
    ], nothing.stderr[-2000:]

    out = tmp_path / "scores.csv"
    argv = [f"--model={runs['scorer']}", f"--output={out}", runs["good"][0], str(tmp_path / "x.jpg")]
    first = killrestart.run_job(killrestart.job_command("predict", *argv))
    assert first.returncode == 1 and "already scored" not in first.stderr, first.stderr[-2000:]
    written = out.read_bytes()
    again, imported = killrestart.run_noting_tensorflow("predict", argv)
    assert again.returncode == 1 and not imported, again.stderr[-2000:]
    assert f"{out}: 1 of 2 images already scored, 1 cannot be read (named above), none left" in again.stderr
    assert again.stderr.count("x.jpg: not an image file") == 1
    assert "error: 1 of 2 file(s) could not be read or scored" in again.stderr
    assert out.read_bytes() == written


@pytest.mark.parametrize("name", ["zero_byte_model", "text_as_model", "truncated_model", "missing_model"])
def test_predict_broken_model_file_is_one_line_exit_2(runs, name):
    result = runs["results"][name]
    path = runs["bad_models"][name][0]
    assert result.returncode == 2, result.stderr[-2000:]
    line = badinputs.error_line(result.stderr)
    assert path.name in line, line


def test_predict_prints_a_non_utf8_file_name_to_stdout(runs, tmp_path):
    """Printing the table to a real stdout (strict UTF-8) must survive a file name that is not UTF-8."""
    folder = tmp_path / "nonutf8"
    badinputs.make_image_corpus(folder, include=["non_utf8_name"])
    result = killrestart.run_job(
        killrestart.job_command("predict", f"--model={runs['scorer']}", str(folder)),
        env=killrestart.job_env(PYTHONIOENCODING="utf-8"),
    )
    badinputs.assert_no_traceback(result.stderr, "predict non-UTF-8 name to stdout")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "bad_" in result.stdout


def _kill_test(runs, kills, seed, out):
    reference = runs["root"] / "reference"
    assert runs["results"]["kill_reference"].returncode == 0, runs["results"]["kill_reference"].stderr[-2000:]
    cmd = killrestart.job_command(
        "predict", f"--model={runs['scorer']}", f"--output={out / 'scores.csv'}", *runs["good"]
    )
    report = killrestart.run_killed_to_completion(cmd, killrestart.elapsed(1.0), kills=kills, seed=seed, max_delay=1.0)
    killrestart.check_csv(out / "scores.csv", key="image", expected_rows=2)
    killrestart.assert_same_tree(reference, out, ignore=killrestart.is_temp)
    killrestart.record(
        "predict",
        kills=report.kills,
        starts=report.starts,
        leftover_temp_files=len(killrestart.leftover_temp_files(out)),
    )


def test_predict_killed_and_restarted_gives_identical_output(runs, tmp_path):
    _kill_test(runs, kills=1, seed=0, out=tmp_path / "killed")


@pytest.mark.slow
def test_predict_killed_three_times_gives_identical_output(runs, tmp_path):
    _kill_test(runs, kills=3, seed=1, out=tmp_path / "killed")
