"""TIME_PARSE's default parser and TIMESTAMP rendering (msqcore.kernels.timeparse).

Expected values come from Python's datetime (strict grammar, formatting) and, for the
lenient grammar, from Druid's actual parser: the ``LENIENT_ORACLE`` table was produced by
running Druid's ``TimestampParseExprMacro.createDefaultParser`` (Joda-Time 2.10.14) on each
string, with sqlTimeZone UTC and UTC-05:00.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msqcore.kernels import _timeparse
from msqcore.kernels.timeparse import format_iso_millis, parse_iso_millis

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MS = timedelta(milliseconds=1)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def epoch_ms(y, mo=1, d=1, h=0, mi=0, s=0, ms=0, offset_ms=0):
    local = datetime(y, mo, d, h, mi, s, ms * 1000, tzinfo=timezone(timedelta(milliseconds=offset_ms)))
    return (local - EPOCH) // MS


def parse(strings, *args, **kwargs):
    return parse_iso_millis(pa.array(strings, pa.string()), *args, **kwargs).to_pylist()


# --- the brief's examples -----------------------------------------------------------------------

EXAMPLES = [
    ("2015-09-12T00:46:58.771Z", 1442018818771),
    ("2015-09-12", 1442016000000),
    ("2015-09-12T01", 1442019600000),
    ("2015-09-12T00:46:58.771+01:00", 1442015218771),
    ("2015-9-12", None),
    ("", None),
    ("abc", None),
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_examples(text, expected):
    assert parse([text]) == [expected]


def test_examples_vectorised():
    out = parse_iso_millis(pa.array([t for t, _ in EXAMPLES]))
    assert out.type == pa.int64()
    assert out.to_pylist() == [e for _, e in EXAMPLES]
    assert out.null_count == 3
    out.validate(full=True)


# --- strict grammar: table-driven ------------------------------------------------------------

STRICT_VALID = [
    ("2015", epoch_ms(2015)),
    ("2015-09", epoch_ms(2015, 9)),
    ("2015-09-12", epoch_ms(2015, 9, 12)),
    ("1970-01-01T00:00:00.000Z", 0),
    ("1969-12-31T23:59:59.999Z", -1),
    ("2015-09-12T10", epoch_ms(2015, 9, 12, 10)),
    ("2015-09-12T10:30", epoch_ms(2015, 9, 12, 10, 30)),
    ("2015-09-12T10:30:15", epoch_ms(2015, 9, 12, 10, 30, 15)),
    ("2015-09-12T10:30:15.5", epoch_ms(2015, 9, 12, 10, 30, 15, 500)),
    ("2015-09-12T10:30:15.05", epoch_ms(2015, 9, 12, 10, 30, 15, 50)),
    ("2015-09-12T10:30:15.123", epoch_ms(2015, 9, 12, 10, 30, 15, 123)),
    ("2015-09-12T10:30:15.123999999", epoch_ms(2015, 9, 12, 10, 30, 15, 123)),  # truncated
    ("2015-09-12T10:30:15,123", epoch_ms(2015, 9, 12, 10, 30, 15, 123)),
    ("2015-09-12T10:30:15Z", epoch_ms(2015, 9, 12, 10, 30, 15)),
    ("2015-09-12T10Z", epoch_ms(2015, 9, 12, 10)),
    ("2015-09-12T10:30+05", epoch_ms(2015, 9, 12, 10, 30, offset_ms=5 * 3600000)),
    ("2015-09-12T10:30+05:30", epoch_ms(2015, 9, 12, 10, 30, offset_ms=19800000)),
    ("2015-09-12T10:30+0530", epoch_ms(2015, 9, 12, 10, 30, offset_ms=19800000)),
    ("2015-09-12T10:30-08:00", epoch_ms(2015, 9, 12, 10, 30, offset_ms=-8 * 3600000)),
    ("2015-09-12T10:30-00:00", epoch_ms(2015, 9, 12, 10, 30)),
    ("2015-09-12T10:30:15.5+23:59", epoch_ms(2015, 9, 12, 10, 30, 15, 500, offset_ms=86340000)),
    ("2015T10", epoch_ms(2015, 1, 1, 10)),
    ("2015-09T10:30", epoch_ms(2015, 9, 1, 10, 30)),
    ("2016-02-29", epoch_ms(2016, 2, 29)),
    ("2000-02-29", epoch_ms(2000, 2, 29)),
    ("2015-12-31T23:59:59.999Z", epoch_ms(2015, 12, 31, 23, 59, 59, 999)),
    ("0001-01-01", epoch_ms(1, 1, 1)),
    ("0000-01-01", -62167219200000),  # proleptic Gregorian year 0 (1 BC)
    ("-0001-12-31T23:59:59.999Z", -62167219200001),
    ("+2015-09-12", epoch_ms(2015, 9, 12)),
    ("10000-01-01T00:00:00.000Z", 253402300800000),
    ("292278993-12-31T23:59:59.999Z", 9223372017129599999),
]

STRICT_INVALID = [
    "2015-9-12", "2015-09-1", "15-09-12", "201-09-12", "2015-09-12T1", "2015-09-12T10:3",
    "2015-09-12T10:30:1", "2015-09-12T10:30:15.", "2015-09-12T10:30:15.1234567890",
    "2015-13-01", "2015-00-01", "2015-09-00", "2015-09-31", "2015-02-29", "1900-02-29",
    "2015-09-12T24:00", "2015-09-12T23:60", "2015-09-12T23:59:60",
    "2015-09-12T10+24:00", "2015-09-12T10+05:60", "2015-09-12T10+5", "2015-09-12T10+05:3",
    "2015-09-12T10+053", "2015-09-12T10+05:30:00", "2015-09-12T10 Z", "2015-09-12T10z",
    "2015-09-12Z", "2015-09-12+01:00", "2015-09-12T", "2015-09-12TZ", "2015-09-12t10",
    "2015-09-12 10:30:15", " 2015-09-12", "2015-09-12 ", "2015-09-12\n", "\t2015",
    "2015/09/12", "2015-09-12T10:30:15.5ZZ", "2015-W37-6", "2015-256", "2015-09-12T10.5",
    "2015-09-12T10:30.5", "+-2015", "--2015", "+", "-", "T10", "abc", "",
    "２０１５-09-12", "2015-09-12T10:30:15.5Z\x00",
    "292278995-01-01", "1000000000-01-01",
    # the canonical 24-character form (read at fixed positions) still checks every field
    "2015-02-29T10:30:15.500Z", "2015-13-01T10:30:15.500Z", "2015-09-12T24:30:15.500Z",
    "2015-09-12T10:60:15.500Z", "2015-09-12T10:30:60.500Z", "2015-09-12T10:30:15.5a0Z", "2O15-09-12T10:30:15.500Z",
]


@pytest.mark.parametrize(("text", "expected"), STRICT_VALID)
def test_strict_valid(text, expected):
    assert parse([text]) == [expected]
    # Druid's own (lenient) grammar accepts everything the strict one does, with the same value.
    assert parse([text], lenient=True) == [expected]


@pytest.mark.parametrize("text", STRICT_INVALID)
def test_strict_invalid(text):
    assert parse([text]) == [None]


# --- lenient grammar: Druid's parser, checked against Joda ------------------------------------

# (text, millis with sqlTimeZone UTC, millis with sqlTimeZone UTC-05:00), from Joda-Time.
LENIENT_ORACLE = [
    ("2015-09-12T00:46:58.771Z", 1442018818771, 1442018818771),
    ("2015-9-12", 1442016000000, 1442034000000),
    ("2015-09-12 00:46:58", 1442018818000, 1442036818000),
    ("2015-09-12 00:46:58.771+01:00", 1442015218771, 1442015218771),
    ("2015-09-12T", 1442016000000, 1442034000000),
    ("2015-09-12 ", 1442016000000, 1442034000000),
    ("2015-09-12TZ", 1442016000000, 1442016000000),
    ("2015-09-12T+05:30", 1441996200000, 1441996200000),
    ("2015-09-12t10:30z", 1442053800000, 1442053800000),
    ("2015-9-1T1:2:3.4", 1441069323400, 1441087323400),
    ("1-1-1", -62135596800000, -62135578800000),
    ("99-12-31", -59011545600000, -59011527600000),
    ("+2015-09-12", 1442016000000, 1442034000000),
    ("-0001-12-31T23:59:59.999Z", -62167219200001, -62167219200001),
    ("2015", 1420070400000, 1420088400000),
    ("2015-09", 1441065600000, 1441083600000),
    ("2015-W37", 1441584000000, 1441602000000),
    ("2015-w37-6", 1442016000000, 1442034000000),
    ("2015-W37-6T10", 1442052000000, 1442070000000),
    ("2015-W53-7", 1451779200000, 1451797200000),
    ("2020-W53-7", 1609632000000, 1609650000000),
    ("2016-W53", None, None),
    ("2015-W00", None, None),
    ("2015-W01-8", None, None),
    ("2015-256", 1442102400000, 1442120400000),
    ("2016-366", 1483142400000, 1483160400000),
    ("2015-366", None, None),
    ("2015-256T10:00+01:00", 1442134800000, 1442134800000),
    ("2015-1", 1420070400000, 1420088400000),
    ("2015-123", 1430611200000, 1430629200000),
    ("2015-09-12T10.5", 1442053800000, 1442071800000),
    ("2015-09-12T10,25", 1442052900000, 1442070900000),
    ("2015-09-12T10:30.5", 1442053830000, 1442071830000),
    ("2015-09-12T12.999999999", 1442062799999, 1442080799999),
    ("2015-09-12T12:59.999999999", 1442062799999, 1442080799999),
    ("2015-09-12T10:30:15.123456789", 1442053815123, 1442071815123),
    ("2015-09-12T10:30:15,5Z", 1442053815500, 1442053815500),
    ("2015-09-12T10:30:15.5+0530", 1442034015500, 1442034015500),
    ("2015-09-12T10:30:15.5+05:30:15.123", 1442034000377, 1442034000377),
    ("2015-09-12T10:30:15.5+053015", 1442034000500, 1442034000500),
    ("2015-09-12T10:30:15.5+053015123", 1442034000377, 1442034000377),
    ("2015-09-12T10:30:15.5-00:00", 1442053815500, 1442053815500),
    ("2015-09-12T10:30:15.5+05", 1442035815500, 1442035815500),
    ("2016-02-29T23:59:59.999Z", 1456790399999, 1456790399999),
    ("292278993-12-31T23:59:59.999Z", 9223372017129599999, 9223372017129599999),
    ("-292275055-05-16T16:47:04.192Z", -9223372036854775808, -9223372036854775808),
    ("2015-09-12T10:30:15.1234567891", None, None),
    ("2015-09-12T10:30:15.5+24:00", None, None),
    ("2015-09-12T10:30:15.5+23:60", None, None),
    ("2015-09-12T10:30:15.5+05:3", None, None),
    ("2015-09-12T10:30:15.5+05:", None, None),
    ("2015-09-12T10:30:15.5+5", None, None),
    ("2015-09-12T10:30:15.5 Z", None, None),
    ("2015-09-12T.5", None, None),
    ("2015-09-12T10:", None, None),
    ("2015-09-12T24:00", None, None),
    ("2015-09-12T23:59:60", None, None),
    ("2015-02-29", None, None),
    ("2015-13-01", None, None),
    ("2015-00-10", None, None),
    ("2015-09-00", None, None),
    ("2015-09-31", None, None),
    ("2015-09-123", None, None),
    ("2015-09-12Z", None, None),
    ("2015-09-12+01:00", None, None),
    ("2015-09-12  ", None, None),
    (" 2015-09-12", None, None),
    ("2015-09-12_10", None, None),
    ("2015/09/12", None, None),
    ("+-2015", None, None),
    ("2015-Wx", None, None),
    ("1234567890", None, None),
    ("abc", None, None),
    ("", None, None),
]


def test_lenient_matches_druid():
    texts = [t for t, _, _ in LENIENT_ORACLE]
    assert parse(texts, lenient=True) == [utc for _, utc, _ in LENIENT_ORACLE]
    assert parse(texts, -5 * 3600000, lenient=True) == [minus5 for _, _, minus5 in LENIENT_ORACLE]


def test_instants_outside_int64_are_null():
    # Joda silently wraps these around; one millisecond past either end of int64 gives null.
    texts = ["292278994-08-17T07:12:55.807Z", "292278994-08-17T07:12:55.808Z",
             "-292275055-05-16T16:47:04.191Z", "292278995-01-01", "-292275056-12-31"]
    for lenient in (False, True):
        assert parse(texts, lenient=lenient) == [INT64_MAX, None, None, None, None]


# --- zones ---------------------------------------------------------------------------------------

def test_default_offset_applies_only_without_zone():
    texts = ["2015-09-12T10:00", "2015-09-12T10:00Z", "2015-09-12T10:00+02:00", "2015-09-12"]
    base = epoch_ms(2015, 9, 12, 10)
    assert parse(texts, 3600000) == [base - 3600000, base, base - 7200000, epoch_ms(2015, 9, 12) - 3600000]
    assert parse(texts, -19800000) == [base + 19800000, base, base - 7200000, epoch_ms(2015, 9, 12) + 19800000]


@pytest.mark.parametrize("bad", [86_400_000, -86_400_000, 10**12])
def test_default_offset_range(bad):
    with pytest.raises(ValueError):
        parse_iso_millis(pa.array(["2015"]), bad)


def test_default_offset_must_be_integral():
    with pytest.raises(TypeError):
        parse_iso_millis(pa.array(["2015"]), 1.5)


# --- Arrow layouts ---------------------------------------------------------------------------

MIXED = ["2015-09-12", None, "bad", "2015-09-12T01", None, "1970-01-01T00:00:00.001Z", "", "2000-02-29",
         "2000-02-30", "2015-09-12T00:46:58.771+01:00", None, "9999-12-31T23:59:59.999Z"]
MIXED_EXPECTED = [1442016000000, None, None, 1442019600000, None, 1, None, epoch_ms(2000, 2, 29),
                  None, 1442015218771, None, 253402300799999]


def test_nulls_and_failures():
    out = parse_iso_millis(pa.array(MIXED, pa.string()))
    out.validate(full=True)
    assert out.to_pylist() == MIXED_EXPECTED
    assert out.null_count == MIXED_EXPECTED.count(None)


def test_all_null_and_empty():
    assert parse_iso_millis(pa.array([None, None], pa.string())).to_pylist() == [None, None]
    empty = parse_iso_millis(pa.array([], pa.string()))
    assert empty.type == pa.int64() and len(empty) == 0
    assert parse_iso_millis(pa.nulls(3)).to_pylist() == [None, None, None]


def test_no_nulls_gives_no_validity_bitmap():
    out = parse_iso_millis(pa.array(["2015", "2016"]))
    assert out.null_count == 0 and out.buffers()[0] is None


@pytest.mark.parametrize("typ", [pa.string(), pa.large_string()])
@pytest.mark.parametrize(("start", "length"), [(0, 12), (1, 11), (3, 5), (5, 0), (9, 3), (11, 1)])
def test_sliced_arrays(typ, start, length):
    arr = pa.array(MIXED, typ).slice(start, length)
    assert arr.offset == start
    out = parse_iso_millis(arr)
    out.validate(full=True)
    assert out.to_pylist() == MIXED_EXPECTED[start:start + length]


def test_large_string():
    out = parse_iso_millis(pa.array(MIXED, pa.large_string()), lenient=True)
    assert out.type == pa.int64()
    assert out.to_pylist() == MIXED_EXPECTED


def test_string_view_and_dictionary():
    if hasattr(pa, "string_view"):
        assert parse_iso_millis(pa.array(MIXED, pa.string_view())).to_pylist() == MIXED_EXPECTED
    dict_arr = pa.array(MIXED, pa.string()).dictionary_encode()
    assert parse_iso_millis(dict_arr).to_pylist() == MIXED_EXPECTED
    assert parse_iso_millis(dict_arr.slice(2, 5)).to_pylist() == MIXED_EXPECTED[2:7]


def test_chunked_array():
    chunked = pa.chunked_array(
        [pa.array(MIXED[:4]), pa.array(MIXED[4:], pa.string()).slice(1), pa.array([], pa.string())]
    )
    out = parse_iso_millis(chunked)
    assert isinstance(out, pa.ChunkedArray) and out.type == pa.int64()
    assert [len(c) for c in out.chunks] == [4, len(MIXED) - 5, 0]
    assert out.to_pylist() == MIXED_EXPECTED[:4] + MIXED_EXPECTED[5:]
    none = parse_iso_millis(pa.chunked_array([], pa.string()))
    assert isinstance(none, pa.ChunkedArray) and none.num_chunks == 0 and none.type == pa.int64()


def test_large_batch_matches_rowwise():
    texts = [MIXED[i % len(MIXED)] for i in range(10_007)]
    assert parse_iso_millis(pa.array(texts, pa.string())).to_pylist() == [
        MIXED_EXPECTED[i % len(MIXED)] for i in range(10_007)
    ]


@pytest.mark.parametrize("bad", [pa.array([1, 2]), pa.array([b"2015"], pa.binary())])
def test_rejects_non_string_arrays(bad):
    with pytest.raises(TypeError):
        parse_iso_millis(bad)


def test_rejects_non_arrow_input():
    with pytest.raises(TypeError):
        parse_iso_millis(["2015-09-12"])


def test_corrupt_offsets_raise_instead_of_reading_out_of_bounds():
    data = pa.py_buffer(b"2015-09-12")
    offsets = pa.py_buffer(pa.array([0, 10, 99], pa.int32()).buffers()[1].to_pybytes())
    # pa.Array.from_buffers validates, so hand the buffers to the kernel directly.
    with pytest.raises(ValueError, match="out of bounds"):
        _timeparse.parse_utf8(None, offsets, data, 0, 2, False, 0, False)
    with pytest.raises(ValueError, match="too small"):
        _timeparse.parse_utf8(None, offsets, data, 0, 5, False, 0, False)


# --- formatting -------------------------------------------------------------------------------

def test_format_examples():
    vals = [1442018818771, None, 0, -1, 253402300799999, -62167219200000]
    out = format_iso_millis(pa.array(vals, pa.int64()))
    out.validate(full=True)
    assert out.type == pa.string()
    assert out.to_pylist() == [
        "2015-09-12T00:46:58.771Z", None, "1970-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z",
        "9999-12-31T23:59:59.999Z", "0000-01-01T00:00:00.000Z",
    ]
    assert out.null_count == 1


def test_format_years_outside_0000_9999_as_joda():
    # Strings from Joda's ISODateTimeFormat.dateTime() in UTC.
    vals = [-62167219200001, 253402300800000, INT64_MIN, INT64_MAX]
    assert format_iso_millis(pa.array(vals, pa.int64())).to_pylist() == [
        "-0001-12-31T23:59:59.999Z", "10000-01-01T00:00:00.000Z",
        "-292275055-05-16T16:47:04.192Z", "292278994-08-17T07:12:55.807Z",
    ]


def test_format_timestamp_sliced_chunked():
    ts = pa.array([0, None, 1442018818771, 86_399_999], pa.timestamp("ms", tz="UTC"))
    expected = ["1970-01-01T00:00:00.000Z", None, "2015-09-12T00:46:58.771Z", "1970-01-01T23:59:59.999Z"]
    assert format_iso_millis(ts).to_pylist() == expected
    assert format_iso_millis(ts.slice(1, 3)).to_pylist() == expected[1:]
    assert format_iso_millis(ts.slice(3)).to_pylist() == expected[3:]
    out = format_iso_millis(pa.chunked_array([ts, ts.slice(2)]))
    assert isinstance(out, pa.ChunkedArray) and out.type == pa.string()
    assert out.to_pylist() == expected + expected[2:]
    assert format_iso_millis(pa.array([], pa.int64())).to_pylist() == []
    assert format_iso_millis(pa.array([None, None], pa.int64())).to_pylist() == [None, None]


@pytest.mark.parametrize("bad", [pa.array([1], pa.int32()), pa.array([1], pa.timestamp("s")), pa.array(["x"])])
def test_format_rejects_other_types(bad):
    with pytest.raises(TypeError):
        format_iso_millis(bad)


# --- properties ---------------------------------------------------------------------------------

@st.composite
def iso_strings(draw):
    """(text, expected millis given default_offset_ms) for a random valid strict-grammar string."""
    dt = draw(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
    shape = draw(st.sampled_from(["Y", "YM", "YMD", "H", "HM", "HMS", "HMSF"]))
    y, mo, d, h, mi, s, ms = dt.year, 1, 1, 0, 0, 0, 0
    text = f"{y:04d}"
    if shape != "Y":
        mo = dt.month
        text += f"-{mo:02d}"
    if shape not in ("Y", "YM"):
        d = dt.day
        text += f"-{d:02d}"
    has_time = shape in ("H", "HM", "HMS", "HMSF")
    if has_time:
        h = dt.hour
        text += f"T{h:02d}"
        if shape != "H":
            mi = dt.minute
            text += f":{mi:02d}"
        if shape in ("HMS", "HMSF"):
            s = dt.second
            text += f":{s:02d}"
        if shape == "HMSF":
            digits = draw(st.text(alphabet="0123456789", min_size=1, max_size=9))
            ms = int(digits[:3].ljust(3, "0"))
            text += draw(st.sampled_from(".,")) + digits
    offset = None
    if has_time and draw(st.booleans()):
        if draw(st.booleans()):
            offset = 0
            text += "Z"
        else:
            sign = draw(st.sampled_from([1, -1]))
            oh, om = draw(st.integers(0, 23)), draw(st.integers(0, 59))
            style = draw(st.sampled_from(["HH", "HH:mm", "HHmm"]))
            if style == "HH":
                om = 0
            text += ("+" if sign > 0 else "-") + f"{oh:02d}" + {"HH": "", "HH:mm": f":{om:02d}", "HHmm": f"{om:02d}"}[style]
            offset = sign * (oh * 3600000 + om * 60000)
    return text, (y, mo, d, h, mi, s, ms), offset


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=st.lists(iso_strings(), min_size=1, max_size=40),
       default_offset=st.integers(-86_399_999, 86_399_999))
def test_property_matches_python_datetime(cases, default_offset):
    texts = [t for t, _, _ in cases]
    expected = [epoch_ms(*fields, offset_ms=default_offset if off is None else off) for _, fields, off in cases]
    assert parse(texts, default_offset) == expected
    assert parse(texts, default_offset, lenient=True) == expected
    # Druid also takes SQL's ' ' between date and time.
    assert parse([t.replace("T", " ") for t in texts], default_offset, lenient=True) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.integers(INT64_MIN, INT64_MAX), st.integers(-(10**13), 10**14), st.none()),
                max_size=50))
def test_property_format_parse_round_trip(values):
    formatted = format_iso_millis(pa.array(values, pa.int64()))
    formatted.validate(full=True)
    assert parse_iso_millis(formatted).to_pylist() == values
    assert parse_iso_millis(formatted, lenient=True).to_pylist() == values


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-62135596800000, 253402300799999), min_size=1, max_size=50))
def test_property_format_matches_python_datetime(values):
    expected = [(EPOCH + v * MS).isoformat(timespec="milliseconds").replace("+00:00", "Z") for v in values]
    assert format_iso_millis(pa.array(values, pa.int64())).to_pylist() == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="0123456789-+:.,TtZzW ", max_size=24), min_size=1, max_size=40))
def test_property_strict_is_a_subset_of_lenient(texts):
    strict = parse(texts)
    lenient = parse(texts, lenient=True)
    for s, l_ in zip(strict, lenient):
        if s is not None:
            assert s == l_
