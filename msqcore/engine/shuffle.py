"""The shuffle output of an ingestion stage: rows sorted by [__bucket, CLUSTERED BY..., __time]
with the external sorter (spilling sorted runs under a memory budget), written as one frame
file per time chunk for the segment generators to read.
"""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from msqcore.engine.frames import encode_keys, read_frames_file
from msqcore.engine.sorter import ExternalSorter
from msqcore.errors import TooManyBuckets

MAX_BUCKETS = 5000
# The byte half of a worker's sort budget; the row half is the rowsInMemory context.
SORT_BYTES_IN_MEMORY = 256 << 20


class IngestShuffle:
    def __init__(self, out_dir: str, cluster_by: list[str], rows_in_memory: int, on_progress):
        self.key = [("__bucket", False)] + [(c, False) for c in cluster_by] + [("__time", False)]
        self.sorter = ExternalSorter(self.key, os.path.join(out_dir, "sort"), rows_in_memory=rows_in_memory,
                                     bytes_in_memory=SORT_BYTES_IN_MEMORY, output_dir=out_dir,
                                     output_prefix="bucket", progress_callback=on_progress)
        self.rows: dict[int, int] = {}

    def add(self, table: pa.Table, buckets: np.ndarray) -> None:
        """Rows with their time chunks (``__bucket``), already checked."""
        if not table.num_rows:
            return
        keys, counts = np.unique(buckets, return_counts=True)
        for bucket, n in zip(keys.tolist(), counts.tolist()):
            self.rows[bucket] = self.rows.get(bucket, 0) + n
        if len(self.rows) > MAX_BUCKETS:
            raise TooManyBuckets(maxBuckets=MAX_BUCKETS)
        self.sorter.add(table.append_column("__bucket", pa.array(buckets, pa.int64())))

    def finish(self) -> dict:
        """Merge and cut at the time-chunk boundaries: {"files": {chunk: path}, "rows": {chunk: n}}."""
        chunks = sorted(self.rows)
        if not chunks:
            return {"files": {}, "rows": {}}
        paths = self.sorter.finish([self._chunk_start_key(b) for b in chunks[1:]])
        return {"files": dict(zip(chunks, paths)), "rows": {b: self.rows[b] for b in chunks}}

    def progress(self) -> dict:
        return self.sorter.progress()

    def close(self) -> None:
        self.sorter.close()

    def _chunk_start_key(self, bucket: int) -> bytes:
        # The smallest key of a chunk: its __bucket with every other key column null
        # (nulls sort first), so partition p holds exactly chunk p.
        schema = self.sorter.schema
        row = pa.table({f.name: pa.array([bucket] if f.name == "__bucket" else [None], f.type) for f in schema})
        offsets, data = encode_keys(row, self.key)
        return bytes(data[offsets[0]:offsets[1]])


def read_chunk_file(path: str) -> tuple[pa.Table, int]:
    """One worker's rows of one time chunk, and how many frames held them."""
    batches = list(read_frames_file(path))
    table = pa.Table.from_batches(batches) if batches else pa.table({})
    if "__bucket" in table.column_names:
        table = table.drop_columns(["__bucket"])
    return table, len(batches)
