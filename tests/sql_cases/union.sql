-- UNION ALL as Druid plans it for MSQ: arms that each select columns of a regular table (no
-- filter, no expression), with the same column names, become one union datasource; the
-- query on top of it may filter, group, order and limit. Other shapes get the hints of
-- Druid's DruidUnionDataSourceRule. ``cases_b`` holds ids 10-12 (id, s, n only).

-- name: union_same_table_twice
-- task
SELECT COUNT(*) AS c, SUM(n) AS s FROM (SELECT n FROM cases UNION ALL SELECT n FROM cases)
-- expect: [{"c": 20, "s": 282}]

-- name: union_two_tables_filtered_on_top
-- task
SELECT id, n FROM (SELECT id, s, n FROM cases UNION ALL SELECT id, s, n FROM cases_b) WHERE n < 0 ORDER BY id
-- expect: [{"id": 1, "n": -2}, {"id": 6, "n": -15}, {"id": 9, "n": -1}, {"id": 12, "n": -3}]

-- name: union_group_by_on_top
-- task
SELECT s, COUNT(*) AS c FROM (SELECT s FROM cases UNION ALL SELECT s FROM cases_b) WHERE s IN ('abc', 'zz') OR s IS NULL GROUP BY s ORDER BY s
-- expect: [{"s": null, "c": 2}, {"s": "abc", "c": 2}, {"s": "zz", "c": 1}]

-- name: union_top_level_order_limit
-- task
SELECT id FROM cases UNION ALL SELECT id FROM cases_b ORDER BY id DESC LIMIT 2
-- expect: [{"id": 12}, {"id": 11}]

-- name: union_top_level_offset
SELECT id, s FROM cases_b UNION ALL SELECT id, s FROM cases_b ORDER BY id LIMIT 3 OFFSET 1
-- expect: [{"id": 10, "s": "abc"}, {"id": 11, "s": null}, {"id": 11, "s": null}]

-- name: union_three_arms_nested_parentheses
SELECT SUM(n) AS s, COUNT(n) AS cn FROM (SELECT n FROM cases UNION ALL (SELECT n FROM cases_b UNION ALL SELECT n FROM cases_b))
-- expect: [{"s": 145, "cn": 13}]

-- name: union_arms_renamed_alike
SELECT v FROM (SELECT n AS v FROM cases UNION ALL SELECT n AS v FROM cases_b) WHERE v > 6 ORDER BY v
-- expect: [{"v": 7}, {"v": 9}, {"v": 42}, {"v": 100}]

-- name: union_names_from_first_arm
SELECT a FROM (SELECT n AS a FROM cases_b UNION ALL SELECT n AS b FROM cases_b) ORDER BY a LIMIT 2
-- expect: [{"a": null}, {"a": null}]

-- name: union_star_of_same_table
SELECT COUNT(*) AS c, MAX(__time) AS t FROM (SELECT * FROM cases_b UNION ALL SELECT * FROM cases_b)
-- expect: [{"c": 6, "t": "2022-06-02T00:00:00.000Z"}]

-- name: union_in_cte
WITH u AS (SELECT id, n FROM cases UNION ALL SELECT id, n FROM cases_b) SELECT MAX(id) AS m, MIN(n) AS lo FROM u
-- expect: [{"m": 12, "lo": -15}]

-- name: union_alias_qualified
SELECT u.id FROM (SELECT id FROM cases_b UNION ALL SELECT id FROM cases_b) AS u WHERE u.id = 12
-- expect: [{"id": 12}, {"id": 12}]

-- name: union_distinct_refused
SELECT id FROM (SELECT id FROM cases UNION SELECT id FROM cases_b)
-- error: 400 general Query could not be planned. A possible reason is [SQL requires 'UNION' but only 'UNION ALL' is supported.]

-- name: union_column_names_differ
SELECT c FROM (SELECT s AS c, n FROM cases UNION ALL SELECT s2 AS c, n FROM cases)
-- error: 400 general Query could not be planned. A possible reason is [SQL requires union between two tables and column names queried for each table are different Left: [s, n], Right: [s2, n].]

-- name: union_arm_with_filter
SELECT COUNT(*) AS c FROM (SELECT id FROM cases WHERE n > 0 UNION ALL SELECT id FROM cases_b)
-- error: 400 general A possible reason is [SQL requires union between inputs that are not simple table scans and involve a filter or aliasing. Or column types of tables being unioned are not of same type.]

-- name: union_arm_with_expression
SELECT COUNT(*) AS c FROM (SELECT id + 1 AS id FROM cases UNION ALL SELECT id FROM cases_b)
-- error: 400 general not simple table scans and involve a filter or aliasing

-- name: union_arm_with_aggregation
SELECT c FROM (SELECT COUNT(*) AS c FROM cases UNION ALL SELECT COUNT(*) AS c FROM cases_b)
-- error: 400 general not simple table scans and involve a filter or aliasing

-- name: union_arm_without_table
SELECT x FROM (SELECT 1 AS x UNION ALL SELECT 2 AS x)
-- error: 400 general Union operation is only supported between regular tables.

-- On the SQL endpoint (Druid's native engine, which has ALLOW_TOP_LEVEL_UNION_ALL) a
-- top-level UNION ALL of arbitrary queries runs each query in turn and appends the rows;
-- the task engine refuses it (tests/test_sql_union.py).

-- name: top_level_union_of_aggregates
SELECT COUNT(*) AS c FROM cases UNION ALL SELECT COUNT(*) AS c FROM cases_b
-- expect: [{"c": 10}, {"c": 3}]

-- name: top_level_union_with_filters
SELECT id FROM cases WHERE id < 2 UNION ALL SELECT id FROM cases_b WHERE id > 11
-- expect: [{"id": 0}, {"id": 1}, {"id": 12}]

-- name: top_level_union_without_tables
SELECT 1 AS x UNION ALL SELECT 2 AS y UNION ALL SELECT 3
-- expect: [{"x": 1}, {"x": 2}, {"x": 3}]

-- name: top_level_union_unifies_numbers
SELECT n FROM cases WHERE id = 0 UNION ALL SELECT 2.5
-- expect: [{"n": 1.0}, {"n": 2.5}]

-- name: top_level_union_limit
SELECT s FROM cases WHERE id = 0 UNION ALL SELECT 'x' UNION ALL SELECT 'y' LIMIT 2
-- expect: [{"s": "abc"}, {"s": "x"}]

-- name: top_level_union_type_mismatch
SELECT s FROM cases UNION ALL SELECT n FROM cases
-- error: 400 invalidInput Type mismatch in column 1 of UNION

-- name: top_level_union_column_count_mismatch
SELECT s, n FROM cases UNION ALL SELECT s FROM cases WHERE id = 0
-- error: 400 invalidInput Column count mismatch in UNION ALL

-- name: top_level_union_order_by_refused
SELECT id FROM cases WHERE id < 2 UNION ALL SELECT id FROM cases_b ORDER BY id
-- error: 400 general not simple table scans and involve a filter or aliasing
