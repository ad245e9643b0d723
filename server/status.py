"""Health and version."""
from aiohttp import web

import msqcore
from .middlewares import compact


async def health(request: web.Request) -> web.Response:
    return web.json_response(True, dumps=compact)


async def status(request: web.Request) -> web.Response:
    return web.json_response({"version": msqcore.__version__, "modules": [], "memory": {}}, dumps=compact)
