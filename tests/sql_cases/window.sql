-- name: row_number_partitioned
-- task
SELECT id, s2, ROW_NUMBER() OVER (PARTITION BY MOD(id, 3) ORDER BY id DESC NULLS LAST) AS rn FROM cases ORDER BY id
-- expect: [{"id": 0, "s2": "b", "rn": 4}, {"id": 1, "s2": "B", "rn": 3}, {"id": 2, "s2": null, "rn": 3}, {"id": 3, "s2": "", "rn": 3}, {"id": 4, "s2": "pad", "rn": 2}, {"id": 5, "s2": "abc", "rn": 2}, {"id": 6, "s2": "語", "rn": 2}, {"id": 7, "s2": "%", "rn": 1}, {"id": 8, "s2": "y", "rn": 1}, {"id": 9, "s2": "o", "rn": 1}]

-- name: rank_dense_rank_ties
-- task
SELECT id, RANK() OVER (ORDER BY MOD(id, 4) NULLS FIRST) AS r, DENSE_RANK() OVER (ORDER BY MOD(id, 4) NULLS FIRST) AS dr FROM cases ORDER BY id
-- expect: [{"id": 0, "r": 1, "dr": 1}, {"id": 1, "r": 4, "dr": 2}, {"id": 2, "r": 7, "dr": 3}, {"id": 3, "r": 9, "dr": 4}, {"id": 4, "r": 1, "dr": 1}, {"id": 5, "r": 4, "dr": 2}, {"id": 6, "r": 7, "dr": 3}, {"id": 7, "r": 9, "dr": 4}, {"id": 8, "r": 1, "dr": 1}, {"id": 9, "r": 4, "dr": 2}]

-- name: percent_rank_cume_dist
SELECT id, PERCENT_RANK() OVER (ORDER BY n NULLS FIRST) AS pr, CUME_DIST() OVER (ORDER BY n NULLS FIRST) AS cd FROM cases ORDER BY id
-- expect: [{"id": 0, "pr": 0.5555555555555556, "cd": 0.6}, {"id": 1, "pr": 0.2222222222222222, "cd": 0.3}, {"id": 2, "pr": 0.0, "cd": 0.1}, {"id": 3, "pr": 0.4444444444444444, "cd": 0.5}, {"id": 4, "pr": 1.0, "cd": 1.0}, {"id": 5, "pr": 0.6666666666666666, "cd": 0.7}, {"id": 6, "pr": 0.1111111111111111, "cd": 0.2}, {"id": 7, "pr": 0.8888888888888888, "cd": 0.9}, {"id": 8, "pr": 0.7777777777777778, "cd": 0.8}, {"id": 9, "pr": 0.3333333333333333, "cd": 0.4}]

-- name: ntile
SELECT id, NTILE(3) OVER (ORDER BY id) AS t FROM cases ORDER BY id
-- expect: [{"id": 0, "t": 1}, {"id": 1, "t": 1}, {"id": 2, "t": 1}, {"id": 3, "t": 1}, {"id": 4, "t": 2}, {"id": 5, "t": 2}, {"id": 6, "t": 2}, {"id": 7, "t": 3}, {"id": 8, "t": 3}, {"id": 9, "t": 3}]

-- name: lag_lead_default
-- task
SELECT id, LAG(n) OVER (ORDER BY id) AS prev, LEAD(n, 2, 0) OVER (ORDER BY id) AS next2 FROM cases ORDER BY id
-- expect: [{"id": 0, "prev": null, "next2": null}, {"id": 1, "prev": 1, "next2": 0}, {"id": 2, "prev": -2, "next2": 100}, {"id": 3, "prev": null, "next2": 7}, {"id": 4, "prev": 0, "next2": -15}, {"id": 5, "prev": 100, "next2": 42}, {"id": 6, "prev": 7, "next2": 9}, {"id": 7, "prev": -15, "next2": -1}, {"id": 8, "prev": 42, "next2": 0}, {"id": 9, "prev": 9, "next2": 0}]

-- name: first_last_value
SELECT id, FIRST_VALUE(s) OVER (PARTITION BY MOD(id, 2) ORDER BY id) AS fv, LAST_VALUE(s) OVER (PARTITION BY MOD(id, 2) ORDER BY id ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS lv FROM cases ORDER BY id
-- expect: [{"id": 0, "fv": "abc", "lv": "x,y"}, {"id": 1, "fv": null, "lv": "Hello World"}, {"id": 2, "fv": "abc", "lv": "x,y"}, {"id": 3, "fv": null, "lv": "Hello World"}, {"id": 4, "fv": "abc", "lv": "x,y"}, {"id": 5, "fv": null, "lv": "Hello World"}, {"id": 6, "fv": "abc", "lv": "x,y"}, {"id": 7, "fv": null, "lv": "Hello World"}, {"id": 8, "fv": "abc", "lv": "x,y"}, {"id": 9, "fv": null, "lv": "Hello World"}]

-- name: running_sum_count_nulls
-- task
SELECT id, SUM(n) OVER (ORDER BY id) AS s, COUNT(n) OVER (ORDER BY id) AS c, COUNT(*) OVER (ORDER BY id) AS c_all FROM cases ORDER BY id
-- expect: [{"id": 0, "s": 1, "c": 1, "c_all": 1}, {"id": 1, "s": -1, "c": 2, "c_all": 2}, {"id": 2, "s": -1, "c": 2, "c_all": 3}, {"id": 3, "s": -1, "c": 3, "c_all": 4}, {"id": 4, "s": 99, "c": 4, "c_all": 5}, {"id": 5, "s": 106, "c": 5, "c_all": 6}, {"id": 6, "s": 91, "c": 6, "c_all": 7}, {"id": 7, "s": 133, "c": 7, "c_all": 8}, {"id": 8, "s": 142, "c": 8, "c_all": 9}, {"id": 9, "s": 141, "c": 9, "c_all": 10}]

-- name: sliding_rows_frame
SELECT id, SUM(d) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS s, MIN(n) OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS mn, MAX(n) OVER (ORDER BY id ROWS BETWEEN CURRENT ROW AND 2 FOLLOWING) AS mx FROM cases ORDER BY id
-- expect: [{"id": 0, "s": -0.75, "mn": 1, "mx": 1}, {"id": 1, "s": -0.75, "mn": -2, "mx": 0}, {"id": 2, "s": -2.25, "mn": -2, "mx": 100}, {"id": 3, "s": 2.675, "mn": -2, "mx": 100}, {"id": 4, "s": 10000000002.675, "mn": 0, "mx": 100}, {"id": 5, "s": 10000000002.175, "mn": 0, "mx": 42}, {"id": 6, "s": 10000000002.75, "mn": -15, "mx": 42}, {"id": 7, "s": 102.75, "mn": -15, "mx": 42}, {"id": 8, "s": 96.125, "mn": -15, "mx": 9}, {"id": 9, "s": 92.875, "mn": -1, "mx": -1}]

-- name: whole_partition_aggregates
SELECT id, SUM(n) OVER (PARTITION BY MOD(id, 2)) AS s, AVG(d) OVER (PARTITION BY MOD(id, 2)) AS a, MAX(d) OVER () AS m FROM cases ORDER BY id
-- expect: [{"id": 0, "s": 95, "a": 25.91875, "m": 10000000000.0}, {"id": 1, "s": 46, "a": 1999999998.775, "m": 10000000000.0}, {"id": 2, "s": 95, "a": 25.91875, "m": 10000000000.0}, {"id": 3, "s": 46, "a": 1999999998.775, "m": 10000000000.0}, {"id": 4, "s": 95, "a": 25.91875, "m": 10000000000.0}, {"id": 5, "s": 46, "a": 1999999998.775, "m": 10000000000.0}, {"id": 6, "s": 95, "a": 25.91875, "m": 10000000000.0}, {"id": 7, "s": 46, "a": 1999999998.775, "m": 10000000000.0}, {"id": 8, "s": 95, "a": 25.91875, "m": 10000000000.0}, {"id": 9, "s": 46, "a": 1999999998.775, "m": 10000000000.0}]

-- name: expression_around_window
SELECT id, n * 100.0 / SUM(n) OVER () AS pct FROM cases WHERE n > 0 ORDER BY id
-- expect: [{"id": 0, "pct": 0.6289308176100629}, {"id": 4, "pct": 62.893081761006286}, {"id": 5, "pct": 4.40251572327044}, {"id": 7, "pct": 26.41509433962264}, {"id": 8, "pct": 5.660377358490566}]

-- name: window_over_group_by
-- task
SELECT MOD(id, 3) AS k, SUM(n) AS total, RANK() OVER (ORDER BY SUM(n) DESC) AS r, SUM(SUM(n)) OVER () AS grand FROM cases GROUP BY MOD(id, 3) ORDER BY k
-- expect: [{"k": 0, "total": -15, "r": 3, "grand": 141}, {"k": 1, "total": 140, "r": 1, "grand": 141}, {"k": 2, "total": 16, "r": 2, "grand": 141}]

-- name: named_window
SELECT id, ROW_NUMBER() OVER w AS rn, SUM(n) OVER (w ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s2 FROM cases WINDOW w AS (PARTITION BY MOD(id, 2) ORDER BY id) ORDER BY id
-- expect: [{"id": 0, "rn": 1, "s2": 1}, {"id": 1, "rn": 1, "s2": -2}, {"id": 2, "rn": 2, "s2": 1}, {"id": 3, "rn": 2, "s2": -2}, {"id": 4, "rn": 3, "s2": 100}, {"id": 5, "rn": 3, "s2": 7}, {"id": 6, "rn": 4, "s2": 85}, {"id": 7, "rn": 4, "s2": 49}, {"id": 8, "rn": 5, "s2": -6}, {"id": 9, "rn": 5, "s2": 41}]

-- name: window_then_limit
-- task
SELECT id, SUM(n) OVER (ORDER BY id) AS s FROM cases ORDER BY id DESC LIMIT 3
-- expect: [{"id": 9, "s": 141}, {"id": 8, "s": 142}, {"id": 7, "s": 133}]

-- name: window_with_filter
SELECT id, ROW_NUMBER() OVER (ORDER BY d DESC NULLS LAST) AS rn FROM cases WHERE s IS NOT NULL ORDER BY id
-- expect: [{"id": 0, "rn": 5}, {"id": 2, "rn": 9}, {"id": 3, "rn": 6}, {"id": 4, "rn": 4}, {"id": 5, "rn": 1}, {"id": 6, "rn": 7}, {"id": 7, "rn": 3}, {"id": 8, "rn": 2}, {"id": 9, "rn": 8}]


-- name: window_range_with_offset_refused
SELECT id, SUM(n) OVER (ORDER BY id RANGE BETWEEN 1 PRECEDING AND CURRENT ROW) AS s FROM cases
-- error: 400 invalidInput The query contains a window frame which may return incorrect results. To disregard this warning, set [windowingStrictValidation] to false in the query context.

-- name: window_ntile_with_frame_refused
SELECT NTILE(2) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS t FROM cases
-- error: 400 invalidInput Framing of NTILE is not supported.

-- name: window_both_bounds_preceding_refused
SELECT SUM(n) OVER (ORDER BY id ROWS BETWEEN 3 PRECEDING AND 1 PRECEDING) AS s FROM cases
-- error: 400 invalidInput Query bounds with both lower and upper bounds as PRECEDING or FOLLOWING is not supported.

-- name: window_first_value_offset_frame_refused
SELECT FIRST_VALUE(n) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s FROM cases
-- error: 400 invalidInput Framing of FIRST_VALUE/LAST_VALUE is only allowed with UNBOUNDED or CURRENT ROW.

-- name: window_unknown_named_window
SELECT ROW_NUMBER() OVER nope AS rn FROM cases
-- error: 400 invalidInput Window 'nope' not found
