"""Cancel (DELETE /druid/v2/sql/{id}) and the ``timeout`` context key, in process: the app runs
over a cluster whose scans wait at their checkpoints until released, so a query is reliably
still running when the test cancels it."""
from __future__ import annotations

import asyncio
import threading
import time

from aiohttp.test_utils import TestClient, TestServer

from msqcore.cluster import Cluster, ClusterConfig
from msqcore.server.app import create_app


class SlowCluster(Cluster):
    """Every scan waits (checking its cancel/timeout checkpoint) until ``release`` is set."""

    def __init__(self, config):
        super().__init__(config)
        self.release = threading.Event()
        self.finished = []

    def _source_table(self, query):
        handle = self._serving().queries.local.handle
        deadline = time.monotonic() + 30
        while not self.release.wait(0.01) and time.monotonic() < deadline:
            if handle is not None:
                handle.check()
        table = super()._source_table(query)
        self.finished.append(handle.query_id if handle is not None else None)
        return table


def run_app(tmp_path, scenario):
    config = ClusterConfig(data_dir=str(tmp_path / "var"))
    cluster = SlowCluster(config)

    async def main():
        async with TestServer(create_app(config, cluster)) as server, TestClient(server) as client:
            await scenario(client, cluster)

    asyncio.run(main())


async def _until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def test_delete_cancels_a_running_query(tmp_path):
    async def scenario(client, cluster):
        request = asyncio.ensure_future(
            client.post("/druid/v2/sql", json={"query": "SELECT 1 AS x", "context": {"sqlQueryId": "q-cancel"}}))
        await _until(lambda: cluster._serving().queries.find("q-cancel") is not None)
        deleted = await client.delete("/druid/v2/sql/q-cancel")
        assert deleted.status == 202 and await deleted.text() == ""
        response = await request
        assert response.status == 500
        assert response.headers["X-Druid-SQL-Query-Id"] == "q-cancel"
        body = await response.json()
        assert body["error"] == "Query cancelled" and body["category"] == "CANCELED"
        assert body["errorClass"] == "org.apache.druid.query.QueryInterruptedException"
        # the query is over: a second cancel finds nothing, and it never finished its scan
        assert (await client.delete("/druid/v2/sql/q-cancel")).status == 404
        cluster.release.set()
        await asyncio.sleep(0.1)
        assert "q-cancel" not in cluster.finished

    run_app(tmp_path, scenario)


def test_timeout_answers_on_time_and_other_queries_keep_running(tmp_path):
    async def scenario(client, cluster):
        slow = asyncio.ensure_future(client.post("/druid/v2/sql", json={
            "query": "SELECT 1 AS x", "context": {"sqlQueryId": "q-slow", "timeout": 300}}))
        started = time.monotonic()
        response = await slow
        assert response.status == 504
        assert 0.25 <= time.monotonic() - started < 5
        assert (await response.json())["error"] == "Query timeout"
        # a query without a timeout completes once released, while another one runs beside it
        first = asyncio.ensure_future(client.post("/druid/v2/sql", json={"query": "SELECT 2 AS x"}))
        second = asyncio.ensure_future(client.post("/druid/v2/sql", json={"query": "SELECT 3 AS x"}))
        await asyncio.sleep(0.2)
        assert not first.done() and not second.done()
        cluster.release.set()
        assert await (await first).json() == [{"x": 2}]
        assert await (await second).json() == [{"x": 3}]

    run_app(tmp_path, scenario)
