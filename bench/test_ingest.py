"""Ingestion: msqcore (over HTTP, submit to SUCCESS) and each peer (in process, 1 thread).

Jobs: REPLACE from JSON, CSV and Parquet, and the hourly rollup from JSON; see
``bench/README.md`` for what each tool does.
"""
from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

from bench.harness import MIB, run_msqcore  # noqa: E402
from bench.peers import TOOLS, engine, run_job  # noqa: E402

JOBS = ("json", "csv", "parquet", "rollup")


@pytest.mark.gate
@pytest.mark.parametrize("tasks", [2, 3], ids=lambda t: f"maxNumTasks{t}")
@pytest.mark.parametrize("job", JOBS)
def test_msqcore(benchmark, msq_server, bench_data, rounds, job, tasks):
    first = run_msqcore(msq_server, job, tasks, bench_data)  # also the warm-up round
    if first.status == "unsupported":
        pytest.skip(f"msqcore: {first.note}")
    assert first.status == "ok", first.note
    seen = []

    def once():
        result = run_msqcore(msq_server, job, tasks, bench_data)
        assert result.status == "ok", result.note
        seen.append(result)

    benchmark.pedantic(once, rounds=rounds, iterations=1)
    benchmark.extra_info.update(rows=bench_data.rows, peak_rss_mib=max(r.peak_rss for r in seen) / MIB,
                                peak_pss_mib=max(r.peak_pss for r in seen) / MIB)


@pytest.mark.informational
@pytest.mark.parametrize("job", JOBS)
@pytest.mark.parametrize("tool", TOOLS)
def test_peer(benchmark, bench_data, rounds, tmp_path, tool, job):
    pytest.importorskip(tool)
    eng = engine(tool, 1)
    out = tmp_path / "out"
    benchmark.pedantic(run_job, args=(eng, job, bench_data.root, out), rounds=rounds, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(rows=bench_data.rows)
