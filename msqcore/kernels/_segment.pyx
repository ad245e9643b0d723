# cython: language_level=3
"""Hot kernels of the columnar segment format (``msqcore.storage.segment``).

Everything here works on flat typed buffers; the Python layer owns the file layout.

* ``id_width``: the minimal byte width (1..4) for a dictionary of a given cardinality,
  like Druid's ``VSizeColumnarInts``.
* ``pack_ids`` / ``unpack_ids``: int32 dictionary ids <-> little-endian 1/2/3/4-byte values.
* ``remap_ids``: rewrite ids through a mapping (pyarrow's unsorted ``dictionary_encode``
  ids -> sorted-dictionary ids).
* ``build_inverted_index``: a counting sort of ids into CSR form (offsets[card+1], rows[n]),
  the bitmap-index equivalent.
* ``row_list_deltas`` / ``row_lists_to_ids``: a column's row lists delta-coded for the
  ``rowLists`` layout (per value, its rows: the first, then the gaps), and the ids column back
  from them, checking they are a permutation.
* ``check_dictionary`` / ``check_inverted_index``: structural (and ordering) checks used by
  reads and by full validation.
* ``sort_strings``: a stable sort of string ids by unsigned byte order, to sort dictionaries:
  the MSD radix sort of ``_radix.pxd`` (shared with the spill's key sort), on 16 bytes and the
  length of each string cached next to the ids, each pass splitting on the next byte in which
  the strings differ (shared prefixes such as URLs' cost no pass).
* ``sorted_dictionary_of_rows``: a column's sorted dictionary, ids and inverted index at once by
  sorting its rows (the same radix sort, which also marks where each distinct string starts),
  for columns of mostly distinct values.
* ``StringDictionary``: the distinct values of a string column in first-seen order, through an
  open-addressing hash table, as its rows arrive in batches: each row's first-seen id, with
  memory bounded by the cardinality (the streaming segment writer's dictionary).

Style: validate and allocate under the GIL, one ``with nogil:`` section, errors reported
through a flag and raised after the GIL is re-acquired.
"""
from libc.stdint cimport INT32_MAX, UINT32_MAX, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset

import threading

import numpy as np

from msqcore.kernels._radix cimport RadixItem, radix_same_bytes, radix_sort, radix_tail8


cdef inline int _width_for(int64_t cardinality) noexcept nogil:
    # ids are 0..cardinality-1; width 4 covers every non-negative int32
    if cardinality <= 0x100:
        return 1
    if cardinality <= 0x10000:
        return 2
    if cardinality <= 0x1000000:
        return 3
    return 4


cdef inline int _cmp_bytes(const uint8_t* base, int64_t a0, int64_t a1,
                           int64_t b0, int64_t b1) noexcept nogil:
    """Unsigned lexicographic comparison of base[a0:a1] and base[b0:b1] (-1, 0, 1)."""
    cdef:
        int64_t la = a1 - a0
        int64_t lb = b1 - b0
        int64_t m = la if la < lb else lb
        int64_t k
        uint8_t x, y
    for k in range(m):
        x = base[a0 + k]
        y = base[b0 + k]
        if x != y:
            return -1 if x < y else 1
    if la == lb:
        return 0
    return -1 if la < lb else 1


def id_width(Py_ssize_t cardinality):
    """Bytes per packed id for a dictionary of ``cardinality`` entries: 1, 2, 3 or 4."""
    if cardinality < 0 or cardinality > INT32_MAX:
        raise ValueError(f"cardinality out of range: {cardinality}")
    return _width_for(cardinality)


def pack_ids(const int32_t[::1] ids, int width):
    """Pack non-negative int32 ids into ``len(ids) * width`` little-endian bytes (uint8 array)."""
    cdef:
        Py_ssize_t n = ids.shape[0]
        Py_ssize_t i
        Py_ssize_t bad = -1
        int32_t v
        int32_t limit
        uint8_t[::1] out
        object result
    if width < 1 or width > 4:
        raise ValueError(f"id width must be 1, 2, 3 or 4, got {width}")
    limit = INT32_MAX if width == 4 else (1 << (8 * width)) - 1
    result = np.empty(n * width, dtype=np.uint8)
    out = result
    with nogil:
        if width == 1:
            for i in range(n):
                v = ids[i]
                if v < 0 or v > limit:
                    bad = i
                    break
                out[i] = <uint8_t>v
        elif width == 2:
            for i in range(n):
                v = ids[i]
                if v < 0 or v > limit:
                    bad = i
                    break
                out[2 * i] = <uint8_t>(v & 0xFF)
                out[2 * i + 1] = <uint8_t>((v >> 8) & 0xFF)
        elif width == 3:
            for i in range(n):
                v = ids[i]
                if v < 0 or v > limit:
                    bad = i
                    break
                out[3 * i] = <uint8_t>(v & 0xFF)
                out[3 * i + 1] = <uint8_t>((v >> 8) & 0xFF)
                out[3 * i + 2] = <uint8_t>((v >> 16) & 0xFF)
        else:
            for i in range(n):
                v = ids[i]
                if v < 0:
                    bad = i
                    break
                out[4 * i] = <uint8_t>(v & 0xFF)
                out[4 * i + 1] = <uint8_t>((v >> 8) & 0xFF)
                out[4 * i + 2] = <uint8_t>((v >> 16) & 0xFF)
                out[4 * i + 3] = <uint8_t>((v >> 24) & 0xFF)
    if bad >= 0:
        raise ValueError(f"id {ids[bad]} at row {bad} does not fit in {width} byte(s)")
    return result


def unpack_ids(const uint8_t[::1] data, int width, Py_ssize_t n, Py_ssize_t cardinality):
    """Unpack ``n`` little-endian ``width``-byte ids into an int32 array.

    Raises ValueError if ``data`` has the wrong length or an id is not below ``cardinality``.
    """
    cdef:
        Py_ssize_t i
        Py_ssize_t bad = -1
        uint32_t v = 0
        uint32_t bad_value = 0
        uint32_t card
        int32_t[::1] out
        object result
    if width < 1 or width > 4:
        raise ValueError(f"id width must be 1, 2, 3 or 4, got {width}")
    if n < 0 or data.shape[0] != n * width:
        raise ValueError(f"{n} ids of {width} byte(s) need {n * width} bytes, got {data.shape[0]}")
    if cardinality < 0 or cardinality > INT32_MAX:
        raise ValueError(f"cardinality out of range: {cardinality}")
    card = <uint32_t>cardinality
    result = np.empty(n, dtype=np.int32)
    out = result
    with nogil:
        if width == 1:
            for i in range(n):
                v = data[i]
                if v >= card:
                    bad = i
                    break
                out[i] = <int32_t>v
        elif width == 2:
            for i in range(n):
                v = data[2 * i] | (<uint32_t>data[2 * i + 1] << 8)
                if v >= card:
                    bad = i
                    break
                out[i] = <int32_t>v
        elif width == 3:
            for i in range(n):
                v = (data[3 * i] | (<uint32_t>data[3 * i + 1] << 8)
                     | (<uint32_t>data[3 * i + 2] << 16))
                if v >= card:
                    bad = i
                    break
                out[i] = <int32_t>v
        else:
            for i in range(n):
                v = (data[4 * i] | (<uint32_t>data[4 * i + 1] << 8)
                     | (<uint32_t>data[4 * i + 2] << 16) | (<uint32_t>data[4 * i + 3] << 24))
                if v >= card:
                    bad = i
                    break
                out[i] = <int32_t>v
        if bad >= 0:
            bad_value = v
    if bad >= 0:
        raise ValueError(f"id {bad_value} at row {bad} is out of range for cardinality {cardinality}")
    return result


def remap_ids(const int32_t[::1] ids, const int32_t[::1] mapping):
    """Return ``mapping[ids]`` as a new int32 array (every id must index ``mapping``)."""
    cdef:
        Py_ssize_t n = ids.shape[0]
        Py_ssize_t m = mapping.shape[0]
        Py_ssize_t i
        Py_ssize_t bad = -1
        int32_t v
        int32_t[::1] out
        object result
    result = np.empty(n, dtype=np.int32)
    out = result
    with nogil:
        for i in range(n):
            v = ids[i]
            if v < 0 or v >= m:
                bad = i
                break
            out[i] = mapping[v]
    if bad >= 0:
        raise ValueError(f"id {ids[bad]} at row {bad} is outside the mapping of size {m}")
    return result


def build_inverted_index(const int32_t[::1] ids, Py_ssize_t cardinality):
    """Counting sort of ``ids`` into CSR form.

    Returns ``(offsets int64[cardinality + 1], rows int32[n])``: ``rows[offsets[k]:offsets[k+1]]``
    are the ascending row numbers whose id is ``k``.
    """
    cdef:
        Py_ssize_t n = ids.shape[0]
        Py_ssize_t i
        Py_ssize_t k
        Py_ssize_t bad = -1
        int32_t v
        int64_t[::1] offsets
        int64_t[::1] cursor
        int32_t[::1] rows
        object offsets_arr
        object cursor_arr
        object rows_arr
    if cardinality < 0 or cardinality > INT32_MAX:
        raise ValueError(f"cardinality out of range: {cardinality}")
    if n > INT32_MAX:
        raise ValueError(f"too many rows for an int32 row index: {n}")
    offsets_arr = np.zeros(cardinality + 1, dtype=np.int64)
    cursor_arr = np.empty(cardinality, dtype=np.int64)
    rows_arr = np.empty(n, dtype=np.int32)
    offsets = offsets_arr
    cursor = cursor_arr
    rows = rows_arr
    with nogil:
        for i in range(n):
            v = ids[i]
            if v < 0 or v >= cardinality:
                bad = i
                break
            offsets[v + 1] += 1
        if bad < 0:
            for k in range(cardinality):
                offsets[k + 1] += offsets[k]
                cursor[k] = offsets[k]
            for i in range(n):
                v = ids[i]
                rows[cursor[v]] = <int32_t>i
                cursor[v] += 1
    if bad >= 0:
        raise ValueError(f"id {ids[bad]} at row {bad} is out of range for cardinality {cardinality}")
    return offsets_arr, rows_arr


def row_list_deltas(const int64_t[::1] offsets, const int32_t[::1] rows):
    """The CSR row lists ``(offsets[card + 1], rows[n])`` delta-coded for the ``rowLists`` layout,
    uint32[n]: each value's first row as is, then the gap from each of its rows to the next
    (``row_lists_to_ids`` reads them back)."""
    cdef:
        Py_ssize_t n = rows.shape[0]
        Py_ssize_t card = offsets.shape[0] - 1
        Py_ssize_t k
        int64_t j
        uint32_t[::1] out
    if card < 0 or offsets[0] != 0 or offsets[card] != n:
        raise ValueError(f"row list offsets must span 0..{n}")
    for k in range(card):
        if offsets[k + 1] < offsets[k]:
            raise ValueError(f"row list offsets decrease at value {k}")
    result = np.empty(n, dtype=np.uint32)
    out = result
    with nogil:
        for k in range(card):
            if offsets[k] < offsets[k + 1]:
                out[offsets[k]] = <uint32_t>rows[offsets[k]]
            for j in range(offsets[k] + 1, offsets[k + 1]):
                out[j] = <uint32_t>rows[j] - <uint32_t>rows[j - 1]
    return result


def row_lists_to_ids(const uint32_t[::1] counts, const uint32_t[::1] deltas, Py_ssize_t n):
    """The ids (int32[n]) of a column stored as row lists: value ``k`` holds ``counts[k]`` rows,
    given in ``deltas`` as its first row, then the gap from each row to the next.

    Raises ValueError unless the lists are strictly ascending and cover every row exactly once.
    """
    cdef:
        Py_ssize_t card = counts.shape[0]
        Py_ssize_t k
        int64_t j = 0
        int64_t e
        int64_t total = 0
        int64_t row
        Py_ssize_t bad = -1
        int problem = 0
        int32_t[::1] out
        object result
    if n < 0 or n > INT32_MAX:
        raise ValueError(f"row count out of range: {n}")
    if deltas.shape[0] != n:
        raise ValueError(f"row lists hold {deltas.shape[0]} rows, the column has {n}")
    for k in range(card):
        total += counts[k]
    if total != n:
        raise ValueError(f"row counts add up to {total}, the column has {n} rows")
    result = np.full(n, -1, dtype=np.int32)
    out = result
    with nogil:
        for k in range(card):
            e = j + counts[k]
            row = -1
            while j < e:
                if row < 0:
                    row = deltas[j]
                elif deltas[j] == 0:
                    problem = 1
                    break
                else:
                    row += deltas[j]
                if row >= n or out[row] >= 0:
                    problem = 1
                    break
                out[row] = <int32_t>k
                j += 1
            if problem:
                bad = k
                break
    if problem:
        raise ValueError(f"the row list of value {bad} is not ascending rows that no other value holds")
    return result


def check_dictionary(const int64_t[::1] offsets, const uint8_t[::1] data, Py_ssize_t first_sorted,
                     bint check_order):
    """Check a dictionary stored as ``offsets[card+1]`` into ``data``.

    Always: offsets start at 0, never decrease and end at ``len(data)``. With ``check_order``
    also: entries ``first_sorted..card-1`` are strictly ascending in unsigned byte order.
    Raises ValueError describing the first problem.
    """
    cdef:
        Py_ssize_t card1 = offsets.shape[0]
        Py_ssize_t size = data.shape[0]
        Py_ssize_t k
        Py_ssize_t bad = -1
        int problem = 0
        const uint8_t* base = NULL
    if card1 < 1:
        raise ValueError("dictionary offsets are empty")
    if size > 0:
        base = &data[0]
    if first_sorted < 1:
        first_sorted = 1
    with nogil:
        if offsets[0] != 0:
            problem = 1
        elif offsets[card1 - 1] != size:
            problem = 2
        else:
            for k in range(1, card1):
                if offsets[k] < offsets[k - 1]:
                    problem = 3
                    bad = k - 1
                    break
            if problem == 0 and check_order:
                for k in range(first_sorted, card1 - 1):
                    if _cmp_bytes(base, offsets[k - 1], offsets[k], offsets[k], offsets[k + 1]) >= 0:
                        problem = 4
                        bad = k
                        break
    if problem == 1:
        raise ValueError(f"dictionary offsets start at {offsets[0]}, not 0")
    if problem == 2:
        raise ValueError(f"dictionary offsets end at {offsets[card1 - 1]}, but the data has {size} bytes")
    if problem == 3:
        raise ValueError(f"dictionary offsets decrease at entry {bad}")
    if problem == 4:
        raise ValueError(f"dictionary is not strictly sorted: entry {bad} is not greater than entry {bad - 1}")


def check_inverted_index(const int32_t[::1] ids, const int64_t[::1] offsets, const int32_t[::1] rows):
    """Check that the CSR index ``(offsets, rows)`` is exactly the inverted ``ids`` column.

    Every group must hold strictly ascending rows whose id is the group's id, and the groups
    must cover all ``n`` rows. Raises ValueError describing the first problem.
    """
    cdef:
        Py_ssize_t n = ids.shape[0]
        Py_ssize_t card = offsets.shape[0] - 1
        Py_ssize_t k
        int64_t j
        int32_t r
        int32_t prev
        Py_ssize_t bad = -1
        int problem = 0
    if card < 0:
        raise ValueError("index offsets are empty")
    if rows.shape[0] != n:
        raise ValueError(f"index has {rows.shape[0]} rows, the column has {n}")
    with nogil:
        if offsets[0] != 0 or offsets[card] != n:
            problem = 1
        else:
            for k in range(card):
                if offsets[k + 1] < offsets[k] or offsets[k + 1] > n:
                    problem = 2
                    bad = k
                    break
                prev = -1
                for j in range(offsets[k], offsets[k + 1]):
                    r = rows[j]
                    if r <= prev or r >= n or ids[r] != k:
                        problem = 3
                        bad = k
                        break
                    prev = r
                if problem:
                    break
    if problem == 1:
        raise ValueError(f"index offsets span {offsets[0]}..{offsets[card]}, expected 0..{n}")
    if problem == 2:
        raise ValueError(f"index offsets are out of order at value {bad}")
    if problem == 3:
        raise ValueError(f"index rows for value {bad} are not the ascending rows having that value")


# --- sorting a string dictionary ----------------------------------------------------------------

cdef extern from *:
    void _prefetch "__builtin_prefetch"(const void*) nogil


# The sort's scratch (the items, their scatter copy and a bucket byte: 49 bytes a string) is kept
# per thread between sorts, up to this size: a fresh block of that size is pages that the kernel
# faults in and zeroes on every sort (glibc maps or trims blocks this large), which was a fifth
# of a segment build's CPU time. Held until the thread ends; a larger sort uses a block of its own.
DEF _SCRATCH_KEEP = 64 << 20
_scratch = threading.local()


cdef object _sort_scratch(Py_ssize_t n):
    """A uint8 array of at least 49 * n bytes for ``_sort_ids``."""
    cdef Py_ssize_t need = n * (2 * sizeof(RadixItem) + 1)
    buf = getattr(_scratch, "buf", None)
    if buf is not None and buf.shape[0] >= need:
        return buf
    if need > _SCRATCH_KEEP:
        return np.empty(need, dtype=np.uint8)
    _scratch.buf = None  # free the smaller one first
    buf = np.empty(need, dtype=np.uint8)
    _scratch.buf = buf
    return buf


cdef int _sort_ids(const int64_t* offsets, const uint8_t* base, int32_t* order, Py_ssize_t n,
                   uint8_t* brk, uint8_t* scratch) noexcept nogil:
    """Sort ``order[0:n]`` stably by the strings' bytes (``_radix.radix_sort``); with ``brk``
    (n bytes, zeroed) also mark where each distinct string starts. ``scratch``: 49 * n bytes
    (``_sort_scratch``). Returns 0 (kept as an int for the callers' error paths)."""
    cdef:
        Py_ssize_t i
        int64_t length
        int32_t r
        int rc
        RadixItem* a = <RadixItem*>scratch
    if n < 1:
        return 0
    for i in range(n):
        r = order[i]
        length = offsets[r + 1] - offsets[r]
        a[i].v = r
        a[i].ln = <uint32_t>length if length < UINT32_MAX else UINT32_MAX
    rc = radix_sort(a, n, offsets, base, brk, a + n, scratch + 2 * n * sizeof(RadixItem))
    if rc == 0:
        for i in range(n):
            order[i] = a[i].v
    return rc


def sort_strings(const int64_t[::1] offsets, const uint8_t[::1] data, int32_t[::1] order):
    """Sort ``order`` (ids of strings ``data[offsets[i]:offsets[i+1]]``) in place by unsigned
    byte order of the strings, shorter prefix first; stable (equal strings keep their order)."""
    cdef:
        Py_ssize_t n = order.shape[0]
        Py_ssize_t card = offsets.shape[0] - 1
        Py_ssize_t i
        const uint8_t* base = NULL
        uint8_t dummy = 0
        int rc = 0
        uint8_t[::1] scratch
    for i in range(n):
        if order[i] < 0 or order[i] >= card:
            raise ValueError(f"string id {order[i]} is outside the {card} strings")
    if card >= 0 and (offsets[0] < 0 or offsets[card] > data.shape[0]):
        raise ValueError("string offsets are outside the data")
    for i in range(card):
        if offsets[i + 1] < offsets[i]:
            raise ValueError(f"string offsets decrease at {i}")
    base = &data[0] if data.shape[0] else &dummy
    if n > 1:
        scratch_arr = _sort_scratch(n)
        scratch = scratch_arr
        with nogil:
            rc = _sort_ids(&offsets[0], base, &order[0], n, NULL, &scratch[0])
    if rc < 0:
        raise MemoryError("sort_strings: out of memory")


cdef int check_rows(const int64_t[::1] offsets, const uint8_t[::1] data, object valid) except -1:
    """The checks of a string column given as (offsets, data, valid) before a kernel reads it."""
    cdef Py_ssize_t n = offsets.shape[0] - 1
    cdef const uint8_t[::1] ok
    if n < 0:
        raise ValueError("offsets must hold at least one entry")
    if valid is not None:
        ok = valid
        if ok.shape[0] != n:
            raise ValueError(f"valid has {ok.shape[0]} entries for {n} rows")
    if n and (offsets[0] < 0 or offsets[n] > data.shape[0]):
        raise ValueError("offsets point outside data")
    return 0


def sorted_dictionary_of_rows(const int64_t[::1] offsets, const uint8_t[::1] data, valid=None):
    """A string column's sorted dictionary, ids and inverted index at once, by sorting its rows
    (for columns of many distinct values, where hashing them first is wasted work).

    Row ``i`` is ``data[offsets[i]:offsets[i+1]]``, null where ``valid[i]`` is 0. Returns
    ``(dict_offsets int64[card + 1], dict_data uint8, ids int32[n], index_offsets int64[card + 1],
    index_rows int32[n], has_null)``: the distinct values strictly sorted by bytes (entry 0 is
    ``""`` standing for null when a row is null), each row's id, and per entry its rows ascending
    (``build_inverted_index``'s form), the same as hashing, sorting and inverting would give.
    """
    cdef:
        Py_ssize_t n = offsets.shape[0] - 1
        Py_ssize_t i, j, nnull
        const uint8_t[::1] ok
        bint check_valid = valid is not None
        const uint8_t* base
        uint8_t dummy = 0
        int32_t* rows
        int32_t* ids
        int64_t* doff
        int64_t* ioff
        uint8_t* dd
        uint8_t* brk
        uint8_t* scratch
        int64_t total = 0, s, length, used = 0
        int64_t card = 0
        int32_t r
        int rc = 0
    check_rows(offsets, data, valid)
    if n > INT32_MAX:
        raise ValueError(f"too many rows for an int32 row index: {n}")
    if check_valid:
        ok = valid
    for i in range(n):
        if offsets[i + 1] < offsets[i]:
            raise ValueError(f"string offsets decrease at {i}")
    base = &data[0] if data.shape[0] else &dummy
    rows_arr = np.empty(n, dtype=np.int32)
    ids_arr = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] rows_v = rows_arr
    cdef int32_t[::1] ids_v = ids_arr
    rows = &rows_v[0] if n else NULL
    ids = &ids_v[0] if n else NULL
    # the null rows first (entry 0), then the others sorted by their strings
    nnull = 0
    if check_valid:
        for i in range(n):
            if not ok[i]:
                rows[nnull] = <int32_t>i
                nnull += 1
    j = nnull
    for i in range(n):
        if not check_valid or ok[i]:
            rows[j] = <int32_t>i
            total += offsets[i + 1] - offsets[i]
            j += 1
    ioff_arr = np.empty(n + 2, dtype=np.int64)  # at most n + 1 entries (n values and the null)
    doff_arr = np.empty(n + 2, dtype=np.int64)
    dd_arr = np.empty(total, dtype=np.uint8)
    cdef int64_t[::1] ioff_v = ioff_arr
    cdef int64_t[::1] doff_v = doff_arr
    cdef uint8_t[::1] dd_v = dd_arr
    ioff = &ioff_v[0]
    doff = &doff_v[0]
    dd = &dd_v[0] if total else &dummy
    brk_arr = np.zeros(n, dtype=np.uint8)  # 1 where a sorted row starts a new string
    cdef uint8_t[::1] brk_v = brk_arr
    brk = &brk_v[0] if n else NULL
    scratch_arr = _sort_scratch(n - nnull)
    cdef uint8_t[::1] scratch_v = scratch_arr
    scratch = &scratch_v[0] if n > nnull else NULL
    with nogil:
        rc = _sort_ids(&offsets[0], base, rows + nnull, n - nnull, brk + nnull, scratch)
        if rc == 0:
            ioff[0] = 0
            doff[0] = 0
            if nnull:
                for i in range(nnull):
                    ids[rows[i]] = 0
                card = 1
                doff[1] = 0
            # walk the sorted rows: a new entry where the sort saw a new string
            for i in range(nnull, n):
                # the rows' strings are scattered: fetch a row's offsets 16 rows ahead, and
                # its bytes 8 rows ahead, so the cache misses overlap
                if i + 16 < n:
                    _prefetch(&offsets[rows[i + 16]])
                    _prefetch(&ids[rows[i + 16]])
                if i + 8 < n and brk[i + 8]:
                    _prefetch(base + offsets[rows[i + 8]])
                r = rows[i]
                if brk[i]:
                    ioff[card] = i
                    s = offsets[r]
                    length = offsets[r + 1] - s
                    if length:
                        memcpy(dd + used, base + s, <size_t>length)
                    used += length
                    card += 1
                    doff[card] = used
                ids[r] = <int32_t>(card - 1)
            ioff[card] = n
    if rc < 0:
        raise MemoryError("sorted_dictionary_of_rows: out of memory")
    return (doff_arr[:card + 1], dd_arr[:used], ids_arr, ioff_arr[:card + 1], rows_arr, nnull > 0)


# --- StringDictionary: distinct strings in first-seen order, through a hash table ---------------

DEF _WINDOW = 16
DEF _SMALL_TABLE = 8192  # slots (64 KiB): up to this size the table stays in cache


cdef inline uint64_t _hash_bytes(const uint8_t* p, int64_t n) noexcept nogil:
    """A 64-bit hash of n bytes, 8 at a time (a multiply-xorshift mix, like wyhash's)."""
    cdef:
        uint64_t h = 0x9E3779B97F4A7C15ULL ^ <uint64_t>n
        uint64_t w
        int64_t i = 0
    while i + 8 < n:
        memcpy(&w, p + i, 8)
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL
        h ^= h >> 29
        i += 8
    if n > 0:  # the last 1 to 8 bytes (overlapping the word before: n is in the hash)
        h = (h ^ radix_tail8(p, n)) * 0xFF51AFD7ED558CCDULL
        h ^= h >> 29
    h ^= h >> 32
    h *= 0xC4CEB9FE1A85EC53ULL
    h ^= h >> 29
    return h


cdef class StringDictionary:
    """The distinct values of a string column as its rows arrive, in first-seen order.

    ``encode(offsets, data, valid)`` returns each row's first-seen id + 1 (0 for a null row);
    memory holds the distinct values and an open-addressing hash table of them, not the rows.
    A row equal to the row before it skips the hash (segment rows arrive sorted, so runs of
    equal values are common). ``values()`` returns (offsets int64[card + 1], data uint8).
    """
    cdef uint64_t* slots      # 0 for an empty slot, else the hash's high 32 bits | entry id + 1
    cdef uint64_t* hashes     # per entry, to rehash
    cdef int64_t* starts      # per entry start in data, [card + 1]
    cdef uint8_t* data
    cdef Py_ssize_t nslots, card, cap_entries, data_len, cap_data
    cdef public bint has_null

    def __cinit__(self):
        self.nslots = 1024
        self.cap_entries = 1024
        self.cap_data = 1 << 16
        self.slots = <uint64_t*>calloc(self.nslots, sizeof(uint64_t))
        self.hashes = <uint64_t*>malloc(self.cap_entries * sizeof(uint64_t))
        self.starts = <int64_t*>malloc((self.cap_entries + 1) * sizeof(int64_t))
        self.data = <uint8_t*>malloc(self.cap_data)
        if not (self.slots and self.hashes and self.starts and self.data):
            raise MemoryError()
        self.starts[0] = 0
        self.card = 0
        self.data_len = 0
        self.has_null = False

    def __dealloc__(self):
        free(self.slots)
        free(self.hashes)
        free(self.starts)
        free(self.data)

    @property
    def cardinality(self):
        return self.card

    cdef int _rehash(self) noexcept nogil:
        cdef:
            Py_ssize_t n = self.nslots * 2
            Py_ssize_t mask = n - 1
            Py_ssize_t e, s
            uint64_t* slots = <uint64_t*>calloc(n, sizeof(uint64_t))
        if slots == NULL:
            return -1
        for e in range(self.card):
            s = <Py_ssize_t>(self.hashes[e] & <uint64_t>mask)
            while slots[s]:
                s = (s + 1) & mask
            slots[s] = (self.hashes[e] & 0xFFFFFFFF00000000ULL) | <uint64_t>(e + 1)
        free(self.slots)
        self.slots = slots
        self.nslots = n
        return 0

    cdef int32_t _insert(self, const uint8_t* p, int64_t n, uint64_t h, Py_ssize_t slot) noexcept nogil:
        """Append a new entry (its slot is known to be empty); -1 when out of memory."""
        cdef:
            Py_ssize_t cap
            void* grown
        if self.card >= INT32_MAX - 1:
            return -1
        if self.card == self.cap_entries:
            cap = self.cap_entries * 2
            grown = realloc(self.hashes, cap * sizeof(uint64_t))
            if grown == NULL:
                return -1
            self.hashes = <uint64_t*>grown
            grown = realloc(self.starts, (cap + 1) * sizeof(int64_t))
            if grown == NULL:
                return -1
            self.starts = <int64_t*>grown
            self.cap_entries = cap
        if self.data_len + n > self.cap_data:
            cap = self.cap_data * 2
            while cap < self.data_len + n:
                cap *= 2
            grown = realloc(self.data, cap)
            if grown == NULL:
                return -1
            self.data = <uint8_t*>grown
            self.cap_data = cap
        if n:
            memcpy(self.data + self.data_len, p, <size_t>n)
        self.data_len += n
        self.hashes[self.card] = h
        self.starts[self.card + 1] = self.data_len
        self.slots[slot] = (h & 0xFFFFFFFF00000000ULL) | <uint64_t>(self.card + 1)
        self.card += 1
        return <int32_t>(self.card - 1)

    cdef int32_t _find(self, const uint8_t* p, int64_t length, uint64_t h) noexcept nogil:
        """The entry of ``p[0:length]`` (hash ``h``), added if new; -1 when out of memory."""
        cdef:
            Py_ssize_t mask = self.nslots - 1
            Py_ssize_t slot = <Py_ssize_t>(h & <uint64_t>mask)
            uint64_t tag = h & 0xFFFFFFFF00000000ULL
            uint64_t v
            int32_t e
        while True:
            v = self.slots[slot]
            if v == 0:
                e = self._insert(p, length, h, slot)
                break
            if (v & 0xFFFFFFFF00000000ULL) == tag:
                e = <int32_t>(v & 0xFFFFFFFFULL) - 1
                if self.starts[e + 1] - self.starts[e] == length and \
                        radix_same_bytes(self.data + self.starts[e], p, length):
                    break
            slot = (slot + 1) & mask
        if e < 0 or (2 * self.card > self.nslots and self._rehash() < 0):
            return -1
        return e

    def encode(self, const int64_t[::1] offsets, const uint8_t[::1] data, valid=None):
        """First-seen id + 1 of each of the ``len(offsets) - 1`` rows (0 where ``valid`` is 0)."""
        cdef:
            Py_ssize_t n = offsets.shape[0] - 1
            Py_ssize_t i, j, w, mask
            const uint8_t[::1] ok
            const uint8_t* base = &data[0] if data.shape[0] else NULL
            const uint8_t* p
            bint check_valid = valid is not None
            bint failed = False
            int64_t start, length
            int64_t prev_start = 0
            int64_t prev_length = -1
            int32_t prev_id = 0
            bint prev_ok = False
            int32_t e
            uint64_t h
            uint64_t hs[_WINDOW]
            int32_t[::1] out
            object result
        check_rows(offsets, data, valid)
        if check_valid:
            ok = valid
        result = np.empty(n, dtype=np.int32)
        out = result
        with nogil:
            # rows go in windows. While the table is small (in cache), each row is hashed and
            # looked up at once; then a window's rows are hashed and their slots prefetched
            # first, and probed after, so the table's cache misses overlap
            for j in range(0, n, _WINDOW):
                w = n - j if n - j < _WINDOW else _WINDOW
                if self.nslots <= _SMALL_TABLE:
                    for i in range(j, j + w):
                        if check_valid and not ok[i]:
                            out[i] = 0
                            self.has_null = True
                            prev_ok = False
                            continue
                        start = offsets[i]
                        length = offsets[i + 1] - start
                        if prev_ok and length == prev_length and \
                                radix_same_bytes(base + start, base + prev_start, length):
                            out[i] = prev_id
                            continue
                        e = self._find(base + start, length, _hash_bytes(base + start, length) | 1)
                        if e < 0:
                            failed = True
                            break
                        out[i] = e + 1
                        prev_ok, prev_id, prev_start, prev_length = True, e + 1, start, length
                    if failed:
                        break
                    continue
                mask = self.nslots - 1
                for i in range(j, j + w):  # hs[i - j] = 0: the same bytes as row i - 1
                    start = offsets[i]
                    length = offsets[i + 1] - start
                    if length == prev_length and radix_same_bytes(base + start, base + prev_start, length):
                        hs[i - j] = 0
                    elif check_valid and not ok[i]:
                        hs[i - j] = 1  # not used
                    else:
                        h = _hash_bytes(base + start, length) | 1
                        hs[i - j] = h
                        _prefetch(&self.slots[h & <uint64_t>mask])
                    prev_start, prev_length = start, length
                for i in range(j, j + w):
                    if check_valid and not ok[i]:
                        out[i] = 0
                        self.has_null = True
                        prev_ok = False
                        continue
                    h = hs[i - j]
                    if h == 0 and prev_ok:
                        out[i] = prev_id
                        continue
                    start = offsets[i]
                    length = offsets[i + 1] - start
                    p = base + start
                    if h == 0:  # equal to a null row before it
                        h = _hash_bytes(p, length) | 1
                    e = self._find(p, length, h)
                    if e < 0:
                        failed = True
                        break
                    out[i] = e + 1
                    prev_ok, prev_id = True, e + 1
                if failed:
                    break
        if failed:
            raise MemoryError("string dictionary out of memory")
        return result

    def values(self):
        """(offsets int64[card + 1], data uint8) of the distinct values, first seen first."""
        offsets = np.empty(self.card + 1, dtype=np.int64)
        cdef int64_t[::1] o = offsets
        cdef Py_ssize_t i
        for i in range(self.card + 1):
            o[i] = self.starts[i]
        data = np.empty(self.data_len, dtype=np.uint8)
        cdef uint8_t[::1] d = data
        if self.data_len:
            memcpy(&d[0], self.data, <size_t>self.data_len)
        return offsets, data
