"""``POST /druid/v2/sql`` and ``DELETE /druid/v2/sql/{id}``: Druid's SQL endpoint (the Broker).

Bodies are written the way Druid's ``ResultFormat`` writers write them: compact JSON, one
trailing newline after the ``object``/``array`` document, one value per line plus an empty
line for the line formats and csv (so a client can tell a complete response from a cut one).
TIMESTAMP values are ISO-8601 strings in ``sqlTimeZone``.
"""
from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import re
import urllib.parse
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from aiohttp import web

from msqcore.engine.operators import to_base64
from msqcore.errors import DruidException, InvalidInput
from msqcore.kernels import jodatime
from msqcore.kernels.timeparse import format_iso_millis
from msqcore.planner import arrays, json_functions
from msqcore.planner.expressions import java_double, native_type, sql_type_name
from msqcore.planner.tasks import bool_context

from .keys import CLUSTER
from .middlewares import error_response
from .common import read_json_body

FORMATS = ("object", "array", "objectLines", "arrayLines", "csv")
CONTENT_TYPES = {"object": "application/json", "array": "application/json", "objectLines": "text/plain",
                 "arrayLines": "text/plain", "csv": "text/csv"}
QUERY_ID_HEADER = "X-Druid-SQL-Query-Id"
HEADER_INCLUDED = "X-Druid-SQL-Header-Included"
_POLL_SECONDS = 0.05


async def read_sql_body(request: web.Request) -> dict:
    """The SQL request object; a text/plain or form body is the SQL itself (object format)."""
    if request.content_type == "text/plain":
        return {"query": await request.text()}
    if request.content_type == "application/x-www-form-urlencoded":
        return {"query": urllib.parse.unquote_plus(await request.text())}
    return await read_json_body(request)


def request_options(body: dict) -> tuple[str, str, bool, bool, bool, dict, list | None]:
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("Missing or empty 'query' in the request body")
    fmt = body.get("resultFormat") or "object"
    if fmt not in FORMATS:
        raise InvalidInput(f"Unsupported resultFormat [{fmt}]; expected one of {', '.join(FORMATS)}")
    context = body.get("context") or {}
    if not isinstance(context, dict):
        raise InvalidInput("Query context must be a JSON object")
    parameters = body.get("parameters")
    if parameters is not None and not isinstance(parameters, list):
        raise InvalidInput("Query parameters must be a JSON array")
    return (query, fmt, bool(body.get("header")), bool(body.get("typesHeader")), bool(body.get("sqlTypesHeader")),
            context, parameters)


async def sql_query(request: web.Request) -> web.Response:
    cluster = request.app[CLUSTER]
    query, fmt, header, types, sql_types, context, parameters = request_options(await read_sql_body(request))
    query_id = str(context.get("sqlQueryId") or uuid.uuid4())
    context = dict(context, sqlQueryId=query_id)
    headers = {QUERY_ID_HEADER: query_id}
    try:
        handle = cluster.begin_sql(query_id, context)
        try:
            logical, table = await _run(request, cluster, handle, query, context, parameters)
        finally:
            cluster.end_sql(handle)
        effective = _effective_context(query, context)
        text = render(table, logical.output, fmt, header, types, sql_types, _zone(effective),
                      bool_context(effective, "sqlStringifyArrays", True))
    except Exception as exc:  # noqa: BLE001 - the error middleware's answer, with the query id
        response = error_response(request, exc)
        response.headers[QUERY_ID_HEADER] = query_id
        return response
    if header:
        headers[HEADER_INCLUDED] = "yes"
    return web.Response(text=text, content_type=CONTENT_TYPES[fmt], headers=headers)


async def _run(request, cluster, handle, query, context, parameters):
    """Run the query in the executor; stop waiting when it is canceled or its timeout passes."""
    future = asyncio.get_running_loop().run_in_executor(None, cluster.run_sql, query, context, parameters)
    while True:
        done, _ = await asyncio.wait({future}, timeout=_POLL_SECONDS)
        if done:
            return future.result()
        try:
            handle.check()
        except DruidException:
            handle.canceled.set()  # the query's thread stops at its next checkpoint
            future.add_done_callback(_ignore_result)
            raise


def _ignore_result(future) -> None:
    if not future.cancelled():
        future.exception()


async def cancel_query(request: web.Request) -> web.Response:
    """``DELETE /druid/v2/sql/{id}``: 202 if a query with that id was running, else 404."""
    if request.app[CLUSTER].cancel_sql(request.match_info["query_id"]):
        return web.Response(status=202)
    return web.Response(status=404)


def _effective_context(query: str, context: dict) -> dict:
    """The request context with the statement's ``SET k = v;`` entries applied (they win)."""
    if not re.search(r"\bSET\b", query, re.IGNORECASE):
        return context
    from msqcore.cluster import parsed_statement
    return {**context, **parsed_statement(query)[2]}


# --- rendering ---------------------------------------------------------------------------------------

def _zone(context: dict) -> str:
    tz = context.get("sqlTimeZone")
    if tz in (None, ""):
        return "UTC"
    try:
        return jodatime.zone_id(tz)
    except ValueError:
        raise InvalidInput(f"Invalid value for sqlTimeZone: The datetime zone id '{tz}' is not recognised") from None


def format_timestamps(millis: pa.Array, zone: str) -> pa.Array:
    """Joda's ``DateTime.toString()`` in ``zone``: ``2015-09-12T00:46:58.771Z`` or ``...-07:00``."""
    if zone == "UTC":
        return format_iso_millis(millis)
    valid = pc.is_valid(millis).to_numpy(zero_copy_only=False)
    values = pc.fill_null(millis, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    local = jodatime.JodaFormat("yyyy-MM-dd'T'HH:mm:ss.SSS", zone).format(values)
    offsets = jodatime.offsets(values, zone)
    suffix = pa.array(["Z" if o == 0 else "%s%02d:%02d" % ("-" if o < 0 else "+", abs(o) // 3_600_000,
                                                          abs(o) // 60_000 % 60) for o in offsets.tolist()],
                      pa.string())
    out = pc.binary_join_element_wise(local, suffix, "")
    return out if valid.all() else pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))


def _values(table: pa.Table, output, zone: str, stringify_arrays: bool = True) -> list[list]:
    """Column values as Druid's SQL endpoint writes them (``SqlResults.coerce``): TIMESTAMP as
    ISO strings, ARRAY values as their JSON text unless ``sqlStringifyArrays`` is false."""
    columns = []
    for name, sql_type in output:
        col = table.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if sql_type == "TIMESTAMP":
            col = format_timestamps(pc.cast(col, pa.int64()), zone)
        elif sql_type == "BOOLEAN":
            col = pc.cast(col, pa.bool_())
        elif sql_type == "VARCHAR" and pa.types.is_list(col.type):
            # a multi-value string: one value as itself, several as their JSON array text
            columns.append([dumps(v) if isinstance(v, list) else v for v in arrays.row_objects(col)])
            continue
        elif sql_type.endswith(" ARRAY"):
            # sqlStringifyArrays (default true): an ARRAY result is its JSON text, else a JSON array
            values = col.to_pylist()
            columns.append([None if v is None else dumps(v) for v in values] if stringify_arrays else
                           [None if v is None else JavaList(v) for v in values])
            continue
        elif sql_type == "COMPLEX<json>":
            columns.append(json_functions.render_values(col))  # nested JSON, not its text
            continue
        elif sql_type.startswith("COMPLEX<") and (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
            col = to_base64(col)  # Jackson writes byte[] (a stored sketch) as base64
        elif pa.types.is_floating(col.type) and not pc.all(pc.fill_null(pc.is_finite(col), True)).as_py():
            columns.append([_jackson_number(v) for v in col.to_pylist()])
            continue
        columns.append(col.to_pylist())
    return columns


def _jackson_number(v):
    """Jackson writes non-finite doubles as quoted names (QUOTE_NON_NUMERIC_NUMBERS)."""
    if v is None or math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def dumps(obj) -> str:
    """Jackson's output: compact, non-ASCII kept as is."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)


def render(table: pa.Table, output, fmt: str, header: bool, types: bool, sql_types: bool,
           zone: str = "UTC", stringify_arrays: bool = True) -> str:
    columns = _values(table, output, zone, stringify_arrays)
    rows = [list(r) for r in zip(*columns)] if columns else [[] for _ in range(table.num_rows)]
    return render_rows(rows, output, fmt, header, types, sql_types)


def render_rows(rows: list[list], output, fmt: str, header: bool = False, types: bool = False,
                sql_types: bool = False) -> str:
    """``rows`` (already in output form) in one of Druid's result formats."""
    names = [n for n, _ in output]
    head_rows: list = []
    if header:
        if fmt in ("object", "objectLines"):
            if types or sql_types:
                head = {}
                for n, t in output:
                    entry = {}
                    if types:
                        entry["type"] = native_type(t)
                    if sql_types:
                        entry["sqlType"] = sql_type_name(t)
                    head[n] = entry
            else:
                head = {n: None for n in names}
            head_rows.append(head)
        else:
            head_rows.append(names)
            if types:
                head_rows.append([native_type(t) for _, t in output])
            if sql_types:
                head_rows.append([sql_type_name(t) for _, t in output])
    if fmt in ("object", "objectLines"):
        body = head_rows + [dict(zip(names, r)) for r in rows]
    else:
        body = head_rows + rows
    if fmt in ("object", "array"):
        return dumps(body) + "\n"
    if fmt in ("objectLines", "arrayLines"):
        return "".join(dumps(r) + "\n" for r in body) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for r in body:
        writer.writerow(["" if v is None else _csv_value(v) for v in r])
    return out.getvalue() + "\n"


class JavaList(list):
    """An unstringified ARRAY value: a JSON array, and in csv what Java's ``List.toString``
    writes (``[a, null, 1.0]``), as Druid's CsvWriter calls ``toString()`` on it."""

    def java_text(self) -> str:
        return "[" + ", ".join("null" if x is None else java_double(x) if isinstance(x, float) else str(x)
                               for x in self) + "]"


def _csv_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, JavaList):
        return v.java_text()
    if isinstance(v, (dict, list)):
        return dumps(v)
    return v
