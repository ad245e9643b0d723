# cython: language_level=3
"""Hot kernels of the columnar segment format (``msqcore.storage.segment``).

Everything here works on flat typed buffers; the Python layer owns the file layout.

* ``id_width``: the minimal byte width (1..4) for a dictionary of a given cardinality,
  like Druid's ``VSizeColumnarInts``.
* ``pack_ids`` / ``unpack_ids``: int32 dictionary ids <-> little-endian 1/2/3/4-byte values.
* ``id_bits`` / ``pack_id_bits`` / ``unpack_id_bits``: the ids of a dictionary of at most 128
  entries as a little-endian bit stream of 1 to 7 bits an id (segment format version 5).
* ``remap_ids``: rewrite ids through a mapping (pyarrow's unsorted ``dictionary_encode``
  ids -> sorted-dictionary ids).
* ``build_inverted_index``: a counting sort of ids into CSR form (offsets[card+1], rows[n]),
  the bitmap-index equivalent.
* ``lengths``: the uint32 differences of an offsets array (dictionary lengths, row counts).
* ``row_list_deltas`` / ``row_lists_to_ids``: a column's row lists delta-coded for the
  ``rowLists`` layout (per value, its rows: the first, then the gaps), and the ids column back
  from them, checking they are a permutation.
* ``check_dictionary`` / ``check_inverted_index``: structural (and ordering) checks used by
  reads and by full validation.
* ``sort_strings``: a stable MSD radix sort of string ids by unsigned byte order, on 16 bytes
  and the length of each string cached next to the ids (Sinha & Zobel's caching: one scattered
  read of the strings every 16 bytes of depth), each pass splitting on the next byte in which
  the strings differ (shared prefixes such as URLs' cost no pass), to sort dictionaries.
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


cdef extern from *:
    """
    #include <string.h>
    /* ids of B bits (a constant, so that each width is its own unrolled loop): 8 ids from each
       B bytes of a little-endian bit stream of ``size`` bytes; returns their maximum */
    #define MSQ_UNPACK_BITS(B) \
        for (Py_ssize_t g = 0; g < groups; g++) { \
            uint64_t w = 0; \
            if (g * (B) + 8 <= size) memcpy(&w, d + g * (B), 8); /* one load, no partial store */ \
            else memcpy(&w, d + g * (B), (B)); \
            for (int j = 0; j < 8; j++) { \
                uint32_t v = (uint32_t)(w >> (j * (B))) & ((1u << (B)) - 1u); \
                out[8 * g + j] = (int32_t)v; \
                mx = v > mx ? v : mx; \
            } \
        }
    static uint32_t msq_unpack_bits(const uint8_t* d, Py_ssize_t size, int bits, Py_ssize_t groups, int32_t* out) {
        uint32_t mx = 0;
        switch (bits) {
            case 1: MSQ_UNPACK_BITS(1) break;
            case 2: MSQ_UNPACK_BITS(2) break;
            case 3: MSQ_UNPACK_BITS(3) break;
            case 4: MSQ_UNPACK_BITS(4) break;
            case 5: MSQ_UNPACK_BITS(5) break;
            case 6: MSQ_UNPACK_BITS(6) break;
            case 7: MSQ_UNPACK_BITS(7) break;
        }
        return mx;
    }
    """
    uint32_t msq_unpack_bits(const uint8_t* d, Py_ssize_t size, int bits, Py_ssize_t groups, int32_t* out) nogil


def id_bits(Py_ssize_t cardinality):
    """Bits per bit-packed id for a dictionary of ``cardinality`` entries (1 to 7), or 0 when
    the dictionary needs whole bytes (more than 128 entries)."""
    if cardinality < 0 or cardinality > INT32_MAX:
        raise ValueError(f"cardinality out of range: {cardinality}")
    if cardinality > 128:
        return 0
    return max(1, (cardinality - 1).bit_length())


def pack_id_bits(const int32_t[::1] ids, int bits):
    """Pack ids below ``2 ** bits`` (``bits`` 1 to 7) into a little-endian bit stream: id ``i``
    in bits ``[i * bits, (i + 1) * bits)``, the last byte's high bits zero. Returns
    uint8[ceil(n * bits / 8)]."""
    cdef:
        Py_ssize_t n = ids.shape[0]
        Py_ssize_t i, pos = 0, bad = -1
        uint64_t acc = 0
        int nacc = 0
        uint32_t limit
        uint8_t[::1] out
    if bits < 1 or bits > 7:
        raise ValueError(f"id bits must be 1 to 7, got {bits}")
    limit = <uint32_t>1 << bits
    result = np.empty((n * bits + 7) // 8, dtype=np.uint8)
    out = result
    with nogil:
        for i in range(n):
            if <uint32_t>ids[i] >= limit:
                bad = i
                break
            acc |= <uint64_t>ids[i] << nacc
            nacc += bits
            if nacc >= 32:  # flush four bytes now and then, not a byte per id
                out[pos] = <uint8_t>(acc & 0xFF)
                out[pos + 1] = <uint8_t>((acc >> 8) & 0xFF)
                out[pos + 2] = <uint8_t>((acc >> 16) & 0xFF)
                out[pos + 3] = <uint8_t>((acc >> 24) & 0xFF)
                pos += 4
                acc >>= 32
                nacc -= 32
        while bad < 0 and nacc > 0:
            out[pos] = <uint8_t>(acc & 0xFF)
            pos += 1
            acc >>= 8
            nacc -= 8
    if bad >= 0:
        raise ValueError(f"id {ids[bad]} at row {bad} does not fit in {bits} bit(s)")
    return result


def unpack_id_bits(const uint8_t[::1] data, int bits, Py_ssize_t n, Py_ssize_t cardinality, rows=None):
    """The ids of ``pack_id_bits``' stream as int32: the first ``n`` (``data`` must hold exactly
    ``ceil(n * bits / 8)`` bytes), or with ``rows`` (int64, each below ``8 * len(data) // bits``)
    the ids at those positions, in their order. Raises ValueError for a wrong length, a row out
    of range or an id not below ``cardinality``."""
    cdef:
        Py_ssize_t i, m, bad = -1
        Py_ssize_t size = data.shape[0]
        Py_ssize_t cap
        int64_t r, bit
        uint32_t v = 0, mask, w
        const uint8_t* d = &data[0] if size else NULL
        const int64_t[::1] want
        int32_t[::1] out
        bint bad_row = False
    if bits < 1 or bits > 7:
        raise ValueError(f"id bits must be 1 to 7, got {bits}")
    if cardinality < 0 or cardinality > (1 << bits):
        raise ValueError(f"cardinality {cardinality} does not fit in {bits} bit(s)")
    mask = (<uint32_t>1 << bits) - 1
    cap = 8 * size // bits  # ids the stream holds
    if rows is None:
        if n < 0 or size != (n * bits + 7) // 8:
            raise ValueError(f"{n} ids of {bits} bit(s) need {(n * bits + 7) // 8} bytes, got {size}")
        m = n
    else:
        want = rows
        m = want.shape[0]
    result = np.empty(m, dtype=np.int32)
    out = result
    with nogil:
        i = 0
        if rows is None and m >= 8:  # 8 ids from each ``bits`` bytes (little-endian host, as _key8)
            if msq_unpack_bits(d, size, bits, m >> 3, &out[0]) >= <uint32_t>cardinality:
                for i in range(m & ~7):
                    if <uint32_t>out[i] >= <uint32_t>cardinality:
                        bad = i
                        v = <uint32_t>out[i]
                        break
            i = m & ~7
        while bad < 0 and i < m:
            if rows is None:
                r = i
            else:
                r = want[i]
                if r < 0 or r >= cap:
                    bad = i
                    bad_row = True
                    break
            bit = r * bits
            w = d[bit >> 3]
            if (bit >> 3) + 1 < size:
                w |= <uint32_t>d[(bit >> 3) + 1] << 8
            v = (w >> (bit & 7)) & mask
            if v >= <uint32_t>cardinality:
                bad = i
                break
            out[i] = <int32_t>v
            i += 1
    if bad_row:
        raise ValueError(f"row {want[bad]} is outside the {cap} ids of the stream")
    if bad >= 0:
        raise ValueError(f"id {v} at row {bad if rows is None else want[bad]} is out of range "
                         f"for cardinality {cardinality}")
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


def lengths(const int64_t[::1] offsets):
    """``offsets[i + 1] - offsets[i]`` as uint32[n] (the lengths and counts parts), in one pass
    without an int64 copy first. Raises ValueError if offsets decrease or a length needs more
    than 32 bits."""
    cdef:
        Py_ssize_t n = offsets.shape[0] - 1
        Py_ssize_t i
        Py_ssize_t bad = -1
        int64_t x
        uint32_t[::1] out
    if n < 0:
        raise ValueError("offsets must hold at least one entry")
    result = np.empty(n, dtype=np.uint32)
    out = result
    with nogil:
        for i in range(n):
            x = offsets[i + 1] - offsets[i]
            if x < 0 or x > UINT32_MAX:
                bad = i
                break
            out[i] = <uint32_t>x
    if bad >= 0:
        raise ValueError(f"length {offsets[bad + 1] - offsets[bad]} at {bad} is not a uint32")
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

cdef inline int _cmp_from(const int64_t* offsets, const uint8_t* data, int32_t a, int32_t b,
                          int64_t d) noexcept nogil:
    return _cmp_bytes(data, offsets[a] + d if offsets[a] + d < offsets[a + 1] else offsets[a + 1],
                      offsets[a + 1],
                      offsets[b] + d if offsets[b] + d < offsets[b + 1] else offsets[b + 1],
                      offsets[b + 1])


cdef extern from *:
    uint64_t _bswap64 "__builtin_bswap64"(uint64_t) nogil
    void _prefetch "__builtin_prefetch"(const void*) nogil
    int _clz64 "__builtin_clzll"(uint64_t) nogil
    int _ctz64 "__builtin_ctzll"(uint64_t) nogil


cdef inline uint64_t _tail8(const uint8_t* p, int64_t n) noexcept nogil:
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


cdef inline bint _same_bytes(const uint8_t* a, const uint8_t* b, int64_t n) noexcept nogil:
    """``a[0:n] == b[0:n]``, a word at a time (these strings are short: ``memcmp``'s call costs more)."""
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
    return _tail8(a, n) == _tail8(b, n)


cdef inline uint64_t _key8(const int64_t* offsets, const uint8_t* data, int32_t i, int64_t d) noexcept nogil:
    """Bytes ``d..d+7`` of string ``i`` as a big-endian integer, zero past its end (so integer
    order is byte order on those 8 bytes)."""
    cdef:
        int64_t s = offsets[i] + d
        int64_t rem = offsets[i + 1] - s
        uint64_t w = 0
    if rem >= 8:
        memcpy(&w, data + s, 8)
        return _bswap64(w)
    if rem > 0:
        memcpy(&w, data + s, <size_t>rem)
        return _bswap64(w)
    return 0


DEF _SMALL = 32  # ranges this short are insertion sorted
DEF _SKIP_SAMPLE = 16  # strings sampled for a common part to skip (``_reload``)


cdef struct _Item:  # one string being sorted, moved as a whole (one write stream per radix bucket)
    uint64_t k      # bytes d..d+7 of the string (``_key8``)
    uint64_t k2     # bytes d+8..d+15, where the range's ``have2`` says so
    int32_t v       # its id
    uint32_t ln     # its length, or UINT32_MAX for "read the offsets"


cdef struct _Sort:
    const int64_t* offsets
    const uint8_t* data
    _Item* a        # the items
    _Item* t        # scratch of the same size, for the stable scatter
    uint8_t* brk    # NULL, or set to 1 where a position starts a new distinct string


cdef inline int64_t _len_of(const _Sort* s, const _Item* x) noexcept nogil:
    if x.ln != UINT32_MAX:
        return x.ln
    return s.offsets[x.v + 1] - s.offsets[x.v]


cdef inline int _cmp_cached(const _Sort* s, const _Item* x, const _Item* y, int64_t d, bint have2) noexcept nogil:
    """Byte order of two strings equal in their first ``d`` bytes, from their cached keys and
    lengths first (a string ending within a key is a prefix of any other of that key)."""
    cdef int64_t la, lb
    if x.k != y.k:
        return -1 if x.k < y.k else 1
    la = _len_of(s, x)
    lb = _len_of(s, y)
    if la <= d + 8 or lb <= d + 8:
        return (la > lb) - (la < lb)
    if not have2:
        return _cmp_from(s.offsets, s.data, x.v, y.v, d + 8)
    if x.k2 != y.k2:
        return -1 if x.k2 < y.k2 else 1
    if la <= d + 16 or lb <= d + 16:
        return (la > lb) - (la < lb)
    return _cmp_from(s.offsets, s.data, x.v, y.v, d + 16)


cdef void _insertion(_Sort* s, Py_ssize_t lo, Py_ssize_t n, int64_t d, bint have2) noexcept nogil:
    """Stable insertion sort of a short range; marks where distinct strings start."""
    cdef:
        Py_ssize_t i, j, e = lo + n
        _Item x
    for i in range(lo + 1, e):
        x = s.a[i]
        j = i
        while j > lo and _cmp_cached(s, &s.a[j - 1], &x, d, have2) > 0:
            s.a[j] = s.a[j - 1]
            j -= 1
        s.a[j] = x
    if s.brk != NULL:
        for i in range(lo + 1, e):
            s.brk[i] = _cmp_cached(s, &s.a[i - 1], &s.a[i], d, have2) != 0


cdef inline void _scatter(_Sort* s, Py_ssize_t lo, Py_ssize_t n, Py_ssize_t* start, const uint8_t* cls) noexcept nogil:
    """Move positions lo..lo+n-1 stably to ``start[cls[i - lo]]`` (offsets from lo), through the
    scratch array."""
    cdef Py_ssize_t i
    for i in range(n):
        s.t[lo + start[cls[i]]] = s.a[lo + i]
        start[cls[i]] += 1
    memcpy(s.a + lo, s.t + lo, <size_t>n * sizeof(_Item))


cdef int64_t _lcp_from(const uint8_t* a, int64_t la, const uint8_t* b, int64_t lb, int64_t d) noexcept nogil:
    """How many bytes from ``d`` on two strings of lengths ``la``, ``lb`` (both > d) share."""
    cdef int64_t i = d, m = la if la < lb else lb
    cdef uint64_t x, y
    while i + 8 <= m:
        memcpy(&x, a + i, 8)
        memcpy(&y, b + i, 8)
        if x != y:
            return i - d + (_ctz64(x ^ y) >> 3)  # little-endian: the lowest differing byte
        i += 8
    while i < m and a[i] == b[i]:
        i += 1
    return i - d


cdef int64_t _reload(_Sort* s, Py_ssize_t lo, Py_ssize_t n, int64_t d) noexcept nogil:
    """Load ``k`` and ``k2`` of the range's strings (all longer than ``d`` and equal in their
    first ``d`` bytes) at ``d + m``, and return ``m``: when a sample of the range shares ``m`` >= 8
    more bytes with its first string (URLs' long common parts), the bytes every string is then
    checked to share are skipped instead of being sorted 8 at a time, each level a scattered
    read of every string. ``m`` is 0 when the sample shares less or a string does not."""
    cdef:
        Py_ssize_t i, step
        int64_t m = -1, c, st, length, st0 = 0, len0
        const int64_t* offsets = s.offsets
        const uint8_t* data = s.data
        _Item* a = s.a
    if n >= _SKIP_SAMPLE * 4:
        st0 = offsets[a[lo].v]
        len0 = offsets[a[lo].v + 1] - st0
        step = n // _SKIP_SAMPLE
        i = lo + step
        while i < lo + n:
            st = offsets[a[i].v]
            c = _lcp_from(data + st0, len0, data + st, offsets[a[i].v + 1] - st, d)
            if m < 0 or c < m:
                m = c
                if m < 8:
                    break
            i += step
    if m >= 8:
        for i in range(lo, lo + n):
            if i + 16 < lo + n:
                _prefetch(&offsets[a[i + 16].v])
            if i + 8 < lo + n:
                _prefetch(data + offsets[a[i + 8].v] + d)
            st = offsets[a[i].v]
            length = offsets[a[i].v + 1] - st
            if length < d + m or not _same_bytes(data + st + d, data + st0 + d, m):
                m = 0  # not shared by all: load at d after all
                break
            a[i].k = _key8(offsets, data, a[i].v, d + m)
            a[i].k2 = _key8(offsets, data, a[i].v, d + m + 8)
        if m:
            return m
    for i in range(lo, lo + n):
        if i + 16 < lo + n:
            _prefetch(&offsets[a[i + 16].v])
        if i + 8 < lo + n:
            _prefetch(data + offsets[a[i + 8].v] + d)
        a[i].k = _key8(offsets, data, a[i].v, d)
        a[i].k2 = _key8(offsets, data, a[i].v, d + 8)
    return 0


cdef void _radix(_Sort* s, Py_ssize_t lo, Py_ssize_t n, int64_t d, bint have2, uint8_t* cls) noexcept nogil:
    """Stable MSD radix sort of positions lo..lo+n-1, whose strings are equal in their first
    ``d`` bytes (``k`` holds bytes d..d+7, ``k2`` the next 8 when ``have2``). Each pass splits
    on the highest byte in which the range's keys differ (shared bytes cost no pass); the
    largest part is sorted by the loop, the others recursively (depth at most log2 n).
    ``cls`` is scratch of n bytes."""
    cdef:
        Py_ssize_t i, c, big
        Py_ssize_t start[256]
        Py_ssize_t count[256]
        uint64_t x, k0
        int shift
        int64_t l
        _Item* a = s.a
    while True:
        if s.brk != NULL:
            s.brk[lo] = 1
        if n < 2:
            return
        if n < _SMALL:
            _insertion(s, lo, n, d, have2)
            return
        k0 = a[lo].k
        x = 0
        for i in range(lo, lo + n):
            x |= a[i].k ^ k0
        if x != 0:
            shift = 56 - 8 * (_clz64(x) >> 3)
            memset(count, 0, sizeof(count))
            for i in range(n):
                cls[i] = <uint8_t>(a[lo + i].k >> shift)
                count[cls[i]] += 1
            c = 0
            big = 0
            for i in range(256):
                start[i] = c
                c += count[i]
                if count[i] > count[big]:
                    big = i
            _scatter(s, lo, n, start, cls)
            for i in range(256):  # start[i] is now the end of part i
                if count[i] and i != big:
                    _radix(s, lo + start[i] - count[i], count[i], d, have2, cls)
            lo += start[big] - count[big]
            n = count[big]
            continue
        # equal keys: the strings that end within them first, shortest first (each is a
        # prefix of the longer ones; equal lengths are equal strings), the rest go on at d + 8
        memset(count, 0, 10 * sizeof(Py_ssize_t))
        for i in range(n):
            l = _len_of(s, &a[lo + i]) - d
            cls[i] = <uint8_t>(l if l <= 8 else 9)
            count[cls[i]] += 1
        if count[9] < n:
            c = 0
            for i in range(10):
                start[i] = c
                c += count[i]
            _scatter(s, lo, n, start, cls)
            for i in range(9):
                if count[i] and s.brk != NULL:
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
            d += _reload(s, lo, n, d)
            have2 = True


# The sort's scratch (the items, their scatter copy and a bucket byte: 49 bytes a string) is kept
# per thread between sorts, up to this size: a fresh block of that size is pages that the kernel
# faults in and zeroes on every sort (glibc maps or trims blocks this large), which was a fifth
# of a segment build's CPU time. Held until the thread ends; a larger sort uses a block of its own.
DEF _SCRATCH_KEEP = 64 << 20
_scratch = threading.local()


cdef object _sort_scratch(Py_ssize_t n):
    """A uint8 array of at least 49 * n bytes for ``_sort_ids``."""
    cdef Py_ssize_t need = n * (2 * sizeof(_Item) + 1)
    buf = getattr(_scratch, "buf", None)
    if buf is not None and buf.shape[0] >= need:
        return buf
    if need > _SCRATCH_KEEP:
        return np.empty(need, dtype=np.uint8)
    _scratch.buf = None  # free the smaller one first
    buf = np.empty(need, dtype=np.uint8)
    _scratch.buf = buf
    return buf


cdef void _sort_ids(const int64_t* offsets, const uint8_t* base, int32_t* order, Py_ssize_t n,
                    uint8_t* brk, uint8_t* scratch) noexcept nogil:
    """Sort ``order[0:n]`` stably by the strings' bytes (``_radix``); with ``brk`` (n bytes,
    zeroed) also mark where each distinct string starts. ``scratch``: 49 * n bytes
    (``_sort_scratch``)."""
    cdef:
        Py_ssize_t i
        int64_t length
        int32_t r
        _Sort s
        _Item* a
    if n < 1:
        return
    a = <_Item*>scratch
    s.offsets = offsets
    s.data = base
    s.a = a
    s.t = a + n
    s.brk = brk
    for i in range(n):
        r = order[i]
        length = offsets[r + 1] - offsets[r]
        a[i].k = _key8(offsets, base, r, 0)
        a[i].k2 = _key8(offsets, base, r, 8)
        a[i].v = r
        a[i].ln = <uint32_t>length if length < UINT32_MAX else UINT32_MAX
    _radix(&s, 0, n, 0, True, scratch + 2 * n * sizeof(_Item))
    for i in range(n):
        order[i] = a[i].v


def sort_strings(const int64_t[::1] offsets, const uint8_t[::1] data, int32_t[::1] order):
    """Sort ``order`` (ids of strings ``data[offsets[i]:offsets[i+1]]``) in place by unsigned
    byte order of the strings, shorter prefix first; stable (equal strings keep their order)."""
    cdef:
        Py_ssize_t n = order.shape[0]
        Py_ssize_t card = offsets.shape[0] - 1
        Py_ssize_t i
        const uint8_t* base = NULL
        uint8_t dummy = 0
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
        scratch = _sort_scratch(n)
        with nogil:
            _sort_ids(&offsets[0], base, &order[0], n, NULL, &scratch[0])


ctypedef fused offset_t:  # a string array's offsets as Arrow stores them (string or large_string)
    int32_t
    int64_t


cdef int check_rows(const offset_t[::1] offsets, const uint8_t[::1] data, object valid) except -1:
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
        int64_t nbytes = data.shape[0]
        int64_t card = 0
        int32_t r
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
    dd_arr = np.empty(total + 16, dtype=np.uint8)  # 16 bytes of slack for the walk's copies
    cdef int64_t[::1] ioff_v = ioff_arr
    cdef int64_t[::1] doff_v = doff_arr
    cdef uint8_t[::1] dd_v = dd_arr
    ioff = &ioff_v[0]
    doff = &doff_v[0]
    dd = &dd_v[0]
    brk_arr = np.zeros(n, dtype=np.uint8)  # 1 where a sorted row starts a new string
    cdef uint8_t[::1] brk_v = brk_arr
    brk = &brk_v[0] if n else NULL
    scratch_arr = _sort_scratch(n - nnull)
    cdef uint8_t[::1] scratch_v = scratch_arr
    scratch = &scratch_v[0] if n > nnull else NULL
    with nogil:
        _sort_ids(&offsets[0], base, rows + nnull, n - nnull, brk + nnull, scratch)
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
                if s + length + 16 <= nbytes:
                    # 16 bytes at a time, inline (a library memcpy per string cost more): the
                    # bytes past the string land in the slack or under the next string
                    j = 0
                    while j < length:
                        memcpy(dd + used + j, base + s + j, 16)
                        j += 16
                elif length:
                    memcpy(dd + used, base + s, <size_t>length)
                used += length
                card += 1
                doff[card] = used
            ids[r] = <int32_t>(card - 1)
        ioff[card] = n
    return (doff_arr[:card + 1], dd_arr[:used], ids_arr, ioff_arr[:card + 1], rows_arr, nnull > 0)


# --- StringDictionary: distinct strings in first-seen order, through a hash table ---------------

DEF _WINDOW = 16
DEF _SMALL_TABLE = 8192  # slots (64 KiB): up to this size the table stays in cache
DEF _CACHE_BITS = 10  # entries of the short strings' cache (``encode``): 1,024, 24 KiB


cdef struct _Short:  # a string of at most 15 bytes as two words (``encode``'s cache), and its id + 1
    uint64_t k0
    uint64_t k1
    int64_t id


cdef uint64_t _LOW[9]  # _LOW[k]: the low k bytes of a word
for _low_k in range(9):
    _LOW[_low_k] = (1 << (8 * _low_k)) - 1 if _low_k < 8 else 0xFFFFFFFFFFFFFFFF
del _low_k


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
        h = (h ^ _tail8(p, n)) * 0xFF51AFD7ED558CCDULL
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
    equal values are common); while the table is small, a string of at most 15 bytes is first
    looked up in a direct-mapped cache of such strings as two words and a length (no branch
    on its bytes: 2 to 3x faster for booleans, codes and flags). ``values()`` returns
    (offsets int64[card + 1], data uint8).
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
                        _same_bytes(self.data + self.starts[e], p, length):
                    break
            slot = (slot + 1) & mask
        if e < 0 or (2 * self.card > self.nslots and self._rehash() < 0):
            return -1
        return e

    def encode(self, const offset_t[::1] offsets, const uint8_t[::1] data, valid=None):
        """First-seen id + 1 of each of the ``len(offsets) - 1`` rows (0 where ``valid`` is 0).
        ``offsets`` are int32 or int64 (as Arrow stores a string or a large_string array)."""
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
            uint64_t h, k0, k1
            uint64_t hs[_WINDOW]
            int64_t nbytes = data.shape[0]
            _Short* cache
            _Short* c
            int32_t[::1] out
            object result
        check_rows(offsets, data, valid)
        if check_valid:
            ok = valid
        result = np.empty(n, dtype=np.int32)
        out = result
        cache = <_Short*>calloc(1 << _CACHE_BITS, sizeof(_Short))
        if cache == NULL:
            raise MemoryError()
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
                        if length <= 15 and start + 16 <= nbytes:
                            # a short string is two words (its length in the top byte): found in a
                            # direct-mapped cache without a branch on its length or its bytes
                            memcpy(&k0, base + start, 8)
                            memcpy(&k1, base + start + 8, 8)
                            k0 &= _LOW[length if length < 8 else 8]
                            k1 = (k1 & _LOW[length - 8 if length > 8 else 0]) | (<uint64_t>length << 56)
                            c = &cache[((k0 ^ (k1 * 0x9E3779B97F4A7C15ULL)) * 0xFF51AFD7ED558CCDULL)
                                       >> (64 - _CACHE_BITS)]
                            if c.id and c.k0 == k0 and c.k1 == k1:
                                out[i] = <int32_t>c.id
                                continue
                            e = self._find(base + start, length, _hash_bytes(base + start, length) | 1)
                            if e < 0:
                                failed = True
                                break
                            c.k0, c.k1, c.id = k0, k1, e + 1
                            out[i] = e + 1
                            continue
                        if prev_ok and length == prev_length and \
                                _same_bytes(base + start, base + prev_start, length):
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
                    if length == prev_length and _same_bytes(base + start, base + prev_start, length):
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
        free(cache)
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
