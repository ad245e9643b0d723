"""Shuffle outputs of a stage (spec §5.3, §5.5). Every stage output is a frame file
(``engine/frames.py``), one per output partition, in the worker's directory of the task's
temp dir (Druid's ``localStorage`` output).

* ``IngestShuffle`` (``targetSize``, the final shuffle of an ingestion): rows sorted by
  [__bucket, CLUSTERED BY..., __boost] with the external sorter, while key statistics are
  gathered per time chunk. The controller merges every worker's statistics into partition
  boundaries; ``finish(boundaries)`` then writes one frame file per partition.
* ``write_hash_partitions`` (``hash``): rows dealt to N files by a hash of their key, for
  the groupBy post-shuffle stage that runs on every worker, and for both inputs of a
  sortMerge join (equal join keys land in the same partition on both sides).
* ``write_stage_file`` (one partition, ``maxCount`` 1 / ``mix``): a stage's rows as they are;
  a sorted SELECT stage writes its file through the external sorter instead.

Frames hold Druid's types. BOOLEAN values become LONG 1/0, as in Druid (whose native type
for BOOLEAN is LONG). Binary partial states (``hyperUnique`` collectors) travel as base64
text, as COMPLEX outputs already do; ``restore_binary`` decodes them for the post-shuffle stage.
"""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from msqcore.engine.frames import (DEFAULT_MAX_FRAME_SIZE, FrameFileReader, FrameFileWriter, check_max_frame_size,
                                   encode_frames, encode_keys, frame_info, frames_to_table)
from msqcore.engine.operators import from_base64, to_base64
from msqcore.engine.sorter import ExternalSorter, KeyStatistics
from msqcore.errors import InvalidInput
from msqcore.kernels import _sort as _ks

# The byte half of a worker's sort budget; the row half is the rowsInMemory context.
SORT_BYTES_IN_MEMORY = 256 << 20
# Runs merged at once; a merger holds one frame of each plus the frame it writes.
MAX_FAN_IN = 16


def max_frame_size(context: dict) -> int:
    """The ``maxFrameSize`` context parameter (Druid's default 1,000,000 bytes)."""
    value = context.get("maxFrameSize", DEFAULT_MAX_FRAME_SIZE)
    try:
        return check_max_frame_size(int(value))
    except (TypeError, ValueError):
        raise InvalidInput(f"Invalid value [{value}] for [maxFrameSize]; it must be an integer within "
                           f"[1024, {(1 << 31) - 1}]") from None


def rows_in_memory(context: dict) -> int:
    """The ``rowsInMemory`` context parameter: the row half of a worker's sort budget."""
    return int(context.get("rowsInMemory", 100_000))


class IngestShuffle:
    def __init__(self, out_dir: str, cluster_by: list[str], rows_in_memory: int, target_rows: int, on_progress,
                 frame_size: int = DEFAULT_MAX_FRAME_SIZE, bytes_in_memory: int = SORT_BYTES_IN_MEMORY):
        # __boost (a row counter) ends the key so that runs of equal keys can still be split.
        self.key = [("__bucket", False)] + [(c, False) for c in cluster_by] + [("__boost", False)]
        self.sorter = ExternalSorter(self.key, os.path.join(out_dir, "sort"), rows_in_memory=rows_in_memory,
                                     bytes_in_memory=bytes_in_memory, max_fan_in=MAX_FAN_IN,
                                     max_frame_size=frame_size, output_dir=out_dir,
                                     output_prefix="partition", progress_callback=on_progress)
        self.statistics: KeyStatistics | None = None  # made from the first rows' schema
        self.target_rows = target_rows
        self._boost = 0

    def add(self, table: pa.Table, buckets: np.ndarray) -> None:
        """Rows with their time chunks (``__bucket``), already checked. More than 5,000
        time chunks raise ``TooManyBuckets`` (from the key statistics)."""
        n = table.num_rows
        if not n:
            return
        table = table.append_column("__bucket", pa.array(buckets, pa.int64()))
        table = table.append_column("__boost", pa.array(np.arange(self._boost, self._boost + n, dtype=np.int64)))
        self._boost += n
        if self.statistics is None:
            self.statistics = KeyStatistics(table.schema, self.key, bucket_by_count=1, target_rows=self.target_rows)
            self.sorter.statistics = self.statistics  # the sorter feeds it every key it encodes
        self.sorter.add(table)

    def finish(self, boundaries: list[bytes]) -> list[str]:
        """Merge and cut at ``boundaries``: one frame file per partition."""
        return self.sorter.finish(boundaries)

    def progress(self) -> dict:
        return self.sorter.progress()

    def close(self) -> None:
        self.sorter.close()


def frame_file_stats(path: str) -> tuple[int, int, int]:
    """(rows, bytes, frames) of a frame file, for the shuffle counters."""
    with FrameFileReader(path) as reader:
        return reader.num_rows, os.path.getsize(path), reader.num_frames


def hash_partition_ids(keys: pa.Table, partitions: int) -> np.ndarray:
    """Each row's ``hash`` partition by its values of the ``keys`` columns."""
    if not keys.num_columns or partitions == 1 or not keys.num_rows:
        return np.zeros(keys.num_rows, dtype=np.int32)
    offsets, data = encode_keys(keys, [(c, False) for c in keys.column_names])
    return _ks.hash_partitions(offsets, data, partitions)


def write_hash_partitions(table: pa.Table, keys: pa.Table, partitions: int, out_dir: str,
                          frame_size: int) -> list[tuple[str, int, int, int]]:
    """Deal the rows to ``partitions`` frame files by the hash of their ``keys`` (one row
    each). Returns (path, rows, bytes, frames) per partition."""
    ids = hash_partition_ids(keys, partitions)
    order = np.argsort(ids, kind="stable")
    cuts = np.searchsorted(ids[order], np.arange(partitions + 1))
    grouped = table.take(pa.array(order)) if table.num_rows else table
    out = []
    for p in range(partitions):
        part = grouped.slice(int(cuts[p]), int(cuts[p + 1] - cuts[p]))
        path = os.path.join(out_dir, f"p{p}.frames")
        out.append((path, *write_stage_file(part, path, frame_size)))
    return out


def write_stage_file(table: pa.Table, path: str, frame_size: int) -> tuple[int, int, int]:
    """One output partition of a stage as a frame file of frames of at most ``frame_size``
    bytes (a row that does not fit raises ``RowTooLarge``); no rows give one empty frame,
    which still carries the columns. Returns (rows, bytes, frames)."""
    with FrameFileWriter(path) as writer:
        for frame in encode_frames(in_transit(table), max_frame_size=frame_size):
            writer.write(frame, frame_info(frame).num_rows)
    return frame_file_stats(path)


def read_stage_file(path: str) -> tuple[pa.Table, int, int]:
    """A stage's output partition: (its rows, the file's bytes, its frames)."""
    with FrameFileReader(path) as reader:
        return frames_to_table(reader.iter_frames()), os.path.getsize(path), reader.num_frames


def in_transit(table: pa.Table) -> pa.Table:
    """Binary columns (partial ``hyperUnique`` states) as base64 text, which frames carry."""
    for i, f in enumerate(table.schema):
        if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
            table = table.set_column(i, f.name, to_base64(table.column(i)))
    return table


def restore_binary(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The binary columns of ``schema`` (the input's signature) back from base64 text."""
    for f in schema:
        if (pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)) and f.name in table.column_names:
            i = table.column_names.index(f.name)
            if pa.types.is_string(table.schema.field(i).type):
                table = table.set_column(i, f.name, from_base64(table.column(i)).cast(f.type))
    return table
