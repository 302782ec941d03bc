"""Append-only CSVs resume without duplicates and survive a torn last line; shards partition the work; progress
bars and log lines stay readable on a terminal and in a log file."""

import io
import json
import logging
import sys
import time

import pytest

from deepfl.errors import TableError
from deepfl.jobs import (
    AppendOnlyCsv,
    ErrorPolicy,
    JobStopped,
    keras_verbose,
    progress,
    read_complete_rows,
    setup_logging,
)
from deepfl.sharding import shard


def test_shards_partition_items():
    items = list(range(17))
    parts = [shard(items, 4, i) for i in range(4)]
    assert sorted(sum(parts, [])) == items
    with pytest.raises(ValueError, match="shard_index"):
        shard(items, 4, 4)


def test_append_only_csv_resumes_and_repairs(tmp_path):
    path = tmp_path / "out.csv"
    table = AppendOnlyCsv(path, ["name", "value"], key="name")
    assert table.append([{"name": "a", "value": 1}, {"name": "b", "value": 2}]) == 2
    with open(path, "a") as handle:  # a kill in the middle of a write
        handle.write("c,3")
    table = AppendOnlyCsv(path, ["name", "value"], key="name")
    assert table.done == {"a", "b"}
    assert table.append([{"name": "b", "value": 2}, {"name": "c", "value": 3}]) == 1
    assert path.read_text() == "name,value\na,1\nb,2\nc,3\n"
    with pytest.raises(TableError, match="columns"):
        AppendOnlyCsv(path, ["other"], key="other")


def test_a_finished_csv_on_a_read_only_disk_is_found_done(tmp_path, monkeypatch):
    """A rerun of a finished job whose output sits on a read-only file system failed at once ("[Errno 30]
    Read-only file system") where it had nothing left to do: its lock opened the CSV for appending."""
    import builtins
    import errno

    path = tmp_path / "out.csv"
    AppendOnlyCsv(path, ["name", "value"], key="name", lock=True).append([{"name": "a", "value": 1}])
    real_open = builtins.open

    def read_only(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+"):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only)
    table = AppendOnlyCsv(path, ["name", "value"], key="name", lock=True)
    assert "a" in table and table.append([{"name": "a", "value": 1}]) == 0  # nothing to add: nothing written
    with pytest.raises(OSError, match="Read-only file system"):
        table.append([{"name": "b", "value": 2}])
    with pytest.raises(OSError, match="Read-only file system"):  # a new output cannot be made at all
        AppendOnlyCsv(tmp_path / "new.csv", ["name"], key="name", lock=True)


def test_error_policy_counts_or_stops(caplog):
    policy = ErrorPolicy("skip")
    with caplog.at_level("WARNING", logger="deepfl"):
        policy.handle("x.png: corrupt")
        assert policy.count == 1 and "1 bad" in policy.summary()
        with pytest.raises(JobStopped, match="y.png: corrupt"):
            ErrorPolicy("stop").handle("y.png: corrupt")
    # Skipped: logged. Stopped: not logged, the script prints the exception as its one error line.
    assert [r.getMessage() for r in caplog.records] == ["x.png: corrupt"]


def test_read_complete_rows_ignores_a_torn_tail_without_touching_the_file(tmp_path):
    path = tmp_path / "shard.csv"
    content = b"key,value\na,1\nb,2\nc,"  # a writer is in the middle of row c
    path.write_bytes(content)
    rows = read_complete_rows(path, ["key", "value"])
    assert [(r["key"], r["value"]) for r in rows] == [("a", "1"), ("b", "2")]
    assert path.read_bytes() == content  # read-only: the writer's file is left as it is
    with pytest.raises(TableError, match="columns"):
        read_complete_rows(path, ["key", "score"])


def test_append_only_csv_after_a_kill_inside_the_header(tmp_path):
    path = tmp_path / "out.csv"
    path.write_bytes(b"key,val")  # killed before the header's newline
    table = AppendOnlyCsv(path, ["key", "value"], key="key")
    assert table.append([{"key": "a", "value": 1}]) == 1
    assert path.read_text() == "key,value\na,1\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _bar_with_a_warning(monkeypatch, stream: io.StringIO) -> str:
    """Draws a progress bar on `stream` (as sys.stderr), logs a warning half-way, returns what was written."""
    monkeypatch.delenv("DEEPFL_NO_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", stream)
    setup_logging()
    try:
        with progress(total=4, desc="work", unit="img", mininterval=0) as bar:
            bar.update(2)
            logging.getLogger("deepfl").warning("bad.png: skipped")
            bar.update(2)
    finally:
        logging.getLogger().handlers.clear()
    return stream.getvalue()


def test_warning_gets_its_own_line_on_a_terminal(monkeypatch):
    text = _bar_with_a_warning(monkeypatch, _Terminal())
    assert "\r" in text  # a redrawing bar
    line = next(line for line in text.split("\n") if "bad.png" in line)
    assert line.split("\r")[-1] == "WARNING bad.png: skipped"  # what the terminal shows on that line
    assert text.count("bad.png") == 1


def test_progress_in_a_log_file_is_whole_plain_lines(monkeypatch):
    text = _bar_with_a_warning(monkeypatch, io.StringIO())
    assert "\r" not in text and "\x1b" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert "WARNING bad.png: skipped" in lines
    assert any(line.startswith("work: 100%") and "4/4" in line for line in lines), lines
    assert all(len(line) <= 100 for line in lines)


def test_a_log_file_gets_the_last_line_once(monkeypatch):
    """A bar whose last update was shown (its interval had passed) drew itself again at close, with the rate a
    hair different: the final line appeared twice in every job's log."""
    monkeypatch.delenv("DEEPFL_NO_PROGRESS", raising=False)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    with progress(total=3, desc="work", unit="img", mininterval=0.01) as bar:
        for _ in range(3):
            time.sleep(0.05)
            bar.update(1)
    lines = stream.getvalue().splitlines()
    assert [line.split("|")[0] for line in lines] == ["work:   0%", "work:  33%", "work:  67%", "work: 100%"], lines


def test_nothing_to_do_draws_no_bar(monkeypatch):
    """A rerun whose work is all done prints its summary, not an empty 0/0 bar."""
    monkeypatch.delenv("DEEPFL_NO_PROGRESS", raising=False)
    for stream in (_Terminal(), io.StringIO()):
        monkeypatch.setattr(sys, "stderr", stream)
        with progress(total=0, desc="label", unit="pair", mininterval=0):
            pass
        assert stream.getvalue() == ""


def test_keras_progress_is_a_bar_on_a_terminal_and_silent_elsewhere(monkeypatch):
    monkeypatch.delenv("DEEPFL_NO_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert keras_verbose() == 0  # the job's own 'epoch N done' line stands for Keras' 600-character one
    monkeypatch.setattr(sys, "stdout", _Terminal())
    assert keras_verbose() == "auto"
    monkeypatch.setenv("DEEPFL_NO_PROGRESS", "1")
    assert keras_verbose() == 0


def test_append_only_csv_lock_refuses_a_second_writer_until_the_first_is_gone(tmp_path):
    from deepfl.errors import DeepflError

    path = tmp_path / "rows.csv"
    first = AppendOnlyCsv(path, ["k", "v"], key="k", lock=True)
    first.append([{"k": "a", "v": 1}])
    with pytest.raises(DeepflError, match="rows.csv: being written by another job"):
        AppendOnlyCsv(path, ["k", "v"], key="k", lock=True)
    del first
    second = AppendOnlyCsv(path, ["k", "v"], key="k", lock=True)
    assert "a" in second and path.read_text() == "k,v\na,1\n"


def test_a_log_file_bar_checks_the_clock_at_every_update(monkeypatch):
    """tqdm's default skips the clock between updates once it has printed, and a monitor thread then forces a
    redraw after 10 s: a log got a line with a stale rate followed at once by the real one (session-22 walk).
    With one update per check there is nothing for the monitor to force."""
    monkeypatch.delenv("DEEPFL_NO_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with progress(total=10, desc="work") as bar:
        assert bar.miniters == 1 and not bar.dynamic_miniters


def test_a_project_moved_or_copied_as_a_whole_keeps_its_settings_records(tmp_path, caplog):
    # Session 25's walk: after `mv proj proj_moved` every job refused its own finished work ("rerun with the earlier
    # flags", whose folders were gone), and --overwrite, the only way offered, discarded it.
    import shutil

    from deepfl.jobs import RECORD_FOLDER, SettingsChanged, check_settings, recorded_path

    project = tmp_path / "proj"
    (project / "pristine").mkdir(parents=True)
    (project / "out").mkdir()
    outside = tmp_path / "data"  # an input outside the project, named by absolute path, stays where it is
    outside.mkdir()

    def settings(root):
        return {"ref_dir": str(root / "pristine"), "data": str(outside), "seed": 0}

    record = project / "out" / "settings.json"
    assert not check_settings(record, settings(project))
    assert json.loads(record.read_text())[RECORD_FOLDER] == str((project / "out").resolve())
    moved = tmp_path / "elsewhere" / "proj_moved"
    moved.parent.mkdir()
    shutil.move(project, moved)
    with caplog.at_level("INFO", logger="deepfl"):
        assert check_settings(moved / "out" / "settings.json", settings(moved))  # resumes
    assert "moved or copied from" in caplog.text
    stored = json.loads((moved / "out" / "settings.json").read_text())
    assert recorded_path(moved / "out" / "settings.json", stored, "ref_dir") == str(moved / "pristine")
    assert recorded_path(moved / "out" / "settings.json", stored, "data") == str(outside)
    copy = tmp_path / "copy"
    shutil.copytree(moved, copy)
    assert check_settings(copy / "out" / "settings.json", settings(copy))
    # Still refused: another folder at another place relative to the record, another seed; the gone path is said.
    other = {**settings(copy), "ref_dir": str(copy / "elsewhere")}
    with pytest.raises(SettingsChanged, match=r"ref_dir .*/proj/pristine \(gone\) -> .*/copy/elsewhere"):
        check_settings(copy / "out" / "settings.json", other)
    with pytest.raises(SettingsChanged, match=r"seed 0 -> 1"):
        check_settings(copy / "out" / "settings.json", {**settings(copy), "seed": 1})
    # A record of an older deepfl names no folder: its paths are compared as they are.
    old = tmp_path / "old" / "settings.json"
    old.parent.mkdir()
    old.write_text(json.dumps(settings(project)))
    with pytest.raises(SettingsChanged, match="ref_dir"):
        check_settings(old, settings(tmp_path / "old"))


def test_a_model_recorded_with_its_fingerprint_is_the_same_setting_wherever_it_lies(tmp_path):
    # deepfl-reproduce records its backbone as "<path> (sha256:...)": a copy of the same file elsewhere is the same
    # model (as deepfl-export and the feature cache already judged); another file is not.
    from deepfl.fileio import describe_file
    from deepfl.jobs import SettingsChanged, check_settings

    model, copy, other = tmp_path / "a" / "m.keras", tmp_path / "b" / "m.keras", tmp_path / "b" / "n.keras"
    for path, content in ((model, b"one"), (copy, b"one"), (other, b"two")):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
    record = tmp_path / "out" / "settings.json"
    check_settings(record, {"features": describe_file(model)})
    assert check_settings(record, {"features": describe_file(copy)})
    with pytest.raises(SettingsChanged, match="features"):
        check_settings(record, {"features": describe_file(other)})


def test_an_output_saved_back_by_a_spreadsheet_resumes(tmp_path):
    # Session 25's walk: Excel's "CSV UTF-8" adds a byte-order mark; label, distort and predict then refused their
    # own outputs ("columns ['\ufeffdist_im', ...]") and advised moving them away, losing the finished rows.
    path = tmp_path / "out.csv"
    path.write_bytes(b"\xef\xbb\xbfname,value\r\na,1\r\nb,2\r\n")
    table = AppendOnlyCsv(path, ["name", "value"], key="name")
    assert table.done == {"a", "b"} and table.append([{"name": "c", "value": 3}]) == 1
    assert [row["name"] for row in read_complete_rows(path, ["name", "value"])] == ["a", "b", "c"]
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text("name;value\na;1,5\n")
    with pytest.raises(TableError, match=r"';' as separator\? save it again with ',' as separator and '\.' as deci"):
        AppendOnlyCsv(semicolons, ["name", "value"], key="name")
    # Its ';' turned into ',' by hand: the decimal commas make rows longer than the header, refused, not appended to
    semicolons.write_text("name,value\na,1,5\n")
    with pytest.raises(TableError, match=r"semicolons\.csv, line 2: 3 fields for 2 columns \(decimal commas"):
        AppendOnlyCsv(semicolons, ["name", "value"], key="name")


def test_a_folder_lock_refuses_a_second_holder_and_writes_nothing(tmp_path):
    # Session 25's walk: the same deepfl-train-multitask command in two terminals both trained, and history.csv
    # held every epoch twice (train-mlp likewise ran twice); the CSV jobs refused the second already.
    import subprocess

    from deepfl.errors import DeepflError
    from deepfl.jobs import folder_lock

    with folder_lock(tmp_path):
        with pytest.raises(DeepflError, match="being written by another job"):
            with folder_lock(tmp_path):
                pass
        other = subprocess.run(  # another process, as a second terminal would be
            [sys.executable, "-c", f"from deepfl.jobs import folder_lock\nwith folder_lock({str(tmp_path)!r}): pass"],
            capture_output=True,
            text=True,
        )
        assert other.returncode == 1 and "being written by another job" in other.stderr
    with folder_lock(tmp_path):  # released
        pass
    assert list(tmp_path.iterdir()) == []


def test_settings_left_out_at_their_defaults_are_compared_and_named_as_those(tmp_path):
    from deepfl.jobs import SettingsChanged, check_settings

    record, defaults = tmp_path / "settings.json", {"hidden": [64], "protocol": "paper"}
    assert check_settings(record, {"epochs": 2}, defaults=defaults) is False  # an older version's record
    assert check_settings(record, {"epochs": 2, "hidden": [64]}, defaults=defaults) is True  # the same head
    with pytest.raises(SettingsChanged, match=r"hidden 64 -> 8; protocol paper -> authors"):
        check_settings(record, {"epochs": 2, "hidden": [8], "protocol": "authors"}, defaults=defaults)


def test_a_changed_value_inside_a_group_of_settings_is_named_alone(tmp_path):
    # deepfl-reproduce records its head as one group: a rerun with --epochs 10 printed the whole group twice,
    # about 650 characters to hunt through for "epochs" (walk 42c).
    from deepfl.jobs import SettingsChanged, check_settings

    record = tmp_path / "settings.json"
    check_settings(record, {"head": {"epochs": 20, "batch_size": 128, "seed": 0}, "num_splits": 10})
    with pytest.raises(SettingsChanged) as refused:
        check_settings(record, {"head": {"epochs": 10, "batch_size": 128, "seed": 0}, "num_splits": 10})
    assert "other settings (head.epochs 20 -> 10)" in str(refused.value) and "batch_size" not in str(refused.value)
