"""Arrow IPC files read through ``mmap``, whose pages are given back as a merge moves on.

A memory-mapped page counts in the process's RSS from its first touch until the mapping
goes. The segment generator's merge reads every sorted run of a partition, so the runs'
pages piled up in the worker: about 220 MiB per worker for the 715k-row day partitions of a
5M-row ingest, nearly half of its peak. A merge reads each run from front to back, so
``release(row)`` gives back (``MADV_DONTNEED``) the pages of each column that hold only rows
before ``row``. They stay in the page cache and fault back in if touched again, so a wrong
``row`` costs time, never correctness.
"""
from __future__ import annotations

import mmap

import numpy as np
import pyarrow as pa

PAGE = mmap.PAGESIZE


class MappedRun:
    """One IPC file (one record batch per column chunk) mapped read-only; ``table`` holds
    zero-copy views of it."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        whole = pa.py_buffer(self._mm)
        self._base = whole.address
        self.table = pa.ipc.open_file(whole).read_all()
        # per buffer: (start in the file, a function row -> bytes of the buffer before it, released so far)
        self._parts: list[list] = []
        self._released = 0  # rows given back so far
        for column in self.table.columns:
            if column.num_chunks == 1:
                self._parts.extend(self._layout(column.chunk(0)))

    def release(self, row: int) -> None:
        """Give back the pages that hold only rows before ``row``."""
        if row <= self._released:  # also spares reading (and faulting in) a string's offsets
            return
        self._released = row
        for part in self._parts:
            start, before, done = part
            end = (start + before(row)) // PAGE * PAGE
            lo = max(done, -(-start // PAGE) * PAGE)
            if end > lo:
                self._mm.madvise(mmap.MADV_DONTNEED, lo, end - lo)
                part[2] = end

    def _layout(self, arr: pa.Array) -> list[list]:
        """The buffers whose bytes follow the rows, with how many bytes precede a row."""
        t = arr.type
        bufs = arr.buffers()
        out = []

        def add(buf, before):
            if buf is not None and buf.size:
                out.append([buf.address - self._base, before, 0])

        if arr.offset:
            return out
        add(bufs[0], lambda r: r // 8)
        if pa.types.is_boolean(t):
            add(bufs[1], lambda r: r // 8)
        elif pa.types.is_primitive(t):
            width = t.bit_width // 8
            add(bufs[1], lambda r: r * width)
        elif t in (pa.string(), pa.binary(), pa.large_string(), pa.large_binary()):
            wide = t in (pa.large_string(), pa.large_binary())
            offsets = np.frombuffer(bufs[1], dtype=np.int64 if wide else np.int32, count=len(arr) + 1)
            add(bufs[1], lambda r: r * offsets.itemsize)
            add(bufs[2], lambda r: int(offsets[min(r, len(arr))]))
        return out
