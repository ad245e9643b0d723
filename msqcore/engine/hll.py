"""Druid's ``cardinality``/``hyperUnique`` aggregation state (HyperLogLogCollector) over Arrow
arrays, on top of the ``_hll`` kernels: hash a column into per-group collectors, fold
serialized collectors, estimate.

A collector travels between stages, and is stored in segments, as Druid serializes it
(``toByteArray``): an Arrow ``binary`` value.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.kernels import _hll

# Java's Double.doubleToLongBits folds every NaN into this one.
_CANONICAL_NAN = np.int64(0x7FF8000000000000)


def _valid(values: pa.Array) -> np.ndarray:
    return pc.is_valid(values).to_numpy(zero_copy_only=False).astype(np.uint8)


def _buffers(values: pa.Array, type_: pa.DataType) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64[n + 1], data uint8) of a string/binary array as its large type."""
    large = values.cast(type_)
    offsets = np.frombuffer(large.buffers()[1], dtype=np.int64)[large.offset: large.offset + len(large) + 1]
    data = large.buffers()[2]
    return np.ascontiguousarray(offsets), (np.frombuffer(data, dtype=np.uint8) if data is not None
                                           else np.zeros(0, dtype=np.uint8))


def add_values(regs: np.ndarray, gid: np.ndarray, values: pa.Array | pa.ChunkedArray) -> None:
    """Hash each non-null value into ``regs[gid]`` as CardinalityAggregator's column
    strategy for its type does."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    gid = np.ascontiguousarray(gid, dtype=np.int64)
    valid = _valid(values)
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        offsets, data = _buffers(values, pa.large_string())
        _hll.add_strings(regs, gid, offsets, data, valid)
    elif pa.types.is_float32(t):
        bits = pc.fill_null(values, 0).to_numpy(zero_copy_only=False).astype(np.float32)
        ints = bits.view(np.int32).copy()
        ints[np.isnan(bits)] = np.int32(0x7FC00000)  # Float.floatToIntBits of NaN
        _hll.add_ints(regs, gid, ints, valid)
    elif pa.types.is_floating(t):
        doubles = pc.fill_null(values, 0).to_numpy(zero_copy_only=False).astype(np.float64)
        longs = doubles.view(np.int64).copy()
        longs[np.isnan(doubles)] = _CANONICAL_NAN
        _hll.add_longs(regs, gid, longs, valid)
    else:  # LONG, TIMESTAMP millis, BOOLEAN as 0/1
        longs = pc.fill_null(values.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        _hll.add_longs(regs, gid, np.ascontiguousarray(longs, dtype=np.int64), valid)


def to_binary(regs: np.ndarray) -> pa.Array:
    """Each collector serialized as Druid's toByteArray()."""
    offsets, data = _hll.serialize(regs)
    return pa.Array.from_buffers(pa.large_binary(), len(regs), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def fold_binary(regs: np.ndarray, gid: np.ndarray, states: pa.Array | pa.ChunkedArray) -> None:
    """Fold serialized collectors into ``regs[gid]`` (nulls and empty values skipped)."""
    if isinstance(states, pa.ChunkedArray):
        states = states.combine_chunks() if states.num_chunks else pa.array([], pa.large_binary())
    if len(states) == 0:
        return
    offsets, data = _buffers(states, pa.large_binary())
    _hll.fold_serialized(regs, np.ascontiguousarray(gid, dtype=np.int64), offsets, data, _valid(states))


def estimate(regs: np.ndarray, round_: bool = True) -> pa.Array:
    """estimateCardinality() per collector; ``round_`` as the SQL layer's ``round: true``
    (Math.round → BIGINT)."""
    out = np.empty(len(regs), dtype=np.float64)
    _hll.estimate(regs, out)
    if round_:
        return pa.array(np.floor(out + 0.5).astype(np.int64))
    return pa.array(out)


def new(groups: int) -> np.ndarray:
    return _hll.new_collectors(groups)
