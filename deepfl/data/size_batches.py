"""Training batches of one image size for tables whose images have many native sizes.

A model takes one shape per batch, so images of different sizes must be batched apart. Filling each batch from a
repeated stream until `batch_size` images of one size have arrived would, with few images per size, put the same
image in a batch many times and leave others out of whole epochs. Here every pass over the table holds each row
exactly once: the rows are shuffled (seeded, a new order each pass), grouped by size, cut into batches of at most
`batch_size`, and the batches shuffled. A pass therefore has `batches_per_pass` batches (the sum over sizes of
ceil(rows of that size / batch_size)), which is the number of training steps that make one epoch.

Under a distribution strategy each batch is split across its replicas, and a replica given no image fails, so
with `multiple_of` replicas the last batch of a size is topped up to a multiple of it with the size's first
images of that pass (a few images train twice in such an epoch; none with one replica, the default).

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


def _cut(rows: np.ndarray, batch_size: int, multiple_of: int) -> list[np.ndarray]:
    """`rows` (one size) in batches of `batch_size`, the last topped up to a multiple of `multiple_of` by repeating
    the first rows."""
    batches = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    short = -len(batches[-1]) % multiple_of
    if short:
        batches[-1] = np.concatenate([batches[-1], np.resize(rows, short)])
    return batches


def pass_batches(
    sizes: Sequence[Size | None],
    batch_size: int,
    seed: int,
    pass_index: int,
    shuffle: bool = True,
    multiple_of: int = 1,
) -> list[np.ndarray]:
    """The batches (row indices) of pass `pass_index`: each row once, every batch of one size and of a length that
    is a multiple of `multiple_of` (the replicas a strategy splits it across).

    With `shuffle`, the rows within a size and the order of the batches are drawn from (seed, pass_index);
    without, rows keep their table order and batches follow their sizes' first rows.
    """
    _check_batch_size(batch_size)
    _check_batch_size(multiple_of, "multiple_of")
    rng = np.random.default_rng([int(seed), int(pass_index)]) if shuffle else None
    batches = []
    for rows in size_groups(sizes):
        if rng is not None:
            rows = rows[rng.permutation(len(rows))]
        batches.extend(_cut(rows, batch_size, multiple_of))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def batch_stream(
    sizes: Sequence[Size | None],
    batch_size: int,
    seed: int,
    skip_batches: int = 0,
    shuffle: bool = True,
    multiple_of: int = 1,
) -> Iterator[tuple[np.ndarray, int]]:
    """Endless (rows, first element index) per batch, pass after pass, starting after `skip_batches` batches.

    The element index counts the stream's elements from its start: random flips are drawn from it, so they
    differ between passes and resume exactly.
    """
    if int(skip_batches) != skip_batches or skip_batches < 0:
        raise ValueError(f"skip_batches: must be a non-negative integer, got {skip_batches!r}")
    if not len(sizes):
        raise ValueError("sizes: is empty")
    per_pass = batches_per_pass(sizes, batch_size)
    # Every pass has the same batch lengths (only their order and contents change).
    per_pass_rows = sum(len(b) for g in size_groups(sizes) for b in _cut(g, batch_size, multiple_of))
    pass_index, within = divmod(int(skip_batches), per_pass)
    while True:
        batches = pass_batches(sizes, batch_size, seed, pass_index, shuffle, multiple_of)
        first = pass_index * per_pass_rows + sum(len(rows) for rows in batches[:within])
        for rows in batches[within:]:
            yield rows, first
            first += len(rows)
        pass_index, within = pass_index + 1, 0


def _check_batch_size(value: int, name: str = "batch_size") -> None:
    if int(value) != value or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
