"""Hash partitioning for ``hash`` shuffles (sort-merge join inputs): a row's partition
depends only on its key values, so every worker process sends equal keys to the same
partition. Vectorized in numpy; uint64 arithmetic wraps, which is what a hash wants.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing's multiplier
_BASE = np.uint64(1099511628211)  # FNV's prime, as the polynomial base for strings


def partitions_of(keys: list[pa.ChunkedArray | pa.Array], partitions: int) -> np.ndarray:
    """The partition (0 … partitions - 1) of each row. Rows with a null key part go to 0:
    they match nothing, and each is kept once."""
    n = len(keys[0]) if keys else 0
    if partitions <= 1 or n == 0:
        return np.zeros(n, dtype=np.int64)
    h = np.zeros(n, dtype=np.uint64)
    null = np.zeros(n, dtype=bool)
    with np.errstate(over="ignore"):
        for key in keys:
            arr = key.combine_chunks() if isinstance(key, pa.ChunkedArray) else key
            null |= np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False), dtype=bool)
            h = h * _BASE + _hash_array(arr)
        h = (h * _MIX) >> np.uint64(32)
    out = (h % np.uint64(partitions)).astype(np.int64)
    out[null] = 0
    return out


def _hash_array(arr: pa.Array) -> np.ndarray:
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_binary(arr.type):
        return _hash_strings(arr)
    if pa.types.is_floating(arr.type):
        values = pc.fill_null(pc.cast(arr, pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        values = np.where(values == 0.0, 0.0, values)  # -0.0 equals 0.0
        return values.view(np.uint64)
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.int64())
    values = pc.fill_null(pc.cast(arr, pa.int64()), 0).to_numpy(zero_copy_only=False)
    return values.astype(np.int64).view(np.uint64)


def _hash_strings(arr: pa.Array) -> np.ndarray:
    """Polynomial hash of each string's bytes: sum of byte[i] * BASE^(len - 1 - i)."""
    arr = pc.fill_null(arr.cast(pa.large_binary()), b"")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else \
        np.zeros(0, dtype=np.uint8)
    start, end = offsets[:-1], offsets[1:]
    lengths = end - start
    out = np.zeros(len(arr), dtype=np.uint64)
    if not lengths.sum():
        return out
    chars = data[offsets[0]: offsets[-1]].astype(np.uint64)
    # position of each byte counted from its string's end, for the power of BASE it gets
    owner = np.repeat(np.arange(len(arr)), lengths)
    from_end = (end[owner] - offsets[0]) - 1 - np.arange(len(chars))
    powers = np.cumprod(np.concatenate([[np.uint64(1)], np.full(int(lengths.max()) - 1, _BASE, dtype=np.uint64)]))
    weighted = chars * powers[from_end]
    nonempty = lengths > 0
    out[nonempty] = np.add.reduceat(weighted, (start - offsets[0])[nonempty])
    return out
