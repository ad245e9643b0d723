"""The error model.

Two families, as in Druid:

* ``DruidException``: refused requests (bad SQL, bad context, unknown task). They carry
  Druid's ``errorCode``/``persona``/``category`` and map to an HTTP status; the server
  renders them with ``to_json``.
* ``Fault``: why a running MSQ task failed (``Canceled``, ``InsertTimeNull`` ...). They
  render as the report's ``errorReport.error`` object and the status ``errorMsg``.
"""
from __future__ import annotations

from typing import Any


class MsqError(Exception):
    """Root of every error msqcore raises on purpose."""


class SegmentCorruptError(MsqError, ValueError):
    """A segment file failed validation (bad magic, lengths or checksum)."""


# --- DruidException ---------------------------------------------------------------------

_HTTP_BY_CATEGORY = {
    "INVALID_INPUT": 400,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "UNAUTHORIZED": 401,
    "CAPACITY_EXCEEDED": 429,
    "CANCELED": 500,
    "RUNTIME_FAILURE": 500,
    "TIMEOUT": 504,
    "UNSUPPORTED": 501,
    "UNCATEGORIZED": 500,
    "DEFENSIVE": 500,
}


class DruidException(MsqError):
    """A request Druid would refuse, with Druid's error object."""

    error_code = "general"
    persona = "USER"
    category = "UNCATEGORIZED"

    def __init__(self, message: str, *, context: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.context = context or {}

    @property
    def http_status(self) -> int:
        return _HTTP_BY_CATEGORY.get(self.category, 500)

    def to_json(self) -> dict[str, Any]:
        return {
            "error": "druidException",
            "errorCode": self.error_code,
            "persona": self.persona,
            "category": self.category,
            "errorMessage": self.message,
            "context": {k: str(v) for k, v in self.context.items()},
        }


class InvalidInput(DruidException):
    error_code = "invalidInput"
    category = "INVALID_INPUT"


class InvalidSqlInput(InvalidInput):
    """SQL that does not parse: Druid reports the position in ``context``."""

    error_code = "invalidInput"

    def __init__(self, message: str, *, line: int | None = None, col: int | None = None):
        context = {}
        if line is not None:
            context = {"sourceType": "sql", "line": line, "column": col,
                       "endLine": line, "endColumn": col}
        super().__init__(message, context=context)


class PlanningError(DruidException):
    """A statement Druid's SQL planner cannot plan (``QueryHandler``): persona ADMIN, code ``general``."""

    error_code = "general"
    persona = "ADMIN"
    category = "INVALID_INPUT"

    def __init__(self, reason: str):
        super().__init__(f"Query could not be planned. A possible reason is [{reason}]")


class Unsupported(DruidException):
    error_code = "general"
    category = "UNSUPPORTED"


class NotFound(DruidException):
    error_code = "notFound"
    category = "NOT_FOUND"


# --- Faults -------------------------------------------------------------------------------
#
# One class per fault of Druid's current ``msq/indexing/error`` package (``MSQIndexingModule.FAULT_CLASSES``
# plus ``DruidExceptionFault``). For each: Druid's ``errorCode``, its message template (``BaseMSQFault`` formats
# with ``String.format``), and its JSON properties in the order Jackson writes them: the type id ``errorCode``
# first, then the ``@JsonProperty`` constructor (creator) parameters in parameter order, then the remaining
# getters, which for every fault is only ``BaseMSQFault.getErrorMessage`` (``NON_NULL``). A null property is
# written as ``null`` unless its getter says ``@JsonInclude(NON_NULL)`` (or ``NON_DEFAULT``/``NON_EMPTY``).

import copy as _copy
import decimal as _decimal
import inspect as _inspect
import re as _re

_REQUIRED = object()

# A property's inclusion rule, after its getter's @JsonInclude.
_ALWAYS = "always"  # no @JsonInclude: null is written as null
_NON_NULL = "non_null"  # @JsonInclude(NON_NULL)
_NON_DEFAULT = "non_default"  # @JsonInclude(NON_DEFAULT) on a primitive: 0 is omitted
_NON_EMPTY = "non_empty"  # @JsonInclude(NON_EMPTY): null and empty are omitted
_MESSAGE = "message"  # ``errorMessage`` itself is a creator parameter: it is written at this position

#: Druid's ``TaskStatus.MAX_ERROR_MSG_TRUNCATION_LIMIT``.
ERROR_MSG_TRUNCATION_LIMIT = 1024


def truncate_error_msg(text: str | None) -> str | None:
    """Druid's ``TaskStatus.truncateErrorMsg``: past 1,024 chars keep the first and last 512 around
    ``...<N> characters omitted...`` (N = length - 1,024). Lengths are Java ``String`` lengths (UTF-16 units)."""
    if text is None:
        return None
    units = text.encode("utf-16-le", "surrogatepass")
    length = len(units) // 2
    if length <= ERROR_MSG_TRUNCATION_LIMIT:
        return text
    half = ERROR_MSG_TRUNCATION_LIMIT // 2
    head = units[: half * 2].decode("utf-16-le", "surrogatepass")
    tail = units[-half * 2:].decode("utf-16-le", "surrogatepass")
    return f"{head}...{length - ERROR_MSG_TRUNCATION_LIMIT} characters omitted...{tail}"


# Java's String.format/String.valueOf for the argument kinds faults use.

def _java_double(x: float) -> str:
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if str(x).startswith("-") else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        text = repr(x)
        return text if ("." in text or "e" in text) else text + ".0"
    sign, digits, exponent = _decimal.Decimal(repr(x)).normalize().as_tuple()
    digits = "".join(map(str, digits))
    exp10 = exponent + len(digits) - 1
    return f"{'-' if sign else ''}{digits[0]}.{digits[1:] or '0'}E{exp10}"


def _jstr(value: Any) -> str:
    """``String.valueOf`` of a JSON-ish value as Jackson would have read it (List/Map toString included)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_jstr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_jstr(k)}={_jstr(v)}" for k, v in value.items()) + "}"
    return str(value)


def _jd(value: Any) -> str:
    """``%d`` (a null Integer prints ``null``)."""
    return "null" if value is None else str(int(value))


def _jcd(value: Any) -> str:
    """``%,d`` (Locale.ENGLISH grouping)."""
    return "null" if value is None else f"{int(value):,}"


# Granularities, for the messages that name one.

_STANDARD_PERIODS = {
    "SECOND": "PT1S", "MINUTE": "PT1M", "FIVE_MINUTE": "PT5M", "TEN_MINUTE": "PT10M",
    "FIFTEEN_MINUTE": "PT15M", "THIRTY_MINUTE": "PT30M", "HOUR": "PT1H", "SIX_HOUR": "PT6H",
    "EIGHT_HOUR": "PT8H", "DAY": "P1D", "WEEK": "P1W", "MONTH": "P1M", "QUARTER": "P3M", "YEAR": "P1Y",
}
_NAME_BY_PERIOD = {period: name for name, period in _STANDARD_PERIODS.items()}


def granularity_display(granularity: Any) -> str:
    """``TooManySegmentsInTimeChunkFault.convertToGranularityString`` of a granularity given in Druid's JSON
    form: the ``GranularityType`` name of a standard granularity, else the granularity's ``toString()``."""
    if isinstance(granularity, str):
        return granularity.upper()
    if isinstance(granularity, dict):
        kind = granularity.get("type")
        if kind in ("all", "none"):
            return kind.upper()
        if kind == "period":
            period = granularity.get("period")
            zone = granularity.get("timeZone")
            origin = granularity.get("origin")
            if zone in (None, "UTC") and origin is None and period in _NAME_BY_PERIOD:
                return _NAME_BY_PERIOD[period]
            return (f"{{type=period, period={period}, timeZone={zone or 'UTC'}, "
                    f"origin={'null' if origin is None else origin}}}")
        if kind == "duration":
            duration = int(granularity.get("duration"))
            origin = granularity.get("origin")
            origin_ms = 0 if origin is None else (origin if isinstance(origin, int) else _parse_instant(origin))
            return f"DurationGranularity{{duration={duration}, origin={origin_ms % duration}}}"
    return _jstr(granularity)


_INSTANT = _re.compile(
    r"^([+-]?\d{4,})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?$")


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _parse_fields(text: str) -> tuple[int, int, int, int]:
    """ISO-8601 instant → (year, month, day, millis-of-day) in UTC."""
    match = _INSTANT.match(text.strip())
    if not match:
        raise ValueError(f"not an ISO-8601 instant: {text!r}")
    y, mo, d = int(match[1]), int(match[2]), int(match[3])
    tod = ((int(match[4] or 0) * 60 + int(match[5] or 0)) * 60 + int(match[6] or 0)) * 1000
    tod += int((match[7] or "0").ljust(3, "0")[:3])
    zone = match[8]
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = (int(digits[:2]) * 60 + int(digits[2:4] or 0)) * 60_000
        millis = _days_from_civil(y, mo, d) * 86_400_000 + tod - sign * offset
        return _fields_from_millis(millis)
    return y, mo, d, tod


def _fields_from_millis(millis: int) -> tuple[int, int, int, int]:
    days, tod = divmod(millis, 86_400_000)
    days += 719468
    era = (days if days >= 0 else days - 146096) // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d, tod


def _to_millis(fields: tuple[int, int, int, int]) -> int:
    y, m, d, tod = fields
    return _days_from_civil(y, m, d) * 86_400_000 + tod


def _parse_instant(text: str) -> int:
    return _to_millis(_parse_fields(text))


def _plus_months(fields: tuple[int, int, int, int], months: int) -> tuple[int, int, int, int]:
    y, m, d, tod = fields
    total = y * 12 + (m - 1) + months
    y2, m2 = divmod(total, 12)
    m2 += 1
    return y2, m2, min(d, _days_in_month(y2, m2)), tod


def _standard_period_values(start: tuple, end: tuple) -> list[int]:
    """Joda ``Interval.toPeriod()`` (PeriodType.standard, ISO UTC): [years, months, weeks, days, hours, minutes,
    seconds, millis], each field taken whole before the next."""
    end_ms = _to_millis(end)
    years = end[0] - start[0]
    while years > 0 and _to_millis(_plus_months(start, 12 * years)) > end_ms:
        years -= 1
    cursor = _plus_months(start, 12 * years)
    months = (end[0] * 12 + end[1]) - (cursor[0] * 12 + cursor[1])
    while months > 0 and _to_millis(_plus_months(cursor, months)) > end_ms:
        months -= 1
    rest = end_ms - _to_millis(_plus_months(cursor, months))
    values = [years, months]
    for unit in (604_800_000, 86_400_000, 3_600_000, 60_000, 1000, 1):
        count, rest = divmod(rest, unit)
        values.append(count)
    return values


def interval_granularity_name(interval: str) -> str:
    """``InsertCannotAllocateSegmentFault.convertIntervalToGranularityString``: ``GranularityType.fromPeriod``
    of the interval's period (one non-zero field only; any count of years/weeks/days/seconds maps to YEAR/WEEK/
    DAY/SECOND), else ``DurationGranularity{duration=<ms>, origin=0}``."""
    start_text, _, end_text = interval.partition("/")
    start, end = _parse_fields(start_text), _parse_fields(end_text)
    values = _standard_period_values(start, end)
    nonzero = [i for i, v in enumerate(values) if v != 0]
    if len(nonzero) == 1:
        index = nonzero[0]
        count = values[index]
        name = {0: "YEAR", 2: "WEEK", 3: "DAY", 6: "SECOND"}.get(index)
        if index == 1:
            name = {3: "QUARTER", 1: "MONTH"}.get(count)
        elif index == 4:
            name = {8: "EIGHT_HOUR", 6: "SIX_HOUR", 1: "HOUR"}.get(count)
        elif index == 5:
            name = {30: "THIRTY_MINUTE", 15: "FIFTEEN_MINUTE", 10: "TEN_MINUTE", 5: "FIVE_MINUTE",
                    1: "MINUTE"}.get(count)
        if name is not None:
            return name
    duration = _to_millis(end) - _to_millis(start)
    return f"DurationGranularity{{duration={duration}, origin=0}}"


def _fault_from_json(obj: dict[str, Any]) -> "Fault":
    return Fault.from_json(obj)


class Fault(MsqError):
    """An MSQ fault: ``errorCode`` plus fault-specific fields.

    Subclasses declare ``_props``: ``(jsonName, inclusion, default)`` in Druid's JSON order, and ``_template``:
    Druid's message for those fields. Constructor: ``Fault(error_message=None, **fields)``; ``error_message``,
    when given, replaces the template (and is how ``from_json`` restores the message it was sent). The base
    class itself stands for a fault code msqcore does not know: its fields are kept as given.
    """

    code = "UnknownError"
    _props: tuple[tuple[str, str, Any], ...] = ()
    _declared = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "_props" in cls.__dict__:
            cls._declared = True
            params = [_inspect.Parameter("self", _inspect.Parameter.POSITIONAL_OR_KEYWORD),
                      _inspect.Parameter("error_message", _inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)]
            for name, rule, default in cls._props:
                if rule != _MESSAGE:
                    params.append(_inspect.Parameter(
                        name, _inspect.Parameter.KEYWORD_ONLY,
                        default=_inspect.Parameter.empty if default is _REQUIRED else default))

            def __init__(self, error_message: str | None = None, **fields: Any):
                Fault.__init__(self, error_message, **fields)

            __init__.__signature__ = _inspect.Signature(params)  # type: ignore[attr-defined]
            __init__.__qualname__ = f"{cls.__qualname__}.__init__"
            __init__.__doc__ = cls.__doc__
            cls.__init__ = __init__  # type: ignore[method-assign]

    def __init__(self, error_message: str | None = None, **fields: Any):
        if self._declared:
            fields = self._bind(fields)
            fields = self._normalize(fields, error_message)
            message = error_message if error_message is not None else self._template(fields)
        else:
            message = error_message
        self.message = message
        self.fields = fields
        super().__init__(self.code_with_message)

    @classmethod
    def _bind(cls, given: dict[str, Any]) -> dict[str, Any]:
        names = [name for name, rule, _ in cls._props if rule != _MESSAGE]
        unknown = [k for k in given if k not in names]
        if unknown:
            raise TypeError(f"{cls.__name__}() got unexpected keyword argument(s) {unknown}")
        bound = {}
        for name, rule, default in cls._props:
            if rule == _MESSAGE:
                continue
            if name in given:
                bound[name] = given[name]
            elif default is _REQUIRED:
                raise TypeError(f"{cls.__name__}() missing required keyword argument '{name}'")
            else:
                bound[name] = _copy.deepcopy(default)
        return bound

    def _normalize(self, fields: dict[str, Any], error_message: str | None) -> dict[str, Any]:
        return fields

    def _template(self, fields: dict[str, Any]) -> str | None:
        return None

    @property
    def code_with_message(self) -> str:
        """``MSQFaultUtils.generateMessageWithErrorCode``: ``<code>: <message>``, or the code alone."""
        return f"{self.code}: {self.message}" if self.message else self.code

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"errorCode": self.code}
        if not self._declared:
            out.update(_copy.deepcopy(self.fields))
            if self.message is not None:
                out["errorMessage"] = self.message
            return out
        placed = False
        for name, rule, _ in self._props:
            if rule == _MESSAGE:
                placed = True
                if self.message is not None:
                    out["errorMessage"] = self.message
                continue
            value = self.fields[name]
            if rule == _NON_NULL and value is None:
                continue
            if rule == _NON_DEFAULT and not value:
                continue
            if rule == _NON_EMPTY and (value is None or (hasattr(value, "__len__") and len(value) == 0)):
                continue
            out[name] = _copy.deepcopy(value)
        if not placed and self.message is not None:
            out["errorMessage"] = self.message
        return out

    @property
    def error_msg(self) -> str:
        """The task status ``errorMsg``: ``<code>: <message>``, middle-truncated past 1,024 chars."""
        return truncate_error_msg(self.code_with_message)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Fault":
        """Rebuild a fault sent across a process boundary (unknown properties are ignored, as Druid does)."""
        obj = dict(obj)
        code = obj.pop("errorCode", "UnknownError")
        message = obj.pop("errorMessage", None)
        fault_cls = _FAULTS.get(code)
        if fault_cls is None:
            fault = Fault(message, **obj)
            fault.code = code
            return fault
        names = {name for name, rule, _ in fault_cls._props if rule != _MESSAGE}
        return fault_cls(message, **{k: v for k, v in obj.items() if k in names})

    def __reduce__(self):
        return _fault_from_json, (self.to_json(),)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fault) and type(self) is type(other) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()!r})"


class BroadcastTablesTooLarge(Fault):
    """``configuredJoinAlgorithm``: Druid's JoinAlgorithm id, ``"broadcast"`` or ``"sortMerge"``."""

    code = "BroadcastTablesTooLarge"
    _props = (("maxBroadcastTablesSize", _ALWAYS, _REQUIRED), ("configuredJoinAlgorithm", _NON_NULL, None))

    def _template(self, f):
        size, algorithm = _jcd(f["maxBroadcastTablesSize"]), f["configuredJoinAlgorithm"]
        if algorithm is None or algorithm == "broadcast":
            return ("Size of broadcast tables in JOIN exceeds reserved memory limit "
                    f"(memory reserved for broadcast tables = [{size}] bytes). "
                    "Increase available memory, or set [sqlJoinAlgorithm: sortMerge] in query context to use a "
                    "shuffle-based join.")
        return ("Size of broadcast tables in JOIN exceeds reserved memory limit "
                f"(memory reserved for broadcast tables = [{size}] bytes). "
                "Try increasing available memory. "
                f"This query is using broadcast JOIN even though [sqlJoinAlgorithm: {algorithm}] is set in query "
                "context, because the configured join algorithm does not support the join condition.")


#: ``CancellationReason``: enum name → message (current code; Druid 34–35 said "Query canceled due to [Task
#: shutdown]." etc.). A null or unknown reason reads as UNKNOWN.
# The messages of Druid 34/35 (the release the spec records, §4.4): "Query canceled due to
# [<reason>]." A later master commit rewords them; we follow the released text.
CANCELLATION_REASONS = {
    "TASK_SHUTDOWN": "Query canceled due to [Task shutdown].",
    "USER_REQUEST": "Query canceled due to [User request].",
    "QUERY_TIMEOUT": "Query canceled due to [Query timeout].",
    "UNKNOWN": "Query canceled due to [Unknown].",
}


class Canceled(Fault):
    """``reason``: a ``CancellationReason`` name (``TASK_SHUTDOWN``, ``USER_REQUEST``, ``QUERY_TIMEOUT``,
    ``UNKNOWN``); null or unrecognized becomes ``UNKNOWN``."""

    code = "Canceled"
    _props = (("reason", _ALWAYS, None),)

    def _normalize(self, f, error_message):
        if f["reason"] not in CANCELLATION_REASONS:
            f["reason"] = "UNKNOWN"
        return f

    def _template(self, f):
        return CANCELLATION_REASONS[f["reason"]]


class CannotParseExternalData(Fault):
    """The message is the fault's only property (``errorMessage`` is its creator parameter)."""

    code = "CannotParseExternalData"
    _props = (("errorMessage", _MESSAGE, None),)


class ColumnNameRestricted(Fault):
    code = "ColumnNameRestricted"
    _props = (("columnName", _ALWAYS, _REQUIRED),)

    def _template(self, f):
        return (f"[{_jstr(f['columnName'])}] column name is reserved for MSQ's internal purpose. "
                "Please retry the query after renaming the column.")


class ColumnTypeNotSupported(Fault):
    """``columnType``: the Druid type string (``COMPLEX<json>``, ``ARRAY<STRING>`` ...), or None if unknown."""

    code = "ColumnTypeNotSupported"
    _props = (("columnName", _ALWAYS, _REQUIRED), ("columnType", _NON_NULL, None))

    def _template(self, f):
        if f["columnType"] is None:
            return f"Cannot handle column [{_jstr(f['columnName'])}] with unknown type"
        return f"Cannot handle column [{_jstr(f['columnName'])}] with type [{_jstr(f['columnType'])}]"


class DurableStorageConfiguration(Fault):
    code = "DurableStorageConfiguration"
    _props = (("message", _ALWAYS, None),)

    def _template(self, f):
        return ("Durable storage mode can only be enabled when druid.msq.intermediate.storage.enable is set to "
                "true and the connector is configured correctly. Check the documentation on how to enable "
                "durable storage mode. If you want to still query without durable storage mode, set "
                f"durableShuffleStorage to false in the query context. Got error {_jstr(f['message'])}")


class InsertCannotAllocateSegment(Fault):
    """``interval``/``allocatedInterval``: ISO interval text (``<start>/<end>``)."""

    code = "InsertCannotAllocateSegment"
    _props = (("dataSource", _ALWAYS, _REQUIRED), ("interval", _ALWAYS, _REQUIRED),
              ("allocatedInterval", _ALWAYS, None))

    def _template(self, f):
        data_source, interval, allocated = _jstr(f["dataSource"]), _jstr(f["interval"]), f["allocatedInterval"]
        if allocated is None:
            return (f"Cannot allocate segment for dataSource [{data_source}], interval [{interval}]. This can "
                    "happen if the prior ingestion uses non-extendable shard specs or if the partitioned by "
                    "granularity is different from the granularity of the pre-existing segments. Check the "
                    "granularities of the pre-existing segments or re-run the ingestion with REPLACE to overwrite "
                    "over the existing data")
        try:
            granularity = interval_granularity_name(allocated)
        except ValueError:
            granularity = allocated
        return (f"Requested segment for dataSource [{data_source}], interval [{interval}], but got "
                f"[{allocated}] interval instead. This happens when an overlapping segment is already present "
                "with a coarser granularity for the requested interval. Either set the partition granularity for "
                f"the INSERT to [{granularity}] to append to existing data or use REPLACE to overwrite over the "
                "pre-existing segment")


class InsertCannotBeEmpty(Fault):
    code = "InsertCannotBeEmpty"
    _props = (("dataSource", _ALWAYS, _REQUIRED),)

    def _template(self, f):
        return (f"No rows to insert for dataSource[{_jstr(f['dataSource'])}]. Set failOnEmptyInsert : false in "
                "the query context to allow empty inserts.")


class InsertLockPreempted(Fault):
    code = "InsertLockPreempted"
    _props = ()

    def _template(self, f):
        return ("Lock preempted while trying to ingest the data. This can occur if there are higher priority "
                "tasks, such as real-time ingestion, running on the same time chunks.")


class InsertTimeNull(Fault):
    code = "InsertTimeNull"
    _props = ()

    def _template(self, f):
        return "Null timestamp (__time) encountered during INSERT or REPLACE."


class InsertTimeOutOfBounds(Fault):
    """``interval``: the offending time chunk; ``intervalBounds``: the OVERWRITE WHERE intervals (ISO text)."""

    code = "InsertTimeOutOfBounds"
    _props = (("interval", _ALWAYS, _REQUIRED), ("intervalBounds", _ALWAYS, _REQUIRED))

    def _template(self, f):
        return (f"Inserted data contains time chunk[{_jstr(f['interval'])}] outside of bounds specified by "
                f"OVERWRITE WHERE[{_jstr(f['intervalBounds'])}]. If you want to include this data, expand your "
                "OVERWRITE WHERE. If you do not want to include this data, use SELECT ... WHERE to filter it "
                "from your inserted data.")


class InvalidField(Fault):
    """The message is ``logMsg``."""

    code = "InvalidField"
    _props = (("source", _NON_NULL, None), ("column", _NON_NULL, None), ("rowNumber", _NON_NULL, None),
              ("errorMsg", _NON_NULL, None), ("logMsg", _NON_NULL, None))

    def _template(self, f):
        return f["logMsg"]


class InvalidNullByte(Fault):
    """``rowNumber`` and ``position`` are 1-based; all fields may be None."""

    code = "InvalidNullByte"
    _props = (("source", _NON_NULL, None), ("rowNumber", _NON_NULL, None), ("column", _NON_NULL, None),
              ("value", _NON_NULL, None), ("position", _NON_NULL, None))

    def _template(self, f):
        column = _jstr(f["column"])
        return (f"Invalid null byte at source[{_jstr(f['source'])}], rowNumber[{_jd(f['rowNumber'])}], "
                f"column[{column}], value[{_jstr(f['value'])}], position[{_jd(f['position'])}]. "
                f"Consider sanitizing the input string column using \"REPLACE(\"{column}\", U&'\\0000', '') AS "
                f"{column}\" or setting 'removeNullBytes' to true in the query context.")


class NotEnoughMemory(Fault):
    code = "NotEnoughMemory"
    _props = (("suggestedServerMemory", _NON_DEFAULT, 0), ("serverMemory", _ALWAYS, _REQUIRED),
              ("usableMemory", _ALWAYS, _REQUIRED), ("serverWorkers", _ALWAYS, _REQUIRED),
              ("serverThreads", _ALWAYS, _REQUIRED), ("inputWorkers", _NON_DEFAULT, 0),
              ("maxConcurrentStages", _NON_DEFAULT, 0))

    def _template(self, f):
        suggested = f["suggestedServerMemory"] or 0
        return ("Not enough memory. "
                + (f"Minimum bytes[{_jcd(suggested)}] is needed for the current configuration. "
                   if suggested > 0 else "")
                + f"(total bytes[{_jcd(f['serverMemory'])}]; "
                + f"usable bytes[{_jcd(f['usableMemory'])}]; "
                + f"input workers[{_jcd(f['inputWorkers'])}]; "
                + f"concurrent stages[{_jcd(f['maxConcurrentStages'])}]; "
                + f"server worker capacity[{_jcd(f['serverWorkers'])}]; "
                + f"server processing threads[{_jcd(f['serverThreads'])}]). "
                + "Increase JVM memory with the -Xmx option"
                + (", or reduce maxNumTasks for this query" if (f["inputWorkers"] or 0) > 1 else "")
                + (", or reduce maxConcurrentStages for this query" if (f["maxConcurrentStages"] or 0) > 1 else "")
                + (", or reduce worker capacity on this server" if (f["serverWorkers"] or 0) > 1 else "")
                + (", or reduce processing threads on this server" if (f["serverThreads"] or 0) > 1 else ""))


class NotEnoughTemporaryStorage(Fault):
    code = "NotEnoughTemporaryStorageFault"  # sic: Druid's code keeps the "Fault" suffix
    _props = (("suggestedMinimumStorage", _ALWAYS, _REQUIRED), ("configuredTemporaryStorage", _ALWAYS, _REQUIRED))

    def _template(self, f):
        return (f"Not enough temporary storage space for intermediate files. Requires at least "
                f"{_jcd(f['suggestedMinimumStorage'])} bytes. (configured = {_jcd(f['configuredTemporaryStorage'])} "
                "bytes). Increase the limit by increasing tmpStorageBytesPerTask or disable durable storage by "
                "setting the context parameter durableShuffleStorage as false.")


class QueryNotSupported(Fault):
    """Druid's fault has no message (``errorMsg`` is just ``QueryNotSupported``); msqcore callers may add one."""

    code = "QueryNotSupported"
    _props = ()


class QueryRuntime(Fault):
    """Druid's ``QueryRuntimeFault`` (code ``QueryRuntimeError``): the message is a creator property."""

    code = "QueryRuntimeError"
    _props = (("errorMessage", _MESSAGE, None), ("baseErrorMessage", _ALWAYS, None))


QueryRuntimeError = QueryRuntime


class RowTooLarge(Fault):
    code = "RowTooLarge"
    _props = (("maxFrameSize", _ALWAYS, _REQUIRED),)

    def _template(self, f):
        return (f"Encountered row that cannot fit in a single frame (max frame size = {_jcd(f['maxFrameSize'])}). "
                "Reduce your row size or increase the context parameter[maxFrameSize].")


class TaskStartTimeout(Fault):
    """``timeout`` in milliseconds (the message shows whole seconds)."""

    code = "TaskStartTimeout"
    _props = (("pendingTasks", _ALWAYS, _REQUIRED), ("totalTasks", _ALWAYS, _REQUIRED), ("timeout", _ALWAYS, _REQUIRED))

    def _template(self, f):
        timeout = int(f["timeout"])
        seconds = timeout // 1000 if timeout >= 0 else -((-timeout) // 1000)
        return (f"Unable to launch [{_jd(f['pendingTasks'])}] workers out of the total [{_jd(f['totalTasks'])}] "
                f"worker tasks within [{seconds:,}] seconds of the last successful worker launch. "
                "There might be insufficient available slots to start all worker tasks simultaneously. "
                "Try lowering 'maxNumTasks' in your query context to a number that fits within your available "
                "task capacity, or try increasing capacity.")


class TooManyAttemptsForJob(Fault):
    code = "TooManyAttemptsForJob"
    _props = (("maxRelaunchCount", _ALWAYS, _REQUIRED), ("currentRelaunchCount", _ALWAYS, _REQUIRED),
              ("taskId", _ALWAYS, _REQUIRED), ("rootErrorMessage", _ALWAYS, _REQUIRED))

    def _template(self, f):
        return (f"Total relaunch count across all workers {_jd(f['currentRelaunchCount'])} exceeded max relaunch "
                f"limit {_jd(f['maxRelaunchCount'])} . Latest task[{_jstr(f['taskId'])}] failure reason: "
                f"{_jstr(f['rootErrorMessage'])}")


class TooManyAttemptsForWorker(Fault):
    code = "TooManyAttemptsForWorker"
    _props = (("maxPerWorkerRelaunchCount", _ALWAYS, _REQUIRED), ("taskId", _ALWAYS, _REQUIRED),
              ("workerNumber", _ALWAYS, _REQUIRED), ("rootErrorMessage", _ALWAYS, _REQUIRED))

    def _template(self, f):
        return (f"Worker[{_jd(f['workerNumber'])}] exceeded max relaunch count of "
                f"{_jd(f['maxPerWorkerRelaunchCount'])} for task[{_jstr(f['taskId'])}]. Latest failure reason: "
                f"{_jstr(f['rootErrorMessage'])}.")


class TooManyBuckets(Fault):
    code = "TooManyBuckets"
    _props = (("maxBuckets", _ALWAYS, 5000),)

    def _template(self, f):
        return (f"Too many partition buckets (max = {_jcd(f['maxBuckets'])}); try breaking your query up into "
                "smaller queries or using a wider PARTITIONED BY")


class TooManyClusteredByColumns(Fault):
    code = "TooManyClusteredByColumns"
    _props = (("numColumns", _ALWAYS, _REQUIRED), ("maxColumns", _ALWAYS, _REQUIRED), ("stage", _ALWAYS, _REQUIRED))

    def _template(self, f):
        return (f"Too many cluster by columns present in stage [{_jstr(f['stage'])}] "
                f"(requested = {_jd(f['numColumns'])}, max = {_jd(f['maxColumns'])})")


class TooManyColumns(Fault):
    code = "TooManyColumns"
    _props = (("numColumns", _ALWAYS, _REQUIRED), ("maxColumns", _ALWAYS, _REQUIRED))

    def _template(self, f):
        return f"Too many output columns (requested = {_jd(f['numColumns'])}, max = {_jd(f['maxColumns'])})"


class TooManyInputFiles(Fault):
    code = "TooManyInputFiles"
    _props = (("numInputFiles", _ALWAYS, _REQUIRED), ("maxInputFiles", _ALWAYS, _REQUIRED),
              ("minNumWorkers", _ALWAYS, _REQUIRED))

    def _template(self, f):
        return (f"Too many input files/segments [{_jd(f['numInputFiles'])}] encountered. Maximum input "
                f"files/segments per worker is set to [{_jd(f['maxInputFiles'])}]. Try breaking your query up into "
                f"smaller queries, or increasing the number of workers to at least [{_jd(f['minNumWorkers'])}] by "
                "setting maxNumTasks in your query context")


class TooManyPartitions(Fault):
    code = "TooManyPartitions"
    _props = (("maxPartitions", _ALWAYS, _REQUIRED),)

    def _template(self, f):
        return (f"Too many partitions (max = {_jd(f['maxPartitions'])}). Try increasing the limit using the "
                "maxPartitions query context parameter, breaking your query up into smaller queries, or using a "
                "larger target size.")


class TooManyRowsInAWindow(Fault):
    code = "TooManyRowsInAWindow"
    _props = (("numRows", _ALWAYS, _REQUIRED), ("maxRows", _ALWAYS, _REQUIRED))

    def _template(self, f):
        # Druid's template has the double space after "max = N)." and the trailing space.
        return (f"Too many rows in a window (requested = {_jd(f['numRows'])}, max = {_jd(f['maxRows'])}). "
                " Try creating a window with a higher cardinality column or change the query shape."
                " Or you can change the max using query context param maxRowsMaterializedInWindow ."
                " Use it carefully as a higher value can lead to OutOfMemory errors. ")


class TooManyRowsWithSameKey(Fault):
    """``key``: the join key as a JSON list."""

    code = "TooManyRowsWithSameKey"
    _props = (("key", _ALWAYS, _REQUIRED), ("numBytes", _ALWAYS, _REQUIRED), ("maxBytes", _ALWAYS, _REQUIRED))

    def _template(self, f):
        return (f"Too many rows with the same key[{_jstr(f['key'])}] on both sides of sort-merge join "
                f"(bytes buffered[{_jcd(f['numBytes'])}], limit[{_jcd(f['maxBytes'])}]). Try adjusting your query "
                "such that there are fewer rows with this key on at least one side of the join.")


class TooManySegmentsInTimeChunk(Fault):
    """``timeChunk``: a Joda DateTime in Druid (the chunk start, ``2024-01-01T00:00:00.000Z``), passed as text;
    ``segmentGranularity``: as Druid serializes it (``"DAY"``, ``{"type": "all"}``, ``{"type": "period", ...}``)."""

    code = "TooManySegmentsInTimeChunk"
    _props = (("timeChunk", _ALWAYS, _REQUIRED), ("numSegments", _ALWAYS, _REQUIRED),
              ("maxNumSegments", _ALWAYS, _REQUIRED), ("segmentGranularity", _ALWAYS, _REQUIRED))

    def _template(self, f):
        return (f"Too many segments requested to be generated in time chunk[{_jstr(f['timeChunk'])}] with "
                f"granularity[{granularity_display(f['segmentGranularity'])}] (requested = "
                f"[{_jcd(f['numSegments'])}], maximum = [{_jcd(f['maxNumSegments'])}]). Please try breaking up "
                "your query or change the maximum using the query context parameter[maxNumSegments].")


class TooManyWarnings(Fault):
    code = "TooManyWarnings"
    _props = (("maxWarnings", _ALWAYS, _REQUIRED), ("rootErrorCode", _ALWAYS, _REQUIRED))

    def _template(self, f):
        return f"Too many warnings of type {_jstr(f['rootErrorCode'])} generated (max = {_jd(f['maxWarnings'])})"


class TooManyWorkers(Fault):
    code = "TooManyWorkers"
    _props = (("workers", _ALWAYS, _REQUIRED), ("maxWorkers", _ALWAYS, _REQUIRED))

    def _template(self, f):
        return f"Too many workers (current = {_jd(f['workers'])}; max = {_jd(f['maxWorkers'])})"


class UnknownError(Fault):
    """Druid's ``UnknownFault``: ``message`` and ``errorMessage`` carry the same text (both omitted when null).
    ``UnknownError("text")`` sets both."""

    code = "UnknownError"
    _props = (("message", _NON_NULL, None),)

    def _normalize(self, f, error_message):
        if f["message"] is None:
            f["message"] = error_message
        return f

    def _template(self, f):
        return f["message"]


class WorkerFailed(Fault):
    code = "WorkerFailed"
    _props = (("workerTaskId", _ALWAYS, _REQUIRED), ("errorMsg", _NON_NULL, None))

    def _template(self, f):
        suffix = "" if f["errorMsg"] is None else ": " + _jstr(f["errorMsg"])
        return f"Worker[{_jstr(f['workerTaskId'])}] failed{suffix}"


class WorkerRpcFailed(Fault):
    code = "WorkerRpcFailed"
    _props = (("workerTaskId", _ALWAYS, _REQUIRED), ("errorMsg", _NON_NULL, None))

    def _template(self, f):
        suffix = "" if f["errorMsg"] is None else ": " + _jstr(f["errorMsg"])
        return f"RPC to worker[{_jstr(f['workerTaskId'])}] failed{suffix}"


class DruidExceptionFault(Fault):
    """Druid's ``DruidExceptionFault`` (code ``DruidException``): a DruidException carried as a fault. Named with
    the suffix because ``DruidException`` is the request-error class above."""

    code = "DruidException"
    _props = (("druidErrorCode", _ALWAYS, _REQUIRED), ("persona", _ALWAYS, None), ("category", _ALWAYS, None),
              ("errorMessage", _MESSAGE, None), ("context", _NON_EMPTY, None))

    def _normalize(self, f, error_message):
        if f["context"] is None:
            f["context"] = {}
        return f


_FAULTS: dict[str, type[Fault]] = {cls.code: cls for cls in (
    BroadcastTablesTooLarge, Canceled, CannotParseExternalData, ColumnNameRestricted, ColumnTypeNotSupported,
    DurableStorageConfiguration, InsertCannotAllocateSegment, InsertCannotBeEmpty, InsertLockPreempted,
    InsertTimeNull, InsertTimeOutOfBounds, InvalidField, InvalidNullByte, NotEnoughMemory,
    NotEnoughTemporaryStorage, QueryNotSupported, QueryRuntime, RowTooLarge, TaskStartTimeout,
    TooManyAttemptsForJob, TooManyAttemptsForWorker, TooManyBuckets, TooManyClusteredByColumns, TooManyColumns,
    TooManyInputFiles, TooManyPartitions, TooManyRowsInAWindow, TooManyRowsWithSameKey,
    TooManySegmentsInTimeChunk, TooManyWarnings, TooManyWorkers, UnknownError, WorkerFailed, WorkerRpcFailed,
    DruidExceptionFault,
)}
