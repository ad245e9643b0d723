"""From a Druid SQL request to a ``TaskPlan``: validation, the controller task payload and
the stages (what the report's ``stages[].definition`` shows and what the engine runs).

Stage shapes follow Druid's QueryKit (spec §5.4):

* ingest scan:       0 scan (targetSize on [__bucket, CLUSTERED BY..., __boost]) → 1 segmentGenerator
* ingest GROUP BY:   0 groupByPreShuffle (hash) → 1 groupByPostShuffle (targetSize) → 2 segmentGenerator
* SELECT:            0 scan (mix / maxCount 1) [→ 1 limit]
* SELECT GROUP BY:   0 groupByPreShuffle (hash) → 1 groupByPostShuffle (maxCount 1)

``hash`` deals the partial groups to ``maxNumTasks - 1`` partitions, so the post-shuffle
stage runs on every worker of the leaf stage.
"""
from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field

from sqlglot import exp

from msqcore.errors import ColumnNameRestricted, Fault, InvalidInput, TooManyClusteredByColumns, TooManyColumns
from msqcore.inputs.formats import normalize_input_format, validate_input_format
from msqcore.inputs.sources import validate_input_source
from msqcore.planner import arrays, join_stages
from msqcore.planner.expressions import HYPER_UNIQUE, PAIR_TYPES, Call, ColumnRef, native_type, sql_type_name
from msqcore.planner.native import base_query, datasource_json, native_query, with_unnest
from msqcore.planner.overwrite import overwrite_intervals
from msqcore.planner.query import (Catalog, ExternalSource, JoinSource, LogicalQuery, LookupSource, QuerySource,
                                   UnionSource, compile_query, leaf_sources)
from msqcore.planner.statement import DIALECT, Statement, split_statement
from msqcore.storage.segment import dimension_schema
from msqcore.timeutil import (ETERNITY, ETERNITY_END, ETERNITY_START, GRANULARITIES, Granularity, granularity,
                              interval_text, now_millis)

DEFAULT_ROWS_PER_SEGMENT = 3_000_000
MAX_COLUMNS = 2000  # per stage signature (TooManyColumns)
MAX_CLUSTERED_BY_COLUMNS = 1500
DEFAULT_ROWS_IN_MEMORY = 100_000
SELECT_DATASOURCE = "__query_select"


@dataclass
class StagePlan:
    number: int
    kind: str  # scan | groupByPreShuffle | groupByPostShuffle | limit | window | sortMergeJoin | segmentGenerator
    input_stage: int | None  # None: reads the query's source
    shuffle: str | None  # targetSize | maxCount | hash | mix | None (final stage)
    sort: bool
    definition: dict
    query: LogicalQuery | None = None  # what the stage runs, when not the statement's query (join inputs)
    # a leaf stage of a broadcast join: per right input, ("stage", n) | ("lookup", name) | ("inline", source)
    broadcast: list = field(default_factory=list)
    join_inputs: list[int] = field(default_factory=list)  # sortMergeJoin: the left and right stages
    join_index: int | None = None  # sortMergeJoin: which JoinClause of the query's JoinSource
    # a join input's ``hash`` shuffle on key expressions rather than output columns: (column prefix,
    # the key expressions over the output renamed with the prefix); see ``join_stages._hash``
    hash_keys: tuple[str, list] | None = None


@dataclass
class TaskPlan:
    task_id: str
    query_id: str
    kind: str  # INSERT | REPLACE | SELECT
    datasource: str
    query: LogicalQuery
    context: dict
    granularity: Granularity
    cluster_by: list[str]
    dimensions: list[str]
    rows_per_segment: int
    max_workers: int
    stages: list[StagePlan]
    payload: dict
    fault: Fault | None = None  # a fault Druid raises at run time, known at plan time
    start_millis: int = field(default_factory=now_millis)
    replace_intervals: list[tuple[int, int]] | None = None  # REPLACE: the time chunks it overwrites
    metrics: list[str] = field(default_factory=list)  # rollup metric columns
    sort_order: list[str] = field(default_factory=list)  # in-segment row order (spec §8)

    @property
    def output(self) -> list[tuple[str, str]]:
        return self.query.output

    @property
    def is_ingest(self) -> bool:
        return self.kind != "SELECT"


def _int_context(context: dict, key: str, default: int | None) -> int | None:
    value = context.get(key, default)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"Expected key [{key}] to be an integer, but got [{value}]") from None


def bool_context(context: dict, key: str, default: bool) -> bool:
    """Context values may be JSON booleans or strings ("true")."""
    value = context.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidInput(f"Expected key [{key}] to be a boolean, but got [{value}]")


def _list_context(context: dict, key: str) -> list[str]:
    """A comma-separated list or a JSON array in string form (segmentSortOrder)."""
    value = context.get(key)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"Expected key [{key}] to be a list of column names, but got [{context.get(key)}]")
    return value


def plan_task(sql: str, context: dict | None, parameters: list | None, catalog: Catalog) -> TaskPlan:
    if context is not None and not isinstance(context, dict):
        raise InvalidInput("Query context must be a JSON object")
    if parameters is not None and not isinstance(parameters, list):
        raise InvalidInput("Query parameters must be a JSON array")
    statement = split_statement(sql)
    # SET statements win over the request context (spec §3).
    ctx = dict(context or {})
    ctx.update(statement.settings)
    query_id = str(ctx.get("sqlQueryId") or uuid.uuid4())
    task_id = f"query-{query_id}"
    start = now_millis()
    ctx["sqlQueryId"] = query_id
    max_num_tasks = _int_context(ctx, "maxNumTasks", 2)
    if max_num_tasks < 2:
        raise InvalidInput(f"MSQ context maxNumTasks [{max_num_tasks}] cannot be less than 2, since at least 1 "
                           "controller and 1 worker is necessary.")
    rows_per_segment = _int_context(ctx, "rowsPerSegment", DEFAULT_ROWS_PER_SEGMENT)
    if rows_per_segment < 1:
        raise InvalidInput(f"rowsPerSegment must be positive, got [{rows_per_segment}]")
    # SQL submissions are strict (0) unless mode=nonStrict (unlimited), as in Druid.
    ctx.setdefault("maxParseExceptions", -1 if str(ctx.get("mode", "strict")).lower() == "nonstrict" else 0)
    if _int_context(ctx, "maxParseExceptions", 0) < -1:
        raise InvalidInput(f"Invalid value [{ctx['maxParseExceptions']}] for [maxParseExceptions]; it must be -1 "
                           "(unlimited) or more")
    if str(ctx.get("taskAssignment", "max")).lower() not in ("max", "auto"):
        raise InvalidInput(f"Unsupported value [{ctx['taskAssignment']}] for [taskAssignment]; "
                           "expected one of [max, auto]")

    query = compile_query(statement.select, catalog, parameters,
                          dict(ctx, __startTimeMillis=start))
    for source in leaf_sources(query.source):
        if isinstance(source, ExternalSource):
            validate_input_source(source.input_source)
            validate_input_format(source.input_format)
            source.input_format = normalize_input_format(source.input_format)

    if statement.kind == "SELECT":
        return _plan_select(statement, query, ctx, task_id, query_id, max_num_tasks, start)
    arrays.check_array_ingest(query, ctx)
    arrays.check_type_changes(catalog.table_signature(statement.target), query.output, ctx,
                              _list_context(ctx, "skipTypeVerification"))
    return _plan_ingest(statement, query, ctx, task_id, query_id, max_num_tasks, rows_per_segment, start)


def _validate_ingest(statement: Statement, query: LogicalQuery) -> Fault | None:
    kind = statement.kind
    select = statement.select
    if select.args.get("order") is not None:
        raise InvalidInput(f"Cannot use an ORDER BY clause on a Query of type [{kind}], use CLUSTERED BY instead")
    if select.args.get("offset") is not None:
        raise InvalidInput(f"{kind} and REPLACE queries cannot have an OFFSET.")
    if select.args.get("limit") is not None and not statement.partitioned_by.is_all:
        raise InvalidInput("INSERT and REPLACE queries cannot have a LIMIT unless PARTITIONED BY is \"ALL\".")
    names = dict(query.output)
    if "__time" in names and names["__time"] != "TIMESTAMP":
        raise InvalidInput(f"Field[__time] was the wrong type[{names['__time']}], expected TIMESTAMP")
    if "__time" not in names and not statement.partitioned_by.is_all:
        raise InvalidInput(
            f"The granularity [{statement.partitioned_by.name}] specified in the PARTITIONED BY clause of the "
            f"{kind} query is different from ALL. Therefore, the query must specify a time column (named __time).")
    for reserved in ("__bucket", "__boost"):
        if reserved in names:
            return ColumnNameRestricted(columnName=reserved)
    if len(names) > MAX_COLUMNS:
        return TooManyColumns(numColumns=len(names), maxColumns=MAX_COLUMNS)
    # the shuffle key: [__bucket] + CLUSTERED BY + __boost
    key_columns = len(statement.clustered_by) + 1 + (0 if statement.partitioned_by.is_all else 1)
    if key_columns > MAX_CLUSTERED_BY_COLUMNS:
        return TooManyClusteredByColumns(numColumns=key_columns, maxColumns=MAX_CLUSTERED_BY_COLUMNS, stage=0)
    return None


def _cluster_columns(statement: Statement, query: LogicalQuery) -> list[str]:
    outputs = [n for n, _ in query.output]
    items = statement.select.expressions
    item_sql = {}
    for i, item in enumerate(items):
        body = item.this if isinstance(item, exp.Alias) else item
        if i < len(outputs):
            item_sql[body.sql(DIALECT)] = outputs[i]
    cols = []
    for node in statement.clustered_by:
        if isinstance(node, exp.Literal) and not node.is_string:
            idx = int(node.this) - 1
            if not 0 <= idx < len(outputs):
                raise InvalidInput(f"Ordinal out of range: {node.this} in CLUSTERED BY")
            col = outputs[idx]
        elif isinstance(node, exp.Column) and node.name in outputs:
            col = node.name
        elif node.sql(DIALECT) in item_sql:
            col = item_sql[node.sql(DIALECT)]
        else:
            raise InvalidInput(f"CLUSTERED BY expression [{node.sql(DIALECT)}] must be a column of the SELECT list")
        if col == "__time":
            continue  # rows are always sorted by __time first
        if col not in cols:
            cols.append(col)
    return cols


def _dimension_spec(name: str, sql_type: str, multi_value: bool) -> dict:
    return dimension_schema(name, native_type(sql_type), keep_order=multi_value)


def _sql_context(ctx: dict, statement: Statement, replace: list[tuple[int, int]] | None = None) -> dict:
    out = dict(ctx)
    if statement.kind != "SELECT":
        g = statement.partitioned_by
        out["sqlInsertSegmentGranularity"] = json.dumps(g.to_json(), separators=(",", ":"))
        if statement.kind == "REPLACE":
            out["sqlReplaceTimeChunks"] = "all" if statement.overwrite == "ALL" else \
                ",".join(interval_text(s, e) for s, e in replace)
    return out


def _base_payload(task_id: str, statement: Statement, sql_ctx: dict, query: LogicalQuery, spec: dict,
                  datasource: str) -> dict:
    return {
        "type": "query_controller",
        "id": task_id,
        "spec": spec,
        "sqlQuery": statement.sql,
        "sqlQueryContext": sql_ctx,
        "sqlResultsContext": {"timeZone": str(sql_ctx.get("sqlTimeZone", "UTC")),
                              "stringifyArrays": bool(sql_ctx.get("sqlStringifyArrays", True))},
        "sqlTypeNames": [sql_type_name(t) for _, t in query.output],
        "nativeTypeNames": [native_type(t) for _, t in query.output],
        "context": {"forceTimeChunkLock": True, "useLineageBasedSegmentAllocation": True},
        "groupId": task_id,
        "dataSource": datasource,
        "resource": {"availabilityGroup": task_id, "requiredCapacity": 1},
    }


def _native_context(sql_ctx: dict) -> dict:
    ctx = dict(sql_ctx)
    ctx.setdefault("finalizeAggregations", True)
    ctx["finalize"] = ctx["finalizeAggregations"]
    ctx["queryId"] = sql_ctx["sqlQueryId"]
    return dict(sorted(ctx.items()))


def input_specs(query: LogicalQuery) -> list[dict]:
    """The leaf stage's inputs: one per table of a union datasource (DataSourcePlan.forUnion);
    a join's base input (its other inputs are broadcast or have stages of their own)."""
    if isinstance(query.source, JoinSource):
        return input_specs(query.source.base)
    if isinstance(query.source, LookupSource):  # no JSON type name in Druid: the class's simple name
        return [{"type": "LookupInputSpec", "lookupName": query.source.name}]
    src = datasource_json(query.source)
    if src["type"] == "table":
        return [{"type": "table", "dataSource": src["name"], "intervals": [ETERNITY]}]
    if src["type"] == "union":
        return [{"type": "table", "dataSource": t["name"], "intervals": [ETERNITY]} for t in src["dataSources"]]
    return [src]


def _partial_type(agg) -> str:
    """An aggregation's type in the pre-shuffle signature (its intermediate state)."""
    if agg.kind == "approx_count_distinct":
        return "COMPLEX<hyperUnique>"
    return "COMPLEX" if agg.kind == "avg" else native_type(agg.sql_type)


def _leaf_datasource(query: LogicalQuery) -> dict:
    """The leaf query's dataSource: its inputs by number."""
    if isinstance(query.source, UnionSource):
        return {"type": "union", "dataSources": [{"type": "inputNumber", "inputNumber": i}
                                                 for i in range(len(query.source.tables))]}
    return {"type": "inputNumber", "inputNumber": 0}


def leaf_stages(query: LogicalQuery, native: dict, query_id: str, max_workers: int,
                 leaf_shuffle: dict | None, leaf_signature: list[dict]) -> list[StagePlan]:
    """Stage 0 (and 1 for GROUP BY): read the source and run the native query on it. A join,
    or a query datasource, adds its inputs' stages in front (``join_stages``)."""
    if isinstance(query.source, JoinSource):
        return join_stages.with_join_inputs(query, native, query_id, max_workers, leaf_shuffle, leaf_signature,
                                            source_stages)
    if isinstance(query.source, QuerySource):
        return join_stages.with_query_input(query, native, query_id, max_workers, leaf_shuffle, leaf_signature,
                                            source_stages)
    return source_stages(query, native, query_id, max_workers, leaf_shuffle, leaf_signature)


def source_stages(query: LogicalQuery, native: dict, query_id: str, max_workers: int, leaf_shuffle: dict | None,
                  leaf_signature: list[dict], inputs: list[dict] | None = None, broadcast: list[int] | None = None,
                  leaf_datasource: dict | None = None) -> list[StagePlan]:
    """The scan, or groupBy pre/post, stages of ``query`` reading ``inputs`` (default: its source)."""
    leaf_native = copy.deepcopy(native)
    leaf_native["dataSource"] = with_unnest(query, leaf_datasource or _leaf_datasource(query))
    inputs = inputs or input_specs(query)
    extra = {"broadcast": broadcast} if broadcast else {}
    stages = []
    if query.is_aggregate:
        pre_sig = [{"name": n, "type": native_type(e.sql_type)} for n, e in query.group_by] + \
                  [{"name": a.name, "type": _partial_type(a)} for a in query.aggregations]
        if query.group_by:
            # Partial groups are hashed by key across every worker of the post-shuffle stage.
            pre_shuffle = {"type": "hash", "clusterBy": {"columns": [
                {"columnName": n, "order": "NONE"} for n, _ in query.group_by]}, "partitions": max_workers}
        else:  # one global group: one partition
            pre_shuffle = {"type": "maxCount", "clusterBy": {"columns": []}, "partitions": 1, "aggregate": True}
        stages.append(StagePlan(0, "groupByPreShuffle", None, pre_shuffle["type"], False, {
            "id": f"{query_id}_0", "input": inputs, **extra,
            "processor": {"type": "groupByPreShuffle", "query": leaf_native},
            "signature": pre_sig, "shuffleSpec": pre_shuffle, "maxWorkerCount": max_workers}))
        post = {"id": f"{query_id}_1", "input": [{"type": "stage", "stage": 0}],
                "processor": {"type": "groupByPostShuffle", "query": leaf_native},
                "signature": leaf_signature, "maxWorkerCount": max_workers}
        if leaf_shuffle is not None:
            post["shuffleSpec"] = leaf_shuffle
        stages.append(StagePlan(1, "groupByPostShuffle", 0, leaf_shuffle and leaf_shuffle["type"],
                                bool(leaf_shuffle and leaf_shuffle.get("clusterBy")), post))
    else:
        d = {"id": f"{query_id}_0", "input": inputs, **extra,
             "processor": {"type": "scan", "query": leaf_native},
             "signature": leaf_signature, "maxWorkerCount": max_workers}
        if leaf_shuffle is not None:
            d["shuffleSpec"] = leaf_shuffle
        if leaf_shuffle and leaf_shuffle["type"] == "targetSize":
            d["shuffleCheckHasMultipleValues"] = True
        stages.append(StagePlan(0, "scan", None, leaf_shuffle and leaf_shuffle["type"],
                                bool(leaf_shuffle and leaf_shuffle.get("clusterBy")), d))
    return stages


def _plan_ingest(statement, query, ctx, task_id, query_id, max_num_tasks, rows_per_segment, start) -> TaskPlan:
    fault = _validate_ingest(statement, query)
    cluster_by = _cluster_columns(statement, query)
    outputs = [n for n, _ in query.output]
    types = dict(query.output)
    metrics, query_granularity = _rollup(query, ctx)
    dims, sort_order = _dimension_order(ctx, cluster_by, [n for n in outputs if n not in metrics])
    granularity = statement.partitioned_by
    replace = None
    if statement.kind == "REPLACE":
        replace = [(ETERNITY_START, ETERNITY_END)] if statement.overwrite == "ALL" else \
            overwrite_intervals(statement.overwrite, granularity, None, ctx)
    sql_ctx = _sql_context(ctx, statement, replace)
    native, mappings = native_query(query, _native_context(sql_ctx))
    to_query = {out: q for q, out in mappings}
    max_workers = max_num_tasks - 1

    key = []
    if not granularity.is_all:
        key.append({"columnName": "__bucket", "order": "ASCENDING"})
    key += [{"columnName": to_query[c], "order": "ASCENDING"} for c in cluster_by]
    key.append({"columnName": "__boost", "order": "ASCENDING"})
    cluster = {"columns": key}
    if not granularity.is_all:
        cluster["bucketByCount"] = 1
    shuffle = {"type": "targetSize", "clusterBy": cluster, "targetSize": rows_per_segment}
    key_names = [k["columnName"] for k in key]
    signature = [{"name": k, "type": "LONG"} if k in ("__bucket", "__boost") else
                 {"name": k, "type": native_type(types[_out(mappings, k)])} for k in key_names]
    signature += [{"name": q, "type": native_type(types[o])} for q, o in mappings if q not in key_names]

    destination = {"type": "dataSource", "dataSource": statement.target,
                   "segmentGranularity": granularity.to_json()}
    if replace is not None:
        destination["replaceTimeChunks"] = [interval_text(s, e) for s, e in replace]
    tuning = {"maxNumWorkers": max_workers,
              "maxRowsInMemory": _int_context(ctx, "rowsInMemory", DEFAULT_ROWS_IN_MEMORY),
              "rowsPerSegment": rows_per_segment}
    max_segments = _int_context(ctx, "maxNumSegments", None)
    if max_segments is not None:
        tuning["maxNumSegments"] = max_segments
    column_mappings = [{"queryColumn": q, "outputColumn": o} for q, o in mappings]
    spec = {"query": native, "columnMappings": column_mappings, "destination": destination,
            "assignmentStrategy": str(ctx.get("taskAssignment", "max")).lower(), "tuningConfig": tuning}
    payload = _base_payload(task_id, statement, sql_ctx, query, spec, statement.target)

    if query.window is not None:  # the window stage sees every row, then shuffles for segments
        base = base_query(query)
        base_signature = [{"name": n, "type": native_type(e.sql_type)} for n, e in base.columns]
        stages = leaf_stages(base, native["dataSource"]["query"], query_id, max_workers, {"type": "mix"},
                              base_signature)
        stages.append(StagePlan(len(stages), "window", len(stages) - 1, "targetSize", True, {
            "id": f"{query_id}_{len(stages)}", "input": [{"type": "stage", "stage": len(stages) - 1}],
            "processor": {"type": "window", "query": native}, "signature": signature, "shuffleSpec": shuffle,
            "maxWorkerCount": 1}))
    else:
        stages = leaf_stages(query, native, query_id, max_workers, shuffle, signature)
    n = len(stages)
    mvd = arrays.mvd_columns(query.output, ctx)
    data_schema = {
        "dataSource": statement.target,
        "timestampSpec": {"column": "__time", "format": "millis", "missingValue": None},
        "dimensionsSpec": {"dimensions": [_dimension_spec(d, types[d], d in mvd) for d in dims],
                           "dimensionExclusions": ["__time"] + list(metrics), "includeAllDimensions": False,
                           "useSchemaDiscovery": False},
        "metricsSpec": list(metrics.values()),
        "granularitySpec": {"type": "arbitrary", "queryGranularity": query_granularity, "rollup": any(m["type"] != "passthrough" for m in metrics.values()),
                            "intervals": [ETERNITY]},
        "transformSpec": {"filter": None, "transforms": []},
    }
    stages.append(StagePlan(n, "segmentGenerator", n - 1, None, False, {
        "id": f"{query_id}_{n}", "input": [{"type": "stage", "stage": n - 1}],
        "processor": {"type": "segmentGenerator", "dataSchema": data_schema, "columnMappings": column_mappings,
                      "tuningConfig": tuning},
        "signature": [], "maxWorkerCount": max_workers}))
    if not bool_context(ctx, "forceSegmentSortByTime", True):
        data_schema["dimensionsSpec"]["forceSegmentSortByTime"] = False
    return TaskPlan(task_id, query_id, statement.kind, statement.target, query, ctx, granularity, cluster_by, dims,
                    rows_per_segment, max_workers, stages, payload, fault=fault, start_millis=start,
                    replace_intervals=replace, sort_order=sort_order, metrics=list(metrics))


# Aggregations whose partial state is the value itself, so stored rows can be combined
# again by the same kind of aggregator (Druid's combining factories).
_COMBINING = {("count_all", "BIGINT"): "longSum", ("count", "BIGINT"): "longSum",
              ("sum", "BIGINT"): "longSum", ("sum", "DOUBLE"): "doubleSum", ("sum", "FLOAT"): "floatSum",
              ("min", "BIGINT"): "longMin", ("min", "DOUBLE"): "doubleMin", ("min", "FLOAT"): "floatMin",
              ("max", "BIGINT"): "longMax", ("max", "DOUBLE"): "doubleMax", ("max", "FLOAT"): "floatMax"}


def _rollup(query: LogicalQuery, ctx: dict) -> tuple[dict[str, dict], dict | str]:
    """Ingest-time rollup (spec §1.6): metricsSpec entries by output column and the query
    granularity. Rollup needs GROUP BY with finalizeAggregations=false and
    groupByEnableMultiValueUnnesting=false; outputs that are plain combinable aggregations
    become metrics, everything else a dimension."""
    if query.window is not None or not (query.is_aggregate and not bool_context(ctx, "finalizeAggregations", True)):
        return {}, {"type": "none"}
    if bool_context(ctx, "groupByEnableMultiValueUnnesting", True):
        return _passthrough(query), {"type": "none"}
    aggs = {a.name: a for a in query.aggregations}
    metrics = {}
    for i, (name, e) in enumerate(query.columns):
        agg = aggs.get(e.name) if isinstance(e, ColumnRef) else None
        kind = _COMBINING.get((agg.kind, agg.sql_type)) if agg is not None else None
        if kind is not None and agg.filter is None:
            metrics[name] = {"type": kind, "name": name, "fieldName": name}
        elif agg is not None and agg.kind == "approx_count_distinct" and agg.filter is None:
            # CardinalityAggregatorFactory's combining factory: the collector itself is stored
            metrics[name] = {"type": "hyperUnique", "name": name, "fieldName": name, "isInputHyperUnique": False,
                             "round": True}
            agg.finalize = False
            query.columns[i] = (name, ColumnRef(e.name, HYPER_UNIQUE))
        elif (agg is not None and agg.kind in ("earliest", "latest") and agg.filter is None
              and agg.sql_type in PAIR_TYPES):
            # the combining factories of stringFirst/longLast...: the (time, value) pair is stored
            native = native_type(agg.sql_type).lower()
            metric = {"type": native + ("First" if agg.kind == "earliest" else "Last"), "name": name,
                      "fieldName": name, "timeColumn": "__time"}
            if native == "string":
                metric["maxStringBytes"] = 1024
            metrics[name] = metric
            agg.finalize = False
            query.columns[i] = (name, ColumnRef(e.name, PAIR_TYPES[agg.sql_type]))
    query_granularity: dict | str = {"type": "none"}
    time = dict(query.columns).get("__time")
    keys = dict(query.group_by)
    if isinstance(time, ColumnRef) and time.name in keys:
        floor = keys[time.name]
        if isinstance(floor, Call) and floor.op == "floor" and floor.extra:
            query_granularity = granularity(floor.extra[0]).to_json()
    return metrics, query_granularity


def _complex_state(agg) -> str | None:
    """The COMPLEX type an unfinalized aggregation's state is stored as, if it has one."""
    if agg.filter is not None:
        return None
    if agg.kind == "approx_count_distinct":
        return HYPER_UNIQUE
    if agg.kind in ("earliest", "latest"):
        return PAIR_TYPES.get(agg.sql_type)
    return None


def _passthrough(query: LogicalQuery) -> dict[str, dict]:
    """finalizeAggregations=false without rollup: complex states are stored as they are
    (PassthroughAggregatorFactory), everything else stays a finished dimension."""
    aggs = {a.name: a for a in query.aggregations}
    metrics = {}
    for i, (name, e) in enumerate(query.columns):
        agg = aggs.get(e.name) if isinstance(e, ColumnRef) else None
        kind = _complex_state(agg) if agg is not None else None
        if kind is not None:
            metrics[name] = {"type": "passthrough", "columnName": name,
                             "complexTypeName": kind[len("COMPLEX<"):-1]}
            agg.finalize = False
            query.columns[i] = (name, ColumnRef(e.name, kind))
    return metrics


def _dimension_order(ctx: dict, cluster_by: list[str], outputs: list[str]) -> tuple[list[str], list[str]]:
    """Dimensions and the in-segment row order (spec §8): segmentSortOrder, then __time
    (unless forceSegmentSortByTime=false), then CLUSTERED BY, then the other columns."""
    by_time = bool_context(ctx, "forceSegmentSortByTime", True)
    sort_order = _list_context(ctx, "segmentSortOrder")
    for col in sort_order:
        if col not in outputs:
            raise InvalidInput(f"Column[{col}] from context parameter[segmentSortOrder] must appear in the query "
                               "output")
    if by_time and sort_order and "__time" in outputs and sort_order[0] != "__time":
        raise InvalidInput(f"Context parameter[segmentSortOrder] must start with[__time] when "
                           f"[forceSegmentSortByTime] is true, but was {sort_order}")
    head = [c for c in sort_order if c != "__time"]
    dims = head + [c for c in cluster_by if c not in head]
    dims += [n for n in outputs if n != "__time" and n not in dims]
    if by_time:
        return dims, ["__time"] + dims
    order = sort_order or (cluster_by + [n for n in outputs if n not in cluster_by])
    return dims, order + [n for n in ["__time"] + dims if n not in order]


def _out(mappings, query_column):
    return next(o for q, o in mappings if q == query_column)


def _plan_select(statement, query, ctx, task_id, query_id, max_num_tasks, start) -> TaskPlan:
    sql_ctx = _sql_context(ctx, statement)
    native, mappings = native_query(query, _native_context(sql_ctx), order_by=query.order_by or None)
    max_workers = max_num_tasks - 1
    types = dict(query.output)
    signature = [{"name": q, "type": native_type(types[o])} for q, o in mappings]
    to_query = {out: q for q, out in mappings}
    if query.order_by:
        final = {"type": "maxCount", "clusterBy": {"columns": [
            {"columnName": to_query.get(c, c), "order": "DESCENDING" if d else "ASCENDING"}
            for c, d, *_ in query.order_by]}, "partitions": 1}
    else:
        final = {"type": "mix"}
    spec = {"query": native, "columnMappings": [{"queryColumn": q, "outputColumn": o} for q, o in mappings],
            "destination": {"type": "taskReport"}, "assignmentStrategy": str(ctx.get("taskAssignment", "max")).lower(),
            "tuningConfig": {"maxNumWorkers": max_workers,
                             "maxRowsInMemory": _int_context(ctx, "rowsInMemory", DEFAULT_ROWS_IN_MEMORY),
                             "rowsPerSegment": _int_context(ctx, "rowsPerSegment", DEFAULT_ROWS_PER_SEGMENT)}}
    payload = _base_payload(task_id, statement, sql_ctx, query, spec, SELECT_DATASOURCE)
    if query.window is not None:
        return _plan_window(query, native, ctx, task_id, query_id, max_num_tasks, payload, signature, start)
    stages = leaf_stages(query, native, query_id, max_workers, final, signature)
    if not query.is_aggregate and (query.limit is not None or query.offset):
        n = len(stages)
        stages.append(StagePlan(n, "limit", n - 1, None, False, {
            "id": f"{query_id}_{n}", "input": [{"type": "stage", "stage": n - 1}],
            "processor": {"type": "limit", "offset": query.offset, "limit": query.limit},
            "signature": signature, "maxWorkerCount": 1}))
    return TaskPlan(task_id, query_id, "SELECT", SELECT_DATASOURCE, query, ctx, GRANULARITIES["ALL"], [], [],
                    DEFAULT_ROWS_PER_SEGMENT, max_workers, stages, payload, start_millis=start)


def _plan_window(query, native, ctx, task_id, query_id, max_num_tasks, payload, signature, start) -> TaskPlan:
    """Window functions: the base scan or groupBy on every worker, then one window stage that
    sees all rows (it also sorts and limits), as Druid's window stage does."""
    base = base_query(query)
    base_native = native["dataSource"]["query"]
    base_signature = [{"name": n, "type": native_type(e.sql_type)} for n, e in base.columns]
    stages = leaf_stages(base, base_native, query_id, max_num_tasks - 1, {"type": "mix"}, base_signature)
    n = len(stages)
    stages.append(StagePlan(n, "window", n - 1, None, False, {
        "id": f"{query_id}_{n}", "input": [{"type": "stage", "stage": n - 1}],
        "processor": {"type": "window", "query": native}, "signature": signature, "maxWorkerCount": 1}))
    return TaskPlan(task_id, query_id, "SELECT", SELECT_DATASOURCE, query, ctx, GRANULARITIES["ALL"], [], [],
                    DEFAULT_ROWS_PER_SEGMENT, max_num_tasks - 1, stages, payload, start_millis=start)
