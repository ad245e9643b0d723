-- DIV, PARSE_LONG, STRING_FORMAT, the HUMAN_READABLE_* formats, and integer division or
-- remainder by zero, which fails the query as Java's long arithmetic does in Druid
-- (CASE branches and the right side of AND/OR only run on the rows that reach them).

-- name: div_long_truncates
-- task
SELECT DIV(n, 4) AS q FROM cases WHERE id IN (1, 4, 6) ORDER BY id
-- expect: [{"q": 0}, {"q": 25}, {"q": -3}]

-- name: div_double_casts_to_long
SELECT DIV(d, 2) AS q FROM cases WHERE id IN (0, 1, 5) ORDER BY id
-- expect: [{"q": 0}, {"q": -1}, {"q": 5000000000}]

-- name: div_null
SELECT DIV(n, 2) AS q FROM cases WHERE id = 2
-- expect: [{"q": null}]

-- name: div_by_zero_fails
SELECT DIV(n, 0) AS q FROM cases
-- error: 500 general / by zero

-- name: divide_by_zero_column_fails
SELECT 100 / n AS q FROM cases
-- error: 500 general / by zero

-- name: mod_by_zero_fails
SELECT MOD(id, n) AS r FROM cases
-- error: 500 general / by zero

-- name: divide_by_zero_literal_fails
SELECT 1 / 0 AS q
-- error: 500 general / by zero

-- name: double_divide_by_zero_is_infinite_not_an_error
SELECT d / 0 AS q FROM cases WHERE id = 0
-- expect: [{"q": "Infinity"}]

-- name: case_guards_division
-- task
SELECT id, CASE WHEN n <> 0 THEN 100 / n END AS q FROM cases WHERE id < 5 ORDER BY id
-- expect: [{"id": 0, "q": 100}, {"id": 1, "q": -50}, {"id": 2, "q": null}, {"id": 3, "q": null}, {"id": 4, "q": 1}]

-- name: and_guards_division
SELECT COUNT(*) AS c FROM cases WHERE n <> 0 AND 100 / n > 10
-- expect: [{"c": 3}]

-- name: or_guards_modulo
SELECT COUNT(*) AS c FROM cases WHERE n = 0 OR MOD(100, n) = 0
-- expect: [{"c": 5}]

-- name: parse_long_forms
SELECT PARSE_LONG('123') AS a, PARSE_LONG('0x1F', 16) AS b, PARSE_LONG('1f', 16) AS c, PARSE_LONG('-0x1F', 16) AS d, PARSE_LONG('z', 36) AS e, PARSE_LONG('101', 2) AS f, PARSE_LONG('+7') AS g
-- expect: [{"a": 123, "b": 31, "c": 31, "d": null, "e": 35, "f": 5, "g": 7}]

-- name: parse_long_invalid_and_range
SELECT PARSE_LONG('12.5') AS a, PARSE_LONG('') AS b, PARSE_LONG(' 1') AS c, PARSE_LONG('9223372036854775807') AS d, PARSE_LONG('9223372036854775808') AS e, PARSE_LONG('-9223372036854775808') AS f, PARSE_LONG('-') AS g
-- expect: [{"a": null, "b": null, "c": null, "d": 9223372036854775807, "e": null, "f": -9223372036854775808, "g": null}]

-- name: parse_long_column
-- task
SELECT id, PARSE_LONG(CAST(n AS VARCHAR)) * 2 AS v FROM cases WHERE id IN (1, 2, 4) ORDER BY id
-- expect: [{"id": 1, "v": -4}, {"id": 2, "v": null}, {"id": 4, "v": 200}]

-- name: parse_long_bad_radix
SELECT PARSE_LONG('1', 99) AS v
-- error: 400 invalidInput radix must be between 2 and 36

-- name: string_format_s_and_d
-- task
SELECT STRING_FORMAT('%s is %d%%', s2, n) AS v FROM cases WHERE id IN (0, 2) ORDER BY id
-- expect: [{"v": "b is 1%"}, {"v": "null is null%"}]

-- name: string_format_doubles_as_java
SELECT STRING_FORMAT('[%s]', d) AS v FROM cases WHERE id IN (0, 5) ORDER BY id
-- expect: [{"v": "[1.5]"}, {"v": "[1.0E10]"}]

-- name: string_format_unsupported_specifier
SELECT STRING_FORMAT('%5.2f', d) AS v FROM cases
-- error: 400 invalidInput supports the format specifiers

-- name: human_readable_docs_examples
SELECT HUMAN_READABLE_BINARY_BYTE_FORMAT(1048576) AS a, HUMAN_READABLE_BINARY_BYTE_FORMAT(1000000) AS b, HUMAN_READABLE_DECIMAL_BYTE_FORMAT(1000000) AS c, HUMAN_READABLE_DECIMAL_FORMAT(1000000) AS d
-- expect: [{"a": "1.00 MiB", "b": "976.56 KiB", "c": "1.00 MB", "d": "1.00 M"}]

-- name: human_readable_small_values_and_precision
SELECT HUMAN_READABLE_BINARY_BYTE_FORMAT(1023) AS a, HUMAN_READABLE_DECIMAL_FORMAT(-999) AS b, HUMAN_READABLE_DECIMAL_BYTE_FORMAT(1234567, 0) AS c, HUMAN_READABLE_DECIMAL_BYTE_FORMAT(123456789, 3) AS d, HUMAN_READABLE_BINARY_BYTE_FORMAT(-1536, 1) AS e
-- expect: [{"a": "1023 B", "b": "-999", "c": "1 MB", "d": "123.456 MB", "e": "-1.5 KiB"}]

-- name: human_readable_column
SELECT HUMAN_READABLE_DECIMAL_FORMAT(d * 1000) AS v FROM cases WHERE id IN (2, 5, 6) ORDER BY id
-- expect: [{"v": null}, {"v": "10.00 T"}, {"v": "-500"}]

-- name: human_readable_bad_precision
SELECT HUMAN_READABLE_DECIMAL_FORMAT(1, 4) AS v
-- error: 400 invalidInput needs a number between 0 and 3

-- name: cast_text_to_bigint_like_guava_try_parse_long
-- A leading '+' is accepted; past the long range the value goes through a double and saturates.
SELECT CAST('+5' AS BIGINT) AS a, CAST('99999999999999999999' AS BIGINT) AS b, CAST('-99999999999999999999' AS BIGINT) AS c, CAST('000000000000000000000012' AS BIGINT) AS d, CAST('-9223372036854775808' AS BIGINT) AS e, CAST('9223372036854775808' AS BIGINT) AS g, CAST('-007' AS BIGINT) AS k, CAST('+' AS BIGINT) AS j
-- expect: [{"a": 5, "b": 9223372036854775807, "c": -9223372036854775808, "d": 12, "e": -9223372036854775808, "g": 9223372036854775807, "k": -7, "j": null}]
