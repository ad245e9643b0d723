"""Type stub for the Cython module ``msqcore.inputs._csv`` (Cython types in trailing comments).

Used by ``msqcore.inputs.formats`` (``read_delimited``, ``_delimited_plain`` and ``_convert``).
"""
import pyarrow as pa

def line_quotes(
    block: bytes | memoryview,  # const uint8_t[::1]: whole lines of delimited text
) -> tuple[int, bool]:  # (lines, every line has an even number of quotes)
    ...

def plain_longs(
    col: pa.StringArray | pa.ChunkedArray,  # string (not large_string) values
) -> pa.Array | pa.ChunkedArray | None:  # int64, or None when a value needs the lenient parse
    ...

def bool_strings(
    col: pa.BooleanArray | pa.ChunkedArray,
) -> pa.StringArray | pa.ChunkedArray:  # "true" / "false", nulls kept
    ...

def parse_delimited(
    block: bytes | memoryview,  # whole lines of delimited text
    ncols: int,  # fields per line
    slot: "numpy.ndarray",  # const int32_t[::1]: the output column of each field, -1 when not read
    delimiter: int,  # the delimiter byte
    quote: int,  # the quote byte, -1 for none (TSV)
) -> tuple[int, list[pa.StringArray]] | None:  # (lines, columns); None: a line is not of the usual shape
    ...
