"""time_sort.TimeOrderedSort gives the external sorter's order, whatever the runs."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from msqcore.engine.frames import MULTI_VALUE_METADATA, encode_keys, read_frames_file
from msqcore.engine.sorter import ExternalSorter
from msqcore.engine.time_sort import TimeOrderedSort, segment_order
from msqcore.errors import NotEnoughTemporaryStorage
from msqcore.kernels import _sort as KS
from msqcore.kernels._gather import gather

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


def test_many_small_tie_groups_across_runs(tmp_path):
    """Times in milliseconds: hundreds of 2- and 3-row groups of equal ``__time`` spanning runs,
    ordered in several batches of at most ``rows_in_memory`` rows (a 930k-row day has thousands)."""
    rng = np.random.default_rng(5)
    n = 3000
    table = pa.table({"__time": pa.array(rng.integers(0, 6000, n)),
                      "s": pa.array(rng.choice(np.array(["b", "a", None, "é"], dtype=object), n), pa.string()),
                      "x": pa.array(rng.integers(-2, 2, n).astype(float))})
    ours = TimeOrderedSort(["__time", "s", "x"], str(tmp_path), 500, 1 << 30)
    theirs = ExternalSorter([(c, False) for c in ["__time", "s", "x"]], str(tmp_path), rows_in_memory=500)
    try:
        for start in range(0, n, 64):
            ours.add(table.slice(start, 64))
            theirs.add(table.slice(start, 64))
        got = pa.concat_tables(list(ours.sorted_tables(rows_per_table=700)))
        expected = pa.Table.from_batches(list(read_frames_file(theirs.finish()[0])))
        assert got.to_pylist() == expected.to_pylist()
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize("span", [50, 1 << 62])
def test_segment_order_is_the_key_byte_order(span):
    """``segment_order`` packs (__time, row) into one int64 when the span allows (50 ms: most
    rows tie) and sorts only the tied rows by every column; a span past 63 bits takes Arrow's
    sort. Either way: the stable order of the external sorter's byte keys."""
    rng = np.random.default_rng(span % 1000)
    n = 5_000
    table = pa.table({
        "__time": pa.array(rng.integers(0, span, n) - span // 2, pa.int64()),
        "s": pa.array([None if v == 0 else f"v{v}" for v in rng.integers(0, 6, n)], pa.string()),
        "x": pa.array(rng.integers(-3, 3, n), pa.int64()),
    })
    columns = ["__time", "s", "x"]
    expected = KS.argsort_keys(*encode_keys(table, [(c, False) for c in columns]))
    assert segment_order(table, columns).tolist() == expected.tolist()
    assert segment_order(table, ["__time"]).tolist() == \
        KS.argsort_keys(*encode_keys(table, [("__time", False)])).tolist()
    assert segment_order(table.slice(0, 1), columns).tolist() == [0]


def test_needs_time_first(tmp_path):
    with pytest.raises(ValueError):
        TimeOrderedSort(["s", "__time"], str(tmp_path), 10, 1 << 30)


# --- the gather kernel of the merge ------------------------------------------------------------

GATHER_TYPES = [pa.bool_(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint64(), pa.float32(), pa.float64(),
                pa.timestamp("ms"), pa.string(), pa.large_string(), pa.binary(), pa.large_binary()]


def _values(rng: np.random.Generator, typ: pa.DataType, n: int, nulls: bool) -> pa.Array:
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_binary(typ) or \
            pa.types.is_large_binary(typ):
        words = ["", "a", "é😀", "x" * 40, "zz"]
        values = [words[i] if not pa.types.is_binary(typ) and not pa.types.is_large_binary(typ)
                  else words[i].encode() for i in rng.integers(0, len(words), n)]
    elif pa.types.is_boolean(typ):
        values = (rng.random(n) < 0.5).tolist()
    else:
        values = rng.integers(0 if pa.types.is_unsigned_integer(typ) else -100, 100, n).tolist()
    if nulls:
        values = [None if rng.random() < 0.3 else v for v in values]
    return pa.array(values, pa.int64() if pa.types.is_timestamp(typ) else None).cast(typ)


@pytest.mark.parametrize("typ", GATHER_TYPES, ids=str)
@pytest.mark.parametrize("nulls", [False, True], ids=["no-nulls", "nulls"])
def test_gather_equals_take_from_each_source(typ, nulls):
    """Sources that are slices (an offset into their buffers, a bit offset into their
    validity), with and without nulls, one without any: the result is the one Arrow's take
    gives, row by row, with the same null count."""
    rng = np.random.default_rng(len(str(typ)) + nulls)
    sources = [_values(rng, typ, 50, nulls).slice(3, 40), _values(rng, typ, 13, False),
               _values(rng, typ, 30, nulls).slice(7)]
    n = 200
    run_of = rng.integers(0, len(sources), n).astype(np.int32)
    row_of = np.array([rng.integers(0, len(sources[r])) for r in run_of], dtype=np.int64)
    out = gather(sources, run_of, row_of)
    expected = pa.concat_arrays([sources[r].slice(int(i), 1) for r, i in zip(run_of, row_of)])
    assert out.type == typ
    assert out.equals(expected)
    assert out.null_count == expected.null_count
    out.validate(full=True)


def test_gather_declines_other_types():
    for arr in (pa.array([["a"], None], pa.list_(pa.string())),
                pa.array(["a", "b"]).dictionary_encode()):
        assert gather([arr, arr], np.array([0, 1], np.int32), np.array([1, 0], np.int64)) is None
    # sources of different types (32- and 64-bit offsets) are declined, not misread
    assert gather([pa.array(["a", "b"]), pa.array(["c", "d"], pa.large_string())],
                  np.array([0, 1], np.int32), np.array([1, 0], np.int64)) is None


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_full_disk_is_not_enough_temporary_storage(tmp_path):
    """A run written where the disk is full (the run's path leads to /dev/full, whose writes
    fail with ENOSPC) fails with Druid's NotEnoughTemporaryStorageFault, not an OSError."""
    sort = TimeOrderedSort(ORDER, str(tmp_path), 10, 1 << 30)
    try:
        os.symlink("/dev/full", os.path.join(sort._dir, "run-0.arrow"))
        with pytest.raises(NotEnoughTemporaryStorage) as e:
            sort.add(_batch(np.random.default_rng(0), 20))
        assert e.value.to_json()["errorCode"] == "NotEnoughTemporaryStorageFault"
        assert e.value.fields["configuredTemporaryStorage"] > 0
    finally:
        sort.close()
    assert os.listdir(tmp_path) == []
