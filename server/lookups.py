"""``/druid/coordinator/v1/lookups``: the lookup configuration API (Druid's
``LookupCoordinatorResource``). Errors are ``{"error": message}``; a missing tier or lookup is a
404, an accepted change a 202."""
from __future__ import annotations

from aiohttp import web

from msqcore.lookups import DEFAULT_TIER

from .common import json_response, read_json, run_blocking
from .keys import CLUSTER


def _store(request: web.Request):
    return request.app[CLUSTER].lookups


async def tiers(request: web.Request) -> web.Response:
    known = await run_blocking(request, _store(request).all)
    if request.query.get("discover", "false").lower() == "true":
        return json_response(sorted(set(known or {}) | {DEFAULT_TIER}))
    if known is None:
        return web.Response(status=404)
    return json_response(list(known))


async def all_lookups(request: web.Request) -> web.Response:
    known = await run_blocking(request, _store(request).all)
    if known is None:
        return web.Response(status=404)
    return json_response(known)


async def update_all(request: web.Request) -> web.Response:
    body = await read_json(request)
    update = await run_blocking(request, _store(request).update_all, body)
    return json_response(update, status=202)


async def tier(request: web.Request) -> web.Response:
    name = request.match_info["tier"]
    known = await run_blocking(request, _store(request).all)
    if known is None:
        return json_response({"error": "No lookups found"}, status=404)
    if name not in known:
        return json_response({"error": f"Tier [{name}] not found"}, status=404)
    if request.query.get("detailed", "false").lower() == "true":
        return json_response(known[name])
    return json_response(list(known[name]))


async def delete_tier(request: web.Request) -> web.Response:
    deleted = await run_blocking(request, _store(request).delete_tier, request.match_info["tier"])
    return web.Response(status=202 if deleted else 404)


async def get_lookup(request: web.Request) -> web.Response:
    name = request.match_info["lookup"]
    spec = await run_blocking(request, _store(request).get, request.match_info["tier"], name)
    if spec is None:
        return json_response({"error": f"lookup [{name}] not found"}, status=404)
    return json_response(spec)


async def update_lookup(request: web.Request) -> web.Response:
    body = await read_json(request)
    await run_blocking(request, _store(request).update, request.match_info["tier"], request.match_info["lookup"],
                       body)
    return web.Response(status=202)


async def delete_lookup(request: web.Request) -> web.Response:
    deleted = await run_blocking(request, _store(request).delete, request.match_info["tier"],
                                 request.match_info["lookup"])
    return web.Response(status=202 if deleted else 404)


async def status(request: web.Request) -> web.Response:
    """``/lookups/status``: every configured lookup is loaded on this one node."""
    known = await run_blocking(request, _store(request).all)
    if known is None:
        return json_response("No lookups found", status=404)
    return json_response({t: {name: {"loaded": True} for name in lookups} for t, lookups in known.items()})
