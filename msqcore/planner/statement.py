"""Split a Druid SQL request into its parts.

Druid's ingestion grammar wraps a SELECT: ``[SET k = v; ...] INSERT|REPLACE INTO t
[OVERWRITE ALL|WHERE ...] <select> PARTITIONED BY g [CLUSTERED BY ...]``. sqlglot parses
the SELECT; this module finds the wrapper clauses on sqlglot's token stream (so quotes,
comments and nesting are respected) and parses each clause on its own.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from msqcore.errors import InvalidInput, InvalidSqlInput
from msqcore.timeutil import Granularity, granularity

DIALECT = Dialect.get_or_raise("druid")

_GRANULARITY_HELP = (
    "Expected 'SECOND', 'MINUTE', 'FIVE_MINUTE', 'TEN_MINUTE', 'FIFTEEN_MINUTE', 'THIRTY_MINUTE', 'HOUR', "
    "'SIX_HOUR', 'EIGHT_HOUR', 'DAY', 'MONTH', 'QUARTER', 'YEAR', 'ALL', ALL TIME, FLOOR() or TIME_FLOOR()"
)


@dataclass
class Statement:
    kind: str  # INSERT | REPLACE | SELECT
    sql: str
    select: exp.Query
    target: str | None = None
    overwrite: str | None = None  # "ALL", or the OVERWRITE WHERE text
    partitioned_by: Granularity | None = None
    clustered_by: list[exp.Expression] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # from SET statements


_ARRAY_ELEMENT_TYPES = {"VARCHAR", "CHAR", "TEXT", "BIGINT", "INT", "INTEGER", "SMALLINT", "TINYINT", "DOUBLE",
                        "FLOAT", "REAL"}
ARRAY_AGG_CALL = "__ARRAY_AGG"  # how ARRAY_AGG(...) reaches the planner (an anonymous call)


def _quote_div_calls(text: str) -> str:
    """sqlglot reads DIV as MySQL's integer-division operator; Druid's DIV(x, y) is a
    function, so such calls become the quoted name ``"DIV"(x, y)``. ARRAY_AGG calls become
    ``__ARRAY_AGG(...)`` so that no argument is lost. A type ``<type> ARRAY`` (EXTEND,
    CAST) becomes ``ARRAY<type>``, which sqlglot reads in every position."""
    lowered = text.lower()
    if "div" not in lowered and "array" not in lowered:
        return text
    try:
        toks = DIALECT.tokenize(text)
    except TokenError:
        return text
    out, at = [], 0
    for i, (t, nxt) in enumerate(zip(toks, toks[1:])):
        if nxt.token_type == TokenType.ARRAY and t.text.upper() in _ARRAY_ELEMENT_TYPES and \
                (i + 2 == len(toks) or toks[i + 2].token_type not in (TokenType.L_BRACKET, TokenType.L_PAREN)):
            out.append(text[at:t.start])
            out.append(f"ARRAY<{t.text}>")
            at = nxt.end + 1
            continue
        if nxt.token_type != TokenType.L_PAREN:
            continue
        if t.token_type == TokenType.DIV:
            out.append(text[at:t.start])
            out.append('"DIV"')
            at = t.end + 1
        elif t.text.upper() == "ARRAY_AGG":
            # sqlglot's ArrayAgg drops the maxSizeBytes argument; keep every argument
            out.append(text[at:t.start])
            out.append(ARRAY_AGG_CALL)
            at = t.end + 1
    return "".join(out) + text[at:] if out else text


_PLACEHOLDER = ":__p"  # ``?`` number i is parsed as ``:__p<i>``, then shown as ``?`` again


def _number_placeholders(text: str) -> str:
    """Dynamic parameters are numbered in text order, as Calcite numbers them; the AST does
    not keep token positions, so each ``?`` is renamed with its number before parsing."""
    if "?" not in text:
        return text
    try:
        toks = DIALECT.tokenize(text)
    except TokenError:
        return text
    out, at, n = [], 0, 0
    for t in toks:
        if t.token_type == TokenType.PLACEHOLDER and t.text == "?":
            out.append(text[at:t.start])
            out.append(f"{_PLACEHOLDER}{n}")
            at, n = t.end + 1, n + 1
    return "".join(out) + text[at:]


def parse_sql(sql: str, expression: str | None = None) -> exp.Expression:
    """sqlglot parse with Druid's error shape. Each ``?`` keeps its text-order number in
    ``meta["parameter"]`` (0-based)."""
    try:
        tree = sqlglot.parse_one(_quote_div_calls(_number_placeholders(expression if expression is not None
                                                                       else sql)), read=DIALECT)
        for p in tree.find_all(exp.Placeholder):
            name = p.name
            if name.startswith(_PLACEHOLDER[1:]):
                p.meta["parameter"] = int(name[len(_PLACEHOLDER) - 1:])
                p.set("this", None)
        return tree
    except ParseError as e:
        err = e.errors[0] if e.errors else {}
        arity = _arity_error(err)
        if arity:
            raise InvalidInput(arity) from None
        description = re.sub(r"<Token token_type: TokenType\.\w+, text: ([^,]*),[^>]*>", r"[\1]",
                             str(err.get("description", e)))
        raise InvalidSqlInput(f"Incorrect syntax near [{err.get('highlight', '')}]: {description}",
                              line=err.get("line"), col=err.get("col")) from None
    except TokenError as e:
        raise InvalidSqlInput(f"Incorrect syntax: {e}") from None


def _arity_error(err: dict) -> str | None:
    """sqlglot refuses a wrong argument count of functions it knows while parsing; say it
    the way Druid's validator does."""
    description = str(err.get("description", ""))
    if "number of provided arguments" not in description and not description.startswith("Required keyword"):
        return None
    match = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\([^()]*$", str(err.get("start_context", "")))
    if match is None:
        return None
    most = re.search(r"maximum number of supported arguments \((\d+)\)", description)
    expecting = f"{most.group(1)} arguments" if most else "more arguments"
    return f"Invalid number of arguments to function '{match.group(1).upper()}'. Was expecting {expecting}"


def _tokens(sql: str):
    try:
        return DIALECT.tokenize(sql)
    except TokenError as e:
        raise InvalidSqlInput(f"Incorrect syntax: {e}") from None


def split_statement(sql: str) -> Statement:
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidInput("Query must not be empty")
    tokens = _tokens(sql)
    # SET statements come first, each ending with ';'.
    settings: dict = {}
    semis = [i for i, t in enumerate(tokens) if t.token_type == TokenType.SEMICOLON]
    start = 0
    for semi in semis:
        part = tokens[start:semi]
        if part and part[0].token_type == TokenType.SET:
            settings.update(_parse_set(sql, part))
            start = semi + 1
        else:
            break
    body = tokens[start:]
    while body and body[-1].token_type == TokenType.SEMICOLON:
        body = body[:-1]
    if not body:
        raise InvalidInput("Statement must contain a query after the SET statements")
    if any(t.token_type == TokenType.SEMICOLON for t in body):
        raise InvalidInput("SQL query string must contain only one statement (SET statements may precede it)")
    text = sql[body[0].start: body[-1].end + 1]

    head = body[0].token_type
    if head in (TokenType.INSERT, TokenType.REPLACE):
        return _split_ingest(sql, text, _tokens(text), settings)
    if head == TokenType.VAR and body[0].text.upper() == "UPSERT":
        raise InvalidInput("UPSERT is not supported.")
    select = parse_sql(text)
    if not isinstance(select, exp.Query):
        raise InvalidInput(f"Unsupported SQL statement [{body[0].text.upper()}]")
    return Statement("SELECT", sql, select, settings=settings)


def _parse_set(sql: str, part) -> dict:
    # SET key = literal
    if len(part) < 4 or part[2].token_type != TokenType.EQ:
        raise InvalidInput(f"Invalid SET statement [{sql[part[0].start: part[-1].end + 1]}]")
    key = part[1].text
    lit = parse_sql("", sql[part[3].start: part[-1].end + 1])
    if isinstance(lit, exp.Literal):
        value = lit.this if lit.is_string else json.loads(lit.this)
    elif isinstance(lit, exp.Boolean):
        value = lit.this
    elif isinstance(lit, exp.Neg) and isinstance(lit.this, exp.Literal):
        value = -json.loads(lit.this.this)
    else:
        raise InvalidInput(f"Assigned value must be a literal for SET statement[{sql[part[0].start: part[-1].end + 1]}]")
    return {key: value}


def _split_ingest(full_sql: str, text: str, toks, settings: dict) -> Statement:
    kind = toks[0].text.upper()
    if len(toks) < 3 or toks[1].token_type != TokenType.INTO:
        raise InvalidInput(f"Expected INTO after {kind}")
    i = 2
    name_tok = toks[i]
    if name_tok.token_type not in (TokenType.VAR, TokenType.IDENTIFIER) and not name_tok.text.isidentifier():
        raise InvalidInput(f"Invalid target table [{name_tok.text}] for {kind}")
    target = name_tok.text
    i += 1
    if i < len(toks) and toks[i].token_type == TokenType.DOT:
        raise InvalidInput(
            f"Table [{target}.{toks[i + 1].text if i + 1 < len(toks) else ''}] does not support operation "
            f"[{kind}] because it is not a Druid datasource")
    if i < len(toks) and toks[i].token_type == TokenType.L_PAREN:
        raise InvalidInput(
            f"Operation [{kind}] cannot be run with a target column list, given [{target} (...)]")

    overwrite = None
    if kind == "REPLACE":
        if i >= len(toks) or toks[i].token_type != TokenType.OVERWRITE:
            raise InvalidInput(
                "Missing time chunk information in OVERWRITE clause for REPLACE. Use OVERWRITE WHERE <__time based "
                "condition> or OVERWRITE ALL to overwrite the entire table.")
        i += 1
        if i < len(toks) and toks[i].token_type == TokenType.ALL:
            overwrite = "ALL"
            i += 1
        elif i < len(toks) and toks[i].token_type == TokenType.WHERE:
            j = _find_query_start(toks, i + 1)
            overwrite = text[toks[i + 1].start: toks[j - 1].end + 1]
            i = j
        else:
            raise InvalidInput(
                "Missing time chunk information in OVERWRITE clause for REPLACE. Use OVERWRITE WHERE <__time based "
                "condition> or OVERWRITE ALL to overwrite the entire table.")
    elif i < len(toks) and toks[i].token_type == TokenType.OVERWRITE:
        raise InvalidInput("An OVERWRITE clause is not allowed with INSERT statements. Use REPLACE statements if "
                           "overwriting existing segments is required or remove the OVERWRITE clause.")

    part_at = clus_at = None
    for k in _top_level(toks, i):
        if toks[k].token_type == TokenType.PARTITION_BY and part_at is None:
            part_at = k
        elif toks[k].text.upper() == "CLUSTERED" and k + 1 < len(toks) and toks[k + 1].text.upper() == "BY":
            clus_at = k
    if part_at is None:
        raise InvalidInput(f"Operation [{kind}] requires a PARTITIONED BY to be explicitly defined, but none was found.")
    if clus_at is not None and clus_at < part_at:
        raise InvalidInput("CLUSTERED BY found before PARTITIONED BY, CLUSTERED BY must come after the PARTITIONED BY clause")
    if part_at == i:
        raise InvalidInput(f"Operation [{kind}] requires a SELECT query")
    select_text = text[toks[i].start: toks[part_at - 1].end + 1]
    part_end = clus_at if clus_at is not None else len(toks)
    if part_end == part_at + 1:
        raise InvalidInput(f"Invalid granularity [] specified after PARTITIONED BY clause. {_GRANULARITY_HELP}")
    part_text = text[toks[part_at + 1].start: toks[part_end - 1].end + 1]
    gran = parse_granularity(part_text)
    clustered: list[exp.Expression] = []
    if clus_at is not None:
        if clus_at + 2 >= len(toks):
            raise InvalidInput("CLUSTERED BY clause must not be empty")
        clus_text = text[toks[clus_at + 2].start: toks[-1].end + 1]
        order = parse_sql("", f"SELECT 1 ORDER BY {clus_text}").args["order"]
        for item in order.expressions:
            if item.args.get("desc"):
                raise InvalidInput(f"Invalid CLUSTERED BY clause [{item.sql(DIALECT)}]: cannot sort in descending order.")
            clustered.append(item.this)

    select = parse_sql(select_text)
    if not isinstance(select, exp.Query):
        raise InvalidInput(f"Operation [{kind}] requires a SELECT query")
    return Statement(kind, full_sql, select, target=target, overwrite=overwrite, partitioned_by=gran,
                     clustered_by=clustered, settings=settings)


def _top_level(toks, start: int):
    """Indexes of the tokens from ``start`` on that are outside any parentheses."""
    depth = 0
    for k in range(start, len(toks)):
        tt = toks[k].token_type
        if tt == TokenType.L_PAREN:
            depth += 1
        elif tt == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0:
            yield k


def _find_query_start(toks, i: int) -> int:
    for k in _top_level(toks, i):
        if toks[k].token_type in (TokenType.SELECT, TokenType.WITH):
            return k
    raise InvalidInput("Missing SELECT query after the OVERWRITE WHERE clause")


def parse_granularity(text: str) -> Granularity:
    """``DAY`` / ``ALL TIME`` / ``FLOOR(__time TO DAY)`` / ``TIME_FLOOR(__time, 'P1D')`` / ``'P1D'``."""
    bad = InvalidInput(f"Invalid granularity[{text}] specified after PARTITIONED BY clause. {_GRANULARITY_HELP}")
    g = granularity(text)
    if g is not None and not text.strip().startswith("'"):
        return g
    node = parse_sql("", f"SELECT {text}").expressions[0]
    if isinstance(node, exp.Literal) and node.is_string:
        g = granularity(node.this)
    elif isinstance(node, exp.Floor) and node.args.get("to") is not None:
        _check_time_arg(node.this, bad)
        g = granularity(node.args["to"].name)
    elif isinstance(node, exp.Anonymous) and node.name.upper() == "TIME_FLOOR":
        args = node.expressions
        if len(args) != 2 or not (isinstance(args[1], exp.Literal) and args[1].is_string):
            raise bad
        _check_time_arg(args[0], bad)
        g = granularity(args[1].this)
    elif isinstance(node, exp.Column):
        g = granularity(node.name)
    if g is None:
        raise bad
    return g


def _check_time_arg(node, bad):
    if not (isinstance(node, exp.Column) and node.name == "__time" and not node.table):
        raise InvalidInput(
            f"Invalid granularity[{node.sql(DIALECT)}] specified after PARTITIONED BY clause: the first argument "
            "must be the __time column") from None
