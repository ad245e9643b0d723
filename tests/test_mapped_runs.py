"""MappedRun gives back the pages of rows a merge has passed, and still reads every row."""
import os

import numpy as np
import pyarrow as pa

from msqcore.engine.mapped_runs import MappedRun


def _mapped_rss_kib(path: str) -> int:
    """Resident KiB of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields[0].split("-")) == 2 and ":" in (fields[3] if len(fields) > 3 else ""):
                inside = fields[-1] == path
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def _touch(table: pa.Table) -> int:
    """Read every byte of every buffer, so all of the file's pages are resident."""
    s = 0
    for column in table.columns:
        for buf in column.chunk(0).buffers():
            if buf is not None:
                s += int(np.frombuffer(buf, dtype=np.uint8).sum())
    return s


def test_release_gives_back_the_pages_before_a_row_and_rows_still_read(tmp_path):
    n = 300_000
    rng = np.random.default_rng(3)
    table = pa.table({
        "__time": pa.array(np.sort(rng.integers(0, 10**12, n))),
        "s": pa.array([f"value-{i:08d}-{'x' * (i % 17)}" for i in range(n)]),
        "b": pa.array(rng.integers(0, 2, n).astype(bool)),
        "maybe": pa.array([None if i % 5 == 0 else float(i) for i in range(n)]),
    })
    path = str(tmp_path / "run.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    run = MappedRun(path)
    _touch(run.table)
    whole = _mapped_rss_kib(path)
    assert whole * 1024 > 0.9 * os.path.getsize(path)

    run.release(n // 2)
    half = _mapped_rss_kib(path)
    assert 0.35 * whole < half < 0.65 * whole
    run.release(n // 4)  # behind what is already given back: nothing to do
    assert _mapped_rss_kib(path) <= half

    run.release(n)
    assert _mapped_rss_kib(path) < 0.05 * whole
    # given back, not lost: the rows fault back in from the file
    assert run.table.equals(table)
