"""Segment ids, shard specs and tombstones for an ingestion's final partitions (spec §5.9, §8).

INSERT appends: a time chunk that already has segments keeps their version and gets
the next partition numbers (``numbered``). REPLACE writes a new version for every chunk
it produces, ``range`` shard specs when the CLUSTERED BY key starts with string columns,
and tombstones for chunks in its range that had data but get none.
"""
from __future__ import annotations

from dataclasses import dataclass

from msqcore.engine.sorter import decode_string_columns
from msqcore.errors import InsertCannotAllocateSegment
from msqcore.planner.tasks import TaskPlan
from msqcore.storage.metadata import SegmentRecord
from msqcore.timeutil import interval_text

MAX_TOMBSTONES = 5000


@dataclass
class SegmentId:
    start: int
    end: int
    version: str
    partition_num: int
    shard_spec: dict

    def identifier(self, datasource: str) -> str:
        interval = interval_text(self.start, self.end).replace("/", "_")
        return f"{datasource}_{interval}_{self.version}" + (f"_{self.partition_num}" if self.partition_num else "")


def shard_columns(plan: TaskPlan, multi_valued: bool = False) -> tuple[list[str], str]:
    """Columns for DimensionRangeShardSpec and why (Druid's ControllerImpl.computeShardColumns);
    ``multi_valued``: a worker saw a CLUSTERED BY value with several values."""
    if multi_valued:
        return [], "Cannot use 'range' shard specs since CLUSTERED BY contains multi-valued fields."
    if not plan.cluster_by:
        return [], "CLUSTERED BY clause is empty."
    types = dict(plan.output)
    columns: list[str] = []
    for name in plan.cluster_by:
        if types[name] != "VARCHAR":
            native = {"BIGINT": "LONG", "TIMESTAMP": "LONG", "BOOLEAN": "LONG"}.get(types[name], types[name])
            return columns, (f"Using[{len(columns)}] CLUSTERED BY columns for 'range' shard specs, since the next "
                             f"column is of type[{native}]. Only string columns are included in 'range' shard specs.")
        columns.append(name)
    return columns, "Using 'range' shard specs with all CLUSTERED BY fields."


def segment_report(plan: TaskPlan, multi_valued: bool = False) -> dict:
    if plan.kind == "INSERT":
        return {"shardSpec": "NumberedShardSpec",
                "details": "Using NumberedShardSpec to generate segments since the query is inserting rows."}
    columns, details = shard_columns(plan, multi_valued)
    return {"shardSpec": "DimensionRangeShardSpec" if columns else "NumberedShardSpec", "details": details}


def allocate(plan: TaskPlan, partitions: list[tuple[int, int, int]], existing: list[SegmentRecord],
             version: str, multi_valued: bool = False) -> list[SegmentId]:
    """One id per partition (time chunk, partition j of the chunk's k). Range bounds are
    filled in from the partition boundaries (``with_range_bounds``)."""
    out = []
    range_columns = shard_columns(plan, multi_valued)[0] if plan.kind == "REPLACE" else []
    for bucket, j, k in partitions:
        start, end = plan.granularity.chunk(bucket)
        if plan.kind == "REPLACE":
            spec = ({"type": "range", "dimensions": range_columns, "start": None, "end": None,
                     "partitionNum": j, "numCorePartitions": k} if range_columns else
                    {"type": "numbered", "partitionNum": j, "partitions": k})
            out.append(SegmentId(start, end, version, j, spec))
            continue
        overlapping = [s for s in existing if s.start < end and start < s.end and not s.is_tombstone]
        misaligned = [s for s in overlapping if (s.start, s.end) != (start, end)]
        if misaligned:
            raise InsertCannotAllocateSegment(dataSource=plan.datasource, interval=interval_text(start, end),
                                              allocatedInterval=interval_text(misaligned[0].start, misaligned[0].end))
        if overlapping:
            latest = max(s.version for s in overlapping)
            same = [s for s in overlapping if s.version == latest]
            core = same[0].payload["shardSpec"].get("partitions", len(same))
            num = max(s.partition_num for s in same) + 1 + j
            out.append(SegmentId(start, end, latest, num, {"type": "numbered", "partitionNum": num, "partitions": core}))
        else:
            out.append(SegmentId(start, end, version, j, {"type": "numbered", "partitionNum": j, "partitions": k}))
    return out


def with_range_bounds(ids: list[SegmentId], partitions: list[tuple[int, int, int]],
                      boundaries: list[bytes]) -> None:
    """Range shard specs from the real partition boundaries (Druid's ClusterByPartitions):
    partition p starts at boundary p - 1 and ends at boundary p, each cut to the leading
    string CLUSTERED BY columns; a chunk's first partition starts at null, its last ends at
    null. The key is [__bucket, CLUSTERED BY..., __boost]. When a boundary splits a run of
    equal prefixes, both partitions hold that prefix: start is inclusive, end is the next
    partition's start (pruning treats it as inclusive too)."""
    for p, (sid, (_, j, k)) in enumerate(zip(ids, partitions)):
        spec = sid.shard_spec
        if spec["type"] != "range":
            continue
        width = len(spec["dimensions"])
        spec["start"] = None if j == 0 else decode_string_columns(boundaries[p - 1], 1, width)
        spec["end"] = None if j == k - 1 else decode_string_columns(boundaries[p], 1, width)


def tombstones(plan: TaskPlan, existing: list[SegmentRecord], written: list[SegmentId],
               version: str) -> list[SegmentRecord]:
    """Chunks of the replace range that held data and get no new segment (spec §5.9)."""
    covered = {(s.start, s.end) for s in written}
    chunks: set[tuple[int, int]] = set()
    for seg in existing:
        if seg.is_tombstone:
            continue
        for lo, hi in plan.replace_intervals or []:
            start, end = max(seg.start, lo), min(seg.end, hi)
            if start >= end:
                continue
            found = []
            cursor = int(plan.granularity.floor([start])[0])
            while cursor < end and len(found) <= MAX_TOMBSTONES:
                chunk = plan.granularity.chunk(cursor)
                found.append(chunk)
                cursor = chunk[1]
            # An old segment spanning more chunks than that (say, one of PARTITIONED BY ALL
            # replaced by DAY) gets no tombstones: publishing marks it unused anyway.
            if len(found) <= MAX_TOMBSTONES:
                chunks.update(c for c in found if c not in covered)
    out = []
    for start, end in sorted(chunks):
        sid = SegmentId(start, end, version, 0, {"type": "tombstone", "partitionNum": 0, "partitions": 1})
        payload = {"dataSource": plan.datasource, "interval": interval_text(start, end), "version": version,
                   "loadSpec": {"type": "tombstone"}, "dimensions": "", "metrics": "", "shardSpec": sid.shard_spec,
                   "binaryVersion": 9, "size": 1, "identifier": sid.identifier(plan.datasource)}
        out.append(SegmentRecord(start, end, version, 0, payload))
    return out
