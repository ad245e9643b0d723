"""Frames: the binary row batches that move between stages (layout in ``docs/frames.md``).

A frame holds up to ``max_frame_size`` bytes (Druid's default 1,000,000) of rows in typed
columns, plus a **sort-key column**: per row, the key columns encoded so that plain
unsigned byte order (``memcmp``) is the SQL order. Sorting, merging and partitioning work on
those bytes only.

    encode_frames(batch, key, max_frame_size=1_000_000) -> list[pa.Buffer]
    decode_frame(buf) -> pa.RecordBatch                    # zero-copy views into ``buf``
    validate_frame(buf, *, full=False) -> None              # raises FrameCorruptError
    encode_keys(table, key) -> (offsets int64[n + 1], data uint8[...])
    frame_info(buf) -> FrameInfo;  frame_keys(buf) -> (offsets, data)

A frame is any bytes-like object: the encoders return ``pa.Buffer`` (from Arrow's memory
pool), frame files are read as ``bytes``; every function here takes either.

Frame files (run files and sorter outputs) are frames back to back plus a partition index:

    FrameFileWriter(path);  FrameFileReader(path);  read_frames_file(path, partition=None)

The per-row loops (key encoding, gathering rows into frames, checks) are in the Cython
kernel ``msqcore.kernels._frame``; this module maps Arrow types and owns the file format.
"""
from __future__ import annotations

import enum
import os
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from msqcore.errors import ColumnTypeNotSupported, MsqError, RowTooLarge
from msqcore.kernels import _frame as _k

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "MULTI_VALUE_METADATA",
    "ColumnTypeNotSupported",
    "FrameCorruptError",
    "FrameFileReader",
    "FrameFileWriter",
    "FrameInfo",
    "FrameSchema",
    "FrameType",
    "RowTooLarge",
    "decode_frame",
    "encode_frames",
    "encode_keys",
    "frame_info",
    "frame_keys",
    "read_frames_file",
    "validate_frame",
]

if sys.byteorder != "little":  # pragma: no cover - the format is little-endian, read in place
    raise ImportError("msqcore frames need a little-endian machine")

DEFAULT_MAX_FRAME_SIZE = 1_000_000
_MAX_FRAME_LIMIT = (1 << 31) - 1

#: Field metadata marking a ``list<string>`` column as a Druid multi-value STRING (rather
#: than ARRAY<STRING>). Decoding puts it back on the field.
MULTI_VALUE_METADATA = {b"msqcore.multiValue": b"true"}

KeySpec = Sequence[tuple[str, bool]]


# --- errors ---------------------------------------------------------------------------------


class FrameCorruptError(MsqError, ValueError):
    """A frame or frame file failed validation (bad magic, lengths, offsets or checksum)."""


# --- types ----------------------------------------------------------------------------------


class FrameType(enum.IntEnum):
    """Column types of a frame (the byte stored in the frame schema)."""

    LONG = 1
    FLOAT = 2
    DOUBLE = 3
    STRING = 4
    MULTI_VALUE_STRING = 5
    LONG_ARRAY = 6
    FLOAT_ARRAY = 7
    DOUBLE_ARRAY = 8
    STRING_ARRAY = 9

    @property
    def druid_name(self) -> str:
        """The type as a Druid row signature names it (a multi-value STRING is ``STRING``)."""
        return _DRUID_NAMES[self]

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self]


_DRUID_NAMES = {
    FrameType.LONG: "LONG", FrameType.FLOAT: "FLOAT", FrameType.DOUBLE: "DOUBLE",
    FrameType.STRING: "STRING", FrameType.MULTI_VALUE_STRING: "STRING",
    FrameType.LONG_ARRAY: "ARRAY<LONG>", FrameType.FLOAT_ARRAY: "ARRAY<FLOAT>",
    FrameType.DOUBLE_ARRAY: "ARRAY<DOUBLE>", FrameType.STRING_ARRAY: "ARRAY<STRING>",
}
_ARROW_TYPES = {
    FrameType.LONG: pa.int64(), FrameType.FLOAT: pa.float32(), FrameType.DOUBLE: pa.float64(),
    FrameType.STRING: pa.string(), FrameType.MULTI_VALUE_STRING: pa.list_(pa.string()),
    FrameType.LONG_ARRAY: pa.list_(pa.int64()), FrameType.FLOAT_ARRAY: pa.list_(pa.float32()),
    FrameType.DOUBLE_ARRAY: pa.list_(pa.float64()), FrameType.STRING_ARRAY: pa.list_(pa.string()),
}
_FIXED = {FrameType.LONG: 8, FrameType.FLOAT: 4, FrameType.DOUBLE: 8}
_FIXED_LISTS = {FrameType.LONG_ARRAY: 8, FrameType.FLOAT_ARRAY: 4, FrameType.DOUBLE_ARRAY: 8}
_STRING_LISTS = (FrameType.MULTI_VALUE_STRING, FrameType.STRING_ARRAY)
_STRING_VIEW = pa.string_view() if hasattr(pa, "string_view") else None


def _is_stringish(t: pa.DataType) -> bool:
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)
            or (_STRING_VIEW is not None and t == _STRING_VIEW)
            or (pa.types.is_dictionary(t) and _is_stringish(t.value_type)))


def _is_longish(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_timestamp(t)
            or pa.types.is_duration(t))


def _is_multi_value(field: pa.Field) -> bool:
    md = field.metadata or {}
    return all(md.get(k) == v for k, v in MULTI_VALUE_METADATA.items())


def frame_type_of(field: pa.Field) -> FrameType:
    """The frame type an Arrow field is stored as; raises ColumnTypeNotSupported."""
    t = field.type
    if pa.types.is_dictionary(t) and not _is_stringish(t.value_type):
        t = t.value_type
    if pa.types.is_int64(t) or _is_longish(t):
        return FrameType.LONG
    if pa.types.is_float64(t):
        return FrameType.DOUBLE
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return FrameType.FLOAT
    if _is_stringish(t):
        return FrameType.STRING
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        v = t.value_type
        if _is_stringish(v):
            return FrameType.MULTI_VALUE_STRING if _is_multi_value(field) else FrameType.STRING_ARRAY
        if _is_longish(v):
            return FrameType.LONG_ARRAY
        if pa.types.is_float64(v):
            return FrameType.DOUBLE_ARRAY
        if pa.types.is_float32(v) or pa.types.is_float16(v):
            return FrameType.FLOAT_ARRAY
    raise ColumnTypeNotSupported(columnName=field.name, columnType=str(field.type))


def _normalize(arr: pa.Array, ftype: FrameType) -> pa.Array:
    """Cast ``arr`` to the canonical Arrow type of ``ftype`` (no copy when it already is)."""
    target = _ARROW_TYPES[ftype]
    t = arr.type
    if t == target:
        return arr
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), target)
    if ftype is FrameType.LONG and (pa.types.is_timestamp(t) or pa.types.is_duration(t)):
        return arr.view(pa.int64()) if arr.offset == 0 else arr.cast(pa.int64())
    if ftype in _FIXED_LISTS or ftype in _STRING_LISTS:
        v = t.value_type
        if pa.types.is_timestamp(v) or pa.types.is_duration(v):
            arr = arr.cast(pa.list_(pa.int64()))
    return arr.cast(target)


@dataclass(frozen=True)
class FrameSchema:
    """Column names, frame types and the sort key of a stream of frames."""

    names: tuple[str, ...]
    types: tuple[FrameType, ...]
    key: tuple[tuple[int, bool], ...]          # (column index, descending)

    @classmethod
    def for_schema(cls, schema: pa.Schema, key: KeySpec = ()) -> FrameSchema:
        names = tuple(schema.names)
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column names: {list(names)}")
        types = tuple(frame_type_of(f) for f in schema)
        idx = {n: i for i, n in enumerate(names)}
        spec = []
        for item in key:
            name, desc = item
            if name not in idx:
                raise KeyError(f"key column {name!r} is not in the batch")
            spec.append((idx[name], bool(desc)))
        return cls(names, types, tuple(spec))

    @property
    def has_key(self) -> bool:
        return bool(self.key)

    @property
    def key_spec(self) -> list[tuple[str, bool]]:
        return [(self.names[i], d) for i, d in self.key]

    @property
    def section(self) -> bytes:
        return _section(self)

    @property
    def num_buffers(self) -> int:
        return sum(_k.buffer_count(int(t)) for t in self.types) + (2 if self.key else 0)

    @property
    def overhead(self) -> int:
        """Bytes of a frame that are not rows (header, schema, directory, slack)."""
        return _k.frame_overhead(len(self.section), self.num_buffers)

    @property
    def arrow_schema(self) -> pa.Schema:
        return _arrow_schema(self)

    def normalize(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` with every column cast to the canonical type of its frame type."""
        if batch.schema.equals(self.arrow_schema, check_metadata=True):
            return batch                         # already canonical (the common case)
        if tuple(batch.schema.names) != self.names:
            raise ValueError(f"batch columns {batch.schema.names} differ from {list(self.names)}")
        cols = []
        for i, (arr, ftype) in enumerate(zip(batch.columns, self.types)):
            have = frame_type_of(batch.schema.field(i))
            if have is FrameType.STRING and ftype in _STRING_LISTS:
                from msqcore.planner.arrays import as_lists
                arr = as_lists(arr)              # a single-valued string is a one-value multi-value string
            elif have != ftype:
                raise ValueError(f"column {self.names[i]!r} is {batch.schema.field(i).type}, "
                                 f"expected {ftype.druid_name}")
            cols.append(_normalize(arr, ftype))
        return pa.RecordBatch.from_arrays(cols, schema=self.arrow_schema)

    def widened(self, schema: pa.Schema) -> FrameSchema:
        """This schema, with each STRING column that ``schema`` has as a list of strings made
        one: rows of both then fit it (``normalize``). A ``listDelimiter`` column is a
        multi-value string (a list) only in the files whose values held the delimiter."""
        if tuple(schema.names) != self.names:
            return self
        wide = [frame_type_of(f) for f in schema]
        types = tuple(w if t is FrameType.STRING and w in _STRING_LISTS else t for t, w in zip(self.types, wide))
        return self if types == self.types else FrameSchema(self.names, types, self.key)


_recent_schemas: list[tuple[pa.Schema, tuple, FrameSchema]] = []


def frame_schema(schema: pa.Schema, key: KeySpec = ()) -> FrameSchema:
    """``FrameSchema.for_schema``, remembered for the last few schemas (hashing a pa.Schema
    costs more than building it again; comparing one is cheap)."""
    spec = tuple((name, bool(desc)) for name, desc in key)
    for s, k, fs in _recent_schemas:
        if k == spec and s.equals(schema, check_metadata=True):
            return fs
    fs = FrameSchema.for_schema(schema, spec)
    _recent_schemas.insert(0, (schema, spec, fs))
    del _recent_schemas[8:]
    return fs


@lru_cache(maxsize=256)
def _section(fs: FrameSchema) -> bytes:
    out = [struct.pack("<HH", len(fs.key), 0)]
    out += [struct.pack("<HBB", i, int(d), 0) for i, d in fs.key]
    for name, t in zip(fs.names, fs.types):
        raw = name.encode("utf-8")
        if len(raw) > 0xFFFF:
            raise ValueError(f"column name too long: {name[:40]!r}...")
        out.append(struct.pack("<BBH", int(t), 0, len(raw)) + raw)
    return b"".join(out)


@lru_cache(maxsize=256)
def _arrow_schema(fs: FrameSchema) -> pa.Schema:
    return pa.schema([
        pa.field(n, _ARROW_TYPES[t], metadata=MULTI_VALUE_METADATA if t is FrameType.MULTI_VALUE_STRING else None)
        for n, t in zip(fs.names, fs.types)
    ])


@lru_cache(maxsize=256)
def _schema_from_layout(names: tuple, types: tuple, key: tuple) -> FrameSchema:
    return FrameSchema(names, tuple(FrameType(t) for t in types), key)


# --- Arrow batches -> kernel sources ------------------------------------------------------------


def _addr(buf: pa.Buffer | None, offset: int = 0) -> int:
    return 0 if buf is None else buf.address + offset


def source_for_batch(batch: pa.RecordBatch, fs: FrameSchema,
                     keys: tuple[np.ndarray, np.ndarray] | None = None) -> _k.FrameSource:
    """A kernel ``FrameSource`` over a normalized batch (and its encoded keys, if any)."""
    src = _k.FrameSource(batch.num_rows, batch.num_columns, keys is not None)
    _set_columns(src, batch, fs)
    if keys is not None:
        _set_key(src, batch.num_rows, keys)
    return src.finalize(costs=False)


def keyed_source(batch: pa.RecordBatch, fs: FrameSchema) -> tuple[_k.FrameSource, tuple[np.ndarray, np.ndarray]]:
    """A kernel source over a normalized batch with its sort keys encoded (one pass)."""
    src = _k.FrameSource(batch.num_rows, batch.num_columns, True)
    _set_columns(src, batch, fs)
    cols, desc = _key_arrays(fs)
    keys = _k.encode_keys(src, cols, desc)
    _set_key(src, batch.num_rows, keys)
    return src.finalize(), keys


def lazy_keyed_source(batch: pa.RecordBatch, fs: FrameSchema) -> _k.FrameSource:
    """A kernel source over a normalized batch whose keys are sized but not yet encoded.

    ``write_frames(..., lazy_keys=True)`` encodes them straight into the frames, which
    saves writing every key twice when the rows are not sorted first.
    """
    src = _k.FrameSource(batch.num_rows, batch.num_columns, True)
    _set_columns(src, batch, fs)
    offsets = _k.key_offsets(src, _key_arrays(fs)[0])
    src.set_key(offsets, offsets.ctypes.data, True, 0)
    return src.finalize(costs=False)


def _set_key(src: _k.FrameSource, n: int, keys: tuple[np.ndarray, np.ndarray]) -> None:
    offsets, data = keys
    if offsets.dtype != np.int64 or data.dtype != np.uint8 or len(offsets) != n + 1:
        raise ValueError("keys must be (int64[n + 1], uint8[...]) for the batch's n rows")
    src.set_key(keys, offsets.ctypes.data, True, data.ctypes.data)


def _set_columns(src: _k.FrameSource, batch: pa.RecordBatch, fs: FrameSchema) -> None:
    for i, (arr, ftype) in enumerate(zip(batch.columns, fs.types)):
        bufs = arr.buffers()
        validity = bufs[0] if arr.null_count else None
        off = arr.offset
        if ftype in _FIXED:
            src.set_column(i, int(ftype), arr, _addr(validity), off, _addr(bufs[1], off * _FIXED[ftype]), 0, False, 0)
        elif ftype is FrameType.STRING:
            src.set_column(i, int(ftype), arr, _addr(validity), off, 0, _addr(bufs[1], off * 4), False, _addr(bufs[2]))
        else:
            child = arr.values
            cb = child.buffers()
            cvalid = cb[0] if child.null_count else None
            co = child.offset
            if ftype in _FIXED_LISTS:
                src.set_column(i, int(ftype), (arr, child), _addr(validity), off, 0, _addr(bufs[1], off * 4), False, 0,
                               _addr(cvalid), co, _addr(cb[1], co * _FIXED_LISTS[ftype]))
            else:
                src.set_column(i, int(ftype), (arr, child), _addr(validity), off, 0, _addr(bufs[1], off * 4), False, 0,
                               _addr(cvalid), co, 0, _addr(cb[1], co * 4), False, _addr(cb[2]))


def _batches(data: pa.RecordBatch | pa.Table) -> list[pa.RecordBatch]:
    if isinstance(data, pa.RecordBatch):
        return [data]
    if isinstance(data, pa.Table):
        return [b for b in data.to_batches() if b.num_rows] or [pa.RecordBatch.from_pylist([], schema=data.schema)]
    raise TypeError(f"expected a pyarrow RecordBatch or Table, got {type(data).__name__}")


@lru_cache(maxsize=256)
def _key_arrays(fs: FrameSchema) -> tuple[np.ndarray, np.ndarray]:
    cols = np.array([i for i, _ in fs.key], dtype=np.int32)
    desc = np.array([1 if d else 0 for _, d in fs.key], dtype=np.uint8)
    cols.flags.writeable = desc.flags.writeable = False      # shared by every caller
    return cols, desc


def batch_keys(src: _k.FrameSource, fs: FrameSchema) -> tuple[np.ndarray, np.ndarray]:
    """Encoded keys of a key-less source built from a normalized batch."""
    cols, desc = _key_arrays(fs)
    return _k.encode_keys(src, cols, desc)


def encode_keys(table: pa.RecordBatch | pa.Table, key: KeySpec) -> tuple[np.ndarray, np.ndarray]:
    """The sort-key bytes of every row: ``(offsets int64[n + 1], data uint8[...])``.

    Row ``i``'s key is ``data[offsets[i]:offsets[i + 1]]``; comparing keys as unsigned bytes
    (shorter prefix first) gives the SQL order of ``key`` (``[(column, descending)]``):
    nulls first ascending and last descending, numbers by value (NaN greatest, -0.0 equal
    to 0.0), strings by UTF-8 bytes, arrays element by element (a prefix first).
    """
    batches = _batches(table)
    fs = frame_schema(batches[0].schema, key)
    if not fs.key:
        n = sum(b.num_rows for b in batches)
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    parts = [keyed_source(fs.normalize(b), fs)[1] for b in batches]
    if len(parts) == 1:
        return parts[0]
    return concat_keys(parts)


def concat_keys(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``(offsets, data)`` key arrays."""
    if not parts:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    base = np.cumsum([0] + [int(o[-1]) for o, _ in parts[:-1]])
    offsets = np.concatenate([parts[0][0][:1]] + [o[1:] + b for (o, _), b in zip(parts, base)])
    data = np.concatenate([d for _, d in parts])
    return offsets.astype(np.int64, copy=False), data


# --- encode / decode ----------------------------------------------------------------------------


def check_max_frame_size(max_frame_size: int) -> int:
    max_frame_size = int(max_frame_size)
    if not 1024 <= max_frame_size <= _MAX_FRAME_LIMIT:
        raise ValueError(f"max_frame_size must be within [1024, {_MAX_FRAME_LIMIT}], got {max_frame_size}")
    return max_frame_size


def write_frames(fs: FrameSchema, sources: list, source_ids: np.ndarray | None, rows: np.ndarray | None,
                 max_frame_size: int, *, sorted: bool = False, start: int = 0,
                 end: int | None = None, lazy_keys: bool = False) -> Iterator[tuple[pa.Buffer, int]]:
    """Yield ``(frame, row_count)`` for the selected rows, each frame as full as it can be.

    ``source_ids`` and ``rows`` None select the rows of the only source in order.
    ``lazy_keys``: the sources come from ``lazy_keyed_source``.
    """
    if end is None:
        end = sources[0].num_rows if rows is None else len(rows)
    flags = (_k.FLAG_HAS_KEY if fs.key else 0) | (_k.FLAG_SORTED if sorted and fs.key else 0)
    section = fs.section
    key_columns, key_desc = _key_arrays(fs) if lazy_keys else (None, None)
    if end <= start:
        frame, _ = _k.gather_frame(section, sources, source_ids, rows, start, start, max_frame_size, flags,
                                   key_columns, key_desc)
        if frame is None:
            raise RowTooLarge(maxFrameSize=max_frame_size)
        yield frame, 0
        return
    while start < end:
        frame, nxt = _k.gather_frame(section, sources, source_ids, rows, start, end, max_frame_size, flags,
                                     key_columns, key_desc)
        if frame is None:
            raise RowTooLarge(maxFrameSize=max_frame_size)
        yield frame, nxt - start
        start = nxt


def empty_frame(fs: FrameSchema) -> pa.Buffer:
    """A frame with no rows that still carries the schema (and key spec) of ``fs``."""
    batch = pa.RecordBatch.from_pylist([], schema=fs.arrow_schema)
    keys = (np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)) if fs.key else None
    src = source_for_batch(batch, fs, keys)
    ((frame, _),) = write_frames(fs, [src], np.zeros(0, np.int32), np.zeros(0, np.int64), _MAX_FRAME_LIMIT)
    return frame


def encode_frames(batch: pa.RecordBatch | pa.Table, key: KeySpec = (),
                  max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> list[pa.Buffer]:
    """Encode rows (in their order) into as many frames of at most ``max_frame_size`` bytes as needed.

    Every frame carries the sort-key column of ``key`` (``[(column, descending)]``) when it
    is not empty. No rows give one frame with no rows (it still carries the schema).
    Raises ``RowTooLarge`` if one row alone does not fit, ``ColumnTypeNotSupported`` for a
    type frames cannot hold.
    """
    max_frame_size = check_max_frame_size(max_frame_size)
    batches = _batches(batch)
    fs = frame_schema(batches[0].schema, key)
    sources = []
    for b in batches:
        nb = fs.normalize(b)
        sources.append(lazy_keyed_source(nb, fs) if fs.key else source_for_batch(nb, fs))
    source_ids = rows = None                     # one batch: its rows in order
    if len(sources) > 1:
        lengths = np.array([s.num_rows for s in sources], dtype=np.int64)
        source_ids = np.repeat(np.arange(len(sources), dtype=np.int32), lengths)
        rows = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return [f for f, _ in write_frames(fs, sources, source_ids, rows, max_frame_size, lazy_keys=bool(fs.key))]


def _layout(buf) -> tuple:
    try:
        return _k.frame_layout(buf)
    except ValueError as e:
        raise FrameCorruptError(str(e)) from None


def decode_frame(buf) -> pa.RecordBatch:
    """Decode a frame into a RecordBatch whose buffers are views into ``buf`` (no copy).

    Runs the cheap checks of ``validate_frame``; frames from untrusted places should get
    ``validate_frame(buf, full=True)`` first. Raises FrameCorruptError.
    """
    try:
        return _k.decode(buf, _decode_schema)
    except ValueError as e:
        raise FrameCorruptError(str(e)) from None


def _decode_schema(names: tuple, types: tuple, key: tuple) -> pa.Schema:
    """The Arrow schema of a schema section (the kernel keeps it with the section's parse)."""
    return _schema_from_layout(names, types, key).arrow_schema


def validate_frame(buf, *, full: bool = False) -> None:
    """Check a frame.

    ``full=False``: header (magic, version, flags, length), schema, the buffer directory
    and every buffer's length against the row count, and the first and last entry of every
    offsets array. ``full=True`` also: the checksum, every offset (non-decreasing),
    the key order of a frame flagged sorted, and UTF-8 of every string.

    Raises:
        FrameCorruptError: the first problem found.
    """
    if not full:
        _layout(buf)
        return
    try:
        _k.check_frame(buf)
        decode_frame(buf).validate(full=True)
    except FrameCorruptError:
        raise
    except (ValueError, pa.ArrowInvalid) as e:
        raise FrameCorruptError(str(e)) from None


@dataclass(frozen=True)
class FrameInfo:
    num_rows: int
    size: int
    schema: FrameSchema
    sorted: bool

    @property
    def key(self) -> list[tuple[str, bool]]:
        return self.schema.key_spec


def frame_info(buf) -> FrameInfo:
    """Row count, size, schema and sortedness of a frame (cheap checks only)."""
    n, flags, types, _colflags, names, key, _directory, _s = _layout(buf)
    return FrameInfo(n, len(buf), _schema_from_layout(tuple(names), tuple(types), tuple(key)),
                     bool(flags & _k.FLAG_SORTED))


def frame_keys(buf) -> tuple[np.ndarray, np.ndarray]:
    """The key column of a frame as ``(offsets int64[n + 1], data uint8[...])`` (copies)."""
    n, flags, _types, _cf, _names, _key, directory, _s = _layout(buf)
    if not flags & _k.FLAG_HAS_KEY:
        raise ValueError("frame has no key column")
    ooff = directory[-2][0]
    doff, dln = directory[-1]
    offsets = np.frombuffer(buf, dtype="<i4", count=n + 1, offset=ooff).astype(np.int64)
    data = np.frombuffer(buf, dtype=np.uint8, count=dln, offset=doff).copy()
    return offsets, data


# --- frame files --------------------------------------------------------------------------------

FILE_MAGIC = b"MSQFRMS\x01"
_FILE_HEADER = 16                                # magic + 8 reserved bytes
_FOOTER = struct.Struct("<8sIIQQ")               # b"MSQFIDX\x01", partitions, 0, frames, rows
_FOOTER_MAGIC = b"MSQFIDX\x01"
_TRAILER = struct.Struct("<Q8s")                 # footer offset, b"MSQFEND\x01"
_TRAILER_MAGIC = b"MSQFEND\x01"
_FRAME_PREFIX = struct.Struct("<4sHHI")          # magic, version, flags, frame length


class FrameFileWriter:
    """Writes frames back to back, in partitions, then the partition index.

    ``write`` appends a frame to the current partition; ``next_partition`` starts the next
    one. ``before_write(nbytes)`` is called before every write (to account for or refuse
    temporary storage). Use as a context manager or call ``close``.
    """

    def __init__(self, path: str, *, before_write: Callable[[int], None] | None = None):
        self.path = path
        self._before = before_write
        # unbuffered: frames are about maxFrameSize each, and a buffered writer would first
        # copy every one into its buffer
        self._f = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self._closed = False
        self._starts = [_FILE_HEADER]
        self._rows = [0]
        self._frames = [0]
        self._pos = 0
        self._put(FILE_MAGIC + bytes(8))

    def _put(self, data) -> None:
        n = len(data)
        if self._before is not None:
            self._before(n)
        done = self._f.write(data)
        if done != n:                            # a short write (a signal, a full disk): go on
            view = memoryview(data).cast("B")
            while done < n:
                done += self._f.write(view[done:])
        self._pos += n

    @property
    def bytes_written(self) -> int:
        return self._pos

    @property
    def rows_written(self) -> int:
        return sum(self._rows)

    @property
    def frames_written(self) -> int:
        return sum(self._frames)

    @property
    def partition(self) -> int:
        return len(self._starts) - 1

    def write(self, frame: bytes | pa.Buffer, rows: int) -> None:
        self._put(frame)
        self._rows[-1] += rows
        self._frames[-1] += 1

    def write_raw(self, data, frames: int, rows: int) -> None:
        """Append already-encoded frames (e.g. copied from another file's partition)."""
        self._put(data)
        self._rows[-1] += rows
        self._frames[-1] += frames

    def next_partition(self) -> None:
        self._starts.append(self._pos)
        self._rows.append(0)
        self._frames.append(0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            footer_at = self._pos
            p = len(self._starts)
            footer = [_FOOTER.pack(_FOOTER_MAGIC, p, 0, sum(self._frames), sum(self._rows))]
            footer.append(struct.pack(f"<{p + 1}Q", *self._starts, footer_at))
            footer.append(struct.pack(f"<{p}Q", *self._rows))
            footer.append(struct.pack(f"<{p}Q", *self._frames))
            footer.append(_TRAILER.pack(footer_at, _TRAILER_MAGIC))
            self._put(b"".join(footer))
        finally:
            self._f.close()

    def abort(self) -> None:
        """Close without a footer (the file is then unreadable) and remove it."""
        self._closed = True
        try:
            self._f.close()
        except OSError:
            pass
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> FrameFileWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class FrameFileReader:
    """Reads a frame file's index and its frames (``pread``, one ``pa.Buffer`` per frame)."""

    def __init__(self, path: str):
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self._read_index()
        except BaseException:
            os.close(self._fd)
            raise

    def _pread(self, n: int, pos: int) -> bytes:
        data = os.pread(self._fd, n, pos)
        if len(data) != n:
            raise FrameCorruptError(f"{self.path}: truncated at byte {pos + len(data)}")
        return data

    def _read_index(self) -> None:
        size = os.fstat(self._fd).st_size
        self.size = size
        if size < _FILE_HEADER + _FOOTER.size + _TRAILER.size:
            raise FrameCorruptError(f"{self.path}: {size} bytes is too short for a frame file")
        if self._pread(8, 0) != FILE_MAGIC:
            raise FrameCorruptError(f"{self.path}: bad frame file magic")
        footer_at, magic = _TRAILER.unpack(self._pread(_TRAILER.size, size - _TRAILER.size))
        if magic != _TRAILER_MAGIC or not _FILE_HEADER <= footer_at <= size - _TRAILER.size - _FOOTER.size:
            raise FrameCorruptError(f"{self.path}: bad frame file trailer")
        fmagic, p, _r, frames, rows = _FOOTER.unpack(self._pread(_FOOTER.size, footer_at))
        need = _FOOTER.size + 8 * (p + 1) + 16 * p + _TRAILER.size
        if fmagic != _FOOTER_MAGIC or p < 1 or footer_at + need != size:
            raise FrameCorruptError(f"{self.path}: bad frame file footer")
        raw = self._pread(8 * (3 * p + 1), footer_at + _FOOTER.size)
        vals = struct.unpack(f"<{3 * p + 1}Q", raw)
        self.starts = list(vals[:p + 1])
        self.partition_rows = list(vals[p + 1:2 * p + 1])
        self.partition_frames = list(vals[2 * p + 1:])
        self.num_frames = frames
        self.num_rows = rows
        if (self.starts[0] != _FILE_HEADER or self.starts[-1] != footer_at
                or any(a > b for a, b in zip(self.starts, self.starts[1:]))
                or sum(self.partition_rows) != rows or sum(self.partition_frames) != frames):
            raise FrameCorruptError(f"{self.path}: inconsistent partition index")

    @property
    def num_partitions(self) -> int:
        return len(self.partition_rows)

    def byte_range(self, partition: int | None = None) -> tuple[int, int]:
        if partition is None:
            return self.starts[0], self.starts[-1]
        if not 0 <= partition < self.num_partitions:
            raise IndexError(f"partition {partition} out of range (file has {self.num_partitions})")
        return self.starts[partition], self.starts[partition + 1]

    def iter_frames(self, partition: int | None = None) -> Iterator[pa.Buffer]:
        """The frames, each read into a buffer from Arrow's pool (which reuses freed pages)
        together with the first bytes of the next frame: one ``pread`` per frame."""
        pos, end = self.byte_range(partition)
        prefix = None
        while pos < end:
            if end - pos < _FRAME_PREFIX.size:
                raise FrameCorruptError(f"{self.path}: truncated frame at byte {pos}")
            if prefix is None:
                prefix = _FRAME_PREFIX.unpack(self._pread(_FRAME_PREFIX.size, pos))
            magic, _v, _f, length = prefix
            if magic != _k.MAGIC or length < _k.HEADER_SIZE or pos + length > end:
                raise FrameCorruptError(f"{self.path}: bad frame at byte {pos}")
            ahead = _FRAME_PREFIX.size if end - pos - length >= _FRAME_PREFIX.size else 0
            buf = pa.allocate_buffer(length + ahead)
            got = os.preadv(self._fd, [buf], pos)
            if got != length + ahead:
                raise FrameCorruptError(f"{self.path}: truncated at byte {pos + got}")
            prefix = _FRAME_PREFIX.unpack_from(buf, length) if ahead else None
            yield buf.slice(0, length) if ahead else buf
            pos += length

    def read_raw(self, partition: int | None = None) -> Iterator[bytes]:
        """The partition's frames as raw byte chunks (for copying), about 8 MiB at a time."""
        pos, end = self.byte_range(partition)
        while pos < end:
            n = min(8 << 20, end - pos)
            yield self._pread(n, pos)
            pos += n

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FrameFileReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def read_frames_file(path: str, partition: int | None = None) -> Iterator[pa.RecordBatch]:
    """Decode the frames of a frame file (all of them, or one partition's) one by one."""
    with FrameFileReader(path) as reader:
        for buf in reader.iter_frames(partition):
            yield decode_frame(buf)


def frames_to_table(frames: Iterable[bytes | pa.Buffer], schema: pa.Schema | None = None) -> pa.Table:
    """Decode frames into one Table (``schema`` is used when there are none)."""
    batches = [decode_frame(f) for f in frames]
    if not batches:
        if schema is None:
            raise ValueError("no frames and no schema")
        return schema.empty_table()
    return pa.Table.from_batches(batches)
