"""The string sort of the segment writer (``_segment.sort_strings``, ``sorted_dictionary_of_rows``)
against references: Python's ``sorted`` on bytes and Arrow's stable ``sort_indices``.

The sort must give unsigned byte order, a prefix before the longer strings, and keep equal
strings in their given order (the rows of a dictionary entry ascending): the segment's bytes
depend on all three.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msqcore.kernels import _segment as k
from msqcore.storage import segment


def _expected_order(values: list[bytes]) -> list[int]:
    return sorted(range(len(values)), key=lambda i: (values[i], i))


def _check_sort(values: list[bytes]) -> None:
    arr = pa.array(values, pa.binary())
    offsets, data = segment._string_buffers(arr)
    order = np.arange(len(values), dtype=np.int32)
    k.sort_strings(offsets, data, order)
    assert order.tolist() == _expected_order(values)
    if values:
        assert order.tolist() == pc.sort_indices(arr).to_pylist()  # Arrow's sort is stable too


def _check_rows(values: list[bytes | None]) -> None:
    """``sorted_dictionary_of_rows`` against a dictionary, ids and row lists built in Python."""
    arr = pa.array(values, pa.binary())
    valid = pc.is_valid(arr).to_numpy(zero_copy_only=False).view(np.uint8) if arr.null_count else None
    offsets, data, ids, index_offsets, index_rows, has_null = k.sorted_dictionary_of_rows(
        *segment._string_buffers(arr), valid)
    has_nulls = any(v is None for v in values)
    entries = ([b""] if has_nulls else []) + sorted({v for v in values if v is not None})
    id_of = {v: i + has_nulls for i, v in enumerate(entries[has_nulls:])}
    expected_ids = [0 if v is None else id_of[v] for v in values]
    assert has_null == has_nulls
    assert [bytes(data[offsets[i]:offsets[i + 1]]) for i in range(len(offsets) - 1)] == entries
    assert ids.tolist() == expected_ids
    expected_offsets, expected_rows = k.build_inverted_index(np.array(expected_ids, np.int32), len(entries))
    assert index_offsets.tolist() == expected_offsets.tolist()
    assert index_rows.tolist() == expected_rows.tolist()


def _generated(kind: str, n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    if kind == "all_equal":
        return [b"one value longer than sixteen bytes"] * n
    if kind == "all_distinct":
        return [f"https://xx.wikipedia.org/w/index.php?diff={700_000_000 + i}".encode() for i in rng.permutation(n)]
    if kind == "long_prefix":  # equal over 16, 24, 40 bytes, then a few values, some prefixes of others
        prefixes = [b"p" * 17, b"p" * 24, b"q" * 40]
        return [prefixes[rng.integers(3)] + bytes(rng.integers(0, 3, rng.integers(0, 4)).astype(np.uint8))
                for _ in range(n)]
    if kind == "skip":  # a long common part after 16 bytes, which a few strings do not share or end in
        def one(i):
            s = b"h" * 16 + b"y" * 20 + str(int(rng.integers(0, 1000))).encode()
            if i % 97 == 5:
                return s[:16 + int(rng.integers(1, 30))]
            if i % 89 == 7:
                j = 16 + int(rng.integers(0, 20))
                return s[:j] + bytes([int(rng.integers(0, 256))]) + s[j + 1:]
            return s
        return [one(i) for i in range(n)]
    if kind == "zeros":  # strings differing only by trailing zero bytes across the 8-byte steps
        return [b"a" + b"\x00" * int(rng.integers(0, 20)) for _ in range(n)]
    if kind == "non_ascii":
        letters = ["é", "😀", "\uffff", "a", "ß", "z", ""]
        return ["".join(rng.choice(letters, rng.integers(0, 6))).encode() for _ in range(n)]
    if kind == "bytes":  # arbitrary bytes, 0xff and 0x00 included, around the 8- and 16-byte steps
        return [rng.integers(0, 256, rng.choice([0, 1, 7, 8, 9, 15, 16, 17, 24]), dtype=np.uint8).tobytes()
                for _ in range(n)]
    if kind == "few":  # many repeats of few values, empty strings among them
        pool = [b"", b"a", b"ab", b"b", b"a\x00", b"abcdefgh", b"abcdefghi", b"abcdefgh\x00"]
        return [pool[i] for i in rng.integers(0, len(pool), n)]
    raise ValueError(kind)


KINDS = ["all_equal", "all_distinct", "long_prefix", "skip", "zeros", "non_ascii", "bytes", "few"]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 31, 32, 33, 300, 5000])
@pytest.mark.parametrize("kind", KINDS)
def test_sort_strings_is_stable_byte_order(kind, n):
    _check_sort(_generated(kind, n, seed=n))


@pytest.mark.parametrize("n", [0, 1, 2, 33, 5000])
@pytest.mark.parametrize("kind", KINDS)
def test_sorted_dictionary_of_rows_matches_python(kind, n):
    values: list[bytes | None] = list(_generated(kind, n, seed=n + 1))
    _check_rows(values)
    rng = np.random.default_rng(n)
    _check_rows([None if rng.random() < 0.1 else v for v in values])


def test_only_nulls_and_empty_strings():
    _check_rows([None])
    _check_rows([None, None, b""])
    _check_rows([b"", b"", None, b""])


_strings = st.binary(max_size=40) | st.sampled_from([b"", b"x" * 8, b"x" * 16, b"x" * 17, b"x" * 8 + b"\x00"])


@given(st.lists(_strings, max_size=300))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_sort_strings_property(values):
    _check_sort(values)


@given(st.lists(st.none() | _strings, max_size=300))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_sorted_dictionary_of_rows_property(values):
    _check_rows(values)


def test_sort_of_a_subset_of_the_strings():
    # sort_strings sorts the ids it is given, which need not be all the strings
    values = [b"d", b"b", b"a", b"c", b"b"]
    offsets, data = segment._string_buffers(pa.array(values, pa.binary()))
    order = np.array([4, 0, 1, 3], np.int32)
    k.sort_strings(offsets, data, order)
    assert order.tolist() == [4, 1, 3, 0]


def test_prefix_chains_and_long_equal_strings():
    # each string a prefix of the next (the radix sort recurses on the smaller parts only), and
    # many copies of one long string (its common part is skipped, not sorted 8 bytes a level)
    chain = [b"a" * i for i in range(3000)]
    _check_sort(chain[::-1])
    _check_sort([b"x" * 5000] * 2000 + [b"x" * 4999 + b"y", b"x" * 5001])
    _check_rows([b"u" * 300 + bytes([i % 3]) for i in range(4000)])


def test_sorts_reuse_the_kept_scratch_safely():
    # the sort's scratch is kept per thread between sorts: a larger sort after a smaller one
    # (a new block), a smaller one after it (the kept block, with a larger one's items left
    # in it), and sorts on several threads at once all give the same results as alone
    sizes = [5000, 40_000, 300, 40_000, 2]
    columns = [_generated(kind, n, seed=i) for i, (kind, n) in
               enumerate(zip(["skip", "all_distinct", "few", "bytes", "long_prefix"], sizes))]
    for values in columns:
        _check_sort(values)
        _check_rows(values)
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda values: (_check_sort(values), _check_rows(values)), columns * 2))


def test_lengths():
    offsets = np.array([0, 0, 3, 10, 10, 2**32 + 10], np.int64)
    assert k.lengths(offsets[:5]).tolist() == [0, 3, 7, 0]
    assert k.lengths(offsets[:5]).dtype == np.uint32
    assert k.lengths(np.zeros(1, np.int64)).tolist() == []
    with pytest.raises(ValueError, match="not a uint32"):
        k.lengths(offsets)  # the last length, 2**32, needs 33 bits
    assert k.lengths(offsets - np.array([0, 0, 0, 0, 0, 1])).tolist()[-1] == 2**32 - 1
    with pytest.raises(ValueError, match="not a uint32"):
        k.lengths(np.array([0, 5, 4], np.int64))  # offsets decrease
    with pytest.raises(ValueError, match="at least one entry"):
        k.lengths(np.zeros(0, np.int64))
