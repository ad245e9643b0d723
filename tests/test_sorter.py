"""External merge sort, sortProgress and key statistics: msqcore.engine.sorter and the
Cython kernel msqcore.kernels._sort."""
from __future__ import annotations

import errno
import os
import pickle

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msqcore.engine import frames as F
from msqcore.engine import sorter as S
from msqcore.engine.frames import FrameType, encode_keys, read_frames_file
from msqcore.engine.sorter import (
    ExternalSorter,
    KeyStatistics,
    NotEnoughTemporaryStorageFault,
    SortProgress,
    TooManyPartitions,
    merge_plan,
)
from msqcore.errors import Fault, TooManyBuckets
from msqcore.kernels import _sort as KS
from test_frames import key_list, sql_order  # the reference comparator

T = FrameType


def _keys(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    return offsets, np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()


def _table(n: int, seed: int = 0, *, nulls: bool = True) -> pa.Table:
    rng = np.random.default_rng(seed)
    chunk = rng.integers(0, 4, n) * 86_400_000
    s = [f"v{x:03d}" for x in rng.integers(0, 300, n)]
    if nulls:
        s = [None if i % 17 == 0 else v for i, v in enumerate(s)]
    return pa.table({"chunk": pa.array(chunk, pa.int64()), "s": pa.array(s, pa.string()),
                     "x": pa.array(rng.integers(-1000, 1000, n), pa.int64()), "row": pa.array(np.arange(n))})


KEY = [("chunk", False), ("s", True), ("x", False)]
TYPES = [T.LONG, T.STRING, T.LONG]


def _expected(table: pa.Table, key=KEY, types=TYPES) -> list[int]:
    rows = list(zip(*[table.column(c).to_pylist() for c, _ in key]))
    return sql_order(rows, types, [d for _, d in key])


def _read(paths: list[str]) -> list[pa.Table]:
    return [pa.Table.from_batches(list(read_frames_file(p))) for p in paths]


# --- argsort / search ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=20) | st.sampled_from([b"", b"\x00", b"\x00" * 9, b"a" * 17, b"\xff" * 8]),
                max_size=120))
def test_argsort_keys_is_stable_byte_order(blobs):
    order = KS.argsort_keys(*_keys(blobs))
    assert order.tolist() == sorted(range(len(blobs)), key=blobs.__getitem__)


def test_argsort_large_with_duplicates_and_shared_prefixes():
    rng = np.random.default_rng(1)
    blobs = [b"common-prefix-" + bytes(rng.integers(0, 3, int(rng.integers(0, 12))).astype(np.uint8))
             for _ in range(20_000)]
    order = KS.argsort_keys(*_keys(blobs))
    assert order.tolist() == sorted(range(len(blobs)), key=blobs.__getitem__)


def test_argsort_rejects_bad_offsets():
    with pytest.raises(ValueError):
        KS.argsort_keys(np.array([0, 5], np.int64), np.zeros(2, np.uint8))
    with pytest.raises(ValueError):
        KS.argsort_keys(np.array([], np.int64), np.zeros(0, np.uint8))


def test_search_keys():
    blobs = [b"a", b"b", b"b", b"c", b"e"]
    offsets, data = _keys(blobs)
    order = KS.argsort_keys(offsets, data)
    got = KS.search_keys(offsets, data, order, [b"", b"b", b"bb", b"d", b"z"]).tolist()
    assert got == [0, 1, 3, 4, 5]


# --- the merge kernel ---------------------------------------------------------------------------


def _frame_sources(table: pa.Table, key, max_frame_size: int) -> list:
    """Sorted frames of ``table`` as kernel sources (one run)."""
    order = _expected(table, key, [T.LONG] * len(key))
    frames = F.encode_frames(table.take(order), key, max_frame_size)
    return [S._kf.FrameSource.from_frame(f) for f in frames]


def test_merger_merges_runs_stably():
    runs = [pa.table({"k": pa.array(np.sort(np.random.default_rng(i).integers(0, 50, 300))),
                      "run": pa.array([i] * 300)}) for i in range(5)]
    key = [("k", False)]
    sources = [_frame_sources(r, key, 2048) for r in runs]
    merger = KS.Merger(len(runs), 10_000)
    pos = [0] * len(runs)
    slots = []
    for i, s in enumerate(sources):
        slots.append(s[0])
        merger.set_cursor(i, s[0], len(slots) - 1, False)
    merger.build()
    out = []
    while True:
        r = merger.run(1 << 40)
        if r == KS.REFILL:
            i = merger.refill
            pos[i] += 1
            if pos[i] < len(sources[i]):
                slots.append(sources[i][pos[i]])
                merger.set_cursor(i, sources[i][pos[i]], len(slots) - 1, False)
            else:
                merger.set_done(i)
            continue
        assert r in (KS.DONE, KS.FULL)
        out += [(int(s), int(w)) for s, w in zip(merger.out_sources[:merger.count], merger.out_rows[:merger.count])]
        merger.reset_output()
        if r == KS.DONE:
            break
    got = pa.concat_tables([pa.Table.from_batches([F.decode_frame(F._k.gather_frame(
        F.FrameSchema.for_schema(runs[0].schema, key).section, slots,
        np.array([s], np.int32), np.array([w]), 0, 1, 1 << 20, 1)[0])]) for s, w in out])
    want = pa.concat_tables(runs).sort_by([("k", "ascending"), ("run", "ascending")])
    assert got.column("k").to_pylist() == want.column("k").to_pylist()
    assert got.column("run").to_pylist() == want.column("run").to_pylist()   # ties: lower cursor first


def test_merger_protocol_errors():
    src = _frame_sources(pa.table({"k": [1, 2]}), [("k", False)], 4096)[0]
    m = KS.Merger(2, 10)
    with pytest.raises(RuntimeError):
        m.run(100)
    m.set_cursor(0, src, 0, True)
    m.set_done(1)
    m.build()
    with pytest.raises(RuntimeError):
        m.set_cursor(0, src, 0, True)          # not waiting for a batch
    assert m.run(1 << 30) == KS.DONE and m.count == 2
    no_key = S._kf.FrameSource.from_frame(F.encode_frames(pa.table({"k": [1]}))[0])
    with pytest.raises(ValueError):
        KS.Merger(1, 10).set_cursor(0, no_key, 0, True)


# --- ExternalSorter -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["direct", "two_levels", "three_levels", "many_levels"])
@pytest.mark.parametrize("partitions", [1, 4])
def test_sort_matches_reference(tmp_path, mode, partitions):
    n = 6_000
    table = _table(n, seed=partitions)
    budget = {"direct": 10 ** 9, "two_levels": 2_000, "three_levels": 2_000, "many_levels": 300}[mode]
    fan_in = {"direct": 16, "two_levels": 16, "three_levels": 16, "many_levels": 3}[mode]
    offsets, data = encode_keys(table, KEY)
    all_keys = sorted(key_list(offsets, data))
    bounds = [all_keys[i * n // partitions] for i in range(1, partitions)]
    bounds = sorted(set(bounds))
    with ExternalSorter(KEY, str(tmp_path), rows_in_memory=budget, max_fan_in=fan_in,
                        max_frame_size=8192) as sorter:
        for batch in table.to_batches(max_chunksize=700):
            sorter.add(batch)
        paths = sorter.finish(bounds)
        assert len(paths) == len(bounds) + 1
        parts = _read(paths)
        progress = sorter.progress()
        got = pa.concat_tables(parts)
        assert got.column("row").to_pylist() == _expected(table)       # a stable sort
        # every row is in the partition its key falls in
        for p, part in enumerate(parts):
            keys = key_list(*encode_keys(part, KEY)) if part.num_rows else []
            assert all(S.partition_of(k, bounds) == p for k in keys)
        levels = progress["totalMergingLevels"]
        if mode == "direct":
            assert levels == 1
        elif mode == "many_levels":
            assert levels >= 4
        else:
            assert levels == (2 if len(bounds) == 0 else 3)
        assert progress["progressDigest"] == 1.0
        assert progress["totalMergersForUltimateLevel"] == len(paths)
        assert progress["levelToMergedBatches"] == progress["levelToTotalBatches"]
        # intermediate runs are gone once consumed; only the outputs remain
        assert sorted(os.listdir(sorter._dir)) == sorted(os.path.basename(p) for p in paths)
    assert os.listdir(tmp_path) == []


def test_small_batches_are_joined_before_buffering(tmp_path, monkeypatch):
    """A table of many small chunks (a reader's parse chunks) is buffered as fewer, bigger
    batches; empty batches pass as they are; the output is the same as for one batch."""
    monkeypatch.setattr(S, "_JOIN_ROWS", 1_000)
    table = _table(6_000, seed=5)
    small = table.to_batches(max_chunksize=300)
    empty = table.slice(0, 0).to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
    joined = list(S._joined(small[:5] + empty + small[5:]))
    assert [b.num_rows for b in joined] == [1_200, 300, 0, 1_200, 1_200, 1_200, 900]
    assert pa.Table.from_batches(joined).equals(table)
    big = table.to_batches(max_chunksize=500)          # half _JOIN_ROWS or more: not copied
    assert [b.num_rows for b in S._joined(small[:2] + big[:2] + small[:1])] == [600, 500, 500, 300]
    outputs = []
    for data in (pa.Table.from_batches(small), table.combine_chunks()):
        with ExternalSorter(KEY, str(tmp_path), rows_in_memory=2_500, max_frame_size=8192) as sorter:
            sorter.add(data)
            outputs.append(pa.concat_tables(_read(sorter.finish())))
    assert outputs[0].equals(outputs[1])
    assert outputs[0].column("row").to_pylist() == _expected(table)


def test_empty_partitions_and_descending_nulls(tmp_path):
    table = pa.table({"k": pa.array([3, None, 1, None, 2], pa.int64()), "v": list("abcde")})
    key = [("k", True)]
    enc = key_list(*encode_keys(pa.table({"k": pa.array([3, 1, None], pa.int64())}), key))
    for budget in (2, 100):
        with ExternalSorter(key, str(tmp_path), rows_in_memory=budget) as sorter:
            sorter.add(table)
            parts = _read(sorter.finish(enc))          # [-inf, 3) is empty: descending, 3 comes first
        assert [p.column("k").to_pylist() for p in parts] == [[], [3, 2], [1], [None, None]]
        assert all(p.schema == parts[0].schema for p in parts)


def test_one_penultimate_merger_writes_every_output_file(tmp_path):
    """Runs that one merger can take: it writes the partition files itself (the empty ones too,
    each a frame with no rows), and the ultimate level still counts one merger per partition."""
    table = _table(2_000, seed=3)
    chunks = [key_list(*encode_keys(pa.table({"chunk": pa.array([c * 86_400_000], pa.int64()), "s": pa.array([None], pa.string()),
                                              "x": pa.array([None], pa.int64())}), KEY))[0] for c in (0, 1, 2, 9, 10)]
    chunks[0] = chunks[0][:1] + b"\x00"          # before every key: partition 0 is empty
    with ExternalSorter(KEY, str(tmp_path), rows_in_memory=500, max_frame_size=4096) as sorter:
        sorter.add(table)
        paths = sorter.finish(sorted(chunks))
        progress = sorter.progress()
        parts = _read(paths)
        assert [p.num_rows for p in parts][0] == 0 and [p.num_rows for p in parts][-2:] == [0, 0]
        assert all(p.schema == table.schema for p in parts)
        assert pa.concat_tables(parts).column("row").to_pylist() == _expected(table)
        assert progress["levelToTotalBatches"] == {"0": 4, "1": 1, "2": 6}
        assert progress["levelToMergedBatches"] == progress["levelToTotalBatches"]
        assert sorted(os.listdir(sorter._dir)) == sorted(os.path.basename(p) for p in paths)


def test_no_input_is_trivially_complete(tmp_path):
    schema = pa.schema([("a", pa.int64())])
    with ExternalSorter([("a", False)], str(tmp_path), schema=schema) as sorter:
        assert sorter.progress() == {"type": "sortProgress", "totalMergingLevels": -1, "levelToTotalBatches": {},
                                     "levelToMergedBatches": {}, "totalMergersForUltimateLevel": -1}
        paths = sorter.finish([b"\x01"])
        assert sorter.progress() == {
            "type": "sortProgress", "totalMergingLevels": -1, "levelToTotalBatches": {},
            "levelToMergedBatches": {}, "totalMergersForUltimateLevel": -1, "progressDigest": 1.0,
            "triviallyComplete": True}
        parts = _read(paths)
        assert [p.num_rows for p in parts] == [0, 0] and parts[0].schema == schema


def test_progress_before_and_during_finish(tmp_path):
    table = _table(3_000)
    seen = []
    sorter = ExternalSorter(KEY, str(tmp_path), rows_in_memory=500, max_fan_in=2,
                            progress_callback=seen.append)
    sorter.add(table)
    before = sorter.progress()
    assert before["totalMergingLevels"] == -1 and "progressDigest" not in before
    assert before["levelToMergedBatches"] == {"0": 6} and before["levelToTotalBatches"] == {}
    assert before["totalMergersForUltimateLevel"] == -1
    sorter.finish([b"\x01\x80\x00\x00\x00\x05\x26\x5c\x00"])         # 86_400_000 (chunk 1) starts partition 1
    after = sorter.progress()
    # 6 runs, fan-in 2: levels 0 (6), 1 (3), 2 (2, penultimate), 3 (2 partitions)
    assert after["totalMergingLevels"] == 4
    assert after["levelToTotalBatches"] == {"0": 6, "1": 3, "2": 2, "3": 2}
    digests = [p["progressDigest"] for p in seen if "progressDigest" in p]
    assert digests == sorted(digests) and digests[-1] == 1.0 and digests[0] < 1.0
    sorter.close()
    sorter.close()


def test_sort_progress_tracker_semantics():
    t = SortProgress()
    t.add_merged(0)
    t.set_total(0, 1)
    t.set_total(1, 1)
    t.set_total_levels(3)
    snap = t.snapshot()
    # the ultimate level is unknown until the partitions are: -1, and it counts as no progress
    assert snap["levelToTotalBatches"] == {"0": 1, "1": 1, "2": -1}
    assert snap["totalMergersForUltimateLevel"] == -1
    assert snap["progressDigest"] == pytest.approx(1 / 3)
    t.set_ultimate(4)
    t.add_merged(1)
    t.add_merged(2, 2)
    snap = t.snapshot()
    assert snap["levelToTotalBatches"] == {"0": 1, "1": 1, "2": 4}
    assert snap["progressDigest"] == pytest.approx((1 + 1 + 0.5) / 3)
    t.add_merged(2, 2)
    assert t.snapshot()["progressDigest"] == 1.0
    assert "triviallyComplete" not in t.snapshot()
    with pytest.raises(RuntimeError):
        t.set_total_levels(2)


@pytest.mark.parametrize("runs,parts,fan_in,plan", [
    (1, 1, 16, [1, 1]),
    (5, 1, 16, [5, 1]),
    (5, 3, 16, [5, 1, 3]),
    (16, 2, 16, [16, 1, 2]),
    (17, 1, 16, [17, 2, 1]),
    (300, 7, 16, [300, 19, 2, 7]),
    (6, 2, 2, [6, 3, 2, 2]),
])
def test_merge_plan_is_druids(runs, parts, fan_in, plan):
    assert merge_plan(runs, parts, fan_in) == plan


def test_schema_mismatch_and_misuse(tmp_path):
    with ExternalSorter([("a", False)], str(tmp_path)) as sorter:
        sorter.add(pa.table({"a": [1]}))
        with pytest.raises(ValueError):
            sorter.add(pa.table({"b": [1]}))
        with pytest.raises(ValueError):
            sorter.finish([b"b", b"a"])
        sorter.finish()
        with pytest.raises(RuntimeError):
            sorter.add(pa.table({"a": [1]}))
        with pytest.raises(RuntimeError):
            sorter.finish()
    with pytest.raises(ValueError):
        ExternalSorter([], str(tmp_path))
    with pytest.raises(ValueError):
        ExternalSorter([("a", False)], str(tmp_path), max_fan_in=1)


def test_larger_than_memory_budget_by_bytes(tmp_path):
    n = 40_000
    table = pa.table({"k": pa.array(np.random.default_rng(3).integers(0, 1 << 40, n)),
                      "pad": pa.array(["p" * 40] * n)})
    with ExternalSorter([("k", False)], str(tmp_path), rows_in_memory=10 ** 9, bytes_in_memory=512 << 10,
                        max_fan_in=4) as sorter:
        sorter.add(table)                       # one add bigger than the budget is sliced
        assert sorter.runs_spilled >= 5
        (path,) = sorter.finish()
        got = pa.Table.from_batches(list(read_frames_file(path)))
    assert got.column("k").to_pylist() == sorted(table.column("k").to_pylist())


def test_output_dir_survives_close(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with ExternalSorter([("a", False)], str(tmp_path / "tmp"), output_dir=str(out), rows_in_memory=3) as sorter:
        sorter.add(pa.table({"a": list(range(10, 0, -1))}))
        paths = sorter.finish()
    assert os.listdir(tmp_path / "tmp") == []
    assert [os.path.dirname(p) for p in paths] == [str(out)]
    assert pa.Table.from_batches(list(read_frames_file(paths[0]))).column("a").to_pylist() == list(range(1, 11))


def test_temp_storage_limit_fault(tmp_path):
    table = _table(5_000)
    sorter = ExternalSorter(KEY, str(tmp_path), rows_in_memory=500, max_temp_bytes=100_000)
    with pytest.raises(NotEnoughTemporaryStorageFault) as e:
        sorter.add(table)
        sorter.finish()
    sorter.close()
    fault = e.value
    assert isinstance(fault, Fault)
    js = fault.to_json()
    assert js["errorCode"] == "NotEnoughTemporaryStorageFault"
    assert js["configuredTemporaryStorage"] == 100_000
    assert js["suggestedMinimumStorage"] > 100_000
    assert os.listdir(tmp_path) == []


def test_disk_full_becomes_fault(tmp_path, monkeypatch):
    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    sorter = ExternalSorter(KEY, str(tmp_path), rows_in_memory=100)
    monkeypatch.setattr(F.FrameFileWriter, "_put", full)
    with pytest.raises(NotEnoughTemporaryStorageFault) as e:
        sorter.add(_table(300))
    assert isinstance(e.value.__cause__, OSError)
    assert e.value.fields["configuredTemporaryStorage"] > 0
    sorter.close()
    assert os.listdir(tmp_path) == []


# --- KeyStatistics ------------------------------------------------------------------------------


def _ingest_table(n: int, chunks: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"__bucket": pa.array(rng.integers(0, chunks, n) * 3_600_000, pa.int64()),
                     "page": pa.array([f"p{x:05d}" for x in rng.integers(0, 20_000, n)]),
                     "__boost": pa.array(np.arange(n))})


ING_KEY = [("__bucket", False), ("page", False), ("__boost", False)]


def test_statistics_partitions_respect_buckets_and_target(tmp_path):
    table = _ingest_table(60_000, 3)
    stats = KeyStatistics(table.schema, ING_KEY, bucket_by_count=1, seed=7, max_keys_per_bucket=2000)
    for b in table.to_batches(max_chunksize=5_000):
        stats.add(b)
    assert stats.row_count == 60_000 and stats.bucket_count == 3
    counts = dict((S.decode_long_prefix(p), n) for p, n in stats.buckets())
    want = dict(zip(*np.unique(table.column("__bucket").to_numpy(), return_counts=True)))
    assert counts == {int(k): int(v) for k, v in want.items()}
    assert stats.retained_keys <= 3 * 2000
    bounds = stats.boundaries_target_size(5_000)
    with ExternalSorter(ING_KEY, str(tmp_path), rows_in_memory=20_000) as sorter:
        sorter.add(table)
        parts = _read(sorter.finish(bounds))
    sizes = [p.num_rows for p in parts]
    assert sum(sizes) == 60_000
    assert 10 <= len(parts) <= 15                     # ceil(~20,000 / 5,000) per bucket
    assert all(len(set(p.column("__bucket").to_pylist())) == 1 for p in parts)   # never spans buckets
    assert max(sizes) < 5_000 * 1.5 and min(sizes) > 5_000 * 0.5


def test_statistics_keep_enough_keys_for_many_partitions():
    # one bucket of 60,000 distinct keys cut into 1,500 partitions of 40 rows: the fixed
    # sample of 2,000 keys could not place 1,499 boundaries; with target_rows it keeps 8 per
    # partition, spread over two workers' statistics
    key = [("__bucket", False), ("k", False)]
    halves = []
    for w in range(2):
        t = pa.table({"__bucket": pa.array([0] * 30_000, pa.int64()),
                      "k": [f"k{i:06d}" for i in range(w, 60_000, 2)]})
        stats = KeyStatistics(t.schema, key, bucket_by_count=1, seed=w, max_keys_per_bucket=2000, target_rows=40)
        for b in t.to_batches(max_chunksize=7_000):
            stats.add(b)
        assert stats.retained_keys <= 8 * 750
        halves.append(stats)
    merged = pickle.loads(pickle.dumps(halves[0])).merge(halves[1])
    assert 8 * 750 <= merged.retained_keys <= 8 * 1500
    bounds = merged.boundaries_target_size(40)
    assert len(bounds) == 1499
    positions = np.searchsorted([f"k{i:06d}".encode() for i in range(60_000)],
                                [S.decode_string_columns(b, 1, 1)[0].encode() for b in bounds])
    assert np.diff(np.concatenate([[0], positions, [60_000]])).max() < 40 * 4
    fixed = KeyStatistics(t.schema, key, bucket_by_count=1, seed=3, max_keys_per_bucket=2000)
    fixed.add(t)
    assert len(fixed.boundaries_target_size(40)) < 1000


def test_statistics_merge_and_pickle():
    a, b = _ingest_table(20_000, 4, seed=1), _ingest_table(20_000, 4, seed=2)
    one = KeyStatistics(a.schema, ING_KEY, bucket_by_count=1, seed=1, max_keys_per_bucket=500)
    two = KeyStatistics(a.schema, ING_KEY, bucket_by_count=1, seed=2, max_keys_per_bucket=500)
    one.add(a)
    two.add(b)
    two = pickle.loads(pickle.dumps(two))
    both = one.merge(two)
    assert both.row_count == 40_000
    assert dict(both.buckets()) == {p: n for p, n in KeyStatistics_counts([a, b])}
    assert all(len(bk.keys) <= 500 for bk in both._buckets.values())
    bounds = both.boundaries_target_size(4_000)
    assert bounds == sorted(set(bounds))
    assert 8 <= len(bounds) + 1 <= 14


def KeyStatistics_counts(tables):
    t = pa.concat_tables(tables)
    offsets, data = encode_keys(t.select(["__bucket"]), [("__bucket", False)])
    keys = key_list(offsets, data)
    out: dict[bytes, int] = {}
    for k in keys:
        out[k] = out.get(k, 0) + 1
    return sorted(out.items())


def test_statistics_max_count():
    table = _ingest_table(30_000, 3)
    stats = KeyStatistics(table.schema, ING_KEY, bucket_by_count=1, seed=3)
    stats.add(table)
    for n in (3, 4, 10, 50):
        bounds = stats.boundaries_max_count(n)
        assert len(bounds) + 1 <= n
        assert len(bounds) + 1 >= min(n, 3) * 0.7
    with pytest.raises(TooManyPartitions):
        stats.boundaries_max_count(2)               # three buckets cannot fit in two partitions
    flat = KeyStatistics(table.schema, ING_KEY, seed=3)
    flat.add(table)
    assert flat.boundaries_max_count(1) == []
    assert len(flat.boundaries_max_count(7)) + 1 <= 7
    empty = KeyStatistics(table.schema, ING_KEY, bucket_by_count=1)
    assert empty.boundaries_max_count(5) == [] and empty.boundaries_target_size(10) == []


def test_too_many_buckets():
    n = 5_001
    table = pa.table({"b": pa.array(np.arange(n)), "x": pa.array(np.zeros(n, np.int64))})
    stats = KeyStatistics(table.schema, [("b", False), ("x", False)], bucket_by_count=1)
    with pytest.raises(TooManyBuckets) as e:
        stats.add(table)
    assert e.value.to_json()["maxBuckets"] == 5_000
    small = KeyStatistics(table.schema, [("b", False), ("x", False)], bucket_by_count=1, max_buckets=10)
    small.add(table.slice(0, 10))
    with pytest.raises(TooManyBuckets):
        small.add(table.slice(10, 1))


def test_too_many_partitions(tmp_path):
    n = 30_000
    table = pa.table({"k": pa.array(np.arange(n))})
    stats = KeyStatistics(table.schema, [("k", False)], max_keys_per_bucket=n + 1, max_retained_bytes=1 << 30)
    stats.add(table)
    with pytest.raises(TooManyPartitions) as e:
        stats.boundaries_target_size(1)
    assert e.value.to_json()["maxPartitions"] == 25_000
    assert len(stats.boundaries_target_size(2)) + 1 == 15_000
    with ExternalSorter([("k", False)], str(tmp_path)) as sorter:
        with pytest.raises(TooManyPartitions):
            sorter.finish([i.to_bytes(4, "big") for i in range(25_000)])


def test_retained_bytes_budget_downsamples():
    table = _ingest_table(50_000, 20)
    stats = KeyStatistics(table.schema, ING_KEY, bucket_by_count=1, max_keys_per_bucket=4096,
                          max_retained_bytes=200_000, seed=0)
    stats.add(table)
    assert stats.retained_bytes <= 200_000
    assert stats.retained_bytes == sum(len(k) for b in stats._buckets.values() for k in b.keys)
    assert stats.row_count == 50_000


def test_sorter_feeds_statistics(tmp_path):
    table = _ingest_table(10_000, 2)
    stats = KeyStatistics(table.schema, ING_KEY, bucket_by_count=1)
    with ExternalSorter(ING_KEY, str(tmp_path), statistics=stats, rows_in_memory=3_000) as sorter:
        sorter.add(table)
        assert stats.row_count == 10_000
        parts = _read(sorter.finish(stats.boundaries_target_size(2_500)))
    assert [len(set(p.column("__bucket").to_pylist())) for p in parts] == [1] * len(parts)


def test_decode_long_prefix():
    for v in (0, -1, 1 << 62, -(1 << 63)):
        off, data = encode_keys(pa.table({"a": pa.array([v], pa.int64())}), [("a", False)])
        assert S.decode_long_prefix(data.tobytes()) == v
        off, data = encode_keys(pa.table({"a": pa.array([v], pa.int64())}), [("a", True)])
        assert S.decode_long_prefix(data.tobytes(), descending=True) == v
    assert S.decode_long_prefix(b"\x00") is None


def test_decode_string_columns():
    table = pa.table({"b": pa.array([7, 7, 7], pa.int64()), "s": ["a\x00b", None, "\u00e9\u65e5"],
                      "t": ["", "z", None], "boost": pa.array([1, 2, 3], pa.int64())})
    off, data = encode_keys(table, [("b", False), ("s", False), ("t", False), ("boost", False)])
    keys = [data[off[i]:off[i + 1]].tobytes() for i in range(3)]
    assert [S.decode_string_columns(k, 1, 2) for k in keys] == [["a\x00b", ""], [None, "z"], ["\u00e9\u65e5", None]]
    assert S.decode_string_columns(keys[0], 1, 1) == ["a\x00b"]
    with pytest.raises(ValueError):
        S.decode_string_columns(keys[0], 0, 1)  # starts at the LONG column


def test_hash_partitions_follow_sql_values():
    left = pa.table({"k": ["x", "y", None, "x", "\u00e9"], "n": pa.array([1, 2, 3, 1, -0.0], pa.float64())})
    # the same values from another "worker", typed differently and in another order
    right = pa.table({"k": pa.array(["\u00e9", "x", None], pa.large_string()), "n": pa.array([0.0, 1.0, 3.0])})
    lp = KS.hash_partitions(*encode_keys(left, [("k", False), ("n", False)]), 7)
    rp = KS.hash_partitions(*encode_keys(right, [("k", False), ("n", False)]), 7)
    assert lp.dtype == np.int32 and lp[0] == lp[3]
    assert [rp[1], rp[2], rp[0]] == [lp[0], lp[2], lp[4]]
    many = pa.table({"k": [f"key{i}" for i in range(10_000)]})
    counts = np.bincount(KS.hash_partitions(*encode_keys(many, [("k", False)]), 4), minlength=4)
    assert counts.min() > 2200  # spread evenly enough to balance workers
    assert KS.hash_partitions(np.zeros(1, np.int64), np.zeros(0, np.uint8), 3).tolist() == []
    with pytest.raises(ValueError):
        KS.hash_partitions(np.zeros(2, np.int64), np.zeros(0, np.uint8), 0)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.integers(0, 300), st.integers(8, 80), st.integers(2, 5), st.booleans())
def test_sort_property(tmp_path, n, budget, fan_in, desc):
    table = _table(n, seed=n)
    key = [("s", desc), ("x", not desc)]
    with ExternalSorter(key, str(tmp_path), rows_in_memory=budget, max_fan_in=fan_in, max_frame_size=2048,
                        schema=table.schema) as sorter:
        for batch in table.to_batches(max_chunksize=37):
            sorter.add(batch)
        (path,) = sorter.finish()
        got = pa.Table.from_batches(list(read_frames_file(path)))
    assert got.column("row").to_pylist() == _expected(table, key, [T.STRING, T.LONG])


# --- the in-memory ORDER BY agrees with the sorter ------------------------------------------------


@pytest.mark.parametrize("descending", [False, True])
def test_order_by_in_memory_orders_nan_as_the_sorter(tmp_path, descending):
    """``ops.sort_indices`` (ORDER BY ... LIMIT in memory) and the external sorter give one
    order for doubles with NULL, NaN, ±Infinity: NaN above +Infinity (Java's Double.compare),
    NULL first ascending and last descending."""
    from msqcore.engine.operators import sort_indices
    values = [1.5, float("nan"), None, float("inf"), -1.0, float("-inf"), None, float("nan"), 0.5]
    table = pa.table({"d": pa.array(values, pa.float64()), "row": pa.array(range(len(values)), pa.int64())})
    with ExternalSorter([("d", descending), ("row", False)], str(tmp_path), rows_in_memory=4) as sorter:
        sorter.add(table)
        (path,) = sorter.finish()
        by_sorter = pa.Table.from_batches(list(read_frames_file(path))).column("row").to_pylist()
    by_memory = table.take(sort_indices(table, [("d", descending), ("row", False)])).column("row").to_pylist()
    assert by_memory == by_sorter
    nan_rows = [1, 7]
    assert (by_memory[:2] == nan_rows) if descending else (by_memory[-2:] == nan_rows)
