# cython: language_level=3
"""Flat newline-delimited JSON objects → typed Arrow columns, in one pass without the GIL.

The fast path of the ``json`` input format for the usual shape of batch data: one object
per line whose values, for the columns the query reads, are strings, integers, floats,
booleans or null. Keys the query does not read are skipped whatever they hold. Anything
else (a nested value or a number in a column read as text, a float or a string in a
BIGINT column, a duplicate key, an escaped key, a line that is not one object, invalid
UTF-8) makes ``parse_flat`` return None, and the caller parses that block with pyarrow
or line by line, which know Druid's conversions and report parse errors. A lone UTF-16
surrogate escape (``"\\ud800"``) is written as ``?``, as Druid stores it (docs/inputs.md).
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, strtod
from libc.string cimport memchr, memcpy

from msqcore.inputs._text cimport reserve

import numpy as np
import pyarrow as pa

cdef enum:
    K_STRING = 0  # column kinds, as given in ``kinds``
    K_LONG = 1
    K_DOUBLE = 2
    MAX_KEYS = 256  # key positions remembered per row (for the key-order guess)


cdef inline Py_ssize_t _ws(const uint8_t* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    while i < end and (p[i] == 32 or p[i] == 9 or p[i] == 13):
        i += 1
    return i


cdef inline int _hex(uint8_t c) noexcept nogil:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    /* The index of the first byte at or after i that is a quote, a backslash or a control byte (< 32),
       or end: 16 bytes per step with SSE2 (x86-64's baseline), else 8 with a word test. */
    static inline __attribute__((always_inline)) Py_ssize_t msq_special(const uint8_t *p, Py_ssize_t i, Py_ssize_t end) {
    #if defined(__SSE2__)
        const __m128i quote = _mm_set1_epi8(34), slash = _mm_set1_epi8(92), ctl = _mm_set1_epi8(31);
        while (i + 16 <= end) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, slash)),
                                       _mm_cmpeq_epi8(_mm_max_epu8(x, ctl), ctl));
            int m = _mm_movemask_epi8(hit);
            if (m) return i + __builtin_ctz((unsigned)m);
            i += 16;
        }
    #else
        while (i + 8 <= end) {
            uint64_t w, q, b;
            memcpy(&w, p + i, 8);
            q = w ^ 0x2222222222222222ULL;
            b = w ^ 0x5C5C5C5C5C5C5C5CULL;
            if ((((q - 0x0101010101010101ULL) & ~q) | ((b - 0x0101010101010101ULL) & ~b) |
                 ((w - 0x2020202020202020ULL) & ~w)) & 0x8080808080808080ULL) break;
            i += 8;
        }
    #endif
        while (i < end && p[i] != 34 && p[i] != 92 && p[i] >= 32) i++;
        return i;
    }
    """
    Py_ssize_t msq_special(const uint8_t* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil


cdef inline bint _same(const uint8_t* a, const uint8_t* b, Py_ssize_t n) noexcept nogil:
    """``memcmp(a, b, n) == 0`` for the short runs of keys and literals, without a call."""
    cdef uint64_t x, y
    while n >= 8:
        memcpy(&x, a, 8)
        memcpy(&y, b, 8)
        if x != y:
            return False
        a += 8
        b += 8
        n -= 8
    while n > 0:
        if a[0] != b[0]:
            return False
        a += 1
        b += 1
        n -= 1
    return True


cdef Py_ssize_t _skip_string(const uint8_t* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """``i`` just past the opening quote; returns the index past the closing one, or -1."""
    while i < end:
        i = msq_special(p, i, end)
        if i >= end:
            break
        if p[i] == 34:
            return i + 1
        if p[i] == 92:
            i += 2
            continue
        if p[i] < 32:
            return -1
        i += 1
    return -1


cdef inline bint _is_number_char(uint8_t c) noexcept nogil:
    return 48 <= c <= 57 or c == 45 or c == 43 or c == 46 or c == 101 or c == 69


cdef Py_ssize_t _skip_value(const uint8_t* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """The index past the JSON value (nested ones too) that starts at ``i``; -1 when it is
    not one (literals are checked; numbers only for their characters)."""
    cdef int depth
    cdef uint8_t c
    cdef Py_ssize_t start = i
    if i >= end:
        return -1
    c = p[i]
    if c == 34:
        return _skip_string(p, i + 1, end)
    if c == 123 or c == 91:
        depth = 1
        i += 1
        while i < end and depth:
            c = p[i]
            if c == 34:
                i = _skip_string(p, i + 1, end)
                if i < 0:
                    return -1
                continue
            if c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
            elif c == 10:
                return -1
            i += 1
        return -1 if depth else i
    if c == 116:
        return i + 4 if i + 4 <= end and _same(p + i, <const uint8_t*>b"true", 4) else -1
    if c == 102:
        return i + 5 if i + 5 <= end and _same(p + i, <const uint8_t*>b"false", 5) else -1
    if c == 110:
        return i + 4 if i + 4 <= end and _same(p + i, <const uint8_t*>b"null", 4) else -1
    while i < end and _is_number_char(p[i]):
        i += 1
    return i if i > start else -1


cdef Py_ssize_t _put_utf8(uint8_t* out, Py_ssize_t o, unsigned int cp) noexcept nogil:
    if cp < 0x80:
        out[o] = <uint8_t>cp
        return o + 1
    if cp < 0x800:
        out[o] = <uint8_t>(0xC0 | (cp >> 6))
        out[o + 1] = <uint8_t>(0x80 | (cp & 0x3F))
        return o + 2
    if cp < 0x10000:
        out[o] = <uint8_t>(0xE0 | (cp >> 12))
        out[o + 1] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
        out[o + 2] = <uint8_t>(0x80 | (cp & 0x3F))
        return o + 3
    out[o] = <uint8_t>(0xF0 | (cp >> 18))
    out[o + 1] = <uint8_t>(0x80 | ((cp >> 12) & 0x3F))
    out[o + 2] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
    out[o + 3] = <uint8_t>(0x80 | (cp & 0x3F))
    return o + 4


cdef Py_ssize_t _read_hex4(const uint8_t* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """The code unit of ``\\uXXXX`` whose digits start at ``i``, or -1."""
    cdef int a, b, c, d
    if i + 4 > end:
        return -1
    a = _hex(p[i]); b = _hex(p[i + 1]); c = _hex(p[i + 2]); d = _hex(p[i + 3])
    if a < 0 or b < 0 or c < 0 or d < 0:
        return -1
    return (a << 12) | (b << 8) | (c << 4) | d


cdef Py_ssize_t _copy_string(const uint8_t* p, Py_ssize_t i, Py_ssize_t end, uint8_t* out,
                             Py_ssize_t o, Py_ssize_t* after) noexcept nogil:
    """Unescapes the string whose body starts at ``i`` into ``out[o:]``: returns the new
    output end and sets ``after`` past the closing quote; -1 when malformed."""
    cdef uint8_t c
    cdef Py_ssize_t u, lo
    cdef Py_ssize_t start = i
    while i < end:
        c = p[i]
        if c == 34:
            after[0] = i + 1
            return o
        if c < 32:
            return -1
        if c != 92:
            # copy the run of plain bytes at once
            start = i
            i = msq_special(p, i, end)
            memcpy(out + o, p + start, i - start)
            o += i - start
            continue
        if i + 1 >= end:
            return -1
        c = p[i + 1]
        i += 2
        if c == 34 or c == 92 or c == 47:
            out[o] = c
            o += 1
        elif c == 98:
            out[o] = 8; o += 1
        elif c == 102:
            out[o] = 12; o += 1
        elif c == 110:
            out[o] = 10; o += 1
        elif c == 114:
            out[o] = 13; o += 1
        elif c == 116:
            out[o] = 9; o += 1
        elif c == 117:
            u = _read_hex4(p, i, end)
            if u < 0:
                return -1
            i += 4
            if 0xD800 <= u < 0xDC00:  # a surrogate pair, or a lone high surrogate
                lo = _read_hex4(p, i + 2, end) if i + 6 <= end and p[i] == 92 and p[i + 1] == 117 else -1
                if 0xDC00 <= lo < 0xE000:
                    i += 6
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                else:
                    u = 63
            elif 0xDC00 <= u < 0xE000:
                u = 63
            # A lone surrogate is '?': Jackson keeps it in the Java string, and Druid's
            # StringUtils.toUtf8 (String.getBytes) writes it as '?'.
            o = _put_utf8(out, o, <unsigned int>u)
        else:
            return -1
    return -1


def parse_flat(const uint8_t[::1] block, list names, const uint8_t[::1] kinds):
    """Columns (pyarrow arrays, in ``names`` order) of a block of whole lines, or None."""
    cdef Py_ssize_t ncols = len(names)
    if ncols == 0 or ncols > MAX_KEYS or block.shape[0] == 0:
        return None
    # text buffers: malloc'd, grown as needed, copied out at their exact size at the end
    cdef uint8_t** tbuf = <uint8_t**>malloc(ncols * sizeof(uint8_t*))
    cdef Py_ssize_t* tcap = <Py_ssize_t*>malloc(ncols * sizeof(Py_ssize_t))
    if tbuf == NULL or tcap == NULL:
        free(tbuf)
        free(tcap)
        raise MemoryError()
    cdef Py_ssize_t j
    for j in range(ncols):
        tbuf[j] = NULL
        tcap[j] = 0
    try:
        return _parse(block, names, kinds, tbuf, tcap)
    finally:
        for j in range(ncols):
            free(tbuf[j])
        free(tbuf)
        free(tcap)


cdef object _parse(const uint8_t[::1] block, list names, const uint8_t[::1] kinds, uint8_t** tbuf,
                   Py_ssize_t* tcap):
    cdef Py_ssize_t n = block.shape[0]
    cdef Py_ssize_t ncols = len(names)
    cdef Py_ssize_t nrows = 0, i, j
    cdef const uint8_t* p = &block[0]
    cdef const uint8_t* hit = p
    while True:
        hit = <const uint8_t*>memchr(hit, 10, n - (hit - p))
        if hit == NULL:
            break
        nrows += 1
        hit += 1
        if hit - p >= n:
            break
    if p[n - 1] != 10:
        nrows += 1

    name_bytes = [name.encode() for name in names]
    cdef list keep = name_bytes  # keeps the buffers alive
    name_ptr = np.zeros(ncols, dtype=np.uintp)
    name_len = np.zeros(ncols, dtype=np.intp)
    cdef size_t[::1] nptr = name_ptr
    cdef Py_ssize_t[::1] nlen = name_len
    cdef const unsigned char* raw
    for j in range(ncols):
        raw = <const unsigned char*>(<bytes>keep[j])
        nptr[j] = <size_t>raw
        nlen[j] = len(<bytes>keep[j])

    # outputs: per column a validity byte per row, values (int64/float64) or offsets + text
    valid = np.zeros((ncols, nrows), dtype=np.uint8)
    longs = np.zeros((ncols, nrows), dtype=np.int64)
    doubles = np.zeros((ncols, nrows), dtype=np.float64)
    offsets = np.zeros((ncols, nrows + 1), dtype=np.int32)
    cdef uint8_t[:, ::1] v = valid
    cdef int64_t[:, ::1] lv = longs
    cdef double[:, ::1] dv = doubles
    cdef int32_t[:, ::1] off = offsets
    text_used_arr = np.zeros(ncols, dtype=np.intp)
    cdef Py_ssize_t[::1] tused = text_used_arr
    # the key-order guess: for key position k, where the previous row had it and its column
    guess_start = np.full(MAX_KEYS, -1, dtype=np.intp)
    guess_len = np.zeros(MAX_KEYS, dtype=np.intp)
    guess_col = np.full(MAX_KEYS, -1, dtype=np.intp)
    cdef Py_ssize_t[::1] gs = guess_start
    cdef Py_ssize_t[::1] gl = guess_len
    cdef Py_ssize_t[::1] gc = guess_col
    seen_arr = np.full(ncols, -1, dtype=np.intp)
    cdef Py_ssize_t[::1] seen = seen_arr

    cdef Py_ssize_t row = 0, k, ks, kl, col, o, e, digits
    cdef int ok = 1
    cdef int neg
    cdef int64_t acc
    cdef uint8_t c
    cdef char numbuf[64]
    cdef char* endp
    i = 0
    with nogil:
        while i < n and ok:
            i = _ws(p, i, n)
            if i >= n or p[i] != 123:
                ok = 0
                break
            i = _ws(p, i + 1, n)
            k = 0
            if i < n and p[i] == 125:  # {}
                i += 1
            else:
                while True:
                    if i >= n or p[i] != 34:
                        ok = 0
                        break
                    ks = i + 1
                    col = -2
                    # the key the previous row had here, followed by its closing quote: no
                    # search for the quote (that key held no quote, backslash or control byte)
                    if k < MAX_KEYS and gs[k] >= 0 and ks + gl[k] < n and p[ks + gl[k]] == 34 \
                            and _same(p + gs[k], p + ks, gl[k]):
                        col = gc[k]
                        i = ks + gl[k]
                    else:
                        i = msq_special(p, ks, n)
                        if i >= n or p[i] != 34:
                            ok = 0  # an escaped key, or a broken line
                            break
                    kl = i - ks
                    i = _ws(p, i + 1, n)
                    if i >= n or p[i] != 58:
                        ok = 0
                        break
                    i = _ws(p, i + 1, n)
                    # which column is this key?
                    if col == -2:
                        col = -1
                        for j in range(ncols):
                            if nlen[j] == kl and _same(<const uint8_t*>nptr[j], p + ks, kl):
                                col = j
                                break
                        if k < MAX_KEYS:
                            gs[k] = ks
                            gl[k] = kl
                            gc[k] = col
                    k += 1
                    if i >= n:
                        ok = 0
                        break
                    c = p[i]
                    if col < 0:
                        i = _skip_value(p, i, n)
                        if i < 0:
                            ok = 0
                            break
                    else:
                        if seen[col] == row:
                            ok = 0  # a duplicate key
                            break
                        seen[col] = row
                        if c == 110:  # null
                            if i + 4 > n or not _same(p + i, <const uint8_t*>b"null", 4):
                                ok = 0
                                break
                            i += 4
                        elif kinds[col] == K_STRING:
                            # room first: the unescaped text is never longer than the raw one
                            if c == 34:
                                e = msq_special(p, i + 1, n)
                                if e < n and p[e] == 34:  # no escape: copied as it is
                                    if not reserve(tbuf, tcap, col, tused[col] + e - i):
                                        ok = 0
                                        break
                                    memcpy(tbuf[col] + tused[col], p + i + 1, e - i - 1)
                                    tused[col] += e - i - 1
                                    i = e + 1
                                else:
                                    e = _skip_string(p, i + 1, n)
                                    if e < 0 or not reserve(tbuf, tcap, col, tused[col] + e - i):
                                        ok = 0
                                        break
                                    o = _copy_string(p, i + 1, n, tbuf[col], tused[col], &i)
                                    if o < 0:
                                        ok = 0
                                        break
                                    tused[col] = o
                            elif c == 116 and i + 4 <= n and _same(p + i, <const uint8_t*>b"true", 4):
                                if not reserve(tbuf, tcap, col, tused[col] + 4):
                                    ok = 0
                                    break
                                memcpy(tbuf[col] + tused[col], b"true", 4)
                                tused[col] += 4
                                i += 4
                            elif c == 102 and i + 5 <= n and _same(p + i, <const uint8_t*>b"false", 5):
                                if not reserve(tbuf, tcap, col, tused[col] + 5):
                                    ok = 0
                                    break
                                memcpy(tbuf[col] + tused[col], b"false", 5)
                                tused[col] += 5
                                i += 5
                            else:
                                ok = 0  # a number or a nested value read as text
                                break
                            v[col, row] = 1
                        elif kinds[col] == K_LONG:
                            neg = 0
                            if c == 45:
                                neg = 1
                                i += 1
                            acc = 0
                            digits = 0
                            while i < n and 48 <= p[i] <= 57:
                                acc = acc * 10 + (p[i] - 48)
                                digits += 1
                                i += 1
                            if digits == 0 or digits > 18 or (digits > 1 and p[i - digits] == 48):
                                ok = 0
                                break
                            if i < n and (p[i] == 46 or p[i] == 101 or p[i] == 69):
                                ok = 0  # a float in a BIGINT column
                                break
                            lv[col, row] = -acc if neg else acc
                            v[col, row] = 1
                        else:  # K_DOUBLE
                            ks = i
                            while i < n and _is_number_char(p[i]):
                                i += 1
                            kl = i - ks
                            if kl == 0 or kl > 60:
                                ok = 0
                                break
                            memcpy(numbuf, p + ks, kl)
                            numbuf[kl] = 0
                            dv[col, row] = strtod(numbuf, &endp)
                            if endp != numbuf + kl:
                                ok = 0
                                break
                            v[col, row] = 1
                    i = _ws(p, i, n)
                    if i < n and p[i] == 44:
                        i = _ws(p, i + 1, n)
                        continue
                    if i < n and p[i] == 125:
                        i += 1
                        break
                    ok = 0
                    break
                if not ok:
                    break
            i = _ws(p, i, n)
            if i < n:
                if p[i] != 10:
                    ok = 0
                    break
                i += 1
            for j in range(ncols):
                if kinds[j] == K_STRING:
                    off[j, row + 1] = <int32_t>tused[j]
            row += 1
    if not ok or row != nrows:
        return None

    out = []
    for j in range(ncols):
        bitmap = pa.py_buffer(np.packbits(valid[j], bitorder="little"))
        nulls = nrows - int(valid[j].sum())
        if kinds[j] == K_STRING:
            text = np.empty(tused[j], dtype=np.uint8)
            if tused[j]:
                memcpy(<void*><size_t>text.ctypes.data, tbuf[j], tused[j])
            arr = pa.Array.from_buffers(pa.string(), nrows, [bitmap, pa.py_buffer(offsets[j]), pa.py_buffer(text)],
                                        nulls)
            try:
                arr.validate(full=True)  # UTF-8 (the raw bytes were copied as they were)
            except pa.ArrowInvalid:
                return None
        elif kinds[j] == K_LONG:
            arr = pa.Array.from_buffers(pa.int64(), nrows, [bitmap, pa.py_buffer(longs[j])], nulls)
        else:
            arr = pa.Array.from_buffers(pa.float64(), nrows, [bitmap, pa.py_buffer(doubles[j])], nulls)
        out.append(arr)
    return out
