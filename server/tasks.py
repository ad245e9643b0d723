"""Task APIs: submit (``/druid/v2/sql/task``) and the Overlord's task routes."""
from __future__ import annotations

from aiohttp import web

from msqcore.errors import InvalidInput
from .keys import CLUSTER
from .middlewares import compact


def _json(obj, status: int = 200) -> web.Response:
    return web.json_response(obj, status=status, dumps=compact)


async def read_json_body(request: web.Request) -> dict:
    text = await request.text()
    try:
        import json
        body = json.loads(text) if text.strip() else None
    except ValueError as e:
        raise InvalidInput(f"Malformed request body: {e}") from None
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object with a 'query' field")
    return body


async def run_blocking(request: web.Request, fn, *args):
    return await request.loop.run_in_executor(None, fn, *args)


async def submit_task(request: web.Request) -> web.Response:
    body = await read_json_body(request)
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("Missing or empty 'query' in the request body")
    task_id = await run_blocking(request, request.app[CLUSTER].submit_task, query, body.get("context"),
                                 body.get("parameters"))
    return _json({"taskId": task_id, "state": "RUNNING"}, status=202)


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


async def datasource_segments(request: web.Request) -> web.Response:
    segments = await run_blocking(request, request.app[CLUSTER].segments, request.match_info["datasource"])
    if "full" in request.query:
        return _json(segments)
    return _json([s["identifier"] for s in segments])


async def metadata_datasources(request: web.Request) -> web.Response:
    return _json(await run_blocking(request, request.app[CLUSTER].datasources))
