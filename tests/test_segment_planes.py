"""Segment format version 4: a LONG's values stored byte plane by byte plane (under LZ4 or zstd)
(``msqcore.kernels._planes``), and older versions still read (docs/segment-format.md)."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pyarrow as pa
import pytest
from conftest import no_bit_packed_ids, relabel_segment_version, written_before_version_4

from msqcore.errors import SegmentCorruptError
from msqcore.kernels import _planes
from msqcore.storage import segment
from msqcore.storage.segment import read_segment, validate_segment, write_segment


def _col(path, name) -> dict:
    with segment._open(str(path)) as seg:
        return next(c for c in seg.toc["columns"] if c["name"] == name)


# --- format version 4: a LONG's values in byte planes under LZ4 ----------------------------------------


def _planed_table(n: int) -> pa.Table:
    """``added``-like longs: mostly small, a few large (4-byte frame of reference), some nulls."""
    rng = np.random.default_rng(8)
    added = rng.geometric(0.01, n).astype(np.int64)
    added[rng.random(n) < 0.01] = 3_000_000
    return pa.table({"__time": np.arange(n, dtype=np.int64), "d": [f"v{i % 5}" for i in range(n)],
                     "added": pa.array(added, mask=rng.random(n) < 0.05)})


def test_byte_planes_round_trip(tmp_path):
    path = tmp_path / "p.seg"
    n = 150_000  # three blocks of values, the last one short
    table = _planed_table(n)
    write_segment(str(path), table, dimensions=["d"], metrics=["added"])
    col = _col(path, "added")
    assert col["parts"]["values"]["codec"] == "lz4" and col["parts"]["values"]["bytePlanes"] == col["valueWidth"]
    assert "codec" not in col["parts"]["validity"]
    validate_segment(str(path), full=True)
    assert read_segment(str(path)).equals(table)
    rows = np.array([0, 1, 65_535, 65_536, 100_000, 131_072, n - 1])
    assert read_segment(str(path), ["added"], rows=rows).column("added").equals(
        table.column("added").take(pa.array(rows)))


def test_lz4_planes_only_where_they_pack_well(tmp_path):
    """Three large values in random order: zstd's entropy coding packs them in about 2 bits a
    row, LZ4 (no entropy coding) not: they stay under zstd."""
    path = tmp_path / "r.seg"
    rng = np.random.default_rng(1)
    table = pa.table({"__time": np.arange(70_000, dtype=np.int64), "m": rng.choice([-2**62, 5, 2**62], 70_000)})
    write_segment(str(path), table, dimensions=[], metrics=["m"])
    assert "codec" not in _col(path, "m")["parts"]["values"]
    assert read_segment(str(path)).equals(table)


def test_zstd_byte_planes_where_they_pack_smaller_than_items(tmp_path):
    """``deleted``-like longs (60% zeros, the rest spread over 4 bytes): LZ4's planes are too
    large, and zstd packs the planes smaller than the items: planes under the file's zstd."""
    path = tmp_path / "z.seg"
    n = 150_000
    rng = np.random.default_rng(2)
    deleted = np.minimum(rng.lognormal(3.0, 2.0, n).astype(np.int64), 500_000)
    deleted[rng.random(n) < 0.6] = 0
    table = pa.table({"__time": np.arange(n, dtype=np.int64), "deleted": deleted})
    write_segment(str(path), table, dimensions=[], metrics=["deleted"])
    col = _col(path, "deleted")
    assert col["valueWidth"] == 4
    assert col["parts"]["values"]["bytePlanes"] == 4 and "codec" not in col["parts"]["values"]
    validate_segment(str(path), full=True)
    assert read_segment(str(path)).equals(table)
    rows = np.array([0, 65_535, 65_536, 131_072, n - 1])
    assert read_segment(str(path), ["deleted"], rows=rows).column("deleted").equals(
        table.column("deleted").take(pa.array(rows)))


def test_version_3_segments_stay_readable(tmp_path, monkeypatch):
    written_before_version_4(monkeypatch)
    path = tmp_path / "v3.seg"
    table = _planed_table(10_000)
    table = table.append_column("u", pa.array([f"user{i}" for i in range(10_000)]))  # rowLists
    write_segment(str(path), table, dimensions=["d", "u"], metrics=["added"])
    relabel_segment_version(path, 3)
    validate_segment(str(path), full=True)
    assert read_segment(str(path)).equals(table.select(["__time", "d", "u", "added"]))


def test_byte_planes_in_an_older_version_or_bad_are_refused(tmp_path, monkeypatch):
    no_bit_packed_ids(monkeypatch)
    path = tmp_path / "p.seg"
    write_segment(str(path), _planed_table(1_000), dimensions=["d"], metrics=["added"])
    raw = path.read_bytes()
    planes = b'"bytePlanes":%d' % _col(path, "added")["parts"]["values"]["bytePlanes"]
    for old, new, match in [(b'"version":5', b'"version":3', "own codec or byte planes in a version 3"),
                            (planes, b'"bytePlanes":3', "bad byte planes 3"),
                            (b'"codec":"lz4"', b'"codec":"lzo"', "unknown compression 'lzo'")]:
        toc_len = struct.unpack_from("<I", raw, 8)[0]
        toc = bytes(raw[32:32 + toc_len])
        assert old in toc
        toc = toc.replace(old, new)
        bad = bytearray(raw)
        bad[32:32 + toc_len] = toc
        struct.pack_into("<HII", bad, 6, 3 if b"version" in old else 5, toc_len, zlib.crc32(toc))
        path.write_bytes(bytes(bad))
        with pytest.raises(SegmentCorruptError, match=match):
            read_segment(str(path))


@pytest.mark.parametrize("width", [2, 3, 4, 8])  # 2, 4, 8 are joined as words, the others byte by byte
def test_planes_kernel(width):
    data = np.random.default_rng(width).integers(0, 256, 10 * width * 7 + 3 * width, dtype=np.uint8)
    planed = _planes.split(data, width, 10)
    items = data.reshape(-1, width)
    assert planed[:10 * width].tolist() == items[:10].T.reshape(-1).tolist()  # first block, plane by plane
    assert planed[-3 * width:].tolist() == items[-3:].T.reshape(-1).tolist()  # the short last block
    out = np.empty_like(data)
    for start in range(0, len(data), 10 * width):
        _planes.join(planed[start:start + 10 * width], width, out[start:start + 10 * width])
    assert out.tolist() == data.tolist()
    with pytest.raises(ValueError):
        _planes.split(data[:-1], width, 10)


def test_rows_in_distant_blocks(tmp_path):
    """A row selection that skips a whole block between its first and last leaves it compressed
    and still reads each selected row (values, validity, string ids)."""
    path = tmp_path / "s.seg"
    n = 200_000
    table = _planed_table(n)
    write_segment(str(path), table, dimensions=["d"], metrics=["added"])
    for rows in ([3, 65_535, 140_000, 199_999], [131_072, 131_073], [0, 199_999], [70_000]):
        rows = np.array(rows, dtype=np.int64)
        got = read_segment(str(path), ["d", "added"], rows=rows)
        assert got.equals(table.select(["d", "added"]).take(pa.array(rows)))


def test_lengths_and_counts_parts_in_byte_planes(tmp_path):
    """A dictionary's lengths, a rowLists column's counts and the bitmaps' lengths: uint32 items
    split into byte planes under the file's codec, joined back on reading."""
    path = tmp_path / "l.seg"
    n = 150_000
    rng = np.random.default_rng(4)
    table = pa.table({"__time": np.arange(n, dtype=np.int64),
                      "u": [f"user{i}" for i in rng.integers(0, n, n)],  # rowLists
                      "d": [f"{'x' * (i % 40)}{i}" for i in rng.integers(0, 3000, n)]})  # ids + bitmaps
    write_segment(str(path), table, dimensions=["u", "d"])
    u, d = _col(path, "u"), _col(path, "d")
    assert u["layout"] == "rowLists" and d["layout"] == "ids"
    for col, part in [(u, "dictLengths"), (u, "rowCounts"), (d, "dictLengths"), (d, "bitmapLengths")]:
        assert col["parts"][part]["bytePlanes"] == 4 and "codec" not in col["parts"][part]
    validate_segment(str(path), full=True)
    assert read_segment(str(path)).equals(table)
    index = segment.string_value_index(str(path), "d")
    value = table.column("d")[7].as_py()
    np.testing.assert_array_equal(index.rows(index.lookup([value])),
                                  np.flatnonzero(np.array(table.column("d").to_pylist()) == value))
