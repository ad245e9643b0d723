"""Differential tests: scalar expressions on msqcore vs DuckDB over generated data.

The data has NULLs, empty strings and negative numbers. Only expressions whose semantics
DuckDB shares with Druid's SQL-compatible mode are compared (string functions on ASCII,
NULL propagation, three-valued logic, integer and double arithmetic...); where the two
spell a function differently the case gives both spellings.
"""
from __future__ import annotations

import json
import math
import random

import pytest

from conftest import Server

duckdb = pytest.importorskip("duckdb")

ROWS = 240
_WORDS = ["", "a", "ab", "abc", "Hello", "hello world", "  x  ", "a_b", "zz%", "Mixed Case", "xyz", "b"]


def _rows() -> list[dict]:
    rng = random.Random(20240601)
    rows = []
    for i in range(ROWS):
        def pick(p_null=0.15):
            return None if rng.random() < p_null else rng.choice(_WORDS)
        rows.append({
            "id": i,
            "a": pick(),
            "b": pick(),
            "x": None if rng.random() < 0.15 else rng.randint(-50, 50),
            "y": None if rng.random() < 0.15 else rng.choice([-7, -3, -1, 1, 2, 3, 5, 10]),
            "u": None if rng.random() < 0.15 else round(rng.uniform(-100, 100), 3),
        })
    return rows


# (druid expression, duckdb expression or None for the same text)
EXPRESSIONS = [
    ("UPPER(a)", None),
    ("LOWER(a)", None),
    ("LENGTH(a)", None),
    ("a || '-' || b", None),
    ("REVERSE(a)", None),
    ("REPLACE(a, 'l', 'L')", None),
    ("TRIM(a)", None),
    ("LTRIM(a)", None),
    ("RTRIM(a)", None),
    ("LEFT(a, 2)", None),
    ("RIGHT(a, 2)", None),
    ("STRPOS(a, 'l')", None),
    ("REPEAT(a, 2)", None),
    ("a LIKE '%l%'", None),
    ("a NOT LIKE 'a%'", None),
    ("a = b", None),
    ("a < b", None),
    ("a IS NULL", None),
    ("a IN ('a', 'b', '')", None),
    ("COALESCE(a, b, 'none')", None),
    ("NULLIF(a, '')", None),
    ("CASE WHEN a = '' THEN 'empty' WHEN a IS NULL THEN 'null' ELSE a END", None),
    ("GREATEST(a, b)", None),
    ("LEAST(a, b)", None),
    ("x + y", None),
    ("x - y * 2", None),
    ("x / y", "CAST(trunc(x / y) AS BIGINT)"),
    ("x % y", None),
    ("-x", None),
    ("ABS(x)", None),
    ("x > y", None),
    ("x BETWEEN -10 AND 10", None),
    ("x IN (1, 2, 3)", None),
    ("x > 0 AND y > 0", None),
    ("x > 0 OR y > 0", None),
    ("NOT (x > y)", None),
    ("(x > 0) IS TRUE", None),
    ("(x > 0) IS NOT FALSE", None),
    ("GREATEST(x, y)", None),
    ("LEAST(x, y, 0)", None),
    ("COALESCE(x, y, 0)", None),
    ("NULLIF(x, 0)", None),
    ("CASE WHEN x > y THEN x ELSE y END", None),
    ("u * 2", None),
    ("u + x", None),
    ("FLOOR(u)", None),
    ("CEIL(u)", None),
    ("ABS(u)", None),
    ("POWER(x, 2)", "POWER(x, 2)::DOUBLE"),
    ("SQRT(ABS(u))", None),
    ("u > 0", None),
    ("CAST(x AS VARCHAR)", None),
    ("CAST(x AS DOUBLE)", None),
    ("BITWISE_AND(x, y)", "x & y"),
    ("BITWISE_OR(x, y)", "x | y"),
    ("BITWISE_XOR(x, y)", "xor(x, y)"),
    ("BITWISE_SHIFT_LEFT(x, 2)", "x * 4"),
    ("BITWISE_SHIFT_RIGHT(x, 1)", "x >> 1"),
    ("DIV(x, y)", "CAST(trunc(x / y) AS BIGINT)"),
    ("CASE WHEN x <> 0 THEN y / x END", "CASE WHEN x <> 0 THEN CAST(trunc(y / x) AS BIGINT) END"),
    ("PARSE_LONG(CAST(x AS VARCHAR))", "x"),
    ("STRING_FORMAT('%s/%d', a, x)", "coalesce(a, 'null') || '/' || coalesce(CAST(x AS VARCHAR), 'null')"),
]

# Whole queries DuckDB answers the same way: UNION ALL of tables, exact distinct counts.
QUERIES = [
    ("SELECT a, COUNT(*) AS c, SUM(x) AS s FROM (SELECT a, x FROM diff UNION ALL SELECT a, x FROM diff) "
     "GROUP BY a ORDER BY a NULLS FIRST", {}),
    ("SELECT a, COUNT(DISTINCT b) AS c, COUNT(DISTINCT x) AS cx FROM diff GROUP BY a ORDER BY a NULLS FIRST",
     {"useApproximateCountDistinct": False}),
    ("SELECT x FROM diff UNION ALL SELECT x FROM diff ORDER BY x NULLS FIRST LIMIT 30", {}),
]


@pytest.fixture(scope="module")
def differential(tmp_path_factory):
    rows = _rows()
    srv = Server(tmp_path_factory.mktemp("differential") / "var")
    srv.start()
    try:
        data = "".join(json.dumps(r) + "\n" for r in rows)
        sig = json.dumps([{"name": "id", "type": "long"}, {"name": "a", "type": "string"},
                          {"name": "b", "type": "string"}, {"name": "x", "type": "long"},
                          {"name": "y", "type": "long"}, {"name": "u", "type": "double"}])
        source = json.dumps({"type": "inline", "data": data}).replace("'", "''")
        task = srv.client.submit(
            "INSERT INTO diff SELECT TIMESTAMP '2024-01-01 00:00:00' AS __time, id, a, b, x, y, u "
            f"FROM TABLE(EXTERN('{source}', '{{\"type\":\"json\"}}', '{sig}')) PARTITIONED BY DAY")
        assert srv.client.wait(task)["statusCode"] == "SUCCESS"
        con = duckdb.connect()
        con.execute("CREATE TABLE diff (id BIGINT, a VARCHAR, b VARCHAR, x BIGINT, y BIGINT, u DOUBLE)")
        con.executemany("INSERT INTO diff VALUES (?, ?, ?, ?, ?, ?)",
                        [(r["id"], r["a"], r["b"], r["x"], r["y"], r["u"]) for r in rows])
        yield srv.client, con
    finally:
        srv.stop()


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


@pytest.mark.parametrize("druid_expr,duck_expr", EXPRESSIONS, ids=[e for e, _ in EXPRESSIONS])
def test_matches_duckdb(differential, druid_expr, duck_expr):
    client, con = differential
    ours = client.sql(f"SELECT id, {druid_expr} AS v FROM diff ORDER BY id")
    theirs = con.execute(f"SELECT id, {duck_expr or druid_expr} AS v FROM diff ORDER BY id").fetchall()
    assert len(ours) == len(theirs) == ROWS
    mismatches = [(row["id"], row["v"], v) for row, (_, v) in zip(ours, theirs) if not _same(row["v"], v)]
    assert not mismatches, f"{druid_expr}: (id, msqcore, duckdb) {mismatches[:10]}"


@pytest.mark.parametrize("sql,context", QUERIES, ids=[q for q, _ in QUERIES])
def test_queries_match_duckdb(differential, sql, context):
    client, con = differential
    ours = [list(row.values()) for row in client.sql(sql, context=context)]
    theirs = [list(row) for row in con.execute(sql).fetchall()]
    assert len(ours) == len(theirs) and all(
        len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b)) for a, b in zip(ours, theirs)), (ours, theirs)
