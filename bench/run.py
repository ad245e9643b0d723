"""Ingestion benchmark: msqcore side by side with DuckDB, Polars and DataFusion.

    python -m bench.run --rows 1000000 --repeat 3

generates the data set (once; it is cached under ``--workdir``), starts one ``msqcore
serve`` on 127.0.0.1 with its own data dir, then runs every (job, parallelism, tool) cell
round-robin ``--repeat`` times and prints one table of medians. msqcore runs each job with
``maxNumTasks`` = parallelism + 1 (that many workers plus the controller); the peers run
in a fresh process per cell with that many engine threads. A peer that is not installed
is skipped with a message; a job msqcore refuses is reported as ``unsupported``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import gen_data
from bench.harness import (MIB, MsqServer, Result, peer_available, run_msqcore, run_peer, wait_quiet,
                           warm_page_cache)
from bench.peers import JOBS, TOOLS, version

ALL_TOOLS = ("msqcore",) + TOOLS


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def machine_facts(msq_version: str, msq_python: str) -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        commit = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    try:
        import pyarrow
        pyarrow_version = pyarrow.__version__
    except ImportError:
        pyarrow_version = "?"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "msqcore": msq_version, "msqcore_python": msq_python, "checkout": commit, "pyarrow": pyarrow_version,
        **{tool: version(tool) for tool in TOOLS},
    }


def _fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def summarize(results: list[Result], rows: int, jobs, tools, parallel) -> list[dict]:
    """One line per (job, parallelism, tool): medians over the repeats, peak memory."""
    lines = []
    for job in jobs:
        for par in parallel:
            group = []
            for tool in tools:
                runs = [r for r in results if (r.job, r.parallel, r.tool) == (job, par, tool)]
                if not runs:
                    continue
                ok = [r for r in runs if r.status == "ok"]
                line = {"job": job, "parallel": par, "tool": tool, "runs": len(ok)}
                if ok:
                    secs = statistics.median(r.seconds for r in ok)
                    line.update(status="ok", seconds=secs, rows_per_s=rows / secs if secs else None,
                                cpu=statistics.median(r.cpu_seconds or 0 for r in ok),
                                others=statistics.median(r.others_load or 0 for r in ok),
                                rss=max(r.peak_rss or 0 for r in ok), pss=max(r.peak_pss or 0 for r in ok),
                                all_seconds=[round(r.seconds, 3) for r in ok],
                                out_bytes=next((r.detail["out_bytes"] for r in ok if r.detail.get("out_bytes")), None))
                else:
                    line.update(status=runs[0].status, note=runs[0].note)
                group.append(line)
            peers = [g for g in group if g["tool"] != "msqcore" and g["status"] == "ok"]
            best = min(peers, key=lambda g: g["seconds"]) if peers else None
            best_cpu = min(peers, key=lambda g: g["cpu"]) if peers else None
            for g in group:
                if g["tool"] == "msqcore" and g["status"] == "ok" and best:
                    g["ratio"] = g["seconds"] / best["seconds"]
                    g["best_peer"] = best["tool"]
                    g["ratio_cpu"] = g["cpu"] / best_cpu["cpu"] if best_cpu["cpu"] else None
                    g["best_peer_cpu"] = best_cpu["tool"]
            lines.extend(group)
    return lines


JOB_LABELS = {"json": "ingest JSON", "csv": "ingest CSV", "parquet": "ingest Parquet",
              "rollup": "rollup (JSON)", "query": "query"}


def table(lines: list[dict], markdown: bool = False) -> str:
    header = ["job", "par", "tool", "median s", "rows/s", "CPU s", "others' load", "peak RSS MiB", "peak PSS MiB",
              "output MiB", "msqcore / best peer", "CPU: msqcore / best"]
    body = []
    for g in lines:
        if g["status"] == "ok":
            ratio = f"{g['ratio']:.2f}x ({g['best_peer']})" if "ratio" in g else ""
            ratio_cpu = f"{g['ratio_cpu']:.2f}x ({g['best_peer_cpu']})" if g.get("ratio_cpu") else ""
            body.append([JOB_LABELS.get(g["job"], g["job"]), str(g["parallel"]), g["tool"], f"{g['seconds']:.3f}",
                         _fmt_int(g["rows_per_s"]), f"{g['cpu']:.2f}", f"{g['others']:.1f}", _fmt_int(g["rss"] / MIB),
                         _fmt_int(g["pss"] / MIB), f"{g['out_bytes'] / MIB:,.1f}" if g.get("out_bytes") else "",
                         ratio, ratio_cpu])
        else:
            body.append([JOB_LABELS.get(g["job"], g["job"]), str(g["parallel"]), g["tool"], g["status"], "", "", "",
                         "", "", "", "", g.get("note", "")[:60]])
    if markdown:
        rule = "|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|"
        return "\n".join(["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in body])


def stage_breakdown(runs: list[dict]) -> list[str]:
    """msqcore's median stage durations per (job, par), from the task reports."""
    cells: dict[tuple, list[list[dict]]] = {}
    for r in runs:
        if r["tool"] == "msqcore" and r["status"] == "ok" and r["detail"].get("stages"):
            cells.setdefault((r["job"], r["parallel"]), []).append(r["detail"]["stages"])
    out = []
    for (job, par), reps in cells.items():
        parts = []
        for i, stage in enumerate(reps[0]):
            ms = statistics.median(rep[i]["ms"] or 0 for rep in reps if len(rep) > i)
            parts.append(f"{stage['stage']} {stage['processor']} ×{stage['workers']} {ms / 1000:.1f}s")
        out.append(f"{JOB_LABELS.get(job, job)}, par {par}: " + " → ".join(parts))
    return out


def _print_stages(lines: list[str]) -> None:
    if lines:
        print("\nmsqcore stages (median of the task reports' stage durations):\n  " + "\n  ".join(lines))


def checks(results: list[Result], rows: int) -> list[str]:
    """Do the tools agree on what they produced? (rows written, rollup rows, query answer)"""
    problems = []
    first = {}
    for r in results:
        if r.status == "ok" and (r.job, r.parallel, r.tool) not in first and (r.rows_out is not None or r.result):
            first[(r.job, r.parallel, r.tool)] = r
    for (job, par, tool), r in sorted(first.items()):
        where = f"{job} par={par} {tool}"
        if job in ("json", "csv", "parquet"):
            if r.rows_out is not None and r.rows_out != rows:
                problems.append(f"{where}: wrote {r.rows_out:,} rows, expected {rows:,}")
            if r.files is not None and r.files != gen_data.DAYS:
                problems.append(f"{where}: {r.files} day files/segments, expected {gen_data.DAYS}")
            if r.detail.get("sorted") is False:
                problems.append(f"{where}: output files not sorted by channel, __time")
        if job == "rollup" and r.detail.get("count_sum") not in (None, rows):
            problems.append(f"{where}: SUM(count) = {r.detail['count_sum']}, expected {rows:,}")
    for job in ("rollup", "query"):
        seen = {}
        for (j, par, tool), r in first.items():
            if j != job:
                continue
            value = r.rows_out if job == "rollup" else sorted(tuple(x) for x in r.result or [])
            seen.setdefault(json.dumps(value, default=str), []).append(f"{tool}/par={par}")
        if len(seen) > 1:
            detail = "; ".join(f"{', '.join(v)} → {k[:80]}" for k, v in seen.items())
            problems.append(f"{job}: tools disagree: {detail}")
    return problems


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--files", type=int, default=4, help="input files per format (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the table shows medians (default 3)")
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"subset of {','.join(JOBS)}")
    parser.add_argument("--tools", default=",".join(ALL_TOOLS), help=f"subset of {','.join(ALL_TOOLS)}")
    parser.add_argument("--tasks", default="2,3", help="msqcore maxNumTasks values (peers get N-1 threads)")
    parser.add_argument("--workdir", default="var/bench", help="data, outputs, server data dir (default var/bench)")
    parser.add_argument("--msqcore-python", default=sys.executable,
                        help="interpreter whose installed msqcore serves (default: this one)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per job run")
    parser.add_argument("--quiet-wait", type=float, default=30,
                        help="before each run, wait up to this many seconds for the machine to be idle (default 30)")
    parser.add_argument("--keep-server-data", action="store_true",
                        help="keep msqcore's data dir (every replaced version of every segment) after the run")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--table", metavar="RESULTS_JSON", help="only print the table of an earlier run's raw results")
    args = parser.parse_args(argv)
    if args.table:
        saved = json.loads(Path(args.table).read_text())
        print(table(saved["summary"], markdown=args.markdown))
        _print_stages(stage_breakdown(saved["runs"]))
        print("\nchecks: " + ("all tools agree" if not saved["checks"] else "\n  " + "\n  ".join(saved["checks"])))
        return 0
    # SIGTERM (and SIGINT, which a background shell ignores) must still stop the server.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)

    jobs, tools = _csv(args.jobs), _csv(args.tools)
    parallel = [int(t) - 1 for t in _csv(args.tasks)]
    for name in jobs:
        if name not in JOBS:
            parser.error(f"unknown job {name}")
    for tool in tools:
        if tool not in ALL_TOOLS:
            parser.error(f"unknown tool {tool}")
    present = []
    for tool in tools:
        if tool == "msqcore" or peer_available(tool):
            present.append(tool)
        else:
            print(f"skipping {tool}: not installed (pip install -e '.[bench]')", file=sys.stderr)
    tools = present
    work = Path(args.workdir)
    ds = gen_data.ensure(work / "data", args.rows, args.seed, args.files, log=lambda m: print(m, file=sys.stderr))
    warm_page_cache(ds)
    out_root = work / "out"
    stamp = time.strftime("%Y%m%d-%H%M%S")

    server = None
    if "msqcore" in tools:
        server = MsqServer(work / f"server-{stamp}", python=args.msqcore_python)
        server.start()
        server.warm()
    facts = machine_facts(server.version() if server else "-", args.msqcore_python)
    facts["loadavg_start"] = Path("/proc/loadavg").read_text().split()[:3]
    print(f"# {facts['date']}: {args.rows:,} rows (seed {args.seed}, {args.files} files per format), "
          f"{args.repeat} rounds", file=sys.stderr)
    results: list[Result] = []
    dead: set[tuple] = set()
    try:
        if "query" in jobs and "json" not in jobs:  # the query reads what the JSON ingest wrote
            for par in parallel:
                for tool in tools:
                    r = run_msqcore(server, "json", par + 1, ds) if tool == "msqcore" else \
                        run_peer(tool, "json", par, ds, out_root)
                    print(f"  setup: json par={par} {tool}: {r.status}", file=sys.stderr)
        for rep in range(args.repeat):
            for job in jobs:
                for par in parallel:
                    for tool in tools:
                        cell = (job, par, tool)
                        if cell in dead:
                            continue
                        busy = wait_quiet(args.quiet_wait) if args.quiet_wait > 0 else None
                        if tool == "msqcore":
                            r = run_msqcore(server, job, par + 1, ds, verify=rep == 0, timeout=args.timeout)
                        else:
                            r = run_peer(tool, job, par, ds, out_root, verify=rep == 0, timeout=args.timeout)
                        r.detail["busy_before"] = busy
                        results.append(r)
                        if r.status != "ok":
                            dead.add(cell)
                        shown = f"{r.seconds:.3f}s (others' load {r.others_load:.1f})" if r.seconds is not None \
                            else f"{r.status}: {r.note[:100]}"
                        print(f"  round {rep + 1}/{args.repeat} {job:8s} par={par} {tool:10s} {shown}",
                              file=sys.stderr, flush=True)
    finally:
        if server:
            server.stop()
            if not args.keep_server_data:  # REPLACE leaves every overwritten version on disk
                shutil.rmtree(server.data_dir, ignore_errors=True)

    facts["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    lines = summarize(results, ds.rows, jobs, tools, parallel)
    problems = checks(results, ds.rows)
    raw = work / f"results-{ds.rows}-{stamp}.json"
    raw.write_text(json.dumps({"facts": facts, "rows": ds.rows, "seed": args.seed, "files": args.files,
                               "repeat": args.repeat, "summary": lines, "checks": problems,
                               "runs": [r.to_json() for r in results]}, indent=1, default=str))
    print(f"\n{args.rows:,} rows, {args.repeat} rounds, {facts['date']}; {facts['cores']} cores "
          f"({facts['cpu']}), {facts['memory_gib']} GiB; Python {facts['python']}; msqcore {facts['msqcore']}, "
          + ", ".join(f"{t} {facts[t]}" for t in TOOLS if facts.get(t)))
    print(f"load average {' '.join(facts['loadavg_start'])} at start, {' '.join(facts['loadavg_end'])} at end")
    print("par: msqcore workers (maxNumTasks - 1) / peer engine threads; the ratio is msqcore's median "
          "over the fastest peer's at the same par (above 1: msqcore is slower), the CPU ratio the same for CPU "
          f"seconds; output MiB: the segments or Parquet files written; others' load: cores the rest of the machine kept busy meanwhile, 0 to {os.cpu_count()} "
          "(noise)\n")
    print(table(lines, markdown=args.markdown))
    _print_stages(stage_breakdown([r.to_json() for r in results]))
    print("\nchecks: " + ("all tools agree" if not problems else "\n  " + "\n  ".join(problems)))
    print(f"raw results: {raw}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
