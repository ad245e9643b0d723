# Helpers shared by the text parsers' kernels (_ndjson.pyx, _csv.pyx), compiled into each.
from libc.stdint cimport uint8_t
from libc.stdlib cimport realloc


cdef inline int reserve(uint8_t** text, Py_ssize_t* cap, Py_ssize_t j, Py_ssize_t need) noexcept nogil:
    """Room for ``need`` bytes in the growing text buffer ``text[j]`` (capacity ``cap[j]``,
    doubled from 64 KiB as needed); 0 when out of memory."""
    cdef Py_ssize_t grown_cap
    cdef uint8_t* grown
    if need <= cap[j]:
        return 1
    grown_cap = cap[j] * 2 if cap[j] else 65536
    while grown_cap < need:
        grown_cap *= 2
    grown = <uint8_t*>realloc(text[j], grown_cap)
    if grown == NULL:
        return 0
    text[j] = grown
    cap[j] = grown_cap
    return 1
