"""The columnar segment format: msqcore.storage.segment and its Cython kernels."""
from __future__ import annotations

import math
import os
import struct

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msqcore.errors import SegmentCorruptError
from msqcore.kernels import _segment as k
from msqcore.storage import segment
from msqcore.storage.segment import (
    read_segment,
    read_segment_meta,
    string_value_index,
    validate_segment,
    write_segment,
)


# --- helpers ------------------------------------------------------------------------------


def _table(**cols) -> pa.Table:
    return pa.table(cols)


def _times(n: int, start: int = 1_700_000_000_000) -> pa.Array:
    return pa.array(np.arange(start, start + n, dtype=np.int64))


def _toc(path) -> dict:
    with segment._open(str(path)) as seg:
        return seg.toc


def _col(path, name) -> dict:
    return next(c for c in _toc(path)["columns"] if c["name"] == name)


def _patch(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _flip(path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ 0x40]))


def _utf8_sorted_dictionary(values: list[str | None]) -> list[str | None]:
    distinct = sorted({v for v in values if v is not None}, key=lambda s: s.encode("utf-8"))
    return ([None] if any(v is None for v in values) else []) + distinct


def _reference_index(values: pa.Array, dictionary: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """CSR index computed independently with pyarrow/numpy (stable argsort of the ids)."""
    ids = pc.index_in(values, value_set=dictionary, skip_nulls=False).to_numpy(zero_copy_only=False)
    assert not np.isnan(ids.astype(float)).any()
    ids = ids.astype(np.int64)
    counts = np.bincount(ids, minlength=len(dictionary))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    rows = np.argsort(ids, kind="stable").astype(np.int32)
    return offsets, rows


def _assert_index(path, column: str, values: pa.Array) -> None:
    dictionary, offsets, rows = string_value_index(str(path), column)
    assert dictionary.type == pa.string()
    assert dictionary.to_pylist() == _utf8_sorted_dictionary(values.to_pylist())
    ref_offsets, ref_rows = _reference_index(values, dictionary)
    assert offsets.dtype == np.int64 and rows.dtype == np.int32
    np.testing.assert_array_equal(offsets, ref_offsets)
    np.testing.assert_array_equal(rows, ref_rows)


# --- round trips --------------------------------------------------------------------------


def test_round_trip_nulls_empty_strings_and_non_ascii(tmp_path):
    path = tmp_path / "s.seg"
    table = _table(
        __time=pa.array([5, 1, 3, 3, 9], pa.int64()),
        country=pa.array(["", None, "日本", "Zürich", ""], pa.string()),
        page=pa.array(["😀", "a", None, None, "\x00"], pa.string()),
        added=pa.array([1, None, -(2**63), 2**63 - 1, 0], pa.int64()),
        delta=pa.array([1.5, None, float("inf"), -0.0, 1e300], pa.float64()),
        ratio=pa.array([None, 0.25, 3.5, None, -1.0], pa.float32()),
    )
    size = write_segment(str(path), table, dimensions=["country", "page"], metrics=["added", "delta", "ratio"])
    assert size == os.path.getsize(path)
    out = read_segment(str(path))
    assert out.equals(table)
    assert out.column("country").to_pylist() == ["", None, "日本", "Zürich", ""]
    assert out.column("country").null_count == 1  # "" is a value, not a null
    # -0.0 keeps its sign bit
    assert math.copysign(1.0, out.column("delta")[3].as_py()) == -1.0
    validate_segment(str(path), full=True)


def test_nan_is_a_value_not_a_null(tmp_path):
    path = tmp_path / "nan.seg"
    table = _table(__time=_times(3), m=pa.array([float("nan"), None, 1.0]),
                   f=pa.array([float("nan"), 2.0, None], pa.float32()))
    write_segment(str(path), table, dimensions=[], metrics=["m", "f"])
    out = read_segment(str(path))
    assert out.column("m").null_count == 1 and math.isnan(out.column("m")[0].as_py())
    assert out.column("f").null_count == 1 and math.isnan(out.column("f")[0].as_py())
    assert out.column("f").type == pa.float32()


def test_zero_rows(tmp_path):
    path = tmp_path / "empty.seg"
    table = _table(__time=pa.array([], pa.int64()), d=pa.array([], pa.string()),
                   m=pa.array([], pa.float64()))
    write_segment(str(path), table, dimensions=["d"], metrics=["m"])
    out = read_segment(str(path))
    assert out.num_rows == 0 and out.equals(table)
    meta = read_segment_meta(str(path))
    assert meta["numRows"] == 0 and meta["minTime"] is None and meta["maxTime"] is None
    assert _col(path, "d")["cardinality"] == 0 and _col(path, "d")["idWidth"] == 1
    dictionary, offsets, rows = string_value_index(str(path), "d")
    assert len(dictionary) == 0 and offsets.tolist() == [0] and len(rows) == 0
    validate_segment(str(path), full=True)


def test_one_row(tmp_path):
    path = tmp_path / "one.seg"
    table = _table(__time=pa.array([42], pa.int64()), d=pa.array([None], pa.string()),
                   e=pa.array(["x"]), m=pa.array([None], pa.int64()))
    write_segment(str(path), table, dimensions=["d", "e"], metrics=["m"])
    assert read_segment(str(path)).equals(table)
    meta = read_segment_meta(str(path))
    assert (meta["numRows"], meta["minTime"], meta["maxTime"]) == (1, 42, 42)
    d = _col(path, "d")
    assert d["hasNulls"] and d["cardinality"] == 1
    dictionary, offsets, rows = string_value_index(str(path), "d")
    assert dictionary.to_pylist() == [None] and offsets.tolist() == [0, 1] and rows.tolist() == [0]
    validate_segment(str(path), full=True)


def test_large_string_and_chunked_input(tmp_path):
    path = tmp_path / "chunked.seg"
    table = pa.Table.from_batches([
        pa.record_batch({"__time": pa.array([1, 2], pa.int64()), "d": pa.array(["b", None], pa.large_string()),
                         "m": pa.array([1.0, None])}),
        pa.record_batch({"__time": pa.array([3], pa.int64()), "d": pa.array(["a"], pa.large_string()),
                         "m": pa.array([2.0])}),
    ])
    assert table.column("d").num_chunks == 2
    write_segment(str(path), table, dimensions=["d"], metrics=["m"])
    out = read_segment(str(path))
    assert out.schema.field("d").type == pa.string()  # decoded as pa.string()
    assert out.column("d").to_pylist() == ["b", None, "a"]
    assert out.column("m").to_pylist() == [1.0, None, 2.0]


def test_sliced_input_arrays(tmp_path):
    path = tmp_path / "sliced.seg"
    base = _table(__time=_times(10), d=pa.array([f"v{i % 3}" if i % 4 else None for i in range(10)]),
                  m=pa.array([i if i % 3 else None for i in range(10)], pa.int64()))
    table = base.slice(3, 5)
    write_segment(str(path), table, dimensions=["d"], metrics=["m"])
    assert read_segment(str(path)).equals(table)
    _assert_index(path, "d", table.column("d").combine_chunks())


def test_200k_rows_high_and_low_cardinality(tmp_path):
    path = tmp_path / "big.seg"
    n = 200_000
    rng = np.random.default_rng(7)
    high = pa.array([f"user-{i:06d}-ü" for i in rng.permutation(n)])
    low_values = np.array(["GET", "POST", "", "DELETE"], dtype=object)
    low_py = low_values[rng.integers(0, 4, n)].tolist()
    for i in rng.integers(0, n, 1000):
        low_py[i] = None
    low = pa.array(low_py, pa.string())
    table = _table(__time=pa.array(np.sort(rng.integers(0, 10**12, n))), user=high, method=low,
                   bytes=pa.array(rng.integers(-(10**9), 10**9, n)), score=pa.array(rng.random(n)))
    write_segment(str(path), table, dimensions=["user", "method"], metrics=["bytes", "score"])
    assert read_segment(str(path)).equals(table)
    assert _col(path, "user")["cardinality"] == n and _col(path, "user")["idWidth"] == 3
    assert _col(path, "method")["cardinality"] == 5 and _col(path, "method")["idWidth"] == 1
    assert _col(path, "method")["parts"]["ids"][1] == n  # one byte per row
    _assert_index(path, "method", low)
    _assert_index(path, "user", high)
    validate_segment(str(path), full=True)


# --- layout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cardinality,width", [
    (0, 1), (1, 1), (200, 1), (256, 1), (257, 2), (65_536, 2), (65_537, 3), (70_000, 3),
    (2**24, 3), (2**24 + 1, 4), (2**31 - 1, 4),
])
def test_id_width(cardinality, width):
    assert k.id_width(cardinality) == width


@pytest.mark.parametrize("cardinality,width", [(200, 1), (300, 2), (70_000, 3)])
def test_segment_uses_minimal_id_width(tmp_path, cardinality, width):
    path = tmp_path / f"w{cardinality}.seg"
    n = max(cardinality, 1000)
    values = pa.array([f"{i % cardinality:08d}" for i in range(n)])
    write_segment(str(path), _table(__time=_times(n), d=values), dimensions=["d"])
    col = _col(path, "d")
    assert (col["cardinality"], col["idWidth"]) == (cardinality, width)
    assert col["parts"]["ids"][1] == n * width
    assert read_segment(str(path), ["d"]).column("d").equals(pa.chunked_array([values]))


def test_null_counts_towards_cardinality(tmp_path):
    path = tmp_path / "n.seg"
    values = pa.array([None] + [f"{i:03d}" for i in range(256)])  # 256 values + null = 257 entries
    write_segment(str(path), _table(__time=_times(257), d=values), dimensions=["d"])
    assert (_col(path, "d")["cardinality"], _col(path, "d")["idWidth"]) == (257, 2)
    assert read_segment(str(path)).column("d").to_pylist() == values.to_pylist()


def test_header_and_column_order(tmp_path):
    path = tmp_path / "o.seg"
    table = _table(m=pa.array([1.0, 2.0]), extra=pa.array([1, 2]), b=pa.array(["x", "y"]),
                   __time=pa.array([10, 20], pa.int64()), a=pa.array([7, 8]))
    write_segment(str(path), table, dimensions=["b", "a"], metrics=["m"])
    raw = path.read_bytes()
    magic, version, toc_len, _crc, file_size, num_rows = struct.unpack_from("<6sHIIQQ", raw)
    assert (magic, version, file_size, num_rows) == (b"MSQSEG", 1, len(raw), 2)
    toc = _toc(path)
    assert [c["name"] for c in toc["columns"]] == ["__time", "b", "a", "m"]  # extra is dropped
    assert [c["type"] for c in toc["columns"]] == ["LONG", "STRING", "LONG", "DOUBLE"]
    first = toc["columns"][0]["offset"]
    assert first == 32 + toc_len and first % 8 == 0
    for c in toc["columns"]:
        assert c["offset"] % 8 == 0
        assert c["offset"] + c["length"] <= len(raw)
    # __time: raw int64 LE, no validity part
    t = toc["columns"][0]
    assert list(t["parts"]) == ["values"]
    assert np.frombuffer(raw, "<i8", 2, t["offset"]).tolist() == [10, 20]
    assert list(_col(path, "b")["parts"]) == ["dictOffsets", "dictData", "ids", "indexOffsets", "indexRows"]
    assert read_segment(str(path)).column_names == ["__time", "b", "a", "m"]


def test_numeric_validity_only_with_nulls(tmp_path):
    path = tmp_path / "v.seg"
    table = _table(__time=_times(3), a=pa.array([1, 2, 3]), b=pa.array([1, None, 3]))
    write_segment(str(path), table, dimensions=[], metrics=["a", "b"])
    assert list(_col(path, "a")["parts"]) == ["values"]
    assert list(_col(path, "b")["parts"]) == ["values", "validity"]
    raw = path.read_bytes()
    b = _col(path, "b")
    vals = np.frombuffer(raw, "<i8", 3, b["offset"])
    assert vals.tolist() == [1, 0, 3]  # null slots are written as 0
    assert raw[b["offset"] + b["parts"]["validity"][0]] == 0b101


def test_dictionary_sorted_by_utf8_bytes(tmp_path):
    path = tmp_path / "sort.seg"
    # UTF-16 order would put U+FFFF after the emoji; UTF-8 byte order puts it before
    values = ["z", "é", "\uffff", "😀", "Z", "a", "", None, "\x00", "ab", "a", "é"]
    write_segment(str(path), _table(__time=_times(len(values)), d=pa.array(values)), dimensions=["d"])
    dictionary, _, _ = string_value_index(str(path), "d")
    assert dictionary.to_pylist() == [None, "", "\x00", "Z", "a", "ab", "z", "é", "\uffff", "😀"]
    encoded = [v.encode() for v in dictionary.to_pylist()[1:]]
    assert all(x < y for x, y in zip(encoded, encoded[1:]))
    assert read_segment(str(path)).column("d").to_pylist() == values


# --- subsets and metadata -----------------------------------------------------------------------


def test_column_subset_in_requested_order(tmp_path):
    path = tmp_path / "sub.seg"
    table = _table(__time=_times(4), d1=pa.array(["a", "b", None, "a"]), d2=pa.array([1, 2, 3, None]),
                   m=pa.array([0.5, None, 1.5, 2.5], pa.float32()))
    write_segment(str(path), table, dimensions=["d1", "d2"], metrics=["m"])
    out = read_segment(str(path), ["m", "d1"])
    assert out.column_names == ["m", "d1"]
    assert out.equals(table.select(["m", "d1"]))
    assert read_segment(str(path), []).num_columns == 0
    with pytest.raises(KeyError, match="nope"):
        read_segment(str(path), ["d1", "nope"])


def test_subset_read_does_not_touch_other_columns(tmp_path):
    path = tmp_path / "lazy.seg"
    table = _table(__time=_times(3), good=pa.array(["x", "y", "x"]), bad=pa.array(["p", "q", "r"]),
                   m=pa.array([1, 2, 3]))
    write_segment(str(path), table, dimensions=["good", "bad"], metrics=["m"])
    bad = _col(path, "bad")
    # invalid UTF-8 in "bad"'s dictionary and ids out of range: decoding it must fail ...
    _patch(path, bad["offset"] + bad["parts"]["dictData"][0], b"\xff")
    _patch(path, bad["offset"] + bad["parts"]["ids"][0], b"\x09")
    with pytest.raises(SegmentCorruptError, match="bad"):
        read_segment(str(path))
    with pytest.raises(SegmentCorruptError, match="bad"):
        read_segment(str(path), ["bad"])
    # ... but reading the other columns never decodes it
    out = read_segment(str(path), ["m", "good", "__time"])
    assert out.equals(table.select(["m", "good", "__time"]))
    validate_segment(str(path))  # the cheap check does not read column data either
    with pytest.raises(SegmentCorruptError, match="checksum"):
        validate_segment(str(path), full=True)


def test_meta(tmp_path):
    path = tmp_path / "meta.seg"
    table = _table(__time=pa.array([30, 10, 20], pa.int64()), d=pa.array(["a", "b", "c"]),
                   n=pa.array([1, 2, 3]), x=pa.array([1.0, 2.0, 3.0]), f=pa.array([1, 2, 3], pa.float32()))
    size = write_segment(str(path), table, dimensions=["d", "n"], metrics=["x", "f"])
    assert read_segment_meta(str(path)) == {
        "numRows": 3,
        "columns": [{"name": "__time", "type": "LONG"}, {"name": "d", "type": "STRING"},
                    {"name": "n", "type": "LONG"}, {"name": "x", "type": "DOUBLE"},
                    {"name": "f", "type": "FLOAT"}],
        "dimensions": ["d", "n"],
        "metrics": ["x", "f"],
        "size": size,
        "minTime": 10,
        "maxTime": 30,
    }


def test_string_value_index_rejects_non_string_column(tmp_path):
    path = tmp_path / "i.seg"
    write_segment(str(path), _table(__time=_times(2), n=pa.array([1, 2])), dimensions=["n"])
    with pytest.raises(ValueError, match="not STRING"):
        string_value_index(str(path), "n")
    with pytest.raises(KeyError):
        string_value_index(str(path), "missing")


def test_string_metric_column(tmp_path):
    path = tmp_path / "sm.seg"
    table = _table(__time=_times(3), s=pa.array(["b", "a", None]))
    write_segment(str(path), table, dimensions=[], metrics=["s"])
    assert read_segment(str(path)).equals(table)
    _assert_index(path, "s", table.column("s").combine_chunks())


# --- write errors and atomicity ---------------------------------------------------------------


@pytest.mark.parametrize("table,dims,mets,exc,match", [
    (_table(__time=_times(1), d=pa.array(["a"])), ["missing"], [], ValueError, "no column 'missing'"),
    (_table(__time=_times(1), d=pa.array(["a"])), ["d"], ["d"], ValueError, "more than once"),
    (_table(__time=_times(1), d=pa.array(["a"])), ["__time"], [], ValueError, "more than once"),
    (_table(d=pa.array(["a"])), ["d"], [], ValueError, "no column '__time'"),
    (_table(__time=pa.array([1, None], pa.int64())), [], [], ValueError, "null"),
    (_table(__time=pa.array([1], pa.int32())), [], [], TypeError, "__time must be int64"),
    (_table(__time=_times(1), b=pa.array([True])), ["b"], [], TypeError, "unsupported type bool"),
    (_table(__time=_times(1), i=pa.array([1], pa.int32())), [], ["i"], TypeError, "unsupported type int32"),
])
def test_write_rejects_bad_input(tmp_path, table, dims, mets, exc, match):
    with pytest.raises(exc, match=match):
        write_segment(str(tmp_path / "x.seg"), table, dimensions=dims, metrics=mets)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "a.seg"
    first = _table(__time=_times(2), d=pa.array(["a", "b"]))
    write_segment(str(path), first, dimensions=["d"])
    before = path.read_bytes()

    def boom(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(segment.os, "fsync", boom)
    with pytest.raises(OSError, match="disk on fire"):
        write_segment(str(path), _table(__time=_times(3), d=pa.array(["x", "y", "z"])), dimensions=["d"])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.seg"]
    # and a successful write replaces the file
    second = _table(__time=_times(3), d=pa.array(["x", "y", "z"]))
    write_segment(str(path), second, dimensions=["d"])
    assert read_segment(str(path)).equals(second)
    assert os.listdir(tmp_path) == ["a.seg"]


# --- validation ----------------------------------------------------------------------------------


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "valid.seg"
    table = _table(__time=_times(50), d=pa.array([f"v{i % 7}" if i % 5 else None for i in range(50)]),
                   m=pa.array([float(i) if i % 3 else None for i in range(50)]))
    write_segment(str(path), table, dimensions=["d"], metrics=["m"])
    validate_segment(str(path), full=True)
    return path


@pytest.mark.parametrize("column", ["__time", "d", "m"])
def test_validate_full_catches_flipped_byte_in_column(sample, column):
    col = _col(sample, column)
    _flip(sample, col["offset"] + col["length"] // 2)
    validate_segment(str(sample))  # cheap: header and TOC only
    with pytest.raises(SegmentCorruptError) as info:
        validate_segment(str(sample), full=True)
    assert str(sample) in str(info.value)
    assert "checksum mismatch" in str(info.value) and repr(column) in str(info.value)


@pytest.mark.parametrize("offset,match", [(0, "bad magic"), (6, "unsupported format version"),
                                          (20, "header says"), (40, "table of contents checksum")])
def test_validate_catches_flipped_header_or_toc_byte(sample, offset, match):
    _flip(sample, offset)
    for full in (False, True):
        with pytest.raises(SegmentCorruptError, match=match):
            validate_segment(str(sample), full=full)
    with pytest.raises(SegmentCorruptError, match=match):
        read_segment(str(sample))


def test_every_byte_is_covered(sample):
    """Flipping any single byte is caught by the full validation (header, TOC padding, block padding)."""
    raw = sample.read_bytes()
    with open(sample, "r+b") as f:
        for offset, byte in enumerate(raw):
            f.seek(offset)
            f.write(bytes([byte ^ 0x01]))
            f.flush()
            with pytest.raises(SegmentCorruptError):
                validate_segment(str(sample), full=True)
            f.seek(offset)
            f.write(bytes([byte]))
            f.flush()
    validate_segment(str(sample), full=True)


@pytest.mark.parametrize("keep", [0, 10, 32, 100, -1])
def test_validate_catches_truncated_file(sample, keep):
    raw = sample.read_bytes()
    sample.write_bytes(raw[:keep] if keep >= 0 else raw[:-1])
    with pytest.raises(SegmentCorruptError, match="truncated") as info:
        validate_segment(str(sample))
    assert str(sample) in str(info.value)
    with pytest.raises(SegmentCorruptError):
        read_segment(str(sample))
    with pytest.raises(SegmentCorruptError):
        read_segment_meta(str(sample))


def test_validate_catches_trailing_garbage(sample):
    with open(sample, "ab") as f:
        f.write(b"\0")
    with pytest.raises(SegmentCorruptError, match="trailing bytes"):
        validate_segment(str(sample))


def test_missing_file_is_not_corruption(tmp_path):
    with pytest.raises(FileNotFoundError):
        validate_segment(str(tmp_path / "nope.seg"))


def _write_with_dictionary_hack(path, values, monkeypatch, hack):
    real = segment._string_buffers

    def fake(arr):
        return hack(*real(arr))

    monkeypatch.setattr(segment, "_string_buffers", fake)
    write_segment(str(path), _table(__time=_times(len(values)), d=pa.array(values)), dimensions=["d"])
    monkeypatch.undo()


def test_validate_full_catches_unsorted_dictionary(tmp_path, monkeypatch):
    path = tmp_path / "unsorted.seg"

    def swap(offsets, data):  # "ab","cd" -> "cd","ab" (same offsets, checksums stay consistent)
        return offsets, np.concatenate([data[2:4], data[0:2]])

    _write_with_dictionary_hack(path, ["ab", "cd", "ab"], monkeypatch, swap)
    validate_segment(str(path))
    with pytest.raises(SegmentCorruptError, match="not strictly sorted") as info:
        validate_segment(str(path), full=True)
    assert str(path) in str(info.value)


def test_validate_full_catches_duplicate_dictionary_entry(tmp_path, monkeypatch):
    path = tmp_path / "dup.seg"

    def dup(offsets, data):  # "ab","cd" -> "ab","ab"
        return offsets, np.concatenate([data[0:2], data[0:2]])

    _write_with_dictionary_hack(path, ["ab", "cd"], monkeypatch, dup)
    with pytest.raises(SegmentCorruptError, match="not strictly sorted"):
        validate_segment(str(path), full=True)


def test_validate_full_catches_wrong_inverted_index(tmp_path, monkeypatch):
    path = tmp_path / "idx.seg"
    real = k.build_inverted_index

    def wrong(ids, card):
        offsets, rows = real(ids, card)
        return offsets, rows[::-1].copy()

    monkeypatch.setattr(segment._k, "build_inverted_index", wrong)
    write_segment(str(path), _table(__time=_times(3), d=pa.array(["a", "b", "a"])), dimensions=["d"])
    monkeypatch.undo()
    with pytest.raises(SegmentCorruptError, match="index rows"):
        validate_segment(str(path), full=True)


# --- kernels ------------------------------------------------------------------------------------


@pytest.mark.parametrize("width,top", [(1, 255), (2, 65_535), (3, 2**24 - 1), (4, 2**31 - 2)])
def test_pack_unpack_round_trip(width, top):
    rng = np.random.default_rng(width)
    ids = np.concatenate([[0, 1, top, top - 1], rng.integers(0, top + 1, 1000)]).astype(np.int32)
    packed = k.pack_ids(ids, width)
    assert packed.dtype == np.uint8 and len(packed) == len(ids) * width
    # little-endian, exactly `width` bytes per value
    expected = ids.astype("<u4").view(np.uint8).reshape(-1, 4)[:, :width].ravel()
    np.testing.assert_array_equal(packed, expected)
    np.testing.assert_array_equal(k.unpack_ids(packed, width, len(ids), top + 1), ids)
    with pytest.raises(ValueError, match="out of range"):
        k.unpack_ids(packed, width, len(ids), top)  # `top` is not below cardinality `top`
    if width < 4:
        with pytest.raises(ValueError, match="does not fit"):
            k.pack_ids(np.array([top + 1], np.int32), width)
    with pytest.raises(ValueError, match="does not fit"):
        k.pack_ids(np.array([-1], np.int32), width)


def test_unpack_rejects_bad_arguments():
    with pytest.raises(ValueError, match="need 6 bytes"):
        k.unpack_ids(np.zeros(5, np.uint8), 2, 3, 10)
    with pytest.raises(ValueError, match="width"):
        k.pack_ids(np.zeros(1, np.int32), 5)
    assert len(k.unpack_ids(np.zeros(0, np.uint8), 3, 0, 0)) == 0


def test_remap_ids():
    rng = np.random.default_rng(1)
    mapping = rng.permutation(1000).astype(np.int32)
    ids = rng.integers(0, 1000, 10_000).astype(np.int32)
    np.testing.assert_array_equal(k.remap_ids(ids, mapping), mapping[ids])
    with pytest.raises(ValueError, match="outside the mapping"):
        k.remap_ids(np.array([0, 1000], np.int32), mapping)


@pytest.mark.parametrize("card,n", [(0, 0), (1, 5), (5, 1000), (3000, 20_000)])
def test_build_inverted_index_matches_numpy(card, n):
    rng = np.random.default_rng(card)
    ids = rng.integers(0, max(card, 1), n).astype(np.int32)
    offsets, rows = k.build_inverted_index(ids, card)
    counts = np.bincount(ids, minlength=card)[:card] if n else np.zeros(card, np.int64)
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(counts)]))
    np.testing.assert_array_equal(rows, np.argsort(ids, kind="stable"))
    k.check_inverted_index(ids, offsets, rows)
    with pytest.raises(ValueError, match="out of range"):
        k.build_inverted_index(np.array([card], np.int32), card)


def test_check_inverted_index_rejects_bad_indexes():
    ids = np.array([1, 0, 1], np.int32)
    offsets, rows = k.build_inverted_index(ids, 2)
    assert offsets.tolist() == [0, 1, 3] and rows.tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match="not the ascending rows"):
        k.check_inverted_index(ids, offsets, np.array([1, 2, 0], np.int32))
    with pytest.raises(ValueError, match="not the ascending rows"):
        k.check_inverted_index(ids, offsets, np.array([0, 0, 2], np.int32))
    with pytest.raises(ValueError, match="span"):
        k.check_inverted_index(ids, np.array([0, 1, 2], np.int64), rows)


def test_check_dictionary():
    offsets = np.array([0, 0, 1, 3], np.int64)
    k.check_dictionary(offsets, np.frombuffer(b"aab", np.uint8), 1, True)  # "", "a", "ab"
    with pytest.raises(ValueError, match="not strictly sorted"):
        k.check_dictionary(offsets, np.frombuffer(b"bab", np.uint8), 1, True)  # "", "b", "ab"
    k.check_dictionary(offsets, np.frombuffer(b"bab", np.uint8), 1, False)  # structure only
    with pytest.raises(ValueError, match="end at"):
        k.check_dictionary(offsets, np.frombuffer(b"aabc", np.uint8), 1, False)
    with pytest.raises(ValueError, match="decrease"):
        k.check_dictionary(np.array([0, 2, 1, 3], np.int64), np.frombuffer(b"aab", np.uint8), 1, False)
    # bytes compare unsigned: 0xC3 (start of "é") sorts after "z"
    k.check_dictionary(np.array([0, 1, 3], np.int64), np.frombuffer("zé".encode(), np.uint8), 1, True)


# --- property test ---------------------------------------------------------------------------------


_rows = st.integers(min_value=0, max_value=40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n),
    st.lists(st.none() | st.text(max_size=6), min_size=n, max_size=n),
    st.lists(st.none() | st.sampled_from(["a", "b", "ä", ""]), min_size=n, max_size=n),
    st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n),
    st.lists(st.none() | st.floats(allow_nan=False), min_size=n, max_size=n),
    st.lists(st.none() | st.floats(width=32, allow_nan=False), min_size=n, max_size=n),
))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_rows)
def test_round_trip_property(tmp_path_factory, data):
    times, s1, s2, longs, doubles, floats = data
    table = _table(__time=pa.array(times, pa.int64()), s1=pa.array(s1, pa.string()),
                   s2=pa.array(s2, pa.string()), l=pa.array(longs, pa.int64()),
                   d=pa.array(doubles, pa.float64()), f=pa.array(floats, pa.float32()))
    path = tmp_path_factory.mktemp("prop") / "p.seg"
    size = write_segment(str(path), table, dimensions=["s1", "s2"], metrics=["l", "d", "f"])
    validate_segment(str(path), full=True)
    out = read_segment(str(path))
    assert out.to_pydict() == table.to_pydict()
    assert out.schema.equals(table.schema)
    meta = read_segment_meta(str(path))
    assert meta["size"] == size and meta["numRows"] == len(times)
    assert (meta["minTime"], meta["maxTime"]) == ((min(times), max(times)) if times else (None, None))
    for column in ("s1", "s2"):
        _assert_index(path, column, table.column(column).combine_chunks())
