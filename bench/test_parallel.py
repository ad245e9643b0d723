"""Parallelism: the JSON ingest of the benchmark data set with maxNumTasks 2 and 3.

Each bench runs the job through one session server over HTTP and records, per round, the
wall time and the CPU time of the server and all its descendants (controller thread,
forkserver, workers; read from /proc by ``bench.harness.TreeSampler``). The last test
prints CPU-seconds per wall-second of both and the 3-versus-2 wall-time ratio. The data set
is split into 4 files (``bench/conftest.py``): msqcore never gives one file to two workers.
"""
from __future__ import annotations

import statistics

import pytest

pytest.importorskip("pytest_benchmark")

from bench.harness import run_msqcore  # noqa: E402

RESULTS: dict[int, list] = {}


@pytest.mark.gate
@pytest.mark.parametrize("tasks", [2, 3], ids=lambda t: f"maxNumTasks{t}")
def test_parallel_ingest(benchmark, msq_server, bench_data, rounds, tasks):
    # memory=False: a light sampler, which leaves the cores to the job it measures
    first = run_msqcore(msq_server, "json", tasks, bench_data, memory=False)  # also the warm-up round
    assert first.status == "ok", first.note
    seen = RESULTS.setdefault(tasks, [])

    def once():
        result = run_msqcore(msq_server, "json", tasks, bench_data, memory=False)
        assert result.status == "ok", result.note
        seen.append(result)

    benchmark.pedantic(once, rounds=rounds, iterations=1)
    usage = statistics.median(r.cpu_seconds / r.seconds for r in seen)
    benchmark.extra_info.update(rows=bench_data.rows, cpu_per_wall=round(usage, 2),
                                others_load=round(statistics.median(r.others_load for r in seen), 2),
                                stages=seen[-1].detail.get("stages"))


@pytest.mark.gate
def test_parallel_summary(capsys):
    if set(RESULTS) != {2, 3}:
        pytest.skip("run together with test_parallel_ingest[maxNumTasks2] and [maxNumTasks3]")
    lines = ["", "maxNumTasks  wall s (median)  CPU s  CPU-s per wall-s  others' load"]
    wall = {}
    for tasks in (2, 3):
        runs = RESULTS[tasks]
        wall[tasks] = statistics.median(r.seconds for r in runs)
        lines.append(f"{tasks:>11}  {wall[tasks]:>15.3f}  {statistics.median(r.cpu_seconds for r in runs):>5.2f}"
                     f"  {statistics.median(r.cpu_seconds / r.seconds for r in runs):>16.2f}"
                     f"  {statistics.median(r.others_load for r in runs):>12.2f}")
    lines.append(f"wall time maxNumTasks=3 / maxNumTasks=2: {wall[3] / wall[2]:.2f}x")
    with capsys.disabled():
        print("\n".join(lines))
