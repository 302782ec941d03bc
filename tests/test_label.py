"""The labelling job: manifest reading, grouping, resumable append-only output, bad pairs, shards + merge, CLI."""

import csv
import json
import logging
import math
import os

import numpy as np
import pandas as pd
import pytest

import killrestart as kr
from deepfl import labeling
from deepfl.errors import NoUsableInput, TableError
from deepfl.fr import sff
from deepfl.images import read_image, write_image
from deepfl.jobs import JobStopped, SettingsChanged, settings_beside


def _write_references(root, photo, sizes, seed, dist_name) -> list[tuple[str, str]]:
    """Reference r{i}.png of each size in `sizes` (a crop of `photo`) with 3 noisy versions named by
    `dist_name.format(r=i, level=level)`, all as PNG in `root` -> the (dist_im, ref_im) rows."""
    root.mkdir()
    rng = np.random.default_rng(seed)
    rows = []
    for r, (height, width) in enumerate(sizes):
        ref = np.ascontiguousarray(photo[r * 10 : r * 10 + height, r * 20 : r * 20 + width])
        write_image(root / f"r{r}.png", ref)
        for level in range(1, 4):
            dist = np.clip(ref + rng.normal(0, 4 * level, ref.shape), 0, 255).astype(np.uint8)
            name = dist_name.format(r=r, level=level)
            write_image(root / name, dist)
            rows.append((name, f"r{r}.png"))
    return rows


@pytest.fixture()
def pair_set(tmp_path, small_photo):
    """3 references x 3 noisy versions (48x64), plus a missing, a corrupt and a wrong-size distorted image."""
    root = tmp_path / "images"
    rows = _write_references(root, small_photo, [(48, 64)] * 3, 0, "r{r}_11_0{level}.png")
    rows.append(("gone.png", "r0.png"))
    (root / "corrupt.png").write_bytes(b"not an image")
    rows.append(("corrupt.png", "r1.png"))
    write_image(root / "small.png", small_photo[:40, :40])
    rows.append(("small.png", "r2.png"))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=["dist_im", "ref_im"]).to_csv(manifest, index=False)
    return manifest, root


def _read(path):
    return pd.read_csv(path, dtype={"dist_im": str, "ref_im": str})


def test_read_manifest_accepts_kadid_layout_and_rejects_bad_tables(tmp_path):
    kadid = tmp_path / "dmos.csv"
    kadid.write_text("dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.57,0.496\n")
    table = labeling.read_manifest(kadid)
    assert list(table.columns) == ["dist_im", "ref_im"] and table.dist_im[0] == "I01_01_01.png"
    bad = tmp_path / "bad.csv"
    bad.write_text("image,score\na.png,1\n")
    with pytest.raises(TableError, match="dist_im"):
        labeling.read_manifest(bad)
    twice = tmp_path / "twice.csv"
    twice.write_text("dist_img,ref_img\na.png,r.png\nb.png,r.png\na.png,r.png\n")  # named as the file names it
    with pytest.raises(TableError, match=r"twice.csv: line 4 repeats dist_img 'a.png' of line 2; each distorted"):
        labeling.read_manifest(twice)
    with pytest.raises(FileNotFoundError):
        labeling.read_manifest(tmp_path / "none.csv")


def test_group_pairs_keeps_one_reference_per_batch():
    pairs = pd.DataFrame({"dist_im": [f"d{i}" for i in range(7)], "ref_im": ["a", "b", "a", "a", "b", "a", "a"]})
    groups = labeling.group_pairs(pairs, batch_size=2)
    assert groups == [("a", ["d0", "d2"]), ("a", ["d3", "d5"]), ("a", ["d6"]), ("b", ["d1", "d4"])]
    with pytest.raises(ValueError, match="batch_size"):
        labeling.group_pairs(pairs, batch_size=0)


def test_metric_subset_validation():
    assert labeling.check_metrics("scqi,sff") == ["sff", "scqi"]
    assert labeling.check_metrics(None) == list(labeling.METRICS)
    with pytest.raises(ValueError, match="psnr"):
        labeling.check_metrics(["psnr"])
    with pytest.raises(ValueError, match=r"MS-SSIM, psnr \(did you mean 'msssim' for 'MS-SSIM'\?\); choose"):
        labeling.check_metrics("MS-SSIM,psnr")
    assert labeling.output_columns() == [
        "dist_im",
        "ref_im",
        "ssim",
        "msssim",
        "iwssim",
        "mdsi",
        "vsi",
        "fsim",
        "gmsd",
        "sff",
        "scqi",
        "add_gsim",
        "sr_sim",
    ]


def test_labels_match_direct_scores_and_bad_pairs_are_named(pair_set, tmp_path):
    manifest, root = pair_set
    out = tmp_path / "out" / "labels.csv"
    summary = labeling.label_pairs(labeling.read_manifest(manifest), root, out, metrics=["sff"], batch_size=2)
    table = _read(out)
    assert list(table.columns) == ["dist_im", "ref_im", "sff"]
    assert summary.written == 9 and len(table) == 9
    assert len(summary.skipped) == 3
    text = "\n".join(summary.skipped)
    assert "gone.png" in text and "corrupt.png" in text and "small.png" in text and "differs" in text
    row = table[table.dist_im == "r1_11_02.png"].iloc[0]
    ref = read_image(root / "r1.png")[None].astype(np.float32)
    dist = read_image(root / "r1_11_02.png")[None].astype(np.float32)
    assert row.sff == pytest.approx(float(np.asarray(sff(ref, dist))[0]), abs=1e-9)


def test_pairs_given_in_memory_with_kadid_names_or_as_tuples(pair_set, tmp_path):
    """A DataFrame with KADID's dist_img/ref_img (which read_manifest takes) or a list of (dist, ref) tuples
    failed with AttributeError: 'dist_im'."""
    manifest, root = pair_set
    kadid = pd.read_csv(manifest).rename(columns={"dist_im": "dist_img", "ref_im": "ref_img"}).head(3)
    tuples = list(kadid.itertuples(index=False, name=None))
    outputs = []
    for k, pairs in enumerate([kadid, tuples]):
        out = tmp_path / f"labels{k}.csv"
        labeling.label_pairs(pairs, root, out, metrics=["gmsd"])
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 4
    with pytest.raises(ValueError, match=r"pairs: no column dist_im or dist_img \(columns: image, score\)"):
        labeling.label_pairs(pd.DataFrame({"image": ["a"], "score": [1]}), root, tmp_path / "x.csv")
    with pytest.raises(ValueError, match="pairs: need a DataFrame with dist_im, ref_im or"):
        labeling.label_pairs([("a.png", "r.png", "extra")], root, tmp_path / "y.csv")


def test_an_unreadable_reference_is_one_warning_for_all_its_pairs(pair_set, tmp_path, caplog):
    """A missing reference skips each of its pairs (counted one by one) but is warned once, naming it and how
    many pairs it takes with it: a wrong --ref_root on a KADIS-size set printed a line per distorted image."""
    manifest, root = pair_set
    references = tmp_path / "references"
    references.mkdir()
    for name in ("r0.png", "r2.png"):
        (references / name).write_bytes((root / name).read_bytes())
    pairs = labeling.read_manifest(manifest)
    with caplog.at_level("WARNING", logger="deepfl"):
        summary = labeling.label_pairs(pairs, root, tmp_path / "labels.csv", metrics=["gmsd"], ref_root=references)
    lost = [m for m in summary.skipped if "r1.png" in m and "reference" in m]
    assert len(lost) == 4  # r1's three noisy versions and corrupt.png
    warned = [r.getMessage() for r in caplog.records if "r1.png" in r.getMessage()]
    assert len(warned) == 1, warned
    assert warned[0].startswith(f"reference {references / 'r1.png'}") and "4 distorted images not scored" in warned[0]
    # Not one reference there (a wrong folder): stopped before scoring, with one error naming it.
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        NoUsableInput, match=r"none of the 3 references of the 12 pairs to do is in .*empty \(first: r0.png\)"
    ):
        labeling.label_pairs(pairs, root, tmp_path / "none.csv", metrics=["gmsd"], ref_root=tmp_path / "empty")
    # The run made the CSV and scored nothing: neither a header-only CSV nor its settings stay behind.
    assert not (tmp_path / "none.csv").exists() and not settings_beside(tmp_path / "none.csv").exists()
    one = pairs[pairs.ref_im == "r0.png"]
    with pytest.raises(NoUsableInput, match=r"the reference of the 4 pairs to do, r0.png, is not in .*empty;"):
        labeling.label_pairs(one, root, tmp_path / "none.csv", metrics=["gmsd"], ref_root=tmp_path / "empty")
    # No distorted image there (a wrong image_root), the references found or not: that folder is named, before a
    # warning per pair (walks 42b, 42c).
    for roots in ({}, {"ref_root": references}):
        with pytest.raises(NoUsableInput, match=r"no distorted image found: none of the 12 pairs to do is in .*empty"):
            labeling.label_pairs(pairs, tmp_path / "empty", tmp_path / "none.csv", metrics=["gmsd"], **roots)
    summary = labeling.label_pairs(one, root, tmp_path / "none.csv", metrics=["gmsd"], ref_root=references)
    assert summary.written == 3 and len(pd.read_csv(tmp_path / "none.csv")) == 3  # gone.png is missing
    # A folder that is not there at all is one error before anything (a line per pair before, walk 39b).
    for roots in ({"image_root": tmp_path / "nosuch"}, {"image_root": root, "ref_root": tmp_path / "nosuch"}):
        name = next(reversed(roots))
        with pytest.raises(FileNotFoundError, match=rf"^{name}: .*nosuch: no such folder$"):
            labeling.label_pairs(pairs, out_csv=tmp_path / "never.csv", metrics=["gmsd"], **roots)
    assert not (tmp_path / "never.csv").exists()


def test_a_flat_reference_gets_no_sff_label_and_is_named(tmp_path, small_photo):
    """SFF is NaN where the reference has no feature response (as SFF.m): the row is skipped, by name, rather
    than written with a perfect score."""
    root = tmp_path / "images"
    root.mkdir()
    write_image(root / "flat.png", np.full((48, 64, 3), 90, np.uint8))
    write_image(root / "photo.png", np.ascontiguousarray(small_photo[:48, :64]))
    write_image(root / "flat_on_photo.png", np.ascontiguousarray(small_photo[:48, :64]))
    write_image(root / "photo_noisy.png", np.clip(small_photo[:48, :64].astype(int) + 9, 0, 255).astype(np.uint8))
    manifest = tmp_path / "manifest.csv"
    rows = [("flat_on_photo.png", "flat.png"), ("photo_noisy.png", "photo.png")]
    pd.DataFrame(rows, columns=["dist_im", "ref_im"]).to_csv(manifest, index=False)
    out = tmp_path / "labels.csv"
    summary = labeling.label_pairs(labeling.read_manifest(manifest), root, out, metrics=["ssim", "sff"])
    assert summary.written == 1 and list(_read(out).dist_im) == ["photo_noisy.png"]
    why = (
        "(SFF has no value where the reference is flat and colourless (grey, black or white) wherever the distortion "
        "changes it, as in the original)"
    )
    assert summary.skipped == [f"flat_on_photo.png: non-finite sff score {why}; row skipped"]


def test_a_flat_reference_is_named_in_one_line_for_all_its_pairs(tmp_path, small_photo, caplog):
    """A walk's flat grey photo gave five identical lines, one per level; the reference's pairs share one line,
    while the summary still lists every skipped pair."""
    root = tmp_path / "images"
    root.mkdir()
    write_image(root / "flat.png", np.full((48, 64, 3), 90, np.uint8))
    names = [f"flat_{level}.png" for level in range(1, 4)]
    for name in names:
        write_image(root / name, np.full((48, 64, 3), 90, np.uint8))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame([(name, "flat.png") for name in names], columns=["dist_im", "ref_im"]).to_csv(manifest, index=False)
    with caplog.at_level(logging.WARNING, logger="deepfl"):
        summary = labeling.label_pairs(
            labeling.read_manifest(manifest), root, tmp_path / "labels.csv", metrics=["ssim", "sff"]
        )
    assert summary.written == 0 and len(summary.skipped) == 3
    lines = [r.getMessage() for r in caplog.records if "flat" in r.getMessage()]
    assert lines == [
        "flat.png: its 3 distorted images scored non-finite sff (SFF has no value where the reference is flat and "
        "colourless (grey, black or white) wherever the distortion changes it, as in the original); rows skipped "
        "(flat_1.png, flat_2.png and 1 more)"
    ], lines


def test_references_packed_in_one_call_score_like_pairs_alone(pair_set, tmp_path):
    """batch_size=25 packs the three references (ref_index) into one call per metric; each row must equal the
    pair scored alone, and the rows and skipped pairs must be those of one reference per call."""
    from deepfl import fr

    manifest, root = pair_set
    pairs = labeling.read_manifest(manifest)
    metrics = ["gmsd", "sff"]
    packed = labeling.label_pairs(pairs, root, tmp_path / "packed.csv", metrics=metrics, batch_size=25)
    alone = labeling.label_pairs(pairs, root, tmp_path / "alone.csv", metrics=metrics, batch_size=1)
    assert packed.written == alone.written == 9
    assert sorted(packed.skipped) == sorted(alone.skipped)
    table = _read(tmp_path / "packed.csv")
    np.testing.assert_allclose(
        table[metrics].to_numpy(), _read(tmp_path / "alone.csv")[metrics].to_numpy(), rtol=0, atol=1e-7
    )
    for _, row in table.iterrows():
        direct = fr.compute(read_image(root / row.ref_im), read_image(root / row.dist_im), metrics)
        for name in metrics:
            assert row[name] == pytest.approx(direct[name][0], abs=1e-7), (row.dist_im, name)


def test_resume_never_recomputes_or_duplicates(pair_set, tmp_path, caplog):
    manifest, root = pair_set
    pairs = labeling.read_manifest(manifest)
    out = tmp_path / "labels.csv"
    labeling.label_pairs(pairs, root, out, metrics=["sff"])
    full = out.read_text()
    # Simulate a kill: drop the last two rows and leave a torn half line.
    lines = full.splitlines(keepends=True)
    out.write_text("".join(lines[:-2]) + lines[-2][:7])
    with caplog.at_level(logging.INFO, logger="deepfl"):
        summary = labeling.label_pairs(pairs, root, out, metrics=["sff"])
    assert summary.written == 2 and summary.already_done == 7
    # said before the bar starts (of the other 5, the torn 2 are written and 3 bad pairs skipped again)
    said = [m for m in caplog.messages if "already labelled" in m]
    assert said == [f"{out}: 7 of 12 pairs already labelled, labelling the other 5"], said
    assert sorted(out.read_text().splitlines()) == sorted(full.splitlines())
    again = labeling.label_pairs(pairs, root, out, metrics=["sff"])
    assert again.written == 0 and again.already_done == 9
    with pytest.raises(SettingsChanged, match="an earlier run wrote the metrics sff; this one asks for sff,scqi"):
        labeling.label_pairs(pairs, root, out, metrics=["sff", "scqi"])


def test_stop_policy_keeps_finished_rows(pair_set, tmp_path):
    manifest, root = pair_set
    out = tmp_path / "labels.csv"
    with pytest.raises(JobStopped, match="gone.png"):
        labeling.label_pairs(labeling.read_manifest(manifest), root, out, metrics=["sff"], on_error="stop")
    assert len(_read(out)) >= 1  # r0's good pairs come first in its batch and are kept


def test_shards_merge_to_the_unsharded_result(pair_set, tmp_path):
    manifest, root = pair_set
    pairs = labeling.read_manifest(manifest)
    whole = tmp_path / "whole" / "labels.csv"
    labeling.label_pairs(pairs, root, whole, metrics=["sff", "add_gsim"])
    sharded = tmp_path / "sharded" / "labels.csv"
    for index in range(2):
        labeling.label_pairs(pairs, root, sharded, metrics=["sff", "add_gsim"], num_shards=2, shard_index=index)
    assert labeling.shard_file(sharded, 2, 1).name == "labels.shard-00001-of-00002.csv"
    path, missing = labeling.merge_shards(sharded, 2, pairs, metrics=["sff", "add_gsim"])
    assert sorted(missing) == ["corrupt.png", "gone.png", "small.png"]
    merged, expected = _read(path), _read(whole)
    assert list(merged.dist_im) == list(expected.dist_im)  # manifest order
    np.testing.assert_allclose(merged[["sff", "add_gsim"]].to_numpy(), expected[["sff", "add_gsim"]].to_numpy())
    with pytest.raises(FileNotFoundError, match="shard 0 of 3"):
        labeling.merge_shards(sharded, 3, pairs, metrics=["sff", "add_gsim"])
    # A shard of another --num_shards scored pairs other shards had scored, and the merge then missed its share.
    from deepfl.errors import DeepflError

    with pytest.raises(DeepflError, match=r"holds shards of 2 \(labels.shard-00000-of-00002.csv\), not of 3"):
        labeling.label_pairs(pairs, root, sharded, metrics=["sff", "add_gsim"], num_shards=3, shard_index=0)
    assert not labeling.shard_file(sharded, 3, 0).exists()
    # A merge took the rows of a shard still running, stopped part-way, or made from another manifest, and exited 0
    # with an incomplete labels.csv (user walk, session 26): each is refused, naming the shard.
    from deepfl.jobs import AppendOnlyCsv
    from deepfl.sharding import shard_finished_record

    second = labeling.shard_file(sharded, 2, 1)
    writer = AppendOnlyCsv(second, labeling.output_columns(["sff", "add_gsim"]), key="dist_im", lock=True)
    with pytest.raises(DeepflError, match="shard 1 of 2 is still being written by a running job"):
        labeling.merge_shards(sharded, 2, pairs, metrics=["sff", "add_gsim"])
    del writer  # (its lock goes with it)
    with pytest.raises(DeepflError, match="shard 0 of 2 finished on another share .*the manifest or the references"):
        labeling.merge_shards(sharded, 2, pairs.iloc[:-2], metrics=["sff", "add_gsim"])
    shard_finished_record(second).unlink()  # as a shard killed before its end leaves it
    with pytest.raises(DeepflError, match="shard 1 of 2 has not finished .*rerun it with its flags"):
        labeling.merge_shards(sharded, 2, pairs, metrics=["sff", "add_gsim"])
    labeling.label_pairs(pairs, root, sharded, metrics=["sff", "add_gsim"], num_shards=2, shard_index=1)  # the rerun
    assert labeling.merge_shards(sharded, 2, pairs, metrics=["sff", "add_gsim"])[0] == path
    # A merge given other --metrics than the shards': it said "restore the header line ..." of a sound file.
    merge_with = r"shards were made with the metrics sff,add_gsim; .*merge with metrics=\['sff', 'add_gsim'\]"
    with pytest.raises(DeepflError, match=merge_with):
        labeling.merge_shards(sharded, 2, pairs, metrics=["sff"])
    # A shard started with other --metrics than its siblings' files: refused at its start, naming the sibling,
    # where it scored its whole share and only the merge refused it (walk 39b).
    sibling = r"labels.shard-00000-of-00002.csv: shard 0 of 2 scores the metrics sff,add_gsim; this shard asks for sff"
    with pytest.raises(DeepflError, match=sibling + r", .* run it with metrics=\['sff', 'add_gsim'\]"):
        labeling.label_pairs(pairs, root, sharded, metrics=["sff"], num_shards=2, shard_index=1)
    # Shards made with different --metrics: merging with either's sent the user to the other's (a user walk).
    labeling.label_pairs(pairs, root, sharded, metrics=["sff"], num_shards=2, shard_index=1, overwrite=True)
    for metrics in (["sff", "add_gsim"], ["sff"]):
        with pytest.raises(DeepflError, match=r"made with different metrics \(shard 0 sff,add_gsim; shard 1 sff\)"):
            labeling.merge_shards(sharded, 2, pairs, metrics=metrics)


def test_a_merged_csv_keeps_its_sources_settings_and_the_rows_no_shard_holds(pair_set, tmp_path, caplog):
    # The merged labels.csv had no settings record: an unsharded run into it later resumed with any --batch_size,
    # and a merge over an earlier labels.csv replaced it, rows no shard held included (session 27).
    manifest, root = pair_set
    pairs = labeling.read_manifest(manifest)
    metrics = ["sff", "add_gsim"]
    sharded = tmp_path / "sharded" / "labels.csv"
    labeling.label_pairs(pairs.iloc[:4], root, sharded, metrics=metrics)  # an earlier unsharded run's rows
    early = _read(sharded)
    later = pairs.iloc[4:]
    for index in range(2):
        labeling.label_pairs(later, root, sharded, metrics=metrics, num_shards=2, shard_index=index)
    labeling.merge_shards(sharded, 2, later, metrics=metrics)
    merged = _read(sharded)
    by_shards = {name for index in range(2) for name in _read(labeling.shard_file(sharded, 2, index)).dist_im}
    assert (
        len(early) and set(merged.dist_im) == by_shards | set(early.dist_im) and len(merged) == len(set(merged.dist_im))
    )
    record = json.loads(settings_beside(sharded).read_text())
    assert record["batch_size"] == labeling.PAIRS_PER_BATCH
    with pytest.raises(SettingsChanged, match="batch_size 25 -> 7"):
        labeling.label_pairs(pairs, root, sharded, metrics=metrics, batch_size=7)
    labeling.merge_shards(sharded, 2, later, metrics=metrics, overwrite=True)  # drops the rows no shard holds
    assert set(_read(sharded).dist_im) == by_shards
    # Shards scored with other settings: merged, said, and both values recorded.
    other = tmp_path / "other" / "labels.csv"
    for index, batch_size in enumerate((25, 3)):
        labeling.label_pairs(
            pairs, root, other, metrics=metrics, num_shards=2, shard_index=index, batch_size=batch_size
        )
    with caplog.at_level(logging.WARNING, logger="deepfl"):
        labeling.merge_shards(other, 2, pairs, metrics=metrics)
    assert "other --batch_size: 25 (shard 0); 3 (shard 1)" in caplog.text
    assert json.loads(settings_beside(other).read_text())["batch_size"] == [3, 25]
    with pytest.raises(SettingsChanged, match=r"batch_size 3,25 -> 3"):
        labeling.label_pairs(pairs, root, other, metrics=metrics, batch_size=3)


def test_cli_writes_kadis_layout_and_reports_bad_metric(pair_set, tmp_path):
    manifest, root = pair_set
    flags = [f"--manifest={manifest}", f"--image_root={root}", f"--out_dir={tmp_path / 'cli'}"]
    # One new process (one TensorFlow import) runs the four command lines one after another, as from a shell.
    done, again, other, bad = kr.run_batch(
        "label",
        [flags + ["--metrics=scqi,sff"], flags + ["--metrics=scqi,sff"], flags + ["--metrics=ssim,gmsd"]]
        + [flags + ["--metrics=psnr"]],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with open(tmp_path / "cli" / "labels.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["dist_im", "ref_im", "sff", "scqi"]
    assert "9 rows written" in done.stdout and "3 bad pairs skipped" in done.stdout
    assert not (tmp_path / "cli" / "labels.png").exists()  # the manifest names no types or levels to plot by
    # A rerun finds every scorable pair done and only the known-bad ones left: the job's work is done (exit 0).
    assert again.returncode == 0 and "0 rows written, 9 already done, 3 bad pairs" in again.stdout, again.stderr
    last = other.stderr.strip().splitlines()[-1]
    assert other.returncode == 2 and "earlier run wrote the metrics sff,scqi" in last and "--overwrite" in last, last
    assert bad.returncode == 2 and "psnr" in bad.stderr.splitlines()[-1]
    # References kept in another folder (deepfl-distort without --resize leaves them where they were): exit 3,
    # and the line says which flag finds them.
    moved = tmp_path / "references"
    moved.mkdir()
    for reference in root.glob("r?.png"):
        reference.rename(moved / reference.name)
    (lost,) = kr.run_batch("label", [flags[:-1] + [f"--out_dir={tmp_path / 'lost'}", "--metrics=gmsd"]])
    assert lost.returncode == 3 and "--ref_root" in lost.stderr.splitlines()[-1], lost.stderr[-2000:]
    assert "not scored" not in lost.stderr  # stopped before scoring: no warning per reference first


def test_a_distort_manifest_gets_its_labels_plotted_by_level(pair_set, tmp_path):
    manifest, root = pair_set
    table = pd.read_csv(manifest).iloc[:9]  # the 3 references x 3 noise levels (r{r}_11_0{level}.png)
    table["dist_type"] = 11
    table["dist_level"] = table["dist_im"].str[-5].astype(int)
    typed = tmp_path / "typed.csv"
    table.to_csv(typed, index=False)
    argv = [f"--manifest={typed}", f"--image_root={root}", "--metrics=ssim,gmsd"]
    first = kr.run_batch("label", [[*argv, f"--out_dir={tmp_path / name}"] for name in ("out", "kept", "stale")])
    assert [done.returncode for done in first] == [0, 0, 0], first[0].stderr[-2000:]
    plot = tmp_path / "out" / "labels.png"
    assert plot.read_bytes().startswith(b"\x89PNG") and f"{plot}: each metric's median score" in first[0].stdout
    # A rerun with nothing to do keeps a drawing newer than the CSV and the manifest, and redraws an older one.
    for name in ("kept", "stale"):
        (tmp_path / name / "labels.png").write_bytes(b"marker")
    stamp = (tmp_path / "stale" / "labels.csv").stat().st_mtime_ns - 10**9
    os.utime(tmp_path / "stale" / "labels.png", ns=(stamp, stamp))
    again = kr.run_batch("label", [[*argv, f"--out_dir={tmp_path / name}"] for name in ("kept", "stale")])
    assert [done.returncode for done in again] == [0, 0], again[0].stderr[-2000:]
    assert (tmp_path / "kept" / "labels.png").read_bytes() == b"marker" and "up to date" in again[0].stdout
    assert (tmp_path / "stale" / "labels.png").read_bytes().startswith(b"\x89PNG")
    assert "up to date" not in again[1].stdout and "nothing to do, all 9 pairs were labelled" in again[1].stdout
    # On its own, such a rerun returns without loading TensorFlow (seconds of start-up for nothing).
    done, imported = kr.run_noting_tensorflow("label", [*argv, f"--out_dir={tmp_path / 'kept'}"])
    assert done.returncode == 0 and "nothing to do, all 9 pairs were labelled" in done.stdout, done.stderr[-2000:]
    assert not imported
    from deepfl import reporting

    labels = pd.read_csv(tmp_path / "out" / "labels.csv").merge(table, on=["dist_im", "ref_im"])
    figure = reporting.labels_by_level_figure(labels, ["ssim", "gmsd"], ["gmsd"])
    ssim, gmsd = figure.axes[:2]
    assert gmsd.get_title() == "gmsd (lower is better)"
    overall = ssim.get_lines()[-1].get_ydata()  # noise of 4, 8, 12 grey levels: SSIM falls with the level
    assert len(overall) == 3 and overall[0] > overall[1] > overall[2]
    # Only the all-pairs median is black: the first type's line was black too (a user walk)
    from matplotlib.colors import to_rgb

    assert [to_rgb(line.get_color()) for line in ssim.get_lines()].count((0.0, 0.0, 0.0)) == 1


def test_merge_leaves_a_shard_that_is_still_written_untouched(pair_set, tmp_path):
    manifest, root = pair_set
    pairs = labeling.read_manifest(manifest)
    out = tmp_path / "labels.csv"
    for index in range(2):
        labeling.label_pairs(pairs, root, out, metrics=["gmsd"], num_shards=2, shard_index=index)
    shard = labeling.shard_file(out, 2, 1)
    lines = shard.read_bytes().splitlines(keepends=True)
    in_flight = b"".join(lines[:-1]) + lines[-1][:5]  # its writer is in the middle of the last row
    shard.write_bytes(in_flight)
    path, missing = labeling.merge_shards(out, 2, pairs, metrics=["gmsd"])
    assert shard.read_bytes() == in_flight  # merging never cuts another process's file
    assert len(missing) == 4 and len(_read(path)) == 8  # 3 bad pairs + the row still in flight


def test_pairs_a_metric_cannot_score_are_reported_not_fatal(tmp_path, small_photo, monkeypatch):
    root = tmp_path / "images"
    root.mkdir()
    write_image(root / "r.png", small_photo)
    write_image(root / "d.png", small_photo[::-1])
    pairs = pd.DataFrame({"dist_im": ["d.png"], "ref_im": ["r.png"]})

    def refuses(ref, dist, ref_index=None):
        raise ValueError("toy: images of 96x128 are too small")

    monkeypatch.setattr(labeling, "load_metric_functions", lambda metrics: {"sff": refuses})
    summary = labeling.label_pairs(pairs, root, tmp_path / "labels.csv", metrics=["sff"])
    assert summary.written == 0 and "d.png: not scored (toy: images" in summary.skipped[0]


@pytest.fixture()
def two_size_pairs(tmp_path, small_photo):
    """3 references of 48x64 with 3 noisy versions each (27,648 pixels x pairs) and 1 of 40x56 with 3 (6,720)."""
    root = tmp_path / "images"
    rows = _write_references(root, small_photo, [(48, 64)] * 3 + [(40, 56)], 1, "r{r}_{level}.png")
    return pd.DataFrame(rows, columns=["dist_im", "ref_im"]), root


def test_compiled_sizes_are_those_with_enough_pixels_times_pairs(two_size_pairs, tmp_path):
    pairs, root = two_size_pairs
    groups = labeling.group_pairs(pairs) + [("missing.png", ["x.png"] * 1000)]
    assert labeling.compiled_sizes(groups, root, 20_000) == {(48, 64)}
    assert labeling.compiled_sizes(groups, root, 6_000) == {(48, 64), (40, 56)}
    assert labeling.compiled_sizes(groups, root, 30_000) == set()
    assert labeling.compiled_sizes(groups, root, float("inf")) == set()
    assert labeling.compiled_sizes(groups, tmp_path / "nowhere", 0) is None  # every size; no header is read


def test_large_images_go_fewer_pairs_to_a_metric_call_and_score_alike(two_size_pairs, tmp_path, monkeypatch):
    # The 5 levels of three 12-24 megapixel photos went to one metric call (a compiled one for the largest): 19 GB
    # for 5 pairs of 24 megapixels, 24 GB and a kill for all 15 (user walk, session 27). Here the 48x64 references
    # stand in for large photos: a call may hold 2 of their pairs (a reference's 3 levels are split over calls),
    # and no size above that budget compiles.
    pairs, root = two_size_pairs
    metrics = ["ssim", "gmsd", "sff"]
    whole = labeling.label_pairs(
        pairs, root, tmp_path / "whole.csv", metrics=metrics, compile_from_pixel_pairs=math.inf
    )
    monkeypatch.setattr(labeling, "PIXELS_PER_CALL", 2 * 48 * 64)
    assert labeling.pairs_per_call(48, 64) == 2 and labeling.pairs_per_call(40, 56) == 2
    assert labeling.pairs_per_call(480, 640) == 1 and labeling.pairs_per_call(4, 4, batch_size=3) == 3
    assert labeling.compiled_sizes(labeling.group_pairs(pairs), root, 1) == {(48, 64), (40, 56)}
    monkeypatch.setattr(labeling, "PIXELS_PER_CALL", 48 * 64 - 1)
    assert labeling.compiled_sizes(labeling.group_pairs(pairs), root, 1) == {(40, 56)}  # 48x64 is over the budget
    monkeypatch.setattr(labeling, "PIXELS_PER_CALL", 2 * 48 * 64)
    calls = []
    scoring = labeling.score_batch
    monkeypatch.setattr(
        labeling,
        "score_batch",
        lambda functions, refs, dists, index: calls.append(len(dists)) or scoring(functions, refs, dists, index),
    )
    split = labeling.label_pairs(
        pairs, root, tmp_path / "split.csv", metrics=metrics, compile_from_pixel_pairs=math.inf
    )
    assert split.written == whole.written == 12 and max(calls) == 2 and sum(calls) == 12, calls
    np.testing.assert_array_equal(_read(tmp_path / "split.csv")[metrics], _read(tmp_path / "whole.csv")[metrics])


def test_only_sizes_with_enough_pairs_compile_and_both_paths_score_alike(two_size_pairs, tmp_path):
    """With the threshold between the two sizes, the metric's graph is traced for the 48x64 batch alone (the
    40x56 pairs take the NumPy form); every row equals the pair scored alone within float32 rounding."""
    from deepfl import fr
    from deepfl.fr import _gmsd

    pairs, root = two_size_pairs
    graph = _gmsd._gmsd.compiled
    before = graph.experimental_get_tracing_count()
    labeling.label_pairs(pairs, root, tmp_path / "mixed.csv", metrics=["gmsd"], compile_from_pixel_pairs=20_000)
    assert graph.experimental_get_tracing_count() - before == 1
    labeling.label_pairs(pairs, root, tmp_path / "numpy.csv", metrics=["gmsd"], compile_from_pixel_pairs=float("inf"))
    assert graph.experimental_get_tracing_count() - before == 1
    mixed, uncompiled = _read(tmp_path / "mixed.csv"), _read(tmp_path / "numpy.csv")
    assert len(mixed) == len(uncompiled) == 12
    small = mixed.ref_im == "r3.png"
    assert (mixed.gmsd[small] == uncompiled.gmsd[small]).all()  # the same NumPy path: the same digits
    np.testing.assert_allclose(mixed.gmsd, uncompiled.gmsd, rtol=0, atol=1e-6)
    for _, row in mixed.iterrows():
        direct = fr.compute(read_image(root / row.ref_im), read_image(root / row.dist_im), ["gmsd"])
        assert row.gmsd == pytest.approx(direct["gmsd"][0], abs=1e-6), row.dist_im


def test_a_finished_job_reads_no_header_on_a_rerun(two_size_pairs, tmp_path, monkeypatch):
    """The size census reads every reference's header (seconds to a minute for a KADIS-size manifest); a rerun
    with nothing left to score must answer without it."""
    pairs, root = two_size_pairs
    out = tmp_path / "labels.csv"
    labeling.label_pairs(pairs, root, out, metrics=["gmsd"])
    census = []
    monkeypatch.setattr(labeling, "compiled_sizes", lambda *args: census.append(args) or frozenset())
    again = labeling.label_pairs(pairs, root, out, metrics=["gmsd"])
    assert again.written == 0 and again.already_done == 12 and census == []


def test_resuming_with_another_batch_size_or_compile_threshold_is_refused(pair_set, tmp_path, caplog):
    """Both change scores in their last digits: a resumed CSV must not mix them silently (a new user's walk
    resumed with --compile_from_pixel_pairs=0 --batch_size 7 and got rows off by 8e-8 beside the old ones)."""
    from deepfl.jobs import SettingsChanged

    manifest, root = pair_set
    pairs = labeling.read_manifest(manifest)
    out = tmp_path / "labels.csv"
    labeling.label_pairs(pairs.iloc[:4], root, out, metrics=["gmsd"], batch_size=2)
    with pytest.raises(SettingsChanged, match="batch_size 2 -> 3"):
        labeling.label_pairs(pairs, root, out, metrics=["gmsd"], batch_size=3)
    with pytest.raises(SettingsChanged, match="compile_from_pixel_pairs"):
        labeling.label_pairs(pairs, root, out, metrics=["gmsd"], batch_size=2, compile_from_pixel_pairs=0)
    resumed = labeling.label_pairs(pairs, root, out, metrics=["gmsd"], batch_size=2)
    assert resumed.already_done > 0
    with caplog.at_level("INFO", logger="deepfl"):
        redone = labeling.label_pairs(pairs, root, out, metrics=["gmsd"], batch_size=3, overwrite=True)
    assert redone.already_done == 0 and redone.written == resumed.written + resumed.already_done
    removed = resumed.written + resumed.already_done
    assert f"{out}: removed the earlier labels ({removed} rows; overwrite=True)" in caplog.messages  # (walk 42b)


def test_a_sideways_distorted_image_is_named_with_the_likely_cause(tmp_path, small_photo):
    ref = np.ascontiguousarray(small_photo[:48, :64])
    write_image(tmp_path / "r.png", ref)
    write_image(tmp_path / "r_01_01.png", np.ascontiguousarray(np.rot90(ref)))  # 48 wide, 64 high
    pairs = pd.DataFrame({"dist_im": ["r_01_01.png"], "ref_im": ["r.png"]})
    summary = labeling.label_pairs(pairs, tmp_path, tmp_path / "labels.csv", metrics=["gmsd"])
    assert len(summary.skipped) == 1 and "48x64 differs" in summary.skipped[0], summary.skipped
    assert summary.skipped[0].endswith(
        "(64x48, width x height): width and height swapped (one of them turned a quarter turn?)"
    )  # PNGs: no EXIF tag to blame (walk 42b)
    # A JPEG stored sideways with an orientation tag, which read_image applies: that file is named.
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(ref).save(tmp_path / "t_01_01.jpg", quality=95, exif=exif.tobytes())  # read as 48 wide
    pairs = pd.DataFrame({"dist_im": ["t_01_01.jpg"], "ref_im": ["r.png"]})
    summary = labeling.label_pairs(pairs, tmp_path, tmp_path / "tagged.csv", metrics=["gmsd"])
    assert f"swapped; {tmp_path / 't_01_01.jpg'} is stored sideways with an EXIF orientation tag" in summary.skipped[0]


def test_label_finds_the_references_where_distort_read_them(tmp_path, small_photo):
    """Without --resize, deepfl-distort leaves the references in its --ref_dir and records that folder; every walk
    then ran deepfl-label without --ref_root into "no reference found" (exit 3). It now reads them from the
    recorded folder, in one log line; a recorded folder that is gone falls back to --image_root as before."""
    import shutil

    from deepfl.generation import generate

    for name in ("kept", "gone"):
        refs = tmp_path / f"refs_{name}"
        refs.mkdir()
        write_image(refs / "photo.png", np.ascontiguousarray(small_photo[:48, :64]))
        assignment = tmp_path / f"types_{name}.csv"
        assignment.write_text("photo.png,16\n")  # one type, 5 levels: a second's work
        generate(refs, tmp_path / f"kadis_{name}", assignment_csv=assignment, workers=1)
    shutil.rmtree(tmp_path / "refs_gone")
    kept, gone = kr.run_batch(
        "label",
        [
            [f"--manifest={tmp_path / f'kadis_{n}' / 'manifest.csv'}", f"--image_root={tmp_path / f'kadis_{n}'}"]
            + [f"--out_dir={tmp_path / f'labels_{n}'}", "--metrics=gmsd"]
            for n in ("kept", "gone")
        ],
    )
    assert kept.returncode == 0 and "5 rows written" in kept.stdout, kept.stderr[-2000:]
    assert f"references are read from {tmp_path / 'refs_kept'} (deepfl-distort's --ref_dir" in kept.stderr
    assert gone.returncode == 3 and "--ref_root" in gone.stderr.splitlines()[-1], gone.stderr[-2000:]
    assert f"--ref_dir {tmp_path / 'refs_gone'}, recorded in" in gone.stderr and "is gone" in gone.stderr


def test_the_reference_folder_distort_recorded_is_followed_where_the_project_moved(tmp_path):
    # Session 25's walk: after `mv proj proj_moved` label warned that the recorded --ref_dir was gone and needed
    # --ref_root, though the references had moved with the project.
    import shutil

    from deepfl.generation import SETTINGS_FILE, recorded_reference_folder
    from deepfl.jobs import check_settings

    project = tmp_path / "proj"
    (project / "pristine").mkdir(parents=True)
    check_settings(project / "kadis" / SETTINGS_FILE, {"ref_dir": str(project / "pristine"), "resize": None})
    assert recorded_reference_folder(project / "kadis" / "manifest.csv") == project / "pristine"
    shutil.move(project, tmp_path / "proj_moved")
    moved = tmp_path / "proj_moved"
    assert recorded_reference_folder(moved / "kadis" / "manifest.csv") == moved / "pristine"


def test_the_pair_pipeline_runs_without_tf_data_autotuning(tmp_path, small_photo):
    """tf.data's autotuning thread sometimes slept through the iterator's cancellation, and the label job then
    waited 5-41 s at its end (one run in five on 2 busy cores); the pipeline runs without it, in manifest order."""
    from deepfl.labeling import pair_dataset

    write_image(tmp_path / "ref.png", small_photo)
    for k in range(3):
        write_image(tmp_path / f"d{k}.png", np.clip(small_photo.astype(int) + 10 * k, 0, 255).astype(np.uint8))
    dataset = pair_dataset([("ref.png", ["d0.png", "d1.png"]), ("ref.png", ["d2.png"])], tmp_path)
    assert dataset.options().autotune.enabled is False
    rows = list(dataset.as_numpy_iterator())
    assert [int(r[0]) for r in rows] == [0, 1] and [len(r[2]) for r in rows] == [2, 1]
    np.testing.assert_array_equal(rows[1][2][0], np.clip(small_photo.astype(int) + 20, 0, 255))


def test_a_slow_kernel_warm_up_says_it_is_compiling_and_a_quick_one_is_silent(
    two_size_pairs, tmp_path, monkeypatch, caplog
):
    """A machine's first label run compiles the FR metrics' Numba kernels (7-10 s on 2 cores) before its first
    batch on the NumPy forms: the job says so instead of sitting silent at 0%. Kernels already loaded say nothing,
    and a job whose sizes all run compiled graphs does not warm them up."""
    import time

    pairs, root = two_size_pairs
    labeling.warm_up_kernels(labeling.load_metric_functions(["gmsd"]))  # compiled or loaded now: quick below
    with caplog.at_level("INFO", logger="deepfl"):
        labeling.label_pairs(pairs, root, tmp_path / "quick.csv", metrics=["gmsd"], compile_from_pixel_pairs=math.inf)
    assert not [r for r in caplog.records if "kernels" in r.getMessage()]

    caplog.clear()
    warmed = []
    monkeypatch.setattr(labeling, "warm_up_kernels", lambda functions: warmed.append(1) or time.sleep(2.5))
    with caplog.at_level("INFO", logger="deepfl"):
        labeling.label_pairs(pairs, root, tmp_path / "slow.csv", metrics=["gmsd"], compile_from_pixel_pairs=math.inf)
    said = [r.getMessage() for r in caplog.records if "kernels" in r.getMessage()]
    assert len(said) == 1 and "once per installation" in said[0] and warmed == [1]  # once, not per batch

    labeling.label_pairs(pairs, root, tmp_path / "graphs.csv", metrics=["gmsd"], compile_from_pixel_pairs=0)
    assert warmed == [1]


def test_one_kernel_warm_up_covers_every_image_size(small_photo, monkeypatch):
    """Every Numba kernel of the FR metrics is called with one signature (dtype and memory layout of each argument)
    whatever the image size, downsampling factor, batch or reference sharing: the warm-up's one small pair then
    compiles all that a job will use, and a later size never stops to compile (3-4 s before the layouts were
    unified)."""
    from deepfl.fr import METRICS
    from deepfl.fr.functional.staging import compile_after
    from deepfl.fr.uncompiled import fsim_kernels, gray_kernel, saliency_kernels

    def signatures() -> dict[str, set]:  # of the kernels called from Python (the others are inlined in them)
        kernels = [
            (f"{module.__name__.rpartition('.')[2]}.{name}", getattr(module, name))
            for module in (fsim_kernels, gray_kernel, saliency_kernels)
            for name in dir(module)
        ]
        return {name: set(kernel.signatures) for name, kernel in kernels if getattr(kernel, "signatures", None)}

    functions = labeling.load_metric_functions(list(METRICS))
    monkeypatch.setattr(labeling, "_WARM_METRICS", set())  # warm up here even if an earlier test did
    labeling.warm_up_kernels(functions)
    warm = signatures()
    entry_kernels = {"fsim_kernels.pooled_sums", "saliency_kernels.pool_block_vsi", "gray_kernel._gray"}
    assert entry_kernels | {"saliency_kernels.pool_block_sr_sim", "fsim_kernels.orientation_energy"} <= set(warm)
    photo = np.tile(small_photo, (8, 8, 1))  # FSIMc and VSI downsample by 2 from 384 pixels per side
    for height, width, refs, index in ((200, 260, 1, [0]), (400, 520, 2, [0, 1, 1])):
        ref = np.stack([photo[k : k + height, k : k + width] for k in range(refs)])
        dist = np.clip(ref[index] + 6.0, 0, 255).astype(np.uint8)
        with compile_after(math.inf):
            labeling.score_batch(functions, ref, dist, np.array(index))
    assert signatures() == warm


def test_a_reference_too_small_for_a_metric_is_one_line_for_all_its_pairs(tmp_path, small_photo, caplog):
    """Five levels of a reference below MS-SSIM's 161 pixels printed the same reason five times (walk 39)."""
    root = tmp_path / "images"
    root.mkdir()
    write_image(root / "small.png", np.ascontiguousarray(small_photo[:48, :64]))
    names = [f"small_{level}.png" for level in range(1, 4)]
    for level, name in enumerate(names, start=1):
        write_image(root / name, np.clip(small_photo[:48, :64].astype(int) + 5 * level, 0, 255).astype(np.uint8))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame([(name, "small.png") for name in names], columns=["dist_im", "ref_im"]).to_csv(manifest, index=False)
    with caplog.at_level(logging.WARNING, logger="deepfl"):
        summary = labeling.label_pairs(
            labeling.read_manifest(manifest), root, tmp_path / "labels.csv", metrics=["msssim"]
        )
    assert summary.written == 0 and [entry.split(":")[0] for entry in summary.skipped] == names
    lines = [r.getMessage() for r in caplog.records if "small" in r.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("small.png: its 3 distorted images not scored (msssim: images of 64x48 pixels"), lines
    assert lines[0].endswith("): small_1.png, small_2.png and 1 more"), lines


def test_a_manifest_that_is_no_csv_is_named_in_one_whole_line(tmp_path):
    # pandas' message ends with a newline: the job's one error line lost its closing parenthesis (walk 42b).
    script = tmp_path / "mk.py"
    script.write_text("import os\nprint(1)\nx = f(a, b)\n", encoding="utf-8")
    with pytest.raises(TableError) as error:
        labeling.read_manifest(script)
    assert str(error.value) == f"{script}: not a readable CSV (Expected 1 fields in line 3, saw 2)"
