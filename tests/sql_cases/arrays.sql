-- ARRAY_AGG([DISTINCT] expr[, maxSizeBytes]): every value of the group, NULLs included;
-- DISTINCT sorts with NULL first (array_set_add's TreeSet). The SQL endpoint writes an
-- ARRAY result as its JSON text (sqlStringifyArrays defaults to true). Without DISTINCT the
-- element order is the order rows are read, which Druid does not define either, so these
-- cases use DISTINCT or one-row groups.

-- name: array_agg_distinct_strings
SELECT ARRAY_AGG(DISTINCT s2) AS a FROM cases WHERE id < 5
-- expect: [{"a": "[null,\"\",\"B\",\"b\",\"pad\"]"}]

-- name: array_agg_distinct_with_size
SELECT ARRAY_AGG(DISTINCT s2, 16384) AS a FROM cases WHERE id IN (0, 4)
-- expect: [{"a": "[\"b\",\"pad\"]"}]

-- name: array_agg_keeps_nulls
SELECT id, ARRAY_AGG(n) AS a FROM cases WHERE id IN (2, 3) GROUP BY id ORDER BY id
-- expect: [{"id": 2, "a": "[null]"}, {"id": 3, "a": "[0]"}]

-- name: array_agg_distinct_doubles
SELECT ARRAY_AGG(DISTINCT d) AS a FROM cases WHERE id < 4
-- expect: [{"a": "[null,-2.25,0.0,1.5]"}]

-- name: array_agg_nothing_aggregated_is_null
SELECT ARRAY_AGG(s) FILTER (WHERE id > 100) AS a, COUNT(*) AS c FROM cases
-- expect: [{"a": null, "c": 10}]

-- name: array_agg_expression_grouped
SELECT TIME_FLOOR(__time, 'P1Y') AS y, ARRAY_AGG(DISTINCT UPPER(s2)) AS a FROM cases WHERE id IN (0, 1, 9) GROUP BY 1 ORDER BY 1
-- expect: [{"y": "2020-01-01T00:00:00.000Z", "a": "[\"O\"]"}, {"y": "2021-01-01T00:00:00.000Z", "a": "[\"B\"]"}]

-- maxSizeBytes bounds the serialized array as Druid's TypeStrategies.checkMaxBytes counts it:
-- 1 + 4 bytes, then per element 1 + 8 (a number) or 1 + 4 + UTF-8 bytes (a string), 1 (NULL).
-- name: array_agg_size_at_the_bound
SELECT ARRAY_AGG(DISTINCT n, 23) AS a FROM cases WHERE id IN (0, 1)
-- expect: [{"a": "[-2,1]"}]

-- name: array_agg_numbers_past_the_bound
SELECT ARRAY_AGG(n, 20) AS a FROM cases WHERE id IN (0, 1, 3)
-- error: 500 legacyQueryException Unable to serialize [ARRAY<LONG>], size [23] is larger than max [20]

-- name: array_agg_strings_past_the_bound
SELECT ARRAY_AGG(DISTINCT s2, 12) AS a FROM cases WHERE id IN (0, 4)
-- error: 500 legacyQueryException Unable to serialize [ARRAY<STRING>], size [19] is larger than max [12]

-- name: array_agg_bad_size
SELECT ARRAY_AGG(s, 'x') AS a FROM cases
-- error: 400 invalidInput needs a literal maxSizeBytes argument
