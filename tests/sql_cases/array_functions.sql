-- ARRAY[...] and the ARRAY functions (planner/arrays.py, docs/arrays.md). The SQL endpoint
-- writes an ARRAY result as its JSON text (sqlStringifyArrays defaults to true). Druid's null
-- semantics: a NULL array gives NULL, NULL elements are ordinary values, and
-- ARRAY_TO_STRING writes a NULL element as "null". STRING_TO_ARRAY splits as Java's
-- String.split: trailing empty strings are dropped. Expected values were checked against
-- DuckDB's list functions where the two agree (tests/test_arrays.py does so mechanically).

-- name: array_literal_strings
SELECT ARRAY['a', s2, NULL] AS a FROM cases WHERE id IN (0, 2) ORDER BY id
-- expect: [{"a": "[\"a\",\"b\",null]"}, {"a": "[\"a\",null,null]"}]

-- name: array_literal_longs
SELECT ARRAY[n, id] AS a FROM cases WHERE id < 3 ORDER BY id
-- expect: [{"a": "[1,0]"}, {"a": "[-2,1]"}, {"a": "[null,2]"}]

-- name: array_literal_numbers_widen
SELECT ARRAY[1, 2.5] AS a
-- expect: [{"a": "[1.0,2.5]"}]

-- name: array_literal_mixed_types
SELECT ARRAY[1, 'a'] AS a
-- error: 400 invalidInput Parameters must be of the same type

-- name: array_length
SELECT id, ARRAY_LENGTH(STRING_TO_ARRAY(s, ',')) AS l FROM cases WHERE id IN (0, 1, 2, 8) ORDER BY id
-- expect: [{"id": 0, "l": 1}, {"id": 1, "l": null}, {"id": 2, "l": 1}, {"id": 8, "l": 2}]

-- name: array_offset_and_ordinal
SELECT ARRAY_OFFSET(ARRAY[10, 20, 30], 0) AS o0, ARRAY_OFFSET(ARRAY[10, 20, 30], 3) AS o3,
       ARRAY_OFFSET(ARRAY[10, 20, 30], -1) AS oneg, ARRAY_ORDINAL(ARRAY[10, 20, 30], 1) AS r1,
       ARRAY_ORDINAL(ARRAY[10, 20, 30], 0) AS r0
-- expect: [{"o0": 10, "o3": null, "oneg": null, "r1": 10, "r0": null}]

-- name: array_offset_column_index
SELECT id, ARRAY_ORDINAL(ARRAY['a', 'b', 'c'], n) AS v FROM cases WHERE id IN (0, 1, 2, 3) ORDER BY id
-- expect: [{"id": 0, "v": "a"}, {"id": 1, "v": null}, {"id": 2, "v": null}, {"id": 3, "v": null}]

-- name: array_contains_scalar
SELECT id, ARRAY_CONTAINS(STRING_TO_ARRAY(s, ','), 'y') AS c FROM cases WHERE id IN (0, 1, 8) ORDER BY id
-- expect: [{"id": 0, "c": false}, {"id": 1, "c": null}, {"id": 8, "c": true}]

-- name: array_contains_array_means_all
SELECT ARRAY_CONTAINS(ARRAY[1, 2, 3], ARRAY[3, 1]) AS a, ARRAY_CONTAINS(ARRAY[1, 2, 3], ARRAY[1, 4]) AS b
-- expect: [{"a": true, "b": false}]

-- name: array_contains_null_element
SELECT ARRAY_CONTAINS(ARRAY['a', NULL], NULL) AS a, ARRAY_CONTAINS(ARRAY['a'], NULL) AS b
-- expect: [{"a": true, "b": false}]

-- name: array_contains_in_where
SELECT id FROM cases WHERE ARRAY_CONTAINS(STRING_TO_ARRAY(s, '_|%'), 'c') ORDER BY id
-- expect: [{"id": 7}]

-- name: array_contains_casts_element
SELECT ARRAY_CONTAINS(ARRAY['1', '2'], 2) AS a
-- expect: [{"a": true}]

-- name: array_overlap
SELECT id, ARRAY_OVERLAP(STRING_TO_ARRAY(s, ','), ARRAY['y', 'abc']) AS o FROM cases WHERE id IN (0, 1, 4, 8)
ORDER BY id
-- expect: [{"id": 0, "o": true}, {"id": 1, "o": null}, {"id": 4, "o": false}, {"id": 8, "o": true}]

-- name: array_append_and_prepend
SELECT ARRAY_APPEND(ARRAY[1, 2], 3) AS a, ARRAY_PREPEND(0, ARRAY[1, 2]) AS p, ARRAY_APPEND(ARRAY['x'], NULL) AS n
-- expect: [{"a": "[1,2,3]", "p": "[0,1,2]", "n": "[\"x\",null]"}]

-- name: array_append_null_array
SELECT id, ARRAY_APPEND(STRING_TO_ARRAY(s, ','), s2) AS a FROM cases WHERE id IN (1, 8) ORDER BY id
-- expect: [{"id": 1, "a": null}, {"id": 8, "a": "[\"x\",\"y\",\"y\"]"}]

-- name: array_concat
SELECT id, ARRAY_CONCAT(STRING_TO_ARRAY(s, ','), ARRAY[s2]) AS a FROM cases WHERE id IN (0, 1, 8) ORDER BY id
-- expect: [{"id": 0, "a": "[\"abc\",\"b\"]"}, {"id": 1, "a": null}, {"id": 8, "a": "[\"x\",\"y\",\"y\"]"}]

-- name: array_concat_numbers
SELECT ARRAY_CONCAT(ARRAY[1, 2], ARRAY[3]) AS a
-- expect: [{"a": "[1,2,3]"}]

-- name: array_slice
SELECT ARRAY_SLICE(ARRAY[1, 2, 3, 4], 1, 3) AS a, ARRAY_SLICE(ARRAY[1, 2, 3, 4], 2) AS b,
       ARRAY_SLICE(ARRAY[1, 2, 3, 4], 1, 10) AS c, ARRAY_SLICE(ARRAY[1, 2, 3, 4], 5) AS d,
       ARRAY_SLICE(ARRAY[1, 2, 3, 4], 3, 1) AS e, ARRAY_SLICE(ARRAY[1, 2, 3, 4], 4) AS f
-- expect: [{"a": "[2,3]", "b": "[3,4]", "c": "[2,3,4]", "d": null, "e": null, "f": "[]"}]

-- name: array_to_string
SELECT ARRAY_TO_STRING(ARRAY['a', NULL, 'c'], '-') AS s, ARRAY_TO_STRING(ARRAY[1.5, 2.0], ',') AS d,
       ARRAY_TO_STRING(ARRAY[1, 2], '') AS l
-- expect: [{"s": "a-null-c", "d": "1.5,2.0", "l": "12"}]

-- name: array_to_string_null_array
SELECT id, ARRAY_TO_STRING(STRING_TO_ARRAY(s, ','), '|') AS v FROM cases WHERE id IN (1, 2, 8) ORDER BY id
-- expect: [{"id": 1, "v": null}, {"id": 2, "v": ""}, {"id": 8, "v": "x|y"}]

-- name: string_to_array_java_split
SELECT STRING_TO_ARRAY('a,b,,', ',') AS a, STRING_TO_ARRAY(',', ',') AS b, STRING_TO_ARRAY('', ',') AS c,
       STRING_TO_ARRAY(',a', ',') AS d, STRING_TO_ARRAY('a1b22c', '[0-9]+') AS e
-- expect: [{"a": "[\"a\",\"b\"]", "b": "[]", "c": "[\"\"]", "d": "[\"\",\"a\"]", "e": "[\"a\",\"b\",\"c\"]"}]

-- name: array_functions_on_non_array
SELECT ARRAY_LENGTH(s) AS l FROM cases
-- error: 400 invalidInput Cannot apply 'ARRAY_LENGTH'

-- name: array_length_arity
SELECT ARRAY_LENGTH(ARRAY[1], 2) AS l
-- error: 400 invalidInput Invalid number of arguments to function 'ARRAY_LENGTH'

-- name: array_group_by_length
SELECT ARRAY_LENGTH(STRING_TO_ARRAY(s, ',')) AS l, COUNT(*) AS c FROM cases GROUP BY 1 ORDER BY 1
-- expect: [{"l": null, "c": 1}, {"l": 1, "c": 8}, {"l": 2, "c": 1}]

-- Whole-array comparison: Druid compares arrays element by element (its array comparator:
-- NULL elements first, a prefix before a longer array); a NULL array compares as NULL.

-- name: array_equal_literals
SELECT ARRAY[1, 2] = ARRAY[1, 2] AS e, ARRAY[1, 2] <> ARRAY[1, 2] AS ne, ARRAY['a'] = ARRAY['a', 'b'] AS p,
       ARRAY[1, NULL] = ARRAY[1, NULL] AS nn, ARRAY[1, 2] = ARRAY[1.0, 2.0] AS widened
-- expect: [{"e": true, "ne": false, "p": false, "nn": true, "widened": true}]

-- name: array_order_comparison
SELECT ARRAY[1, 2] < ARRAY[1, 3] AS lt, ARRAY[1] < ARRAY[1, 0] AS prefix, ARRAY[NULL, 5] < ARRAY[0] AS null_first,
       ARRAY['b'] >= ARRAY['a', 'z'] AS ge
-- expect: [{"lt": true, "prefix": true, "null_first": true, "ge": true}]

-- name: array_equal_in_where
SELECT id FROM cases WHERE STRING_TO_ARRAY(s, ',') = ARRAY['x', 'y'] ORDER BY id
-- task
-- expect: [{"id": 8}]

-- name: array_not_equal_in_where_skips_null_arrays
SELECT id FROM cases WHERE STRING_TO_ARRAY(s, ',') <> ARRAY['abc'] AND id < 4 ORDER BY id
-- expect: [{"id": 2}, {"id": 3}]

-- name: array_equal_in_case
SELECT id, CASE WHEN ARRAY[n, 1] = ARRAY[1, 1] THEN 'same' WHEN ARRAY[n, 1] IS NULL THEN 'none'
                ELSE 'other' END AS c
FROM cases WHERE id < 3 ORDER BY id
-- expect: [{"id": 0, "c": "same"}, {"id": 1, "c": "other"}, {"id": 2, "c": "other"}]

-- name: array_compare_null_array
SELECT ARRAY_SLICE(ARRAY[1], 5) = ARRAY[1] AS e
-- expect: [{"e": null}]

-- name: array_compare_with_scalar
SELECT ARRAY[1, 2] = 1 AS e
-- error: 400 invalidInput Cannot apply '=' to arguments of type

-- name: array_compare_string_with_numbers
SELECT ARRAY['a'] = ARRAY[1] AS e
-- error: 400 invalidInput Cannot apply '=' to arguments of type

-- name: array_is_null_is_the_whole_array
SELECT ARRAY[NULL, 1] IS NULL AS n, ARRAY[NULL] IS NOT NULL AS nn, ARRAY_SLICE(ARRAY[1], 5) IS NULL AS sliced
-- expect: [{"n": false, "nn": true, "sliced": true}]
