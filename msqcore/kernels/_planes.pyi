"""Type stub for the ``_planes`` Cython kernels (Cython signatures in trailing comments)."""
import numpy as np
import numpy.typing as npt

def split(data: npt.NDArray[np.uint8], width: int, block_items: int) -> npt.NDArray[np.uint8]: ...  # (const uint8_t[::1] data, int width, Py_ssize_t block_items) -> uint8[len(data)]

def join(planes: npt.NDArray[np.uint8], width: int, out: npt.NDArray[np.uint8]) -> None: ...  # (const uint8_t[::1] planes, int width, uint8_t[::1] out)
