"""Task APIs: submit (``/druid/v2/sql/task``) and the Overlord's task routes."""
from __future__ import annotations

from aiohttp import web

from msqcore.errors import InvalidInput

from .common import json_response as _json
from .common import read_json, read_json_body, run_blocking  # noqa: F401 - re-exported for the other handlers
from .keys import CLUSTER


async def submit_task(request: web.Request) -> web.Response:
    body = await read_json_body(request)
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("Missing or empty 'query' in the request body")
    cluster = request.app[CLUSTER]
    explained = await run_blocking(request, cluster.explain_task, query, body.get("context"), body.get("parameters"))
    if explained is not None:
        # EXPLAIN PLAN FOR answers with a normal SQL result set (Druid's SqlTaskResource)
        from .sql import CONTENT_TYPES, HEADER_INCLUDED, render, request_options
        _, fmt, header, types, sql_types, _, _ = request_options(body)
        logical, table = explained
        headers = {HEADER_INCLUDED: "yes"} if header else None
        return web.Response(text=render(table, logical.output, fmt, header, types, sql_types),
                            content_type=CONTENT_TYPES[fmt], headers=headers)
    task_id = await run_blocking(request, cluster.submit_task, query, body.get("context"), body.get("parameters"))
    return _json({"taskId": task_id, "state": "RUNNING"}, status=202)


async def post_task(request: web.Request) -> web.Response:
    """``POST /druid/indexer/v1/task``: a native task JSON (msqcore runs ``kill``)."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a task JSON object")
    task_id = await run_blocking(request, request.app[CLUSTER].submit_native_task, body)
    return _json({"task": task_id})


async def task_enabled(request: web.Request) -> web.Response:
    return _json({"enabled": True})


async def task_payload(request: web.Request) -> web.Response:
    return _json(await run_blocking(request, request.app[CLUSTER].task_payload, request.match_info["task_id"]))


async def task_status(request: web.Request) -> web.Response:
    return _json(await run_blocking(request, request.app[CLUSTER].task_status, request.match_info["task_id"]))


async def task_reports(request: web.Request) -> web.Response:
    return _json(await run_blocking(request, request.app[CLUSTER].task_report, request.match_info["task_id"]))


async def task_shutdown(request: web.Request) -> web.Response:
    return _json(await run_blocking(request, request.app[CLUSTER].shutdown_task, request.match_info["task_id"]))


async def list_tasks(request: web.Request) -> web.Response:
    tasks = await run_blocking(request, request.app[CLUSTER].list_tasks)
    state = request.query.get("state")
    if state:
        want = {"running": ("RUNNING",), "complete": ("SUCCESS", "FAILED"), "waiting": (), "pending": ()}
        tasks = [t for t in tasks if t["statusCode"] in want.get(state.lower(), ())]
    if request.query.get("datasource"):
        tasks = [t for t in tasks if t["dataSource"] == request.query["datasource"]]
    if request.query.get("type"):
        tasks = [t for t in tasks if t["type"] == request.query["type"]]
    if request.query.get("max"):
        tasks = tasks[: int(request.query["max"])]
    return _json(tasks)
