# cython: language_level=3
"""Declarations of the frame kernel (``msqcore.kernels._frame``), cimported by ``_sort``.

A ``ColView`` is a read-only view of one column of a row batch, whether the batch is an
Arrow ``RecordBatch`` or a frame. Every pointer is already advanced to row 0 of the view
(or element 0 of a list child); bitmaps keep a bit offset instead. Reads go through
``memcpy`` so nothing has to be aligned.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t


cdef enum:
    # Column types, as stored in the frame schema (one byte).
    FT_LONG = 1
    FT_FLOAT = 2
    FT_DOUBLE = 3
    FT_STRING = 4
    FT_MV_STRING = 5
    FT_LONG_ARRAY = 6
    FT_FLOAT_ARRAY = 7
    FT_DOUBLE_ARRAY = 8
    FT_STRING_ARRAY = 9
    # The sort-key column (binary, never null). Not a schema type.
    FT_KEY = 64


cdef struct ColView:
    int type
    int width                   # bytes per fixed value or fixed list element; 0 otherwise
    const uint8_t* validity     # NULL: no nulls
    int64_t vbit                # bit of row 0 in ``validity``
    const uint8_t* values       # fixed types: row 0's value
    const uint8_t* offsets      # strings, lists, keys: row 0's offset entry
    bint large                  # offsets are int64 (else int32)
    const uint8_t* data         # strings, keys: the bytes ``offsets`` index into
    const uint8_t* cvalidity    # lists: element validity, NULL when no null elements
    int64_t cvbit
    const uint8_t* cvalues      # fixed-element lists: element 0's value
    const uint8_t* coffsets     # string lists: element 0's offset entry
    bint clarge
    const uint8_t* cdata


cdef class FrameSource:
    """The columns (and optional sort keys) of one batch or one frame, for the kernels."""
    cdef readonly Py_ssize_t num_rows
    cdef readonly Py_ssize_t num_columns
    cdef readonly bint has_key
    cdef readonly bint sorted
    cdef ColView* cols          # num_columns views, then the key view when has_key
    cdef list _owners           # objects whose memory the views point into
    cdef readonly object costs  # int64[num_rows]: bits each row adds to a frame
    cdef const int64_t* cost_ptr

    cdef int _compute_costs(self) except -1
