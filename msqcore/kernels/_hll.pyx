# cython: language_level=3
"""Druid's HyperLogLogCollector (druid-hll, version 1) and the hashing its ``cardinality``
aggregator feeds it, over whole arrays.

A collector is a dense 1031-byte row: a 7-byte header (version 1, registerOffset,
numNonZeroRegisters as a big-endian short, maxOverflowValue, maxOverflowRegister as a
big-endian short) and 2048 four-bit registers, two per byte, the even bucket in the upper
nibble. ``add``, ``fold``, ``decrementBuckets`` and the estimate follow
AbstractHyperLogLogCollector step by step, so the numbers are Druid's. Values are hashed
with Guava's ``murmur3_128`` (seed 0) the way CardinalityAggregator's column strategies
hash them: strings as UTF-16 code units (``hashUnencodedChars``), longs and doubles as 8
little-endian bytes (doubles through ``doubleToLongBits``), floats as 4
(``floatToIntBits``). Nulls are skipped (SQL-compatible null handling).
"""
from libc.math cimport log, INFINITY
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

import numpy as np

cdef enum:
    NUM_BUCKETS = 2048
    NUM_BYTES_FOR_BUCKETS = 1024
    HEADER = 7
    DENSE_SIZE = 1031
    RANGE = 15
    DENSE_THRESHOLD = 128

cdef double TWO_TO_THE_SIXTY_FOUR = 18446744073709551616.0
cdef double ALPHA = 0.7213 / (1 + 1.079 / NUM_BUCKETS)
cdef double LOW_CORRECTION_THRESHOLD = (5 * NUM_BUCKETS) / 2.0
cdef double HIGH_CORRECTION_THRESHOLD = TWO_TO_THE_SIXTY_FOUR / 30.0
cdef double CORRECTION_PARAMETER = ALPHA * NUM_BUCKETS * NUM_BUCKETS

DENSE_BYTES = DENSE_SIZE


# --- murmur3_x64_128 (Guava's Murmur3_128HashFunction, seed 0) ------------------------------

cdef inline uint64_t _rotl(uint64_t x, int r) noexcept nogil:
    return (x << r) | (x >> (64 - r))


cdef inline uint64_t _fmix(uint64_t k) noexcept nogil:
    k ^= k >> 33
    k *= 0xff51afd7ed558ccdULL
    k ^= k >> 33
    k *= 0xc4ceb9fe1a85ec53ULL
    k ^= k >> 33
    return k


cdef inline uint64_t _load64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v |= (<uint64_t>p[i]) << (8 * i)
    return v


cdef void murmur3_128(const uint8_t* data, Py_ssize_t n, uint64_t* out1, uint64_t* out2) noexcept nogil:
    cdef uint64_t h1 = 0, h2 = 0, k1, k2
    cdef uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL
    cdef Py_ssize_t blocks = n // 16, i
    cdef const uint8_t* tail
    cdef int rem
    for i in range(blocks):
        k1 = _load64(data + 16 * i)
        k2 = _load64(data + 16 * i + 8)
        k1 *= c1; k1 = _rotl(k1, 31); k1 *= c2; h1 ^= k1
        h1 = _rotl(h1, 27); h1 += h2; h1 = h1 * 5 + 0x52dce729
        k2 *= c2; k2 = _rotl(k2, 33); k2 *= c1; h2 ^= k2
        h2 = _rotl(h2, 31); h2 += h1; h2 = h2 * 5 + 0x38495ab5
    tail = data + blocks * 16
    rem = n & 15
    k1 = 0
    k2 = 0
    if rem > 8:
        for i in range(rem - 1, 7, -1):
            k2 ^= (<uint64_t>tail[i]) << (8 * (i - 8))
        k2 *= c2; k2 = _rotl(k2, 33); k2 *= c1; h2 ^= k2
    if rem > 0:
        for i in range(min(rem, 8) - 1, -1, -1):
            k1 ^= (<uint64_t>tail[i]) << (8 * i)
        k1 *= c1; k1 = _rotl(k1, 31); k1 *= c2; h1 ^= k1
    h1 ^= <uint64_t>n
    h2 ^= <uint64_t>n
    h1 += h2
    h2 += h1
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 += h2
    h2 += h1
    out1[0] = h1
    out2[0] = h2


# --- the collector ---------------------------------------------------------------------------

cdef inline int _get_short(const uint8_t* buf, int at) noexcept nogil:
    return <int16_t>(((<uint16_t>buf[at]) << 8) | buf[at + 1])


cdef inline void _set_short(uint8_t* buf, int at, int value) noexcept nogil:
    buf[at] = (value >> 8) & 0xff
    buf[at + 1] = value & 0xff


cdef inline int _signed(uint8_t b) noexcept nogil:
    return <int>(<signed char>b)


cdef int _decrement_buckets(uint8_t* buf) noexcept nogil:
    cdef int i, count = 0
    cdef uint8_t val
    for i in range(HEADER, DENSE_SIZE):
        val = <uint8_t>(buf[i] - 0x11)
        if val & 0xf0:
            count += 1
        if val & 0x0f:
            count += 1
        buf[i] = val
    return count


cdef int _add_nibble(uint8_t* buf, int bucket, int position_of_1) noexcept nogil:
    cdef int nnz = _get_short(buf, 2)
    cdef int position = HEADER + (bucket >> 1)
    cdef bint upper = (bucket & 1) == 0
    cdef uint8_t shifted = <uint8_t>((position_of_1 << 4) if upper else position_of_1)
    cdef uint8_t orig = buf[position]
    cdef uint8_t new_mask = 0xf0 if upper else 0x0f
    cdef uint8_t keep_mask = new_mask ^ 0xff
    cdef uint8_t mine = orig & new_mask
    if mine == 0 and shifted != 0:
        nnz += 1
    buf[position] = (mine if mine > shifted else shifted) | (orig & keep_mask)
    return nnz


cdef void _add(uint8_t* buf, int bucket, int position_of_1) noexcept nogil:
    """AbstractHyperLogLogCollector.add(short bucket, byte positionOf1)."""
    cdef int offset = _signed(buf[1])
    cdef int curr_max, nnz
    if position_of_1 <= offset:
        return
    if position_of_1 > offset + RANGE:
        curr_max = _signed(buf[4])
        if position_of_1 > curr_max:
            if curr_max <= offset + RANGE:
                _add(buf, _get_short(buf, 5), curr_max)
            buf[4] = <uint8_t>position_of_1
            _set_short(buf, 5, bucket)
        return
    nnz = _add_nibble(buf, bucket, position_of_1 - offset)
    _set_short(buf, 2, nnz)
    if nnz == NUM_BUCKETS:
        buf[1] = <uint8_t>(offset + 1)
        _set_short(buf, 2, _decrement_buckets(buf))


cdef inline void _add_hash(uint8_t* buf, uint64_t h1, uint64_t h2) noexcept nogil:
    """add(byte[] hashedValue) for Guava's 16 little-endian hash bytes: the bucket is the
    big-endian short of bytes 14-15, positionOf1 the lowest set bit of bytes 0-7, 1-based."""
    cdef int bucket = <int>((((h2 >> 48) & 0xff) << 8) | ((h2 >> 56) & 0xff)) & 0x7ff
    cdef int position_of_1 = 64
    if h1 != 0:
        position_of_1 = 1
        while not (h1 & 1):
            h1 >>= 1
            position_of_1 += 1
    _add(buf, bucket, position_of_1)


cdef inline void _init(uint8_t* buf) noexcept nogil:
    memset(buf, 0, DENSE_SIZE)
    buf[0] = 1


cdef int _to_dense(const uint8_t* src, Py_ssize_t n, uint8_t* dst) noexcept nogil:
    """A serialized version-1 collector (dense, or sparse ``(short index, byte)`` entries)
    as a dense row; -1 when it is neither."""
    cdef Py_ssize_t i
    cdef int index
    if n == DENSE_SIZE:
        memcpy(dst, src, DENSE_SIZE)
        return 0
    if n < HEADER or (n - HEADER) % 3 != 0 or src[0] != 1:
        return -1
    _init(dst)
    memcpy(dst, src, HEADER)
    for i in range(HEADER, n, 3):
        index = ((<int>src[i]) << 8) | src[i + 1]
        if index < HEADER or index >= DENSE_SIZE:
            return -1
        dst[index] = src[i + 2]
    return 0


cdef int _merge_byte(uint8_t* buf, int position, int offset_diff, uint8_t byte_to_add) noexcept nogil:
    cdef int upper, lower, other_upper, other_lower, new_upper, new_lower, changed = 0
    if byte_to_add == 0:
        return 0
    upper = buf[position] & 0xf0
    lower = buf[position] & 0x0f
    other_upper = (byte_to_add & 0xf0) - (offset_diff << 4)
    other_lower = (byte_to_add & 0x0f) - offset_diff
    new_upper = upper if upper > other_upper else other_upper
    new_lower = lower if lower > other_lower else other_lower
    buf[position] = <uint8_t>((new_upper | new_lower) & 0xff)
    if upper == 0 and new_upper > 0:
        changed += 1
    if lower == 0 and new_lower > 0:
        changed += 1
    return changed


cdef void _fold(uint8_t* buf, uint8_t* other) noexcept nogil:
    """AbstractHyperLogLogCollector.fold: merge dense ``other`` into ``buf`` (``other`` is
    scratch space and may be overwritten)."""
    cdef uint8_t tmp[DENSE_SIZE]
    cdef int my_offset, other_offset, nnz, i
    if _signed(buf[1]) < _signed(other[1]):
        # fold into the one with the higher offset
        memcpy(tmp, buf, DENSE_SIZE)
        memcpy(buf, other, DENSE_SIZE)
        memcpy(other, tmp, DENSE_SIZE)
    my_offset = _signed(buf[1])
    other_offset = _signed(other[1])
    nnz = _get_short(buf, 2)
    for i in range(HEADER, DENSE_SIZE):
        nnz += _merge_byte(buf, i, my_offset - other_offset, other[i])
    if nnz == NUM_BUCKETS:
        nnz = _decrement_buckets(buf)
        buf[1] = <uint8_t>(my_offset + 1)
    _set_short(buf, 2, nnz)
    _add(buf, _get_short(other, 5), _signed(other[4]))


cdef double _apply_correction(double e, int zero_count) noexcept nogil:
    e = CORRECTION_PARAMETER / e
    if e <= LOW_CORRECTION_THRESHOLD:
        return e if zero_count == 0 else NUM_BUCKETS * log(NUM_BUCKETS / <double>zero_count)
    if e > HIGH_CORRECTION_THRESHOLD:
        if e / TWO_TO_THE_SIXTY_FOUR >= 1:
            return INFINITY
        return -TWO_TO_THE_SIXTY_FOUR * log(1 - e / TWO_TO_THE_SIXTY_FOUR)
    return e


cdef double _pow2_neg(int k) noexcept nogil:
    # 1.0d / Math.pow(2, k): exact for the exponents a register can hold
    cdef double v = 1.0
    cdef int j
    for j in range(k):
        v *= 0.5
    return v


cdef double _estimate(const uint8_t* buf) noexcept nogil:
    """estimateDense, summing the registers in Druid's order."""
    cdef int min_num = _signed(buf[1])
    cdef int overflow_value = _signed(buf[4])
    cdef int overflow_register = _get_short(buf, 5)
    cdef int overflow_position = <int16_t>(overflow_register >> 1)
    cdef bint overflow_upper = (overflow_register & 1) == 0
    cdef double e = 0.0
    cdef int zero_count = 0, position, register, upper, lower
    for position in range(NUM_BYTES_FOR_BUCKETS):
        register = buf[HEADER + position]
        upper = ((register & 0xf0) >> 4) + min_num
        lower = (register & 0x0f) + min_num
        if overflow_value != 0 and position == overflow_position:
            if overflow_upper:
                upper = upper if upper > overflow_value else overflow_value
            else:
                lower = lower if lower > overflow_value else overflow_value
            e += _pow2_neg(upper) + _pow2_neg(lower)
            zero_count += (1 if (upper & 0xf0) == 0 else 0) + (1 if (lower & 0x0f) == 0 else 0)
        else:
            e += _pow2_neg(upper) + _pow2_neg(lower)
            zero_count += (1 if (register & 0xf0) == 0 else 0) + (1 if (register & 0x0f) == 0 else 0)
    return _apply_correction(e, zero_count)


# --- array kernels ---------------------------------------------------------------------------

def new_collectors(Py_ssize_t n):
    """``n`` empty dense collectors: a (n, 1031) uint8 array."""
    out = np.zeros((n, DENSE_SIZE), dtype=np.uint8)
    out[:, 0] = 1
    return out


def add_longs(uint8_t[:, ::1] regs, const int64_t[::1] gid, const int64_t[::1] values,
              const uint8_t[::1] valid) -> None:
    """Hash 8-byte values (longs; doubles as their doubleToLongBits) into regs[gid]."""
    cdef Py_ssize_t i, n = values.shape[0]
    cdef uint64_t h1, h2, v
    cdef uint8_t b[8]
    cdef int j
    with nogil:
        for i in range(n):
            if not valid[i]:
                continue
            v = <uint64_t>values[i]
            for j in range(8):
                b[j] = (v >> (8 * j)) & 0xff
            murmur3_128(b, 8, &h1, &h2)
            _add_hash(&regs[gid[i], 0], h1, h2)


def add_ints(uint8_t[:, ::1] regs, const int64_t[::1] gid, const int32_t[::1] values,
             const uint8_t[::1] valid) -> None:
    """Hash 4-byte values (floats as their floatToIntBits) into regs[gid]."""
    cdef Py_ssize_t i, n = values.shape[0]
    cdef uint64_t h1, h2
    cdef uint32_t v
    cdef uint8_t b[4]
    cdef int j
    with nogil:
        for i in range(n):
            if not valid[i]:
                continue
            v = <uint32_t>values[i]
            for j in range(4):
                b[j] = (v >> (8 * j)) & 0xff
            murmur3_128(b, 4, &h1, &h2)
            _add_hash(&regs[gid[i], 0], h1, h2)


cdef Py_ssize_t _utf16le(const uint8_t* s, Py_ssize_t n, uint8_t* out) noexcept nogil:
    """UTF-8 → UTF-16LE code units (Java's chars); returns the byte length."""
    cdef Py_ssize_t i = 0, o = 0
    cdef uint32_t cp, hi, lo
    cdef uint8_t c
    while i < n:
        c = s[i]
        if c < 0x80:
            cp = c
            i += 1
        elif c < 0xe0 and i + 1 < n:
            cp = ((c & 0x1f) << 6) | (s[i + 1] & 0x3f)
            i += 2
        elif c < 0xf0 and i + 2 < n:
            cp = ((c & 0x0f) << 12) | ((s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f)
            i += 3
        elif i + 3 < n:
            cp = ((c & 0x07) << 18) | ((s[i + 1] & 0x3f) << 12) | ((s[i + 2] & 0x3f) << 6) | (s[i + 3] & 0x3f)
            i += 4
        else:
            cp = 0xfffd
            i += 1
        if cp >= 0x10000:
            cp -= 0x10000
            hi = 0xd800 + (cp >> 10)
            lo = 0xdc00 + (cp & 0x3ff)
            out[o] = hi & 0xff; out[o + 1] = hi >> 8
            out[o + 2] = lo & 0xff; out[o + 3] = lo >> 8
            o += 4
        else:
            out[o] = cp & 0xff; out[o + 1] = cp >> 8
            o += 2
    return o


def add_strings(uint8_t[:, ::1] regs, const int64_t[::1] gid, const int64_t[::1] offsets,
                const uint8_t[::1] data, const uint8_t[::1] valid) -> None:
    """Hash strings (Arrow offsets + UTF-8 data) as Java's hashUnencodedChars into regs[gid]."""
    cdef Py_ssize_t i, n = offsets.shape[0] - 1, longest = 0, length
    cdef uint64_t h1, h2
    cdef uint8_t* scratch
    cdef const uint8_t* base = &data[0] if data.shape[0] else NULL
    for i in range(n):
        longest = max(longest, offsets[i + 1] - offsets[i])
    scratch = <uint8_t*>malloc(2 * longest + 4)
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil:
            for i in range(n):
                if not valid[i]:
                    continue
                length = _utf16le(base + offsets[i], offsets[i + 1] - offsets[i], scratch)
                murmur3_128(scratch, length, &h1, &h2)
                _add_hash(&regs[gid[i], 0], h1, h2)
    finally:
        free(scratch)


def fold_serialized(uint8_t[:, ::1] regs, const int64_t[::1] gid, const int64_t[::1] offsets,
                    const uint8_t[::1] data, const uint8_t[::1] valid) -> None:
    """Fold serialized collectors (Arrow binary offsets + data) into regs[gid]."""
    cdef Py_ssize_t i, n = offsets.shape[0] - 1
    cdef uint8_t other[DENSE_SIZE]
    cdef const uint8_t* base = &data[0] if data.shape[0] else NULL
    cdef Py_ssize_t bad = -1
    with nogil:
        for i in range(n):
            if not valid[i] or offsets[i + 1] == offsets[i]:
                continue
            if _to_dense(base + offsets[i], offsets[i + 1] - offsets[i], other) < 0:
                bad = i
                break
            _fold(&regs[gid[i], 0], other)
    if bad >= 0:
        raise ValueError(f"not a HyperLogLogCollector (version 1) at row {bad}")


def estimate(const uint8_t[:, ::1] regs, double[::1] out) -> None:
    """estimateCardinality() of each collector."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(regs.shape[0]):
            out[i] = _estimate(&regs[i, 0])


def serialize(const uint8_t[:, ::1] regs):
    """toByteArray() of each collector: sparse below 128 non-zero registers, else dense.
    Returns (offsets int64[n+1], data uint8) for an Arrow binary array."""
    cdef Py_ssize_t n = regs.shape[0], i, j, total = 0, at
    offsets_arr = np.empty(n + 1, dtype=np.int64)
    cdef int64_t[::1] offsets = offsets_arr
    cdef int nonzero_bytes
    offsets[0] = 0
    for i in range(n):
        if _get_short(&regs[i, 0], 2) < DENSE_THRESHOLD:
            nonzero_bytes = 0
            for j in range(HEADER, DENSE_SIZE):
                if regs[i, j]:
                    nonzero_bytes += 1
            total += HEADER + 3 * nonzero_bytes
        else:
            total += DENSE_SIZE
        offsets[i + 1] = total
    data_arr = np.empty(total, dtype=np.uint8)
    cdef uint8_t[::1] data = data_arr
    with nogil:
        for i in range(n):
            at = offsets[i]
            if offsets[i + 1] - at == DENSE_SIZE and _get_short(&regs[i, 0], 2) >= DENSE_THRESHOLD:
                memcpy(&data[at], &regs[i, 0], DENSE_SIZE)
                continue
            memcpy(&data[at], &regs[i, 0], HEADER)
            at += HEADER
            for j in range(HEADER, DENSE_SIZE):
                if regs[i, j]:
                    data[at] = (j >> 8) & 0xff
                    data[at + 1] = j & 0xff
                    data[at + 2] = regs[i, j]
                    at += 3
    return offsets_arr, data_arr


def add_positions(uint8_t[:, ::1] regs, Py_ssize_t row, int bucket, int position_of_1) -> None:
    """add(short bucket, byte positionOf1) on one collector (testing purposes only)."""
    _add(&regs[row, 0], bucket, position_of_1)


def hash128(bytes data):
    """Guava murmur3_128().hashBytes(data).asBytes() (testing purposes only)."""
    cdef uint64_t h1, h2
    cdef const uint8_t* p = data
    murmur3_128(p, len(data), &h1, &h2)
    return int(h1).to_bytes(8, "little") + int(h2).to_bytes(8, "little")
