"""Window functions in SELECT: split the SELECT list around its OVER calls (spec §1.8).

A query with window functions runs in two steps, as Druid plans a window stage on top of
a scan or groupBy: the base query computes every window-free piece of the SELECT list
(the arguments, PARTITION BY and ORDER BY expressions of each window, and the rest of each
item) as columns ``w$e0, w$e1, ...``; the window operator then adds one column ``w$0, w$1,
...`` per OVER call, and a final projection rebuilds each SELECT item from those columns.

``split`` does the AST side (before binding); ``WindowPlan`` is what the engine runs.
Frame validation follows Druid's ``DruidSqlValidator``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlglot import exp

from msqcore.engine.window import (AGGREGATE, MAX_ROWS_IN_WINDOW, OFFSET, RANKING, VALUE, Frame, WindowCall,
                                   WindowSpec)
from msqcore.errors import InvalidInput, QueryNotSupported
from msqcore.planner.expressions import Expr

INPUT = "w$e"  # window-free pieces computed by the base query
OUTPUT = "w$"  # window function results

_FUNCTIONS = {exp.RowNumber: "ROW_NUMBER", exp.Lag: "LAG", exp.Lead: "LEAD", exp.FirstValue: "FIRST_VALUE",
              exp.LastValue: "LAST_VALUE", exp.Sum: "SUM", exp.Count: "COUNT", exp.Min: "MIN", exp.Max: "MAX",
              exp.Avg: "AVG"}


@dataclass
class WindowPlan:
    specs: list[WindowSpec]
    columns: list[tuple[str, Expr]]  # the final SELECT list over the windowed table
    max_rows: int = MAX_ROWS_IN_WINDOW  # context maxRowsMaterializedInWindow


@dataclass
class Draft:
    """One OVER call, its pieces named by the base query's columns."""

    function: str
    argument: str | None
    constants: tuple
    partition_by: list[str]
    order_by: list[tuple[str, bool, bool]]
    frame: Frame | None


@dataclass
class Split:
    inner: list[exp.Expression] = field(default_factory=list)  # aliased window-free expressions
    outer: list[exp.Expression] = field(default_factory=list)  # SELECT items over w$e*/w$* columns
    drafts: list[Draft] = field(default_factory=list)
    _names: dict[str, str] = field(default_factory=dict)  # SQL text → w$e column

    def column(self, node: exp.Expression) -> str:
        """The base-query column computing ``node`` (one per distinct expression)."""
        sql = node.sql("druid")
        if sql not in self._names:
            self._names[sql] = f"{INPUT}{len(self.inner)}"
            self.inner.append(exp.alias_(node.copy(), self._names[sql], quoted=True))
        return self._names[sql]


def has_window(items: list[exp.Expression]) -> bool:
    return any(item.find(exp.Window) is not None for item in items)


def split(select: exp.Select, items: list[exp.Expression]) -> Split:
    named = {w.this.name: w for w in select.args.get("windows") or []}
    out = Split()
    for item in items:
        body = item.this if isinstance(item, exp.Alias) else item
        out.outer.append(_rewrite(body, out, named))
    return out


def _rewrite(node: exp.Expression, out: Split, named: dict) -> exp.Expression:
    if isinstance(node, exp.Window):
        return exp.column(f"{OUTPUT}{_draft(node, out, named)}", quoted=True)
    if node.find(exp.Window) is None:
        return node.copy() if isinstance(node, exp.Literal) else exp.column(out.column(node), quoted=True)
    node = node.copy()
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, _rewrite(value, out, named))
        elif isinstance(value, list):
            node.set(key, [_rewrite(v, out, named) if isinstance(v, exp.Expression) else v for v in value])
    return node


def _draft(window: exp.Window, out: Split, named: dict) -> int:
    window = _resolve(window, named)
    call = window.this
    function = _FUNCTIONS.get(type(call)) or (call.name.upper() if isinstance(call, exp.Anonymous) else
                                              re.sub(r"(?<!^)(?=[A-Z])", "_", type(call).__name__).upper())
    if function not in RANKING | OFFSET | VALUE | AGGREGATE:
        raise QueryNotSupported(f"Window function [{call.sql('druid')}] is not supported")
    argument, constants = None, ()
    if function in OFFSET:
        argument = out.column(call.this)
        constants = tuple(_constant(call.args.get(k)) for k in ("offset", "default") if call.args.get(k) is not None)
    elif function == "NTILE":
        constants = (_constant(call.this if not isinstance(call, exp.Anonymous) else call.expressions[0]),)
        if not isinstance(constants[0], int) or constants[0] <= 0:
            raise InvalidInput("Argument to NTILE must be a positive integer literal")
    elif function in VALUE or function in AGGREGATE:
        arg = call.this
        if isinstance(arg, exp.Distinct):
            raise QueryNotSupported(f"DISTINCT in window function [{call.sql('druid')}] is not supported")
        if not (function == "COUNT" and (arg is None or isinstance(arg, exp.Star))):
            argument = out.column(arg)
    partition_by = [out.column(p) for p in window.args.get("partition_by") or []]
    order_by = []
    order = window.args.get("order")
    for o in (order.expressions if order is not None else []):
        desc = bool(o.args.get("desc"))
        nulls_first = o.args.get("nulls_first")
        order_by.append((out.column(o.this), desc, (not desc) if nulls_first is None else bool(nulls_first)))
    if function in RANKING - {"ROW_NUMBER"} and not order_by and function != "NTILE":
        raise InvalidInput(f"{function} requires an ORDER BY in its window")
    frame = _frame(window.args.get("spec"), function)
    out.drafts.append(Draft(function, argument, constants, partition_by, order_by, frame))
    return len(out.drafts) - 1


def _resolve(window: exp.Window, named: dict) -> exp.Window:
    """``OVER w`` and ``OVER (w ...)`` take their definition from the WINDOW clause."""
    alias = window.args.get("alias")
    name = alias.name if alias is not None else None
    if name is None:
        return window
    if name not in named:
        raise InvalidInput(f"Window '{name}' not found")
    base = named[name]
    merged = window.copy()
    for key in ("partition_by", "order", "spec"):
        if not merged.args.get(key) and base.args.get(key):
            merged.set(key, base.args[key].copy() if isinstance(base.args[key], exp.Expression)
                       else [p.copy() for p in base.args[key]])
    return merged


def _constant(node: exp.Expression):
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        value = _constant(node.this)
        return -value if isinstance(value, (int, float)) else value
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        return int(node.this) if node.this.lstrip("-").isdigit() else float(node.this)
    if isinstance(node, exp.Null):
        return None
    raise InvalidInput(f"Window function arguments must be literals: [{node.sql('druid')}]")


def _frame(spec: exp.WindowSpec | None, function: str) -> Frame | None:
    if spec is None:
        return None
    if function == "NTILE":
        raise InvalidInput("Framing of NTILE is not supported.")
    rows = str(spec.args.get("kind", "")).upper() == "ROWS"
    lower = _bound(spec.args.get("start"), spec.args.get("start_side"))
    upper = _bound(spec.args.get("end") or "CURRENT ROW", spec.args.get("end_side"))
    if lower not in (None, 0) and upper not in (None, 0) and (lower > 0) == (upper > 0):
        raise InvalidInput("Query bounds with both lower and upper bounds as PRECEDING or FOLLOWING is not supported.")
    if function in VALUE and (lower not in (None, 0) or upper not in (None, 0)):
        raise InvalidInput("Framing of FIRST_VALUE/LAST_VALUE is only allowed with UNBOUNDED or CURRENT ROW.")
    if not rows and (lower not in (None, 0) or upper not in (None, 0)):
        raise InvalidInput("The query contains a window frame which may return incorrect results. To disregard this "
                           "warning, set [windowingStrictValidation] to false in the query context.")
    return Frame(rows, lower, upper)


def _bound(value, side) -> int | None:
    text = value.upper() if isinstance(value, str) else None
    if text == "UNBOUNDED":
        return None
    if text == "CURRENT ROW":
        return 0
    if not isinstance(value, exp.Literal) or value.is_string or not value.this.isdigit():
        raise InvalidInput("Window frames with expression based lower/upper bounds are not supported.")
    n = int(value.this)
    return -n if str(side).upper() == "PRECEDING" else n


def window_type(draft: Draft, argument_type: str | None) -> str:
    """The SQL type of a window function's result."""
    f = draft.function
    if f in ("ROW_NUMBER", "RANK", "DENSE_RANK", "NTILE", "COUNT"):
        return "BIGINT"
    if f in ("PERCENT_RANK", "CUME_DIST", "AVG"):
        return "DOUBLE"
    if f == "SUM":
        return "BIGINT" if argument_type in ("BIGINT", "BOOLEAN") else "DOUBLE"
    return argument_type


def specs(drafts: list[Draft]) -> list[WindowSpec]:
    """Calls sharing PARTITION BY and ORDER BY run under one sort, in first-seen order."""
    out: dict[tuple, WindowSpec] = {}
    for i, d in enumerate(drafts):
        key = (tuple(d.partition_by), tuple(d.order_by))
        spec = out.setdefault(key, WindowSpec(list(d.partition_by), list(d.order_by)))
        spec.calls.append(WindowCall(f"{OUTPUT}{i}", d.function, d.argument, d.constants, d.frame))
    return list(out.values())
