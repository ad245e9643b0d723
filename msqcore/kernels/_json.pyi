"""Type stub for the Cython module ``msqcore.kernels._json`` (Cython types in trailing comments).

Use ``msqcore.planner.json_functions`` rather than calling it directly. ``offsets``, ``data``
and ``valid`` are a string column's buffers: int64[n + 1] offsets into uint8 ``data``, and
uint8[n] validity. A ``path`` is a list of JSON-escaped field names (bytes) and array
indexes (int, negative from the end).
"""
import numpy as np
import numpy.typing as npt

KINDS: dict[str, int]  # missing, null, string, long, double, true, false, object, array

def canonical(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], valid: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.int64], bytes, npt.NDArray[np.uint8]]: ...  # (offsets, data, ok uint8[n])

def extract(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], valid: npt.NDArray[np.uint8],
    path: list[bytes | int], literal: bool,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], bytes]: ...  # (kinds uint8[n], offsets, data)

def elements(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], valid: npt.NDArray[np.uint8],
    path: list[bytes | int],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.uint8], npt.NDArray[np.int64], bytes]: ...
# (row ok, row offsets int64[n + 1], element kinds, element offsets, element data)

def keys(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], valid: npt.NDArray[np.uint8],
    path: list[bytes | int],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64], bytes]: ...
# (row ok, row offsets, key offsets, key data)

def paths(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], valid: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64], bytes]: ...
# (row ok, row offsets, path offsets, path data)

def quote(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], valid: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.int64], bytes]: ...  # (offsets, data)
