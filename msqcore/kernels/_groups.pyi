"""Type stub for the ``_groups`` Cython kernels (Cython signatures in trailing comments)."""
import numpy as np
import numpy.typing as npt

COUNT: int
SUM: int
MIN: int
MAX: int

def number_groups(code: npt.NDArray[np.int64], space: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...  # (const int64_t[::1] code, Py_ssize_t space) -> (gid int64[n], first rows int64[groups])

def fold(kind: int, gid: npt.NDArray[np.int64], groups: int, data: npt.NDArray[np.int64] | None = None, valid: npt.NDArray[np.uint8] | None = None) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64] | None]: ...  # (int kind, const int64_t[::1] gid, Py_ssize_t groups, const int64_t[::1] data=None, const uint8_t[::1] valid=None) -> (counts, values or None)
