# cython: language_level=3
"""Sorting and k-way merging of binary sort keys (the frame keys of ``_frame.encode_keys``).

* ``argsort_keys``: a stable sort of variable-length keys: an MSD radix sort over 16 key
  bytes cached (as two big-endian words) next to the row index and key length, so a pass
  reads the keys once per 16 bytes of depth; equal keys keep their input order.
* ``search_keys``: where boundary keys fall in a sorted order (partition split points).
* ``hash_partitions``: the ``hash`` shuffle partition of each key.
* ``Merger``: a loser tree over k sorted batches ("cursors"). ``run`` pops rows in key
  order into ``out_sources`` / ``out_rows`` until a frame's worth of bits is collected, a
  cursor needs its next batch, the partition boundary is reached, or every cursor is done.

Everything runs without the GIL; the comparison primitives are ``noexcept nogil``.
"""
from libc.stdint cimport INT32_MAX, UINT32_MAX, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

import numpy as np

from msqcore.kernels._frame cimport ColView, FrameSource

cdef extern from *:
    """
    static inline uint64_t msq_sort_bswap64(uint64_t x) { return __builtin_bswap64(x); }
    static inline void msq_prefetch(const void *p) { __builtin_prefetch(p, 0, 0); }
    """
    uint64_t msq_sort_bswap64(uint64_t x) noexcept nogil
    void msq_prefetch(const void* p) noexcept nogil


cdef enum:
    R_DONE = 0
    R_FULL = 1
    R_REFILL = 2
    R_BOUNDARY = 3

DONE = R_DONE
FULL = R_FULL
REFILL = R_REFILL
BOUNDARY = R_BOUNDARY

cdef inline int64_t ld_off(const uint8_t* p, bint large, int64_t i) noexcept nogil:
    cdef int32_t a
    cdef int64_t b
    if large:
        memcpy(&b, p + 8 * i, 8)
        return b
    memcpy(&a, p + 4 * i, 4)
    return a


cdef int cmp_bytes(const uint8_t* a, int64_t la, const uint8_t* b, int64_t lb) noexcept nogil:
    """Unsigned lexicographic comparison, a shorter prefix first: -1, 0 or 1."""
    cdef int r = memcmp(a, b, <size_t>(la if la < lb else lb))
    if r != 0:
        return -1 if r < 0 else 1
    return (la > lb) - (la < lb)


# --- argsort --------------------------------------------------------------------------------------

cdef extern from *:
    int msq_clz64 "__builtin_clzll"(uint64_t) nogil


cdef enum:
    RADIX_SMALL = 32     # ranges this short are insertion sorted


cdef inline uint64_t key_word(const int64_t* offsets, const uint8_t* data, int32_t i, int64_t d) noexcept nogil:
    """Bytes ``d..d+7`` of key ``i`` as a big-endian integer, zero past its end (integer order
    is byte order on those 8 bytes)."""
    cdef int64_t s = offsets[i] + d
    cdef int64_t avail = offsets[i + 1] - s
    cdef uint64_t w = 0
    if avail >= 8:
        memcpy(&w, data + s, 8)
    elif avail > 0:
        memcpy(&w, data + s, <size_t>avail)
    else:
        return 0
    return msq_sort_bswap64(w)


cdef struct KeySort:
    const int64_t* offsets
    const uint8_t* data
    SortItem* a         # the items being sorted
    SortItem* t         # scratch of the same size, for the stable scatter
    uint8_t* cls        # scratch: each item's bucket in the current pass


cdef inline int item_cmp(const KeySort* s, const SortItem* x, const SortItem* y, int64_t d, bint have2) noexcept nogil:
    """Byte order of two keys equal in their first ``d`` bytes, from the cached words and
    lengths first (a key ending within a word is a prefix of any other with that word)."""
    cdef int64_t sx, sy
    if x.word != y.word:
        return -1 if x.word < y.word else 1
    if x.len <= d + 8 or y.len <= d + 8:
        return (x.len > y.len) - (x.len < y.len)
    if have2:
        if x.word2 != y.word2:
            return -1 if x.word2 < y.word2 else 1
        if x.len <= d + 16 or y.len <= d + 16:
            return (x.len > y.len) - (x.len < y.len)
        d += 16
    else:
        d += 8
    sx = s.offsets[x.idx] + d
    sy = s.offsets[y.idx] + d
    return cmp_bytes(s.data + sx, x.len - d, s.data + sy, y.len - d)


cdef void insertion_sort(KeySort* s, int64_t lo, int64_t n, int64_t d, bint have2) noexcept nogil:
    """Stable: equal keys keep their order."""
    cdef int64_t i, j
    cdef SortItem x
    for i in range(lo + 1, lo + n):
        x = s.a[i]
        j = i
        while j > lo and item_cmp(s, &s.a[j - 1], &x, d, have2) > 0:
            s.a[j] = s.a[j - 1]
            j -= 1
        s.a[j] = x


cdef inline void scatter(KeySort* s, int64_t lo, int64_t n, int64_t* start) noexcept nogil:
    """Move items lo..lo+n-1 stably to ``lo + start[cls[i]]`` through the scratch array."""
    cdef int64_t i
    cdef uint8_t c
    for i in range(n):
        c = s.cls[i]
        s.t[lo + start[c]] = s.a[lo + i]
        start[c] += 1
    memcpy(s.a + lo, s.t + lo, <size_t>n * sizeof(SortItem))


cdef void load_words(KeySort* s, int64_t lo, int64_t n, int64_t d) noexcept nogil:
    """Cache bytes ``d..d+15`` of the range's keys (one scattered read each, prefetched ahead)."""
    cdef int64_t i, e = lo + n
    cdef SortItem* a = s.a
    cdef const uint8_t* p
    for i in range(lo, e):
        if i + 32 < e:
            msq_prefetch(&s.offsets[a[i + 32].idx])
        if i + 16 < e:                  # both lines the 16 bytes may span
            p = s.data + s.offsets[a[i + 16].idx] + d
            msq_prefetch(p)
            msq_prefetch(p + 15)
        a[i].word = key_word(s.offsets, s.data, a[i].idx, d)
        a[i].word2 = key_word(s.offsets, s.data, a[i].idx, d + 8)


cdef void radix_sort(KeySort* s, int64_t lo, int64_t n, int64_t d, bint have2) noexcept nogil:
    """Stable MSD radix sort of items lo..lo+n-1, whose keys are equal in their first ``d``
    bytes (``word`` holds bytes d..d+7, ``word2`` the next 8 when ``have2``). A pass splits on
    the highest byte in which the range's words differ, so bytes every key shares (the time
    chunk, a common string prefix) cost no pass. The largest part goes on in the loop, the
    others recurse (depth at most log2 n)."""
    cdef:
        int64_t i, c, big
        int64_t start[256]
        int64_t count[256]
        uint64_t x, w0
        int shift
        int64_t rest
        SortItem* a = s.a
    while True:
        if n < 2:
            return
        if n < RADIX_SMALL:
            insertion_sort(s, lo, n, d, have2)
            return
        w0 = a[lo].word
        x = 0
        for i in range(lo, lo + n):
            x |= a[i].word ^ w0
        if x != 0:
            shift = 56 - 8 * (msq_clz64(x) >> 3)
            memset(count, 0, sizeof(count))
            for i in range(n):
                s.cls[i] = <uint8_t>(a[lo + i].word >> shift)
                count[s.cls[i]] += 1
            c = 0
            big = 0
            for i in range(256):
                start[i] = c
                c += count[i]
                if count[i] > count[big]:
                    big = i
            scatter(s, lo, n, start)
            for i in range(256):        # start[i] is now the end of part i
                if count[i] > 1 and i != big:
                    radix_sort(s, lo + start[i] - count[i], count[i], d, have2)
            lo += start[big] - count[big]
            n = count[big]
            continue
        # equal words: the keys that end within them go first, shortest first (each is a
        # prefix of the longer ones; equal lengths are equal keys, kept in order); the rest
        # go on at d + 8
        memset(count, 0, 10 * sizeof(int64_t))
        for i in range(n):
            rest = a[lo + i].len - d
            s.cls[i] = <uint8_t>(rest if rest <= 8 else 9)
            count[s.cls[i]] += 1
        if count[9] < n:
            c = 0
            for i in range(10):
                start[i] = c
                c += count[i]
            scatter(s, lo, n, start)
            lo += n - count[9]
            n = count[9]
            if n < 2:
                return
        d += 8
        if have2:
            for i in range(lo, lo + n):
                a[i].word = a[i].word2
            have2 = False
        else:
            load_words(s, lo, n, d)
            have2 = True


cdef int argsort_items(SortItem* items, int64_t n, const int64_t* offsets, const uint8_t* data) noexcept nogil:
    """Sort ``items`` (``idx`` and ``len`` filled in, in input order) by key, stably.
    Returns 0, or -1 if out of memory."""
    cdef KeySort s
    if n < 2:
        return 0
    s.offsets = offsets
    s.data = data
    s.a = items
    s.t = <SortItem*>malloc(<size_t>n * sizeof(SortItem))
    s.cls = <uint8_t*>malloc(<size_t>n)
    if s.t == NULL or s.cls == NULL:
        free(s.t)
        free(s.cls)
        return -1
    load_words(&s, 0, n, 0)
    radix_sort(&s, 0, n, 0, True)
    free(s.t)
    free(s.cls)
    return 0


def argsort_keys(const int64_t[::1] offsets, const uint8_t[::1] data):
    """Stable argsort of the keys ``data[offsets[i]:offsets[i + 1]]`` in unsigned byte order.

    Returns int64[n]. Keys are compared like ``bytes`` (a prefix sorts first).
    """
    cdef:
        Py_ssize_t n = offsets.shape[0] - 1
        Py_ssize_t i
        int rc = 0
        SortItem* items
        int64_t[::1] out
        const uint8_t* d = NULL
        bint bad = False
    if n < 0:
        raise ValueError("offsets are empty")
    if n > INT32_MAX:
        raise ValueError(f"too many keys for one in-memory sort: {n}")
    with nogil:
        for i in range(n):
            if offsets[i] < 0 or offsets[i + 1] < offsets[i] or offsets[i + 1] > data.shape[0] \
                    or offsets[i + 1] - offsets[i] >= UINT32_MAX:
                bad = True
                break
    if bad:
        raise ValueError("key offsets out of order or out of bounds")
    if data.shape[0] > 0:
        d = &data[0]
    result = np.empty(n, dtype=np.int64)
    out = result
    if n == 0:
        return result
    items = <SortItem*>malloc(sizeof(SortItem) * n)
    if items == NULL:
        raise MemoryError()
    with nogil:
        for i in range(n):
            items[i].idx = <int32_t>i
            items[i].len = <uint32_t>(offsets[i + 1] - offsets[i])
        rc = argsort_items(items, n, &offsets[0], d)
        if rc == 0:
            for i in range(n):
                out[i] = items[i].idx
    free(items)
    if rc != 0:
        raise MemoryError()
    return result


def search_keys(const int64_t[::1] offsets, const uint8_t[::1] data, const int64_t[::1] order, list bounds):
    """For each boundary key, the first position p in ``order`` with key(order[p]) >= boundary.

    ``order`` must sort the keys (e.g. ``argsort_keys``); returns int64[len(bounds)].
    """
    cdef:
        Py_ssize_t n = order.shape[0]
        Py_ssize_t b, lo, hi, mid
        int64_t r
        const uint8_t* d = NULL
        const uint8_t* bp
        Py_ssize_t bl
        bytes key
    if data.shape[0] > 0:
        d = &data[0]
    result = np.empty(len(bounds), dtype=np.int64)
    for b in range(len(bounds)):
        key = bounds[b]
        bp = <const uint8_t*><const char*>key
        bl = len(key)
        lo = 0
        hi = n
        with nogil:
            while lo < hi:
                mid = (lo + hi) // 2
                r = order[mid]
                if cmp_bytes(d + offsets[r], offsets[r + 1] - offsets[r], bp, bl) < 0:
                    lo = mid + 1
                else:
                    hi = mid
        result[b] = lo
    return result


def hash_partitions(const int64_t[::1] offsets, const uint8_t[::1] data, int64_t partitions):
    """The ``hash`` shuffle partition of each key: FNV-1a 64 of its bytes mod ``partitions``.

    Equal keys (equal SQL values) get the same partition in every process. Returns int32[n].
    """
    cdef:
        Py_ssize_t n = offsets.shape[0] - 1
        Py_ssize_t i
        int64_t j
        uint64_t h
        const uint8_t* d = NULL
        int32_t[::1] out
    if n < 0:
        raise ValueError("offsets are empty")
    if partitions < 1:
        raise ValueError("partitions must be positive")
    if n > 0 and (offsets[0] < 0 or offsets[n] > data.shape[0]):
        raise ValueError("key offsets out of bounds")
    if data.shape[0] > 0:
        d = &data[0]
    result = np.empty(n, dtype=np.int32)
    out = result
    with nogil:
        for i in range(n):
            h = 14695981039346656037ULL
            for j in range(offsets[i], offsets[i + 1]):
                h = (h ^ d[j]) * 1099511628211ULL
            # fold the high bits in: FNV's low bits mix poorly for short keys
            out[i] = <int32_t>((h ^ (h >> 32)) % <uint64_t>partitions)
    return result


# --- k-way merge -----------------------------------------------------------------------------------

cdef class Merger:
    """Loser-tree merge of ``k`` key-sorted batch sequences.

    Protocol: ``set_cursor`` (or ``set_done``) for every cursor, ``build()``, then call
    ``run(budget_bits)`` repeatedly. It returns

    * ``FULL``: ``out_sources[:count]`` / ``out_rows[:count]`` hold a frame's worth of rows
      (or ``capacity`` rows); write them, then ``reset_output()`` (and ``set_slot`` as needed);
    * ``REFILL``: cursor ``refill`` used up its batch; give it the next with ``set_cursor``;
    * ``BOUNDARY``: the next key is >= the boundary given to ``set_boundary``;
    * ``DONE``: every cursor is done.

    Ties go to the lower cursor index, so merging runs in creation order is stable.
    """

    def __cinit__(self, int k, Py_ssize_t capacity):
        cdef int i
        cdef int32_t[::1] s
        cdef int64_t[::1] r
        if k < 1:
            raise ValueError("a merge needs at least one input")
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.k = k
        self.cur = <Cursor*>malloc(sizeof(Cursor) * k)
        self.tree = <int32_t*>malloc(sizeof(int32_t) * k)
        if self.cur == NULL or self.tree == NULL:
            raise MemoryError()
        for i in range(k):
            self.cur[i].koff = NULL
            self.cur[i].kdata = NULL
            self.cur[i].costs = NULL
            self.cur[i].pos = 0
            self.cur[i].n = 0
            self.cur[i].slot = -1
            self.cur[i].last = True
            self.cur[i].done = True
        self._sources = [None] * k
        self._boundary = None
        self.has_boundary = False
        self.out_sources = np.zeros(capacity, dtype=np.int32)
        self.out_rows = np.zeros(capacity, dtype=np.int64)
        s = self.out_sources
        r = self.out_rows
        self.osrc = &s[0]
        self.orow = &r[0]
        self.count = 0
        self.capacity = capacity
        self.acc = 0
        self.refill = -1
        self.built = False

    def __dealloc__(self):
        free(self.cur)
        free(self.tree)

    def set_cursor(self, int i, FrameSource source, int slot, bint last):
        """Make ``source`` (a non-empty batch with a key column) cursor ``i``'s current batch."""
        cdef Cursor* c
        cdef const ColView* kv
        if i < 0 or i >= self.k:
            raise IndexError(f"cursor {i} out of range")
        if not source.has_key or source.costs is None:
            raise ValueError("merge inputs need a key column and row costs")
        if source.num_rows == 0:
            raise ValueError("merge inputs must not be empty batches")
        if self.built and self.refill != i:
            raise RuntimeError(f"cursor {i} is not waiting for a batch")
        kv = &source.cols[source.num_columns]
        c = &self.cur[i]
        c.koff = kv.offsets
        c.klarge = kv.large
        c.kdata = kv.data
        c.costs = source.cost_ptr
        c.pos = 0
        c.n = source.num_rows
        c.slot = slot
        c.last = last
        c.done = False
        self._sources[i] = source
        if self.built:
            self.refill = -1
            self.replay(i)

    def set_done(self, int i):
        """Cursor ``i`` has no (more) batches."""
        if i < 0 or i >= self.k:
            raise IndexError(f"cursor {i} out of range")
        if self.built and self.refill != i:
            raise RuntimeError(f"cursor {i} is not waiting for a batch")
        self.cur[i].done = True
        self._sources[i] = None
        if self.built:
            self.refill = -1
            self.replay(i)

    def set_slot(self, int i, int slot):
        if i < 0 or i >= self.k:
            raise IndexError(f"cursor {i} out of range")
        self.cur[i].slot = slot

    def set_boundary(self, boundary):
        """Stop (``BOUNDARY``) before the first key >= ``boundary``; None: no boundary."""
        self._boundary = None if boundary is None else bytes(boundary)
        self.has_boundary = boundary is not None

    def reset_output(self):
        self.count = 0
        self.acc = 0

    def build(self):
        cdef int node, a, b, i
        cdef int32_t* win
        if self.built:
            raise RuntimeError("already built")
        if self.k > 1:
            win = <int32_t*>malloc(sizeof(int32_t) * 2 * self.k)
            if win == NULL:
                raise MemoryError()
            for i in range(self.k):
                win[self.k + i] = i
            for node in range(self.k - 1, 0, -1):
                a = win[2 * node]
                b = win[2 * node + 1]
                if self.beats(a, b):
                    win[node] = a
                    self.tree[node] = b
                else:
                    win[node] = b
                    self.tree[node] = a
            self.tree[0] = win[1]
            free(win)
        else:
            self.tree[0] = 0
        self.built = True

    cdef bint beats(self, int a, int b) noexcept nogil:
        cdef Cursor* ca = &self.cur[a]
        cdef Cursor* cb = &self.cur[b]
        cdef int64_t sa, sb
        cdef int r
        if ca.done:
            return cb.done and a < b
        if cb.done:
            return True
        sa = ld_off(ca.koff, ca.klarge, ca.pos)
        sb = ld_off(cb.koff, cb.klarge, cb.pos)
        r = cmp_bytes(ca.kdata + sa, ld_off(ca.koff, ca.klarge, ca.pos + 1) - sa,
                      cb.kdata + sb, ld_off(cb.koff, cb.klarge, cb.pos + 1) - sb)
        if r != 0:
            return r < 0
        return a < b

    cdef void replay(self, int i) noexcept nogil:
        cdef int w = i, t
        cdef int node = (i + self.k) >> 1
        while node >= 1:
            if self.beats(self.tree[node], w):
                t = self.tree[node]
                self.tree[node] = w
                w = t
            node >>= 1
        self.tree[0] = w

    def run(self, int64_t budget_bits):
        """Pop rows in key order; returns DONE, FULL, REFILL or BOUNDARY (see the class doc)."""
        cdef int w, reason
        cdef Cursor* c
        cdef int64_t s, cost
        cdef const uint8_t* bp = NULL
        cdef Py_ssize_t bl = 0
        if not self.built:
            raise RuntimeError("build() first")
        if self.refill >= 0:
            raise RuntimeError(f"cursor {self.refill} is waiting for its next batch")
        if self.has_boundary:
            bp = <const uint8_t*><const char*>self._boundary
            bl = len(self._boundary)
        with nogil:
            while True:
                w = self.tree[0]
                c = &self.cur[w]
                if c.done:
                    reason = R_DONE
                    break
                if self.has_boundary:
                    s = ld_off(c.koff, c.klarge, c.pos)
                    if cmp_bytes(c.kdata + s, ld_off(c.koff, c.klarge, c.pos + 1) - s, bp, bl) >= 0:
                        reason = R_BOUNDARY
                        break
                cost = c.costs[c.pos]
                if self.count > 0 and (self.acc + cost > budget_bits or self.count >= self.capacity):
                    reason = R_FULL
                    break
                self.osrc[self.count] = c.slot
                self.orow[self.count] = c.pos
                self.count += 1
                self.acc += cost
                c.pos += 1
                if c.pos >= c.n:
                    if c.last:
                        c.done = True
                    else:
                        self.refill = w
                        reason = R_REFILL
                        break
                self.replay(w)
        return reason
