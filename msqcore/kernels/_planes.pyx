# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Byte planes of fixed-width items (``msqcore.storage.segment``).

A block of ``m`` items of ``width`` bytes is stored plane by plane: the ``m`` low bytes,
then the ``m`` second bytes, ..., then the ``m`` high bytes. Small values then have planes of
zeros that LZ4 packs nearly as well as zstd packs the items, and LZ4 decompresses several
times faster. ``split`` lays out every block of an array this way; ``join`` undoes it for
one block. numpy's transposing copy does the same 10 to 20 times slower.
"""
import sys

import numpy as np

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


def split(const uint8_t[::1] data, int width, Py_ssize_t block_items):
    """``data`` (items of ``width`` bytes) with each block of ``block_items`` items (the last
    one may be shorter) laid out byte plane by byte plane: uint8[len(data)]."""
    cdef Py_ssize_t n = data.shape[0]
    if width < 1 or n % width or block_items < 1:
        raise ValueError(f"{n} bytes are not items of {width} bytes in blocks of {block_items}")
    out = np.empty(n, dtype=np.uint8)
    cdef uint8_t[::1] o = out
    cdef Py_ssize_t start, m
    cdef bint words = _LITTLE_ENDIAN
    cdef const uint8_t* d = &data[0] if n else NULL
    with nogil:
        start = 0
        while start < n:
            m = min(block_items, (n - start) // width)
            _split(d + start, width, m, &o[start], words)
            start += m * width
    return out


cdef void _split(const uint8_t* d, int width, Py_ssize_t m, uint8_t* o, bint words) noexcept nogil:
    """One block, item by item (``_join``'s way round): each item read once, as a word when it can."""
    cdef Py_ssize_t i
    cdef int k
    cdef uint32_t x
    cdef uint64_t y
    if words and width == 4:
        for i in range(m):
            x = (<const uint32_t*>d)[i]
            o[i] = <uint8_t>x
            o[m + i] = <uint8_t>(x >> 8)
            o[2 * m + i] = <uint8_t>(x >> 16)
            o[3 * m + i] = <uint8_t>(x >> 24)
    elif words and width == 8:
        for i in range(m):
            y = (<const uint64_t*>d)[i]
            for k in range(8):
                o[k * m + i] = <uint8_t>(y >> (8 * k))
    else:
        for k in range(width):
            for i in range(m):
                o[k * m + i] = d[i * width + k]


def join(const uint8_t[::1] planes, int width, uint8_t[::1] out):
    """One block's byte planes (``split``'s layout) back to its items, written into ``out``
    (as long as ``planes``)."""
    cdef Py_ssize_t n = planes.shape[0]
    if width < 1 or n % width or out.shape[0] != n:
        raise ValueError(f"{n} bytes of planes are not items of {width} bytes "
                         f"(out has {out.shape[0]} bytes)")
    if n == 0:
        return
    cdef Py_ssize_t m = n // width
    cdef bint words = _LITTLE_ENDIAN
    with nogil:
        _join(&planes[0], width, m, &out[0], words)


# the items are little-endian: whole words are only built on a host of that byte order
cdef bint _LITTLE_ENDIAN = sys.byteorder == "little"


cdef void _join(const uint8_t* p, int width, Py_ssize_t m, uint8_t* o, bint words) noexcept nogil:
    """Item by item, so that the writes are sequential (plane by plane they were strided):
    the common widths as whole little-endian words, which the compiler vectorizes."""
    cdef Py_ssize_t i
    cdef int k
    if words and width == 4:
        for i in range(m):
            (<uint32_t*>o)[i] = (<uint32_t>p[i] | (<uint32_t>p[m + i] << 8) | (<uint32_t>p[2 * m + i] << 16)
                                 | (<uint32_t>p[3 * m + i] << 24))
    elif words and width == 2:
        for i in range(m):
            (<uint16_t*>o)[i] = <uint16_t>(p[i] | (p[m + i] << 8))
    elif words and width == 8:
        for i in range(m):
            (<uint64_t*>o)[i] = (<uint64_t>p[i] | (<uint64_t>p[m + i] << 8) | (<uint64_t>p[2 * m + i] << 16)
                                 | (<uint64_t>p[3 * m + i] << 24) | (<uint64_t>p[4 * m + i] << 32)
                                 | (<uint64_t>p[5 * m + i] << 40) | (<uint64_t>p[6 * m + i] << 48)
                                 | (<uint64_t>p[7 * m + i] << 56))
    else:
        for i in range(m):
            for k in range(width):
                o[i * width + k] = p[k * m + i]
