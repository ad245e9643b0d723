"""``flattenSpec``: Druid's JSONPathSpec over nested records.

Field types: ``root`` (a top-level field), ``path`` (JsonPath, the Jayway subset below),
``jq`` (the jackson-jq subset below) and ``tree`` (``nodes``: a list of field names).
``useFieldDiscovery`` (default true) also exposes every top-level field by its name.

JsonPath subset: ``$``, ``.name``, ``['name']``/``["name"]``, ``[n]`` (negative counts from
the end), ``[*]``/``.*``, ``..name`` (deep scan), and a trailing function ``length()``,
``min()``, ``max()``, ``avg()``, ``sum()``, ``first()``, ``last()`` or ``keys()``.
jq subset: ``.name``, ``.["name"]``, ``.[n]``, ``.name[n]``, ``.[]`` and ``| length``.
Anything else is refused at submit time (``InvalidInput``).
"""
from __future__ import annotations

import re
from typing import Any

from msqcore.errors import InvalidInput

_FUNCTIONS = ("length", "min", "max", "avg", "sum", "first", "last", "keys")
_TOKEN = re.compile(r"""
    \.\.(?P<deep>[A-Za-z_$@][\w$@-]*|\*)        # ..name deep scan
  | \.(?P<fn>length|min|max|avg|sum|first|last|keys)\(\)\s*$
  | \.(?P<name>[A-Za-z_$@][\w$@-]*)             # .name
  | \.\*(?P<star1>)                             # .*
  | \[\s*\*\s*\](?P<star2>)                     # [*]
  | \[\s*(?P<index>-?\d+)\s*\]                  # [n]
  | \[\s*'(?P<q1>(?:[^'\\]|\\.)*)'\s*\]         # ['name']
  | \[\s*"(?P<q2>(?:[^"\\]|\\.)*)"\s*\]         # ["name"]
""", re.X)


def compile_path(expr: str) -> list[tuple[str, Any]]:
    """A JsonPath expression → steps; raises InvalidInput for what is not supported."""
    text = expr.strip()
    if not text.startswith("$"):
        raise InvalidInput(f"Invalid JsonPath [{expr}]: it must start with $")
    steps, pos = [], 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise InvalidInput(f"Unsupported JsonPath [{expr}] at [{text[pos:]}]")
        if m.group("deep") is not None:
            steps.append(("deep", m.group("deep")))
        elif m.group("fn") is not None:
            steps.append(("fn", m.group("fn")))
        elif m.group("name") is not None:
            steps.append(("key", m.group("name")))
        elif m.group("star1") is not None or m.group("star2") is not None:
            steps.append(("wild", None))
        elif m.group("index") is not None:
            steps.append(("index", int(m.group("index"))))
        else:
            quoted = m.group("q1") if m.group("q1") is not None else m.group("q2")
            steps.append(("key", re.sub(r"\\(.)", r"\1", quoted)))
        pos = m.end()
    return steps


_JQ_TOKEN = re.compile(r"""
    \.(?P<name>[A-Za-z_][\w]*)
  | \.?\[\s*"(?P<quoted>(?:[^"\\]|\\.)*)"\s*\]
  | \.?\[\s*(?P<index>-?\d+)\s*\]
  | \.?\[\s*\](?P<all>)
""", re.X)


def compile_jq(expr: str) -> list[tuple[str, Any]]:
    text = expr.strip()
    length = False
    if "|" in text:
        text, _, tail = text.partition("|")
        if tail.strip() != "length":
            raise InvalidInput(f"Unsupported jq expression [{expr}]: only '| length' may follow a path")
        text, length = text.strip(), True
    if text == ".":
        steps: list[tuple[str, Any]] = []
    else:
        if not text.startswith("."):
            raise InvalidInput(f"Unsupported jq expression [{expr}]: it must start with .")
        steps, pos = [], 0
        while pos < len(text):
            m = _JQ_TOKEN.match(text, pos)
            if m is None:
                raise InvalidInput(f"Unsupported jq expression [{expr}] at [{text[pos:]}]")
            if m.group("name") is not None:
                steps.append(("key", m.group("name")))
            elif m.group("quoted") is not None:
                steps.append(("key", re.sub(r"\\(.)", r"\1", m.group("quoted"))))
            elif m.group("index") is not None:
                steps.append(("index", int(m.group("index"))))
            else:
                steps.append(("wild", None))
            pos = m.end()
    if length:
        steps.append(("fn", "length"))
    return steps


def _deep(value, name: str, out: list) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if name == "*" or k == name:
                out.append(v)
            _deep(v, name, out)
    elif isinstance(value, list):
        for v in value:
            _deep(v, name, out)


def evaluate(steps: list[tuple[str, Any]], value):
    """Walk ``value`` along the steps; a missing step gives None (Druid reads null)."""
    values, multi = [value], False
    for kind, arg in steps:
        if kind == "fn":
            return _function(arg, values if multi else values[0])
        nxt = []
        for v in values:
            if kind == "key":
                if isinstance(v, dict) and arg in v:
                    nxt.append(v[arg])
                elif not multi:
                    return None
            elif kind == "index":
                if isinstance(v, list) and -len(v) <= arg < len(v):
                    nxt.append(v[arg])
                elif not multi:
                    return None
            elif kind == "wild":
                if isinstance(v, list):
                    nxt.extend(v)
                elif isinstance(v, dict):
                    nxt.extend(v.values())
                multi = True
            else:  # deep
                _deep(v, arg, nxt)
                multi = True
        values = nxt
    if multi:
        return values
    return values[0] if values else None


def _function(name: str, value):
    if value is None:
        return None
    if name == "length":
        return len(value) if isinstance(value, (list, dict, str)) else None
    if name == "keys":
        return list(value) if isinstance(value, dict) else None
    if not isinstance(value, list) or not value:
        return None
    if name == "first":
        return value[0]
    if name == "last":
        return value[-1]
    nums = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not nums:
        return None
    if name == "min":
        return float(min(nums))
    if name == "max":
        return float(max(nums))
    if name == "sum":
        return float(sum(nums))
    return float(sum(nums)) / len(nums)  # avg


class Flattener:
    """A compiled flattenSpec. ``trivial`` when it only names root fields (no paths)."""

    def __init__(self, spec: dict | None, *, allow_jq: bool = True, fmt: str = "json"):
        spec = spec or {}
        if not isinstance(spec, dict):
            raise InvalidInput("flattenSpec must be a JSON object")
        self.discovery = spec.get("useFieldDiscovery", True) is not False
        self.fields: list[tuple[str, list | None]] = []  # (name, steps); None steps = root field
        for f in spec.get("fields") or []:
            if not isinstance(f, dict) or not f.get("name"):
                raise InvalidInput("Each flattenSpec field needs a [name]")
            kind = f.get("type", "path")
            name = f["name"]
            if kind == "root":
                self.fields.append((name, None))
            elif kind == "path":
                self.fields.append((name, compile_path(str(f.get("expr", "")))))
            elif kind == "jq":
                if not allow_jq:
                    raise InvalidInput(f"flattenSpec field type [jq] is not supported by the [{fmt}] inputFormat; "
                                       "use [path]")
                self.fields.append((name, compile_jq(str(f.get("expr", "")))))
            elif kind == "tree":
                nodes = f.get("nodes")
                if not isinstance(nodes, list) or not nodes:
                    raise InvalidInput(f"flattenSpec tree field [{name}] needs [nodes]")
                self.fields.append((name, [("key", str(n)) for n in nodes]))
            else:
                raise InvalidInput(f"Unknown flattenSpec field type [{kind}]; known: root, path, jq, tree")
        self.trivial = all(steps is None for _, steps in self.fields)
        self.root_names = [n for n, steps in self.fields if steps is None]

    def visible_root(self, name: str) -> bool:
        """Whether a top-level field is readable under its own name (trivial specs only)."""
        return self.discovery or name in self.root_names

    def flatten(self, row: dict) -> dict:
        out = dict(row) if self.discovery else {}
        for name, steps in self.fields:
            out[name] = row.get(name) if steps is None else evaluate(steps, row)
        return out
