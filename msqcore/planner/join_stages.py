"""Stages of a join (spec §1.8, §5.4), or of a query datasource, in front of the stages of
the query over them.

* a query datasource (a subquery in FROM with GROUP BY, LIMIT ...): the inner query's stages
  with a ``mix`` shuffle; the outer query's leaf stage reads their output as its rows, as
  Druid's DataSourcePlan does for a ``query`` datasource.

* ``broadcast``: each right input that needs work (a table, EXTERN or subquery) is its own
  stage(s) with a ``mix`` shuffle; lookups and VALUES are read directly. The leaf stage of
  the query reads the base input plus every right input, which it lists in ``broadcast``.
* ``sortMerge``: the base and each right input are stages whose output is hash-partitioned
  on the join key (the ``hash`` shuffle of groupBy stages, kernel ``_sort.hash_partitions``
  over the encoded key, so equal keys of both sides meet in one partition); a
  ``sortMergeJoin`` stage joins two of them partition by partition; the query's own stages
  then read that stage's output.

An input with LIMIT or OFFSET ends with a ``limit`` stage on one worker, which then
shuffles its rows as the join needs them.
"""
from __future__ import annotations

from msqcore.errors import PlanningError
from msqcore.planner.expressions import ColumnRef, native_type
from msqcore.planner.native import inline_json, join_json, native_query
from msqcore.planner.query import InlineSource, JoinSource, LogicalQuery, LookupSource, QuerySource, UnionSource


def with_join_inputs(query: LogicalQuery, native: dict, query_id: str, max_workers: int, leaf_shuffle, leaf_signature,
                     source_stages) -> list:
    source: JoinSource = query.source
    for q in [source.base] + [clause.right for clause in source.joins]:
        if isinstance(q.source, JoinSource):
            raise PlanningError("A JOIN inside a subquery that is a JOIN input is not supported yet")
        if isinstance(q.source, UnionSource):
            raise PlanningError("UNION ALL as a JOIN input is not supported yet")
    for clause in source.joins:
        if clause.kind in ("RIGHT", "FULL") and source.algorithm == "broadcast":
            # every worker holds a part of the base, so none can tell which right rows matched nowhere
            raise PlanningError(f"SQL requires a join with '{clause.kind}' join type that is not supported with "
                                "[sqlJoinAlgorithm: broadcast]. Set [sqlJoinAlgorithm: sortMerge] in the query context")
    if source.algorithm == "sortMerge":
        return _sort_merge(query, native, query_id, max_workers, leaf_shuffle, leaf_signature, source_stages)
    stages: list = []
    base_stage = None  # a base that aggregates (or reads a query datasource) is computed by its own stages first
    if source.base.is_aggregate or isinstance(source.base.source, QuerySource):
        stages = _input_stages(source.base, query_id, max_workers, {"type": "mix"}, 0)
        base_stage = stages[-1].number
    inputs = [None]  # the base input's spec, filled in below
    refs = []
    for clause in source.joins:
        right = clause.right
        if _direct(right, LookupSource):
            inputs.append({"type": "LookupInputSpec", "lookupName": right.source.name})
            refs.append(("lookup", right.source.name))
        elif _direct(right, InlineSource):
            inputs.append({"type": "InlineInputSpec", "dataSource": inline_json(right.source)})
            refs.append(("inline", right.source))
        else:
            sub = _input_stages(right, query_id, max_workers, {"type": "mix"}, len(stages))
            stages += sub
            inputs.append({"type": "stage", "stage": sub[-1].number})
            refs.append(("stage", sub[-1].number))
    from msqcore.planner.tasks import input_specs
    inputs[0] = input_specs(source.base)[0] if base_stage is None else {"type": "stage", "stage": base_stage}
    leaf = source_stages(query, native, query_id, max_workers, leaf_shuffle, leaf_signature, inputs=inputs,
                         broadcast=list(range(1, len(inputs))),
                         leaf_datasource=join_json(source, input_numbers=True))
    leaf = _shift(leaf, len(stages), query_id)
    leaf[0].broadcast = refs
    leaf[0].input_stage = base_stage
    return stages + leaf


def with_query_input(query: LogicalQuery, native: dict, query_id: str, max_workers: int, leaf_shuffle,
                     leaf_signature, source_stages) -> list:
    """The inner query's stages, then the outer query's stages over their rows."""
    stages = _input_stages(query.source.query, query_id, max_workers, {"type": "mix"}, 0)
    inner = stages[-1].number
    outer = source_stages(query, native, query_id, max_workers, leaf_shuffle, leaf_signature,
                          inputs=[{"type": "stage", "stage": inner}])
    outer = _shift(outer, len(stages), query_id)
    outer[0].input_stage = inner
    return stages + outer


def _direct(query: LogicalQuery, kind) -> bool:
    """A right input read as it is (lookups and VALUES need no stage of their own)."""
    return isinstance(query.source, kind) and not query.is_aggregate and query.limit is None and not query.order_by


def _input_stages(query: LogicalQuery, query_id: str, max_workers: int, shuffle: dict, first: int) -> list:
    """The stages that compute one join input, numbered from ``first``. A LIMIT needs all the
    input's rows in one place: a ``limit`` stage on one worker, which then shuffles."""
    from msqcore.planner.tasks import StagePlan
    native, mappings = native_query(query, {})
    types = dict(query.output)
    signature = [{"name": q, "type": native_type(types.get(o, "VARCHAR"))} for q, o in mappings]
    limited = query.limit is not None or bool(query.offset)
    from msqcore.planner.tasks import leaf_stages  # an input may itself read a join or a query datasource
    stages = leaf_stages(query, native, query_id, max_workers, {"type": "mix"} if limited else shuffle, signature)
    if first and any(s.broadcast or s.join_inputs for s in stages):  # _shift does not renumber those
        raise PlanningError("A JOIN inside a subquery that is a JOIN input is not supported yet")
    if limited:
        n = len(stages)
        stages.append(StagePlan(n, "limit", n - 1, shuffle["type"], False, {
            "id": f"{query_id}_{n}", "input": [{"type": "stage", "stage": n - 1}],
            "processor": {"type": "limit", "offset": query.offset, "limit": query.limit},
            "signature": signature, "shuffleSpec": shuffle, "maxWorkerCount": 1}))
    stages = _shift(stages, first, query_id)
    for s in stages:
        if s.query is None:  # the stages of an input's own inputs run their own queries
            s.query = query
    return stages


def _hash(keys: list, partitions: int, prefix: str = "") -> tuple[dict, tuple | None]:
    """The ``hash`` shuffle of a sortMerge input on its join keys (``hashLocalSort`` in Druid),
    and the stage's ``hash_keys`` when a key is an expression rather than an output column."""
    names = [e.name[len(prefix):] if isinstance(e, ColumnRef) and e.name.startswith(prefix) else f"__k{i}"
             for i, e in enumerate(keys)]
    spec = {"type": "hash", "clusterBy": {"columns": [{"columnName": k, "order": "ASCENDING"} for k in names]},
            "partitions": partitions}
    columns = all(isinstance(e, ColumnRef) and e.name.startswith(prefix) for e in keys)
    return spec, None if columns else (prefix, list(keys))


def _sort_merge(query, native, query_id, max_workers, leaf_shuffle, leaf_signature, source_stages) -> list:
    """base → hash, each right input → hash, one sortMergeJoin stage per join, then the query.
    Both inputs of a join have one hash partition per worker."""
    source: JoinSource = query.source
    first = source.joins[0]
    shuffle, keys = _hash(first.left_keys, max_workers)
    stages = _input_stages(source.base, query_id, max_workers, shuffle, 0)
    stages[-1].hash_keys = keys
    left = stages[-1].number
    signature = [{"name": n, "type": native_type(t)} for n, t in source.base.output]
    from msqcore.planner.tasks import StagePlan
    for i, clause in enumerate(source.joins):
        shuffle, keys = _hash(clause.right_keys, max_workers, clause.prefix)
        right_stages = _input_stages(clause.right, query_id, max_workers, shuffle, len(stages))
        right_stages[-1].hash_keys = keys
        stages += right_stages
        signature += [{"name": clause.prefix + n, "type": native_type(t)} for n, t in clause.right.output]
        number = len(stages)
        definition = {"id": f"{query_id}_{number}",
                      "input": [{"type": "stage", "stage": left}, {"type": "stage", "stage": right_stages[-1].number}],
                      "processor": {"type": "sortMergeJoin", "rightPrefix": clause.prefix,
                                    "condition": clause.condition_native(), "joinType": clause.kind},
                      "signature": list(signature), "maxWorkerCount": max_workers}
        following = source.joins[i + 1] if i + 1 < len(source.joins) else None
        keys = None
        if following is not None:
            definition["shuffleSpec"], keys = _hash(following.left_keys, max_workers)
        stages.append(StagePlan(number, "sortMergeJoin", None, "hash" if following else None,
                                False, definition, query=query, join_inputs=[left, right_stages[-1].number],
                                join_index=i, hash_keys=keys))
        left = number
    outer = source_stages(query, native, query_id, max_workers, leaf_shuffle, leaf_signature,
                          inputs=[{"type": "stage", "stage": left}])
    outer = _shift(outer, len(stages), query_id)
    outer[0].input_stage = left
    return stages + outer


def _shift(stages: list, offset: int, query_id: str) -> list:
    """Renumber stages built from 0 to start at ``offset``."""
    if not offset:
        return stages
    for s in stages:
        s.number += offset
        if s.input_stage is not None:
            s.input_stage += offset
        s.definition["id"] = f"{query_id}_{s.number}"
        for spec in s.definition.get("input", []):
            if spec.get("type") == "stage" and s.input_stage is not None:
                spec["stage"] += offset
    return stages
