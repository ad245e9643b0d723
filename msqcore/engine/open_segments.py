"""Segment files the SQL endpoint keeps open between queries.

Opening a segment maps the file and checks its table of contents, and reading a string
column decodes and validates its dictionary; a bitmap index also reads its offsets. For an
unchanged segment these are the same on every query, so ``OPEN_SEGMENTS`` keeps them: per
segment file, the open segment, its string dictionaries and its bitmap indexes.

Published segment files never change: their paths carry the version. An entry is still
keyed by the file's inode, size and mtime too, so a file replaced under the same path is
opened again. ``retain`` forgets the entries of a datasource's segments that are no longer
used (a REPLACE, a drop, a kill); a query still reading one keeps its reference, and the map
is closed when the last reference goes. Decoded column data is not kept: every query
decompresses the blocks it reads.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np
import pyarrow as pa

from msqcore.storage.segment import BitmapIndex, bitmap_index, open_segment


class OpenSegment:
    """One open segment file with its dictionaries and bitmap indexes, shared by query threads."""

    def __init__(self, path: str):
        self.path = path
        self.seg = open_segment(path)
        self.num_rows: int = self.seg.num_rows
        self._indexes: dict[str, BitmapIndex] = {}
        self._dictionaries: dict[str, pa.Array] = {}
        self._lookups: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()

    def index(self, column: str) -> BitmapIndex:
        """The bitmap index of a STRING column (``storage.segment.BitmapIndex``)."""
        index = self._indexes.get(column)
        if index is None:
            index = bitmap_index(self.seg, column)
            with self._lock:
                index = self._indexes.setdefault(column, index)
        return index

    def lookup(self, column: str, values: tuple[str, ...]) -> np.ndarray:
        """``BitmapIndex.lookup`` of sorted ``values``, remembered (a query repeats its literals)."""
        key = (column, values)
        ids = self._lookups.get(key)
        if ids is None:
            ids = self.index(column).lookup(values)
            with self._lock:
                if len(self._lookups) >= 256:
                    self._lookups.pop(next(iter(self._lookups)))
                self._lookups[key] = ids
        return ids

    def dictionary(self, col: dict) -> pa.Array:
        """The sorted dictionary of a string column (an index's, when one is open)."""
        name = col["name"]
        index = self._indexes.get(name)
        if index is not None:
            return index.dictionary
        values = self._dictionaries.get(name)
        if values is None:
            values = self.seg.dictionary(col)
            with self._lock:
                values = self._dictionaries.setdefault(name, values)
        return values

    def read(self, columns: list[str], rows: np.ndarray | None = None, dictionary=()) -> pa.Table:
        """``storage.segment.read_segment`` of this open file: ``columns``, only ``rows``
        (ascending int64) if given; the single-value string columns named in ``dictionary``
        come back as ``dictionary<int32, string>`` over the segment's sorted dictionary."""
        arrays, fields = [], []
        for name in columns:
            col = self.seg.column(name)
            if col["type"] == "STRING" and not col.get("multiValue"):
                arr = self._string(col, rows, name in dictionary)
            else:
                arr = self.seg.decode(col, rows)
            arrays.append(arr)
            fields.append(self.seg.field(col, arr))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def _string(self, col: dict, rows: np.ndarray | None, as_dictionary: bool) -> pa.Array:
        return self.seg.strings(col, self.seg.ids(col, rows), self.dictionary(col), as_dictionary)


class OpenSegments:
    """An LRU of ``OpenSegment`` by path, at most ``capacity`` files mapped."""

    def __init__(self, capacity: int = 256):
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[tuple, OpenSegment, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, datasource: str) -> OpenSegment:
        st = os.stat(path)  # raises for a missing file, as opening it would
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            item = self._items.get(path)
            if item is not None and item[0] == key:
                self._items.move_to_end(path)
                return item[1]
        opened = OpenSegment(path)  # outside the lock: other queries go on meanwhile
        with self._lock:
            item = self._items.get(path)
            if item is not None and item[0] == key:
                return item[1]
            self._items[path] = (key, opened, datasource)
            self._items.move_to_end(path)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return opened

    def load(self, path: str, datasource: str) -> None:
        """Open a newly published segment before its first query, as a Druid historical loads
        a segment before serving it: the map, the table of contents, and the bitmap indexes of
        its single-value string columns stored with ids (few values per row, the usual filter
        and GROUP BY columns; a column stored as row lists would decode all of them)."""
        opened = self.get(path, datasource)
        for col in opened.seg.toc["columns"]:
            if col["type"] == "STRING" and not col.get("multiValue") and "ids" in col["parts"] \
                    and col.get("bitmapIndex", True):
                opened.index(col["name"])

    def retain(self, datasource: str, paths: set[str]) -> None:
        """Forget the entries of ``datasource`` whose path is not one of ``paths`` (its used segments)."""
        with self._lock:
            for path in [p for p, (_, _, ds) in self._items.items() if ds == datasource and p not in paths]:
                del self._items[path]

    def paths(self) -> list[str]:
        with self._lock:
            return list(self._items)


OPEN_SEGMENTS = OpenSegments()
