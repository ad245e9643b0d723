-- Scalar functions: strings, numbers, time, conditionals, casts and operators.
-- Data: tests/test_sql_cases.py CASES_ROWS (datasource "cases").

-- ===== smoke =====
-- name: all_rows
-- task
SELECT id, s, n FROM cases ORDER BY id
-- expect: [{"id": 0, "s": "abc", "n": 1}, {"id": 1, "s": null, "n": -2}, {"id": 2, "s": "", "n": null}, {"id": 3, "s": "héllo wörld", "n": 0}, {"id": 4, "s": "  pad  ", "n": 100}, {"id": 5, "s": "ABC", "n": 7}, {"id": 6, "s": "日本語", "n": -15}, {"id": 7, "s": "a_b%c", "n": 42}, {"id": 8, "s": "x,y", "n": 9}, {"id": 9, "s": "Hello World", "n": -1}]

-- name: empty_vs_null
SELECT id, s IS NULL AS isnull_s, s = '' AS empty_s FROM cases WHERE id IN (1, 2, 3) ORDER BY id
-- expect: [{"id": 1, "isnull_s": true, "empty_s": null}, {"id": 2, "isnull_s": false, "empty_s": true}, {"id": 3, "isnull_s": false, "empty_s": false}]

-- ===== CONCAT / || =====
-- name: concat_nulls
-- task
SELECT CONCAT(s, 'x') AS v FROM cases WHERE id < 3 ORDER BY id
-- expect: [{"v": "abcx"}, {"v": null}, {"v": "x"}]

-- name: concat_three
SELECT CONCAT(s, '-', s2) AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"v": "abc-b"}, {"v": null}, {"v": null}, {"v": "héllo wörld-"}]

-- name: concat_pipe
SELECT s || '|' || s2 AS v FROM cases WHERE id IN (0, 3, 6) ORDER BY id
-- expect: [{"v": "abc|b"}, {"v": "héllo wörld|"}, {"v": "日本語|語"}]

-- name: concat_number
SELECT CONCAT('n=', n) AS v FROM cases WHERE id < 3 ORDER BY id
-- expect: [{"v": "n=1"}, {"v": "n=-2"}, {"v": null}]

-- name: concat_double
SELECT CONCAT(d, '') AS v FROM cases WHERE id IN (0, 3, 5, 8) ORDER BY id
-- expect: [{"v": "1.5"}, {"v": "0.0"}, {"v": "1.0E10"}, {"v": "100.0"}]

-- name: concat_literals
SELECT CONCAT('a', 'b', 'c') AS v
-- expect: [{"v": "abc"}]

-- name: concat_null_literal
SELECT CONCAT('a', NULL) AS v
-- expect: [{"v": null}]

-- name: textcat
SELECT TEXTCAT(s, s2) AS v FROM cases WHERE id IN (0, 1, 5) ORDER BY id
-- expect: [{"v": "abcb"}, {"v": null}, {"v": "ABCabc"}]

-- name: concat_unicode
SELECT s || s2 AS v FROM cases WHERE id = 6
-- expect: [{"v": "日本語語"}]

-- ===== LOWER / UPPER =====
-- name: upper
-- task
SELECT UPPER(s) AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"v": "ABC"}, {"v": null}, {"v": ""}, {"v": "HÉLLO WÖRLD"}]

-- name: lower
SELECT LOWER(s) AS v FROM cases WHERE id IN (5, 9) ORDER BY id
-- expect: [{"v": "abc"}, {"v": "hello world"}]

-- name: upper_unicode
SELECT UPPER(s) AS v FROM cases WHERE id IN (3, 6) ORDER BY id
-- expect: [{"v": "HÉLLO WÖRLD"}, {"v": "日本語"}]

-- name: lower_in_where
SELECT id FROM cases WHERE LOWER(s) = 'abc' ORDER BY id
-- expect: [{"id": 0}, {"id": 5}]

-- ===== LENGTH =====
-- name: strlen
-- task
SELECT id, STRLEN(s) AS v FROM cases WHERE id < 5 ORDER BY id
-- expect: [{"id": 0, "v": 3}, {"id": 1, "v": null}, {"id": 2, "v": 0}, {"id": 3, "v": 11}, {"id": 4, "v": 7}]

-- name: length_aliases
SELECT LENGTH(s) AS a, CHAR_LENGTH(s) AS b, CHARACTER_LENGTH(s) AS c FROM cases WHERE id = 6
-- expect: [{"a": 3, "b": 3, "c": 3}]

-- name: length_empty_literal
SELECT LENGTH('') AS v
-- expect: [{"v": 0}]

-- name: length_where
SELECT id FROM cases WHERE LENGTH(s) > 5 ORDER BY id
-- expect: [{"id": 3}, {"id": 4}, {"id": 9}]

-- ===== SUBSTRING =====
-- name: substring_from_for
SELECT SUBSTRING(s, 2, 2) AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"v": "bc"}, {"v": null}, {"v": null}, {"v": "él"}]

-- name: substring_to_end
SELECT SUBSTRING(s, 3) AS v FROM cases WHERE id IN (0, 3, 6) ORDER BY id
-- expect: [{"v": "c"}, {"v": "llo wörld"}, {"v": "語"}]

-- name: substr_alias
SELECT SUBSTR(s, 1, 1) AS v FROM cases WHERE id IN (5, 9) ORDER BY id
-- expect: [{"v": "A"}, {"v": "H"}]

-- name: substring_sql_syntax
SELECT SUBSTRING(s FROM 2 FOR 3) AS v FROM cases WHERE id = 9
-- expect: [{"v": "ell"}]

-- name: substring_past_end
SELECT SUBSTRING(s, 4) AS v FROM cases WHERE id = 0
-- expect: [{"v": null}]

-- name: substring_long_length
SELECT SUBSTRING(s, 2, 100) AS v FROM cases WHERE id = 0
-- expect: [{"v": "bc"}]

-- ===== LEFT / RIGHT =====
-- name: left
SELECT LEFT(s, 2) AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"v": "ab"}, {"v": null}, {"v": ""}, {"v": "hé"}]

-- name: right
SELECT RIGHT(s, 2) AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"v": "bc"}, {"v": null}, {"v": ""}, {"v": "ld"}]

-- name: left_longer_than_string
SELECT LEFT(s, 10) AS a, RIGHT(s, 10) AS b FROM cases WHERE id = 0
-- expect: [{"a": "abc", "b": "abc"}]

-- name: right_unicode
SELECT RIGHT(s, 2) AS v FROM cases WHERE id = 6
-- expect: [{"v": "本語"}]

-- name: left_zero
SELECT LEFT(s, 0) AS v FROM cases WHERE id = 0
-- expect: [{"v": ""}]

-- ===== TRIM =====
-- name: trim_default
SELECT '[' || TRIM(s) || ']' AS v FROM cases WHERE id = 4
-- expect: [{"v": "[pad]"}]

-- name: trim_both_chars
SELECT TRIM(BOTH 'a' FROM s) AS v FROM cases WHERE id IN (0, 7) ORDER BY id
-- expect: [{"v": "bc"}, {"v": "_b%c"}]

-- name: trim_leading
SELECT '[' || TRIM(LEADING FROM s) || ']' AS v FROM cases WHERE id = 4
-- expect: [{"v": "[pad  ]"}]

-- name: trim_trailing
SELECT '[' || TRIM(TRAILING ' ' FROM s) || ']' AS v FROM cases WHERE id = 4
-- expect: [{"v": "[  pad]"}]

-- name: btrim
SELECT BTRIM(s, 'cab') AS v FROM cases WHERE id IN (0, 5, 7) ORDER BY id
-- expect: [{"v": ""}, {"v": "ABC"}, {"v": "_b%"}]

-- name: ltrim
SELECT '[' || LTRIM(s) || ']' AS v FROM cases WHERE id = 4
-- expect: [{"v": "[pad  ]"}]

-- name: rtrim_chars
SELECT RTRIM(s, 'dl') AS v FROM cases WHERE id IN (3, 9) ORDER BY id
-- expect: [{"v": "héllo wör"}, {"v": "Hello Wor"}]

-- name: trim_null
SELECT TRIM(s) AS v FROM cases WHERE id IN (1, 2) ORDER BY id
-- expect: [{"v": null}, {"v": ""}]

-- ===== REPLACE / REVERSE / REPEAT =====
-- name: replace
SELECT REPLACE(s, 'l', 'L') AS v FROM cases WHERE id IN (1, 3, 9) ORDER BY id
-- expect: [{"v": null}, {"v": "héLLo wörLd"}, {"v": "HeLLo WorLd"}]

-- name: replace_with_empty
SELECT REPLACE(s, ' ', '') AS v FROM cases WHERE id IN (4, 9) ORDER BY id
-- expect: [{"v": "pad"}, {"v": "HelloWorld"}]

-- name: replace_multi_char
SELECT REPLACE('aaaa', 'aa', 'b') AS v
-- expect: [{"v": "bb"}]

-- name: replace_empty_pattern
SELECT REPLACE('abc', '', '-') AS v
-- expect: [{"v": "-a-b-c-"}]

-- name: reverse
SELECT REVERSE(s) AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"v": "cba"}, {"v": null}, {"v": ""}, {"v": "dlröw olléh"}]

-- name: reverse_unicode
SELECT REVERSE(s) AS v FROM cases WHERE id = 6
-- expect: [{"v": "語本日"}]

-- name: repeat
SELECT REPEAT(s, 2) AS v FROM cases WHERE id < 3 ORDER BY id
-- expect: [{"v": "abcabc"}, {"v": null}, {"v": ""}]

-- name: repeat_zero
SELECT REPEAT(s, 0) AS v FROM cases WHERE id = 0
-- expect: [{"v": null}]

-- ===== LPAD / RPAD =====
-- name: lpad
SELECT LPAD(s, 5, 'xy') AS v FROM cases WHERE id < 3 ORDER BY id
-- expect: [{"v": "xyabc"}, {"v": null}, {"v": "xyxyx"}]

-- name: rpad
SELECT RPAD(s, 5, 'xy') AS v FROM cases WHERE id < 3 ORDER BY id
-- expect: [{"v": "abcxy"}, {"v": null}, {"v": "xyxyx"}]

-- name: lpad_truncates
SELECT LPAD(s, 4, '*') AS v FROM cases WHERE id = 9
-- expect: [{"v": "Hell"}]

-- name: rpad_truncates
SELECT RPAD(s, 4, '*') AS v FROM cases WHERE id = 9
-- expect: [{"v": "Hell"}]

-- name: lpad_default_space
SELECT '[' || LPAD(s, 5) || ']' AS v FROM cases WHERE id = 0
-- expect: [{"v": "[  abc]"}]

-- name: lpad_empty_pad
SELECT LPAD(s, 6, '') AS a, LPAD(s, 2, '') AS b FROM cases WHERE id = 0
-- expect: [{"a": "abc", "b": "ab"}]

-- name: lpad_zero_length
SELECT LPAD(s, 0, 'x') AS v FROM cases WHERE id = 0
-- expect: [{"v": null}]

-- name: lpad_number
SELECT LPAD(CAST(n AS VARCHAR), 4, '0') AS v FROM cases WHERE id IN (0, 4, 7) ORDER BY id
-- expect: [{"v": "0001"}, {"v": "0100"}, {"v": "0042"}]

-- ===== POSITION / STRPOS =====
-- name: strpos
SELECT STRPOS(s, 'l') AS v FROM cases WHERE id IN (0, 1, 2, 3, 9) ORDER BY id
-- expect: [{"v": 0}, {"v": null}, {"v": 0}, {"v": 3}, {"v": 3}]

-- name: position
SELECT POSITION('b' IN s) AS v FROM cases WHERE id IN (0, 5, 7) ORDER BY id
-- expect: [{"v": 2}, {"v": 0}, {"v": 3}]

-- name: position_unicode
SELECT POSITION('語' IN s) AS v FROM cases WHERE id = 6
-- expect: [{"v": 3}]

-- name: strpos_empty_needle
SELECT STRPOS(s, '') AS v FROM cases WHERE id = 0
-- expect: [{"v": 1}]

-- ===== CONTAINS_STRING / ICONTAINS_STRING =====
-- name: contains_string
SELECT id, CONTAINS_STRING(s, 'b') AS v FROM cases WHERE id < 3 OR id = 5 ORDER BY id
-- expect: [{"id": 0, "v": true}, {"id": 1, "v": false}, {"id": 2, "v": false}, {"id": 5, "v": false}]

-- name: icontains_string
SELECT id, ICONTAINS_STRING(s, 'B') AS v FROM cases WHERE id < 3 OR id = 5 ORDER BY id
-- expect: [{"id": 0, "v": true}, {"id": 1, "v": false}, {"id": 2, "v": false}, {"id": 5, "v": true}]

-- name: contains_in_where
SELECT id FROM cases WHERE CONTAINS_STRING(s, 'o') ORDER BY id
-- expect: [{"id": 3}, {"id": 9}]

-- name: icontains_in_where
SELECT id FROM cases WHERE ICONTAINS_STRING(s, 'HELLO') ORDER BY id
-- expect: [{"id": 9}]

-- ===== REGEXP_* =====
-- name: regexp_extract_group
SELECT REGEXP_EXTRACT(s, 'l(.)', 1) AS v FROM cases WHERE id IN (0, 1, 3, 9) ORDER BY id
-- expect: [{"v": null}, {"v": null}, {"v": "l"}, {"v": "l"}]

-- name: regexp_extract_whole
SELECT REGEXP_EXTRACT(s, '[a-z]+') AS v FROM cases WHERE id IN (0, 2, 4, 5) ORDER BY id
-- expect: [{"v": "abc"}, {"v": null}, {"v": "pad"}, {"v": null}]

-- name: regexp_extract_anchored
SELECT REGEXP_EXTRACT(s, '^H.*d$') AS v FROM cases WHERE id IN (3, 9) ORDER BY id
-- expect: [{"v": null}, {"v": "Hello World"}]

-- name: regexp_extract_two_groups
SELECT REGEXP_EXTRACT(s, '(\w+) (\w+)', 2) AS v FROM cases WHERE id = 9
-- expect: [{"v": "World"}]

-- name: regexp_like
-- task
SELECT id, REGEXP_LIKE(s, '^[a-z]') AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "v": true}, {"id": 1, "v": false}, {"id": 2, "v": false}, {"id": 3, "v": true}]

-- name: regexp_like_where
SELECT id FROM cases WHERE REGEXP_LIKE(s, 'o.*o') ORDER BY id
-- expect: [{"id": 9}]

-- name: regexp_replace
SELECT REGEXP_REPLACE(s, '[aeiou]', '*') AS v FROM cases WHERE id IN (0, 1, 9) ORDER BY id
-- expect: [{"v": "*bc"}, {"v": null}, {"v": "H*ll* W*rld"}]

-- name: regexp_replace_groups
SELECT REGEXP_REPLACE(s, '(\w+) (\w+)', '$2 $1') AS v FROM cases WHERE id = 9
-- expect: [{"v": "World Hello"}]

-- name: regexp_replace_empty_match
SELECT REGEXP_REPLACE('abc', 'x*', '-') AS v
-- expect: [{"v": "-a-b-c-"}]

-- ===== LIKE =====
-- name: like_prefix
-- task
SELECT id FROM cases WHERE s LIKE 'a%' ORDER BY id
-- expect: [{"id": 0}, {"id": 7}]

-- name: like_underscore
SELECT id FROM cases WHERE s LIKE '_BC' ORDER BY id
-- expect: [{"id": 5}]

-- name: like_case_sensitive
SELECT id FROM cases WHERE s LIKE '%abc%' ORDER BY id
-- expect: [{"id": 0}]

-- name: not_like
SELECT id FROM cases WHERE s NOT LIKE '%o%' ORDER BY id
-- expect: [{"id": 0}, {"id": 2}, {"id": 4}, {"id": 5}, {"id": 6}, {"id": 7}, {"id": 8}]

-- name: like_escape
SELECT id FROM cases WHERE s LIKE 'a!_b!%c' ESCAPE '!' ORDER BY id
-- expect: [{"id": 7}]

-- name: like_escape_percent
SELECT id FROM cases WHERE s LIKE '%\%%' ESCAPE '\' ORDER BY id
-- expect: [{"id": 7}]

-- name: like_projection
SELECT id, s LIKE '%l%' AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "v": false}, {"id": 1, "v": null}, {"id": 2, "v": false}, {"id": 3, "v": true}]

-- name: like_empty_string
SELECT id FROM cases WHERE s LIKE '' ORDER BY id
-- expect: [{"id": 2}]

-- name: like_unicode
SELECT id FROM cases WHERE s LIKE '日_語' ORDER BY id
-- expect: [{"id": 6}]

-- ===== arithmetic =====
-- name: add_long
-- task
SELECT id, n + 1 AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "v": 2}, {"id": 1, "v": -1}, {"id": 2, "v": null}, {"id": 3, "v": 1}]

-- name: subtract_multiply
SELECT n - 3 AS a, n * 2 AS b FROM cases WHERE id IN (1, 4) ORDER BY id
-- expect: [{"a": -5, "b": -4}, {"a": 97, "b": 200}]

-- name: long_division_truncates
SELECT n / 2 AS v FROM cases WHERE id IN (0, 1, 5, 6) ORDER BY id
-- expect: [{"v": 0}, {"v": -1}, {"v": 3}, {"v": -7}]

-- name: double_division
SELECT d / 2 AS v FROM cases WHERE id IN (0, 1, 4) ORDER BY id
-- expect: [{"v": 0.75}, {"v": -1.125}, {"v": 1.3375}]

-- name: mixed_arithmetic
SELECT n + d AS v FROM cases WHERE id IN (0, 1, 2) ORDER BY id
-- expect: [{"v": 2.5}, {"v": -4.25}, {"v": null}]

-- name: modulo_operator
SELECT n % 4 AS v FROM cases WHERE id IN (4, 5, 6) ORDER BY id
-- expect: [{"v": 0}, {"v": 3}, {"v": -3}]

-- name: mod_function
SELECT MOD(n, 3) AS v FROM cases WHERE id IN (1, 6, 7) ORDER BY id
-- expect: [{"v": -2}, {"v": 0}, {"v": 0}]

-- name: mod_double
SELECT MOD(d, 1) AS v FROM cases WHERE id IN (0, 1, 7) ORDER BY id
-- expect: [{"v": 0.5}, {"v": -0.25}, {"v": 0.25}]

-- name: unary_minus
SELECT -n AS v FROM cases WHERE id IN (0, 1, 2) ORDER BY id
-- expect: [{"v": -1}, {"v": 2}, {"v": null}]

-- name: arithmetic_precedence
SELECT 1 + 2 * 3 AS a, (1 + 2) * 3 AS b, 10 - 4 - 3 AS c, 2 * 3 % 4 AS e
-- expect: [{"a": 7, "b": 9, "c": 3, "e": 2}]

-- name: float_column_arithmetic
SELECT f * 2 AS v FROM cases WHERE id IN (0, 4) ORDER BY id
-- expect: [{"v": 3.0}, {"v": 5.0}]

-- name: null_arithmetic
SELECT n + NULL AS v FROM cases WHERE id = 0
-- expect: [{"v": null}]

-- name: literal_double
SELECT 1.5 + 1 AS a, 1e3 AS b, 7 / 2 AS c, 7.0 / 2 AS e
-- expect: [{"a": 2.5, "b": 1000.0, "c": 3, "e": 3.5}]

-- ===== comparisons =====
-- name: compare_long
SELECT id FROM cases WHERE n > 5 ORDER BY id
-- expect: [{"id": 4}, {"id": 5}, {"id": 7}, {"id": 8}]

-- name: compare_not_equal
SELECT id FROM cases WHERE n <> 1 ORDER BY id
-- expect: [{"id": 1}, {"id": 3}, {"id": 4}, {"id": 5}, {"id": 6}, {"id": 7}, {"id": 8}, {"id": 9}]

-- name: compare_string
SELECT id FROM cases WHERE s >= 'a' AND s < 'b' ORDER BY id
-- expect: [{"id": 0}, {"id": 7}]

-- name: compare_double
SELECT id FROM cases WHERE d <= 0 ORDER BY id
-- expect: [{"id": 1}, {"id": 3}, {"id": 6}, {"id": 9}]

-- name: compare_projection
-- task
SELECT id, n > 0 AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "v": true}, {"id": 1, "v": false}, {"id": 2, "v": null}, {"id": 3, "v": false}]

-- name: compare_long_to_string_literal
SELECT id FROM cases WHERE n = '7'
-- expect: [{"id": 5}]

-- name: compare_empty_string
SELECT id FROM cases WHERE s = '' ORDER BY id
-- expect: [{"id": 2}]

-- name: compare_unicode
SELECT id FROM cases WHERE s = '日本語'
-- expect: [{"id": 6}]

-- ===== IN / BETWEEN =====
-- name: in_longs
SELECT id FROM cases WHERE n IN (1, 7, 42) ORDER BY id
-- expect: [{"id": 0}, {"id": 5}, {"id": 7}]

-- name: in_strings
SELECT id FROM cases WHERE s IN ('abc', '', 'x,y') ORDER BY id
-- expect: [{"id": 0}, {"id": 2}, {"id": 8}]

-- name: not_in
SELECT id FROM cases WHERE n NOT IN (1, 7, 42) ORDER BY id
-- expect: [{"id": 1}, {"id": 3}, {"id": 4}, {"id": 6}, {"id": 8}, {"id": 9}]

-- name: in_projection_with_null
SELECT id, n IN (1, 2) AS v FROM cases WHERE id < 3 ORDER BY id
-- expect: [{"id": 0, "v": true}, {"id": 1, "v": false}, {"id": 2, "v": null}]

-- name: in_with_null_literal
SELECT id FROM cases WHERE n IN (1, NULL) ORDER BY id
-- expect: [{"id": 0}]

-- name: between
SELECT id FROM cases WHERE n BETWEEN 0 AND 9 ORDER BY id
-- expect: [{"id": 0}, {"id": 3}, {"id": 5}, {"id": 8}]

-- name: not_between
SELECT id FROM cases WHERE n NOT BETWEEN 0 AND 9 ORDER BY id
-- expect: [{"id": 1}, {"id": 4}, {"id": 6}, {"id": 7}, {"id": 9}]

-- name: between_strings
SELECT id FROM cases WHERE s BETWEEN 'a' AND 'b' ORDER BY id
-- expect: [{"id": 0}, {"id": 7}]

-- name: between_timestamps
SELECT id FROM cases WHERE __time BETWEEN TIMESTAMP '2021-01-02 00:00:00' AND TIMESTAMP '2021-01-05 00:00:00' ORDER BY id
-- expect: [{"id": 2}, {"id": 3}, {"id": 4}, {"id": 5}]

-- ===== IS NULL / IS TRUE / IS FALSE =====
-- name: is_null
SELECT id FROM cases WHERE s IS NULL
-- expect: [{"id": 1}]

-- name: is_not_null_count
SELECT COUNT(*) AS c FROM cases WHERE n IS NOT NULL
-- expect: [{"c": 9}]

-- name: is_null_projection
SELECT id, d IS NULL AS a, d IS NOT NULL AS b FROM cases WHERE id IN (1, 2) ORDER BY id
-- expect: [{"id": 1, "a": false, "b": true}, {"id": 2, "a": true, "b": false}]

-- name: is_true
SELECT id, (n > 0) IS TRUE AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "v": true}, {"id": 1, "v": false}, {"id": 2, "v": false}, {"id": 3, "v": false}]

-- name: is_not_true
SELECT id, (n > 0) IS NOT TRUE AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "v": false}, {"id": 1, "v": true}, {"id": 2, "v": true}, {"id": 3, "v": true}]

-- name: is_false
SELECT id, (n > 0) IS FALSE AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "v": false}, {"id": 1, "v": true}, {"id": 2, "v": false}, {"id": 3, "v": true}]

-- name: is_not_false
SELECT id, (n > 0) IS NOT FALSE AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "v": true}, {"id": 1, "v": false}, {"id": 2, "v": true}, {"id": 3, "v": false}]

-- name: is_true_filter
SELECT id FROM cases WHERE (s LIKE '%b%') IS NOT TRUE ORDER BY id
-- expect: [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}, {"id": 5}, {"id": 6}, {"id": 8}, {"id": 9}]

-- ===== AND / OR / NOT =====
-- name: and_or
SELECT id FROM cases WHERE (n > 0 AND d > 2) OR s = '' ORDER BY id
-- expect: [{"id": 2}, {"id": 4}, {"id": 5}, {"id": 7}, {"id": 8}]

-- name: not_filter
SELECT id FROM cases WHERE NOT (n > 0) ORDER BY id
-- expect: [{"id": 1}, {"id": 3}, {"id": 6}, {"id": 9}]

-- name: three_valued_logic
SELECT id, (n > 0 OR s = 'abc') AS a, (n > 0 AND s IS NULL) AS b FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "a": true, "b": false}, {"id": 1, "a": null, "b": false}, {"id": 2, "a": null, "b": false}, {"id": 3, "a": false, "b": false}]

-- name: boolean_literals
SELECT TRUE AS a, FALSE AS b, NOT TRUE AS c, TRUE AND NULL AS e
-- expect: [{"a": true, "b": false, "c": false, "e": null}]

-- ===== CASE =====
-- name: case_searched
-- task
SELECT id, CASE WHEN n > 0 THEN 'pos' WHEN n < 0 THEN 'neg' ELSE 'zero-or-null' END AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "v": "pos"}, {"id": 1, "v": "neg"}, {"id": 2, "v": "zero-or-null"}, {"id": 3, "v": "zero-or-null"}]

-- name: case_no_else
SELECT id, CASE WHEN n > 10 THEN 'big' END AS v FROM cases WHERE id IN (0, 4) ORDER BY id
-- expect: [{"id": 0, "v": null}, {"id": 4, "v": "big"}]

-- name: case_simple
SELECT id, CASE s WHEN 'abc' THEN 1 WHEN '' THEN 2 ELSE 3 END AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "v": 1}, {"id": 1, "v": 3}, {"id": 2, "v": 2}, {"id": 3, "v": 3}]

-- name: case_mixed_numeric
SELECT id, CASE WHEN id = 0 THEN 1 ELSE 2.5 END AS v FROM cases WHERE id < 2 ORDER BY id
-- expect: [{"id": 0, "v": 1.0}, {"id": 1, "v": 2.5}]

-- name: case_in_where
SELECT id FROM cases WHERE CASE WHEN n IS NULL THEN TRUE ELSE n < 0 END ORDER BY id
-- expect: [{"id": 1}, {"id": 2}, {"id": 6}, {"id": 9}]

-- name: case_mixed_types_error
SELECT CASE WHEN n > 0 THEN 'a' ELSE 1 END AS v FROM cases
-- error: 400 invalidInput Illegal mixing of types

-- ===== COALESCE / NVL / NULLIF =====
-- name: coalesce
-- task
SELECT id, COALESCE(s, 'none') AS v FROM cases WHERE id < 4 ORDER BY id
-- expect: [{"id": 0, "v": "abc"}, {"id": 1, "v": "none"}, {"id": 2, "v": ""}, {"id": 3, "v": "héllo wörld"}]

-- name: coalesce_three
SELECT COALESCE(NULL, s2, s) AS v FROM cases WHERE id IN (1, 2) ORDER BY id
-- expect: [{"v": "B"}, {"v": ""}]

-- name: coalesce_numbers
SELECT COALESCE(n, -100) AS v FROM cases WHERE id IN (1, 2) ORDER BY id
-- expect: [{"v": -2}, {"v": -100}]

-- name: coalesce_mixed_numeric
SELECT COALESCE(d, n, 0) AS v FROM cases WHERE id IN (0, 2) ORDER BY id
-- expect: [{"v": 1.5}, {"v": 0.0}]

-- name: nvl
SELECT NVL(s, '?') AS v FROM cases WHERE id IN (0, 1, 2) ORDER BY id
-- expect: [{"v": "abc"}, {"v": "?"}, {"v": ""}]

-- name: ifnull
SELECT IFNULL(n, 0) AS v FROM cases WHERE id = 2
-- expect: [{"v": 0}]

-- name: nullif
SELECT NULLIF(s, '') AS v FROM cases WHERE id IN (0, 1, 2) ORDER BY id
-- expect: [{"v": "abc"}, {"v": null}, {"v": null}]

-- name: nullif_number
SELECT NULLIF(n, 1) AS v FROM cases WHERE id IN (0, 1) ORDER BY id
-- expect: [{"v": null}, {"v": -2}]

-- ===== CAST =====
-- name: cast_long_to_varchar
SELECT CAST(n AS VARCHAR) AS v FROM cases WHERE id < 3 ORDER BY id
-- expect: [{"v": "1"}, {"v": "-2"}, {"v": null}]

-- name: cast_double_to_varchar
SELECT CAST(d AS VARCHAR) AS v FROM cases WHERE id IN (0, 3, 5, 7) ORDER BY id
-- expect: [{"v": "1.5"}, {"v": "0.0"}, {"v": "1.0E10"}, {"v": "3.25"}]

-- name: cast_double_to_bigint
SELECT CAST(d AS BIGINT) AS v FROM cases WHERE id IN (0, 1, 4, 9) ORDER BY id
-- expect: [{"v": 1}, {"v": -2}, {"v": 2}, {"v": -7}]

-- name: cast_long_to_double
SELECT CAST(n AS DOUBLE) AS v FROM cases WHERE id IN (0, 1) ORDER BY id
-- expect: [{"v": 1.0}, {"v": -2.0}]

-- name: cast_string_to_bigint
SELECT CAST('42' AS BIGINT) AS a, CAST('4.7' AS BIGINT) AS b, CAST('x' AS BIGINT) AS c
-- expect: [{"a": 42, "b": 4, "c": null}]

-- name: cast_string_column_to_number
SELECT CAST(s2 AS INTEGER) AS v FROM cases WHERE id IN (0, 3) ORDER BY id
-- expect: [{"v": null}, {"v": null}]

-- name: cast_string_to_double
SELECT CAST('1.25' AS DOUBLE) AS a, CAST('-3' AS DOUBLE) AS b, CAST('1e2' AS DOUBLE) AS c
-- expect: [{"a": 1.25, "b": -3.0, "c": 100.0}]

-- name: cast_integer_types
SELECT CAST(d AS INTEGER) AS a, CAST(d AS SMALLINT) AS b FROM cases WHERE id = 7
-- expect: [{"a": 3, "b": 3}]

-- name: cast_float
SELECT CAST(n AS FLOAT) AS v FROM cases WHERE id = 4
-- expect: [{"v": 100.0}]

-- name: cast_boolean_to_varchar
SELECT CAST(n > 0 AS VARCHAR) AS v FROM cases WHERE id IN (0, 1) ORDER BY id
-- expect: [{"v": "true"}, {"v": "false"}]

-- name: cast_timestamp_to_varchar
SELECT CAST(__time AS VARCHAR) AS v FROM cases WHERE id IN (0, 1) ORDER BY id
-- expect: [{"v": "2021-01-01 00:00:00"}, {"v": "2021-01-01 12:34:56"}]

-- name: cast_varchar_to_timestamp
SELECT CAST(ts AS TIMESTAMP) AS v FROM cases WHERE id IN (0, 1, 2, 3, 4) ORDER BY id
-- expect: [{"v": "2021-01-01T00:00:00.000Z"}, {"v": "2021-01-01T12:34:56.789Z"}, {"v": null}, {"v": null}, {"v": "2021-01-04T00:00:00.000Z"}]

-- name: cast_timestamp_to_bigint
SELECT CAST(__time AS BIGINT) AS v FROM cases WHERE id = 0
-- expect: [{"v": 1609459200000}]

-- name: cast_to_date
SELECT CAST(__time AS DATE) AS v FROM cases WHERE id IN (1, 8) ORDER BY id
-- expect: [{"v": "2021-01-01T00:00:00.000Z"}, {"v": "2021-12-31T00:00:00.000Z"}]

-- name: cast_date_to_varchar
SELECT CAST(CAST(__time AS DATE) AS VARCHAR) AS v FROM cases WHERE id = 1
-- expect: [{"v": "2021-01-01"}]

-- name: cast_null
SELECT CAST(NULL AS VARCHAR) AS a, CAST(NULL AS BIGINT) AS b
-- expect: [{"a": null, "b": null}]

-- name: cast_unknown_type
SELECT CAST(n AS GEOMETRY) AS v FROM cases
-- error: 400 invalidInput

-- ===== numeric functions =====
-- name: abs
-- task
SELECT ABS(n) AS a, ABS(d) AS b FROM cases WHERE id IN (1, 6) ORDER BY id
-- expect: [{"a": 2, "b": 2.25}, {"a": 15, "b": 0.5}]

-- name: ceil_floor_double
SELECT CEIL(d) AS a, FLOOR(d) AS b FROM cases WHERE id IN (0, 1, 9) ORDER BY id
-- expect: [{"a": 2.0, "b": 1.0}, {"a": -2.0, "b": -3.0}, {"a": -7.0, "b": -8.0}]

-- name: ceil_floor_long
SELECT CEIL(n) AS a, FLOOR(n) AS b FROM cases WHERE id IN (1, 4) ORDER BY id
-- expect: [{"a": -2, "b": -2}, {"a": 100, "b": 100}]

-- name: round_default
SELECT ROUND(d) AS v FROM cases WHERE id IN (0, 1, 6, 9) ORDER BY id
-- expect: [{"v": 2.0}, {"v": -2.0}, {"v": -1.0}, {"v": -7.0}]

-- name: round_scale
SELECT ROUND(d, 2) AS a, ROUND(d, 1) AS b FROM cases WHERE id IN (4, 9) ORDER BY id
-- expect: [{"a": 2.68, "b": 2.7}, {"a": -7.13, "b": -7.1}]

-- name: round_negative_scale
SELECT ROUND(n, -1) AS a, ROUND(d, -1) AS b FROM cases WHERE id IN (4, 5, 6) ORDER BY id
-- expect: [{"a": 100, "b": 0.0}, {"a": 10, "b": 10000000000.0}, {"a": -20, "b": 0.0}]

-- name: round_long
SELECT ROUND(n) AS v FROM cases WHERE id = 7
-- expect: [{"v": 42}]

-- name: round_half_up
SELECT ROUND(2.5) AS a, ROUND(-2.5) AS b, ROUND(0.125, 2) AS c
-- expect: [{"a": 3.0, "b": -3.0, "c": 0.13}]

-- name: truncate
SELECT TRUNCATE(d, 1) AS a, TRUNC(d) AS b FROM cases WHERE id IN (1, 4, 9) ORDER BY id
-- expect: [{"a": -2.2, "b": -2.0}, {"a": 2.6, "b": 2.0}, {"a": -7.1, "b": -7.0}]

-- name: truncate_negative_scale
SELECT TRUNCATE(d, -1) AS v FROM cases WHERE id = 8
-- expect: [{"v": 100.0}]

-- name: power
SELECT POWER(n, 2) AS v FROM cases WHERE id IN (0, 1, 2) ORDER BY id
-- expect: [{"v": 1.0}, {"v": 4.0}, {"v": null}]

-- name: power_fractional
SELECT POWER(4, 0.5) AS a, POWER(2, -1) AS b
-- expect: [{"a": 2.0, "b": 0.5}]

-- name: sqrt
SELECT SQRT(n) AS v FROM cases WHERE id IN (0, 4, 3) ORDER BY id
-- expect: [{"v": 1.0}, {"v": 0.0}, {"v": 10.0}]

-- name: exp_ln
SELECT EXP(0) AS a, LN(1) AS b, LN(EXP(2)) AS c
-- expect: [{"a": 1.0, "b": 0.0, "c": 2.0}]

-- name: log10
SELECT LOG10(d) AS v FROM cases WHERE id IN (5, 8) ORDER BY id
-- expect: [{"v": 10.0}, {"v": 2.0}]

-- name: greatest_longs
SELECT GREATEST(n, 5) AS v FROM cases WHERE id < 5 ORDER BY id
-- expect: [{"v": 5}, {"v": 5}, {"v": 5}, {"v": 5}, {"v": 100}]

-- name: least_mixed
SELECT LEAST(n, d) AS v FROM cases WHERE id IN (0, 1, 2, 4) ORDER BY id
-- expect: [{"v": 1.0}, {"v": -2.25}, {"v": null}, {"v": 2.675}]

-- name: greatest_strings
SELECT GREATEST(s, s2) AS v FROM cases WHERE id IN (0, 1, 2, 5) ORDER BY id
-- expect: [{"v": "b"}, {"v": "B"}, {"v": ""}, {"v": "abc"}]

-- name: greatest_all_null
SELECT GREATEST(n, NULL) AS v FROM cases WHERE id = 2
-- expect: [{"v": null}]

-- name: safe_divide_long
SELECT SAFE_DIVIDE(n, 0) AS a, SAFE_DIVIDE(n, 2) AS b FROM cases WHERE id IN (0, 3) ORDER BY id
-- expect: [{"a": null, "b": 0}, {"a": 0, "b": 0}]

-- name: safe_divide_double
SELECT SAFE_DIVIDE(d, n) AS v FROM cases WHERE id IN (0, 1, 3) ORDER BY id
-- expect: [{"v": 1.5}, {"v": 1.125}, {"v": 0.0}]

-- name: trig
SELECT SIN(0) AS a, COS(0) AS b, ATAN2(1, 1) * 4 AS c, DEGREES(PI()) AS e
-- expect: [{"a": 0.0, "b": 1.0, "c": 3.141592653589793, "e": 180.0}]

-- ===== BITWISE =====
-- name: bitwise_and_or_xor
-- task
SELECT BITWISE_AND(n, 3) AS a, BITWISE_OR(n, 8) AS b, BITWISE_XOR(n, 5) AS c FROM cases WHERE id IN (1, 4, 5) ORDER BY id
-- expect: [{"a": 2, "b": -2, "c": -5}, {"a": 0, "b": 108, "c": 97}, {"a": 3, "b": 15, "c": 2}]

-- name: bitwise_complement
SELECT BITWISE_COMPLEMENT(n) AS v FROM cases WHERE id IN (0, 1, 2) ORDER BY id
-- expect: [{"v": -2}, {"v": 1}, {"v": null}]

-- name: bitwise_shifts
SELECT BITWISE_SHIFT_LEFT(n, 2) AS a, BITWISE_SHIFT_RIGHT(n, 1) AS b FROM cases WHERE id IN (1, 4, 6) ORDER BY id
-- expect: [{"a": -8, "b": -1}, {"a": 400, "b": 50}, {"a": -60, "b": -8}]

-- name: bitwise_double_bits
SELECT BITWISE_CONVERT_DOUBLE_TO_LONG_BITS(1.0) AS a, BITWISE_CONVERT_LONG_BITS_TO_DOUBLE(4611686018427387904) AS b
-- expect: [{"a": 4607182418800017408, "b": 2.0}]

-- name: bitwise_doubles_cast_to_long
SELECT BITWISE_AND(d, 7) AS v FROM cases WHERE id = 7
-- expect: [{"v": 3}]

-- ===== time: literals, __time =====
-- name: time_column
-- task
SELECT __time FROM cases WHERE id IN (0, 1) ORDER BY id
-- expect: [{"__time": "2021-01-01T00:00:00.000Z"}, {"__time": "2021-01-01T12:34:56.789Z"}]

-- name: timestamp_literal_filter
SELECT id FROM cases WHERE __time >= TIMESTAMP '2021-01-04 00:00:00' AND __time < TIMESTAMP '2021-03-01 00:00:00' ORDER BY id
-- expect: [{"id": 4}, {"id": 5}, {"id": 6}]

-- name: timestamp_literal_millis
SELECT TIMESTAMP '2021-01-01 00:00:00' AS v
-- expect: [{"v": "2021-01-01T00:00:00.000Z"}]

-- name: timestamp_string_comparison
SELECT id FROM cases WHERE __time < '2021-01-02' ORDER BY id
-- expect: [{"id": 0}, {"id": 1}, {"id": 9}]

-- name: millis_to_timestamp
SELECT MILLIS_TO_TIMESTAMP(1609459200000) AS a, MILLIS_TO_TIMESTAMP(n * 1000) AS b FROM cases WHERE id = 4
-- expect: [{"a": "2021-01-01T00:00:00.000Z", "b": "1970-01-01T00:01:40.000Z"}]

-- name: timestamp_to_millis
-- task
SELECT TIMESTAMP_TO_MILLIS(__time) AS v FROM cases WHERE id IN (0, 1, 9) ORDER BY id
-- expect: [{"v": 1609459200000}, {"v": 1609504496789}, {"v": 1582934400000}]

-- name: current_timestamp_is_recent
SELECT CURRENT_TIMESTAMP > TIMESTAMP '2024-01-01 00:00:00' AS v
-- expect: [{"v": true}]

-- name: current_date_is_midnight
SELECT TIME_EXTRACT(CURRENT_DATE, 'HOUR') AS h, TIME_EXTRACT(CURRENT_DATE, 'MINUTE') AS m
-- expect: [{"h": 0, "m": 0}]

-- ===== TIME_PARSE =====
-- name: time_parse_iso
-- task
SELECT id, TIME_PARSE(ts) AS v FROM cases WHERE id < 5 OR id > 6 ORDER BY id
-- expect: [{"id": 0, "v": "2021-01-01T00:00:00.000Z"}, {"id": 1, "v": "2021-01-01T12:34:56.789Z"}, {"id": 2, "v": null}, {"id": 3, "v": null}, {"id": 4, "v": "2021-01-04T00:00:00.000Z"}, {"id": 7, "v": "2021-03-14T02:30:00.000Z"}, {"id": 8, "v": "2021-12-31T17:30:00.000Z"}, {"id": 9, "v": "2020-02-29T00:00:00.000Z"}]

-- name: time_parse_pattern
SELECT TIME_PARSE(ts, 'MM/dd/yyyy HH:mm') AS v FROM cases WHERE id IN (4, 5) ORDER BY id
-- expect: [{"v": null}, {"v": "2021-01-05T13:45:00.000Z"}]

-- name: time_parse_pattern_zone
SELECT TIME_PARSE('2021-03-14 01:30', 'yyyy-MM-dd HH:mm', 'America/Los_Angeles') AS v
-- expect: [{"v": "2021-03-14T09:30:00.000Z"}]

-- name: time_parse_default_zone_arg
SELECT TIME_PARSE('2021-06-01 00:00:00', NULL, 'America/New_York') AS v
-- expect: [{"v": "2021-06-01T04:00:00.000Z"}]

-- name: time_parse_offset_in_string
SELECT TIME_PARSE('2021-06-01T00:00:00+02:00', NULL, 'America/New_York') AS v
-- expect: [{"v": "2021-05-31T22:00:00.000Z"}]

-- name: time_parse_compact
SELECT TIME_PARSE('20210704', 'yyyyMMdd') AS v
-- expect: [{"v": "2021-07-04T00:00:00.000Z"}]

-- name: time_parse_month_name
SELECT TIME_PARSE('4 Jul 2021 3:05 PM', 'd MMM yyyy h:mm a') AS v
-- expect: [{"v": "2021-07-04T15:05:00.000Z"}]

-- name: time_parse_invalid_date
SELECT TIME_PARSE('2021-02-30', 'yyyy-MM-dd') AS a, TIME_PARSE('garbage') AS b
-- expect: [{"a": null, "b": null}]

-- name: time_parse_fraction
SELECT TIME_PARSE('2021-01-01 10:11:12.5', 'yyyy-MM-dd HH:mm:ss.SSS') AS v
-- expect: [{"v": "2021-01-01T10:11:12.500Z"}]

-- name: time_parse_offset_pattern
SELECT TIME_PARSE('2021-01-01 10:00 +0530', 'yyyy-MM-dd HH:mm Z') AS v
-- expect: [{"v": "2021-01-01T04:30:00.000Z"}]

-- name: time_parse_in_where
SELECT id FROM cases WHERE TIME_PARSE(ts) = __time ORDER BY id
-- expect: [{"id": 0}, {"id": 1}, {"id": 9}]

-- name: time_parse_sql_format
SELECT TIME_PARSE('2021-01-01 01:02:03') AS v
-- expect: [{"v": "2021-01-01T01:02:03.000Z"}]

-- ===== TIME_FORMAT =====
-- name: time_format_default
-- task
SELECT TIME_FORMAT(__time) AS v FROM cases WHERE id IN (0, 1) ORDER BY id
-- expect: [{"v": "2021-01-01T00:00:00.000+00:00"}, {"v": "2021-01-01T12:34:56.789+00:00"}]

-- name: time_format_pattern
SELECT TIME_FORMAT(__time, 'yyyy-MM-dd HH:mm:ss') AS v FROM cases WHERE id IN (1, 9) ORDER BY id
-- expect: [{"v": "2021-01-01 12:34:56"}, {"v": "2020-02-29 00:00:00"}]

-- name: time_format_zone
SELECT TIME_FORMAT(__time, 'yyyy-MM-dd HH:mm', 'America/Los_Angeles') AS v FROM cases WHERE id IN (0, 7) ORDER BY id
-- expect: [{"v": "2020-12-31 16:00"}, {"v": "2021-03-14 03:30"}]

-- name: time_format_text_fields
SELECT TIME_FORMAT(__time, 'EEE, d MMM yyyy') AS a, TIME_FORMAT(__time, 'EEEE MMMM') AS b FROM cases WHERE id = 8
-- expect: [{"a": "Fri, 31 Dec 2021", "b": "Friday December"}]

-- name: time_format_12h
SELECT TIME_FORMAT(__time, 'h:mm a') AS v FROM cases WHERE id IN (0, 1, 4) ORDER BY id
-- expect: [{"v": "12:00 AM"}, {"v": "12:34 PM"}, {"v": "6:30 PM"}]

-- name: time_format_millis
SELECT TIME_FORMAT(__time, 'HH:mm:ss.SSS') AS v FROM cases WHERE id = 1
-- expect: [{"v": "12:34:56.789"}]

-- name: time_format_offset
SELECT TIME_FORMAT(__time, 'yyyy-MM-dd''T''HH:mmZZ', '+05:30') AS a, TIME_FORMAT(__time, 'HHmm Z', '-08:00') AS b FROM cases WHERE id = 0
-- expect: [{"a": "2021-01-01T05:30+05:30", "b": "1600 -0800"}]

-- name: time_format_day_of_year_week
SELECT TIME_FORMAT(__time, 'D w e') AS v FROM cases WHERE id IN (0, 8) ORDER BY id
-- expect: [{"v": "1 53 5"}, {"v": "365 52 5"}]

-- name: time_format_two_digit_year
SELECT TIME_FORMAT(__time, 'yy/M/d') AS v FROM cases WHERE id = 6
-- expect: [{"v": "21/2/28"}]

-- name: time_format_quoted_literal
SELECT TIME_FORMAT(__time, '''day'' dd ''of'' MM') AS v FROM cases WHERE id = 5
-- expect: [{"v": "day 05 of 01"}]

-- ===== TIME_FLOOR / TIME_CEIL / FLOOR TO / CEIL TO =====
-- name: time_floor_hour
-- task
SELECT TIME_FLOOR(__time, 'PT1H') AS v FROM cases WHERE id IN (1, 4) ORDER BY id
-- expect: [{"v": "2021-01-01T12:00:00.000Z"}, {"v": "2021-01-04T18:00:00.000Z"}]

-- name: time_floor_day
SELECT TIME_FLOOR(__time, 'P1D') AS v FROM cases WHERE id IN (1, 2) ORDER BY id
-- expect: [{"v": "2021-01-01T00:00:00.000Z"}, {"v": "2021-01-02T00:00:00.000Z"}]

-- name: time_floor_15m
SELECT TIME_FLOOR(__time, 'PT15M') AS v FROM cases WHERE id = 1
-- expect: [{"v": "2021-01-01T12:30:00.000Z"}]

-- name: time_floor_week
SELECT TIME_FLOOR(__time, 'P1W') AS v FROM cases WHERE id IN (0, 6) ORDER BY id
-- expect: [{"v": "2020-12-28T00:00:00.000Z"}, {"v": "2021-02-22T00:00:00.000Z"}]

-- name: time_floor_month_quarter_year
SELECT TIME_FLOOR(__time, 'P1M') AS a, TIME_FLOOR(__time, 'P3M') AS b, TIME_FLOOR(__time, 'P1Y') AS c FROM cases WHERE id = 8
-- expect: [{"a": "2021-12-01T00:00:00.000Z", "b": "2021-10-01T00:00:00.000Z", "c": "2021-01-01T00:00:00.000Z"}]

-- name: time_floor_origin
SELECT TIME_FLOOR(__time, 'PT1H', TIMESTAMP '2021-01-01 00:30:00') AS v FROM cases WHERE id = 1
-- expect: [{"v": "2021-01-01T12:30:00.000Z"}]

-- name: time_floor_zone
SELECT TIME_FLOOR(__time, 'P1D', NULL, 'America/Los_Angeles') AS v FROM cases WHERE id IN (0, 7) ORDER BY id
-- expect: [{"v": "2020-12-31T08:00:00.000Z"}, {"v": "2021-03-14T08:00:00.000Z"}]

-- name: time_floor_6h_zone
SELECT TIME_FLOOR(__time, 'PT6H', NULL, 'Asia/Kolkata') AS v FROM cases WHERE id = 1
-- expect: [{"v": "2021-01-01T12:30:00.000Z"}]

-- name: time_floor_group_by
SELECT TIME_FLOOR(__time, 'P1M') AS m, COUNT(*) AS c FROM cases GROUP BY 1 ORDER BY 1
-- expect: [{"m": "2020-02-01T00:00:00.000Z", "c": 1}, {"m": "2021-01-01T00:00:00.000Z", "c": 6}, {"m": "2021-02-01T00:00:00.000Z", "c": 1}, {"m": "2021-03-01T00:00:00.000Z", "c": 1}, {"m": "2021-12-01T00:00:00.000Z", "c": 1}]

-- name: time_ceil
SELECT TIME_CEIL(__time, 'P1D') AS v FROM cases WHERE id IN (0, 1) ORDER BY id
-- expect: [{"v": "2021-01-01T00:00:00.000Z"}, {"v": "2021-01-02T00:00:00.000Z"}]

-- name: floor_to_units
SELECT FLOOR(__time TO MINUTE) AS a, FLOOR(__time TO DAY) AS b, FLOOR(__time TO MONTH) AS c FROM cases WHERE id = 1
-- expect: [{"a": "2021-01-01T12:34:00.000Z", "b": "2021-01-01T00:00:00.000Z", "c": "2021-01-01T00:00:00.000Z"}]

-- name: floor_to_week
SELECT FLOOR(__time TO WEEK) AS v FROM cases WHERE id = 8
-- expect: [{"v": "2021-12-27T00:00:00.000Z"}]

-- name: ceil_to_units
SELECT CEIL(__time TO HOUR) AS a, CEIL(__time TO YEAR) AS b FROM cases WHERE id = 1
-- expect: [{"a": "2021-01-01T13:00:00.000Z", "b": "2022-01-01T00:00:00.000Z"}]

-- name: date_trunc
SELECT DATE_TRUNC('month', __time) AS a, DATE_TRUNC('hour', __time) AS b FROM cases WHERE id = 1
-- expect: [{"a": "2021-01-01T00:00:00.000Z", "b": "2021-01-01T12:00:00.000Z"}]

-- name: time_floor_bad_period
SELECT TIME_FLOOR(__time, 'PT1X') FROM cases
-- error: 400 invalidInput

-- ===== TIME_SHIFT =====
-- name: time_shift_days
SELECT TIME_SHIFT(__time, 'P1D', 2) AS v FROM cases WHERE id = 0
-- expect: [{"v": "2021-01-03T00:00:00.000Z"}]

-- name: time_shift_negative_hours
SELECT TIME_SHIFT(__time, 'PT2H', -3) AS v FROM cases WHERE id = 1
-- expect: [{"v": "2021-01-01T06:34:56.789Z"}]

-- name: time_shift_month_end
SELECT TIME_SHIFT(TIMESTAMP '2021-01-31 10:00:00', 'P1M', 1) AS v
-- expect: [{"v": "2021-02-28T10:00:00.000Z"}]

-- name: time_shift_leap_year
SELECT TIME_SHIFT(__time, 'P1Y', 1) AS v FROM cases WHERE id = 9
-- expect: [{"v": "2021-02-28T00:00:00.000Z"}]

-- name: time_shift_step_column
SELECT TIME_SHIFT(__time, 'PT1M', n) AS v FROM cases WHERE id IN (0, 1, 2) ORDER BY id
-- expect: [{"v": "2021-01-01T00:01:00.000Z"}, {"v": "2021-01-01T12:32:56.789Z"}, {"v": null}]

-- name: time_shift_dst
SELECT TIME_SHIFT(TIMESTAMP '2021-03-13 12:00:00', 'P1D', 1, 'America/Los_Angeles') AS v
-- expect: [{"v": "2021-03-14T11:00:00.000Z"}]

-- name: interval_arithmetic
SELECT __time + INTERVAL '1' DAY AS a, __time - INTERVAL '2' HOUR AS b, __time + INTERVAL '1' MONTH AS c FROM cases WHERE id = 0
-- expect: [{"a": "2021-01-02T00:00:00.000Z", "b": "2020-12-31T22:00:00.000Z", "c": "2021-02-01T00:00:00.000Z"}]

-- ===== TIME_EXTRACT / EXTRACT =====
-- name: time_extract
-- task
SELECT TIME_EXTRACT(__time, 'YEAR') AS y, TIME_EXTRACT(__time, 'MONTH') AS m, TIME_EXTRACT(__time, 'DAY') AS d, TIME_EXTRACT(__time, 'HOUR') AS h FROM cases WHERE id = 1
-- expect: [{"y": 2021, "m": 1, "d": 1, "h": 12}]

-- name: time_extract_zone
SELECT TIME_EXTRACT(__time, 'DAY', 'America/Los_Angeles') AS d, TIME_EXTRACT(__time, 'HOUR', 'America/Los_Angeles') AS h FROM cases WHERE id IN (0, 7) ORDER BY id
-- expect: [{"d": 31, "h": 16}, {"d": 14, "h": 3}]

-- name: time_extract_minute_second_ms
SELECT TIME_EXTRACT(__time, 'MINUTE') AS a, TIME_EXTRACT(__time, 'SECOND') AS b, TIME_EXTRACT(__time, 'MILLISECOND') AS c FROM cases WHERE id = 1
-- expect: [{"a": 34, "b": 56, "c": 789}]

-- name: extract_units
SELECT EXTRACT(YEAR FROM __time) AS y, EXTRACT(QUARTER FROM __time) AS q, EXTRACT(MONTH FROM __time) AS m, EXTRACT(DAY FROM __time) AS d FROM cases WHERE id = 8
-- expect: [{"y": 2021, "q": 4, "m": 12, "d": 31}]

-- name: extract_dow_doy_week
SELECT id, EXTRACT(DOW FROM __time) AS dow, EXTRACT(DOY FROM __time) AS doy, EXTRACT(WEEK FROM __time) AS wk FROM cases WHERE id IN (0, 6, 9) ORDER BY id
-- expect: [{"id": 0, "dow": 5, "doy": 1, "wk": 53}, {"id": 6, "dow": 7, "doy": 59, "wk": 8}, {"id": 9, "dow": 6, "doy": 60, "wk": 9}]

-- name: extract_epoch
SELECT EXTRACT(EPOCH FROM __time) AS v FROM cases WHERE id = 1
-- expect: [{"v": 1609504496}]

-- name: extract_isoyear
SELECT EXTRACT(ISOYEAR FROM __time) AS a, EXTRACT(ISODOW FROM __time) AS b FROM cases WHERE id = 0
-- expect: [{"a": 2020, "b": 5}]

-- name: extract_decade_century
SELECT EXTRACT(DECADE FROM __time) AS a, EXTRACT(CENTURY FROM __time) AS b, EXTRACT(MILLENNIUM FROM __time) AS c FROM cases WHERE id = 0
-- expect: [{"a": 202, "b": 21, "c": 3}]

-- name: extract_in_group_by
SELECT EXTRACT(MONTH FROM __time) AS m, COUNT(*) AS c FROM cases GROUP BY 1 ORDER BY 1
-- expect: [{"m": 1, "c": 6}, {"m": 2, "c": 2}, {"m": 3, "c": 1}, {"m": 12, "c": 1}]

-- name: time_in_interval
SELECT id FROM cases WHERE TIME_IN_INTERVAL(__time, '2021-01-01/P3D') ORDER BY id
-- expect: [{"id": 0}, {"id": 1}, {"id": 2}, {"id": 3}]

-- ===== sqlTimeZone =====
-- name: tz_timestamp_literal
-- context: {"sqlTimeZone": "America/Los_Angeles"}
SELECT TIMESTAMP_TO_MILLIS(TIMESTAMP '2021-01-01 00:00:00') AS v
-- expect: [{"v": 1609488000000}]

-- name: tz_time_floor_day
-- context: {"sqlTimeZone": "America/Los_Angeles"}
SELECT TIMESTAMP_TO_MILLIS(TIME_FLOOR(__time, 'P1D')) AS v FROM cases WHERE id IN (0, 7) ORDER BY id
-- expect: [{"v": 1609401600000}, {"v": 1615708800000}]

-- name: tz_floor_to_day
-- context: {"sqlTimeZone": "America/Los_Angeles"}
SELECT TIMESTAMP_TO_MILLIS(FLOOR(__time TO DAY)) AS v FROM cases WHERE id = 0
-- expect: [{"v": 1609401600000}]

-- name: tz_time_format
-- context: {"sqlTimeZone": "America/Los_Angeles"}
SELECT TIME_FORMAT(__time) AS v FROM cases WHERE id IN (0, 7) ORDER BY id
-- expect: [{"v": "2020-12-31T16:00:00.000-08:00"}, {"v": "2021-03-14T03:30:00.000-07:00"}]

-- name: tz_extract
-- context: {"sqlTimeZone": "Asia/Tokyo"}
SELECT EXTRACT(HOUR FROM __time) AS h, EXTRACT(DAY FROM __time) AS d FROM cases WHERE id = 8
-- expect: [{"h": 8, "d": 1}]

-- name: tz_cast_to_varchar
-- context: {"sqlTimeZone": "+05:30"}
SELECT CAST(__time AS VARCHAR) AS v FROM cases WHERE id = 0
-- expect: [{"v": "2021-01-01 05:30:00"}]

-- name: tz_filter_literal
-- context: {"sqlTimeZone": "America/Los_Angeles"}
SELECT id FROM cases WHERE __time < TIMESTAMP '2021-01-01 00:00:00' ORDER BY id
-- expect: [{"id": 0}, {"id": 9}]

-- name: tz_time_parse
-- context: {"sqlTimeZone": "Asia/Tokyo"}
SELECT TIMESTAMP_TO_MILLIS(TIME_PARSE('2021-01-01 09:00:00')) AS v
-- expect: [{"v": 1609459200000}]

-- name: tz_explicit_zone_wins
-- context: {"sqlTimeZone": "Asia/Tokyo"}
SELECT TIME_FORMAT(__time, 'HH:mm', 'UTC') AS v FROM cases WHERE id = 0
-- expect: [{"v": "00:00"}]

-- name: tz_invalid
-- context: {"sqlTimeZone": "Mars/Olympus"}
SELECT 1 AS v
-- error: 400 invalidInput Mars/Olympus

-- ===== parameters =====
-- name: parameter_long
-- parameters: [{"type": "BIGINT", "value": 7}]
SELECT id FROM cases WHERE n = ?
-- expect: [{"id": 5}]

-- name: parameter_string_function
-- parameters: [{"type": "VARCHAR", "value": "ab"}]
SELECT CONCAT(?, 'c') AS v
-- expect: [{"v": "abc"}]

-- name: parameters_numbered_in_text_order
-- Calcite numbers ? by position in the text: the SELECT list's before WHERE's.
-- task
-- parameters: [{"type": "VARCHAR", "value": "x"}, {"type": "BIGINT", "value": 7}, {"type": "BIGINT", "value": 1}]
SELECT CONCAT(?, s) AS v FROM cases WHERE n = ? OR id = ? ORDER BY id
-- expect: [{"v": null}, {"v": "xABC"}]

-- ===== errors =====
-- name: unknown_function
SELECT NO_SUCH_FN(s) FROM cases
-- error: 400 invalidInput No match found for function signature NO_SUCH_FN(<CHARACTER>)

-- name: unknown_function_numeric
SELECT FOO(n, 1) FROM cases
-- error: 400 invalidInput No match found for function signature FOO(<NUMERIC>, <NUMERIC>)

-- name: wrong_arg_count_time_floor
SELECT TIME_FLOOR(__time) FROM cases
-- error: 400 invalidInput Invalid number of arguments to function 'TIME_FLOOR'. Was expecting 2 arguments

-- name: wrong_arg_count_strlen
SELECT STRLEN(s, s) FROM cases
-- error: 400 invalidInput Invalid number of arguments to function 'STRLEN'. Was expecting 1 arguments

-- name: wrong_arg_count_bitwise
SELECT BITWISE_AND(n) FROM cases
-- error: 400 invalidInput Invalid number of arguments to function 'BITWISE_AND'. Was expecting 2 arguments

-- name: wrong_arg_count_time_shift
SELECT TIME_SHIFT(__time, 'P1D') FROM cases
-- error: 400 invalidInput Invalid number of arguments to function 'TIME_SHIFT'. Was expecting 3 arguments

-- name: invalid_time_zone
SELECT TIME_FORMAT(__time, 'yyyy', 'Nowhere/Land') FROM cases
-- error: 400 invalidInput Nowhere/Land

-- name: left_negative
SELECT LEFT(s, -1) FROM cases
-- error: 400 invalidInput needs a postive integer

-- name: unknown_column_in_function
SELECT UPPER(nope) FROM cases
-- error: 400 invalidInput Column 'nope' not found

-- name: time_extract_bad_unit
SELECT TIME_EXTRACT(__time, 'FORTNIGHT') FROM cases
-- error: 400 invalidInput FORTNIGHT
