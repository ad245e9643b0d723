"""The Coordinator's datasource and metadata APIs, and the Overlord's segment-state updates.

In msqcore every used segment is loaded (there is one process), so the "served" view
(``/druid/coordinator/v1/datasources``) and the metadata view
(``/druid/coordinator/v1/metadata/datasources``) list the same segments. Shapes and status codes
follow Druid's ``DataSourcesResource``, ``MetadataResource`` and ``OverlordDataSourcesResource``:
an unknown datasource answers 204 No Content on the Coordinator's served view.
"""
from __future__ import annotations

import pyarrow as pa
from aiohttp import web

from msqcore.kernels.timeparse import parse_iso_millis
from msqcore.timeutil import iso, now_millis, parse_interval

from .common import json_response, read_json, run_blocking
from .keys import CLUSTER

TIER = "_default_tier"
_LOADSTATUS_DEFAULT_MS = 14 * 24 * 60 * 60 * 1000
_INVALID_MARK_PAYLOAD = ("Invalid request payload. Specify either 'interval' or 'segmentIds', but not both. "
                         "Optionally, include 'versions' only when 'interval' is provided.")


def _segment_key(seg: dict):
    start, end = seg["interval"].split("/")
    return (seg["dataSource"], _millis(start), _millis(end), seg["version"],
            seg.get("shardSpec", {}).get("partitionNum", 0))


def _millis(text: str) -> int:
    return parse_iso_millis(pa.array([text]), lenient=True)[0].as_py()


def _interval(seg: dict) -> tuple[int, int]:
    start, end = seg["interval"].split("/")
    return _millis(start), _millis(end)


async def _segments(request: web.Request, datasource: str) -> list[dict]:
    segments = await run_blocking(request, request.app[CLUSTER].segments, datasource)
    return sorted(segments, key=_segment_key)


def _no_content() -> web.Response:
    return web.Response(status=204)


def _simple(segments: list[dict]) -> dict:
    """``getSimpleDatasource``: per-tier and total counts, in Java HashMap key order."""
    size = sum(int(s.get("size", 0)) for s in segments)
    intervals = [_interval(s) for s in segments]
    return {"tiers": {TIER: {"size": size, "replicatedSize": size, "segmentCount": len(segments)}},
            "segments": {"maxTime": iso(max(e for _, e in intervals)), "size": size,
                         "minTime": iso(min(s for s, _ in intervals)), "count": len(segments),
                         "replicatedSize": size}}


def _full(name: str, segments: list[dict]) -> dict:
    return {"name": name, "properties": {}, "segments": segments}


# --- /druid/coordinator/v1/datasources ----------------------------------------------------------------

async def datasources(request: web.Request) -> web.Response:
    names = await run_blocking(request, request.app[CLUSTER].datasources)
    if "full" in request.query or "simple" in request.query:
        out = []
        for name in names:
            segments = await _segments(request, name)
            out.append(_full(name, segments) if "full" in request.query
                       else {"name": name, "properties": _simple(segments)})
        return json_response(out)
    return json_response(names)


async def datasource(request: web.Request) -> web.Response:
    name = request.match_info["datasource"]
    segments = await _segments(request, name)
    if not segments:
        return _no_content()
    return json_response(_full(name, segments) if "full" in request.query else _simple(segments))


def _intervals_desc(segments: list[dict]) -> list[tuple[int, int]]:
    return sorted({_interval(s) for s in segments}, reverse=True)


def _per_interval(request: web.Request, segments: list[dict], keep) -> dict:
    out: dict = {}
    server = f"{request.app[CLUSTER].config.host}:{request.app[CLUSTER].config.port}"
    for start, end in _intervals_desc(segments):
        if not keep(start, end):
            continue
        in_interval = [s for s in segments if _interval(s) == (start, end)]
        key = f"{iso(start)}/{iso(end)}"
        if "full" in request.query:
            out[key] = {s["identifier"]: {"metadata": s, "servers": [server]} for s in in_interval}
        else:
            out[key] = {"size": sum(int(s.get("size", 0)) for s in in_interval), "count": len(in_interval)}
    return out


async def datasource_intervals(request: web.Request) -> web.Response:
    segments = await _segments(request, request.match_info["datasource"])
    if not segments:
        return _no_content()
    if "simple" in request.query or "full" in request.query:
        return json_response(_per_interval(request, segments, lambda s, e: True))
    return json_response([f"{iso(s)}/{iso(e)}" for s, e in _intervals_desc(segments)])


async def datasource_interval(request: web.Request) -> web.Response:
    lo, hi = parse_interval(request.match_info["interval"])
    segments = await _segments(request, request.match_info["datasource"])
    if not segments:
        return _no_content()
    if "simple" in request.query or "full" in request.query:
        return json_response(_per_interval(request, segments, lambda s, e: lo <= s and e <= hi))
    return json_response([s["identifier"] for s in segments if lo <= _interval(s)[0] and _interval(s)[1] <= hi])


async def datasource_segments(request: web.Request) -> web.Response:
    segments = await _segments(request, request.match_info["datasource"])
    if not segments:
        return _no_content()
    if "full" in request.query:
        return json_response(segments)
    return json_response([s["identifier"] for s in segments])


async def datasource_segment(request: web.Request) -> web.Response:
    segments = await _segments(request, request.match_info["datasource"])
    wanted = request.match_info["segment_id"]
    cluster = request.app[CLUSTER]
    for s in segments:
        if s["identifier"] == wanted:
            return json_response({"metadata": s, "servers": [f"{cluster.config.host}:{cluster.config.port}"]})
    return _no_content()


async def load_status(request: web.Request) -> web.Response:
    """``/loadstatus``: every used segment is loaded, so 100 % (or 0 left to load)."""
    if "forceMetadataRefresh" not in request.query:
        return web.Response(status=400, text="Invalid request. forceMetadataRefresh must be specified",
                            content_type="application/json")
    name = request.match_info["datasource"]
    if "interval" in request.query:
        lo, hi = parse_interval(request.query["interval"])
    else:
        hi = now_millis()
        lo = hi - _LOADSTATUS_DEFAULT_MS
    segments = [s for s in await _segments(request, name) if _interval(s)[0] < hi and _interval(s)[1] > lo]
    if not segments:
        return _no_content()
    if "simple" in request.query:
        return json_response({name: 0})
    if "full" in request.query:
        return json_response({TIER: {name: 0}})
    return json_response({name: 100.0})


# --- marking segments unused -----------------------------------------------------------------------

def _mark_filter(payload) -> dict | None:
    """``SegmentsToUpdateFilter``: exactly one of interval / segmentIds; versions only with interval."""
    if not isinstance(payload, dict):
        return None
    interval, ids, versions = payload.get("interval"), payload.get("segmentIds"), payload.get("versions")
    if (interval is None) == (ids is None):
        return None
    if versions is not None and (interval is None or not isinstance(versions, list)):
        return None
    if ids is not None and not isinstance(ids, list):
        return None
    if interval is not None:
        return {"interval": parse_interval(str(interval)), "versions": versions}
    return {"segment_ids": [str(i) for i in ids]}


async def _mark_unused(request: web.Request, coordinator: bool) -> web.Response:
    name = request.match_info["datasource"]
    spec = _mark_filter(await read_json(request))
    if spec is None:
        message = ("Invalid request payload, either interval or segmentIds array must be specified" if coordinator
                   else _INVALID_MARK_PAYLOAD)
        return web.Response(status=400, text=message, content_type="application/json")
    cluster = request.app[CLUSTER]
    if coordinator and not await _segments(request, name):
        return _no_content()
    changed = await run_blocking(request, cluster.mark_segments_unused, name, **spec)
    return json_response({"numChangedSegments": changed})


async def overlord_mark_unused(request: web.Request) -> web.Response:
    return await _mark_unused(request, coordinator=False)


async def coordinator_mark_unused(request: web.Request) -> web.Response:
    return await _mark_unused(request, coordinator=True)


async def kill_interval(request: web.Request) -> web.Response:
    """``DELETE .../datasources/{ds}/intervals/{interval}``: submit a kill task for the unused
    segments there (Druid's id prefix ``api-issued``); 200 with no body."""
    name, interval = request.match_info["datasource"], request.match_info["interval"]
    payload = {"type": "kill", "dataSource": name, "interval": interval.replace("_", "/")}
    await run_blocking(request, request.app[CLUSTER].submit_native_task, payload, "api-issued")
    return web.Response(status=200)


async def drop_datasource(request: web.Request) -> web.Response:
    """``DELETE .../datasources/{ds}``: mark every segment unused."""
    changed = await run_blocking(request, request.app[CLUSTER].drop_datasource, request.match_info["datasource"])
    return json_response({"numChangedSegments": changed})


async def overlord_mark_segment_unused(request: web.Request) -> web.Response:
    name, sid = request.match_info["datasource"], request.match_info["segment_id"]
    changed = await run_blocking(request, request.app[CLUSTER].mark_segments_unused, name, segment_ids=[sid])
    return json_response({"numChangedSegments": changed})


async def coordinator_mark_segment_unused(request: web.Request) -> web.Response:
    name, sid = request.match_info["datasource"], request.match_info["segment_id"]
    changed = await run_blocking(request, request.app[CLUSTER].mark_segments_unused, name, segment_ids=[sid])
    return json_response({"segmentStateChanged": changed > 0})


# --- /druid/coordinator/v1/metadata ------------------------------------------------------------------

async def metadata_datasources(request: web.Request) -> web.Response:
    names = await run_blocking(request, request.app[CLUSTER].datasources)
    if "full" in request.query:
        return json_response([_full(n, await _segments(request, n)) for n in names])
    return json_response(names)


async def metadata_datasource(request: web.Request) -> web.Response:
    name = request.match_info["datasource"]
    segments = await _segments(request, name)
    if not segments:
        return web.Response(status=404)
    return json_response(_full(name, segments))


async def metadata_segments(request: web.Request) -> web.Response:
    segments = await _segments(request, request.match_info["datasource"])
    if "full" in request.query:
        return json_response(segments)
    return json_response([s["identifier"] for s in segments])


async def metadata_segment(request: web.Request) -> web.Response:
    wanted = request.match_info["segment_id"]
    for s in await _segments(request, request.match_info["datasource"]):
        if s["identifier"] == wanted:
            return json_response(s)
    return web.Response(status=404)
