"""Append-only CSVs resume without duplicates and survive a torn last line; shards partition the work."""

import pytest

from deepfl.errors import TableError
from deepfl.jobs import AppendOnlyCsv, ErrorPolicy, JobStopped, shard


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


def test_error_policy_counts_or_stops():
    policy = ErrorPolicy("skip")
    policy.handle("x.png: corrupt")
    assert policy.count == 1 and "1 bad" in policy.summary()
    with pytest.raises(JobStopped):
        ErrorPolicy("stop").handle("y.png: corrupt")
