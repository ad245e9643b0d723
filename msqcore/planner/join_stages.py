"""Stages of a join (spec §1.8, §5.4), in front of the stages of the query over the join.

* ``broadcast``: each right input that needs work (a table, EXTERN or subquery) is its own
  stage(s) with a ``mix`` shuffle; lookups and VALUES are read directly. The leaf stage of
  the query reads the base input plus every right input, which it lists in ``broadcast``.
* ``sortMerge``: the base and each right input are stages whose output is hash-partitioned
  on the join key (``hash`` shuffle); a ``sortMergeJoin`` stage joins two of them; the
  query's own stages then read that stage's output.
"""
from __future__ import annotations

from msqcore.errors import PlanningError
from msqcore.planner.expressions import ColumnRef, native_type
from msqcore.planner.native import inline_json, join_json, native_query
from msqcore.planner.query import InlineSource, JoinSource, LogicalQuery, LookupSource


def with_join_inputs(query: LogicalQuery, native: dict, query_id: str, max_workers: int, leaf_shuffle, leaf_signature,
                     source_stages) -> list:
    source: JoinSource = query.source
    for q in [source.base] + [clause.right for clause in source.joins]:
        if isinstance(q.source, JoinSource):
            raise PlanningError("A JOIN inside a subquery that is a JOIN input is not supported yet")
    for clause in source.joins:
        if clause.kind in ("RIGHT", "FULL") and source.algorithm == "broadcast":
            # every worker holds a part of the base, so none can tell which right rows matched nowhere
            raise PlanningError(f"SQL requires a join with '{clause.kind}' join type that is not supported with "
                                "[sqlJoinAlgorithm: broadcast]. Set [sqlJoinAlgorithm: sortMerge] in the query context")
    if source.algorithm == "sortMerge":
        return _sort_merge(query, native, query_id, max_workers, leaf_shuffle, leaf_signature, source_stages)
    stages: list = []
    base_stage = None  # a base that aggregates is computed by its own stages first
    if source.base.is_aggregate:
        stages = _input_stages(source.base, query_id, max_workers, {"type": "mix"}, source_stages, 0)
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
            sub = _input_stages(right, query_id, max_workers, {"type": "mix"}, source_stages, len(stages))
            stages += sub
            inputs.append({"type": "stage", "stage": sub[-1].number})
            refs.append(("stage", sub[-1].number))
    from msqcore.planner.tasks import input_spec
    inputs[0] = input_spec(source.base) if base_stage is None else {"type": "stage", "stage": base_stage}
    leaf = source_stages(query, native, query_id, max_workers, leaf_shuffle, leaf_signature, inputs=inputs,
                         broadcast=list(range(1, len(inputs))),
                         leaf_datasource=join_json(source, input_numbers=True))
    leaf = _shift(leaf, len(stages), query_id)
    leaf[0].broadcast = refs
    leaf[0].input_stage = base_stage
    return stages + leaf


def _direct(query: LogicalQuery, kind) -> bool:
    """A right input read as it is (lookups and VALUES need no stage of their own)."""
    return isinstance(query.source, kind) and not query.is_aggregate and query.limit is None and not query.order_by


def _input_stages(query: LogicalQuery, query_id: str, max_workers: int, shuffle: dict, source_stages,
                  first: int) -> list:
    """The stages that compute one join input, numbered from ``first``."""
    native, mappings = native_query(query, {})
    types = dict(query.output)
    signature = [{"name": q, "type": native_type(types.get(o, "VARCHAR"))} for q, o in mappings]
    stages = _shift(source_stages(query, native, query_id, max_workers, shuffle, signature), first, query_id)
    for s in stages:
        s.query = query
    return stages


def _hash(keys: list[str], partitions: int) -> dict:
    """``hashLocalSort``: rows hash-partitioned on the key, each partition sorted by it."""
    return {"type": "hash", "clusterBy": {"columns": [{"columnName": k, "order": "ASCENDING"} for k in keys]},
            "partitions": partitions}


def _key_names(keys, prefix: str = "") -> list[str]:
    out = []
    for i, e in enumerate(keys):
        name = e.name if isinstance(e, ColumnRef) else f"__k{i}"
        out.append(name[len(prefix):] if prefix and name.startswith(prefix) else name)
    return out


def _sort_merge(query, native, query_id, max_workers, leaf_shuffle, leaf_signature, source_stages) -> list:
    """base → hash, each right input → hash, one sortMergeJoin stage per join, then the query.
    There are as many hash partitions as workers, unless a right input is a scan with ORDER
    BY or LIMIT: that one needs all its rows in one place, so then everything uses one."""
    source: JoinSource = query.source
    ordered = any(not c.right.is_aggregate and (c.right.limit is not None or c.right.order_by or c.right.offset)
                  for c in source.joins)
    parts = 1 if ordered else max_workers
    first = source.joins[0]
    stages = _input_stages(source.base, query_id, max_workers, _hash(_key_names(first.left_keys), parts),
                           source_stages, 0)
    stages[-1].hash_by = (first.left_keys, "", parts)
    left = stages[-1].number
    signature = [{"name": n, "type": native_type(t)} for n, t in source.base.output]
    from msqcore.planner.tasks import StagePlan
    for i, clause in enumerate(source.joins):
        right_stages = _input_stages(clause.right, query_id, max_workers,
                                     _hash(_key_names(clause.right_keys, clause.prefix), parts), source_stages,
                                     len(stages))
        right_stages[-1].hash_by = (clause.right_keys, clause.prefix, parts)
        stages += right_stages
        signature += [{"name": clause.prefix + n, "type": native_type(t)} for n, t in clause.right.output]
        number = len(stages)
        definition = {"id": f"{query_id}_{number}",
                      "input": [{"type": "stage", "stage": left}, {"type": "stage", "stage": right_stages[-1].number}],
                      "processor": {"type": "sortMergeJoin", "rightPrefix": clause.prefix,
                                    "condition": clause.condition_native(), "joinType": clause.kind},
                      "signature": list(signature), "maxWorkerCount": max_workers}
        following = source.joins[i + 1] if i + 1 < len(source.joins) else None
        if following is not None:
            definition["shuffleSpec"] = _hash(_key_names(following.left_keys), parts)
        stages.append(StagePlan(number, "sortMergeJoin", None, "hash" if following else None,
                                False, definition, query=query, join_inputs=[left, right_stages[-1].number],
                                join_index=i, hash_by=(following.left_keys, "", parts) if following else None))
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
