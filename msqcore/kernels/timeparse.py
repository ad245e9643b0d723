"""Druid's ``TIME_PARSE(expr)`` default parser and its TIMESTAMP rendering, over Arrow arrays.

The work happens in the Cython kernel ``_timeparse`` (one ``nogil`` loop over the Arrow
buffers); this module only dispatches on the array type and wraps the buffers it returns.
"""
from __future__ import annotations

import operator

import pyarrow as pa
import pyarrow.compute as pc

from msqcore.kernels import _timeparse

__all__ = ["parse_iso_millis", "format_iso_millis"]

_MS_PER_DAY = 86_400_000
_STRING_VIEW = pa.string_view() if hasattr(pa, "string_view") else None  # pyarrow >= 16


def parse_iso_millis(
    values: pa.Array | pa.ChunkedArray,
    default_offset_ms: int = 0,
    *,
    lenient: bool = False,
) -> pa.Int64Array | pa.ChunkedArray:
    """Parse ISO-8601 strings to epoch milliseconds (int64).

    Nulls and strings that do not parse give null (Druid's TIME_PARSE returns null on
    failure). Accepts ``pa.string()``, ``pa.large_string()``, ``pa.string_view()``,
    dictionary arrays of those and ``pa.null()``; a ChunkedArray gives a ChunkedArray.
    ``default_offset_ms`` is the zone offset applied when the string carries no zone
    (UTC = 0; used for sqlTimeZone with a fixed offset): the result is local time minus it.

    ``lenient=False`` accepts the strict ISO subset ``[+|-]YYYY[-MM[-DD]][THH[:mm[:ss[.F]]][zone]]``
    (two-digit fields, 1..9 fraction digits truncated to millis, ``.`` or ``,``, zone ``Z``,
    ``+HH``, ``+HH:mm`` or ``+HHmm``). ``lenient=True`` accepts exactly what Druid's
    ``TimestampParseExprMacro`` default parser (Joda) accepts, which is wider: one-digit
    fields (``2015-9-1``), ``' '`` instead of ``T`` (SQL format), ``T``/``Z`` in any case,
    ordinal (``2015-256``) and week (``2015-W37-6``) dates, fractional hours/minutes, a
    bare trailing ``T``/``' '``, and offsets with seconds.
    """
    default_offset_ms = operator.index(default_offset_ms)
    if not -_MS_PER_DAY < default_offset_ms < _MS_PER_DAY:
        raise ValueError(f"default_offset_ms must be within +-24h, got {default_offset_ms}")
    lenient = bool(lenient)
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array(
            [_parse_array(chunk, default_offset_ms, lenient) for chunk in values.chunks],
            type=pa.int64(),
        )
    if not isinstance(values, pa.Array):
        raise TypeError(f"expected a pyarrow Array or ChunkedArray, got {type(values).__name__}")
    return _parse_array(values, default_offset_ms, lenient)


def _parse_array(arr: pa.Array, default_offset_ms: int, lenient: bool) -> pa.Int64Array:
    t = arr.type
    if pa.types.is_dictionary(t):
        parsed = _parse_array(arr.dictionary, default_offset_ms, lenient)
        return pc.take(parsed, arr.indices)
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.int64())
    if _STRING_VIEW is not None and t == _STRING_VIEW:
        arr = arr.cast(pa.large_string())
        t = arr.type
    if t == pa.string():
        large = False
    elif t == pa.large_string():
        large = True
    else:
        raise TypeError(f"parse_iso_millis needs string or large_string values, got {t}")
    validity, offsets, data = arr.buffers()
    if arr.null_count == 0:
        validity = None
    values, valid, nulls = _timeparse.parse_utf8(
        validity, offsets, data, arr.offset, len(arr), large, default_offset_ms, lenient
    )
    return pa.Array.from_buffers(pa.int64(), len(arr), [valid, values], null_count=nulls)


def format_iso_millis(millis: pa.Array | pa.ChunkedArray) -> pa.StringArray | pa.ChunkedArray:
    """Epoch millis (int64 or timestamp[ms]) -> ``'YYYY-MM-DDTHH:mm:ss.SSSZ'`` strings, nulls kept.

    This is how Druid's SQL endpoint renders TIMESTAMP values (Joda's
    ``ISODateTimeFormat.dateTime()`` in UTC). Years outside 0000-9999 print as Joda prints
    them: ``-0001-...`` before year 0, ``10000-...`` after 9999. A ChunkedArray gives a
    ChunkedArray. The result is ``pa.string()``, or ``pa.large_string()`` in the unlikely
    case its text exceeds 2 GiB.
    """
    if isinstance(millis, pa.ChunkedArray):
        chunks = [_format_array(chunk) for chunk in millis.chunks]
        if any(c.type == pa.large_string() for c in chunks):
            chunks = [c.cast(pa.large_string()) for c in chunks]
            return pa.chunked_array(chunks, type=pa.large_string())
        return pa.chunked_array(chunks, type=pa.string())
    if not isinstance(millis, pa.Array):
        raise TypeError(f"expected a pyarrow Array or ChunkedArray, got {type(millis).__name__}")
    return _format_array(millis)


def _format_array(arr: pa.Array) -> pa.StringArray:
    t = arr.type
    if not (t == pa.int64() or (pa.types.is_timestamp(t) and t.unit == "ms")):
        raise TypeError(f"format_iso_millis needs int64 or timestamp[ms] values, got {t}")
    validity, values = arr.buffers()
    if arr.null_count == 0:
        validity = None
    offsets, data, valid, nulls, large = _timeparse.format_millis(validity, values, arr.offset, len(arr))
    return pa.Array.from_buffers(
        pa.large_string() if large else pa.string(), len(arr), [valid, offsets, data], null_count=nulls
    )
