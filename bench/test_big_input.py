"""A ~3 GB JSON file ingested through the HTTP API, against the 1 GiB memory bar (issue #6).

    python -m bench.test_big_input --gib 3            # about 2 min to generate, 10+ min to ingest
    BENCH_BIG_INPUT=1 python -m pytest bench/test_big_input.py -s

It writes one JSON-lines file of the benchmark's wikipedia-like rows (``bench/gen_data.py``,
generated chunk by chunk), starts one ``msqcore serve``, runs the benchmark's JSON ingest
(``REPLACE … PARTITIONED BY DAY CLUSTERED BY channel``, all 24 columns) on that single file,
and samples ``/proc`` meanwhile. It prints the peak RSS and PSS summed over the server and
all its descendants, and each process's own peak: the server, the forkserver, each worker.
One file is one split (Druid never splits a file across workers), so one worker reads it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench import gen_data
from bench.harness import MIB, REPO, INPUT_FORMATS, MsqServer, TreeSampler, _read
from bench.peers import OTHERS

BAR = 1 << 30  # the bar for the whole server process tree


def ingest_sql(path: Path) -> str:
    source = {"type": "local", "files": [str(path.resolve())]}
    signature = [{"name": name, "type": kind} for name, kind in gen_data.COLUMNS]
    cols = ", ".join(f'"{c}"' for c in OTHERS)
    return (f'REPLACE INTO wiki_big OVERWRITE ALL SELECT TIME_PARSE("timestamp") AS __time, {cols} '
            f"FROM TABLE(EXTERN('{json.dumps(source)}', '{json.dumps(INPUT_FORMATS['json'])}', "
            f"'{json.dumps(signature)}')) PARTITIONED BY DAY CLUSTERED BY channel")


def ensure_file(workdir: Path, gib: float, seed: int = 42, log=print) -> tuple[Path, int]:
    """The big file (reused when a complete one of that size is there) and its row count."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"big-{gib:g}gib-{seed}.json"
    marker = path.with_suffix(".rows")
    if path.exists() and marker.exists():
        return path, int(marker.read_text())
    t0 = time.perf_counter()
    rows = gen_data.write_big_json(path, int(gib * (1 << 30)), seed)
    marker.write_text(str(rows))
    log(f"wrote {rows:,} rows, {path.stat().st_size / MIB:,.0f} MiB in {time.perf_counter() - t0:.0f}s → {path}")
    return path, rows


def _role(pid: int, root: int, parents: dict[int, int]) -> str:
    if pid == root:
        return "server"
    cmd = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
    if parents.get(pid) == root:
        return "forkserver" if "forkserver" in cmd else f"child {pid}"
    return f"worker {pid}"


def run(path: Path, rows: int, tasks: int, data_dir: Path, python: str | None = None, log=print) -> dict:
    """Ingest the file once through a fresh server; returns the figures."""
    with MsqServer(data_dir, python=python) as server:
        server.warm()
        with TreeSampler(server.proc.pid, interval=0.1, pss_every=5, keep_history=True) as sampler:
            t0 = time.perf_counter()
            status = server.run_task(ingest_sql(path), {"maxNumTasks": tasks}, timeout=7200, poll=0.5)
            seconds = time.perf_counter() - t0
        result = {"rows": rows, "file_mib": round(path.stat().st_size / MIB), "maxNumTasks": tasks,
                  "status": status["statusCode"], "error": status.get("errorMsg"), "seconds": round(seconds, 1),
                  "rows_per_s": round(rows / seconds), "cpu_s": round(sampler.cpu_seconds, 1),
                  "others_load": round(sampler.others_load, 2),
                  "peak_rss_mib": round(sampler.peak_rss / MIB), "peak_pss_mib": round(sampler.peak_pss / MIB),
                  "processes": {}}
        root = server.proc.pid
        for pid, peak in sorted(sampler.process_peaks.items(), key=lambda kv: -kv[1]):
            result["processes"][_role(pid, root, sampler.parents)] = round(peak / MIB)
        if status["statusCode"] == "SUCCESS":
            result["stages"] = server.stage_durations(status["id"])
            result["stage_peaks"] = _stage_peaks(server, status["id"], sampler.history)
            result["rows_out"] = server.sql("SELECT COUNT(*) FROM wiki_big", resultFormat="array")[0][0]
    return result


def _stage_peaks(server: MsqServer, task_id: str, history) -> dict[str, int]:
    """Peak summed RSS (MiB) while each stage ran, from the report's start times."""
    from datetime import datetime
    stages = server.get(f"/druid/indexer/v1/task/{task_id}/reports")["multiStageQuery"]["payload"]["stages"]
    out = {}
    for s in stages:
        if not s.get("startTime"):
            continue
        start = datetime.fromisoformat(s["startTime"].replace("Z", "+00:00")).timestamp()
        end = start + (s.get("duration") or 0) / 1000
        sizes = [sum(rss.values()) for t, rss in history if start <= t <= end]
        out[f"{s['stageNumber']} {s['definition']['processor']['type']}"] = round(max(sizes, default=0) / MIB)
    return out


def report(result: dict) -> str:
    verdict = "under" if result["peak_rss_mib"] * MIB < BAR else "OVER"
    lines = [f"{result['rows']:,} rows ({result['file_mib']:,} MiB of JSON), maxNumTasks {result['maxNumTasks']}: "
             f"{result['status']} in {result['seconds']}s ({result['rows_per_s']:,} rows/s, CPU {result['cpu_s']}s, "
             f"others' load {result['others_load']})",
             f"peak RSS {result['peak_rss_mib']:,} MiB ({verdict} the 1 GiB bar), peak PSS "
             f"{result['peak_pss_mib']:,} MiB",
             "per process peak RSS (MiB): " + ", ".join(f"{k} {v:,}" for k, v in result["processes"].items())]
    if result.get("stages"):
        lines.append("stages: " + " → ".join(f"{s['stage']} {s['processor']} ×{s['workers']} {s['ms'] / 1000:.1f}s"
                                            for s in result["stages"]))
    if result.get("stage_peaks"):
        lines.append("peak RSS while each stage ran (MiB): " + ", ".join(f"{k} {v:,}"
                                                                       for k, v in result["stage_peaks"].items()))
    if result.get("error"):
        lines.append(f"error: {result['error'][:500]}")
    return "\n".join(lines)


def test_big_json_input_memory(tmp_path):
    """Not a CI test: runs only with BENCH_BIG_INPUT=1 (it takes many minutes)."""
    import pytest
    if not os.environ.get("BENCH_BIG_INPUT"):
        pytest.skip("set BENCH_BIG_INPUT=1 to ingest the ~3 GB file")
    workdir = Path(os.environ.get("BENCH_WORKDIR", REPO / "var" / "bench"))
    path, rows = ensure_file(workdir / "big", float(os.environ.get("BENCH_BIG_GIB", "3")))
    result = run(path, rows, 2, tmp_path / "var", python=os.environ.get("BENCH_MSQCORE_PYTHON"))
    print(report(result))
    assert result["status"] == "SUCCESS", result["error"]
    assert result["rows_out"] == rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=3.0, help="size of the JSON file (default 3)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tasks", type=int, default=2, help="maxNumTasks (one file: one worker either way)")
    parser.add_argument("--workdir", default=str(REPO / "var" / "bench"))
    parser.add_argument("--msqcore-python", default=None, help="the interpreter whose installed msqcore serves")
    parser.add_argument("--keep-file", action="store_true", help="keep the generated file for the next run")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve()
    path, rows = ensure_file(workdir / "big", args.gib, args.seed)
    data_dir = workdir / "big-server" / "var"
    try:
        result = run(path, rows, args.tasks, data_dir, python=args.msqcore_python)
    finally:
        import shutil
        shutil.rmtree(data_dir.parent, ignore_errors=True)
        if not args.keep_file:
            path.unlink(missing_ok=True)
            path.with_suffix(".rows").unlink(missing_ok=True)
    print(report(result))
    print(json.dumps(result))
    return 0 if result["status"] == "SUCCESS" else 1


if __name__ == "__main__":
    sys.exit(main())
