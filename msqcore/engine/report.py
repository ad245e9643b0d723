"""The live ``multiStageQuery`` report of one controller (spec §4.5)."""
from __future__ import annotations

import copy
import threading

from msqcore.timeutil import iso, now_millis

_SHUFFLE_KIND = {"targetSize": "globalSort", "maxCount": "globalSort", "mix": "mix", "hash": "hash"}


class ReportState:
    def __init__(self, task_id: str, plan, host: str = "localhost"):
        self.task_id = task_id
        self.host = host
        self._lock = threading.Lock()
        self._start = now_millis()
        self._status: dict = {"status": "RUNNING", "startTime": iso(self._start), "durationMs": -1}
        self._end: int | None = None
        self._stages = []
        for s in plan.stages:
            self._stages.append({"stageNumber": s.number, "definition": s.definition})
        self._stage_times: dict[int, list] = {}
        self._sorts = {s.number: s.sort for s in plan.stages}
        self._shuffle = {s.number: s.shuffle for s in plan.stages}
        self._counters: dict[str, dict[str, dict]] = {}
        self._workers: dict[str, list[dict]] = {}
        self._worker_start: dict[str, int] = {}
        self._results: dict | None = None
        self._warnings: list = []
        self.task_context: dict = {}

    # --- updates ---------------------------------------------------------------------------

    def workers_launched(self, worker_ids: list[str]) -> None:
        with self._lock:
            now = now_millis()
            for n, wid in enumerate(worker_ids):
                self._workers[str(n)] = [{"workerId": wid, "state": "RUNNING", "durationMs": -1, "pendingMs": 0}]
                self._worker_start[str(n)] = now

    def workers_ended(self, state: str) -> None:
        with self._lock:
            now = now_millis()
            for n, entries in self._workers.items():
                if entries[-1]["state"] == "RUNNING":
                    entries[-1]["state"] = state
                    entries[-1]["durationMs"] = now - self._worker_start[n]

    def stage_started(self, number: int, worker_count: int) -> None:
        with self._lock:
            stage = self._stages[number]
            stage["phase"] = "READING_INPUT"
            stage["workerCount"] = worker_count
            shuffle = self._shuffle[number]
            if shuffle:
                stage["shuffle"] = _SHUFFLE_KIND[shuffle]
                stage["output"] = "localStorage"
            self._stage_times[number] = [now_millis(), None]

    def stage_phase(self, number: int, phase: str) -> None:
        with self._lock:
            self._stages[number]["phase"] = phase
            if phase in ("FINISHED", "FAILED", "RESULTS_READY") and self._stage_times.get(number, [0, 0])[1] is None:
                self._stage_times[number][1] = now_millis()

    def stage_partitions(self, number: int, count: int) -> None:
        with self._lock:
            if count:
                self._stages[number]["partitionCount"] = count

    def set_counters(self, stage: int, worker: int, snapshot: dict) -> None:
        with self._lock:
            self._counters.setdefault(str(stage), {})[str(worker)] = snapshot

    def update_counter(self, stage: int, worker: int, name: str, value: dict) -> None:
        with self._lock:
            self._counters.setdefault(str(stage), {}).setdefault(str(worker), {})[name] = value

    def counters(self, stage: int, worker: int) -> dict:
        with self._lock:
            return copy.deepcopy(self._counters.get(str(stage), {}).get(str(worker), {}))

    def add_warning(self, warning: dict) -> None:
        with self._lock:
            self._warnings.append(warning)

    def set_segment_report(self, segment_report: dict) -> None:
        with self._lock:
            self._status["segmentReport"] = segment_report

    def set_results(self, results: dict) -> None:
        with self._lock:
            self._results = results

    def finish(self, status: str, error_report: dict | None = None) -> None:
        with self._lock:
            self._end = now_millis()
            self._status["status"] = status
            if error_report is not None:
                self._status["errorReport"] = error_report
                for number, stage in enumerate(self._stages):
                    if stage.get("phase") in ("READING_INPUT", "POST_READING", "MERGING_STATISTICS"):
                        stage["phase"] = "FAILED"
                        self._stage_times[number][1] = self._end

    # --- rendering ---------------------------------------------------------------------------

    def snapshot(self) -> dict:
        with self._lock:
            now = self._end or now_millis()
            # Druid's MSQStatusReport field order
            status = {"status": self._status["status"]}
            if "errorReport" in self._status:
                status["errorReport"] = self._status["errorReport"]
            if self._warnings:
                status["warnings"] = list(self._warnings)
            status["startTime"] = self._status["startTime"]
            status["durationMs"] = now - self._start
            status["workers"] = copy.deepcopy(self._workers)
            status["pendingTasks"] = 0
            running = sum(1 for e in self._workers.values() if e[-1]["state"] == "RUNNING")
            # the controller counts as a running task
            status["runningTasks"] = running + 1 if self._end is None else len(self._workers) + 1
            if "segmentReport" in self._status:
                status["segmentReport"] = self._status["segmentReport"]
            stages = []
            for number, stage in enumerate(self._stages):
                out = {"stageNumber": stage["stageNumber"], "definition": stage["definition"]}
                for key in ("phase", "workerCount", "partitionCount", "shuffle", "output"):
                    if key in stage:
                        out[key] = stage[key]
                if number in self._stage_times:
                    begin, end = self._stage_times[number]
                    out["startTime"] = iso(begin)
                    out["duration"] = (end or now) - begin
                if self._sorts[number]:
                    out["sort"] = True
                stages.append(out)
            payload = {}
            if self._results is not None:
                payload["results"] = self._results
            payload["status"] = status
            payload["stages"] = stages
            payload["counters"] = copy.deepcopy(self._counters)
        report = {"multiStageQuery": {"type": "multiStageQuery", "taskId": self.task_id, "payload": payload}}
        if self.task_context:
            report["taskContext"] = {"type": "taskContext", "taskId": self.task_id, "payload": self.task_context}
        return report
