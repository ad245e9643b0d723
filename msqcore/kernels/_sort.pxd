# cython: language_level=3
"""Declarations of the sort/merge kernel (``msqcore.kernels._sort``).

Keys are byte strings compared as unsigned bytes (``memcmp``, shorter prefix first): the
frame sort keys of ``_frame.encode_keys``. The primitives work on pointers, structure of
arrays style: key offsets + key bytes, and a row-index array that gets permuted.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t


cdef struct SortItem:     # one key being sorted, moved as a whole (one write stream per radix bucket)
    uint64_t word       # key bytes d..d+7 at the current depth d, big-endian, zero padded
    uint64_t word2      # bytes d+8..d+15, where the pass says they are loaded
    int32_t idx         # row
    uint32_t len        # key length in bytes


cdef struct Cursor:
    const uint8_t* koff     # key offsets (int32 or int64) of the current batch, row 0's entry
    bint klarge
    const uint8_t* kdata
    const int64_t* costs    # bits each row adds to a frame
    int64_t pos
    int64_t n
    int32_t slot            # id of the current batch in the caller's source list
    bint last               # no batch follows the current one
    bint done


cdef int cmp_bytes(const uint8_t* a, int64_t la, const uint8_t* b, int64_t lb) noexcept nogil
cdef int argsort_items(SortItem* items, int64_t n, const int64_t* offsets, const uint8_t* data) noexcept nogil


cdef class Merger:
    cdef int k
    cdef Cursor* cur
    cdef int32_t* tree          # tree[0]: the winner; tree[1..k-1]: losers of each match
    cdef list _sources
    cdef bytes _boundary
    cdef bint has_boundary
    cdef readonly object out_sources
    cdef readonly object out_rows
    cdef int32_t* osrc
    cdef int64_t* orow
    cdef readonly Py_ssize_t count
    cdef readonly Py_ssize_t capacity
    cdef int64_t acc
    cdef readonly int refill
    cdef bint built

    cdef bint beats(self, int a, int b) noexcept nogil
    cdef void replay(self, int i) noexcept nogil
