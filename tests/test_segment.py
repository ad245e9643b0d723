"""The columnar segment format: msqcore.storage.segment and its Cython kernels."""
from __future__ import annotations

import itertools
import math
import os
import struct

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import relabel_segment_version, written_before_version_4
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

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


def _index_csr(path, column: str) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(dictionary, offsets, rows) of a column's bitmap index, each bitmap read by pyroaring."""
    index = string_value_index(str(path), column)
    parts = []
    for i in range(index.cardinality):
        rows = index.rows([i])
        assert rows.dtype == np.int32
        np.testing.assert_array_equal(np.array(BitMap.deserialize(index.bitmap(i)), np.int32), rows)
        parts.append(rows)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts], dtype=np.int64)]).astype(np.int64)
    rows = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)
    return index.dictionary, offsets, rows


def _assert_index(path, column: str, values: pa.Array) -> None:
    dictionary, offsets, rows = _index_csr(path, column)
    assert dictionary.type == pa.string()
    assert dictionary.to_pylist() == _utf8_sorted_dictionary(values.to_pylist())
    ref_offsets, ref_rows = _reference_index(values, dictionary)
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
    dictionary, offsets, rows = _index_csr(path, "d")
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
    dictionary, offsets, rows = _index_csr(path, "d")
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
    assert _col(path, "method")["idBits"] == 3 and "idBits" not in _col(path, "user")
    assert _col(path, "method")["parts"]["ids"]["size"] == n * 3 // 8  # 3 bits a row, before compression
    assert _col(path, "method")["parts"]["ids"]["stored"] < n // 2
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
    # without a bitmap index: with one, so many values per row would be stored as row lists
    write_segment(str(path), _table(__time=_times(n), d=values), dimensions=["d"], bitmap_indexes=[])
    col = _col(path, "d")
    assert (col["cardinality"], col["idWidth"]) == (cardinality, width)
    assert col["parts"]["ids"]["size"] == n * width
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
    assert (magic, version, file_size, num_rows) == (b"MSQSEG", 5, len(raw), 2)
    toc = _toc(path)
    assert [c["name"] for c in toc["columns"]] == ["__time", "b", "a", "m"]  # extra is dropped
    assert [c["type"] for c in toc["columns"]] == ["LONG", "STRING", "LONG", "DOUBLE"]
    first = toc["columns"][0]["offset"]
    assert first == 32 + toc_len and first % 8 == 0
    for c in toc["columns"]:
        assert c["offset"] % 8 == 0
        assert c["offset"] + c["length"] <= len(raw)
    # __time: offsets from its minimum (10) in one byte each, in one zstd block behind a block
    # table [0, compressed size]; no validity
    t = toc["columns"][0]
    assert list(t["parts"]) == ["values"] and (t["base"], t["valueWidth"]) == (10, 1)
    part = t["parts"]["values"]
    assert part["at"] == 0 and part["size"] == 2 and part["blockSize"] == 65536
    table_ = np.frombuffer(raw, "<u8", 2, t["offset"])
    assert table_[0] == 0 and 16 + table_[1] == part["stored"]
    block = raw[t["offset"] + 16:t["offset"] + 16 + int(table_[1])]
    assert list(pa.Codec("zstd").decompress(block, 2, asbytes=True)) == [0, 10]
    # two distinct values in two rows: stored as their row lists, no ids (layout rowLists)
    assert _col(path, "b")["layout"] == "rowLists"
    assert list(_col(path, "b")["parts"]) == ["dictLengths", "dictData", "rowCounts", "rowLists"]
    assert read_segment(str(path)).column_names == ["__time", "b", "a", "m"]


def test_numeric_validity_only_with_nulls(tmp_path):
    path = tmp_path / "v.seg"
    table = _table(__time=_times(3), a=pa.array([1, 2, 3]), b=pa.array([1, None, 3]))
    write_segment(str(path), table, dimensions=[], metrics=["a", "b"])
    assert list(_col(path, "a")["parts"]) == ["values"]
    assert list(_col(path, "b")["parts"]) == ["values", "validity"]
    b = _col(path, "b")
    with segment._open(str(path)) as seg:
        assert (b["base"], b["valueWidth"]) == (1, 1)
        assert seg.part(b, "values").tolist() == [0, 0, 2]  # offsets from 1; the null slot holds the base
        assert seg.part(b, "validity").tolist() == [0b101]


def test_dictionary_sorted_by_utf8_bytes(tmp_path):
    path = tmp_path / "sort.seg"
    # UTF-16 order would put U+FFFF after the emoji; UTF-8 byte order puts it before
    values = ["z", "é", "\uffff", "😀", "Z", "a", "", None, "\x00", "ab", "a", "é"]
    write_segment(str(path), _table(__time=_times(len(values)), d=pa.array(values)), dimensions=["d"])
    dictionary = string_value_index(str(path), "d").dictionary
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
    # a damaged compressed block in "bad"'s dictionary: decoding it must fail ...
    _patch(path, bad["offset"] + bad["parts"]["dictData"]["at"] + 16, b"\xff\xff\xff\xff")
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
        "dimensionsSpec": [{"type": "string", "name": "d", "multiValueHandling": "SORTED_ARRAY",
                            "createBitmapIndex": True},
                           {"type": "long", "name": "n", "multiValueHandling": "SORTED_ARRAY",
                            "createBitmapIndex": False}],
        "metricsSpec": [],
        "rollup": False,
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
    real = segment._dictionary_buffers

    def fake(arr):
        return hack(*real(arr))

    monkeypatch.setattr(segment, "_dictionary_buffers", fake)
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
        assert offsets.tolist() == [0, 2, 3] and rows.tolist() == [0, 2, 1]
        return offsets, np.array([1, 2, 0], np.int32)  # well-formed bitmaps, wrong rows

    monkeypatch.setattr(segment._k, "build_inverted_index", wrong)
    monkeypatch.setattr(segment, "_use_row_lists", lambda card, n: False)  # ids and Roaring bitmaps
    monkeypatch.setattr(segment, "_BITMAPS_FROM_IDS_MAX", 0)  # built from row lists
    write_segment(str(path), _table(__time=_times(3), d=pa.array(["a", "b", "a"])), dimensions=["d"])
    monkeypatch.undo()
    validate_segment(str(path))
    with pytest.raises(SegmentCorruptError, match="not the rows holding each value"):
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


# --- format versions 2 to 4: compression, selective reads, column kinds, rollup -------------------------


@pytest.mark.parametrize("version", [1, 6])
def test_unknown_version_is_refused(sample, version):
    raw = bytearray(sample.read_bytes())
    struct.pack_into("<H", raw, 6, version)
    sample.write_bytes(bytes(raw))
    with pytest.raises(SegmentCorruptError,
                       match=rf"unsupported format version {version} \(this reader knows 2, 3, 4, 5\)"):
        read_segment(str(sample))


def test_version_2_segments_stay_readable(tmp_path, monkeypatch):
    """A version 2 file is a version 3 file without the rowLists layout (few values per
    row here: every string column keeps its ids)."""
    written_before_version_4(monkeypatch)
    path = tmp_path / "v2.seg"
    table = pa.table({"__time": np.arange(1000, dtype=np.int64), "d": [("a", "b", None)[i % 3] for i in range(1000)],
                      "m": np.arange(1000, dtype=np.int64)})
    write_segment(str(path), table, dimensions=["d"], metrics=["m"])
    relabel_segment_version(path, 2)
    assert read_segment(str(path)).equals(table)
    index = segment.string_value_index(str(path), "d")
    assert index._col.get("layout") != "rowLists"
    b = index.dictionary.to_pylist().index("b")
    assert index.rows([b]).tolist() == list(range(1, 1000, 3))


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_compression_codecs(tmp_path, compression):
    path = tmp_path / f"{compression}.seg"
    n = 100_000
    rng = np.random.default_rng(3)
    table = _table(__time=pa.array(np.arange(n, dtype=np.int64) * 1000),
                   d=pa.array(np.array(["alpha", "beta", "gamma"])[rng.integers(0, 3, n)]),
                   m=pa.array(rng.integers(0, 100, n)))
    size = write_segment(str(path), table, dimensions=["d"], metrics=["m"], compression=compression)
    assert _toc(path)["compression"] == compression
    assert size < n * (8 + 8 + 1) * 0.6  # raw values alone would be 17 bytes a row
    assert read_segment(str(path)).equals(table)
    validate_segment(str(path), full=True)
    with pytest.raises(ValueError, match="compression must be one of"):
        write_segment(str(path), table, dimensions=["d"], compression="gzip")


def _record_blocks(monkeypatch) -> list[tuple[str, str, int, int]]:
    calls = []
    real = segment._Segment.read_blocks

    def spy(self, col, part_name, first, last, skip=None):
        # one call per block decompressed (the blocks ``skip`` names stay compressed)
        nb = -(-col["parts"][part_name]["size"] // col["parts"][part_name]["blockSize"])
        calls.extend((col["name"], part_name, b, b + 1) for b in range(first, min(last, nb))
                     if skip is None or not skip[b - first])
        return real(self, col, part_name, first, last, skip)

    monkeypatch.setattr(segment._Segment, "read_blocks", spy)
    return calls


@pytest.fixture
def three_blocks(tmp_path):
    """A segment of 150,000 rows: three 64Ki-row blocks per fixed-width part."""
    path = tmp_path / "blocks.seg"
    n = 150_000
    rng = np.random.default_rng(5)
    table = _table(__time=pa.array(np.arange(n, dtype=np.int64)),
                   d=pa.array(np.array(["x", "y", "z"])[rng.integers(0, 3, n)]),
                   m=pa.array([None if i % 7 == 0 else float(i) for i in range(n)]),
                   other=pa.array(rng.integers(0, 9, n)))
    write_segment(str(path), table, dimensions=["d"], metrics=["m", "other"])
    return path, table


def test_reading_one_column_decompresses_only_its_parts(three_blocks, monkeypatch):
    path, table = three_blocks
    calls = _record_blocks(monkeypatch)
    assert read_segment(str(path), ["m"]).equals(table.select(["m"]))
    assert {c[0] for c in calls} == {"m"}
    assert {c[1] for c in calls} == {"values", "validity"}


@pytest.mark.parametrize("rows", [[0, 5, 65_535], [65_536, 70_000], [3, 149_999], slice(131_072, 131_100)])
def test_row_selection_decompresses_only_the_blocks_holding_the_rows(three_blocks, monkeypatch, rows):
    path, table = three_blocks
    wanted = np.arange(150_000)[rows] if isinstance(rows, slice) else np.array(rows)
    calls = _record_blocks(monkeypatch)
    out = read_segment(str(path), ["d", "m", "__time"], rows=rows)
    assert out.equals(table.select(["d", "m", "__time"]).take(pa.array(wanted)))
    ids_blocks = {c[2] for c in calls if c[:2] == ("d", "ids")}
    assert ids_blocks == set((wanted // 65_536).tolist())
    assert not any(c[0] == "other" for c in calls)
    empty = read_segment(str(path), ["d", "m", "__time"], rows=[])
    assert empty.num_rows == 0 and empty.schema == table.select(["d", "m", "__time"]).schema
    with pytest.raises(ValueError, match="ascending"):
        read_segment(str(path), ["m"], rows=[5, 3])
    with pytest.raises(IndexError, match="out of range"):
        read_segment(str(path), ["m"], rows=[150_000])


def test_dictionary_encoded_read(tmp_path):
    path = tmp_path / "dict.seg"
    table = _table(__time=_times(5), d=pa.array(["b", None, "a", "b", ""]))
    write_segment(str(path), table, dimensions=["d"])
    col = read_segment(str(path), ["d"], dictionary=True).column("d").combine_chunks()
    assert pa.types.is_dictionary(col.type)
    assert col.to_pylist() == ["b", None, "a", "b", ""]
    assert col.dictionary.to_pylist() == ["", "", "a", "b"]  # the null slot holds "", masked in the indices


def test_reads_do_not_read_the_file(three_blocks, monkeypatch):
    """Reads go through mmap: no read() of the file object at all."""
    path, table = three_blocks
    import builtins
    real_open = builtins.open

    class NoRead:
        def __init__(self, f):
            self._f = f

        def __getattr__(self, name):
            if name in ("read", "readinto", "readall"):
                raise AssertionError("segment read through read()")
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    monkeypatch.setattr(builtins, "open", lambda *a, **kw: NoRead(real_open(*a, **kw)))
    out = read_segment(str(path), ["other"])
    monkeypatch.undo()
    assert out.equals(table.select(["other"]))


def _with_type(table: pa.Table, name: str, druid_type: str) -> pa.Table:
    i = table.schema.get_field_index(name)
    field = table.schema.field(i).with_metadata({b"druid_type": druid_type.encode()})
    return table.cast(table.schema.set(i, field))


def test_complex_metric_round_trips_with_its_metadata(tmp_path):
    path = tmp_path / "complex.seg"
    blobs = [b"\x01\x00\xff" * 40, None, b"", b"\x00", bytes(range(256))]
    table = _with_type(_table(__time=_times(5), page=pa.array(["a", "b", "a", "c", "b"]),
                              unique_users=pa.array(blobs, pa.binary())),
                       "unique_users", "COMPLEX<hyperUnique>")
    write_segment(str(path), table, dimensions=["page"], metrics=["unique_users"])
    out = read_segment(str(path))
    assert out.equals(table) and out.schema.equals(table.schema, check_metadata=True)
    assert out.schema.field("unique_users").metadata == {b"druid_type": b"COMPLEX<hyperUnique>"}
    assert read_segment_meta(str(path))["columns"][2] == {"name": "unique_users", "type": "COMPLEX<hyperUnique>"}
    assert read_segment(str(path), ["unique_users"], rows=[1, 4]).column(0).to_pylist() == [None, bytes(range(256))]
    validate_segment(str(path), full=True)


def test_json_column(tmp_path):
    path = tmp_path / "json.seg"
    docs = ['{"a": 1, "b": [1, 2]}', None, '"text"', '{"nested": {"x": "é"}}']
    table = _with_type(_table(__time=_times(4), doc=pa.array(docs)), "doc", "COMPLEX<json>")
    write_segment(str(path), table, dimensions=["doc"])
    out = read_segment(str(path))
    assert out.equals(table) and out.schema.equals(table.schema, check_metadata=True)
    assert read_segment_meta(str(path))["dimensionsSpec"] == [  # Druid's NestedDataColumnSchema
        {"type": "json", "name": "doc", "formatVersion": 5, "multiValueHandling": "SORTED_ARRAY",
         "createBitmapIndex": True}]
    with pytest.raises(TypeError, match="COMPLEX<json>, which needs JSON text"):
        write_segment(str(path), _with_type(_table(__time=_times(1), doc=pa.array([b"{}"])), "doc", "COMPLEX<json>"),
                      dimensions=["doc"])
    with pytest.raises(TypeError, match="needs a binary or string column"):
        write_segment(str(path), _with_type(_table(__time=_times(1), x=pa.array([1])), "x", "COMPLEX<hyperUnique>"),
                      dimensions=[], metrics=["x"])


def test_multi_value_strings_and_arrays(tmp_path):
    path = tmp_path / "mv.seg"
    tags = [["b", "a"], None, [], ["b", None, "b"], ["c"], ["a"]]
    table = _table(
        __time=_times(6),
        tags=pa.array(tags, pa.list_(pa.string())),
        names=pa.array([["x"], ["y", "x"], None, [], [None], ["z"]], pa.list_(pa.string())),
        longs=pa.array([[1, 2], None, [], [None, 3], [2**63 - 1], [-1]], pa.list_(pa.int64())),
        doubles=pa.array([[0.5], [], None, [float("inf"), None], [-0.0], [1e300]], pa.list_(pa.float64())),
    )
    table = _with_type(table, "names", "ARRAY<STRING>")
    write_segment(str(path), table, dimensions=["tags", "names", "longs", "doubles"])
    out = read_segment(str(path))
    assert out.equals(table) and out.schema.equals(table.schema, check_metadata=True)
    meta = read_segment_meta(str(path))
    assert meta["columns"][1:] == [{"name": "tags", "type": "STRING", "multiValue": True},
                                   {"name": "names", "type": "ARRAY<STRING>"},
                                   {"name": "longs", "type": "ARRAY<LONG>"},
                                   {"name": "doubles", "type": "ARRAY<DOUBLE>"}]
    assert [d["type"] for d in meta["dimensionsSpec"]] == ["string", "auto", "auto", "auto"]
    assert meta["dimensionsSpec"][2]["castToType"] == "ARRAY<LONG>"
    # one bitmap per value, of the rows holding it (row 3 holds "b" twice, and a null)
    index = string_value_index(str(path), "tags")
    assert index.dictionary.to_pylist() == [None, "a", "b", "c"]
    assert index.rows(index.lookup(["b"])).tolist() == [0, 3]
    assert index.rows(index.lookup(["a", "c"])).tolist() == [0, 4, 5]
    assert index.rows(index.lookup([None])).tolist() == [3]
    assert read_segment(str(path), ["tags", "longs"], rows=[3, 5]).to_pydict() == \
        {"tags": [["b", None, "b"], ["a"]], "longs": [[None, 3], [-1]]}
    validate_segment(str(path), full=True)


def test_rollup_merges_equal_keys(tmp_path):
    path = tmp_path / "rollup.seg"
    table = _table(
        __time=pa.array([1, 1, 1, 2, 2, 3], pa.int64()),
        d=pa.array(["a", "a", "b", None, None, "a"]),
        cnt=pa.array([1, 1, 1, 1, 1, 1], pa.int64()),
        total=pa.array([1.5, None, 2.0, None, None, 4.0]),
        lo=pa.array([5, 3, 9, 7, 1, None], pa.int64()),
        hi=pa.array([0.5, 2.5, 1.0, None, 3.0, 2.0], pa.float32()),
    )
    rollup = {"cnt": "longSum", "total": "doubleSum", "lo": "longMin", "hi": "floatMax"}
    write_segment(str(path), table, dimensions=["d"], metrics=list(rollup), rollup=rollup)
    assert read_segment(str(path)).to_pydict() == {
        "__time": [1, 1, 2, 3], "d": ["a", "b", None, "a"], "cnt": [2, 1, 2, 1],
        "total": [1.5, 2.0, None, 4.0], "lo": [3, 9, 1, None], "hi": [2.5, 1.0, 3.0, 2.0]}
    meta = read_segment_meta(str(path))
    assert meta["rollup"] is True and meta["numRows"] == 4
    assert meta["metricsSpec"][0] == {"type": "longSum", "name": "cnt", "fieldName": "cnt"}
    validate_segment(str(path), full=True)
    with pytest.raises(ValueError, match="missing \\['lo'\\]"):
        write_segment(str(path), table, dimensions=["d"], metrics=["cnt", "lo"], rollup={"cnt": "longSum"})
    with pytest.raises(ValueError, match="unknown rollup kind 'median'"):
        write_segment(str(path), table, dimensions=["d"], metrics=["cnt"], rollup={"cnt": "median"})


def test_rollup_vectorized_on_many_rows(tmp_path):
    path = tmp_path / "big-rollup.seg"
    rng = np.random.default_rng(11)
    n = 50_000
    table = _table(__time=pa.array(np.sort(rng.integers(0, 50, n))),
                   d=pa.array(np.array(["p", "q", "r"])[rng.integers(0, 3, n)]),
                   x=pa.array(rng.integers(0, 1000, n)))
    table = table.sort_by([("__time", "ascending"), ("d", "ascending")])
    write_segment(str(path), table, dimensions=["d"], metrics=["x"], rollup={"x": "longSum"})
    expected = table.group_by(["__time", "d"]).aggregate([("x", "sum")]).sort_by(
        [("__time", "ascending"), ("d", "ascending")])
    out = read_segment(str(path))
    assert out.column("x").to_pylist() == expected.column("x_sum").to_pylist()
    assert out.column("d").to_pylist() == expected.column("d").to_pylist()


@pytest.mark.parametrize("words", [
    ["b", "a", "", "ab", "a\x00", "\x00", "é", "z", "\uffff", "😀", "aa", "a"],
    [f"https://en.wikipedia.org/w/index.php?diff={i}" for i in np.random.default_rng(1).permutation(3000)],
    [("x" * (i % 40)) + chr(65 + i % 7) for i in range(2000)],
    # prefixes of each other across the 8- and 16-byte steps, zero bytes, repeats
    [("ab" * (i % 13)) + "\x00" * (i % 3) + ("c" if i % 5 == 0 else "") for i in range(700)],
])
def test_sort_strings_matches_byte_order(words):
    arr = pa.array(words)
    offsets, data = segment._string_buffers(arr)
    order = np.arange(len(words), dtype=np.int32)
    k.sort_strings(offsets, data, order)
    assert [words[i].encode() for i in order] == sorted(w.encode() for w in words)
    with pytest.raises(ValueError, match="outside"):
        k.sort_strings(offsets, data, np.array([len(words)], np.int32))


def test_string_column_without_bitmap_index(tmp_path):
    path = tmp_path / "nobitmap.seg"
    table = _table(__time=_times(4), url=pa.array(["u3", "u1", None, "u2"]), ch=pa.array(["a", "b", "a", "a"]),
                   tags=pa.array([["x"], [], None, ["y", "x"]], pa.list_(pa.string())))
    size = write_segment(str(path), table, dimensions=["url", "ch", "tags"], bitmap_indexes=["ch"])
    with_all = write_segment(str(tmp_path / "all.seg"), table, dimensions=["url", "ch", "tags"])
    assert size < with_all
    assert "bitmaps" not in _col(path, "url")["parts"] and "bitmaps" not in _col(path, "tags")["parts"]
    assert read_segment(str(path)).equals(table)
    validate_segment(str(path), full=True)
    meta = read_segment_meta(str(path))
    assert [d["createBitmapIndex"] for d in meta["dimensionsSpec"]] == [False, True, False]
    assert meta["columns"][1] == {"name": "url", "type": "STRING", "bitmapIndex": False}
    with pytest.raises(ValueError, match="has no bitmap index"):
        string_value_index(str(path), "url")
    assert string_value_index(str(path), "ch").rows([0]).tolist() == [0, 2, 3]  # "a"
    with pytest.raises(ValueError, match="not string columns"):
        write_segment(str(path), table, dimensions=["url"], bitmap_indexes=["__time"])


@pytest.mark.parametrize("values,width", [
    ([5, 5, 5], 1), ([-100, 155], 1), ([0, 256], 2), ([-(2**63), -(2**63) + 2**32 - 1], 4),
    ([0, 2**32], 8), ([-(2**63), 2**63 - 1], 8), ([None, None], 1), ([7, None, 2**20], 4),
])
def test_long_frame_of_reference(tmp_path, values, width):
    path = tmp_path / "for.seg"
    table = _table(__time=_times(len(values)), x=pa.array(values, pa.int64()))
    write_segment(str(path), table, dimensions=["x"])
    assert _col(path, "x")["valueWidth"] == width
    assert read_segment(str(path)).equals(table)
    assert read_segment(str(path), ["x"], rows=[len(values) - 1]).column(0).to_pylist() == values[-1:]
    validate_segment(str(path), full=True)


_lists = st.integers(min_value=0, max_value=25).flatmap(lambda n: st.tuples(
    st.lists(st.none() | st.lists(st.none() | st.sampled_from(["a", "b", "ü", ""]), max_size=4),
             min_size=n, max_size=n),
    st.lists(st.none() | st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), max_size=3), min_size=n, max_size=n),
    st.lists(st.none() | st.binary(max_size=8), min_size=n, max_size=n),
))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_lists)
def test_list_and_complex_round_trip_property(tmp_path_factory, data):
    tags, longs, blobs = data
    table = _with_type(_table(__time=_times(len(tags)), tags=pa.array(tags, pa.list_(pa.string())),
                              longs=pa.array(longs, pa.list_(pa.int64())), blob=pa.array(blobs, pa.binary())),
                       "blob", "COMPLEX<thetaSketch>")
    path = tmp_path_factory.mktemp("lists") / "l.seg"
    write_segment(str(path), table, dimensions=["tags", "longs"], metrics=["blob"])
    validate_segment(str(path), full=True)
    out = read_segment(str(path))
    assert out.to_pydict() == table.to_pydict()
    assert out.schema.equals(table.schema, check_metadata=True)
    index = string_value_index(str(path), "tags")
    for i, value in enumerate(index.dictionary.to_pylist()):
        want = [r for r, row in enumerate(tags) if row is not None and value in row]
        assert index.rows([i]).tolist() == want


# --- format version 3: the rowLists layout (few rows per value: row lists, no ids) -----------------


def _row_lists_values(n: int) -> list[str | None]:
    """n rows with values holding 1, 2 and many rows (one spanning every block), and nulls."""
    rng = np.random.default_rng(n)
    values: list[str | None] = [f"u{i:07d}" for i in range(n)]  # one row each
    for r in rng.choice(n, size=n // 3, replace=False):
        values[r] = f"u{(r + 1) % n:07d}"  # that value now holds two rows (or moves)
    for r in range(0, n, 7):
        values[r] = "common"
    for r in range(3, n, 11):
        values[r] = None
    return values


@pytest.mark.parametrize("n", [1, 2, 3, 50, 70_000])
def test_row_lists_round_trip(tmp_path, n):
    path = tmp_path / "rl.seg"
    values = _row_lists_values(n)
    table = _table(__time=_times(n), d=pa.array(values, pa.string()))
    write_segment(str(path), table, dimensions=["d"])
    col = _col(path, "d")
    assert col["layout"] == "rowLists" and "ids" not in col["parts"] and col["bitmapIndex"]
    validate_segment(str(path), full=True)
    assert read_segment(str(path)).equals(table)
    rows = np.unique(np.random.default_rng(1).integers(0, n, min(n, 500)))
    assert read_segment(str(path), ["d"], rows=rows).column(0).to_pylist() == [values[r] for r in rows]
    dictionary = read_segment(str(path), ["d"], dictionary=True).column(0)
    assert dictionary.to_pylist() == values
    # every value's bitmap is the Roaring bitmap pyroaring builds from its rows
    _assert_index(path, "d", table.column("d").combine_chunks())


def test_bitmaps_from_ids_and_from_row_lists_write_the_same_file(tmp_path, monkeypatch):
    """Low-cardinality columns get their bitmaps straight from their ids; larger ones through
    row lists (``_BITMAPS_FROM_IDS_MAX``). Either way the file is the same, byte for byte."""
    n = 150_000  # three 65,536-row containers per bitmap, the last one short
    rng = np.random.default_rng(5)
    table = _table(
        __time=_times(n),
        flag=pa.array(np.where(rng.random(n) < 0.02, "yes", "no")),
        city=pa.array([f"city{i}" if i % 7 else None for i in rng.integers(0, 300, n)]),
        sorted=pa.array(np.repeat([f"v{i:02d}" for i in range(40)], -(-n // 40))[:n]),
    )
    dims = ["flag", "city", "sorted"]
    write_segment(str(tmp_path / "ids.seg"), table, dimensions=dims)
    monkeypatch.setattr(segment, "_BITMAPS_FROM_IDS_MAX", 0)
    write_segment(str(tmp_path / "rows.seg"), table, dimensions=dims)
    assert (tmp_path / "ids.seg").read_bytes() == (tmp_path / "rows.seg").read_bytes()
    for d in dims:
        assert _col(tmp_path / "ids.seg", d)["layout"] == "ids"
        _assert_index(tmp_path / "ids.seg", d, table.column(d).combine_chunks())


def test_row_lists_one_value_and_all_null(tmp_path):
    path = tmp_path / "one.seg"
    table = _table(__time=_times(5), a=pa.array(["x"] * 5), b=pa.array([None] * 5, pa.string()))
    write_segment(str(path), table, dimensions=["a", "b"])
    assert _col(path, "a")["layout"] == "rowLists" and _col(path, "b")["layout"] == "rowLists"
    validate_segment(str(path), full=True)
    assert read_segment(str(path)).equals(table)
    index = string_value_index(str(path), "b")
    assert index.dictionary.to_pylist() == [None]
    assert index.rows(index.lookup([None])).tolist() == [0, 1, 2, 3, 4]
    assert BitMap.deserialize(index.bitmap(0)) == BitMap(range(5))


def test_empty_segment_and_many_rows_per_value_keep_ids(tmp_path):
    path = tmp_path / "ids.seg"
    write_segment(str(path), _table(__time=_times(0), d=pa.array([], pa.string())), dimensions=["d"])
    assert _col(path, "d")["layout"] == "ids"
    assert read_segment(str(path)).num_rows == 0
    table = _table(__time=_times(100), d=pa.array([f"v{i % 10}" for i in range(100)]))
    write_segment(str(path), table, dimensions=["d"])  # 10 values in 100 rows: ids and Roaring bitmaps
    assert list(_col(path, "d")["parts"]) == ["ids", "dictLengths", "dictData", "bitmapLengths", "bitmaps"]
    assert _col(path, "d")["layout"] == "ids"
    validate_segment(str(path), full=True)


def test_row_lists_are_delta_coded_byte_planes(tmp_path):
    path = tmp_path / "bytes.seg"
    # sorted dictionary: "a" rows [1, 3], "b" rows [0, 4, 300], "c" row [2]
    values = ["b", "a", "c", "a", "b"] + [f"z{i:03d}" for i in range(295)] + ["b"]
    write_segment(str(path), _table(__time=_times(len(values)), d=pa.array(values)), dimensions=["d"])
    col = _col(path, "d")
    with segment._open(str(path)) as seg:
        assert seg.part(col, "rowCounts").view("<u4")[:3].tolist() == [2, 3, 1]
        planes = seg.part(col, "rowLists").reshape(4, -1)  # one block: low bytes, then second bytes, ...
    deltas = planes.T.copy().view("<u4").reshape(-1)
    assert deltas[:6].tolist() == [1, 2, 0, 4, 296, 2]
    assert planes[1, 4] == 1 and planes[0, 4] == 296 - 256  # 296 = 0x128


def test_row_lists_corruption_is_caught(tmp_path, monkeypatch):
    path = tmp_path / "bad.seg"
    real = segment._row_list_deltas

    def doubled(offsets, rows):
        deltas = real(offsets, rows)
        deltas[1] = deltas[0]  # value 0's second row repeats... a row another value holds
        return deltas

    monkeypatch.setattr(segment, "_row_list_deltas", doubled)
    write_segment(str(path), _table(__time=_times(4), d=pa.array(["a", "b", "a", "c"])), dimensions=["d"])
    monkeypatch.undo()
    validate_segment(str(path))
    with pytest.raises(SegmentCorruptError, match="not ascending rows that no other value holds"):
        validate_segment(str(path), full=True)
    with pytest.raises(SegmentCorruptError, match="row list"):
        read_segment(str(path))


def test_row_lists_without_bitmap_index_is_refused(tmp_path):
    path = tmp_path / "nobitmaps.seg"
    write_segment(str(path), _table(__time=_times(3), d=pa.array(["a", "b", "c"])), dimensions=["d"],
                  bitmap_indexes=[])
    assert _col(path, "d")["layout"] == "ids"  # no bitmap index: the ids are the column


def test_row_lists_to_ids_kernel():
    counts = np.array([2, 0, 1], np.uint32)
    np.testing.assert_array_equal(k.row_lists_to_ids(counts, np.array([0, 2, 1], np.uint32), 3), [0, 2, 0])
    assert k.row_lists_to_ids(np.zeros(0, np.uint32), np.zeros(0, np.uint32), 0).tolist() == []
    for deltas in ([0, 0, 1], [0, 3, 1], [1, 1, 1]):  # a zero gap, a row past the end, a row twice
        with pytest.raises(ValueError, match="not ascending rows"):
            k.row_lists_to_ids(counts, np.array(deltas, np.uint32), 3)
    with pytest.raises(ValueError, match="add up to"):
        k.row_lists_to_ids(np.array([1, 1], np.uint32), np.array([0, 1, 2], np.uint32), 3)


def test_string_dictionary_runs_nulls_and_empty_strings_across_windows():
    # the kernel hashes rows 16 at a time; runs, nulls and "" (whose bytes equal a null's) cross windows
    values = ([None, "", ""] + ["a"] * 20 + [None] * 17 + [""] * 3 + ["b", None, "b"] + ["", None] * 9)
    arr = pa.array(values, pa.string())
    dictionary = k.StringDictionary()
    valid = np.array([v is not None for v in values], np.uint8)
    seen: dict[str, int] = {}
    for start in (0, 5, 40):  # three batches
        part = arr.slice(start, (5, 35, len(values))[(0, 5, 40).index(start)])
        ids = dictionary.encode(*segment._string_buffers(part), valid[start:start + len(part)])
        assert ids.tolist() == [0 if v is None else seen.setdefault(v, len(seen)) + 1 for v in part.to_pylist()]


def test_string_dictionary_short_strings_that_share_bytes():
    # strings of up to 16 bytes are compared as two words and a length: prefixes, NUL bytes,
    # strings equal but for one byte at each position, across the small table and the large one
    alphabet = ["", "\x00", "a", "a\x00", "\x00a", "ab", "ba"]
    base = "0123456789abcdefg"
    values = list(alphabet)
    for n in range(18):
        values.append(base[:n])
        values.append(base[:n] + "\x00")
        for j in range(n):
            values.append(base[:j] + "X" + base[j + 1:n])
    values += [f"v{i}" for i in range(20_000)]  # grows the table past its small size
    rng = np.random.default_rng(5)
    _assert_first_seen_ids([values[i] for i in rng.integers(0, len(values), 60_000)] + values, 7_000)


def _assert_first_seen_ids(rows: list[str], batch: int) -> None:
    """``StringDictionary`` gives each row its value's first-seen id + 1, ``batch`` rows a call,
    and keeps the values in first-seen order."""
    dictionary = k.StringDictionary()
    seen: dict[str, int] = {}
    for start in range(0, len(rows), batch):
        part = pa.array(rows[start:start + batch], pa.string())
        ids = dictionary.encode(*segment._string_buffers(part), None)
        assert ids.tolist() == [seen.setdefault(v, len(seen)) + 1 for v in part.to_pylist()]
    offsets, data = dictionary.values()
    assert [bytes(data[offsets[i]:offsets[i + 1]]).decode() for i in range(len(offsets) - 1)] == list(seen)


def test_string_dictionary_short_strings_cache_in_a_small_table():
    """While the table is small, strings of up to 15 bytes are looked up as two words and a
    length in a 1,024-entry cache: more distinct short strings than entries (collisions),
    NUL bytes and prefixes, lengths 0 to 17, and strings in the buffer's last 16 bytes."""
    values = ["".join(p) for n in range(7) for p in itertools.product(["\x00", "a", "b"], repeat=n)]
    base = "0123456789abcdefgh"
    values += [base[:n] for n in range(18)] + [base[:n] + "\x00" for n in range(17)]
    values = list(dict.fromkeys(values))
    assert 1_024 < len(values) < 4_096  # collisions in the cache, the table stays small
    rng = np.random.default_rng(6)
    _assert_first_seen_ids([values[i] for i in rng.integers(0, len(values), 50_000)] + values[::-1], 9_000)


def test_two_threads_write_the_same_bytes(tmp_path):
    n = 70_000
    rng = np.random.default_rng(4)
    table = _table(__time=_times(n), low=pa.array(np.array(["a", "b", None], object)[rng.integers(0, 3, n)]),
                   high=pa.array([f"u{i}" for i in rng.integers(0, n, n)]),
                   tags=pa.array([["x", "y"][: i % 3] for i in range(n)], pa.list_(pa.string())),
                   m=pa.array(rng.random(n)))
    kwargs = {"dimensions": ["low", "high", "tags"], "metrics": ["m"]}
    one, two, streamed = tmp_path / "one.seg", tmp_path / "two.seg", tmp_path / "streamed.seg"
    write_segment(str(one), table, **kwargs)
    write_segment(str(two), table, threads=2, **kwargs)
    with segment.SegmentWriter(str(streamed), table.schema, temp_dir=str(tmp_path), threads=2, **kwargs) as w:
        for batch in table.to_batches(max_chunksize=20_000):
            w.append(batch)
        w.finish()
    assert one.read_bytes() == two.read_bytes() == streamed.read_bytes()
    assert read_segment(str(two)).equals(table)


@pytest.mark.parametrize("values", [
    ["b", None, "a", "", "a", None, "é", "a\x00", "b"] + [f"u{i}" for i in range(40)],
    [None, None],
    ["", "", ""],
    [],
    [f"https://en.wikipedia.org/w/index.php?diff={i % 997}" for i in range(3000)],  # ties beyond 16 rows
])
def test_sorted_dictionary_of_rows_matches_hashing(values):
    # sorting a column's rows gives what hashing, sorting the distinct values and inverting gives
    arr = pa.array(values, pa.string())
    valid = pc.is_valid(arr).to_numpy(zero_copy_only=False).view(np.uint8) if arr.null_count else None
    offsets, data, ids, index_offsets, index_rows, has_null = k.sorted_dictionary_of_rows(
        *segment._string_buffers(arr), valid)
    column = segment._StringColumn()
    column.dictionary, column.ids = k.StringDictionary(), segment._Spool(pa.int32())
    column.add(arr)
    sorted_dict, expected_ids, expected_null, _ = column.sorted()
    expected_offsets, expected_data = segment._string_buffers(sorted_dict)
    np.testing.assert_array_equal(offsets, expected_offsets)
    np.testing.assert_array_equal(data, expected_data)
    np.testing.assert_array_equal(ids, expected_ids)
    assert has_null == expected_null
    expected_index = k.build_inverted_index(expected_ids, len(sorted_dict))
    np.testing.assert_array_equal(index_offsets, expected_index[0])
    np.testing.assert_array_equal(index_rows, expected_index[1])


def test_mostly_distinct_columns_are_sorted_by_rows_with_the_same_bytes(tmp_path, monkeypatch):
    # a column whose first rows are nearly all distinct is encoded by sorting its rows; the file is
    # byte for byte the one the hash table gives, one-shot or streamed in batches, with nulls
    n = 30_000
    rng = np.random.default_rng(7)
    urls = np.array([f"https://x.org/?diff={i % 20_000}" for i in rng.permutation(n)], object)
    urls[rng.random(n) < 0.05] = None
    table = _table(__time=_times(n), url=pa.array(urls), low=pa.array(np.array(["a", "b"])[rng.integers(0, 2, n)]))
    kwargs = {"dimensions": ["url", "low"], "metrics": []}
    assert segment._mostly_distinct(table.column("url").chunk(0))
    assert not segment._mostly_distinct(table.column("low").chunk(0))
    sorted_rows, streamed, hashed = tmp_path / "sorted.seg", tmp_path / "streamed.seg", tmp_path / "hashed.seg"
    write_segment(str(sorted_rows), table, **kwargs)
    with segment.SegmentWriter(str(streamed), table.schema, temp_dir=str(tmp_path), **kwargs) as w:
        for batch in table.to_batches(max_chunksize=7_000):
            w.append(batch)
        w.finish()
    monkeypatch.setattr(segment, "_mostly_distinct", lambda arr: False)
    write_segment(str(hashed), table, **kwargs)
    assert sorted_rows.read_bytes() == streamed.read_bytes() == hashed.read_bytes()
    validate_segment(str(sorted_rows), full=True)
    assert read_segment(str(sorted_rows)).equals(table)


@pytest.mark.parametrize("n, card", [(0, 0), (1, 1), (5, 2), (10_000, 3), (10_000, 9_000)])
def test_row_list_deltas_match_numpy_and_read_back(n, card):
    rng = np.random.default_rng(n + card)
    ids = rng.integers(0, card, n).astype(np.int32) if card else np.zeros(0, np.int32)
    offsets, rows = k.build_inverted_index(ids, card)
    deltas = k.row_list_deltas(offsets, rows)
    expected = rows.astype(np.uint32)
    expected[1:] -= rows[:-1].astype(np.uint32)
    starts = offsets[:-1][np.diff(offsets) > 0]
    expected[starts] = rows[starts]
    assert deltas.dtype == np.uint32
    np.testing.assert_array_equal(deltas, expected)
    np.testing.assert_array_equal(k.row_lists_to_ids(np.diff(offsets).astype(np.uint32), deltas, n), ids)
    with pytest.raises(ValueError, match="span"):
        k.row_list_deltas(np.array([0, n + 1], np.int64), rows)


@pytest.mark.parametrize("with_null", [False, True])
def test_bitmap_index_lookup_finds_each_value_by_binary_search(tmp_path, with_null):
    """``BitmapIndex.lookup`` (a binary search of the sorted dictionary) gives the ids Arrow's
    ``index_in`` gives: the empty string apart from null, prefixes, non-ASCII, absent values."""
    values = ["", "a", "ab", "abc", "b", "é", "日本", "zz" * 20, "zz" * 20 + "z"]
    rows = values * 3 + ([None] if with_null else [])
    path = tmp_path / "s.seg"
    write_segment(str(path), pa.table({"__time": pa.array(range(len(rows)), pa.int64()),
                                       "s": pa.array(rows, pa.string())}), dimensions=["s"])
    index = string_value_index(str(path), "s")
    probes = values + [None, "aa", "0", "zz", "zzz", "日", "~"]
    for probe in [[v] for v in probes] + [probes, ["a", "b", "a"], []]:
        want = pc.index_in(pa.array(probe, pa.string()), value_set=index.dictionary, skip_nulls=False)
        assert index.lookup(probe).tolist() == sorted(set(want.drop_null().to_pylist())), probe
    assert index.rows(index.lookup([""])).tolist() == [0, 9, 18]
    assert index.rows(index.lookup([None])).tolist() == ([27] if with_null else [])


@pytest.mark.parametrize("arr", [pa.array([1, None, 3] * 7), pa.array([1, None, 3] * 7).slice(5, 11),
                                 pa.array(["x", None] * 9).slice(3), pa.array(["a", "b"]), pa.nulls(4),
                                 pa.array([None] * 5, pa.string()), pa.array([], pa.int64())],
                         ids=["ints", "sliced", "sliced strings", "no nulls", "null type", "all null", "empty"])
def test_valid_bytes_unpacks_the_validity_bitmap(arr):
    want = pc.is_valid(arr).to_numpy(zero_copy_only=False).view(np.uint8)
    got = segment._valid_bytes(arr)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("typ", [pa.string(), pa.large_string()])
def test_string_dictionary_takes_arrow_offsets_as_stored(typ):
    """``encode`` takes int32 or int64 offsets as Arrow stores them, not rebased, over the whole
    data buffer (``_string_buffers(native=True)``, no copy): slices included, the same ids."""
    rng = np.random.default_rng(8)
    values = [None if i % 11 == 0 else f"{'ab'[i % 2] * (i % 19)}{i % 300}" for i in rng.integers(0, 5_000, 20_000)]
    arr = pa.array(values, typ)
    for part in (arr, arr.slice(7, 9_000), arr.slice(12_345)):
        valid = segment._valid_bytes(part)
        offsets, data = segment._string_buffers(part, native=True)
        assert offsets.dtype == (np.int32 if typ == pa.string() else np.int64)
        assert np.shares_memory(offsets, np.frombuffer(part.buffers()[1], dtype=offsets.dtype))
        got = k.StringDictionary().encode(offsets, data, valid)
        want = k.StringDictionary().encode(*segment._string_buffers(part.fill_null("")), valid)
        np.testing.assert_array_equal(got, want)
        seen: dict[str, int] = {}
        assert got.tolist() == [0 if v is None else seen.setdefault(v, len(seen)) + 1 for v in part.to_pylist()]
