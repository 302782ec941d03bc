"""The cores a job sizes its workers by: the affinity mask (a cluster's job, taskset), capped by a container's CPU
quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`), never the machine's whole count when either is smaller."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deepfl.cpus import cgroup_cpu_limit, count_usable_cores
from killrestart import job_env


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    "files, limit",
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "400000 100000\n"}, 4.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu.max": "garbage\n"}, None),
        ({}, None),
    ],
    ids=["v2-none", "v2-1.5", "v2-4", "v1-none", "v1-2", "unreadable", "no-cgroup"],
)
def test_the_cgroup_quota_is_read_in_cores(tmp_path, files, limit):
    for name, text in files.items():
        write(tmp_path / name, text)
    assert cgroup_cpu_limit(tmp_path, proc_cgroup="0::/\n") == limit


def test_the_quota_of_this_process_cgroup_or_one_above_it_counts(tmp_path):
    """Outside a container the process' own cgroup sits below the root (a systemd unit, a slice): its quota, or
    a smaller one of a cgroup above it, applies; one of a sibling does not."""
    write(tmp_path / "cpu.max", "max 100000\n")
    write(tmp_path / "user.slice/cpu.max", "600000 100000\n")
    write(tmp_path / "user.slice/job.scope/cpu.max", "max 100000\n")
    write(tmp_path / "user.slice/other.scope/cpu.max", "100000 100000\n")
    assert cgroup_cpu_limit(tmp_path, proc_cgroup="0::/user.slice/job.scope\n") == 6.0
    write(tmp_path / "user.slice/job.scope/cpu.max", "250000 100000\n")
    assert cgroup_cpu_limit(tmp_path, proc_cgroup="0::/user.slice/job.scope\n") == 2.5
    v1 = "12:pids:/x\n4:cpu,cpuacct:/slurm/job_7\n"
    write(tmp_path / "v1/cpu,cpuacct/slurm/job_7/cpu.cfs_quota_us", "300000\n")
    write(tmp_path / "v1/cpu,cpuacct/slurm/job_7/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path / "v1", proc_cgroup=v1) == 3.0
    assert cgroup_cpu_limit(tmp_path / "v1", proc_cgroup="4:cpu,cpuacct:/slurm/job_8\n") is None


def test_usable_cores_are_the_affinity_mask_capped_by_the_quota_rounded_up(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert count_usable_cores(tmp_path, "0::/\n") == 64  # no quota
    write(tmp_path / "cpu.max", "150000 100000\n")
    assert count_usable_cores(tmp_path, "0::/\n") == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert count_usable_cores(tmp_path, "0::/\n") == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity masks on this platform")
def test_a_process_pinned_to_one_core_sizes_its_workers_by_it():
    """Where this machine has more than one core, `taskset`-like pinning to one must give one worker everywhere:
    deepfl-distort's processes, the decoding threads, the FR metrics' threads and tf.data's parallel calls."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores to pin to one")
    program = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from deepfl.cpus import usable_cores\n"
        "from deepfl.fr.uncompiled.threads import WORKERS\n"
        "from deepfl.data.pipeline import PARALLEL_CALLS\n"
        "print(usable_cores(), WORKERS, PARALLEL_CALLS, os.cpu_count())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], env=job_env(), capture_output=True, text=True, timeout=300, check=True
    ).stdout.split()
    assert out[:3] == ["1", "1", "1"] and int(out[3]) >= 2, out
