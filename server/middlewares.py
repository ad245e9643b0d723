"""Errors as Druid renders them: never a stack trace page."""
from __future__ import annotations

import json
import logging

from aiohttp import web

from msqcore.errors import DruidException, NotFound

log = logging.getLogger("msqcore.server")


def druid_error(exc: DruidException) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.http_status, dumps=compact)


def compact(obj) -> str:
    """Jackson's default output: no spaces, UTF-8 kept as is."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except NotFound as exc:
        if request.path.startswith("/druid/indexer/v1/task/"):
            # Druid's TaskResourceFilter answers unknown ids with a plain-text 404.
            return web.Response(status=404, text=exc.message, content_type="text/plain")
        return druid_error(exc)
    except DruidException as exc:
        return druid_error(exc)
    except Exception as exc:  # noqa: BLE001 - last resort: a Druid-shaped 500
        log.exception("unexpected error on %s %s", request.method, request.path)
        body = {"error": "druidException", "errorCode": "internalServerError", "persona": "OPERATOR",
                "category": "RUNTIME_FAILURE", "errorMessage": f"{type(exc).__name__}: {exc}", "context": {}}
        return web.json_response(body, status=500, dumps=compact)
