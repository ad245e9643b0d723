"""Planner units: Druid's statement clauses, granularities, expressions, validation."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from msqcore.engine import operators as ops
from msqcore.errors import InvalidInput, InvalidSqlInput
from msqcore.planner.query import InlineSource, compile_query
from msqcore.planner.statement import parse_granularity, split_statement
from msqcore.planner.tasks import plan_task
from msqcore.timeutil import granularity, iso


class Catalog:
    def table_signature(self, name):
        return [("__time", "TIMESTAMP"), ("k", "VARCHAR"), ("n", "BIGINT"), ("x", "DOUBLE")] if name == "t" else None


TABLE = pa.table({"__time": pa.array([0, 3_600_000, 86_400_000, 90_000_000], pa.int64()),
                  "k": ["a", None, "", "b"], "n": pa.array([1, 2, None, 4], pa.int64()),
                  "x": pa.array([0.5, None, 2.0, -1.0])})


def run(sql: str, parameters=None) -> list[dict]:
    query = compile_query(split_statement(sql).select, Catalog(), parameters)
    source = query.source.table() if isinstance(query.source, InlineSource) else TABLE
    return ops.run_local(source, query).to_pylist()


def test_split_ingest_statement():
    s = split_statement("SET maxNumTasks = 3; SET foo = 'bar'; REPLACE INTO \"w\" OVERWRITE ALL "
                        "SELECT * FROM t PARTITIONED BY FLOOR(__time TO HOUR) CLUSTERED BY 2, k -- note\n")
    assert (s.kind, s.target, s.overwrite, s.partitioned_by.name) == ("REPLACE", "w", "ALL", "HOUR")
    assert s.settings == {"maxNumTasks": 3, "foo": "bar"}
    assert [c.sql() for c in s.clustered_by] == ["2", "k"]


def test_partitioned_by_inside_a_string_or_subquery_is_not_a_clause():
    s = split_statement("INSERT INTO w SELECT 'PARTITIONED BY DAY' AS a FROM (SELECT 1) PARTITIONED BY ALL")
    assert s.partitioned_by.is_all


@pytest.mark.parametrize("text, name", [("DAY", "DAY"), ("ALL TIME", "ALL"), ("ALL", "ALL"), ("'P1D'", "DAY"),
                                        ("'PT15M'", "FIFTEEN_MINUTE"), ("'FIFTEEN_MINUTE'", "FIFTEEN_MINUTE"),
                                        ("FLOOR(__time TO MONTH)", "MONTH"), ("TIME_FLOOR(__time, 'P3M')", "QUARTER")])
def test_granularity_forms(text, name):
    assert parse_granularity(text).name == name


@pytest.mark.parametrize("text", ["DAYS", "'P2D'", "FLOOR(ts TO DAY)", "TIME_FLOOR(__time, 'P1D', 'x')"])
def test_bad_granularity(text):
    with pytest.raises(InvalidInput, match="Invalid granularity"):
        parse_granularity(text)


def test_granularity_floor_month_and_week():
    t = np.array([1442018818771], dtype=np.int64)  # 2015-09-12T00:46:58.771Z, a Saturday
    assert iso(int(granularity("MONTH").floor(t)[0])) == "2015-09-01T00:00:00.000Z"
    assert iso(int(granularity("WEEK").floor(t)[0])) == "2015-09-07T00:00:00.000Z"  # Monday, as Joda
    assert iso(int(granularity("QUARTER").floor(t)[0])) == "2015-07-01T00:00:00.000Z"


def test_null_semantics_and_three_valued_logic():
    assert run("SELECT k FROM t WHERE k = ''") == [{"k": ""}]  # '' and NULL differ
    assert run("SELECT n FROM t WHERE k IS NULL") == [{"n": 2}]
    assert run("SELECT n FROM t WHERE NOT (x > 0)") == [{"n": 4}]  # NULL comparison is not true
    assert run("SELECT COUNT(*) AS a, COUNT(n) AS b, SUM(n) AS s, AVG(x) AS v FROM t") == \
        [{"a": 4, "b": 3, "s": 7, "v": 0.5}]
    assert run("SELECT SUM(n) AS s, COUNT(*) AS c FROM t WHERE n > 100") == [{"s": None, "c": 0}]


def test_expressions_and_ordering():
    assert run("SELECT n * 2 + 1 AS y, n / 2 AS h, CAST(x AS BIGINT) AS i FROM t WHERE n IS NOT NULL ORDER BY n DESC") \
        == [{"y": 9, "h": 2, "i": -1}, {"y": 5, "h": 1, "i": None}, {"y": 3, "h": 0, "i": 0}]
    assert run("SELECT k FROM t WHERE k LIKE 'a%' OR k IN ('b') ORDER BY k") == [{"k": "a"}, {"k": "b"}]
    assert run("SELECT k FROM t ORDER BY k LIMIT 2") == [{"k": None}, {"k": ""}]  # nulls first
    assert run("SELECT n FROM t WHERE __time >= TIMESTAMP '1970-01-02 00:00:00' ORDER BY 1") == \
        [{"n": None}, {"n": 4}]
    assert run("SELECT n FROM t WHERE n BETWEEN ? AND ?", [{"type": "INTEGER", "value": 2},
                                                           {"type": "INTEGER", "value": 4}]) == [{"n": 2}, {"n": 4}]


def test_group_by_having_and_names():
    assert run("SELECT TIME_FLOOR(__time, 'P1D') AS d, COUNT(*) FROM t GROUP BY 1 HAVING COUNT(*) > 1 ORDER BY d") \
        == [{"d": 0, "EXPR$1": 2}, {"d": 86_400_000, "EXPR$1": 2}]
    with pytest.raises(InvalidInput, match="is not being grouped"):
        run("SELECT k, n FROM t GROUP BY k")


def test_time_parse_matches_druid_leniency():
    table = pa.table({"s": ["2015-09-12T00:46:58.771Z", "2015-09-12 01:00:00", "2015-9-12", "nope", None]})
    q = compile_query(split_statement("SELECT TIME_PARSE(s) AS t FROM x").select,
                      type("C", (), {"table_signature": lambda self, n: [("s", "VARCHAR")]})())
    assert ops.run_local(table, q).column("t").to_pylist() == \
        [1442018818771, 1442019600000, 1442016000000, None, None]


@pytest.mark.parametrize("sql, message", [
    ("INSERT INTO w SELECT __time FROM t ORDER BY __time PARTITIONED BY DAY",
     "Cannot use an ORDER BY clause on a Query of type [INSERT], use CLUSTERED BY instead"),
    ("INSERT INTO w SELECT __time FROM t LIMIT 10 PARTITIONED BY DAY",
     'INSERT and REPLACE queries cannot have a LIMIT unless PARTITIONED BY is "ALL".'),
    ("INSERT INTO w SELECT __time FROM t PARTITIONED BY DAY CLUSTERED BY k DESC",
     "Invalid CLUSTERED BY clause [k DESC]: cannot sort in descending order."),
    ("INSERT INTO w (a) SELECT __time FROM t PARTITIONED BY DAY", "cannot be run with a target column list"),
    ("INSERT INTO sys.w SELECT __time FROM t PARTITIONED BY DAY", "is not a Druid datasource"),
    ("INSERT INTO w SELECT nope FROM t PARTITIONED BY ALL", "Column 'nope' not found in any table"),
    ("UPSERT INTO w SELECT 1", "UPSERT is not supported."),
])
def test_ingest_validation(sql, message):
    with pytest.raises(InvalidInput) as e:
        plan_task(sql, {}, None, Catalog())
    assert message in e.value.message


def test_max_num_tasks_must_be_two_or_more():
    with pytest.raises(InvalidInput, match=r"MSQ context maxNumTasks \[1\] cannot be less than 2"):
        plan_task("INSERT INTO w SELECT __time FROM t PARTITIONED BY DAY", {"maxNumTasks": 1}, None, Catalog())


def test_syntax_error_carries_position():
    with pytest.raises(InvalidSqlInput) as e:
        split_statement("SELECT FROM WHERE")
    assert e.value.context["line"] == 1


def test_plan_stages_and_dimension_order():
    plan = plan_task("INSERT INTO w SELECT __time, x, k, n FROM t PARTITIONED BY DAY CLUSTERED BY n, k",
                     {"maxNumTasks": 4}, None, Catalog())
    assert plan.dimensions == ["n", "k", "x"]
    assert [s.kind for s in plan.stages] == ["scan", "segmentGenerator"]
    shuffle = plan.stages[0].definition["shuffleSpec"]
    assert [c["columnName"] for c in shuffle["clusterBy"]["columns"]] == ["__bucket", "n", "k", "__boost"]
    assert shuffle["clusterBy"]["bucketByCount"] == 1 and shuffle["targetSize"] == 3_000_000
    dims = plan.stages[1].definition["processor"]["dataSchema"]["dimensionsSpec"]["dimensions"]
    assert [(d["name"], d["type"]) for d in dims] == [("n", "long"), ("k", "string"), ("x", "double")]
    assert plan.payload["spec"]["tuningConfig"]["maxNumWorkers"] == 3
    group = plan_task("INSERT INTO w SELECT TIME_FLOOR(__time, 'PT1H') AS __time, k, SUM(n) AS s FROM t "
                      "GROUP BY 1, 2 PARTITIONED BY DAY", {}, None, Catalog())
    assert [s.kind for s in group.stages] == ["groupByPreShuffle", "groupByPostShuffle", "segmentGenerator"]
    assert group.payload["spec"]["query"]["queryType"] == "groupBy"


def test_more_aggregations():
    assert run("SELECT COUNT(*) FILTER (WHERE n > 1) AS c, SUM(n) FILTER (WHERE k = 'a') AS s, "
               "ANY_VALUE(k) AS a, EARLIEST(n) AS e, LATEST(x) AS l, STRING_AGG(k, '|') AS j, "
               "COUNT(DISTINCT k) AS d, APPROX_COUNT_DISTINCT(n) AS ad FROM t") == \
        [{"c": 2, "s": 1, "a": "a", "e": 1, "l": -1.0, "j": "a||b", "d": 3, "ad": 3}]
    assert run("SELECT TIME_FLOOR(__time, 'P1D') AS day, EARLIEST_BY(k, __time) AS first_k, LATEST(n) AS last_n, "
               "COUNT(DISTINCT k) AS dk FROM t GROUP BY 1 ORDER BY 1") == [
        {"day": 0, "first_k": "a", "last_n": 2, "dk": 1},
        {"day": 86_400_000, "first_k": "", "last_n": 4, "dk": 2}]
    assert run("SELECT k, COUNT(*) AS c FROM t GROUP BY k ORDER BY k DESC NULLS FIRST") == [
        {"k": None, "c": 1}, {"k": "b", "c": 1}, {"k": "a", "c": 1}, {"k": "", "c": 1}]


def test_distinct_and_values():
    assert run("SELECT DISTINCT TIME_FLOOR(__time, 'P1D') AS d FROM t ORDER BY d") == [{"d": 0}, {"d": 86_400_000}]
    assert run("SELECT x + 1 AS y, s FROM (VALUES (1, 'a'), (2.5, NULL)) AS v(x, s) ORDER BY y") == \
        [{"y": 2.0, "s": "a"}, {"y": 3.5, "s": None}]


@pytest.mark.parametrize("where, message", [
    ("__time >= TIMESTAMP '2000-01-05 00:00:00' AND __time <= TIMESTAMP '2000-01-06 00:00:00'",
     "OVERWRITE WHERE clause identified interval [2000-01-05T00:00:00.000Z/2000-01-06T00:00:00.001Z] which is not "
     "aligned with PARTITIONED BY granularity [{type=period, period=P1M, timeZone=UTC, origin=null}]"),
    ("__time >= TIMESTAMP '2025-01-01'",
     "OVERWRITE WHERE clause identified interval [2025-01-01T00:00:00.000Z/146140482-04-24T15:36:27.903Z] which is "
     "not aligned with PARTITIONED BY granularity"),
    ("k = 'x'", "OVERWRITE WHERE clause only supports filtering on the __time column, got [k]"),
    ("__time < TIMESTAMP '2000-01-01' AND __time > TIMESTAMP '2000-01-01'",
     "produced no time intervals, are the bounds overly restrictive?"),
])
def test_overwrite_where_validation(where, message):
    with pytest.raises(InvalidInput) as e:
        plan_task(f"REPLACE INTO w OVERWRITE WHERE {where} SELECT __time, k FROM t PARTITIONED BY MONTH", {}, None,
                  Catalog())
    assert message in e.value.message


def test_overwrite_where_intervals():
    plan = plan_task("REPLACE INTO w OVERWRITE WHERE __time BETWEEN TIMESTAMP '2000-01-01' AND "
                     "TIMESTAMP '2000-01-31 23:59:59.999' OR (__time >= '2000-03-01' AND __time < '2000-04-01') "
                     "SELECT __time, k FROM t PARTITIONED BY MONTH", {}, None, Catalog())
    assert plan.payload["spec"]["destination"]["replaceTimeChunks"] == [
        "2000-01-01T00:00:00.000Z/2000-02-01T00:00:00.000Z", "2000-03-01T00:00:00.000Z/2000-04-01T00:00:00.000Z"]
    assert plan.payload["sqlQueryContext"]["sqlReplaceTimeChunks"] == \
        "2000-01-01T00:00:00.000Z/2000-02-01T00:00:00.000Z,2000-03-01T00:00:00.000Z/2000-04-01T00:00:00.000Z"


def test_div_and_array_agg_calls_keep_their_arguments():
    """sqlglot reads DIV as an operator and drops ARRAY_AGG's size; both reach the binder
    whole, and text inside strings or other names is left alone."""
    assert run("SELECT DIV(n + 1, 2) AS q, 'DIV(1, 2)' AS s FROM t WHERE n = 1") == [{"q": 1, "s": "DIV(1, 2)"}]
    assert run("SELECT ARRAY_AGG(DISTINCT k, 100) AS a FROM t") == [{"a": [None, "", "a", "b"]}]
    query = compile_query(split_statement("SELECT ARRAY_AGG(k, 4096) AS a FROM t").select, Catalog())
    assert (query.aggregations[0].kind, query.aggregations[0].max_bytes) == ("array_agg", 4096)


def test_union_of_tables_is_a_union_datasource():
    from msqcore.planner.native import native_query
    from msqcore.planner.query import UnionSource, UnplannableQuery
    query = compile_query(split_statement("SELECT k FROM t UNION ALL SELECT k FROM t LIMIT 3").select, Catalog())
    assert isinstance(query.source, UnionSource) and query.limit == 3
    native, _ = native_query(query, {})
    assert native["dataSource"] == {"type": "union", "dataSources": [{"type": "table", "name": "t"}] * 2}
    with pytest.raises(UnplannableQuery, match="column names queried for each table are different Left: "
                                               r"\[k\], Right: \[n\]"):
        compile_query(split_statement("SELECT k FROM t UNION ALL SELECT n AS k FROM t").select, Catalog())
