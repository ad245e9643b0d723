"""Rows of several Arrow arrays of one type, in a given order, copied once.

The merge step of ``engine/time_sort.py`` takes each output row from one of several sorted
runs. Arrow's ``take`` works on one array at a time, so a merge with it takes from every run,
concatenates the pieces and takes again to interleave them: three copies of every value.
``gather`` writes each value straight into the output buffers. It handles fixed-width
columns (booleans, integers, floats, timestamps) and strings/binaries, with nulls; it returns
None for any other type (lists, dictionaries), which the caller gathers with ``take``.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np
import pyarrow as pa

cdef struct Source:
    const uint8_t* validity  # NULL: no nulls
    int64_t bit              # the array's offset: bit of its row 0 in ``validity``
    const uint8_t* values    # fixed width: row 0's value; booleans: the bitmap; strings: the data buffer
    const int32_t* off32     # strings: row 0's offset
    const int64_t* off64     # large strings: row 0's offset

cdef enum:
    FIXED = 0
    STRING = 1
    LARGE_STRING = 2
    BOOL = 3

INT32_MAX = 2147483647


cdef inline const uint8_t* _address(buf, int64_t skip):
    return NULL if buf is None else <const uint8_t*><uintptr_t>(buf.address + skip)


def gather(list arrays, const int32_t[::1] run_of, const int64_t[::1] row_of):
    """Row ``row_of[i]`` of ``arrays[run_of[i]]`` for every i, as one array of their type,
    or None when the type is not one this kernel handles or the arrays' types differ.
    Indices are not checked."""
    cdef:
        Py_ssize_t ns = len(arrays), n = run_of.shape[0], i, s
        int kind, width = 0
        int64_t total = 0, r, a, b, nulls = 0
        bint any_nulls = False
        Source* src
        const Source* sp
        uint8_t[::1] vbits
        uint8_t[::1] out
        int32_t[::1] o32
        int64_t[::1] o64
    typ = arrays[0].type
    if pa.types.is_boolean(typ):
        kind = BOOL
    elif pa.types.is_string(typ) or pa.types.is_binary(typ):
        kind = STRING
    elif pa.types.is_large_string(typ) or pa.types.is_large_binary(typ):
        kind = LARGE_STRING
    elif (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_timestamp(typ)
          or pa.types.is_date(typ) or pa.types.is_time(typ) or pa.types.is_duration(typ)):
        kind = FIXED
        width = typ.bit_width // 8
        if width not in (1, 2, 4, 8):
            return None
    else:
        return None
    for arr in arrays:
        if not arr.type.equals(typ):
            return None  # the buffers would be read with the wrong layout
    src = <Source*>malloc(max(ns, 1) * sizeof(Source))
    if src == NULL:
        raise MemoryError()
    try:
        for s in range(ns):
            arr = arrays[s]
            bufs = arr.buffers()
            any_nulls = any_nulls or arr.null_count > 0
            src[s].validity = _address(bufs[0], 0) if arr.null_count > 0 else NULL
            src[s].bit = arr.offset
            if kind == FIXED:
                src[s].values = _address(bufs[1], arr.offset * width)
            elif kind == BOOL:
                src[s].values = _address(bufs[1], 0)  # bit ``bit + row``, as in ``validity``
            else:
                src[s].off32 = <const int32_t*>_address(bufs[1], arr.offset * 4) if kind == STRING else NULL
                src[s].off64 = <const int64_t*>_address(bufs[1], arr.offset * 8) if kind == LARGE_STRING else NULL
                src[s].values = _address(bufs[2], 0)
        validity = None
        if any_nulls:
            validity = np.zeros((n + 7) // 8, dtype=np.uint8)
            vbits = validity
            with nogil:
                for i in range(n):
                    sp = &src[run_of[i]]
                    r = row_of[i]
                    if sp.validity == NULL or (sp.validity[(sp.bit + r) >> 3] >> ((sp.bit + r) & 7)) & 1:
                        vbits[i >> 3] |= <uint8_t>(1 << (i & 7))
                    else:
                        nulls += 1
            if nulls == 0:
                validity = None
        vbuf = None if validity is None else pa.py_buffer(validity)
        if kind == BOOL:
            data = np.zeros((n + 7) // 8, dtype=np.uint8)
            out = data
            with nogil:
                for i in range(n):
                    sp = &src[run_of[i]]
                    r = sp.bit + row_of[i]
                    if (sp.values[r >> 3] >> (r & 7)) & 1:
                        out[i >> 3] |= <uint8_t>(1 << (i & 7))
            return pa.Array.from_buffers(typ, n, [vbuf, pa.py_buffer(data)], null_count=nulls)
        if kind == FIXED:
            data = np.empty(n * width, dtype=np.uint8)
            out = data
            with nogil:
                if width == 8:
                    for i in range(n):
                        (<uint64_t*>&out[0])[i] = (<const uint64_t*>src[run_of[i]].values)[row_of[i]]
                elif width == 4:
                    for i in range(n):
                        (<uint32_t*>&out[0])[i] = (<const uint32_t*>src[run_of[i]].values)[row_of[i]]
                elif width == 2:
                    for i in range(n):
                        (<uint16_t*>&out[0])[i] = (<const uint16_t*>src[run_of[i]].values)[row_of[i]]
                else:
                    for i in range(n):
                        out[i] = src[run_of[i]].values[row_of[i]]
            return pa.Array.from_buffers(typ, n, [vbuf, pa.py_buffer(data)], null_count=nulls)
        offsets = np.empty(n + 1, dtype=np.int64)
        o64 = offsets
        with nogil:
            o64[0] = 0
            for i in range(n):
                sp = &src[run_of[i]]
                r = row_of[i]
                if kind == STRING:
                    total += sp.off32[r + 1] - sp.off32[r]
                else:
                    total += sp.off64[r + 1] - sp.off64[r]
                o64[i + 1] = total
        if kind == STRING and total > INT32_MAX:
            return None  # the values do not fit 32-bit offsets: the caller's take makes it large
        data = np.empty(max(total, 1), dtype=np.uint8)
        out = data
        with nogil:
            for i in range(n):
                sp = &src[run_of[i]]
                r = row_of[i]
                if kind == STRING:
                    a, b = sp.off32[r], sp.off32[r + 1]
                else:
                    a, b = sp.off64[r], sp.off64[r + 1]
                if b > a:
                    memcpy(&out[o64[i]], sp.values + a, b - a)
        if kind == STRING:
            offsets = offsets.astype(np.int32)
        return pa.Array.from_buffers(typ, n, [vbuf, pa.py_buffer(offsets), pa.py_buffer(data[:total])],
                                     null_count=nulls)
    finally:
        free(src)
