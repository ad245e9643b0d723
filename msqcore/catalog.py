"""The SQL catalog beyond datasources: ``INFORMATION_SCHEMA``, ``sys`` and ``lookup`` tables.

Druid's Broker exposes four schemas: ``druid`` (datasources), ``INFORMATION_SCHEMA``
(``SCHEMATA``, ``TABLES``, ``COLUMNS``), ``sys`` (``segments``, ``server_segments``, ``tasks``)
and ``lookup`` (one two-column table per lookup). The planner resolves ``FROM <name>`` through
a catalog's ``table_signature``; ``SqlCatalog`` answers for the virtual tables first and then for
datasources. Schema-qualified virtual tables are renamed in the parsed query to one quoted
name (``"INFORMATION_SCHEMA.TABLES"``) so the planner sees a plain table, and the cluster's SQL
path reads their rows from ``SystemTables.table``.

Column sets, types and values follow Druid's ``InformationSchema`` and ``SystemSchema``
(names are case-sensitive, as in Druid).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from msqcore.planner.expressions import arrow_type

if TYPE_CHECKING:
    from msqcore.cluster import Cluster

CATALOG_NAME = "druid"
VIRTUAL_SCHEMAS = ("INFORMATION_SCHEMA", "sys", "lookup")

_S, _L = "VARCHAR", "BIGINT"

SCHEMATA_SIGNATURE = [("CATALOG_NAME", _S), ("SCHEMA_NAME", _S), ("SCHEMA_OWNER", _S),
                      ("DEFAULT_CHARACTER_SET_CATALOG", _S), ("DEFAULT_CHARACTER_SET_SCHEMA", _S),
                      ("DEFAULT_CHARACTER_SET_NAME", _S), ("SQL_PATH", _S)]
TABLES_SIGNATURE = [("TABLE_CATALOG", _S), ("TABLE_SCHEMA", _S), ("TABLE_NAME", _S), ("TABLE_TYPE", _S),
                    ("IS_JOINABLE", _S), ("IS_BROADCAST", _S)]
COLUMNS_SIGNATURE = [("TABLE_CATALOG", _S), ("TABLE_SCHEMA", _S), ("TABLE_NAME", _S), ("COLUMN_NAME", _S),
                     ("ORDINAL_POSITION", _S), ("COLUMN_DEFAULT", _S), ("IS_NULLABLE", _S), ("DATA_TYPE", _S),
                     ("CHARACTER_MAXIMUM_LENGTH", _S), ("CHARACTER_OCTET_LENGTH", _S), ("NUMERIC_PRECISION", _S),
                     ("NUMERIC_PRECISION_RADIX", _S), ("NUMERIC_SCALE", _S), ("DATETIME_PRECISION", _S),
                     ("CHARACTER_SET_NAME", _S), ("COLLATION_NAME", _S), ("JDBC_TYPE", _L)]
SEGMENTS_SIGNATURE = [("segment_id", _S), ("datasource", _S), ("start", _S), ("end", _S), ("size", _L),
                      ("version", _S), ("partition_num", _L), ("num_replicas", _L), ("num_rows", _L),
                      ("is_active", _L), ("is_published", _L), ("is_available", _L), ("is_realtime", _L),
                      ("is_overshadowed", _L), ("shard_spec", _S), ("dimensions", _S), ("metrics", _S),
                      ("last_compaction_state", _S), ("replication_factor", _L)]
SERVERS_SIGNATURE = [("server", _S), ("host", _S), ("plaintext_port", _L), ("tls_port", _L), ("server_type", _S),
                     ("tier", _S), ("curr_size", _L), ("max_size", _L), ("is_leader", _L), ("start_time", _S)]
SERVER_SEGMENTS_SIGNATURE = [("server", _S), ("segment_id", _S)]
# The one msqcore process plays every Druid service; Druid lists one sys.servers row per service.
_SERVICES = ("coordinator", "overlord", "broker", "historical", "indexer")
TASKS_SIGNATURE = [("task_id", _S), ("group_id", _S), ("type", _S), ("datasource", _S), ("created_time", _S),
                   ("queue_insertion_time", _S), ("status", _S), ("runner_status", _S), ("duration", _L),
                   ("location", _S), ("host", _S), ("plaintext_port", _L), ("tls_port", _L), ("error_msg", _S)]
LOOKUP_SIGNATURE = [("k", _S), ("v", _S)]

_FIXED = {
    "INFORMATION_SCHEMA.SCHEMATA": SCHEMATA_SIGNATURE,
    "INFORMATION_SCHEMA.TABLES": TABLES_SIGNATURE,
    "INFORMATION_SCHEMA.COLUMNS": COLUMNS_SIGNATURE,
    "sys.segments": SEGMENTS_SIGNATURE,
    "sys.servers": SERVERS_SIGNATURE,
    "sys.server_segments": SERVER_SEGMENTS_SIGNATURE,
    "sys.tasks": TASKS_SIGNATURE,
}

# java.sql.Types codes (JDBC_TYPE) and Calcite's default precision/scale for each SQL type.
_JDBC = {"TIMESTAMP": 93, "VARCHAR": 12, "BIGINT": -5, "FLOAT": 6, "DOUBLE": 8, "BOOLEAN": 16}
_PRECISION = {"BIGINT": "19", "FLOAT": "15", "DOUBLE": "15"}
_SCALE = {"BIGINT": "0", "FLOAT": "-2147483648", "DOUBLE": "-2147483648"}
_CHARSET = "UTF-16LE"
_COLLATION = "UTF-16LE$en_US$primary"


def virtual_key(schema: str, name: str) -> str | None:
    """The catalog key of ``schema.name`` if it is one of the virtual schemas."""
    return f"{schema}.{name}" if schema in VIRTUAL_SCHEMAS else None


def rewrite_virtual_tables(select: exp.Expression) -> exp.Expression:
    """Rename ``INFORMATION_SCHEMA.X`` / ``sys.x`` / ``lookup.x`` table references to a single
    quoted identifier the planner resolves through ``SqlCatalog.table_signature``."""

    def fix(node):
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier) \
                and node.args.get("db") is not None and not node.args.get("catalog"):
            key = virtual_key(node.args["db"].name, node.name)
            if key is not None:
                new = node.copy()
                new.set("db", None)
                new.set("this", exp.to_identifier(key, quoted=True))
                return new
        return node

    return select.transform(fix)


def arrow_table(signature: list[tuple[str, str]], rows: list[tuple]) -> pa.Table:
    columns = list(zip(*rows)) if rows else [() for _ in signature]
    return pa.table([pa.array(list(c), arrow_type(t)) for c, (_, t) in zip(columns, signature)],
                    names=[n for n, _ in signature])


def _column_row(schema: str, table: str, index: int, name: str, sql_type: str) -> tuple:
    numeric = sql_type in _PRECISION
    char = sql_type == "VARCHAR"
    return (CATALOG_NAME, schema, table, name, str(index), "",
            "NO" if (schema == "druid" and name == "__time") else "YES", sql_type, None, None,
            _PRECISION.get(sql_type), "10" if numeric else None, _SCALE.get(sql_type),
            "3" if sql_type == "TIMESTAMP" else None, _CHARSET if char else None, _COLLATION if char else None,
            _JDBC.get(sql_type, 1111))


class SystemTables:
    """Rows of the virtual tables, computed from the cluster's current state."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    # --- resolution ---------------------------------------------------------------------------

    def lookup_names(self) -> list[str]:
        return self.cluster.lookups.sql_names()

    def signature(self, key: str) -> list[tuple[str, str]] | None:
        if key in _FIXED:
            return list(_FIXED[key])
        if key.startswith("lookup.") and key[len("lookup."):] in self.lookup_names():
            return list(LOOKUP_SIGNATURE)
        return None

    def table(self, key: str) -> pa.Table:
        signature = self.signature(key)
        if signature is None:
            raise KeyError(key)
        if key.startswith("lookup."):
            mapping = self.cluster.lookup(key[len("lookup."):])
            return arrow_table(signature, sorted(mapping.items()))
        rows = {
            "INFORMATION_SCHEMA.SCHEMATA": self._schemata,
            "INFORMATION_SCHEMA.TABLES": self._tables,
            "INFORMATION_SCHEMA.COLUMNS": self._columns,
            "sys.segments": self._segments,
            "sys.servers": self._servers,
            "sys.server_segments": self._server_segments,
            "sys.tasks": self._tasks,
        }[key]()
        return arrow_table(signature, rows)

    # --- INFORMATION_SCHEMA ---------------------------------------------------------------------

    def _all_tables(self) -> list[tuple[str, str, str, bool]]:
        """(schema, name, TABLE_TYPE, joinable) of every table, in Druid's schema order."""
        out = [("druid", ds, "TABLE", False) for ds in self.cluster.datasources()]
        out += [("INFORMATION_SCHEMA", t, "SYSTEM_TABLE", False) for t in ("COLUMNS", "SCHEMATA", "TABLES")]
        out += [("lookup", name, "TABLE", True) for name in self.lookup_names()]
        out += [("sys", t, "SYSTEM_TABLE", False) for t in ("segments", "server_segments", "servers", "tasks")]
        return out

    def _schemata(self) -> list[tuple]:
        return [(CATALOG_NAME, s, None, None, None, None, None)
                for s in ("druid", "INFORMATION_SCHEMA", "lookup", "sys")]

    def _tables(self) -> list[tuple]:
        return [(CATALOG_NAME, schema, name, kind, "YES" if joinable else "NO", "YES" if joinable else "NO")
                for schema, name, kind, joinable in self._all_tables()]

    def _columns(self) -> list[tuple]:
        rows = []
        for schema, name, _, _ in self._all_tables():
            if schema == "druid":
                signature = self.cluster.table_signature(name) or []
            else:
                signature = self.signature(f"{schema}.{name}") or []
            rows += [_column_row(schema, name, i, col, t) for i, (col, t) in enumerate(signature)]
        return rows

    # --- sys ----------------------------------------------------------------------------------------

    def _server(self) -> str:
        return f"{self.cluster.config.host}:{self.cluster.config.port}"

    def _segments(self) -> list[tuple]:
        from msqcore.timeutil import iso
        segments = self.cluster.metadata.used_segments()
        by_datasource: dict[str, list] = {}
        for seg in segments:
            by_datasource.setdefault(seg.payload["dataSource"], []).append(seg)
        rows = []
        for seg in segments:
            p = seg.payload
            # overshadowed: a used segment of a later version covers its whole interval
            overshadowed = any(o.version > seg.version and o.start <= seg.start and o.end >= seg.end
                               for o in by_datasource[p["dataSource"]])
            num_rows = 0 if seg.is_tombstone else self._num_rows(p)
            rows.append((
                p["identifier"], p["dataSource"], iso(seg.start), iso(seg.end), int(p.get("size", 0)), seg.version,
                seg.partition_num, 1, num_rows, 0 if overshadowed else 1, 1, 1, 0, 1 if overshadowed else 0,
                _jackson(p.get("shardSpec")), _jackson(_names(p.get("dimensions"))),
                _jackson(_names(p.get("metrics"))),
                _jackson(p["lastCompactionState"]) if p.get("lastCompactionState") is not None else None, 1))
        return rows

    def _num_rows(self, payload: dict) -> int:
        try:
            return int(self.cluster._meta(payload)["numRows"])
        except (OSError, ValueError, KeyError):
            return 0  # Druid shows 0 while it does not know a segment's row count

    def _servers(self) -> list[tuple]:
        """Druid's rows per service: data servers (historical) carry tier and sizes, the
        leader-elected ones (coordinator, overlord) ``is_leader``; the rest have nulls there."""
        import shutil
        from msqcore.timeutil import iso
        config = self.cluster.config
        used = sum(int(s.payload.get("size", 0)) for s in self.cluster.metadata.used_segments())
        capacity = shutil.disk_usage(self.cluster.config.data_dir).total
        rows = []
        for service in _SERVICES:
            data = service == "historical"
            rows.append((self._server(), config.host, config.port, -1, service, "_default_tier" if data else None,
                         used if data else None, capacity if data else None,
                         1 if service in ("coordinator", "overlord") else None, iso(self.cluster.started_millis)))
        return rows

    def _server_segments(self) -> list[tuple]:
        server = self._server()
        return [(server, s.payload["identifier"]) for s in self.cluster.metadata.used_segments()]

    def _tasks(self) -> list[tuple]:
        rows = []
        for t in self.cluster.list_tasks():
            loc = t.get("location") or {}
            host = loc.get("host")
            port = loc.get("port", -1)
            rows.append((t["id"], t["groupId"], t["type"], t["dataSource"], t["createdTime"],
                         t["queueInsertionTime"], t["statusCode"], t["runnerStatusCode"],
                         0 if t["duration"] is None else t["duration"],
                         f"{host}:{port}" if host else None, host, port, loc.get("tlsPort", -1), t["errorMsg"]))
        return rows


def _names(text) -> list[str]:
    if isinstance(text, list):
        return text
    return [n for n in (text or "").split(",") if n]


def _jackson(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SqlCatalog:
    """The planner's catalog for ``/druid/v2/sql``: virtual tables, then datasources."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.system = SystemTables(cluster)

    def table_signature(self, name: str) -> list[tuple[str, str]] | None:
        signature = self.system.signature(name)
        if signature is not None:
            return signature
        return self.cluster.table_signature(name)

    def lookup(self, name: str) -> dict:
        """The map of a lookup, for LOOKUP()."""
        return self.cluster.lookup(name)


# --- EXPLAIN PLAN FOR --------------------------------------------------------------------------------

EXPLAIN_SIGNATURE = [("PLAN", "VARCHAR"), ("RESOURCES", "VARCHAR"), ("ATTRIBUTES", "VARCHAR")]


def split_explain(sql: str) -> tuple[bool, str]:
    """(True, statement) for ``EXPLAIN PLAN FOR <statement>``, else (False, sql)."""
    import re
    m = re.match(r"((?:\s*--[^\n]*\n|\s*/\*.*?\*/|\s*SET\s+(?:'(?:[^']|'')*'|[^;'])*;)*)\s*EXPLAIN\s+PLAN\s+FOR\s+",
                 sql, re.IGNORECASE | re.DOTALL)
    if m is None:
        return False, sql
    return True, m.group(1) + "\n" + sql[m.end():]  # SET statements stay in front of the statement


def _resources(query) -> list[dict]:
    from msqcore.planner.query import ExternalSource, JoinSource, LogicalQuery, TableSource
    source = query.source
    if isinstance(source, JoinSource):  # every input's, once each, in Druid's name order
        out = []
        for s in source.inputs():
            out += [r for r in _resources(LogicalQuery(s, None, [])) if r not in out]
        return sorted(out, key=lambda r: (r["name"], r["type"]))
    if isinstance(source, ExternalSource):
        return [{"name": "EXTERNAL", "type": "EXTERNAL"}]
    if isinstance(source, TableSource):
        name = source.datasource
        if name.startswith("sys."):
            return [{"name": name[len("sys."):], "type": "SYSTEM_TABLE"}]
        if name.startswith(("INFORMATION_SCHEMA.", "lookup.")):
            return []
        return [{"name": name, "type": "DATASOURCE"}]
    return []


def explain_select(query, context: dict) -> list[tuple]:
    """The EXPLAIN row of a SELECT on the SQL endpoint: the native query Druid's Broker runs."""
    from msqcore.planner.expressions import native_type
    from msqcore.planner.native import native_query
    ctx = {k: v for k, v in context.items() if not k.startswith("__")}
    native, mappings = native_query(query, dict(sorted(ctx.items())), order_by=query.order_by or None)
    types = dict(query.output)
    plan = [{"query": native,
             "signature": [{"name": q, "type": native_type(types[o])} for q, o in mappings],
             "columnMappings": [{"queryColumn": q, "outputColumn": o} for q, o in mappings]}]
    return [(_jackson(plan), _jackson(_resources(query)), _jackson({"statementType": "SELECT"}))]


def explain_task(plan) -> list[tuple]:
    """The EXPLAIN row of a statement on the task endpoint: the MSQ query and its attributes."""
    payload = plan.payload
    spec = payload["spec"]
    native_types = payload["nativeTypeNames"]
    signature = [{"name": m["queryColumn"], "type": native_types[i]} for i, m in enumerate(spec["columnMappings"])]
    explained = [{"query": spec["query"], "signature": signature, "columnMappings": spec["columnMappings"]}]
    resources = _resources(plan.query)
    attributes: dict = {"statementType": plan.kind}
    if plan.is_ingest:
        sql_ctx = payload["sqlQueryContext"]
        resources = resources + [{"name": plan.datasource, "type": "DATASOURCE"}]
        attributes["targetDataSource"] = plan.datasource
        attributes["partitionedBy"] = json.loads(sql_ctx["sqlInsertSegmentGranularity"])
        if plan.cluster_by:
            attributes["clusteredBy"] = list(plan.cluster_by)
        if plan.kind == "REPLACE":
            attributes["replaceTimeChunks"] = sql_ctx.get("sqlReplaceTimeChunks")
    return [(_jackson(explained), _jackson(resources), _jackson(attributes))]
