"""Type stub for the Cython module ``msqcore.inputs._ndjson`` (Cython types in trailing comments).

Use ``msqcore.inputs.formats.FlatJson`` rather than calling it directly.
"""
import numpy as np
import pyarrow as pa

def parse_flat(
    block: bytes | memoryview,  # const uint8_t[::1]: whole lines of JSON objects
    names: list[str],  # the columns to read, in output order
    kinds: np.ndarray,  # const uint8_t[::1]: 0 string, 1 long, 2 double, per column
) -> list[pa.Array] | None:  # one array per name, or None when the block needs another parser
    ...
