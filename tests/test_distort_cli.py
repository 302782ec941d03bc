"""Tests of the KADIS-style generator `deepfl-distort` (deepfl/cli/distort.py), run as a subprocess."""

import csv

import numpy as np
import pytest
from PIL import Image

import killrestart as kr

NAMES = [f"ref{i}.png" for i in range(5)]


@pytest.fixture(scope="module")
def ref_dir(tmp_path_factory, small_photo):
    folder = tmp_path_factory.mktemp("refs")
    for i, name in enumerate(NAMES):
        Image.fromarray(np.ascontiguousarray(np.roll(small_photo, 9 * i, axis=1)[:64, :80])).save(folder / name)
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def distort(*flags):
    return kr.run_job(kr.job_command("distort", *flags), timeout=300)


def rows_of(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_assignment_csv_bmp_names_manifest_and_rerun(ref_dir, tmp_path):
    assignment = tmp_path / "kadis700k_ref_imgs.csv"
    assignment.write_text("ref_im,dist_type\n" + "".join(f"{n},{t}\n" for n, t in zip(NAMES, (1, 9, 15, 19, 23))))
    out = tmp_path / "out"
    result = distort(
        f"--ref_dir={ref_dir}", f"--out_dir={out}", f"--assignment_csv={assignment}", "--format=bmp", "--workers=2"
    )
    assert result.returncode == 0, result.stderr
    rows = kr.check_csv(out / "manifest.csv", key="dist_im", expected_rows=25)
    assert list(rows[0]) == ["dist_im", "ref_im", "dist_type", "dist_level"]
    expected = {f"ref{i}_{t:02d}_{lv:02d}.bmp" for i, t in enumerate((1, 9, 15, 19, 23)) for lv in range(1, 6)}
    assert {r["dist_im"] for r in rows} == expected
    assert {p.name for p in out.glob("*.bmp")} == expected
    assert kr.check_images(out, suffixes=(".bmp",)) == 25
    before = kr.tree_digest(out)
    again = distort(f"--ref_dir={ref_dir}", f"--out_dir={out}", f"--assignment_csv={assignment}", "--format=bmp")
    assert again.returncode == 0, again.stderr
    assert kr.tree_digest(out) == before  # nothing rewritten, no duplicated rows


def test_resume_after_lost_rows_and_images_gives_same_bytes(ref_dir, tmp_path):
    out = tmp_path / "out"
    first = distort(f"--ref_dir={ref_dir}", f"--out_dir={out}", "--seed=3", "--workers=1")
    assert first.returncode == 0, first.stderr
    assert "1 bad reference skipped" in first.stdout and "broken.png" in first.stderr
    reference = kr.tree_digest(out)
    assert len(reference) == 27  # 25 images + manifest + settings
    # Simulate a kill: the manifest lost its last rows (and a torn line), two images are gone.
    lines = (out / "manifest.csv").read_text().splitlines(keepends=True)
    (out / "manifest.csv").write_text("".join(lines[:-7]) + lines[-7][:5])
    lost = sorted(out.glob("*.png"))[:2]
    for path in lost:
        path.unlink()
    second = distort(f"--ref_dir={ref_dir}", f"--out_dir={out}", "--seed=3", "--workers=2")
    assert second.returncode == 0, second.stderr
    resumed = kr.tree_digest(out)
    assert {k: v for k, v in resumed.items() if k != "manifest.csv"} == {
        k: v for k, v in reference.items() if k != "manifest.csv"
    }
    rows = kr.check_csv(out / "manifest.csv", key="dist_im", expected_rows=25)
    assert {r["dist_im"] for r in rows} == {r["dist_im"] for r in rows_of(tmp_path / "out" / "manifest.csv")}


def test_shards_partition_the_work_with_identical_bytes(ref_dir, tmp_path):
    whole = tmp_path / "whole"
    assert distort(f"--ref_dir={ref_dir}", f"--out_dir={whole}", "--seed=5").returncode == 0
    parts = tmp_path / "parts"
    for index in range(2):
        result = distort(
            f"--ref_dir={ref_dir}", f"--out_dir={parts}", "--seed=5", "--num_shards=2", f"--shard_index={index}"
        )
        assert result.returncode == 0, result.stderr
    images = {k: v for k, v in kr.tree_digest(parts).items() if k.endswith(".png")}
    assert images == {k: v for k, v in kr.tree_digest(whole).items() if k.endswith(".png")}
    shard_rows = rows_of(parts / "manifest-0-of-2.csv") + rows_of(parts / "manifest-1-of-2.csv")
    assert sorted(r["dist_im"] for r in shard_rows) == sorted(r["dist_im"] for r in rows_of(whole / "manifest.csv"))


@pytest.mark.slow
def test_kill_and_restart_finishes_without_truncation_or_duplicates(ref_dir, tmp_path):
    clean = tmp_path / "clean"
    assert distort(f"--ref_dir={ref_dir}", f"--out_dir={clean}", "--seed=7", "--workers=1").returncode == 0
    killed = tmp_path / "killed"
    cmd = kr.job_command("distort", f"--ref_dir={ref_dir}", f"--out_dir={killed}", "--seed=7", "--workers=1")
    report = kr.run_with_kills(cmd, kr.count_files(killed), kills=2, seed=1, max_delay=0.3)
    assert report.final.returncode == 0, report.final.stderr
    kr.assert_same_tree(clean, killed, ignore=lambda rel: rel.name == "manifest.csv" or kr.is_temp(rel))
    rows = kr.check_csv(killed / "manifest.csv", key="dist_im", expected_rows=25)
    assert len(rows) == 25


def test_stop_on_error_and_bad_flags_exit_2_with_one_line(ref_dir, tmp_path):
    stop = distort(f"--ref_dir={ref_dir}", f"--out_dir={tmp_path / 'o'}", "--on_error=stop", "--workers=1")
    assert stop.returncode == 2 and "broken.png" in stop.stderr.strip().splitlines()[-1]
    assert sum("broken.png" in line for line in stop.stderr.splitlines()) == 1, stop.stderr  # printed once
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("ref_im,dist_type\nref0.png,31\n")
    bad = distort(f"--ref_dir={ref_dir}", f"--out_dir={tmp_path / 'p'}", f"--assignment_csv={bad_csv}")
    assert bad.returncode == 2 and "bad.csv:2" in bad.stderr


def test_png_compression_changes_file_sizes_not_pixels(ref_dir, tmp_path):
    outs = {}
    for level in (0, 1):
        out = tmp_path / f"png{level}"
        result = distort(
            f"--ref_dir={ref_dir}", f"--out_dir={out}", "--seed=2", "--workers=1", f"--png_compression={level}"
        )
        assert result.returncode == 0, result.stderr
        outs[level] = out
    names = sorted(p.name for p in outs[1].glob("*.png"))
    assert len(names) == 25
    for name in names:
        stored, packed = (np.asarray(Image.open(outs[lv] / name)) for lv in (0, 1))
        np.testing.assert_array_equal(stored, packed)
    size = {lv: sum(p.stat().st_size for p in outs[lv].glob("*.png")) for lv in (0, 1)}
    assert size[1] < 0.9 * size[0]
    bad = distort(f"--ref_dir={ref_dir}", f"--out_dir={tmp_path / 'bad'}", "--png_compression=12")
    assert bad.returncode != 0 and "png_compression" in bad.stderr


def warnings_of(stderr):
    return [line for line in stderr.splitlines() if line.startswith("WARNING ")]


def test_small_references_get_one_warning_line(ref_dir, tmp_path):
    result = distort(f"--ref_dir={ref_dir}", f"--out_dir={tmp_path / 'out'}", "--workers=1")
    assert result.returncode == 0, result.stderr
    small = [line for line in warnings_of(result.stderr) if "minimum" in line]
    assert small == [small[0]] and small[0].startswith("WARNING 5 reference(s) are below the 161-pixel minimum")
    assert "msssim" in small[0] and "80x64" in small[0]


def test_resize_writes_the_references_the_manifest_names(ref_dir, tmp_path):
    out = tmp_path / "out"
    result = distort(f"--ref_dir={ref_dir}", f"--out_dir={out}", "--resize", "--workers=2")
    assert result.returncode == 0, result.stderr
    enlarged = [line for line in warnings_of(result.stderr) if "enlarged" in line]
    assert len(enlarged) == 1 and "5 reference(s)" in enlarged[0] and "80x64, width x height" in enlarged[0]
    assert not [line for line in warnings_of(result.stderr) if "minimum" in line]
    rows = kr.check_csv(out / "manifest.csv", key="dist_im", expected_rows=25)
    assert {r["ref_im"] for r in rows} == {f"references/ref{i}.png" for i in range(5)}
    for row in rows:
        ref, dist = Image.open(out / row["ref_im"]), Image.open(out / row["dist_im"])
        assert ref.size == dist.size == (512, 384)
    before = kr.tree_digest(out)
    (out / "references" / "ref2.png").unlink()  # a kill before the reference was written: the rerun restores it
    again = distort(f"--ref_dir={ref_dir}", f"--out_dir={out}", "--resize", "--workers=1")
    assert again.returncode == 0, again.stderr
    assert kr.tree_digest(out) == before


def test_changed_settings_are_refused_until_overwrite(ref_dir, tmp_path):
    out = tmp_path / "out"
    assert distort(f"--ref_dir={ref_dir}", f"--out_dir={out}", "--seed=0", "--workers=1").returncode == 0
    first = kr.tree_digest(out)
    changed = distort(f"--ref_dir={ref_dir}", f"--out_dir={out}", "--seed=1", "--workers=1")
    assert changed.returncode == 2
    error = [line for line in changed.stderr.splitlines() if line.startswith("error")]
    assert len(error) == 1 and "seed 0 -> 1" in error[0] and "--overwrite" in error[0], changed.stderr
    assert kr.tree_digest(out) == first
    relative = distort(f"--ref_dir={kr.os.path.relpath(ref_dir, kr.REPO_ROOT)}", f"--out_dir={out}", "--seed=0")
    assert relative.returncode == 0, relative.stderr  # the same folder, named another way: a resume
    assert kr.tree_digest(out) == first
    again = distort(f"--ref_dir={ref_dir}", f"--out_dir={out}", "--seed=1", "--workers=1", "--overwrite")
    assert again.returncode == 0, again.stderr
    fresh = distort(f"--ref_dir={ref_dir}", f"--out_dir={tmp_path / 'fresh'}", "--seed=1", "--workers=1")
    assert fresh.returncode == 0, fresh.stderr
    kr.assert_same_tree(tmp_path / "fresh", out)  # nothing of the seed-0 run is left


def test_a_lost_settings_record_is_not_replaced_by_a_refused_run(ref_dir, tmp_path):
    # Session 25's walk: with distort_settings.json deleted, a run with another seed was refused (its types differ
    # from the manifest's) but had already stored its seed as the record, so the right command was refused next.
    out = tmp_path / "out"
    assert distort(f"--ref_dir={ref_dir}", f"--out_dir={out}", "--seed=0", "--workers=1").returncode == 0
    (out / "distort_settings.json").unlink()
    other = distort(f"--ref_dir={ref_dir}", f"--out_dir={out}", "--seed=5", "--workers=1")
    assert other.returncode == 2 and "(drawn with another --seed?)" in other.stderr, other.stderr
    assert not (out / "distort_settings.json").exists()
    right = distort(f"--ref_dir={ref_dir}", f"--out_dir={out}", "--seed=0", "--workers=1")
    assert right.returncode == 0 and "references already done" in right.stdout, right.stderr


def test_merge_joins_shard_manifests_like_an_unsharded_run(ref_dir, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert distort(f"--ref_dir={ref_dir}", f"--out_dir={whole}", "--seed=5", "--workers=1").returncode == 0
    for index in range(3):
        result = distort(
            f"--ref_dir={ref_dir}",
            f"--out_dir={parts}",
            "--seed=5",
            "--num_shards=3",
            f"--shard_index={index}",
            "--workers=1",
        )
        assert result.returncode == 0, result.stderr
    merged = distort(f"--ref_dir={ref_dir}", f"--out_dir={parts}", "--seed=5", "--num_shards=3", "--merge")
    assert merged.returncode == 0, merged.stderr
    assert "25 rows, 5 expected images without a row (first: broken_" in merged.stdout  # broken.png has none
    assert (parts / "manifest.csv").read_bytes() == (whole / "manifest.csv").read_bytes()
    # A shard started with another --num_shards redid its share of other shards' work, and the merge then missed it.
    recount = distort(f"--ref_dir={ref_dir}", f"--out_dir={parts}", "--seed=5", "--num_shards=2", "--shard_index=0")
    assert recount.returncode == 2 and not (parts / "manifest-0-of-2.csv").exists(), recount.stderr
    assert "holds shards of 3 (manifest-0-of-3.csv), not of 2" in recount.stderr.splitlines()[-1], recount.stderr
    unmerged = distort(f"--ref_dir={ref_dir}", f"--out_dir={tmp_path / 'none'}", "--num_shards=2", "--merge")
    assert unmerged.returncode == 2 and "manifest-0-of-2.csv" in unmerged.stderr
    # A shard stopped part-way (its record of finishing absent) was merged with exit 0 (user walk, session 26).
    (parts / "manifest-2-of-3.csv.finished.json").unlink()
    stopped = distort(f"--ref_dir={ref_dir}", f"--out_dir={parts}", "--seed=5", "--num_shards=3", "--merge")
    assert stopped.returncode == 2 and "shard 2 of 3 has not finished" in stopped.stderr, stopped.stderr
    # A merge with another --seed than the shards' reported every image missing, exit 0 (the same walk).
    other_seed = distort(f"--ref_dir={ref_dir}", f"--out_dir={parts}", "--seed=6", "--num_shards=3", "--merge")
    assert other_seed.returncode == 2 and "seed 5 -> 6" in other_seed.stderr, other_seed.stderr
    # A shard's command line turned into the merge's kept its --shard_index, which the merge ignored (session 27).
    stray = distort(f"--ref_dir={ref_dir}", f"--out_dir={parts}", "--num_shards=3", "--shard_index=2", "--merge")
    assert stray.returncode == 2 and "drop --shard_index to merge" in stray.stderr.splitlines()[-1], stray.stderr


def test_an_assignment_csv_may_name_the_types(ref_dir, tmp_path):
    """distort() takes type names; the assignment CSV refused them ("'gaussian_blur' is not an integer")."""
    assignment = tmp_path / "assignment.csv"
    assignment.write_text("ref_im,dist_type\nref0.png,gaussian_blur\nref1.png,Lens Blur\nref2.png,3\n")
    result = distort(f"--ref_dir={ref_dir}", f"--out_dir={tmp_path / 'out'}", f"--assignment_csv={assignment}")
    assert result.returncode == 0, result.stderr
    rows = rows_of(tmp_path / "out" / "manifest.csv")
    assert {(r["ref_im"], r["dist_type"]) for r in rows} == {("ref0.png", "1"), ("ref1.png", "2"), ("ref2.png", "3")}
    assignment.write_text("ref_im,dist_type\nref0.png,gausian blur\n")
    wrong = distort(f"--ref_dir={ref_dir}", f"--out_dir={tmp_path / 'wrong'}", f"--assignment_csv={assignment}")
    assert wrong.returncode == 2 and "assignment.csv:2: distortion type 'gausian blur' is neither an id" in wrong.stderr


def test_shards_given_one_manifest_path_write_their_own_and_merge_into_it(ref_dir, tmp_path):
    """A user walk gave both shards `--manifest km/mine.csv`: both appended to that one file, its record of
    finishing said 1 item, and --merge (with or without --manifest) said "manifest-0-of-2.csv: shard 0 of 2 has
    no manifest yet". Each shard now writes mine-<k>-of-<n>.csv, which --merge --manifest mine.csv joins."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert distort(f"--ref_dir={ref_dir}", f"--out_dir={whole}", "--seed=5", "--workers=1").returncode == 0
    mine = parts / "mine.csv"
    common = [f"--ref_dir={ref_dir}", f"--out_dir={parts}", "--seed=5", "--num_shards=2", f"--manifest={mine}"]
    for index in range(2):
        result = distort(*common, f"--shard_index={index}", "--workers=1")
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in parts.glob("mine*.csv")) == ["mine-0-of-2.csv", "mine-1-of-2.csv"]
    lost = distort(*common[:-1], "--merge")  # without the shards' --manifest: the merge points to it
    assert lost.returncode == 2 and f"merge with --manifest={mine}, the --manifest the shards" in lost.stderr
    # another count than the shards': "shard 0 of 3 has no manifest yet" only (a walk of session 36)
    recount = distort(*[f for f in common if not f.startswith("--num_shards")], "--num_shards=3", "--merge")
    last = recount.stderr.strip().splitlines()[-1]
    assert recount.returncode == 2 and "made with --num_shards=2: merge with that --num_shards" in last, last
    merged = distort(*common, "--merge")
    assert merged.returncode == 0, merged.stderr
    assert mine.read_bytes() == (whole / "manifest.csv").read_bytes()


def test_references_sharing_a_name_stem_are_skipped_as_bad_references(ref_dir, tmp_path, small_photo):
    # plain.bmp and Plain.tif would both write plain_TT_LL.png (and references/plain.png with --resize).
    folder = tmp_path / "same_stem"
    folder.mkdir()
    Image.fromarray(np.ascontiguousarray(small_photo[:64, :80])).save(folder / "plain.bmp")
    Image.fromarray(np.ascontiguousarray(small_photo[:64, 8:88])).save(folder / "Plain.tif")
    out = tmp_path / "out"
    result = distort(f"--ref_dir={folder}", f"--out_dir={out}", "--resize", "--workers=1")
    named = [line for line in result.stderr.splitlines() if "shares the name stem" in line]
    assert result.returncode == 0 and len(named) == 1, result.stderr
    assert "plain.bmp" in named[0] and "Plain.tif" in named[0] and "rename" in named[0], named
    rows = rows_of(out / "manifest.csv")  # the first in name order (Plain.tif) only
    assert len(rows) == 5 and {r["ref_im"] for r in rows} == {"references/Plain.png"}
    assignment = tmp_path / "assignment.csv"
    assignment.write_text("ref_im,dist_type\nref0.png,1\nref0.png,2\nsub/ref0.jpg,2\n")
    stop = distort(f"--ref_dir={ref_dir}", f"--out_dir={out}2", f"--assignment_csv={assignment}", "--on_error=stop")
    last = stop.stderr.strip().splitlines()[-1]
    assert stop.returncode == 2 and "sub/ref0.jpg" in last and "ref0.png" in last, last


def test_distortions_that_change_nothing_are_named_in_one_warning(tmp_path):
    # A black reference: darkening (type 17) leaves it black at every level, so its labels would say "identical".
    folder = tmp_path / "flat"
    folder.mkdir()
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(folder / "black.png")
    assignment = tmp_path / "assignment.csv"
    assignment.write_text("ref_im,dist_type\nblack.png,17\n")
    result = distort(f"--ref_dir={folder}", f"--out_dir={tmp_path / 'out'}", f"--assignment_csv={assignment}")
    named = [line for line in warnings_of(result.stderr) if "unchanged at all 5 levels" in line]
    assert result.returncode == 0 and len(named) == 1, result.stderr
    assert "1 reference(s)" in named[0] and "e.g. black.png, type 17 darken" in named[0], named
    # A reference only some levels leave as it is (darkening a grey of 5 at level 1) is not named: a type's first
    # level can be that mild on photos too.
    dim = tmp_path / "dim"
    dim.mkdir()
    Image.fromarray(np.full((64, 80, 3), 5, np.uint8)).save(dim / "dim.png")
    assignment.write_text("ref_im,dist_type\ndim.png,17\n")
    mild = distort(f"--ref_dir={dim}", f"--out_dir={tmp_path / 'mild'}", f"--assignment_csv={assignment}")
    assert mild.returncode == 0 and "unchanged" not in mild.stderr, mild.stderr


def test_resize_names_references_it_crops_to_a_sliver(tmp_path, small_photo):
    folder = tmp_path / "panorama"
    folder.mkdir()
    Image.fromarray(np.ascontiguousarray(np.tile(small_photo[:60], (1, 8, 1))[:, :700])).save(folder / "pano.png")
    result = distort(f"--ref_dir={folder}", f"--out_dir={tmp_path / 'out'}", "--resize", "--workers=1")
    cropped = [line for line in warnings_of(result.stderr) if "kept less than" in line]
    assert result.returncode == 0 and len(cropped) == 1, result.stderr
    assert "pano.png, 700x60, width x height: its centre 11%" in cropped[0], cropped


def test_an_assignment_edited_in_place_is_refused_where_it_changes_a_finished_type(ref_dir, tmp_path):
    # Same --assignment_csv path (the stored setting), other content: resuming would pair ref0.png with two types.
    assignment = tmp_path / "assignment.csv"
    assignment.write_text("ref_im,dist_type\nref0.png,17\n")
    out = tmp_path / "out"
    flags = (f"--ref_dir={ref_dir}", f"--out_dir={out}", f"--assignment_csv={assignment}", "--workers=1")
    assert distort(*flags).returncode == 0
    assignment.write_text("ref_im,dist_type\nref0.png,18\n")
    edited = distort(*flags)
    last = edited.stderr.strip().splitlines()[-1]
    assert edited.returncode == 2 and "ref0.png was distorted with type 17" in last and "--overwrite" in last, last
    assert len(rows_of(out / "manifest.csv")) == 5
    assignment.write_text("ref_im,dist_type\nref0.png,17\nref0.png,18\nref1.png,3\n")  # added work is fine
    added = distort(*flags)
    assert added.returncode == 0, added.stderr[-2000:]
    assert {(r["ref_im"], r["dist_type"]) for r in rows_of(out / "manifest.csv")} == {
        ("ref0.png", "17"),
        ("ref0.png", "18"),
        ("ref1.png", "3"),
    }
    assert distort(*flags[:-1], "--overwrite").returncode == 0


def test_a_reference_with_several_types_is_counted_as_assignments(ref_dir, tmp_path):
    """The demo's assignment gives each crop 5 types: the counts are (reference, type) assignments, not
    references (15 'references' for 3 photos, before)."""
    assignment = tmp_path / "assignment.csv"
    assignment.write_text("ref_im,dist_type\nref0.png,1\nref0.png,2\nref1.png,3\n")
    flags = (f"--ref_dir={ref_dir}", f"--out_dir={tmp_path / 'out'}", f"--assignment_csv={assignment}", "--workers=1")
    first = distort(*flags)
    assert first.returncode == 0, first.stderr
    assert "2 references in 3 (reference, type) assignments (0 already done), 15 distorted images" in first.stderr
    assert "15 manifest rows written, 0 assignments already done, 0 bad assignments skipped" in first.stdout
    again = distort(*flags)
    assert "15 distorted" not in again.stderr and "0 manifest rows written, 3 assignments already done" in again.stdout


def test_a_worker_process_names_the_flag_not_the_argument(small_photo, tmp_path):
    # deepfl-distort's workers are processes of their own: the message they send back still names --resize.
    refs = tmp_path / "refs"
    refs.mkdir()
    Image.fromarray(np.ascontiguousarray(small_photo[:64, :80])).save(refs / "fine.png")
    Image.fromarray(np.ascontiguousarray(small_photo[:40, :40])).save(refs / "tiny.png")
    result = distort(f"--ref_dir={refs}", f"--out_dir={tmp_path / 'out'}", "--workers=2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tiny.png: 40x40 pixels (width x height), below the distortions' minimum of 48x48" in result.stderr
    assert "with or without --resize (enlarged that much" in result.stderr, result.stderr[-2000:]
    # --resize does not take it either: a 1x1 reference became a flat 512x384 one with 5 equal levels (session 44).
    Image.fromarray(np.ascontiguousarray(small_photo[:1, :1])).save(refs / "dot.png")
    resized = distort(f"--ref_dir={refs}", f"--out_dir={tmp_path / 'resized'}", "--workers=2", "--resize")
    assert resized.returncode == 0, resized.stderr[-2000:]
    assert "dot.png: 1x1 pixels (width x height), below the distortions' minimum" in resized.stderr
    assert "tiny.png: 40x40 pixels" in resized.stderr
    assert "2 bad references skipped" in resized.stdout, resized.stdout


def test_a_slow_kernel_warm_up_says_it_is_compiling_and_a_quick_one_is_silent(ref_dir, tmp_path, monkeypatch, caplog):
    """The first use on a machine compiles the kernels before the progress bar starts (about 20 s): the job says
    so instead of sitting silent. Loading them from the cache (here: already in this process) says nothing."""
    import time

    from deepfl import generation

    generation.warm_up()  # compiled or loaded now: the job's own warm-up below is quick
    with caplog.at_level("INFO", logger="deepfl"):
        generation.generate(ref_dir, tmp_path / "quick", workers=1)
    assert not [r for r in caplog.records if "compiling the distortion" in r.getMessage()]

    caplog.clear()
    monkeypatch.setattr(generation, "warm_up", lambda: time.sleep(2.5))  # as long as a first compilation
    with caplog.at_level("INFO", logger="deepfl"):
        generation.generate(ref_dir, tmp_path / "slow", workers=1)
    said = [r.getMessage() for r in caplog.records if "compiling the distortion" in r.getMessage()]
    assert len(said) == 1 and "once per installation" in said[0]


def test_said_if_slow_speaks_once_after_its_delay_and_never_for_a_quick_block(caplog):
    import time

    from deepfl._numba import said_if_slow

    with caplog.at_level("INFO", logger="deepfl"):
        with said_if_slow("slow block", after_s=0.05):
            time.sleep(0.4)
        with said_if_slow("quick block", after_s=0.3):
            pass
        time.sleep(0.5)  # past the quick block's delay: its timer was cancelled
    assert [r.getMessage() for r in caplog.records] == ["slow block"]
