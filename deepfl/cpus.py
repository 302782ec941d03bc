"""How many CPU cores this process may use, the one count every parallel part of deepfl sizes itself by.

`os.cpu_count()` counts the machine's cores. A cluster job usually gets a few of them through its affinity mask
(SLURM, `taskset`), and a container or a systemd unit through a CPU quota (`docker run --cpus=4`, Kubernetes' CPU
limit, `systemd-run -p CPUQuota=400%`); one worker per machine core there starts dozens of processes that share a
few cores' time. Counted here: the cores in the affinity mask, capped by the smallest cgroup quota on the way from
this process' cgroup up to the root (rounded up) where one is set.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path, PurePosixPath

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def _cgroup_paths(proc_cgroup: str) -> tuple[str | None, str | None]:
    """This process' cgroup v2 path and cgroup v1 cpu-controller path (each relative to its hierarchy's mount, or
    None where absent), from the text of /proc/self/cgroup ("0::/a/b", "4:cpu,cpuacct:/a/b")."""
    unified = cpu = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            unified = parts[2]
        elif "cpu" in parts[1].split(","):
            cpu = parts[2]
    return unified, cpu


def _ancestors(path: str | None) -> list[str]:
    """The folders from a cgroup path up to its hierarchy's root, the path itself first ("/" alone for none)."""
    current = PurePosixPath(path or "/")
    return [str(p).lstrip("/") for p in (current, *current.parents)]


def _v2_limit(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_limit(folder: Path) -> float | None:
    try:
        quota_us = int((folder / "cpu.cfs_quota_us").read_text())
        period_us = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The CPU quota of this process in cores (quota / period), the smallest set on its cgroup or any cgroup above
    it, or None where none is set or readable. cgroup v2: `cpu.max` ("max 100000" or "400000 100000") under
    `root`; cgroup v1: `cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us` under `root/cpu` (or
    `root/cpu,cpuacct`). `proc_cgroup`: the text of /proc/self/cgroup (read here when None; in a container it
    names "/", whose files are the container's own)."""
    if proc_cgroup is None:
        try:
            proc_cgroup = PROC_CGROUP.read_text()
        except OSError:
            proc_cgroup = ""
    unified, cpu = _cgroup_paths(proc_cgroup)
    limits = [_v2_limit(root / folder) for folder in _ancestors(unified)]
    for mount in ("cpu", "cpu,cpuacct"):
        limits += [_v1_limit(root / mount / folder) for folder in _ancestors(cpu)]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def count_usable_cores(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> int:
    """The cores this process may run on (its affinity mask, or the machine's count where the platform has no
    mask), at most the cgroup quota rounded up; at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(root, proc_cgroup)
    if limit is not None:
        cores = min(cores, math.ceil(limit))
    return max(1, cores)


@functools.cache
def usable_cores() -> int:
    """`count_usable_cores()` of this process, counted once."""
    return count_usable_cores()
