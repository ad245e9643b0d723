"""Scalar expressions: bound from sqlglot nodes, evaluated over Arrow tables.

A bound ``Expr`` knows its SQL type, renders itself in Druid's native expression
language as Druid's SQL planner would (for payloads and reports) and evaluates
vectorized with pyarrow.compute, numpy or our kernels: never a Python call per row.

Representation while executing: TIMESTAMP is int64 epoch millis (Druid's native LONG),
BOOLEAN is Arrow bool (materialized as LONG 1/0 when written out), strings are Arrow
strings, BIGINT int64, DOUBLE float64, FLOAT float32.

Null handling is Druid's SQL-compatible mode: ``''`` and NULL differ and most functions
return NULL for a NULL argument. Every ``Call.fn`` is a module-level function (bound
expressions are pickled to worker processes); it receives one ``pa.Array`` per argument,
all of one length (literals are broadcast), followed by ``Call.extra``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from msqcore.errors import DruidException, InvalidInput, MsqError
from msqcore.kernels import jodatime, timeparse
from msqcore.kernels.jodatime import Period
from msqcore.timeutil import granularity

# SQL type → (native type, arrow type)
SQL_TYPES = {
    "BIGINT": ("LONG", pa.int64()),
    "DOUBLE": ("DOUBLE", pa.float64()),
    "FLOAT": ("FLOAT", pa.float32()),
    "VARCHAR": ("STRING", pa.string()),
    "TIMESTAMP": ("LONG", pa.int64()),
    "BOOLEAN": ("LONG", pa.bool_()),
    # a stored HyperLogLogCollector (rollup metric): Druid's serialized bytes
    "COMPLEX<hyperUnique>": ("COMPLEX<hyperUnique>", pa.binary()),
    # EARLIEST/LATEST states (rollup metrics): a (time, value) pair
    "COMPLEX<serializablePairLongString>": ("COMPLEX<serializablePairLongString>", pa.binary()),
    "COMPLEX<serializablePairLongLong>": ("COMPLEX<serializablePairLongLong>", pa.binary()),
    "COMPLEX<serializablePairLongDouble>": ("COMPLEX<serializablePairLongDouble>", pa.binary()),
    "COMPLEX<serializablePairLongFloat>": ("COMPLEX<serializablePairLongFloat>", pa.binary()),
    # nested JSON: canonical JSON text (planner/json_functions.py)
    "COMPLEX<json>": ("COMPLEX<json>", pa.string()),
}
SQL_TYPES.update({
    "VARCHAR ARRAY": ("ARRAY<STRING>", pa.list_(pa.string())),
    "BIGINT ARRAY": ("ARRAY<LONG>", pa.list_(pa.int64())),
    "DOUBLE ARRAY": ("ARRAY<DOUBLE>", pa.list_(pa.float64())),
})
HYPER_UNIQUE = "COMPLEX<hyperUnique>"
# the pair type that stores EARLIEST/LATEST of a value type, and back
PAIR_TYPES = {"VARCHAR": "COMPLEX<serializablePairLongString>", "BIGINT": "COMPLEX<serializablePairLongLong>",
              "TIMESTAMP": "COMPLEX<serializablePairLongLong>", "BOOLEAN": "COMPLEX<serializablePairLongLong>",
              "DOUBLE": "COMPLEX<serializablePairLongDouble>", "FLOAT": "COMPLEX<serializablePairLongFloat>"}
PAIR_VALUE_TYPES = {"COMPLEX<serializablePairLongString>": "VARCHAR", "COMPLEX<serializablePairLongLong>": "BIGINT",
                    "COMPLEX<serializablePairLongDouble>": "DOUBLE", "COMPLEX<serializablePairLongFloat>": "FLOAT"}
NATIVE_TO_SQL = {"LONG": "BIGINT", "DOUBLE": "DOUBLE", "FLOAT": "FLOAT", "STRING": "VARCHAR"}
_NUMERIC = ("BIGINT", "DOUBLE", "FLOAT", "TIMESTAMP", "BOOLEAN")
_EXPR_TYPE = {"BIGINT": "LONG", "TIMESTAMP": "LONG", "BOOLEAN": "LONG", "DOUBLE": "DOUBLE", "FLOAT": "DOUBLE",
              "VARCHAR": "STRING"}


def native_type(sql_type: str) -> str:
    return SQL_TYPES[sql_type][0]


def arrow_type(sql_type: str) -> pa.DataType:
    return SQL_TYPES[sql_type][1]


def sql_type_name(sql_type: str) -> str:
    """The name Druid shows for a SQL type (Calcite's ``SqlTypeName``: report and payload
    ``sqlTypeNames``, the ``sqlTypesHeader``): ``ARRAY`` for every array, ``OTHER`` for COMPLEX."""
    if sql_type.endswith(" ARRAY"):
        return "ARRAY"
    if sql_type.startswith("COMPLEX<"):
        return "OTHER"
    return sql_type


# --- Druid's native expression text ----------------------------------------------------------------

_SAFE_CHARS = set(" ,._-;:(){}[]<>!@#$%^&*`~?/")


def druid_escape(s: str) -> str:
    """DruidExpression.escape: letters, digits and a few safe characters stay, every other
    UTF-16 code unit becomes ``\\uXXXX``."""
    out = []
    for ch in s:
        if ch.isalnum() or ch in _SAFE_CHARS:
            out.append(ch)
        else:
            units = ch.encode("utf-16-be")
            for i in range(0, len(units), 2):
                out.append("\\u%04X" % int.from_bytes(units[i:i + 2], "big"))
    return "".join(out)


def _quote_ident(name: str) -> str:
    return '"' + druid_escape(name) + '"'


def _quote_str(value: str | None) -> str:
    return "null" if value is None else "'" + druid_escape(value) + "'"


def java_double(x: float) -> str:
    """Java's Double.toString for one value (literals in native expressions)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    a = abs(x)
    if 1e-3 <= a < 1e7:
        text = repr(x)
        if "e" in text:
            text = f"{x:.20f}".rstrip("0")
        return text if "." in text else text + ".0"
    r = repr(a)
    if "e" in r:
        m, _, ex = r.partition("e")
        exponent = int(ex) + len(m.split(".")[0]) - 1
        m = m.replace(".", "")
    else:
        intpart, _, frac = r.partition(".")
        if intpart != "0":
            exponent = len(intpart) - 1
            m = intpart + frac
        else:
            stripped = frac.lstrip("0")
            exponent = -(len(frac) - len(stripped)) - 1
            m = stripped
    m = m.lstrip("0").rstrip("0") or "0"
    text = m[0] + "." + (m[1:] or "0") + "E" + str(exponent)
    return ("-" if x < 0 else "") + text


# --- expressions -----------------------------------------------------------------------------------


class Expr:
    sql_type: str

    def eval(self, table: pa.Table):
        raise NotImplementedError

    def native(self) -> str:
        raise NotImplementedError

    def columns(self) -> set[str]:
        return set()

    def materialize(self, table: pa.Table) -> pa.ChunkedArray | pa.Array:
        """Evaluate to a full-length array of this expression's storage type."""
        out = self.eval(table)
        if isinstance(out, pa.Scalar):
            out = _broadcast(out, table.num_rows)
        if self.sql_type == "BOOLEAN":
            out = pc.cast(out, pa.int64())
        elif self.sql_type == "VARCHAR" and pa.types.is_list(out.type):
            pass  # a multi-value string: its values stay a list
        elif out.type != arrow_type(self.sql_type):
            out = pc.cast(out, arrow_type(self.sql_type), safe=False)
        return out


def _broadcast(scalar: pa.Scalar, n: int) -> pa.Array:
    if not scalar.is_valid:
        return pa.nulls(n, scalar.type if scalar.type != pa.null() else pa.string())
    return pc.fill_null(pa.nulls(n, scalar.type), scalar) if n else pa.array([], scalar.type)


@dataclass
class ColumnRef(Expr):
    name: str
    sql_type: str

    def eval(self, table):
        return table.column(self.name)

    def native(self):
        return _quote_ident(self.name)

    def columns(self):
        return {self.name}


@dataclass
class Ambiguous(Expr):
    """A scope entry for an unqualified name that several joined tables have."""

    name: str
    sql_type: str = "AMBIGUOUS"


@dataclass
class Literal(Expr):
    value: Any
    sql_type: str

    def eval(self, table):
        return pa.scalar(self.value, arrow_type(self.sql_type))

    def native(self):
        if self.value is None:
            return "null"
        if self.sql_type == "VARCHAR":
            return _quote_str(self.value)
        if self.sql_type == "BOOLEAN":
            return "1" if self.value else "0"
        if self.sql_type in ("DOUBLE", "FLOAT"):
            return java_double(float(self.value))
        return str(int(self.value))


@dataclass
class Call(Expr):
    """A function or operator: ``fn`` evaluates the argument values."""

    op: str
    args: list[Expr]
    sql_type: str
    fn: Callable
    native_fmt: str  # e.g. "({0} + {1})" or "timestamp_parse({0},null,'UTC')"
    extra: tuple = ()

    def eval(self, table):
        if self.op in _LAZY and table.num_rows and _can_fail(self):
            return _LAZY[self.op](self, table)
        values = [a.eval(table) for a in self.args]
        n = next((len(v) for v in values if not isinstance(v, pa.Scalar)), None)
        if n is None:
            out = self.fn(*[_broadcast(v, 1) for v in values], *self.extra)
            if isinstance(out, pa.ChunkedArray):
                out = out.combine_chunks()
            return out[0] if isinstance(out, pa.Array) else out
        arrays = [_broadcast(v, n) if isinstance(v, pa.Scalar) else
                  (v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v) for v in values]
        arrays = [a.dictionary_decode() if pa.types.is_dictionary(a.type) else a for a in arrays]
        if any(_is_list(a) for a in arrays) and self.fn not in _list_aware():
            return _map_values(self, arrays)
        return self.fn(*arrays, *self.extra)

    def native(self):
        return self.native_fmt.format(*[a.native() for a in self.args])

    def columns(self):
        out = set()
        for a in self.args:
            out |= a.columns()
        return out


def _is_null(e: Expr) -> bool:
    return isinstance(e, Literal) and e.value is None


def _map_values(call: Call, arrays: list) -> pa.Array:
    """A function of single values applied to a multi-value string, as Druid maps it over
    the values: string results stay multi-valued, boolean results match when any value does
    (filters). A row without values is one NULL value."""
    from msqcore.planner import arrays as arr  # arrays builds on this module
    at = next(i for i, a in enumerate(arrays) if _is_list(a))
    if any(_is_list(a) for a in arrays[at + 1:]):
        raise InvalidInput(f"Function [{call.op}] takes at most one multi-value string argument")
    rows, values = arr.value_rows(arrays[at])
    take = pa.array(rows)
    args = [values if i == at else a.take(take) for i, a in enumerate(arrays)]
    out = call.fn(*args, *call.extra)
    if isinstance(out, pa.ChunkedArray):
        out = out.combine_chunks()
    n = len(arrays[at])
    if out.type == pa.bool_():
        hit = pc.fill_null(out, False).to_numpy(zero_copy_only=False)
        return pa.array(np.bincount(rows[hit], minlength=n) > 0)
    if call.sql_type != "VARCHAR":
        raise InvalidInput(f"Function [{call.op}] cannot take a multi-value string argument; "
                           "use MV_TO_ARRAY and the ARRAY functions, or UNNEST")
    counts = np.bincount(rows, minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pc.cast(out, pa.string()))


def _list_aware() -> frozenset:
    """Functions that take multi-value strings and arrays as they are."""
    from msqcore.planner import arrays as arr  # arrays builds on this module
    return arr.LIST_FUNCTIONS | _LIST_OPERATORS


# Operations that throw on some inputs (integer division by zero). Druid evaluates CASE
# branches and the right side of AND/OR only on the rows that reach them, so around these
# we evaluate each part on those rows only.
_FAILING_OPS = {"divide", "mod", "div"}


def _can_fail(e: Expr) -> bool:
    return isinstance(e, Call) and (e.op in _FAILING_OPS or any(_can_fail(a) for a in e.args))


def _full(e: Expr, table: pa.Table) -> pa.Array:
    v = e.eval(table)
    if isinstance(v, pa.Scalar):
        v = _broadcast(v, table.num_rows)
    return v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v


def _rows_true(e: Expr, table: pa.Table) -> np.ndarray:
    return pc.fill_null(pc.cast(_full(e, table), pa.bool_()), False).to_numpy(zero_copy_only=False)


def _on_rows(e: Expr, table: pa.Table, rows: np.ndarray, type_: pa.DataType) -> pa.Array:
    """``e`` evaluated on ``rows`` only, scattered back to full length (null elsewhere)."""
    n = table.num_rows
    if len(rows) == n:
        return pc.cast(_full(e, table), type_)
    part = pc.cast(_full(e, table.take(pa.array(rows))), type_) if len(rows) else pa.array([], type_)
    pos = np.full(n, -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    return part.take(pa.array(pos, mask=pos < 0))


def _lazy_case(call: Call, table: pa.Table):
    n = call.extra[0]
    conds, values = call.args[:n], call.args[n:]
    out_type = arrow_type(call.sql_type)
    branch = np.full(table.num_rows, n, dtype=np.int64)  # n: the ELSE value
    pending = np.arange(table.num_rows)
    for i, c in enumerate(conds):
        if not len(pending):
            break
        hit = _rows_true(c, table.take(pa.array(pending)))
        branch[pending[hit]] = i
        pending = pending[~hit]
    out = pa.nulls(table.num_rows, out_type)
    for i, v in enumerate(values):
        rows = np.nonzero(branch == i)[0]
        if len(rows):
            out = pc.if_else(pa.array(branch == i), _on_rows(v, table, rows, out_type), out)
    return out


def _lazy_logic(call: Call, table: pa.Table):
    decisive = call.op == "or"  # AND stops at false, OR at true
    out = pc.cast(_full(call.args[0], table), pa.bool_())
    for a in call.args[1:]:
        open_rows = np.nonzero(~pc.fill_null(pc.equal(out, decisive), False).to_numpy(zero_copy_only=False))[0]
        out = call.fn(out, _on_rows(a, table, open_rows, pa.bool_()))
    return out


_LAZY = {"case": _lazy_case, "and": _lazy_logic, "or": _lazy_logic}


def _fmt_args(n: int, start: int = 0) -> str:
    return ",".join("{%d}" % i for i in range(start, start + n))


# --- small array helpers ---------------------------------------------------------------------------


def _valid(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return pc.is_valid(arr).to_numpy(zero_copy_only=False)


def _ints(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 values with nulls as 0, validity)."""
    if not pa.types.is_int64(arr.type):
        arr = pc.cast(arr, pa.int64(), safe=False)
    return arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False), _valid(arr)


def _floats(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    if not pa.types.is_float64(arr.type):
        arr = pc.cast(arr, pa.float64(), safe=False)
    return arr.fill_null(0).to_numpy(zero_copy_only=False), _valid(arr)


def _from_np(values: np.ndarray, valid: np.ndarray, type_: pa.DataType) -> pa.Array:
    return pa.array(values, type_, mask=None if valid.all() else ~valid)


def _null_like(arr, type_=None):
    return pa.scalar(None, type_ or arr.type)


def _is_string_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


# --- casts -------------------------------------------------------------------------------------------

_LONG_RE = r"^[+-]?\d+$"
_DOUBLE_RE = r"^[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?))[dDfF]?$"


def _string_to_number(v: pa.Array, target: pa.DataType) -> pa.Array:
    """Druid's lenient parse (Guava tryParse): strings that are not numbers become null;
    ``'3.7'`` as BIGINT parses as a double and truncates."""
    if pa.types.is_dictionary(v.type):
        v = v.dictionary_decode()
    dbl_ok = pc.match_substring_regex(v, _DOUBLE_RE)
    clean = pc.replace_substring_regex(v, r"[dDfF]$", "")
    as_dbl = pc.cast(pc.if_else(dbl_ok, clean, pa.scalar(None, v.type)), pa.float64())
    if target == pa.int64():
        # GuavaUtils.tryParseLong: an optional '+', then Longs.tryParse, which gives null past
        # the long range; those values go the double way and saturate, as Druid's cast does.
        ok = pc.match_substring_regex(v, _LONG_RE)
        magnitude = pc.replace_substring_regex(v, r"^[+-]0*(\d)|^0*(\d)", r"\1\2")
        negative = pc.starts_with(v, "-")
        digits = pc.utf8_length(magnitude)
        limit = pc.if_else(negative, "9223372036854775808", "9223372036854775807")
        fits = pc.or_(pc.less(digits, 19), pc.and_(pc.equal(digits, 19), pc.less_equal(magnitude, limit)))
        signed = pc.if_else(negative, pc.binary_join_element_wise("-", magnitude, ""), magnitude)
        as_int = pc.cast(pc.if_else(pc.and_(ok, fits), signed, pa.scalar(None, v.type)), pa.int64())
        return pc.coalesce(as_int, _double_to_long(as_dbl))
    return pc.cast(as_dbl, target)


def _double_to_long(v: pa.Array) -> pa.Array:
    """Java's (long) cast: truncate toward zero, NaN → 0, saturate at the long range."""
    vals, valid = _floats(v)
    with np.errstate(invalid="ignore"):
        out = np.where(np.isnan(vals), 0.0, np.trunc(vals))
    big = out >= 9.223372036854775807e18
    small = out <= -9.223372036854775808e18
    out = np.where(big | small, 0.0, out).astype(np.int64)
    out = np.where(big, np.iinfo(np.int64).max, np.where(small, np.iinfo(np.int64).min, out))
    return _from_np(out, valid, pa.int64())


def _java_double_strings(v: pa.Array) -> pa.Array:
    """Java's Double.toString over an array: plain in [1e-3, 1e7), else d.dddE±n."""
    vals, valid = _floats(v)
    base = pc.cast(pa.array(vals, pa.float64()), pa.string())
    a = np.abs(vals)
    with np.errstate(divide="ignore", invalid="ignore"):
        plain = (a >= 1e-3) & (a < 1e7)
        e = np.floor(np.log10(np.where(a > 0, a, 1.0)))
        e = np.where(np.isfinite(e), e, 0)
        e = e - (np.power(10.0, e) > a) + (np.power(10.0, e + 1) <= a)
    # plain: make sure there is a fractional part
    plain_text = pc.if_else(pc.match_substring(base, "."), base, pc.binary_join_element_wise(base, ".0", ""))
    digits = pc.replace_substring_regex(base, r"[eE].*$", "")
    digits = pc.replace_substring_regex(digits, r"[-.]", "")
    digits = pc.replace_substring_regex(digits, r"^0+", "")
    digits = pc.replace_substring_regex(digits, r"0+$", "")
    digits = pc.if_else(pc.equal(digits, ""), "0", digits)
    first = pc.utf8_slice_codeunits(digits, 0, 1)
    rest = pc.utf8_slice_codeunits(digits, 1)
    rest = pc.if_else(pc.equal(rest, ""), "0", rest)
    sign = pa.array(np.where(vals < 0, "-", ""))
    sci = pc.binary_join_element_wise(sign, first, ".", rest, "E", pa.array(e.astype(np.int64)).cast(pa.string()),
                                      "")
    out = pc.if_else(pa.array(plain), plain_text, sci)
    zero = a == 0
    if zero.any():
        out = pc.if_else(pa.array(zero), pa.array(np.where(np.signbit(vals), "-0.0", "0.0")), out)
    special = ~np.isfinite(vals)
    if special.any():
        names = np.where(np.isnan(vals), "NaN", np.where(vals > 0, "Infinity", "-Infinity"))
        out = pc.if_else(pa.array(special), pa.array(names), out)
    return pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))


def _cast(v: pa.Array, sql_type: str) -> pa.Array:
    target = arrow_type(sql_type)
    vt = v.type
    if pa.types.is_dictionary(vt):
        v = v.dictionary_decode()
        vt = v.type
    if vt == target:
        return v
    if pa.types.is_null(vt):
        return pa.nulls(len(v), target)
    if sql_type == "BOOLEAN":
        return _truthy(v)
    if _is_string_type(vt):
        if sql_type in ("BIGINT", "TIMESTAMP"):
            return _string_to_number(v, pa.int64())
        if sql_type in ("DOUBLE", "FLOAT"):
            return _string_to_number(v, target)
        return pc.cast(v, target)
    if sql_type == "VARCHAR":
        if vt == pa.bool_():
            return pc.if_else(v, "true", "false")
        if pa.types.is_floating(vt):
            return _java_double_strings(v)
        return pc.cast(v, pa.string())
    if sql_type in ("BIGINT", "TIMESTAMP") and pa.types.is_floating(vt):
        return _double_to_long(v)
    return pc.cast(v, target, safe=False)


def _truthy(v: pa.Array) -> pa.Array:
    """Druid's asBoolean: numbers are true when non-zero, strings when 'true'."""
    if v.type == pa.bool_():
        return v
    if pa.types.is_null(v.type):
        return pa.nulls(len(v), pa.bool_())
    if _is_string_type(v.type):
        return pc.equal(pc.utf8_lower(v), "true")
    return pc.not_equal(v, pa.scalar(0, v.type))


# --- operators -----------------------------------------------------------------------------------------


def _add(a, b):
    return pc.add(a, b)


def _subtract(a, b):
    return pc.subtract(a, b)


def _multiply(a, b):
    return pc.multiply(a, b)


def _divide(a, b):
    if pa.types.is_integer(a.type) and pa.types.is_integer(b.type):
        return _long_divide(a, b)
    return pc.divide(pc.cast(a, pa.float64()), pc.cast(b, pa.float64()))


class ArithmeticException(DruidException):
    """Java's long division or remainder by zero: Druid's query fails with the JVM's
    ``java.lang.ArithmeticException: / by zero`` (HTTP 500, UNCATEGORIZED)."""

    def __init__(self):
        super().__init__("/ by zero")


def _check_zero_divisor(valid: np.ndarray, y: np.ndarray) -> None:
    if (valid & (y == 0)).any():
        raise ArithmeticException()


def _long_divide(a, b):
    # Java's long division truncates toward zero and throws on a zero divisor.
    x, va = _ints(a)
    y, vb = _ints(b)
    _check_zero_divisor(va & vb, y)
    valid = va & vb & (y != 0)
    ys = np.where(y == 0, 1, y)
    q = np.abs(x) // np.abs(ys)
    q = np.where((x < 0) ^ (ys < 0), -q, q)
    return _from_np(q, valid, pa.int64())


def _mod(a, b):
    if pa.types.is_integer(a.type) and pa.types.is_integer(b.type):
        x, va = _ints(a)
        y, vb = _ints(b)
        _check_zero_divisor(va & vb, y)
        valid = va & vb & (y != 0)
        ys = np.where(y == 0, 1, y)
        r = np.fmod(x, ys)
        return _from_np(r, valid, pa.int64())
    x, va = _floats(a)
    y, vb = _floats(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.fmod(x, y)
    return _from_np(r, va & vb, pa.float64())


def _negate(a):
    return pc.negate(a)


def _compare(a, b, fname: str):
    if _is_list(a):
        return _any_value(_compare, a, (b,), fname)
    if _is_list(b):
        return _any_value(_compare, b, (a,), _FLIPPED.get(fname, fname))
    return getattr(pc, fname)(a, b)


_FLIPPED = {"less": "greater", "less_equal": "greater_equal", "greater": "less", "greater_equal": "less_equal"}


def _is_list(arr) -> bool:
    return pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)


def _any_value(fn, v, *args):
    from msqcore.planner import arrays  # arrays builds on this module
    return arrays.any_value(fn, v, *args)


def _and(*args):
    out = args[0]
    for a in args[1:]:
        out = pc.and_kleene(out, a)
    return out


def _or(*args):
    out = args[0]
    for a in args[1:]:
        out = pc.or_kleene(out, a)
    return out


def _not(a):
    return pc.invert(a)


def _is_null_fn(a):
    if _is_list(a):  # a multi-value row with no values reads as NULL
        return _any_value(pc.is_null, a, ())
    return pc.is_null(a)


def _not_null_fn(a):
    if _is_list(a):
        return _any_value(pc.is_valid, a, ())
    return pc.is_valid(a)


def _is_bool(v, want: bool, negate: bool):
    b = _truthy(v)
    out = pc.fill_null(b if want else pc.invert(b), False)
    return pc.invert(out) if negate else out


def _is_in(v, value_set: pa.Array, has_null: bool):
    if _is_list(v):
        return _any_value(_is_in, v, (), value_set, has_null)
    if pa.types.is_dictionary(v.type):
        v = v.dictionary_decode()
    if v.type == pa.bool_():
        v = pc.cast(v, pa.int64())
    vs = value_set if value_set.type == v.type else pc.cast(value_set, v.type)
    out = pc.is_in(v, value_set=vs)
    if has_null:
        out = pc.if_else(out, True, pa.scalar(None, pa.bool_()))
    return pc.if_else(pc.is_valid(v), out, pa.scalar(None, pa.bool_()))


def _like(v, pattern: str, negate: bool):
    if _is_list(v):
        return _any_value(_like, v, (), pattern, negate)
    out = pc.match_like(v, pattern)
    return pc.invert(out) if negate else out


def _like_pattern(pattern: str, escape: str | None) -> str:
    """A SQL LIKE pattern as pyarrow's match_like wants it (backslash escapes)."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape:
            if i + 1 >= len(pattern):
                raise InvalidInput(f"Invalid escape sequence '{pattern}', {i}")
            nxt = pattern[i + 1]
            if nxt not in ("%", "_", escape):
                raise InvalidInput(f"Invalid escape sequence '{pattern}', {i}")
            out.append("\\" + nxt if nxt in "%_\\" else nxt)
            i += 2
            continue
        out.append("\\\\" if ch == "\\" else ch)
        i += 1
    return "".join(out)


def _identity(v):
    return v


def _cast_fn(v, sql_type: str):
    return _cast(v, sql_type)


def _coalesce(*values):
    return pc.coalesce(*values)


def _case(*args):
    n = args[-1]
    conds, values = args[:n], args[n:-1]
    out = values[-1]
    for c, v in zip(reversed(conds), reversed(values[:-1])):
        out = pc.if_else(pc.fill_null(c, False), v, out)
    return out


def _nullif(x, y):
    return pc.if_else(pc.fill_null(pc.equal(x, y), False), pa.scalar(None, x.type), x)


# --- string functions ------------------------------------------------------------------------------


def _concat(*values):
    return pc.binary_join_element_wise(*values, "")


def _lower(v):
    return pc.utf8_lower(v)


def _upper(v):
    return pc.utf8_upper(v)


def _strlen(v):
    # Java String.length(): UTF-16 code units (supplementary characters count twice)
    cps = pc.utf8_length(v)
    wide = pc.count_substring_regex(v, "[\\x{10000}-\\x{10FFFF}]")
    return pc.cast(pc.add(cps, wide), pa.int64())


def _substring(v, index: int, length: int):
    """Druid's substring(s, index, length) (0-based index; length < 0: to the end).
    Starting at or past the end gives null."""
    start = max(index, 0)
    out = pc.utf8_slice_codeunits(v, start, None if length < 0 else start + length)
    past = pc.less_equal(pc.utf8_length(v), start)
    return pc.if_else(pc.fill_null(past, False), pa.scalar(None, pa.string()), out)


def _left(v, n: int):
    return pc.utf8_slice_codeunits(v, 0, n)


def _right(v, n: int):
    if n == 0:
        return pc.if_else(pc.is_valid(v), "", pa.scalar(None, pa.string()))
    return pc.utf8_slice_codeunits(v, -n)


def _trim(v, chars, where: str):
    if chars is None:
        return pa.nulls(len(v), pa.string())
    if chars == "":
        return v
    fn = {"both": pc.utf8_trim, "leading": pc.utf8_ltrim, "trailing": pc.utf8_rtrim}[where]
    return fn(v, characters=chars)


def _replace(v, pattern: str, replacement: str):
    if pattern == "":
        # Java's String.replace("", r) puts r between every character and at both ends
        inner = pc.replace_substring_regex(v, "(.)", replacement.replace("\\", "\\\\") + "\\1")
        return pc.binary_join_element_wise(inner, pa.scalar(replacement), "")
    return pc.replace_substring(v, pattern, replacement)


def _reverse(v):
    return pc.utf8_reverse(v)


def _repeat(v, n: int):
    if n < 1:
        return pa.nulls(len(v), pa.string())
    return pc.binary_repeat(v, n)


def _pad(v, length: int, pad: str | None, left: bool):
    n = len(v)
    if pad is None:
        return pa.nulls(n, pa.string())
    if length == 0:
        return pa.nulls(n, pa.string())
    if length < 0:
        return pc.if_else(pc.is_valid(v), "", pa.scalar(None, pa.string()))
    base = pc.utf8_slice_codeunits(v, 0, length)
    if pad == "":
        return pc.if_else(pc.less(pc.utf8_length(v), length), v, base)
    full = (pad * (length // len(pad) + 1))[:length]
    need, valid = _ints(pc.subtract(pa.scalar(length, pa.int64()), pc.cast(pc.utf8_length(base), pa.int64())))
    prefixes = pa.array([full[:k] for k in range(length + 1)], pa.string())
    padding = pc.take(prefixes, pa.array(np.clip(need, 0, length)))
    out = pc.binary_join_element_wise(padding, base, "") if left else pc.binary_join_element_wise(base, padding, "")
    return pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))


def _strpos(v, needle: str | None, start: int):
    """Java's indexOf in code points, 0-based, -1 when absent."""
    if needle is None:
        return pa.nulls(len(v), pa.int64())
    start = max(start, 0)
    tail = pc.utf8_slice_codeunits(v, start)
    found = pc.find_substring(tail, needle)
    head = pc.list_element(pc.split_pattern(tail, needle, max_splits=1), 0) if needle else \
        pc.if_else(pc.is_valid(tail), "", pa.scalar(None, pa.string()))
    idx = pc.add(pc.cast(pc.utf8_length(head), pa.int64()), start)
    out = pc.if_else(pc.equal(found, -1), pa.scalar(-1, pa.int64()), idx)
    if needle == "":
        out = pc.min_element_wise(pa.scalar(start, pa.int64()), pc.cast(pc.utf8_length(v), pa.int64()))
        out = pc.if_else(pc.is_valid(v), out, pa.scalar(None, pa.int64()))
    return out


def _plus_one(v):
    return pc.add(v, pa.scalar(1, pa.int64()))


def _position(v, needle: str | None, start: int):
    return _plus_one(_strpos(v, needle, start))


def _contains(v, needle: str | None, ignore_case: bool):
    if needle is None:
        return pa.nulls(len(v), pa.bool_())
    return pc.fill_null(pc.match_substring(v, needle, ignore_case=ignore_case), False)


def _regexp_like(v, pattern: str):
    return pc.fill_null(pc.match_substring_regex(v, pattern), False)


def _regexp_extract(v, pattern: str, index: int):
    st = pc.extract_regex(v, pattern)
    return pc.struct_field(st, f"g{index}")


def _regexp_replace(v, pattern: str, replacement: str):
    return pc.replace_substring_regex(v, pattern, replacement)


def _java_regex(pattern: str, wrap: bool = True) -> tuple[str, int]:
    """A Java regex as RE2 wants it, every capturing group named ``gN`` (and, with
    ``wrap``, the whole match ``g0``); returns (pattern, number of groups)."""
    out = []
    i = 0
    groups = 0
    in_class = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            out.append(ch)
        elif ch == "[":
            in_class = True
            out.append(ch)
            if pattern[i + 1:i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1:i + 2] == "]":
                out.append("]")
                i += 1
        elif ch == "(":
            if pattern.startswith("(?<", i) and not pattern.startswith("(?<=", i) \
                    and not pattern.startswith("(?<!", i):
                end = pattern.index(">", i)
                groups += 1
                out.append(f"(?P<g{groups}>")
                i = end + 1
                continue
            if pattern.startswith("(?P<", i):
                end = pattern.index(">", i)
                groups += 1
                out.append(f"(?P<g{groups}>")
                i = end + 1
                continue
            if pattern.startswith("(?", i):
                out.append(ch)
            else:
                groups += 1
                out.append(f"(?P<g{groups}>")
        else:
            out.append(ch)
        i += 1
    body = "".join(out)
    return ("(?P<g0>" + body + ")" if wrap else body), groups


def _java_replacement(rep: str) -> str:
    """Java's Matcher replacement (``$1``, ``\\$``) as RE2's (``\\1``)."""
    out = []
    i = 0
    while i < len(rep):
        ch = rep[i]
        if ch == "\\" and i + 1 < len(rep):
            nxt = rep[i + 1]
            out.append("\\\\" if nxt == "\\" else nxt)
            i += 2
        elif ch == "$" and i + 1 < len(rep) and rep[i + 1].isdigit():
            out.append("\\" + rep[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# --- numeric functions -----------------------------------------------------------------------------


def _unary_math(v, name: str):
    x, valid = _floats(v)
    with np.errstate(all="ignore"):
        if name == "cot":
            out = np.cos(x) / np.sin(x)
        elif name == "toDegrees":
            out = np.degrees(x)
        elif name == "toRadians":
            out = np.radians(x)
        elif name == "log":
            out = np.log(x)
        else:
            out = getattr(np, {"asin": "arcsin", "acos": "arccos", "atan": "arctan"}.get(name, name))(x)
    return _from_np(out, valid, pa.float64())


def _binary_math(a, b, name: str):
    x, va = _floats(a)
    y, vb = _floats(b)
    with np.errstate(all="ignore"):
        out = np.power(x, y) if name == "pow" else np.arctan2(x, y)
    return _from_np(out, va & vb, pa.float64())


def _pi():
    return pa.array([math.pi], pa.float64())


def _abs(v):
    return pc.abs(v)


def _floor_num(v):
    return pc.floor(v) if pa.types.is_floating(v.type) else v


def _ceil_num(v):
    return pc.ceil(v) if pa.types.is_floating(v.type) else v


def _round(v, scale: int):
    """Druid's round: BigDecimal HALF_UP on the value's decimal text."""
    if pa.types.is_integer(v.type):
        if scale >= 0:
            return v
        x, valid = _ints(v)
        q = 10 ** (-scale)
        r = (np.abs(x) + q // 2) // q * q
        return _from_np(np.where(x < 0, -r, r), valid, pa.int64())
    x, valid = _floats(v)
    with np.errstate(all="ignore"):
        x = np.where(np.isnan(x), 0.0, x)
        x = np.clip(x, -np.finfo(np.float64).max, np.finfo(np.float64).max)
        f = 10.0 ** abs(scale)
        y = np.abs(x) * f if scale >= 0 else np.abs(x) / f
        t = y + 0.5
        fl = np.floor(t)
        fl = np.where((fl + 1 - t) <= 4 * np.spacing(t), fl + 1, fl)
        r = fl / f if scale >= 0 else fl * f
        r = np.where(np.isfinite(r), r, np.abs(x))
    return _from_np(np.where(x < 0, -r, r) + 0.0, valid, pa.float64())


def _truncate(v, scale: int, integer: bool):
    x, valid = _floats(v)
    f = 10.0 ** scale
    with np.errstate(all="ignore"):
        out = np.trunc(x * f) / f
    if integer:
        return _from_np(np.trunc(out).astype(np.int64), valid, pa.int64())
    return _from_np(out, valid, pa.float64())


def _int_div(a, b):
    """DIV(x, y): long division, or (long) (x / y) for doubles (Java's cast: NaN → 0,
    out of range → the nearest long)."""
    if pa.types.is_integer(a.type) and pa.types.is_integer(b.type):
        return _long_divide(a, b)
    x, va = _floats(a)
    y, vb = _floats(b)
    with np.errstate(all="ignore"):
        q = x / y
    q = np.where(np.isnan(q), 0.0, q)
    big = q >= 9.223372036854775807e18
    small = q <= -9.223372036854775808e18
    out = np.trunc(np.where(big | small, 0.0, q)).astype(np.int64)
    out = np.where(big, np.iinfo(np.int64).max, np.where(small, np.iinfo(np.int64).min, out))
    return _from_np(out, va & vb, pa.int64())


_DIGITS = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate("0123456789abcdefghijklmnopqrstuvwxyz"):
    _DIGITS[ord(_c)] = _i
    _DIGITS[ord(_c.upper())] = _i


def _parse_long(v, radix: int):
    """Java's Long.parseLong(s, radix) over a string array (0x stripped for radix 16);
    null where it would throw."""
    v = pc.cast(v, pa.large_string())
    if radix == 16:
        v = pc.replace_substring_regex(v, "^0[xX]", "")
    valid = _valid(v)
    offsets = np.frombuffer(v.buffers()[1], dtype=np.int64)[v.offset: v.offset + len(v) + 1]
    data = np.frombuffer(v.buffers()[2], dtype=np.uint8) if v.buffers()[2] is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    n = len(v)
    first = np.where(lengths > 0, data[np.minimum(starts, max(len(data) - 1, 0))] if len(data) else 0, 0)
    negative = (lengths > 0) & (first == ord("-"))
    signed = (lengths > 0) & ((first == ord("-")) | (first == ord("+")))
    digits_len = lengths - signed
    ok = valid & (digits_len > 0)
    # accumulate negatively (as Java does) so Long.MIN_VALUE parses
    acc = np.zeros(n, dtype=np.int64)
    limit = np.where(negative, np.iinfo(np.int64).min, -np.iinfo(np.int64).max)
    for k in range(int(digits_len.max()) if n else 0):
        active = ok & (digits_len > k)
        pos = np.where(active, starts + signed + k, 0)
        d = _DIGITS[data[pos]] if len(data) else np.zeros(n, np.uint8)
        ok &= ~active | (d < radix)
        active &= ok
        mult_min = limit // radix + (limit % radix != 0)  # ceil toward zero, as Java's multmin
        overflow = active & ((acc < mult_min) | (acc * radix < limit + d.astype(np.int64)))
        ok &= ~overflow
        active &= ok
        acc = np.where(active, acc * radix - d.astype(np.int64), acc)
    out = np.where(negative, acc, -acc)
    return _from_np(out, ok, pa.int64())


def _java_fixed(value: np.ndarray, precision: int) -> pa.Array:
    """``String.format("%.<p>f", value)`` (HALF_UP) for finite doubles of moderate size."""
    scale = 10 ** precision
    scaled = np.floor(np.abs(value) * scale + 0.5).astype(np.int64)
    whole = pc.cast(pa.array(scaled // scale), pa.string())
    text = whole
    if precision:
        frac = pc.utf8_lpad(pc.cast(pa.array(scaled % scale), pa.string()), precision, "0")
        text = pc.binary_join_element_wise(whole, frac, ".")
    sign = pa.array(np.where(value < 0, "-", ""))
    return pc.binary_join_element_wise(sign, text, "")


def _bit_length_minus_one(x: np.ndarray) -> np.ndarray:
    v = x.astype(np.uint64)
    out = np.zeros(len(x), dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        big = v >= (np.uint64(1) << np.uint64(shift))
        out += np.where(big, shift, 0)
        v = np.where(big, v >> np.uint64(shift), v)
    return out


_BINARY_UNITS = np.array(["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
_DECIMAL_UNITS = np.array(["K", "M", "G", "T", "P", "E"])


def _human_readable(v, precision: int, system: str):
    """HumanReadableBytes.format for BINARY_BYTE, DECIMAL_BYTE and DECIMAL."""
    x, valid = _ints(v)
    if system == "binary":
        small = (x > -1024) & (x < 1024)
        minimum = x == np.iinfo(np.int64).min
        safe = np.where(minimum | small, 1024, x)
        unit = _bit_length_minus_one(np.abs(safe)) // 10
        value = np.where(minimum, -8.0, safe / np.left_shift(1, unit * 10).astype(np.float64))
        unit = np.where(minimum, 6, unit)
        labels, suffix = _BINARY_UNITS[unit], "B"
    else:
        small = (x > -1000) & (x < 1000)
        b = np.where(small, 1000, x)
        unit = np.zeros(len(x), dtype=np.int64)
        while True:
            more = (b <= -1_000_000) | (b >= 1_000_000)
            if not more.any():
                break
            b = np.where(more, np.sign(b) * (np.abs(b) // 1000), b)  # Java's / truncates toward zero
            unit += more
        value = b / 1000.0
        labels, suffix = _DECIMAL_UNITS[unit], ("B" if system == "decimal_byte" else "")
    big = pc.binary_join_element_wise(_java_fixed(value, precision), pa.array(labels + suffix), " ")
    plain = pc.cast(pa.array(x), pa.string())
    if suffix:
        plain = pc.binary_join_element_wise(plain, pa.scalar(suffix), " ")
    out = pc.if_else(pa.array(small), plain, big)
    if not suffix:
        out = pc.utf8_trim_whitespace(out)
    return pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))


def _string_format(*args):
    pieces, kinds = args[-2], args[-1]
    values = list(args[:-2])
    parts = []
    it = iter(values)
    for piece, kind in zip(pieces, kinds):
        if piece:
            parts.append(pa.scalar(piece))
        if kind is not None:
            # Java formats a null argument as "null"
            value = next(it)
            text = _cast(value, "VARCHAR") if isinstance(value, (pa.Array, pa.ChunkedArray)) else \
                _cast(pa.array([value.as_py()], value.type), "VARCHAR")[0]
            parts.append(pc.fill_null(text, "null") if not isinstance(text, pa.Scalar) else
                         pa.scalar("null" if not text.is_valid else text.as_py()))
    if not parts:
        return pa.scalar("")
    n = next((len(p) for p in parts if not isinstance(p, pa.Scalar)), None)
    if n is None:
        return pa.scalar("".join(p.as_py() for p in parts))
    return pc.binary_join_element_wise(*parts, "")


def _safe_divide(a, b):
    if pa.types.is_integer(a.type) and pa.types.is_integer(b.type):
        x, va = _ints(a)
        y, vb = _ints(b)
        zero = y == 0
        ys = np.where(zero, 1, y)
        q = np.abs(x) // np.abs(ys)
        q = np.where((x < 0) ^ (ys < 0), -q, q)
        q = np.where(zero, 0, q)
        return _from_np(q, va & vb & ~(zero & (x != 0)), pa.int64())
    x, va = _floats(a)
    y, vb = _floats(b)
    zero = (y == 0) | np.isnan(y)
    with np.errstate(all="ignore"):
        q = np.where(zero, 0.0, x / np.where(zero, 1.0, y))
    return _from_np(q, va & vb & ~(zero & (x != 0)), pa.float64())


def _reduce(*values, kind: str = "max", sql_type: str = "BIGINT"):
    fn = pc.max_element_wise if kind == "max" else pc.min_element_wise
    target = arrow_type(sql_type)
    vals = [_cast(v, sql_type) if v.type != target else v for v in values]
    return fn(*vals, skip_nulls=True)


def _greatest(*values_and_type):
    *values, sql_type = values_and_type
    return _reduce(*values, kind="max", sql_type=sql_type)


def _least(*values_and_type):
    *values, sql_type = values_and_type
    return _reduce(*values, kind="min", sql_type=sql_type)


def _bitwise(a, b, op: str):
    x, va = _ints(a)
    y, vb = _ints(b)
    if op == "and":
        out = x & y
    elif op == "or":
        out = x | y
    elif op == "xor":
        out = x ^ y
    elif op == "shl":
        out = np.left_shift(x, y & 63)
    else:
        out = np.right_shift(x, y & 63)
    return _from_np(out, va & vb, pa.int64())


def _bitwise_complement(a):
    x, valid = _ints(a)
    return _from_np(~x, valid, pa.int64())


def _double_to_long_bits(a):
    x, valid = _floats(a)
    return _from_np(x.astype(np.float64).view(np.int64), valid, pa.int64())


def _long_bits_to_double(a):
    x, valid = _ints(a)
    return _from_np(x.view(np.float64), valid, pa.float64())


# --- time functions --------------------------------------------------------------------------------


def _time_parse_iso(v, zone: str):
    if pa.types.is_dictionary(v.type):
        v = v.dictionary_decode()
    if zone == "UTC":
        return timeparse.parse_iso_millis(v, lenient=True)
    fixed = jodatime._fixed_offset(zone)
    if fixed is not None:
        return timeparse.parse_iso_millis(v, fixed, lenient=True)
    # strings without a zone of their own are wall-clock times in ``zone``: parse twice
    # with two default offsets; where the results differ, the string had no zone.
    a = timeparse.parse_iso_millis(v, 0, lenient=True)
    b = timeparse.parse_iso_millis(v, 3_600_000, lenient=True)
    x, valid = _ints(a)
    y, _ = _ints(b)
    local = x != y
    if local.any():
        x = np.where(local, jodatime.from_local(x, zone), x)
    return _from_np(x, valid, pa.int64())


def _time_parse_pattern(v, parser: "jodatime.JodaParser"):
    if pa.types.is_dictionary(v.type):
        v = v.dictionary_decode()
    return parser.parse(v)


def _time_format(t, formatter: "jodatime.JodaFormat"):
    x, valid = _ints(t)
    out = formatter.format(x)
    return pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string())) if not valid.all() else out


def _time_floor(t, period: str, origin: int | None, zone: str, ceil: bool):
    x, valid = _ints(t)
    out = (jodatime.ceil if ceil else jodatime.floor)(x, Period.parse(period), origin, zone)
    return _from_np(out, valid, pa.int64())


def _time_shift(t, step, period: Period, zone: str):
    x, va = _ints(t)
    s, vb = _ints(step)
    return _from_np(jodatime.shift(x, period, s, zone), va & vb, pa.int64())


def _time_extract(t, unit: str, zone: str):
    x, valid = _ints(t)
    return _from_np(jodatime.extract(x, unit, zone).astype(np.int64), valid, pa.int64())


def _add_millis(t, millis: int):
    return pc.add(t, pa.scalar(millis, pa.int64()))


# --- binding ------------------------------------------------------------------------------------------

_ARITH = {exp.Add: ("add", "+", _add), exp.Sub: ("subtract", "-", _subtract), exp.Mul: ("multiply", "*", _multiply),
          exp.Div: ("divide", "/", _divide), exp.Mod: ("mod", "%", _mod)}
_CMP = {exp.EQ: ("equal", "=="), exp.NEQ: ("not_equal", "!="), exp.GT: ("greater", ">"),
        exp.GTE: ("greater_equal", ">="), exp.LT: ("less", "<"), exp.LTE: ("less_equal", "<=")}
_TIME_UNITS = {"SECOND": "PT1S", "MINUTE": "PT1M", "HOUR": "PT1H", "DAY": "P1D", "WEEK": "P1W",
               "MONTH": "P1M", "QUARTER": "P3M", "YEAR": "P1Y"}
_DATE_TRUNC_UNITS = {"MILLISECOND": "PT0.001S", "MILLISECONDS": "PT0.001S", "SECOND": "PT1S", "MINUTE": "PT1M",
                     "HOUR": "PT1H", "DAY": "P1D", "WEEK": "P1W", "MONTH": "P1M", "QUARTER": "P3M", "YEAR": "P1Y",
                     "DECADE": "P10Y", "CENTURY": "P100Y", "MILLENNIUM": "P1000Y"}
_INTERVAL_MS = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000, "WEEK": 7 * 86_400_000}
_INTERVAL_MONTHS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}
_CAST_TYPES = {"BIGINT": "BIGINT", "INT": "BIGINT", "INTEGER": "BIGINT", "SMALLINT": "BIGINT", "TINYINT": "BIGINT",
               "DOUBLE": "DOUBLE", "DECIMAL": "DOUBLE", "FLOAT": "FLOAT", "REAL": "FLOAT", "VARCHAR": "VARCHAR",
               "CHAR": "VARCHAR", "TEXT": "VARCHAR", "NCHAR": "VARCHAR", "NVARCHAR": "VARCHAR",
               "TIMESTAMP": "TIMESTAMP", "BOOLEAN": "BOOLEAN", "DATE": "TIMESTAMP"}
_CALCITE_FAMILY = {"VARCHAR": "<CHARACTER>", "BIGINT": "<NUMERIC>", "DOUBLE": "<NUMERIC>", "FLOAT": "<NUMERIC>",
                   "TIMESTAMP": "<TIMESTAMP>", "BOOLEAN": "<BOOLEAN>"}
AGGREGATES = (exp.Count, exp.Sum, exp.Min, exp.Max, exp.Avg)

# Anonymous functions: name → (min args, max args)
_ARITY = {
    "LOOKUP": (2, 3),
    "TIME_PARSE": (1, 3), "TIME_FORMAT": (1, 3), "TIME_FLOOR": (2, 4), "TIME_CEIL": (2, 4), "TIME_SHIFT": (3, 4),
    "TIME_EXTRACT": (2, 3), "TIME_IN_INTERVAL": (2, 2), "MILLIS_TO_TIMESTAMP": (1, 1),
    "TIMESTAMP_TO_MILLIS": (1, 1), "STRLEN": (1, 1), "TEXTCAT": (2, 2), "CONTAINS_STRING": (2, 2),
    "ICONTAINS_STRING": (2, 2), "BTRIM": (1, 2), "LTRIM": (1, 2), "RTRIM": (1, 2),
    "BITWISE_AND": (2, 2), "BITWISE_OR": (2, 2), "BITWISE_XOR": (2, 2), "BITWISE_SHIFT_LEFT": (2, 2),
    "BITWISE_SHIFT_RIGHT": (2, 2), "BITWISE_COMPLEMENT": (1, 1), "BITWISE_CONVERT_DOUBLE_TO_LONG_BITS": (1, 1),
    "BITWISE_CONVERT_LONG_BITS_TO_DOUBLE": (1, 1), "STRPOS": (2, 2), "POSITION": (2, 3), "NVL": (2, 2),
    "LPAD": (2, 3), "RPAD": (2, 3), "LEFT": (2, 2), "RIGHT": (2, 2), "REPEAT": (2, 2), "REVERSE": (1, 1),
    "REPLACE": (3, 3), "REGEXP_EXTRACT": (2, 3), "REGEXP_LIKE": (2, 2), "REGEXP_REPLACE": (3, 3),
    "SAFE_DIVIDE": (2, 2), "TRUNCATE": (1, 2), "TRUNC": (1, 2), "ROUND": (1, 2), "MOD": (2, 2), "POWER": (2, 2),
    "SQRT": (1, 1), "EXP": (1, 1), "LN": (1, 1), "LOG10": (1, 1), "ABS": (1, 1), "CEIL": (1, 1),
    "FLOOR": (1, 1), "UPPER": (1, 1), "LOWER": (1, 1), "SUBSTRING": (2, 3), "SUBSTR": (2, 3),
    "CHAR_LENGTH": (1, 1), "CHARACTER_LENGTH": (1, 1), "LENGTH": (1, 1), "CONCAT": (1, 1000),
    "GREATEST": (0, 1000), "LEAST": (0, 1000), "COALESCE": (1, 1000), "NULLIF": (2, 2),
    "SIN": (1, 1), "COS": (1, 1), "TAN": (1, 1), "COT": (1, 1), "ASIN": (1, 1), "ACOS": (1, 1), "ATAN": (1, 1),
    "ATAN2": (2, 2), "DEGREES": (1, 1), "RADIANS": (1, 1), "PI": (0, 0), "DATE_TRUNC": (2, 2),
    "DIV": (2, 2), "PARSE_LONG": (1, 2), "STRING_FORMAT": (1, 1000), "HUMAN_READABLE_BINARY_BYTE_FORMAT": (1, 2),
    "HUMAN_READABLE_DECIMAL_BYTE_FORMAT": (1, 2), "HUMAN_READABLE_DECIMAL_FORMAT": (1, 2),
}


def _arg_count_error(name: str, lo: int, hi: int, got: int) -> InvalidInput:
    expect = lo if got < lo else hi
    return InvalidInput(f"Invalid number of arguments to function '{name}'. Was expecting {expect} arguments")


class Binder:
    """Binds sqlglot expressions against a scope of named, typed expressions."""

    def __init__(self, scope: dict[str, Expr], parameters: list | None = None, context: dict | None = None):
        self.scope = scope
        self.parameters = parameters or []
        self.context = context or {}
        self._param_index = 0
        tz = self.context.get("sqlTimeZone")
        try:
            self.tz = jodatime.zone_id(tz) if tz not in (None, "") else "UTC"
        except ValueError:
            raise InvalidInput(f"Invalid value for sqlTimeZone: The datetime zone id '{tz}' is not recognised") \
                from None

    def bind(self, node: exp.Expression) -> Expr:
        from msqcore.planner import json_functions  # builds on this module
        bound = json_functions.bind(self, node)
        if bound is not None:
            return bound
        method = getattr(self, f"_bind_{type(node).__name__.lower()}", None)
        if method is not None:
            return method(node)
        for cls, (fname, sym, fn) in _ARITH.items():
            if type(node) is cls:
                return self._arith(node, fname, sym, fn)
        for cls, (fname, sym) in _CMP.items():
            if type(node) is cls:
                return self._compare(node, fname, sym)
        if isinstance(node, AGGREGATES):
            raise InvalidInput(f"Aggregate [{node.sql('druid')}] is not allowed here")
        name = type(node).__name__.upper()
        if isinstance(node, exp.Func) and name in _GENERIC:
            args = [node.this] if node.this is not None else []
            args += [v for k, v in node.args.items() if k != "this" and isinstance(v, exp.Expression)]
            return self._function(_GENERIC[name], args, node)
        raise InvalidInput(f"Unsupported expression [{node.sql('druid')}]")

    # --- leaves -----------------------------------------------------------------------------

    def _bind_column(self, node: exp.Column) -> Expr:
        name = node.name
        if node.table and f"{node.table}.{name}" in self.scope:
            return self.scope[f"{node.table}.{name}"]
        tables = getattr(self.scope, "tables", None)  # a join's table aliases (Calcite's wording below)
        if node.table and tables is not None:
            if node.table not in tables:
                raise InvalidInput(f"Table '{node.table}' not found")
            raise InvalidInput(f"Column '{name}' not found in table '{node.table}'")
        if name in self.scope:
            if isinstance(self.scope[name], Ambiguous):
                raise InvalidInput(f"Column '{name}' is ambiguous")
            return self.scope[name]
        if not node.table and not (node.this.args.get("quoted")) and name.upper() in ("PI", "CURRENT_TIMESTAMP",
                                                                                     "CURRENT_DATE",
                                                                                     "LOCALTIMESTAMP"):
            upper = name.upper()
            if upper == "PI":
                return Call("pi", [], "DOUBLE", _pi, "pi()")
            if upper == "CURRENT_DATE":
                return self._bind_currentdate(node)
            return self._bind_currenttimestamp(node)
        raise InvalidInput(f"Column '{name}' not found in any table")

    def _bind_identifier(self, node: exp.Identifier) -> Expr:
        return self._bind_column(exp.Column(this=node))

    def _bind_literal(self, node: exp.Literal) -> Expr:
        if node.is_string:
            return Literal(node.this, "VARCHAR")
        text = node.this
        if any(c in text for c in ".eE"):
            return Literal(float(text), "DOUBLE")
        return Literal(int(text), "BIGINT")

    def _bind_null(self, node) -> Expr:
        return Literal(None, "VARCHAR")

    def _bind_boolean(self, node: exp.Boolean) -> Expr:
        return Literal(bool(node.this), "BOOLEAN")

    def _bind_placeholder(self, node) -> Expr:
        # numbered in text order by the parser (planner/statement.py); else in binding order
        index = node.meta.get("parameter")
        if index is None:
            index = self._param_index
            self._param_index += 1
        if index >= len(self.parameters):
            raise InvalidInput(f"No value bound for parameter (position [{index + 1}])")
        param = self.parameters[index]
        if not isinstance(param, dict) or "value" not in param:
            raise InvalidInput(f"Parameter at position [{index + 1}] must be an object with 'type' and 'value'")
        sql_type = str(param.get("type", "VARCHAR")).upper()
        value = param["value"]
        if sql_type in ("INTEGER", "SMALLINT", "TINYINT", "BIGINT"):
            return Literal(None if value is None else int(value), "BIGINT")
        if sql_type in ("DOUBLE", "FLOAT", "REAL", "DECIMAL"):
            return Literal(None if value is None else float(value), "DOUBLE")
        if sql_type == "BOOLEAN":
            return Literal(bool(value), "BOOLEAN")
        if sql_type == "TIMESTAMP":
            return self._timestamp_literal(str(value))
        return Literal(None if value is None else str(value), "VARCHAR")

    def _bind_paren(self, node) -> Expr:
        return self.bind(node.this)

    def _bind_alias(self, node) -> Expr:
        return self.bind(node.this)

    def _timestamp_literal(self, text: str, zone: str | None = None) -> Literal:
        value = _time_parse_iso(pa.array([text.strip()], pa.string()), zone or self.tz)[0].as_py()
        if value is None:
            raise InvalidInput(f"Illegal TIMESTAMP constant: TIMESTAMP '{text}'")
        return Literal(value, "TIMESTAMP")

    # --- operators --------------------------------------------------------------------------

    def _numeric_operand(self, e: Expr) -> Expr:
        if e.sql_type == "VARCHAR":
            return self._cast_expr(e, "DOUBLE")
        if e.sql_type == "BOOLEAN":
            return self._cast_expr(e, "BIGINT")
        return e

    def _arith(self, node, fname, sym, fn) -> Expr:
        left, right = node.this, node.expression
        for a, b in ((left, right), (right, left)):
            if isinstance(b, exp.Interval) and fname in ("add", "subtract") and not (fname == "subtract" and b is left):
                return self._interval_arith(a, b, -1 if fname == "subtract" else 1)
        a = self.bind(left)
        b = self.bind(right)
        if _is_null(a) and not _is_null(b):
            a = Literal(None, b.sql_type)
        if _is_null(b) and not _is_null(a):
            b = Literal(None, a.sql_type)
        a = self._numeric_operand(a)
        b = self._numeric_operand(b)
        if "TIMESTAMP" in (a.sql_type, b.sql_type) and fname in ("add", "subtract"):
            out_type = "BIGINT" if a.sql_type == b.sql_type else "TIMESTAMP"
        else:
            out_type = _common_numeric(a.sql_type, b.sql_type)
        if fname == "divide" and out_type == "DOUBLE":
            fn = _divide
        return Call(fname, [a, b], out_type, fn, f"({{0}} {sym} {{1}})")

    def _interval_arith(self, t_node, interval: exp.Interval, sign: int) -> Expr:
        t = self._time_arg(self.bind(t_node), "DATETIME_PLUS")
        unit = interval.args.get("unit")
        unit = unit.name.upper() if unit is not None else "DAY"
        unit = unit.rstrip("S") if unit.endswith("S") and unit[:-1] in {**_INTERVAL_MS, **_INTERVAL_MONTHS} else unit
        value = interval.this
        v = self.bind(value)
        if not isinstance(v, Literal) or v.value is None:
            raise InvalidInput(f"Unsupported INTERVAL [{interval.sql('druid')}]")
        try:
            count = int(str(v.value).strip())
        except ValueError:
            raise InvalidInput(f"Illegal interval literal format '{v.value}' for INTERVAL {unit}") from None
        if unit in _INTERVAL_MS:
            millis = count * _INTERVAL_MS[unit]
            return Call("add" if sign > 0 else "subtract", [t], "TIMESTAMP", _add_millis,
                        f"({{0}} {'+' if sign > 0 else '-'} {millis})", (millis * sign,))
        if unit in _INTERVAL_MONTHS:
            months = count * _INTERVAL_MONTHS[unit]
            period = Period(months=months)
            return Call("timestamp_shift", [t, Literal(sign, "BIGINT")], "TIMESTAMP", _time_shift,
                        f"timestamp_shift({{0}},concat('P', {months}, 'M'),{sign},{_quote_str(self.tz)})",
                        (period, self.tz))
        raise InvalidInput(f"Unsupported INTERVAL unit [{unit}]")

    def _bind_neg(self, node) -> Expr:
        a = self._numeric_operand(self.bind(node.this))
        if isinstance(a, Literal) and a.value is not None:
            return Literal(-a.value, a.sql_type)
        return Call("negate", [a], a.sql_type, _negate, "-{0}")

    def _coerce_pair(self, a: Expr, b: Expr) -> tuple[Expr, Expr]:
        if a.sql_type == b.sql_type:
            return a, b
        if _is_null(a):
            return Literal(None, b.sql_type), b
        if _is_null(b):
            return a, Literal(None, a.sql_type)
        for x, y, swap in ((a, b, False), (b, a, True)):
            if x.sql_type == "TIMESTAMP" and y.sql_type == "VARCHAR":
                y = self._timestamp_literal(y.value) if isinstance(y, Literal) else self._to_timestamp(y)
                return (y, x) if swap else (x, y)
            if x.sql_type in ("BIGINT", "DOUBLE", "FLOAT", "TIMESTAMP") and y.sql_type == "VARCHAR":
                target = "DOUBLE" if x.sql_type in ("DOUBLE", "FLOAT") or not isinstance(y, Literal) else \
                    ("BIGINT" if re.match(_LONG_RE, str(y.value).strip() or "x") else "DOUBLE")
                if not isinstance(y, Literal) and x.sql_type == "BIGINT":
                    target = "BIGINT"
                y = self._cast_expr(y, target)
                return (y, x) if swap else (x, y)
        if a.sql_type == "BOOLEAN" or b.sql_type == "BOOLEAN":
            return self._cast_expr(a, "BIGINT"), self._cast_expr(b, "BIGINT")
        return a, b

    def _compare(self, node, fname, sym) -> Expr:
        a, b = self.bind(node.this), self.bind(node.expression)
        from msqcore.planner import arrays  # arrays builds on this module
        if arrays.is_array(a.sql_type) or arrays.is_array(b.sql_type):
            return arrays.bind_compare(self, node, fname, sym, a, b)
        a, b = self._coerce_pair(a, b)
        return Call(fname, [a, b], "BOOLEAN", _compare, f"({{0}} {sym} {{1}})", (fname,))

    def _flatten(self, node, cls) -> list:
        if isinstance(node, cls):
            return self._flatten(node.this, cls) + self._flatten(node.expression, cls)
        return [node]

    def _bind_and(self, node) -> Expr:
        args = [self._boolean(n) for n in self._flatten(node, exp.And)]
        return Call("and", args, "BOOLEAN", _and, "(" + " && ".join("{%d}" % i for i in range(len(args))) + ")")

    def _bind_or(self, node) -> Expr:
        args = [self._boolean(n) for n in self._flatten(node, exp.Or)]
        return Call("or", args, "BOOLEAN", _or, "(" + " || ".join("{%d}" % i for i in range(len(args))) + ")")

    def _bind_not(self, node) -> Expr:
        inner = node.this
        while isinstance(inner, exp.Paren):
            inner = inner.this
        if isinstance(inner, exp.Is):
            return self._is(inner, negate=True)
        return Call("not", [self._boolean(inner)], "BOOLEAN", _not, "!{0}")

    def _boolean(self, node) -> Expr:
        e = self.bind(node)
        if e.sql_type == "BOOLEAN":
            return e
        return Call("istrue", [e], "BOOLEAN", _truthy, "{0}")

    def _bind_is(self, node: exp.Is) -> Expr:
        return self._is(node, negate=False)

    def _is(self, node: exp.Is, negate: bool) -> Expr:
        target = node.expression
        if isinstance(target, exp.Null):
            a = self.bind(node.this)
            whole = a.sql_type.endswith(" ARRAY")  # an ARRAY is NULL itself, not by its elements
            if negate:
                return Call("notnull", [a], "BOOLEAN", pc.is_valid if whole else _not_null_fn, "notnull({0})")
            return Call("isnull", [a], "BOOLEAN", pc.is_null if whole else _is_null_fn, "isnull({0})")
        if isinstance(target, exp.Boolean):
            want = bool(target.this)
            b = self._boolean(node.this)
            name = ("not" if negate else "is") + ("true" if want else "false")
            return Call(name, [b], "BOOLEAN", _is_bool, name + "({0})", (want, negate))
        raise InvalidInput(f"Unsupported expression [{node.sql('druid')}]")

    def _bind_in(self, node: exp.In) -> Expr:
        a = self.bind(node.this)
        if node.args.get("query") is not None:
            raise InvalidInput("IN with a subquery is not supported yet")
        values = [self.bind(v) for v in node.expressions]
        if not all(isinstance(v, Literal) for v in values):
            parts = [exp.EQ(this=node.this, expression=v) for v in node.expressions]
            out = parts[0]
            for p in parts[1:]:
                out = exp.Or(this=out, expression=p)
            return self.bind(out)
        target = a.sql_type if a.sql_type != "BOOLEAN" else "BIGINT"
        coerced = []
        for v in values:
            if v.value is None:
                coerced.append(Literal(None, target))
            elif target == "TIMESTAMP" and v.sql_type == "VARCHAR":
                coerced.append(self._timestamp_literal(v.value))
            else:
                coerced.append(self._cast_expr(v, target) if v.sql_type != target else v)
        has_null = any(v.value is None for v in coerced)
        arr = pa.array([v.value for v in coerced if v.value is not None], arrow_type(target))
        native = "scalar_in_array({0},array(" + ",".join(v.native() for v in coerced) + "))"
        return Call("in", [a], "BOOLEAN", _is_in, native, (arr, has_null))

    def _bind_between(self, node: exp.Between) -> Expr:
        lo, hi = node.args["low"], node.args["high"]
        if node.args.get("symmetric"):
            bl, bh = self.bind(lo), self.bind(hi)
            if isinstance(bl, Literal) and isinstance(bh, Literal) and None not in (bl.value, bh.value) \
                    and bl.value > bh.value:
                lo, hi = hi, lo
        return self.bind(exp.And(this=exp.GTE(this=node.this, expression=lo),
                                 expression=exp.LTE(this=node.this, expression=hi)))

    def _bind_like(self, node: exp.Like, escape: exp.Expression | None = None, negate: bool = False) -> Expr:
        a = self.bind(node.this)
        pattern = self.bind(node.expression)
        if not isinstance(pattern, Literal) or pattern.sql_type != "VARCHAR":
            raise InvalidInput("LIKE pattern must be a string literal")
        esc = None
        if escape is not None:
            e = self.bind(escape)
            if not isinstance(e, Literal) or e.sql_type != "VARCHAR":
                raise InvalidInput("LIKE escape must be a string literal")
            esc = e.value
            if esc is not None and len(esc) != 1:
                raise InvalidInput(f"Invalid escape character '{esc}'")
        negate = negate or bool(node.args.get("negate"))
        if a.sql_type != "VARCHAR":
            a = self._cast_expr(a, "VARCHAR")
        if pattern.value is None:
            return Literal(None, "BOOLEAN")
        regex = _like_pattern(pattern.value, esc)
        native = "like({0}," + _quote_str(pattern.value) + (("," + _quote_str(esc)) if esc else "") + ")"
        call = Call("like", [a], "BOOLEAN", _like, native, (regex, False))
        if negate:
            return Call("not", [call], "BOOLEAN", _not, "!{0}")
        return call

    def _bind_escape(self, node: exp.Escape) -> Expr:
        like = node.this
        if not isinstance(like, exp.Like):
            raise InvalidInput(f"Unsupported expression [{node.sql('druid')}]")
        return self._bind_like(like, node.expression)

    def _bind_ilike(self, node) -> Expr:
        raise InvalidInput(f"No match found for function signature ILIKE(<CHARACTER>, <CHARACTER>)")

    def _bind_nullsafeeq(self, node) -> Expr:
        a, b = self._coerce_pair(self.bind(node.this), self.bind(node.expression))
        eq = Call("equal", [a, b], "BOOLEAN", _compare, "({0} == {1})", ("equal",))
        both = Call("and", [Call("isnull", [a], "BOOLEAN", _is_null_fn, "isnull({0})"),
                            Call("isnull", [b], "BOOLEAN", _is_null_fn, "isnull({0})")], "BOOLEAN", _and,
                    "({0} && {1})")
        return Call("or", [Call("istrue", [eq], "BOOLEAN", _is_bool, "istrue({0})", (True, False)), both],
                    "BOOLEAN", _or, "({0} || {1})")

    def _bind_nullsafeneq(self, node) -> Expr:
        return Call("not", [self._bind_nullsafeeq(node)], "BOOLEAN", _not, "!{0}")

    # --- CAST -------------------------------------------------------------------------------

    def _bind_cast(self, node: exp.Cast) -> Expr:
        to = node.to.this.name if hasattr(node.to.this, "name") else str(node.to.this)
        to = to.upper()
        target = _CAST_TYPES.get(to)
        if target is None:
            raise InvalidInput(f"Cannot cast to type [{to}]")
        inner = node.this
        if target == "TIMESTAMP" and isinstance(inner, exp.Literal) and inner.is_string:
            lit = self._timestamp_literal(inner.this)
            if to == "DATE":
                lit = Literal(int(jodatime.floor(np.array([lit.value]), Period(days=1), None, self.tz)[0]),
                              "TIMESTAMP")
            return lit
        e = self.bind(inner)
        if target == "TIMESTAMP":
            if e.sql_type == "VARCHAR":
                e = self._to_timestamp(e)
            elif e.sql_type in ("DOUBLE", "FLOAT"):
                e = self._cast_expr(e, "BIGINT")
            if e.sql_type != "TIMESTAMP":
                e = Literal(e.value, "TIMESTAMP") if isinstance(e, Literal) else \
                    Call("cast", [e], "TIMESTAMP", _identity, "{0}")
            if to == "DATE":
                return self._floor_call(e, "P1D", None, self.tz, "P1D")
            return e
        if e.sql_type == "TIMESTAMP" and target == "VARCHAR":
            fmt = "yyyy-MM-dd HH:mm:ss"
            if _is_date_floor(e):
                fmt = "yyyy-MM-dd"
            return Call("timestamp_format", [e], "VARCHAR", _time_format,
                        f"timestamp_format({{0}},{_quote_str(fmt)},{_quote_str(self.tz)})",
                        (jodatime.JodaFormat(fmt, self.tz),))
        return self._cast_expr(e, target)

    def _to_timestamp(self, e: Expr) -> Expr:
        if isinstance(e, Literal):
            return self._timestamp_literal(e.value) if e.value is not None else Literal(None, "TIMESTAMP")
        return Call("timestamp_parse", [e], "TIMESTAMP", _time_parse_iso,
                    f"timestamp_parse({{0}},null,{_quote_str(self.tz)})", (self.tz,))

    def _cast_expr(self, e: Expr, target: str) -> Expr:
        if e.sql_type == target:
            return e
        if isinstance(e, Literal):
            if e.value is None:
                return Literal(None, target)
            if target == "TIMESTAMP" and e.sql_type == "VARCHAR":
                return self._timestamp_literal(e.value)
            out = _cast(pa.array([e.value], arrow_type(e.sql_type)), target)[0].as_py()
            return Literal(out, target)
        if target == "VARCHAR" and e.sql_type == "TIMESTAMP":
            return self._bind_cast_time_to_string(e)
        if target == "TIMESTAMP" and e.sql_type == "VARCHAR":
            return self._to_timestamp(e)
        if e.sql_type not in _EXPR_TYPE or target not in _EXPR_TYPE:
            raise InvalidInput(f"Cannot apply CAST to a value of type [{e.sql_type}] to get [{target}]")
        src_native, dst_native = _EXPR_TYPE[e.sql_type], _EXPR_TYPE[target]
        native = "{0}" if src_native == dst_native else f"CAST({{0}}, '{dst_native}')"
        return Call("cast", [e], target, _cast_fn, native, (target,))

    def _bind_cast_time_to_string(self, e: Expr) -> Expr:
        return Call("timestamp_format", [e], "VARCHAR", _time_format,
                    f"timestamp_format({{0}},'yyyy-MM-dd HH:mm:ss',{_quote_str(self.tz)})",
                    (jodatime.JodaFormat("yyyy-MM-dd HH:mm:ss", self.tz),))

    # --- conditionals -----------------------------------------------------------------------

    def _unify(self, exprs: list[Expr], what: str = "CASE or COALESCE") -> str:
        types = {e.sql_type for e in exprs if not _is_null(e)}
        if not types:
            return "VARCHAR"
        if len(types) == 1:
            return types.pop()
        if types <= {"BIGINT", "DOUBLE", "FLOAT", "BOOLEAN"}:
            return "DOUBLE" if types & {"DOUBLE", "FLOAT"} else "BIGINT"
        if types <= {"TIMESTAMP", "BIGINT"}:
            return "TIMESTAMP"
        raise InvalidInput(f"Illegal mixing of types in {what} statement")

    def _bind_coalesce(self, node) -> Expr:
        args = [self.bind(node.this)] + [self.bind(e) for e in node.expressions]
        out_type = self._unify(args)
        args = [a if a.sql_type == out_type else self._cast_expr(a, out_type) for a in args]
        if len(args) == 1:
            return args[0]
        name = "nvl" if len(args) == 2 else "coalesce"
        return Call(name, args, out_type, _coalesce, name + "(" + _fmt_args(len(args)) + ")")

    def _bind_case(self, node: exp.Case) -> Expr:
        conds, values = [], []
        for branch in node.args["ifs"]:
            cond = branch.this
            if node.this is not None:
                cond = exp.EQ(this=node.this, expression=cond)
            conds.append(self._boolean(cond))
            values.append(self.bind(branch.args["true"]))
        default = self.bind(node.args["default"]) if node.args.get("default") is not None else Literal(None, "VARCHAR")
        values.append(default)
        out_type = self._unify(values)
        values = [v if v.sql_type == out_type else self._cast_expr(v, out_type) for v in values]
        n = len(conds)
        parts = ",".join("{%d},{%d}" % (i, n + i) for i in range(n))
        return Call("case", conds + values, out_type, _case, "case_searched(" + parts + ",{%d})" % (2 * n), (n,))

    def _bind_if(self, node) -> Expr:
        return self._bind_case(exp.Case(ifs=[exp.If(this=node.this, true=node.args.get("true"))],
                                        default=node.args.get("false")))

    def _bind_nullif(self, node) -> Expr:
        a = self.bind(node.this)
        b = self.bind(node.expression)
        a2, b2 = self._coerce_pair(a, b)
        return Call("nullif", [a2, b2], a2.sql_type, _nullif, "case_searched(({0} == {1}),null,{0})")

    # --- special forms sqlglot parses into their own nodes -----------------------------------

    def _bind_currenttimestamp(self, node) -> Expr:
        return Literal(int(self.context.get("__startTimeMillis", 0)), "TIMESTAMP")

    def _bind_currentdate(self, node) -> Expr:
        start = int(self.context.get("__startTimeMillis", 0))
        return Literal(int(jodatime.floor(np.array([start]), Period(days=1), None, self.tz)[0]), "TIMESTAMP")

    def _bind_floor(self, node: exp.Floor) -> Expr:
        unit = node.args.get("to")
        a = self.bind(node.this)
        if unit is None:
            if node.args.get("decimals") is not None:
                raise _arg_count_error("FLOOR", 1, 1, 2)
            a = self._numeric_operand(a)
            return Call("floor", [a], a.sql_type, _floor_num, "floor({0})")
        period = _TIME_UNITS.get(unit.name.upper())
        if period is None:
            raise InvalidInput(f"Unsupported time unit [{unit.name}] in FLOOR")
        a = self._time_arg(a, "FLOOR")
        return self._floor_call(a, period, None, self.tz, period)

    def _bind_ceil(self, node: exp.Ceil) -> Expr:
        unit = node.args.get("to")
        a = self.bind(node.this)
        if unit is None:
            if node.args.get("decimals") is not None:
                raise _arg_count_error("CEIL", 1, 1, 2)
            a = self._numeric_operand(a)
            return Call("ceil", [a], a.sql_type, _ceil_num, "ceil({0})")
        period = _TIME_UNITS.get(unit.name.upper())
        if period is None:
            raise InvalidInput(f"Unsupported time unit [{unit.name}] in CEIL")
        a = self._time_arg(a, "CEIL")
        return self._floor_call(a, period, None, self.tz, period, ceil=True)

    def _floor_call(self, t: Expr, period_text: str, origin: Literal | None, zone: str, period_native: str,
                    ceil: bool = False, origin_native: str = "null") -> Expr:
        try:
            period = Period.parse(period_text)
            if period.is_zero:
                raise ValueError("zero period is not acceptable in PeriodGranularity!")
            jodatime.floor(np.zeros(1, dtype=np.int64), period, None, zone)
        except ValueError as e:
            raise InvalidInput(str(e)) from None
        name = "timestamp_ceil" if ceil else "timestamp_floor"
        origin_ms = None if origin is None or origin.value is None else int(origin.value)
        if origin_ms is not None:
            origin_native = str(origin_ms)
        native = f"{name}({{0}},{_quote_str(period_native)},{origin_native},{_quote_str(zone)})"
        # op "floor" (extra[0] = a standard period) marks a plain UTC granularity floor: the
        # planner reads it as the rollup queryGranularity
        standard = not ceil and origin_ms is None and zone == "UTC" and granularity(str(period)) is not None
        return Call("floor" if standard else name, [t], "TIMESTAMP", _time_floor, native,
                    (str(period), origin_ms, zone, ceil))

    def _bind_extract(self, node: exp.Extract) -> Expr:
        unit = node.this.name.upper()
        if unit not in jodatime.EXTRACT_UNITS:
            raise InvalidInput(f"Unsupported time unit [{unit}] in EXTRACT")
        t = self._time_arg(self.bind(node.expression), "EXTRACT")
        return Call("timestamp_extract", [t], "BIGINT", _time_extract,
                    f"timestamp_extract({{0}},{_quote_str(unit)},{_quote_str(self.tz)})", (unit, self.tz))

    def _bind_datetrunc(self, node) -> Expr:
        unit = self.bind(node.args["unit"])
        if not isinstance(unit, Literal) or unit.sql_type != "VARCHAR":
            raise InvalidInput("DATE_TRUNC unit must be a string literal")
        period = _DATE_TRUNC_UNITS.get(str(unit.value).upper())
        if period is None:
            raise InvalidInput(f"Operation [DATE_TRUNC] cannot truncate to [{unit.value}]")
        t = self._time_arg(self.bind(node.this), "DATE_TRUNC")
        return self._floor_call(t, period, None, self.tz, period)

    def _bind_trim(self, node: exp.Trim) -> Expr:
        position = (node.args.get("position") or "BOTH").upper()
        chars = self.bind(node.expression) if node.args.get("expression") is not None else Literal(" ", "VARCHAR")
        where = {"BOTH": "both", "LEADING": "leading", "TRAILING": "trailing"}[position]
        return self._trim(self.bind(node.this), chars, where)

    def _trim(self, a: Expr, chars: Expr, where: str) -> Expr:
        if not isinstance(chars, Literal) or chars.sql_type != "VARCHAR":
            raise InvalidInput("TRIM characters must be a string literal")
        a = self._string_arg(a)
        name = {"both": "trim", "leading": "ltrim", "trailing": "rtrim"}[where]
        return Call(name, [a], "VARCHAR", _trim, f"{name}({{0}},{_quote_str(chars.value)})", (chars.value, where))

    def _bind_substring(self, node) -> Expr:
        args = [node.this, node.args.get("start")]
        if node.args.get("length") is not None:
            args.append(node.args["length"])
        if args[1] is None:
            raise _arg_count_error("SUBSTRING", 2, 3, 1)
        return self._function("SUBSTRING", args, node)

    def _bind_strposition(self, node) -> Expr:
        args = [node.this, node.args.get("substr")]
        if node.args.get("position") is not None:
            return self._function("POSITION", [node.args["substr"], node.this, node.args["position"]], node)
        return self._function("STRPOS", args, node)

    def _bind_pad(self, node) -> Expr:
        args = [node.this, node.expression] + ([node.args["fill_pattern"]] if node.args.get("fill_pattern") else [])
        return self._function("LPAD" if node.args.get("is_left") else "RPAD", args, node)

    def _bind_log(self, node) -> Expr:
        if node.args.get("expression") is None:
            raise InvalidInput(f"No match found for function signature LOG({self._sig([self.bind(node.this)])})")
        base = self.bind(node.this)
        if isinstance(base, Literal) and base.value == 10:
            return self._function("LOG10", [node.expression], node)
        raise InvalidInput("No match found for function signature LOG(<NUMERIC>, <NUMERIC>)")

    def _bind_dpipe(self, node) -> Expr:
        return self._function("CONCAT", self._flatten_concat(node), node)

    def _flatten_concat(self, node) -> list:
        if isinstance(node, exp.DPipe):
            return self._flatten_concat(node.this) + self._flatten_concat(node.expression)
        return [node]

    def _bind_concat(self, node) -> Expr:
        return self._function("CONCAT", node.expressions, node)

    def _bind_greatest(self, node) -> Expr:
        return self._function("GREATEST", [node.this] + list(node.expressions), node)

    def _bind_least(self, node) -> Expr:
        return self._function("LEAST", [node.this] + list(node.expressions), node)

    def _bind_round(self, node) -> Expr:
        if node.args.get("truncate") is not None:
            raise _arg_count_error("ROUND", 1, 2, 3)
        return self._function("ROUND", [node.this] + ([node.args["decimals"]] if node.args.get("decimals") else []),
                              node)

    def _bind_trunc(self, node) -> Expr:
        return self._function("TRUNCATE", [node.this] + ([node.args["decimals"]] if node.args.get("decimals")
                                                          else []), node)

    def _bind_regexplike(self, node) -> Expr:
        if node.args.get("flag") is not None:
            raise _arg_count_error("REGEXP_LIKE", 2, 2, 3)
        return self._function("REGEXP_LIKE", [node.this, node.expression], node)

    def _bind_regexpextract(self, node) -> Expr:
        args = [node.this, node.expression] + ([node.args["position"]] if node.args.get("position") else [])
        if any(node.args.get(k) is not None for k in ("occurrence", "parameters", "group")):
            raise _arg_count_error("REGEXP_EXTRACT", 2, 3, 4)
        return self._function("REGEXP_EXTRACT", args, node)

    def _bind_regexpreplace(self, node) -> Expr:
        return self._function("REGEXP_REPLACE", [node.this, node.expression, node.args.get("replacement")], node)

    # arrays (planner/arrays.py)

    def _bind_array(self, node) -> Expr:
        return self._function("ARRAY", node.expressions, node)

    def _bind_arraysize(self, node) -> Expr:
        return self._function("ARRAY_LENGTH", [node.this, node.args.get("expression")], node)

    def _bind_arraycontains(self, node) -> Expr:
        return self._function("ARRAY_CONTAINS", [node.this, node.expression], node)

    def _bind_arrayoverlaps(self, node) -> Expr:
        return self._function("ARRAY_OVERLAP", [node.this, node.expression], node)

    def _bind_arrayappend(self, node) -> Expr:
        return self._function("ARRAY_APPEND", [node.this, node.expression], node)

    def _bind_arrayprepend(self, node) -> Expr:
        return self._function("ARRAY_PREPEND", [node.this, node.expression], node)

    def _bind_arrayconcat(self, node) -> Expr:
        return self._function("ARRAY_CONCAT", [node.this, *node.expressions], node)

    def _bind_arrayslice(self, node) -> Expr:
        return self._function("ARRAY_SLICE", [node.this, node.args.get("start"), node.args.get("end")], node)

    def _bind_arraytostring(self, node) -> Expr:
        return self._function("ARRAY_TO_STRING", [node.this, node.expression], node)

    def _bind_stringtoarray(self, node) -> Expr:
        return self._function("STRING_TO_ARRAY", [node.this, node.expression], node)

    def _bind_anonymous(self, node: exp.Anonymous) -> Expr:
        return self._function(node.name.upper(), node.expressions, node)

    # --- named functions ------------------------------------------------------------------------

    def _sig(self, args: list[Expr]) -> str:
        return ", ".join("<NULL>" if _is_null(a) else _CALCITE_FAMILY.get(a.sql_type, f"<{a.sql_type}>")
                         for a in args)

    def _string_arg(self, e: Expr) -> Expr:
        if e.sql_type == "VARCHAR":
            return e
        return self._cast_expr(e, "VARCHAR")

    def _literal_arg(self, e: Expr, name: str, what: str, kind: str):
        if not isinstance(e, Literal):
            raise InvalidInput(f"Function [{name}] needs a literal {what} argument")
        if e.value is None:
            return None
        if kind == "int":
            if e.sql_type not in ("BIGINT", "DOUBLE", "FLOAT"):
                raise InvalidInput(f"Function [{name}] needs an integer {what} argument")
            return int(e.value)
        if e.sql_type != "VARCHAR":
            raise InvalidInput(f"Function [{name}] needs a string {what} argument")
        return e.value

    def _time_arg(self, e: Expr, name: str) -> Expr:
        if e.sql_type == "TIMESTAMP":
            return e
        if _is_null(e):
            return Literal(None, "TIMESTAMP")
        if e.sql_type == "VARCHAR":
            return self._to_timestamp(e)
        raise InvalidInput(f"Cannot apply '{name}' to arguments of type '{name}(<{e.sql_type}>)'")

    def _zone_arg(self, e: Expr | None, name: str) -> str:
        if e is None:
            return self.tz
        value = self._literal_arg(e, name, "time zone", "str")
        if value is None:
            return self.tz
        try:
            return jodatime.zone_id(value)
        except ValueError as err:
            raise InvalidInput(str(err)) from None

    def _function(self, name: str, arg_nodes, node) -> Expr:
        arg_nodes = [a for a in arg_nodes if a is not None]
        if name in ("NVL", "IFNULL"):
            if len(arg_nodes) != 2:
                raise _arg_count_error(name, 2, 2, len(arg_nodes))
            return self._bind_coalesce(exp.Coalesce(this=arg_nodes[0], expressions=list(arg_nodes[1:])))
        args = [self.bind(a) for a in arg_nodes]
        handler = _HANDLERS.get(name)
        if handler is None and name in _array_handlers():
            bind, lo, hi = _array_handlers()[name]
            if not lo <= len(args) <= hi:
                raise _arg_count_error(name, lo, hi, len(args))
            return bind(self, name, args)
        if handler is None:
            raise InvalidInput(f"No match found for function signature {name}({self._sig(args)})")
        lo, hi = _ARITY.get(name, (0, 1000))
        if not lo <= len(args) <= hi:
            raise _arg_count_error(name, lo, hi, len(args))
        return getattr(self, handler)(name, args)

    # lookups

    def _f_lookup(self, name, args):
        """LOOKUP(expr, 'name'[, replaceMissingValueWith]): the map is read when the query is
        planned (``Binder.lookups``, the cluster's lookup store) and travels with the plan."""
        if not (isinstance(args[1], Literal) and args[1].sql_type == "VARCHAR"):
            raise InvalidInput("The second argument of LOOKUP must be a lookup name literal")
        missing = None
        if len(args) == 3:
            if not isinstance(args[2], Literal):
                raise InvalidInput("The third argument of LOOKUP must be a literal")
            missing = None if args[2].value is None else str(args[2].value)
        resolve = getattr(self, "lookups", None)
        if resolve is None:
            raise InvalidInput(f"Lookup [{args[1].value}] not found")
        try:
            mapping = resolve(args[1].value)
        except MsqError:
            raise InvalidInput(f"Lookup [{args[1].value}] not found") from None
        keys = pa.array(list(mapping.keys()), pa.string())
        values = pa.array([None if v is None else str(v) for v in mapping.values()], pa.string())
        native = "lookup({0}," + _quote_str(args[1].value) + ("," + _quote_str(missing) if missing else "") + ")"
        return Call("lookup", [self._string_arg(args[0])], "VARCHAR", _lookup, native, (keys, values, missing))

    # strings

    def _f_concat(self, name, args):
        args = [self._string_arg(a) for a in args]
        if len(args) == 1:
            return args[0]
        return Call("concat", args, "VARCHAR", _concat, "concat(" + _fmt_args(len(args)) + ")")

    def _f_case_fold(self, name, args):
        fn = _upper if name == "UPPER" else _lower
        return Call(name.lower(), [self._string_arg(args[0])], "VARCHAR", fn, name.lower() + "({0})")

    def _f_strlen(self, name, args):
        return Call("strlen", [self._string_arg(args[0])], "BIGINT", _strlen, "strlen({0})")

    def _f_substring(self, name, args):
        a = self._string_arg(args[0])
        index = self._literal_arg(args[1], name, "index", "int")
        length = self._literal_arg(args[2], name, "length", "int") if len(args) > 2 else None
        if index is None or (len(args) > 2 and length is None):
            return Literal(None, "VARCHAR")
        native_len = str(length) if len(args) > 2 else "-1"
        return Call("substring", [a], "VARCHAR", _substring, f"substring({{0}}, {index - 1}, {native_len})",
                    (index - 1, -1 if length is None else length))

    def _f_left_right(self, name, args):
        a = self._string_arg(args[0])
        n = self._literal_arg(args[1], name, "length", "int")
        if n is None:
            return Literal(None, "VARCHAR")
        if n < 0:
            raise InvalidInput(f"Function[{name.lower()}] needs a postive integer as second argument")
        fn = _left if name == "LEFT" else _right
        return Call(name.lower(), [a], "VARCHAR", fn, f"{name.lower()}({{0}},{n})", (n,))

    def _f_trim(self, name, args):
        chars = args[1] if len(args) > 1 else Literal(" ", "VARCHAR")
        where = {"BTRIM": "both", "LTRIM": "leading", "RTRIM": "trailing"}[name]
        return self._trim(args[0], chars, where)

    def _f_replace(self, name, args):
        a = self._string_arg(args[0])
        pattern = self._literal_arg(args[1], name, "pattern", "str")
        rep = self._literal_arg(args[2], name, "replacement", "str")
        if pattern is None or rep is None:
            return Literal(None, "VARCHAR")
        return Call("replace", [a], "VARCHAR", _replace,
                    f"replace({{0}},{_quote_str(pattern)},{_quote_str(rep)})", (pattern, rep))

    def _f_reverse(self, name, args):
        return Call("reverse", [self._string_arg(args[0])], "VARCHAR", _reverse, "reverse({0})")

    def _f_repeat(self, name, args):
        a = self._string_arg(args[0])
        n = self._literal_arg(args[1], name, "count", "int")
        if n is None:
            return Literal(None, "VARCHAR")
        return Call("repeat", [a], "VARCHAR", _repeat, f"repeat({{0}},{n})", (n,))

    def _f_pad(self, name, args):
        a = self._string_arg(args[0])
        n = self._literal_arg(args[1], name, "length", "int")
        pad = self._literal_arg(args[2], name, "padding", "str") if len(args) > 2 else " "
        if n is None:
            return Literal(None, "VARCHAR")
        lname = name.lower()
        return Call(lname, [a], "VARCHAR", _pad, f"{lname}({{0}},{n},{_quote_str(pad)})",
                    (n, pad, name == "LPAD"))

    def _f_strpos(self, name, args):
        a = self._string_arg(args[0])
        needle = self._literal_arg(args[1], name, "substring", "str")
        return Call("strpos", [a], "BIGINT", _position, f"(strpos({{0}},{_quote_str(needle)}) + 1)", (needle, 0))

    def _f_position(self, name, args):
        needle = self._literal_arg(args[0], name, "substring", "str")
        a = self._string_arg(args[1])
        if len(args) > 2:
            start = self._literal_arg(args[2], name, "start", "int")
            if start is None:
                return Literal(None, "BIGINT")
            return Call("strpos", [a], "BIGINT", _position,
                        f"(strpos({{0}},{_quote_str(needle)},({start} - 1)) + 1)", (needle, start - 1))
        return Call("strpos", [a], "BIGINT", _position, f"(strpos({{0}},{_quote_str(needle)},0) + 1)", (needle, 0))

    def _f_contains(self, name, args):
        a = self._string_arg(args[0])
        needle = self._literal_arg(args[1], name, "search", "str")
        lname = name.lower()
        return Call(lname, [a], "BOOLEAN", _contains, f"{lname}({{0}},{_quote_str(needle)})",
                    (needle, name == "ICONTAINS_STRING"))

    def _regex(self, name, pattern: str) -> tuple[str, int]:
        try:
            translated, groups = _java_regex(pattern)
            pc.extract_regex(pa.array([""], pa.string()), translated)
        except (pa.ArrowInvalid, ValueError) as e:
            raise InvalidInput(f"Function[{name.lower()}] invalid regular expression [{pattern}]: {e}") from None
        return translated, groups

    def _f_regexp_like(self, name, args):
        a = self._string_arg(args[0])
        pattern = self._literal_arg(args[1], name, "pattern", "str")
        if pattern is None:
            return Literal(None, "BOOLEAN")
        self._regex(name, pattern)
        return Call("regexp_like", [a], "BOOLEAN", _regexp_like, f"regexp_like({{0}},{_quote_str(pattern)})",
                    (_java_regex(pattern, wrap=False)[0],))

    def _f_regexp_extract(self, name, args):
        a = self._string_arg(args[0])
        pattern = self._literal_arg(args[1], name, "pattern", "str")
        index = self._literal_arg(args[2], name, "index", "int") if len(args) > 2 else 0
        if pattern is None:
            return Literal(None, "VARCHAR")
        translated, groups = self._regex(name, pattern)
        if index is None or not 0 <= index <= groups:
            raise InvalidInput(f"Function[regexp_extract] index [{index}] is out of range for pattern [{pattern}]")
        native = f"regexp_extract({{0}},{_quote_str(pattern)}" + (f",{index})" if len(args) > 2 else ")")
        return Call("regexp_extract", [a], "VARCHAR", _regexp_extract, native, (translated, index))

    def _f_regexp_replace(self, name, args):
        a = self._string_arg(args[0])
        pattern = self._literal_arg(args[1], name, "pattern", "str")
        rep = self._literal_arg(args[2], name, "replacement", "str")
        if pattern is None or rep is None:
            return Literal(None, "VARCHAR")
        self._regex(name, pattern)
        return Call("regexp_replace", [a], "VARCHAR", _regexp_replace,
                    f"regexp_replace({{0}},{_quote_str(pattern)},{_quote_str(rep)})",
                    (_java_regex(pattern, wrap=False)[0], _java_replacement(rep)))

    # numbers

    def _f_abs(self, name, args):
        a = self._numeric_operand(args[0])
        return Call("abs", [a], a.sql_type, _abs, "abs({0})")

    def _f_floor_ceil(self, name, args):
        a = self._numeric_operand(args[0])
        fn = _floor_num if name == "FLOOR" else _ceil_num
        return Call(name.lower(), [a], a.sql_type, fn, name.lower() + "({0})")

    def _f_round(self, name, args):
        a = self._numeric_operand(args[0])
        scale = self._literal_arg(args[1], name, "scale", "int") if len(args) > 1 else 0
        if scale is None:
            return Literal(None, a.sql_type)
        native = "round({0})" if len(args) == 1 else f"round({{0}},{scale})"
        out_type = "BIGINT" if a.sql_type in ("BIGINT", "TIMESTAMP") else "DOUBLE"
        return Call("round", [a], out_type, _round, native, (scale,))

    def _f_truncate(self, name, args):
        a = self._numeric_operand(args[0])
        scale = self._literal_arg(args[1], name, "scale", "int") if len(args) > 1 else 0
        if scale is None:
            return Literal(None, a.sql_type)
        factor = "1" if scale == 0 else java_double(10.0 ** scale)
        integer = a.sql_type in ("BIGINT", "TIMESTAMP")
        return Call("truncate", [a], "BIGINT" if integer else "DOUBLE", _truncate,
                    f"(cast(cast({{0}} * {factor},'long'),'double') / {factor})", (scale, integer))

    def _f_mod(self, name, args):
        a, b = (self._numeric_operand(x) for x in args)
        return Call("mod", [a, b], _common_numeric(a.sql_type, b.sql_type), _mod, "({0} % {1})")

    def _f_unary_double(self, name, args):
        a = self._numeric_operand(args[0])
        native = {"LN": "log", "DEGREES": "toDegrees", "RADIANS": "toRadians"}.get(name, name.lower())
        return Call(native, [a], "DOUBLE", _unary_math, native + "({0})", (native,))

    def _f_binary_double(self, name, args):
        a, b = (self._numeric_operand(x) for x in args)
        native = "pow" if name == "POWER" else "atan2"
        return Call(native, [a, b], "DOUBLE", _binary_math, native + "({0},{1})", (native,))

    def _f_pi(self, name, args):
        return Call("pi", [], "DOUBLE", _pi, "pi()")

    def _f_div(self, name, args):
        a, b = (self._numeric_operand(x) for x in args)
        return Call("div", [a, b], "BIGINT", _int_div, "div({0},{1})")

    def _f_parse_long(self, name, args):
        a = self._string_arg(args[0])
        radix = self._literal_arg(args[1], name, "radix", "int") if len(args) > 1 else 10
        if radix is None:
            return Literal(None, "BIGINT")
        if not 2 <= radix <= 36:
            raise InvalidInput(f"Function [{name}] radix must be between 2 and 36, got [{radix}]")
        native = "parse_long({0})" if len(args) == 1 else f"parse_long({{0}},{radix})"
        return Call("parse_long", [a], "BIGINT", _parse_long, native, (radix,))

    def _f_human_readable(self, name, args):
        a = self._numeric_operand(args[0])
        precision = self._literal_arg(args[1], name, "precision", "int") if len(args) > 1 else 2
        if precision is None or not 0 <= precision <= 3:
            raise InvalidInput(f"Function[{name.lower()}] needs a number between 0 and 3 as its second argument")
        native = name.lower() + ("({0})" if len(args) == 1 else f"({{0}},{precision})")
        system = {"HUMAN_READABLE_BINARY_BYTE_FORMAT": "binary", "HUMAN_READABLE_DECIMAL_BYTE_FORMAT":
                  "decimal_byte", "HUMAN_READABLE_DECIMAL_FORMAT": "decimal"}[name]
        a = a if a.sql_type in ("BIGINT", "TIMESTAMP") else self._cast_expr(a, "BIGINT")
        return Call(name.lower(), [a], "VARCHAR", _human_readable, native, (precision, system))

    def _f_string_format(self, name, args):
        pattern = self._literal_arg(args[0], name, "format", "str")
        if pattern is None:
            return Literal(None, "VARCHAR")
        pieces, kinds, at = [], [], 0
        for m in re.finditer(r"%(.)", pattern):
            spec = m.group(1)
            text = pattern[at:m.start()]
            at = m.end()
            if spec in ("%", "n"):
                pieces.append(text + ("%" if spec == "%" else "\n"))
                kinds.append(None)
                continue
            if spec not in ("s", "d"):
                raise InvalidInput(f"Function [{name}] supports the format specifiers %s, %d, %% and %n, "
                                   f"got [%{spec}]")
            pieces.append(text)
            kinds.append(spec)
        pieces.append(pattern[at:])
        kinds.append(None)
        wanted = [k for k in kinds if k is not None]
        values = args[1:]
        if len(values) < len(wanted):
            raise InvalidInput(f"Function [{name}] has {len(wanted)} format specifiers but {len(values)} arguments")
        bound = []
        for kind, v in zip(wanted, values):
            if kind == "d" and v.sql_type not in ("BIGINT", "TIMESTAMP") and not _is_null(v):
                raise InvalidInput(f"Function [{name}]: %d needs an integer argument, got {v.sql_type}")
            bound.append(v)
        native = "format(" + _quote_str(pattern) + "".join(",{%d}" % i for i in range(len(bound))) + ")"
        return Call("format", bound, "VARCHAR", _string_format, native, (pieces, kinds))

    def _f_safe_divide(self, name, args):
        a, b = (self._numeric_operand(x) for x in args)
        out = _common_numeric(a.sql_type, b.sql_type)
        if out == "DOUBLE":
            a, b = self._cast_expr(a, "DOUBLE"), self._cast_expr(b, "DOUBLE")
        return Call("safe_divide", [a, b], out, _safe_divide, "safe_divide({0},{1})")

    def _f_reduce(self, name, args):
        if not args:
            return Literal(None, "VARCHAR")
        types = {a.sql_type for a in args if not _is_null(a)}
        if not types:
            out = "VARCHAR"
        elif "VARCHAR" in types:
            out = "VARCHAR"
        elif types & {"DOUBLE", "FLOAT"}:
            out = "DOUBLE"
        elif types == {"TIMESTAMP"}:
            out = "TIMESTAMP"
        else:
            out = "BIGINT"
        args = [self._cast_expr(a, out) if _is_null(a) else a for a in args]
        fn = _greatest if name == "GREATEST" else _least
        return Call(name.lower(), args, out, fn, name.lower() + "(" + _fmt_args(len(args)) + ")", (out,))

    def _f_bitwise(self, name, args):
        args = [self._cast_expr(self._numeric_operand(a), "BIGINT") if a.sql_type != "BIGINT" else a for a in args]
        op = {"BITWISE_AND": "and", "BITWISE_OR": "or", "BITWISE_XOR": "xor", "BITWISE_SHIFT_LEFT": "shl",
              "BITWISE_SHIFT_RIGHT": "shr"}[name]
        native = {"and": "bitwiseAnd", "or": "bitwiseOr", "xor": "bitwiseXor", "shl": "bitwiseShiftLeft",
                  "shr": "bitwiseShiftRight"}[op]
        return Call(native, args, "BIGINT", _bitwise, native + "({0},{1})", (op,))

    def _f_bitwise_unary(self, name, args):
        a = self._numeric_operand(args[0])
        if name == "BITWISE_COMPLEMENT":
            a = self._cast_expr(a, "BIGINT")
            return Call("bitwiseComplement", [a], "BIGINT", _bitwise_complement, "bitwiseComplement({0})")
        if name == "BITWISE_CONVERT_DOUBLE_TO_LONG_BITS":
            a = self._cast_expr(a, "DOUBLE")
            return Call("bitwiseConvertDoubleToLongBits", [a], "BIGINT", _double_to_long_bits,
                        "bitwiseConvertDoubleToLongBits({0})")
        a = self._cast_expr(a, "BIGINT")
        return Call("bitwiseConvertLongBitsToDouble", [a], "DOUBLE", _long_bits_to_double,
                    "bitwiseConvertLongBitsToDouble({0})")

    def _f_coalesce(self, name, args):
        out_type = self._unify(args)
        args = [a if a.sql_type == out_type else self._cast_expr(a, out_type) for a in args]
        if len(args) == 1:
            return args[0]
        fname = "nvl" if len(args) == 2 else "coalesce"
        return Call(fname, args, out_type, _coalesce, fname + "(" + _fmt_args(len(args)) + ")")

    # time

    def _f_time_parse(self, name, args):
        a = self._string_arg(args[0])
        pattern = self._literal_arg(args[1], name, "pattern", "str") if len(args) > 1 else None
        zone = self._zone_arg(args[2] if len(args) > 2 else None, name)
        if pattern is None:
            return Call("timestamp_parse", [a], "TIMESTAMP", _time_parse_iso,
                        f"timestamp_parse({{0}},null,{_quote_str(zone)})", (zone,))
        try:
            parser = jodatime.JodaParser(pattern, zone)
        except (ValueError, pa.ArrowInvalid) as e:
            raise InvalidInput(f"Function[timestamp_parse] invalid pattern [{pattern}]: {e}") from None
        return Call("timestamp_parse", [a], "TIMESTAMP", _time_parse_pattern,
                    f"timestamp_parse({{0}},{_quote_str(pattern)},{_quote_str(zone)})", (parser,))

    def _f_time_format(self, name, args):
        t = self._time_arg(args[0], name)
        pattern = self._literal_arg(args[1], name, "pattern", "str") if len(args) > 1 else None
        pattern = pattern if pattern is not None else "yyyy-MM-dd'T'HH:mm:ss.SSSZZ"
        zone = self._zone_arg(args[2] if len(args) > 2 else None, name)
        try:
            formatter = jodatime.JodaFormat(pattern, zone)
        except ValueError as e:
            raise InvalidInput(f"Function[timestamp_format] invalid pattern [{pattern}]: {e}") from None
        return Call("timestamp_format", [t], "VARCHAR", _time_format,
                    f"timestamp_format({{0}},{_quote_str(pattern)},{_quote_str(zone)})", (formatter,))

    def _f_time_floor(self, name, args):
        t = self._time_arg(args[0], name)
        period = self._literal_arg(args[1], name, "period", "str")
        if period is None:
            raise InvalidInput(f"Function [{name}] needs a period argument")
        origin = None
        if len(args) > 2 and not _is_null(args[2]):
            o = args[2]
            if isinstance(o, Literal) and o.sql_type == "VARCHAR":
                o = self._timestamp_literal(o.value)
            if not isinstance(o, Literal) or o.sql_type not in ("TIMESTAMP", "BIGINT"):
                raise InvalidInput(f"Function [{name}] needs a literal origin argument")
            origin = o
        zone = self._zone_arg(args[3] if len(args) > 3 else None, name)
        return self._floor_call(t, period, origin, zone, period, ceil=name == "TIME_CEIL")

    def _f_time_shift(self, name, args):
        t = self._time_arg(args[0], name)
        period_text = self._literal_arg(args[1], name, "period", "str")
        try:
            period = Period.parse(period_text or "")
        except ValueError as e:
            raise InvalidInput(str(e)) from None
        step = args[2]
        if step.sql_type != "BIGINT":
            step = self._cast_expr(self._numeric_operand(step), "BIGINT")
        zone = self._zone_arg(args[3] if len(args) > 3 else None, name)
        return Call("timestamp_shift", [t, step], "TIMESTAMP", _time_shift,
                    f"timestamp_shift({{0}},{_quote_str(period_text)},{{1}},{_quote_str(zone)})", (period, zone))

    def _f_time_extract(self, name, args):
        t = self._time_arg(args[0], name)
        unit = self._literal_arg(args[1], name, "unit", "str")
        unit = (unit or "").upper()
        if unit not in jodatime.EXTRACT_UNITS:
            raise InvalidInput(f"Function[timestamp_extract] unit [{unit}] is not supported")
        zone = self._zone_arg(args[2] if len(args) > 2 else None, name)
        return Call("timestamp_extract", [t], "BIGINT", _time_extract,
                    f"timestamp_extract({{0}},{_quote_str(unit)},{_quote_str(zone)})", (unit, zone))

    def _f_time_in_interval(self, name, args):
        t = self._time_arg(args[0], name)
        text = self._literal_arg(args[1], name, "interval", "str")
        start, end = self._interval(text or "")
        lo = Call("greater_equal", [t, Literal(start, "TIMESTAMP")], "BOOLEAN", _compare, "({0} >= {1})",
                  ("greater_equal",))
        hi = Call("less", [t, Literal(end, "TIMESTAMP")], "BOOLEAN", _compare, "({0} < {1})", ("less",))
        return Call("and", [lo, hi], "BOOLEAN", _and, "({0} && {1})")

    def _interval(self, text: str) -> tuple[int, int]:
        parts = text.split("/")
        if len(parts) != 2:
            raise InvalidInput(f"Function [TIME_IN_INTERVAL] second argument [{text}] is not a valid interval")
        start_p = end_p = None
        try:
            if parts[0].upper().startswith("P"):
                start_p = Period.parse(parts[0])
            if parts[1].upper().startswith("P"):
                end_p = Period.parse(parts[1])
        except ValueError:
            raise InvalidInput(f"Function [TIME_IN_INTERVAL] second argument [{text}] is not a valid interval") \
                from None
        start = None if start_p else self._timestamp_literal(parts[0], "UTC").value
        end = None if end_p else self._timestamp_literal(parts[1], "UTC").value
        if start is None:
            start = int(jodatime.shift(np.array([end]), start_p, -1, "UTC")[0])
        if end is None:
            end = int(jodatime.shift(np.array([start]), end_p, 1, "UTC")[0])
        return start, end

    def _f_millis_to_timestamp(self, name, args):
        a = self._numeric_operand(args[0])
        if a.sql_type in ("DOUBLE", "FLOAT"):
            a = self._cast_expr(a, "BIGINT")
        if isinstance(a, Literal):
            return Literal(a.value, "TIMESTAMP")
        return Call("cast", [a], "TIMESTAMP", _identity, "{0}")

    def _f_timestamp_to_millis(self, name, args):
        t = self._time_arg(args[0], name)
        if isinstance(t, Literal):
            return Literal(t.value, "BIGINT")
        return Call("cast", [t], "BIGINT", _identity, "{0}")

    def _f_date_trunc(self, name, args):
        unit = self._literal_arg(args[0], name, "unit", "str")
        period = _DATE_TRUNC_UNITS.get(str(unit).upper())
        if period is None:
            raise InvalidInput(f"Operation [DATE_TRUNC] cannot truncate to [{unit}]")
        return self._floor_call(self._time_arg(args[1], name), period, None, self.tz, period)


def _is_date_floor(e: Expr) -> bool:
    return isinstance(e, Call) and e.op in ("floor", "timestamp_floor") and e.fn is _time_floor \
        and e.extra[0] == "P1D" and not e.extra[3]


def _common_numeric(a: str, b: str) -> str:
    if "DOUBLE" in (a, b) or "FLOAT" in (a, b):
        return "DOUBLE"
    return "BIGINT"


_HANDLERS = {
    "LOOKUP": "_f_lookup",
    "CONCAT": "_f_concat", "TEXTCAT": "_f_concat", "UPPER": "_f_case_fold", "LOWER": "_f_case_fold",
    "STRLEN": "_f_strlen", "LENGTH": "_f_strlen", "CHAR_LENGTH": "_f_strlen", "CHARACTER_LENGTH": "_f_strlen",
    "SUBSTRING": "_f_substring", "SUBSTR": "_f_substring", "LEFT": "_f_left_right", "RIGHT": "_f_left_right",
    "BTRIM": "_f_trim", "LTRIM": "_f_trim", "RTRIM": "_f_trim", "REPLACE": "_f_replace", "REVERSE": "_f_reverse",
    "REPEAT": "_f_repeat", "LPAD": "_f_pad", "RPAD": "_f_pad", "STRPOS": "_f_strpos", "POSITION": "_f_position",
    "CONTAINS_STRING": "_f_contains", "ICONTAINS_STRING": "_f_contains", "REGEXP_LIKE": "_f_regexp_like",
    "REGEXP_EXTRACT": "_f_regexp_extract", "REGEXP_REPLACE": "_f_regexp_replace",
    "ABS": "_f_abs", "FLOOR": "_f_floor_ceil", "CEIL": "_f_floor_ceil", "ROUND": "_f_round",
    "TRUNCATE": "_f_truncate", "TRUNC": "_f_truncate", "MOD": "_f_mod", "POWER": "_f_binary_double",
    "ATAN2": "_f_binary_double", "SQRT": "_f_unary_double", "EXP": "_f_unary_double", "LN": "_f_unary_double",
    "LOG10": "_f_unary_double", "SIN": "_f_unary_double", "COS": "_f_unary_double", "TAN": "_f_unary_double",
    "COT": "_f_unary_double", "ASIN": "_f_unary_double", "ACOS": "_f_unary_double", "ATAN": "_f_unary_double",
    "DEGREES": "_f_unary_double", "RADIANS": "_f_unary_double", "PI": "_f_pi", "SAFE_DIVIDE": "_f_safe_divide",
    "GREATEST": "_f_reduce", "LEAST": "_f_reduce", "BITWISE_AND": "_f_bitwise", "BITWISE_OR": "_f_bitwise",
    "BITWISE_XOR": "_f_bitwise", "BITWISE_SHIFT_LEFT": "_f_bitwise", "BITWISE_SHIFT_RIGHT": "_f_bitwise",
    "BITWISE_COMPLEMENT": "_f_bitwise_unary", "BITWISE_CONVERT_DOUBLE_TO_LONG_BITS": "_f_bitwise_unary",
    "BITWISE_CONVERT_LONG_BITS_TO_DOUBLE": "_f_bitwise_unary", "COALESCE": "_f_coalesce",
    "TIME_PARSE": "_f_time_parse", "TIME_FORMAT": "_f_time_format", "TIME_FLOOR": "_f_time_floor",
    "TIME_CEIL": "_f_time_floor", "TIME_SHIFT": "_f_time_shift", "TIME_EXTRACT": "_f_time_extract",
    "TIME_IN_INTERVAL": "_f_time_in_interval", "MILLIS_TO_TIMESTAMP": "_f_millis_to_timestamp",
    "TIMESTAMP_TO_MILLIS": "_f_timestamp_to_millis", "DATE_TRUNC": "_f_date_trunc",
    "DIV": "_f_div", "PARSE_LONG": "_f_parse_long", "STRING_FORMAT": "_f_string_format",
    "HUMAN_READABLE_BINARY_BYTE_FORMAT": "_f_human_readable", "HUMAN_READABLE_DECIMAL_BYTE_FORMAT": "_f_human_readable",
    "HUMAN_READABLE_DECIMAL_FORMAT": "_f_human_readable",
}

# sqlglot node classes that are plain function calls, by upper-cased class name
_GENERIC = {
    "UPPER": "UPPER", "LOWER": "LOWER", "LENGTH": "LENGTH", "ABS": "ABS", "LEFT": "LEFT", "RIGHT": "RIGHT",
    "REVERSE": "REVERSE", "REPEAT": "REPEAT", "REPLACE": "REPLACE", "MOD": "MOD", "POW": "POWER", "SQRT": "SQRT",
    "EXP": "EXP", "LN": "LN", "SAFEDIVIDE": "SAFE_DIVIDE", "SIN": "SIN", "COS": "COS", "TAN": "TAN", "COT": "COT",
    "ASIN": "ASIN", "ACOS": "ACOS", "ATAN": "ATAN", "ATAN2": "ATAN2", "DEGREES": "DEGREES", "RADIANS": "RADIANS",
    "PI": "PI",
}


def _array_handlers() -> dict:
    from msqcore.planner import arrays  # arrays builds on this module
    return arrays.HANDLERS


# operators that handle multi-value strings themselves (a filter matches any value)
_LIST_OPERATORS = frozenset({_compare, _is_in, _like, _is_null_fn, _not_null_fn, pc.is_null, pc.is_valid})


def _lookup(v, keys, values, missing):
    found = values.take(pc.index_in(v, value_set=keys))
    return found if missing is None else pc.coalesce(found, pa.scalar(missing, pa.string()))
