"""Type stub for the ``_roaring`` Cython kernels (Cython signatures in trailing comments)."""
import numpy as np
import numpy.typing as npt

def serialize_csr(
    offsets: npt.NDArray[np.int64], values: npt.NDArray[np.uint32]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]: ...  # (const int64_t[::1] offsets, const uint32_t[::1] values) -> (uint8[...], int64[card + 1])

def decode_bitmaps(
    data: npt.NDArray[np.uint8], byte_offsets: npt.NDArray[np.int64], which: npt.NDArray[np.int64],
    limit: int = ...,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint32]]: ...  # (const uint8_t[::1], const int64_t[::1], const int64_t[::1], uint64_t limit=2**32)

def serialize(values: npt.NDArray[np.uint32]) -> bytes: ...  # (const uint32_t[::1] values)

def deserialize(buf: npt.NDArray[np.uint8], limit: int = ...) -> npt.NDArray[np.uint32]: ...  # (const uint8_t[::1] buf, uint64_t limit=2**32)
