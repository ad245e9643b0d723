"""Frames: msqcore.engine.frames and its Cython kernel msqcore.kernels._frame.

A pure-Python key encoder (``ref_key``) and SQL comparator (``sql_cmp``) serve as the
reference: keys must match the encoder byte for byte, and byte order must match SQL order.
``test_sorter`` imports the reference helpers from here.
"""
from __future__ import annotations

import functools
import gc
import math
import os
import struct
import sys
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msqcore.engine import frames as F
from msqcore.engine.frames import (
    MULTI_VALUE_METADATA,
    ColumnTypeNotSupported,
    FrameCorruptError,
    FrameFileReader,
    FrameFileWriter,
    FrameType,
    RowTooLarge,
    decode_frame,
    encode_frames,
    encode_keys,
    frame_info,
    frame_keys,
    read_frames_file,
    validate_frame,
)
from msqcore.errors import Fault, MsqError
from msqcore.kernels import _frame as K

# --- the reference ------------------------------------------------------------------------------

T = FrameType
ARROW = {
    T.LONG: pa.int64(), T.FLOAT: pa.float32(), T.DOUBLE: pa.float64(), T.STRING: pa.string(),
    T.LONG_ARRAY: pa.list_(pa.int64()), T.FLOAT_ARRAY: pa.list_(pa.float32()),
    T.DOUBLE_ARRAY: pa.list_(pa.float64()), T.STRING_ARRAY: pa.list_(pa.string()),
    T.MULTI_VALUE_STRING: pa.list_(pa.string()),
}
ELEMENT = {T.LONG_ARRAY: T.LONG, T.FLOAT_ARRAY: T.FLOAT, T.DOUBLE_ARRAY: T.DOUBLE,
           T.STRING_ARRAY: T.STRING, T.MULTI_VALUE_STRING: T.STRING}


def field(name: str, t: FrameType) -> pa.Field:
    return pa.field(name, ARROW[t], metadata=MULTI_VALUE_METADATA if t is T.MULTI_VALUE_STRING else None)


def _num_bits(v, t: FrameType) -> bytes:
    if t is T.LONG:
        return struct.pack(">Q", (v + (1 << 63)) & ((1 << 64) - 1))
    if t is T.DOUBLE:
        bits = 0x7FF8000000000000 if math.isnan(v) else 0 if v == 0 else struct.unpack("<Q", struct.pack("<d", v))[0]
        bits = (~bits & ((1 << 64) - 1)) if bits >> 63 else bits | (1 << 63)
        return struct.pack(">Q", bits)
    bits = 0x7FC00000 if math.isnan(v) else 0 if v == 0 else struct.unpack("<I", struct.pack("<f", v))[0]
    bits = (~bits & 0xFFFFFFFF) if bits >> 31 else bits | (1 << 31)
    return struct.pack(">I", bits)


def _scalar_payload(v, t: FrameType) -> bytes:
    if t is T.STRING:
        return v.encode("utf-8").replace(b"\x00", b"\x00\xff") + b"\x00\x00"
    return _num_bits(v, t)


def ref_key(row: Sequence, types: Sequence[FrameType], desc: Sequence[bool]) -> bytes:
    """The documented key encoding, written independently of the kernel."""
    out = b""
    for v, t, d in zip(row, types, desc):
        if v is None:
            part = b"\x00"
        elif t in ELEMENT:
            e = ELEMENT[t]
            part = b"\x01" + b"".join(b"\x02" if x is None else b"\x03" + _scalar_payload(x, e) for x in v) + b"\x01"
        else:
            part = b"\x01" + _scalar_payload(v, t)
        out += bytes(b ^ 0xFF for b in part) if d else part
    return out


def _cmp_scalar(a, b, t: FrameType) -> int:
    if a is None or b is None:
        return (a is not None) - (b is not None)             # null first
    if t is T.STRING:
        a, b = a.encode("utf-8"), b.encode("utf-8")
    elif t in (T.FLOAT, T.DOUBLE):
        na, nb = math.isnan(a), math.isnan(b)
        if na or nb:
            return na - nb                                   # NaN greatest
    return (a > b) - (a < b)


def sql_cmp_value(a, b, t: FrameType) -> int:
    if t not in ELEMENT or a is None or b is None:
        return _cmp_scalar(a, b, t)
    for x, y in zip(a, b):
        c = _cmp_scalar(x, y, ELEMENT[t])
        if c:
            return c
    return (len(a) > len(b)) - (len(a) < len(b))


def sql_cmp(r1, r2, types, desc) -> int:
    for a, b, t, d in zip(r1, r2, types, desc):
        c = sql_cmp_value(a, b, t)
        if c:
            return -c if d else c
    return 0


def sql_order(rows: list, types, desc) -> list[int]:
    """Stable SQL sort of ``rows`` (tuples of key values); returns the row indexes."""
    cmp = functools.cmp_to_key(lambda i, j: sql_cmp(rows[i], rows[j], types, desc))
    return sorted(range(len(rows)), key=cmp)


def key_list(offsets, data) -> list[bytes]:
    raw = data.tobytes()
    return [raw[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def byte_order(offsets, data) -> list[int]:
    keys = key_list(offsets, data)
    return sorted(range(len(keys)), key=keys.__getitem__)


# --- hypothesis strategies ----------------------------------------------------------------------

TEXT = (st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
        | st.sampled_from(["", "\x00", "a\x00", "é", "日本", "\U0001F600"]))
VALUES = {
    T.LONG: st.integers(-(1 << 63), (1 << 63) - 1) | st.sampled_from([0, 1, -1, (1 << 63) - 1, -(1 << 63)]),
    T.DOUBLE: st.floats(allow_nan=True) | st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan]),
    T.FLOAT: st.floats(width=32, allow_nan=True) | st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan]),
    T.STRING: TEXT,
}


def values_of(t: FrameType):
    if t in ELEMENT:
        return st.none() | st.lists(st.none() | VALUES[ELEMENT[t]], max_size=4)
    return st.none() | VALUES[t]


@st.composite
def tables(draw, types=tuple(T), max_rows=30):
    ts = draw(st.lists(st.sampled_from(types), min_size=1, max_size=4))
    n = draw(st.integers(0, max_rows))
    cols = {f"c{i}": draw(st.lists(values_of(t), min_size=n, max_size=n)) for i, t in enumerate(ts)}
    schema = pa.schema([field(f"c{i}", t) for i, t in enumerate(ts)])
    return pa.table(cols, schema=schema), ts


def assert_same(a: pa.RecordBatch | pa.Table, b: pa.RecordBatch | pa.Table) -> None:
    """Equality that also holds for NaN (Arrow's equals treats NaN != NaN)."""
    assert a.schema.names == b.schema.names
    assert a.schema.types == b.schema.types
    assert a.num_rows == b.num_rows
    for x, y in zip(a.columns, b.columns):
        assert x.to_pylist() == y.to_pylist() or _nan_equal(x.to_pylist(), y.to_pylist())


def _nan_equal(xs, ys) -> bool:
    def norm(v):
        if isinstance(v, float) and math.isnan(v):
            return "NaN"
        if isinstance(v, float):
            return ("f", v, math.copysign(1, v))
        if isinstance(v, list):
            return [norm(e) for e in v]
        return v
    return [norm(v) for v in xs] == [norm(v) for v in ys]


def concat(frames: list[bytes]) -> pa.Table:
    return pa.Table.from_batches([decode_frame(f) for f in frames])


# --- round trips --------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.sampled_from([1024, 1500, 4096, 1_000_000]))
def test_round_trip_property(data, max_frame_size):
    table, types = data
    key = [(table.column_names[0], False)]
    try:
        frames = encode_frames(table, key, max_frame_size)
    except RowTooLarge:
        return
    assert all(len(f) <= max_frame_size for f in frames)
    for f in frames:
        validate_frame(f, full=True)
    out = concat(frames)
    assert_same(out, table)
    assert out.schema.field(0).metadata == table.schema.field(0).metadata


@pytest.mark.parametrize("t", list(T), ids=lambda t: t.name)
def test_boundary_samples_round_trip(t):
    samples = {
        T.LONG: [None, 0, 1, -1, (1 << 63) - 1, -(1 << 63)],
        T.FLOAT: [None, 0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 3.4028234663852886e38],
        T.DOUBLE: [None, 0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308],
        T.STRING: [None, "", "a", "\x00", "a\x00b", "é", "\U0001F600", "x" * 1000],
    }
    if t in ELEMENT:
        e = samples[ELEMENT[t]]
        vals = [None, [], [None], e[1:3], [e[1], None, e[-1]], e[1:]]
    else:
        vals = samples[t]
    table = pa.table({"v": pa.array(vals, type=ARROW[t])}, schema=pa.schema([field("v", t)]))
    for key in ([], [("v", False)], [("v", True)]):
        frames = encode_frames(table, key)
        assert len(frames) == 1
        validate_frame(frames[0], full=True)
        assert_same(concat(frames), table)
        info = frame_info(frames[0])
        assert info.schema.types == (t,)
        assert info.key == key


def test_empty_batch_gives_one_empty_frame_with_schema():
    table = pa.table({"a": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    frames = encode_frames(table, [("a", False)])
    assert len(frames) == 1
    out = decode_frame(frames[0])
    assert out.num_rows == 0 and out.schema == table.schema
    validate_frame(frames[0], full=True)


def test_sliced_and_chunked_inputs():
    base = pa.table({
        "a": pa.array(range(100), pa.int64()),
        "s": pa.array([None if i % 7 == 0 else f"s{i}" for i in range(100)]),
        "l": pa.array([None if i % 5 == 0 else list(range(i % 4)) for i in range(100)], pa.list_(pa.int64())),
        "m": pa.array([[f"x{i}", None] if i % 3 else None for i in range(100)], pa.list_(pa.string())),
    })
    sliced = base.slice(13, 61)
    chunked = pa.concat_tables([base.slice(0, 10), base.slice(10, 40), base.slice(50, 50)])
    for t in (sliced, chunked, base.to_batches()[0].slice(3, 9)):
        frames = encode_frames(t, [("s", True), ("a", False)], max_frame_size=2048)
        assert len(frames) > (1 if t.num_rows > 20 else 0)
        assert_same(concat(frames), t if isinstance(t, pa.Table) else pa.Table.from_batches([t]))


def test_type_normalization():
    table = pa.table({
        "i32": pa.array([1, None, -3], pa.int32()),
        "u8": pa.array([1, 2, 255], pa.uint8()),
        "b": pa.array([True, False, None]),
        "ts": pa.array([1, 2, None], pa.timestamp("ms")),
        "ls": pa.array(["a", None, "c"], pa.large_string()),
        "dict": pa.array(["x", "y", "x"]).dictionary_encode(),
        "n": pa.nulls(3),
        "ll": pa.array([[1], None, []], pa.large_list(pa.int32())),
        "f16": pa.array(np.array([1.5, 2.0, -0.0], dtype=np.float16)),
    })
    out = concat(encode_frames(table, [("i32", False)]))
    assert out.schema.types == [pa.int64(), pa.int64(), pa.int64(), pa.int64(), pa.string(), pa.string(),
                                pa.string(), pa.list_(pa.int64()), pa.float32()]
    assert out.column("i32").to_pylist() == [1, None, -3]
    assert out.column("b").to_pylist() == [1, 0, None]
    assert out.column("ts").to_pylist() == [1, 2, None]
    assert out.column("dict").to_pylist() == ["x", "y", "x"]
    assert out.column("n").to_pylist() == [None] * 3
    assert out.column("ll").to_pylist() == [[1], None, []]


@pytest.mark.parametrize("typ", [pa.decimal128(10, 2), pa.struct([("a", pa.int64())]), pa.binary(),
                                 pa.map_(pa.string(), pa.int64())], ids=str)
def test_unsupported_type(typ):
    table = pa.table({"x": pa.nulls(2, typ)})
    with pytest.raises(ColumnTypeNotSupported) as e:
        encode_frames(table)
    assert e.value.to_json()["errorCode"] == "ColumnTypeNotSupported"
    assert e.value.fields["columnName"] == "x"


def test_multi_value_string_is_marked():
    schema = pa.schema([field("mv", T.MULTI_VALUE_STRING), field("arr", T.STRING_ARRAY)])
    table = pa.table({"mv": [["a", "b"], None], "arr": [["a"], []]}, schema=schema)
    frames = encode_frames(table)
    assert frame_info(frames[0]).schema.types == (T.MULTI_VALUE_STRING, T.STRING_ARRAY)
    out = decode_frame(frames[0])
    assert out.schema.field("mv").metadata == MULTI_VALUE_METADATA
    assert out.schema.field("arr").metadata is None
    assert T.MULTI_VALUE_STRING.druid_name == "STRING" and T.STRING_ARRAY.druid_name == "ARRAY<STRING>"


def test_frames_are_split_at_max_frame_size():
    n = 20_000
    table = pa.table({"a": pa.array(np.arange(n)), "s": pa.array([f"row-{i}" for i in range(n)])})
    frames = encode_frames(table, [("a", False)], max_frame_size=64 * 1024)
    assert len(frames) > 5
    assert all(len(f) <= 64 * 1024 for f in frames)
    # frames are filled: all but the last hold more than 90 % of the limit
    assert all(len(f) > 0.9 * 64 * 1024 for f in frames[:-1])
    assert sum(frame_info(f).num_rows for f in frames) == n
    assert concat(frames).equals(table)


def test_row_too_large():
    table = pa.table({"s": ["small", "x" * 5000]})
    with pytest.raises(RowTooLarge) as e:
        encode_frames(table, [("s", False)], max_frame_size=4096)
    assert isinstance(e.value, Fault)
    assert e.value.to_json() == {
        "errorCode": "RowTooLarge", "maxFrameSize": 4096,
        "errorMessage": "Encountered row that cannot fit in a single frame (max frame size = 4,096). Reduce your row size or increase the context parameter[maxFrameSize]."}
    frames = encode_frames(table, [("s", False)], max_frame_size=16384)
    assert len(frames) == 1


def test_decode_is_zero_copy():
    table = pa.table({"a": pa.array(np.arange(1000)), "s": [f"v{i}" for i in range(1000)]})
    (frame,) = encode_frames(table)
    out = decode_frame(frame)
    base = pa.py_buffer(frame).address
    for arr in out.columns:
        for buf in arr.buffers():
            if buf is not None and buf.size:
                assert base <= buf.address < base + len(frame)


def test_decoded_batch_keeps_its_frame_alive():
    """Decoding hands the frame's buffers to Arrow; the batch holds the frame (and its
    buffer export, so a bytearray cannot be resized under it) until it is dropped."""
    table = pa.table({"a": pa.array([1, None, 3], pa.int64()), "s": ["x", None, "zz"],
                      "l": pa.array([[1.5], None, [None, 2.0]], pa.list_(pa.float64()))})
    buf = bytearray(encode_frames(table, [("s", False)])[0])
    batch = decode_frame(buf)
    with pytest.raises(BufferError):
        buf.extend(b"x")
    del buf
    gc.collect()
    batch.validate(full=True)
    assert batch.to_pydict() == table.to_pydict()
    frame = bytes(encode_frames(table)[0])
    before = sys.getrefcount(frame)
    batch = decode_frame(frame)
    del batch
    gc.collect()
    assert sys.getrefcount(frame) == before


# --- keys ---------------------------------------------------------------------------------------


def _rows(table: pa.Table, names) -> list[tuple]:
    cols = [table.column(n).to_pylist() for n in names]
    return list(zip(*cols)) if cols else []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(max_rows=25), st.lists(st.booleans(), min_size=4, max_size=4))
def test_keys_match_reference_and_sql_order(data, desc):
    table, types = data
    names = table.column_names
    desc = desc[:len(names)]
    key = list(zip(names, desc))
    offsets, kdata = encode_keys(table, key)
    assert offsets.dtype == np.int64 and kdata.dtype == np.uint8 and len(offsets) == table.num_rows + 1
    rows = _rows(table, names)
    assert key_list(offsets, kdata) == [ref_key(r, types, desc) for r in rows]
    assert byte_order(offsets, kdata) == sql_order(rows, types, desc)


@pytest.mark.parametrize("t", list(T), ids=lambda t: t.name)
@pytest.mark.parametrize("desc", [False, True], ids=["asc", "desc"])
def test_key_order_per_type(t, desc):
    rng = np.random.default_rng(int(t) * 2 + desc)
    pool = {
        T.LONG: [None, 0, 1, -1, 2, -2, (1 << 63) - 1, -(1 << 63), 1 << 40, -(1 << 40)],
        T.FLOAT: [None, 0.0, -0.0, 1.5, -1.5, math.inf, -math.inf, math.nan, 1e-30, -1e30],
        T.DOUBLE: [None, 0.0, -0.0, 1.5, -1.5, math.inf, -math.inf, math.nan, 5e-324, -1e300],
        T.STRING: [None, "", "a", "ab", "a\x00", "a\x00b", "b", "é", "z", "\U0001F600", "\x00"],
    }
    if t in ELEMENT:
        e = pool[ELEMENT[t]]
        vals = [None, []] + [[e[int(j)] for j in rng.integers(0, len(e), int(rng.integers(0, 4)))] for _ in range(80)]
    else:
        vals = [pool[t][int(j)] for j in rng.integers(0, len(pool[t]), 80)]
    table = pa.table({"v": pa.array(vals, ARROW[t])}, schema=pa.schema([field("v", t)]))
    offsets, kdata = encode_keys(table, [("v", desc)])
    rows = [(v,) for v in vals]
    assert byte_order(offsets, kdata) == sql_order(rows, [t], [desc])
    keys = key_list(offsets, kdata)
    # equal SQL values <=> equal keys (-0.0 == 0.0, every NaN equal)
    for i in range(0, 80, 7):
        for j in range(0, 80, 5):
            same = sql_cmp(rows[i], rows[j], [t], [desc]) == 0
            assert same == (keys[i] == keys[j])


def test_nulls_first_ascending_last_descending():
    table = pa.table({"a": pa.array([3, None, 1], pa.int64())})
    for desc, expected in ((False, [1, 2, 0]), (True, [0, 2, 1])):
        assert byte_order(*encode_keys(table, [("a", desc)])) == expected


def test_string_prefix_sorts_first_and_escape():
    vals = ["ab", "a", "a\x00", "a\x00\x00", "a\x01", ""]
    table = pa.table({"s": vals})
    keys = key_list(*encode_keys(table, [("s", False)]))
    assert [vals[i] for i in sorted(range(6), key=keys.__getitem__)] == ["", "a", "a\x00", "a\x00\x00", "a\x01", "ab"]
    assert keys[1] == b"\x01a\x00\x00" and keys[2] == b"\x01a\x00\xff\x00\x00"
    # descending: exactly the reverse, although the ascending keys share prefixes
    dkeys = key_list(*encode_keys(table, [("s", True)]))
    assert sorted(range(6), key=dkeys.__getitem__) == sorted(range(6), key=keys.__getitem__)[::-1]


def test_mixed_multi_column_key():
    rng = np.random.default_rng(5)
    n = 400
    table = pa.table({
        "t": pa.array(rng.integers(0, 3, n) * 86_400_000),
        "s": pa.array([None if x == 0 else f"k{x}" for x in rng.integers(0, 6, n)]),
        "d": pa.array([None if x < 0.1 else (math.nan if x > 0.9 else round(x, 1)) for x in rng.random(n)]),
        "l": pa.array([[int(v) for v in rng.integers(0, 3, int(rng.integers(0, 3)))] for _ in range(n)],
                      pa.list_(pa.int64())),
    })
    types = [T.LONG, T.STRING, T.DOUBLE, T.LONG_ARRAY]
    for desc in ([False, False, False, False], [False, True, True, False], [True, False, True, True]):
        key = list(zip(table.column_names, desc))
        offsets, kdata = encode_keys(table, key)
        rows = _rows(table, table.column_names)
        assert byte_order(offsets, kdata) == sql_order(rows, types, desc)


def test_key_prefix_lengths():
    table = pa.table({"b": pa.array([1, None, 3], pa.int64()), "s": ["x\x00y", "", None],
                      "l": pa.array([["a"], [], None], pa.list_(pa.string()))})
    types = [T.LONG, T.STRING, T.STRING_ARRAY]
    for desc in ([False] * 3, [True, False, True]):
        offsets, kdata = encode_keys(table, list(zip(table.column_names, desc)))
        keys = key_list(offsets, kdata)
        rows = _rows(table, table.column_names)
        for m in range(4):
            got = K.key_prefix_lengths(offsets, kdata, np.array([int(t) for t in types[:m]], np.int32),
                                       np.array(desc[:m], np.uint8))
            want = [len(ref_key(r[:m], types[:m], desc[:m])) for r in rows]
            assert got.tolist() == want
            assert all(k.startswith(ref_key(r[:m], types[:m], desc[:m])) for k, r in zip(keys, rows))
    with pytest.raises(ValueError):
        K.key_prefix_lengths(np.array([0, 2], np.int64), np.array([7, 7], np.uint8), np.array([1], np.int32),
                             np.array([0], np.uint8))


def test_frame_keys_match_encode_keys():
    table = pa.table({"a": [2, 1, None], "s": ["x", None, "y"]})
    key = [("s", True), ("a", False)]
    (frame,) = encode_frames(table, key)
    o1, d1 = frame_keys(frame)
    o2, d2 = encode_keys(table, key)
    assert o1.tolist() == o2.tolist() and d1.tobytes() == d2.tobytes()
    with pytest.raises(ValueError):
        frame_keys(encode_frames(table)[0])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(max_rows=25), st.lists(st.booleans(), min_size=4, max_size=4), st.integers(1, 4))
def test_keys_written_into_frames_match_encode_keys(data, desc, chunks):
    """encode_frames encodes keys straight into the frames, for one batch (in bulk) or for
    rows spanning several batches (row by row): the same bytes as encode_keys."""
    table, types = data
    key = list(zip(table.column_names, desc))
    n = table.num_rows
    cuts = sorted({0, n, *(n * i // chunks for i in range(chunks))})
    parts = [table.slice(a, b - a) for a, b in zip(cuts, cuts[1:])] or [table]
    for t in (table, pa.concat_tables(parts)):
        try:
            frames = encode_frames(t, key, 1500)
        except RowTooLarge:
            return
        got = b"".join(key_bytes for f in frames for key_bytes in key_list(*frame_keys(f)))
        offsets, kdata = encode_keys(table, key)
        assert got == kdata.tobytes()
        for f in frames:
            validate_frame(f, full=True)


def test_keys_across_blocks_match_reference():
    """More rows than one block of the column-at-a-time key writer, with the fast cases
    (null-free LONG/DOUBLE, strings without 0x00) and the general ones mixed per block."""
    n = 5000
    rng = np.random.default_rng(3)
    vals = rng.integers(-(1 << 40), 1 << 40, n)
    table = pa.table({
        "a": pa.array(vals, pa.int64()),
        "d": pa.array([None if i % 997 == 0 else float(v) / 7 for i, v in enumerate(vals)], pa.float64()),
        "f": pa.array(vals.astype(np.float32)),
        "s": pa.array([f"p{v % 1000}" + ("\x00" if 2048 <= i < 2100 else "") for i, v in enumerate(vals)]),
        "l": pa.array([[int(v) % 5, None] if i % 3 else None for i, v in enumerate(vals)], pa.list_(pa.int64())),
    })
    types = [T.LONG, T.DOUBLE, T.FLOAT, T.STRING, T.LONG_ARRAY]
    desc = [False, True, False, True, False]
    key = list(zip(table.column_names, desc))
    offsets, kdata = encode_keys(table, key)
    assert key_list(offsets, kdata) == [ref_key(r, types, desc) for r in _rows(table, table.column_names)]
    frames = encode_frames(table, key)
    assert b"".join(frame_keys(f)[1].tobytes() for f in frames) == kdata.tobytes()


@pytest.mark.parametrize("desc", [(False, False, False, False, False), (True, False, True, True, False),
                                  (True, True, True, True, True)])
def test_row_block_key_writer_matches_reference(desc):
    """The block key writer (nullable LONG/DOUBLE/FLOAT and 0x00-free STRING columns):
    several blocks of rows, strings around its 32-byte copy (empty to 40 bytes), two string
    columns, a string last (its copies end at the buffer's end), sliced inputs (bit and
    offset offsets), in encode_keys and written straight into frames."""
    n = 3000
    rng = np.random.default_rng(11)
    vals = rng.integers(-(1 << 62), 1 << 62, n)
    def strings(seed):
        r = np.random.default_rng(seed)
        return [None if r.random() < 0.1 else "".join(chr(0x61 + int(c)) for c in r.integers(0, 3, r.integers(0, 41)))
                for _ in range(n)]
    table = pa.table({
        "a": pa.array([None if i % 7 == 0 else int(v) for i, v in enumerate(vals)], pa.int64()),
        "s": pa.array(strings(1)),
        "d": pa.array([None if i % 11 == 0 else float(v) / 3 for i, v in enumerate(vals)], pa.float64()),
        "f": pa.array([None if i % 13 == 0 else float(v % 1000) - 500.5 for i, v in enumerate(vals)], pa.float32()),
        "t": pa.array(strings(2)),
    })
    types = [T.LONG, T.STRING, T.DOUBLE, T.FLOAT, T.STRING]
    key = list(zip(table.column_names, desc))
    for t in (table, table.slice(5, n - 17)):
        offsets, kdata = encode_keys(t, key)
        assert key_list(offsets, kdata) == [ref_key(r, types, list(desc)) for r in _rows(t, t.column_names)]
        frames = encode_frames(t, key, 4096)
        assert b"".join(frame_keys(f)[1].tobytes() for f in frames) == kdata.tobytes()
        assert pa.Table.from_batches([decode_frame(f) for f in frames]).equals(t.combine_chunks())
    null_free = table.drop_null()
    offsets, kdata = encode_keys(null_free, key)
    assert key_list(offsets, kdata) == [ref_key(r, types, list(desc)) for r in _rows(null_free, null_free.column_names)]
    # no nulls and at most one string (positions from each row's start and end): the string
    # first, in the middle, last, or none
    for names in (["s", "a", "d"], ["a", "s", "f", "d"], ["d", "f", "t"], ["a", "f"]):
        sub = null_free.select(names)
        subtypes = [types[table.column_names.index(c)] for c in names]
        subdesc = [desc[table.column_names.index(c)] for c in names]
        subkey = list(zip(names, subdesc))
        offsets, kdata = encode_keys(sub, subkey)
        assert key_list(offsets, kdata) == [ref_key(r, subtypes, subdesc) for r in _rows(sub, names)]
        frames = encode_frames(sub, subkey, 4096)
        assert b"".join(frame_keys(f)[1].tobytes() for f in frames) == kdata.tobytes()
    # a string with 0x00 bytes in some frames only: those frames' keys go to the general writer
    zeros = pa.table({"a": null_free.column("a"),
                      "s": pa.array([v + "\x00" if 900 <= i < 950 else v
                                     for i, v in enumerate(null_free.column("s").to_pylist())])})
    zkey = [("a", desc[0]), ("s", desc[1])]
    offsets, kdata = encode_keys(zeros, zkey)
    assert key_list(offsets, kdata) == [ref_key(r, [T.LONG, T.STRING], list(desc[:2])) for r in _rows(zeros, ["a", "s"])]
    frames = encode_frames(zeros, zkey, 4096)
    assert len(frames) > 3
    assert b"".join(frame_keys(f)[1].tobytes() for f in frames) == kdata.tobytes()


def test_lazy_and_eager_key_sources_are_not_mixed():
    table = pa.table({"a": pa.array([3, 1, 2], pa.int64())})
    fs = F.FrameSchema.for_schema(table.schema, [("a", False)])
    nb = fs.normalize(table.to_batches()[0])
    lazy = F.lazy_keyed_source(nb, fs)
    eager = F.keyed_source(nb, fs)[0]
    ids, rows = np.zeros(3, np.int32), np.arange(3, dtype=np.int64)
    with pytest.raises(ValueError, match="lazy"):
        list(F.write_frames(fs, [lazy], ids, rows, 4096))
    with pytest.raises(ValueError, match="lazy"):
        list(F.write_frames(fs, [eager], ids, rows, 4096, lazy_keys=True))
    frames = [f for f, _ in F.write_frames(fs, [lazy], None, None, 4096, lazy_keys=True)]
    assert frames == [f for f, _ in F.write_frames(fs, [eager], ids, rows, 4096)]
    assert frames == [f for f, _ in F.write_frames(fs, [eager], None, None, 4096)]


def test_encode_keys_unknown_column():
    with pytest.raises(KeyError):
        encode_keys(pa.table({"a": [1]}), [("b", False)])


# --- validation ---------------------------------------------------------------------------------


def _frame() -> bytes:
    table = pa.table({"a": pa.array([5, 1, None, 7], pa.int64()), "s": ["x", None, "yy", "zzz"],
                      "l": pa.array([[1, 2], None, [], [3]], pa.list_(pa.int64()))})
    return encode_frames(table, [("a", False), ("s", False)])[0]


def _patch(buf, offset: int, data: bytes) -> bytes:
    buf = bytes(buf)
    return buf[:offset] + data + buf[offset + len(data):]


def _directory(buf: bytes) -> list[tuple[int, int]]:
    return K.frame_layout(buf)[6]


def test_validate_good_frame():
    f = _frame()
    validate_frame(f)
    validate_frame(f, full=True)
    assert issubclass(FrameCorruptError, MsqError) and issubclass(FrameCorruptError, ValueError)


@pytest.mark.parametrize("case", ["short", "magic", "version", "flags", "length", "truncated", "buffers",
                                  "misplaced", "validity", "values", "last_offset"])
def test_cheap_validation_catches(case):
    f = _frame()
    d = _directory(f)
    bad = {
        "short": f[:20],
        "magic": _patch(f, 0, b"XXXX"),
        "version": _patch(f, 4, struct.pack("<H", 9)),
        "flags": _patch(f, 6, struct.pack("<H", 0x80)),
        "length": _patch(f, 8, struct.pack("<I", len(f) + 8)),
        "truncated": f[:-8],
        "buffers": _patch(f, 24, struct.pack("<I", 99)),
        "misplaced": _patch(f, 32 + ((len(K.frame_layout(f)[7]) + 7) & ~7) + 4, struct.pack("<I", 10 ** 6)),
        "validity": None,
        "values": None,
        "last_offset": None,
    }[case]
    dir_at = 32 + ((len(K.frame_layout(f)[7]) + 7) & ~7)
    if case == "validity":
        bad = _patch(f, dir_at + 4, struct.pack("<I", 5))            # column a's bitmap length
    elif case == "values":
        bad = _patch(f, dir_at + 12, struct.pack("<I", d[1][1] - 8))  # column a's values length
    elif case == "last_offset":
        off = d[3][0]                                                 # column s's offsets
        bad = _patch(f, off + 16, struct.pack("<i", 99))
    with pytest.raises(FrameCorruptError):
        validate_frame(bad)
    with pytest.raises(FrameCorruptError):
        decode_frame(bad)


def test_full_validation_catches_checksum_and_offsets():
    f = _frame()
    d = _directory(f)
    flipped = _patch(f, d[1][0], bytes([f[d[1][0]] ^ 1]))          # one bit of a value
    validate_frame(flipped)                                         # cheap checks pass
    with pytest.raises(FrameCorruptError, match="checksum"):
        validate_frame(flipped, full=True)
    # a decreasing offset, with the checksum fixed up so only the offset check can catch it
    off = d[3][0]
    bad = _patch(f, off + 4, struct.pack("<i", 3))
    bad = _patch(bad, 28, struct.pack("<I", K.checksum(bad[32:])))
    validate_frame(bad)
    with pytest.raises(FrameCorruptError, match="offsets decrease"):
        validate_frame(bad, full=True)


def test_full_validation_catches_unsorted_keys_and_bad_utf8():
    table = pa.table({"a": pa.array([1, 2, 3], pa.int64()), "s": ["ab", "cd", "ef"]})
    fs = F.FrameSchema.for_schema(table.schema, [("a", False)])
    nb = fs.normalize(table.to_batches()[0])
    src = F.source_for_batch(nb, fs, F.batch_keys(F.source_for_batch(nb, fs), fs))
    ids = np.zeros(3, np.int32)
    (sorted_frame, _), = F.write_frames(fs, [src], ids, np.array([0, 1, 2]), 4096, sorted=True)
    validate_frame(sorted_frame, full=True)
    assert frame_info(sorted_frame).sorted
    (unsorted, _), = F.write_frames(fs, [src], ids, np.array([2, 0, 1]), 4096, sorted=True)
    with pytest.raises(FrameCorruptError, match="sorted"):
        validate_frame(unsorted, full=True)
    d = _directory(sorted_frame)
    bad = _patch(sorted_frame, d[4][0], b"\xff")                    # column s's data
    bad = _patch(bad, 28, struct.pack("<I", K.checksum(bad[32:])))
    with pytest.raises(FrameCorruptError):
        validate_frame(bad, full=True)


def test_find_byte():
    buf = pa.py_buffer(b"abc\x00de\x00")
    assert K.find_byte(buf, 0) == 3
    assert K.find_byte(buf, 0, 4) == 6
    assert K.find_byte(buf, 0, 4, 6) == -1          # stop excludes the second NUL
    assert K.find_byte(buf, ord("d"), 0, 100) == 4   # stop past the end: the end
    assert K.find_byte(buf, 0, 7, 7) == -1 and K.find_byte(b"", 0) == -1 and K.find_byte(buf, 0xFF) == -1


def test_xxh3_vectors():
    assert K.xxh3(b"") == 0x2D06800538D394C2
    assert K.xxh3(b"abc") == 0x78AF5F94892F3950
    assert K.xxh3(b"Nobody inspects the spammish repetition") == 0x6CB00603B5CC47E9


def test_xxh3_matches_xxhash_package():
    xxhash = pytest.importorskip("xxhash")
    best = K.xxh3_simd()
    try:
        for level in range(best, -1, -1):                # every SIMD loop this CPU can run
            assert K.xxh3_simd(level) == level
            # every short-input path, the 64-byte stripes, the 1024-byte blocks and their tails
            for n in (*range(260), 511, 512, 1023, 1024, 1025, 2047, 2048, 2049, 4096 + 65, 100_003, 1 << 20):
                data = os.urandom(n)
                assert K.xxh3(data) == xxhash.xxh3_64_intdigest(data), (level, n)
    finally:
        K.xxh3_simd()


def test_checksum_of_columns_hashed_while_copied():
    """Big null-free columns are hashed as they are copied (AVX-512), the rest after: the
    same frames, with the right checksums, under every XXH3 loop."""
    n = 200_000
    rng = np.random.default_rng(5)
    table = pa.table({"a": pa.array(rng.integers(0, 1 << 60, n), pa.int64()),
                      "s": pa.array([f"v{i % 977}" * (i % 5) for i in range(n)]),
                      "f": pa.array(rng.random(n).astype(np.float32))})
    runs = []
    try:
        for cap in (0, 1, 2):
            K.xxh3_simd(cap)
            frames = [bytes(f) for f in encode_frames(table.slice(3), [("s", False)])]
            frames += [bytes(f) for f in encode_frames(table.slice(3), [], 1_000_000 - 8)]
            for f in frames:
                assert struct.unpack_from("<I", f, 28)[0] == K.xxh3(f[32:]) & 0xFFFFFFFF
                validate_frame(f, full=True)
            runs.append(frames)
    finally:
        K.xxh3_simd(-1)
    assert runs[0] == runs[1] == runs[2]


def test_checksum_is_low_32_bits_of_xxh3_after_the_header():
    f = encode_frames(pa.table({"a": [1, 2, 3]}), [("a", False)])[0]
    stored = struct.unpack_from("<I", f, 28)[0]
    assert stored == K.checksum(f[32:]) == K.xxh3(f[32:]) & 0xFFFFFFFF
    assert struct.unpack_from("<H", f, 4)[0] == K.FORMAT_VERSION == 2


def test_version_1_frames_are_refused():
    f = encode_frames(pa.table({"a": [1, 2, 3]}))[0]
    with pytest.raises(FrameCorruptError, match="version 1"):
        decode_frame(_patch(f, 4, struct.pack("<H", 1)))


@pytest.mark.parametrize("max_frame_size", [1024, 1500, 4096, 20_000])
def test_cut_from_offsets_matches_the_row_cost_cut(max_frame_size):
    """A null-free batch in order is cut from its offsets (no per-row costs); the frames must
    be exactly those of the per-row cost walk (the same batch through index arrays)."""
    rng = np.random.default_rng(3)
    n = 3000
    words = [("x" * int(k)) + "\u00e9" for k in rng.integers(0, 40, n)]
    t = pa.table({
        "a": pa.array(rng.integers(-5, 5, n), pa.int64()),
        "f": pa.array(rng.random(n), pa.float32()),
        "s": pa.array(words),
        "l": pa.array([list(range(int(k))) for k in rng.integers(0, 6, n)], pa.list_(pa.float64())),
        "m": pa.array([[w[:3]] * int(k) for w, k in zip(words, rng.integers(0, 4, n))], pa.list_(pa.string())),
    })
    for key in ([], [("s", True), ("a", False)]):
        fs = F.FrameSchema.for_schema(t.schema, key)
        nb = fs.normalize(t.to_batches()[0])
        direct = encode_frames(nb, key, max_frame_size)
        src = F.keyed_source(nb, fs)[0] if key else F.source_for_batch(nb, fs)
        ids, rows = np.zeros(n, np.int32), np.arange(n, dtype=np.int64)
        walked = [f for f, _ in F.write_frames(fs, [src], ids, rows, max_frame_size)]
        assert [f.to_pybytes() for f in direct] == [f.to_pybytes() for f in walked]
        assert len(direct) > 1


# --- gather from several sources ----------------------------------------------------------------


def test_gather_interleaves_sources():
    a = pa.table({"x": pa.array([1, 2, 3], pa.int64()), "s": ["a", None, "c"]})
    b = pa.table({"x": pa.array([10, None], pa.int64()), "s": ["zz", "y"]})
    fs = F.FrameSchema.for_schema(a.schema, [("x", False)])
    srcs = []
    for t in (a, b):
        nb = fs.normalize(t.to_batches()[0])
        srcs.append(F.source_for_batch(nb, fs, F.batch_keys(F.source_for_batch(nb, fs), fs)))
    ids = np.array([1, 0, 0, 1, 0], np.int32)
    rows = np.array([1, 2, 0, 0, 1], np.int64)
    (frame, n), = F.write_frames(fs, srcs, ids, rows, 4096)
    assert n == 5
    out = decode_frame(frame)
    assert out.column("x").to_pylist() == [None, 3, 1, 10, 2]
    assert out.column("s").to_pylist() == ["y", "c", "a", "zz", None]
    with pytest.raises(IndexError):
        list(F.write_frames(fs, srcs, np.array([2], np.int32), np.array([0]), 4096))
    with pytest.raises(IndexError):
        list(F.write_frames(fs, srcs, np.array([1], np.int32), np.array([5]), 4096))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(max_rows=60), st.randoms(use_true_random=False), st.sampled_from([1024, 1500, 4096, 1_000_000]),
       st.sampled_from(["none", "eager", "lazy"]), st.booleans())
def test_rows_gathered_through_index_arrays_match_the_rows_encoded_in_order(data, rnd, max_frame_size, keys,
                                                                           stretches):
    """Rows picked through index arrays from several sources are written one column at a
    time without a sizing pass (``gather_rows``), stretches of consecutive rows of a source
    (a merge's) in bulk; the frames must be byte for byte those of the same rows taken first
    and encoded in order (sized first, bulk copies)."""
    table, _types = data
    n = table.num_rows
    key = [] if keys == "none" else [(table.column_names[0], rnd.random() < 0.5)]
    fs = F.FrameSchema.for_schema(table.schema, key)
    cuts = sorted({0, n, *(rnd.randint(0, n) for _ in range(2))})
    parts = [fs.normalize(table.slice(a, b - a).combine_chunks().to_batches()[0]
                          if b > a else pa.RecordBatch.from_pylist([], schema=fs.arrow_schema))
             for a, b in zip(cuts, cuts[1:])] or [fs.normalize(pa.RecordBatch.from_pylist([], schema=fs.arrow_schema))]
    if keys == "lazy":
        srcs = [F.lazy_keyed_source(b, fs) for b in parts]
    elif keys == "eager":
        srcs = [F.keyed_source(b, fs)[0] for b in parts]
    else:
        srcs = [F.source_for_batch(b, fs) for b in parts]
    order = list(range(n))
    if stretches:                                # a few pieces of consecutive rows, shuffled
        cuts2 = sorted({0, n, *(rnd.randint(0, n) for _ in range(3))})
        pieces = [order[a:b] for a, b in zip(cuts2, cuts2[1:])]
        rnd.shuffle(pieces)
        order = [i for piece in pieces for i in piece]
    else:
        rnd.shuffle(order)
    starts = np.cumsum([0] + [b.num_rows for b in parts])
    ids = (np.searchsorted(starts, order, side="right") - 1).astype(np.int32)
    rows = np.array(order, dtype=np.int64) - starts[ids]
    try:
        gathered = [f for f, _ in F.write_frames(fs, srcs, ids, rows, max_frame_size, lazy_keys=keys == "lazy")]
        taken = encode_frames(table.take(pa.array(order, pa.int64())), key, max_frame_size)
    except RowTooLarge:
        return
    assert [bytes(f) for f in gathered] == [bytes(f) for f in taken]
    for f in gathered:
        validate_frame(f, full=True)


def test_gather_without_index_arrays_writes_one_source_in_order():
    """``source_ids``/``rows`` None: the only source's rows in order, nullable columns too."""
    t = pa.table({"x": pa.array([5, None, 7, 8], pa.int64()), "s": ["a", None, "ccc", ""],
                  "l": pa.array([[1], None, [], [None, 2]], pa.list_(pa.int64()))})
    fs = F.FrameSchema.for_schema(t.schema, [("s", False)])
    nb = fs.normalize(t.to_batches()[0])
    src = F.keyed_source(nb, fs)[0]
    direct = list(F.write_frames(fs, [src], None, None, 4096, start=1))
    indexed = list(F.write_frames(fs, [src], np.zeros(4, np.int32), np.arange(4, dtype=np.int64), 4096, start=1))
    assert direct == indexed and direct[0][1] == 3
    assert_same(decode_frame(direct[0][0]), t.slice(1))
    with pytest.raises(ValueError, match="row range"):
        K.gather_frame(fs.section, [src], None, None, 0, 5, 4096, K.FLAG_HAS_KEY)
    with pytest.raises(ValueError, match="row range"):
        K.gather_frame(fs.section, [src, src], None, None, 0, 1, 4096, K.FLAG_HAS_KEY)


# --- frame files --------------------------------------------------------------------------------


def test_frame_file_partitions(tmp_path):
    table = pa.table({"a": pa.array(np.arange(3000)), "s": [f"s{i}" for i in range(3000)]})
    frames = encode_frames(table, [("a", False)], max_frame_size=8192)
    path = str(tmp_path / "f.frames")
    with FrameFileWriter(path) as w:
        for f in frames[:3]:
            w.write(f, frame_info(f).num_rows)
        w.next_partition()                      # partition 1 stays empty
        w.next_partition()
        for f in frames[3:]:
            w.write(f, frame_info(f).num_rows)
    with FrameFileReader(path) as r:
        assert r.num_partitions == 3
        assert r.num_frames == len(frames) and r.num_rows == 3000
        assert r.partition_frames == [3, 0, len(frames) - 3]
        assert list(r.iter_frames(1)) == []
        assert list(r.iter_frames()) == frames
        assert b"".join(r.read_raw(2)) == b"".join(frames[3:])
    assert pa.Table.from_batches(list(read_frames_file(path))).equals(table)
    assert pa.Table.from_batches(list(read_frames_file(path, 0))).num_rows == sum(
        frame_info(f).num_rows for f in frames[:3])


def test_frame_file_corruption(tmp_path):
    path = tmp_path / "f.frames"
    with FrameFileWriter(str(path)) as w:
        f = _frame()
        w.write(f, 4)
    raw = path.read_bytes()
    for bad in (raw[:-1], b"NOTFRAME" + raw[8:], raw[:-8] + b"XXXXXXXX", raw[:16]):
        path.write_bytes(bad)
        with pytest.raises(FrameCorruptError):
            list(read_frames_file(str(path)))
    # a frame whose declared length runs past its partition
    path.write_bytes(raw[:16 + 8] + struct.pack("<I", 10 ** 6) + raw[16 + 12:])
    with pytest.raises(FrameCorruptError):
        list(read_frames_file(str(path)))


def test_writer_abort_removes_file(tmp_path):
    path = tmp_path / "x.frames"
    with pytest.raises(RuntimeError):
        with FrameFileWriter(str(path)) as w:
            w.write(_frame(), 4)
            raise RuntimeError("boom")
    assert not path.exists()


def test_max_frame_size_limits():
    t = pa.table({"a": [1]})
    for bad in (0, 100, 1 << 31):
        with pytest.raises(ValueError):
            encode_frames(t, [], bad)


def test_remembered_frame_schemas_tell_field_metadata_and_keys_apart():
    """``frame_schema`` reuses the FrameSchema of an equal schema: equal must include the
    multi-value field metadata (pa.Schema's == ignores it) and the key."""
    values = pa.array([["a", "b"], None, []], pa.list_(pa.string()))
    mv = pa.table([values], schema=pa.schema([pa.field("m", values.type, metadata=MULTI_VALUE_METADATA)]))
    arr = pa.table({"m": values})
    assert mv.schema == arr.schema                               # what a plain cache would key on
    for _ in range(2):
        assert frame_info(encode_frames(mv)[0]).schema.types == (T.MULTI_VALUE_STRING,)
        assert frame_info(encode_frames(arr)[0]).schema.types == (T.STRING_ARRAY,)
        assert frame_info(encode_frames(arr, [("m", True)])[0]).key == [("m", True)]
        assert frame_info(encode_frames(arr, [("m", False)])[0]).key == [("m", False)]
        assert decode_frame(encode_frames(mv)[0]).schema.field("m").metadata == MULTI_VALUE_METADATA
