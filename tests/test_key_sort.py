"""The spill's key sort (``msqcore.kernels._sort.argsort_keys``, an MSD radix sort over cached
key words) against Python's stable ``sorted`` of the same bytes."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msqcore.engine.frames import encode_keys
from msqcore.kernels import _sort as KS


def _keys(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    return offsets, np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()


def _check(blobs: list[bytes]) -> None:
    order = KS.argsort_keys(*_keys(blobs))
    assert order.dtype == np.int64
    assert order.tolist() == sorted(range(len(blobs)), key=blobs.__getitem__)


def _random_blobs(rng, n: int, alphabet: bytes, max_len: int, prefix: bytes = b"") -> list[bytes]:
    lengths = rng.integers(0, max_len + 1, n)
    letters = np.frombuffer(alphabet, dtype=np.uint8)
    return [prefix + letters[rng.integers(0, len(letters), k)].tobytes() for k in lengths]


# Few distinct bytes, zero among them: many equal keys, keys that are prefixes of others, keys
# differing only by trailing zeros (``b"ab"`` and ``b"ab\0"`` have the same zero-padded word),
# and ranges large enough for the radix passes (the insertion sort takes fewer than 32 keys).
@pytest.mark.parametrize("n, alphabet, max_len, prefix", [
    (5_000, b"\x00\x01", 10, b""),
    (5_000, b"\x00\xff", 20, b""),
    (20_000, b"ab\x00", 6, b""),
    (20_000, b"\x00\x01\x02", 40, b"a long common prefix, longer than two words: "),
    (3_000, bytes(range(256)), 3, b""),
    (3_000, b"x", 50, b""),                     # only lengths differ: every key a prefix of the longer
])
def test_radix_ranges_match_sorted(n, alphabet, max_len, prefix):
    rng = np.random.default_rng(n + max_len)
    _check(_random_blobs(rng, n, alphabet, max_len, prefix))


def test_equal_and_empty_keys_keep_input_order():
    _check([b""] * 100 + [b"k"] * 100 + [b""] * 50)
    _check([b"same key, past sixteen bytes"] * 1000)
    _check([b""] * 1000)


def test_keys_with_16_byte_boundaries():
    # lengths around the cached words' ends (8, 16, 24 bytes) with equal bytes before them
    base = b"0123456789abcdefghijklmnopqrstuv"
    blobs = [base[:k] + tail for k in range(6, 27) for tail in (b"", b"\x00", b"\x00\x00", b"\x01", b"\xff")]
    _check(blobs * 3)


def test_sql_keys_of_a_shuffle_shape():
    # (time chunk, string, row number): the ingest shuffle's key; the chunk's 8 bytes are shared
    # by many rows, the strings share long prefixes
    rng = np.random.default_rng(7)
    n = 30_000
    t = pa.table({"chunk": pa.array(rng.integers(0, 3, n) * 86_400_000, pa.int64()),
                  "s": pa.array([None if i % 13 == 0 else f"#{x}.wikipedia" for i, x in
                                 enumerate(rng.choice(["en", "de", "fr", "e", "enn"], n))]),
                  "x": pa.array(rng.integers(-5, 5, n), pa.int64())})
    offsets, data = encode_keys(t, [("chunk", False), ("s", False), ("x", True)])
    blobs = [data[offsets[i]:offsets[i + 1]].tobytes() for i in range(n)]
    assert KS.argsort_keys(offsets, data).tolist() == sorted(range(n), key=blobs.__getitem__)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=3).map(lambda b: b * 7), min_size=30, max_size=400))
def test_repetitive_keys_match_sorted(blobs):
    _check(blobs)


def test_keys_not_starting_at_zero():
    # offsets into a larger buffer (a slice of concatenated keys)
    blobs = [b"b", b"a", b"ab", b"", b"a"] * 20
    offsets, data = _keys([b"junk"] + blobs)
    order = KS.argsort_keys(offsets[1:].copy(), data)
    assert order.tolist() == sorted(range(len(blobs)), key=blobs.__getitem__)
