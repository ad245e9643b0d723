-- Subqueries in FROM that group, order or limit: Druid's `query` datasource. The inner
-- query runs first (its own stages in a task), the outer query reads its rows.

-- name: group_by_over_grouped_subquery
-- task
SELECT k, SUM(c) AS total FROM (SELECT id / 4 AS k, s2, COUNT(*) AS c FROM cases GROUP BY 1, 2) GROUP BY k ORDER BY k
-- expect: [{"k": 0, "total": 4}, {"k": 1, "total": 4}, {"k": 2, "total": 2}]

-- name: where_over_grouped_subquery
-- task
SELECT t.k, t.m FROM (SELECT id / 4 AS k, MAX(n) AS m FROM cases GROUP BY 1) t WHERE t.m > 5 ORDER BY t.k
-- expect: [{"k": 1, "m": 100}, {"k": 2, "m": 9}]

-- name: aggregate_over_ordered_limited_subquery
-- task
SELECT COUNT(*) AS c, SUM(n) AS s FROM (SELECT n FROM cases WHERE n IS NOT NULL ORDER BY n DESC LIMIT 3)
-- expect: [{"c": 3, "s": 151}]

-- name: subquery_of_a_subquery
-- task
SELECT MAX(t) AS mt FROM (SELECT k, SUM(c) AS t FROM (SELECT id / 4 AS k, COUNT(*) AS c FROM cases GROUP BY 1) GROUP BY k)
-- expect: [{"mt": 4}]

-- name: grouped_cte
-- task
WITH g AS (SELECT id / 4 AS k, COUNT(*) AS c FROM cases GROUP BY 1) SELECT SUM(c) AS n, COUNT(*) AS groups FROM g
-- expect: [{"n": 10, "groups": 3}]

-- name: scan_over_grouped_subquery_with_limit
-- task
SELECT k * 10 AS k10 FROM (SELECT id / 4 AS k, COUNT(*) AS c FROM cases GROUP BY 1 ORDER BY c DESC, k LIMIT 2) ORDER BY k10
-- expect: [{"k10": 0}, {"k10": 10}]

-- name: join_with_a_base_over_a_grouped_subquery
-- task
SELECT t.k, b.id FROM (SELECT k FROM (SELECT id / 4 AS k, COUNT(*) AS c FROM cases GROUP BY 1)) t JOIN cases b ON t.k = b.id ORDER BY t.k
-- expect: [{"k": 0, "id": 0}, {"k": 1, "id": 1}, {"k": 2, "id": 2}]
