"""The Roaring kernel (msqcore.kernels._roaring) against pyroaring (CRoaring), both directions."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from msqcore.kernels import _roaring as r
from msqcore.kernels._segment import build_inverted_index

CASES = {
    "empty": [],
    "one": [7],
    "array": [1, 5, 9, 65_535],
    "array 4096": list(range(0, 8192, 2)),
    "bitmap 4097": list(range(0, 8194, 2)),
    "run": list(range(100, 100_000)),
    "run then array": list(range(4090, 4200)) + [70_000, 70_002],
    "full container": list(range(65_536)),
    "many containers": list(range(0, 1 << 22, 1000)),
    "top of uint32": [2**32 - 2, 2**32 - 1],
    "three run containers": [0, 1, 2, 65_536, 65_537, 131_072, 131_073],
    "four run containers (offsets)": [k * 65_536 + j for k in range(4) for j in range(3)],
}


def _ours(values) -> bytes:
    return r.serialize(np.array(values, dtype=np.uint32))


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_same_bytes_as_pyroaring(values):
    ours = _ours(values)
    assert ours == BitMap(values).serialize()
    assert list(BitMap.deserialize(ours)) == values
    assert r.deserialize(np.frombuffer(ours, np.uint8)).tolist() == values


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_reads_pyroaring_bitmaps_without_run_optimization(values):
    data = BitMap(values, optimize=False).serialize()  # cookie 12346, array/bitmap containers
    assert r.deserialize(np.frombuffer(data, np.uint8)).tolist() == values


def test_cookies_and_container_kinds():
    assert struct.unpack_from("<I", _ours([1, 5]))[0] == 12346
    run = _ours(list(range(10)))
    assert struct.unpack_from("<HH", run) == (12347, 0)  # cookie, containers - 1
    assert run[4] == 1  # the run-container bitset
    assert len(_ours(list(range(0, 10_000, 2)))) == 8 + 8 + 8192  # one bitmap container


_sets = st.lists(st.one_of(st.integers(0, 70_000), st.integers(0, 2**32 - 1)), max_size=300).map(sorted)


@settings(max_examples=200, deadline=None)
@given(values=_sets, runs=st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 9000)), max_size=3))
def test_round_trip_property(values, runs):
    s = set(values)
    for start, length in runs:
        s.update(range(start, start + length))
    values = sorted(s)
    ours = _ours(values)
    assert ours == BitMap(values).serialize()
    assert r.deserialize(np.frombuffer(BitMap(values).serialize(), np.uint8)).tolist() == values


def test_serialize_csr_matches_one_by_one():
    rng = np.random.default_rng(0)
    groups = [np.unique(rng.integers(0, 1 << 18, rng.integers(0, 5000))).astype(np.uint32) for _ in range(50)]
    offsets = np.concatenate([[0], np.cumsum([len(g) for g in groups])]).astype(np.int64)
    data, byte_offsets = r.serialize_csr(offsets, np.concatenate(groups))
    for k, g in enumerate(groups):
        assert data[byte_offsets[k]:byte_offsets[k + 1]].tobytes() == BitMap(g.tolist()).serialize()
    which = np.array([3, 0, 49], np.int64)
    got_offsets, got = r.decode_bitmaps(data, byte_offsets, which)
    assert np.diff(got_offsets).tolist() == [len(groups[k]) for k in which]
    np.testing.assert_array_equal(got, np.concatenate([groups[k] for k in which]))


def test_serialize_rejects_unsorted_values():
    with pytest.raises(ValueError, match="not strictly ascending"):
        r.serialize(np.array([3, 2], np.uint32))
    with pytest.raises(ValueError, match="not strictly ascending"):
        r.serialize(np.array([3, 3], np.uint32))


@pytest.mark.parametrize("mutate,match", [
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\0", "trailing bytes"),
    (lambda b: b"\x00\x00" + b[2:], "bad cookie"),
    (lambda b: b[:2], "truncated"),
])
def test_malformed_bitmaps_are_refused(mutate, match):
    data = mutate(BitMap([1, 2, 100, 70_000]).serialize())
    with pytest.raises(ValueError, match=match):
        r.deserialize(np.frombuffer(data, np.uint8))


def test_inconsistent_containers_are_refused():
    array = bytearray(BitMap([5, 9]).serialize())  # 12346, 1 container, array [5, 9] at offset 16
    array[16:20] = struct.pack("<HH", 9, 5)
    with pytest.raises(ValueError, match="container contents"):
        r.deserialize(np.frombuffer(bytes(array), np.uint8))
    bitmap = bytearray(BitMap(list(range(0, 10_000, 2)), optimize=False).serialize())
    bitmap[20] ^= 0x02  # one more bit than the header's cardinality
    with pytest.raises(ValueError, match="container contents"):
        r.deserialize(np.frombuffer(bytes(bitmap), np.uint8))
    keys = bytearray(BitMap([1, 70_000]).serialize())
    keys[8:10], keys[12:14] = keys[12:14], keys[8:10]  # container keys out of order
    with pytest.raises(ValueError, match="keys are not strictly ascending"):
        r.deserialize(np.frombuffer(bytes(keys), np.uint8))


def test_limit():
    data = np.frombuffer(BitMap([1, 10]).serialize(), np.uint8)
    assert r.deserialize(data, 11).tolist() == [1, 10]
    with pytest.raises(ValueError, match="out of range"):
        r.deserialize(data, 10)


def _row_list_bitmaps(ids: np.ndarray, card: int):
    offsets, rows = build_inverted_index(ids, card)
    return r.serialize_csr(offsets, rows.view(np.uint32))


@pytest.mark.parametrize("n", [0, 1, 65_535, 65_536, 65_537, 300_000])
@pytest.mark.parametrize("card,pattern", [(1, "random"), (2, "random"), (2, "skewed"), (3, "sorted"),
                                          (50, "random"), (50, "runs"), (3000, "random")])
def test_serialize_ids_is_serialize_csr_of_the_row_lists(n, card, pattern):
    """Bitmaps built straight from ids: the bytes of row lists then ``serialize_csr`` (array, bitmap
    and run containers; containers cut at every 65,536 rows; ids with no rows at all)."""
    rng = np.random.default_rng(n + card)
    ids = rng.integers(0, card, n)
    if pattern == "skewed":
        ids = (rng.random(n) < 0.03).astype(np.int64)  # one id's containers are arrays, the other's bitmaps
    elif pattern == "sorted":
        ids = np.sort(ids)  # run containers
    elif pattern == "runs":
        ids = np.repeat(rng.integers(0, card, n // 100 + 1), 100)[:n]
    ids = ids.astype(np.int32)
    data, offsets = r.serialize_ids(ids, card)
    want_data, want_offsets = _row_list_bitmaps(ids, card)
    np.testing.assert_array_equal(offsets, want_offsets)
    assert data.tobytes() == want_data.tobytes()
    for k in {0, card - 1}:
        assert data[offsets[k]:offsets[k + 1]].tobytes() == BitMap(np.flatnonzero(ids == k).tolist()).serialize()


def test_serialize_ids_rejects_ids_outside_the_cardinality():
    for bad in (-1, 3):
        with pytest.raises(ValueError, match=f"id {bad} at row 1 is out of range"):
            r.serialize_ids(np.array([0, bad, 1], np.int32), 3)
