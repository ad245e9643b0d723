"""``POST /druid/v2/sql``: SELECT over published segments, in Druid's result formats."""
from __future__ import annotations

import csv
import io
import json
import uuid

import pyarrow as pa
import pyarrow.compute as pc
from aiohttp import web

from msqcore.errors import InvalidInput
from msqcore.kernels.timeparse import format_iso_millis
from msqcore.planner.expressions import native_type

from .keys import CLUSTER
from .tasks import run_blocking

FORMATS = ("object", "array", "objectLines", "arrayLines", "csv")
_CONTENT_TYPES = {"object": "application/json", "array": "application/json", "objectLines": "text/plain",
                  "arrayLines": "text/plain", "csv": "text/csv"}


async def sql_query(request: web.Request) -> web.Response:
    if request.content_type in ("text/plain", "application/x-www-form-urlencoded"):
        body = {"query": await request.text()}
    else:
        from .tasks import read_json_body
        body = await read_json_body(request)
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("Missing or empty 'query' in the request body")
    fmt = body.get("resultFormat") or "object"
    if fmt not in FORMATS:
        raise InvalidInput(f"Unsupported resultFormat [{fmt}]; expected one of {', '.join(FORMATS)}")
    context = body.get("context") or {}
    if not isinstance(context, dict):
        raise InvalidInput("Query context must be a JSON object")
    query_id = str(context.get("sqlQueryId") or uuid.uuid4())
    logical, table = await run_blocking(request, request.app[CLUSTER].run_sql, query, context,
                                        body.get("parameters"))
    output = logical.output
    text = render(table, output, fmt, bool(body.get("header")), bool(body.get("typesHeader")),
                  bool(body.get("sqlTypesHeader")))
    headers = {"X-Druid-SQL-Query-Id": query_id}
    if body.get("header"):
        headers["X-Druid-SQL-Header-Included"] = "yes"
    return web.Response(text=text, content_type=_CONTENT_TYPES[fmt], headers=headers)


def _values(table: pa.Table, output: list[tuple[str, str]]) -> list[list]:
    """Column values as Druid's SQL endpoint writes them: TIMESTAMP as ISO strings."""
    columns = []
    for name, sql_type in output:
        col = table.column(name)
        if sql_type == "TIMESTAMP":
            col = format_iso_millis(pc.cast(col, pa.int64()).combine_chunks()
                                    if isinstance(col, pa.ChunkedArray) else col)
        elif sql_type == "BOOLEAN":
            col = pc.cast(col, pa.bool_())
        columns.append(col.to_pylist())
    return columns


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)


def render(table: pa.Table, output, fmt: str, header: bool, types: bool, sql_types: bool) -> str:
    names = [n for n, _ in output]
    columns = _values(table, output)
    rows = list(zip(*columns)) if columns else [() for _ in range(table.num_rows)]
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
                        entry["sqlType"] = t
                    head[n] = entry
            else:
                head = {n: None for n in names}
            head_rows.append(head)
        else:
            head_rows.append(names)
            if types:
                head_rows.append([native_type(t) for _, t in output])
            if sql_types:
                head_rows.append([t for _, t in output])
    if fmt in ("object", "objectLines"):
        body = head_rows + [dict(zip(names, r)) for r in rows]
    else:
        body = head_rows + [list(r) for r in rows]
    if fmt in ("object", "array"):
        return _dumps(body) + "\n"
    if fmt in ("objectLines", "arrayLines"):
        return "".join(_dumps(r) + "\n" for r in body) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for r in body:
        writer.writerow(["" if v is None else v for v in r])
    return out.getvalue() + "\n"
