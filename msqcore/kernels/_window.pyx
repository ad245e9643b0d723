# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Sliding-frame aggregates for window functions.

Rows arrive sorted by (partition, order) and each row's frame is [lo[i], hi[i]] (inclusive,
empty when lo > hi). Frames never cross partitions and both bounds are non-decreasing from
row to row, so one pass with a running window does every frame: rows enter on the right and
leave on the left. Sums restart from zero whenever the window empties, so a frame that starts
at its partition's first row sums its values in row order, exactly as Druid's processors do.
"""
from libc.stdint cimport int64_t, uint8_t

import numpy as np

ctypedef fused number:
    int64_t
    double


def frame_sum(const number[:] values, const uint8_t[:] valid, const int64_t[:] lo, const int64_t[:] hi):
    """Per-row sum and count of the valid values in the row's frame."""
    cdef Py_ssize_t n = lo.shape[0], i, left = 0, right = 0
    out = np.zeros(n, dtype=np.asarray(values).dtype)
    counts = np.zeros(n, dtype=np.int64)
    cdef number[:] o = out
    cdef int64_t[:] c = counts
    cdef number total = 0
    cdef int64_t count = 0
    for i in range(n):
        while left < lo[i] and left < right:
            if valid[left]:
                total -= values[left]
                count -= 1
            left += 1
        if left >= right:
            total = 0
            count = 0
            if lo[i] > right:
                right = lo[i]
            left = right
        while right <= hi[i]:
            if valid[right]:
                total += values[right]
                count += 1
            right += 1
        o[i] = total
        c[i] = count
    return out, counts


def frame_extreme(const number[:] values, const uint8_t[:] valid, const int64_t[:] lo, const int64_t[:] hi, bint maximum):
    """Per-row MIN (or MAX) of the valid values in the row's frame, with a monotonic deque;
    ``found`` is 0 where the frame holds no valid value."""
    cdef Py_ssize_t n = lo.shape[0], i, right = 0, head = 0, tail = 0, j
    out = np.zeros(n, dtype=np.asarray(values).dtype)
    found = np.zeros(n, dtype=np.uint8)
    deque_arr = np.empty(max(n, 1), dtype=np.int64)
    cdef number[:] o = out
    cdef uint8_t[:] f = found
    cdef int64_t[:] dq = deque_arr
    for i in range(n):
        if lo[i] > right:
            right = lo[i]
        while right <= hi[i]:
            if valid[right]:
                while tail > head:
                    j = dq[tail - 1]
                    if (values[j] <= values[right]) if maximum else (values[j] >= values[right]):
                        tail -= 1
                    else:
                        break
                dq[tail] = right
                tail += 1
            right += 1
        while tail > head and dq[head] < lo[i]:
            head += 1
        if tail > head and lo[i] <= hi[i]:
            o[i] = values[dq[head]]
            f[i] = 1
    return out, found
