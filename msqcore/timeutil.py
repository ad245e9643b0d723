"""Time chunks, granularities and Druid's interval text, for Python scalars and numpy arrays."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from msqcore.errors import InvalidInput
from msqcore.kernels import jodatime

# Druid's eternity: the interval text it prints for ALL / OVERWRITE ALL.
ETERNITY_START = -9223372036854775808 // 2  # JodaUtils.MIN_INSTANT
ETERNITY_END = 9223372036854775807 // 2  # JodaUtils.MAX_INSTANT
ETERNITY = "-146136543-09-08T08:23:32.096Z/146140482-04-24T15:36:27.903Z"

_MS = {"S": 1000, "M": 60_000, "H": 3_600_000, "D": 86_400_000, "W": 7 * 86_400_000}


def iso(millis: int) -> str:
    """Epoch millis → ``2015-09-12T00:46:58.771Z`` (Joda's DateTime.toString in UTC, any year)."""
    from msqcore.kernels.timeparse import format_iso_millis
    return format_iso_millis(pa.array([millis], pa.int64()))[0].as_py()


def interval_text(start: int, end: int) -> str:
    return f"{iso(start)}/{iso(end)}"


def now_millis() -> int:
    return int(_dt.datetime.now(_dt.timezone.utc).timestamp() * 1000)


def now_iso() -> str:
    return iso(now_millis())


@dataclass(frozen=True)
class Granularity:
    """A standard segment granularity: a name (``DAY``), its ISO period, or ALL."""

    name: str
    period: str | None  # None for ALL

    @property
    def is_all(self) -> bool:
        return self.period is None

    def to_json(self):
        """As Druid serializes it in ``destination.segmentGranularity``."""
        return {"type": "all"} if self.is_all else self.name

    def floor(self, millis: np.ndarray) -> np.ndarray:
        """Vectorized time-chunk start for int64 epoch millis (UTC)."""
        millis = np.asarray(millis, dtype=np.int64)
        if self.is_all:
            return np.full(millis.shape, ETERNITY_START, dtype=np.int64)
        unit = self.period[-1]
        count = int(self.period.strip("PT").rstrip("SMHDWY")) if self.period not in ("P1M", "P3M", "P1Y") else 0
        if self.period.startswith("PT") or unit in "DW":
            step = count * _MS[unit]
            # Joda weeks start on Monday; 1970-01-01 was a Thursday.
            origin = 4 * 86_400_000 if unit == "W" else 0
            return (millis - origin) // step * step + origin
        months = millis.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
        per = {"P1M": 1, "P3M": 3, "P1Y": 12}[self.period]
        months = months // per * per
        return months.astype("datetime64[M]").astype("datetime64[ms]").astype(np.int64)

    def chunk(self, start: int) -> tuple[int, int]:
        """The [start, end) interval of the chunk beginning at ``start``."""
        if self.is_all:
            return ETERNITY_START, ETERNITY_END
        if self.period in ("P1M", "P3M", "P1Y"):
            per = {"P1M": 1, "P3M": 3, "P1Y": 12}[self.period]
            m = np.array([start], dtype="datetime64[ms]").astype("datetime64[M]") + per
            return start, int(m.astype("datetime64[ms]").astype(np.int64)[0])
        unit = self.period[-1]
        count = int(self.period.strip("PT").rstrip("SMHDWY"))
        return start, start + count * _MS[unit]


GRANULARITIES = {
    g.name: g
    for g in [
        Granularity("SECOND", "PT1S"), Granularity("MINUTE", "PT1M"), Granularity("FIVE_MINUTE", "PT5M"),
        Granularity("TEN_MINUTE", "PT10M"), Granularity("FIFTEEN_MINUTE", "PT15M"),
        Granularity("THIRTY_MINUTE", "PT30M"), Granularity("HOUR", "PT1H"), Granularity("SIX_HOUR", "PT6H"),
        Granularity("EIGHT_HOUR", "PT8H"), Granularity("DAY", "P1D"), Granularity("WEEK", "P1W"),
        Granularity("MONTH", "P1M"), Granularity("QUARTER", "P3M"), Granularity("YEAR", "P1Y"),
        Granularity("ALL", None),
    ]
}
BY_PERIOD = {g.period: g for g in GRANULARITIES.values() if g.period}


def granularity(name_or_period: str) -> Granularity | None:
    """Look up a standard granularity by name (``DAY``, ``ALL TIME``) or ISO period (``P1D``)."""
    key = name_or_period.strip().upper()
    if key in ("ALL", "ALL TIME", "ALL_TIME"):
        return GRANULARITIES["ALL"]
    return GRANULARITIES.get(key) or BY_PERIOD.get(key)


# --- interval sets: sorted, disjoint [start, end) millisecond intervals ------------------------------

Intervals = list[tuple[int, int]]


def union_intervals(*sets: Intervals) -> Intervals:
    out: Intervals = []
    for start, end in sorted(i for s in sets for i in s if i[0] < i[1]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def intersect_intervals(a: Intervals, b: Intervals) -> Intervals:
    return union_intervals([(max(s1, s2), min(e1, e2)) for s1, e1 in a for s2, e2 in b])


def complement_intervals(a: Intervals, start: int = ETERNITY_START, end: int = ETERNITY_END) -> Intervals:
    out, cursor = [], start
    for lo, hi in a:
        if cursor < lo:
            out.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < end:
        out.append((cursor, end))
    return out


def parse_interval(text: str) -> tuple[int, int]:
    """Druid's ``Intervals.of`` for ``start/end``, ``start/period`` or ``period/end`` (``_`` may
    stand for ``/`` in URLs)."""
    parts = text.replace("_", "/").split("/")
    if len(parts) != 2:
        raise InvalidInput(f"Invalid interval [{text}]")
    try:
        period = [jodatime.Period.parse(p) if p.upper().startswith("P") else None for p in parts]
        stamps = [None if period[i] else _parse_iso(p)
                  for i, p in enumerate(parts)]
    except ValueError:
        raise InvalidInput(f"Invalid interval [{text}]") from None
    if period[0] is not None and period[1] is not None or None in [s for i, s in enumerate(stamps) if not period[i]]:
        raise InvalidInput(f"Invalid interval [{text}]")
    start, end = stamps
    if start is None:
        start = int(jodatime.shift(np.array([end]), period[0], -1, "UTC")[0])
    if end is None:
        end = int(jodatime.shift(np.array([start]), period[1], 1, "UTC")[0])
    if end < start:
        raise InvalidInput(f"The end instant must be greater than the start instant: [{text}]")
    return start, end


def _parse_iso(text: str) -> int | None:
    from msqcore.kernels.timeparse import parse_iso_millis
    return parse_iso_millis(pa.array([text]), lenient=True)[0].as_py()
