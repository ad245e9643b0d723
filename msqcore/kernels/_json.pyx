# cython: language_level=3
"""COMPLEX<json> values (JSON text per row) parsed in C without the GIL.

msqcore carries a COMPLEX<json> value as its canonical JSON text: compact, keys in input
order, strings escaped as Jackson writes them. ``canonical`` makes that text from any
JSON (PARSE_JSON, ingestion); the other kernels read canonical text (they still skip
whitespace) and never call Python per row:

* ``extract``: the value at a path, as its JSON text (JSON_QUERY) or as a literal
  (JSON_VALUE: a string unescaped, a number's text), with the kind of value found;
* ``keys``: the field names (or array indexes) of the object at a path (JSON_KEYS);
* ``paths``: every path to a literal (JSON_PATHS, and the nested column's field list);
* ``elements``: the literal elements of the array at a path (JSON_VALUE RETURNING ARRAY);
* ``quote``: text values as JSON string literals.

A path is a list of parts: ``bytes`` (a field name, JSON-escaped) or ``int`` (an array
index, negative counting from the end). Outputs are (offsets int64[n + 1], data bytes)
pairs that the caller wraps as Arrow arrays.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy

import numpy as np

# value kinds found at a path (``extract``'s kinds)
cdef enum:
    MISSING = 0
    K_NULL = 1
    K_STRING = 2
    K_LONG = 3
    K_DOUBLE = 4
    K_TRUE = 5
    K_FALSE = 6
    K_OBJECT = 7
    K_ARRAY = 8
    MAX_DEPTH = 1000
    MAX_PARTS = 64

KINDS = {"missing": MISSING, "null": K_NULL, "string": K_STRING, "long": K_LONG, "double": K_DOUBLE,
         "true": K_TRUE, "false": K_FALSE, "object": K_OBJECT, "array": K_ARRAY}

cdef const char* HEX = b"0123456789ABCDEF"


# --- a growable output buffer ---------------------------------------------------------------

cdef struct Buf:
    char* p
    Py_ssize_t n
    Py_ssize_t cap
    bint oom


cdef inline bint _reserve(Buf* b, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t cap
    cdef char* q
    if b.n + k <= b.cap:
        return True
    cap = b.cap * 2 if b.cap else 4096
    while cap < b.n + k:
        cap *= 2
    q = <char*>realloc(b.p, cap)
    if q == NULL:
        b.oom = True
        return False
    b.p = q
    b.cap = cap
    return True


cdef inline void _put(Buf* b, const uint8_t* s, Py_ssize_t k) noexcept nogil:
    if _reserve(b, k):
        memcpy(b.p + b.n, s, k)
        b.n += k


cdef inline void _putc(Buf* b, uint8_t c) noexcept nogil:
    if _reserve(b, 1):
        b.p[b.n] = <char>c
        b.n += 1


cdef inline void _put_i64(Buf* b, int64_t v) noexcept nogil:
    _put(b, <const uint8_t*>&v, 8)


cdef bytes _take(Buf* b):
    if b.oom:
        free(b.p)
        raise MemoryError()
    if b.p == NULL:
        return b""
    out = PyBytes_FromStringAndSize(b.p, b.n)
    free(b.p)
    b.p = NULL
    return out


cdef object _int64s(Buf* b):
    return np.frombuffer(_take(b), dtype=np.int64)


# --- lexing ---------------------------------------------------------------------------------

cdef inline Py_ssize_t _ws(const uint8_t* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    while i < end and (p[i] == 32 or p[i] == 9 or p[i] == 10 or p[i] == 13):
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


cdef inline int _hex4(const uint8_t* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    cdef int a, b, c, d
    if i + 4 > end:
        return -1
    a = _hex(p[i]); b = _hex(p[i + 1]); c = _hex(p[i + 2]); d = _hex(p[i + 3])
    if a < 0 or b < 0 or c < 0 or d < 0:
        return -1
    return (a << 12) | (b << 8) | (c << 4) | d


cdef inline void _put_utf8(Buf* b, unsigned int cp) noexcept nogil:
    if cp < 0x80:
        _putc(b, cp)
    elif cp < 0x800:
        _putc(b, 0xC0 | (cp >> 6)); _putc(b, 0x80 | (cp & 0x3F))
    elif cp < 0x10000:
        _putc(b, 0xE0 | (cp >> 12)); _putc(b, 0x80 | ((cp >> 6) & 0x3F)); _putc(b, 0x80 | (cp & 0x3F))
    else:
        _putc(b, 0xF0 | (cp >> 18)); _putc(b, 0x80 | ((cp >> 12) & 0x3F))
        _putc(b, 0x80 | ((cp >> 6) & 0x3F)); _putc(b, 0x80 | (cp & 0x3F))


cdef inline void _put_escaped_byte(Buf* b, uint8_t c) noexcept nogil:
    """One byte of a string body as Jackson writes it."""
    if c == 34:
        _put(b, <const uint8_t*>b'\\"', 2)
    elif c == 92:
        _put(b, <const uint8_t*>b"\\\\", 2)
    elif c >= 32:
        _putc(b, c)
    elif c == 10:
        _put(b, <const uint8_t*>b"\\n", 2)
    elif c == 13:
        _put(b, <const uint8_t*>b"\\r", 2)
    elif c == 9:
        _put(b, <const uint8_t*>b"\\t", 2)
    elif c == 8:
        _put(b, <const uint8_t*>b"\\b", 2)
    elif c == 12:
        _put(b, <const uint8_t*>b"\\f", 2)
    else:
        _put(b, <const uint8_t*>b"\\u00", 4)
        _putc(b, HEX[c >> 4])
        _putc(b, HEX[c & 15])


cdef Py_ssize_t _string(const uint8_t* p, Py_ssize_t i, Py_ssize_t end, Buf* b, bint escape) noexcept nogil:
    """The string body starting after its opening quote at ``i``, decoded into ``b``
    (re-escaped the canonical way when ``escape``). Returns the index past the closing
    quote, or -1 when malformed."""
    cdef uint8_t c
    cdef int u, lo
    cdef unsigned int cp
    while i < end:
        c = p[i]
        if c == 34:
            return i + 1
        if c < 32:
            return -1
        if c != 92:
            if escape:
                _put_escaped_byte(b, c)
            else:
                _putc(b, c)
            i += 1
            continue
        if i + 1 >= end:
            return -1
        c = p[i + 1]
        i += 2
        if c == 117:  # \uXXXX, maybe a surrogate pair
            u = _hex4(p, i, end)
            if u < 0:
                return -1
            i += 4
            cp = u
            if 0xD800 <= u < 0xDC00 and i + 6 <= end and p[i] == 92 and p[i + 1] == 117:
                lo = _hex4(p, i + 2, end)
                if 0xDC00 <= lo < 0xE000:
                    cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    i += 6
            if 0xD800 <= cp < 0xE000:  # a lone surrogate stays escaped
                _put(b, <const uint8_t*>b"\\u", 2)
                _putc(b, HEX[(cp >> 12) & 15]); _putc(b, HEX[(cp >> 8) & 15])
                _putc(b, HEX[(cp >> 4) & 15]); _putc(b, HEX[cp & 15])
            elif escape and cp < 0x80:
                _put_escaped_byte(b, <uint8_t>cp)
            else:
                _put_utf8(b, cp)
            continue
        if c == 34 or c == 92 or c == 47:
            cp = c
        elif c == 98:
            cp = 8
        elif c == 102:
            cp = 12
        elif c == 110:
            cp = 10
        elif c == 114:
            cp = 13
        elif c == 116:
            cp = 9
        else:
            return -1
        if escape:
            _put_escaped_byte(b, <uint8_t>cp)
        else:
            _putc(b, <uint8_t>cp)
    return -1


cdef Py_ssize_t _number(const uint8_t* p, Py_ssize_t i, Py_ssize_t end, bint* is_double) noexcept nogil:
    """The index past the JSON number at ``i`` (strict grammar), or -1."""
    cdef Py_ssize_t digits
    is_double[0] = False
    if i < end and p[i] == 45:
        i += 1
    if i >= end or not (48 <= p[i] <= 57):
        return -1
    if p[i] == 48:
        i += 1
        if i < end and 48 <= p[i] <= 57:  # no leading zeros (Jackson refuses them)
            return -1
    else:
        while i < end and 48 <= p[i] <= 57:
            i += 1
    if i < end and p[i] == 46:
        is_double[0] = True
        i += 1
        digits = i
        while i < end and 48 <= p[i] <= 57:
            i += 1
        if i == digits:
            return -1
    if i < end and (p[i] == 101 or p[i] == 69):
        is_double[0] = True
        i += 1
        if i < end and (p[i] == 43 or p[i] == 45):
            i += 1
        digits = i
        while i < end and 48 <= p[i] <= 57:
            i += 1
        if i == digits:
            return -1
    return i


cdef Py_ssize_t _canon(const uint8_t* p, Py_ssize_t i, Py_ssize_t end, Buf* b, int depth) noexcept nogil:
    """Parses the value at ``i`` strictly and writes its canonical text; returns the index
    past it, or -1."""
    cdef uint8_t c
    cdef bint dbl
    cdef Py_ssize_t j
    if depth > MAX_DEPTH:
        return -1
    i = _ws(p, i, end)
    if i >= end:
        return -1
    c = p[i]
    if c == 123 or c == 91:
        _putc(b, c)
        i = _ws(p, i + 1, end)
        if i < end and p[i] == c + 2:
            _putc(b, c + 2)
            return i + 1
        while True:
            if c == 123:
                i = _ws(p, i, end)
                if i >= end or p[i] != 34:
                    return -1
                _putc(b, 34)
                i = _string(p, i + 1, end, b, True)
                if i < 0:
                    return -1
                _putc(b, 34)
                i = _ws(p, i, end)
                if i >= end or p[i] != 58:
                    return -1
                _putc(b, 58)
                i += 1
            i = _canon(p, i, end, b, depth + 1)
            if i < 0:
                return -1
            i = _ws(p, i, end)
            if i >= end:
                return -1
            if p[i] == 44:
                _putc(b, 44)
                i += 1
            elif p[i] == c + 2:
                _putc(b, c + 2)
                return i + 1
            else:
                return -1
    if c == 34:
        _putc(b, 34)
        i = _string(p, i + 1, end, b, True)
        if i >= 0:
            _putc(b, 34)
        return i
    if c == 116 and i + 4 <= end and memcmp(p + i, b"true", 4) == 0:
        _put(b, p + i, 4)
        return i + 4
    if c == 102 and i + 5 <= end and memcmp(p + i, b"false", 5) == 0:
        _put(b, p + i, 5)
        return i + 5
    if c == 110 and i + 4 <= end and memcmp(p + i, b"null", 4) == 0:
        _put(b, p + i, 4)
        return i + 4
    j = _number(p, i, end, &dbl)
    if j < 0:
        return -1
    _put(b, p + i, j - i)
    return j


def canonical(const int64_t[::1] offsets, const uint8_t[::1] data, const uint8_t[::1] valid):
    """Each valid row's JSON as canonical text. Returns (offsets, data, ok uint8[n]): ok is
    0 for null rows and rows that are not JSON (Jackson's ``readValue``, which ignores
    anything after the first complete value)."""
    cdef Py_ssize_t n = valid.shape[0], r, j, mark
    cdef Buf b
    cdef int64_t[::1] out_offsets
    cdef uint8_t[::1] ok
    cdef const uint8_t* p = &data[0] if data.shape[0] else NULL
    out = np.zeros(n + 1, dtype=np.int64)
    oks = np.zeros(n, dtype=np.uint8)
    out_offsets = out
    ok = oks
    b.p = NULL; b.n = 0; b.cap = 0; b.oom = False
    with nogil:
        for r in range(n):
            if valid[r]:
                mark = b.n
                j = _canon(p, offsets[r], offsets[r + 1], &b, 0)
                if j < 0:
                    b.n = mark
                else:
                    ok[r] = 1
            out_offsets[r + 1] = b.n
    return out, _take(&b), oks


# --- reading canonical text -----------------------------------------------------------------

cdef Py_ssize_t _skip(const uint8_t* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """The index past the value at ``i`` (text already known to be JSON)."""
    cdef int depth = 0
    cdef uint8_t c
    while i < end:
        c = p[i]
        if c == 34:
            i += 1
            while i < end and p[i] != 34:
                i += 2 if p[i] == 92 else 1
            i += 1
            if depth == 0:
                return i
            continue
        if c == 123 or c == 91:
            depth += 1
        elif c == 125 or c == 93:
            depth -= 1
            if depth == 0:
                return i + 1
            if depth < 0:
                return i
        elif depth == 0 and (c == 44 or c == 32 or c == 9 or c == 10 or c == 13):
            return i
        i += 1
    return i


cdef int _kind(const uint8_t* p, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef uint8_t c
    if i >= j:
        return MISSING
    c = p[i]
    if c == 34:
        return K_STRING
    if c == 123:
        return K_OBJECT
    if c == 91:
        return K_ARRAY
    if c == 116:
        return K_TRUE
    if c == 102:
        return K_FALSE
    if c == 110:
        return K_NULL
    while i < j:
        if p[i] == 46 or p[i] == 101 or p[i] == 69:
            return K_DOUBLE
        i += 1
    return K_LONG


cdef struct Part:
    const uint8_t* key  # NULL for an array index
    Py_ssize_t key_len
    Py_ssize_t index


cdef Py_ssize_t _count(const uint8_t* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """The number of elements of the array at ``i``."""
    cdef Py_ssize_t k = 0
    i = _ws(p, i + 1, end)
    if i < end and p[i] == 93:
        return 0
    while i < end:
        i = _skip(p, _ws(p, i, end), end)
        k += 1
        i = _ws(p, i, end)
        if i >= end or p[i] != 44:
            return k
        i += 1
    return k


cdef Py_ssize_t _find(const uint8_t* p, Py_ssize_t i, Py_ssize_t end, Part* parts, int nparts) noexcept nogil:
    """The start of the value at the path, or -1 when there is none."""
    cdef int k
    cdef Py_ssize_t idx, at, ks
    for k in range(nparts):
        i = _ws(p, i, end)
        if i >= end:
            return -1
        if parts[k].key != NULL:
            if p[i] != 123:
                return -1
            i = _ws(p, i + 1, end)
            if i < end and p[i] == 125:
                return -1
            while True:
                i = _ws(p, i, end)
                if i >= end or p[i] != 34:
                    return -1
                ks = i + 1
                i = _skip(p, i, end)
                if i - 1 - ks == parts[k].key_len and memcmp(p + ks, parts[k].key, parts[k].key_len) == 0:
                    i = _ws(p, i, end) + 1  # past ':'
                    break
                i = _skip(p, _ws(p, _ws(p, i, end) + 1, end), end)
                i = _ws(p, i, end)
                if i >= end or p[i] != 44:
                    return -1
                i += 1
        else:
            if p[i] != 91:
                return -1
            idx = parts[k].index
            if idx < 0:
                idx += _count(p, i, end)
                if idx < 0:
                    return -1
            i = _ws(p, i + 1, end)
            if i < end and p[i] == 93:
                return -1
            at = 0
            while at < idx:
                i = _skip(p, _ws(p, i, end), end)
                i = _ws(p, i, end)
                if i >= end or p[i] != 44:
                    return -1
                i += 1
                at += 1
    return _ws(p, i, end)


cdef int _parts(list path, Part* parts) except -1:
    """Fills ``parts`` from a Python path; the keys point into the path's bytes objects."""
    cdef const uint8_t[::1] view
    cdef int k = 0
    if len(path) > MAX_PARTS:
        raise ValueError(f"a path has at most {MAX_PARTS} parts")
    for part in path:
        if isinstance(part, bytes):
            parts[k].key = <const uint8_t*>(<bytes>part)
            parts[k].key_len = len(<bytes>part)
            parts[k].index = 0
        else:
            parts[k].key = NULL
            parts[k].key_len = 0
            parts[k].index = part
        k += 1
    return k


cdef void _put_literal(Buf* b, const uint8_t* p, Py_ssize_t i, Py_ssize_t j, int kind) noexcept nogil:
    """A literal's value as text: a string unescaped, anything else as written."""
    if kind == K_STRING:
        _string(p, i + 1, j, b, False)
    else:
        _put(b, p + i, j - i)


def extract(const int64_t[::1] offsets, const uint8_t[::1] data, const uint8_t[::1] valid, list path,
            bint literal):
    """The value at ``path`` per row: its JSON text, or (``literal``) the value of a string,
    number, true or false (other kinds give no text). Returns (kinds uint8[n], offsets, data)."""
    cdef Part parts[MAX_PARTS]
    cdef int nparts = _parts(path, parts)
    cdef Py_ssize_t n = valid.shape[0], r, i, j, end
    cdef int kind
    cdef Buf b
    cdef int64_t[::1] out_offsets
    cdef uint8_t[::1] kinds
    cdef const uint8_t* p = &data[0] if data.shape[0] else NULL
    out = np.zeros(n + 1, dtype=np.int64)
    kinds_np = np.zeros(n, dtype=np.uint8)
    out_offsets = out
    kinds = kinds_np
    b.p = NULL; b.n = 0; b.cap = 0; b.oom = False
    with nogil:
        for r in range(n):
            if valid[r]:
                end = offsets[r + 1]
                i = _find(p, offsets[r], end, parts, nparts)
                if i >= 0 and i < end:
                    j = _skip(p, i, end)
                    kind = _kind(p, i, j)
                    kinds[r] = kind
                    if not literal:
                        _put(&b, p + i, j - i)
                    elif K_STRING <= kind <= K_FALSE:
                        _put_literal(&b, p, i, j, kind)
            out_offsets[r + 1] = b.n
    return kinds_np, out, _take(&b)


def elements(const int64_t[::1] offsets, const uint8_t[::1] data, const uint8_t[::1] valid, list path):
    """The array at ``path`` per row as literals (a lone literal is a one-element array).
    Returns (row ok uint8[n], row offsets int64[n + 1], element kinds uint8, element
    offsets, element data); an array holding an object or array gives no row."""
    cdef Part parts[MAX_PARTS]
    cdef int nparts = _parts(path, parts)
    cdef Py_ssize_t n = valid.shape[0], r, i, j, end, mark_b, mark_k, count
    cdef int kind
    cdef bint bad
    cdef Buf b, eo, ek, ro
    cdef uint8_t[::1] ok
    cdef const uint8_t* p = &data[0] if data.shape[0] else NULL
    oks = np.zeros(n, dtype=np.uint8)
    ok = oks
    b.p = NULL; b.n = 0; b.cap = 0; b.oom = False
    eo = b; ek = b; ro = b
    with nogil:
        _put_i64(&eo, 0)
        _put_i64(&ro, 0)
        count = 0
        for r in range(n):
            if valid[r]:
                end = offsets[r + 1]
                i = _find(p, offsets[r], end, parts, nparts)
                if i >= 0 and i < end:
                    mark_b = b.n
                    mark_k = ek.n
                    bad = False
                    kind = _kind(p, i, _skip(p, i, end))
                    if kind == K_ARRAY:
                        i = _ws(p, i + 1, end)
                        if i < end and p[i] == 93:
                            i = end
                        while i < end:
                            j = _skip(p, i, end)
                            kind = _kind(p, i, j)
                            if kind >= K_OBJECT:
                                bad = True
                                break
                            _putc(&ek, kind)
                            if kind != K_NULL:
                                _put_literal(&b, p, i, j, kind)
                            _put_i64(&eo, b.n)
                            i = _ws(p, j, end)
                            if i >= end or p[i] != 44:
                                break
                            i = _ws(p, i + 1, end)
                    elif kind == K_OBJECT:
                        bad = True
                    else:
                        _putc(&ek, kind)
                        if kind != K_NULL:
                            _put_literal(&b, p, i, _skip(p, i, end), kind)
                        _put_i64(&eo, b.n)
                    if bad:
                        eo.n -= (ek.n - mark_k) * 8
                        ek.n = mark_k
                        b.n = mark_b
                    else:
                        ok[r] = 1
            _put_i64(&ro, ek.n)
    row_offsets = _int64s(&ro)
    kinds = np.frombuffer(_take(&ek), dtype=np.uint8)
    return oks, row_offsets, kinds, _int64s(&eo), _take(&b)


def keys(const int64_t[::1] offsets, const uint8_t[::1] data, const uint8_t[::1] valid, list path):
    """The field names of the object at ``path`` (an array's indexes as text), per row.
    Returns (row ok uint8[n], row offsets int64[n + 1], key offsets, key data)."""
    cdef Part parts[MAX_PARTS]
    cdef int nparts = _parts(path, parts)
    cdef Py_ssize_t n = valid.shape[0], r, i, end, count, k
    cdef Buf b, ko, ro
    cdef uint8_t[::1] ok
    cdef const uint8_t* p = &data[0] if data.shape[0] else NULL
    oks = np.zeros(n, dtype=np.uint8)
    ok = oks
    b.p = NULL; b.n = 0; b.cap = 0; b.oom = False
    ko = b; ro = b
    with nogil:
        _put_i64(&ko, 0)
        _put_i64(&ro, 0)
        count = 0
        for r in range(n):
            if valid[r]:
                end = offsets[r + 1]
                i = _find(p, offsets[r], end, parts, nparts)
                if i >= 0 and i < end and p[i] == 123:
                    ok[r] = 1
                    i = _ws(p, i + 1, end)
                    while i < end and p[i] == 34:
                        i = _string(p, i + 1, end, &b, False)
                        _put_i64(&ko, b.n)
                        count += 1
                        i = _skip(p, _ws(p, _ws(p, i, end) + 1, end), end)
                        i = _ws(p, i, end)
                        if i >= end or p[i] != 44:
                            break
                        i = _ws(p, i + 1, end)
                elif i >= 0 and i < end and p[i] == 91:
                    ok[r] = 1
                    for k in range(_count(p, i, end)):
                        _put_index(&b, k)
                        _put_i64(&ko, b.n)
                        count += 1
            _put_i64(&ro, count)
    return oks, _int64s(&ro), _int64s(&ko), _take(&b)


cdef inline void _reverse(char* s, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t a = 0, z = k - 1
    cdef char t
    while a < z:
        t = s[a]; s[a] = s[z]; s[z] = t
        a += 1; z -= 1


cdef inline void _put_index(Buf* b, Py_ssize_t k) noexcept nogil:
    """``k`` in decimal."""
    cdef Py_ssize_t start = b.n
    while True:
        _putc(b, 48 + k % 10)
        k //= 10
        if k == 0:
            break
    if not b.oom:
        _reverse(b.p + start, b.n - start)


cdef inline bint _plain_field(const uint8_t* s, Py_ssize_t k) noexcept nogil:
    """Druid writes a field as ``.name`` unless it holds . ' \" [ or ]."""
    cdef Py_ssize_t i
    for i in range(k):
        if s[i] == 46 or s[i] == 39 or s[i] == 34 or s[i] == 91 or s[i] == 93:
            return False
    return True


cdef bint _all_literals(const uint8_t* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """Whether the array at ``i`` holds only literals (Druid stores it as one field)."""
    cdef Py_ssize_t j
    i = _ws(p, i + 1, end)
    while i < end and p[i] != 93:
        j = _skip(p, i, end)
        if _kind(p, i, j) >= K_OBJECT:
            return False
        i = _ws(p, j, end)
        if i < end and p[i] == 44:
            i = _ws(p, i + 1, end)
    return True


cdef Py_ssize_t _walk(const uint8_t* p, Py_ssize_t i, Py_ssize_t end, Buf* prefix, Buf* b, Buf* ko,
                      Py_ssize_t* count, int depth) noexcept nogil:
    """Appends the path of every literal under the value at ``i`` (whose path is
    ``prefix``) as Druid's StructuredDataProcessor visits them; returns the index past it."""
    cdef Py_ssize_t j, mark, k, m, field_start
    cdef int kind
    i = _ws(p, i, end)
    j = _skip(p, i, end)
    kind = _kind(p, i, j)
    if depth > MAX_DEPTH:
        return j
    if kind == K_OBJECT:
        i = _ws(p, i + 1, end)
        while i < end and p[i] == 34:
            mark = prefix.n
            # the field name, unescaped, after "." or inside "['...']"
            field_start = b.n
            i = _string(p, i + 1, end, b, False)
            k = b.n - field_start
            if _plain_field(<const uint8_t*>b.p + field_start, k):
                _putc(prefix, 46)
                _put(prefix, <const uint8_t*>b.p + field_start, k)
            else:
                _put(prefix, <const uint8_t*>b"['", 2)
                _put(prefix, <const uint8_t*>b.p + field_start, k)
                _put(prefix, <const uint8_t*>b"']", 2)
            b.n = field_start
            i = _ws(p, _ws(p, i, end) + 1, end)
            i = _walk(p, i, end, prefix, b, ko, count, depth + 1)
            prefix.n = mark
            i = _ws(p, i, end)
            if i >= end or p[i] != 44:
                break
            i = _ws(p, i + 1, end)
        return j
    if kind == K_ARRAY and not _all_literals(p, i, end):
        i = _ws(p, i + 1, end)
        m = 0
        while i < end and p[i] != 93:
            mark = prefix.n
            _putc(prefix, 91)
            _put_index(prefix, m)
            _putc(prefix, 93)
            i = _walk(p, i, end, prefix, b, ko, count, depth + 1)
            prefix.n = mark
            m += 1
            i = _ws(p, i, end)
            if i >= end or p[i] != 44:
                break
            i = _ws(p, i + 1, end)
        return j
    _putc(b, 36)  # "$"
    _put(b, <const uint8_t*>prefix.p, prefix.n)
    _put_i64(ko, b.n)
    count[0] += 1
    return j


def paths(const int64_t[::1] offsets, const uint8_t[::1] data, const uint8_t[::1] valid):
    """Every path to a literal (arrays of literals count as one), per row, in Druid's
    normalized JSONPath form. Returns (row ok uint8[n], row offsets, path offsets, path data)."""
    cdef Py_ssize_t n = valid.shape[0], r, count = 0
    cdef Buf b, ko, ro, prefix
    cdef uint8_t[::1] ok
    cdef const uint8_t* p = &data[0] if data.shape[0] else NULL
    oks = np.zeros(n, dtype=np.uint8)
    ok = oks
    b.p = NULL; b.n = 0; b.cap = 0; b.oom = False
    ko = b; ro = b; prefix = b
    with nogil:
        _put_i64(&ko, 0)
        _put_i64(&ro, 0)
        for r in range(n):
            if valid[r]:
                ok[r] = 1
                prefix.n = 0
                _walk(p, offsets[r], offsets[r + 1], &prefix, &b, &ko, &count, 0)
            _put_i64(&ro, count)
    free(prefix.p)
    if prefix.oom:
        raise MemoryError()
    return oks, _int64s(&ro), _int64s(&ko), _take(&b)


def quote(const int64_t[::1] offsets, const uint8_t[::1] data, const uint8_t[::1] valid):
    """Each valid row's text as a JSON string literal (null rows stay empty)."""
    cdef Py_ssize_t n = valid.shape[0], r, i
    cdef Buf b
    cdef int64_t[::1] out_offsets
    cdef const uint8_t* p = &data[0] if data.shape[0] else NULL
    out = np.zeros(n + 1, dtype=np.int64)
    out_offsets = out
    b.p = NULL; b.n = 0; b.cap = 0; b.oom = False
    with nogil:
        for r in range(n):
            if valid[r]:
                _putc(&b, 34)
                for i in range(offsets[r], offsets[r + 1]):
                    _put_escaped_byte(&b, p[i])
                _putc(&b, 34)
            out_offsets[r + 1] = b.n
    return out, _take(&b)
