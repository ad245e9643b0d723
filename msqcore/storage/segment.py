"""The columnar segment format: one file per segment, Druid-like columns.

Layout (see ``docs/segments.md``)::

    header   32 bytes  <6sHIIQQ: magic b"MSQSEG", version, tocLength, tocCrc32, fileSize, numRows
    toc      JSON (UTF-8), space-padded so the first column starts 8-byte aligned
    columns  one block per column, in order __time, dimensions..., metrics...; each block is
             8-byte aligned, holds its parts at the relative offsets the TOC records, and is
             padded with zeros to the next multiple of 8 (the padding is part of the block
             and of its crc32), so the blocks tile the rest of the file exactly.

Column blocks:

* LONG / DOUBLE / FLOAT (and ``__time``): ``values`` (little-endian, nulls stored as 0), then a
  ``validity`` bitmap (Arrow layout: LSB first, bit set = non-null) only if the column has nulls.
* STRING: ``dictOffsets`` int64[card+1] + ``dictData`` (the dictionary, sorted by UTF-8 bytes,
  the null entry first and empty if the column has nulls), ``ids`` (row -> dictionary id packed
  little-endian in the minimal 1/2/3/4 bytes), ``indexOffsets`` int64[card+1] + ``indexRows``
  int32[n] (the inverted index in CSR form).

The hot loops (id packing, remapping, the counting sort, checks) are in
``msqcore.kernels._segment``.
"""
from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
import zlib
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.errors import SegmentCorruptError
from msqcore.kernels import _segment as _k

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "read_segment",
    "read_segment_meta",
    "string_value_index",
    "validate_segment",
    "write_segment",
]

MAGIC = b"MSQSEG"
FORMAT_VERSION = 1
TIME_COLUMN = "__time"

_HEADER = struct.Struct("<6sHIIQQ")
HEADER_SIZE = _HEADER.size  # 32
_ALIGN = 8
_MAX_TOC = 256 << 20
_INT32_MAX = 2**31 - 1

_NUMERIC = {
    # type -> (on-disk dtype, arrow type)
    "LONG": (np.dtype("<i8"), pa.int64()),
    "DOUBLE": (np.dtype("<f8"), pa.float64()),
    "FLOAT": (np.dtype("<f4"), pa.float32()),
}
_STRING_PARTS = ("dictOffsets", "dictData", "ids", "indexOffsets", "indexRows")


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _column_type(name: str, typ: pa.DataType) -> str:
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "STRING"
    if pa.types.is_int64(typ):
        return "LONG"
    if pa.types.is_float64(typ):
        return "DOUBLE"
    if pa.types.is_float32(typ):
        return "FLOAT"
    raise TypeError(f"column {name!r} has unsupported type {typ}; "
                    "segments store string, large_string, int64, float64 and float32")


# --- writing ------------------------------------------------------------------------------


def _encode_numeric(col: pa.ChunkedArray, kind: str) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    dtype = _NUMERIC[kind][0]
    has_nulls = col.null_count > 0
    values = pc.fill_null(col, 0) if has_nulls else col
    parts = [("values", np.ascontiguousarray(values.to_numpy(), dtype=dtype))]
    if has_nulls:
        valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
        parts.append(("validity", np.packbits(valid, bitorder="little")))
    return {"hasNulls": has_nulls}, parts


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64[len+1] starting at 0, data uint8) of a string/large_string array without nulls."""
    n = len(arr)
    if n == 0:
        return np.zeros(1, dtype="<i8"), np.zeros(0, dtype=np.uint8)
    bufs = arr.buffers()
    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offs = np.frombuffer(bufs[1], dtype=off_type, count=n + 1,
                         offset=arr.offset * np.dtype(off_type).itemsize)
    start, end = int(offs[0]), int(offs[-1])
    if end > start:
        data = np.frombuffer(bufs[2], dtype=np.uint8, count=end - start, offset=start)
    else:
        data = np.zeros(0, dtype=np.uint8)
    return (offs.astype(np.int64) - start).astype("<i8", copy=False), data


def _encode_string(col: pa.ChunkedArray) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    try:
        arr = col.combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowCapacityError):  # > 2 GiB of pa.string() data
        arr = col.cast(pa.large_string()).combine_chunks()
    encoded = pc.dictionary_encode(arr, null_encoding="encode")
    dictionary = encoded.dictionary
    card = len(dictionary)
    # sort the dictionary (not the rows): Arrow compares strings as unsigned bytes, i.e. UTF-8
    # byte order; the null entry, if any, goes first as in Druid.
    order = pc.array_sort_indices(dictionary, null_placement="at_start").to_numpy()
    rank = np.empty(card, dtype=np.int32)
    rank[order] = np.arange(card, dtype=np.int32)
    ids = _k.remap_ids(encoded.indices.to_numpy(), rank)
    sorted_dict = dictionary.take(pa.array(order))
    has_null = sorted_dict.null_count > 0
    if has_null:
        sorted_dict = pc.fill_null(sorted_dict, "")
    dict_offsets, dict_data = _string_buffers(sorted_dict)
    width = _k.id_width(card)
    index_offsets, index_rows = _k.build_inverted_index(ids, card)
    parts = [
        ("dictOffsets", dict_offsets),
        ("dictData", dict_data),
        ("ids", _k.pack_ids(ids, width)),
        ("indexOffsets", index_offsets.astype("<i8", copy=False)),
        ("indexRows", index_rows.astype("<i4", copy=False)),
    ]
    return {"hasNulls": has_null, "cardinality": card, "idWidth": width}, parts


def _check_columns(table: pa.Table, dimensions: list[str], metrics: list[str]) -> list[str]:
    names = [TIME_COLUMN, *dimensions, *metrics]
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"column names must be strings, got {name!r}")
        if name in seen:
            raise ValueError(f"column {name!r} is listed more than once "
                             "(__time, dimensions and metrics must be distinct)")
        seen.add(name)
        matches = table.schema.get_all_field_indices(name)
        if not matches:
            raise ValueError(f"table has no column {name!r}")
        if len(matches) > 1:
            raise ValueError(f"table has {len(matches)} columns named {name!r}")
    time_type = table.schema.field(TIME_COLUMN).type
    if not pa.types.is_int64(time_type):
        raise TypeError(f"{TIME_COLUMN} must be int64 epoch millis, got {time_type}")
    if table.column(TIME_COLUMN).null_count:
        raise ValueError(f"{TIME_COLUMN} has {table.column(TIME_COLUMN).null_count} null value(s)")
    return names


def write_segment(path: str, table: pa.Table, *, dimensions: list[str],
                  metrics: Sequence[str] = ()) -> int:
    """Write ``table`` as one segment file at ``path``; return the file size in bytes.

    Columns are stored in the order ``__time, *dimensions, *metrics`` (other table columns are
    ignored), rows in the order given. The file is written under a temporary name in the same
    directory, fsynced, then renamed over ``path``.
    """
    dimensions = list(dimensions)
    metrics = list(metrics)
    names = _check_columns(table, dimensions, metrics)
    n = table.num_rows
    if n > _INT32_MAX:
        raise ValueError(f"a segment holds at most {_INT32_MAX} rows, got {n}")

    entries: list[dict[str, Any]] = []
    blocks: list[list[tuple[str, np.ndarray]]] = []
    for name in names:
        col = table.column(name)
        kind = _column_type(name, col.type)
        extra, parts = _encode_string(col) if kind == "STRING" else _encode_numeric(col, kind)
        entry: dict[str, Any] = {"name": name, "type": kind, "offset": 0, "length": 0, "crc32": 0}
        entry.update(extra)
        layout: dict[str, list[int]] = {}
        crc = 0
        pos = 0
        for part_name, buf in parts:
            raw = memoryview(buf).cast("B")
            layout[part_name] = [pos, raw.nbytes]
            crc = zlib.crc32(raw, crc)
            pos += raw.nbytes
            pad = _align(pos) - pos
            crc = zlib.crc32(bytes(pad), crc)
            pos += pad
        entry["length"] = pos
        entry["crc32"] = crc
        entry["parts"] = layout
        entries.append(entry)
        blocks.append(parts)

    times = table.column(TIME_COLUMN)
    toc: dict[str, Any] = {
        "format": "msqcore-segment",
        "version": FORMAT_VERSION,
        "numRows": n,
        "dimensions": dimensions,
        "metrics": metrics,
        "minTime": pc.min(times).as_py() if n else None,
        "maxTime": pc.max(times).as_py() if n else None,
        "columns": entries,
    }
    # Absolute offsets depend on the TOC length, which depends on the offsets' digits: iterate.
    data_start = _align(HEADER_SIZE + 2)
    while True:
        pos = data_start
        for entry in entries:
            entry["offset"] = pos
            pos += entry["length"]
        toc_bytes = json.dumps(toc, separators=(",", ":")).encode("utf-8")
        if HEADER_SIZE + len(toc_bytes) <= data_start:
            break
        data_start = _align(HEADER_SIZE + len(toc_bytes))
    toc_bytes += b" " * (data_start - HEADER_SIZE - len(toc_bytes))
    file_size = pos
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, len(toc_bytes), zlib.crc32(toc_bytes), file_size, n)

    parent = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o644)
            f.write(header)
            f.write(toc_bytes)
            for parts in blocks:
                written = 0
                for _, buf in parts:
                    raw = memoryview(buf).cast("B")
                    f.write(raw)
                    written += raw.nbytes
                    f.write(bytes(_align(written) - written))
                    written = _align(written)
            if f.tell() != file_size:  # defensive: the layout above must match what was written
                raise AssertionError(f"segment writer wrote {f.tell()} bytes, planned {file_size}")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return file_size


# --- reading ------------------------------------------------------------------------------


class _Segment:
    """An open segment file with its parsed, cheaply-validated table of contents."""

    def __init__(self, path: str, f: BinaryIO):
        self.path = path
        self.f = f
        self.size = os.fstat(f.fileno()).st_size
        self._parse()

    def corrupt(self, problem: str) -> SegmentCorruptError:
        return SegmentCorruptError(f"segment {self.path!r} is corrupt: {problem}")

    # header + TOC -------------------------------------------------------------------------

    def _parse(self) -> None:
        if self.size < HEADER_SIZE:
            raise self.corrupt(f"truncated: {self.size} bytes, shorter than the {HEADER_SIZE}-byte header")
        magic, version, toc_len, toc_crc, file_size, num_rows = _HEADER.unpack(self.f.read(HEADER_SIZE))
        if magic != MAGIC:
            raise self.corrupt(f"bad magic {magic!r}, expected {MAGIC!r}")
        if version != FORMAT_VERSION:
            raise self.corrupt(f"unsupported format version {version} (this reader knows {FORMAT_VERSION})")
        if file_size != self.size:
            what = "truncated" if self.size < file_size else "trailing bytes"
            raise self.corrupt(f"{what}: header says {file_size} bytes, file has {self.size}")
        if toc_len > _MAX_TOC or HEADER_SIZE + toc_len > self.size:
            raise self.corrupt(f"table of contents length {toc_len} does not fit in {self.size} bytes")
        toc_bytes = self.f.read(toc_len)
        if zlib.crc32(toc_bytes) != toc_crc:
            raise self.corrupt("table of contents checksum mismatch")
        try:
            toc = json.loads(toc_bytes.decode("utf-8"))
            self._check_toc(toc, num_rows, HEADER_SIZE + toc_len)
        except SegmentCorruptError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            raise self.corrupt(f"malformed table of contents ({type(e).__name__}: {e})") from None
        self.toc = toc
        self.num_rows: int = num_rows
        self.columns: dict[str, dict[str, Any]] = {c["name"]: c for c in toc["columns"]}

    def _check_toc(self, toc: dict[str, Any], num_rows: int, data_start: int) -> None:
        if toc["numRows"] != num_rows:
            raise self.corrupt(f"row count mismatch: header {num_rows}, table of contents {toc['numRows']}")
        n = num_rows
        cols = toc["columns"]
        names = [c["name"] for c in cols]
        if names != [TIME_COLUMN, *toc["dimensions"], *toc["metrics"]]:
            raise self.corrupt(f"column list {names} does not match __time + dimensions + metrics")
        if len(set(names)) != len(names):
            raise self.corrupt("duplicate column names")
        if data_start % _ALIGN:
            raise self.corrupt(f"column data starts at unaligned offset {data_start}")
        pos = data_start
        for c in cols:
            name, kind = c["name"], c["type"]
            offset, length = c["offset"], c["length"]
            if not (isinstance(offset, int) and isinstance(length, int) and isinstance(c["crc32"], int)):
                raise self.corrupt(f"column {name!r}: non-integer offset/length/crc32")
            if offset != pos or length < 0 or length % _ALIGN:
                raise self.corrupt(f"column {name!r}: block [{offset}, +{length}) does not follow the "
                                   f"previous block ending at {pos}")
            pos = offset + length
            if kind in _NUMERIC:
                if name == TIME_COLUMN and (kind != "LONG" or c["hasNulls"]):
                    raise self.corrupt(f"{TIME_COLUMN} must be a LONG column without nulls")
                expected = {"values": n * _NUMERIC[kind][0].itemsize}
                if c["hasNulls"] is True:
                    expected["validity"] = (n + 7) // 8
                elif c["hasNulls"] is not False:
                    raise self.corrupt(f"column {name!r}: hasNulls must be a boolean")
            elif kind == "STRING":
                card, width = c["cardinality"], c["idWidth"]
                if not isinstance(card, int) or not 0 <= card <= _INT32_MAX:
                    raise self.corrupt(f"column {name!r}: bad cardinality {card!r}")
                if width != _k.id_width(card):
                    raise self.corrupt(f"column {name!r}: id width {width!r} is not the minimal width "
                                       f"{_k.id_width(card)} for cardinality {card}")
                if not isinstance(c["hasNulls"], bool) or (c["hasNulls"] and card == 0):
                    raise self.corrupt(f"column {name!r}: bad hasNulls {c['hasNulls']!r}")
                expected = {"dictOffsets": 8 * (card + 1), "dictData": None, "ids": n * width,
                            "indexOffsets": 8 * (card + 1), "indexRows": 4 * n}
            else:
                raise self.corrupt(f"column {name!r}: unknown type {kind!r}")
            parts = c["parts"]
            if list(parts) != list(expected):
                raise self.corrupt(f"column {name!r}: parts {list(parts)}, expected {list(expected)}")
            part_pos = 0
            for part_name, want in expected.items():
                rel, plen = parts[part_name]
                if not (isinstance(rel, int) and isinstance(plen, int)):
                    raise self.corrupt(f"column {name!r}: non-integer {part_name} position")
                if rel != part_pos or plen < 0 or (want is not None and plen != want):
                    raise self.corrupt(f"column {name!r}: part {part_name} at [{rel}, +{plen}) "
                                       f"(expected at {part_pos}" + (f" with {want} bytes)" if want is not None
                                                                     else ")"))
                part_pos = _align(rel + plen)
            if part_pos != length:
                raise self.corrupt(f"column {name!r}: parts end at {part_pos}, block length is {length}")
        if pos != self.size:
            raise self.corrupt(f"column blocks end at {pos}, file has {self.size} bytes")

    # raw access ----------------------------------------------------------------------------

    def column(self, name: str) -> dict[str, Any]:
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"segment {self.path!r} has no column {name!r}; "
                           f"it has {list(self.columns)}") from None

    def read_range(self, start: int, length: int) -> np.ndarray:
        buf = np.empty(length, dtype=np.uint8)
        self.f.seek(start)
        view = memoryview(buf)
        got = 0
        while got < length:
            k = self.f.readinto(view[got:])
            if not k:
                raise self.corrupt(f"truncated: could not read {length} bytes at offset {start}")
            got += k
        return buf

    def part(self, col: dict[str, Any], part_name: str, block: np.ndarray | None = None) -> np.ndarray:
        rel, plen = col["parts"][part_name]
        if block is not None:
            return block[rel:rel + plen]
        return self.read_range(col["offset"] + rel, plen)

    # decoding -------------------------------------------------------------------------------

    def dictionary(self, col: dict[str, Any], block: np.ndarray | None = None, *,
                   check_order: bool = False, large: bool = False) -> pa.Array:
        """The sorted dictionary as a string array (null entry first when the column has nulls)."""
        card = col["cardinality"]
        offsets = self.part(col, "dictOffsets", block).view("<i8").astype(np.int64, copy=False)
        data = self.part(col, "dictData", block)
        try:
            _k.check_dictionary(offsets, data, 2 if col["hasNulls"] else 1, check_order)
            if col["hasNulls"] and offsets[1] != 0:
                raise ValueError("the null dictionary entry is not empty")
        except ValueError as e:
            raise self.corrupt(f"column {col['name']!r}: {e}") from None
        validity = None
        if col["hasNulls"]:
            mask = np.ones(card, dtype=bool)
            mask[0] = False
            validity = pa.py_buffer(np.packbits(mask, bitorder="little"))
        if large or len(data) > _INT32_MAX:
            typ, offs = pa.large_string(), offsets
        else:
            typ, offs = pa.string(), offsets.astype(np.int32)
        arr = pa.Array.from_buffers(typ, card, [validity, pa.py_buffer(offs), pa.py_buffer(data)],
                                    null_count=1 if col["hasNulls"] else 0)
        try:
            arr.validate(full=True)  # offsets are checked above; this checks the UTF-8
        except pa.ArrowInvalid as e:
            raise self.corrupt(f"column {col['name']!r}: bad dictionary ({e})") from None
        return arr

    def ids(self, col: dict[str, Any], block: np.ndarray | None = None) -> np.ndarray:
        try:
            return _k.unpack_ids(self.part(col, "ids", block), col["idWidth"], self.num_rows,
                                 col["cardinality"])
        except ValueError as e:
            raise self.corrupt(f"column {col['name']!r}: {e}") from None

    def decode(self, col: dict[str, Any]) -> pa.Array:
        n = self.num_rows
        kind = col["type"]
        if kind == "STRING":
            ids = pa.array(self.ids(col))
            dictionary = self.dictionary(col)
            try:
                return dictionary.take(ids)
            except (pa.ArrowInvalid, pa.ArrowCapacityError):
                # more than 2 GiB of decoded text: pa.string() offsets cannot hold it
                return self.dictionary(col, large=True).take(ids)
        dtype, typ = _NUMERIC[kind]
        values = self.part(col, "values").view(dtype).astype(dtype.newbyteorder("="), copy=False)
        validity = pa.py_buffer(self.part(col, "validity")) if col["hasNulls"] else None
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(values)],
                                     null_count=-1 if col["hasNulls"] else 0)


@contextlib.contextmanager
def _open(path: str):
    with open(path, "rb") as f:
        yield _Segment(os.fspath(path), f)


def read_segment(path: str, columns: list[str] | None = None) -> pa.Table:
    """Read all columns (or only ``columns``, in that order) as a ``pa.Table``.

    Strings come back as decoded ``pa.string()``; other columns are never read. Raises
    ``SegmentCorruptError`` for damaged files and ``KeyError`` for unknown column names.
    """
    with _open(path) as seg:
        names = list(seg.columns) if columns is None else list(columns)
        cols = [seg.column(name) for name in names]
        arrays = [seg.decode(c) for c in cols]
    return pa.Table.from_arrays(arrays, names=names)


def read_segment_meta(path: str) -> dict[str, Any]:
    """Row count, column names/types, dimensions, metrics, file size and time range."""
    with _open(path) as seg:
        toc = seg.toc
        return {
            "numRows": seg.num_rows,
            "columns": [{"name": c["name"], "type": c["type"]} for c in toc["columns"]],
            "dimensions": list(toc["dimensions"]),
            "metrics": list(toc["metrics"]),
            "size": seg.size,
            "minTime": toc["minTime"],
            "maxTime": toc["maxTime"],
        }


def validate_segment(path: str, *, full: bool = False) -> None:
    """Check a segment file; raise ``SegmentCorruptError`` naming the path and the problem.

    The cheap check reads only the header and table of contents (magic, version, file size,
    TOC checksum, block and part positions). ``full=True`` also reads every column: its crc32,
    dictionary offsets and strict sort order, ids in range, the inverted index matching the ids,
    and the recorded min/max time.
    """
    with _open(path) as seg:
        if not full:
            return
        for col in seg.toc["columns"]:
            block = seg.read_range(col["offset"], col["length"])
            crc = zlib.crc32(block)
            if crc != col["crc32"]:
                raise seg.corrupt(f"column {col['name']!r}: checksum mismatch "
                                  f"(stored {col['crc32']:#010x}, computed {crc:#010x})")
            if col["type"] == "STRING":
                seg.dictionary(col, block, check_order=True)
                ids = seg.ids(col, block)
                offsets = seg.part(col, "indexOffsets", block).view("<i8").astype(np.int64, copy=False)
                rows = seg.part(col, "indexRows", block).view("<i4").astype(np.int32, copy=False)
                try:
                    _k.check_inverted_index(ids, offsets, rows)
                except ValueError as e:
                    raise seg.corrupt(f"column {col['name']!r}: {e}") from None
            elif col["name"] == TIME_COLUMN:
                times = seg.part(col, "values", block).view("<i8")
                lo = int(times.min()) if len(times) else None
                hi = int(times.max()) if len(times) else None
                if (lo, hi) != (seg.toc["minTime"], seg.toc["maxTime"]):
                    raise seg.corrupt(f"time range [{lo}, {hi}] does not match the recorded "
                                      f"[{seg.toc['minTime']}, {seg.toc['maxTime']}]")


def string_value_index(path: str, column: str) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """The inverted index of a STRING column in CSR form.

    Returns ``(dictionary, offsets, rows)``: the sorted dictionary as ``pa.string()`` (a null
    entry first if the column has nulls), ``offsets`` int64[card+1] and ``rows`` int32[n] such
    that ``rows[offsets[i]:offsets[i+1]]`` are the ascending rows whose value is ``dictionary[i]``.
    Only the dictionary and index parts are read.
    """
    with _open(path) as seg:
        col = seg.column(column)
        if col["type"] != "STRING":
            raise ValueError(f"column {column!r} of segment {path!r} is {col['type']}, not STRING")
        dictionary = seg.dictionary(col)
        offsets = seg.part(col, "indexOffsets").view("<i8").astype(np.int64, copy=False)
        rows = seg.part(col, "indexRows").view("<i4").astype(np.int32, copy=False)
        n = seg.num_rows
        if (offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 0)
                or (n and (rows.min() < 0 or rows.max() >= n))):
            raise seg.corrupt(f"column {column!r}: inverted index out of range")
    return dictionary, offsets, rows
