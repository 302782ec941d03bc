"""deepfl.data.size_batches: per-pass batching of images of many sizes (every row once per pass, one size per
batch) and its resumable stream."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepfl.data.size_batches import batch_stream, batches_per_pass, pass_batches, size_groups

# 25 rows of 5 sizes (5 each), shuffled in the table, as the CLI walk that found the old batching's fault had.
SIZES = [((40 + 8 * (i % 5)), 56) for i in range(25)]


def test_each_pass_trains_every_row_once_in_batches_of_one_size():
    for batch_size in (1, 2, 3, 64):
        per_pass = batches_per_pass(SIZES, batch_size)
        assert per_pass == 5 * -(-5 // batch_size)
        for pass_index in range(3):
            batches = pass_batches(SIZES, batch_size, seed=7, pass_index=pass_index)
            assert len(batches) == per_pass
            rows = np.concatenate(batches)
            assert sorted(rows) == list(range(25)), (batch_size, pass_index)
            for batch in batches:
                assert 1 <= len(batch) <= batch_size and len({SIZES[r] for r in batch}) == 1


def test_passes_are_seeded_and_differ():
    first = pass_batches(SIZES, 2, seed=7, pass_index=0)
    assert all(np.array_equal(a, b) for a, b in zip(first, pass_batches(SIZES, 2, seed=7, pass_index=0)))
    for other in (pass_batches(SIZES, 2, seed=7, pass_index=1), pass_batches(SIZES, 2, seed=8, pass_index=0)):
        assert any(not np.array_equal(a, b) for a, b in zip(first, other))
    ordered = pass_batches(SIZES, 2, seed=7, pass_index=3, shuffle=False)
    assert [list(b) for b in ordered[:3]] == [[0, 5], [10, 15], [20]]


def test_rows_of_unknown_size_are_batches_of_their_own():
    sizes = [(8, 8), None, (8, 8), None, (9, 8)]
    assert [list(g) for g in size_groups(sizes)] == [[0, 2], [4], [1], [3]]
    assert batches_per_pass(sizes, 4) == 4


def test_a_stream_started_after_k_batches_is_the_unbroken_stream_from_k():
    unbroken = list(itertools.islice(batch_stream(SIZES, 3, seed=2), 40))  # 10 batches a pass: four passes
    firsts = [first for _, first in unbroken]
    assert firsts[0] == 0 and firsts[10] == 25 and firsts[20] == 50
    assert all(b == a + len(rows) for (rows, a), b in zip(unbroken, firsts[1:]))
    for k in (1, 9, 10, 23):
        resumed = list(itertools.islice(batch_stream(SIZES, 3, seed=2, skip_batches=k), 40 - k))
        assert all(np.array_equal(r, u) and a == b for (r, a), (u, b) in zip(resumed, unbroken[k:])), k


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch_size: must be a positive integer, got 0"):
        batches_per_pass(SIZES, 0)
    with pytest.raises(ValueError, match="skip_batches: must be a non-negative integer, got -1"):
        next(batch_stream(SIZES, 2, 0, skip_batches=-1))
    with pytest.raises(ValueError, match="sizes: is empty"):
        next(batch_stream([], 2, 0))


def test_batches_split_across_replicas_are_topped_up_to_a_multiple_of_them():
    sizes = [(8, 8)] * 7 + [(9, 9)] * 2 + [(10, 10)]  # 7, 2 and 1 rows
    for pass_index in range(3):
        batches = pass_batches(sizes, 4, seed=1, pass_index=pass_index, multiple_of=2)
        assert sorted(len(b) for b in batches) == [2, 2, 4, 4]  # 7 -> 4 + 4 (one repeated); 2; 1 -> 2 (twice)
        assert set(np.concatenate(batches)) == set(range(10))
        assert all(len({sizes[r] for r in b}) == 1 for b in batches)
    unbroken = list(itertools.islice(batch_stream(sizes, 4, seed=1, multiple_of=2), 12))
    firsts = [first for _, first in unbroken]
    assert firsts[4] == 12 and firsts[8] == 24  # 12 elements a pass
    resumed = list(itertools.islice(batch_stream(sizes, 4, seed=1, skip_batches=5, multiple_of=2), 7))
    assert all(np.array_equal(r, u) and a == b for (r, a), (u, b) in zip(resumed, unbroken[5:]))
    with pytest.raises(ValueError, match="multiple_of: must be a positive integer, got 0"):
        pass_batches(sizes, 4, seed=1, pass_index=0, multiple_of=0)
