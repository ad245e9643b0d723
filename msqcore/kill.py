"""Kill tasks: delete unused segments for good, from the metadata store and deep storage.

As in Druid, REPLACE, markUnused and datasource drops only mark segments unused; their
files stay in deep storage until a ``kill`` task (Druid's ``KillUnusedSegmentsTask``)
deletes the unused segments lying within its interval. Each batch removes the metadata rows
first and the files after, so a crash between the two leaves at worst an orphan file, never
a segment row without its file.
"""
from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field

from msqcore.engine.locks import LockManager
from msqcore.errors import InvalidInput
from msqcore.storage.deep import DeepStorage
from msqcore.storage.metadata import MetadataStore
from msqcore.timeutil import interval_text, iso, now_millis

DEFAULT_BATCH_SIZE = 100  # KillUnusedSegmentsTask.DEFAULT_SEGMENT_NUKE_BATCH_SIZE
REPORT_KEY = "killUnusedSegments"


def new_task_id(type_name: str, datasource: str, interval: tuple[int, int], prefix: str | None = None) -> str:
    """Druid's ``IdUtils.newTaskId``: [prefix_]type_datasource_random_start_end_now."""
    suffix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))
    parts = [prefix] if prefix else []
    parts += [type_name, datasource, suffix, iso(interval[0]), iso(interval[1]), iso(now_millis())]
    return "_".join(parts)


def _positive(payload: dict, key: str, default: int | None) -> int | None:
    value = payload.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(f"{key}[{value}] must be a positive integer.")
    return value


@dataclass
class KillTask:
    id: str
    datasource: str
    interval: tuple[int, int]
    versions: list[str] | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    limit: int | None = None
    context: dict = field(default_factory=dict)

    @classmethod
    def from_payload(cls, payload: dict, interval: tuple[int, int], id_prefix: str | None = None) -> "KillTask":
        """``interval`` is the payload's interval, parsed by the caller (the server's parser)."""
        datasource = payload.get("dataSource")
        if not isinstance(datasource, str) or not datasource:
            raise InvalidInput("Missing or empty 'dataSource' in the kill task")
        versions = payload.get("versions")
        if versions is not None and (not isinstance(versions, list) or not all(isinstance(v, str) for v in versions)):
            raise InvalidInput("'versions' must be a list of version strings")
        if payload.get("markAsUnused"):
            raise InvalidInput("The 'markAsUnused' flag of kill tasks is no longer supported. "
                               "Mark segments unused first (markUnused API), then kill them.")
        task_id = payload.get("id") or new_task_id("kill", datasource, interval, id_prefix)
        return cls(task_id, datasource, interval, versions, _positive(payload, "batchSize", DEFAULT_BATCH_SIZE),
                   _positive(payload, "limit", None), dict(payload.get("context") or {}))

    @property
    def payload(self) -> dict:
        """The task as ``GET /druid/indexer/v1/task/{id}`` shows it."""
        return {"type": "kill", "id": self.id, "dataSource": self.datasource,
                "interval": interval_text(*self.interval), "versions": self.versions, "context": self.context,
                "batchSize": self.batch_size, "limit": self.limit, "maxUsedStatusLastUpdatedTime": None,
                "groupId": self.id, "resource": {"availabilityGroup": self.id, "requiredCapacity": 1}}

    def run(self, metadata: MetadataStore, deep: DeepStorage, locks: LockManager, should_stop) -> dict:
        """Delete the unused segments; returns the task report. Holds an exclusive lock on the
        interval meanwhile, so a running REPLACE or INSERT there finishes first."""
        if not locks.acquire(self.id, self.datasource, [self.interval], True, should_stop):
            raise InvalidInput(f"Kill task [{self.id}] was shut down while waiting for its lock")
        try:
            segments = metadata.unused_segments(self.datasource, self.interval, self.versions, self.limit)
            batches = 0
            for i in range(0, len(segments), self.batch_size):
                batch = segments[i:i + self.batch_size]
                metadata.delete_segments([s.payload["identifier"] for s in batch])
                for segment in batch:
                    deep.delete(segment.payload["loadSpec"])  # a tombstone's loadSpec names no file
                batches += 1
        finally:
            locks.release(self.id)
        return {REPORT_KEY: {"type": REPORT_KEY, "taskId": self.id,
                             "payload": {"numSegmentsKilled": len(segments), "numBatchesProcessed": batches,
                                         "numSegmentsMarkedAsUnused": None}}}
