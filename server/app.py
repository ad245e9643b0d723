"""The aiohttp application: Druid's HTTP surface over a ``Cluster``."""
from __future__ import annotations

import asyncio

from aiohttp import web

from msqcore.cluster import Cluster, ClusterConfig

from . import sql, status, tasks
from .keys import CLUSTER
from .middlewares import error_middleware

# (method, path, handler); each path also answers with a trailing slash, never redirecting.
ROUTES = [
    ("GET", "/status/health", status.health),
    ("GET", "/status", status.status),
    ("POST", "/druid/v2/sql/task", tasks.submit_task),
    ("GET", "/druid/v2/sql/task/enabled", tasks.task_enabled),
    ("POST", "/druid/v2/sql", sql.sql_query),
    ("GET", "/druid/indexer/v1/tasks", tasks.list_tasks),
    ("GET", "/druid/indexer/v1/task/{task_id}", tasks.task_payload),
    ("GET", "/druid/indexer/v1/task/{task_id}/status", tasks.task_status),
    ("GET", "/druid/indexer/v1/task/{task_id}/reports", tasks.task_reports),
    ("GET", "/druid/indexer/v1/task/{task_id}/report", tasks.task_reports),
    ("POST", "/druid/indexer/v1/task/{task_id}/shutdown", tasks.task_shutdown),
    ("GET", "/druid/coordinator/v1/metadata/datasources", tasks.metadata_datasources),
    ("GET", "/druid/coordinator/v1/metadata/datasources/{datasource}/segments", tasks.datasource_segments),
]


def create_app(config: ClusterConfig, cluster: Cluster | None = None) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=64 * 1024 * 1024)

    async def cluster_ctx(app: web.Application):
        app[CLUSTER] = cluster or Cluster(config)
        yield
        # Graceful stop: running tasks end FAILED (Canceled) and publish nothing.
        await asyncio.get_running_loop().run_in_executor(None, app[CLUSTER].close)

    app.cleanup_ctx.append(cluster_ctx)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, path + "/", handler)
    return app
