"""deepfl-distort under bad inputs and SIGKILLs: bad references are named and skipped (or stop the job),
broken assignment CSVs give one line naming the file and row, and a killed-and-restarted run writes the
same images and manifest, byte for byte, as an uninterrupted one."""

from __future__ import annotations

import pytest

import badinputs
import killrestart

LEVELS = 5


def _argv(ref_dir, out, *extra):
    return [f"--ref_dir={ref_dir}", f"--out_dir={out}", "--seed=3", *map(str, extra)]


def _write_refs(folder, count, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"pristine {i}.png"
        (folder / name).write_bytes(badinputs.png_bytes(badinputs.textured_image(48, 64, seed + i)))
        names.append(name)
    return names


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every bad-input invocation and the uninterrupted reference of the kill test, in one interpreter."""
    root = tmp_path_factory.mktemp("distort runs")
    corpus = root / "corpus refs"
    good = _write_refs(corpus, 2)
    items = badinputs.make_image_corpus(corpus)
    valid = badinputs.write_csv(
        root / "assignment.csv", ["ref_im", "dist_type"], [[name, str(t)] for name, t in zip(good, (1, 10))]
    )
    variants = badinputs.make_csv_variants(
        valid, root / "variants", score_column="dist_type", required=["dist_type"], file_column="ref_im"
    )
    kill_refs = root / "kill refs"
    kill_names = _write_refs(kill_refs, 6, seed=20)
    kill_assignment = badinputs.write_csv(
        root / "kill_assignment.csv",
        ["ref_im", "dist_type"],
        [[n, str(t)] for n, t in zip(kill_names, (1, 3, 10, 11, 16, 21))],
    )
    argvs = {
        "skip": _argv(corpus, root / "skip", "--on_error=skip", "--workers=1"),
        "stop": _argv(corpus, root / "stop", "--on_error=stop", "--workers=1"),
        "kill_reference": _argv(kill_refs, root / "kill_reference", f"--assignment_csv={kill_assignment}"),
        "kill_reference_again": _argv(kill_refs, root / "kill_reference_again", f"--assignment_csv={kill_assignment}"),
    }
    for item in variants:
        argvs[item.name] = _argv(corpus, root / f"out_{item.name}", f"--assignment_csv={item.path}", "--workers=1")
    results = dict(zip(argvs, killrestart.run_batch("distort", list(argvs.values()))))
    killrestart.record("distort", bad_images=len(items), bad_csvs=len(variants))
    return dict(
        root=root,
        results=results,
        items=items,
        good=good,
        variants=variants,
        kill_refs=kill_refs,
        kill_assignment=kill_assignment,
    )


def test_distort_skips_and_counts_bad_references(runs):
    result = runs["results"]["skip"]
    out = runs["root"] / "skip"
    assert result.returncode == 0, result.stderr[-2000:]
    rows = killrestart.check_csv(out / "manifest.csv", key="dist_im")
    refs_done = {r["ref_im"] for r in rows}
    skipped = 0
    for item in runs["items"]:
        name = item.path.name
        # (zero_byte.png shares its stem with zero_byte.jpg: the line that skips the .png names the .jpg too)
        messages = [
            line
            for line in result.stderr.splitlines()
            if badinputs.names_culprit(line, item.path) and f" with {name}, after which" not in line
        ]
        if item.expect == "reject" or (item.expect == "either" and name not in refs_done):
            assert name not in refs_done, item.name
            assert len(messages) == 1, f"{item.name}: {len(messages)} lines name it:\n{result.stderr[-2000:]}"
            skipped += 1
        else:
            assert name in refs_done, f"{item.name} ({item.what}) was not distorted:\n{result.stderr[-2000:]}"
    for name in runs["good"]:
        assert name in refs_done
    assert len(rows) == LEVELS * len(refs_done)
    assert killrestart.check_images(out) == LEVELS * len(refs_done)
    assert f"{skipped} bad reference{'s' if skipped != 1 else ''} skipped" in result.stdout


def test_distort_stops_at_the_first_bad_reference(runs):
    result = runs["results"]["stop"]
    assert result.returncode == 2, result.stderr[-2000:]
    line = badinputs.error_line(result.stderr)
    assert any(badinputs.names_culprit(line, item.path) for item in runs["items"]), line
    out = runs["root"] / "stop"
    rows = []
    if (out / "manifest.csv").exists():  # (a bad name found while listing stops before any output)
        rows = killrestart.check_csv(out / "manifest.csv", key="dist_im")
    assert killrestart.check_images(out) == len(rows)  # whatever was finished is whole and listed


def test_distort_assignment_csv_variants(runs):
    for item in runs["variants"]:
        result = runs["results"][item.name]
        line = badinputs.error_line(result.stderr)
        out = runs["root"] / f"out_{item.name}"
        if item.name == "csv_missing_file":
            assert result.returncode == 0 and "no_such_image.png" in result.stderr, (item.name, result.stderr[-1500:])
            killrestart.check_csv(out / "manifest.csv", key="dist_im", expected_rows=LEVELS)
        elif item.expect == "reject":
            assert result.returncode == 2, (item.name, result.stderr[-1500:])
            assert item.path.name in line, (item.name, line)
            if "row" in item.extra:
                assert f":{item.extra['row'] + 1}" in line or f"line {item.extra['row'] + 1}" in line, (item.name, line)
        elif item.expect == "accept":
            assert result.returncode == 0, (item.name, result.stderr[-1500:])
            killrestart.check_csv(out / "manifest.csv", key="dist_im", expected_rows=2 * LEVELS)
        else:
            assert result.returncode == 0 or (result.returncode == 2 and item.path.name in line), item.name
            if result.returncode == 0:
                killrestart.check_csv(out / "manifest.csv", key="dist_im", expected_rows=2 * LEVELS)


def test_distort_is_deterministic_with_all_workers(runs):
    """Two uninterrupted runs (default worker count) give the same bytes: the baseline of the kill test."""
    root = runs["root"]
    assert runs["results"]["kill_reference"].returncode == 0
    killrestart.assert_same_tree(root / "kill_reference", root / "kill_reference_again")


def test_no_distort_invocation_prints_a_traceback(runs):
    badinputs.assert_no_tracebacks(runs["results"])


def _kill_test(runs, kills, seed, out, max_delay=0.3):
    root = runs["root"]
    reference = root / "kill_reference"
    cmd = killrestart.job_command(
        "distort", *_argv(runs["kill_refs"], out, f"--assignment_csv={runs['kill_assignment']}")
    )
    report = killrestart.run_killed_to_completion(
        cmd, killrestart.count_files(out), kills=kills, seed=seed, max_delay=max_delay
    )
    killrestart.check_csv(out / "manifest.csv", key="dist_im", expected_rows=6 * LEVELS)
    assert killrestart.check_images(out) == 6 * LEVELS
    killrestart.assert_same_tree(reference, out, ignore=killrestart.is_temp)
    killrestart.record(
        "distort",
        kills=report.kills,
        starts=report.starts,
        leftover_temp_files=len(killrestart.leftover_temp_files(out)),
    )


def test_distort_killed_twice_gives_identical_outputs(runs, tmp_path):
    _kill_test(runs, kills=2, seed=0, out=tmp_path / "killed", max_delay=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_distort_killed_five_times_gives_identical_outputs(runs, tmp_path, seed):
    _kill_test(runs, kills=5, seed=seed, out=tmp_path / "killed", max_delay=0.02)
