"""``/druid/v2/sql/statements``: asynchronous SQL statements over MSQ tasks (see ``msqcore.statements``)."""
from __future__ import annotations

from aiohttp import web

from msqcore import statements
from msqcore.errors import InvalidInput

from .common import json_response, run_blocking
from .keys import CLUSTER
from .sql import CONTENT_TYPES, HEADER_INCLUDED, read_sql_body, render, render_rows, request_options


async def enabled(request: web.Request) -> web.Response:
    return json_response({"enabled": True})


async def submit(request: web.Request) -> web.Response:
    body = await read_sql_body(request)
    query, fmt, header, types, sql_types, context, parameters = request_options(body)
    cluster = request.app[CLUSTER]
    context = statements.check_context(context)
    explained = await run_blocking(request, cluster.explain_task, query, context, parameters)
    if explained is not None:
        logical, table = explained
        headers = {HEADER_INCLUDED: "yes"} if header else None
        return web.Response(text=render(table, logical.output, fmt, header, types, sql_types),
                            content_type=CONTENT_TYPES[fmt], headers=headers)
    result = await run_blocking(request, cluster.submit_statement, query, context, parameters, fmt)
    return json_response(result)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() not in ("false", "0", "")


async def status(request: web.Request) -> web.Response:
    result = await run_blocking(request, request.app[CLUSTER].statement_status, request.match_info["query_id"],
                                _flag(request, "detail"))
    return json_response(result)


async def results(request: web.Request) -> web.Response:
    query_id = request.match_info["query_id"]
    page = request.query.get("page")
    try:
        page_number = None if page in (None, "") else int(page)
    except ValueError:
        raise InvalidInput(f"Invalid value [{page}] for [page]") from None
    filename = request.query.get("filename")
    headers = {}
    if filename is not None:
        headers["Content-Disposition"] = f'attachment; filename="{statements.validate_filename(filename)}"'
    found = await run_blocking(request, request.app[CLUSTER].statement_results, query_id, page_number,
                               request.query.get("resultFormat"))
    if found is None:  # an ingestion: nothing to return
        return web.Response(status=200, headers=headers)
    schema, rows, fmt = found
    output = [(c["name"], c["type"]) for c in schema]
    return web.Response(text=render_rows(rows, output, fmt), content_type=CONTENT_TYPES[fmt], headers=headers)


async def cancel(request: web.Request) -> web.Response:
    accepted = await run_blocking(request, request.app[CLUSTER].cancel_statement, request.match_info["query_id"])
    return web.Response(status=202 if accepted else 200)
