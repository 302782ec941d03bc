"""Kills leave no litter: a restarted job removes the temporary files of its own dead runs, and only those.

`deepfl.fileio.atomic_output` names each temporary file after the writing host and process; a job's start
(`deepfl.cli.app.run_app`) removes those under --out_dir whose process is gone, never the files of a live
process (a concurrent shard writing into the same folder) or of another host (a shared file system).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import killrestart as kr
from deepfl import fileio


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def temp_name(target: str, host: str, pid: int, suffix: str = ".tmp") -> str:
    return f".{target}.{host}-{pid}.abc123{suffix}"


def test_atomic_output_names_its_temporary_file_after_host_and_process(tmp_path):
    with fileio.atomic_output(tmp_path / "a.png") as tmp:
        match = fileio._TEMP_NAME.match(tmp.name)
        assert match is not None, tmp.name
        assert int(match["pid"]) == os.getpid()
        tmp.write_bytes(b"x")
    assert (tmp_path / "a.png").read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_only_dead_processes_files_of_this_host_are_removed(tmp_path):
    host = fileio._HOST
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        sub = tmp_path / "sub" / "deeper"
        sub.mkdir(parents=True)
        stale = [
            tmp_path / temp_name("a.png", host, dead_pid()),
            sub / temp_name("b.keras", host, dead_pid(), ".tmp.keras"),
            sub / temp_name("c.h5", host, dead_pid(), ".tmp.weights.h5"),
        ]
        kept = [
            tmp_path / temp_name("d.png", host, live.pid),  # a live shard's file
            tmp_path / temp_name("e.png", host, os.getpid()),  # our own
            tmp_path / temp_name("f.png", "otherhost", dead_pid()),  # another machine's
            tmp_path / ".g.png.tmp",  # not one of our temporary names
            tmp_path / "h.png",
        ]
        for path in stale + kept:
            path.write_bytes(b"x")
        assert fileio.remove_stale_temp_files(tmp_path) == len(stale)
        assert not any(p.exists() for p in stale)
        assert all(p.exists() for p in kept)
    finally:
        live.kill()
        live.wait()


def test_a_cluster_worker_removes_the_folders_its_killed_runs_left(tmp_path, monkeypatch):
    """A SIGKILLed non-chief worker of a multi-worker run left its folder in $TMPDIR, checkpoints included
    (gigabytes at the paper's size, once per kill; cluster walk, session 40). Its name now carries host and pid,
    and the next worker on the host removes the dead ones' folders, never a live process's or another host's."""
    import tempfile

    from deepfl.training import job

    host = fileio._HOST
    prefix = fileio.WORKER_FOLDER_PREFIX
    stale = [tmp_path / f"{prefix}{host}-{dead_pid()}-a1b2c3d4", tmp_path / f"{prefix}{host}-{dead_pid()}-zz_9"]
    kept = [
        tmp_path / f"{prefix}{host}-{os.getpid()}-q1w2e3r4",  # a live worker's
        tmp_path / f"{prefix}otherhost-{dead_pid()}-a1b2c3d4",  # another machine's
        tmp_path / f"{prefix}x8k2m1p0",  # an earlier version's name (no host or pid): left alone
    ]
    for folder in stale + kept:
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "state.json").write_text("{}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with job._own_folder(tmp_path / "out", chief=False) as own:
        assert own.name.startswith(fileio.worker_folder_prefix()) and own.is_dir()
        assert not any(folder.exists() for folder in stale)
        assert all(folder.exists() for folder in kept)
    assert not own.exists()


def test_restarted_distort_removes_its_killed_runs_temp_files_not_a_live_shards(tmp_path, small_photo):
    refs = tmp_path / "refs"
    refs.mkdir()
    for i in range(6):
        Image.fromarray(np.ascontiguousarray(np.roll(small_photo, 7 * i, axis=1)[:64, :80])).save(refs / f"r{i}.png")
    out = tmp_path / "kadis"
    cmd = kr.job_command("distort", "--ref_dir", str(refs), "--out_dir", str(out), "--workers", "2")
    # A real kill mid-run (its temporary files, if any, are those of dead processes) ...
    proc = subprocess.Popen(
        cmd,
        env=kr.job_env(),
        cwd=kr.REPO_ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list(out.rglob("*.png")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # ... plus leftovers planted for certain: a dead run's file and a live shard's file.
    out.mkdir(exist_ok=True)
    planted_dead = out / temp_name("x_01.png", fileio._HOST, dead_pid())
    planted_dead.write_bytes(b"half")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        planted_live = out / temp_name("y_01.png", fileio._HOST, live.pid)
        planted_live.write_bytes(b"in progress")
        result = kr.run_job(cmd, timeout=300)
        assert result.returncode == 0, result.stderr
        leftovers = sorted(p.name for p in out.rglob(".*") if kr.is_temp(p))
        assert leftovers == [planted_live.name]
    finally:
        live.kill()
        live.wait()


def test_a_killed_process_not_yet_reaped_counts_as_dead(tmp_path):
    """Right after a SIGKILL the workers of a killed job can linger as zombies; their files are stale too."""
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{zombie.pid}/stat").exists():
        if Path(f"/proc/{zombie.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
            break
        time.sleep(0.05)
    try:
        stale = tmp_path / temp_name("z.png", fileio._HOST, zombie.pid)
        stale.write_bytes(b"x")
        assert fileio.remove_stale_temp_files(tmp_path) == 1
        assert not stale.exists()
    finally:
        zombie.wait()
