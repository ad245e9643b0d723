"""Small helpers the handlers share: JSON bodies in and out, and running blocking calls."""
from __future__ import annotations

import json

from aiohttp import web

from msqcore.errors import InvalidInput

from .middlewares import compact


def json_response(obj, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.json_response(obj, status=status, dumps=compact, headers=headers)


async def read_json_body(request: web.Request) -> dict:
    text = await request.text()
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError as e:
        raise InvalidInput(f"Malformed request body: {e}") from None
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object with a 'query' field")
    return body


async def read_json(request: web.Request):
    """Any JSON value (or None for an empty body)."""
    text = await request.text()
    try:
        return json.loads(text) if text.strip() else None
    except ValueError as e:
        raise InvalidInput(f"Malformed request body: {e}") from None


async def run_blocking(request: web.Request, fn, *args, **kwargs):
    if kwargs:
        return await request.loop.run_in_executor(None, lambda: fn(*args, **kwargs))
    return await request.loop.run_in_executor(None, fn, *args)
