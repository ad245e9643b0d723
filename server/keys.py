"""Typed keys for what the application holds."""
from aiohttp import web

from msqcore.cluster import Cluster

CLUSTER = web.AppKey("cluster", Cluster)
