"""Type stub for the Cython module ``msqcore.kernels._frame`` (Cython types in trailing comments).

Use ``msqcore.engine.frames`` rather than calling these directly.
"""
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pyarrow as pa

MAGIC: bytes  # b"MSQF"
FORMAT_VERSION: int  # 2 (1 had an XXH64 checksum)
HEADER_SIZE: int  # 32
FLAG_HAS_KEY: int  # 1
FLAG_SORTED: int  # 2

def xxh3(buf: bytes | memoryview | pa.Buffer | npt.NDArray[np.uint8]) -> int: ...  # (bytes-like) -> uint64_t XXH3-64, seed 0
def xxh3_simd(cap: int = -1) -> int: ...  # (int cap) -> XXH3 loop in use: 2 AVX-512F, 1 AVX2, 0 SSE2/scalar (tests)
def find_byte(buf: bytes | memoryview | pa.Buffer, value: int, start: int = 0, stop: int = -1) -> int: ...  # first offset of the byte in buf[start:stop] or -1 (memchr)
def checksum(buf: bytes | memoryview | pa.Buffer) -> int: ...  # frame checksum: low 32 bits of XXH3-64 -> uint32_t
def buffer_count(column_type: int) -> int: ...  # (int column_type) -> buffers of that type in a frame
def frame_overhead(schema_len: int, num_buffers: int) -> int: ...  # (Py_ssize_t, Py_ssize_t) -> bytes besides the rows

class FrameSource:
    """Column views (ColView structs) over one Arrow batch or one frame, plus row costs."""

    num_rows: int  # readonly Py_ssize_t
    num_columns: int  # readonly Py_ssize_t
    has_key: bool  # readonly bint
    sorted: bool  # readonly bint
    costs: npt.NDArray[np.int64] | None  # readonly int64[num_rows]: bits each row adds to a frame (None until needed)
    def __init__(self, num_rows: int, num_columns: int, has_key: bool) -> None: ...
    def set_column(
        self,
        i: int,  # Py_ssize_t
        column_type: int,  # int: FrameType value
        owner: object,  # kept alive with the source
        validity: int,  # uintptr_t (0 = no nulls)
        vbit: int,  # int64_t bit offset of row 0
        values: int,  # uintptr_t: row 0's value (fixed types)
        offsets: int,  # uintptr_t: row 0's offset (strings, lists)
        large: bool,  # bint: int64 offsets
        data: int,  # uintptr_t: string bytes
        cvalidity: int = 0,  # uintptr_t: list element validity
        cvbit: int = 0,  # int64_t
        cvalues: int = 0,  # uintptr_t: element 0's value
        coffsets: int = 0,  # uintptr_t: element 0's offset (string elements)
        clarge: bool = False,  # bint
        cdata: int = 0,  # uintptr_t
    ) -> None: ...
    def set_key(self, owner: object, offsets: int, large: bool, data: int) -> None: ...  # (object, uintptr_t, bint, uintptr_t)
    def finalize(self, costs: bool = True) -> FrameSource: ...  # costs=False: gather_frame computes them if it needs them
    @staticmethod
    def from_frame(buf: bytes | memoryview | pa.Buffer) -> FrameSource: ...  # cheap checks, then views into buf

def encode_keys(
    src: FrameSource, columns: npt.NDArray[np.int32], descending: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]: ...  # (FrameSource, const int32_t[::1], const uint8_t[::1]) -> (int64[n + 1], uint8[...])

def key_offsets(
    src: FrameSource, columns: npt.NDArray[np.int32]
) -> npt.NDArray[np.int64]: ...  # (FrameSource, const int32_t[::1]) -> int64[n + 1]: the offsets encode_keys gives (lazy keys)

def key_prefix_lengths(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], types: npt.NDArray[np.int32], descending: npt.NDArray[np.uint8]
) -> npt.NDArray[np.int64]: ...  # (const int64_t[::1], const uint8_t[::1], const int32_t[::1], const uint8_t[::1]) -> int64[n]

def bucket_ids(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], lengths: npt.NDArray[np.int64], max_buckets: int
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]] | None: ...  # -> (int32[n] ids, int64[b] first rows) or None past max_buckets

def gather_frame(
    schema: bytes,  # the frame's schema section
    sources: list[FrameSource],
    source_ids: npt.NDArray[np.int32] | None,  # const int32_t[::1]
    rows: npt.NDArray[np.int64] | None,  # const int64_t[::1]
    start: int,  # Py_ssize_t
    end: int,  # Py_ssize_t
    max_frame_size: int,  # int64_t
    flags: int,  # int: FLAG_HAS_KEY | FLAG_SORTED
    key_columns: npt.NDArray[np.int32] | None = None,  # const int32_t[::1]: lazy keys, encoded into the frame
    key_descending: npt.NDArray[np.uint8] | None = None,  # const uint8_t[::1]
) -> tuple[pa.Buffer | None, int]: ...  # (frame, next row) or (None, start) when one row does not fit
# source_ids and rows may both be None: the rows [start, end) of the only source, in order

def decode(
    buf: bytes | memoryview | pa.Buffer, schema_of: Callable[[tuple[str, ...], tuple[int, ...], tuple[tuple[int, bool], ...]], pa.Schema]
) -> pa.RecordBatch: ...  # zero-copy, through the Arrow C data interface, after frame_layout's checks; raises ValueError

def frame_layout(
    buf: bytes | memoryview | pa.Buffer,
) -> tuple[int, int, list[int], list[int], list[str], list[tuple[int, bool]], list[tuple[int, int]], bytes]: ...  # (rows, flags, types, column flags, names, key, directory, schema section)

def check_frame(buf: bytes | memoryview | pa.Buffer) -> None: ...  # O(n) checks; raises ValueError
