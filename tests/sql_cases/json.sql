-- Nested JSON (COMPLEX<json>): PARSE_JSON, TRY_PARSE_JSON, TO_JSON_STRING, JSON_VALUE (with
-- RETURNING), JSON_QUERY, JSON_KEYS, JSON_PATHS and JSON_OBJECT. A COMPLEX<json> result is
-- written as nested JSON (not a quoted string); an ARRAY result as its JSON text. The
-- `cases` datasource has no json column, so values come from PARSE_JSON and JSON_OBJECT;
-- tests/test_json.py ingests and reads a stored one.

-- name: parse_json_object
-- task
SELECT PARSE_JSON('{"a": 1, "b": {"c": [1, 2.5, "x"]}}') AS v
-- expect: [{"v": {"a": 1, "b": {"c": [1, 2.5, "x"]}}}]

-- name: parse_json_keeps_key_order
SELECT PARSE_JSON('{"z": 1, "a": 2, "m": 3}') AS v
-- expect: [{"v": {"z": 1, "a": 2, "m": 3}}]

-- name: parse_json_scalars
SELECT PARSE_JSON('"text"') AS s, PARSE_JSON('12') AS n, PARSE_JSON('true') AS b, PARSE_JSON('[1,null]') AS a
-- expect: [{"s": "text", "n": 12, "b": true, "a": [1, null]}]

-- name: parse_json_null
SELECT PARSE_JSON(NULL) AS v, PARSE_JSON(s) AS w FROM cases WHERE id = 1
-- expect: [{"v": null, "w": null}]

-- name: parse_json_bad_text_fails
SELECT PARSE_JSON(s) AS v FROM cases WHERE id = 0
-- error: 500 general Bad string input [abc] to [parse_json]

-- name: parse_json_bad_literal_fails
SELECT PARSE_JSON('{"a": }') AS v
-- error: 500 general Bad string input [{"a": }] to [parse_json]

-- name: try_parse_json_bad_is_null
SELECT id, TRY_PARSE_JSON(s) AS v FROM cases WHERE id IN (0, 1, 2) ORDER BY id
-- expect: [{"id": 0, "v": null}, {"id": 1, "v": null}, {"id": 2, "v": null}]

-- name: try_parse_json_good
SELECT TRY_PARSE_JSON('{"k": [true, false]}') AS v
-- expect: [{"v": {"k": [true, false]}}]

-- name: to_json_string_compact
SELECT TO_JSON_STRING(PARSE_JSON('{ "a" : [ 1 , 2 ] ,  "b" : "x\u00e9" }')) AS v
-- expect: [{"v": "{\"a\":[1,2],\"b\":\"x\u00e9\"}"}]

-- name: to_json_string_of_scalars
SELECT TO_JSON_STRING(s) AS s, TO_JSON_STRING(n) AS n, TO_JSON_STRING(d) AS d FROM cases WHERE id = 0
-- expect: [{"s": "\"abc\"", "n": "1", "d": "1.5"}]

-- name: to_json_string_null
SELECT TO_JSON_STRING(s) AS v FROM cases WHERE id = 1
-- expect: [{"v": null}]

-- name: json_value_default_varchar
SELECT JSON_VALUE(PARSE_JSON('{"a": {"b": 7}}'), '$.a.b') AS v
-- expect: [{"v": "7"}]

-- name: json_value_string
SELECT JSON_VALUE(PARSE_JSON('{"a": "x\ny"}'), '$.a') AS v
-- expect: [{"v": "x\ny"}]

-- name: json_value_double_as_varchar
SELECT JSON_VALUE(PARSE_JSON('{"a": 1e3, "b": 2.50}'), '$.a') AS a, JSON_VALUE(PARSE_JSON('{"a": 1e3, "b": 2.50}'), '$.b') AS b
-- expect: [{"a": "1000.0", "b": "2.5"}]

-- name: json_value_returning_bigint
-- task
SELECT JSON_VALUE(PARSE_JSON('{"a": "12", "b": 3.9, "c": "x"}'), '$.a' RETURNING BIGINT) AS a, JSON_VALUE(PARSE_JSON('{"a": "12", "b": 3.9, "c": "x"}'), '$.b' RETURNING BIGINT) AS b, JSON_VALUE(PARSE_JSON('{"a": "12", "b": 3.9, "c": "x"}'), '$.c' RETURNING BIGINT) AS c
-- expect: [{"a": 12, "b": 3, "c": null}]

-- name: json_value_returning_double
SELECT JSON_VALUE(PARSE_JSON('{"a": 2, "b": "0.25"}'), '$.a' RETURNING DOUBLE) AS a, JSON_VALUE(PARSE_JSON('{"a": 2, "b": "0.25"}'), '$.b' RETURNING DOUBLE) AS b
-- expect: [{"a": 2.0, "b": 0.25}]

-- name: json_value_returning_varchar
SELECT JSON_VALUE(PARSE_JSON('{"a": 5}'), '$.a' RETURNING VARCHAR) AS v
-- expect: [{"v": "5"}]

-- name: json_value_missing_and_null
SELECT JSON_VALUE(PARSE_JSON('{"a": null}'), '$.a') AS a, JSON_VALUE(PARSE_JSON('{"a": null}'), '$.b') AS b
-- expect: [{"a": null, "b": null}]

-- name: json_value_of_object_is_null
SELECT JSON_VALUE(PARSE_JSON('{"a": {"b": 1}}'), '$.a') AS v
-- expect: [{"v": null}]

-- name: json_value_array_index
SELECT JSON_VALUE(PARSE_JSON('{"a": [10, 20, 30]}'), '$.a[1]' RETURNING BIGINT) AS v
-- expect: [{"v": 20}]

-- name: json_value_negative_index
SELECT JSON_VALUE(PARSE_JSON('{"a": [10, 20, 30]}'), '$.a[-1]' RETURNING BIGINT) AS v
-- expect: [{"v": 30}]

-- name: json_value_index_out_of_range
SELECT JSON_VALUE(PARSE_JSON('{"a": [10]}'), '$.a[3]') AS v
-- expect: [{"v": null}]

-- name: json_value_bracket_field
SELECT JSON_VALUE(PARSE_JSON('{"x.y": "dot", "x": {"y": "nested"}}'), '$[''x.y'']') AS a, JSON_VALUE(PARSE_JSON('{"x.y": "dot", "x": {"y": "nested"}}'), '$.x.y') AS b
-- expect: [{"a": "dot", "b": "nested"}]

-- name: json_value_boolean_is_long
SELECT JSON_VALUE(PARSE_JSON('{"t": true, "f": false}'), '$.t' RETURNING BIGINT) AS t, JSON_VALUE(PARSE_JSON('{"t": true, "f": false}'), '$.f' RETURNING BIGINT) AS f
-- expect: [{"t": 1, "f": 0}]

-- name: json_value_returning_array
SELECT JSON_VALUE(PARSE_JSON('{"a": [1, 2, null]}'), '$.a' RETURNING BIGINT ARRAY) AS v
-- expect: [{"v": "[1,2,null]"}]

-- name: json_value_returning_string_array
SELECT JSON_VALUE(PARSE_JSON('{"a": ["x", 1]}'), '$.a' RETURNING VARCHAR ARRAY) AS v
-- expect: [{"v": "[\"x\",\"1\"]"}]

-- name: json_value_of_varchar_is_its_string
SELECT JSON_VALUE(s, '$') AS a, JSON_VALUE(s, '$.x') AS b FROM cases WHERE id = 0
-- expect: [{"a": "abc", "b": null}]

-- name: json_value_in_where
SELECT id FROM cases WHERE JSON_VALUE(JSON_OBJECT(KEY 'n' VALUE n), '$.n' RETURNING BIGINT) > 5 ORDER BY id
-- expect: [{"id": 4}, {"id": 5}, {"id": 7}, {"id": 8}]

-- name: json_value_grouped
SELECT JSON_VALUE(JSON_OBJECT(KEY 'k' VALUE s2), '$.k') AS k, COUNT(*) AS c FROM cases WHERE id < 4 GROUP BY 1 ORDER BY 1
-- expect: [{"k": null, "c": 1}, {"k": "", "c": 1}, {"k": "B", "c": 1}, {"k": "b", "c": 1}]

-- name: json_query_object
SELECT JSON_QUERY(PARSE_JSON('{"a": {"b": [1, {"c": 2}]}}'), '$.a.b') AS v
-- expect: [{"v": [1, {"c": 2}]}]

-- name: json_query_scalar_and_missing
SELECT JSON_QUERY(PARSE_JSON('{"a": "x"}'), '$.a') AS a, JSON_QUERY(PARSE_JSON('{"a": "x"}'), '$.z') AS z
-- expect: [{"a": "x", "z": null}]

-- name: json_query_root
SELECT JSON_QUERY(PARSE_JSON('[1, 2]'), '$') AS v
-- expect: [{"v": [1, 2]}]

-- name: json_query_then_value
SELECT JSON_VALUE(JSON_QUERY(PARSE_JSON('{"a": {"b": "deep"}}'), '$.a'), '$.b') AS v
-- expect: [{"v": "deep"}]

-- name: json_keys_object
SELECT JSON_KEYS(PARSE_JSON('{"b": 1, "a": {"x": 1}, "c": null}'), '$') AS v
-- expect: [{"v": "[\"b\",\"a\",\"c\"]"}]

-- name: json_keys_nested
SELECT JSON_KEYS(PARSE_JSON('{"a": {"x": 1, "y": 2}}'), '$.a') AS v
-- expect: [{"v": "[\"x\",\"y\"]"}]

-- name: json_keys_of_array_and_scalar
SELECT JSON_KEYS(PARSE_JSON('{"a": [5, 6, 7], "b": 1}'), '$.a') AS a, JSON_KEYS(PARSE_JSON('{"a": [5, 6, 7], "b": 1}'), '$.b') AS b
-- expect: [{"a": "[\"0\",\"1\",\"2\"]", "b": null}]

-- name: json_paths_all_literals
SELECT JSON_PATHS(PARSE_JSON('{"a": 1, "b": {"c": "x", "d": [1, 2]}, "e": [{"f": 1}]}')) AS v
-- expect: [{"v": "[\"$.a\",\"$.b.c\",\"$.b.d\",\"$.e[0].f\"]"}]

-- name: json_paths_quotes_odd_fields
SELECT JSON_PATHS(PARSE_JSON('{"x.y": 1, "a b": 2}')) AS v
-- expect: [{"v": "[\"$['x.y']\",\"$.a b\"]"}]

-- name: json_paths_of_literal
SELECT JSON_PATHS(PARSE_JSON('3')) AS v
-- expect: [{"v": "[\"$\"]"}]

-- name: json_object_key_value
-- task
SELECT JSON_OBJECT(KEY 'x' VALUE n, KEY 'y' VALUE s) AS v FROM cases WHERE id = 0
-- expect: [{"v": {"x": 1, "y": "abc"}}]

-- name: json_object_colon_syntax
SELECT JSON_OBJECT('x': d, 'y': s2) AS v FROM cases WHERE id = 1
-- expect: [{"v": {"x": -2.25, "y": "B"}}]

-- name: json_object_nulls_kept
SELECT JSON_OBJECT(KEY 'x' VALUE n, KEY 'y' VALUE s) AS v FROM cases WHERE id = 2
-- expect: [{"v": {"x": null, "y": ""}}]

-- name: json_object_hashmap_key_order
-- Druid builds the object in a java.util.HashMap: keys come out by hash bucket
-- ("zeta" → 0, "b" → 2, "alpha" → 7), not in the order written
SELECT JSON_OBJECT(KEY 'zeta' VALUE 1, KEY 'alpha' VALUE 2, KEY 'b' VALUE 3) AS v
-- expect: [{"v": {"zeta": 1, "b": 3, "alpha": 2}}]

-- name: json_object_nested_json_value
SELECT JSON_OBJECT(KEY 'o' VALUE PARSE_JSON('{"a": [1]}'), KEY 'arr' VALUE ARRAY[1, 2]) AS v
-- expect: [{"v": {"arr": [1, 2], "o": {"a": [1]}}}]

-- name: json_object_round_trip
SELECT JSON_VALUE(JSON_OBJECT(KEY 'x' VALUE d), '$.x' RETURNING DOUBLE) AS v FROM cases WHERE id = 4
-- expect: [{"v": 2.675}]

-- name: json_value_path_not_literal
SELECT JSON_VALUE(PARSE_JSON('{}'), s) AS v FROM cases
-- error: 400 invalidInput must be a literal

-- name: json_value_bad_path
SELECT JSON_QUERY(PARSE_JSON('{}'), 'a.b') AS v
-- error: 400 invalidInput JSONPath [a.b] is invalid, it must start with '$'

-- name: json_paths_wrong_arity
SELECT JSON_PATHS(PARSE_JSON('{}'), '$') AS v
-- error: 400 invalidInput Invalid number of arguments to function 'JSON_PATHS'
