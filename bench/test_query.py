"""The SQL query over what was ingested: msqcore's ``/druid/v2/sql`` against each peer
reading its own Parquet output of the JSON ingest (1 thread)."""
from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

from bench.harness import QUERY_SQL  # noqa: E402
from bench.peers import TOOLS, engine, run_job  # noqa: E402


@pytest.mark.gate
def test_msqcore(benchmark, msq_wiki, bench_data, rounds):
    rows = benchmark.pedantic(msq_wiki.sql, args=(QUERY_SQL,), kwargs={"resultFormat": "array"},
                              rounds=rounds * 10, iterations=1, warmup_rounds=1)
    assert rows and rows[0][0] is not None
    benchmark.extra_info.update(rows=bench_data.rows)


@pytest.mark.informational
@pytest.mark.parametrize("tool", TOOLS)
def test_peer(benchmark, bench_data, rounds, tmp_path, tool):
    pytest.importorskip(tool)
    eng = engine(tool, 1)
    out = tmp_path / "json"
    run_job(eng, "json", bench_data.root, out)
    result = benchmark.pedantic(run_job, args=(eng, "query", bench_data.root, tmp_path / "unused", out),
                                rounds=rounds * 10, iterations=1, warmup_rounds=1)
    assert result["result"]
    benchmark.extra_info.update(rows=bench_data.rows)
