"""The columnar segment format, version 5: one file per segment, compressed, memory-mapped.

``docs/segment-format.md`` describes every byte. In short::

    header   32 bytes  <6sHIIQQ: magic b"MSQSEG", version 5, tocLength, tocCrc32, fileSize, numRows
    toc      JSON (UTF-8), space-padded so the first column starts 8-byte aligned
    columns  one block per column (__time, dimensions..., metrics...), 8-aligned, tiling the file

Each column block holds named *parts*. A part is a byte stream cut into blocks of
``blockSize`` bytes, each compressed on its own (zstd or LZ4 through ``pyarrow.Codec``),
behind a table of block offsets, so reading one column or a row range decompresses only
the blocks it needs. Strings are dictionary-encoded with a sorted dictionary and a Roaring
bitmap per value (``msqcore.kernels._roaring``); LONGs are stored as narrow offsets from their
minimum where that packs well (frame of reference), other numbers raw, before compression. A
LONG's values may be stored byte plane by byte plane under LZ4 (``msqcore.kernels._planes``)
where that packs about as well as zstd: they decompress several times faster. The ids of a
string column of at most 128 values are bit-packed (1 to 7 bits a row) before compression.

``SegmentWriter`` writes a segment from sorted batches with memory bounded by a chunk of rows
and one column (``write_segment`` is its one-shot case). Reads go through ``mmap``;
``read_segment`` decodes only the requested columns (and rows).
"""
from __future__ import annotations

import contextlib
import copy
import json
import mmap
import os
import shutil
import struct
import tempfile
import threading
import zlib
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.errors import SegmentCorruptError
from msqcore.kernels import _planes
from msqcore.kernels import _roaring as _rb
from msqcore.kernels import _segment as _k
from msqcore.storage import nested

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "BitmapIndex",
    "ROLLUP_KINDS",
    "SegmentWriter",
    "read_segment",
    "read_segment_meta",
    "string_value_index",
    "validate_segment",
    "write_segment",
]

MAGIC = b"MSQSEG"
FORMAT_VERSION = 5
# Older files hold only layouts the newer versions still have (version 3 added rowLists,
# version 4 a part's own codec and byte planes, version 5 bit-packed ids): segments written
# before stay readable.
READABLE_VERSIONS = (2, 3, 4, 5)
TIME_COLUMN = "__time"

_HEADER = struct.Struct("<6sHIIQQ")
HEADER_SIZE = _HEADER.size  # 32
_ALIGN = 8
_MAX_TOC = 256 << 20
_INT32_MAX = 2**31 - 1
ROWS_PER_BLOCK = 1 << 16  # rows per block of fixed-width parts (values, ids, validity)
STREAM_BLOCK = 1 << 18  # bytes per block of variable-length parts (dictionary, bitmaps)
CODECS = ("zstd", "lz4")
_CODEC = {name: pa.Codec(name) for name in CODECS}
# A LONG's values go to byte planes under LZ4 when that packs their first block at most this
# much larger than the segment's codec does (added, delta, __time of the wiki data: 0.9x to 1.03x).
_PLANES_SLACK = 1.1
# Compressed blocks that are held until the file is written (a one-shot build's body is a list
# of them: 34 MB for the 1M-row bench table), and the LONG columns' trial compressions of a
# first block, come from the C library's heap, not Arrow's default pool (mimalloc): mimalloc
# gave each build those pages fresh, which the kernel faulted in and zeroed (of a one-shot
# build's 23,000 page faults, 16,000 were the held blocks and 5,500 the trial compressions;
# 1,600 are left). Blocks written out at once (spools on disk) stay in the default pool, which
# reuses their memory block after block (glibc's heap: 1.5x the faults there).
_C_HEAP = pa.system_memory_pool()
DRUID_TYPE_KEY = b"druid_type"
# Field metadata of a multi-value string whose values keep their row order (``arrayIngestMode:
# mvd``, Druid's ``multiValueHandling: ARRAY``) rather than being sorted within each row.
KEEP_ORDER_KEY = b"druid_multiValueHandling"

_NUMERIC = {
    # type -> (on-disk dtype, arrow type)
    "LONG": (np.dtype("<i8"), pa.int64()),
    "DOUBLE": (np.dtype("<f8"), pa.float64()),
    "FLOAT": (np.dtype("<f4"), pa.float32()),
}
_ARRAY_NUMERIC = {"ARRAY<LONG>": "LONG", "ARRAY<DOUBLE>": "DOUBLE"}
_BINARY_TYPES = {"binary": pa.binary(), "large_binary": pa.large_binary(),
                 "string": pa.string(), "large_string": pa.large_string()}

#: Combining aggregators ``write_segment(rollup=...)`` merges with: (reduction, dtype).
ROLLUP_KINDS = {
    "longSum": ("sum", "LONG"), "longMin": ("min", "LONG"), "longMax": ("max", "LONG"),
    "doubleSum": ("sum", "DOUBLE"), "doubleMin": ("min", "DOUBLE"), "doubleMax": ("max", "DOUBLE"),
    "floatSum": ("sum", "FLOAT"), "floatMin": ("min", "FLOAT"), "floatMax": ("max", "FLOAT"),
}


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _raw(a) -> memoryview:
    return memoryview(np.ascontiguousarray(a)).cast("B")


# --- column kinds -----------------------------------------------------------------------------


def _druid_type(field: pa.Field) -> str:
    """The Druid type a table column is stored as (``TypeError`` if it has none)."""
    typ, name = field.type, field.name
    declared = (field.metadata or {}).get(DRUID_TYPE_KEY)
    if declared is not None:
        declared = declared.decode("utf-8", "replace")
        if declared.startswith("COMPLEX<") and declared.endswith(">") and len(declared) > 9:
            if not any(typ == t for t in _BINARY_TYPES.values()):
                raise TypeError(f"column {name!r} is {declared}, which needs a binary or string column, got {typ}")
            if declared == "COMPLEX<json>" and not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
                raise TypeError(f"column {name!r} is COMPLEX<json>, which needs JSON text (string), got {typ}")
            return declared
        if declared == "ARRAY<STRING>" and _is_string_list(typ):
            return declared
        if declared == "STRING" and _is_string_list(typ):
            return "STRING"
        raise TypeError(f"column {name!r}: druid_type {declared!r} does not fit Arrow type {typ}")
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "STRING"
    if _is_string_list(typ):
        return "STRING"  # multi-value
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        if pa.types.is_int64(typ.value_type):
            return "ARRAY<LONG>"
        if pa.types.is_float64(typ.value_type):
            return "ARRAY<DOUBLE>"
    if pa.types.is_int64(typ):
        return "LONG"
    if pa.types.is_float64(typ):
        return "DOUBLE"
    if pa.types.is_float32(typ):
        return "FLOAT"
    raise TypeError(f"column {name!r} has unsupported type {typ}; segments store string, large_string, "
                    "int64, float64, float32, list<string> (multi-value or ARRAY<STRING>), list<int64>, "
                    "list<float64> and binary/string columns whose field metadata names a COMPLEX<type>")


def _is_string_list(typ: pa.DataType) -> bool:
    return (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and \
        (pa.types.is_string(typ.value_type) or pa.types.is_large_string(typ.value_type))


def dimension_schema(name: str, druid_type: str, *, bitmap_index: bool = True, keep_order: bool = False) -> dict:
    """The dimension schema Druid's segment generator records for a column (spec §1.9), as
    Jackson writes it: what a task's payload shows and what a segment keeps. ``keep_order``: a
    string array stored as a multi-value string in row order (``arrayIngestMode: mvd``)."""
    if keep_order:
        return {"type": "string", "name": name, "multiValueHandling": "ARRAY", "createBitmapIndex": True}
    if druid_type.startswith("ARRAY<"):  # arrayIngestMode=array: an auto column cast to the array type
        return {"type": "auto", "name": name, "castToType": druid_type}
    if druid_type == "COMPLEX<json>":  # Druid's NestedDataColumnSchema
        return {"type": "json", "name": name, "formatVersion": 5, "multiValueHandling": "SORTED_ARRAY",
                "createBitmapIndex": True}
    if druid_type == "STRING":
        return {"type": "string", "name": name, "multiValueHandling": "SORTED_ARRAY",
                "createBitmapIndex": bitmap_index}
    return {"type": druid_type.lower(), "name": name, "multiValueHandling": "SORTED_ARRAY", "createBitmapIndex": False}


def _meta_to_json(md: Mapping[bytes, bytes] | None) -> dict[str, str] | None:
    # latin-1 maps every byte to one code point, so arbitrary bytes round-trip through JSON
    return None if not md else {k.decode("latin-1"): v.decode("latin-1") for k, v in md.items()}


def _meta_from_json(md: dict[str, str] | None) -> dict[bytes, bytes] | None:
    return None if not md else {k.encode("latin-1"): v.encode("latin-1") for k, v in md.items()}


# --- writing ------------------------------------------------------------------------------


class _ColumnWriter:
    """Compresses one column's parts into an aligned, checksummed block, appended to ``out``:
    a list of chunks (one-shot writes) or a file (streaming writes)."""

    def __init__(self, codec: pa.Codec, out: list | Any = None):
        self.codec = codec
        self.out = [] if out is None else out
        self.parts: dict[str, dict[str, int]] = {}
        self.pos = 0
        self.crc = 0

    def _emit(self, data) -> None:
        if isinstance(self.out, list):
            self.out.append(data)
        else:
            self.out.write(data)
        self.crc = zlib.crc32(data, self.crc)
        self.pos += len(memoryview(data).cast("B"))

    def part(self, name: str, data, block_size: int) -> None:
        raw = _raw(data)
        size = raw.nbytes
        nb = -(-size // block_size)
        pool = _C_HEAP if isinstance(self.out, list) else None
        blocks = [self.codec.compress(raw[i * block_size:(i + 1) * block_size], memory_pool=pool)
                  for i in range(nb)]
        table = np.zeros(nb + 1, dtype="<u8")
        if nb:
            np.cumsum([b.size for b in blocks], out=table[1:])
        at = self.pos
        self._emit(table.tobytes())
        for b in blocks:
            self._emit(b)
        stored = self.pos - at
        self._emit(bytes(_align(self.pos) - self.pos))
        self.parts[name] = {"at": at, "stored": stored, "size": size, "blockSize": block_size}


def _validity(col: pa.Array) -> np.ndarray:
    return np.packbits(_valid_bytes(col), bitorder="little")


def _valid_bytes(arr: pa.Array) -> np.ndarray:
    """1 per valid row and 0 per null (uint8), unpacked from the array's validity bitmap (20x
    faster than ``pc.is_valid(arr).to_numpy()``, which converts Arrow booleans one by one)."""
    bitmap = arr.buffers()[0]
    if bitmap is None:  # no nulls, or a null-typed array
        return np.full(len(arr), 0 if arr.null_count else 1, dtype=np.uint8)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), count=arr.offset + len(arr), bitorder="little")
    return bits[arr.offset:]


def _encode_numeric(w: _ColumnWriter, arr: pa.Array, kind: str, values_part: str = "values",
                    validity_part: str = "validity") -> bool:
    dtype = _NUMERIC[kind][0]
    has_nulls = arr.null_count > 0
    values = (pc.fill_null(arr, 0) if has_nulls else arr).to_numpy(zero_copy_only=False)
    w.part(values_part, values.astype(dtype, copy=False), ROWS_PER_BLOCK * dtype.itemsize)
    if has_nulls:
        w.part(validity_part, _validity(arr), ROWS_PER_BLOCK // 8)
    return has_nulls


def _encode_long(w: _ColumnWriter, arr: pa.Array) -> dict[str, Any]:
    """A LONG column as offsets from its minimum in 1, 2 or 4 bytes when its range allows
    (frame of reference, like Druid's compressed longs), else raw int64: less to compress,
    and less to decompress on every read."""
    has_nulls = arr.null_count > 0
    lo_hi = pc.min_max(arr)
    lo, hi = lo_hi["min"].as_py(), lo_hi["max"].as_py()
    base, width = 0, 1 if lo is None else 8  # all null: every slot holds the base
    if lo is not None and hi - lo < 2**32:
        span = hi - lo
        base, width = lo, 1 if span < 2**8 else 2 if span < 2**16 else 4
    values = (pc.fill_null(arr, base) if has_nulls else arr).to_numpy(zero_copy_only=False)
    stored = (values - np.int64(base)).astype(f"<u{width}") if width < 8 else values.astype("<i8", copy=False)
    if width < 8:
        # zstd sometimes packs raw int64 better (sorted times): keep raw if the first block says
        # so by more than 5%; otherwise the narrow form, which is faster to read
        raw = values.astype("<i8", copy=False)
        narrow_size = w.codec.compress(_raw(stored[:ROWS_PER_BLOCK]), memory_pool=_C_HEAP).size
        raw_size = w.codec.compress(_raw(raw[:ROWS_PER_BLOCK]), memory_pool=_C_HEAP).size
        first_size = narrow_size
        if narrow_size > 1.05 * raw_size:
            base, width, stored, first_size = 0, 8, raw, raw_size
    else:
        first_size = None
    _long_values(w, np.ascontiguousarray(stored).view(np.uint8).reshape(-1), width, first_size)
    if has_nulls:
        w.part("validity", _validity(arr), ROWS_PER_BLOCK // 8)
    return {"hasNulls": has_nulls, "base": base, "valueWidth": width}


def _long_values(w: _ColumnWriter, data: np.ndarray, width: int, first_size: int | None = None) -> None:
    """A LONG's ``values`` part from its stored bytes: byte plane by byte plane under LZ4 when
    that packs the first block about as well as the segment's codec packs the items (values
    well below their width's range have planes of zeros), else in byte planes or as items under
    that codec, whichever packs the first block smaller (zstd packs the planes of such values
    smaller and 1.4 to 3x faster than their items). LZ4 decompresses several times faster than
    zstd, and queries decompress every block they touch. ``first_size``: the size of the first
    block's items under the segment's codec, if known."""
    bs = ROWS_PER_BLOCK * width
    if width > 1:
        first = data[:bs]
        planed = _planes.split(first, width, ROWS_PER_BLOCK)
        if first_size is None:
            first_size = w.codec.compress(first, memory_pool=_C_HEAP).size
        if _CODEC["lz4"].compress(planed, memory_pool=_C_HEAP).size <= _PLANES_SLACK * first_size:
            codec, w.codec = w.codec, _CODEC["lz4"]
            try:
                w.part("values", _planes.split(data, width, ROWS_PER_BLOCK), bs)
            finally:
                w.codec = codec
            w.parts["values"].update(codec="lz4", bytePlanes=width)
            return
        if w.codec.compress(planed, memory_pool=_C_HEAP).size <= first_size:
            w.part("values", _planes.split(data, width, ROWS_PER_BLOCK), bs)
            w.parts["values"].update(bytePlanes=width)
            return
    w.part("values", data, bs)


def _string_buffers(arr: pa.Array, native: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64[len+1] starting at 0, data uint8) of a string/large_string array without nulls.
    With ``native``, without a copy: the offsets as Arrow stores them (int32 or int64, not
    rebased) over the whole data buffer, for the kernels that take either
    (``StringDictionary.encode``: the cast cost 1% of a segment build)."""
    n = len(arr)
    if n == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    bufs = arr.buffers()
    off_type = np.int64 if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type) else np.int32
    offs = np.frombuffer(bufs[1], dtype=off_type, count=n + 1, offset=arr.offset * np.dtype(off_type).itemsize)
    if native:
        return offs, (np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, dtype=np.uint8))
    start, end = int(offs[0]), int(offs[-1])
    data = np.frombuffer(bufs[2], dtype=np.uint8, count=end - start, offset=start) if end > start \
        else np.zeros(0, dtype=np.uint8)
    offs = offs.astype(np.int64, copy=False)  # no copy of int64 offsets: callers only read them
    return (offs - start if start else offs), data


def _dictionary_buffers(sorted_dict: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The (offsets, data) written for a sorted dictionary (a seam for corruption tests)."""
    return _string_buffers(sorted_dict)


def _combine(col: pa.ChunkedArray) -> pa.Array:
    if col.num_chunks == 1:
        return col.chunk(0)
    try:
        return col.combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowCapacityError):  # > 2 GiB of pa.string() data
        big = {pa.string(): pa.large_string(), pa.binary(): pa.large_binary()}.get(col.type)
        if big is None:
            raise
        return col.cast(big).combine_chunks()


def _sorted_dictionary(values: pa.Array) -> tuple[pa.Array, np.ndarray, bool]:
    """(sorted dictionary with nulls filled by "", ids int32, has_null) of a flat string array."""
    encoded = pc.dictionary_encode(values, null_encoding="encode")
    dictionary = encoded.dictionary
    card = len(dictionary)
    # sort the dictionary (not the rows) by unsigned bytes, i.e. UTF-8 byte order, with the
    # radix sort kernel (`_k.sort_strings`); the null entry, if any, goes first as in Druid.
    valid = pc.is_valid(dictionary).to_numpy(zero_copy_only=False)
    order = np.flatnonzero(valid).astype(np.int32)
    offsets, data = _string_buffers(dictionary)
    _k.sort_strings(offsets, data, order)
    if not valid.all():
        order = np.concatenate([np.flatnonzero(~valid).astype(np.int32), order])
    rank = np.empty(card, dtype=np.int32)
    rank[order] = np.arange(card, dtype=np.int32)
    ids = _k.remap_ids(encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False), rank)
    sorted_dict = dictionary.take(pa.array(order))
    has_null = sorted_dict.null_count > 0
    if has_null:
        sorted_dict = pc.fill_null(sorted_dict, "")
    return sorted_dict, ids, has_null


def _write_lengths(w: _ColumnWriter, name: str, offsets: np.ndarray) -> None:
    """A uint32 lengths or counts part, from their offsets, in byte planes: the values are
    small, so their high planes are zeros, which zstd packs smaller and about twice as fast as
    the items (1M-row bench table: ``user``'s ``dictLengths`` 199 -> 134 kB, 4.5 -> 2.1 ms)."""
    w.part(name, _planes.split(_k.lengths(offsets).view(np.uint8), 4, ROWS_PER_BLOCK), ROWS_PER_BLOCK * 4)
    w.parts[name]["bytePlanes"] = 4


def _write_dictionary(w: _ColumnWriter, sorted_dict: pa.Array) -> None:
    offsets, data = _dictionary_buffers(sorted_dict)
    _write_lengths(w, "dictLengths", offsets)
    w.part("dictData", data, STREAM_BLOCK)


def _write_bitmaps(w: _ColumnWriter, index_offsets: np.ndarray, index_rows: np.ndarray) -> None:
    _write_serialized_bitmaps(w, *_rb.serialize_csr(index_offsets, index_rows.view(np.uint32)))


# Up to this many (value, 65,536-row container) pairs, a column's bitmaps are built from its ids
# (``_rb.serialize_ids``, 2 to 3 times faster than row lists then bitmaps); past it, its tables
# outgrow the row lists (measured crossover at 1M rows: 30,000 to 50,000 values).
_BITMAPS_FROM_IDS_MAX = 1 << 18


def _write_bitmaps_of_ids(w: _ColumnWriter, ids: np.ndarray, card: int) -> None:
    """The bitmap index of a single-value column: bitmap ``k`` holds the rows whose id is ``k``."""
    if card * -(-len(ids) // ROWS_PER_BLOCK) <= _BITMAPS_FROM_IDS_MAX:
        _write_serialized_bitmaps(w, *_rb.serialize_ids(ids, card))
    else:
        _write_bitmaps(w, *_k.build_inverted_index(ids, card))


def _write_serialized_bitmaps(w: _ColumnWriter, bitmaps: np.ndarray, byte_offsets: np.ndarray) -> None:
    _write_lengths(w, "bitmapLengths", byte_offsets)
    w.part("bitmaps", bitmaps, STREAM_BLOCK)


def _unshuffle_blocks(data: np.ndarray) -> np.ndarray:
    """The uint32 items of a ``rowLists`` part: each block of ``ROWS_PER_BLOCK`` items is laid
    out byte plane by byte plane (``_planes.split``; the last block may be short)."""
    out = np.empty(len(data), dtype=np.uint8)
    step = 4 * ROWS_PER_BLOCK
    for start in range(0, len(data), step):
        _planes.join(data[start:start + step], 4, out[start:start + step])
    return out.view("<u4")


def _row_list_deltas(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The CSR row lists delta-coded: each value's first row as is, then the gap to each next row."""
    return _k.row_list_deltas(offsets, rows)


def _use_row_lists(card: int, n: int) -> bool:
    """A string column whose values hold few rows each (more than one value per 10 rows) is
    stored as its row lists alone: its bitmaps then nearly spell out a permutation of the rows,
    which the ids would repeat (see docs/segment-format.md, layout ``rowLists``)."""
    return card * 10 > n


def _encode_string(w: _ColumnWriter, column: _StringColumn, bitmaps: bool) -> dict[str, Any]:
    sorted_dict, ids, has_null, index = column.sorted()
    card, n = len(sorted_dict), len(ids)
    width = _k.id_width(card)
    extra = {"hasNulls": has_null, "cardinality": card, "idWidth": width, "bitmapIndex": bitmaps}
    if bitmaps and _use_row_lists(card, n):
        offsets, rows = index or _k.build_inverted_index(ids, card)
        del ids, index
        _write_dictionary(w, sorted_dict)
        _write_lengths(w, "rowCounts", offsets)
        # byte planes per block: the gaps' high bytes are mostly zero, which zstd then packs well
        deltas = _row_list_deltas(offsets, rows).astype("<u4", copy=False).view(np.uint8)
        w.part("rowLists", _planes.split(deltas, 4, ROWS_PER_BLOCK), ROWS_PER_BLOCK * 4)
        return {**extra, "layout": "rowLists"}
    bits = _k.id_bits(card)
    if bits:  # a few values: zstd packs whole bytes of near-random ids slowly and loosely
        w.part("ids", _k.pack_id_bits(ids, bits), ROWS_PER_BLOCK * bits // 8)
        extra["idBits"] = bits
    else:
        w.part("ids", _k.pack_ids(ids, width), ROWS_PER_BLOCK * width)
    _write_dictionary(w, sorted_dict)
    if bitmaps and index:
        _write_bitmaps(w, *index)
    elif bitmaps:
        _write_bitmaps_of_ids(w, ids, card)
    return {**extra, "layout": "ids"}


class _Spool:
    """One column's arrays in row order: kept in memory, or (with ``path``) written to an
    Arrow IPC stream file and read back once by ``read``."""

    def __init__(self, typ: pa.DataType, path: str | None = None):
        self.type = typ
        self.path = path
        self.chunks: list[pa.Array] = []
        self._sink = None
        self._writer = None

    def add(self, arr: pa.Array) -> None:
        if self.path is None:
            self.chunks.append(arr)
            return
        if self._writer is None:
            self._sink = pa.OSFile(self.path, "wb")
            self._writer = pa.ipc.new_stream(self._sink, pa.schema([("v", arr.type)]))
        self._writer.write_batch(pa.record_batch([arr], names=["v"]))

    def read(self) -> pa.Array:
        """Every row (one column's worth of memory); the file is removed."""
        if self._writer is not None:
            self.close()
            with pa.OSFile(self.path, "rb") as f:
                self.chunks = pa.ipc.open_stream(f).read_all().column(0).chunks
            os.unlink(self.path)
        chunks, self.chunks = self.chunks, []
        return _combine(pa.chunked_array(chunks, self.type))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None


_DISTINCT_SAMPLE = 4096  # rows of a string column's first batch that choose how it is encoded


def _mostly_distinct(arr: pa.Array) -> bool:
    """Whether a string column's first rows are nearly all distinct (a URL or id column): it is
    then cheaper to sort its rows than to hash them and sort the distinct values after."""
    sample = arr.slice(0, _DISTINCT_SAMPLE)
    valid = _valid_bytes(sample)
    counter = _k.StringDictionary()
    counter.encode(*_string_buffers(sample, native=True), valid)
    present = int(np.count_nonzero(valid))
    return present > 0 and counter.cardinality >= 0.7 * present


class _StringColumn:
    """A single-value string column as its rows arrive. Its first rows decide how:

    * usually its distinct values in first-seen order (the ``StringDictionary`` kernel: memory
      bounded by the cardinality, not the row count) and each row's first-seen id + 1 (0 for
      null), spooled; ``sorted`` then remaps the ids through the sorted dictionary;
    * when those rows are nearly all distinct (``_mostly_distinct``), the strings themselves,
      spooled: ``sorted`` sorts the rows (``_k.sorted_dictionary_of_rows``), which gives the
      dictionary, the ids and the inverted index at once, without a hash table that would hold
      about every row anyway.
    """

    def __init__(self, path: str | None = None):
        self.path = path
        self.dictionary: _k.StringDictionary | None = None
        self.ids: _Spool | None = None
        self.strings: _Spool | None = None

    def add(self, arr: pa.Array) -> None:
        if self.dictionary is None and self.strings is None:
            if _mostly_distinct(arr):
                self.strings = _Spool(arr.type, self.path)
            else:
                self.dictionary, self.ids = _k.StringDictionary(), _Spool(pa.int32(), self.path)
        if self.strings is not None:
            self.strings.add(arr)
            return
        valid = _valid_bytes(arr) if arr.null_count else None
        self.ids.add(pa.array(self.dictionary.encode(*_string_buffers(arr, native=True), valid)))

    def sorted(self) -> tuple[pa.Array, np.ndarray, bool, tuple[np.ndarray, np.ndarray] | None]:
        """(sorted dictionary, null first as "" if any; ids int32; has_null; the inverted index
        ``(offsets, rows)`` if it came with the sort, else None), as ``_sorted_dictionary``."""
        if self.strings is not None:
            arr = self.strings.read()
            self.strings = None
            valid = _valid_bytes(arr) if arr.null_count else None
            offsets, data, ids, index_offsets, index_rows, has_null = _k.sorted_dictionary_of_rows(
                *_string_buffers(arr), valid)
            del arr, valid
            sorted_dict = pa.Array.from_buffers(pa.large_string(), len(offsets) - 1,
                                                [None, pa.py_buffer(offsets), pa.py_buffer(data)])
            return sorted_dict, ids, bool(has_null), (index_offsets, index_rows)
        if self.dictionary is None:  # no rows
            self.dictionary, self.ids = _k.StringDictionary(), _Spool(pa.int32(), self.path)
        offsets, data = self.dictionary.values()
        has_null = bool(self.dictionary.has_null)
        self.dictionary = None  # free the hash table and the values' first copy before sorting
        card = len(offsets) - 1
        order = np.arange(card, dtype=np.int32)
        _k.sort_strings(offsets, data, order)  # UTF-8 byte order
        rank = np.zeros(card + 1, dtype=np.int32)  # first-seen id + 1 -> sorted id
        rank[order + 1] = np.arange(card, dtype=np.int32) + np.int32(has_null)
        ids = _k.remap_ids(self.ids.read().to_numpy(zero_copy_only=False), rank)
        values = pa.Array.from_buffers(pa.large_string(), card, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        sorted_dict = values.take(pa.array(order))
        del values, offsets, data
        if has_null:
            sorted_dict = pa.concat_arrays([pa.array([""], pa.large_string()), sorted_dict])
        return sorted_dict, ids, has_null, None

    def close(self) -> None:
        for spool in (self.ids, self.strings):
            if spool is not None:
                spool.close()


class _SortedStrings:
    """A string column's ``_StringColumn.sorted`` result, held from the time a writer that
    orders its own rows (``SegmentWriter(sort_order=...)``) computes it to rank the rows until
    the column is encoded: its ids in memory (to be permuted) in the narrowest unsigned type
    that holds them (most dimensions have under 256 or 65,536 values: 1 or 2 bytes a row, not
    4, while every dimension's ids are held at once), its sorted dictionary spooled (to disk
    with a path: one column's strings in memory at a time, as before)."""

    def __init__(self, column: _StringColumn, path: str | None = None):
        sorted_dict, ids, self.has_null, index = column.sorted()
        del index  # of the rows as they arrived
        column.close()
        card = len(sorted_dict)
        self.ids = ids.astype(np.uint8 if card <= 1 << 8 else np.uint16 if card <= 1 << 16 else np.int32, copy=False)
        del ids
        self.dictionary = _Spool(sorted_dict.type, path)
        self.dictionary.add(sorted_dict)

    def permute(self, order: np.ndarray) -> None:
        self.ids = self.ids[order]

    def sorted(self) -> tuple[pa.Array, np.ndarray, bool, None]:
        ids, self.ids = self.ids, None
        return self.dictionary.read(), ids.astype(np.int32, copy=False), self.has_null, None

    def close(self) -> None:
        self.ids = None
        self.dictionary.close()


def _list_parts(arr: pa.Array) -> tuple[np.ndarray, pa.Array, bool]:
    """(row lengths uint32, flat values, has null rows) of a list array (null rows have length 0)."""
    has_nulls = arr.null_count > 0
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype("<u4")
    return lengths, pc.list_flatten(arr), has_nulls


def _encode_string_list(w: _ColumnWriter, arr: pa.Array, bitmaps: bool) -> dict[str, Any]:
    """Multi-value STRING and ARRAY<STRING>: row lengths, element ids, a bitmap of rows per value."""
    lengths, flat, has_null_rows = _list_parts(arr)
    w.part("rowLengths", lengths, ROWS_PER_BLOCK * 4)
    if has_null_rows:
        w.part("validity", _validity(arr), ROWS_PER_BLOCK // 8)
    sorted_dict, ids, has_null = _sorted_dictionary(flat)
    card = len(sorted_dict)
    width = _k.id_width(card)
    w.part("ids", _k.pack_ids(ids, width), ROWS_PER_BLOCK * width)
    _write_dictionary(w, sorted_dict)
    extra = {"hasNulls": has_null_rows, "elementNulls": has_null, "cardinality": card, "idWidth": width,
             "numElements": len(flat), "multiValue": True, "bitmapIndex": bitmaps}
    if not bitmaps:
        return extra
    # rows holding each value: the elements' inverted index mapped to rows, duplicates dropped
    elem_offsets, elem_pos = _k.build_inverted_index(ids, card)
    row_of_elem = np.repeat(np.arange(len(arr), dtype=np.int32), lengths)
    rows = row_of_elem[elem_pos]
    group = np.repeat(np.arange(card, dtype=np.int64), np.diff(elem_offsets))
    keep = np.ones(len(rows), dtype=bool)
    keep[1:] = (rows[1:] != rows[:-1]) | (group[1:] != group[:-1])
    counts = np.bincount(group[keep], minlength=card)
    index_offsets = np.zeros(card + 1, dtype=np.int64)
    np.cumsum(counts, out=index_offsets[1:])
    _write_bitmaps(w, index_offsets, np.ascontiguousarray(rows[keep]))
    return extra


def _encode_numeric_list(w: _ColumnWriter, arr: pa.Array, kind: str) -> dict[str, Any]:
    lengths, flat, has_null_rows = _list_parts(arr)
    w.part("rowLengths", lengths, ROWS_PER_BLOCK * 4)
    if has_null_rows:
        w.part("validity", _validity(arr), ROWS_PER_BLOCK // 8)
    elem_nulls = _encode_numeric(w, flat, _ARRAY_NUMERIC[kind], "elements", "elementValidity")
    return {"hasNulls": has_null_rows, "elementNulls": elem_nulls, "numElements": len(flat)}


def _encode_complex(w: _ColumnWriter, arr: pa.Array) -> dict[str, Any]:
    has_nulls = arr.null_count > 0
    if has_nulls:
        w.part("validity", _validity(arr), ROWS_PER_BLOCK // 8)
    filled = pc.fill_null(arr, pa.scalar(b"" if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)
                                         else "", arr.type)) if has_nulls else arr
    offsets, data = _string_buffers(filled)
    w.part("lengths", np.diff(offsets).astype("<u4"), ROWS_PER_BLOCK * 4)
    w.part("data", data, STREAM_BLOCK)
    storage = next(k for k, t in _BINARY_TYPES.items() if t == arr.type)
    return {"hasNulls": has_nulls, "storage": storage}


def _check_columns(schema: pa.Schema, dimensions: list[str], metrics: list[str]) -> list[str]:
    names = [TIME_COLUMN, *dimensions, *metrics]
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"column names must be strings, got {name!r}")
        if name in seen:
            raise ValueError(f"column {name!r} is listed more than once "
                             "(__time, dimensions and metrics must be distinct)")
        seen.add(name)
        matches = schema.get_all_field_indices(name)
        if not matches:
            raise ValueError(f"table has no column {name!r}")
        if len(matches) > 1:
            raise ValueError(f"table has {len(matches)} columns named {name!r}")
    time_type = schema.field(TIME_COLUMN).type
    if not pa.types.is_int64(time_type):
        raise TypeError(f"{TIME_COLUMN} must be int64 epoch millis, got {time_type}")
    return names


# --- rollup ------------------------------------------------------------------------------------


def _check_rollup(schema: pa.Schema, rollup: Mapping[str, str], metrics: list[str]) -> pa.Schema:
    """``schema`` with every metric typed as its combining kind stores it (a longSum is a LONG)."""
    missing = [m for m in metrics if m not in rollup]
    unknown = [m for m in rollup if m not in metrics]
    if missing or unknown:
        raise ValueError(f"rollup must name a combining kind for every metric and nothing else "
                         f"(missing {missing}, not metrics {unknown})")
    for m, kind in rollup.items():
        if kind not in ROLLUP_KINDS:
            raise ValueError(f"metric {m!r}: unknown rollup kind {kind!r}; known: {sorted(ROLLUP_KINDS)}")
        i = schema.get_field_index(m)
        field = schema.field(i)
        if not (pa.types.is_integer(field.type) or pa.types.is_floating(field.type)):
            raise TypeError(f"metric {m!r} ({field.type}) cannot be combined with {kind}")
        schema = schema.set(i, field.with_type(_NUMERIC[ROLLUP_KINDS[kind][1]][1]))
    return schema


def _rollup(table: pa.Table, dimensions: list[str], rollup: Mapping[str, str], metrics: list[str]) -> pa.Table:
    """Merge adjacent rows with equal (__time, dimensions), combining each metric by its kind.

    Rows must arrive sorted by (__time, dimensions): only runs of equal keys are merged.
    Metrics must already have their kind's type (``_check_rollup``).
    """
    n = table.num_rows
    if n < 2:
        return table
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for name in [TIME_COLUMN, *dimensions]:
        col = _combine(table.column(name))
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            raise ValueError(f"rollup over the list-typed dimension {name!r} is not supported")
        a, b = col.slice(1), col.slice(0, n - 1)
        differ = pc.fill_null(pc.not_equal(a, b), False).to_numpy(zero_copy_only=False)
        if col.null_count:
            va = pc.is_valid(col).to_numpy(zero_copy_only=False)
            differ |= va[1:] != va[:-1]
        change[1:] |= differ
    starts = np.flatnonzero(change)
    if len(starts) == n:
        return table
    out = table.take(pa.array(starts))
    for m, kind in rollup.items():
        op, typ = ROLLUP_KINDS[kind]
        dtype = _NUMERIC[typ][0].newbyteorder("=")
        col = _combine(table.column(m))
        valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
        if op == "sum":
            fill = 0
        elif np.issubdtype(dtype, np.integer):
            fill = np.iinfo(dtype).max if op == "min" else np.iinfo(dtype).min
        else:
            fill = np.inf if op == "min" else -np.inf
        values = pc.fill_null(col.cast(_NUMERIC[typ][1]), fill).to_numpy(zero_copy_only=False)
        reduce = {"sum": np.add, "min": np.minimum, "max": np.maximum}[op]
        merged = reduce.reduceat(values, starts)
        any_valid = np.logical_or.reduceat(valid, starts)
        field = table.schema.field(m)
        arr = pa.array(merged, _NUMERIC[typ][1], mask=~any_valid if not any_valid.all() else None)
        out = out.set_column(out.schema.get_field_index(m), field.with_type(arr.type), arr)
    return out


# --- SegmentWriter and write_segment ----------------------------------------------------------------


def can_sort_rows(schema: pa.Schema, sort_order: Sequence[str]) -> bool:
    """Whether a ``SegmentWriter`` can put rows of ``schema`` in ``sort_order`` itself
    (``sort_order=``): ``__time`` first, then single-value strings and numbers, which it ranks
    by their sorted dictionary ids and values. Multi-value strings and arrays are not ranked
    (Druid orders them by their frame key bytes: ``engine/time_sort.segment_order``)."""
    if not sort_order or sort_order[0] != TIME_COLUMN:
        return False
    for name in sort_order:
        if schema.get_field_index(name) < 0:
            return False
        field = schema.field(name)
        try:
            kind = _druid_type(field)
        except TypeError:
            return False
        if not (kind in _NUMERIC or (kind == "STRING" and (pa.types.is_string(field.type)
                                                           or pa.types.is_large_string(field.type)))):
            return False
    return True


class SegmentWriter:
    """Writes one segment from rows that arrive in segment order, in batches.

        writer = SegmentWriter(path, schema, dimensions=dims, metrics=mets, temp_dir=tmp)
        writer.append(batch) ...        # tables or record batches, rows in segment order
        size = writer.finish()          # encodes, writes ``path`` atomically; returns its size
        writer.close()                  # removes temporary files (finish does too)

    With ``temp_dir``, memory does not grow with the segment: ``append`` keeps at most
    ``chunk_rows`` rows, then hands each column's slice to its spool, a temporary Arrow file
    (a single-value string keeps only its distinct values in memory and spools one first-seen
    id per row, or, when its first rows are nearly all distinct, spools its strings to sort
    its rows in ``finish``: see ``_StringColumn``). ``finish`` then encodes one column at a time, writing compressed parts to a
    temporary body file, and copies the body behind the header and table of contents. Without
    ``temp_dir`` (``write_segment``, whose table is in memory anyway) the spools and the
    body stay in memory. Both give the same bytes.

    ``rollup`` merges adjacent rows with equal ``__time`` and dimensions, across batches too
    (the last key of a batch waits for the next one); a rolled-up metric is stored as its
    kind's type (a longSum is a LONG). ``threads`` > 1 hashes (``append``) and encodes
    (``finish``) that many columns at a time, each column into its own buffer, written in
    column order: the same bytes; with ``temp_dir`` up to ``threads`` encoded columns are then
    in memory at once. See ``write_segment`` for the other arguments.

    With ``sort_order`` (``__time`` first, then columns ``can_sort_rows`` accepts), rows may
    arrive in any order: ``finish`` puts them in that order (ascending, nulls first, strings by
    their UTF-8 bytes; rows that tie on every column keep their arrival order), the bytes
    written are those of the same rows appended sorted. It ranks the rows by ``__time`` and
    the sort columns' sorted dictionary ids (which compare as the strings do) or values, and
    permutes each column's ids or values just before encoding it: no string is copied to
    order the rows. It holds one int64 per row and each sort column's ids (1 to 4 bytes a row) or
    values meanwhile, the sorted dictionaries spooled. Not with ``rollup``.
    """

    def __init__(self, path: str, schema: pa.Schema, *, dimensions: Sequence[str], metrics: Sequence[str] = (),
                 rollup: Mapping[str, str] | None = None, compression: str = "zstd",
                 compression_level: int | None = None, bitmap_indexes: Collection[str] | None = None,
                 temp_dir: str | None = None, chunk_rows: int = ROWS_PER_BLOCK, threads: int = 1,
                 sort_order: Sequence[str] | None = None):
        self.path = path
        self.threads = max(1, int(threads))
        self.dimensions = list(dimensions)
        self.metrics = list(metrics)
        self.names = _check_columns(schema, self.dimensions, self.metrics)
        if compression not in CODECS:
            raise ValueError(f"compression must be one of {CODECS}, got {compression!r}")
        self.compression = compression
        self.codec = pa.Codec(compression, compression_level)
        for name in self.names:
            _druid_type(schema.field(name))  # refuse unsupported types before any work
        self.schema = pa.schema([schema.field(name) for name in self.names])
        self.rollup = dict(rollup) if rollup is not None else None
        if self.rollup is not None:
            self.schema = _check_rollup(self.schema, self.rollup, self.metrics)
        self.kinds = [_druid_type(f) for f in self.schema]
        if bitmap_indexes is not None:
            bitmap_indexes = set(bitmap_indexes)
            strange = sorted(c for c in bitmap_indexes
                             if c not in self.names or not self.kinds[self.names.index(c)].endswith("STRING"))
            if strange:
                raise ValueError(f"bitmap_indexes names columns that are not string columns of the segment: "
                                 f"{strange}")
        self.bitmap_indexes = bitmap_indexes
        self.sort_order = list(sort_order) if sort_order is not None else None
        if self.sort_order is not None:
            if self.rollup is not None:
                raise ValueError("a SegmentWriter with rollup takes rows in segment order: no sort_order")
            if not can_sort_rows(self.schema, self.sort_order) or len(set(self.sort_order)) < len(self.sort_order):
                raise ValueError(f"sort_order {self.sort_order} must start with {TIME_COLUMN} and name distinct "
                                 "single-value string or numeric columns of the segment")
        self._order: np.ndarray | None = None  # sort_order: row i of the segment is arrival row _order[i]
        self.chunk_rows = max(1, int(chunk_rows))
        self.num_rows = 0
        self._dir = tempfile.mkdtemp(prefix=".segment-", dir=temp_dir) if temp_dir is not None else None
        self._columns: list[_Spool | _StringColumn | None] = []
        for i, (field, kind) in enumerate(zip(self.schema, self.kinds)):
            spool_path = None if self._dir is None else os.path.join(self._dir, f"column-{i}.arrow")
            if kind == "STRING" and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
                self._columns.append(_StringColumn(spool_path))
            else:
                self._columns.append(_Spool(field.type, spool_path))
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._carry: pa.Table | None = None  # rollup: the last key of the rows so far

    def append(self, data: pa.Table | pa.RecordBatch) -> None:
        """Add rows that follow the previous ones in segment order (any order with ``sort_order``)."""
        table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        if not table.num_rows:
            return
        self._pending.append(table.select(self.names))
        self._pending_rows += table.num_rows
        if self._pending_rows >= self.chunk_rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        pending, self._pending, self._pending_rows = self._pending, [], 0
        if self._carry is not None:
            pending.insert(0, self._carry)
            self._carry = None
        if not pending:
            return
        table = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
        del pending
        if table.schema != self.schema:
            table = table.cast(self.schema)
        nulls = table.column(TIME_COLUMN).null_count
        if nulls:
            raise ValueError(f"{TIME_COLUMN} has {nulls} null value(s)")
        if self.rollup is not None:
            table = _rollup(table, self.dimensions, self.rollup, self.metrics)
            if not final:  # equal keys may go on in the next batch
                self._carry = table.slice(table.num_rows - 1)
                table = table.slice(0, table.num_rows - 1)
        if self.threads == 1:
            for name, column in zip(self.names, self._columns):
                column.add(_combine(table.column(name)))
        else:  # the string columns' hashing releases the GIL
            with ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(lambda name, column: column.add(_combine(table.column(name))),
                              self.names, self._columns))
        self.num_rows += table.num_rows

    def _with_bitmaps(self, name: str) -> bool:
        return self.bitmap_indexes is None or name in self.bitmap_indexes

    def finish(self) -> int:
        """Encode every column and write the file (under a temporary name in the same
        directory, fsynced, then renamed over ``path``); return its size in bytes."""
        try:
            return self._finish()
        finally:
            self.close()

    def _finish(self) -> int:
        self._flush(final=True)
        n = self.num_rows
        if n > _INT32_MAX:
            raise ValueError(f"a segment holds at most {_INT32_MAX} rows, got {n}")
        if self.sort_order is not None:
            self._order_rows()
        body: list | Any = [] if self._dir is None else open(os.path.join(self._dir, "body"), "w+b")
        try:
            entries = self._encode_columns(body)
            return self._write_file(entries, body)
        finally:
            if not isinstance(body, list):
                body.close()

    def _order_rows(self) -> None:
        """``sort_order``: rank the rows and permute the sort columns' ids and values; the other
        columns are permuted as they are encoded. The string columns' dictionaries are sorted
        here, ``threads`` at a time, instead of in ``_encode_string``."""
        from msqcore.engine.time_sort import segment_order  # the engine imports this module

        def key(name: str) -> pa.Array:
            i = self.names.index(name)
            column = self._columns[i]
            if isinstance(column, _StringColumn):
                path = None if self._dir is None else os.path.join(self._dir, f"dictionary-{i}.arrow")
                column = self._columns[i] = _SortedStrings(column, path)
                return pa.array(column.ids)
            values = column.read()
            self._columns[i] = _Spool(values.type)  # in memory from here: permuted below
            self._columns[i].add(values)
            return values

        # the columns sorted by rows first: their sorts need the most memory (strings, scratch
        # and dictionary), which is then not on top of every other column's ids
        names = sorted(self.sort_order, key=lambda name: not self._by_rows(name))
        if self.threads == 1:
            done = {name: key(name) for name in names}
        else:
            with ThreadPoolExecutor(self.threads) as pool:
                done = dict(zip(names, pool.map(key, names)))
        keys = [done.pop(name) for name in self.sort_order]
        # int64, not the sort's uint64: numpy gathers with it 3x faster
        order = segment_order(pa.table(keys, names=self.sort_order), self.sort_order).view(np.int64)
        del keys
        for name in self.sort_order:
            self._permute(self.names.index(name), order)
        self._order = order

    def _by_rows(self, name: str) -> bool:
        column = self._columns[self.names.index(name)]
        return isinstance(column, _StringColumn) and column.strings is not None

    def _permute(self, i: int, order: np.ndarray) -> None:
        column = self._columns[i]
        if isinstance(column, _StringColumn):
            column = self._columns[i] = _SortedStrings(column)
        if isinstance(column, _SortedStrings):
            column.permute(order)
        else:
            values = column.read().take(pa.array(order))
            column = self._columns[i] = _Spool(values.type)
            column.add(values)

    def _encode_columns(self, body) -> list[dict[str, Any]]:
        """Encode every column into ``body``, in column order; ``threads`` columns at a time
        (their kernels and codecs release the GIL), each into its own buffer first."""
        entries: list[dict[str, Any]] = []
        self.min_time = self.max_time = None
        if self.threads == 1:
            for i in range(len(self.names)):
                entries.append(self._encode_column(i, body))
            return entries
        with ThreadPoolExecutor(self.threads) as pool:
            for group in range(0, len(self.names), self.threads):
                outs = [[] for _ in range(min(self.threads, len(self.names) - group))]
                done = pool.map(self._encode_column, range(group, group + len(outs)), outs)
                for entry, out in zip(list(done), outs):
                    entries.append(entry)
                    for chunk in out:
                        body.append(chunk) if isinstance(body, list) else body.write(chunk)
        return entries

    def _encode_column(self, i: int, out) -> dict[str, Any]:
        name, kind, field = self.names[i], self.kinds[i], self.schema.field(i)
        if self._order is not None and name not in self.sort_order:
            self._permute(i, self._order)
        column, self._columns[i] = self._columns[i], None  # freed once encoded
        w = _ColumnWriter(self.codec, out)
        arr = column.read() if isinstance(column, _Spool) else None  # one column in memory at a time
        if kind == "LONG":
            extra = _encode_long(w, arr)
        elif kind in _NUMERIC:
            extra = {"hasNulls": _encode_numeric(w, arr, kind)}
        elif kind == "STRING" and arr is not None:
            extra = _encode_string_list(w, arr, self._with_bitmaps(name))
        elif kind == "STRING":
            extra = _encode_string(w, column, self._with_bitmaps(name))
        elif kind == "ARRAY<STRING>":
            extra = _encode_string_list(w, arr, self._with_bitmaps(name))
            extra.pop("multiValue")
        elif kind in _ARRAY_NUMERIC:
            extra = _encode_numeric_list(w, arr, kind)
        elif kind == "COMPLEX<json>":  # raw JSON plus typed field columns (storage/nested.py)
            extra = nested.encode(w, arr, _encode_complex)
        else:
            extra = _encode_complex(w, arr)
        if name == TIME_COLUMN and len(arr):
            self.min_time, self.max_time = pc.min(arr).as_py(), pc.max(arr).as_py()
        del arr, column
        entry: dict[str, Any] = {"name": name, "type": kind, "offset": 0, "length": w.pos, "crc32": w.crc}
        entry.update(extra)
        field_md = _meta_to_json(field.metadata)
        if field_md:
            entry["fieldMetadata"] = field_md
        entry["parts"] = w.parts
        return entry

    def _write_file(self, entries: list[dict[str, Any]], body) -> int:
        n = self.num_rows
        rollup, dimensions, metrics = self.rollup, self.dimensions, self.metrics
        by_name = {e["name"]: e for e in entries}
        toc: dict[str, Any] = {
            "format": "msqcore-segment",
            "version": FORMAT_VERSION,
            "compression": self.compression,
            "numRows": n,
            "dimensions": dimensions,
            "metrics": metrics,
            "dimensionsSpec": [
                dimension_schema(d, by_name[d]["type"], bitmap_index=by_name[d].get("bitmapIndex", True),
                                 keep_order=by_name[d].get("fieldMetadata", {}).get(KEEP_ORDER_KEY.decode()) == "ARRAY")
                for d in dimensions],
            "metricsSpec": [{"type": rollup[m], "name": m, "fieldName": m} for m in metrics] if rollup else [],
            "rollup": rollup is not None,
            "minTime": self.min_time,
            "maxTime": self.max_time,
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

        path = self.path
        parent = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
        try:
            with os.fdopen(fd, "wb") as f:
                if hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), 0o644)
                f.write(header)
                f.write(toc_bytes)
                if isinstance(body, list):
                    for chunk in body:
                        f.write(chunk)
                else:
                    body.seek(0)
                    shutil.copyfileobj(body, f, 1 << 20)
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

    def close(self) -> None:
        """Drop buffered rows and remove the temporary files."""
        for column in self._columns:
            if column is not None:
                column.close()
        self._columns = []
        self._pending = []
        self._carry = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_segment(path: str, table: pa.Table, *, dimensions: list[str], metrics: Sequence[str] = (),
                  rollup: Mapping[str, str] | None = None, compression: str = "zstd",
                  compression_level: int | None = None, bitmap_indexes: Collection[str] | None = None,
                  threads: int = 1) -> int:
    """Write ``table`` as one segment file at ``path``; return the file size in bytes.

    Columns are stored in the order ``__time, *dimensions, *metrics`` (other table columns are
    ignored), rows in the order given. ``rollup`` maps every metric to a combining kind
    (``ROLLUP_KINDS``: longSum, doubleMax, ...): adjacent rows with equal ``__time`` and
    dimensions are then merged while building. ``compression`` is ``"zstd"`` (default) or
    ``"lz4"``. ``bitmap_indexes`` names the string columns that get a bitmap index (default:
    all, Druid's ``createBitmapIndex: true``); the others store only dictionary and ids. The
    file is written under a temporary name in the same directory, fsynced, then renamed over
    ``path``. ``threads`` > 1 hashes and encodes that many columns at a time (same bytes).
    This is ``SegmentWriter``'s one-shot case.
    """
    writer = SegmentWriter(path, table.schema, dimensions=dimensions, metrics=metrics, rollup=rollup,
                           compression=compression, compression_level=compression_level,
                           bitmap_indexes=bitmap_indexes, chunk_rows=max(1, table.num_rows), threads=threads)
    writer.append(table)
    return writer.finish()


# --- reading ------------------------------------------------------------------------------


def _expected_parts(c: dict[str, Any], n: int) -> dict[str, int | None]:
    """Part name -> uncompressed size (None: any) for a column entry of the TOC."""
    kind = c["type"]
    nulls = c["hasNulls"]
    if not isinstance(nulls, bool):
        raise ValueError(f"hasNulls must be a boolean, got {nulls!r}")
    validity = {"validity": (n + 7) // 8} if nulls else {}
    if kind == "LONG":
        width, base = c["valueWidth"], c["base"]
        if width not in (1, 2, 4, 8) or not isinstance(base, int) or not -2**63 <= base < 2**63 \
                or (width == 8 and base != 0):
            raise ValueError(f"bad LONG encoding (valueWidth {width!r}, base {base!r})")
        return {"values": n * width, **validity}
    if kind in _NUMERIC:
        return {"values": n * _NUMERIC[kind][0].itemsize, **validity}
    if kind == "STRING" or kind == "ARRAY<STRING>":
        card, width = c["cardinality"], c["idWidth"]
        if not isinstance(card, int) or not 0 <= card <= _INT32_MAX:
            raise ValueError(f"bad cardinality {card!r}")
        if width != _k.id_width(card):
            raise ValueError(f"id width {width!r} is not the minimal width {_k.id_width(card)} "
                             f"for cardinality {card}")
        dictionary = {"dictLengths": 4 * card, "dictData": None}
        if not isinstance(c["bitmapIndex"], bool):
            raise ValueError(f"bitmapIndex must be a boolean, got {c['bitmapIndex']!r}")
        bitmaps = {"bitmapLengths": 4 * card, "bitmaps": None} if c["bitmapIndex"] else {}
        if kind == "STRING" and not c.get("multiValue"):
            if nulls and card == 0:
                raise ValueError("a column with nulls needs a null dictionary entry")
            if c["layout"] == "rowLists":
                if not c["bitmapIndex"]:
                    raise ValueError("a rowLists column is its bitmap index")
                if "idBits" in c:
                    raise ValueError("a rowLists column with bit-packed ids")
                return {**dictionary, "rowCounts": 4 * card, "rowLists": 4 * n}
            if c["layout"] != "ids":
                raise ValueError(f"unknown layout {c['layout']!r}")
            bits = c.get("idBits")
            if bits is None:
                return {"ids": n * width, **dictionary, **bitmaps}
            if bits != _k.id_bits(card) or not bits:
                raise ValueError(f"id bits {bits!r} are not the bits {_k.id_bits(card)} of cardinality {card}")
            return {"ids": (n * bits + 7) // 8, **dictionary, **bitmaps}
        if "idBits" in c:
            raise ValueError("a multi-value column with bit-packed ids")
        m = c["numElements"]
        return {"rowLengths": 4 * n, **validity, "ids": m * width, **dictionary, **bitmaps}
    if kind in _ARRAY_NUMERIC:
        m = c["numElements"]
        elem = _NUMERIC[_ARRAY_NUMERIC[kind]][0].itemsize
        return {"rowLengths": 4 * n, **validity, "elements": m * elem,
                **({"elementValidity": (m + 7) // 8} if c["elementNulls"] else {})}
    if kind.startswith("COMPLEX<") and kind.endswith(">") and c["storage"] in _BINARY_TYPES:
        raw = {**validity, "lengths": 4 * n, "data": None}
        return nested.expected_parts(c, n, raw) if kind == "COMPLEX<json>" else raw
    raise ValueError(f"unknown type {kind!r}")


_TOC_CACHE: dict[tuple[bytes, bytes], dict[str, Any]] = {}
_TOC_LOCK = threading.Lock()


class _Segment:
    """An open, memory-mapped segment file with its parsed, cheaply-validated table of contents."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            self.size = os.fstat(f.fileno()).st_size
            if self.size < HEADER_SIZE:
                raise self.corrupt(f"truncated: {self.size} bytes, shorter than the {HEADER_SIZE}-byte header")
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.buf = memoryview(self._mm)
        self._parse()

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # arrays still viewing the map keep it alive
            self.buf.release()
            self._mm.close()

    def corrupt(self, problem: str) -> SegmentCorruptError:
        return SegmentCorruptError(f"segment {self.path!r} is corrupt: {problem}")

    # header + TOC -------------------------------------------------------------------------

    def _parse(self) -> None:
        magic, version, toc_len, toc_crc, file_size, num_rows = _HEADER.unpack(self.buf[:HEADER_SIZE])
        if magic != MAGIC:
            raise self.corrupt(f"bad magic {magic!r}, expected {MAGIC!r}")
        if version not in READABLE_VERSIONS:
            known = ", ".join(map(str, READABLE_VERSIONS))
            raise self.corrupt(f"unsupported format version {version} (this reader knows {known})")
        if file_size != self.size:
            what = "truncated" if self.size < file_size else "trailing bytes"
            raise self.corrupt(f"{what}: header says {file_size} bytes, file has {self.size}")
        if toc_len > _MAX_TOC or HEADER_SIZE + toc_len > self.size:
            raise self.corrupt(f"table of contents length {toc_len} does not fit in {self.size} bytes")
        toc_bytes = self.buf[HEADER_SIZE:HEADER_SIZE + toc_len]
        if zlib.crc32(toc_bytes) != toc_crc:
            raise self.corrupt("table of contents checksum mismatch")
        # The checks below depend only on the header and the TOC bytes: a checked TOC is
        # cached under them (segments are immutable, and equal bytes parse equally).
        key = (bytes(self.buf[:HEADER_SIZE]), bytes(toc_bytes))
        toc = _TOC_CACHE.get(key)
        if toc is None:
            try:
                toc = json.loads(bytes(toc_bytes).decode("utf-8"))
                self._check_toc(toc, version, num_rows, HEADER_SIZE + toc_len)
            except SegmentCorruptError:
                raise
            except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
                raise self.corrupt(f"malformed table of contents ({type(e).__name__}: {e})") from None
            with _TOC_LOCK:
                if len(_TOC_CACHE) >= 256:
                    _TOC_CACHE.pop(next(iter(_TOC_CACHE)))
                _TOC_CACHE[key] = toc
        self.toc = toc  # shared with other readers: never mutated
        self.num_rows: int = num_rows
        self.codec = pa.Codec(toc["compression"])
        self.columns: dict[str, dict[str, Any]] = {c["name"]: c for c in toc["columns"]}

    def _check_toc(self, toc: dict[str, Any], version: int, num_rows: int, data_start: int) -> None:
        if toc["version"] != version:
            raise self.corrupt(f"version mismatch: header {version}, table of contents {toc['version']}")
        if version < 3 and any(c.get("layout") == "rowLists" for c in toc["columns"]):
            raise self.corrupt("a version 2 segment with a rowLists column")
        if version < 5 and any("idBits" in c for c in toc["columns"]):
            raise self.corrupt(f"a version {version} segment with bit-packed ids")
        if toc["numRows"] != num_rows:
            raise self.corrupt(f"row count mismatch: header {num_rows}, table of contents {toc['numRows']}")
        if toc["compression"] not in CODECS:
            raise self.corrupt(f"unknown compression {toc['compression']!r}")
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
            name = c["name"]
            offset, length = c["offset"], c["length"]
            if not (isinstance(offset, int) and isinstance(length, int) and isinstance(c["crc32"], int)):
                raise self.corrupt(f"column {name!r}: non-integer offset/length/crc32")
            if offset != pos or length < 0 or length % _ALIGN:
                raise self.corrupt(f"column {name!r}: block [{offset}, +{length}) does not follow the "
                                   f"previous block ending at {pos}")
            pos = offset + length
            if name == TIME_COLUMN and (c["type"] != "LONG" or c["hasNulls"]):
                raise self.corrupt(f"{TIME_COLUMN} must be a LONG column without nulls")
            try:
                expected = _expected_parts(c, num_rows)
            except ValueError as e:
                raise self.corrupt(f"column {name!r}: {e}") from None
            parts = c["parts"]
            if list(parts) != list(expected):
                raise self.corrupt(f"column {name!r}: parts {list(parts)}, expected {list(expected)}")
            part_pos = 0
            for part_name, want in expected.items():
                p = parts[part_name]
                at, stored, size, bs = p["at"], p["stored"], p["size"], p["blockSize"]
                if not all(isinstance(x, int) for x in (at, stored, size, bs)):
                    raise self.corrupt(f"column {name!r}: non-integer {part_name} position")
                nb = -(-size // bs) if bs > 0 else -1
                self._check_part_codec(name, part_name, p, version)
                if at != part_pos or size < 0 or bs <= 0 or stored < 8 * (nb + 1) or \
                        (want is not None and size != want):
                    raise self.corrupt(f"column {name!r}: part {part_name} at [{at}, +{stored}) with "
                                       f"{size} bytes in blocks of {bs} (expected at {part_pos}"
                                       + (f" with {want} bytes)" if want is not None else ")"))
                part_pos = _align(at + stored)
            if part_pos != length:
                raise self.corrupt(f"column {name!r}: parts end at {part_pos}, block length is {length}")
        if pos != self.size:
            raise self.corrupt(f"column blocks end at {pos}, file has {self.size} bytes")

    def _check_part_codec(self, name: str, part_name: str, p: dict[str, Any], version: int) -> None:
        """A part's own ``codec`` and ``bytePlanes`` (version 4)."""
        codec, planes = p.get("codec"), p.get("bytePlanes")
        if codec is None and planes is None:
            return
        if version < 4:
            raise self.corrupt(f"column {name!r}: part {part_name} has its own codec or byte planes "
                               f"in a version {version} segment")
        if codec is not None and codec not in CODECS:
            raise self.corrupt(f"column {name!r}: part {part_name} has unknown compression {codec!r}")
        if planes is not None and (not isinstance(planes, int) or not 2 <= planes <= 8
                                   or p["blockSize"] % planes or p["size"] % planes):
            raise self.corrupt(f"column {name!r}: part {part_name} has bad byte planes {planes!r}")

    # raw access ----------------------------------------------------------------------------

    def column(self, name: str) -> dict[str, Any]:
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"segment {self.path!r} has no column {name!r}; "
                           f"it has {list(self.columns)}") from None

    def _blocks(self, col: dict[str, Any], part_name: str) -> tuple[dict[str, int], np.ndarray, int]:
        """(part descriptor, block offsets uint64[nb+1], absolute start of the first block)."""
        p = col["parts"][part_name]
        nb = -(-p["size"] // p["blockSize"])
        start = col["offset"] + p["at"]
        table = np.frombuffer(self.buf, dtype="<u8", count=nb + 1, offset=start)
        data = start + 8 * (nb + 1)
        if table[0] != 0 or np.any(table[1:] < table[:-1]) or int(table[-1]) != p["stored"] - 8 * (nb + 1):
            raise self.corrupt(f"column {col['name']!r}: block table of part {part_name} is inconsistent")
        return p, table, data

    def read_blocks(self, col: dict[str, Any], part_name: str, first: int, last: int,
                    skip: np.ndarray | None = None) -> np.ndarray:
        """Uncompressed bytes of blocks ``first..last-1`` of a part, concatenated. Blocks where
        ``skip`` (a bool per block from ``first``) is set are not decompressed: their bytes
        are left undefined."""
        p, table, data = self._blocks(col, part_name)
        size, bs = p["size"], p["blockSize"]
        codec = _CODEC[p["codec"]] if "codec" in p else self.codec
        planes = p.get("bytePlanes")
        last = min(last, len(table) - 1)
        lo = first * bs
        out = np.empty(max(0, min(size, last * bs) - lo), dtype=np.uint8)
        for b in range(first, last):
            if skip is not None and skip[b - first]:
                continue
            want = min(bs, size - b * bs)
            src = self.buf[data + int(table[b]):data + int(table[b + 1])]
            try:
                got = codec.decompress(src, decompressed_size=want)
            except (pa.ArrowException, OSError) as e:
                raise self.corrupt(f"column {col['name']!r}: block {b} of part {part_name} does not "
                                   f"decompress ({e})") from None
            if got.size != want:
                raise self.corrupt(f"column {col['name']!r}: block {b} of part {part_name} holds "
                                   f"{got.size} bytes, expected {want}")
            if planes:
                _planes.join(np.frombuffer(got, dtype=np.uint8), planes, out[b * bs - lo:b * bs - lo + want])
            else:
                out[b * bs - lo:b * bs - lo + want] = np.frombuffer(got, dtype=np.uint8)
        return out

    def part(self, col: dict[str, Any], part_name: str) -> np.ndarray:
        """A whole part, uncompressed (uint8)."""
        return self.read_blocks(col, part_name, 0, 1 << 62)

    def byte_range(self, col: dict[str, Any], part_name: str, start: int, stop: int) -> np.ndarray:
        """Uncompressed bytes ``[start, stop)`` of a part, decompressing only the blocks they span."""
        bs = col["parts"][part_name]["blockSize"]
        if stop <= start:
            return np.zeros(0, dtype=np.uint8)
        first = start // bs
        got = self.read_blocks(col, part_name, first, -(-stop // bs))
        return got[start - first * bs:stop - first * bs]

    def blocks_of_rows(self, col: dict[str, Any], part_name: str, per: int,
                       rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the blocks holding sorted ``rows`` of a part of ``per`` rows a block, uncompressed
        and joined; each row's position in them), decompressing only those blocks."""
        first, last = int(rows[0]) // per, int(rows[-1]) // per + 1
        # the blocks between the first and the last that hold none of the rows stay compressed
        # (a search per block boundary, not a pass over the rows)
        bounds = np.searchsorted(rows, np.arange(first, last + 1) * per)
        empty = bounds[1:] == bounds[:-1]
        compact = self.read_blocks(col, part_name, first, last, empty if empty.any() else None)
        return compact, (rows - first * per if first else rows)

    def gather(self, col: dict[str, Any], part_name: str, itemsize: int, rows: np.ndarray) -> np.ndarray:
        """Fixed-width items at sorted ``rows`` as an (len(rows), itemsize) uint8 array, decompressing
        only the blocks holding them."""
        bs = col["parts"][part_name]["blockSize"]
        if not len(rows):
            return np.zeros((0, itemsize), dtype=np.uint8)
        compact, slot = self.blocks_of_rows(col, part_name, bs // itemsize, rows)
        if itemsize in (1, 2, 4, 8):  # one fancy index over whole items, not over byte rows
            return compact.view(f"<u{itemsize}")[slot].view(np.uint8).reshape(-1, itemsize)
        return compact.reshape(-1, itemsize)[slot]

    # decoding -------------------------------------------------------------------------------

    def dictionary(self, col: dict[str, Any], *, check_order: bool = False, large: bool = False) -> pa.Array:
        """The sorted dictionary as a string array (null entry first when the column has a null value)."""
        card = col["cardinality"]
        lengths = self.part(col, "dictLengths").view("<u4")
        offsets = np.zeros(card + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = self.part(col, "dictData")
        null_entry = col["hasNulls"] if "elementNulls" not in col else col["elementNulls"]
        try:
            _k.check_dictionary(offsets, data, 2 if null_entry else 1, check_order)
            if null_entry and offsets[1] != 0:
                raise ValueError("the null dictionary entry is not empty")
        except ValueError as e:
            raise self.corrupt(f"column {col['name']!r}: {e}") from None
        validity = None
        if null_entry:
            mask = np.ones(card, dtype=bool)
            mask[0] = False
            validity = pa.py_buffer(np.packbits(mask, bitorder="little"))
        if large or len(data) > _INT32_MAX:
            typ, offs = pa.large_string(), offsets
        else:
            typ, offs = pa.string(), offsets.astype(np.int32)
        arr = pa.Array.from_buffers(typ, card, [validity, pa.py_buffer(offs), pa.py_buffer(data)],
                                    null_count=1 if null_entry else 0)
        try:
            arr.validate(full=True)  # offsets are checked above; this checks the UTF-8
        except pa.ArrowInvalid as e:
            raise self.corrupt(f"column {col['name']!r}: bad dictionary ({e})") from None
        return arr

    def row_counts(self, col: dict[str, Any]) -> np.ndarray:
        return self.part(col, "rowCounts").view("<u4")

    def ids(self, col: dict[str, Any], rows: np.ndarray | None = None) -> np.ndarray:
        if col.get("layout") == "rowLists":  # the ids are the row lists inverted
            try:
                ids = _k.row_lists_to_ids(self.row_counts(col), _unshuffle_blocks(self.part(col, "rowLists")),
                                          self.num_rows)
            except ValueError as e:
                raise self.corrupt(f"column {col['name']!r}: {e}") from None
            return ids if rows is None else ids[rows]
        bits = col.get("idBits")
        if bits:
            return self._bit_ids(col, bits, rows)
        width = col["idWidth"]
        if rows is None:
            packed = self.part(col, "ids")
            count = len(packed) // width if width else 0
        else:
            packed = np.ascontiguousarray(self.gather(col, "ids", width, rows)).reshape(-1)
            count = len(rows)
        try:
            return _k.unpack_ids(packed, width, count, col["cardinality"])
        except ValueError as e:
            raise self.corrupt(f"column {col['name']!r}: {e}") from None

    def _bit_ids(self, col: dict[str, Any], bits: int, rows: np.ndarray | None) -> np.ndarray:
        bs = col["parts"]["ids"]["blockSize"]
        try:
            if rows is None:
                return _k.unpack_id_bits(self.part(col, "ids"), bits, self.num_rows, col["cardinality"])
            if (8 * bs) % bits:
                raise ValueError(f"blocks of {bs} bytes do not hold whole ids of {bits} bits")
            if not len(rows):
                return np.zeros(0, dtype=np.int32)
            compact, slot = self.blocks_of_rows(col, "ids", 8 * bs // bits, rows)
            return _k.unpack_id_bits(compact, bits, 0, col["cardinality"], np.ascontiguousarray(slot, dtype=np.int64))
        except ValueError as e:
            raise self.corrupt(f"column {col['name']!r}: {e}") from None

    def validity(self, col: dict[str, Any], part_name: str, n: int, rows: np.ndarray | None) -> pa.Buffer | None:
        if part_name not in col["parts"]:
            return None
        if rows is None:
            return pa.py_buffer(self.part(col, part_name))
        bits = np.unpackbits(self.gather(col, part_name, 1, rows // 8).reshape(-1), bitorder="little")
        return pa.py_buffer(np.packbits(bits.reshape(-1, 8)[np.arange(len(rows)), rows % 8], bitorder="little"))

    def numeric(self, col: dict[str, Any], kind: str, values_part: str, validity_part: str, n: int,
                rows: np.ndarray | None = None) -> pa.Array:
        dtype, typ = _NUMERIC[kind]
        width = col.get("valueWidth", dtype.itemsize) if values_part == "values" else dtype.itemsize
        stored = dtype if width == dtype.itemsize else np.dtype(f"<u{width}")
        if rows is None:
            values = self.part(col, values_part).view(stored)
        else:
            values = self.gather(col, values_part, width, rows).reshape(-1).view(stored)
            n = len(rows)
        if stored is dtype:
            values = values.astype(dtype.newbyteorder("="), copy=False)
        else:  # frame of reference: add the base back (wraps like Java's long arithmetic)
            values = values.astype(np.int64) + np.int64(col["base"])
        validity = self.validity(col, validity_part, n, rows)
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(values)],
                                     null_count=-1 if validity is not None else 0)

    def row_offsets(self, col: dict[str, Any]) -> np.ndarray:
        lengths = self.part(col, "rowLengths").view("<u4")
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if offsets[-1] != col["numElements"]:
            raise self.corrupt(f"column {col['name']!r}: row lengths add up to {offsets[-1]}, "
                               f"not {col['numElements']} elements")
        return offsets

    def strings(self, col: dict[str, Any], ids: np.ndarray, values: pa.Array, dictionary: bool) -> pa.Array:
        """A single-value STRING column's rows from their ``ids`` (0 for null) and its
        dictionary ``values`` (``self.dictionary(col)``): values, or a DictionaryArray."""
        if dictionary:
            mask = pa.py_buffer(np.packbits(ids != 0, bitorder="little")) if col["hasNulls"] else None
            indices = pa.Array.from_buffers(pa.int32(), len(ids), [mask, pa.py_buffer(ids)],
                                            null_count=-1 if mask is not None else 0)
            # ids were checked against the cardinality while unpacking
            values = pc.fill_null(values, "") if values.null_count else values
            return pa.DictionaryArray.from_arrays(indices, values, safe=False)
        try:
            return values.take(pa.array(ids))
        except (pa.ArrowInvalid, pa.ArrowCapacityError):
            # more than 2 GiB of decoded text: pa.string() offsets cannot hold it
            return self.dictionary(col, large=True).take(pa.array(ids))

    def decode(self, col: dict[str, Any], rows: np.ndarray | None = None, dictionary: bool = False) -> pa.Array:
        n = self.num_rows
        kind = col["type"]
        if kind in _NUMERIC:
            return self.numeric(col, kind, "values", "validity", n, rows)
        if kind == "STRING" and not col.get("multiValue"):
            return self.strings(col, self.ids(col, rows), self.dictionary(col), dictionary)
        arr = self._decode_list_or_complex(col, kind)
        return arr if rows is None else arr.take(pa.array(rows))

    def _decode_list_or_complex(self, col: dict[str, Any], kind: str) -> pa.Array:
        n = self.num_rows
        validity = self.validity(col, "validity", n, None)
        null_count = -1 if validity is not None else 0
        if kind.startswith("COMPLEX<"):
            lengths = self.part(col, "lengths").view("<u4")
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            data = self.part(col, "data")
            if offsets[-1] != len(data):
                raise self.corrupt(f"column {col['name']!r}: lengths add up to {offsets[-1]}, data has {len(data)}")
            typ = _BINARY_TYPES[col["storage"]]
            large = typ in (pa.large_binary(), pa.large_string())
            arr = pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(offsets if large else offsets.astype(np.int32)),
                                                 pa.py_buffer(data)], null_count=null_count)
            try:
                arr.validate(full=True)
            except pa.ArrowInvalid as e:
                raise self.corrupt(f"column {col['name']!r}: bad values ({e})") from None
            return arr
        offsets = self.row_offsets(col)
        m = col["numElements"]
        if kind in _ARRAY_NUMERIC:
            flat = self.numeric(col, _ARRAY_NUMERIC[kind], "elements", "elementValidity", m)
        else:
            flat = self.dictionary(col).take(pa.array(self.ids(col)))
        return pa.Array.from_buffers(pa.list_(flat.type), n, [validity, pa.py_buffer(offsets.astype(np.int32))],
                                     null_count=null_count, children=[flat])

    def field(self, col: dict[str, Any], arr: pa.Array) -> pa.Field:
        return pa.field(col["name"], arr.type, metadata=_meta_from_json(col.get("fieldMetadata")))

    # bitmaps ----------------------------------------------------------------------------------

    def bitmap_offsets(self, col: dict[str, Any]) -> np.ndarray:
        lengths = self.part(col, "bitmapLengths").view("<u4")
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if offsets[-1] != col["parts"]["bitmaps"]["size"]:
            raise self.corrupt(f"column {col['name']!r}: bitmap lengths add up to {offsets[-1]}, "
                               f"the bitmaps part has {col['parts']['bitmaps']['size']} bytes")
        return offsets


@contextlib.contextmanager
def _open(path: str):
    seg = _Segment(os.fspath(path))
    try:
        yield seg
    finally:
        seg.close()


def _row_selection(rows, n: int) -> np.ndarray | None:
    if rows is None:
        return None
    if isinstance(rows, (slice, range)):
        start, stop, step = rows.indices(n) if isinstance(rows, slice) else (rows.start, rows.stop, rows.step)
        return np.arange(start, stop, step, dtype=np.int64)
    sel = np.asarray(rows, dtype=np.int64)
    if sel.ndim != 1 or (len(sel) and (sel.min() < 0 or sel.max() >= n)):
        raise IndexError(f"row selection out of range for a segment of {n} rows")
    if len(sel) > 1 and np.any(sel[1:] < sel[:-1]):
        raise ValueError("row selection must be ascending")
    return sel


def read_segment(path: str, columns: list[str] | None = None, *, rows=None,
                 dictionary: bool = False) -> pa.Table:
    """Read all columns (or only ``columns``, in that order) as a ``pa.Table``.

    ``rows`` (a slice, or ascending row numbers) reads only those rows: fixed-width columns
    decompress only the blocks holding them. Single-value strings come back as ``pa.string()``,
    or with ``dictionary=True`` as ``dictionary<int32, string>`` over the segment's sorted
    dictionary (no decoding). Other columns are never read. Raises ``SegmentCorruptError`` for
    damaged files and ``KeyError`` for unknown column names.
    """
    with _open(path) as seg:
        names = list(seg.columns) if columns is None else list(columns)
        cols = [seg.column(name) for name in names]
        sel = _row_selection(rows, seg.num_rows)
        arrays = [seg.decode(c, sel, dictionary) for c in cols]
        fields = [seg.field(c, a) for c, a in zip(cols, arrays)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def read_segment_meta(path: str) -> dict[str, Any]:
    """Row count, column names/types, dimensions (with Druid dimension schemas), metrics, rollup,
    file size and time range."""
    with _open(path) as seg:
        toc = seg.toc
        return {
            "numRows": seg.num_rows,
            "columns": [{"name": c["name"], "type": c["type"],
                         **({"multiValue": True} if c.get("multiValue") else {}),
                         **({"bitmapIndex": False} if c.get("bitmapIndex") is False else {})}
                        for c in toc["columns"]],
            "dimensions": list(toc["dimensions"]),
            "metrics": list(toc["metrics"]),
            "dimensionsSpec": copy.deepcopy(toc["dimensionsSpec"]),
            "metricsSpec": copy.deepcopy(toc["metricsSpec"]),
            "rollup": toc["rollup"],
            "size": seg.size,
            "minTime": toc["minTime"],
            "maxTime": toc["maxTime"],
        }


def validate_segment(path: str, *, full: bool = False) -> None:
    """Check a segment file; raise ``SegmentCorruptError`` naming the path and the problem.

    The cheap check reads only the header and table of contents (magic, version, file size,
    TOC checksum, block and part positions). ``full=True`` also reads every column: its crc32,
    every block's decompressed size, dictionaries (offsets, UTF-8, strict order), ids in range,
    every bitmap (well-formed Roaring, exactly the rows holding its value), and the recorded
    min/max time.
    """
    with _open(path) as seg:
        if not full:
            return
        for col in seg.toc["columns"]:
            crc = zlib.crc32(seg.buf[col["offset"]:col["offset"] + col["length"]])
            if crc != col["crc32"]:
                raise seg.corrupt(f"column {col['name']!r}: checksum mismatch "
                                  f"(stored {col['crc32']:#010x}, computed {crc:#010x})")
            kind = col["type"]
            if kind == "STRING" or kind == "ARRAY<STRING>":
                seg.dictionary(col, check_order=True)
                if col.get("layout") == "rowLists":
                    seg.ids(col)  # checks the lists are ascending and cover each row once
                elif col["bitmapIndex"]:
                    _check_bitmaps(seg, col)
                else:
                    seg.ids(col)
            else:
                seg.decode(col)
            if col["name"] == TIME_COLUMN:
                times = seg.decode(col).to_numpy()
                lo = int(times.min()) if len(times) else None
                hi = int(times.max()) if len(times) else None
                if (lo, hi) != (seg.toc["minTime"], seg.toc["maxTime"]):
                    raise seg.corrupt(f"time range [{lo}, {hi}] does not match the recorded "
                                      f"[{seg.toc['minTime']}, {seg.toc['maxTime']}]")


def _check_bitmaps(seg: _Segment, col: dict[str, Any]) -> None:
    card = col["cardinality"]
    ids = seg.ids(col)
    offsets = seg.bitmap_offsets(col)
    try:
        got_offsets, got_rows = _rb.decode_bitmaps(seg.part(col, "bitmaps"), offsets,
                                                   np.arange(card, dtype=np.int64), max(seg.num_rows, 1))
    except ValueError as e:
        raise seg.corrupt(f"column {col['name']!r}: {e}") from None
    if "rowLengths" in col["parts"]:  # one bitmap per value of the rows holding it
        row_offsets = seg.row_offsets(col)
        rows = np.repeat(np.arange(seg.num_rows, dtype=np.int64), np.diff(row_offsets))
        pairs = np.unique(ids.astype(np.int64) * (seg.num_rows + 1) + rows)
        ids, rows = (pairs // (seg.num_rows + 1)).astype(np.int32), pairs % (seg.num_rows + 1)
        want_offsets = np.zeros(card + 1, dtype=np.int64)
        np.cumsum(np.bincount(ids, minlength=card), out=want_offsets[1:])
        ok = np.array_equal(got_offsets, want_offsets) and np.array_equal(got_rows, rows)
    else:
        try:
            _k.check_inverted_index(ids, got_offsets, got_rows.view(np.int32))
            ok = True
        except ValueError:
            ok = False
    if not ok:
        raise seg.corrupt(f"column {col['name']!r}: the bitmaps are not the rows holding each value")


class BitmapIndex:
    """The bitmap index of one STRING column: its sorted dictionary and a Roaring bitmap per value.

    Bitmaps are read (and decompressed) one at a time, from the memory-mapped file, when asked for.
    A ``rowLists`` column stores each value's rows instead; its bitmaps are serialized from them.
    """

    def __init__(self, seg: _Segment, col: dict[str, Any]):
        self._seg = seg
        self._col = col
        self.num_rows = seg.num_rows
        self.dictionary: pa.Array = seg.dictionary(col)
        self._row_lists = col.get("layout") == "rowLists"
        if self._row_lists:  # entry offsets of each value's rows in the rowLists part
            self.byte_offsets = np.zeros(self.cardinality + 1, dtype=np.int64)
            np.cumsum(seg.row_counts(col), out=self.byte_offsets[1:])
            if self.byte_offsets[-1] != self.num_rows:
                raise seg.corrupt(f"column {col['name']!r}: row counts add up to {self.byte_offsets[-1]}, "
                                  f"not {self.num_rows}")
        else:
            self.byte_offsets = seg.bitmap_offsets(col)
        self._blocks: dict[int, np.ndarray] = {}  # a few decompressed blocks of the bitmaps part
        self._lock = threading.Lock()

    @property
    def cardinality(self) -> int:
        return len(self.dictionary)

    def close(self) -> None:
        self._seg.close()

    def lookup(self, values) -> np.ndarray:
        """Dictionary ids (int64, ascending) of those of ``values`` that occur; ``None`` means null.
        A binary search of the sorted dictionary per value: a hash table of it (``pc.index_in``)
        would cost the whole dictionary on every call, 500k entries for a column like ``page``."""
        d = self.dictionary
        first = 1 if d.null_count else 0  # the null entry, if any, is entry 0
        found = {0} if first and any(v is None for v in values) else set()
        keys = [v.encode() for v in values if v is not None]
        if keys:
            bufs = d.buffers()
            width = 8 if pa.types.is_large_string(d.type) else 4
            offsets = np.frombuffer(bufs[1], dtype=f"<i{width}", count=len(d) + 1, offset=d.offset * width)
            data = memoryview(bufs[2] if bufs[2] is not None else b"")
            for key in keys:  # bytes compare as the dictionary is sorted: unsigned, a prefix first
                lo, hi = first, len(d)
                while lo < hi:
                    mid = (lo + hi) // 2
                    if bytes(data[offsets[mid]:offsets[mid + 1]]) < key:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < len(d) and bytes(data[offsets[lo]:offsets[lo + 1]]) == key:
                    found.add(lo)
        return np.array(sorted(found), dtype=np.int64)

    def _block(self, part: str, b: int) -> np.ndarray:
        block = self._blocks.get(b)
        if block is None:
            block = self._seg.read_blocks(self._col, part, b, b + 1)
            if self._row_lists:
                block = _unshuffle_blocks(block)
            with self._lock:  # indexes are shared between query threads
                if len(self._blocks) >= 8:
                    self._blocks.pop(next(iter(self._blocks)))
                self._blocks[b] = block
        return block

    def _span(self, part: str, lo: int, hi: int, per_block: int) -> np.ndarray:
        """Items ``[lo, hi)`` of a part whose blocks hold ``per_block`` items, from cached blocks
        (neighbouring values share blocks)."""
        first, last = lo // per_block, (hi - 1) // per_block
        chunks = [self._block(part, b) for b in range(first, last + 1)]
        data = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        return data[lo - first * per_block:hi - first * per_block]

    def _value_rows(self, value_id: int) -> np.ndarray:
        lo, hi = int(self.byte_offsets[value_id]), int(self.byte_offsets[value_id + 1])
        if self._row_lists:
            if hi <= lo:
                return np.zeros(0, dtype=np.int32)
            rows = np.cumsum(self._span("rowLists", lo, hi, ROWS_PER_BLOCK), dtype=np.int64)
            if rows[-1] >= self.num_rows or (len(rows) > 1 and np.any(rows[1:] <= rows[:-1])):
                raise self._seg.corrupt(f"column {self._col['name']!r}: the rows of value {value_id} "
                                        "are not ascending rows of the segment")
            return rows.astype(np.int32)
        data = self._span("bitmaps", lo, hi, self._col["parts"]["bitmaps"]["blockSize"]) if hi > lo \
            else np.zeros(0, dtype=np.uint8)
        try:
            _, rows = _rb.decode_bitmaps(data, np.array([0, hi - lo], dtype=np.int64),
                                         np.zeros(1, dtype=np.int64), max(self.num_rows, 1))
        except ValueError as e:
            raise self._seg.corrupt(f"column {self._col['name']!r}: {e}") from None
        return rows.view(np.int32)

    def bitmap(self, value_id: int) -> bytes:
        """The serialized (portable Roaring) bitmap of the rows holding dictionary entry ``value_id``."""
        if self._row_lists:
            return _rb.serialize(self._value_rows(value_id).view(np.uint32))
        lo, hi = int(self.byte_offsets[value_id]), int(self.byte_offsets[value_id + 1])
        if hi <= lo:
            return b""
        return self._span("bitmaps", lo, hi, self._col["parts"]["bitmaps"]["blockSize"]).tobytes()

    def rows(self, value_ids) -> np.ndarray:
        """Ascending rows (int32) holding any of the dictionary entries ``value_ids``."""
        parts = [self._value_rows(int(i)) for i in value_ids]
        if not parts:
            return np.zeros(0, dtype=np.int32)
        return parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))


def string_value_index(path: str, column: str) -> BitmapIndex:
    """The bitmap index of a STRING column (single- or multi-value) of a segment.

    Only the dictionary and the bitmap lengths are read now; bitmaps are read as asked for.
    The index keeps the file mapped until it is closed or garbage-collected.
    """
    seg = _Segment(os.fspath(path))
    try:
        return bitmap_index(seg, column)
    except BaseException:
        seg.close()
        raise


# --- segments kept open across reads (the SQL endpoint's cache: engine/open_segments.py) ----------

def open_segment(path: str) -> _Segment:
    """An open, memory-mapped segment with its checked table of contents, for a reader that
    keeps it across reads (its ``ids``/``numeric``/``decode`` methods read columns). The
    caller ``close()``s it."""
    return _Segment(os.fspath(path))


def bitmap_index(seg: _Segment, column: str) -> BitmapIndex:
    """``string_value_index`` of an open segment: the index shares ``seg`` (closing it closes
    the segment)."""
    col = seg.column(column)
    if col["type"] != "STRING":
        raise ValueError(f"column {column!r} of segment {seg.path!r} is {col['type']}, not STRING")
    if not col["bitmapIndex"]:
        raise ValueError(f"column {column!r} of segment {seg.path!r} has no bitmap index "
                         "(written with createBitmapIndex false)")
    return BitmapIndex(seg, col)
