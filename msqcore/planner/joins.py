"""Planning of ``JOIN`` (spec §1.8): the FROM clause's tables become a ``JoinSource``, the
leftmost input (the base) and one ``JoinClause`` per join, as Druid's join datasource nests
them (``left`` is everything before, ``right`` one input with ``rightPrefix`` j0., _j0. ...).

Conditions are ANDs of equalities between the two sides (Druid's ``DruidJoinRule``).
Conjuncts over the right input alone filter it (INNER, LEFT); over the left alone they
filter the result (INNER). Anything else is refused as Druid's planner refuses it.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from msqcore.errors import InvalidInput, PlanningError
from msqcore.planner.expressions import Ambiguous, ColumnRef, Expr
from msqcore.planner.query import JoinClause, JoinSource, LogicalQuery, _and

ALGORITHMS = ("broadcast", "sortMerge")

# Calcite's SqlKind names, as Druid's planning error shows them
_KIND_NAMES = {exp.GT: "GREATER_THAN", exp.GTE: "GREATER_THAN_OR_EQUAL", exp.LT: "LESS_THAN",
               exp.LTE: "LESS_THAN_OR_EQUAL", exp.NEQ: "NOT_EQUALS", exp.Or: "OR", exp.EQ: "EQUALS",
               exp.Like: "LIKE", exp.Is: "IS_NULL", exp.Not: "NOT", exp.In: "IN", exp.Between: "BETWEEN"}


class JoinScope(dict):
    """A binder scope over joined tables: ``alias.col`` and unambiguous ``col`` names, the
    aliases (for Calcite's "Table 'x' not found") and the ``*`` expansion."""

    tables: set[str]
    star: list[tuple[str | None, str, str]]  # (alias or None for a USING column, column, output name)


@dataclass
class _Input:
    alias: str
    query: LogicalQuery  # the input's rows, columns under their own names
    internal: dict[str, str]  # column → name in the joined rows


def join_algorithm(context: dict) -> str:
    value = str(context.get("sqlJoinAlgorithm", "broadcast"))
    if value not in ALGORITHMS:
        raise InvalidInput(f"Invalid value [{value}] for context parameter [sqlJoinAlgorithm]; expected one of "
                           "[broadcast, sortMerge]")
    return value


def compile_joins(compiler, first, join_nodes, ctes, where=None):
    """(JoinSource, scope, filter, rest of WHERE) for ``FROM first JOIN ... [WHERE where]``.
    Equalities of WHERE between a comma-joined (CROSS) input and the inputs before it become
    its join keys, as Calcite's FilterJoinRule makes them."""
    algorithm = join_algorithm(compiler.context)
    base = _input(compiler, first, ctes, "")
    b = base.query
    if not b.is_aggregate and (b.order_by or b.limit is not None or b.offset):
        raise PlanningError("A subquery with ORDER BY or LIMIT as the leftmost input of a JOIN is not "
                            "supported yet; put it on the right side")
    inputs = [base]
    clauses: list[JoinClause] = []
    post_filter: Expr | None = None
    using_all: dict[str, Expr] = {}
    where_rest = _conjuncts(where) if where is not None else []
    for i, node in enumerate(join_nodes):
        kind = _join_kind(node)
        right = _input(compiler, node.this, ctes, "_" * i + "j0.")
        if right.alias in {x.alias for x in inputs}:
            raise InvalidInput(f"Duplicate relation name '{right.alias}' in FROM clause")
        clause = JoinClause(kind, right.query, "_" * i + "j0.")
        left_names = {n for x in inputs for n in x.internal.values()}
        right_names = set(right.internal.values())
        using = node.args.get("using") or []
        if using:
            left_scope = _scope(inputs, using_all)
            right_scope = _scope([right], {})
            for ident in using:
                name = ident.name
                lk = _bind(compiler, exp.column(name, quoted=True), left_scope)
                rk = _bind(compiler, exp.column(name, quoted=True), right_scope)
                _add_key(compiler, clause, lk, rk)
                using_all[name] = lk if kind in ("INNER", "LEFT") else rk if kind == "RIGHT" else \
                    compiler.bind(exp.func("COALESCE", exp.column("__l"), exp.column("__r")), {"__l": lk, "__r": rk})
        elif node.args.get("on") is not None:
            scope = _scope(inputs + [right], using_all)
            for conjunct in _conjuncts(node.args["on"]):
                post = _condition(compiler, clause, conjunct, scope, left_names, right_names)
                if post is not None:
                    post_filter = post if post_filter is None else _and(post_filter, post)
        elif kind != "CROSS":
            raise InvalidInput(f"{kind} JOIN requires an ON or USING condition")
        else:
            where_rest = _keys_from_where(compiler, clause, where_rest, _scope(inputs + [right], using_all),
                                          left_names, right_names)
        clauses.append(clause)
        inputs.append(right)
    source = JoinSource(base.query, clauses, algorithm)
    if algorithm == "sortMerge" and any(not c.left_keys for c in clauses):
        # sort-merge needs equality keys; Druid then plans a broadcast join (and says so in its fault)
        if any(c.kind in ("RIGHT", "FULL") for c in clauses):
            raise PlanningError("SQL requires a join with 'LITERAL' condition that is not supported.")
        source = JoinSource(base.query, clauses, "broadcast", configured="sortMerge")
    rest = None
    for conjunct in where_rest:
        rest = conjunct if rest is None else exp.and_(rest, conjunct)
    return source, _scope(inputs, using_all), post_filter, rest


def _keys_from_where(compiler, clause: JoinClause, conjuncts: list, scope, left: set[str], right: set[str]) -> list:
    """Move ``left = right`` conjuncts of WHERE into a CROSS join's keys (it becomes INNER)."""
    rest = []
    for node in conjuncts:
        if isinstance(node, exp.EQ) and node.find(exp.Placeholder) is None:  # ? params bind in WHERE's turn
            try:
                a, b = _bind(compiler, node.left, scope), _bind(compiler, node.right, scope)
            except InvalidInput:  # names an input further right, or is wrong: WHERE reports it later
                rest.append(node)
                continue
            ca, cb = a.columns(), b.columns()
            if ca and cb and (ca <= left and cb <= right or ca <= right and cb <= left):
                _add_key(compiler, clause, *((a, b) if ca <= left else (b, a)))
                clause.kind = "INNER"
                continue
        rest.append(node)
    return rest


def _join_kind(node: exp.Join) -> str:
    side = (node.args.get("side") or "").upper()
    kind = (node.args.get("kind") or "").upper()
    if side in ("LEFT", "RIGHT", "FULL"):
        return side
    if kind == "CROSS" or (node.args.get("on") is None and not node.args.get("using")):
        return "CROSS"
    if kind in ("", "INNER"):
        return "INNER"
    raise PlanningError(f"{kind} JOIN is not supported")


def _input(compiler, node, ctes, prefix: str) -> _Input:
    """One join input as a query over its own columns."""
    alias = node.alias_or_name
    lookup = compiler._lookup(node)
    if lookup is not None:
        query = LogicalQuery(lookup, None, [(n, ColumnRef(n, t)) for n, t in lookup.signature])
        alias = node.alias if node.alias else lookup.name
    elif _subquery(node, ctes) is not None and not _foldable(compiler, _subquery(node, ctes), ctes):
        query = compiler.compile(_subquery(node, ctes), ctes)
        if query.window is not None:
            raise PlanningError("Window functions in a JOIN input are not supported yet")
    else:
        source, scope, filt = compiler._relation(node, ctes)
        query = LogicalQuery(source, filt, [(n, e) for n, e in scope.items() if "." not in n])
    return _Input(alias, query, {n: prefix + n for n, _ in query.output})


def _subquery(node, ctes):
    """The SELECT of a subquery or of a CTE named in FROM, else None."""
    if isinstance(node, exp.Subquery):
        return node.this
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier) and not node.args.get("db"):
        return ctes.get(node.name)
    return None


def _foldable(compiler, select, ctes) -> bool:
    """Whether a subquery only projects and filters (then it folds into a scan of its source)."""
    if not isinstance(select, exp.Select) or select.args.get("joins"):
        return False
    if any(select.args.get(k) is not None for k in ("group", "order", "limit", "offset", "distinct", "having")):
        return False
    from msqcore.planner.query import has_aggregate
    from msqcore.planner import window
    return not any(has_aggregate(e) for e in select.expressions) and not window.has_window(select.expressions)


def _is_plain_scan(query: LogicalQuery) -> bool:
    return not (query.is_aggregate or query.order_by or query.limit is not None or query.offset
                or query.window is not None or isinstance(query.source, JoinSource))


def _scope(inputs: list[_Input], using: dict[str, Expr]) -> JoinScope:
    scope = JoinScope()
    scope.tables = {x.alias for x in inputs}
    counts: dict[str, int] = {}
    for x in inputs:
        for n, t in x.query.output:
            ref = ColumnRef(x.internal[n], t)
            scope[f"{x.alias}.{n}"] = ref
            counts[n] = counts.get(n, 0) + 1
            scope[n] = ref if counts[n] == 1 else Ambiguous(n)
    scope.update(using)
    star = [(None, n, n) for n in using]
    seen = set(using)
    for x in inputs:
        for n, _ in x.query.output:
            if n in using:
                continue
            out, k = n, 0
            while out in seen:  # Calcite's uniquify: k, k0, k1 ...
                out, k = f"{n}{k}", k + 1
            seen.add(out)
            star.append((x.alias, n, out))
    scope.star = star
    return scope


def _bind(compiler, node, scope) -> Expr:
    return compiler.bind(node, scope)


def _conjuncts(node) -> list:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def _condition(compiler, clause: JoinClause, node, scope, left: set[str], right: set[str]) -> Expr | None:
    """Fold one conjunct of ON into ``clause``; returns a filter to apply after the join."""
    if isinstance(node, exp.EQ):
        params = compiler.binder._param_index  # bound again below if not a key: number ? params once
        a, b = _bind(compiler, node.left, scope), _bind(compiler, node.right, scope)
        ca, cb = a.columns(), b.columns()
        if ca and cb and ca <= left and cb <= right:
            _add_key(compiler, clause, a, b)
            return None
        if ca and cb and ca <= right and cb <= left:
            _add_key(compiler, clause, b, a)
            return None
        compiler.binder._param_index = params
    e = _bind(compiler, node, scope)
    cols = e.columns()
    if not cols and isinstance(node, (exp.Boolean, exp.EQ)):
        from msqcore.planner.expressions import Literal
        if isinstance(e, Literal) and e.value:  # ON TRUE, ON 1 = 1
            return None
    if cols and cols <= right and clause.kind in ("INNER", "LEFT"):
        clause.right_filter = e if clause.right_filter is None else _and(clause.right_filter, e)
        return None
    if cols and cols <= left and clause.kind == "INNER":
        return e
    kind = next((name for cls, name in _KIND_NAMES.items() if isinstance(node, cls)), "OTHER_FUNCTION")
    raise PlanningError(f"SQL requires a join with '{kind}' condition that is not supported.")


def _add_key(compiler, clause: JoinClause, lk: Expr, rk: Expr) -> None:
    """An equality key, both sides cast to one type as Calcite does (a string compared with a
    number becomes that number's type)."""
    lt, rt = lk.sql_type, rk.sql_type
    if lt != rt:
        numeric = ("BIGINT", "DOUBLE", "FLOAT")
        if lt == "VARCHAR":
            target = rt
        elif rt == "VARCHAR":
            target = lt
        elif lt in numeric and rt in numeric:
            target = "DOUBLE"
        else:
            target = "BIGINT" if "TIMESTAMP" in (lt, rt) and "BIGINT" in (lt, rt) else lt
        if target == "BOOLEAN":
            target = "BIGINT"
        lk, rk = compiler.binder._cast_expr(lk, target), compiler.binder._cast_expr(rk, target)
    clause.left_keys.append(lk)
    clause.right_keys.append(rk)


# --- column pruning ---------------------------------------------------------------------------


def prune(query: LogicalQuery) -> None:
    """Keep only the input columns the query and the join keys read (each input keeps at
    least one column so its row count survives)."""
    source: JoinSource = query.source
    used = set(query.source_columns())
    for clause in source.joins:
        for e in clause.left_keys:
            used |= e.columns()
        for e in clause.right_keys + ([clause.right_filter] if clause.right_filter is not None else []):
            used |= e.columns()
    if _is_plain_scan(source.base):
        source.base.columns = _keep(source.base.columns, "", used)
    for clause in source.joins:
        if _is_plain_scan(clause.right):
            clause.right.columns = _keep(clause.right.columns, clause.prefix, used)


def _keep(columns: list[tuple[str, Expr]], prefix: str, used: set[str]) -> list[tuple[str, Expr]]:
    kept = [(n, e) for n, e in columns if prefix + n in used]
    return kept or columns[:1]
