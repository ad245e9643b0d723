"""What ``bench.run`` and the pytest benches share: the jobs' SQL, a ``msqcore serve``
process and its HTTP client, a /proc sampler for peak memory, and one function per tool
that runs one job once and returns a ``Result``.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.gen_data import COLUMNS, DataSet
from bench.peers import JOBS, OTHERS, QUERY_COUNTRY, parquet_files

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")

# --- the jobs, as msqcore SQL ----------------------------------------------------------------

INPUT_FORMATS = {"json": {"type": "json"}, "csv": {"type": "csv", "findColumnsFromHeader": True},
                 "parquet": {"type": "parquet"}}
ROLLUP_CONTEXT = {"finalizeAggregations": False, "groupByEnableMultiValueUnnesting": False}
QUERY_SQL = (f"SELECT channel, COUNT(*), SUM(added) FROM wiki WHERE countryName = '{QUERY_COUNTRY}' "
             "GROUP BY 1 ORDER BY 2 DESC")


def _extern(ds: DataSet, fmt: str) -> str:
    source = {"type": "local", "baseDir": str(ds.dir(fmt).resolve()), "filter": f"part-*.{fmt}"}
    signature = [{"name": name, "type": kind} for name, kind in COLUMNS]
    return (f"TABLE(EXTERN('{json.dumps(source)}', '{json.dumps(INPUT_FORMATS[fmt])}', "
            f"'{json.dumps(signature)}'))")


def ingest_sql(ds: DataSet, fmt: str) -> str:
    cols = ", ".join(f'"{c}"' for c in OTHERS)
    return (f'REPLACE INTO wiki OVERWRITE ALL SELECT TIME_PARSE("timestamp") AS __time, {cols} '
            f"FROM {_extern(ds, fmt)} PARTITIONED BY DAY CLUSTERED BY channel")


def rollup_sql(ds: DataSet) -> str:
    return ("REPLACE INTO wiki_rollup OVERWRITE ALL SELECT TIME_FLOOR(TIME_PARSE(\"timestamp\"), 'PT1H') AS __time, "
            'channel, countryName, SUM(added) AS added, SUM(deleted) AS deleted, COUNT(*) AS "count" '
            f"FROM {_extern(ds, 'json')} GROUP BY 1, 2, 3 PARTITIONED BY DAY CLUSTERED BY channel")


# --- results ---------------------------------------------------------------------------------


@dataclass
class Result:
    job: str
    tool: str
    parallel: int  # msqcore: maxNumTasks - 1 workers; peers: engine threads
    status: str  # ok | unsupported | failed | skipped
    seconds: float | None = None
    cpu_seconds: float | None = None
    rows: int = 0  # input rows
    peak_rss: int | None = None  # bytes, summed over the process tree
    peak_pss: int | None = None  # bytes, proportional set size summed over the tree
    others_cpu: float | None = None  # CPU seconds the rest of the machine used meanwhile (noise)
    others_load: float | None = None  # the same per wall second: cores the rest of the machine kept busy
    note: str = ""
    rows_out: int | None = None
    files: int | None = None
    result: list | None = None  # query rows
    detail: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


# --- /proc sampling --------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (every thread's ``children`` list)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            text = _read(f"/proc/{p}/task/{tid}/children")
            if text:
                todo.extend(int(c) for c in text.split())
    return out


def _rss(pid: int) -> int:
    text = _read(f"/proc/{pid}/statm")
    return int(text.split()[1]) * PAGE if text else 0


def _pss(pid: int) -> int:
    text = _read(f"/proc/{pid}/smaps_rollup")
    if not text:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_ticks(pid: int) -> int:
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return 0
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def machine_busy_ticks() -> int:
    """Busy jiffies of all CPUs since boot (/proc/stat: everything but idle and iowait)."""
    fields = [int(x) for x in (_read("/proc/stat") or "cpu 0").splitlines()[0].split()[1:]]
    return sum(fields[:8]) - sum(fields[3:5])


def wait_quiet(max_wait: float, busy_below: float = 0.15, window: float = 0.5) -> float:
    """Wait up to ``max_wait`` s for the machine to be nearly idle; return the busy share seen."""
    deadline = time.time() + max_wait
    cores = os.cpu_count() or 1
    while True:
        b0, t0 = machine_busy_ticks(), time.time()
        time.sleep(window)
        busy = (machine_busy_ticks() - b0) / TICKS / ((time.time() - t0) * cores)
        if busy < busy_below or time.time() >= deadline:
            return busy


class TreeSampler:
    """Samples a process tree from /proc in a thread: peak summed RSS and PSS, CPU time.

    RSS counts shared pages (the interpreter, pyarrow) once per process; PSS splits them
    between the processes that share them, so the PSS sum is the tree's real footprint.
    Peaks shorter than ``interval`` can be missed.
    """

    def __init__(self, pid: int, interval: float = 0.05, pss_every: int = 2, keep_history: bool = False):
        self.pid = pid
        self.history: list[tuple[float, dict[int, int]]] | None = [] if keep_history else None  # (time, pid → RSS)
        self.interval = interval
        self.pss_every = pss_every
        self.peak_rss = 0
        self.peak_pss = 0
        self.process_peaks: dict[int, int] = {}  # pid → its own peak RSS (as sampled)
        self.parents: dict[int, int] = {}  # pid → parent pid, for naming the processes
        self._cpu_start: dict[int, int] = {}
        self._cpu_last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._t0 = time.monotonic()
        self._busy_start = machine_busy_ticks()
        for p in process_tree(self.pid):
            self._cpu_start[p] = self._cpu_last[p] = _cpu_ticks(p)
        self._sample(True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(True)
        self._busy_end = machine_busy_ticks()
        self._t1 = time.monotonic()

    def _sample(self, with_pss: bool) -> None:
        pids = process_tree(self.pid)
        sizes = [_rss(p) for p in pids]
        self.peak_rss = max(self.peak_rss, sum(sizes))
        if self.history is not None:
            self.history.append((time.time(), dict(zip(pids, sizes))))
        for p, size in zip(pids, sizes):
            if size > self.process_peaks.get(p, 0):
                self.process_peaks[p] = size
            if p not in self.parents:
                stat = _read(f"/proc/{p}/stat")
                self.parents[p] = int(stat[stat.rindex(")") + 2:].split()[1]) if stat else 0
        if with_pss:
            self.peak_pss = max(self.peak_pss, sum(_pss(p) for p in pids))
        for p in pids:
            ticks = _cpu_ticks(p)
            if ticks:
                self._cpu_last[p] = max(self._cpu_last.get(p, 0), ticks)
                self._cpu_start.setdefault(p, 0)  # started during the job: count all of it

    def _loop(self) -> None:
        n = 0
        while not self._stop.wait(self.interval):
            n += 1
            self._sample(n % self.pss_every == 0)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu_last[p] - self._cpu_start.get(p, 0) for p in self._cpu_last) / TICKS

    @property
    def others_cpu_seconds(self) -> float:
        """CPU time used by every other process meanwhile (this harness's sampler included)."""
        return max(0.0, (self._busy_end - self._busy_start) / TICKS - self.cpu_seconds)

    @property
    def others_load(self) -> float:
        """``others_cpu_seconds`` per wall second: how many cores other processes kept busy."""
        return self.others_cpu_seconds / max(self._t1 - self._t0, 1e-9)


# --- msqcore ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body

    def message(self) -> str:
        try:
            return json.loads(self.body).get("errorMessage") or self.body
        except ValueError:
            return self.body


class MsqServer:
    """One ``msqcore serve`` on 127.0.0.1 with its own data dir, started once.

    ``python`` picks the interpreter (another venv's, to measure an installed build); the
    process runs in ``data_dir``'s parent so that ``-m msqcore`` finds the installed
    package, never a checkout in the current directory.
    """

    def __init__(self, data_dir: Path, python: str | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.python = python or sys.executable
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.data_dir.parent / f"msqcore-{self.port}.log"
        self._conn: http.client.HTTPConnection | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.python, "-m", "msqcore", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", str(self.data_dir), "--log-level", "WARNING"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.data_dir.parent)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"msqcore serve exited: {self.log.read_text()[-3000:]}")
            try:
                if self.get("/status/health") is True:
                    return
            except (OSError, HttpError):
                pass
            time.sleep(0.1)
        raise RuntimeError("msqcore serve did not become healthy")

    def stop(self, timeout: float = 30) -> None:
        if self._conn is not None:
            self._conn.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> MsqServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # a keep-alive connection: the status polls should cost the server as little as possible
    def request(self, method: str, path: str, body=None) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                resp = self._conn.getresponse()
                text = resp.read().decode()
                break
            except (http.client.HTTPException, ConnectionError, OSError):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        if resp.status >= 400:
            raise HttpError(resp.status, text)
        return resp.status, text

    def get(self, path: str):
        return json.loads(self.request("GET", path)[1])

    def post(self, path: str, body):
        return json.loads(self.request("POST", path, body)[1])

    def sql(self, query: str, **body) -> list:
        return self.post("/druid/v2/sql", {"query": query, **body})

    def version(self) -> str:
        return self.get("/status").get("version", "?")

    def run_task(self, query: str, context: dict, timeout: float = 3600, poll: float = 0.02) -> dict:
        """Submit and wait; returns the final status (raises HttpError when refused)."""
        task_id = self.post("/druid/v2/sql/task", {"query": query, "context": context})["taskId"]
        deadline = time.time() + timeout
        while True:
            status = self.get(f"/druid/indexer/v1/task/{task_id}/status")["status"]
            if status["statusCode"] != "RUNNING":
                return status
            if time.time() > deadline:
                self.request("POST", f"/druid/indexer/v1/task/{task_id}/shutdown")
                raise TimeoutError(f"task {task_id} still running after {timeout}s")
            time.sleep(poll)

    def stage_durations(self, task_id: str) -> list[dict]:
        payload = self.get(f"/druid/indexer/v1/task/{task_id}/reports")["multiStageQuery"]["payload"]
        return [{"stage": s["stageNumber"], "processor": s["definition"]["processor"]["type"],
                 "workers": s.get("workerCount"), "ms": s.get("duration")} for s in payload.get("stages", [])]

    def warm(self) -> None:
        """One tiny ingest, so that the first measured task does not start the forkserver."""
        rows = "\n".join(json.dumps({"timestamp": "2016-06-27T00:00:00Z", "channel": "#warm"}) for _ in range(3))
        source = json.dumps({"type": "inline", "data": rows})
        signature = json.dumps([{"name": "timestamp", "type": "string"}, {"name": "channel", "type": "string"}])
        sql = ("REPLACE INTO bench_warmup OVERWRITE ALL SELECT TIME_PARSE(\"timestamp\") AS __time, channel "
               f"FROM TABLE(EXTERN('{source}', '{{\"type\":\"json\"}}', '{signature}')) PARTITIONED BY DAY")
        for tasks in (2, 3):
            self.run_task(sql, {"maxNumTasks": tasks})


def run_msqcore(server: MsqServer, job: str, tasks: int, ds: DataSet, verify: bool = False,
                timeout: float = 3600, memory: bool = True) -> Result:
    """One job through msqcore's HTTP API, timed from submit to SUCCESS (or the SQL answer).

    ``memory=False`` samples the tree every 0.25 s without PSS: the CPU times are /proc's
    cumulative counters either way, but reading every process's smaps 10 times a second
    takes about a tenth of a core, which a CPU-use measurement on 2 cores cannot spare.
    The peaks are then coarse, and PSS is not measured."""
    res = Result(job, "msqcore", tasks - 1, "ok", rows=ds.rows)
    assert server.proc is not None
    sampling = {} if memory else {"interval": 0.25, "pss_every": 1 << 30}
    with TreeSampler(server.proc.pid, **sampling) as sampler:
        t0 = time.perf_counter()
        try:
            if job == "query":
                rows = server.sql(QUERY_SQL, resultFormat="array", context={"maxNumTasks": tasks})
                status = None
            else:
                sql = rollup_sql(ds) if job == "rollup" else ingest_sql(ds, job)
                context = {"maxNumTasks": tasks, **(ROLLUP_CONTEXT if job == "rollup" else {})}
                status = server.run_task(sql, context, timeout=timeout)
        except HttpError as e:
            msg = e.message()
            res.status = "unsupported" if "Could not resolve type id" in msg else "failed"
            res.note = f"HTTP {e.status}: {msg[:200]}"
            return res
        res.seconds = time.perf_counter() - t0
    res.cpu_seconds = sampler.cpu_seconds
    res.others_cpu, res.others_load = sampler.others_cpu_seconds, sampler.others_load
    res.peak_rss, res.peak_pss = sampler.peak_rss, sampler.peak_pss
    if job == "query":
        res.result = rows
        res.rows_out = len(rows)
        return res
    res.detail["task_ms"] = status["duration"]
    res.detail["task"] = status["id"]
    if status["statusCode"] != "SUCCESS":
        res.status, res.note = "failed", (status.get("errorMsg") or "")[:300]
        return res
    try:
        res.detail["stages"] = server.stage_durations(status["id"])
    except (HttpError, KeyError):
        pass
    if verify:
        table = "wiki_rollup" if job == "rollup" else "wiki"
        res.rows_out = server.sql(f"SELECT COUNT(*) FROM {table}", resultFormat="array")[0][0]
        segments = server.get(f"/druid/coordinator/v1/metadata/datasources/{table}/segments?full")
        res.files = len(segments)
        res.detail["out_bytes"] = sum(int(seg.get("size") or 0) for seg in segments)
        if job == "rollup":
            res.detail["count_sum"] = server.sql('SELECT SUM("count") FROM wiki_rollup', resultFormat="array")[0][0]
    return res


# --- peers -----------------------------------------------------------------------------------


def peer_available(tool: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(tool) is not None


def peer_dirs(out_root: Path, tool: str, job: str, threads: int) -> tuple[Path, Path]:
    """(where this job writes, the JSON ingest's output that the query job reads)."""
    return out_root / tool / f"{job}-t{threads}", out_root / tool / f"json-t{threads}"


def run_peer(tool: str, job: str, threads: int, ds: DataSet, out_root: Path, verify: bool = False,
             timeout: float = 3600) -> Result:
    """One job by one peer, in a fresh process (so the memory measured is the peer's own)."""
    res = Result(job, tool, threads, "ok", rows=ds.rows)
    out, query_dir = peer_dirs(out_root, tool, job, threads)
    env = dict(os.environ, POLARS_MAX_THREADS=str(threads), PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "bench.peers", "--tool", tool, "--job", job, "--threads", str(threads),
           "--data", str(ds.root.resolve()), "--out", str(out.resolve()), "--query-dir", str(query_dir.resolve())]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    with TreeSampler(proc.pid) as sampler:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            res.status, res.note = "failed", f"timed out after {timeout}s"
            return res
    res.peak_rss, res.peak_pss = sampler.peak_rss, sampler.peak_pss
    res.others_cpu, res.others_load = sampler.others_cpu_seconds, sampler.others_load
    if proc.returncode != 0:
        res.status = "failed"
        res.note = (stderr.decode(errors="replace").strip().splitlines() or ["exit " + str(proc.returncode)])[-1][:300]
        return res
    info = json.loads(stdout.decode().strip().splitlines()[-1])
    res.seconds, res.cpu_seconds = info["seconds"], info["cpu_seconds"]
    # The kernel's own peak for the peer's process (its whole life, import included) catches
    # what the sampler's interval misses.
    res.peak_rss = max(res.peak_rss or 0, info.get("maxrss", 0))
    res.files = info.get("files")
    if job == "query":
        res.result = info["result"]
        res.rows_out = len(res.result)
    elif verify:
        res.rows_out, res.detail["sorted"] = check_parquet_output(out, job)
        res.detail["out_bytes"] = sum(os.path.getsize(f) for f in parquet_files(out))
        if job == "rollup":
            res.detail["count_sum"] = _sum_column(out, "count")
    return res


def _sum_column(out: Path, column: str) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    return sum(pc.sum(pq.read_table(f, columns=[column])[column]).as_py() or 0 for f in parquet_files(out))


def check_parquet_output(out: Path, job: str) -> tuple[int, bool]:
    """Rows written, and whether every file is sorted by channel then __time."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows, ok = 0, True
    for f in parquet_files(out):
        t = pq.read_table(f, columns=["channel", "__time"])
        t = t.cast(pa.schema([("channel", pa.string()), ("__time", t.schema.field("__time").type)]))
        rows += t.num_rows
        ok = ok and t.sort_by([("channel", "ascending"), ("__time", "ascending")]).equals(t)
    return rows, ok


def warm_page_cache(ds: DataSet) -> None:
    """Read every input file once, so no tool pays the first read from disk."""
    for fmt in ("json", "csv", "parquet"):
        for path in ds.paths(fmt):
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass


__all__ = ["JOBS", "MsqServer", "Result", "TreeSampler", "check_parquet_output", "ingest_sql", "peer_available",
           "rollup_sql", "run_msqcore", "run_peer", "warm_page_cache"]
