"""The bad-input corpus and the kill harness themselves: the corpus holds what it claims, and the harness
tells a resumable job (deepfl.jobs.AppendOnlyCsv + atomic image writes) from a careless one."""

import sys

import numpy as np
import pytest

import badinputs
import killrestart
from deepfl.errors import ImageReadError
from deepfl.images import read_image

# A toy job: 30 rows and 30 images, written one at a time with small pauses. "careful" resumes through
# AppendOnlyCsv and atomic writes; "careless" appends rows from the start again on every run and writes
# images non-atomically, skipping those that exist (the classic resume bugs: duplicates and torn files).
TOY_JOB = r"""
import sys, time
import numpy as np
from pathlib import Path
from deepfl.jobs import AppendOnlyCsv
from deepfl.images import write_image, encode_image
out = Path(sys.argv[1]); mode = sys.argv[2]; out.mkdir(exist_ok=True)
if mode == "careful":
    table = AppendOnlyCsv(out / "rows.csv", ["key", "value"], key="key")
else:
    fresh = not (out / "rows.csv").exists()
    handle = open(out / "rows.csv", "a")
    if fresh:
        handle.write("key,value\n")
for i in range(30):
    image = np.full((16, 16, 3), i * 7 % 256, np.uint8)
    if mode == "careful":
        if str(i) not in table:
            write_image(out / f"img_{i:02d}.png", image)
            table.append([{"key": i, "value": i * i}])
    else:
        path = out / f"img_{i:02d}.png"
        if not path.exists():
            with open(path, "wb") as f:
                data = encode_image(image, "png"); f.write(data[:20]); f.flush(); time.sleep(0.01)
                f.write(data[20:])
        handle.write(f"{i},{i * i}\n"); handle.flush()
    time.sleep(0.02)
"""


def _toy(tmp_path, mode, name):
    out = tmp_path / name
    return [sys.executable, "-c", TOY_JOB, str(out), mode], out


def test_corpus_holds_what_it_claims(tmp_path):
    items = badinputs.make_image_corpus(tmp_path / "images")
    names = {item.name for item in items}
    assert {
        "zero_byte_png",
        "zero_byte_jpg",
        "truncated_png",
        "truncated_jpg",
        "text_as_png",
        "png_16bit_gray",
        "png_16bit_rgb",
        "gray_png",
        "rgba_png",
        "cmyk_jpg",
        "tiny_1x1",
        "header_only_huge",
        "space_in_name",
        "non_utf8_name",
    } <= names
    for item in items:
        if item.expect == "reject":
            with pytest.raises(ImageReadError, match=item.path.name.replace(".", r"\.")):
                read_image(item.path)
        else:
            image = read_image(item.path)
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, item.name
    pair = badinputs.make_mismatched_pair(tmp_path / "refs", tmp_path / "dists")
    assert read_image(pair.ref).shape != read_image(pair.path).shape


def test_csv_variants_are_broken_as_described(tmp_path):
    valid = badinputs.write_csv(tmp_path / "valid.csv", ["image", "score"], [["a.png", "0.5"], ["b.png", "0.7"]])
    items = {
        i.name: i
        for i in badinputs.make_csv_variants(
            valid, tmp_path / "bad", score_column="score", required=["score"], file_column="image"
        )
    }
    assert badinputs.read_csv_rows(items["csv_missing_column"].path)[0] == ["image"]
    assert badinputs.read_csv_rows(items["csv_nan_score"].path)[1][-1] == ["b.png", "nan"]
    assert badinputs.read_csv_rows(items["csv_inf_score"].path)[1][-1] == ["b.png", "inf"]
    assert len(badinputs.read_csv_rows(items["csv_duplicate_rows"].path)[1]) == 3
    assert items["csv_empty"].path.stat().st_size == 0


def test_harness_passes_a_resumable_job(tmp_path):
    cmd, reference = _toy(tmp_path, "careful", "reference")
    assert killrestart.run_job(cmd).returncode == 0
    cmd, out = _toy(tmp_path, "careful", "killed")
    report = killrestart.run_with_kills(
        cmd, killrestart.count_lines(out / "rows.csv"), kills=4, seed=1, max_delay=0.1, timeout=120
    )
    assert report.final.returncode == 0, report.final.stderr
    assert report.kills == 4 and report.starts == 5
    assert killrestart.assert_same_tree(reference, out, ignore=killrestart.is_temp) == 31
    killrestart.check_csv(out / "rows.csv", key="key", expected_rows=30)
    assert killrestart.check_images(out) == 30


def test_harness_catches_a_careless_job(tmp_path):
    cmd, reference = _toy(tmp_path, "careless", "reference")
    assert killrestart.run_job(cmd).returncode == 0
    cmd, out = _toy(tmp_path, "careless", "killed")
    report = killrestart.run_with_kills(
        cmd, killrestart.count_lines(out / "rows.csv"), kills=3, seed=1, max_delay=0.1, timeout=120
    )
    assert report.final.returncode == 0 and report.kills == 3
    with pytest.raises(AssertionError, match="duplicated keys"):
        killrestart.check_csv(out / "rows.csv", key="key")
    with pytest.raises(AssertionError, match="outputs differ"):
        killrestart.assert_same_tree(reference, out, ignore=killrestart.is_temp)
