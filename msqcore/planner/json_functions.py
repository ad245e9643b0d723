"""Nested JSON: the ``COMPLEX<json>`` type and Druid's SQL JSON functions.

A ``COMPLEX<json>`` value travels as its canonical JSON text in an Arrow string column:
compact, keys in input order, strings escaped as Jackson writes them (``_json.canonical``).
Operators, frames and shuffles carry it as any string; the SQL endpoint and task reports
render it as nested JSON (``render_values``). The functions parse that text per row in C
(``msqcore.kernels._json``); nothing here runs Python per row.

``expressions.Binder.bind`` hands every node to ``bind`` first; it binds JSON_VALUE (with
RETURNING), JSON_QUERY, JSON_QUERY_ARRAY, JSON_KEYS, JSON_PATHS, JSON_OBJECT, PARSE_JSON,
TRY_PARSE_JSON and TO_JSON_STRING, and returns None for anything else.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from msqcore.errors import DruidException, InvalidInput
from msqcore.kernels import _json
from msqcore.planner import expressions as ex
from msqcore.planner.expressions import Call, Expr, Literal

JSON = "COMPLEX<json>"
_K = _json.KINDS
_RETURNING = {"BIGINT": "BIGINT", "INTEGER": "BIGINT", "INT": "BIGINT", "SMALLINT": "BIGINT", "TINYINT": "BIGINT",
              "DOUBLE": "DOUBLE", "FLOAT": "DOUBLE", "REAL": "DOUBLE", "DECIMAL": "DOUBLE", "VARCHAR": "VARCHAR",
              "CHAR": "VARCHAR", "TEXT": "VARCHAR"}
_NATIVE_RETURNING = {"BIGINT": "LONG", "DOUBLE": "DOUBLE", "VARCHAR": "STRING", "BIGINT ARRAY": "ARRAY<LONG>",
                     "DOUBLE ARRAY": "ARRAY<DOUBLE>", "VARCHAR ARRAY": "ARRAY<STRING>"}


class JsonParseError(DruidException):
    """PARSE_JSON of text that is not JSON: Druid's expression throws an IAE and the query
    fails (HTTP 500)."""


# --- values ----------------------------------------------------------------------------------------


def _buffers(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from msqcore.engine.aggregate import binary_buffers  # the engine builds on the planner
    offsets, data, valid = binary_buffers(values)
    return np.ascontiguousarray(offsets), np.ascontiguousarray(data), valid.astype(np.uint8)


def _strings(offsets: np.ndarray, data: bytes, valid: np.ndarray) -> pa.Array:
    mask = None if valid.all() else pa.py_buffer(np.packbits(valid.astype(bool), bitorder="little"))
    out = pa.Array.from_buffers(pa.large_string(), len(valid), [mask, pa.py_buffer(offsets), pa.py_buffer(data)],
                                null_count=-1 if mask is not None else 0)
    return out.cast(pa.string())


def _lists(ok: np.ndarray, row_offsets: np.ndarray, items: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(row_offsets.astype(np.int32)), items,
                                    mask=None if ok.all() else pa.array(ok == 0))


def canonical(values, strict: bool) -> pa.Array:
    """JSON text → canonical JSON text; text that is not JSON is null, or (``strict``)
    fails the way PARSE_JSON does."""
    offsets, data, valid = _buffers(values)
    out_offsets, out_data, ok = _json.canonical(offsets, data, valid)
    if strict:
        bad = np.flatnonzero(valid.astype(bool) & (ok == 0))
        if len(bad):
            text = bytes(data[offsets[bad[0]]:offsets[bad[0] + 1]]).decode("utf-8", "replace")
            raise JsonParseError(f"Bad string input [{text}] to [parse_json]")
    return _strings(out_offsets, out_data, ok)


def to_json(values, sql_type: str) -> pa.Array:
    """Values of a SQL type as canonical JSON text (nulls stay null)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if sql_type == JSON:
        return values
    if sql_type == "VARCHAR" and (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
        sql_type = "VARCHAR ARRAY"  # a multi-value string: Druid's value is its array
    if sql_type.endswith(" ARRAY"):
        inner = to_json(values.flatten(), sql_type[:-len(" ARRAY")])
        offsets = pc.subtract(values.offsets, values.offsets[0])
        items = pa.ListArray.from_arrays(offsets, pc.fill_null(inner, "null"), mask=values.is_null())
        return pc.binary_join_element_wise("[", pc.binary_join(items, ","), "]", "")
    if sql_type == "VARCHAR":
        offsets, data, valid = _buffers(values)
        out_offsets, out_data = _json.quote(offsets, data, valid)
        return _strings(out_offsets, out_data, valid)
    if sql_type == "BOOLEAN":
        return pc.if_else(values, "true", "false")
    if sql_type in ("DOUBLE", "FLOAT"):
        return ex._java_double_strings(values)
    return pc.cast(values, pa.string())


def render_values(values) -> list:
    """A COMPLEX<json> column as the Python values Druid's JSON writer shows: nested
    objects, not quoted text (result rendering, which is per row already)."""
    loads = json.loads
    return [None if v is None else loads(v) for v in values.to_pylist()]


# --- paths -------------------------------------------------------------------------------------------

_PATH_PART = re.compile(r"\.([^.\[\]]+)|\[(-?\d+)\]|\['((?:[^']|\\')*)'\]|\[\"((?:[^\"]|\\\")*)\"\]")


def parse_path(text: str, fn: str) -> list[str | int]:
    """Druid's JSONPath subset (``NestedPathFinder.parseJsonPath``): ``$``, ``.field``,
    ``[index]`` and ``['field']``."""
    if not text.startswith("$"):
        raise InvalidInput(f"JSONPath [{text}] is invalid, it must start with '$'")
    parts: list[str | int] = []
    i = 1
    if text[1:] == ".":
        return parts
    while i < len(text):
        m = _PATH_PART.match(text, i)
        if m is None:
            raise InvalidInput(f"Function[{fn}] JSONPath [{text}] is invalid at position [{i}]")
        field, index, quoted, dquoted = m.groups()
        if index is not None:
            parts.append(int(index))
        else:
            parts.append(field if field is not None else (quoted if quoted is not None else dquoted))
        i = m.end()
    return parts


def _path_of(node, fn: str) -> list[str | int]:
    """A path argument: sqlglot's parsed JSONPath, or a string literal it could not parse."""
    if isinstance(node, exp.JSONPath):
        parts: list[str | int] = []
        for part in node.expressions:
            if isinstance(part, exp.JSONPathRoot):
                continue
            if isinstance(part, exp.JSONPathKey) and isinstance(part.this, str):
                parts.append(part.this)
            elif isinstance(part, exp.JSONPathSubscript) and isinstance(part.this, int):
                parts.append(part.this)
            else:
                raise InvalidInput(f"Function[{fn}] JSONPath [{node.sql('druid')}] is not supported")
        return parts
    if isinstance(node, exp.Literal) and node.is_string:
        return parse_path(node.this, fn)
    raise InvalidInput(f"Function[{fn}] second argument [{node.sql('druid')}] must be a literal [STRING] value")


def path_text(parts: list[str | int]) -> str:
    """Druid's normalized JSONPath (``NestedPathFinder.toNormalizedJsonPath``)."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif any(c in p for c in ".'\"[]"):
            out += f"['{p}']"
        else:
            out += "." + p
    return out


def kernel_path(parts: list[str | int]) -> list:
    """A path for the kernels: field names escaped as canonical JSON text escapes them."""
    out = []
    for p in parts:
        if isinstance(p, str):
            offsets, data = _json.quote(np.array([0, len(p.encode())], np.int64), np.frombuffer(p.encode(), np.uint8),
                                        np.ones(1, np.uint8))
            p = data[1:-1]
        out.append(p)
    return out


# --- runtime functions (module level: bound expressions are pickled to workers) ----------------------


def _parse_json(v, strict: bool):
    if not ex._is_string_type(v.type):
        raise JsonParseError(f"Invalid input [{v}] of type [{v.type}] to [parse_json], expected [STRING]")
    return canonical(v, strict)


def _to_json_string(v, sql_type: str):
    return to_json(v, sql_type)


def json_query(v, path: list):
    kinds, offsets, data = _json.extract(*_buffers(v), path, False)
    return _strings(offsets, data, (kinds != _K["missing"]) & (kinds != _K["null"]))


def _literal_text(v, path: list) -> tuple[pa.Array, np.ndarray]:
    """The literal at the path as text (booleans as 1/0, Druid's strict booleans), and the kinds."""
    kinds, offsets, data = _json.extract(*_buffers(v), path, True)
    text = _strings(offsets, data, (kinds >= _K["string"]) & (kinds <= _K["false"]))
    booleans = (kinds == _K["true"]) | (kinds == _K["false"])
    if booleans.any():
        text = pc.if_else(pa.array(booleans), pa.array(np.where(kinds == _K["true"], "1", "0")), text)
    return text, kinds


def _cast_literals(text: pa.Array, kinds: np.ndarray, sql_type: str) -> pa.Array:
    if sql_type == "VARCHAR":
        doubles = kinds == _K["double"]
        if doubles.any():  # Jackson reads a double; Druid writes it back as Java does
            text = pc.if_else(pa.array(doubles), ex._java_double_strings(ex._cast(text, "DOUBLE")), text)
        return text
    return ex._cast(text, sql_type)


def json_value(v, path: list, sql_type: str):
    text, kinds = _literal_text(v, path)
    return _cast_literals(text, kinds, sql_type)


def json_value_array(v, path: list, sql_type: str):
    ok, row_offsets, kinds, offsets, data = _json.elements(*_buffers(v), path)
    text = _strings(offsets, data, kinds != _K["null"])
    element = sql_type[:-len(" ARRAY")]
    return _lists(ok, row_offsets, _cast_literals(text, kinds, element))


def json_keys(v, path: list):
    ok, row_offsets, key_offsets, data = _json.keys(*_buffers(v), path)
    return _lists(ok, row_offsets, _strings(key_offsets, data, np.ones(len(key_offsets) - 1, np.uint8)))


def json_paths(v):
    ok, row_offsets, path_offsets, data = _json.paths(*_buffers(v))
    return _lists(ok, row_offsets, _strings(path_offsets, data, np.ones(len(path_offsets) - 1, np.uint8)))


def json_object(*args):
    """``args``: the value arrays, then (prefixes, types): ``prefixes[i]`` is the text
    before value ``i`` (``{"k":`` or ``,"k":``) in Java HashMap order."""
    *values, prefixes, types = args
    parts = []
    for prefix, (i, sql_type) in zip(prefixes, types):
        parts += [prefix, pc.fill_null(to_json(values[i], sql_type), "null")]
    return pc.binary_join_element_wise(*parts, "}", "")


def _empty_object():
    return pa.array(["{}"])


# --- binding ---------------------------------------------------------------------------------------


def _java_hash(s: str) -> int:
    h = 0
    units = s.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i:i + 2], "big")) & 0xFFFFFFFF
    return h


def hashmap_order(keys: list[str]) -> list[int]:
    """The order Java's HashMap iterates ``keys`` (put in this order) in: Druid's
    JSON_OBJECT builds a HashMap. Bucket by the spread hash, then insertion order; the
    table doubles past 3/4 full. Returns indexes of ``keys``, a later duplicate replacing
    the value of the first."""
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    unique = list(first)
    capacity = 16
    while len(unique) > capacity * 3 // 4:
        capacity *= 2
    spread = {k: (_java_hash(k) ^ (_java_hash(k) >> 16)) & (capacity - 1) for k in unique}
    ordered = sorted(range(len(unique)), key=lambda j: (spread[unique[j]], j))
    last = {k: i for i, k in enumerate(keys)}  # the value of a repeated key is the last one put
    return [last[unique[j]] for j in ordered]


def _json_arg(binder, e: Expr, fn: str) -> Expr:
    if e.sql_type == JSON:
        return e
    if ex._is_null(e):
        return Literal(None, JSON)
    if e.sql_type == "VARCHAR" or e.sql_type in ex._NUMERIC or e.sql_type.endswith(" ARRAY"):
        return Call("to_json", [e], JSON, _to_json_string, "{0}", (e.sql_type,))
    raise InvalidInput(f"Cannot apply '{fn}' to arguments of type '{fn}(<{e.sql_type}>)'")


def _returning(node, fn: str) -> str:
    kind = node.args.get("returning")
    if not kind:
        return "VARCHAR"
    if kind.this == exp.DataType.Type.ARRAY and kind.expressions:
        element = _RETURNING.get(kind.expressions[0].this.name)
        if element is not None:
            return f"{element} ARRAY"
    elif kind.this.name in _RETURNING:
        return _RETURNING[kind.this.name]
    raise InvalidInput(f"Function[{fn}] cannot return [{kind.sql('druid')}]")


def _bind_json_value(binder, node) -> Expr:
    v = _json_arg(binder, binder.bind(node.this), "JSON_VALUE")
    parts = _path_of(node.args.get("path"), "json_value")
    sql_type = _returning(node, "json_value")
    native = f"json_value({{0}},{ex._quote_str(path_text(parts))},'{_NATIVE_RETURNING[sql_type]}')"
    if sql_type.endswith(" ARRAY"):
        return Call("json_value", [v], sql_type, json_value_array, native, (kernel_path(parts), sql_type))
    call = Call("json_value", [v], sql_type, json_value, native, (kernel_path(parts), sql_type))
    if isinstance(v, ex.ColumnRef):  # a stored column may have this path as a field column
        return NestedField(v.name, path_text(parts), sql_type, call)
    return call


# --- field columns of stored nested columns ---------------------------------------------------------


def field_column(column: str, path: str) -> str:
    """The name a scan gives the field column ``path`` of ``column`` (storage/nested.py)."""
    return f"{column}\x00{path}"


@dataclass
class NestedField(Expr):
    """JSON_VALUE of a column at a literal path: the scan's field column when the segment
    reader supplied one (Druid's ``nested-field`` virtual column), else ``fallback`` over
    the raw JSON."""

    column: str
    path: str  # normalized
    sql_type: str
    fallback: Call

    def eval(self, table):
        name = field_column(self.column, self.path)
        if name not in table.column_names:
            return self.fallback.eval(table)
        return field_as(table.column(name), self.sql_type)

    def native(self):
        return self.fallback.native()

    def columns(self):
        return {self.column}


def field_as(values, sql_type: str) -> pa.Array:
    """A field column's values (LONG, DOUBLE or STRING, per segment) as JSON_VALUE's type."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if sql_type == "VARCHAR" and pa.types.is_floating(values.type):
        return ex._java_double_strings(values)
    return ex._cast(values, sql_type)


def add_field_columns(table: pa.Table, reads: dict[str, dict[str, str]],
                      fields: dict[str, dict[str, pa.Array]]) -> pa.Table:
    """``table`` (one segment's rows) with a column per field read (``field_reads``): the
    stored field column where the segment has it (``fields``), else extracted from the raw
    JSON column, so every segment's table has the same columns."""
    for column, paths in reads.items():
        for path, sql_type in paths.items():
            if column in fields:
                values = field_as(fields[column][path], sql_type)
            else:
                values = json_value(table.column(column).combine_chunks(), kernel_path(parse_path(path, "json_value")),
                                    sql_type)
            table = table.append_column(field_column(column, path), values)
    return table


def _raw_uses(e: Expr) -> set[str]:
    """Columns ``e`` reads other than through NestedField (unknown kinds: all they read)."""
    if isinstance(e, NestedField):
        return set()
    if isinstance(e, Call):
        return set().union(*[_raw_uses(a) for a in e.args]) if e.args else set()
    return e.columns()


def _nested_fields(e: Expr) -> list[NestedField]:
    if isinstance(e, NestedField):
        return [e]
    if isinstance(e, Call):
        return [f for a in e.args for f in _nested_fields(a)]
    return []


def field_reads(exprs: list[Expr]) -> dict[str, dict[str, str]]:
    """Columns that ``exprs`` read only through NestedField, with the paths they read and
    the one type each path is read as: a segment scan can read those field columns (as
    that type, so segments agree) instead of the raw JSON."""
    raw = set().union(*[_raw_uses(e) for e in exprs]) if exprs else set()
    types: dict[tuple[str, str], set[str]] = {}
    for e in exprs:
        for f in _nested_fields(e):
            types.setdefault((f.column, f.path), set()).add(f.sql_type)
    for (column, _), kinds in types.items():
        if len(kinds) > 1:
            raw.add(column)  # one path read as two types: simpler from the raw JSON
    out: dict[str, dict[str, str]] = {}
    for (column, path), kinds in types.items():
        if column not in raw:
            out.setdefault(column, {})[path] = next(iter(kinds))
    return out


def _bind_path_function(binder, name: str, args: list) -> Expr:
    fn = name.lower()
    if len(args) != 2:
        raise ex._arg_count_error(name, 2, 2, len(args))
    v = _json_arg(binder, binder.bind(args[0]), name)
    parts = _path_of(args[1], fn)
    native = f"{fn}({{0}},{ex._quote_str(path_text(parts))})"
    if name == "JSON_KEYS":
        return Call(fn, [v], "VARCHAR ARRAY", json_keys, native, (kernel_path(parts),))
    if name == "JSON_QUERY":
        return Call(fn, [v], JSON, json_query, native, (kernel_path(parts),))
    raise InvalidInput(f"Function [{name}] is not supported")  # JSON_QUERY_ARRAY: ARRAY<COMPLEX<json>>


def _bind_json_object(binder, node) -> Expr:
    keys, values = [], []
    for kv in node.expressions:
        if not isinstance(kv, exp.JSONKeyValue):
            raise InvalidInput(f"JSON_OBJECT takes KEY k VALUE v pairs, got [{kv.sql('druid')}]")
        key = binder.bind(kv.this)
        if not isinstance(key, Literal) or key.sql_type != "VARCHAR" or key.value is None:
            raise InvalidInput("JSON_OBJECT keys must be string literals")
        keys.append(key.value)
        values.append(binder.bind(kv.expression))
    order = hashmap_order(keys)
    prefixes = [("{" if j == 0 else ",") + json.dumps(keys[i], ensure_ascii=False) + ":"
                for j, i in enumerate(order)]
    if not order:
        return Call("json_object", [], JSON, _empty_object, "json_object()")
    native_args = ",".join(f"{ex._quote_str(k)},{{{i}}}" for i, k in enumerate(keys))
    types = tuple((i, values[i].sql_type if not ex._is_null(values[i]) else "VARCHAR") for i in order)
    return Call("json_object", values, JSON, json_object, f"json_object({native_args})", (prefixes, types))


def _bind_parse(binder, name: str, args: list) -> Expr:
    if len(args) != 1:
        raise ex._arg_count_error(name, 1, 1, len(args))
    e = binder.bind(args[0])
    fn = name.lower()
    if name == "TO_JSON_STRING":
        return Call(fn, [e], "VARCHAR", _to_json_string, f"{fn}({{0}})", (e.sql_type,))
    if ex._is_null(e):
        return Literal(None, JSON)
    if e.sql_type != "VARCHAR":
        if name == "TRY_PARSE_JSON":
            return Literal(None, JSON)
        raise InvalidInput(f"Cannot apply '{name}' to arguments of type '{name}(<{e.sql_type}>)'")
    return Call(fn, [e], JSON, _parse_json, f"{fn}({{0}})", (name == "PARSE_JSON",))


def _bind_json_paths(binder, name: str, args: list) -> Expr:
    if len(args) != 1:
        raise ex._arg_count_error(name, 1, 1, len(args))
    v = _json_arg(binder, binder.bind(args[0]), name)
    return Call("json_paths", [v], "VARCHAR ARRAY", json_paths, "json_paths({0})")


_ANONYMOUS = {"JSON_QUERY": _bind_path_function, "JSON_QUERY_ARRAY": _bind_path_function,
              "JSON_KEYS": _bind_path_function, "JSON_PATHS": _bind_json_paths, "PARSE_JSON": _bind_parse,
              "TRY_PARSE_JSON": _bind_parse, "TO_JSON_STRING": _bind_parse}


def bind(binder, node) -> Expr | None:
    """The bound JSON function, or None when ``node`` is not one."""
    if isinstance(node, exp.JSONValue):
        return _bind_json_value(binder, node)
    if isinstance(node, exp.JSONKeys):
        return _bind_path_function(binder, "JSON_KEYS", [a for a in (node.this, node.expression) if a is not None])
    if isinstance(node, exp.JSONObject):
        return _bind_json_object(binder, node)
    if isinstance(node, exp.ParseJSON):
        return _bind_parse(binder, "TRY_PARSE_JSON" if node.args.get("safe") else "PARSE_JSON", [node.this])
    if isinstance(node, exp.Anonymous) and node.name.upper() in _ANONYMOUS:
        name = node.name.upper()
        return _ANONYMOUS[name](binder, name, list(node.expressions))
    return None
