"""Training batches of one image size for tables whose images have many native sizes.

A model takes one shape per batch, so images of different sizes must be batched apart. Filling each batch from a
repeated stream until `batch_size` images of one size have arrived would, with few images per size, put the same
image in a batch many times and leave others out of whole epochs. Here every pass over the table holds each row
exactly once: the rows are shuffled (seeded, a new order each pass), grouped by size, cut into batches of at most
`batch_size`, and the batches shuffled. A pass therefore has `batches_per_pass` batches (the sum over sizes of
ceil(rows of that size / batch_size)), which is the number of training steps that make one epoch.

The plan is a pure function of (sizes, batch_size, seed, pass), so a resumed job that skips the batches already
trained on sees exactly the batches an unbroken run would see next.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

Size = tuple[int, int]


def size_groups(sizes: Sequence[Size | None]) -> list[np.ndarray]:
    """Row indices of each distinct size, in row order; a row of unknown size (None: its header is unreadable,
    and the pipeline will skip or decode it) is a group of its own, since its size cannot be matched."""
    groups: dict[Size, list[int]] = {}
    alone: list[np.ndarray] = []
    for row, size in enumerate(sizes):
        if size is None:
            alone.append(np.array([row], np.int64))
        else:
            groups.setdefault((int(size[0]), int(size[1])), []).append(row)
    return [np.asarray(rows, np.int64) for rows in groups.values()] + alone


def batches_per_pass(sizes: Sequence[Size | None], batch_size: int) -> int:
    """Number of batches in one pass over rows of these sizes (the steps of one epoch)."""
    _check_batch_size(batch_size)
    return sum(math.ceil(len(rows) / batch_size) for rows in size_groups(sizes))


def pass_batches(
    sizes: Sequence[Size | None], batch_size: int, seed: int, pass_index: int, shuffle: bool = True
) -> list[np.ndarray]:
    """The batches (row indices) of pass `pass_index`: each row once, every batch of one size.

    With `shuffle`, the rows within a size and the order of the batches are drawn from (seed, pass_index);
    without, rows keep their table order and batches follow their sizes' first rows.
    """
    _check_batch_size(batch_size)
    groups = size_groups(sizes)
    rng = np.random.default_rng([int(seed), int(pass_index)]) if shuffle else None
    batches = []
    for rows in groups:
        if rng is not None:
            rows = rows[rng.permutation(len(rows))]
        batches.extend(rows[start : start + batch_size] for start in range(0, len(rows), batch_size))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def batch_stream(
    sizes: Sequence[Size | None], batch_size: int, seed: int, skip_batches: int = 0, shuffle: bool = True
) -> Iterator[tuple[np.ndarray, int]]:
    """Endless (rows, first element index) per batch, pass after pass, starting after `skip_batches` batches.

    The element index counts rows from the stream's start (pass p's rows are p * len(sizes) onwards): random
    flips are drawn from it, so they differ between passes and resume exactly.
    """
    if int(skip_batches) != skip_batches or skip_batches < 0:
        raise ValueError(f"skip_batches: must be a non-negative integer, got {skip_batches!r}")
    if not len(sizes):
        raise ValueError("sizes: is empty")
    per_pass = batches_per_pass(sizes, batch_size)
    pass_index, within = divmod(int(skip_batches), per_pass)
    while True:
        batches = pass_batches(sizes, batch_size, seed, pass_index, shuffle)
        first = pass_index * len(sizes) + sum(len(rows) for rows in batches[:within])
        for rows in batches[within:]:
            yield rows, first
            first += len(rows)
        pass_index, within = pass_index + 1, 0


def _check_batch_size(batch_size: int) -> None:
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
