"""Writes join.sql: each case's expected rows computed by DuckDB over CASES_ROWS (the rows of
the ``cases`` datasource). Run ``python tests/sql_cases/join_expectations.py`` after editing
the cases below; SELECT * naming (Calcite's) and the error cases are written by hand."""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import duckdb  # noqa: E402
from test_sql_cases import CASES_ROWS  # noqa: E402

con = duckdb.connect()
con.execute("CREATE TABLE cases (id BIGINT, s VARCHAR, s2 VARCHAR, n BIGINT, d DOUBLE)")
con.executemany("INSERT INTO cases VALUES (?, ?, ?, ?, ?)",
                [(r["id"], r["s"], r["s2"], r["n"], r["d"]) for r in CASES_ROWS])

V3 = "(VALUES (1, 'one'), (-2, 'minus two'), (7, 'seven'), (CAST(NULL AS BIGINT), 'null')) AS v(n, label)"
CASES = [
    ("self_join",
     "SELECT a.id, b.s2 FROM cases a JOIN cases b ON a.id = b.id WHERE a.id < 3 ORDER BY a.id",
     {},
     True),
    ("join_values_null_keys_never_match",
     f"SELECT c.id, v.label FROM cases c JOIN {V3} ON c.n = v.n ORDER BY c.id",
     {},
     True),
    ("left_join_keeps_unmatched",
     f"SELECT c.id, v.label FROM cases c LEFT JOIN {V3} ON c.n = v.n ORDER BY c.id",
     {},
     True),
    ("comma_cross_join",
     "SELECT COUNT(*) AS c FROM cases, (VALUES (1), (2)) AS v(x)",
     {},
     True),
    ("cross_join",
     "SELECT c.id, v.x FROM cases c CROSS JOIN (VALUES (10), (20)) AS v(x) WHERE c.id < 2 ORDER BY "
     "c.id, v.x",
     {},
     False),
    ("comma_join_with_where_equality",
     "SELECT a.id, b.n FROM cases a, cases b WHERE a.id = b.id AND a.id > 7 ORDER BY a.id",
     {},
     False),
    ("using_clause",
     "SELECT id, s2, x FROM cases JOIN (VALUES ('b', 1), ('B', 2), ('zz', 3)) AS v(s2, x) USING (s2) "
     "ORDER BY id",
     {},
     True),
    ("group_by_over_join",
     "SELECT v.g, COUNT(*) AS cnt, SUM(c.n) AS total FROM cases c JOIN (VALUES ('abc', 'x'), ('ABC', "
     "'x'), ('', 'y'), ('nope', 'z')) AS v(s, g) ON c.s = v.s GROUP BY v.g ORDER BY v.g",
     {},
     True),
    ("aggregating_subquery_on_the_right",
     "SELECT c.id, t.cnt FROM cases c JOIN (SELECT s2, COUNT(*) AS cnt FROM cases GROUP BY s2) t ON "
     "c.s2 = t.s2 WHERE c.id < 5 ORDER BY c.id",
     {},
     True),
    ("aggregating_subquery_on_the_left",
     "SELECT t.s2, t.cnt, b.id FROM (SELECT s2, COUNT(*) AS cnt FROM cases GROUP BY s2) t JOIN cases "
     "b ON t.s2 = b.s ORDER BY b.id",
     {},
     True),
    ("sort_merge_aggregating_subqueries_on_both_sides",
     "SELECT t.s2, t.cnt, u.m FROM (SELECT s2, COUNT(*) AS cnt FROM cases GROUP BY s2) t LEFT JOIN "
     "(SELECT s, MAX(n) AS m FROM cases GROUP BY s) u ON t.s2 = u.s ORDER BY t.s2 NULLS FIRST",
     {"sqlJoinAlgorithm": "sortMerge"},
     True),
    ("grouped_cte_as_join_input",
     "WITH t AS (SELECT s2, COUNT(*) AS cnt FROM cases GROUP BY s2) SELECT c.id, t.cnt FROM cases c JOIN t ON "
     "c.s2 = t.s2 WHERE c.id < 3 ORDER BY c.id",
     {},
     True),
    ("right_side_filter_in_condition",
     "SELECT a.id, b.n FROM cases a JOIN cases b ON a.id = b.id AND b.n > 0 ORDER BY a.id",
     {},
     False),
    ("left_join_right_filter_keeps_rows",
     "SELECT a.id, b.n FROM cases a LEFT JOIN cases b ON a.id = b.id AND b.n > 0 ORDER BY a.id",
     {},
     True),
    ("left_side_filter_in_inner_condition",
     "SELECT a.id FROM cases a JOIN cases b ON a.id = b.id AND a.n < 0 ORDER BY a.id",
     {},
     False),
    ("string_key_against_number",
     "SELECT c.id, v.w FROM cases c JOIN (VALUES ('1', 'w1'), ('9', 'w9')) AS v(k, w) ON c.id = v.k "
     "ORDER BY c.id",
     {},
     False),
    ("expression_keys",
     "SELECT a.id, b.id AS bid FROM cases a JOIN cases b ON UPPER(a.s) = b.s ORDER BY a.id, b.id",
     {},
     False),
    ("three_way_join",
     "SELECT a.id, b.s2, v.tag FROM cases a JOIN cases b ON a.id = b.id JOIN (VALUES (0, 't0'), (4, "
     "'t4')) AS v(i, tag) ON b.id = v.i ORDER BY a.id",
     {},
     True),
    ("folded_subquery_on_the_left",
     "SELECT a.id, b.s2 FROM (SELECT id, s FROM cases WHERE id < 4) a JOIN cases b ON a.id = b.id "
     "ORDER BY a.id",
     {},
     False),
    ("join_in_cte",
     "WITH j AS (SELECT a.id AS id, b.n AS n FROM cases a JOIN cases b ON a.id = b.id) SELECT id, n "
     "FROM j WHERE n > 8 ORDER BY id",
     {},
     False),
    ("order_by_limit_over_join",
     "SELECT a.id, b.d FROM cases a JOIN cases b ON a.id = b.id ORDER BY b.d DESC LIMIT 3",
     {},
     True),
    ("null_string_keys_in_left_join",
     "SELECT a.id, b.id AS bid FROM cases a LEFT JOIN cases b ON a.s2 = b.s ORDER BY a.id",
     {},
     False),
    ("right_join_on_the_sql_endpoint",
     f"SELECT c.id, v.label FROM cases c RIGHT JOIN {V3} ON c.n = v.n ORDER BY v.label",
     {},
     False),
    ("sort_merge_right_join",
     f"SELECT c.id, v.label FROM cases c RIGHT JOIN {V3} ON c.n = v.n ORDER BY v.label",
     {"sqlJoinAlgorithm": "sortMerge"},
     True),
    ("sort_merge_full_join",
     "SELECT c.id, v.x FROM (SELECT id, n FROM cases WHERE id < 3) c FULL JOIN (VALUES (1, 'a'), (5, "
     "'b')) AS v(n, x) ON c.n = v.n ORDER BY c.id NULLS FIRST, v.x",
     {"sqlJoinAlgorithm": "sortMerge"},
     True),
    ("sort_merge_inner_join",
     "SELECT a.id, b.s2 FROM cases a JOIN cases b ON a.id = b.id WHERE a.id < 3 ORDER BY a.id",
     {"sqlJoinAlgorithm": "sortMerge"},
     True),
]

ERRORS = [
    ("ambiguous_column",
     "SELECT id FROM cases a JOIN cases b ON a.id = b.id",
     {},
     "400 invalidInput Column 'id' is ambiguous"),
    ("unknown_table_alias",
     "SELECT z.id FROM cases a JOIN cases b ON a.id = b.id",
     {},
     "400 invalidInput Table 'z' not found"),
    ("unknown_column_of_alias",
     "SELECT a.nope FROM cases a JOIN cases b ON a.id = b.id",
     {},
     "400 invalidInput Column 'nope' not found in table 'a'"),
    ("non_equi_condition",
     "SELECT a.id FROM cases a JOIN cases b ON a.id < b.id",
     {},
     "400 general Query could not be planned. A possible reason is [SQL requires a join with "
     "'LESS_THAN' condition that is not supported.]"),
    ("not_equals_between_sides",
     "SELECT a.id FROM cases a JOIN cases b ON a.id = b.id AND a.n <> b.n",
     {},
     "400 general SQL requires a join with 'NOT_EQUALS' condition that is not supported."),
    ("or_condition",
     "SELECT a.id FROM cases a JOIN cases b ON a.id = b.id OR a.n = b.n",
     {},
     "400 general SQL requires a join with 'OR' condition that is not supported."),
    ("ordered_subquery_on_the_left",
     "SELECT t.id FROM (SELECT id FROM cases ORDER BY id LIMIT 2) t JOIN cases b ON t.id = b.id",
     {},
     "400 general leftmost input of a JOIN"),
    ("duplicate_relation_name",
     "SELECT a.id FROM cases a JOIN cases a ON a.id = a.id",
     {},
     "400 invalidInput Duplicate relation name 'a' in FROM clause"),
    ("bad_join_algorithm",
     "SELECT a.id FROM cases a JOIN cases b ON a.id = b.id",
     {"sqlJoinAlgorithm": "nested"},
     "400 invalidInput sqlJoinAlgorithm"),
]

out = ["-- JOINs (spec §1.8). Generated by join_expectations.py: expectations computed with DuckDB over the",
       "-- same rows (CASES_ROWS), except SELECT * naming, which follows Calcite (duplicate names get 0, 1 ...).", ""]
for name, sql, ctx, task in CASES:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    out.append(f"-- name: {name}")
    if ctx:
        out.append(f"-- context: {json.dumps(ctx)}")
    if task:
        out.append("-- task")
    out.append(sql)
    out.append(f"-- expect: {json.dumps(rows, ensure_ascii=False)}")
    out.append("")
out += ["-- name: select_star_renames_duplicates",
        "SELECT * FROM (VALUES (1, 'a')) AS x(k, v) JOIN (VALUES (1, 'b')) AS y(k, w) ON x.k = y.k",
        '-- expect: [{"k": 1, "v": "a", "k0": 1, "w": "b"}]', "",
        "-- name: qualified_star",
        "SELECT y.* FROM (VALUES (1, 'a')) AS x(k, v) JOIN (VALUES (1, 'b')) AS y(k, w) ON x.k = y.k",
        '-- expect: [{"k": 1, "w": "b"}]', "",
        "-- name: using_star_lists_the_key_once",
        "SELECT * FROM (VALUES (1, 'a')) AS x(k, v) JOIN (VALUES (1, 'b')) AS y(k, w) USING (k)",
        '-- expect: [{"k": 1, "v": "a", "w": "b"}]', "",
        "-- name: parameters_in_on_and_where",
        '-- parameters: [{"type": "VARCHAR", "value": "b"}, {"type": "BIGINT", "value": 5}]',
        "SELECT a.id, b.n FROM cases a JOIN cases b ON a.id = b.id AND b.s2 = ? WHERE a.id < ?",
        '-- expect: [{"id": 0, "n": 1}]', ""]
for name, sql, ctx, err in ERRORS:
    out.append(f"-- name: {name}")
    if ctx:
        out.append(f"-- context: {json.dumps(ctx)}")
    out.append(sql)
    out.append(f"-- error: {err}")
    out.append("")
open(HERE / "join.sql", "w").write("\n".join(out))
