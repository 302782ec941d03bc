"""deepfl-label under bad inputs and SIGKILLs: one-line errors naming the culprit, skip-and-count by flag,
and a killed-and-restarted run whose label CSV is byte-identical to an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest

import badinputs
import killrestart

METRICS = "ssim,gmsd"  # two fast metrics keep the subprocess runs short; the job logic is metric-agnostic


def _label(manifest, images, refs, out, *extra):
    return killrestart.job_command(
        "label",
        f"--manifest={manifest}",
        f"--image_root={images}",
        f"--ref_root={refs}",
        f"--out_dir={out}",
        f"--metrics={METRICS}",
        *extra,
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """refs/ with two good references; images/ with 4 good distorted images and every bad image of the corpus,
    all listed in one manifest (each bad image paired with a good 48x64 reference)."""
    root = tmp_path_factory.mktemp("label corpus")  # a space in every path on purpose
    refs, images = root / "refs", root / "images"
    refs.mkdir()
    for i in range(2):
        (refs / f"ref {i}.png").write_bytes(badinputs.png_bytes(badinputs.textured_image(48, 64, i)))
    rows = []
    for i in range(2):
        for j in range(2):
            name = f"ref {i}_{j + 1:02d}_01.png"
            (images / name).parent.mkdir(parents=True, exist_ok=True)
            (images / name).write_bytes(badinputs.png_bytes(badinputs.textured_image(48, 64, 10 * i + j)))
            rows.append([name, f"ref {i}.png"])
    items = [it for it in badinputs.make_image_corpus(images) if it.name != "non_utf8_name"]
    items.append(badinputs.make_mismatched_pair(refs, images))
    for item in items:
        rows.append([item.path.name, item.ref.name if item.ref else "ref 0.png"])
    rows.append(["listed_but_absent.png", "ref 1.png"])
    # A bad reference: every pair that uses it is skipped, named.
    (refs / "broken_ref.png").write_bytes(b"")
    (images / "broken_ref_01_01.png").write_bytes(badinputs.png_bytes(badinputs.textured_image(48, 64, 99)))
    rows.append(["broken_ref_01_01.png", "broken_ref.png"])
    manifest = badinputs.write_csv(root / "manifest.csv", ["dist_im", "ref_im"], rows)
    return dict(root=root, refs=refs, images=images, items=items, manifest=manifest, good=4)


def _label_argv(manifest, images, refs, out, *extra):
    return _label(manifest, images, refs, out, *extra)[3:]


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    """Every bad-input invocation plus the uninterrupted reference run of the kill test, in one interpreter."""
    root = tmp_path_factory.mktemp("label runs")
    valid = badinputs.write_csv(
        root / "valid.csv", ["dist_im", "ref_im"], [[f"ref 0_0{j}_01.png", "ref 0.png"] for j in (1, 2)]
    )
    variants = badinputs.make_csv_variants(valid, root / "variants", required=["dist_im"], file_column="dist_im")
    non_utf8 = root / "variants" / "non_utf8_row.csv"
    non_utf8.write_bytes(b"dist_im,ref_im\n" + badinputs.NON_UTF8_STEM + b"_01_01.png,ref 0.png\n")
    variants.append(badinputs.BadInput("csv_non_utf8_name", non_utf8, "reject", "manifest row with a non-UTF-8 name"))
    kill_manifest = _kill_corpus(root / "kill")
    argvs = {
        "skip": _label_argv(corpus["manifest"], corpus["images"], corpus["refs"], root / "skip", "--on_error=skip"),
        "stop": _label_argv(
            corpus["manifest"], corpus["images"], corpus["refs"], root / "stop", "--on_error=stop", "--batch_size=1"
        ),
        "kill_reference": _label_argv(
            kill_manifest,
            root / "kill" / "images",
            root / "kill" / "refs",
            root / "kill" / "reference",
            "--batch_size=1",
            KILL_COMPILE_FROM,
        ),
    }
    for item in variants:
        argvs[item.name] = _label_argv(
            item.path, corpus["images"], corpus["refs"], root / f"out_{item.name}", "--on_error=skip"
        )
    results = dict(zip(argvs, killrestart.run_batch("label", list(argvs.values()))))
    killrestart.record("label", bad_images=len(corpus["items"]) + 2, bad_csvs=len(variants))
    return dict(root=root, results=results, variants=variants, kill_manifest=kill_manifest)


def test_label_skips_and_counts_every_bad_image(corpus, runs):
    out = runs["root"] / "skip"
    result = runs["results"]["skip"]
    assert result.returncode == 0, result.stderr[-2000:]
    rows = killrestart.check_csv(out / "labels.csv", key="dist_im")
    written = {r["dist_im"] for r in rows}
    rejected = [it for it in corpus["items"] if it.expect == "reject"] + [
        it for it in corpus["items"] if it.name == "tiny_1x1"
    ]  # 1x1 vs a 48x64 reference: wrong size
    accepted = [it for it in corpus["items"] if it.expect == "accept"]
    for item in rejected:
        assert item.path.name not in written, item.name
        warned = [line for line in result.stderr.splitlines() if item.path.name in line]
        assert len(warned) == 1, f"{item.name}: {len(warned)} messages name {item.path.name}"
    for item in accepted:
        assert item.path.name in written, f"{item.name} ({item.what}) was not labelled"
    assert "listed_but_absent.png" not in written and "listed_but_absent.png" in result.stderr
    assert "broken_ref_01_01.png" not in written and "broken_ref.png" in result.stderr
    skipped = len(rejected) + 2
    assert len(rows) == corpus["good"] + len(accepted)
    assert f"{skipped} bad pairs skipped" in result.stdout + result.stderr


def test_label_stops_at_the_first_bad_image_keeping_finished_rows(corpus, runs):
    result = runs["results"]["stop"]
    assert result.returncode == 2
    line = badinputs.error_line(result.stderr)
    assert line, result.stderr[-2000:]
    assert any(badinputs.names_culprit(line, it.path) for it in corpus["items"]) or "broken_ref" in line, line
    rows = killrestart.check_csv(runs["root"] / "stop" / "labels.csv", key="dist_im")
    assert len(rows) >= corpus["good"] - 2  # rows finished before the bad pair are kept


def test_label_manifest_variants(runs):
    """Broken manifests: a one-line error naming the file (and the column/row) and exit 2, or a clean run."""
    for item in runs["variants"]:
        result = runs["results"][item.name]
        out = runs["root"] / f"out_{item.name}"
        line = badinputs.error_line(result.stderr)
        if item.name == "csv_missing_file":
            assert result.returncode == 0 and "no_such_image.png" in result.stderr, item.name
            killrestart.check_csv(out / "labels.csv", key="dist_im", expected_rows=1)
        elif item.expect == "reject":
            assert result.returncode == 2 and item.path.name in line, (item.name, result.stderr[-1500:])
        elif item.expect == "accept":
            assert result.returncode == 0, (item.name, result.stderr[-1500:])
            killrestart.check_csv(out / "labels.csv", key="dist_im", expected_rows=2)
        else:
            assert result.returncode == 0 or (result.returncode == 2 and item.path.name in line), item.name
    missing = runs["results"]["csv_missing_column"]
    assert missing.returncode == 2 and "dist_im" in badinputs.error_line(missing.stderr)
    duplicate = runs["results"]["csv_duplicate_rows"]
    assert duplicate.returncode == 2 and "ref 0_01_01.png" in badinputs.error_line(duplicate.stderr)


# The kill test's sizes: 4 references of 48x64 (61,440 pixels x pairs: above KILL_COMPILE_FROM, so compiled
# graphs) and 2 of 56x40 (22,400: the NumPy forms), so a restart must keep both paths' bytes.
KILL_SIZES = ((48, 64),) * 4 + ((56, 40),) * 2
KILL_COMPILE_FROM = "--compile_from_pixel_pairs=50000"
KILL_ROWS = 5 * len(KILL_SIZES)


def _kill_corpus(root: Path, per_ref: int = 5) -> Path:
    (root / "refs").mkdir(parents=True)
    (root / "images").mkdir()
    rows = []
    for i, (height, width) in enumerate(KILL_SIZES):
        (root / "refs" / f"r{i}.png").write_bytes(badinputs.png_bytes(badinputs.textured_image(height, width, i)))
        for j in range(per_ref):
            name = f"r{i}_{j + 1:02d}_01.png"
            image = badinputs.textured_image(height, width, 50 + 7 * i + j)
            (root / "images" / name).write_bytes(badinputs.png_bytes(image))
            rows.append([name, f"r{i}.png"])
    return badinputs.write_csv(root / "manifest.csv", ["dist_im", "ref_im"], rows)


def test_no_label_invocation_prints_a_traceback(runs):
    badinputs.assert_no_tracebacks(runs["results"])


def _kill_test(runs, kills, seed, out, max_delay=0.5):
    root = runs["root"] / "kill"
    assert runs["results"]["kill_reference"].returncode == 0, runs["results"]["kill_reference"].stderr[-2000:]
    report = killrestart.run_killed_to_completion(
        _label(runs["kill_manifest"], root / "images", root / "refs", out, "--batch_size=1", KILL_COMPILE_FROM),
        killrestart.count_lines(out / "labels.csv"),
        kills=kills,
        seed=seed,
        max_delay=max_delay,
        timeout=600,
    )
    killrestart.check_csv(out / "labels.csv", key="dist_im", expected_rows=KILL_ROWS)
    killrestart.assert_same_tree(root / "reference", out, ignore=killrestart.is_temp)
    assert not killrestart.leftover_temp_files(out)
    killrestart.record("label", kills=report.kills, starts=report.starts)


def test_label_killed_twice_gives_identical_csv(runs, tmp_path):
    _kill_test(runs, kills=2, seed=0, out=tmp_path / "killed")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_label_killed_five_times_gives_identical_csv(runs, tmp_path, seed):
    _kill_test(runs, kills=5, seed=seed, out=tmp_path / "killed", max_delay=0.02)
