"""The aiohttp application: Druid's HTTP surface over a ``Cluster``."""
from __future__ import annotations

import asyncio

from aiohttp import web

from msqcore.cluster import Cluster, ClusterConfig

from . import coordinator, lookups, sql, statements, status, tasks
from .keys import CLUSTER
from .middlewares import error_middleware

_DS = "/druid/coordinator/v1/datasources/{datasource}"
_META = "/druid/coordinator/v1/metadata/datasources"
_OVERLORD_DS = "/druid/indexer/v1/datasources/{datasource}"
_LOOKUPS = "/druid/coordinator/v1/lookups"

# (method, path, handler); each path also answers with a trailing slash, never redirecting.
# Static paths come before the dynamic paths they would otherwise match.
ROUTES = [
    ("GET", "/status/health", status.health),
    ("GET", "/status", status.status),
    ("GET", "/status/properties", status.properties),
    ("GET", "/status/selfDiscovered", status.self_discovered),
    ("GET", "/status/selfDiscovered/status", status.self_discovered),
    # SQL (Broker)
    ("POST", "/druid/v2/sql", sql.sql_query),
    ("POST", "/druid/v2/sql/task", tasks.submit_task),
    ("GET", "/druid/v2/sql/task/enabled", tasks.task_enabled),
    ("POST", "/druid/v2/sql/statements", statements.submit),
    ("GET", "/druid/v2/sql/statements/enabled", statements.enabled),
    ("GET", "/druid/v2/sql/statements/{query_id}", statements.status),
    ("GET", "/druid/v2/sql/statements/{query_id}/results", statements.results),
    ("DELETE", "/druid/v2/sql/statements/{query_id}", statements.cancel),
    ("DELETE", "/druid/v2/sql/{query_id}", sql.cancel_query),
    # tasks (Overlord)
    ("GET", "/druid/indexer/v1/tasks", tasks.list_tasks),
    ("POST", "/druid/indexer/v1/task", tasks.post_task),
    ("GET", "/druid/indexer/v1/task/{task_id}", tasks.task_payload),
    ("GET", "/druid/indexer/v1/task/{task_id}/status", tasks.task_status),
    ("GET", "/druid/indexer/v1/task/{task_id}/reports", tasks.task_reports),
    ("GET", "/druid/indexer/v1/task/{task_id}/report", tasks.task_reports),
    ("POST", "/druid/indexer/v1/task/{task_id}/shutdown", tasks.task_shutdown),
    ("DELETE", _OVERLORD_DS, coordinator.drop_datasource),
    ("POST", _OVERLORD_DS + "/markUnused", coordinator.overlord_mark_unused),
    ("DELETE", _OVERLORD_DS + "/segments/{segment_id}", coordinator.overlord_mark_segment_unused),
    # datasources (Coordinator)
    ("GET", "/druid/coordinator/v1/datasources", coordinator.datasources),
    ("GET", _DS, coordinator.datasource),
    ("DELETE", _DS, coordinator.drop_datasource),
    ("GET", _DS + "/intervals", coordinator.datasource_intervals),
    ("GET", _DS + "/intervals/{interval}", coordinator.datasource_interval),
    ("DELETE", _DS + "/intervals/{interval}", coordinator.kill_interval),
    ("GET", _DS + "/segments", coordinator.datasource_segments),
    ("GET", _DS + "/segments/{segment_id}", coordinator.datasource_segment),
    ("DELETE", _DS + "/segments/{segment_id}", coordinator.coordinator_mark_segment_unused),
    ("GET", _DS + "/loadstatus", coordinator.load_status),
    ("POST", _DS + "/markUnused", coordinator.coordinator_mark_unused),
    ("GET", _META, coordinator.metadata_datasources),
    ("GET", _META + "/{datasource}", coordinator.metadata_datasource),
    ("GET", _META + "/{datasource}/segments", coordinator.metadata_segments),
    ("GET", _META + "/{datasource}/segments/{segment_id}", coordinator.metadata_segment),
    # lookups (Coordinator)
    ("GET", _LOOKUPS + "/config", lookups.tiers),
    ("POST", _LOOKUPS + "/config", lookups.update_all),
    ("GET", _LOOKUPS + "/config/all", lookups.all_lookups),
    ("GET", _LOOKUPS + "/config/{tier}", lookups.tier),
    ("DELETE", _LOOKUPS + "/config/{tier}", lookups.delete_tier),
    ("GET", _LOOKUPS + "/config/{tier}/{lookup}", lookups.get_lookup),
    ("POST", _LOOKUPS + "/config/{tier}/{lookup}", lookups.update_lookup),
    ("DELETE", _LOOKUPS + "/config/{tier}/{lookup}", lookups.delete_lookup),
    ("GET", _LOOKUPS + "/status", lookups.status),
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
