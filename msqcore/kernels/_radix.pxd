# cython: language_level=3
"""A stable MSD radix sort of byte strings, shared by the spill's key sort (``_sort.argsort_keys``)
and the segment writer's string sort (``_segment.sort_strings``, ``sorted_dictionary_of_rows``).

Each string being sorted is one 24-byte item: 16 of its bytes cached as two big-endian words
next to its id and length (Sinha & Zobel's caching: one scattered read of the strings every 16
bytes of depth). A pass splits a range on the highest byte in which its cached words differ,
found by one pass of XORs, so bytes every string of the range shares (a time chunk, a URL's
scheme and host) cost no pass; it moves the items stably into a scratch array and back. Ranges
under ``RADIX_SMALL`` items are insertion sorted; the largest part of a split goes on in the
loop, the others recurse (depth at most log2 n). Before a range's words are loaded again, a
sample of it is checked for a long common part, which is then skipped instead of being sorted
8 bytes at a time (``radix_reload``). Optionally (``brk``) the sort marks where each distinct
string starts, from the words and lengths it compared.

Everything is ``inline`` in this file: each module that cimports it compiles its own copy.
"""
from libc.stdint cimport UINT32_MAX, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

cdef extern from *:
    """
    static inline uint64_t msq_radix_bswap64(uint64_t x) { return __builtin_bswap64(x); }
    static inline void msq_radix_prefetch(const void *p) { __builtin_prefetch(p, 0, 0); }
    static inline int msq_radix_clz64(uint64_t x) { return __builtin_clzll(x); }
    static inline int msq_radix_ctz64(uint64_t x) { return __builtin_ctzll(x); }
    """
    uint64_t msq_radix_bswap64(uint64_t x) noexcept nogil
    void msq_radix_prefetch(const void* p) noexcept nogil
    int msq_radix_clz64(uint64_t x) noexcept nogil
    int msq_radix_ctz64(uint64_t x) noexcept nogil


cdef enum:
    RADIX_SMALL = 32        # ranges this short are insertion sorted (16 and 64: no better)
    RADIX_SKIP_SAMPLE = 16  # strings sampled for a common part to skip (``radix_reload``)


cdef struct RadixItem:  # one string being sorted, moved as a whole (one write stream per bucket)
    uint64_t k          # bytes d..d+7 of the string at the range's depth d (``radix_word``)
    uint64_t k2         # bytes d+8..d+15, where the range's ``have2`` says so
    int32_t v           # its id: the string is data[offsets[v]:offsets[v + 1]]
    uint32_t ln         # its length, or UINT32_MAX for "read the offsets"


cdef struct RadixSort:
    const int64_t* offsets
    const uint8_t* data
    RadixItem* a        # the items
    RadixItem* t        # scratch of the same size, for the stable scatter
    uint8_t* cls        # scratch: each item's bucket in the current pass
    uint8_t* brk        # NULL, or set to 1 where a sorted position starts a new distinct string


cdef inline uint64_t radix_word(const int64_t* offsets, const uint8_t* data, int32_t i, int64_t d) noexcept nogil:
    """Bytes ``d..d+7`` of string ``i`` as a big-endian integer, zero past its end (integer
    order is byte order on those 8 bytes)."""
    cdef int64_t s = offsets[i] + d
    cdef int64_t rem = offsets[i + 1] - s
    cdef uint64_t w = 0
    if rem >= 8:
        memcpy(&w, data + s, 8)
        return msq_radix_bswap64(w)
    if rem > 0:
        memcpy(&w, data + s, <size_t>rem)
        return msq_radix_bswap64(w)
    return 0


cdef inline int64_t radix_len(const RadixSort* s, const RadixItem* x) noexcept nogil:
    if x.ln != UINT32_MAX:
        return x.ln
    return s.offsets[x.v + 1] - s.offsets[x.v]


cdef inline int radix_cmp_from(const RadixSort* s, const RadixItem* x, const RadixItem* y,
                               int64_t la, int64_t lb, int64_t d) noexcept nogil:
    """Byte order of two strings (lengths ``la``, ``lb``, both > d) from byte ``d`` on."""
    cdef int r = memcmp(s.data + s.offsets[x.v] + d, s.data + s.offsets[y.v] + d,
                        <size_t>((la if la < lb else lb) - d))
    if r != 0:
        return -1 if r < 0 else 1
    return (la > lb) - (la < lb)


cdef inline int radix_cmp(const RadixSort* s, const RadixItem* x, const RadixItem* y, int64_t d,
                          bint have2) noexcept nogil:
    """Byte order of two strings equal in their first ``d`` bytes, from their cached words and
    lengths first (a string ending within a word is a prefix of any other with that word)."""
    cdef int64_t la, lb
    if x.k != y.k:
        return -1 if x.k < y.k else 1
    la = radix_len(s, x)
    lb = radix_len(s, y)
    if la <= d + 8 or lb <= d + 8:
        return (la > lb) - (la < lb)
    if not have2:
        return radix_cmp_from(s, x, y, la, lb, d + 8)
    if x.k2 != y.k2:
        return -1 if x.k2 < y.k2 else 1
    if la <= d + 16 or lb <= d + 16:
        return (la > lb) - (la < lb)
    return radix_cmp_from(s, x, y, la, lb, d + 16)


cdef inline void radix_insertion(RadixSort* s, int64_t lo, int64_t n, int64_t d, bint have2) noexcept nogil:
    """Stable insertion sort of a short range; marks where distinct strings start."""
    cdef int64_t i, j, e = lo + n
    cdef RadixItem x
    for i in range(lo + 1, e):
        x = s.a[i]
        j = i
        while j > lo and radix_cmp(s, &s.a[j - 1], &x, d, have2) > 0:
            s.a[j] = s.a[j - 1]
            j -= 1
        s.a[j] = x
    if s.brk != NULL:
        for i in range(lo + 1, e):
            s.brk[i] = radix_cmp(s, &s.a[i - 1], &s.a[i], d, have2) != 0


cdef inline void radix_scatter(RadixSort* s, int64_t lo, int64_t n, int64_t* start) noexcept nogil:
    """Move items lo..lo+n-1 stably to ``lo + start[cls[i - lo]]`` through the scratch array."""
    cdef int64_t i
    cdef uint8_t c
    for i in range(n):
        c = s.cls[i]
        s.t[lo + start[c]] = s.a[lo + i]
        start[c] += 1
    memcpy(s.a + lo, s.t + lo, <size_t>n * sizeof(RadixItem))


cdef inline uint64_t radix_tail8(const uint8_t* p, int64_t n) noexcept nogil:
    """The last ``min(n, 8)`` bytes of ``p[0:n]`` (n >= 1) in a word, through fixed-size loads
    (a variable-size ``memcpy`` is a library call); equal bytes give equal words."""
    cdef uint64_t w = 0
    cdef uint32_t lo = 0, hi = 0
    if n >= 8:
        memcpy(&w, p + n - 8, 8)
        return w
    if n >= 4:
        memcpy(&lo, p, 4)
        memcpy(&hi, p + n - 4, 4)
        return lo | (<uint64_t>hi << 32)
    return p[0] | (<uint64_t>p[n >> 1] << 8) | (<uint64_t>p[n - 1] << 16)


cdef inline bint radix_same_bytes(const uint8_t* a, const uint8_t* b, int64_t n) noexcept nogil:
    """``a[0:n] == b[0:n]``, a word at a time (short strings: ``memcmp``'s call costs more)."""
    cdef uint64_t x, y
    cdef int64_t i = 0
    if n <= 0:
        return True
    while i + 8 < n:
        memcpy(&x, a + i, 8)
        memcpy(&y, b + i, 8)
        if x != y:
            return False
        i += 8
    return radix_tail8(a, n) == radix_tail8(b, n)


cdef inline int64_t radix_lcp_from(const uint8_t* a, int64_t la, const uint8_t* b, int64_t lb,
                                   int64_t d) noexcept nogil:
    """How many bytes from ``d`` on two strings of lengths ``la``, ``lb`` share."""
    cdef int64_t i = d, m = la if la < lb else lb
    cdef uint64_t x, y
    while i + 8 <= m:
        memcpy(&x, a + i, 8)
        memcpy(&y, b + i, 8)
        if x != y:
            return i - d + (msq_radix_ctz64(x ^ y) >> 3)  # little-endian: the lowest differing byte
        i += 8
    while i < m and a[i] == b[i]:
        i += 1
    return i - d


cdef inline void radix_load(RadixSort* s, int64_t lo, int64_t n, int64_t d) noexcept nogil:
    """Cache bytes ``d..d+15`` of the range's strings (one scattered read each, prefetched ahead:
    the offsets 32 items ahead, both lines the 16 bytes may span 16 ahead)."""
    cdef int64_t i, e = lo + n
    cdef RadixItem* a = s.a
    cdef const uint8_t* p
    for i in range(lo, e):
        if i + 32 < e:
            msq_radix_prefetch(&s.offsets[a[i + 32].v])
        if i + 16 < e:
            p = s.data + s.offsets[a[i + 16].v] + d
            msq_radix_prefetch(p)
            msq_radix_prefetch(p + 15)
        a[i].k = radix_word(s.offsets, s.data, a[i].v, d)
        a[i].k2 = radix_word(s.offsets, s.data, a[i].v, d + 8)


cdef inline int64_t radix_reload(RadixSort* s, int64_t lo, int64_t n, int64_t d) noexcept nogil:
    """Load the range's words (its strings equal in their first ``d`` bytes) at ``d + m`` and
    return ``m``: when a sample of the range shares ``m`` >= 8 more bytes with its first string
    (URLs' long common parts), and every string is then checked to share them, those bytes are
    skipped instead of being sorted 8 at a time, each level a scattered read of every string.
    ``m`` is 0 when the sample shares less or a string does not."""
    cdef:
        int64_t i, step
        int64_t m = -1, c, st, length, st0 = 0, len0
        const int64_t* offsets = s.offsets
        const uint8_t* data = s.data
        RadixItem* a = s.a
    if n >= RADIX_SKIP_SAMPLE * 4:
        st0 = offsets[a[lo].v]
        len0 = offsets[a[lo].v + 1] - st0
        step = n // RADIX_SKIP_SAMPLE
        i = lo + step
        while i < lo + n:
            st = offsets[a[i].v]
            c = radix_lcp_from(data + st0, len0, data + st, offsets[a[i].v + 1] - st, d)
            if m < 0 or c < m:
                m = c
                if m < 8:
                    break
            i += step
    if m >= 8:
        for i in range(lo, lo + n):
            if i + 16 < lo + n:
                msq_radix_prefetch(&offsets[a[i + 16].v])
            if i + 8 < lo + n:
                msq_radix_prefetch(data + offsets[a[i + 8].v] + d)
            st = offsets[a[i].v]
            length = offsets[a[i].v + 1] - st
            if length < d + m or not radix_same_bytes(data + st + d, data + st0 + d, m):
                m = 0  # not shared by all: load at d after all
                break
            a[i].k = radix_word(offsets, data, a[i].v, d + m)
            a[i].k2 = radix_word(offsets, data, a[i].v, d + m + 8)
        if m:
            return m
    radix_load(s, lo, n, d)
    return 0


cdef inline void radix_pass(RadixSort* s, int64_t lo, int64_t n, int64_t d, bint have2) noexcept nogil:
    """Stable MSD radix sort of items lo..lo+n-1, whose strings are equal in their first ``d``
    bytes (``k`` holds bytes d..d+7, ``k2`` the next 8 when ``have2``)."""
    cdef:
        int64_t i, c, big
        int64_t start[256]
        int64_t count[256]
        uint64_t x, k0
        int shift
        int64_t rest
        RadixItem* a = s.a
    while True:
        if s.brk != NULL:
            s.brk[lo] = 1
        if n < 2:
            return
        if n < RADIX_SMALL:
            radix_insertion(s, lo, n, d, have2)
            return
        k0 = a[lo].k
        x = 0
        for i in range(lo, lo + n):
            x |= a[i].k ^ k0
        if x != 0:
            shift = 56 - 8 * (msq_radix_clz64(x) >> 3)
            memset(count, 0, sizeof(count))
            for i in range(n):
                s.cls[i] = <uint8_t>(a[lo + i].k >> shift)
                count[s.cls[i]] += 1
            c = 0
            big = 0
            for i in range(256):
                start[i] = c
                c += count[i]
                if count[i] > count[big]:
                    big = i
            radix_scatter(s, lo, n, start)
            for i in range(256):  # start[i] is now the end of part i
                if i == big or count[i] == 0:
                    continue
                if count[i] > 1:
                    radix_pass(s, lo + start[i] - count[i], count[i], d, have2)
                elif s.brk != NULL:
                    s.brk[lo + start[i] - 1] = 1
            lo += start[big] - count[big]
            n = count[big]
            continue
        # equal words: the strings that end within them go first, shortest first (each is a
        # prefix of the longer ones; equal lengths are equal strings, kept in order); the rest
        # go on at d + 8
        memset(count, 0, 10 * sizeof(int64_t))
        for i in range(n):
            rest = radix_len(s, &a[lo + i]) - d
            s.cls[i] = <uint8_t>(rest if rest <= 8 else 9)
            count[s.cls[i]] += 1
        if count[9] < n:
            c = 0
            for i in range(10):
                start[i] = c
                c += count[i]
            radix_scatter(s, lo, n, start)
            if s.brk != NULL:
                for i in range(9):
                    if count[i]:
                        s.brk[lo + start[i] - count[i]] = 1
            lo += n - count[9]
            n = count[9]
            if n == 0:
                return
        d += 8
        if have2:
            for i in range(lo, lo + n):
                a[i].k = a[i].k2
            have2 = False
        else:
            d += radix_reload(s, lo, n, d)
            have2 = True


cdef inline int radix_sort(RadixItem* a, int64_t n, const int64_t* offsets, const uint8_t* data,
                           uint8_t* brk, RadixItem* t, uint8_t* cls) noexcept nogil:
    """Sort ``a[0:n]`` (``v`` and ``ln`` filled in, in input order) stably by the strings'
    bytes; with ``brk`` (n bytes, zeroed) also mark where each distinct string starts. ``t``
    (n items) and ``cls`` (n bytes) are scratch; NULL: allocated here, in two blocks each
    under glibc's largest mmap threshold (32 MiB) for up to 1.4M strings, so that repeated
    sorts may reuse heap memory. Returns 0, or -1 when out of memory."""
    cdef RadixSort s
    cdef int64_t d0
    cdef bint own = t == NULL or cls == NULL
    if n < 1:
        return 0
    if own:
        t = <RadixItem*>malloc(<size_t>n * sizeof(RadixItem))
        cls = <uint8_t*>malloc(<size_t>n)
        if t == NULL or cls == NULL:
            free(t)
            free(cls)
            return -1
    s.offsets = offsets
    s.data = data
    s.a = a
    s.t = t
    s.cls = cls
    s.brk = brk
    d0 = radix_reload(&s, 0, n, 0)
    radix_pass(&s, 0, n, d0, True)
    if own:
        free(t)
        free(cls)
    return 0
