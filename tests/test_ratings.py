"""Your own rated images as a data set (`--dataset ratings`): the reader of ratings.csv/ratings.json, its one-line
errors, and deepfl-train-mlp on such a folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import badinputs
import killrestart as kr
from deepfl import data
from deepfl.errors import TableError
from helpers_datasets import read_feature_cache, write_mini_kadid, write_ratings_study


@pytest.fixture
def study(tmp_path) -> Path:
    write_ratings_study(tmp_path / "study")
    return tmp_path / "study"


def _rewrite(study: Path, header: list[str], rows: list[list[str]]) -> None:
    badinputs.write_csv(study / "ratings.csv", header, rows)


def test_a_study_reads_as_a_normalised_table(study):
    table = data.read_dataset("ratings", study)
    frame = pd.read_csv(study / "ratings.csv")
    assert table["image"].tolist() == [str((study / n).resolve()) for n in frame["image"]]
    assert table["content"].tolist() == frame["content"].tolist()
    np.testing.assert_allclose(table["raw_score"], frame["score"])
    np.testing.assert_allclose(table["score"], (frame["score"] - 1) / 4)  # ratings.json: [1, 5], higher better
    assert table.attrs == {"dataset": "ratings", "score_range": (1.0, 5.0), "lower_better": False}
    data.validate_table(table)


def test_the_same_images_read_as_ratings_and_as_kadid10k_give_the_same_scores(tmp_path):
    kadid = tmp_path / "kadid"
    rows = write_mini_kadid(kadid)
    badinputs.write_csv(
        kadid / "ratings.csv", ["image", "score", "ref"], [[f"images/{r[0]}", r[2], f"images/{r[1]}"] for r in rows]
    )
    (kadid / "ratings.json").write_text(json.dumps({"score_range": [1, 5]}))
    ours, theirs = data.read_dataset("ratings", kadid), data.read_dataset("kadid10k", kadid)
    for column in ("image", "ref", "content", "score", "raw_score"):
        assert ours[column].tolist() == theirs[column].tolist(), column  # content: the reference's name


def test_without_ratings_json_the_scale_is_the_scores_own_and_lower_better_flips_it(study):
    (study / "ratings.json").unlink()
    table = data.read_ratings(study)
    raw = table["raw_score"].to_numpy()
    assert table.attrs["score_range"] == (raw.min(), raw.max())
    np.testing.assert_allclose(table["score"], (raw - raw.min()) / (raw.max() - raw.min()))
    (study / "ratings.json").write_text(json.dumps({"score_range": [0, 10], "lower_better": True}))
    np.testing.assert_allclose(data.read_ratings(study)["score"], (10 - raw) / 10)


def test_without_content_each_image_is_its_own_and_absolute_paths_work(study, tmp_path):
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes((study / "photos" / "scene1_1.png").read_bytes())
    _rewrite(
        study, ["image", "score"], [["photos/scene1_1.png", "2"], ["photos/scene1_2.png", "3"], [str(elsewhere), "4"]]
    )
    table = data.read_ratings(study)
    assert table["image"].tolist()[2] == str(elsewhere.resolve())
    assert table["content"].nunique() == 3


def test_a_spreadsheet_export_reads_the_same(study):
    """Byte-order mark, CRLF line ends, capitalised headers and spaces around the cells, as Excel writes them."""
    expected = data.read_ratings(study)
    frame = pd.read_csv(study / "ratings.csv")
    text = "Image, Score ,Content\r\n" + "".join(f" {r.image} ,{r.score}, {r.content}\r\n" for r in frame.itertuples())
    (study / "ratings.csv").write_bytes(text.encode("utf-8-sig"))
    pd.testing.assert_frame_equal(data.read_ratings(study), expected)


def test_names_match_files_saved_decomposed_as_macos_does(study):
    """macOS writes 'é' as 'e' + U+0301 (NFD); a CSV typed elsewhere holds it composed (NFC)."""
    composed, decomposed = "caf\u00e9 {}.png", "cafe\u0301 {}.png"
    (study / "photos" / "scene1_1.png").rename(study / decomposed.format(1))
    (study / "photos" / "scene1_2.png").rename(study / "photos" / decomposed.format(2))
    _rewrite(study, ["image", "score"], [[composed.format(1), "2"], ["photos/" + composed.format(2), "3"]])
    table = data.read_ratings(study)
    assert [Path(p).name for p in table["image"]] == [decomposed.format(1), decomposed.format(2)]
    assert all(Path(p).is_file() for p in table["image"])


def test_contents_stay_together_in_the_splits(study):
    table = data.read_ratings(study)
    for split in data.repeated_splits(table, 3, seed=0):
        data.check_disjoint(split)


BAD_STUDIES = {
    "no ratings.csv": (lambda s: (s / "ratings.csv").unlink(), r"ratings\.csv: metadata file not found"),
    "no score column": (
        lambda s: _rewrite(s, ["image", "mos"], [["photos/scene1_1.png", "3"]]),
        r"ratings\.csv, line 1: header \['image', 'mos'\] lacks column\(s\) \['score'\] \(optional: content, ref\)",
    ),
    "score not a number": (
        lambda s: _rewrite(s, ["image", "score"], [["photos/scene1_1.png", "3"], ["photos/scene1_2.png", "good"]]),
        r"ratings\.csv, line 3: score 'good' is not a number",
    ),
    "decimal comma": (
        lambda s: (s / "ratings.csv").write_text('image,score\nphotos/scene1_1.png,"4,54"\n'),
        r"ratings\.csv, line 2: score '4,54' is not a number \(a decimal comma\? write 4\.54\)",
    ),
    "empty score": (
        lambda s: _rewrite(s, ["image", "score"], [["photos/scene1_1.png", ""]]),
        r"ratings\.csv, line 2: score '' is not a number",
    ),
    "image absent": (
        lambda s: _rewrite(s, ["image", "score"], [["photos/scene1_1.png", "3"], ["photos/missing.png", "4"]]),
        r"ratings\.csv, line 3: image 'photos/missing\.png' is listed but absent",
    ),
    "path written on Windows": (
        lambda s: _rewrite(s, ["image", "score"], [["photos\\scene1_1.png", "3"]]),
        r"ratings\.csv, line 2: image 'photos\\scene1_1\.png' is listed but absent from .* "
        r"\(folders in a listed path are separated by '/', not '\\'\)$",
    ),
    "reference absent": (
        lambda s: _rewrite(
            s,
            ["image", "score", "ref"],
            [["photos/scene1_1.png", "3", "photos/scene1_2.png"], ["photos/scene1_2.png", "4", "refs/gone.png"]],
        ),
        r"ratings\.csv, line 3: reference 'refs/gone\.png' is listed but absent",
    ),
    "image absent, by absolute path": (
        lambda s: _rewrite(s, ["image", "score"], [["photos/scene1_1.png", "3"], [str(s / "gone" / "x.png"), "4"]]),
        r"ratings\.csv, line 3: image '.*/gone/x\.png' is listed but no such file exists$",  # not "absent from <s>"
    ),
    "empty file": (
        lambda s: (s / "ratings.csv").write_bytes(b""),
        r"ratings\.csv: the file is empty \(no header, no rows\)",
    ),
    "fields separated by ';'": (
        lambda s: (s / "ratings.csv").write_text("image;score\nphotos/scene1_1.png;3.5\n"),
        r"lacks column\(s\) \['image', 'score'\] .*; its fields look separated by ';': save it again with ','",
    ),
    "fields separated by tabs": (
        lambda s: (s / "ratings.csv").write_text("image\tscore\nphotos/scene1_1.png\t3.5\n"),
        r"lacks column\(s\) .*; its fields look separated by tabs: save it again with ','",
    ),
    "image twice": (
        lambda s: _rewrite(s, ["image", "score"], [["photos/scene1_1.png", "3"], ["photos/scene1_1.png", "4"]]),
        r"ratings\.csv, line 3: image 'photos/scene1_1\.png' is listed again \(first on line 2\)",
    ),
    "image twice, once through a link": (  # the line named the file, not the link it had first been given as
        lambda s: (
            (s / "photos" / "alias.png").symlink_to("scene1_1.png"),
            _rewrite(s, ["image", "score"], [["photos/alias.png", "3"], ["photos/scene1_1.png", "4"]]),
        ),
        r"line 3: image 'photos/scene1_1\.png' is listed again \(first on line 2, as 'photos/alias\.png': a link or "
        r"another spelling of the same file\)",
    ),
    "empty content": (
        lambda s: _rewrite(
            s, ["image", "score", "content"], [["photos/scene1_1.png", "3", "a"], ["photos/scene1_2.png", "4", ""]]
        ),
        r"ratings\.csv, line 3: empty content",
    ),
    "score outside the range": (
        lambda s: _rewrite(s, ["image", "score"], [["photos/scene1_1.png", "3"], ["photos/scene1_2.png", "7"]]),
        r"ratings\.csv, line 3: score 7 is outside score_range \[1, 5\]",
    ),
    "ratings.json not JSON": (
        lambda s: (s / "ratings.json").write_text("score_range: 1-5"),
        r"ratings\.json: not valid JSON",
    ),
    "ratings.json unknown key": (
        lambda s: (s / "ratings.json").write_text('{"range": [1, 5]}'),
        r"ratings\.json: expected an object with score_range and/or lower_better",
    ),
    "ratings.json range reversed": (
        lambda s: (s / "ratings.json").write_text('{"score_range": [5, 1]}'),
        r"ratings\.json: score_range \[5, 1\] is not \[lo, hi\]",
    ),
    "equal scores, no ratings.json": (
        lambda s: (
            (s / "ratings.json").unlink(),
            _rewrite(s, ["image", "score"], [["photos/scene1_1.png", "3"], ["photos/scene1_2.png", "3"]]),
        ),
        r"ratings\.csv: the scores are all equal; need lo < hi",
    ),
}


@pytest.mark.parametrize("case", BAD_STUDIES)
def test_each_bad_study_is_one_error_naming_the_file_and_line(study, case):
    spoil, message = BAD_STUDIES[case]
    spoil(study)
    with pytest.raises(TableError, match=r"^ratings: .*" + message) as error:
        data.read_ratings(study)
    assert "\n" not in str(error.value)


def _features(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32) / 255.0
    return np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)


def test_train_mlp_on_a_study(study, tmp_path):
    from deepfl.features import extract_to_cache

    table = data.read_ratings(study)
    cache = tmp_path / "study.h5"
    extract_to_cache(_features, table["image"].tolist(), cache, batch_size=6, source="test", dim=6)
    assert read_feature_cache(cache)[0] == table["image"].tolist()
    # A bad study (a listed image absent) and one of three contents (too few for 60/20/20), beside the good one.
    bad, few = tmp_path / "bad_study", tmp_path / "few_study"
    shutil.copytree(study, bad)
    _rewrite(bad, ["image", "score"], [["photos/scene1_1.png", "3"], ["photos/nope.png", "4"]])
    shutil.copytree(study, few)
    three = table[table["content"].isin(["scene1", "scene2", "scene3"])]
    _rewrite(
        few,
        ["image", "score", "content"],
        [[p, str(r), c] for p, r, c in zip(three["image"], three["raw_score"], three["content"])],
    )
    common = ["--dataset=ratings", f"--features={cache}", "--num_splits=2", "--epochs=2", "--batch_size=4"]
    common.append("--learning_rates=1e-3")
    # One new process (one TensorFlow import) runs the three command lines one after another, as from a shell.
    small_head = ["--hidden=8", "--dropout=0.5", "--standardize_features"]  # a head for a small study
    run, bad_run, few_run, small, hidden_only, unpaired = kr.run_batch(
        "train_mlp",
        [[f"--data_dir={folder}", f"--out_dir={tmp_path / out}", *common, *extra] for folder, out, extra in
         ((study, "mlp", []), (bad, "bad", []), (few, "few", []), (study, "small", small_head),
          (study, "hidden_only", ["--hidden=8,4"]), (study, "unpaired", ["--hidden=8", "--dropout=0.25,0.5"]))],
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert small.returncode == 0, small.stderr[-3000:]
    from deepfl.fileio import load_model_file

    layers = load_model_file(tmp_path / "small" / "ratings_head_split0.keras", "head").layers
    assert [layer.units for layer in layers if hasattr(layer, "units")] == [8, 1]
    assert '"hidden": [\n  8\n ]' in (tmp_path / "small" / "mlp_settings.json").read_text()
    assert "hidden" not in (tmp_path / "mlp" / "mlp_settings.json").read_text()  # the paper's head: as before
    # --hidden alone takes the paper's dropout pattern (it refused: the default rates were the paper's three)
    assert hidden_only.returncode == 0, hidden_only.stderr[-3000:]
    recorded = json.loads((tmp_path / "hidden_only" / "mlp_settings.json").read_text())
    assert recorded["hidden"] == [8, 4] and recorded["dropout"] == [0.25, 0.5], recorded
    assert unpaired.returncode == 2 and "--dropout: give one rate per --hidden layer" in unpaired.stderr
    predictions = pd.read_csv(tmp_path / "mlp" / "predictions.csv")
    assert set(predictions["image"]) <= set(table["image"])
    assert (
        predictions.set_index("image")["content"].to_dict().items()
        <= dict(zip(table["image"], table["content"])).items()
    )
    for _, part in predictions.groupby("split"):  # the study's contents stay on one side of each split
        assert set(part.loc[part["set"] == "test", "content"]).isdisjoint(part.loc[part["set"] == "train", "content"])
    assert (tmp_path / "mlp" / "ratings_head_split0.keras").is_file()
    # The same command again finds the run finished, without TensorFlow (it took 6-12 s to say so).
    again, imported = kr.run_noting_tensorflow(
        "train_mlp", [f"--data_dir={study}", f"--out_dir={tmp_path / 'mlp'}", *common]
    )
    assert again.returncode == 0 and "finished already with these settings and inputs" in again.stdout, again.stderr
    assert not imported
    # The bad study: exit 2 and one error line naming the file and line.
    assert bad_run.returncode == 2, bad_run.stderr[-2000:]
    assert bad_run.stderr.strip().splitlines()[-1].startswith("error: ratings: ")
    assert "ratings.csv, line 3: image 'photos/nope.png' is listed but absent" in bad_run.stderr
    # Three contents: exit 2 with one line, and no settings stored that would lock --out_dir.
    assert few_run.returncode == 2, few_run.stderr[-2000:]
    assert few_run.stderr.strip().splitlines()[-1].startswith("error: ratings: 3 distinct content(s)")
    assert not (tmp_path / "few" / "mlp_settings.json").exists()


def test_too_few_contents_for_the_protocol_is_one_error_naming_the_minimum(tmp_path):
    from deepfl import protocol
    from deepfl.data.splits import min_contents

    assert (min_contents(), min_contents((0.8, 0.2, 0.0)), min_contents((0.7, 0.15, 0.15))) == (4, 3, 5)
    for count in (2, 3):  # 60/20/20 of 2 or 3 contents leaves the test part empty: every figure would be NaN
        write_ratings_study(tmp_path / f"c{count}", contents=count)
        with pytest.raises(
            ValueError,
            match=rf"^ratings: {count} distinct content\(s\); content-aware 0\.6/0\.2/0\.2 "
            r"splits need at least 4 ",
        ):
            protocol.table_splits(data.read_ratings(tmp_path / f"c{count}"), 2)
    write_ratings_study(tmp_path / "c4", contents=4)
    for labels in protocol.table_splits(data.read_ratings(tmp_path / "c4"), 3):
        assert {"train", "val", "test"} <= set(labels)
