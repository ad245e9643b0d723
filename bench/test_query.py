"""The SQL query over what was ingested: msqcore's ``/druid/v2/sql`` against each peer
reading its own Parquet output of the JSON ingest (1 thread).

    BENCH_SCALE=10 python -m pytest -p no:cacheprovider bench/test_query.py -s

``test_pairs`` runs msqcore (over HTTP) and DuckDB in alternation, one query each per round,
and prints the median of the rounds' ratios: on a shared machine the load changes within
seconds, and a pair sees the same load. It does so for issue #8's query and a few other
typical ones (DuckDB answers each on its Parquet files). There are no timing assertions.
"""
from __future__ import annotations

import json
import statistics
import time

import pytest

pytest.importorskip("pytest_benchmark")

from bench.harness import QUERY_COUNTRY, QUERY_SQL  # noqa: E402
from bench.peers import TOOLS, engine, run_job  # noqa: E402

PAIRS = 15
# (name, msqcore SQL, DuckDB SQL over the view ``wiki`` of the Parquet files)
QUERIES = [
    ("issue #8 query", QUERY_SQL,
     f"SELECT channel, COUNT(*), SUM(added) FROM wiki WHERE countryName = '{QUERY_COUNTRY}' GROUP BY 1 "
     "ORDER BY 2 DESC"),
    ("count", "SELECT COUNT(*) FROM wiki", None),
    ("group by channel", "SELECT channel, COUNT(*), SUM(delta) FROM wiki GROUP BY 1 ORDER BY 2 DESC", None),
    ("filter + sum", "SELECT COUNT(*), SUM(added) FROM wiki WHERE channel = '#de.wikipedia'", None),
    ("two keys, two filters", "SELECT namespace, isRobot, COUNT(*), MAX(added) FROM wiki WHERE countryName = "
     f"'{QUERY_COUNTRY}' AND channel = '#en.wikipedia' GROUP BY 1, 2 ORDER BY 3 DESC", None),
    ("time filter, top 5", "SELECT cityName, COUNT(*) FROM wiki WHERE __time >= TIMESTAMP '2016-06-29 00:00:00' "
     "AND __time < TIMESTAMP '2016-07-01 00:00:00' GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
     "SELECT cityName, COUNT(*) FROM wiki WHERE __time >= TIMESTAMP '2016-06-29 00:00:00' "
     "AND __time < TIMESTAMP '2016-07-01 00:00:00' GROUP BY 1 ORDER BY 2 DESC LIMIT 5"),
    ("scan with limit", "SELECT __time, page, added FROM wiki WHERE channel = '#fr.wikipedia' LIMIT 100", None),
]
_lines: list[str] = []


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


@pytest.mark.gate
def test_pairs(msq_wiki, bench_data, tmp_path_factory, request):
    """msqcore over HTTP and DuckDB (1 thread) in alternation, per query; ratios printed at the end."""
    pytest.importorskip("duckdb")
    out = tmp_path_factory.mktemp("duckdb") / "json"
    duck = engine("duckdb", 1)
    run_job(duck, "json", bench_data.root, out)
    duck.con.execute(f"CREATE VIEW wiki AS SELECT * FROM read_parquet('{out}/**/*.parquet', "
                     "hive_partitioning = false)")
    for name, sql, duck_sql in QUERIES:
        duck_sql = duck_sql or sql
        ours = msq_wiki.sql(sql, resultFormat="array")
        theirs = duck.con.execute(duck_sql).fetchall()
        if "LIMIT" not in sql:  # the same answer (a LIMIT may pick other rows among ties)
            assert sorted(map(_key, ours)) == sorted(map(_key, theirs)), name
        ratios, msq_times, duck_times = [], [], []
        for _ in range(PAIRS):
            t0 = time.perf_counter()
            msq_wiki.sql(sql, resultFormat="array")
            t1 = time.perf_counter()
            duck.con.execute(duck_sql).fetchall()
            t2 = time.perf_counter()
            msq_times.append(t1 - t0)
            duck_times.append(t2 - t1)
            ratios.append((t2 - t1) / (t1 - t0))
        _lines.append(f"{name:24s} msqcore {statistics.median(msq_times) * 1000:7.1f} ms   duckdb "
                      f"{statistics.median(duck_times) * 1000:7.1f} ms   speed (duckdb / msqcore, median of "
                      f"{PAIRS} pairs) {statistics.median(ratios):.2f}x")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter is not None else print
    write(f"\n{bench_data.rows:,} rows; above 1x msqcore is faster")
    for line in _lines:
        write(line)


def _key(row) -> str:
    """A row comparable across the two engines."""
    return json.dumps(list(row), default=str)
