# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Grouping over a small space of key codes, one pass each (``msqcore.engine.id_aggregate``).

A segment's GROUP BY on dictionary ids turns each row's keys into one code below ``space``.
``number_groups`` numbers the codes in the order of their first row; ``fold`` counts and
sums, or takes the min or max, per group. numpy needs several passes and an unbuffered
``ufunc.at`` for the same, which on a few thousand rows is mostly call overhead.
"""
import numpy as np

from libc.stdint cimport int64_t, uint8_t, uint64_t

cdef enum:  # fold kinds
    _COUNT = 0
    _SUM = 1
    _MIN = 2
    _MAX = 3

COUNT, SUM, MIN, MAX = _COUNT, _SUM, _MIN, _MAX


def number_groups(const int64_t[::1] code, Py_ssize_t space):
    """(group number of each row, int64[n]; the first row of each group, int64[groups]
    ascending): groups numbered in the order of their first row. Codes must be in
    ``[0, space)``."""
    cdef Py_ssize_t n = code.shape[0], i, groups = 0
    cdef int64_t c
    for i in range(n):
        if code[i] < 0 or code[i] >= space:
            raise ValueError(f"group code {code[i]} at row {i} is outside [0, {space})")
    rank_arr = np.full(space, -1, dtype=np.int64)
    gid_arr = np.empty(n, dtype=np.int64)
    first_arr = np.empty(min(n, space), dtype=np.int64)
    cdef int64_t[::1] rank = rank_arr
    cdef int64_t[::1] gid = gid_arr
    cdef int64_t[::1] first = first_arr
    with nogil:
        for i in range(n):
            c = code[i]
            if rank[c] < 0:
                rank[c] = groups
                first[groups] = i
                groups += 1
            gid[i] = rank[c]
    return gid_arr, first_arr[:groups]


def fold(int kind, const int64_t[::1] gid, Py_ssize_t groups, const int64_t[::1] data=None,
         const uint8_t[::1] valid=None):
    """(per group the count of rows with a value, int64[groups]; per group the SUM (wrapping
    as Java's long does), MIN or MAX of ``data``, int64[groups], or None for ``COUNT``).
    A row counts when ``valid`` is None or ``valid[row]`` is set; ``data`` is needed unless
    ``kind`` is ``COUNT``. Group numbers must be in ``[0, groups)``; a group without a value
    gets 0 (the caller masks it)."""
    cdef Py_ssize_t n = gid.shape[0], i
    cdef int64_t g
    cdef bint check = valid is not None
    if kind not in (_COUNT, _SUM, _MIN, _MAX):
        raise ValueError(f"fold: unknown kind {kind}")
    if kind != _COUNT and (data is None or data.shape[0] != n):
        raise ValueError("fold: data must hold one value per row")
    if check and valid.shape[0] != n:
        raise ValueError("fold: valid must hold one flag per row")
    for i in range(n):
        if gid[i] < 0 or gid[i] >= groups:
            raise ValueError(f"group {gid[i]} at row {i} is outside [0, {groups})")
    counts_arr = np.zeros(groups, dtype=np.int64)
    out_arr = np.zeros(groups, dtype=np.int64)
    cdef int64_t[::1] counts = counts_arr
    cdef int64_t[::1] out = out_arr
    cdef uint64_t* total = <uint64_t*>&out[0] if groups else NULL
    with nogil:
        for i in range(n):
            if check and not valid[i]:
                continue
            g = gid[i]
            if kind == _SUM:
                total[g] += <uint64_t>data[i]  # unsigned: wraps, as Java's long addition
            elif kind == _MIN:
                if counts[g] == 0 or data[i] < out[g]:
                    out[g] = data[i]
            elif kind == _MAX:
                if counts[g] == 0 or data[i] > out[g]:
                    out[g] = data[i]
            counts[g] += 1
    return counts_arr, (None if kind == _COUNT else out_arr)
