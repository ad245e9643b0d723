"""time_sort.TimeOrderedSort gives the external sorter's order, whatever the runs."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from msqcore.engine.frames import MULTI_VALUE_METADATA, read_frames_file
from msqcore.engine.sorter import ExternalSorter
from msqcore.engine.time_sort import TimeOrderedSort

ORDER = ["__time", "s", "tags", "x"]


def _batch(rng: np.random.Generator, n: int) -> pa.Table:
    strings = np.array(["b", "a", None, "", "é", "ab"], dtype=object)
    x = rng.integers(-3, 3, n).astype(float)
    x[rng.random(n) < 0.1] = np.nan
    x[rng.random(n) < 0.1] = -0.0
    tags = [None if rng.random() < .2 else [str(v) for v in rng.choice(list("xyz"), rng.integers(0, 3))]
            for _ in range(n)]
    schema = pa.schema([("__time", pa.int64()), ("s", pa.string()), ("x", pa.float64()),
                        pa.field("tags", pa.list_(pa.string()), metadata=MULTI_VALUE_METADATA)])
    return pa.table([pa.array(rng.integers(0, 40, n)), pa.array(strings[rng.integers(0, 6, n)], pa.string()),
                     pa.array(x), pa.array(tags, pa.list_(pa.string()))], schema=schema)


def _keys(table: pa.Table) -> list[tuple]:
    return [tuple(repr(v) for v in row.values()) for row in table.select(ORDER).to_pylist()]


@pytest.mark.parametrize("rows_in_memory", [1, 7, 60, 10_000])
def test_same_order_as_the_external_sorter(tmp_path, rows_in_memory):
    rng = np.random.default_rng(rows_in_memory)
    ours = TimeOrderedSort(ORDER, str(tmp_path), rows_in_memory, 1 << 30)
    theirs = ExternalSorter([(c, False) for c in ORDER], str(tmp_path), rows_in_memory=rows_in_memory)
    try:
        for _ in range(6):
            batch = _batch(rng, 41)
            ours.add(batch)
            theirs.add(batch)
        out = list(ours.sorted_tables(rows_per_table=50))
        assert all(t.num_rows <= 50 for t in out)
        expected = pa.Table.from_batches(list(read_frames_file(theirs.finish()[0])))
        assert _keys(pa.concat_tables(out)) == _keys(expected)
    finally:
        ours.close()
        theirs.close()


def test_runs_that_disagree_on_multi_value_strings(tmp_path):
    """A listDelimiter column: plain strings in one run, lists in another."""
    sort = TimeOrderedSort(["__time", "t"], str(tmp_path), 2, 1 << 30)
    try:
        sort.add(pa.table({"__time": [5, 1], "t": ["a", "b"]}))
        sort.add(pa.table({"__time": [3, 1], "t": pa.array([["x", "y"], ["a"]])}))
        out = list(sort.sorted_tables(rows_per_table=3))
        assert {t.schema.field("t").type for t in out} == {pa.list_(pa.string())}
        assert pa.concat_tables(out).to_pylist() == [
            {"__time": 1, "t": ["a"]}, {"__time": 1, "t": ["b"]}, {"__time": 3, "t": ["x", "y"]},
            {"__time": 5, "t": ["a"]}]
    finally:
        sort.close()
    assert list(tmp_path.iterdir()) == []  # its runs are gone


def test_needs_time_first(tmp_path):
    with pytest.raises(ValueError):
        TimeOrderedSort(["s", "__time"], str(tmp_path), 10, 1 << 30)
