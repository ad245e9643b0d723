# cython: language_level=3
"""Roaring bitmaps in the portable serialization format (RoaringFormatSpec), for segment indexes.

The format is the one CRoaring, Java's RoaringBitmap and Druid write, so the bytes can be read
by any of them (the tests check ours against ``pyroaring``):

* cookie ``12346`` (no run container): uint32 cookie, uint32 container count, then per container
  a descriptive header (uint16 key = high 16 bits, uint16 cardinality - 1), then per container a
  uint32 offset from the start of the bitmap, then the containers;
* cookie ``12347`` (at least one run container): uint32 ``12347 | (count - 1) << 16``, a bitset of
  ``ceil(count / 8)`` bytes marking run containers, the descriptive headers, the offsets only if
  there are at least 4 containers, then the containers.

Containers hold the low 16 bits of their values: an *array* (cardinality <= 4096, sorted
uint16), a *bitmap* (1024 little-endian uint64 words) or a *run* container (uint16 run count,
then (start, length - 1) pairs). All integers are little-endian.

The writer picks each container's kind as CRoaring's ``run_optimize`` does (a run container
only when strictly smaller than the array or bitmap form), so a bitmap we write is byte for
byte what ``pyroaring.BitMap(rows).serialize()`` gives.

Kernels work on many bitmaps at once, in CSR form (``offsets[k]:offsets[k+1]`` delimits the
k-th bitmap's values or bytes), with one ``nogil`` loop each and no Python call per row.
``serialize_ids`` writes the same bitmaps for a column's inverted index straight from its ids
(no row lists), which a low-cardinality column's bitmaps are built with.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

import numpy as np

cdef extern from *:
    int __builtin_popcountll(unsigned long long) nogil
    int __builtin_ctzll(unsigned long long) nogil

cdef enum:
    SERIAL_COOKIE_NO_RUNCONTAINER = 12346
    SERIAL_COOKIE = 12347
    NO_OFFSET_THRESHOLD = 4
    ARRAY_MAX = 4096
    BITMAP_BYTES = 8192

# decode errors
cdef enum:
    E_OK = 0
    E_TRUNCATED = 1
    E_COOKIE = 2
    E_KEYS = 3
    E_CONTAINER = 4
    E_OFFSET = 5
    E_TRAILING = 6
    E_LIMIT = 7

_DECODE_ERRORS = {
    E_TRUNCATED: "truncated bitmap",
    E_COOKIE: "bad cookie (not a portable Roaring bitmap)",
    E_KEYS: "container keys are not strictly ascending",
    E_CONTAINER: "container contents do not match its header",
    E_OFFSET: "container offset does not match the container's position",
    E_TRAILING: "trailing bytes after the bitmap",
    E_LIMIT: "value out of range",
}


cdef inline uint16_t _rd16(const uint8_t* p) noexcept nogil:
    return <uint16_t>(p[0] | (<uint16_t>p[1] << 8))


cdef inline uint32_t _rd32(const uint8_t* p) noexcept nogil:
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline void _wr16(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v & 0xFF)
    p[1] = <uint8_t>((v >> 8) & 0xFF)


cdef inline void _wr32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v & 0xFF)
    p[1] = <uint8_t>((v >> 8) & 0xFF)
    p[2] = <uint8_t>((v >> 16) & 0xFF)
    p[3] = <uint8_t>((v >> 24) & 0xFF)


# --- writing ---------------------------------------------------------------------------------

cdef inline int _kind(int64_t card, int64_t runs) noexcept nogil:
    """0 array, 1 bitmap, 2 run: CRoaring's run_optimize choice (serialized sizes, ties not run)."""
    if card <= ARRAY_MAX:
        return 2 if 2 + 4 * runs < 2 * card else 0
    return 2 if 2 + 4 * runs < BITMAP_BYTES else 1


cdef inline int64_t _container_end(const uint32_t* v, int64_t i, int64_t m, int64_t* runs) noexcept nogil:
    """End (exclusive) of the container starting at ``v[i]`` (same high 16 bits), and in
    ``runs`` the number of runs of consecutive values in it."""
    cdef uint32_t key = v[i] >> 16
    cdef int64_t j = i + 1
    runs[0] = 1
    while j < m and (v[j] >> 16) == key:
        if v[j] != v[j - 1] + 1:
            runs[0] += 1
        j += 1
    return j


cdef inline int64_t _kind_size(int kind, int64_t card, int64_t runs) noexcept nogil:
    if kind == 0:
        return 2 * card
    if kind == 1:
        return BITMAP_BYTES
    return 2 + 4 * runs


cdef int64_t _bitmap_size(const uint32_t* v, int64_t m) noexcept nogil:
    """Serialized size of the bitmap of the ``m`` strictly ascending values ``v``."""
    cdef:
        int64_t i = 0
        int64_t j
        int64_t nc = 0
        int64_t body = 0
        int64_t runs
        bint hasrun = False
        int kind
    while i < m:
        j = _container_end(v, i, m, &runs)
        kind = _kind(j - i, runs)
        hasrun = hasrun or kind == 2
        body += _kind_size(kind, j - i, runs)
        nc += 1
        i = j
    if not hasrun:
        return 8 + 8 * nc + body
    return 4 + (nc + 7) // 8 + 4 * nc + (4 * nc if nc >= NO_OFFSET_THRESHOLD else 0) + body


cdef void _bitmap_write(const uint32_t* v, int64_t m, uint8_t* out) noexcept nogil:
    """Serialize the ``m`` strictly ascending values ``v`` at ``out`` (zeroed, sized by
    ``_bitmap_size``)."""
    cdef:
        int64_t i, j, k, c
        int64_t nc = 0
        int64_t runs
        bint hasrun = False
        int kind
        uint32_t key
        uint32_t low
        uint32_t start
        int64_t pos
        int64_t header
        int64_t desc
        int64_t offs
        uint8_t* p
    # pass 1: count containers and find whether any is a run container
    i = 0
    while i < m:
        j = _container_end(v, i, m, &runs)
        if _kind(j - i, runs) == 2:
            hasrun = True
        nc += 1
        i = j
    if hasrun:
        _wr32(out, SERIAL_COOKIE | (<uint32_t>(nc - 1) << 16))
        desc = 4 + (nc + 7) // 8
        offs = desc + 4 * nc
        header = offs + (4 * nc if nc >= NO_OFFSET_THRESHOLD else 0)
        if nc < NO_OFFSET_THRESHOLD:
            offs = -1
    else:
        _wr32(out, SERIAL_COOKIE_NO_RUNCONTAINER)
        _wr32(out + 4, <uint32_t>nc)
        desc = 8
        offs = 8 + 4 * nc
        header = offs + 4 * nc
    # pass 2: headers and containers
    pos = header
    i = 0
    c = 0
    while i < m:
        key = v[i] >> 16
        j = _container_end(v, i, m, &runs)
        kind = _kind(j - i, runs)
        _wr16(out + desc + 4 * c, key)
        _wr16(out + desc + 4 * c + 2, <uint32_t>(j - i - 1))
        if offs >= 0:
            _wr32(out + offs + 4 * c, <uint32_t>pos)
        p = out + pos
        if kind == 0:
            for k in range(i, j):
                _wr16(p + 2 * (k - i), v[k] & 0xFFFF)
        elif kind == 1:
            for k in range(i, j):
                low = v[k] & 0xFFFF
                p[low >> 3] |= <uint8_t>(1 << (low & 7))
        else:
            out[4 + c // 8] |= <uint8_t>(1 << (c % 8))
            _wr16(p, <uint32_t>runs)
            p += 2
            start = v[i] & 0xFFFF
            for k in range(i + 1, j + 1):
                if k == j or v[k] != v[k - 1] + 1:
                    _wr16(p, start)
                    _wr16(p + 2, (v[k - 1] & 0xFFFF) - start)
                    p += 4
                    if k < j:
                        start = v[k] & 0xFFFF
        pos += _kind_size(kind, j - i, runs)
        c += 1
        i = j


def serialize_csr(const int64_t[::1] offsets, const uint32_t[::1] values):
    """Serialize bitmap ``k`` = ``values[offsets[k]:offsets[k+1]]`` (strictly ascending) for every k.

    Returns ``(data uint8[...], byte_offsets int64[card + 1])``: bitmap ``k`` is
    ``data[byte_offsets[k]:byte_offsets[k+1]]``.
    """
    cdef:
        Py_ssize_t card = offsets.shape[0] - 1
        Py_ssize_t nv = values.shape[0]
        Py_ssize_t k
        int64_t i
        int64_t bad = -1
        int64_t[::1] bo
        uint8_t[::1] out
        const uint32_t* vp = NULL
        object bo_arr
        object out_arr
    if card < 0:
        raise ValueError("offsets must hold at least one entry")
    if offsets[0] != 0 or offsets[card] != nv:
        raise ValueError(f"offsets span {offsets[0]}..{offsets[card]}, values has {nv} entries")
    if nv:
        vp = &values[0]
    bo_arr = np.empty(card + 1, dtype=np.int64)
    bo = bo_arr
    with nogil:
        bo[0] = 0
        for k in range(card):
            if offsets[k + 1] < offsets[k]:
                bad = k
                break
            for i in range(offsets[k] + 1, offsets[k + 1]):
                if vp[i] <= vp[i - 1]:
                    bad = k
                    break
            if bad >= 0:
                break
            bo[k + 1] = bo[k] + _bitmap_size(vp + offsets[k], offsets[k + 1] - offsets[k])
    if bad >= 0:
        raise ValueError(f"bitmap {bad}: values are not strictly ascending")
    out_arr = np.zeros(bo[card], dtype=np.uint8)
    out = out_arr
    if bo[card]:
        with nogil:
            for k in range(card):
                _bitmap_write(vp + offsets[k], offsets[k + 1] - offsets[k], &out[0] + bo[k])
    return out_arr, bo_arr


def serialize_ids(const int32_t[::1] ids, Py_ssize_t card):
    """The bitmaps of ``serialize_csr`` for the inverted index of ``ids`` (bitmap ``k`` holds the
    rows whose id is ``k``, ``0 <= k < card``), the same bytes, built from the ids themselves.

    Row ``i`` belongs to container ``i >> 16`` of its id's bitmap, so a pass over each 65,536
    rows counts every id's rows and runs of consecutive rows (a run container's runs) in that
    container, and a second pass writes the containers; no row lists are made. Its tables take
    ``24 * card`` bytes per 65,536 rows: meant for up to a few thousand ids, where building row
    lists and then reading them back would cost more than the bitmaps.
    Returns ``(data uint8[...], byte_offsets int64[card + 1])``. Raises ValueError for an id
    outside ``[0, card)``.
    """
    cdef:
        Py_ssize_t n = ids.shape[0]
        Py_ssize_t nch = (n + 65535) >> 16
        Py_ssize_t c, k, i, j, start, end, bad = -1
        int64_t nc, m, pos, desc, offs, header, kind
        int32_t v, prev
        int32_t* h
        int64_t* cnt
        int64_t* runs
        int64_t* cpos
        int64_t* cur
        int64_t* ncs
        uint8_t* kinds
        uint8_t* hasruns
        int64_t[::1] bo
        int64_t[::1] tv
        int32_t[::1] hv
        uint8_t[::1] kv
        uint8_t[::1] out
        uint8_t* o
        uint8_t* p
        bint hasrun
        uint32_t low
    if card < 0:
        raise ValueError(f"cardinality out of range: {card}")
    if n > 0x100000000:
        raise ValueError(f"too many rows for 32-bit bitmaps: {n}")
    tables = np.zeros(3 * nch * card + card + 1, dtype=np.int64)  # rows, runs, write positions; containers
    tv = tables
    cnt = &tv[0]
    runs = cnt + nch * card
    cpos = runs + nch * card
    ncs = cpos + nch * card  # per bitmap: its containers
    hist = np.zeros(8 * card + 1, dtype=np.int32)  # 4 interleaved row and run-start counts
    hv = hist
    h = &hv[0]
    kinds_arr = np.zeros(2 * card + 1, dtype=np.uint8)
    kv = kinds_arr
    kinds = &kv[0]  # per id, its container's kind in the current 65,536 rows
    hasruns = kinds + card  # per bitmap: whether a container is a run container
    bo_arr = np.empty(card + 1, dtype=np.int64)
    bo = bo_arr
    with nogil:
        # pass 1: rows and runs of each id in each container (4 interleaved counts, so that a
        # repeated id does not wait on its own count's last update)
        for c in range(nch):
            start = c << 16
            end = start + 65536 if start + 65536 < n else n
            prev = -1
            for i in range(start, end):
                v = ids[i]
                if <uint32_t>v >= <uint32_t>card:
                    bad = i
                    break
                j = (i & 3) * 2 * card + v
                h[j] += 1
                h[j + card] += v != prev
                prev = v
            if bad >= 0:
                break
            for k in range(card):
                cnt[c * card + k] = h[k] + h[2 * card + k] + h[4 * card + k] + h[6 * card + k]
                runs[c * card + k] = h[card + k] + h[3 * card + k] + h[5 * card + k] + h[7 * card + k]
            memset(h, 0, 8 * card * sizeof(int32_t))
        # sizes and positions: bitmap k's containers in ascending container (key) order
        if bad < 0:
            bo[0] = 0
            for k in range(card):
                nc = 0
                hasrun = False
                for c in range(nch):
                    m = cnt[c * card + k]
                    if m:
                        hasrun = hasrun or _kind(m, runs[c * card + k]) == 2
                        nc += 1
                ncs[k] = nc
                hasruns[k] = hasrun
                if hasrun:
                    header = 4 + (nc + 7) // 8 + 4 * nc + (4 * nc if nc >= NO_OFFSET_THRESHOLD else 0)
                else:
                    header = 8 + 8 * nc
                pos = bo[k] + header
                for c in range(nch):
                    m = cnt[c * card + k]
                    if m:
                        cpos[c * card + k] = pos
                        pos += _kind_size(_kind(m, runs[c * card + k]), m, runs[c * card + k])
                bo[k + 1] = pos
    if bad >= 0:
        raise ValueError(f"id {ids[bad]} at row {bad} is out of range for cardinality {card}")
    out_arr = np.zeros(bo[card], dtype=np.uint8)
    if bo[card] == 0:
        return out_arr, bo_arr
    out = out_arr
    o = &out[0]
    with nogil:
        # the headers
        for k in range(card):
            nc = ncs[k]
            p = o + bo[k]
            if hasruns[k]:
                _wr32(p, SERIAL_COOKIE | (<uint32_t>(nc - 1) << 16))
                desc = 4 + (nc + 7) // 8
                offs = desc + 4 * nc if nc >= NO_OFFSET_THRESHOLD else -1
            else:
                _wr32(p, SERIAL_COOKIE_NO_RUNCONTAINER)
                _wr32(p + 4, <uint32_t>nc)
                desc = 8
                offs = 8 + 4 * nc
            i = 0
            for c in range(nch):
                m = cnt[c * card + k]
                if m:
                    _wr16(p + desc + 4 * i, <uint32_t>c)
                    _wr16(p + desc + 4 * i + 2, <uint32_t>(m - 1))
                    if offs >= 0:
                        _wr32(p + offs + 4 * i, <uint32_t>(cpos[c * card + k] - bo[k]))
                    if _kind(m, runs[c * card + k]) == 2:
                        p[4 + i // 8] |= <uint8_t>(1 << (i % 8))
                        _wr16(o + cpos[c * card + k], <uint32_t>runs[c * card + k])
                        cpos[c * card + k] += 2  # the runs follow their count
                    i += 1
        # pass 2: the containers; cpos[] is each array or run container's write cursor
        for c in range(nch):
            start = c << 16
            end = start + 65536 if start + 65536 < n else n
            for k in range(card):
                kinds[k] = <uint8_t>_kind(cnt[c * card + k], runs[c * card + k])
            cur = cpos + c * card
            prev = -1
            for i in range(start, end):
                v = ids[i]
                low = <uint32_t>(i & 0xFFFF)
                kind = kinds[v]
                if kind == 1:
                    o[cur[v] + (low >> 3)] |= <uint8_t>(1 << (low & 7))
                elif kind == 0:
                    _wr16(o + cur[v], low)
                    cur[v] += 2
                elif v != prev:  # a run container: a new run
                    _wr16(o + cur[v], low)
                    cur[v] += 4
                else:  # the run goes on
                    _wr16(o + cur[v] - 2, low - <uint32_t>_rd16(o + cur[v] - 4))
                prev = v
    return out_arr, bo_arr


# --- reading ---------------------------------------------------------------------------------

cdef int _decode(const uint8_t* buf, int64_t length, uint32_t* out, int64_t* card_out,
                 uint64_t limit) noexcept nogil:
    """Parse one serialized bitmap of exactly ``length`` bytes, checking every structure.

    With ``out == NULL`` only the headers are read and ``card_out`` gets the cardinality;
    otherwise the values are written to ``out`` (ascending) and checked against ``limit``.
    Returns an ``E_*`` code.
    """
    cdef:
        uint32_t cookie
        int64_t nc
        int64_t i, k, w
        int64_t pos
        int64_t desc
        int64_t offs = -1
        const uint8_t* runflags = NULL
        int64_t card
        int64_t total = 0
        int64_t prev_key = -1
        uint32_t key
        uint32_t base
        uint32_t v
        int64_t prev
        int64_t nruns
        uint32_t start, ln
        uint64_t word
        int64_t bits
        bint is_run
    if length < 4:
        return E_TRUNCATED
    cookie = _rd32(buf)
    if (cookie & 0xFFFF) == SERIAL_COOKIE:
        nc = (cookie >> 16) + 1
        runflags = buf + 4
        desc = 4 + (nc + 7) // 8
        pos = desc + 4 * nc
        if nc >= NO_OFFSET_THRESHOLD:
            offs = pos
            pos += 4 * nc
    elif cookie == SERIAL_COOKIE_NO_RUNCONTAINER:
        if length < 8:
            return E_TRUNCATED
        nc = _rd32(buf + 4)
        if nc > 65536:
            return E_COOKIE
        desc = 8
        offs = 8 + 4 * nc
        pos = offs + 4 * nc
    else:
        return E_COOKIE
    if pos > length:
        return E_TRUNCATED
    for i in range(nc):
        key = _rd16(buf + desc + 4 * i)
        card = <int64_t>_rd16(buf + desc + 4 * i + 2) + 1
        if <int64_t>key <= prev_key:
            return E_KEYS
        prev_key = key
        if offs >= 0 and <int64_t>_rd32(buf + offs + 4 * i) != pos:
            return E_OFFSET
        base = key << 16
        is_run = runflags != NULL and (runflags[i >> 3] >> (i & 7)) & 1
        if out != NULL and (<uint64_t>base + <uint64_t>card - 1) >= limit:
            # the container's largest value is at least base + card - 1
            return E_LIMIT
        if is_run:
            if pos + 2 > length:
                return E_TRUNCATED
            nruns = _rd16(buf + pos)
            pos += 2
            if pos + 4 * nruns > length:
                return E_TRUNCATED
            w = 0
            prev = -1
            for k in range(nruns):
                start = _rd16(buf + pos + 4 * k)
                ln = _rd16(buf + pos + 4 * k + 2)
                if <int64_t>start <= prev or start + ln > 0xFFFF:
                    return E_CONTAINER
                prev = start + ln
                if out != NULL:
                    if w + ln + 1 > card:
                        return E_CONTAINER
                    for v in range(start, start + ln + 1):
                        out[total + w] = base | v
                        w += 1
                else:
                    w += ln + 1
            if w != card:
                return E_CONTAINER
            pos += 4 * nruns
        elif card <= ARRAY_MAX:
            if pos + 2 * card > length:
                return E_TRUNCATED
            prev = -1
            for k in range(card):
                v = _rd16(buf + pos + 2 * k)
                if <int64_t>v <= prev:
                    return E_CONTAINER
                prev = v
                if out != NULL:
                    out[total + k] = base | v
            pos += 2 * card
        else:
            if pos + BITMAP_BYTES > length:
                return E_TRUNCATED
            bits = 0
            w = 0
            for k in range(1024):
                memcpy(&word, buf + pos + 8 * k, 8)  # little-endian hosts only (x86, arm64)
                bits += __builtin_popcountll(word)
                if out != NULL and bits <= card:
                    while word:
                        out[total + w] = base | <uint32_t>(64 * k + __builtin_ctzll(word))
                        w += 1
                        word &= word - 1
            if bits != card:
                return E_CONTAINER
            pos += BITMAP_BYTES
        if out != NULL and total + card > 0 and out[total + card - 1] >= limit:
            return E_LIMIT
        total += card
    if pos != length:
        return E_TRAILING
    card_out[0] = total
    return E_OK


def decode_bitmaps(const uint8_t[::1] data, const int64_t[::1] byte_offsets, const int64_t[::1] which,
                   uint64_t limit=0x100000000):
    """Decode the bitmaps ``which`` (indexes into ``byte_offsets``) into CSR form.

    Bitmap ``k`` is ``data[byte_offsets[k]:byte_offsets[k+1]]``. Returns ``(offsets
    int64[len(which) + 1], values uint32[total])``, each bitmap's values ascending. Raises
    ValueError if a bitmap is malformed or holds a value ``>= limit``.
    """
    cdef:
        Py_ssize_t m = which.shape[0]
        Py_ssize_t nb = byte_offsets.shape[0] - 1
        Py_ssize_t size = data.shape[0]
        Py_ssize_t j
        int64_t k
        int64_t c = 0
        int err = E_OK
        Py_ssize_t bad = -1
        const uint8_t* base = NULL
        int64_t[::1] offs
        uint32_t[::1] vals
        object offs_arr
        object vals_arr
    if nb < 0:
        raise ValueError("byte offsets must hold at least one entry")
    if size:
        base = &data[0]
    for j in range(m):
        k = which[j]
        if k < 0 or k >= nb or byte_offsets[k] < 0 or byte_offsets[k] > byte_offsets[k + 1] \
                or byte_offsets[k + 1] > size:
            raise ValueError(f"bitmap {k} is outside the data ({nb} bitmaps, {size} bytes)")
    offs_arr = np.empty(m + 1, dtype=np.int64)
    offs = offs_arr
    with nogil:
        offs[0] = 0
        for j in range(m):
            k = which[j]
            err = _decode(base + byte_offsets[k], byte_offsets[k + 1] - byte_offsets[k], NULL, &c, limit)
            if err:
                bad = k
                break
            offs[j + 1] = offs[j] + c
    if err:
        raise ValueError(f"bitmap {bad}: {_DECODE_ERRORS[err]}")
    vals_arr = np.empty(offs[m], dtype=np.uint32)
    vals = vals_arr
    if offs[m]:
        with nogil:
            for j in range(m):
                k = which[j]
                err = _decode(base + byte_offsets[k], byte_offsets[k + 1] - byte_offsets[k],
                              &vals[0] + offs[j], &c, limit)
                if err:
                    bad = k
                    break
    if err:
        raise ValueError(f"bitmap {bad}: {_DECODE_ERRORS[err]}")
    return offs_arr, vals_arr


def serialize(const uint32_t[::1] values):
    """One bitmap of the strictly ascending ``values``, as ``bytes``."""
    data, _ = serialize_csr(np.array([0, values.shape[0]], dtype=np.int64), values)
    return data.tobytes()


def deserialize(const uint8_t[::1] buf, uint64_t limit=0x100000000):
    """The ascending values (uint32) of one serialized bitmap that fills ``buf`` exactly."""
    _, values = decode_bitmaps(buf, np.array([0, buf.shape[0]], dtype=np.int64),
                               np.zeros(1, dtype=np.int64), limit)
    return values
