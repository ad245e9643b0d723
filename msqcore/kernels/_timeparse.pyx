# cython: language_level=3, cdivision=True
"""ISO-8601 <-> epoch-millis kernels over raw Arrow buffers.

``parse_utf8`` is the vectorised core of Druid's ``TIME_PARSE(expr)`` (no pattern): every
row is parsed in one ``nogil`` loop straight from the Arrow validity bitmap, the int32 or
int64 offsets and the UTF-8 data, into an int64 buffer plus a validity bitmap.

Two grammars are implemented:

* strict (``lenient=False``), the documented ISO subset::

      [+|-]YYYY[YYYYY] [-MM [-DD]] [T HH [:mm [:ss [(.|,)F{1,9}]]] [Z | (+|-)HH [[:]mm]]]

  every field but the year has exactly two digits, and ``T``/``Z`` are upper case.

* lenient (``lenient=True``), a port of exactly what Druid's default parser
  (``TimestampParseExprMacro.createDefaultParser``: Joda's ``dateElementParser`` then an
  optional ``('T'|' ') [timeElementParser] [offset]``) accepts: fields take 1..N digits,
  ``t``/``z`` are accepted, ``' '`` may separate date and time, ordinal dates
  (``YYYY-DDD``), week dates (``YYYY-Www[-D]``), fractional hours/minutes and offsets with
  seconds/millis are accepted, with Joda's longest-match choice between date forms.

Both validate field ranges the way Joda's ISOChronology does (proleptic Gregorian, year 0
exists, hour 0..23 so no 24:00, no leap seconds) and give null on failure; an instant that
does not fit in int64 also gives null (Joda would wrap around).

``format_millis`` renders epoch millis as Joda's ``ISODateTimeFormat.dateTime()`` in UTC
(``YYYY-MM-DDTHH:mm:ss.SSSZ``; years outside 0..9999 as Joda prints them: ``-0001``,
``10000``).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uintptr_t
from libc.string cimport memcpy, memset

import pyarrow as pa

cdef extern from *:
    """
    /* days * 86400000 + rest without overflow; 0 when the sum is outside int64. Negative
       days are shifted by one day so that instants on the day holding INT64_MIN fit. */
    static inline int msq_days_to_millis(int64_t days, int64_t rest, int64_t *out) {
        int64_t t;
        if (days < 0) { days += 1; rest -= 86400000; }
        if (__builtin_mul_overflow(days, (int64_t)86400000, &t)) return 0;
        return !__builtin_add_overflow(t, rest, out);
    }
    """
    bint msq_days_to_millis(int64_t days, int64_t rest, int64_t* out) noexcept nogil

cdef enum:
    MS_PER_SECOND = 1000
    MS_PER_MINUTE = 60000
    MS_PER_HOUR = 3600000

cdef int64_t MS_PER_DAY = 86400000
# ISOChronology's year range (GregorianChronology.MIN_YEAR / MAX_YEAR). Joda sets the year
# with setExtended, which allows one more year at either end (week-years are not extended).
cdef int64_t MIN_YEAR = -292275054
cdef int64_t MAX_YEAR = 292278993
# 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the 24-byte rendering range.
cdef int64_t FMT4_MIN = -62167219200000
cdef int64_t FMT4_MAX = 253402300799999
cdef int64_t INT32_LIMIT = 2147483647

cdef enum DateKind:
    KIND_YMD = 0
    KIND_WEEK = 1
    KIND_ORDINAL = 2

cdef struct Fields:
    int64_t year
    int kind
    int64_t month
    int64_t day
    int64_t week
    int64_t dow
    int64_t doy
    int64_t hour
    int64_t minute
    int64_t second
    int64_t sub_ms        # millis from the fraction (of the second, minute or hour)
    bint has_offset
    int64_t offset_ms


# --- calendar arithmetic (Howard Hinnant's civil algorithms) ------------------------------

cdef inline int64_t days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    cdef int64_t era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) / 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) / 5 + d - 1
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146097 + doe - 719468


cdef inline void civil_from_days(int64_t z, int64_t* y, int* m, int* d) noexcept nogil:
    cdef int64_t era, doe, yoe, doy, mp
    z += 719468
    era = (z if z >= 0 else z - 146096) / 146097
    doe = z - era * 146097
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    mp = (5 * doy + 2) / 153
    d[0] = <int>(doy - (153 * mp + 2) / 5 + 1)
    m[0] = <int>(mp + 3 if mp < 10 else mp - 9)
    y[0] = yoe + era * 400 + (1 if m[0] <= 2 else 0)


cdef inline bint is_leap(int64_t y) noexcept nogil:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


cdef inline int64_t days_in_month(int64_t y, int64_t m) noexcept nogil:
    if m == 2:
        return 29 if is_leap(y) else 28
    if m == 4 or m == 6 or m == 9 or m == 11:
        return 30
    return 31


cdef inline int64_t iso_day_of_week(int64_t days) noexcept nogil:
    """1 = Monday .. 7 = Sunday for a day number (0 = 1970-01-01, a Thursday)."""
    cdef int64_t r = (days + 3) % 7
    if r < 0:
        r += 7
    return r + 1


cdef inline int64_t week_one_monday(int64_t y) noexcept nogil:
    """Day number of the Monday starting ISO week 1 of week-year y (the week of Jan 4th)."""
    cdef int64_t jan4 = days_from_civil(y, 1, 4)
    return jan4 - (iso_day_of_week(jan4) - 1)


cdef inline int64_t floor_div(int64_t a, int64_t b) noexcept nogil:
    cdef int64_t q = a / b
    if a % b < 0:
        q -= 1
    return q


cdef inline bint finish(Fields* f, int64_t default_offset_ms, int64_t* out) noexcept nogil:
    """Validate the parsed fields as Joda's ISOChronology does and compute epoch millis."""
    cdef int64_t days, first, nweeks, ndays
    if f.year < MIN_YEAR - 1 or f.year > MAX_YEAR + 1:
        return False
    if f.kind == KIND_YMD:
        if f.month < 1 or f.month > 12:
            return False
        if f.day < 1 or f.day > days_in_month(f.year, f.month):
            return False
        days = days_from_civil(f.year, f.month, f.day)
    elif f.kind == KIND_WEEK:
        if f.year < MIN_YEAR or f.year > MAX_YEAR:
            return False
        first = week_one_monday(f.year)
        nweeks = (week_one_monday(f.year + 1) - first) / 7
        if f.week < 1 or f.week > nweeks or f.dow < 1 or f.dow > 7:
            return False
        days = first + (f.week - 1) * 7 + (f.dow - 1)
    else:
        ndays = 366 if is_leap(f.year) else 365
        if f.doy < 1 or f.doy > ndays:
            return False
        days = days_from_civil(f.year, 1, 1) + f.doy - 1
    if f.hour > 23 or f.minute > 59 or f.second > 59:
        return False
    # Exact arithmetic; an instant outside int64 gives null (Joda would silently wrap).
    return msq_days_to_millis(
        days,
        f.hour * MS_PER_HOUR + f.minute * MS_PER_MINUTE + f.second * MS_PER_SECOND + f.sub_ms
        - (f.offset_ms if f.has_offset else default_offset_ms),
        out,
    )


cdef inline void init_fields(Fields* f) noexcept nogil:
    memset(f, 0, sizeof(Fields))
    f.kind = KIND_YMD
    f.month = 1
    f.day = 1
    f.dow = 1


cdef inline bint is_digit(uint8_t c) noexcept nogil:
    return c >= 48 and c <= 57


cdef inline bint two_digits(const uint8_t* s, Py_ssize_t n, Py_ssize_t p, int64_t* v) noexcept nogil:
    if p + 2 > n or not is_digit(s[p]) or not is_digit(s[p + 1]):
        return False
    v[0] = (s[p] - 48) * 10 + (s[p + 1] - 48)
    return True


# --- strict grammar ------------------------------------------------------------------------

cdef bint parse_strict(const uint8_t* s, Py_ssize_t n, Fields* f) noexcept nogil:
    cdef Py_ssize_t p = 0, start, nd
    cdef bint neg = False
    cdef int64_t v = 0, hh, mm
    cdef uint8_t c
    if n > 0 and (s[0] == 45 or s[0] == 43):              # '-' '+'
        neg = s[0] == 45
        p = 1
    start = p
    while p < n and p - start < 9 and is_digit(s[p]):
        v = v * 10 + (s[p] - 48)
        p += 1
    if p - start < 4:
        return False
    f.year = -v if neg else v
    if p < n and s[p] == 45:                                 # -MM
        if not two_digits(s, n, p + 1, &f.month):
            return False
        p += 3
        if p < n and s[p] == 45:                             # -DD
            if not two_digits(s, n, p + 1, &f.day):
                return False
            p += 3
    if p < n and s[p] == 84:                                 # 'T' HH
        if not two_digits(s, n, p + 1, &f.hour):
            return False
        p += 3
        if p < n and s[p] == 58:                             # :mm
            if not two_digits(s, n, p + 1, &f.minute):
                return False
            p += 3
            if p < n and s[p] == 58:                         # :ss
                if not two_digits(s, n, p + 1, &f.second):
                    return False
                p += 3
                if p < n and (s[p] == 46 or s[p] == 44):     # '.' ',' fraction
                    p += 1
                    start = p
                    v = 0
                    while p < n and p - start < 9 and is_digit(s[p]):
                        if p - start < 3:
                            v = v * 10 + (s[p] - 48)
                        p += 1
                    nd = p - start
                    if nd == 0:
                        return False
                    if nd == 1:
                        v *= 100
                    elif nd == 2:
                        v *= 10
                    f.sub_ms = v
        if p < n:                                            # zone
            c = s[p]
            if c == 90:                                      # 'Z'
                f.has_offset = True
                f.offset_ms = 0
                p += 1
            elif c == 43 or c == 45:
                if not two_digits(s, n, p + 1, &hh) or hh > 23:
                    return False
                p += 3
                mm = 0
                if p < n and s[p] == 58:
                    if not two_digits(s, n, p + 1, &mm):
                        return False
                    p += 3
                elif p < n and is_digit(s[p]):
                    if not two_digits(s, n, p, &mm):
                        return False
                    p += 2
                if mm > 59:
                    return False
                f.has_offset = True
                f.offset_ms = hh * MS_PER_HOUR + mm * MS_PER_MINUTE
                if c == 45:
                    f.offset_ms = -f.offset_ms
    return p == n


# --- lenient grammar: Druid's createDefaultParser, element by element ------------------------

cdef inline Py_ssize_t joda_uint(const uint8_t* s, Py_ssize_t n, Py_ssize_t p, Py_ssize_t maxd,
                                 int64_t* v) noexcept nogil:
    """Joda's unsigned NumberFormatter: 1..maxd digits. Returns the end, or -1."""
    cdef Py_ssize_t e = p
    cdef int64_t x = 0
    while e < n and e - p < maxd and is_digit(s[e]):
        x = x * 10 + (s[e] - 48)
        e += 1
    if e == p:
        return -1
    v[0] = x
    return e


cdef inline Py_ssize_t joda_year(const uint8_t* s, Py_ssize_t n, Py_ssize_t p, int64_t* v) noexcept nogil:
    """Joda's appendYear(4, 9) parser (NumberFormatter.parseInto, Joda >= 2.9): an optional
    sign directly followed by a digit, then up to 9 digits."""
    cdef Py_ssize_t e
    cdef bint neg = False
    if p < n and (s[p] == 45 or s[p] == 43):
        if n - p < 2 or not is_digit(s[p + 1]):
            return -1
        neg = s[p] == 45
        p += 1
    e = joda_uint(s, n, p, 9, v)
    if e >= 0 and neg:
        v[0] = -v[0]
    return e


cdef inline Py_ssize_t joda_fraction(const uint8_t* s, Py_ssize_t n, Py_ssize_t p, int64_t unit_ms,
                                     int64_t* v) noexcept nogil:
    """Joda's Fraction parser (1..9 digits) for a field whose unit is unit_ms: the digit
    weights are unit/10^k in integer arithmetic, then the sum is divided by 10."""
    cdef Py_ssize_t e = p
    cdef int64_t value = 0, w = unit_ms * 10
    while e < n and e - p < 9 and is_digit(s[e]):
        w = w / 10
        value += (s[e] - 48) * w
        e += 1
    if e == p:
        return -1
    v[0] = value / 10
    return e


cdef inline Py_ssize_t digit_count(const uint8_t* s, Py_ssize_t n, Py_ssize_t p, Py_ssize_t amount) noexcept nogil:
    cdef Py_ssize_t k = 0
    while k < amount and p + k < n and is_digit(s[p + k]):
        k += 1
    return k


cdef Py_ssize_t joda_offset(const uint8_t* s, Py_ssize_t n, Py_ssize_t p, int64_t* out) noexcept nogil:
    """Joda's TimeZoneOffset parser with zero text "Z": Z | (+|-)hh[[:]mm[[:]ss[[.|,]SSS]]]."""
    cdef bint neg, sep
    cdef int64_t off, v
    cdef Py_ssize_t count
    cdef uint8_t c
    if p < n and (s[p] == 90 or s[p] == 122):                # 'Z' 'z'
        out[0] = 0
        return p + 1
    if n - p <= 1:
        return -1
    c = s[p]
    if c == 45:
        neg = True
    elif c == 43:
        neg = False
    else:
        return -1
    p += 1
    if digit_count(s, n, p, 2) < 2:
        return -1
    v = (s[p] - 48) * 10 + (s[p + 1] - 48)
    if v > 23:
        return -1
    off = v * MS_PER_HOUR
    p += 2
    while True:                                              # Joda's `parse:` block
        if p >= n:
            break
        c = s[p]
        if c == 58:
            sep = True
            p += 1
        elif is_digit(c):
            sep = False
        else:
            break
        count = digit_count(s, n, p, 2)
        if count == 0 and not sep:
            break
        elif count < 2:
            return -1
        v = (s[p] - 48) * 10 + (s[p + 1] - 48)
        if v > 59:
            return -1
        off += v * MS_PER_MINUTE
        p += 2
        if p >= n:
            break
        if sep:
            if s[p] != 58:
                break
            p += 1
        count = digit_count(s, n, p, 2)
        if count == 0 and not sep:
            break
        elif count < 2:
            return -1
        v = (s[p] - 48) * 10 + (s[p + 1] - 48)
        if v > 59:
            return -1
        off += v * MS_PER_SECOND
        p += 2
        if p >= n:
            break
        if sep:
            if s[p] != 46 and s[p] != 44:
                break
            p += 1
        count = digit_count(s, n, p, 3)
        if count == 0 and not sep:
            break
        elif count < 1:
            return -1
        off += (s[p] - 48) * 100
        p += 1
        if count > 1:
            off += (s[p] - 48) * 10
            p += 1
            if count > 2:
                off += s[p] - 48
                p += 1
        break
    out[0] = -off if neg else off
    return p


cdef bint parse_lenient(const uint8_t* s, Py_ssize_t n, Fields* f) noexcept nogil:
    cdef Py_ssize_t q, e, e2, best
    cdef int64_t a, b, off
    # Year, shared by the three date forms (each starts with the same signed 4..9 parser).
    q = joda_year(s, n, 0, &f.year)
    if q < 0:
        return False
    # yyyy [-MM [-dd]]
    best = q
    if q < n and s[q] == 45:
        e = joda_uint(s, n, q + 1, 2, &a)
        if e >= 0:
            best = e
            f.month = a
            if e < n and s[e] == 45:
                e2 = joda_uint(s, n, e + 1, 2, &b)
                if e2 >= 0:
                    best = e2
                    f.day = b
    # xxxx -Www [-e]: taken only when strictly longer (Joda's MatchingParser keeps the first
    # of equally long matches).
    if q + 1 < n and s[q] == 45 and (s[q + 1] == 87 or s[q + 1] == 119):
        e = joda_uint(s, n, q + 2, 2, &a)
        if e >= 0:
            b = 1
            if e < n and s[e] == 45:
                e2 = joda_uint(s, n, e + 1, 1, &off)
                if e2 >= 0:
                    e = e2
                    b = off
            if e > best:
                best = e
                f.kind = KIND_WEEK
                f.week = a
                f.dow = b
    # yyyy -DDD
    if q < n and s[q] == 45:
        e = joda_uint(s, n, q + 1, 3, &a)
        if e > best:
            best = e
            f.kind = KIND_ORDINAL
            f.doy = a
    if f.kind != KIND_YMD:
        f.month = 1
        f.day = 1
    q = best
    # Optional ('T' | ' ') [time element] [offset]
    if q < n and (s[q] == 84 or s[q] == 116 or s[q] == 32):
        q += 1
        e = joda_uint(s, n, q, 2, &f.hour)
        if e >= 0:
            q = e
            if q < n and s[q] == 58:
                e = joda_uint(s, n, q + 1, 2, &a)
                if e >= 0:
                    f.minute = a
                    q = e
                    if q < n and s[q] == 58:
                        e = joda_uint(s, n, q + 1, 2, &b)
                        if e >= 0:
                            f.second = b
                            q = e
                            if q < n and (s[q] == 46 or s[q] == 44):
                                e = joda_fraction(s, n, q + 1, MS_PER_SECOND, &f.sub_ms)
                                if e >= 0:
                                    q = e
                    elif q < n and (s[q] == 46 or s[q] == 44):
                        e = joda_fraction(s, n, q + 1, MS_PER_MINUTE, &f.sub_ms)
                        if e >= 0:
                            q = e
            elif q < n and (s[q] == 46 or s[q] == 44):
                e = joda_fraction(s, n, q + 1, MS_PER_HOUR, &f.sub_ms)
                if e >= 0:
                    q = e
        e = joda_offset(s, n, q, &off)
        if e >= 0:
            q = e
            f.has_offset = True
            f.offset_ms = off
    return q == n


cdef inline int64_t digits_at(const uint8_t* s, Py_ssize_t p, Py_ssize_t count) noexcept nogil:
    """The decimal number of ``count`` digits at ``p``, or -1 if one is not a digit."""
    cdef int64_t v = 0
    cdef Py_ssize_t k
    cdef unsigned int d
    for k in range(count):
        d = <unsigned int>s[p + k] - 48
        if d > 9:
            return -1
        v = v * 10 + d
    return v


cdef inline bint parse_canonical(const uint8_t* s, Py_ssize_t n, Fields* f) noexcept nogil:
    """``YYYY-MM-DDTHH:mm:ss.SSSZ``, the form Druid and most tools write, read at fixed
    positions; both grammars read it the same way. False: not that form (the grammar decides)."""
    if n != 24 or s[4] != 45 or s[7] != 45 or s[10] != 84 or s[13] != 58 or s[16] != 58 or s[19] != 46 \
            or s[23] != 90:
        return False
    f.year = digits_at(s, 0, 4)
    f.month = digits_at(s, 5, 2)
    f.day = digits_at(s, 8, 2)
    f.hour = digits_at(s, 11, 2)
    f.minute = digits_at(s, 14, 2)
    f.second = digits_at(s, 17, 2)
    f.sub_ms = digits_at(s, 20, 3)
    if f.year < 0 or f.month < 0 or f.day < 0 or f.hour < 0 or f.minute < 0 or f.second < 0 or f.sub_ms < 0:
        return False
    f.has_offset = True
    f.offset_ms = 0
    return True


cdef inline bint parse_one(const uint8_t* s, Py_ssize_t n, bint lenient, int64_t default_offset_ms,
                           int64_t* out) noexcept nogil:
    cdef Fields f
    init_fields(&f)
    if parse_canonical(s, n, &f):
        return finish(&f, default_offset_ms, out)
    init_fields(&f)
    if lenient:
        if not parse_lenient(s, n, &f):
            return False
    elif not parse_strict(s, n, &f):
        return False
    return finish(&f, default_offset_ms, out)


# --- Python entry points ------------------------------------------------------------------------

cdef inline const uint8_t* buffer_ptr(object buf) except? NULL:
    if buf is None:
        return NULL
    return <const uint8_t*><uintptr_t>buf.address


cdef inline int64_t buffer_size(object buf):
    return 0 if buf is None else buf.size


cdef uint8_t EMPTY[1]


def parse_utf8(validity, offsets, data, Py_ssize_t offset, Py_ssize_t length, bint large_offsets,
               int64_t default_offset_ms=0, bint lenient=False):
    """Parse the UTF-8 strings of a string/large_string array given by its buffers.

    validity, offsets, data: the array's ``buffers()`` (validity and data may be None);
    offset/length: the array's ``offset`` and ``len``; large_offsets: int64 offsets.
    Returns ``(values, validity_bitmap_or_None, null_count)``: an int64 buffer of ``length``
    values and a validity bitmap at offset 0 (None when nothing is null).
    """
    cdef Py_ssize_t width = 8 if large_offsets else 4
    cdef Py_ssize_t i, j, valid = 0
    cdef int64_t start, end, ms
    cdef int32_t s32
    cdef bint bad = False
    cdef const uint8_t* vin
    cdef const uint8_t* optr
    cdef const uint8_t* dptr
    cdef int64_t dsize
    cdef int64_t* vout
    cdef uint8_t* bits

    if offset < 0 or length < 0:
        raise ValueError("negative offset or length")
    if length > 0 and buffer_size(offsets) < (offset + length + 1) * width:
        raise ValueError("offsets buffer too small for the array")
    if validity is not None and buffer_size(validity) * 8 < offset + length:
        raise ValueError("validity buffer too small for the array")
    vin = buffer_ptr(validity)
    optr = buffer_ptr(offsets)
    dptr = buffer_ptr(data)
    dsize = buffer_size(data)
    if dptr == NULL:
        dptr = EMPTY
        dsize = 0

    out_values = pa.allocate_buffer(length * 8)
    out_valid = pa.allocate_buffer((length + 7) // 8)
    vout = <int64_t*><uintptr_t>out_values.address
    bits = <uint8_t*><uintptr_t>out_valid.address
    if length > 0:
        memset(bits, 0, (length + 7) // 8)

    with nogil:
        for i in range(length):
            j = offset + i
            vout[i] = 0
            if vin != NULL and not ((vin[j >> 3] >> (j & 7)) & 1):
                continue
            if large_offsets:
                memcpy(&start, optr + 8 * j, 8)
                memcpy(&end, optr + 8 * (j + 1), 8)
            else:
                memcpy(&s32, optr + 4 * j, 4)
                start = s32
                memcpy(&s32, optr + 4 * (j + 1), 4)
                end = s32
            if start < 0 or end < start or end > dsize:
                bad = True
                break
            if parse_one(dptr + start, <Py_ssize_t>(end - start), lenient, default_offset_ms, &ms):
                vout[i] = ms
                bits[i >> 3] |= <uint8_t>(1 << (i & 7))
                valid += 1
    if bad:
        raise ValueError("string offsets out of bounds of the data buffer")
    nulls = length - valid
    return out_values, (out_valid if nulls else None), nulls


cdef inline Py_ssize_t year_width(int64_t y) noexcept nogil:
    """Characters Joda prints for a year with appendYear(4, 9): at least 4 digits, '-' if < 0."""
    cdef Py_ssize_t w = 0
    cdef int64_t a = -y if y < 0 else y
    while a > 0:
        w += 1
        a = a / 10
    if w < 4:
        w = 4
    return w + 1 if y < 0 else w


cdef inline void put_digits(uint8_t* dst, int64_t v, Py_ssize_t width) noexcept nogil:
    cdef Py_ssize_t k = width
    while k > 0:
        k -= 1
        dst[k] = <uint8_t>(48 + v % 10)
        v = v / 10


cdef inline Py_ssize_t render(uint8_t* dst, int64_t ms) noexcept nogil:
    cdef int64_t days = floor_div(ms, MS_PER_DAY)
    cdef int64_t tod = ms - days * MS_PER_DAY
    cdef int64_t y
    cdef int m, d
    cdef Py_ssize_t w, p
    civil_from_days(days, &y, &m, &d)
    w = year_width(y)
    if y < 0:
        dst[0] = 45
        put_digits(dst + 1, -y, w - 1)
    else:
        put_digits(dst, y, w)
    p = w
    dst[p] = 45
    put_digits(dst + p + 1, m, 2)
    dst[p + 3] = 45
    put_digits(dst + p + 4, d, 2)
    dst[p + 6] = 84
    put_digits(dst + p + 7, tod / MS_PER_HOUR, 2)
    dst[p + 9] = 58
    put_digits(dst + p + 10, (tod / MS_PER_MINUTE) % 60, 2)
    dst[p + 12] = 58
    put_digits(dst + p + 13, (tod / MS_PER_SECOND) % 60, 2)
    dst[p + 15] = 46
    put_digits(dst + p + 16, tod % 1000, 3)
    dst[p + 19] = 90
    return p + 20


cdef inline Py_ssize_t rendered_width(int64_t ms) noexcept nogil:
    cdef int64_t y
    cdef int m, d
    if FMT4_MIN <= ms <= FMT4_MAX:
        return 24
    civil_from_days(floor_div(ms, MS_PER_DAY), &y, &m, &d)
    return year_width(y) + 20


def format_millis(validity, values, Py_ssize_t offset, Py_ssize_t length):
    """Render int64 epoch millis (an int64/timestamp[ms] array's buffers) as ISO strings.

    Returns ``(offsets, data, validity_bitmap_or_None, null_count, large_offsets)``; offsets
    are int32 unless the text exceeds 2**31 - 1 bytes, then int64 (large_string).
    """
    cdef Py_ssize_t i, j, valid = 0
    cdef int64_t total = 0, pos = 0, ms
    cdef int32_t p32
    cdef bint large
    cdef const uint8_t* vin
    cdef const uint8_t* xin
    cdef uint8_t* bits
    cdef uint8_t* optr
    cdef uint8_t* dout

    if offset < 0 or length < 0:
        raise ValueError("negative offset or length")
    if length > 0 and buffer_size(values) < (offset + length) * 8:
        raise ValueError("values buffer too small for the array")
    if validity is not None and buffer_size(validity) * 8 < offset + length:
        raise ValueError("validity buffer too small for the array")
    vin = buffer_ptr(validity)
    xin = buffer_ptr(values)

    out_valid = pa.allocate_buffer((length + 7) // 8)
    bits = <uint8_t*><uintptr_t>out_valid.address
    if length > 0:
        memset(bits, 0, (length + 7) // 8)
    with nogil:
        for i in range(length):
            j = offset + i
            if vin != NULL and not ((vin[j >> 3] >> (j & 7)) & 1):
                continue
            bits[i >> 3] |= <uint8_t>(1 << (i & 7))
            valid += 1
            memcpy(&ms, xin + 8 * j, 8)
            total += rendered_width(ms)
    large = total > INT32_LIMIT

    out_offsets = pa.allocate_buffer((length + 1) * (8 if large else 4))
    out_data = pa.allocate_buffer(total)
    optr = <uint8_t*><uintptr_t>out_offsets.address
    dout = <uint8_t*><uintptr_t>out_data.address
    with nogil:
        for i in range(length + 1):
            if i > 0:
                j = offset + i - 1
                if (bits[(i - 1) >> 3] >> ((i - 1) & 7)) & 1:
                    memcpy(&ms, xin + 8 * j, 8)
                    pos += render(dout + pos, ms)
            if large:
                memcpy(optr + 8 * i, &pos, 8)
            else:
                p32 = <int32_t>pos
                memcpy(optr + 4 * i, &p32, 4)
    nulls = length - valid
    return out_offsets, out_data, (out_valid if nulls else None), nulls, large
