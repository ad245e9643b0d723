"""Joda-Time semantics for Druid's time functions, vectorized over int64 epoch millis.

Druid evaluates ``timestamp_floor``, ``timestamp_ceil``, ``timestamp_shift``,
``timestamp_extract``, ``timestamp_format`` and ``timestamp_parse`` with Joda-Time in a
time zone. This module reproduces those rules with numpy over whole arrays (no Python call
per row): civil-date arithmetic on day numbers, and pyarrow's time-zone database for
UTC <-> local wall-clock conversion. Every function takes and returns ``np.int64``
arrays of *valid* values; callers keep the null masks.

Time zones are Joda ids: ``UTC``, IANA names (``America/Los_Angeles``) or fixed offsets
(``-08:00``), see :func:`zone_id`.
"""
from __future__ import annotations

import datetime as _dt
import re
import zoneinfo
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Period", "zone_id", "to_local", "from_local", "floor", "ceil", "shift", "extract",
           "JodaFormat", "JodaParser", "civil_from_days", "days_from_civil", "EXTRACT_UNITS"]

MS_SECOND = 1000
MS_MINUTE = 60_000
MS_HOUR = 3_600_000
MS_DAY = 86_400_000
MS_WEEK = 7 * MS_DAY

# --- time zones ---------------------------------------------------------------------------------

_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


def zone_id(text: str) -> str:
    """The Joda id of a time zone given as Druid accepts it, or ValueError.

    ``UTC`` (any case, also ``Z``/``GMT``/``Etc/UTC``) gives ``UTC``; offsets give
    ``+HH:mm`` (``+00:00`` gives ``UTC``); IANA names are kept as they are.
    """
    t = str(text).strip()
    if t.upper() in ("UTC", "Z", "GMT", "ETC/UTC", "ETC/GMT", "UT", "ZULU"):
        return "UTC"
    m = _OFFSET.match(t)
    if m:
        sign, hh, mm = m.group(1), int(m.group(2)), int(m.group(3) or 0)
        if hh > 23 or mm > 59:
            raise ValueError(f"The datetime zone id '{text}' is not recognised")
        if hh == 0 and mm == 0:
            return "UTC"
        return f"{sign}{hh:02d}:{mm:02d}"
    if not re.match(r"^[A-Za-z][A-Za-z0-9_+\-/]*$", t):
        raise ValueError(f"The datetime zone id '{text}' is not recognised")
    try:
        zoneinfo.ZoneInfo(t)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"The datetime zone id '{text}' is not recognised") from None
    return t


def _fixed_offset(zone: str) -> int | None:
    if zone == "UTC":
        return 0
    if zone[0] in "+-":
        sign = -1 if zone[0] == "-" else 1
        return sign * (int(zone[1:3]) * MS_HOUR + int(zone[4:6]) * MS_MINUTE)
    return None


def offsets(millis: np.ndarray, zone: str) -> np.ndarray:
    """The zone's UTC offset (ms) at each UTC instant."""
    fixed = _fixed_offset(zone)
    if fixed is not None:
        return np.full(millis.shape, fixed, dtype=np.int64)
    if millis.size == 0:
        return np.zeros(0, dtype=np.int64)
    ts = pa.array(millis, pa.int64()).cast(pa.timestamp("ms", tz=zone))
    local = pc.local_timestamp(ts).cast(pa.int64()).to_numpy()
    return local - millis


def to_local(millis: np.ndarray, zone: str) -> np.ndarray:
    """UTC instants to the zone's wall-clock time, as millis of a UTC calendar."""
    return millis + offsets(millis, zone)


def from_local(local: np.ndarray, zone: str) -> np.ndarray:
    """Wall-clock times in the zone to UTC instants (Joda: the earlier instant in an
    overlap, the first instant after a gap)."""
    fixed = _fixed_offset(zone)
    if fixed is not None:
        return local - fixed
    if local.size == 0:
        return np.zeros(0, dtype=np.int64)
    ts = pa.array(local, pa.int64()).cast(pa.timestamp("ms"))
    utc = pc.assume_timezone(ts, timezone=zone, ambiguous="earliest", nonexistent="latest")
    return utc.cast(pa.int64()).to_numpy()


# --- civil calendar (proleptic Gregorian, like Joda's ISOChronology after 1582) -----------------


def days_from_civil(y, m, d) -> np.ndarray:
    y = np.asarray(y, dtype=np.int64) - (np.asarray(m) <= 2)
    m = np.asarray(m, dtype=np.int64)
    d = np.asarray(d, dtype=np.int64)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.asarray(days, dtype=np.int64) + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    y = yoe + era * 400 + (m <= 2)
    return y, m, d


def _is_leap(y):
    y = np.asarray(y)
    return ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)


def days_in_month(y, m) -> np.ndarray:
    base = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
    return base[np.asarray(m, dtype=np.int64)] + ((np.asarray(m) == 2) & _is_leap(y))


def add_months_local(local: np.ndarray, months) -> np.ndarray:
    """Joda's monthOfYear add: keep the time of day, clamp the day to the month's length."""
    days = np.floor_divide(local, MS_DAY)
    tod = local - days * MS_DAY
    y, m, d = civil_from_days(days)
    idx = y * 12 + (m - 1) + np.asarray(months, dtype=np.int64)
    ny = np.floor_divide(idx, 12)
    nm = idx - ny * 12 + 1
    nd = np.minimum(d, days_in_month(ny, nm))
    return days_from_civil(ny, nm, nd) * MS_DAY + tod


def _month_index(local: np.ndarray) -> np.ndarray:
    y, m, _ = civil_from_days(np.floor_divide(local, MS_DAY))
    return y * 12 + (m - 1)


# --- periods ------------------------------------------------------------------------------------

_PERIOD = re.compile(
    r"^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)W)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+)(?:[.,](\d{1,3}))?S)?)?$")
_FIELDS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds", "millis")
_PRECISE = {"weeks": MS_WEEK, "days": MS_DAY, "hours": MS_HOUR, "minutes": MS_MINUTE,
            "seconds": MS_SECOND, "millis": 1}


@dataclass(frozen=True)
class Period:
    """An ISO-8601 period as Joda's standard PeriodType holds it."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    millis: int = 0

    @classmethod
    def parse(cls, text: str) -> "Period":
        m = _PERIOD.match(str(text).strip().upper())
        if not m or text.strip().upper() in ("P", "PT") or str(text).strip().upper().endswith("T"):
            raise ValueError(f"Invalid format: \"{text}\"")
        vals = [int(g) if g else 0 for g in m.groups()[:7]]
        frac = m.group(8)
        millis = int((frac + "00")[:3]) if frac else 0
        if vals[6] < 0:
            millis = -millis
        return cls(*vals, millis)

    def fields(self) -> list[tuple[str, int]]:
        return [(f, getattr(self, f)) for f in _FIELDS if getattr(self, f)]

    @property
    def is_zero(self) -> bool:
        return not self.fields()

    def standard_millis(self) -> int | None:
        """The duration with 24h days and 7d weeks, or None with years/months."""
        if self.years or self.months:
            return None
        return sum(getattr(self, f) * _PRECISE[f] for f in _PRECISE)

    def __str__(self) -> str:  # Joda's Period.toString()
        out = "P"
        for f, suffix in (("years", "Y"), ("months", "M"), ("weeks", "W"), ("days", "D")):
            if getattr(self, f):
                out += f"{getattr(self, f)}{suffix}"
        time = ""
        for f, suffix in (("hours", "H"), ("minutes", "M")):
            if getattr(self, f):
                time += f"{getattr(self, f)}{suffix}"
        if self.seconds or self.millis:
            total = self.seconds * 1000 + self.millis
            sign = "-" if total < 0 else ""
            s, ms = divmod(abs(total), 1000)
            time += f"{sign}{s}" + (f".{ms:03d}".rstrip("0") if ms else "") + "S"
        if time:
            out += "T" + time
        return out if out != "P" else "PT0S"


def _local_epoch(zone: str) -> int:
    """PeriodGranularity's default origin: 1970-01-01T00:00 in the zone."""
    return int(from_local(np.zeros(1, dtype=np.int64), zone)[0])


def floor(millis: np.ndarray, period: Period, origin: int | None, zone: str) -> np.ndarray:
    """Druid's PeriodGranularity.bucketStart."""
    millis = np.asarray(millis, dtype=np.int64)
    fields = period.fields()
    if not fields:
        raise ValueError("zero period is not acceptable in PeriodGranularity!")
    if len(fields) > 1 or any(v < 0 for _, v in fields):
        step = period.standard_millis()
        if step is None or step <= 0:
            raise ValueError(f"Unsupported period [{period}]")
        o = _local_epoch(zone) if origin is None else origin
        return np.floor_divide(millis - o, step) * step + o
    unit, count = fields[0]
    has_origin = origin is not None
    if unit in ("years", "months"):
        months = count * 12 if unit == "years" else count
        local = to_local(millis, zone)
        o_local = 0 if not has_origin else int(to_local(np.array([origin], dtype=np.int64), zone)[0])
        o_arr = np.full(local.shape, o_local, dtype=np.int64)
        diff = _month_index(local) - _month_index(o_arr)
        cand = add_months_local(o_arr, np.floor_divide(diff, months) * months)
        over = cand > local
        if over.any():
            cand = np.where(over, add_months_local(cand, -months), cand)
        return from_local(cand, zone)
    if unit in ("weeks", "days"):
        local = to_local(millis, zone)
        if unit == "weeks" and count == 1 and not has_origin:
            days = np.floor_divide(local, MS_DAY)
            dow = (days + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
            return from_local((days - dow) * MS_DAY, zone)
        step = count * _PRECISE[unit]
        o_local = 0 if not has_origin else int(to_local(np.array([origin], dtype=np.int64), zone)[0])
        return from_local(np.floor_divide(local - o_local, step) * step + o_local, zone)
    step = count * _PRECISE[unit]
    if count == 1 and not has_origin:
        off = offsets(millis, zone)
        return np.floor_divide(millis + off, step) * step - off
    o = _local_epoch(zone) if origin is None else origin
    return np.floor_divide(millis - o, step) * step + o


def ceil(millis: np.ndarray, period: Period, origin: int | None, zone: str) -> np.ndarray:
    """Druid's timestamp_ceil: the bucket start, or the next one when not on a boundary."""
    millis = np.asarray(millis, dtype=np.int64)
    start = floor(millis, period, origin, zone)
    nxt = shift(start, period, 1, zone)
    return np.where(start == millis, start, nxt)


def shift(millis: np.ndarray, period: Period, step, zone: str) -> np.ndarray:
    """Joda's chronology.add(period, instant, step): field by field, years first. Years,
    months, weeks and days move the wall clock; smaller fields are exact durations."""
    out = np.asarray(millis, dtype=np.int64)
    step = np.asarray(step, dtype=np.int64)
    for f, v in period.fields():
        amount = step * v
        if f in ("years", "months"):
            local = to_local(out, zone)
            out = from_local(add_months_local(local, amount * (12 if f == "years" else 1)), zone)
        elif f in ("weeks", "days"):
            local = to_local(out, zone)
            out = from_local(local + amount * _PRECISE[f], zone)
        else:
            out = out + amount * _PRECISE[f]
    return out


# --- fields -------------------------------------------------------------------------------------

EXTRACT_UNITS = ("EPOCH", "MICROSECOND", "MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY", "DOW", "ISODOW",
                 "DOY", "WEEK", "MONTH", "QUARTER", "YEAR", "ISOYEAR", "DECADE", "CENTURY", "MILLENNIUM")


def _iso_week(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dow = (days + 3) % 7 + 1  # 1 = Monday
    thursday = days - dow + 4
    wy, _, _ = civil_from_days(thursday)
    week = (thursday - days_from_civil(wy, 1, 1)) // 7 + 1
    return wy, week


def _java_div(a: np.ndarray, b: int) -> np.ndarray:
    q = np.abs(a) // b
    return np.where(a < 0, -q, q)


def extract(millis: np.ndarray, unit: str, zone: str) -> np.ndarray:
    """Druid's timestamp_extract (TimestampExtractExprMacro) for one unit."""
    millis = np.asarray(millis, dtype=np.int64)
    if unit == "EPOCH":
        return _java_div(millis, 1000)
    if unit == "MICROSECOND":
        return _java_div(_java_div(millis, 1000), 1000)
    local = to_local(millis, zone)
    days = np.floor_divide(local, MS_DAY)
    tod = local - days * MS_DAY
    if unit == "MILLISECOND":
        return tod % 1000
    if unit == "SECOND":
        return (tod // 1000) % 60
    if unit == "MINUTE":
        return (tod // MS_MINUTE) % 60
    if unit == "HOUR":
        return tod // MS_HOUR
    if unit in ("DOW", "ISODOW"):
        return (days + 3) % 7 + 1
    if unit in ("WEEK", "ISOYEAR"):
        wy, week = _iso_week(days)
        return week if unit == "WEEK" else wy
    y, m, d = civil_from_days(days)
    if unit == "DAY":
        return d
    if unit == "DOY":
        return days - days_from_civil(y, 1, 1) + 1
    if unit == "MONTH":
        return m
    if unit == "QUARTER":
        return (m - 1) // 3 + 1
    if unit == "YEAR":
        return y
    if unit == "DECADE":
        return _java_div(y, 10)
    if unit == "CENTURY":
        return np.ceil(y / 100).astype(np.int64)
    if unit == "MILLENNIUM":
        return np.ceil(y / 1000).astype(np.int64)
    raise ValueError(f"unhandled unit[{unit}]")


# --- Joda DateTimeFormat patterns ---------------------------------------------------------------

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_NUMERIC = set("CYyxwedDMHkKhmsS")


def tokenize(pattern: str) -> list[tuple[str, str]]:
    """Joda's DateTimeFormat.parsePatternTo tokens: (letter, run) or ("'", literal)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c.isascii() and c.isalpha():
            j = i
            while j < n and pattern[j] == c:
                j += 1
            if c not in "GCYyxwedDMEaKhHkmsSzZ":
                raise ValueError(f"Illegal pattern component: {pattern[i:j]}")
            out.append((c, pattern[i:j]))
            i = j
        elif c == "'":
            j = i + 1
            text = []
            while j < n:
                if pattern[j] == "'":
                    if j + 1 < n and pattern[j + 1] == "'":
                        text.append("'")
                        j += 2
                        continue
                    break
                text.append(pattern[j])
                j += 1
            else:
                raise ValueError(f"Illegal pattern component: {pattern[i:]}")
            literal = "".join(text) if text or j > i + 1 else ""
            out.append(("'", literal if j > i + 1 else "'"))
            i = j + 1
        else:
            out.append(("'", c))
            i += 1
    merged: list[tuple[str, str]] = []
    for t in out:
        if t[0] == "'" and merged and merged[-1][0] == "'":
            merged[-1] = ("'", merged[-1][1] + t[1])
        else:
            merged.append(t)
    return merged


def _num_str(values: np.ndarray, width: int) -> pa.Array:
    """Integers as decimal text, zero-padded to ``width`` digits (sign first)."""
    arr = pa.array(np.abs(values), pa.int64()).cast(pa.string())
    if width > 1:
        arr = pc.utf8_lpad(arr, width=width, padding="0")
    neg = values < 0
    if neg.any():
        arr = pc.if_else(pa.array(neg), pc.binary_join_element_wise("-", arr, ""), arr)
    return arr


class JodaFormat:
    """A compiled ``DateTimeFormat.forPattern(pattern).withZone(zone)`` printer."""

    def __init__(self, pattern: str, zone: str):
        self.pattern = pattern
        self.zone = zone
        self.tokens = tokenize(pattern)

    def format(self, millis: np.ndarray) -> pa.Array:
        millis = np.asarray(millis, dtype=np.int64)
        n = millis.size
        off = offsets(millis, self.zone)
        local = millis + off
        days = np.floor_divide(local, MS_DAY)
        tod = local - days * MS_DAY
        cache: dict = {}

        def ymd():
            if "ymd" not in cache:
                cache["ymd"] = civil_from_days(days)
            return cache["ymd"]

        parts = []
        for kind, run in self.tokens:
            k = len(run)
            if kind == "'":
                parts.append(pa.scalar(run, pa.string()))
                continue
            if kind in "yYx":
                if kind == "x":
                    year, _ = _iso_week(days)
                else:
                    year = ymd()[0]
                    if kind == "Y":
                        year = np.where(year <= 0, 1 - year, year)
                parts.append(_num_str(year % 100, 2) if k == 2 else _num_str(year, k))
            elif kind == "C":
                parts.append(_num_str(np.floor_divide(ymd()[0], 100), k))
            elif kind == "G":
                parts.append(pc.if_else(pa.array(ymd()[0] > 0), "AD", "BC") if n else pa.array([], pa.string()))
            elif kind == "M":
                m = ymd()[1]
                if k >= 3:
                    names = _MONTHS if k >= 4 else [s[:3] for s in _MONTHS]
                    parts.append(pc.take(pa.array(names), pa.array(m - 1)))
                else:
                    parts.append(_num_str(m, k))
            elif kind == "d":
                parts.append(_num_str(ymd()[2], k))
            elif kind == "D":
                y = ymd()[0]
                parts.append(_num_str(days - days_from_civil(y, 1, 1) + 1, k))
            elif kind == "w":
                parts.append(_num_str(_iso_week(days)[1], k))
            elif kind == "e":
                parts.append(_num_str((days + 3) % 7 + 1, k))
            elif kind == "E":
                names = _DAYS if k >= 4 else [s[:3] for s in _DAYS]
                parts.append(pc.take(pa.array(names), pa.array((days + 3) % 7)))
            elif kind == "a":
                parts.append(pc.take(pa.array(["AM", "PM"]), pa.array(tod // MS_HOUR >= 12)
                                     .cast(pa.int8())))
            elif kind in "HkKh":
                h = tod // MS_HOUR
                if kind == "k":
                    h = np.where(h == 0, 24, h)
                elif kind == "K":
                    h = h % 12
                elif kind == "h":
                    h = np.where(h % 12 == 0, 12, h % 12)
                parts.append(_num_str(h, k))
            elif kind == "m":
                parts.append(_num_str((tod // MS_MINUTE) % 60, k))
            elif kind == "s":
                parts.append(_num_str((tod // 1000) % 60, k))
            elif kind == "S":
                parts.append(_fraction(tod % 1000, k))
            elif kind == "Z":
                if k >= 3:
                    parts.append(pa.scalar(self.zone, pa.string()))
                else:
                    sign = pc.if_else(pa.array(off < 0), "-", "+") if n else pa.array([], pa.string())
                    hh = _num_str(np.abs(off) // MS_HOUR, 2)
                    mm = _num_str((np.abs(off) // MS_MINUTE) % 60, 2)
                    parts.append(pc.binary_join_element_wise(pc.binary_join_element_wise(sign, hh, ""), mm,
                                                             ":" if k == 2 else ""))
            elif kind == "z":
                if n:
                    ts = pa.array(millis, pa.int64()).cast(pa.timestamp("ms", tz=self.zone if self.zone[0] not in "+-"
                                                                         else self.zone))
                    parts.append(pc.strftime(ts, format="%Z"))
                else:
                    parts.append(pa.array([], pa.string()))
        if not parts:
            return pa.array([""] * n, pa.string())
        if all(isinstance(p, pa.Scalar) for p in parts):
            return pa.array(["".join(p.as_py() for p in parts)] * n, pa.string())
        return pc.binary_join_element_wise(*parts, "")


def _fraction(ms: np.ndarray, k: int) -> pa.Array:
    digits = _num_str(ms, 3)
    if k > 3:
        return pc.utf8_rpad(digits, width=k, padding="0")
    # Joda prints up to the field's precision and drops trailing zeros down to k digits
    out = digits
    for width in (2, 1):
        if width < k:
            break
        drop = pc.ends_with(out, "0")
        out = pc.if_else(pc.and_(drop, pc.greater(pc.utf8_length(out), width)),
                         pc.utf8_slice_codeunits(out, 0, -1), out)
    return out


def _two_digit_pivot() -> int:
    return _dt.date.today().year - 30


class JodaParser:
    """A compiled ``DateTimeFormat.forPattern(pattern).withZone(zone)`` parser: the whole
    string must match; anything that does not parse (or names a day that does not exist)
    gives null."""

    def __init__(self, pattern: str, zone: str):
        self.pattern = pattern
        self.zone = zone
        tokens = tokenize(pattern)
        regex = []
        self.groups: list[tuple[str, str, str]] = []  # (group name, letter, run)
        for i, (kind, run) in enumerate(tokens):
            k = len(run)
            nxt_numeric = i + 1 < len(tokens) and tokens[i + 1][0] in _NUMERIC and \
                not (tokens[i + 1][0] == "M" and len(tokens[i + 1][1]) >= 3)
            name = f"f{i}"
            if kind == "'":
                regex.append(re.escape(run))
                continue
            if kind in "yYx":
                if k == 2:
                    body = r"[+-]?\d{1,2}" if nxt_numeric else r"[+-]?\d+"
                else:
                    body = r"[+-]?\d{1,%d}" % (k if nxt_numeric else 9)
            elif kind == "M" and k >= 3:
                alts = "|".join(f"{m[:3]}(?:{m[3:]})?" if len(m) > 3 else m for m in _MONTHS)
                body = f"(?i:{alts})"
            elif kind == "E":
                alts = "|".join(f"{d[:3]}(?:{d[3:]})?" for d in _DAYS)
                body = f"(?i:{alts})"
            elif kind == "a":
                body = "(?i:am|pm)"
            elif kind == "S":
                body = r"\d{1,%d}" % (k if nxt_numeric else 9)
            elif kind == "D":
                body = r"\d{1,%d}" % max(k, 3)
            elif kind in "MdHhKkmswe":
                body = r"\d{1,%d}" % max(k, 1 if kind == "e" else 2)
            elif kind == "C":
                body = r"\d{1,%d}" % max(k, 2)
            elif kind == "Z" and k < 3:
                body = r"Z|[+-]\d{2}(?::?\d{2})?"
            elif kind == "G":
                body = "(?i:AD|BC|CE|BCE)"
            else:
                raise ValueError(f"Parsing is not supported for pattern component [{run}]")
            regex.append(f"(?P<{name}>{body})")
            self.groups.append((name, kind, run))
        self.regex = "^" + "".join(regex) + "$"
        # validate the regex once
        pc.extract_regex(pa.array(["x"], pa.string()), pattern=self.regex) if self.groups else None

    def parse(self, values: pa.Array) -> pa.Array:
        """Strings to epoch millis (int64, nulls where the text does not parse)."""
        n = len(values)
        if not self.groups:
            ok = pc.fill_null(pc.match_substring_regex(values, self.regex), False).to_numpy(zero_copy_only=False)
            local = np.zeros(n, dtype=np.int64)
            return _masked(from_local(local, self.zone), ok)
        st = pc.extract_regex(values, pattern=self.regex)
        matched = pc.fill_null(pc.is_valid(st), False).to_numpy(zero_copy_only=False)
        ok = matched.copy()
        field = {name: pc.struct_field(st, name) for name, _, _ in self.groups}

        def num(name):
            return pc.cast(pc.if_else(pa.array(matched), field[name], "0"), pa.int64()).to_numpy(
                zero_copy_only=False)

        year = np.full(n, 1970, dtype=np.int64)
        month = np.ones(n, dtype=np.int64)
        day = np.ones(n, dtype=np.int64)
        hour = np.zeros(n, dtype=np.int64)
        minute = np.zeros(n, dtype=np.int64)
        second = np.zeros(n, dtype=np.int64)
        millis = np.zeros(n, dtype=np.int64)
        doy = week = dow = weekyear = None
        half = None  # 0 AM / 1 PM
        hour12 = None
        offset = None
        bc = None
        for name, kind, run in self.groups:
            k = len(run)
            if kind in "yY":
                v = num(name)
                if k == 2:
                    text = pc.if_else(pa.array(matched), field[name], "00")
                    two = (pc.utf8_length(text).to_numpy(zero_copy_only=False) == 2) & \
                        ~pc.starts_with(text, "+").to_numpy(zero_copy_only=False) & \
                        ~pc.starts_with(text, "-").to_numpy(zero_copy_only=False)
                    pivot = _two_digit_pivot()
                    base = pivot - pivot % 100
                    full = base + v
                    full = np.where(full < pivot, full + 100, full)
                    v = np.where(two, full, v)
                year = v
                if kind == "Y":
                    bc_year = v
            elif kind == "x":
                weekyear = num(name)
            elif kind == "M":
                if k >= 3:
                    low = pc.utf8_slice_codeunits(pc.utf8_lower(pc.if_else(pa.array(matched), field[name], "jan")),
                                                  0, 3)
                    month = pc.index_in(low, value_set=pa.array([m[:3].lower() for m in _MONTHS])).to_numpy(
                        zero_copy_only=False).astype(np.int64) + 1
                else:
                    month = num(name)
            elif kind == "d":
                day = num(name)
            elif kind == "D":
                doy = num(name)
            elif kind == "w":
                week = num(name)
            elif kind == "e":
                dow = num(name)
            elif kind == "H":
                hour = num(name)
                ok &= hour <= 23
            elif kind == "k":
                v = num(name)
                ok &= (v >= 1) & (v <= 24)
                hour = v % 24
            elif kind == "K":
                hour12 = num(name)
                ok &= hour12 <= 11
            elif kind == "h":
                v = num(name)
                ok &= (v >= 1) & (v <= 12)
                hour12 = v % 12
            elif kind == "a":
                half = pc.equal(pc.utf8_lower(pc.if_else(pa.array(matched), field[name], "am")), "pm").to_numpy(
                    zero_copy_only=False).astype(np.int64)
            elif kind == "m":
                minute = num(name)
                ok &= minute <= 59
            elif kind == "s":
                second = num(name)
                ok &= second <= 59
            elif kind == "S":
                text = pc.utf8_rpad(pc.utf8_slice_codeunits(pc.if_else(pa.array(matched), field[name], "0"), 0, 3),
                                    width=3, padding="0")
                millis = pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
            elif kind == "Z":
                text = pc.if_else(pa.array(matched), field[name], "Z")
                is_z = pc.equal(text, "Z").to_numpy(zero_copy_only=False)
                digits = pc.replace_substring(pc.if_else(pa.array(is_z), "+0000", text), ":", "")
                digits = pc.utf8_rpad(digits, width=5, padding="0")
                sign = np.where(pc.starts_with(digits, "-").to_numpy(zero_copy_only=False), -1, 1)
                hh = pc.cast(pc.utf8_slice_codeunits(digits, 1, 3), pa.int64()).to_numpy(zero_copy_only=False)
                mm = pc.cast(pc.utf8_slice_codeunits(digits, 3, 5), pa.int64()).to_numpy(zero_copy_only=False)
                ok &= (hh <= 23) & (mm <= 59)
                offset = sign * (hh * MS_HOUR + mm * MS_MINUTE)
            elif kind == "G":
                g = pc.utf8_upper(pc.if_else(pa.array(matched), field[name], "AD"))
                bc = pc.is_in(g, value_set=pa.array(["BC", "BCE"])).to_numpy(zero_copy_only=False)
        if hour12 is not None:
            hour = hour12 + (12 * half if half is not None else 0)
        elif half is not None:
            hour = hour % 12 + 12 * half
        if bc is not None:
            year = np.where(bc, 1 - year, year)
        ok &= (month >= 1) & (month <= 12)
        safe_month = np.clip(month, 1, 12)
        if weekyear is not None or week is not None:
            wy = weekyear if weekyear is not None else year
            wk = week if week is not None else np.ones(n, dtype=np.int64)
            wd = dow if dow is not None else np.ones(n, dtype=np.int64)
            jan4 = days_from_civil(wy, 1, 4)
            monday = jan4 - (jan4 + 3) % 7
            days = monday + (wk - 1) * 7 + (wd - 1)
        elif doy is not None:
            ok &= (doy >= 1) & (doy <= 365 + _is_leap(year))
            days = days_from_civil(year, 1, 1) + doy - 1
        else:
            ok &= (day >= 1) & (day <= days_in_month(year, safe_month))
            days = days_from_civil(year, safe_month, day)
        local = days * MS_DAY + hour * MS_HOUR + minute * MS_MINUTE + second * 1000 + millis
        utc = from_local(local, self.zone) if offset is None else local - offset
        return _masked(utc, ok)


def _masked(values: np.ndarray, ok: np.ndarray) -> pa.Array:
    return pa.array(values, pa.int64(), mask=~ok)
