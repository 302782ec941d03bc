"""How many CPU cores this process may use, the one count every parallel part of deepfl sizes itself by.

`os.cpu_count()` counts the machine's cores. A cluster job usually gets a few of them through its affinity mask
(SLURM, `taskset`), and a container through a CPU quota (`docker run --cpus=4`, Kubernetes' CPU limit); one
worker per machine core there starts dozens of processes that share a few cores' time. Counted here: the cores in
the affinity mask, capped by the cgroup quota (rounded up) where one is set.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process' cgroup in cores (quota / period), or None where none is set or readable:
    cgroup v2's `cpu.max` ("max 100000" or "400000 100000"), else cgroup v1's `cpu/cpu.cfs_quota_us` (-1: none)
    over `cpu/cpu.cfs_period_us`."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def count_usable_cores(root: Path = CGROUP_ROOT) -> int:
    """The cores this process may run on (its affinity mask, or the machine's count where the platform has no
    mask), at most the cgroup quota rounded up; at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cores = min(cores, math.ceil(limit))
    return max(1, cores)


@functools.cache
def usable_cores() -> int:
    """`count_usable_cores()` of this process, counted once."""
    return count_usable_cores()
