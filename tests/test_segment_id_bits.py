"""Segment format version 5: the ids of a string column of at most 128 values bit-packed, 1 to 7
bits a row (``id_bits``, ``pack_id_bits``, ``unpack_id_bits``; docs/segment-format.md)."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pyarrow as pa
import pytest
from conftest import relabel_segment_version

from msqcore.errors import SegmentCorruptError
from msqcore.kernels import _segment as k
from msqcore.storage import segment
from msqcore.storage.segment import read_segment, string_value_index, validate_segment, write_segment


def _col(path, name) -> dict:
    with segment._open(str(path)) as seg:
        return next(c for c in seg.toc["columns"] if c["name"] == name)


@pytest.mark.parametrize("bits", range(1, 8))
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 64, 65, 65_536, 100_001])
def test_pack_id_bits_is_a_little_endian_bit_stream(bits, n):
    rng = np.random.default_rng(bits * 1000 + n)
    ids = rng.integers(0, 1 << bits, n).astype(np.int32)
    packed = k.pack_id_bits(ids, bits)
    want = np.packbits(((ids[:, None] >> np.arange(bits)) & 1).astype(np.uint8).ravel(), bitorder="little")
    assert packed.tobytes() == want.tobytes()
    np.testing.assert_array_equal(k.unpack_id_bits(packed, bits, n, 1 << bits), ids)
    if n:
        rows = rng.integers(0, n, 100)
        np.testing.assert_array_equal(k.unpack_id_bits(packed, bits, 0, 1 << bits, rows), ids[rows])


def test_id_bits_kernels_refuse_bad_input():
    assert [k.id_bits(c) for c in (0, 1, 2, 3, 4, 5, 64, 65, 128, 129)] == [1, 1, 1, 2, 2, 3, 6, 7, 7, 0]
    with pytest.raises(ValueError, match="id 4 at row 1 does not fit in 2 bit"):
        k.pack_id_bits(np.array([0, 4], np.int32), 2)
    packed = k.pack_id_bits(np.array([0, 1, 2, 3], np.int32), 2)
    with pytest.raises(ValueError, match="id 3 at row 3 is out of range for cardinality 3"):
        k.unpack_id_bits(packed, 2, 4, 3)
    with pytest.raises(ValueError, match="5 ids of 2 bit.s. need 2 bytes, got 1"):
        k.unpack_id_bits(packed, 2, 5, 4)
    with pytest.raises(ValueError, match="row 4 is outside the 4 ids"):
        k.unpack_id_bits(packed, 2, 0, 4, np.array([1, 4], np.int64))


@pytest.mark.parametrize("card", [1, 2, 3, 5, 16, 17, 100, 128, 129])
def test_low_cardinality_columns_round_trip_bit_packed(tmp_path, card):
    """Every width of 1 to 7 bits, nulls (the null entry is id 0), blocks of 65,536 rows (the
    last one short), whole and row-selective reads, the bitmap index."""
    n = 150_000
    rng = np.random.default_rng(card)
    values = np.array([f"v{i:03d}" for i in range(card)], dtype=object)[rng.integers(0, card, n)]
    valid = rng.random(n) > 0.05 if card > 1 else np.ones(n, bool)
    table = pa.table({"__time": np.arange(n, dtype=np.int64), "d": pa.array(values, pa.string(), mask=~valid)})
    path = tmp_path / "b.seg"
    write_segment(str(path), table, dimensions=["d"])
    col = _col(path, "d")
    bits = k.id_bits(col["cardinality"])
    if bits == 0:  # 128 values and the null entry
        assert bits == 0 and "idBits" not in col and col["parts"]["ids"]["size"] == n
    else:
        assert col["idBits"] == bits and col["parts"]["ids"]["size"] == (n * bits + 7) // 8
        assert col["parts"]["ids"]["blockSize"] == 65_536 * bits // 8
    validate_segment(str(path), full=True)
    assert read_segment(str(path)).equals(table)
    rows = np.unique(np.concatenate([[0, 65_535, 65_536, n - 1], rng.integers(0, n, 300)]))
    assert read_segment(str(path), ["d"], rows=rows).column("d").equals(table.column("d").take(pa.array(rows)))
    # rows in the first and last blocks only: the middle block stays compressed
    ends = np.array([3, 140_000, n - 2])
    assert read_segment(str(path), ["d"], rows=ends).column("d").equals(table.column("d").take(pa.array(ends)))
    index = string_value_index(str(path), "d")
    first = values[np.flatnonzero(valid)[0]]
    np.testing.assert_array_equal(index.rows(index.lookup([first])), np.flatnonzero(valid & (values == first)))


def _rewrite_toc(path, old: bytes, new: bytes, version: int | None = None) -> None:
    raw = bytearray(path.read_bytes())
    toc_len = struct.unpack_from("<I", raw, 8)[0]
    toc = bytes(raw[32:32 + toc_len])
    assert old in toc
    toc = toc.replace(old, new)
    raw[32:32 + toc_len] = toc
    struct.pack_into("<HII", raw, 6, version or segment.FORMAT_VERSION, toc_len, zlib.crc32(toc))
    path.write_bytes(bytes(raw))


def test_bad_or_misplaced_id_bits_are_refused(tmp_path):
    table = pa.table({"__time": np.arange(100, dtype=np.int64), "d": [f"v{i % 5}" for i in range(100)]})
    path = tmp_path / "b.seg"
    for old, new, version, match in [
        (b'"idBits":3', b'"idBits":4', None, "id bits 4 are not the bits 3 of cardinality 5"),
        (b'"version":5', b'"version":4', 4, "a version 4 segment with bit-packed ids"),
    ]:
        write_segment(str(path), table, dimensions=["d"])
        _rewrite_toc(path, old, new, version)
        with pytest.raises(SegmentCorruptError, match=match):
            read_segment(str(path))


def test_older_files_are_relabelled_only_without_bit_packed_ids(tmp_path):
    path = tmp_path / "b.seg"
    write_segment(str(path), pa.table({"__time": np.arange(100, dtype=np.int64), "d": ["a", "b"] * 50}), dimensions=["d"])
    with pytest.raises(AssertionError, match="no_bit_packed_ids"):
        relabel_segment_version(path, 4)


@pytest.mark.parametrize("table,bits,match", [
    (pa.table({"__time": np.arange(100, dtype=np.int64), "d": [f"v{i % 5}" for i in range(100)]}), "3",
     "id bits '3' are not the bits 3 of cardinality 5"),
    (pa.table({"__time": np.arange(10, dtype=np.int64), "u": [f"u{i}" for i in range(10)]}), 4,  # rowLists
     "a rowLists column with bit-packed ids"),
], ids=["not an int", "rowLists"])
def test_id_bits_that_are_not_an_int_or_on_a_row_lists_column_are_refused(tmp_path, monkeypatch, table, bits, match):
    path = tmp_path / "r.seg"
    encode = segment._encode_string
    monkeypatch.setattr(segment, "_encode_string", lambda *a: {**encode(*a), "idBits": bits})
    with pytest.raises(SegmentCorruptError, match=match):
        write_segment(str(path), table, dimensions=[table.column_names[1]])
        read_segment(str(path))


def test_row_selective_reads_take_any_rows_array(tmp_path):
    """A strided view and int32 rows read bit-packed ids like a fresh int64 array (a strided
    view once made a good file look corrupt: "ndarray is not C-contiguous")."""
    n = 150_000
    table = pa.table({"__time": np.arange(n, dtype=np.int64), "d": np.array(["a", "b", "c"])[np.arange(n) % 3]})
    path = tmp_path / "s.seg"
    write_segment(str(path), table, dimensions=["d"])
    assert _col(path, "d")["idBits"] == 2
    for rows in (np.arange(0, n, 7, dtype=np.int64)[::2], np.array([1, 70_000, n - 1], np.int32)):
        assert read_segment(str(path), ["d"], rows=rows).column("d").equals(table.column("d").take(pa.array(rows)))
