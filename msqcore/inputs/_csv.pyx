# cython: language_level=3
"""Kernels of the delimited (CSV/TSV) input path, one pass each without the GIL.

``line_quotes``: how many lines a block holds, and whether every line has an even number
of quotes (then no quoted value runs past its line, and pyarrow's reading is Druid's,
which parses CSV line by line). ``plain_longs``: a string column that is all plain decimal
longs, as int64; None when any value needs Druid's lenient parse (the caller's slow path).
``bool_strings``: a boolean column as Druid's text (Parquet and ORC booleans read as VARCHAR).
``parse_delimited``: the usual shape of a block (whole lines, each with every field, quotes
only around whole values) as string columns; None for anything else, which pyarrow reads.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memchr, memcpy

from msqcore.inputs._text cimport reserve

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


# --- parse_delimited ---------------------------------------------------------------------------

from libc.stdlib cimport free, malloc

cdef extern from *:
    """
    /* The index of the first byte at or after i that is a, b, c or d, or n: 16 bytes per
       step with SSE2 (x86-64's baseline). */
    static inline Py_ssize_t msq_find4(const uint8_t *p, Py_ssize_t i, Py_ssize_t n,
                                       uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    #if defined(__SSE2__)
        const __m128i va = _mm_set1_epi8((char)a), vb = _mm_set1_epi8((char)b),
                      vc = _mm_set1_epi8((char)c), vd = _mm_set1_epi8((char)d);
        while (i + 16 <= n) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(x, vb)),
                                       _mm_or_si128(_mm_cmpeq_epi8(x, vc), _mm_cmpeq_epi8(x, vd)));
            int m = _mm_movemask_epi8(hit);
            if (m) return i + __builtin_ctz((unsigned)m);
            i += 16;
        }
    #endif
        while (i < n && p[i] != a && p[i] != b && p[i] != c && p[i] != d) i++;
        return i;
    }
    /* memcpy for short values, 16 bytes per step: it may write up to 15 bytes past
       dst + len (the caller reserved them) and reads no further than src_end. */
    static inline void msq_copy(uint8_t *dst, const uint8_t *src, Py_ssize_t len, const uint8_t *src_end) {
    #if defined(__SSE2__)
        if (src + ((len + 15) & ~(Py_ssize_t)15) <= src_end) {
            for (Py_ssize_t x = 0; x < len; x += 16)
                _mm_storeu_si128((__m128i *)(dst + x), _mm_loadu_si128((const __m128i *)(src + x)));
            return;
        }
    #endif
        memcpy(dst, src, len);
    }
    """
    Py_ssize_t msq_find4(const uint8_t* p, Py_ssize_t i, Py_ssize_t n, uint8_t a, uint8_t b, uint8_t c,
                         uint8_t d) noexcept nogil
    void msq_copy(uint8_t* dst, const uint8_t* src, Py_ssize_t len, const uint8_t* src_end) noexcept nogil



cdef inline Py_ssize_t _find(const uint8_t* p, Py_ssize_t i, Py_ssize_t end, int c) noexcept nogil:
    """The index of the first ``c`` in p[i:end], or end."""
    cdef const uint8_t* hit
    if c < 0 or i >= end:
        return end
    hit = <const uint8_t*>memchr(p + i, c, end - i)
    return end if hit == NULL else hit - p


cdef Py_ssize_t _count_lines(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0, count = 0
    while True:
        i = _find(p, i, n, 10)
        if i >= n:
            break
        count += 1
        i += 1
    return count + (1 if n and p[n - 1] != 10 else 0)


cdef int _ascii(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0
    cdef uint64_t acc = 0, word
    while i + 8 <= n:
        memcpy(&word, p + i, 8)
        acc |= word
        i += 8
    while i < n:
        acc |= p[i]
        i += 1
    return (acc & 0x8080808080808080ULL) == 0


cdef Py_ssize_t _parse_rows(const uint8_t* p, Py_ssize_t n, Py_ssize_t ncols, const int32_t* slot, int delim,
                            int quote, Py_ssize_t max_rows, int32_t[:, ::1] offsets, uint8_t[:, ::1] bits,
                            uint8_t** text, Py_ssize_t* cap, Py_ssize_t* used) noexcept nogil:
    """Rows into the wanted columns (``slot[field]``: text, offsets, validity), in one pass
    over the block; the row count, -1 when a line is not of the usual shape, -2 out of memory."""
    cdef Py_ssize_t i = 0, k, f, start, length, src, end, rows = 0
    cdef int32_t s
    cdef bint escaped
    cdef int c
    cdef uint8_t other = quote if quote >= 0 else delim  # what else ends an unquoted value
    while i < n:
        if p[i] == 10:  # an empty line: pyarrow skips it (ignore_empty_lines)
            i += 1
            continue
        if p[i] == 13 and i + 1 < n and p[i + 1] == 10:
            i += 2
            continue
        if rows >= max_rows:
            return -1
        k = i
        f = 0
        while True:
            if f >= ncols:
                return -1  # too many fields: pyarrow's invalid-row handler zips them
            if quote >= 0 and k < n and p[k] == quote:
                k += 1
                start = k
                length = 0
                escaped = False
                while True:
                    k = msq_find4(p, k, n, quote, quote, 10, 13)
                    if k >= n or p[k] != quote:
                        return -1  # no closing quote on this line
                    if k + 1 < n and p[k + 1] == quote:
                        escaped = True
                        k += 2
                    else:
                        break
                length = k - start
                k += 1  # the closing quote
            else:
                start = k
                k = msq_find4(p, k, n, delim, other, 10, 13)
                length = k - start
                escaped = False
            c = p[k] if k < n else 10
            if c == 13:
                if k + 1 >= n or p[k + 1] != 10:
                    return -1  # a carriage return alone ends a row for pyarrow
                c = 10
            elif c != delim and c != 10:
                return -1  # a quote inside an unquoted value, or text after a closing quote
            s = slot[f]
            if s >= 0:
                if length:  # an empty value is null (null_values=[""], quoted or not)
                    if not reserve(text, cap, s, used[s] + length + 16):  # msq_copy's slack
                        return -2
                    if escaped:  # each doubled quote written once
                        src = start
                        end = start + length
                        while src < end:
                            text[s][used[s]] = p[src]
                            used[s] += 1
                            src += 2 if p[src] == quote else 1
                    else:
                        msq_copy(text[s] + used[s], p + start, length, p + n)
                        used[s] += length
                    bits[s, rows >> 3] |= <uint8_t>(1 << (rows & 7))
                    if used[s] > 2147483647:  # past int32 offsets
                        return -1
                offsets[s, rows + 1] = <int32_t>used[s]
            f += 1
            if c == delim:
                k += 1  # a last delimiter is followed by an empty value
                continue
            break
        if f != ncols:
            return -1  # too few fields
        rows += 1
        i = k + (2 if k < n and p[k] == 13 else 1)
    return rows


def parse_delimited(block, Py_ssize_t ncols, const int32_t[::1] slot, int delimiter, int quote):
    """``(lines, columns)``: the line count of a block of whole lines (empty ones included)
    and its string columns; None when a line is not of the usual shape.

    ``slot[f]`` is the output column of field ``f`` (-1: not read); ``quote`` is the quote
    byte, or -1 for none (TSV). Reads as pyarrow's CSV reader does with the options of
    ``formats._delimited_arrow`` (empty values null, empty lines skipped, ``\\r\\n`` ends a
    line), for lines where every row has ``ncols`` fields, a quote only opens a value and
    closes it (doubled inside), and no carriage return stands alone. Anything else, and
    text that is not UTF-8, returns None."""
    cdef const uint8_t[::1] view = block
    cdef Py_ssize_t n = view.shape[0], nwant = 0, rows = 0, max_rows, j
    cdef int ascii = 1
    for j in range(slot.shape[0]):
        nwant = max(nwant, slot[j] + 1)
    if n == 0 or nwant == 0 or slot.shape[0] != ncols or n > 2147483647:
        return None
    cdef const uint8_t* p = &view[0]
    with nogil:
        max_rows = _count_lines(p, n)
        ascii = _ascii(p, n)
    if not ascii:  # the whole block at once: each value is cut from it at ASCII bytes
        try:
            pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(np.array([0, n], np.int32)),
                                                   pa.py_buffer(block)]).validate(full=True)
        except pa.ArrowInvalid:
            return None
    offsets = np.zeros((nwant, max_rows + 1), np.int32)
    bits = np.zeros((nwant, (max_rows + 7) // 8), np.uint8)
    # text buffers: malloc'd, grown as needed, copied out at their exact size at the end
    cdef uint8_t** text = <uint8_t**>malloc(nwant * sizeof(uint8_t*))
    cdef Py_ssize_t* cap = <Py_ssize_t*>malloc(nwant * sizeof(Py_ssize_t))
    cdef Py_ssize_t* used = <Py_ssize_t*>malloc(nwant * sizeof(Py_ssize_t))
    if text == NULL or cap == NULL or used == NULL:
        free(text)
        free(cap)
        free(used)
        raise MemoryError()
    for j in range(nwant):
        text[j] = NULL
        cap[j] = used[j] = 0
    cdef int32_t[:, ::1] off = offsets
    cdef uint8_t[:, ::1] valid = bits
    try:
        with nogil:
            rows = _parse_rows(p, n, ncols, &slot[0], delimiter, quote, max_rows, off, valid, text, cap, used)
        if rows == -2:
            raise MemoryError()
        if rows <= 0:
            return None
        out = []
        for j in range(nwant):
            data = np.empty(max(used[j], 1), np.uint8)
            if used[j]:
                memcpy(<void*><size_t>data.ctypes.data, text[j], used[j])
            column_bits = bits[j]
            nulls = rows - int(np.unpackbits(column_bits, count=rows, bitorder="little").sum()) if used[j] else rows
            arr = pa.Array.from_buffers(pa.string(), rows, [pa.py_buffer(column_bits) if nulls else None,
                                                            pa.py_buffer(offsets[j, :rows + 1]),
                                                            pa.py_buffer(data[:used[j]])], nulls)
            out.append(arr)
        return max_rows, out
    finally:
        for j in range(nwant):
            free(text[j])
        free(text)
        free(cap)
        free(used)
