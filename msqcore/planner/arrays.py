"""ARRAY expressions: Druid's array functions over Arrow list arrays.

An ARRAY value is an Arrow ``list<string|int64|double>`` (SQL ``VARCHAR ARRAY``,
``BIGINT ARRAY``, ``DOUBLE ARRAY``). Every kernel works on the flat values, the row offsets
and numpy index arithmetic: no Python call per row. Null semantics follow Druid's
``Function`` implementations (``ArrayScalarFunction``, ``ArraysFunction``...): a NULL array
gives NULL, NULL elements are values like any other (``ARRAY_CONTAINS(ARRAY[NULL], NULL)``
is true), ``ARRAY_TO_STRING`` writes a NULL element as ``null``.

The binders here are called by ``expressions.Binder._function`` (``HANDLERS``) with the
binder and the bound arguments.
"""
from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.errors import InvalidInput, Unsupported
from msqcore.planner import expressions as ex
from msqcore.planner.expressions import Call, Expr, Literal

ELEMENT_TYPES = {"VARCHAR ARRAY": "VARCHAR", "BIGINT ARRAY": "BIGINT", "DOUBLE ARRAY": "DOUBLE"}
ARRAY_OF = {"VARCHAR": "VARCHAR ARRAY", "BIGINT": "BIGINT ARRAY", "TIMESTAMP": "BIGINT ARRAY",
            "BOOLEAN": "BIGINT ARRAY", "DOUBLE": "DOUBLE ARRAY", "FLOAT": "DOUBLE ARRAY"}


def is_array(sql_type: str) -> bool:
    return sql_type in ELEMENT_TYPES


# --- list array plumbing ---------------------------------------------------------------------------


def as_lists(arr) -> pa.Array:
    """A list array as it is; a scalar column (a single-valued string) as one-value lists."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        return arr
    valid = ex._valid(arr)
    return pa.ListArray.from_arrays(pa.array(np.arange(len(arr) + 1, dtype=np.int32)), arr,
                                    mask=None if valid.all() else pa.array(~valid))


def row_objects(col) -> list:
    """A multi-value string column's rows as Druid's selectors give them
    (``DimensionSelector.defaultGetObject``): no value is null, one value is itself, several
    are their list."""
    return [None if not v else v[0] if len(v) == 1 else v for v in col.to_pylist()]


def concat_tables(tables: list[pa.Table]) -> pa.Table:
    """Tables of one relation, one after another (see ``same_lists``)."""
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(same_lists(tables), promote_options="permissive")


def same_lists(tables: list[pa.Table]) -> list[pa.Table]:
    """Tables of one relation, made to agree on their multi-value strings. A VARCHAR column
    is a multi-value string (``list<string>``) in a table where some value held the
    ``listDelimiter`` and plain strings in the others; where tables disagree, the plain ones
    become one-value lists (as in Druid, a row's value does not depend on its neighbours)."""
    lists = {}
    for t in tables:
        for f in t.schema:
            if pa.types.is_list(f.type) and pa.types.is_string(f.type.value_type):
                lists.setdefault(f.name, f)
    return [_with_lists(t, lists) for t in tables] if lists else tables


def _with_lists(table: pa.Table, lists: dict[str, pa.Field]) -> pa.Table:
    for i, f in enumerate(table.schema):
        if f.name in lists and pa.types.is_string(f.type):
            table = table.set_column(i, lists[f.name], as_lists(table.column(i)))
    return table


def value_rows(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """A multi-value column as (row of each value, values); a NULL or empty row is one NULL
    value, as Druid's dimension selectors show it."""
    lengths, starts, flat, _ = _parts(arr)
    counts = np.maximum(lengths, 1)
    rows = np.repeat(np.arange(len(lengths)), counts)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    empty = lengths[rows] == 0
    index = pa.array(np.where(empty, 0, starts[rows] + within), mask=empty)
    return rows, (flat.take(index) if len(flat) else pa.nulls(len(rows), flat.type))


def any_value(fn, v: pa.Array, aligned: tuple, *extra):
    """``fn(values, *aligned, *extra)`` on a multi-value ``v`` (``aligned``: arrays with one
    value per row of ``v``): a row matches when any of its values does (filters)."""
    rows, values = value_rows(v)
    take = pa.array(rows)
    hit = fn(values, *[a.take(take) if isinstance(a, (pa.Array, pa.ChunkedArray)) else a for a in aligned], *extra)
    hit = pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
    return pa.array(np.bincount(rows[hit], minlength=len(v)) > 0)


def group_keys(arr: pa.Array) -> pa.Array:
    """Binary keys equal exactly when two rows hold equal arrays (NULL rows stay NULL): the
    little-endian codes of the elements, for hash grouping on ARRAY values."""
    lengths, _, flat, valid = _parts(arr)
    (codes,) = _codes(flat)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths * 4, out=offsets[1:])
    data = pa.py_buffer(codes.astype("<i4").tobytes())
    validity = None if valid.all() else pa.array(valid).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), len(lengths), [validity, pa.py_buffer(offsets.tobytes()), data],
                                 null_count=int((~valid).sum()))


def sort_keys(arr: pa.Array) -> pa.Array:
    """Binary keys that sort as Druid orders arrays: element by element (NULL elements
    first), a prefix before a longer array; NULL rows stay NULL. Each element becomes its
    dense rank as 4 big-endian bytes, so bytewise order is element order."""
    lengths, _, flat, valid = _parts(arr)
    ranks = pc.rank(flat, sort_keys="ascending", null_placement="at_start", tiebreaker="dense") if len(flat) \
        else pa.array([], pa.uint64())
    codes = ranks.to_numpy(zero_copy_only=False).astype(">u4")
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths * 4, out=offsets[1:])
    validity = None if valid.all() else pa.array(valid).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), len(lengths), [validity, pa.py_buffer(offsets.tobytes()),
                                                             pa.py_buffer(codes.tobytes())],
                                 null_count=int((~valid).sum()))


def sort_values(arr: pa.Array) -> pa.Array:
    """Each row's values in ascending order, NULL first (Druid's SORTED_ARRAY)."""
    lengths, starts, flat, valid = _parts(arr)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    order = pc.sort_indices(pa.table({"r": rows, "v": flat}),
                            sort_keys=[("r", "ascending"), ("v", "ascending")], null_placement="at_start")
    return _assemble([(lengths, starts, flat.take(order))], valid, _list_type(arr))


def _list_type(arr) -> pa.DataType:
    return arr.type if pa.types.is_list(arr.type) else pa.list_(arr.type)


def _parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array, np.ndarray]:
    """(lengths, starts into ``flat``, flat values, row validity); a NULL row has length 0."""
    arr = as_lists(arr)
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.zeros(len(arr), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return lengths, starts, pc.list_flatten(arr), ex._valid(arr)


def _assemble(pieces: list[tuple[np.ndarray, np.ndarray, pa.Array]], valid: np.ndarray,
              type_: pa.DataType) -> pa.Array:
    """Rows made of ``pieces`` one after the other: piece ``i`` gives row ``r`` the elements
    ``flat_i[start_i[r] : start_i[r] + length_i[r]]``."""
    value_type = type_.value_type
    n = len(valid)
    lengths = [np.where(valid, p[0], 0) for p in pieces]
    total = np.sum(lengths, axis=0) if pieces else np.zeros(n, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(total, out=offsets[1:])
    index = np.empty(offsets[-1], dtype=np.int64)
    at = offsets[:-1].copy()  # where the next piece of each row goes
    base = 0
    flats = []
    for (_, starts, flat), length in zip(pieces, lengths):
        rows = np.repeat(np.arange(n), length)
        within = np.arange(len(rows)) - np.repeat(np.cumsum(length) - length, length)
        index[at[rows] + within] = base + starts[rows] + within
        at += length
        flat = flat if flat.type == value_type else pc.cast(flat, value_type)
        flats.append(flat)
        base += len(flat)
    values = pa.concat_arrays(flats).take(pa.array(index)) if flats else pa.array([], value_type)
    mask = None if valid.all() else pa.array(~valid)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values, type=type_, mask=mask)


def _scalar_piece(v: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    n = len(v)
    return np.ones(n, dtype=np.int64), np.arange(n, dtype=np.int64), v


def _codes(*flats: pa.Array) -> list[np.ndarray]:
    """One integer code per distinct value over all ``flats`` (NULL is 0), for set tests."""
    flats = [f.cast(flats[0].type) if f.type != flats[0].type else f for f in flats]
    both = pa.concat_arrays(flats)
    uniques = pc.unique(both.drop_null()) if len(both) else both
    out = []
    for f in flats:
        idx = pc.index_in(f, value_set=uniques)
        out.append(pc.fill_null(pc.add(idx, 1), 0).to_numpy(zero_copy_only=False).astype(np.int64))
    return out


def _row_keys(rows: np.ndarray, codes: np.ndarray, width: int) -> np.ndarray:
    return rows * (width + 1) + codes


def _bool(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    return ex._from_np(values, valid, pa.bool_())


# --- kernels (module level: bound expressions travel to worker processes) ---------------------------


def array_construct(*values, type_: pa.DataType = pa.list_(pa.string())):
    return _assemble([_scalar_piece(v) for v in values], np.ones(len(values[0]), dtype=bool), type_)


def array_length(arr):
    return pc.cast(pc.list_value_length(as_lists(arr)), pa.int64())


def array_offset(arr, index, one_based: bool):
    lengths, starts, flat, valid = _parts(arr)
    idx, idx_valid = ex._ints(index)
    if one_based:
        idx = idx - 1
    ok = valid & idx_valid & (idx >= 0) & (idx < lengths)
    pos = np.where(ok, starts + idx, 0)
    return flat.take(pa.array(pos, mask=~ok)) if len(flat) else pa.nulls(len(arr), flat.type)


def array_contains(arr, other, other_is_array: bool):
    """Scalar: the array holds it. Array: the array holds every element of it."""
    lengths, _, flat, valid = _parts(arr)
    n = len(lengths)
    rows = np.repeat(np.arange(n), lengths)
    if not other_is_array:  # one value, NULL included, to look for
        other = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), other)
    o_lengths, _, o_flat, o_valid = _parts(other)
    o_rows = np.repeat(np.arange(n), o_lengths)
    a_codes, o_codes = _codes(flat, o_flat)
    width = int(max(a_codes.max(initial=0), o_codes.max(initial=0)))
    found = np.isin(_row_keys(o_rows, o_codes, width), _row_keys(rows, a_codes, width))
    hits = np.bincount(o_rows[found], minlength=n)
    # Druid: a NULL array is NULL; a NULL array to look for is not contained
    out = np.where(o_valid, hits == o_lengths, False)
    return _bool(out, valid)


def array_overlap(a, b):
    lengths, _, flat, valid = _parts(a)
    n = len(lengths)
    b_lengths, _, b_flat, b_valid = _parts(b)
    rows, b_rows = np.repeat(np.arange(n), lengths), np.repeat(np.arange(n), b_lengths)
    a_codes, b_codes = _codes(flat, b_flat)
    width = int(max(a_codes.max(initial=0), b_codes.max(initial=0)))
    found = np.isin(_row_keys(b_rows, b_codes, width), _row_keys(rows, a_codes, width))
    return _bool(np.bincount(b_rows[found], minlength=n) > 0, valid & b_valid)


def array_append(arr, value, prepend: bool):
    lengths, starts, flat, valid = _parts(arr)
    pieces = [(lengths, starts, flat), _scalar_piece(value)]
    return _assemble(pieces[::-1] if prepend else pieces, valid, _list_type(arr))


def array_concat(a, b):
    lengths, starts, flat, valid = _parts(a)
    b_lengths, b_starts, b_flat, b_valid = _parts(b)
    return _assemble([(lengths, starts, flat), (b_lengths, b_starts, b_flat)], valid & b_valid, _list_type(a))


def array_slice(arr, start, end=None):
    """Druid's array_slice: NULL when start is NULL, negative, past the end, or after end."""
    lengths, starts, flat, valid = _parts(arr)
    s, s_valid = ex._ints(start)
    if end is None:
        e, e_valid = lengths, np.ones(len(lengths), dtype=bool)
    else:
        e, e_valid = ex._ints(end)
    ok = valid & s_valid & e_valid & (s >= 0) & (s <= lengths) & (s <= e)
    count = np.where(ok, np.minimum(e, lengths) - s, 0)
    return _assemble([(count, starts + np.where(ok, s, 0), flat)], ok, _list_type(arr))


def array_compare(a, b, fname: str):
    """Whole arrays compared as Druid's array comparator orders them (``sort_keys``: element
    by element, NULL elements first, a prefix first); a NULL array compares as NULL."""
    a, b = as_lists(a), as_lists(b)
    if b.type != a.type:
        b = b.cast(a.type)
    keys = sort_keys(pa.concat_arrays([a, b]))  # one ranking over both sides
    return getattr(pc, fname)(keys[:len(a)], keys[len(a):])


def _java_strings(flat: pa.Array) -> pa.Array:
    if pa.types.is_floating(flat.type):
        flat = ex._java_double_strings(flat)
    elif not ex._is_string_type(flat.type):
        flat = pc.cast(flat, pa.string())
    return pc.fill_null(flat, "null")


def array_to_string(arr, sep):
    """Elements as Java's String.valueOf writes them (NULL → ``null``), joined by ``sep``."""
    lengths, starts, flat, valid = _parts(arr)
    strings = _assemble([(lengths, starts, _java_strings(flat))], valid, pa.list_(pa.string()))
    return pc.binary_join(strings, sep)


def string_to_array(v, pattern: str):
    """Java's ``String.split(regex)``: an input with no match is one element, and trailing
    empty strings are dropped (so ``','`` gives an empty array)."""
    pieces = pc.split_pattern_regex(v, pattern)
    lengths, starts, flat, valid = _parts(pieces)
    n = len(lengths)
    rows = np.repeat(np.arange(n), lengths)
    within = np.arange(len(rows)) - starts[rows]
    nonempty = pc.greater(pc.binary_length(flat), 0).to_numpy(zero_copy_only=False) if len(flat) else \
        np.zeros(0, dtype=bool)
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, rows[nonempty], within[nonempty])
    keep = np.where(lengths == 1, 1, last + 1)  # no match at all: the input itself, even ''
    return _assemble([(keep, starts, flat)], valid, pa.list_(pa.string()))


# --- ingestion -----------------------------------------------------------------------------------

ARRAY_INGEST_MODES = ("array", "mvd", "none")


def ingest_mode(context: dict) -> str:
    """``arrayIngestMode`` (spec §1.9), ``array`` unless the context says otherwise."""
    mode = str(context.get("arrayIngestMode", "array")).lower()
    if mode not in ARRAY_INGEST_MODES:
        raise InvalidInput(f"Invalid value [{context.get('arrayIngestMode')}] for context parameter "
                           "[arrayIngestMode]. Valid values are [array, mvd, none]")
    return mode


def check_array_ingest(query, context: dict) -> None:
    """``arrayIngestMode``: ``array`` (default) stores ARRAY columns; ``mvd`` stores string
    arrays as multi-value strings (``mvd_columns``) and refuses numeric ones; ``none``
    refuses every array. Druid's messages (DimensionSchemaUtils)."""
    mode = ingest_mode(context)
    for name, e in query.columns:
        if not is_array(e.sql_type) or mode == "array":
            continue
        if e.sql_type != "VARCHAR ARRAY":
            raise InvalidInput(
                "Numeric arrays can only be ingested when 'arrayIngestMode' is set to 'array'. Current value of the "
                f"parameter is[{mode}]. Set 'arrayIngestMode' to 'array' in the query's context to ingest the "
                f"array of type[{ex.native_type(e.sql_type)}] in column[{name}].")
        if mode == "none":
            raise InvalidInput(
                "String arrays can not be ingested when 'arrayIngestMode' is set to 'none'. Set 'arrayIngestMode' "
                "in query context to 'array' to ingest the string array as an array, or ingest it as an MVD by "
                "explicitly casting the array to an MVD with the ARRAY_TO_MV function.")


def mvd_columns(output: list[tuple[str, str]], context: dict) -> list[str]:
    """The string-array columns ``arrayIngestMode: mvd`` stores as multi-value strings with
    Druid's ``multiValueHandling: ARRAY`` (values kept in order, not sorted). The query
    still types them ``VARCHAR ARRAY`` (``ARRAY<STRING>`` in signatures), as Druid's does."""
    if ingest_mode(context) != "mvd":
        return []
    return [name for name, t in output if t == "VARCHAR ARRAY"]


def has_multiple_values(table: pa.Table, columns: list[str], query) -> bool:
    """Whether a row holds several values in one of ``columns`` that is a multi-value string
    (Druid's ``RowKeyReader.hasMultipleValues``, which ``shuffleCheckHasMultipleValues``
    asks of each CLUSTERED BY field); ARRAY values are single values."""
    types = dict(query.output)
    for name in columns:
        if types.get(name) != "VARCHAR" or name not in table.column_names:
            continue
        col = table.column(name)
        if pa.types.is_list(col.type) and (pc.max(pc.list_value_length(col)).as_py() or 0) > 1:
            return True
    return False


def as_multi_value(table: pa.Table, names: list[str]) -> pa.Table:
    """``names`` stored as multi-value strings in row order: their fields lose the
    ``ARRAY<STRING>`` tag and say ``multiValueHandling: ARRAY``."""
    from msqcore.storage.segment import KEEP_ORDER_KEY
    for name in names:
        if name in table.column_names:
            i = table.column_names.index(name)
            field = pa.field(name, table.schema.field(i).type, metadata={KEEP_ORDER_KEY: b"ARRAY"})
            table = table.set_column(i, field, table.column(i))
    return table


def check_type_changes(existing: list[tuple[str, str]] | None, output: list[tuple[str, str]], context: dict,
                       skip: list[str]) -> None:
    """Druid's ``DruidSqlValidator.validateTypeChanges``: writing an array into a column that
    existing segments hold as a (multi-value) string, or a string into an array column, fails
    unless ``skip`` (``skipTypeVerification``) names the column."""
    if not existing:
        return
    mode = ingest_mode(context)
    old_types = dict(existing)
    for name, new_sql in output:
        old_sql = old_types.get(name)
        if old_sql is None or name in skip or name == "__time":
            continue
        # what the column is stored as: a VARCHAR ARRAY is a string in mvd mode
        new_array = is_array(new_sql) and not (mode == "mvd" and new_sql == "VARCHAR ARRAY")
        new_string = new_sql == "VARCHAR" or (is_array(new_sql) and not new_array)
        if not ((new_array and old_sql == "VARCHAR") or (new_string and is_array(old_sql))):
            continue
        message = (f"Cannot write into field[{name}] using type[{new_sql}] and arrayIngestMode[{mode}], since the "
                   f"existing type is[{old_sql}]")
        if new_string and is_array(new_sql) and mode == "mvd":
            message += f". Try setting arrayIngestMode to[array] to retain the SQL type[{new_sql}]"
        elif new_array and old_sql == "VARCHAR" and mode == "array":
            message += f'. Try wrapping this field using ARRAY_TO_MV(...) AS "{name}"'
        elif new_string and is_array(old_sql):
            message += (". Try" + (" setting arrayIngestMode to[array] and" if mode == "mvd" else "") +
                        " adjusting your query to make this column an ARRAY instead of VARCHAR")
        raise InvalidInput(message + ". See https://druid.apache.org/docs/latest/querying/arrays#arrayingestmode "
                           "for more details about this check and how to override it if needed.")


# --- UNNEST ----------------------------------------------------------------------------------------


class UnhandledPlanningFailure(Unsupported):
    """Druid's unnest rules take one expression without ordinality (``LogicalUnnestRule``
    unwraps an ``Uncollect`` only when it is not ``withOrdinality`` and its project has one
    expression), so ``UNNEST(a, b)`` and ``UNNEST(a) WITH ORDINALITY`` find no plan: the
    generic failure of ``QueryHandler.buildSQLPlanningError`` when no rule left a hint."""

    persona = "OPERATOR"

    def __init__(self):
        super().__init__("Unhandled Query Planning Failure, see broker logs for details")


# --- binding -------------------------------------------------------------------------------------


def _array_arg(name: str, e: Expr) -> Expr:
    if is_array(e.sql_type):
        return e
    if ex._is_null(e):
        return Literal(None, "VARCHAR ARRAY")
    raise InvalidInput(f"Cannot apply '{name}' to arguments of type '{name}(<{e.sql_type}>, ...)'")


def _element_arg(binder, e: Expr, element: str) -> Expr:
    """A scalar cast to the array's element type (Druid casts before comparing or adding)."""
    if ex._is_null(e):
        return Literal(None, element)
    return binder._cast_expr(e, element)


def _cast_array(e: Expr, target: str) -> Expr:
    if e.sql_type == target:
        return e
    if ex._is_null(e):
        return Literal(None, target)
    native = ex.native_type(target)
    return Call("cast", [e], target, _cast_list, f"CAST({{0}}, '{native}')", (target,))


def _cast_list(arr, target: str):
    """Element by element, as Druid's ExprEval.castTo (doubles to text as Java writes them)."""
    lengths, starts, flat, valid = _parts(arr)
    element = ELEMENT_TYPES[target]
    if element == "VARCHAR" and pa.types.is_floating(flat.type):
        flat = ex._java_double_strings(flat)
    else:
        flat = ex._cast(flat, element)
    return _assemble([(lengths, starts, flat)], valid, ex.arrow_type(target))


def bind_compare(binder, node, fname: str, sym: str, a: Expr, b: Expr) -> Expr:
    """``=``, ``<>``, ``<``... of two arrays (Calcite allows no array against a scalar);
    numeric arrays widen to DOUBLE ARRAY as their elements would."""
    if ex._is_null(a) or ex._is_null(b):
        a, b = (_cast_array(a, b.sql_type), b) if ex._is_null(a) else (a, _cast_array(b, a.sql_type))
    elif a.sql_type != b.sql_type:
        numeric = ("BIGINT ARRAY", "DOUBLE ARRAY")
        if a.sql_type not in numeric or b.sql_type not in numeric:
            op = _SQL_OPS[fname]
            raise InvalidInput(f"Cannot apply '{op}' to arguments of type '<{a.sql_type}> {op} <{b.sql_type}>'. "
                               f"Supported form(s): '<COMPARABLE_TYPE> {op} <COMPARABLE_TYPE>'")
        a, b = _cast_array(a, "DOUBLE ARRAY"), _cast_array(b, "DOUBLE ARRAY")
    return Call(fname, [a, b], "BOOLEAN", array_compare, f"({{0}} {sym} {{1}})", (fname,))


_SQL_OPS = {"equal": "=", "not_equal": "<>", "greater": ">", "greater_equal": ">=", "less": "<", "less_equal": "<="}


def bind_array(binder, name, args):
    """ARRAY[a, b, ...]: every element of one type (numbers widen)."""
    if not args:
        raise InvalidInput("Cannot infer the type of an empty ARRAY[] constructor")
    types = {a.sql_type for a in args if not ex._is_null(a)}
    if any(is_array(t) for t in types):
        raise InvalidInput("Arrays of arrays are not supported")
    if not types:
        element = "VARCHAR"
    elif len(types) == 1:
        element = ELEMENT_TYPES[ARRAY_OF[types.pop()]]
    elif types <= {"BIGINT", "DOUBLE", "FLOAT", "BOOLEAN", "TIMESTAMP"}:
        element = "DOUBLE" if types & {"DOUBLE", "FLOAT"} else "BIGINT"
    else:
        raise InvalidInput("Parameters must be of the same type")
    items = [_element_arg(binder, a, element) for a in args]
    return Call("array", items, ARRAY_OF[element], _construct, f"array({ex._fmt_args(len(items))})", (element,))


def _construct(*args):
    *values, element = args
    return array_construct(*values, type_=ex.arrow_type(ARRAY_OF[element]))


def bind_length(binder, name, args):
    arr = _array_arg(name, args[0])
    return Call("array_length", [arr], "BIGINT", array_length, "array_length({0})")


def bind_offset(binder, name, args):
    arr = _array_arg(name, args[0])
    one_based = name.endswith("ORDINAL")
    index = binder._cast_expr(args[1], "BIGINT") if args[1].sql_type != "BIGINT" else args[1]
    fn = "array_ordinal" if one_based else "array_offset"
    return Call(fn, [arr, index], ELEMENT_TYPES[arr.sql_type], array_offset, fn + "({0},{1})", (one_based,))


def bind_contains(binder, name, args):
    arr = _array_arg(name, args[0])
    element = ELEMENT_TYPES[arr.sql_type]
    other = args[1]
    if is_array(other.sql_type):
        other = _cast_array(other, arr.sql_type)
    else:
        other = _element_arg(binder, other, element)
    return Call("array_contains", [arr, other], "BOOLEAN", array_contains, "array_contains({0},{1})",
                (is_array(other.sql_type),))


def bind_overlap(binder, name, args):
    a = _array_arg(name, args[0])
    b = _cast_array(_array_arg(name, args[1]), a.sql_type)
    return Call("array_overlap", [a, b], "BOOLEAN", array_overlap, "array_overlap({0},{1})")


def bind_append(binder, name, args):
    prepend = name.endswith("PREPEND")
    arr, value = (args[1], args[0]) if prepend else (args[0], args[1])
    arr = _array_arg(name, arr)
    value = _element_arg(binder, value, ELEMENT_TYPES[arr.sql_type])
    fmt = "array_prepend({1},{0})" if prepend else "array_append({0},{1})"
    return Call("array_prepend" if prepend else "array_append", [arr, value], arr.sql_type, array_append, fmt,
                (prepend,))


def bind_concat(binder, name, args):
    a = _array_arg(name, args[0])
    b = _cast_array(_array_arg(name, args[1]), a.sql_type)
    return Call("array_concat", [a, b], a.sql_type, array_concat, "array_concat({0},{1})")


def bind_slice(binder, name, args):
    arr = _array_arg(name, args[0])
    bounds = [binder._cast_expr(a, "BIGINT") for a in args[1:]]
    return Call("array_slice", [arr, *bounds], arr.sql_type, array_slice,
                f"array_slice({ex._fmt_args(len(bounds) + 1)})")


def bind_to_string(binder, name, args):
    arr = _array_arg(name, args[0])
    sep = binder._string_arg(args[1])
    return Call("array_to_string", [arr, sep], "VARCHAR", array_to_string, "array_to_string({0},{1})")


def bind_string_to_array(binder, name, args):
    value = binder._string_arg(args[0])
    delimiter = binder._literal_arg(args[1], name, "delimiter", "str")
    if delimiter is None:
        return Literal(None, "VARCHAR ARRAY")
    pattern, _ = ex._java_regex(delimiter, wrap=False)
    try:
        re.compile(pattern)
    except re.error as e:
        raise InvalidInput(f"Function[{name}] invalid delimiter pattern [{delimiter}]: {e}") from None
    return Call("string_to_array", [value, args[1]], "VARCHAR ARRAY", _string_to_array_fn,
                "string_to_array({0},{1})", (pattern,))


def _string_to_array_fn(v, _delimiter, pattern):
    return string_to_array(v, pattern)


def mv_filter(v, values, keep: bool):
    """MV_FILTER_ONLY (``keep``) / MV_FILTER_NONE: the values of ``v`` in / not in ``values``."""
    lengths, starts, flat, valid = _parts(v)
    n = len(lengths)
    rows = np.repeat(np.arange(n), lengths)
    member = pc.fill_null(pc.is_in(flat, value_set=values), False).to_numpy(zero_copy_only=False)
    chosen = member if keep else ~member
    kept = np.bincount(rows[chosen], minlength=n)
    index = np.nonzero(chosen)[0]
    return _assemble([(kept, np.zeros(n, dtype=np.int64) + np.concatenate([[0], np.cumsum(kept)[:-1]]),
                       flat.take(pa.array(index)))], valid, pa.list_(pa.string()))


def mv_to_array(v):
    return as_lists(v)


def _mv_arg(name: str, e: Expr) -> Expr:
    """A multi-value string (a VARCHAR, one or several values per row) or an array."""
    if e.sql_type == "VARCHAR" or is_array(e.sql_type):
        return e
    if ex._is_null(e):
        return Literal(None, "VARCHAR")
    raise InvalidInput(f"Cannot apply '{name}' to arguments of type '{name}(<{e.sql_type}>, ...)'")


def _mv_result(e: Expr) -> Expr:
    """An MV_ function's array result is a multi-value VARCHAR (values stay lists)."""
    e.sql_type = "VARCHAR" if is_array(e.sql_type) else e.sql_type
    return e


def _mv_array(name: str, e: Expr) -> Expr:
    """Bound as VARCHAR ARRAY for the array kernels (which take plain strings as one-value lists)."""
    e = _mv_arg(name, e)
    if e.sql_type == "VARCHAR":
        return _MvAsArray(e)
    return e


class _MvAsArray(Expr):
    """A VARCHAR (maybe multi-valued) read as VARCHAR ARRAY; renders as itself (Druid's
    array functions take multi-value strings as they are)."""

    def __init__(self, inner: Expr):
        self.inner = inner
        self.sql_type = "VARCHAR ARRAY"

    def eval(self, table):
        v = self.inner.eval(table)
        if isinstance(v, pa.Scalar):
            return v if isinstance(v, pa.ListScalar) else \
                pa.scalar(None if not v.is_valid else [v.as_py()], pa.list_(pa.string()))
        return as_lists(v)

    def native(self):
        return self.inner.native()

    def columns(self):
        return self.inner.columns()

    def __eq__(self, other):
        return isinstance(other, _MvAsArray) and other.inner == self.inner


def bind_mv(binder, name, args):
    """MV_* functions: Druid's array functions over multi-value strings, VARCHAR results."""
    target = _MV_TARGETS[name]
    if name in ("MV_APPEND", "MV_PREPEND"):
        pos = 0 if name == "MV_APPEND" else 1
        args = list(args)
        args[pos] = _mv_array(name, args[pos])
        args[1 - pos] = binder._string_arg(args[1 - pos]) if not ex._is_null(args[1 - pos]) else args[1 - pos]
    elif name == "MV_OVERLAP":
        args = [_mv_array(name, a) for a in args]
    elif name == "MV_CONCAT":
        args = [_mv_array(name, a) for a in args]
    else:
        args = [_mv_array(name, args[0]), *args[1:]]
    out = HANDLERS[target][0](binder, target, args)
    return _mv_result(out) if target not in ("ARRAY_LENGTH", "ARRAY_CONTAINS", "ARRAY_OVERLAP",
                                             "ARRAY_TO_STRING") else out


def bind_mv_filter(binder, name, args):
    v = _mv_arg(name, args[0])
    values = args[1]
    if not isinstance(values, Call) or values.op != "array" or not all(isinstance(a, Literal) for a in values.args):
        raise InvalidInput(f"Function[{name}] needs an ARRAY literal as its second argument")
    literal = pa.array([ex._cast(pa.array([a.value], ex.arrow_type(a.sql_type)), "VARCHAR")[0].as_py()
                        if a.value is not None else None for a in values.args], pa.string())
    keep = name == "MV_FILTER_ONLY"
    condition = f"array_contains({values.native()}, x)" if keep else f"!array_contains({values.native()}, x)"
    return Call("filter", [v], "VARCHAR", mv_filter, f"filter((x) -> {condition}, {{0}})", (literal, keep))


def bind_string_to_mv(binder, name, args):
    return _mv_result(bind_string_to_array(binder, "STRING_TO_ARRAY", args))


def bind_mv_to_array(binder, name, args):
    v = _mv_arg(name, args[0])
    if is_array(v.sql_type):
        raise InvalidInput(f"Cannot apply '{name}' to arguments of type '{name}(<{v.sql_type}>)'")
    return Call("mv_to_array", [v], "VARCHAR ARRAY", mv_to_array, "mv_to_array({0})")


def bind_array_to_mv(binder, name, args):
    arr = _array_arg(name, args[0])
    arr = _cast_array(arr, "VARCHAR ARRAY")
    return Call("array_to_mv", [arr], "VARCHAR", mv_to_array, "array_to_mv({0})")


_MV_TARGETS = {"MV_LENGTH": "ARRAY_LENGTH", "MV_OFFSET": "ARRAY_OFFSET", "MV_ORDINAL": "ARRAY_ORDINAL",
               "MV_CONTAINS": "ARRAY_CONTAINS", "MV_OVERLAP": "ARRAY_OVERLAP", "MV_APPEND": "ARRAY_APPEND",
               "MV_PREPEND": "ARRAY_PREPEND", "MV_CONCAT": "ARRAY_CONCAT", "MV_SLICE": "ARRAY_SLICE",
               "MV_TO_STRING": "ARRAY_TO_STRING"}

# kernels that take lists as they are (anything else is mapped over multi-value strings)
LIST_FUNCTIONS = frozenset({_construct, array_length, array_offset, array_contains, array_overlap, array_append,
                            array_concat, array_slice, array_to_string, _string_to_array_fn, mv_filter,
                            mv_to_array, _cast_list, array_compare})

# name → (binder, min args, max args)
HANDLERS = {
    "ARRAY": (bind_array, 0, 1000),
    "ARRAY_LENGTH": (bind_length, 1, 1),
    "ARRAY_OFFSET": (bind_offset, 2, 2), "ARRAY_ORDINAL": (bind_offset, 2, 2),
    "ARRAY_CONTAINS": (bind_contains, 2, 2), "ARRAY_OVERLAP": (bind_overlap, 2, 2),
    "ARRAY_APPEND": (bind_append, 2, 2), "ARRAY_PREPEND": (bind_append, 2, 2),
    "ARRAY_CONCAT": (bind_concat, 2, 2), "ARRAY_SLICE": (bind_slice, 2, 3),
    "ARRAY_TO_STRING": (bind_to_string, 2, 2), "STRING_TO_ARRAY": (bind_string_to_array, 2, 2),
    "MV_LENGTH": (bind_mv, 1, 1), "MV_OFFSET": (bind_mv, 2, 2), "MV_ORDINAL": (bind_mv, 2, 2),
    "MV_CONTAINS": (bind_mv, 2, 2), "MV_OVERLAP": (bind_mv, 2, 2), "MV_APPEND": (bind_mv, 2, 2),
    "MV_PREPEND": (bind_mv, 2, 2), "MV_CONCAT": (bind_mv, 2, 2), "MV_SLICE": (bind_mv, 2, 3),
    "MV_TO_STRING": (bind_mv, 2, 2), "STRING_TO_MV": (bind_string_to_mv, 2, 2),
    "MV_FILTER_ONLY": (bind_mv_filter, 2, 2), "MV_FILTER_NONE": (bind_mv_filter, 2, 2),
    "MV_TO_ARRAY": (bind_mv_to_array, 1, 1), "ARRAY_TO_MV": (bind_array_to_mv, 1, 1),
}
