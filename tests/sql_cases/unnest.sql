-- CROSS JOIN UNNEST(expr) AS t(col) and FROM t, UNNEST(...): each row once per element
-- (engine/unnest.py); a NULL or empty array gives no row. Filters on the unnested column
-- become the unnest datasource's unnestFilter in the native query (tests/test_arrays.py).

-- name: unnest_split_strings
SELECT id, x FROM cases CROSS JOIN UNNEST(STRING_TO_ARRAY(s, ',')) AS t(x) WHERE id IN (0, 1, 2, 8) ORDER BY id, x
-- expect: [{"id": 0, "x": "abc"}, {"id": 2, "x": ""}, {"id": 8, "x": "x"}, {"id": 8, "x": "y"}]
-- task

-- name: unnest_comma_join
SELECT id, x FROM cases, UNNEST(ARRAY[n, id]) AS t(x) WHERE id < 2 ORDER BY id, x
-- expect: [{"id": 0, "x": 0}, {"id": 0, "x": 1}, {"id": 1, "x": -2}, {"id": 1, "x": 1}]

-- name: unnest_filter_on_unnested_column
SELECT id FROM cases CROSS JOIN UNNEST(STRING_TO_ARRAY(s, ',')) AS t(x) WHERE x = 'y' ORDER BY id
-- expect: [{"id": 8}]
-- task

-- name: unnest_filter_both_sides
SELECT id, t.x FROM cases CROSS JOIN UNNEST(ARRAY[s2, 'z']) AS t(x) WHERE t.x <> 'z' AND id > 6 ORDER BY id
-- expect: [{"id": 7, "x": "%"}, {"id": 8, "x": "y"}, {"id": 9, "x": "o"}]

-- name: unnest_group_by_element
SELECT x, COUNT(*) AS c FROM cases CROSS JOIN UNNEST(ARRAY['a', s2]) AS t(x) WHERE id < 3 GROUP BY x ORDER BY x
-- expect: [{"x": null, "c": 1}, {"x": "B", "c": 1}, {"x": "a", "c": 3}, {"x": "b", "c": 1}]
-- task

-- name: unnest_literal_only
SELECT x FROM UNNEST(ARRAY[3, 1, 2]) AS t(x) ORDER BY x
-- expect: [{"x": 1}, {"x": 2}, {"x": 3}]

-- name: unnest_literal_expression
SELECT t.x * 2 AS y FROM UNNEST(ARRAY[1.5, 2.0]) AS t(x) WHERE t.x > 1.6
-- expect: [{"y": 4.0}]

-- name: unnest_star
SELECT * FROM UNNEST(ARRAY['p', 'q']) AS t(v)
-- expect: [{"v": "p"}, {"v": "q"}]

-- name: unnest_empty_array_no_rows
SELECT COUNT(*) AS c FROM cases CROSS JOIN UNNEST(STRING_TO_ARRAY(s, '_')) AS t(x) WHERE s = ','
-- expect: [{"c": 0}]

-- name: unnest_count_elements
SELECT COUNT(*) AS c, COUNT(DISTINCT x) AS d FROM cases CROSS JOIN UNNEST(STRING_TO_ARRAY(s, ' ')) AS t(x)
-- expect: [{"c": 13, "d": 11}]

-- name: unnest_aggregate_numbers
SELECT id, SUM(x) AS total FROM cases CROSS JOIN UNNEST(ARRAY[n, n, 1]) AS t(x) WHERE id IN (0, 2, 4) GROUP BY id ORDER BY id
-- expect: [{"id": 0, "total": 3}, {"id": 2, "total": 1}, {"id": 4, "total": 201}]

-- name: unnest_of_scalar_fails
SELECT x FROM cases CROSS JOIN UNNEST(n) AS t(x)
-- error: 400 invalidInput Cannot apply 'UNNEST' to arguments of type 'UNNEST(<BIGINT>)'

-- Druid's unnest rules take one expression without ordinality, so these find no plan and
-- fail with QueryHandler's generic planning failure (HTTP 501).

-- name: unnest_with_ordinality_refused
SELECT x, o FROM UNNEST(ARRAY[10, 20]) WITH ORDINALITY AS t(x, o)
-- error: 501 general Unhandled Query Planning Failure, see broker logs for details

-- name: unnest_two_expressions_refused
SELECT id, a, b FROM cases CROSS JOIN UNNEST(ARRAY[1, 2], ARRAY['x', 'y']) AS t(a, b)
-- error: 501 general Unhandled Query Planning Failure, see broker logs for details
