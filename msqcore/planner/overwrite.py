"""``REPLACE ... OVERWRITE WHERE <__time predicate>``: the predicate as time intervals (spec §1.5).

Comparisons of ``__time`` with TIMESTAMP literals, BETWEEN, and AND/OR/NOT of those are
turned into a sorted list of disjoint [start, end) intervals, which must be non-empty and
align with the PARTITIONED BY granularity, as Druid's DruidSqlParserUtils requires.
"""
from __future__ import annotations

from sqlglot import exp

from msqcore.errors import InvalidInput
from msqcore.planner.expressions import Binder, ColumnRef, Literal
from msqcore.planner.statement import DIALECT, parse_sql
from msqcore.timeutil import (ETERNITY_END, ETERNITY_START, Granularity, Intervals, complement_intervals,
                              intersect_intervals, interval_text, union_intervals)

ALL: Intervals = [(ETERNITY_START, ETERNITY_END)]


class _Converter:
    def __init__(self, text: str, binder: Binder):
        self.text = text
        self.binder = binder

    def convert(self, node: exp.Expression) -> Intervals:
        if isinstance(node, exp.Paren):
            return self.convert(node.this)
        if isinstance(node, exp.And):
            return intersect_intervals(self.convert(node.this), self.convert(node.expression))
        if isinstance(node, exp.Or):
            return union_intervals(self.convert(node.this), self.convert(node.expression))
        if isinstance(node, exp.Not):
            return complement_intervals(self.convert(node.this))
        if isinstance(node, exp.Between):
            low, high = self._time(node.this, node.args["low"]), self._time(node.this, node.args["high"])
            return [(low, high + 1)] if low <= high else []
        for cls, make in ((exp.GTE, lambda t: [(t, ETERNITY_END)]), (exp.GT, lambda t: [(t + 1, ETERNITY_END)]),
                          (exp.LT, lambda t: [(ETERNITY_START, t)]), (exp.LTE, lambda t: [(ETERNITY_START, t + 1)]),
                          (exp.EQ, lambda t: [(t, t + 1)])):
            if isinstance(node, cls):
                left, right = node.this, node.expression
                if self._is_time(right) and not self._is_time(left):
                    # TIMESTAMP 'x' < __time: flip the comparison
                    flipped = {exp.GTE: exp.LTE, exp.GT: exp.LT, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.EQ: exp.EQ}
                    return self.convert(flipped[cls](this=right, expression=left))
                return make(self._time(left, right))
        raise InvalidInput(f"Unsupported operation [{node.sql(DIALECT)}] in OVERWRITE WHERE clause.")

    @staticmethod
    def _is_time(node) -> bool:
        return isinstance(node, exp.Column) and node.name == "__time"

    def _time(self, column, value) -> int:
        if not self._is_time(column):
            raise InvalidInput("OVERWRITE WHERE clause only supports filtering on the __time column, got "
                               f"[{column.sql(DIALECT)}]")
        bound = self.binder.bind(value)
        if not isinstance(bound, Literal) or bound.value is None:
            raise InvalidInput(f"Unsupported operation [{value.sql(DIALECT)}] in OVERWRITE WHERE clause: "
                               "compare __time with TIMESTAMP literals")
        if bound.sql_type == "VARCHAR":
            bound = self.binder._timestamp_literal(bound.value)
        return int(bound.value)


def granularity_text(g: Granularity) -> str:
    """How Druid's Granularity.toString renders in its messages."""
    if g.is_all:
        return "AllGranularity"
    return f"{{type=period, period={g.period}, timeZone=UTC, origin=null}}"


def overwrite_intervals(text: str, granularity: Granularity, parameters=None, context=None) -> Intervals:
    node = parse_sql("", f"SELECT 1 WHERE {text}").args["where"].this
    binder = Binder({"__time": ColumnRef("__time", "TIMESTAMP")}, parameters, context)
    intervals = _Converter(text, binder).convert(node)
    if not intervals:
        raise InvalidInput(f"The OVERWRITE WHERE clause [{text}] produced no time intervals, are the bounds overly "
                           "restrictive?")
    for start, end in intervals:
        # an open bound (eternity's end) is not aligned with a period, as in Druid
        aligned = (start, end) == ALL[0] if granularity.is_all else \
            all(int(granularity.floor([b])[0]) == b for b in (start, end))
        if not aligned:
            raise InvalidInput(f"OVERWRITE WHERE clause identified interval [{interval_text(start, end)}] which is "
                               f"not aligned with PARTITIONED BY granularity [{granularity_text(granularity)}]")
    return intervals
