"""Time-chunk locks, as Druid's Overlord grants them to ingestion tasks (spec §8, Locks).

REPLACE takes an EXCLUSIVE lock on its replace intervals before it starts and waits
while another task holds an overlapping lock (its status is RUNNING, runner status
WAITING). INSERT takes SHARED locks on the time chunks it writes when it allocates
segments; SHARED locks coexist, but one that overlaps an EXCLUSIVE lock cannot be had,
and the INSERT fails with InsertCannotAllocateSegment as Druid's allocation does.
Locks live in memory: a restarted server has no running task to hold one.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Lock:
    task_id: str
    datasource: str
    start: int
    end: int
    exclusive: bool

    def conflicts(self, other: "Lock") -> bool:
        return (self.task_id != other.task_id and self.datasource == other.datasource
                and self.start < other.end and other.start < self.end
                and (self.exclusive or other.exclusive))


class LockManager:
    def __init__(self):
        self._locks: list[Lock] = []
        self._changed = threading.Condition()

    def try_acquire(self, task_id: str, datasource: str, intervals: list[tuple[int, int]],
                    exclusive: bool) -> tuple[int, int] | None:
        """All the intervals at once, or none: returns None when acquired, else the first
        wanted interval that another task's lock blocks."""
        wanted = [Lock(task_id, datasource, s, e, exclusive) for s, e in intervals]
        with self._changed:
            for w in wanted:
                if any(w.conflicts(held) for held in self._locks):
                    return w.start, w.end
            self._locks.extend(wanted)
            return None

    def acquire(self, task_id: str, datasource: str, intervals: list[tuple[int, int]], exclusive: bool,
                should_stop) -> bool:
        """Wait until the locks can be had; False if ``should_stop()`` turned true first."""
        with self._changed:
            while self.try_acquire(task_id, datasource, intervals, exclusive) is not None:
                if should_stop():
                    return False
                self._changed.wait(0.2)
            return True

    def release(self, task_id: str) -> None:
        with self._changed:
            self._locks = [lock for lock in self._locks if lock.task_id != task_id]
            self._changed.notify_all()

    def held(self, task_id: str) -> list[Lock]:
        with self._changed:
            return [lock for lock in self._locks if lock.task_id == task_id]
