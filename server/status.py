"""Health, version and process information (``/status``)."""
from __future__ import annotations

import os
import resource

from aiohttp import web

import msqcore

from .common import json_response
from .keys import CLUSTER


async def health(request: web.Request) -> web.Response:
    return json_response(True)


def _memory() -> dict:
    """Druid's ``Status.Memory`` fields, from this process's point of view."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = free = 0
    used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"maxMemory": total, "totalMemory": total, "freeMemory": free, "usedMemory": used, "directMemory": 0}


async def status(request: web.Request) -> web.Response:
    return json_response({"version": msqcore.__version__, "modules": [], "memory": _memory()})


async def properties(request: web.Request) -> web.Response:
    """``/status/properties``: the effective runtime properties, as strings."""
    config = request.app[CLUSTER].config
    return json_response({"druid.host": config.host, "druid.plaintextPort": str(config.port),
                          "druid.service": "msqcore", "msqcore.dataDir": os.path.abspath(config.data_dir),
                          "druid.sql.enable": "true", "druid.msq.enabled": "true"})


async def self_discovered(request: web.Request) -> web.Response:
    return json_response({"selfDiscovered": True})
