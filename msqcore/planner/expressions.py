"""Scalar expressions: bound from sqlglot nodes, evaluated over Arrow tables.

A bound ``Expr`` knows its SQL type, renders itself in Druid's native expression
language (for payloads and reports) and evaluates vectorized with pyarrow.compute or
our Cython kernels: never a Python call per row.

Representation while executing: TIMESTAMP is int64 epoch millis (Druid's native LONG),
BOOLEAN is Arrow bool (materialized as LONG 1/0 when written out), strings are Arrow
strings, BIGINT int64, DOUBLE float64, FLOAT float32.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from msqcore.errors import InvalidInput
from msqcore.kernels import timeparse
from msqcore.timeutil import granularity

# SQL type → (native type, arrow type)
SQL_TYPES = {
    "BIGINT": ("LONG", pa.int64()),
    "DOUBLE": ("DOUBLE", pa.float64()),
    "FLOAT": ("FLOAT", pa.float32()),
    "VARCHAR": ("STRING", pa.string()),
    "TIMESTAMP": ("LONG", pa.int64()),
    "BOOLEAN": ("LONG", pa.bool_()),
}
NATIVE_TO_SQL = {"LONG": "BIGINT", "DOUBLE": "DOUBLE", "FLOAT": "FLOAT", "STRING": "VARCHAR"}
_NUMERIC = ("BIGINT", "DOUBLE", "FLOAT", "TIMESTAMP", "BOOLEAN")


def native_type(sql_type: str) -> str:
    return SQL_TYPES[sql_type][0]


def arrow_type(sql_type: str) -> pa.DataType:
    return SQL_TYPES[sql_type][1]


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
        return out


def _broadcast(scalar: pa.Scalar, n: int) -> pa.Array:
    if not scalar.is_valid:
        return pa.nulls(n, scalar.type if scalar.type != pa.null() else pa.string())
    return pc.fill_null(pa.nulls(n, scalar.type), scalar)


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
class Literal(Expr):
    value: Any
    sql_type: str

    def eval(self, table):
        if self.value is None:
            return pa.scalar(None, arrow_type(self.sql_type))
        return pa.scalar(self.value, arrow_type(self.sql_type))

    def native(self):
        if self.value is None:
            return "null"
        if self.sql_type == "VARCHAR":
            return _quote_str(self.value)
        if self.sql_type == "BOOLEAN":
            return "1" if self.value else "0"
        return repr(self.value)


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
        return self.fn(*[a.eval(table) for a in self.args], *self.extra)

    def native(self):
        return self.native_fmt.format(*[a.native() for a in self.args])

    def columns(self):
        out = set()
        for a in self.args:
            out |= a.columns()
        return out


# --- helpers for implementations ------------------------------------------------------------


def _as_bool(v):
    if isinstance(v, (pa.Scalar,)):
        if v.type == pa.bool_():
            return v
        return pc.not_equal(pc.cast(v, pa.float64()), 0) if v.is_valid else pa.scalar(None, pa.bool_())
    if v.type == pa.bool_():
        return v
    if pa.types.is_string(v.type) or pa.types.is_large_string(v.type):
        return pc.equal(pc.utf8_lower(v), "true")
    return pc.not_equal(v, pa.scalar(0, v.type))


def _cast(v, sql_type: str):
    target = arrow_type(sql_type)
    vt = v.type
    if vt == target:
        return v
    if sql_type in ("BIGINT", "TIMESTAMP") and (pa.types.is_string(vt) or pa.types.is_large_string(vt)):
        return _string_to_number(v, pa.int64())
    if sql_type in ("DOUBLE", "FLOAT") and (pa.types.is_string(vt) or pa.types.is_large_string(vt)):
        return pc.cast(_string_to_number(v, pa.float64()), target)
    if sql_type in ("BIGINT", "TIMESTAMP") and pa.types.is_floating(vt):
        return pc.cast(pc.trunc(v), pa.int64(), safe=False)
    if sql_type == "VARCHAR" and vt == pa.bool_():
        return pc.if_else(v, "true", "false")
    return pc.cast(v, target, safe=False)


def _string_to_number(v, target):
    """Druid's lenient parse: strings that are not numbers become null."""
    if isinstance(v, pa.Scalar):
        try:
            return pa.scalar(target.to_pandas_dtype()(float(v.as_py())) if v.is_valid else None, target)
        except (TypeError, ValueError):
            return pa.scalar(None, target)
    v = pc.utf8_trim_whitespace(v)
    pattern = r"^[+-]?\d+$" if target == pa.int64() else r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
    ok = pc.match_substring_regex(v, pattern)
    if target == pa.int64():
        # "3.5" as BIGINT: Druid parses it as a double and truncates.
        dbl = pc.match_substring_regex(v, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
        as_dbl = pc.cast(pc.if_else(dbl, v, pa.scalar(None, v.type)), pa.float64())
        as_int = pc.cast(pc.if_else(ok, v, pa.scalar(None, v.type)), pa.int64())
        return pc.coalesce(as_int, pc.cast(pc.trunc(as_dbl), pa.int64(), safe=False))
    return pc.cast(pc.if_else(ok, v, pa.scalar(None, v.type)), target)


def _time_parse(v):
    # lenient: exactly what Druid's default TIME_PARSE parser (Joda) accepts
    if isinstance(v, pa.Scalar):
        return timeparse.parse_iso_millis(pa.array([v.as_py()], pa.string()), lenient=True)[0]
    return timeparse.parse_iso_millis(v, lenient=True)


def _floor_period(v, period: str):
    g = granularity(period)
    if isinstance(v, pa.Scalar):
        return pa.scalar(None if not v.is_valid else int(g.floor(np.array([v.as_py()]))[0]), pa.int64())
    if isinstance(v, pa.ChunkedArray):
        return pa.chunked_array([_floor_period(c, period) for c in v.chunks], pa.int64())
    values = np.asarray(v.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    floored = pa.array(g.floor(values), pa.int64())
    return pc.if_else(pc.is_valid(v), floored, pa.scalar(None, pa.int64())) if v.null_count else floored


def _like_pattern(pattern: str, escape: str | None) -> str:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape and ch == escape and i + 1 < len(pattern):
            out.append("\\" + pattern[i + 1] if pattern[i + 1] in ".^$*+?()[]{}|\\" else pattern[i + 1])
            i += 2
            continue
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append("\\" + ch if ch in ".^$*+?()[]{}|\\" else ch)
        i += 1
    return "^" + "".join(out) + "$"


def _common_numeric(a: str, b: str) -> str:
    if "DOUBLE" in (a, b) or "FLOAT" in (a, b):
        return "DOUBLE"
    return "BIGINT"


_ARITH = {exp.Add: ("add", "+"), exp.Sub: ("subtract", "-"), exp.Mul: ("multiply", "*"),
          exp.Div: ("divide", "/"), exp.Mod: (None, "%")}
_CMP = {exp.EQ: ("equal", "=="), exp.NEQ: ("not_equal", "!="), exp.GT: ("greater", ">"),
        exp.GTE: ("greater_equal", ">="), exp.LT: ("less", "<"), exp.LTE: ("less_equal", "<=")}
_TIME_UNITS = {"SECOND": "PT1S", "MINUTE": "PT1M", "HOUR": "PT1H", "DAY": "P1D", "WEEK": "P1W",
               "MONTH": "P1M", "QUARTER": "P3M", "YEAR": "P1Y"}
AGGREGATES = (exp.Count, exp.Sum, exp.Min, exp.Max, exp.Avg)


class Binder:
    """Binds sqlglot expressions against a scope of named, typed expressions."""

    def __init__(self, scope: dict[str, Expr], parameters: list | None = None, context: dict | None = None):
        self.scope = scope
        self.parameters = parameters or []
        self.context = context or {}
        self._param_index = 0

    def bind(self, node: exp.Expression) -> Expr:
        method = getattr(self, f"_bind_{type(node).__name__.lower()}", None)
        if method is not None:
            return method(node)
        for cls, (fname, sym) in _ARITH.items():
            if isinstance(node, cls):
                return self._arith(node, fname, sym)
        for cls, (fname, sym) in _CMP.items():
            if isinstance(node, cls):
                return self._compare(node, fname, sym)
        if isinstance(node, AGGREGATES):
            raise InvalidInput(f"Aggregate [{node.sql('druid')}] is not allowed here")
        raise InvalidInput(f"Unsupported expression [{node.sql('druid')}]")

    # --- leaves -----------------------------------------------------------------------------

    def _bind_column(self, node: exp.Column) -> Expr:
        name = node.name
        if name in self.scope:
            return self.scope[name]
        if node.table and f"{node.table}.{name}" in self.scope:
            return self.scope[f"{node.table}.{name}"]
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
        if self._param_index >= len(self.parameters):
            raise InvalidInput(f"No value bound for parameter (position [{self._param_index + 1}])")
        param = self.parameters[self._param_index]
        self._param_index += 1
        if not isinstance(param, dict) or "value" not in param:
            raise InvalidInput(f"Parameter at position [{self._param_index}] must be an object with 'type' and 'value'")
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

    def _timestamp_literal(self, text: str) -> Expr:
        millis = timeparse.parse_iso_millis(pa.array([text.strip()], pa.string()), lenient=True)[0].as_py()
        if millis is None:
            raise InvalidInput(f"Illegal TIMESTAMP constant: TIMESTAMP '{text}'")
        return Literal(millis, "TIMESTAMP")

    # --- operators --------------------------------------------------------------------------

    def _numeric_operand(self, e: Expr) -> Expr:
        if e.sql_type == "VARCHAR":
            return self._cast_expr(e, "DOUBLE")
        if e.sql_type == "BOOLEAN":
            return self._cast_expr(e, "BIGINT")
        return e

    def _arith(self, node, fname, sym) -> Expr:
        a = self._numeric_operand(self.bind(node.this))
        b = self._numeric_operand(self.bind(node.expression))
        out_type = _common_numeric(a.sql_type, b.sql_type)
        if fname is None:  # modulo
            return Call("mod", [a, b], out_type, _mod, "({0} % {1})")
        if fname == "divide" and out_type == "BIGINT":
            return Call("div", [a, b], out_type, _int_divide, "({0} / {1})")
        return Call(fname, [a, b], out_type, _checked(fname), f"({{0}} {sym} {{1}})")

    def _bind_neg(self, node) -> Expr:
        a = self._numeric_operand(self.bind(node.this))
        if isinstance(a, Literal) and a.value is not None:
            return Literal(-a.value, a.sql_type)
        return Call("negate", [a], a.sql_type, pc.negate, "-{0}")

    def _coerce_pair(self, a: Expr, b: Expr) -> tuple[Expr, Expr]:
        if a.sql_type == b.sql_type:
            return a, b
        # TIMESTAMP vs string literal: parse the literal as a timestamp.
        for x, y, swap in ((a, b, False), (b, a, True)):
            if x.sql_type == "TIMESTAMP" and isinstance(y, Literal) and y.sql_type == "VARCHAR" and y.value is not None:
                y = self._timestamp_literal(y.value)
                return (y, x) if swap else (x, y)
        if a.sql_type == "VARCHAR" and b.sql_type in _NUMERIC:
            return self._cast_expr(a, "DOUBLE" if b.sql_type in ("DOUBLE", "FLOAT") else "DOUBLE"), b
        if b.sql_type == "VARCHAR" and a.sql_type in _NUMERIC:
            return a, self._cast_expr(b, "DOUBLE")
        if a.sql_type == "BOOLEAN" or b.sql_type == "BOOLEAN":
            return self._cast_expr(a, "BIGINT"), self._cast_expr(b, "BIGINT")
        return a, b

    def _compare(self, node, fname, sym) -> Expr:
        a, b = self._coerce_pair(self.bind(node.this), self.bind(node.expression))
        return Call(fname, [a, b], "BOOLEAN", getattr(pc, fname), f"({{0}} {sym} {{1}})")

    def _bind_and(self, node) -> Expr:
        return Call("and", [self._boolean(node.this), self._boolean(node.expression)], "BOOLEAN",
                    pc.and_kleene, "({0} && {1})")

    def _bind_or(self, node) -> Expr:
        return Call("or", [self._boolean(node.this), self._boolean(node.expression)], "BOOLEAN",
                    pc.or_kleene, "({0} || {1})")

    def _bind_not(self, node) -> Expr:
        return Call("not", [self._boolean(node.this)], "BOOLEAN", pc.invert, "!{0}")

    def _boolean(self, node) -> Expr:
        e = self.bind(node)
        if e.sql_type == "BOOLEAN":
            return e
        return Call("istrue", [e], "BOOLEAN", _as_bool, "{0}")

    def _bind_is(self, node: exp.Is) -> Expr:
        a = self.bind(node.this)
        target = node.expression
        if isinstance(target, exp.Null):
            return Call("isnull", [a], "BOOLEAN", pc.is_null, "isnull({0})")
        if isinstance(target, exp.Boolean):
            want = bool(target.this)
            b = self._boolean(node.this)
            return Call("istrue" if want else "isfalse", [b], "BOOLEAN", _is_bool,
                        "is_true({0})" if want else "is_false({0})", (want,))
        raise InvalidInput(f"Unsupported expression [{node.sql('druid')}]")

    def _bind_in(self, node: exp.In) -> Expr:
        a = self.bind(node.this)
        if node.args.get("query") is not None:
            raise InvalidInput("IN with a subquery is not supported yet")
        values = [self.bind(v) for v in node.expressions]
        if not all(isinstance(v, Literal) for v in values):
            raise InvalidInput("IN list must contain only literals")
        if a.sql_type == "VARCHAR":
            vals = [None if v.value is None else str(v.value) for v in values]
            arr = pa.array([v for v in vals if v is not None], pa.string())
        else:
            if a.sql_type == "TIMESTAMP":
                values = [self._timestamp_literal(v.value) if v.sql_type == "VARCHAR" else v for v in values]
            vals = [v.value for v in values]
            arr = pa.array([v for v in vals if v is not None], arrow_type(a.sql_type if a.sql_type != "BOOLEAN" else "BIGINT"))
        native = "array_contains(array(" + ",".join(v.native() for v in values) + "),{0})"
        return Call("in", [a], "BOOLEAN", _is_in, native, (arr,))

    def _bind_between(self, node: exp.Between) -> Expr:
        a = self.bind(node.this)
        lo = exp.GTE(this=node.this, expression=node.args["low"])
        hi = exp.LTE(this=node.this, expression=node.args["high"])
        return self.bind(exp.And(this=lo, expression=hi)) if a is not None else None

    def _bind_like(self, node: exp.Like) -> Expr:
        a = self.bind(node.this)
        pattern = self.bind(node.expression)
        if not isinstance(pattern, Literal) or pattern.sql_type != "VARCHAR":
            raise InvalidInput("LIKE pattern must be a string literal")
        return self._like(a, pattern.value, None)

    def _bind_escape(self, node: exp.Escape) -> Expr:
        like = node.this
        if not isinstance(like, exp.Like):
            raise InvalidInput(f"Unsupported expression [{node.sql('druid')}]")
        a = self.bind(like.this)
        pattern = self.bind(like.expression)
        esc = self.bind(node.expression)
        return self._like(a, pattern.value, esc.value)

    def _like(self, a: Expr, pattern: str, escape: str | None) -> Expr:
        if a.sql_type != "VARCHAR":
            a = self._cast_expr(a, "VARCHAR")
        regex = _like_pattern(pattern, escape)
        native = "like({0}," + _quote_str(pattern) + (("," + _quote_str(escape)) if escape else "") + ")"
        return Call("like", [a], "BOOLEAN", _regex_match, native, (regex,))

    def _bind_cast(self, node: exp.Cast) -> Expr:
        to = node.to.this.name if hasattr(node.to.this, "name") else str(node.to.this)
        to = to.upper()
        target = {"BIGINT": "BIGINT", "INT": "BIGINT", "INTEGER": "BIGINT", "SMALLINT": "BIGINT", "TINYINT": "BIGINT",
                  "DOUBLE": "DOUBLE", "DECIMAL": "DOUBLE", "FLOAT": "FLOAT", "REAL": "FLOAT", "VARCHAR": "VARCHAR",
                  "CHAR": "VARCHAR", "TEXT": "VARCHAR", "TIMESTAMP": "TIMESTAMP", "BOOLEAN": "BOOLEAN",
                  "DATE": "TIMESTAMP"}.get(to)
        if target is None:
            raise InvalidInput(f"Cannot cast to type [{to}]")
        inner = node.this
        if target in ("TIMESTAMP",) and isinstance(inner, exp.Literal) and inner.is_string:
            lit = self._timestamp_literal(inner.this)
            if to == "DATE":
                lit = Literal(int(granularity("DAY").floor(np.array([lit.value]))[0]), "TIMESTAMP")
            return lit
        e = self.bind(inner)
        if target == "TIMESTAMP" and e.sql_type == "VARCHAR":
            e = Call("timestamp_parse", [e], "TIMESTAMP", _time_parse, "timestamp_parse({0},null,'UTC')")
            if to == "DATE":
                return Call("floor", [e], "TIMESTAMP", _floor_period, "timestamp_floor({0},'P1D',null,'UTC')", ("P1D",))
            return e
        if to == "DATE":
            return Call("floor", [e], "TIMESTAMP", _floor_period, "timestamp_floor({0},'P1D',null,'UTC')", ("P1D",))
        return self._cast_expr(e, target)

    def _cast_expr(self, e: Expr, target: str) -> Expr:
        if e.sql_type == target:
            return e
        if isinstance(e, Literal):
            if e.value is None:
                return Literal(None, target)
            out = _cast(pa.scalar(e.value, arrow_type(e.sql_type)), target)
            return Literal(out.as_py() if isinstance(out, pa.Scalar) else out, target)
        native_t = {"BIGINT": "LONG", "TIMESTAMP": "LONG", "DOUBLE": "DOUBLE", "FLOAT": "DOUBLE",
                    "VARCHAR": "STRING", "BOOLEAN": "LONG"}[target]
        return Call("cast", [e], target, _cast, f"CAST({{0}}, '{native_t}')", (target,))

    # --- functions --------------------------------------------------------------------------

    def _bind_floor(self, node: exp.Floor) -> Expr:
        unit = node.args.get("to")
        a = self.bind(node.this)
        if unit is None:
            a = self._numeric_operand(a)
            return Call("floor", [a], a.sql_type, pc.floor if a.sql_type != "BIGINT" else _identity, "floor({0})")
        period = _TIME_UNITS.get(unit.name.upper())
        if period is None or a.sql_type != "TIMESTAMP":
            raise InvalidInput(f"Cannot apply 'FLOOR' to arguments [{node.sql('druid')}]")
        return Call("floor", [a], "TIMESTAMP", _floor_period, f"timestamp_floor({{0}},'{period}',null,'UTC')", (period,))

    def _bind_coalesce(self, node) -> Expr:
        args = [self.bind(node.this)] + [self.bind(e) for e in node.expressions]
        out_type = next((a.sql_type for a in args if not (isinstance(a, Literal) and a.value is None)), "VARCHAR")
        args = [a if a.sql_type == out_type else self._cast_expr(a, out_type) for a in args]
        return Call("coalesce", args, out_type, pc.coalesce, "coalesce(" + ",".join("{%d}" % i for i in range(len(args))) + ")")

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
        out_type = next((v.sql_type for v in values if not (isinstance(v, Literal) and v.value is None)), "VARCHAR")
        values = [v if v.sql_type == out_type else self._cast_expr(v, out_type) for v in values]
        n = len(conds)
        parts = ",".join("{%d},{%d}" % (i, n + i) for i in range(n))
        return Call("case", conds + values, out_type, _case, "case_searched(" + parts + ",{%d})" % (2 * n), (n,))

    def _bind_anonymous(self, node: exp.Anonymous) -> Expr:
        return self._function(node.name.upper(), node.expressions, node)

    def _bind_upper(self, node) -> Expr:
        return self._function("UPPER", [node.this], node)

    def _bind_lower(self, node) -> Expr:
        return self._function("LOWER", [node.this], node)

    def _bind_length(self, node) -> Expr:
        return self._function("LENGTH", [node.this], node)

    def _bind_abs(self, node) -> Expr:
        return self._function("ABS", [node.this], node)

    def _bind_concat(self, node) -> Expr:
        return self._function("CONCAT", node.expressions, node)

    def _bind_dpipe(self, node) -> Expr:
        return self._function("CONCAT", [node.this, node.expression], node)

    def _bind_nullif(self, node) -> Expr:
        a = self.bind(node.this)
        b = self.bind(node.expression)
        a2, b2 = self._coerce_pair(a, b)
        return Call("nullif", [a, b2], a.sql_type,
                    _nullif,
                    "nullif({0},{1})")

    def _bind_currenttimestamp(self, node) -> Expr:
        return Literal(int(self.context.get("__startTimeMillis", 0)), "TIMESTAMP")

    def _function(self, name: str, arg_nodes, node) -> Expr:
        args = [self.bind(a) for a in arg_nodes]
        if name == "TIME_PARSE":
            if not 1 <= len(args) <= 3:
                raise InvalidInput(f"Invalid number of arguments to function 'TIME_PARSE'. Was expecting 1 to 3 arguments")
            if len(args) > 1 and not (isinstance(args[1], Literal) and args[1].value is None):
                raise InvalidInput("TIME_PARSE with a format pattern is not supported yet")
            a = args[0] if args[0].sql_type == "VARCHAR" else self._cast_expr(args[0], "VARCHAR")
            return Call("timestamp_parse", [a], "TIMESTAMP", _time_parse, "timestamp_parse({0},null,'UTC')")
        if name == "TIME_FLOOR":
            if len(args) < 2 or not isinstance(args[1], Literal) or granularity(str(args[1].value)) is None:
                raise InvalidInput(f"TIME_FLOOR period must be a standard ISO period literal: [{node.sql('druid')}]")
            period = granularity(str(args[1].value)).period
            return Call("floor", [args[0]], "TIMESTAMP", _floor_period,
                        f"timestamp_floor({{0}},'{period}',null,'UTC')", (period,))
        if name == "MILLIS_TO_TIMESTAMP":
            return Call("cast", [self._cast_expr(args[0], "BIGINT")], "TIMESTAMP", _identity, "{0}")
        if name == "TIMESTAMP_TO_MILLIS":
            return Call("cast", [args[0]], "BIGINT", _identity, "{0}")
        if name in ("UPPER", "LOWER"):
            fn = pc.utf8_upper if name == "UPPER" else pc.utf8_lower
            return Call(name.lower(), [self._cast_expr(args[0], "VARCHAR")], "VARCHAR", fn, name.lower() + "({0})")
        if name in ("LENGTH", "CHAR_LENGTH", "CHARACTER_LENGTH", "STRLEN"):
            return Call("strlen", [self._cast_expr(args[0], "VARCHAR")], "BIGINT",
                        _strlen, "strlen({0})")
        if name == "ABS":
            a = self._numeric_operand(args[0])
            return Call("abs", [a], a.sql_type, pc.abs, "abs({0})")
        if name == "CONCAT":
            args = [self._cast_expr(a, "VARCHAR") for a in args]
            return Call("concat", args, "VARCHAR", _concat,
                        "concat(" + ",".join("{%d}" % i for i in range(len(args))) + ")")
        if name in ("NVL", "IFNULL"):
            return self._bind_coalesce(exp.Coalesce(this=arg_nodes[0], expressions=list(arg_nodes[1:])))
        raise InvalidInput(f"No match found for function signature {name}(...)")


def _checked(fname: str):
    fn = getattr(pc, fname + "_checked", None) or getattr(pc, fname)
    plain = getattr(pc, fname)

    def apply(a, b):
        if pa.types.is_floating(getattr(a, "type", pa.null())) or pa.types.is_floating(getattr(b, "type", pa.null())):
            return plain(_to_double(a), _to_double(b))
        return plain(a, b)
    return apply if fn else plain


def _to_double(v):
    return pc.cast(v, pa.float64()) if not pa.types.is_float64(v.type) else v


def _int_divide(a, b):
    # Druid: integer division truncates toward zero; division by zero gives null in SQL-compatible mode.
    b = pc.if_else(pc.equal(b, 0), pa.scalar(None, pa.int64()), b)
    q = pc.divide(pc.cast(a, pa.float64()), pc.cast(b, pa.float64()))
    return pc.cast(pc.trunc(q), pa.int64(), safe=False)


def _mod(a, b):
    if pa.types.is_integer(a.type) and pa.types.is_integer(b.type):
        b = pc.if_else(pc.equal(b, 0), pa.scalar(None, pa.int64()), b)
        q = pc.cast(pc.trunc(pc.divide(pc.cast(a, pa.float64()), pc.cast(b, pa.float64()))), pa.int64(), safe=False)
        return pc.subtract(a, pc.multiply(q, b))
    fa, fb = _to_double(a), _to_double(b)
    return pc.subtract(fa, pc.multiply(pc.trunc(pc.divide(fa, fb)), fb))


def _is_in(v, arr):
    if isinstance(v, pa.Scalar):
        return pa.scalar(v.is_valid and v.as_py() in arr.to_pylist(), pa.bool_()) if v.is_valid else pa.scalar(None, pa.bool_())
    if v.type == pa.bool_():
        v = pc.cast(v, pa.int64())
    out = pc.is_in(v, value_set=arr.cast(v.type) if arr.type != v.type else arr)
    return pc.if_else(pc.is_valid(v), out, pa.scalar(None, pa.bool_()))


# Implementations referenced by Call.fn live at module level so that bound expressions
# pickle: work orders carry them to worker processes.

def _identity(v):
    return v


def _is_bool(v, want: bool):
    b = _as_bool(v)
    return pc.fill_null(b if want else pc.invert(b), False)


def _regex_match(v, regex: str):
    return pc.match_substring_regex(v, regex)


def _nullif(x, y):
    return pc.if_else(pc.fill_null(pc.equal(x, y), False), pa.scalar(None, x.type), x)


def _strlen(v):
    return pc.cast(pc.utf8_length(v), pa.int64())


def _concat(*values):
    return pc.binary_join_element_wise(*values, "")


def _case(*args):
    n = args[-1]
    conds, values = args[:n], args[n:-1]
    out = values[-1]
    for c, v in zip(reversed(conds), reversed(values[:-1])):
        out = pc.if_else(pc.fill_null(c, False), v, out)
    return out
