# cython: language_level=3
"""Kernels of the delimited (CSV/TSV) input path, one pass each without the GIL.

``line_quotes``: how many lines a block holds, and whether every line has an even number
of quotes (then no quoted value runs past its line, and pyarrow's reading is Druid's,
which parses CSV line by line). ``plain_longs``: a string column that is all plain decimal
longs, as int64; None when any value needs Druid's lenient parse (the caller's slow path).
``bool_strings``: a boolean column as Druid's text (Parquet and ORC booleans read as VARCHAR).
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

cdef extern from *:
    """
    #include <stdint.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    /* Newlines in p[0:n] into *lines; returns 1 when the quotes before every newline and
       at the end are even in number (counted from the start), else 0. */
    static int msq_line_quotes(const uint8_t *p, Py_ssize_t n, Py_ssize_t *lines) {
        Py_ssize_t i = 0, count = 0;
        unsigned parity = 0;  /* 0 or 0xFFFF: inside an odd run of quotes since the last newline */
    #if defined(__SSE2__)
        const __m128i quote = _mm_set1_epi8(34), nl = _mm_set1_epi8(10);
        for (; i + 16 <= n; i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + i));
            unsigned q = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, quote));
            unsigned e = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, nl));
            if (!(q | e)) continue;
            /* odd quotes up to each position: the prefix xor of the quote bits */
            unsigned odd = q;
            odd ^= odd << 1; odd ^= odd << 2; odd ^= odd << 4; odd ^= odd << 8;
            odd = (odd ^ parity) & 0xFFFF;
            if (e & odd) { *lines = count; return 0; }
            count += __builtin_popcount(e);
            parity = (odd & 0x8000) ? 0xFFFF : 0;
        }
    #endif
        for (; i < n; i++) {
            if (p[i] == 34) parity ^= 0xFFFF;
            else if (p[i] == 10) {
                if (parity) { *lines = count; return 0; }
                count++;
            }
        }
        *lines = count;
        return parity == 0;
    }
    """
    int msq_line_quotes(const uint8_t* p, Py_ssize_t n, Py_ssize_t* lines) noexcept nogil


def line_quotes(const uint8_t[::1] block):
    """``(lines, balanced)``: the block's line count (a last line without its newline
    counts) and whether every line has an even number of quotes. ``lines`` is exact only
    when ``balanced``."""
    cdef Py_ssize_t n = block.shape[0], lines = 0
    cdef int ok = 1
    if n:
        with nogil:
            ok = msq_line_quotes(&block[0], n, &lines)
        if block[n - 1] != 10:
            lines += 1
    return lines, bool(ok)


cdef inline bint _valid(const uint8_t[::1] bits, Py_ssize_t i) noexcept nogil:
    return (bits[i >> 3] >> (i & 7)) & 1


cdef int _parse_longs(const int32_t[::1] offsets, const uint8_t[::1] data, const uint8_t[::1] bits, bint has_bits,
                      Py_ssize_t first, Py_ssize_t n, int64_t[::1] out) noexcept nogil:
    """1 when each valid value of rows first..first+n is ``-?[0-9]+`` within the long range."""
    cdef Py_ssize_t i, k, end, digits
    cdef uint64_t v, limit
    cdef bint negative
    cdef uint8_t c
    for i in range(first, first + n):
        if has_bits and not _valid(bits, i):
            out[i] = 0
            continue
        k = offsets[i]
        end = offsets[i + 1]
        negative = k < end and data[k] == 45  # '-'
        if negative:
            k += 1
        if k >= end:
            return 0
        while k < end - 1 and data[k] == 48:  # leading zeros do not count toward the 19 digits
            k += 1
        digits = end - k
        if digits > 19:
            return 0
        v = 0
        while k < end:
            c = data[k] - 48
            if c > 9:
                return 0
            v = v * 10 + c
            k += 1
        limit = 9223372036854775808ULL if negative else 9223372036854775807ULL
        if v > limit:
            return 0
        out[i] = <int64_t>(0 - v) if negative else <int64_t>v
    return 1


def _longs_of_chunk(arr):
    cdef Py_ssize_t n = len(arr), first = arr.offset
    if n == 0 or arr.null_count == n:
        return pa.nulls(n, pa.int64())
    validity, offsets_buf, data_buf = arr.buffers()
    cdef const int32_t[::1] offsets = np.frombuffer(offsets_buf, dtype=np.int32)
    cdef const uint8_t[::1] data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None and \
        data_buf.size else np.zeros(1, np.uint8)
    cdef bint has_bits = validity is not None and arr.null_count > 0
    cdef const uint8_t[::1] bits = np.frombuffer(validity, dtype=np.uint8) if has_bits else np.zeros(1, np.uint8)
    values = np.empty(first + n, np.int64)
    cdef int64_t[::1] out = values
    cdef int ok
    with nogil:
        ok = _parse_longs(offsets, data, bits, has_bits, first, n, out)
    if not ok:
        return None
    return pa.Array.from_buffers(pa.int64(), n, [validity if has_bits else None, pa.py_buffer(values)],
                                 offset=first)


def plain_longs(col):
    """A string column (array or chunked) as int64 when every value is a plain decimal long
    (``-?[0-9]+`` in range; nulls stay null), else None."""
    if isinstance(col, pa.ChunkedArray):
        chunks = []
        for chunk in col.chunks:
            out = _longs_of_chunk(chunk)
            if out is None:
                return None
            chunks.append(out)
        return pa.chunked_array(chunks, pa.int64())
    return _longs_of_chunk(col)


cdef void _bool_text(const uint8_t[::1] bits, Py_ssize_t first, Py_ssize_t n, int32_t[::1] offsets,
                     uint8_t[::1] data) noexcept nogil:
    cdef Py_ssize_t i, k = 0
    cdef bint v
    offsets[0] = 0
    for i in range(n):
        v = (bits[(first + i) >> 3] >> ((first + i) & 7)) & 1
        if v:
            data[k] = 116; data[k + 1] = 114; data[k + 2] = 117; data[k + 3] = 101  # true
            k += 4
        else:
            data[k] = 102; data[k + 1] = 97; data[k + 2] = 108; data[k + 3] = 115; data[k + 4] = 101  # false
            k += 5
        offsets[i + 1] = <int32_t>k


def _bool_strings_of_chunk(arr):
    cdef Py_ssize_t n = len(arr), first = arr.offset
    if n == 0 or arr.null_count == n:
        return pa.nulls(n, pa.string())
    validity = None
    if arr.null_count:
        if first % 8:  # a validity bitmap that starts inside a byte: not worth a kernel
            return pc.if_else(arr, "true", "false")
        validity = arr.buffers()[0].slice(first // 8)
    offsets = np.empty(n + 1, np.int32)
    data = np.empty(5 * n, np.uint8)
    _bool_text(np.frombuffer(arr.buffers()[1], np.uint8), first, n, offsets, data)
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)])


def bool_strings(col):
    """A boolean column (array or chunked) as Druid's text, ``true`` or ``false``; nulls stay null."""
    if isinstance(col, pa.ChunkedArray):
        return pa.chunked_array([_bool_strings_of_chunk(c) for c in col.chunks], pa.string())
    return _bool_strings_of_chunk(col)
