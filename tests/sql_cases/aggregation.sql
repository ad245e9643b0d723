-- Aggregation, grouping, ordering and limits (expectations cross-checked with DuckDB on the
-- same rows; SQL-compatible nulls: COUNT(col) skips nulls, aggregates over no rows are NULL).

-- name: count_star
-- task
SELECT COUNT(*) AS c FROM cases
-- expect: [{"c": 10}]

-- name: count_col_skips_nulls
SELECT COUNT(s) AS cs, COUNT(n) AS cn, COUNT(s2) AS cs2 FROM cases
-- expect: [{"cs": 9, "cn": 9, "cs2": 9}]

-- name: sum_min_max_avg
-- task
SELECT SUM(n) AS s, MIN(n) AS mi, MAX(n) AS ma, AVG(n) AS a FROM cases
-- expect: [{"s": 141, "mi": -15, "ma": 100, "a": 15.666666666666666}]

-- name: sum_double
SELECT SUM(d) AS s, MIN(d) AS mi, MAX(d) AS ma FROM cases WHERE id < 5
-- expect: [{"s": 1.9249999999999998, "mi": -2.25, "ma": 2.675}]

-- name: aggregates_over_no_rows
SELECT COUNT(*) AS c, SUM(n) AS s, MIN(n) AS mi, AVG(d) AS a FROM cases WHERE id > 100
-- expect: [{"c": 0, "s": null, "mi": null, "a": null}]

-- name: count_distinct_exact
-- context: {"useApproximateCountDistinct": false}
SELECT COUNT(DISTINCT s2) AS c FROM cases
-- expect: [{"c": 9}]

-- name: count_distinct_exact_grouped_is_a_nested_group_by
-- Druid plans it as a groupBy on (key, s2) under a groupBy on key that counts non-null s2.
-- task
-- context: {"useApproximateCountDistinct": false}
SELECT id / 4 AS k, COUNT(DISTINCT s2) AS c FROM cases GROUP BY 1 HAVING COUNT(DISTINCT s2) > 1 ORDER BY k
-- expect: [{"k": 0, "c": 3}, {"k": 1, "c": 4}, {"k": 2, "c": 2}]

-- name: approx_count_distinct
SELECT APPROX_COUNT_DISTINCT(n) AS c FROM cases
-- expect: [{"c": 9}]

-- name: group_by_month
-- task
SELECT TIME_FLOOR(__time, 'P1M') AS m, COUNT(*) AS c, SUM(n) AS s FROM cases GROUP BY 1 ORDER BY 1
-- expect: [{"m": "2020-02-01T00:00:00.000Z", "c": 1, "s": -1}, {"m": "2021-01-01T00:00:00.000Z", "c": 6, "s": 106}, {"m": "2021-02-01T00:00:00.000Z", "c": 1, "s": -15}, {"m": "2021-03-01T00:00:00.000Z", "c": 1, "s": 42}, {"m": "2021-12-01T00:00:00.000Z", "c": 1, "s": 9}]

-- name: group_by_expression_name
SELECT FLOOR(__time TO YEAR) AS y, COUNT(*) AS c FROM cases GROUP BY FLOOR(__time TO YEAR) ORDER BY y
-- expect: [{"y": "2020-01-01T00:00:00.000Z", "c": 1}, {"y": "2021-01-01T00:00:00.000Z", "c": 9}]

-- name: group_by_boolean_having
SELECT n > 0 AS pos, COUNT(*) AS c FROM cases GROUP BY 1 HAVING COUNT(*) > 3 ORDER BY 1
-- expect: [{"pos": false, "c": 4}, {"pos": true, "c": 5}]

-- name: filter_clause
-- task
SELECT COUNT(*) FILTER (WHERE n > 0) AS pos, SUM(n) FILTER (WHERE n < 0) AS neg, COUNT(s) FILTER (WHERE id < 3) AS early FROM cases
-- expect: [{"pos": 5, "neg": -18, "early": 2}]

-- name: group_null_key
SELECT s2, COUNT(*) AS c FROM cases WHERE id IN (1, 2, 3) GROUP BY s2 ORDER BY s2
-- expect: [{"s2": null, "c": 1}, {"s2": "", "c": 1}, {"s2": "B", "c": 1}]

-- name: string_agg_length
SELECT LENGTH(STRING_AGG(s2, ',')) AS l, STRING_AGG(s2, '|') FILTER (WHERE id = 0) AS one FROM cases WHERE id < 5
-- expect: [{"l": 8, "one": "b"}]

-- name: listagg_distinct
SELECT LISTAGG(DISTINCT UPPER(s2), ',') AS j FROM cases WHERE id IN (0, 1)
-- expect: [{"j": "B"}]

-- name: any_value
SELECT ANY_VALUE(s) AS v FROM cases WHERE id = 5
-- expect: [{"v": "ABC"}]

-- name: earliest_latest
-- task
SELECT EARLIEST(n) AS e, LATEST(n) AS l, EARLIEST_BY(s, __time) AS es FROM cases
-- expect: [{"e": -1, "l": 9, "es": "Hello World"}]

-- name: earliest_per_group
SELECT TIME_FLOOR(__time, 'P1Y') AS y, EARLIEST(s2) AS e, LATEST(d) AS l FROM cases GROUP BY 1 ORDER BY 1
-- expect: [{"y": "2020-01-01T00:00:00.000Z", "e": "o", "l": -7.125}, {"y": "2021-01-01T00:00:00.000Z", "e": "b", "l": 100.0}]

-- name: order_desc_nulls_first
SELECT id, n FROM cases ORDER BY n DESC NULLS FIRST, id LIMIT 3
-- expect: [{"id": 2, "n": null}, {"id": 4, "n": 100}, {"id": 7, "n": 42}]

-- name: order_default_nulls_first_ascending
SELECT id FROM cases ORDER BY n, id LIMIT 2
-- expect: [{"id": 2}, {"id": 6}]

-- name: order_asc_nulls_last
SELECT id, n FROM cases ORDER BY n ASC NULLS LAST LIMIT 2
-- expect: [{"id": 6, "n": -15}, {"id": 1, "n": -2}]

-- name: offset_limit
-- task
SELECT id FROM cases ORDER BY id LIMIT 3 OFFSET 4
-- expect: [{"id": 4}, {"id": 5}, {"id": 6}]

-- name: select_distinct
SELECT DISTINCT n > 0 AS pos FROM cases ORDER BY 1 NULLS FIRST
-- expect: [{"pos": null}, {"pos": false}, {"pos": true}]

-- name: avg_by_parity
SELECT MOD(id, 2) AS parity, AVG(d) AS a, COUNT(d) AS c FROM cases GROUP BY 1 ORDER BY 1
-- expect: [{"parity": 0, "a": 25.91875, "c": 4}, {"parity": 1, "a": 1999999998.775, "c": 5}]

-- name: having_on_aggregate_expression
SELECT MOD(id, 3) AS g, SUM(n) AS s FROM cases GROUP BY 1 HAVING SUM(n) IS NOT NULL AND SUM(n) > 0 ORDER BY 1
-- expect: [{"g": 1, "s": 140}, {"g": 2, "s": 16}]

-- name: post_aggregation_arithmetic
SELECT SUM(n) * 2 AS twice, SUM(n) / COUNT(n) AS mean_int FROM cases
-- expect: [{"twice": 282, "mean_int": 15}]

-- name: values_aggregate
SELECT SUM(x) AS s, COUNT(*) AS c FROM (VALUES (1), (2), (NULL)) AS v(x)
-- expect: [{"s": 3, "c": 3}]

-- name: subquery_projection
SELECT u, COUNT(*) AS c FROM (SELECT UPPER(s2) AS u FROM cases WHERE s2 IS NOT NULL) GROUP BY u ORDER BY c DESC, u LIMIT 2
-- expect: [{"u": "B", "c": 2}, {"u": "", "c": 1}]

-- name: with_cte
WITH big AS (SELECT id, n FROM cases WHERE n > 5) SELECT COUNT(*) AS c, MIN(id) AS first_id FROM big
-- expect: [{"c": 4, "first_id": 4}]

-- name: not_grouped
SELECT s, n FROM cases GROUP BY s
-- error: 400 invalidInput Expression 'n' is not being grouped

-- name: aggregate_in_group_by
SELECT COUNT(*) FROM cases GROUP BY COUNT(*)
-- error: 400 invalidInput Aggregate expressions cannot be used in GROUP BY

-- name: unknown_table
SELECT * FROM nowhere
-- error: 400 invalidInput Object 'nowhere' not found

-- name: unknown_column
SELECT nope FROM cases
-- error: 400 invalidInput Column 'nope' not found in any table

-- name: insert_on_sql_endpoint
INSERT INTO x SELECT * FROM cases PARTITIONED BY DAY
-- error: 400 invalidInput INSERT operations are not supported by requested SQL engine [native], consider using MSQ.

-- name: count_where_empty_string_is_not_null
SELECT COUNT(*) AS c FROM cases WHERE s = ''
-- expect: [{"c": 1}]

-- name: min_max_over_filtered_group
SELECT MIN(d) FILTER (WHERE d > 0) AS smallest_positive, MAX(n) FILTER (WHERE n < 0) AS largest_negative FROM cases
-- expect: [{"smallest_positive": 1.5, "largest_negative": -1}]

-- name: group_by_two_keys
SELECT TIME_FLOOR(__time, 'P1Y') AS y, n > 0 AS pos, COUNT(*) AS c FROM cases WHERE n IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
-- expect: [{"y": "2020-01-01T00:00:00.000Z", "pos": false, "c": 1}, {"y": "2021-01-01T00:00:00.000Z", "pos": false, "c": 3}, {"y": "2021-01-01T00:00:00.000Z", "pos": true, "c": 5}]

-- name: order_by_aggregate_desc_limit
SELECT s2, SUM(n) AS total FROM cases WHERE s2 IS NOT NULL GROUP BY s2 ORDER BY total DESC LIMIT 2
-- expect: [{"s2": "pad", "total": 100}, {"s2": "%", "total": 42}]

-- name: distinct_count_with_filter_rows
SELECT COUNT(DISTINCT n) AS c FROM cases WHERE n > 0
-- expect: [{"c": 5}]

-- name: sum_of_expression
SELECT SUM(n * 2 + 1) AS s FROM cases
-- expect: [{"s": 291}]
