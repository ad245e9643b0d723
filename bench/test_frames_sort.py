"""Benchmarks of the native core, each next to its peer in the same run (issue #5, "Measured").

    python -m pytest -p no:cacheprovider bench/test_frames_sort.py -s
    BENCH_SCALE=0.1 python -m pytest ... bench/test_frames_sort.py -s    # 50k frame rows, 1M sort rows

* **Frames**: ``encode_frames`` + ``decode_frame`` of a list of batches against Arrow IPC
  stream write + read of the same batches, with the sort-key column (which frames carry and
  IPC does not) and without it; and, without the key, encoding against IPC writing and
  decoding against IPC reading on their own.
* **Spill** (issue #8): the ingest shuffle's level-0 spill of a 100,000-row buffer of the
  wiki data (24 columns, key ``(__bucket, channel, __boost)``): ``ExternalSorter`` add, sort,
  gather into frames and write the run file, against pyarrow ``sort_indices`` + ``take`` of the
  same rows (in memory only: no frames, no file).
* **Sort**: 10 million rows keyed (LONG time chunk, STRING, LONG) through ``ExternalSorter``
  in a 64 MiB budget (it spills sorted runs and merges them over at least two levels), rows
  read back from the output frame files, against pyarrow ``sort_indices`` + ``take`` on the
  same rows held in memory. Each side runs in a child process that reads the same Arrow IPC
  file (the sorter one batch at a time) and reports its peak RSS (``VmHWM``), so the memory
  bound is measured, not assumed. Output order and content are checked after the timing.

Row counts go through ``bench._scale.scaled`` (frames: 500,000 rows; sort: 10,000,000, and
its memory budget scales with it so that it always spills).
Arrow is pinned to one thread on both sides. There are no timing assertions: ``test_ratios``
prints each ratio (msqcore time / peer time; below 1 means msqcore is faster), for the frames
from the fastest rounds and from the means.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

pytest.importorskip("pytest_benchmark")

from bench._scale import scale, scaled  # noqa: E402
from msqcore.engine.frames import decode_frame, encode_frames, frame_info  # noqa: E402

KEY = [("chunk", False), ("page", False), ("x", False)]
SORT_BUDGET = max(4 << 20, int((64 << 20) * scale()))     # 64 MiB for 10M rows; scaled with them
MAX_RSS = 512 << 20
_means: dict[str, float] = {}
_mins: dict[str, float] = {}
_sort_reports: dict[str, dict] = {}


pytestmark = pytest.mark.usefixtures("one_thread")


_WORDS = None


def make_table(n: int, seed: int = 42) -> pa.Table:
    """n rows of (7 daily time chunks, one of 50,000 page names, a random int64)."""
    global _WORDS
    if _WORDS is None:
        _WORDS = pa.array([f"Page_{i:06d}_{'abcdefgh'[i % 8] * (i % 13)}" for i in range(50_000)])
    rng = np.random.default_rng(seed)
    return pa.table({
        "chunk": pa.array(rng.integers(0, 7, n) * 86_400_000 + 1_466_985_600_000, pa.int64()),
        "page": _WORDS.take(pa.array(rng.integers(0, 50_000, n))),
        "x": pa.array(rng.integers(0, 1 << 62, n), pa.int64()),
    })


def _record(name: str, benchmark) -> None:
    _means[name] = benchmark.stats.stats.mean
    _mins[name] = benchmark.stats.stats.min


def _ratio(ours: str, peer: str) -> str:
    # the fastest rounds are the ones least disturbed by other processes on a shared machine
    return f"{_mins[ours] / _mins[peer]:.2f}x (fastest rounds; means {_means[ours] / _means[peer]:.2f}x)"


# --- frames vs Arrow IPC ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame_batches() -> list[pa.RecordBatch]:
    return make_table(scaled(500_000)).to_batches(max_chunksize=65_536)


def _frames_round_trip(batches, key):
    return [decode_frame(f) for b in batches for f in encode_frames(b, key)]


def _ipc_write(batches) -> pa.Buffer:
    # IPC at its fastest: sized first, then written into one buffer from Arrow's pool (no
    # growing copies, no fresh pages to fault in)
    mock = pa.MockOutputStream()
    with pa.ipc.new_stream(mock, batches[0].schema) as w:
        for b in batches:
            w.write_batch(b)
    buf = pa.allocate_buffer(mock.size())
    with pa.ipc.new_stream(pa.FixedSizeBufferWriter(buf), batches[0].schema) as w:
        for b in batches:
            w.write_batch(b)
    return buf


def _ipc_round_trip(batches):
    return pa.ipc.open_stream(_ipc_write(batches)).read_all()       # read back zero-copy


def _frames_encode(batches):
    return [f for b in batches for f in encode_frames(b)]


def _frames_decode(frames):
    return [decode_frame(f) for f in frames]


def _ipc_read(buf):
    return list(pa.ipc.open_stream(buf))                              # batches, like the frames


@pytest.mark.gate
def test_frames_encode_decode(benchmark, frame_batches, rounds):
    out = benchmark.pedantic(_frames_round_trip, args=(frame_batches, KEY), rounds=10 * rounds,
                             iterations=1, warmup_rounds=1)
    got = pa.Table.from_batches(out)
    assert got.equals(pa.Table.from_batches(frame_batches))
    _record("frames", benchmark)


@pytest.mark.gate
def test_frames_encode_decode_without_key(benchmark, frame_batches, rounds):
    out = benchmark.pedantic(_frames_round_trip, args=(frame_batches, []), rounds=10 * rounds,
                             iterations=1, warmup_rounds=1)
    assert sum(b.num_rows for b in out) == sum(b.num_rows for b in frame_batches)
    _record("frames_nokey", benchmark)


@pytest.mark.informational
def test_arrow_ipc_write_read(benchmark, frame_batches, rounds):
    out = benchmark.pedantic(_ipc_round_trip, args=(frame_batches,), rounds=10 * rounds,
                             iterations=1, warmup_rounds=1)
    assert out.num_rows == sum(b.num_rows for b in frame_batches)
    _record("ipc", benchmark)


@pytest.mark.gate
def test_frames_encode_only(benchmark, frame_batches, rounds):
    out = benchmark.pedantic(_frames_encode, args=(frame_batches,), rounds=10 * rounds,
                             iterations=1, warmup_rounds=1)
    assert sum(decode_frame(f).num_rows for f in out) == sum(b.num_rows for b in frame_batches)
    _record("frames_encode", benchmark)


@pytest.mark.informational
def test_arrow_ipc_write_only(benchmark, frame_batches, rounds):
    out = benchmark.pedantic(_ipc_write, args=(frame_batches,), rounds=10 * rounds,
                             iterations=1, warmup_rounds=1)
    assert pa.ipc.open_stream(out).read_all().num_rows == sum(b.num_rows for b in frame_batches)
    _record("ipc_write", benchmark)


@pytest.mark.gate
def test_frames_decode_only(benchmark, frame_batches, rounds):
    frames = _frames_encode(frame_batches)
    out = benchmark.pedantic(_frames_decode, args=(frames,), rounds=100 * rounds,
                             iterations=1, warmup_rounds=1)
    assert pa.Table.from_batches(out).equals(pa.Table.from_batches(frame_batches))
    _record("frames_decode", benchmark)


@pytest.mark.informational
def test_arrow_ipc_read_only(benchmark, frame_batches, rounds):
    buf = _ipc_write(frame_batches)
    out = benchmark.pedantic(_ipc_read, args=(buf,), rounds=100 * rounds,
                             iterations=1, warmup_rounds=1)
    assert sum(b.num_rows for b in out) == sum(b.num_rows for b in frame_batches)
    _record("ipc_read", benchmark)


@pytest.mark.informational
def test_arrow_ipc_read_frame_sized_batches(benchmark, frame_batches, rounds):
    """IPC reading the same rows cut into batches of the frames' row counts: the per-batch
    costs side by side (a frame holds at most ``maxFrameSize`` bytes, here 23 frames against
    the 8 batches of the pair above)."""
    table = pa.Table.from_batches(frame_batches)
    counts = [frame_info(f).num_rows for f in _frames_encode(frame_batches)]
    starts = np.cumsum([0] + counts[:-1])
    buf = _ipc_write([table.slice(int(a), c).combine_chunks().to_batches()[0] for a, c in zip(starts, counts)])
    out = benchmark.pedantic(_ipc_read, args=(buf,), rounds=100 * rounds,
                             iterations=1, warmup_rounds=1)
    assert len(out) == len(counts) and sum(b.num_rows for b in out) == table.num_rows
    _record("ipc_read_frame_sized", benchmark)


# --- the ingest shuffle's spill (issue #8) vs pyarrow sort + take --------------------------------


@pytest.fixture(scope="module")
def spill_rows():
    """A ``rowsInMemory`` buffer of the ingest shuffle: 100,000 rows of the wiki data (the 23
    columns, booleans as LONG, ``__time``), with the shuffle's ``__bucket`` and ``__boost``."""
    from bench.gen_data import generate_table
    t = generate_table(scaled(100_000), seed=42)
    ms = pc.cast(pc.cast(t.column("timestamp"), pa.timestamp("ms", tz="UTC")), pa.int64())
    cols = {"__time": ms}
    for name in t.column_names[1:]:
        c = t.column(name)
        cols[name] = c.cast(pa.int64()) if pa.types.is_boolean(c.type) else c
    cols["__bucket"] = pc.multiply(pc.divide(ms, 86_400_000), 86_400_000)
    cols["__boost"] = pa.array(np.arange(t.num_rows, dtype=np.int64))
    return pa.table(cols).combine_chunks().to_batches(max_chunksize=8192)


SPILL_KEY = [("__bucket", False), ("channel", False), ("__boost", False)]


def _spill(batches, tmp):
    from msqcore.engine.sorter import ExternalSorter
    n = sum(b.num_rows for b in batches)
    with ExternalSorter(SPILL_KEY, str(tmp), rows_in_memory=n + 1) as sorter:
        for b in batches:
            sorter.add(b)
        sorter._spill()                          # one level-0 run: sort, gather, write
        return sorter.runs_spilled


def _arrow_sort_take(batches):
    t = pa.Table.from_batches(batches)              # the same rows sorted, in memory only
    return t.take(pc.sort_indices(t, [(c, "ascending") for c, _ in SPILL_KEY]))


@pytest.mark.informational
def test_sorter_spill_wiki_rows(benchmark, spill_rows, rounds, tmp_path):
    runs = benchmark.pedantic(_spill, args=(spill_rows, tmp_path), rounds=5 * rounds, iterations=1,
                              warmup_rounds=1)
    assert runs == 1
    _record("spill", benchmark)


@pytest.mark.informational
def test_arrow_sort_take_wiki_rows(benchmark, spill_rows, rounds):
    out = benchmark.pedantic(_arrow_sort_take, args=(spill_rows,), rounds=5 * rounds, iterations=1,
                             warmup_rounds=1)
    assert out.num_rows == sum(b.num_rows for b in spill_rows)
    _record("arrow_sort_take", benchmark)


# --- the 10M-row external sort vs pyarrow in memory ------------------------------------------------

# Runs in a child process: ``python -c CHILD <mode> <ipc file> <temp dir> <budget>``; prints
# one JSON line. The timed part reads the input, sorts and reads the sorted rows back; the
# checks after it are not timed. VmHWM is the child's peak resident set.
CHILD = r'''
import json, sys, time
import numpy as np, pyarrow as pa, pyarrow.compute as pc
pa.set_cpu_count(1)
pa.set_io_thread_count(1)
mode, path, workdir, budget = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
KEY = [("chunk", False), ("page", False), ("x", False)]

def batches():
    with pa.OSFile(path) as f:
        reader = pa.ipc.open_file(f)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)

def vmhwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

report = {}
if mode == "msqcore":
    from msqcore.engine.frames import FrameFileReader, decode_frame, frame_keys
    from msqcore.engine.sorter import ExternalSorter, read_frames_file
    from msqcore.kernels._frame import check_frame
    t0 = time.perf_counter()
    sorter = ExternalSorter(KEY, workdir, rows_in_memory=1 << 62, bytes_in_memory=budget)
    try:
        for b in batches():
            sorter.add(b)
        paths = sorter.finish()
        rows = 0
        for p in paths:
            for b in read_frames_file(p):
                rows += b.num_rows
        report["seconds"] = time.perf_counter() - t0
        report["vmhwm"] = vmhwm()
        report["progress"] = sorter.progress()
        report["runs"] = sorter.runs_spilled
        # checks (not timed): every frame sorted and checksummed, frames in key order, rows kept
        prev, ok, xsum = b"", True, 0
        for p in paths:
            with FrameFileReader(p) as reader:
                for buf in reader.iter_frames():
                    check_frame(buf)
                    offsets, data = frame_keys(buf)
                    if len(offsets) > 1:
                        ok &= prev <= data[:offsets[1]].tobytes()
                        prev = data[offsets[-2]:].tobytes()
                    xsum = (xsum + int(np.asarray(decode_frame(buf).column("x")).view(np.uint64).sum())) % 2**64
        report.update(rows=rows, sorted=bool(ok), xsum=xsum)
    finally:
        sorter.close()
else:
    t0 = time.perf_counter()
    with pa.OSFile(path) as f:
        table = pa.ipc.open_file(f).read_all()
    out = table.take(pc.sort_indices(table, sort_keys=[(c, "descending" if d else "ascending") for c, d in KEY]))
    report["seconds"] = time.perf_counter() - t0
    report["vmhwm"] = vmhwm()
    report["rows"] = out.num_rows
print(json.dumps(report))
'''


@pytest.fixture(scope="module")
def sort_input(tmp_path_factory) -> tuple[str, int, int]:
    """The sort's rows in an Arrow IPC file: (path, rows, wrapping uint64 sum of ``x``)."""
    n = scaled(10_000_000)
    path = str(tmp_path_factory.mktemp("sort-input") / "rows.arrow")
    xsum = 0
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, make_table(1).schema) as w:
        for i, start in enumerate(range(0, n, 1_000_000)):
            t = make_table(min(1_000_000, n - start), seed=7 + i)
            xsum = (xsum + int(np.asarray(t.column("x")).view(np.uint64).sum())) % 2**64
            for b in t.to_batches(max_chunksize=65_536):
                w.write_batch(b)
    return path, n, xsum


def _run_child(mode: str, path: str, workdir: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, path, workdir, str(SORT_BUDGET)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.gate
def test_external_sort_10m(benchmark, sort_input, rounds, tmp_path):
    path, n, xsum = sort_input
    report = benchmark.pedantic(_run_child, args=("msqcore", path, str(tmp_path)), rounds=rounds,
                                iterations=1, warmup_rounds=0)
    progress = report["progress"]
    assert report["rows"] == n and report["xsum"] == xsum and report["sorted"]
    assert report["runs"] >= 2 and progress["totalMergingLevels"] >= 2      # it spilled and merged
    assert report["vmhwm"] < MAX_RSS, f"peak RSS {report['vmhwm'] >> 20} MiB"
    benchmark.extra_info.update(rows=n, peak_rss_mib=report["vmhwm"] >> 20, runs=report["runs"],
                                levels=progress["totalMergingLevels"], sort_seconds=report["seconds"])
    _record("external_sort", benchmark)
    _sort_reports["msqcore"] = report


@pytest.mark.informational
def test_arrow_sort_in_memory_10m(benchmark, sort_input, rounds, tmp_path):
    path, n, _ = sort_input
    report = benchmark.pedantic(_run_child, args=("arrow", path, str(tmp_path)), rounds=rounds,
                                iterations=1, warmup_rounds=0)
    assert report["rows"] == n
    benchmark.extra_info.update(rows=n, peak_rss_mib=report["vmhwm"] >> 20, sort_seconds=report["seconds"])
    _record("arrow_sort", benchmark)
    _sort_reports["arrow"] = report


def test_ratios(capsys):
    """Print msqcore's time over its peer's for every pair that ran (below 1: msqcore is faster)."""
    with capsys.disabled():
        print()
        if {"frames_nokey", "ipc"} <= _means.keys():
            print(f"frames encode+decode / Arrow IPC write+read, no key: {_ratio('frames_nokey', 'ipc')}")
        if {"frames", "ipc"} <= _means.keys():
            print(f"frames encode+decode / Arrow IPC write+read, with the key column: {_ratio('frames', 'ipc')}")
        if {"frames_encode", "ipc_write"} <= _means.keys():
            print(f"frames encode / Arrow IPC write, no key: {_ratio('frames_encode', 'ipc_write')}")
        if {"frames_decode", "ipc_read"} <= _means.keys():
            print(f"frames decode / Arrow IPC read, no key: {_ratio('frames_decode', 'ipc_read')}")
        if {"frames_decode", "ipc_read_frame_sized"} <= _means.keys():
            print("frames decode / Arrow IPC read of batches cut as the frames are: "
                  f"{_ratio('frames_decode', 'ipc_read_frame_sized')}")
        if {"spill", "arrow_sort_take"} <= _means.keys():
            print("sorter spill of 100k wiki rows (add, sort, gather, write) / pyarrow sort_indices+take: "
                  f"{_ratio('spill', 'arrow_sort_take')}")
        if {"external_sort", "arrow_sort"} <= _means.keys():
            ours, peer = _sort_reports["msqcore"], _sort_reports["arrow"]
            p = ours["progress"]
            print(f"external sort / pyarrow sort_indices+take: {_means['external_sort'] / _means['arrow_sort']:.2f}x "
                  f"(child processes; timed part only: {ours['seconds']:.1f} s / {peer['seconds']:.1f} s = "
                  f"{ours['seconds'] / peer['seconds']:.2f}x)")
            print(f"  {ours['rows']:,} rows in a {SORT_BUDGET >> 20} MiB budget: {ours['runs']} runs, "
                  f"{p['totalMergingLevels']} levels {p['levelToTotalBatches']}; peak RSS "
                  f"{ours['vmhwm'] >> 20} MiB (pyarrow in memory: {peer['vmhwm'] >> 20} MiB)")
