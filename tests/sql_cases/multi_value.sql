-- Multi-value strings: a VARCHAR holding several values per row (an Arrow list<string>,
-- here made with STRING_TO_MV). The SQL endpoint writes a row with one value as that value
-- and a row with several as their JSON array text. Filters match a row when any of its values
-- matches; GROUP BY groups a row under each of its values (docs/arrays.md).

-- name: string_to_mv_rendering
SELECT id, STRING_TO_MV(s, ',') AS m FROM cases WHERE id IN (0, 1, 8) ORDER BY id
-- expect: [{"id": 0, "m": "abc"}, {"id": 1, "m": null}, {"id": 8, "m": "[\"x\",\"y\"]"}]

-- name: mv_length
SELECT id, MV_LENGTH(STRING_TO_MV(s, ',')) AS l, MV_LENGTH(s2) AS l2 FROM cases WHERE id IN (0, 1, 8) ORDER BY id
-- expect: [{"id": 0, "l": 1, "l2": 1}, {"id": 1, "l": null, "l2": 1}, {"id": 8, "l": 2, "l2": 1}]

-- name: mv_offset_ordinal
SELECT MV_OFFSET(STRING_TO_MV(s, ','), 1) AS o, MV_ORDINAL(STRING_TO_MV(s, ','), 1) AS r,
       MV_ORDINAL(STRING_TO_MV(s, ','), 3) AS r3 FROM cases WHERE id = 8
-- expect: [{"o": "y", "r": "x", "r3": null}]

-- name: mv_contains
SELECT id, MV_CONTAINS(STRING_TO_MV(s, ','), 'y') AS c, MV_CONTAINS(STRING_TO_MV(s, ','), ARRAY['y', 'x']) AS a
FROM cases WHERE id IN (0, 1, 8) ORDER BY id
-- expect: [{"id": 0, "c": false, "a": false}, {"id": 1, "c": null, "a": null}, {"id": 8, "c": true, "a": true}]

-- name: mv_overlap
SELECT id FROM cases WHERE MV_OVERLAP(STRING_TO_MV(s, ' '), ARRAY['World', 'pad']) ORDER BY id
-- expect: [{"id": 4}, {"id": 9}]

-- name: mv_filter_only_and_none
SELECT MV_FILTER_ONLY(STRING_TO_MV('a,b,c', ','), ARRAY['a', 'c']) AS o,
       MV_FILTER_NONE(STRING_TO_MV('a,b,c', ','), ARRAY['a', 'c']) AS n
-- expect: [{"o": "[\"a\",\"c\"]", "n": "b"}]

-- name: mv_filter_needs_literal
SELECT MV_FILTER_ONLY(s, ARRAY[s2]) AS o FROM cases
-- error: 400 invalidInput needs an ARRAY literal

-- name: mv_append_prepend_concat
SELECT MV_APPEND(s2, 'z') AS a, MV_PREPEND('z', s2) AS p, MV_CONCAT(STRING_TO_MV(s, ','), s2) AS c
FROM cases WHERE id = 8
-- expect: [{"a": "[\"y\",\"z\"]", "p": "[\"z\",\"y\"]", "c": "[\"x\",\"y\",\"y\"]"}]

-- name: mv_slice
SELECT MV_SLICE(STRING_TO_MV('a,b,c', ','), 1) AS a, MV_SLICE(STRING_TO_MV('a,b,c', ','), 0, 1) AS b
-- expect: [{"a": "[\"b\",\"c\"]", "b": "a"}]

-- name: mv_to_string
SELECT id, MV_TO_STRING(STRING_TO_MV(s, ','), ' & ') AS v FROM cases WHERE id IN (0, 1, 8) ORDER BY id
-- expect: [{"id": 0, "v": "abc"}, {"id": 1, "v": null}, {"id": 8, "v": "x & y"}]

-- name: mv_to_array_and_back
SELECT MV_TO_ARRAY(STRING_TO_MV(s, ',')) AS a, ARRAY_TO_MV(ARRAY['p', 'q']) AS m, MV_TO_ARRAY(s2) AS one
FROM cases WHERE id = 8
-- expect: [{"a": "[\"x\",\"y\"]", "m": "[\"p\",\"q\"]", "one": "[\"y\"]"}]

-- name: mv_filter_any_value_matches
SELECT id FROM cases WHERE STRING_TO_MV(s, ',') = 'y' OR STRING_TO_MV(s, ' ') = 'Hello' ORDER BY id
-- expect: [{"id": 8}, {"id": 9}]

-- name: mv_filter_in_and_like
SELECT id FROM cases WHERE STRING_TO_MV(s, ' ') IN ('wörld', 'pad') OR STRING_TO_MV(s, ',') LIKE 'y%' ORDER BY id
-- expect: [{"id": 3}, {"id": 4}, {"id": 8}]

-- name: mv_group_by_unnests
SELECT STRING_TO_MV(s, ' ') AS w, COUNT(*) AS c FROM cases WHERE id IN (3, 4, 9) GROUP BY 1 ORDER BY 1
-- expect: [{"w": "", "c": 2}, {"w": "Hello", "c": 1}, {"w": "World", "c": 1}, {"w": "héllo", "c": 1}, {"w": "pad", "c": 1}, {"w": "wörld", "c": 1}]

-- name: mv_group_by_unnesting_disabled
SELECT STRING_TO_MV(s, ' ') AS w, COUNT(*) AS c FROM cases GROUP BY 1
-- context: {"groupByEnableMultiValueUnnesting": false}
-- error: 400 invalidInput that cannot be processed with 'groupByEnableMultiValueUnnesting' set to false

-- name: mv_group_by_mv_to_array_allowed
SELECT MV_TO_ARRAY(STRING_TO_MV(s, ',')) AS a, COUNT(*) AS c FROM cases WHERE id IN (0, 8) GROUP BY 1 ORDER BY 2
-- context: {"groupByEnableMultiValueUnnesting": false}
-- expect: [{"a": "[\"abc\"]", "c": 1}, {"a": "[\"x\",\"y\"]", "c": 1}]

-- name: mv_unnest
SELECT id, x FROM cases CROSS JOIN UNNEST(MV_TO_ARRAY(STRING_TO_MV(s, ','))) AS t(x) WHERE id = 8 ORDER BY x
-- expect: [{"id": 8, "x": "x"}, {"id": 8, "x": "y"}]

-- name: mv_scalar_function_maps_over_values
SELECT UPPER(STRING_TO_MV(s, ',')) AS u, CONCAT(STRING_TO_MV(s, ','), '!') AS c FROM cases WHERE id = 8
-- expect: [{"u": "[\"X\",\"Y\"]", "c": "[\"x!\",\"y!\"]"}]

-- name: mv_boolean_function_matches_any_value
SELECT id FROM cases WHERE CONTAINS_STRING(STRING_TO_MV(s, ' '), 'l') ORDER BY id
-- expect: [{"id": 3}, {"id": 9}]

-- name: mv_numeric_function_refused
SELECT STRLEN(STRING_TO_MV(s, ',')) AS l FROM cases
-- error: 400 invalidInput cannot take a multi-value string argument
