"""Sharding a job across processes or machines: which items are a shard's, and whether a shard finished its share.

Every sharded job (distort, label) splits its items round-robin with `shard`, and each shard notes beside its
output when it has gone through its whole share (`mark_shard_finished`), so that a merge refuses a shard still
running, stopped part-way, or made from other inputs (`check_shard_finished`) instead of writing a partial result as
if it were whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from deepfl.errors import DeepflError
from deepfl.fileio import atomic_write_bytes
from deepfl.wording import setting

T = TypeVar("T")


def shard(items: Sequence[T], num_shards: int = 1, shard_index: int = 0) -> list[T]:
    """Returns shard `shard_index` of `num_shards` (round-robin, so shards stay balanced when items are sorted)."""
    if num_shards < 1:
        raise ValueError(f"num_shards: must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index: must be in [0, {num_shards}), got {shard_index}")
    return list(items[shard_index::num_shards])


def check_one_shard_count(shard_files: Sequence[Path], name_pattern: str, num_shards: int, output: str) -> None:
    """Raises `DeepflError` when `shard_files` (the shard outputs beside this shard's) hold shards of another
    `num_shards`: `name_pattern` is a regular expression of a shard file's name with a group `count`. Shards of one
    job must share one count (each count deals the items out differently), so a shard started with another count
    would redo work that other shards did, and the merge would find its share missing."""
    counts: dict[int, str] = {}
    for path in shard_files:
        match = re.fullmatch(name_pattern, path.name)
        if match and int(match["count"]) != num_shards:
            counts.setdefault(int(match["count"]), path.name)
    if counts:
        count, example = min(counts.items())
        raise DeepflError(
            f"{output}: holds shards of {count} ({example}), not of {num_shards}: the shards of one job share one "
            f"{setting('num_shards')}; use {setting('num_shards', count)}, or a new output, or delete the other "
            "shards' files"
        )


def being_written(path: str | os.PathLike) -> bool:
    """Whether another process holds the lock of an `AppendOnlyCsv(path, lock=True)`: a job still writing it
    (False where the file is absent or the file system cannot lock)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)  # released when the handle closes
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _share_digest(share: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(share).encode("utf-8", "surrogateescape")).hexdigest()


def shard_finished_record(output: str | os.PathLike) -> Path:
    """Where a shard's job notes that it finished its share (`mark_shard_finished`): beside its output file."""
    output = Path(output)
    return output.with_name(output.name + ".finished.json")


def mark_shard_finished(output: str | os.PathLike, share: Sequence[str]) -> None:
    """Notes that the shard writing `output` went through every item of its `share` (names, in order; skipped
    bad inputs included), so that a merge can tell a finished shard from one stopped part-way."""
    record = {"items": len(share), "digest": _share_digest(share)}
    atomic_write_bytes(shard_finished_record(output), (json.dumps(record) + "\n").encode("utf-8"))


def check_shard_finished(output: str | os.PathLike, index: int, num_shards: int, share: Sequence[str] | None) -> None:
    """Raises `DeepflError` unless shard `index` of `num_shards` finished its `share` (None: any share) and no job
    is writing `output` now: a merge of a shard still running, stopped part-way, or made from another manifest or
    other references than the merge's would write an incomplete or mixed result as if it were whole."""
    output = Path(output)
    where = f"{output}: shard {index} of {num_shards}"
    if being_written(output):
        raise DeepflError(f"{where} is still being written by a running job; merge once it has finished")
    try:
        record = json.loads(shard_finished_record(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DeepflError(
            f"{where} has not finished (stopped part-way, or made by an older deepfl): rerun it with its flags, "
            "then merge"
        ) from None
    if share is not None and (not isinstance(record, dict) or record.get("digest") != _share_digest(share)):
        then = record.get("items") if isinstance(record, dict) else None
        raise DeepflError(
            f"{where} finished on another share than the merge's ({then} items then, {len(share)} now: the "
            "manifest or the references changed since): rerun it with its flags, then merge"
        )
