"""``msqcore.engine.memory`` against the numbers of Druid's ``WorkerMemoryParametersTest``
(which uses a usable fraction of 0.8 and a ``targetSize`` global sort shuffle)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from msqcore.engine.memory import (DEFAULT_FRAME_SIZE, MemoryIntrospector, WorkerMemoryParameters, striped,
                                   worker_memory_parameters)
from msqcore.errors import NotEnoughMemory

F = DEFAULT_FRAME_SIZE


def introspector(total: int, tasks: int, threads: int) -> MemoryIntrospector:
    return MemoryIntrospector(total, tasks, threads, usable_fraction=0.8)


def params(total, tasks, threads, inputs, stages=1, needs_statistics=True):
    return worker_memory_parameters(introspector(total, tasks, threads), F, inputs, needs_statistics,
                                    max_concurrent_stages=stages)


@pytest.mark.parametrize("name, total, tasks, threads, inputs, stages, stats, expected", [
    ("1WorkerInJvm_alone_1Thread", 1_250_000_000, 1, 1, [striped(1, 1)], 1, True,
     (973_000_000, 1, 874, 97_300_000, 0)),
    ("1WorkerInJvm_alone_withBroadcast_1Thread", 1_250_000_000, 1, 1, [striped(1, 1), striped(1, 1, True)], 1, True,
     (673_000_000, 1, 604, 67_300_000, 200_000_000)),
    ("1WorkerInJvm_alone_4Threads", 1_250_000_000, 1, 4, [striped(1, 4)], 1, True,
     (892_000_000, 4, 199, 89_200_000, 0)),
    ("1WorkerInJvm_alone_withBroadcast_4Threads", 1_250_000_000, 1, 4, [striped(1, 4), striped(1, 1, True)], 1, True,
     (592_000_000, 4, 132, 59_200_000, 200_000_000)),
    ("1WorkerInJvm_alone_noStats_4Threads", 1_250_000_000, 1, 4, [striped(1, 4)], 1, False,
     (892_000_000, 4, 222, 0, 0)),
    ("1WorkerInJvm_alone_2ConcurrentStages_4Threads", 1_250_000_000, 1, 4, [striped(1, 4)], 2, True,
     (392_000_000, 4, 87, 39_200_000, 0)),
    ("1WorkerInJvm_alone_2ConcurrentStages_4Threads_highHeap", 6_250_000_000, 1, 4, [striped(1, 4)], 2, True,
     (2_392_000_000, 4, 537, 239_200_000, 0)),
    ("1WorkerInJvm_alone_32Threads", 1_250_000_000, 1, 32, [striped(1, 32)], 1, True,
     (136_000_000, 32, 2, 13_600_000, 0)),
    ("1WorkerInJvm_alone_33Threads", 1_250_000_000, 1, 33, [striped(1, 33)], 1, True,
     (109_000_000, 32, 2, 10_900_000, 0)),
    ("1WorkerInJvm_alone_40Threads_memoryFromError", 1_366_250_000, 1, 40, [striped(1, 40)], 1, True,
     (13_000_000, 1, 2, 10_000_000, 0)),
    ("1WorkerInJvm_alone_40Threads_2ConcurrentStages_memoryFromError", 2_732_500_000, 1, 40, [striped(1, 40)], 2,
     True, (13_000_000, 1, 2, 10_000_000, 0)),
    ("1WorkerInJvm_200WorkersInCluster_4Threads", 2_500_000_000, 1, 4, [striped(200, 4)], 1, True,
     (1_096_000_000, 4, 245, 109_600_000, 0)),
    ("1WorkerInJvm_200WorkersInCluster_4Threads_2OutputPartitions", 2_500_000_000, 1, 4, [striped(200, 2)], 1, True,
     (1_548_000_000, 4, 347, 154_800_000, 0)),
    ("1WorkerInJvm_200WorkersInCluster_2ConcurrentStages_4Threads", 2_500_000_000, 1, 4, [striped(200, 4)], 2, True,
     (96_000_000, 4, 20, 10_000_000, 0)),
    ("12WorkersInJvm_200WorkersInCluster_64Threads_4OutputPartitions", 40_000_000_000, 12, 64, [striped(200, 4)], 1,
     True, (1_762_666_666, 64, 23, 176_266_666, 0)),
    ("12WorkersInJvm_200WorkersInCluster_2ConcurrentStages_64Threads_4OutputPartitions", 40_000_000_000, 12, 64,
     [striped(200, 4)], 2, True, (429_333_333, 64, 5, 42_933_333, 0)),
    ("1WorkerInJvm_MaxWorkersInCluster_2ConcurrentStages_2Threads", 6_250_000_000, 1, 2, [striped(1000, 2)], 2, True,
     (448_000_000, 2, 200, 44_800_000, 0)),
    ("1WorkerInJvm_MaxWorkersInCluster_1Thread", 2_500_000_000, 1, 1, [striped(1000, 1)], 1, True,
     (974_000_000, 1, 875, 97_400_000, 0)),
])
def test_worker_memory_parameters_as_druid(name, total, tasks, threads, inputs, stages, stats, expected):
    free, concurrent, channels, stats_bytes, broadcast = expected
    assert params(total, tasks, threads, inputs, stages, stats) == WorkerMemoryParameters(
        free, F, concurrent, channels, stats_bytes, broadcast)


@pytest.mark.parametrize("name, total, stages, fault", [
    ("1WorkerInJvm_alone_40Threads", 1_250_000_000, 1, (1_366_250_000, 1_250_000_000, 1_000_000_000, 1, 40, 1, 1)),
    ("1WorkerInJvm_alone_40Threads_slightlyLessMemoryThanError", 1_366_250_000 - 1, 1,
     (1_366_250_000, 1_366_249_999, 1_092_999_999, 1, 40, 1, 1)),
    ("1WorkerInJvm_alone_40Threads_2ConcurrentStages", 1_250_000_000, 2,
     (2_732_500_000, 1_250_000_000, 1_000_000_000, 1, 40, 1, 2)),
])
def test_not_enough_memory_as_druid(name, total, stages, fault):
    with pytest.raises(NotEnoughMemory) as e:
        params(total, 1, 40, [striped(1, 40)], stages)
    names = ("suggestedServerMemory", "serverMemory", "usableMemory", "serverWorkers", "serverThreads",
             "inputWorkers", "maxConcurrentStages")
    assert e.value.fields == dict(zip(names, fault))
    assert e.value.message.startswith("Not enough memory. Minimum bytes[")


def test_a_leaf_stage_has_no_processors_to_pay_for():
    """A stage reading external input has no stage input slices: no processor memory, no
    input workers (so ``inputWorkers`` is left out of the fault)."""
    p = worker_memory_parameters(MemoryIntrospector(1_000_000_000, 1, 1), F, [], needs_statistics=True)
    assert p.bundle_free_memory == 750_000_000
    with pytest.raises(NotEnoughMemory) as e:
        worker_memory_parameters(MemoryIntrospector(1_000_000_000, 10, 1), 50_000_000, [], needs_statistics=True)
    fault = e.value.to_json()
    # the bundle needs 10 MB + 3 frames; ten workers need ten of those over 75 %
    assert fault["suggestedServerMemory"] == -(-(10_000_000 + 3 * 50_000_000) * 10 * 4 // 3)
    assert fault["usableMemory"] == 75_000_000 and fault["serverWorkers"] == 10 and "inputWorkers" not in fault


def test_give_back_free_memory_returns_freed_pages_to_the_system():
    """What a stage freed but the allocators kept (glibc's heap between live blocks, Arrow's
    pool) leaves the process's RSS, without starting a process (``ctypes.util.find_library``
    ran ``ldconfig``: a fork of the worker). In a child process, so the measure is its own."""
    script = textwrap.dedent("""
        import pyarrow as pa
        from msqcore.engine.memory import give_back_free_memory

        def anon_kib():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon"):
                    return int(line.split()[1])

        blocks = [bytes(4000) + bytes([i % 256]) for i in range(100_000)]  # ~400 MB from malloc's heap
        kept = blocks[::64]  # one live block every 256 KB keeps glibc from trimming on its own
        arrow = [pa.allocate_buffer(1 << 20) for _ in range(100)]
        del blocks, arrow
        import subprocess

        def no_child(*args, **kwargs):  # a fork of a big worker counts its memory twice
            raise AssertionError(f"give_back_free_memory started a process: {args}")
        subprocess.Popen.__init__ = no_child
        before = anon_kib()
        give_back_free_memory()
        print(before, anon_kib(), len(kept))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    before, after, _ = (int(x) for x in out.split())
    assert before > 300_000
    assert after < before - 250_000
