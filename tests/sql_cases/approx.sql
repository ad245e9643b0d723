-- Approximate distinct counts: COUNT(DISTINCT) is APPROX_COUNT_DISTINCT_BUILTIN unless
-- useApproximateCountDistinct=false (Druid's defaults). Druid's HyperLogLogCollector is
-- exact-in-practice at these sizes (linear counting over 2048 registers, rounded), so these
-- are the true counts; tests/test_sql_approx.py checks the estimates where they are not.

-- name: count_distinct_default_is_approximate
-- task
SELECT COUNT(DISTINCT s) AS c, COUNT(DISTINCT s2) AS c2 FROM cases
-- expect: [{"c": 9, "c2": 9}]

-- name: count_distinct_exact_by_context
-- context: {"useApproximateCountDistinct": false}
SELECT COUNT(DISTINCT s) AS c, COUNT(DISTINCT n) AS cn FROM cases
-- expect: [{"c": 9, "cn": 9}]

-- name: approx_count_distinct_types
-- task
SELECT APPROX_COUNT_DISTINCT(d) AS cd, APPROX_COUNT_DISTINCT_BUILTIN(f) AS cf, APPROX_COUNT_DISTINCT(__time) AS ct, APPROX_COUNT_DISTINCT(n > 0) AS cb FROM cases
-- expect: [{"cd": 9, "cf": 9, "ct": 10, "cb": 2}]

-- name: approx_count_distinct_stays_approximate_without_context
-- context: {"useApproximateCountDistinct": false}
SELECT APPROX_COUNT_DISTINCT(s) AS c FROM cases
-- expect: [{"c": 9}]

-- name: approx_count_distinct_filtered
SELECT APPROX_COUNT_DISTINCT(s2) FILTER (WHERE id < 5) AS c FROM cases
-- expect: [{"c": 4}]

-- name: approx_count_distinct_expression
-- SUBSTRING('', 1, 1) is NULL in Druid (its substring returns the default string value, null)
SELECT APPROX_COUNT_DISTINCT(LOWER(s)) AS c, COUNT(DISTINCT SUBSTRING(s, 1, 1)) AS c1 FROM cases
-- expect: [{"c": 8, "c1": 7}]

-- name: approx_count_distinct_grouped
-- task
SELECT TIME_FLOOR(__time, 'P1Y') AS y, COUNT(DISTINCT s2) AS c, COUNT(*) AS n FROM cases GROUP BY 1 ORDER BY 1
-- expect: [{"y": "2020-01-01T00:00:00.000Z", "c": 1, "n": 1}, {"y": "2021-01-01T00:00:00.000Z", "c": 8, "n": 9}]

-- name: approx_count_distinct_over_no_rows
SELECT APPROX_COUNT_DISTINCT(s) AS c, COUNT(DISTINCT s2) AS c2 FROM cases WHERE id > 100
-- expect: [{"c": 0, "c2": 0}]

-- name: approx_count_distinct_all_null
SELECT COUNT(DISTINCT s) AS c FROM cases WHERE id = 1
-- expect: [{"c": 0}]

-- name: count_distinct_over_union
SELECT COUNT(DISTINCT s) AS c FROM (SELECT s FROM cases UNION ALL SELECT s FROM cases_b)
-- expect: [{"c": 10}]

-- name: approx_count_distinct_in_having
SELECT s2 FROM cases GROUP BY s2 HAVING APPROX_COUNT_DISTINCT(id) >= 1 AND s2 LIKE 'p%'
-- expect: [{"s2": "pad"}]

-- name: approx_count_distinct_arity
SELECT APPROX_COUNT_DISTINCT_BUILTIN(s, s2) AS c FROM cases
-- error: 400 invalidInput Invalid number of arguments to function 'APPROX_COUNT_DISTINCT_BUILTIN'
