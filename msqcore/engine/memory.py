"""Worker memory as Druid's ``WorkerMemoryParameters`` (Druid 31+, as of Druid 35), which
fails a stage with ``NotEnoughMemory`` when a worker cannot run it.

Druid's arithmetic, step by step (``createInstance``):

1. ``memoryPerTask`` = (heap - lookups) x usable fraction / tasks sharing the heap
   (``MemoryIntrospectorImpl``); ``bundleMemory`` = that / ``maxConcurrentStages``.
2. Each processor needs 25 MB extra plus one frame per upstream worker it reads at once plus
   one output frame; ``min(threads, input partitions)`` processors run at once. A stage with
   broadcast inputs also reserves 20 % of the bundle x 1.5 for them. The rest is the bundle's
   free memory.
3. Free memory below 10 MB (partition statistics) + (2 + output frames per channel) frames
   is ``NotEnoughMemory``; its ``suggestedServerMemory`` is the heap that would give the
   bundle exactly that minimum.
4. Otherwise the free memory, less the partition statistics' share (10 % of it, between
   10 MB and 300 MB, for stages that gather key statistics), is split among the super
   sorter's processors: as many as can each hold 2 input frames and the output frames.

msqcore's mapping: a worker is a process on this machine, and all of a stage's workers run
at once, so the machine plays the part of an Indexer whose task slots are those workers:

* heap (``serverMemory``) = the machine's physical memory (there is no lookup footprint to
  subtract: lookups live in the server process);
* usable fraction = 0.75, Druid's production value (spec §5.7);
* tasks sharing the heap (``serverWorkers``) = the stage's worker processes;
* processing threads (``serverThreads``) = 1: a worker runs its stage on one thread;
* ``maxConcurrentStages`` = 1 (tasks run one stage at a time), and one output frame per
  channel (local storage, not durable).
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

from msqcore.errors import NotEnoughMemory

DEFAULT_FRAME_SIZE = 1_000_000
USABLE_MEMORY_FRACTION = 0.75
EXTRA_MEMORY_PER_PROCESSOR = 25_000_000
PARTITION_STATS_MAX_BUNDLE_FREE_MEMORY_FRACTION = 0.1
PARTITION_STATS_MAX_MEMORY_PER_BUNDLE = 300_000_000
PARTITION_STATS_MIN_MEMORY_PER_BUNDLE = 10_000_000
BROADCAST_BUFFER_TOTAL_MEMORY_FRACTION = 0.2
BROADCAST_BUFFER_OVERHEAD_RATIO = 1.5


def machine_memory() -> int:
    """Physical memory of this machine, which all of a stage's worker processes share."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class MemoryIntrospector:
    """Druid's ``MemoryIntrospectorImpl`` without lookups."""

    total_memory: int  # totalMemoryInJvm
    num_tasks: int  # numTasksInJvm
    num_threads: int  # numProcessingThreads
    usable_fraction: float = USABLE_MEMORY_FRACTION

    def memory_per_task(self) -> int:
        # Java: (long) (total * fraction) / numTasks, a double product truncated, then long division
        return max(0, int(self.total_memory * self.usable_fraction) // self.num_tasks)

    def memory_required_for_task_memory(self, memory_per_task: int) -> int:
        """``computeJvmMemoryRequiredForTaskMemory``: the heap that gives each task this much."""
        if memory_per_task <= 0:
            raise ValueError(f"Invalid memoryPerTask[{memory_per_task}], expected a positive number")
        return math.ceil(memory_per_task * self.num_tasks / self.usable_fraction)


@dataclass(frozen=True)
class StageInput:
    """A ``StageInputSlice`` of a work order: for each partition it reads, the upstream
    workers that wrote it."""

    partitions: tuple[frozenset[int], ...]
    broadcast: bool = False


def striped(num_workers: int, num_partitions: int, broadcast: bool = False) -> StageInput:
    """Druid's ``ReadablePartitions.striped``: every upstream worker wrote every partition
    (a hash or range shuffle)."""
    workers = frozenset(range(num_workers))
    return StageInput(tuple(workers for _ in range(num_partitions)), broadcast)


@dataclass(frozen=True)
class WorkerMemoryParameters:
    bundle_free_memory: int
    frame_size: int
    super_sorter_concurrent_processors: int
    super_sorter_max_channels_per_merger: int
    partition_statistics_max_retained_bytes: int
    broadcast_buffer_memory: int


def worker_memory_parameters(introspector: MemoryIntrospector, frame_size: int, inputs: list[StageInput],
                             needs_statistics: bool, max_output_partitions: int = 0,
                             max_concurrent_stages: int = 1,
                             frames_per_output_channel: int = 1) -> WorkerMemoryParameters:
    """``WorkerMemoryParameters.createInstance``; raises ``NotEnoughMemory``.

    ``needs_statistics``: the stage's shuffle gathers key statistics (a global sort);
    ``max_output_partitions``: its partition count when known in advance (hash, or a
    ``maxCount`` global sort), else 0 (a ``targetSize`` global sort, or no shuffle)."""
    bundle = introspector.memory_per_task() // max_concurrent_stages
    processor = EXTRA_MEMORY_PER_PROCESSOR + _max_simultaneous_input_channels(inputs) * frame_size + frame_size
    has_broadcast = any(i.broadcast for i in inputs)
    broadcast = int(_broadcast_buffer(bundle) * BROADCAST_BUFFER_OVERHEAD_RATIO) if has_broadcast else 0
    threads = introspector.num_threads
    processors = min(threads, sum(len(i.partitions) for i in inputs))
    free = bundle - processors * processor - broadcast
    minimum = PARTITION_STATS_MIN_MEMORY_PER_BUNDLE + (2 + frames_per_output_channel) * frame_size
    if free < minimum:
        required = (bundle - free + minimum) * max_concurrent_stages
        raise _not_enough(introspector, introspector.memory_required_for_task_memory(required), inputs,
                          max_concurrent_stages)
    stats = _partition_stats_memory(free) if needs_statistics else 0
    sorter = free - stats
    concurrent = threads if max_output_partitions == 0 else min(max_output_partitions, threads)
    channels = -1
    while concurrent > 0:
        per_processor = sorter // concurrent
        outputs = frames_per_output_channel * frame_size
        if per_processor >= 2 * frame_size + outputs:
            channels = (per_processor - outputs) // frame_size
            break
        concurrent -= 1
    if concurrent == 0:  # not expected after the minimum above; Druid suggests no size then
        raise _not_enough(introspector, 0, inputs, max_concurrent_stages)
    return WorkerMemoryParameters(free, frame_size, concurrent, channels, stats,
                                  _broadcast_buffer(bundle) if has_broadcast else 0)


def _max_simultaneous_input_channels(inputs: list[StageInput]) -> int:
    """Per input, the most upstream workers of one partition; summed over the broadcast
    inputs and over the others, and the larger sum (broadcast data is read first)."""
    broadcast = other = 0
    for i in inputs:
        widest = max((len(p) for p in i.partitions), default=0)
        if i.broadcast:
            broadcast += widest
        else:
            other += widest
    return max(broadcast, other)


def _partition_stats_memory(free: int) -> int:
    share = int(min(free * PARTITION_STATS_MAX_BUNDLE_FREE_MEMORY_FRACTION, PARTITION_STATS_MAX_MEMORY_PER_BUNDLE))
    return max(share, PARTITION_STATS_MIN_MEMORY_PER_BUNDLE)


def _broadcast_buffer(bundle: int) -> int:
    return int(bundle * BROADCAST_BUFFER_TOTAL_MEMORY_FRACTION)


def _not_enough(introspector: MemoryIntrospector, suggested: int, inputs: list[StageInput],
                max_concurrent_stages: int) -> NotEnoughMemory:
    input_workers = len(frozenset().union(*(p for i in inputs for p in i.partitions)))
    return NotEnoughMemory(suggestedServerMemory=suggested, serverMemory=introspector.total_memory,
                           usableMemory=introspector.memory_per_task(), serverWorkers=introspector.num_tasks,
                           serverThreads=introspector.num_threads, inputWorkers=input_workers,
                           maxConcurrentStages=max_concurrent_stages)


def give_back_free_memory() -> None:
    """Return to the system what a finished stage freed. Arrow's allocator (mimalloc or
    jemalloc) and glibc's malloc keep freed pages for reuse, so a worker would otherwise
    hold its last stage's peak while it runs the next one."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another libc). Looked up among the symbols the process
    has loaded: ``ctypes.util.find_library`` would run ``ldconfig`` in a child process, a fork
    of the whole worker (which, for a moment, also counted its memory twice)."""
    import ctypes
    return getattr(ctypes.CDLL(None), "malloc_trim", None)
