"""Fixtures for the pytest benches: the data set, one ``msqcore serve``, peer engines.

Environment:

* ``BENCH_SCALE`` scales every row count (see ``bench/_scale.py``).
* ``BENCH_ROUNDS`` (default 3) measured rounds per bench, after one warm-up round.
* ``BENCH_WORKDIR`` (default ``var/bench``) holds the cached data set.
* ``BENCH_MSQCORE_PYTHON`` the interpreter whose installed msqcore serves (default: this one).
* ``BENCH_TIMEOUT`` (default 3600) seconds per bench, instead of the suite's 300.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# Engine threads are pinned to 1 in the benches; Polars reads this once, at import.
os.environ.setdefault("POLARS_MAX_THREADS", "1")

import pytest  # noqa: E402

from bench import gen_data  # noqa: E402
from bench._scale import scaled  # noqa: E402
from bench.harness import REPO, MsqServer, run_msqcore, warm_page_cache  # noqa: E402

BASE_ROWS = 100_000


@pytest.fixture(scope="module")
def one_thread():
    """pyarrow on one CPU and one IO thread, so kernel benches compare like with like."""
    import pyarrow as pa
    cpus, io_threads = pa.cpu_count(), pa.io_thread_count()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    yield
    pa.set_cpu_count(cpus)
    pa.set_io_thread_count(io_threads)


def pytest_configure(config):
    config.addinivalue_line("markers", "gate: msqcore's own numbers; compare runs with --benchmark-compare")
    config.addinivalue_line("markers", "informational: a peer engine's numbers, for side-by-side reading")


def pytest_collection_modifyitems(config, items):
    timeout = int(os.environ.get("BENCH_TIMEOUT", "3600"))
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.timeout(timeout))


@pytest.fixture(scope="session")
def rounds() -> int:
    return int(os.environ.get("BENCH_ROUNDS", "3"))


@pytest.fixture(scope="session")
def workdir() -> Path:
    return Path(os.environ.get("BENCH_WORKDIR", REPO / "var" / "bench"))


@pytest.fixture(scope="session")
def bench_data(workdir) -> gen_data.DataSet:
    ds = gen_data.ensure(workdir / "data", scaled(BASE_ROWS), seed=42, files=4, log=lambda m: None)
    warm_page_cache(ds)
    return ds


@pytest.fixture(scope="session")
def msq_server(tmp_path_factory):
    server = MsqServer(tmp_path_factory.mktemp("msqcore") / "var",
                       python=os.environ.get("BENCH_MSQCORE_PYTHON") or sys.executable)
    server.start()
    try:
        server.warm()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def msq_wiki(msq_server, bench_data) -> MsqServer:
    """The server with ``wiki`` ingested from the JSON files (for the query bench)."""
    result = run_msqcore(msq_server, "json", 3, bench_data)
    assert result.status == "ok", result.note
    return msq_server
