-- JOINs (spec §1.8). Expectations computed with DuckDB over the same rows (CASES_ROWS),
-- except SELECT * naming, which follows Calcite (duplicate names get 0, 1 ...).

-- name: self_join
-- task
SELECT a.id, b.s2 FROM cases a JOIN cases b ON a.id = b.id WHERE a.id < 3 ORDER BY a.id
-- expect: [{"id": 0, "s2": "b"}, {"id": 1, "s2": "B"}, {"id": 2, "s2": null}]

-- name: join_values_null_keys_never_match
-- task
SELECT c.id, v.label FROM cases c JOIN (VALUES (1, 'one'), (-2, 'minus two'), (7, 'seven'), (CAST(NULL AS BIGINT), 'null')) AS v(n, label) ON c.n = v.n ORDER BY c.id
-- expect: [{"id": 0, "label": "one"}, {"id": 1, "label": "minus two"}, {"id": 5, "label": "seven"}]

-- name: left_join_keeps_unmatched
-- task
SELECT c.id, v.label FROM cases c LEFT JOIN (VALUES (1, 'one'), (-2, 'minus two'), (7, 'seven'), (CAST(NULL AS BIGINT), 'null')) AS v(n, label) ON c.n = v.n ORDER BY c.id
-- expect: [{"id": 0, "label": "one"}, {"id": 1, "label": "minus two"}, {"id": 2, "label": null}, {"id": 3, "label": null}, {"id": 4, "label": null}, {"id": 5, "label": "seven"}, {"id": 6, "label": null}, {"id": 7, "label": null}, {"id": 8, "label": null}, {"id": 9, "label": null}]

-- name: comma_cross_join
-- task
SELECT COUNT(*) AS c FROM cases, (VALUES (1), (2)) AS v(x)
-- expect: [{"c": 20}]

-- name: cross_join
SELECT c.id, v.x FROM cases c CROSS JOIN (VALUES (10), (20)) AS v(x) WHERE c.id < 2 ORDER BY c.id, v.x
-- expect: [{"id": 0, "x": 10}, {"id": 0, "x": 20}, {"id": 1, "x": 10}, {"id": 1, "x": 20}]

-- name: comma_join_with_where_equality
SELECT a.id, b.n FROM cases a, cases b WHERE a.id = b.id AND a.id > 7 ORDER BY a.id
-- expect: [{"id": 8, "n": 9}, {"id": 9, "n": -1}]

-- name: using_clause
-- task
SELECT id, s2, x FROM cases JOIN (VALUES ('b', 1), ('B', 2), ('zz', 3)) AS v(s2, x) USING (s2) ORDER BY id
-- expect: [{"id": 0, "s2": "b", "x": 1}, {"id": 1, "s2": "B", "x": 2}]

-- name: group_by_over_join
-- task
SELECT v.g, COUNT(*) AS cnt, SUM(c.n) AS total FROM cases c JOIN (VALUES ('abc', 'x'), ('ABC', 'x'), ('', 'y'), ('nope', 'z')) AS v(s, g) ON c.s = v.s GROUP BY v.g ORDER BY v.g
-- expect: [{"g": "x", "cnt": 2, "total": 8}, {"g": "y", "cnt": 1, "total": null}]

-- name: aggregating_subquery_on_the_right
-- task
SELECT c.id, t.cnt FROM cases c JOIN (SELECT s2, COUNT(*) AS cnt FROM cases GROUP BY s2) t ON c.s2 = t.s2 WHERE c.id < 5 ORDER BY c.id
-- expect: [{"id": 0, "cnt": 1}, {"id": 1, "cnt": 1}, {"id": 3, "cnt": 1}, {"id": 4, "cnt": 1}]

-- name: aggregating_subquery_on_the_left
-- task
SELECT t.s2, t.cnt, b.id FROM (SELECT s2, COUNT(*) AS cnt FROM cases GROUP BY s2) t JOIN cases b ON t.s2 = b.s ORDER BY b.id
-- expect: [{"s2": "abc", "cnt": 1, "id": 0}, {"s2": "", "cnt": 1, "id": 2}]

-- name: sort_merge_aggregating_subqueries_on_both_sides
-- context: {"sqlJoinAlgorithm": "sortMerge"}
-- task
SELECT t.s2, t.cnt, u.m FROM (SELECT s2, COUNT(*) AS cnt FROM cases GROUP BY s2) t LEFT JOIN (SELECT s, MAX(n) AS m FROM cases GROUP BY s) u ON t.s2 = u.s ORDER BY t.s2 NULLS FIRST
-- expect: [{"s2": null, "cnt": 1, "m": null}, {"s2": "", "cnt": 1, "m": null}, {"s2": "%", "cnt": 1, "m": null}, {"s2": "B", "cnt": 1, "m": null}, {"s2": "abc", "cnt": 1, "m": 1}, {"s2": "b", "cnt": 1, "m": null}, {"s2": "o", "cnt": 1, "m": null}, {"s2": "pad", "cnt": 1, "m": null}, {"s2": "y", "cnt": 1, "m": null}, {"s2": "語", "cnt": 1, "m": null}]

-- name: right_side_filter_in_condition
SELECT a.id, b.n FROM cases a JOIN cases b ON a.id = b.id AND b.n > 0 ORDER BY a.id
-- expect: [{"id": 0, "n": 1}, {"id": 4, "n": 100}, {"id": 5, "n": 7}, {"id": 7, "n": 42}, {"id": 8, "n": 9}]

-- name: left_join_right_filter_keeps_rows
-- task
SELECT a.id, b.n FROM cases a LEFT JOIN cases b ON a.id = b.id AND b.n > 0 ORDER BY a.id
-- expect: [{"id": 0, "n": 1}, {"id": 1, "n": null}, {"id": 2, "n": null}, {"id": 3, "n": null}, {"id": 4, "n": 100}, {"id": 5, "n": 7}, {"id": 6, "n": null}, {"id": 7, "n": 42}, {"id": 8, "n": 9}, {"id": 9, "n": null}]

-- name: left_side_filter_in_inner_condition
SELECT a.id FROM cases a JOIN cases b ON a.id = b.id AND a.n < 0 ORDER BY a.id
-- expect: [{"id": 1}, {"id": 6}, {"id": 9}]

-- name: string_key_against_number
SELECT c.id, v.w FROM cases c JOIN (VALUES ('1', 'w1'), ('9', 'w9')) AS v(k, w) ON c.id = v.k ORDER BY c.id
-- expect: [{"id": 1, "w": "w1"}, {"id": 9, "w": "w9"}]

-- name: expression_keys
SELECT a.id, b.id AS bid FROM cases a JOIN cases b ON UPPER(a.s) = b.s ORDER BY a.id, b.id
-- expect: [{"id": 0, "bid": 5}, {"id": 2, "bid": 2}, {"id": 5, "bid": 5}, {"id": 6, "bid": 6}]

-- name: three_way_join
-- task
SELECT a.id, b.s2, v.tag FROM cases a JOIN cases b ON a.id = b.id JOIN (VALUES (0, 't0'), (4, 't4')) AS v(i, tag) ON b.id = v.i ORDER BY a.id
-- expect: [{"id": 0, "s2": "b", "tag": "t0"}, {"id": 4, "s2": "pad", "tag": "t4"}]

-- name: folded_subquery_on_the_left
SELECT a.id, b.s2 FROM (SELECT id, s FROM cases WHERE id < 4) a JOIN cases b ON a.id = b.id ORDER BY a.id
-- expect: [{"id": 0, "s2": "b"}, {"id": 1, "s2": "B"}, {"id": 2, "s2": null}, {"id": 3, "s2": ""}]

-- name: join_in_cte
WITH j AS (SELECT a.id AS id, b.n AS n FROM cases a JOIN cases b ON a.id = b.id) SELECT id, n FROM j WHERE n > 8 ORDER BY id
-- expect: [{"id": 4, "n": 100}, {"id": 7, "n": 42}, {"id": 8, "n": 9}]

-- name: order_by_limit_over_join
-- task
SELECT a.id, b.d FROM cases a JOIN cases b ON a.id = b.id ORDER BY b.d DESC LIMIT 3
-- expect: [{"id": 5, "d": 10000000000.0}, {"id": 8, "d": 100.0}, {"id": 7, "d": 3.25}]

-- name: null_string_keys_in_left_join
SELECT a.id, b.id AS bid FROM cases a LEFT JOIN cases b ON a.s2 = b.s ORDER BY a.id
-- expect: [{"id": 0, "bid": null}, {"id": 1, "bid": null}, {"id": 2, "bid": null}, {"id": 3, "bid": 2}, {"id": 4, "bid": null}, {"id": 5, "bid": 0}, {"id": 6, "bid": null}, {"id": 7, "bid": null}, {"id": 8, "bid": null}, {"id": 9, "bid": null}]

-- name: sort_merge_right_join
-- context: {"sqlJoinAlgorithm": "sortMerge"}
-- task
SELECT c.id, v.label FROM cases c RIGHT JOIN (VALUES (1, 'one'), (-2, 'minus two'), (7, 'seven'), (CAST(NULL AS BIGINT), 'null')) AS v(n, label) ON c.n = v.n ORDER BY v.label
-- expect: [{"id": 1, "label": "minus two"}, {"id": null, "label": "null"}, {"id": 0, "label": "one"}, {"id": 5, "label": "seven"}]

-- name: sort_merge_full_join
-- context: {"sqlJoinAlgorithm": "sortMerge"}
-- task
SELECT c.id, v.x FROM (SELECT id, n FROM cases WHERE id < 3) c FULL JOIN (VALUES (1, 'a'), (5, 'b')) AS v(n, x) ON c.n = v.n ORDER BY c.id NULLS FIRST, v.x
-- expect: [{"id": null, "x": "b"}, {"id": 0, "x": "a"}, {"id": 1, "x": null}, {"id": 2, "x": null}]

-- name: sort_merge_inner_join
-- context: {"sqlJoinAlgorithm": "sortMerge"}
-- task
SELECT a.id, b.s2 FROM cases a JOIN cases b ON a.id = b.id WHERE a.id < 3 ORDER BY a.id
-- expect: [{"id": 0, "s2": "b"}, {"id": 1, "s2": "B"}, {"id": 2, "s2": null}]

-- name: select_star_renames_duplicates
SELECT * FROM (VALUES (1, 'a')) AS x(k, v) JOIN (VALUES (1, 'b')) AS y(k, w) ON x.k = y.k
-- expect: [{"k": 1, "v": "a", "k0": 1, "w": "b"}]

-- name: qualified_star
SELECT y.* FROM (VALUES (1, 'a')) AS x(k, v) JOIN (VALUES (1, 'b')) AS y(k, w) ON x.k = y.k
-- expect: [{"k": 1, "w": "b"}]

-- name: using_star_lists_the_key_once
SELECT * FROM (VALUES (1, 'a')) AS x(k, v) JOIN (VALUES (1, 'b')) AS y(k, w) USING (k)
-- expect: [{"k": 1, "v": "a", "w": "b"}]

-- name: ambiguous_column
SELECT id FROM cases a JOIN cases b ON a.id = b.id
-- error: 400 invalidInput Column 'id' is ambiguous

-- name: unknown_table_alias
SELECT z.id FROM cases a JOIN cases b ON a.id = b.id
-- error: 400 invalidInput Table 'z' not found

-- name: unknown_column_of_alias
SELECT a.nope FROM cases a JOIN cases b ON a.id = b.id
-- error: 400 invalidInput Column 'nope' not found in table 'a'

-- name: non_equi_condition
SELECT a.id FROM cases a JOIN cases b ON a.id < b.id
-- error: 400 general Query could not be planned. A possible reason is [SQL requires a join with 'LESS_THAN' condition that is not supported.]

-- name: not_equals_between_sides
SELECT a.id FROM cases a JOIN cases b ON a.id = b.id AND a.n <> b.n
-- error: 400 general SQL requires a join with 'NOT_EQUALS' condition that is not supported.

-- name: or_condition
SELECT a.id FROM cases a JOIN cases b ON a.id = b.id OR a.n = b.n
-- error: 400 general SQL requires a join with 'OR' condition that is not supported.

-- name: ordered_subquery_on_the_left
SELECT t.id FROM (SELECT id FROM cases ORDER BY id LIMIT 2) t JOIN cases b ON t.id = b.id
-- error: 400 general leftmost input of a JOIN

-- name: right_join_needs_sort_merge
SELECT a.id FROM cases a RIGHT JOIN cases b ON a.id = b.id
-- error: 400 general sqlJoinAlgorithm: sortMerge

-- name: duplicate_relation_name
SELECT a.id FROM cases a JOIN cases a ON a.id = a.id
-- error: 400 invalidInput Duplicate relation name 'a' in FROM clause

-- name: bad_join_algorithm
-- context: {"sqlJoinAlgorithm": "nested"}
SELECT a.id FROM cases a JOIN cases b ON a.id = b.id
-- error: 400 invalidInput sqlJoinAlgorithm
