# cython: language_level=3
"""Hot kernels of the frame format (``msqcore.engine.frames``, layout in ``docs/frames.md``).

* ``FrameSource``: typed views over the columns (and sort keys) of an Arrow batch or of a
  frame, plus each row's size in bits ("cost"), so frames can be cut before writing them.
* ``encode_keys``: the sort-key bytes of every row (memcmp order == SQL order).
* ``gather_frame``: write the rows ``(source[i], row[i])`` for i in [start, end) into one
  frame, as many as fit in ``max_frame_size`` bytes. Encoding a batch, spilling a sorted
  buffer and writing merged output are all this one gather.
* ``frame_layout`` / ``check_frame``: header parsing with the cheap checks, and the O(n)
  checks of every offset, the checksum and the key order.
* ``key_prefix_lengths``: how many bytes of each key the first ``m`` key columns take (the
  bucket prefix of key statistics).

Style: validate and allocate under the GIL, one ``with nogil:`` section per pass, errors
reported through a flag and raised after the GIL is re-acquired. Every read of a buffer
goes through ``memcpy``, so nothing needs to be aligned.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp, memcpy, memset

import numpy as np

cdef extern from *:
    """
    #include <string.h>
    static inline uint64_t msq_bswap64(uint64_t x) { return __builtin_bswap64(x); }
    static inline uint32_t msq_bswap32(uint32_t x) { return __builtin_bswap32(x); }

    /* XXH32 (xxHash, 32-bit), the frame checksum. */
    static inline uint32_t msq_rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }
    static inline uint32_t msq_rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
    static uint32_t msq_xxh32(const uint8_t *p, size_t len, uint32_t seed) {
        const uint32_t P1 = 2654435761U, P2 = 2246822519U, P3 = 3266489917U,
                       P4 = 668265263U, P5 = 374761393U;
        const uint8_t *end = p + len;
        uint32_t h;
        if (len >= 16) {
            const uint8_t *limit = end - 16;
            uint32_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
            do {
                v1 = msq_rotl32(v1 + msq_rd32(p) * P2, 13) * P1; p += 4;
                v2 = msq_rotl32(v2 + msq_rd32(p) * P2, 13) * P1; p += 4;
                v3 = msq_rotl32(v3 + msq_rd32(p) * P2, 13) * P1; p += 4;
                v4 = msq_rotl32(v4 + msq_rd32(p) * P2, 13) * P1; p += 4;
            } while (p <= limit);
            h = msq_rotl32(v1, 1) + msq_rotl32(v2, 7) + msq_rotl32(v3, 12) + msq_rotl32(v4, 18);
        } else {
            h = seed + P5;
        }
        h += (uint32_t)len;
        while (p + 4 <= end) { h += msq_rd32(p) * P3; h = msq_rotl32(h, 17) * P4; p += 4; }
        while (p < end) { h += (*p) * P5; h = msq_rotl32(h, 11) * P1; p++; }
        h ^= h >> 15; h *= P2; h ^= h >> 13; h *= P3; h ^= h >> 16;
        return h;
    }
    """
    uint64_t msq_bswap64(uint64_t x) noexcept nogil
    uint32_t msq_bswap32(uint32_t x) noexcept nogil
    uint32_t msq_xxh32(const uint8_t* p, size_t n, uint32_t seed) noexcept nogil


def xxh32(const uint8_t[::1] data, uint32_t seed=0):
    """XXH32 of ``data`` (the frame checksum covers every byte after the header)."""
    cdef uint32_t h
    with nogil:
        h = msq_xxh32(&data[0] if data.shape[0] > 0 else NULL, <size_t>data.shape[0], seed)
    return h


cdef enum:
    HDR = 32            # header bytes
    F_HAS_KEY = 1       # frame flags
    F_SORTED = 2

MAGIC = b"MSQF"
FORMAT_VERSION = 1
HEADER_SIZE = HDR
FLAG_HAS_KEY = F_HAS_KEY
FLAG_SORTED = F_SORTED

cdef uint64_t SIGN64 = 0x8000000000000000ULL
cdef uint32_t SIGN32 = 0x80000000U
cdef int64_t BUFFER_SLACK = 12     # per buffer: alignment (<= 7) + ceil of a bitmap or offsets[0]

# Key bytes: scalar null / value; list null / value, then elements, then the end marker.
cdef uint8_t K_NULL = 0x00
cdef uint8_t K_VALUE = 0x01
cdef uint8_t K_END = 0x01
cdef uint8_t K_ELEM_NULL = 0x02
cdef uint8_t K_ELEM_VALUE = 0x03


# --- small helpers ----------------------------------------------------------------------------

cdef inline int64_t pad8(int64_t n) noexcept nogil:
    return (n + 7) & ~(<int64_t>7)


cdef inline int64_t ld_off(const uint8_t* p, bint large, int64_t i) noexcept nogil:
    cdef int32_t a
    cdef int64_t b
    if large:
        memcpy(&b, p + 8 * i, 8)
        return b
    memcpy(&a, p + 4 * i, 4)
    return a


cdef inline void st_i32(uint8_t* p, int64_t i, int64_t v) noexcept nogil:
    cdef int32_t a = <int32_t>v
    memcpy(p + 4 * i, &a, 4)


cdef inline uint32_t ld_u32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint16_t ld_u16(const uint8_t* p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v


cdef inline void st_u32(uint8_t* p, uint32_t v) noexcept nogil:
    memcpy(p, &v, 4)


cdef inline void st_u16(uint8_t* p, uint16_t v) noexcept nogil:
    memcpy(p, &v, 2)


cdef inline bint row_valid(const ColView* c, int64_t i) noexcept nogil:
    cdef int64_t b
    if c.validity == NULL:
        return True
    b = c.vbit + i
    return (c.validity[b >> 3] >> (b & 7)) & 1


cdef inline bint elem_valid(const ColView* c, int64_t e) noexcept nogil:
    cdef int64_t b
    if c.cvalidity == NULL:
        return True
    b = c.cvbit + e
    return (c.cvalidity[b >> 3] >> (b & 7)) & 1


cdef inline void set_bit(uint8_t* bm, int64_t j) noexcept nogil:
    bm[j >> 3] |= <uint8_t>(1 << (j & 7))


cdef inline bint is_fixed(int t) noexcept nogil:
    return t == FT_LONG or t == FT_FLOAT or t == FT_DOUBLE


cdef inline bint is_fixed_list(int t) noexcept nogil:
    return t == FT_LONG_ARRAY or t == FT_FLOAT_ARRAY or t == FT_DOUBLE_ARRAY


cdef inline bint is_string_list(int t) noexcept nogil:
    return t == FT_MV_STRING or t == FT_STRING_ARRAY


cdef inline int type_width(int t) noexcept nogil:
    if t == FT_LONG or t == FT_DOUBLE or t == FT_LONG_ARRAY or t == FT_DOUBLE_ARRAY:
        return 8
    if t == FT_FLOAT or t == FT_FLOAT_ARRAY:
        return 4
    return 0


cdef inline int type_buffers(int t) noexcept nogil:
    if is_fixed(t) or t == FT_KEY:
        return 2
    if t == FT_STRING:
        return 3
    if is_fixed_list(t):
        return 4
    if is_string_list(t):
        return 5
    return 0


def buffer_count(int column_type):
    """Buffers a column of ``column_type`` has in a frame (0 for an unknown type)."""
    return type_buffers(column_type)


def frame_overhead(Py_ssize_t schema_len, Py_ssize_t num_buffers):
    """Upper bound of the bytes a frame needs besides its rows' bits (header, schema, directory, slack)."""
    return HDR + pad8(schema_len) + pad8(8 * num_buffers) + BUFFER_SLACK * num_buffers


# --- row costs --------------------------------------------------------------------------------

cdef inline int64_t row_cost(const ColView* c, int64_t i) noexcept nogil:
    """Bits row ``i`` adds to a frame: an upper bound consistent with ``gather_frame``."""
    cdef int t = c.type
    cdef int64_t s, e, x, cost, a, b
    if is_fixed(t):
        return 1 + 8 * c.width
    s = ld_off(c.offsets, c.large, i)
    e = ld_off(c.offsets, c.large, i + 1)
    if t == FT_KEY:
        return 32 + 8 * (e - s)
    if not row_valid(c, i):
        return 33
    if t == FT_STRING:
        return 33 + 8 * (e - s)
    if is_fixed_list(t):
        return 33 + (e - s) * (1 + 8 * c.width)
    cost = 33
    for x in range(s, e):
        cost += 33
        if elem_valid(c, x):
            a = ld_off(c.coffsets, c.clarge, x)
            b = ld_off(c.coffsets, c.clarge, x + 1)
            cost += 8 * (b - a)
    return cost


cdef class FrameSource:
    """Column views of one batch or frame (see ``_frame.pxd``).

    Build one with ``FrameSource(num_rows, num_columns, has_key)`` and ``set_column`` /
    ``set_key`` (Arrow buffers, by address), then ``finalize()``; or with ``from_frame(buf)``.
    """

    def __cinit__(self, Py_ssize_t num_rows, Py_ssize_t num_columns, bint has_key):
        if num_rows < 0 or num_columns < 0:
            raise ValueError("negative row or column count")
        self.num_rows = num_rows
        self.num_columns = num_columns
        self.has_key = has_key
        self.sorted = False
        self._owners = []
        self.costs = None
        self.cost_ptr = NULL
        self.cols = <ColView*>malloc(sizeof(ColView) * (num_columns + 1))
        if self.cols == NULL:
            raise MemoryError()
        memset(self.cols, 0, sizeof(ColView) * (num_columns + 1))

    def __dealloc__(self):
        free(self.cols)

    def set_column(self, Py_ssize_t i, int column_type, object owner,
                   uintptr_t validity, int64_t vbit, uintptr_t values, uintptr_t offsets,
                   bint large, uintptr_t data, uintptr_t cvalidity=0, int64_t cvbit=0,
                   uintptr_t cvalues=0, uintptr_t coffsets=0, bint clarge=False, uintptr_t cdata=0):
        """Point column ``i`` at buffers (addresses, 0 = none) already advanced to row 0.

        ``owner`` is kept alive as long as this source. Only for trusted (Arrow-validated) memory.
        """
        cdef ColView* c
        if i < 0 or i >= self.num_columns:
            raise IndexError(f"column {i} out of range")
        if type_buffers(column_type) == 0 or column_type == FT_KEY:
            raise ValueError(f"unknown column type {column_type}")
        self._owners.append(owner)
        c = &self.cols[i]
        c.type = column_type
        c.width = type_width(column_type)
        c.validity = <const uint8_t*>validity
        c.vbit = vbit
        c.values = <const uint8_t*>values
        c.offsets = <const uint8_t*>offsets
        c.large = large
        c.data = <const uint8_t*>data
        c.cvalidity = <const uint8_t*>cvalidity
        c.cvbit = cvbit
        c.cvalues = <const uint8_t*>cvalues
        c.coffsets = <const uint8_t*>coffsets
        c.clarge = clarge
        c.cdata = <const uint8_t*>cdata

    def set_key(self, object owner, uintptr_t offsets, bint large, uintptr_t data):
        """Point the key column at ``offsets`` (int32 or int64, row 0's entry) and ``data``."""
        cdef ColView* c
        if not self.has_key:
            raise ValueError("this source has no key column")
        self._owners.append(owner)
        c = &self.cols[self.num_columns]
        c.type = FT_KEY
        c.width = 0
        c.offsets = <const uint8_t*>offsets
        c.large = large
        c.data = <const uint8_t*>data

    def finalize(self):
        """Compute the row costs; call once every column (and the key) is set."""
        cdef Py_ssize_t i
        for i in range(self.num_columns + (1 if self.has_key else 0)):
            if self.cols[i].type == 0:
                raise ValueError(f"column {i} was never set")
        self._compute_costs()
        return self

    cdef int _compute_costs(self) except -1:
        cdef:
            Py_ssize_t n = self.num_rows
            Py_ssize_t ncol = self.num_columns + (1 if self.has_key else 0)
            Py_ssize_t c, i
            int64_t fixed = 0
            int64_t[::1] out
            const ColView* v
        arr = np.zeros(n, dtype=np.int64)
        out = arr
        with nogil:
            for c in range(ncol):
                v = &self.cols[c]
                if is_fixed(v.type):
                    fixed += row_cost(v, 0)
                    continue
                for i in range(n):
                    out[i] += row_cost(v, i)
            if fixed:
                for i in range(n):
                    out[i] += fixed
        self.costs = arr
        self.cost_ptr = &out[0] if n > 0 else NULL
        return 0

    @staticmethod
    def from_frame(buf):
        """Views over a frame (``bytes`` or any buffer), after the cheap header checks."""
        cdef const uint8_t[::1] mv = buf
        cdef const uint8_t* base
        cdef FrameSource src
        cdef ColView* c
        cdef Py_ssize_t col, b, n
        cdef int t
        layout = frame_layout(buf)
        n = layout[0]
        flags = layout[1]
        types = layout[2]
        directory = layout[6]
        src = FrameSource(n, len(types), bool(flags & F_HAS_KEY))
        src.sorted = bool(flags & F_SORTED)
        src._owners.append(buf)
        base = &mv[0]
        b = 0
        for col in range(len(types) + (1 if src.has_key else 0)):
            t = types[col] if col < len(types) else FT_KEY
            c = &src.cols[col]
            c.type = t
            c.width = type_width(t)
            if t == FT_KEY:
                c.offsets = base + <int64_t>directory[b][0]
                c.data = base + <int64_t>directory[b + 1][0]
            else:
                c.validity = base + <int64_t>directory[b][0] if directory[b][1] else NULL
                if is_fixed(t):
                    c.values = base + <int64_t>directory[b + 1][0]
                else:
                    c.offsets = base + <int64_t>directory[b + 1][0]
                    if t == FT_STRING:
                        c.data = base + <int64_t>directory[b + 2][0]
                    else:
                        c.cvalidity = base + <int64_t>directory[b + 2][0] if directory[b + 2][1] else NULL
                        if is_fixed_list(t):
                            c.cvalues = base + <int64_t>directory[b + 3][0]
                        else:
                            c.coffsets = base + <int64_t>directory[b + 3][0]
                            c.cdata = base + <int64_t>directory[b + 4][0]
            b += type_buffers(t)
        src._compute_costs()
        return src


# --- sort keys --------------------------------------------------------------------------------

cdef inline int64_t esc_len(const uint8_t* p, int64_t n) noexcept nogil:
    """Bytes of an escaped string: every 0x00 becomes 0x00 0xFF, then the 0x00 0x00 terminator."""
    cdef int64_t zeros = 0
    cdef const uint8_t* s = p
    cdef const uint8_t* end = p + n
    cdef const void* q
    while s < end:
        q = memchr(s, 0, <size_t>(end - s))
        if q == NULL:
            break
        zeros += 1
        s = <const uint8_t*>q + 1
    return n + zeros + 2


cdef inline int64_t esc_write(uint8_t* out, const uint8_t* p, int64_t n) noexcept nogil:
    cdef int64_t pos = 0, run
    cdef const uint8_t* s = p
    cdef const uint8_t* end = p + n
    cdef const void* q
    while s < end:
        q = memchr(s, 0, <size_t>(end - s))
        if q == NULL:
            memcpy(out + pos, s, <size_t>(end - s))
            pos += end - s
            break
        run = <const uint8_t*>q - s
        memcpy(out + pos, s, <size_t>run)
        pos += run
        out[pos] = 0x00
        out[pos + 1] = 0xFF
        pos += 2
        s = <const uint8_t*>q + 1
    out[pos] = 0x00
    out[pos + 1] = 0x00
    return pos + 2


cdef inline uint64_t long_bits(int64_t v) noexcept nogil:
    return (<uint64_t>v) ^ SIGN64


cdef inline uint64_t double_bits(double d) noexcept nogil:
    """Order-preserving bits: -inf < ... < -0.0 == 0.0 < ... < +inf < NaN (every NaN equal)."""
    cdef uint64_t bits
    if d != d:
        bits = 0x7FF8000000000000ULL
    elif d == 0.0:
        bits = 0
    else:
        memcpy(&bits, &d, 8)
    if bits & SIGN64:
        return ~bits
    return bits | SIGN64


cdef inline uint32_t float_bits(float f) noexcept nogil:
    cdef uint32_t bits
    if f != f:
        bits = 0x7FC00000U
    elif f == 0.0:
        bits = 0
    else:
        memcpy(&bits, &f, 4)
    if bits & SIGN32:
        return ~bits
    return bits | SIGN32


cdef inline void put_be64(uint8_t* out, uint64_t v) noexcept nogil:
    v = msq_bswap64(v)
    memcpy(out, &v, 8)


cdef inline void put_be32(uint8_t* out, uint32_t v) noexcept nogil:
    v = msq_bswap32(v)
    memcpy(out, &v, 4)


cdef inline int64_t key_size(const ColView* c, int64_t i) noexcept nogil:
    cdef int t = c.type
    cdef int64_t s, e, x, a, b, size
    if not row_valid(c, i):
        return 1
    if t == FT_LONG or t == FT_DOUBLE:
        return 9
    if t == FT_FLOAT:
        return 5
    s = ld_off(c.offsets, c.large, i)
    e = ld_off(c.offsets, c.large, i + 1)
    if t == FT_STRING:
        return 1 + esc_len(c.data + s, e - s)
    size = 2
    for x in range(s, e):
        if not elem_valid(c, x):
            size += 1
        elif t == FT_LONG_ARRAY or t == FT_DOUBLE_ARRAY:
            size += 9
        elif t == FT_FLOAT_ARRAY:
            size += 5
        else:
            a = ld_off(c.coffsets, c.clarge, x)
            b = ld_off(c.coffsets, c.clarge, x + 1)
            size += 1 + esc_len(c.cdata + a, b - a)
    return size


cdef inline int64_t key_write(const ColView* c, int64_t i, uint8_t* out) noexcept nogil:
    cdef int t = c.type
    cdef int64_t s, e, x, a, b, pos, lv
    cdef double dv
    cdef float fv
    if not row_valid(c, i):
        out[0] = K_NULL
        return 1
    out[0] = K_VALUE
    if t == FT_LONG:
        memcpy(&lv, c.values + 8 * i, 8)
        put_be64(out + 1, long_bits(lv))
        return 9
    if t == FT_DOUBLE:
        memcpy(&dv, c.values + 8 * i, 8)
        put_be64(out + 1, double_bits(dv))
        return 9
    if t == FT_FLOAT:
        memcpy(&fv, c.values + 4 * i, 4)
        put_be32(out + 1, float_bits(fv))
        return 5
    s = ld_off(c.offsets, c.large, i)
    e = ld_off(c.offsets, c.large, i + 1)
    if t == FT_STRING:
        return 1 + esc_write(out + 1, c.data + s, e - s)
    pos = 1
    for x in range(s, e):
        if not elem_valid(c, x):
            out[pos] = K_ELEM_NULL
            pos += 1
            continue
        out[pos] = K_ELEM_VALUE
        pos += 1
        if t == FT_LONG_ARRAY:
            memcpy(&lv, c.cvalues + 8 * x, 8)
            put_be64(out + pos, long_bits(lv))
            pos += 8
        elif t == FT_DOUBLE_ARRAY:
            memcpy(&dv, c.cvalues + 8 * x, 8)
            put_be64(out + pos, double_bits(dv))
            pos += 8
        elif t == FT_FLOAT_ARRAY:
            memcpy(&fv, c.cvalues + 4 * x, 4)
            put_be32(out + pos, float_bits(fv))
            pos += 4
        else:
            a = ld_off(c.coffsets, c.clarge, x)
            b = ld_off(c.coffsets, c.clarge, x + 1)
            pos += esc_write(out + pos, c.cdata + a, b - a)
    out[pos] = K_END
    return pos + 1


def encode_keys(FrameSource src, const int32_t[::1] columns, const uint8_t[::1] descending):
    """Sort-key bytes of every row of ``src`` for the key ``columns`` (indexes into ``src``).

    Returns ``(offsets int64[n + 1], data uint8[...])``. A descending column's bytes are
    inverted, so plain unsigned byte order of the keys is the SQL order.
    """
    cdef:
        Py_ssize_t n = src.num_rows
        Py_ssize_t nk = columns.shape[0]
        Py_ssize_t i, k
        int64_t pos, w, x
        int64_t[::1] offs
        uint8_t[::1] out
        uint8_t* dst
        const ColView** views
        bint bad = False
    if descending.shape[0] != nk:
        raise ValueError("columns and descending differ in length")
    for k in range(nk):
        if columns[k] < 0 or columns[k] >= src.num_columns:
            raise IndexError(f"key column {columns[k]} out of range")
    offsets_arr = np.empty(n + 1, dtype=np.int64)
    offs = offsets_arr
    views = <const ColView**>malloc(sizeof(ColView*) * (nk + 1))
    if views == NULL:
        raise MemoryError()
    try:
        for k in range(nk):
            views[k] = &src.cols[columns[k]]
        pos = 0
        with nogil:
            offs[0] = 0
            for i in range(n):
                for k in range(nk):
                    pos += key_size(views[k], i)
                offs[i + 1] = pos
        data_arr = np.empty(pos, dtype=np.uint8)
        if pos > 0:
            out = data_arr
            dst = &out[0]
            with nogil:
                for i in range(n):
                    pos = offs[i]
                    for k in range(nk):
                        w = key_write(views[k], i, dst + pos)
                        if descending[k]:
                            for x in range(pos, pos + w):
                                dst[x] = ~dst[x]
                        pos += w
                    if pos != offs[i + 1]:
                        bad = True
                        break
    finally:
        free(views)
    if bad:
        raise RuntimeError("key sizing and writing disagree")
    return offsets_arr, data_arr


cdef inline int64_t skip_string(const uint8_t* d, int64_t p, int64_t end, uint8_t x) noexcept nogil:
    cdef uint8_t b
    while p < end:
        b = d[p] ^ x
        if b != 0:
            p += 1
            continue
        if p + 1 >= end:
            return -1
        b = d[p + 1] ^ x
        p += 2
        if b == 0x00:
            return p
        if b != 0xFF:
            return -1
    return -1


cdef inline int64_t skip_column(const uint8_t* d, int64_t p, int64_t end, int t, uint8_t x) noexcept nogil:
    cdef uint8_t m
    if p >= end:
        return -1
    m = d[p] ^ x
    p += 1
    if m == K_NULL:
        return p
    if m != K_VALUE:
        return -1
    if t == FT_LONG or t == FT_DOUBLE:
        p += 8
    elif t == FT_FLOAT:
        p += 4
    elif t == FT_STRING:
        p = skip_string(d, p, end, x)
    elif is_fixed_list(t) or is_string_list(t):
        while True:
            if p >= end:
                return -1
            m = d[p] ^ x
            p += 1
            if m == K_END:
                break
            if m == K_ELEM_NULL:
                continue
            if m != K_ELEM_VALUE:
                return -1
            if t == FT_LONG_ARRAY or t == FT_DOUBLE_ARRAY:
                p += 8
            elif t == FT_FLOAT_ARRAY:
                p += 4
            else:
                p = skip_string(d, p, end, x)
                if p < 0:
                    return -1
    else:
        return -1
    if p < 0 or p > end:
        return -1
    return p


def key_prefix_lengths(const int64_t[::1] offsets, const uint8_t[::1] data,
                       const int32_t[::1] types, const uint8_t[::1] descending):
    """Bytes taken by the first ``len(types)`` key columns of every key (int64[n]).

    Raises ValueError if a key does not parse as those columns.
    """
    cdef:
        Py_ssize_t n = offsets.shape[0] - 1
        Py_ssize_t m = types.shape[0]
        Py_ssize_t i, k
        int64_t p, end
        int64_t bad = -1
        int64_t[::1] out
        const uint8_t* d = NULL
        uint8_t x
    if n < 0:
        raise ValueError("offsets are empty")
    if descending.shape[0] != m:
        raise ValueError("types and descending differ in length")
    if data.shape[0] > 0:
        d = &data[0]
    result = np.empty(n, dtype=np.int64)
    out = result
    with nogil:
        for i in range(n):
            p = offsets[i]
            end = offsets[i + 1]
            if p < 0 or end < p or end > data.shape[0]:
                bad = i
                break
            for k in range(m):
                x = 0xFF if descending[k] else 0x00
                p = skip_column(d, p, end, types[k], x)
                if p < 0:
                    break
            if p < 0:
                bad = i
                break
            out[i] = p - offsets[i]
    if bad >= 0:
        raise ValueError(f"key {bad} does not parse as the key columns")
    return result


# --- gather: rows of several sources -> one frame ----------------------------------------------

cdef struct ColSize:
    int64_t nulls
    int64_t elems
    int64_t elem_nulls
    int64_t data


cdef void size_column(const ColView** views, Py_ssize_t ns, Py_ssize_t c, const int32_t* src,
                      const int64_t* rows, int64_t n, ColSize* out) noexcept nogil:
    cdef int64_t j, i, s, e, x, a, b
    cdef const ColView* v
    cdef int t = views[src[0]][c].type
    cdef bint nullable = False
    out.nulls = 0
    out.elems = 0
    out.elem_nulls = 0
    out.data = 0
    for j in range(ns):
        if views[j][c].validity != NULL:
            nullable = True
    if is_fixed(t) and not nullable:
        return
    for j in range(n):
        v = &views[src[j]][c]
        i = rows[j]
        if t == FT_KEY:
            out.data += ld_off(v.offsets, v.large, i + 1) - ld_off(v.offsets, v.large, i)
            continue
        if not row_valid(v, i):
            out.nulls += 1
            continue
        if is_fixed(t):
            continue
        s = ld_off(v.offsets, v.large, i)
        e = ld_off(v.offsets, v.large, i + 1)
        if t == FT_STRING:
            out.data += e - s
            continue
        out.elems += e - s
        if v.cvalidity != NULL or is_string_list(t):
            for x in range(s, e):
                if not elem_valid(v, x):
                    out.elem_nulls += 1
                elif is_string_list(t):
                    a = ld_off(v.coffsets, v.clarge, x)
                    b = ld_off(v.coffsets, v.clarge, x + 1)
                    out.data += b - a


cdef void write_column(const ColView** views, Py_ssize_t c, const int32_t* src, const int64_t* rows,
                       int64_t n, uint8_t** buf) noexcept nogil:
    """Write column ``c`` of the selected rows into its (zeroed) output buffers ``buf[...]``.

    A NULL bitmap buffer means "no nulls": its bits are not written.
    """
    cdef int64_t j, i, s, e, x, a, b, pos = 0, dpos = 0
    cdef const ColView* v
    cdef int t = views[src[0]][c].type
    cdef int w = type_width(t)
    cdef uint8_t* vb
    if t == FT_KEY:
        st_i32(buf[0], 0, 0)
        for j in range(n):
            v = &views[src[j]][c]
            i = rows[j]
            s = ld_off(v.offsets, v.large, i)
            e = ld_off(v.offsets, v.large, i + 1)
            if e > s:
                memcpy(buf[1] + pos, v.data + s, <size_t>(e - s))
                pos += e - s
            st_i32(buf[0], j + 1, pos)
        return
    vb = buf[0]
    if is_fixed(t):
        if w == 8:
            for j in range(n):
                v = &views[src[j]][c]
                i = rows[j]
                if row_valid(v, i):
                    memcpy(buf[1] + 8 * j, v.values + 8 * i, 8)
                    if vb != NULL:
                        set_bit(vb, j)
                else:
                    memset(buf[1] + 8 * j, 0, 8)
        else:
            for j in range(n):
                v = &views[src[j]][c]
                i = rows[j]
                if row_valid(v, i):
                    memcpy(buf[1] + 4 * j, v.values + 4 * i, 4)
                    if vb != NULL:
                        set_bit(vb, j)
                else:
                    memset(buf[1] + 4 * j, 0, 4)
        return
    st_i32(buf[1], 0, 0)
    if t == FT_STRING:
        for j in range(n):
            v = &views[src[j]][c]
            i = rows[j]
            if row_valid(v, i):
                s = ld_off(v.offsets, v.large, i)
                e = ld_off(v.offsets, v.large, i + 1)
                if e > s:
                    memcpy(buf[2] + pos, v.data + s, <size_t>(e - s))
                    pos += e - s
                if vb != NULL:
                    set_bit(vb, j)
            st_i32(buf[1], j + 1, pos)
        return
    if is_fixed_list(t):
        for j in range(n):
            v = &views[src[j]][c]
            i = rows[j]
            if row_valid(v, i):
                s = ld_off(v.offsets, v.large, i)
                e = ld_off(v.offsets, v.large, i + 1)
                if v.cvalidity == NULL:
                    if e > s:
                        memcpy(buf[3] + pos * w, v.cvalues + s * w, <size_t>((e - s) * w))
                    if buf[2] != NULL:
                        for x in range(e - s):
                            set_bit(buf[2], pos + x)
                else:
                    for x in range(s, e):
                        if elem_valid(v, x):
                            memcpy(buf[3] + (pos + x - s) * w, v.cvalues + x * w, w)
                            if buf[2] != NULL:
                                set_bit(buf[2], pos + x - s)
                        else:
                            memset(buf[3] + (pos + x - s) * w, 0, w)
                pos += e - s
                if vb != NULL:
                    set_bit(vb, j)
            st_i32(buf[1], j + 1, pos)
        return
    # string lists
    st_i32(buf[3], 0, 0)
    for j in range(n):
        v = &views[src[j]][c]
        i = rows[j]
        if row_valid(v, i):
            s = ld_off(v.offsets, v.large, i)
            e = ld_off(v.offsets, v.large, i + 1)
            for x in range(s, e):
                if elem_valid(v, x):
                    a = ld_off(v.coffsets, v.clarge, x)
                    b = ld_off(v.coffsets, v.clarge, x + 1)
                    if b > a:
                        memcpy(buf[4] + dpos, v.cdata + a, <size_t>(b - a))
                        dpos += b - a
                    if buf[2] != NULL:
                        set_bit(buf[2], pos)
                pos += 1
                st_i32(buf[3], pos, dpos)
            if vb != NULL:
                set_bit(vb, j)
        st_i32(buf[1], j + 1, pos)


cdef inline bint contig_ok(const ColView* v) noexcept nogil:
    """A null-free column whose contiguous rows can be copied in bulk."""
    return v.validity == NULL and v.cvalidity == NULL


cdef void size_contig(const ColView* v, int64_t i0, int64_t n, ColSize* out) noexcept nogil:
    """``size_column`` for rows i0..i0+n-1 of one source, when ``contig_ok(v)``."""
    cdef int t = v.type
    cdef int64_t e0, e1
    out.nulls = 0
    out.elems = 0
    out.elem_nulls = 0
    out.data = 0
    if is_fixed(t):
        return
    e0 = ld_off(v.offsets, v.large, i0)
    e1 = ld_off(v.offsets, v.large, i0 + n)
    if t == FT_KEY or t == FT_STRING:
        out.data = e1 - e0
        return
    out.elems = e1 - e0
    if is_string_list(t):
        out.data = ld_off(v.coffsets, v.clarge, e1) - ld_off(v.coffsets, v.clarge, e0)


cdef inline void rebase(uint8_t* dst, const uint8_t* src, bint large, int64_t i0, int64_t n) noexcept nogil:
    """dst[j] = src[i0 + j] - src[i0] for j in 0..n (int32 output)."""
    cdef int64_t j, base = ld_off(src, large, i0)
    cdef const int32_t* s32
    cdef int32_t b32, x
    if not large:
        b32 = <int32_t>base
        for j in range(n + 1):
            memcpy(&x, src + 4 * (i0 + j), 4)
            x -= b32
            memcpy(dst + 4 * j, &x, 4)
        return
    for j in range(n + 1):
        st_i32(dst, j, ld_off(src, True, i0 + j) - base)


cdef void write_contig(const ColView* v, int64_t i0, int64_t n, uint8_t** buf) noexcept nogil:
    """``write_column`` for rows i0..i0+n-1 of one source, when ``contig_ok(v)``: bulk copies."""
    cdef int t = v.type
    cdef int w = type_width(t)
    cdef int64_t e0, e1, d0, d1
    cdef uint8_t* ob
    cdef uint8_t* db
    if is_fixed(t):
        memcpy(buf[1], v.values + i0 * w, <size_t>(n * w))
        return
    if t == FT_KEY or t == FT_STRING:
        ob = buf[0] if t == FT_KEY else buf[1]
        db = buf[1] if t == FT_KEY else buf[2]
        rebase(ob, v.offsets, v.large, i0, n)
        e0 = ld_off(v.offsets, v.large, i0)
        e1 = ld_off(v.offsets, v.large, i0 + n)
        if e1 > e0:
            memcpy(db, v.data + e0, <size_t>(e1 - e0))
        return
    rebase(buf[1], v.offsets, v.large, i0, n)
    e0 = ld_off(v.offsets, v.large, i0)
    e1 = ld_off(v.offsets, v.large, i0 + n)
    if is_fixed_list(t):
        if e1 > e0:
            memcpy(buf[3], v.cvalues + e0 * w, <size_t>((e1 - e0) * w))
        return
    rebase(buf[3], v.coffsets, v.clarge, e0, e1 - e0)
    d0 = ld_off(v.coffsets, v.clarge, e0)
    d1 = ld_off(v.coffsets, v.clarge, e1)
    if d1 > d0:
        memcpy(buf[4], v.cdata + d0, <size_t>(d1 - d0))


cdef void buffer_sizes(int t, int64_t n, const ColSize* cs, int64_t* out) noexcept nogil:
    cdef int w = type_width(t)
    if t == FT_KEY:
        out[0] = 4 * (n + 1)
        out[1] = cs.data
        return
    out[0] = (n + 7) // 8 if cs.nulls > 0 else 0
    if is_fixed(t):
        out[1] = n * w
        return
    out[1] = 4 * (n + 1)
    if t == FT_STRING:
        out[2] = cs.data
        return
    out[2] = (cs.elems + 7) // 8 if cs.elem_nulls > 0 else 0
    if is_fixed_list(t):
        out[3] = cs.elems * w
        return
    out[3] = 4 * (cs.elems + 1)
    out[4] = cs.data


def gather_frame(bytes schema, list sources, const int32_t[::1] source_ids, const int64_t[::1] rows,
                 Py_ssize_t start, Py_ssize_t end, int64_t max_frame_size, int flags):
    """Write rows ``(sources[source_ids[i]], rows[i])`` for i in [start, end) into one frame.

    ``schema`` is the frame's schema section; every source must have its columns (and a key
    column when ``flags`` has F_HAS_KEY). Writes as many rows as fit in ``max_frame_size``
    and returns ``(frame, next)``: the rows written are [start, next). ``(None, start)``
    means the row at ``start`` does not fit on its own.
    """
    cdef:
        Py_ssize_t ns = len(sources)
        Py_ssize_t ncols, ncv, c, b, k, nbuf
        int64_t n, r, acc = 0, budget, stop, pos, frame_len, data_start, slen
        int64_t sizes[5]
        bint has_key = (flags & F_HAS_KEY) != 0
        bint bad = False
        bint contig = False
        const ColView** views = NULL
        const int64_t** costs = NULL
        int64_t* bsize = NULL
        int64_t* boff = NULL
        uint8_t** bptr = NULL
        ColSize* csz = NULL
        int* types = NULL
        int64_t* nrows = NULL
        FrameSource fs
        uint8_t* p
        const int32_t* sp
        const int64_t* rp
        object out
    if start < 0 or end < start or end > source_ids.shape[0] or rows.shape[0] != source_ids.shape[0]:
        raise ValueError("bad row range")
    if ns == 0:
        raise ValueError("no sources")
    fs = sources[0]
    ncols = fs.num_columns
    ncv = ncols + (1 if has_key else 0)
    slen = len(schema)
    try:
        views = <const ColView**>malloc(sizeof(ColView*) * ns)
        costs = <const int64_t**>malloc(sizeof(int64_t*) * ns)
        types = <int*>malloc(sizeof(int) * (ncv + 1))
        csz = <ColSize*>malloc(sizeof(ColSize) * (ncv + 1))
        if views == NULL or costs == NULL or types == NULL or csz == NULL:
            raise MemoryError()
        for k in range(ns):
            fs = sources[k]
            if fs.num_columns != ncols or (has_key and not fs.has_key) or fs.costs is None:
                raise ValueError(f"source {k} does not match the frame schema")
            views[k] = fs.cols
            costs[k] = fs.cost_ptr
        fs = sources[0]
        nbuf = 0
        for c in range(ncv):
            types[c] = fs.cols[c].type
            nbuf += type_buffers(types[c])
        for k in range(1, ns):
            fs = sources[k]
            for c in range(ncv):
                if fs.cols[c].type != types[c]:
                    raise ValueError(f"source {k} column {c} has another type")
        nrows = <int64_t*>malloc(sizeof(int64_t) * ns)
        if nrows == NULL:
            raise MemoryError()
        for k in range(ns):
            nrows[k] = (<FrameSource>sources[k]).num_rows
        budget = (max_frame_size - frame_overhead(slen, nbuf)) * 8
        stop = start
        sp = &source_ids[0] if end > start else NULL
        rp = &rows[0] if end > start else NULL
        with nogil:
            for r in range(start, end):
                if sp[r] < 0 or sp[r] >= ns or rp[r] < 0 or rp[r] >= nrows[sp[r]]:
                    bad = True
                    stop = r
                    break
                acc += costs[sp[r]][rp[r]]
                if acc > budget:
                    break
                stop = r + 1
        if bad and stop == start:
            raise IndexError(f"row {rows[stop]} of source {source_ids[stop]} is out of range")
        if stop == start and end > start:
            return None, start
        n = stop - start
        bsize = <int64_t*>malloc(sizeof(int64_t) * (nbuf + 1))
        boff = <int64_t*>malloc(sizeof(int64_t) * (nbuf + 1))
        bptr = <uint8_t**>malloc(sizeof(uint8_t*) * (nbuf + 1))
        if bsize == NULL or boff == NULL or bptr == NULL:
            raise MemoryError()
        with nogil:
            contig = n > 0
            for r in range(start + 1, stop):
                if sp[r] != sp[start] or rp[r] != rp[start] + (r - start):
                    contig = False
                    break
            b = 0
            for c in range(ncv):
                if contig and contig_ok(&views[sp[start]][c]):
                    size_contig(&views[sp[start]][c], rp[start], n, &csz[c])
                elif n > 0:
                    size_column(views, ns, c, sp + start, rp + start, n, &csz[c])
                else:
                    memset(&csz[c], 0, sizeof(ColSize))
                buffer_sizes(types[c], n, &csz[c], sizes)
                for k in range(type_buffers(types[c])):
                    bsize[b] = sizes[k]
                    b += 1
            data_start = HDR + pad8(slen) + pad8(8 * nbuf)
            pos = data_start
            for b in range(nbuf):
                boff[b] = pos
                pos += pad8(bsize[b])
            frame_len = pos
        if frame_len > max_frame_size or frame_len > 0xFFFFFFFF:
            raise RuntimeError(f"frame of {frame_len} bytes exceeds the cost bound {max_frame_size}")
        out = PyBytes_FromStringAndSize(NULL, frame_len)
        p = <uint8_t*>PyBytes_AS_STRING(out)
        with nogil:
            # zero what the writers do not fully overwrite: header, schema and directory
            # padding, the padding after every buffer, and validity bitmaps
            memset(p, 0, <size_t>(HDR + pad8(slen) + pad8(8 * nbuf)))
            for b in range(nbuf):
                memset(p + boff[b] + bsize[b], 0, <size_t>(pad8(bsize[b]) - bsize[b]))
            if n == 0:                  # only zero offsets entries: write them as such
                memset(p + data_start, 0, <size_t>(frame_len - data_start))
            b = 0
            for c in range(ncv):
                if types[c] != FT_KEY:
                    memset(p + boff[b], 0, <size_t>bsize[b])
                    if is_fixed_list(types[c]) or is_string_list(types[c]):
                        memset(p + boff[b + 2], 0, <size_t>bsize[b + 2])
                b += type_buffers(types[c])
            memcpy(p, b"MSQF", 4)
            st_u16(p + 4, 1)
            st_u16(p + 6, <uint16_t>(flags & 3))
            st_u32(p + 8, <uint32_t>frame_len)
            st_u32(p + 12, <uint32_t>n)
            st_u32(p + 16, <uint32_t>ncols)
            st_u32(p + 20, <uint32_t>slen)
            st_u32(p + 24, <uint32_t>nbuf)
        memcpy(p + HDR, <const char*>schema, slen)
        with nogil:
            pos = HDR + pad8(slen)
            for b in range(nbuf):
                st_u32(p + pos + 8 * b, <uint32_t>boff[b])
                st_u32(p + pos + 8 * b + 4, <uint32_t>bsize[b])
                bptr[b] = p + boff[b] if bsize[b] > 0 else NULL
            if n > 0:
                b = 0
                for c in range(ncv):
                    if contig and contig_ok(&views[sp[start]][c]):
                        write_contig(&views[sp[start]][c], rp[start], n, bptr + b)
                    else:
                        write_column(views, c, sp + start, rp + start, n, bptr + b)
                    b += type_buffers(types[c])
            st_u32(p + 28, msq_xxh32(p + HDR, <size_t>(frame_len - HDR), 0))
        return out, stop
    finally:
        free(views)
        free(costs)
        free(types)
        free(csz)
        free(bsize)
        free(boff)
        free(bptr)
        free(nrows)


# --- parsing and validation ----------------------------------------------------------------------

def frame_layout(buf):
    """Parse a frame's header, schema and buffer directory, with the cheap checks.

    Returns ``(num_rows, flags, types, column_flags, names, key, directory, schema)`` where
    ``key`` is ``[(column_index, descending)]``, ``directory`` is ``[(offset, length)]`` per
    buffer and ``schema`` the raw schema section. Raises ValueError describing the problem.
    """
    cdef const uint8_t[::1] mv = buf
    cdef const uint8_t* p
    cdef Py_ssize_t size = mv.shape[0]
    cdef Py_ssize_t pos, end, i, nk, ncols, nbuf, expected, b, t
    cdef int64_t n, flags, frame_len, slen, prev, off, ln, m, data_start
    if size < HDR:
        raise ValueError(f"frame of {size} bytes is shorter than its header")
    p = &mv[0]
    if memcmp(p, b"MSQF", 4) != 0:
        raise ValueError("bad frame magic")
    if ld_u16(p + 4) != 1:
        raise ValueError(f"unsupported frame version {ld_u16(p + 4)}")
    flags = ld_u16(p + 6)
    if flags & ~3:
        raise ValueError(f"unknown frame flags {flags:#x}")
    if (flags & F_SORTED) and not (flags & F_HAS_KEY):
        raise ValueError("frame is flagged sorted but has no key column")
    frame_len = ld_u32(p + 8)
    if frame_len != size:
        raise ValueError(f"frame header says {frame_len} bytes, buffer has {size}")
    if frame_len % 8:
        raise ValueError(f"frame length {frame_len} is not a multiple of 8")
    n = ld_u32(p + 12)
    ncols = ld_u32(p + 16)
    slen = ld_u32(p + 20)
    nbuf = ld_u32(p + 24)
    if HDR + slen > size:
        raise ValueError("schema section runs past the end of the frame")
    schema = bytes(mv[HDR:HDR + slen])
    pos = HDR
    end = HDR + slen
    if pos + 4 > end:
        raise ValueError("schema section is truncated")
    nk = ld_u16(p + pos)
    pos += 4
    key = []
    for i in range(nk):
        if pos + 4 > end:
            raise ValueError("schema section is truncated")
        b = ld_u16(p + pos)
        if b >= ncols:
            raise ValueError(f"key column index {b} out of range")
        if p[pos + 2] > 1:
            raise ValueError("bad key direction")
        key.append((b, bool(p[pos + 2])))
        pos += 4
    if (nk > 0) != bool(flags & F_HAS_KEY):
        raise ValueError("key columns and the key flag disagree")
    types = []
    colflags = []
    names = []
    expected = 0
    for i in range(ncols):
        if pos + 4 > end:
            raise ValueError("schema section is truncated")
        t = p[pos]
        if type_buffers(t) == 0 or t == FT_KEY:
            raise ValueError(f"unknown column type {t}")
        b = ld_u16(p + pos + 2)
        if pos + 4 + b > end:
            raise ValueError("schema section is truncated")
        types.append(t)
        colflags.append(p[pos + 1])
        try:
            names.append(bytes(mv[pos + 4:pos + 4 + b]).decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError("column name is not UTF-8") from None
        pos += 4 + b
        expected += type_buffers(t)
    if pos != end:
        raise ValueError("schema section has trailing bytes")
    if flags & F_HAS_KEY:
        expected += 2
    if nbuf != expected:
        raise ValueError(f"frame has {nbuf} buffers, its schema needs {expected}")
    pos = HDR + pad8(slen)
    data_start = pos + pad8(8 * nbuf)
    if data_start > size:
        raise ValueError("buffer directory runs past the end of the frame")
    directory = []
    prev = data_start
    for b in range(nbuf):
        off = ld_u32(p + pos + 8 * b)
        ln = ld_u32(p + pos + 8 * b + 4)
        if off % 8 or off < prev or off + ln > size:
            raise ValueError(f"buffer {b} at [{off}, {off + ln}) is misplaced")
        prev = off + ln
        directory.append((off, ln))
    # buffer lengths against the row count, and first/last offsets
    b = 0
    for i in range(ncols + (1 if flags & F_HAS_KEY else 0)):
        t = types[i] if i < ncols else FT_KEY
        if t == FT_KEY:
            _check_offsets_ends(p, directory[b], directory[b + 1], n, "key")
        else:
            if directory[b][1] not in (0, (n + 7) // 8):
                raise ValueError(f"column {i}: validity has {directory[b][1]} bytes for {n} rows")
            if is_fixed(t):
                if directory[b + 1][1] != n * type_width(t):
                    raise ValueError(f"column {i}: {directory[b + 1][1]} value bytes for {n} rows")
            elif t == FT_STRING:
                _check_offsets_ends(p, directory[b + 1], directory[b + 2], n, f"column {i}")
            else:
                m = _check_list_offsets(p, directory[b + 1], n, f"column {i}")
                if directory[b + 2][1] not in (0, (m + 7) // 8):
                    raise ValueError(f"column {i}: element validity has {directory[b + 2][1]} bytes for {m} elements")
                if is_fixed_list(t):
                    if directory[b + 3][1] != m * type_width(t):
                        raise ValueError(f"column {i}: {directory[b + 3][1]} element bytes for {m} elements")
                else:
                    _check_offsets_ends(p, directory[b + 3], directory[b + 4], m, f"column {i} elements")
        b += type_buffers(t)
    return n, flags, types, colflags, names, key, directory, schema


cdef int _check_offsets_ends(const uint8_t* p, tuple obuf, tuple dbuf, int64_t n, str what) except -1:
    cdef int64_t first, last
    if obuf[1] != 4 * (n + 1):
        raise ValueError(f"{what}: {obuf[1]} offset bytes for {n} entries")
    first = ld_off(p + <int64_t>obuf[0], False, 0)
    last = ld_off(p + <int64_t>obuf[0], False, n)
    if first != 0 or last != dbuf[1]:
        raise ValueError(f"{what}: offsets span [{first}, {last}], data has {dbuf[1]} bytes")
    return 0


cdef int64_t _check_list_offsets(const uint8_t* p, tuple obuf, int64_t n, str what) except -1:
    cdef int64_t first, last
    if obuf[1] != 4 * (n + 1):
        raise ValueError(f"{what}: {obuf[1]} offset bytes for {n} entries")
    first = ld_off(p + <int64_t>obuf[0], False, 0)
    last = ld_off(p + <int64_t>obuf[0], False, n)
    if first != 0 or last < 0:
        raise ValueError(f"{what}: list offsets span [{first}, {last}]")
    return last


cdef inline int64_t first_decrease(const uint8_t* o, int64_t n) noexcept nogil:
    """Index of the first offsets entry (1..n) smaller than its predecessor, or -1."""
    cdef int64_t i, prev, cur
    prev = ld_off(o, False, 0)
    for i in range(1, n + 1):
        cur = ld_off(o, False, i)
        if cur < prev:
            return i
        prev = cur
    return -1


cdef inline int key_cmp(const uint8_t* o, const uint8_t* d, int64_t a, int64_t b) noexcept nogil:
    cdef int64_t sa = ld_off(o, False, a), la = ld_off(o, False, a + 1) - sa
    cdef int64_t sb = ld_off(o, False, b), lb = ld_off(o, False, b + 1) - sb
    cdef int r = memcmp(d + sa, d + sb, <size_t>(la if la < lb else lb))
    if r != 0:
        return r
    return (la > lb) - (la < lb)


def check_frame(buf):
    """The O(n) checks: every offsets array is non-decreasing, the checksum matches and a
    frame flagged sorted has non-decreasing keys. Raises ValueError."""
    cdef const uint8_t[::1] mv = buf
    cdef const uint8_t* p = &mv[0]
    cdef int64_t bad, i, n, entries, off
    cdef Py_ssize_t b, c, t
    layout = frame_layout(buf)
    n = layout[0]
    flags = layout[1]
    types = layout[2]
    directory = layout[6]
    crc = msq_xxh32(p + HDR, <size_t>(mv.shape[0] - HDR), 0)
    if crc != ld_u32(p + 28):
        raise ValueError(f"frame checksum mismatch: stored {ld_u32(p + 28):#010x}, computed {crc:#010x}")
    b = 0
    for c in range(len(types) + (1 if flags & F_HAS_KEY else 0)):
        t = types[c] if c < len(types) else FT_KEY
        checks = []
        if t == FT_KEY:
            checks.append((b, n))
        elif t == FT_STRING or is_fixed_list(t):
            checks.append((b + 1, n))
        elif is_string_list(t):
            checks.append((b + 1, n))
            checks.append((b + 3, directory[b + 3][1] // 4 - 1))
        for ob, entries in checks:
            off = directory[ob][0]
            with nogil:
                bad = first_decrease(p + off, entries)
            if bad >= 0:
                raise ValueError(f"column {c}: offsets decrease at entry {bad}")
        b += type_buffers(t)
    if flags & F_SORTED and n > 1:
        _check_sorted(p + <int64_t>directory[b - 2][0], p + <int64_t>directory[b - 1][0], n)


cdef int _check_sorted(const uint8_t* o, const uint8_t* d, int64_t n) except -1:
    cdef int64_t i, bad = -1
    with nogil:
        for i in range(1, n):
            if key_cmp(o, d, i - 1, i) > 0:
                bad = i
                break
    if bad >= 0:
        raise ValueError(f"frame is flagged sorted but key {bad} is smaller than key {bad - 1}")
    return 0


# --- key statistics: group keys by their bucket prefix ----------------------------------------------

cdef inline uint64_t fnv1a(const uint8_t* p, int64_t n) noexcept nogil:
    cdef uint64_t h = 0xCBF29CE484222325ULL
    cdef int64_t i
    for i in range(n):
        h = (h ^ p[i]) * 0x100000001B3ULL
    return h


def bucket_ids(const int64_t[::1] offsets, const uint8_t[::1] data, const int64_t[::1] lengths,
               Py_ssize_t max_buckets):
    """Group keys by their first ``lengths[i]`` bytes (the bucket prefix).

    Returns ``(ids int32[n], first int64[b])``: ``ids[i]`` numbers row i's prefix in order of
    first appearance and ``first[j]`` is the first row with prefix j; or None when there
    are more than ``max_buckets`` distinct prefixes.
    """
    cdef:
        Py_ssize_t n = lengths.shape[0]
        Py_ssize_t i, nb = 0, cap = 16
        int64_t s, ln, r
        int32_t last = -1, b
        uint64_t slot
        bint overflow = False
        int32_t[::1] table
        int32_t[::1] ids
        int64_t[::1] first
        const uint8_t* d = NULL
    if offsets.shape[0] != n + 1:
        raise ValueError("offsets and lengths differ in length")
    if max_buckets < 1:
        raise ValueError("max_buckets must be positive")
    for i in range(n):
        if lengths[i] < 0 or offsets[i] < 0 or offsets[i] + lengths[i] > offsets[i + 1] \
                or offsets[i + 1] > data.shape[0]:
            raise ValueError(f"prefix of key {i} is out of bounds")
    if data.shape[0] > 0:
        d = &data[0]
    while cap < 2 * (max_buckets + 1):
        cap <<= 1
    table_arr = np.full(cap, -1, dtype=np.int32)
    ids_arr = np.empty(n, dtype=np.int32)
    first_arr = np.empty(max_buckets, dtype=np.int64)
    table = table_arr
    ids = ids_arr
    first = first_arr
    with nogil:
        for i in range(n):
            s = offsets[i]
            ln = lengths[i]
            if last >= 0:
                r = first[last]
                if lengths[r] == ln and memcmp(d + offsets[r], d + s, <size_t>ln) == 0:
                    ids[i] = last
                    continue
            slot = fnv1a(d + s, ln) & <uint64_t>(cap - 1)
            while True:
                b = table[slot]
                if b < 0:
                    if nb >= max_buckets:
                        overflow = True
                        break
                    table[slot] = <int32_t>nb
                    first[nb] = i
                    ids[i] = <int32_t>nb
                    last = <int32_t>nb
                    nb += 1
                    break
                r = first[b]
                if lengths[r] == ln and memcmp(d + offsets[r], d + s, <size_t>ln) == 0:
                    ids[i] = b
                    last = b
                    break
                slot = (slot + 1) & <uint64_t>(cap - 1)
            if overflow:
                break
    if overflow:
        return None
    return ids_arr, first_arr[:nb].copy()
