"""Type stub for the Cython module ``msqcore.kernels._hll`` (Cython types in trailing comments).

Use ``msqcore.engine.hll`` rather than calling these directly. ``regs`` is an (n, 1031)
uint8 array of dense version-1 HyperLogLogCollectors.
"""
import numpy as np
import numpy.typing as npt

DENSE_BYTES: int  # 1031

def new_collectors(n: int) -> npt.NDArray[np.uint8]: ...  # (n, 1031), empty
def add_longs(
    regs: npt.NDArray[np.uint8],  # uint8_t[:, ::1]
    gid: npt.NDArray[np.int64],  # const int64_t[::1]
    values: npt.NDArray[np.int64],  # const int64_t[::1]
    valid: npt.NDArray[np.uint8],  # const uint8_t[::1]
) -> None: ...
def add_ints(
    regs: npt.NDArray[np.uint8], gid: npt.NDArray[np.int64], values: npt.NDArray[np.int32], valid: npt.NDArray[np.uint8]
) -> None: ...  # values: const int32_t[::1]
def add_strings(
    regs: npt.NDArray[np.uint8],
    gid: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],  # const int64_t[::1], n + 1
    data: npt.NDArray[np.uint8],  # const uint8_t[::1], UTF-8
    valid: npt.NDArray[np.uint8],
) -> None: ...
def fold_serialized(
    regs: npt.NDArray[np.uint8],
    gid: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    data: npt.NDArray[np.uint8],
    valid: npt.NDArray[np.uint8],
) -> None: ...  # raises ValueError on bytes that are not a version-1 collector
def estimate(regs: npt.NDArray[np.uint8], out: npt.NDArray[np.float64]) -> None: ...  # double[::1]
def serialize(regs: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]: ...
def add_positions(regs: npt.NDArray[np.uint8], row: int, bucket: int, position_of_1: int) -> None: ...  # testing only
def hash128(data: bytes) -> bytes: ...  # testing only
