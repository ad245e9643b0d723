"""Type stub for the Cython module ``msqcore.kernels._sort`` (Cython types in trailing comments).

Use ``msqcore.engine.sorter`` rather than calling these directly.
"""
import numpy as np
import numpy.typing as npt

from msqcore.kernels._frame import FrameSource

DONE: int  # Merger.run results
FULL: int
REFILL: int
BOUNDARY: int

def argsort_keys(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]: ...  # (const int64_t[::1], const uint8_t[::1]) -> int64[n], stable

def search_keys(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], order: npt.NDArray[np.int64], bounds: list[bytes]
) -> npt.NDArray[np.int64]: ...  # first position in ``order`` whose key >= each bound

def hash_partitions(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], partitions: int
) -> npt.NDArray[np.int32]: ...  # (const int64_t[::1], const uint8_t[::1], int64_t) -> int32[n]

class Merger:
    """Loser tree over k key-sorted batch sequences (see the module doc for the protocol)."""

    out_sources: npt.NDArray[np.int32]  # readonly int32[capacity]: slot of each popped row
    out_rows: npt.NDArray[np.int64]  # readonly int64[capacity]: row within that slot's batch
    count: int  # readonly Py_ssize_t: rows popped since reset_output()
    capacity: int  # readonly Py_ssize_t
    refill: int  # readonly int: cursor waiting for its next batch, or -1
    def __init__(self, k: int, capacity: int) -> None: ...
    def set_cursor(self, i: int, source: FrameSource, slot: int, last: bool) -> None: ...
    def set_done(self, i: int) -> None: ...
    def set_slot(self, i: int, slot: int) -> None: ...
    def set_boundary(self, boundary: bytes | None) -> None: ...
    def reset_output(self) -> None: ...
    def build(self) -> None: ...
    def run(self, budget_bits: int) -> int: ...  # (int64_t) -> DONE | FULL | REFILL | BOUNDARY
