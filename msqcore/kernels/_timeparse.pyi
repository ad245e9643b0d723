"""Type stub for the Cython module ``msqcore.kernels._timeparse`` (Cython types in trailing comments).

Use ``msqcore.kernels.timeparse`` rather than calling these directly.
"""
import pyarrow as pa

def parse_utf8(
    validity: pa.Buffer | None,  # const uint8_t* validity bitmap, or NULL (no nulls)
    offsets: pa.Buffer,  # const uint8_t*, read as int32_t[] or int64_t[]
    data: pa.Buffer | None,  # const uint8_t* UTF-8 bytes
    offset: int,  # Py_ssize_t: the array's slot offset (sliced arrays)
    length: int,  # Py_ssize_t
    large_offsets: bool,  # bint: int64 offsets (large_string)
    default_offset_ms: int = 0,  # int64_t: zone offset for strings without one
    lenient: bool = False,  # bint: Druid's exact (Joda-lenient) grammar
) -> tuple[pa.Buffer, pa.Buffer | None, int]:  # (int64_t[length], uint8_t bitmap or None, Py_ssize_t null count)
    ...

def format_millis(
    validity: pa.Buffer | None,  # const uint8_t* validity bitmap, or NULL
    values: pa.Buffer,  # const uint8_t*, read as int64_t[] epoch millis
    offset: int,  # Py_ssize_t
    length: int,  # Py_ssize_t
) -> tuple[pa.Buffer, pa.Buffer, pa.Buffer | None, int, bool]:  # (int32_t/int64_t offsets, uint8_t data, bitmap or None, Py_ssize_t null count, bint large offsets)
    ...
