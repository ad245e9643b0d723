"""Type stub for the ``_segment`` Cython kernels (Cython signatures in trailing comments)."""
import numpy as np
import numpy.typing as npt

def id_width(cardinality: int) -> int: ...  # (Py_ssize_t cardinality) -> int in 1..4

def id_bits(cardinality: int) -> int: ...  # (Py_ssize_t cardinality) -> 1..7, or 0 past 128 entries

def pack_id_bits(ids: npt.NDArray[np.int32], bits: int) -> npt.NDArray[np.uint8]: ...  # (const int32_t[::1] ids, int bits) -> uint8[ceil(n * bits / 8)]

def unpack_id_bits(
    data: npt.NDArray[np.uint8], bits: int, n: int, cardinality: int, rows: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.int32]: ...  # (const uint8_t[::1] data, int bits, Py_ssize_t n, Py_ssize_t cardinality, rows=None) -> int32[n or len(rows)]

def pack_ids(ids: npt.NDArray[np.int32], width: int) -> npt.NDArray[np.uint8]: ...  # (const int32_t[::1] ids, int width) -> uint8[n * width]

def unpack_ids(
    data: npt.NDArray[np.uint8], width: int, n: int, cardinality: int
) -> npt.NDArray[np.int32]: ...  # (const uint8_t[::1] data, int width, Py_ssize_t n, Py_ssize_t cardinality) -> int32[n]

def remap_ids(ids: npt.NDArray[np.int32], mapping: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]: ...  # (const int32_t[::1] ids, const int32_t[::1] mapping) -> int32[n]

def build_inverted_index(
    ids: npt.NDArray[np.int32], cardinality: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]: ...  # (const int32_t[::1] ids, Py_ssize_t cardinality) -> (int64[card + 1], int32[n])

def lengths(offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.uint32]: ...  # (const int64_t[::1] offsets) -> uint32[n]

def row_list_deltas(
    offsets: npt.NDArray[np.int64], rows: npt.NDArray[np.int32]
) -> npt.NDArray[np.uint32]: ...  # (const int64_t[::1] offsets, const int32_t[::1] rows) -> uint32[n]

def check_dictionary(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], first_sorted: int, check_order: bool
) -> None: ...  # (const int64_t[::1] offsets, const uint8_t[::1] data, Py_ssize_t first_sorted, bint check_order)

def check_inverted_index(
    ids: npt.NDArray[np.int32], offsets: npt.NDArray[np.int64], rows: npt.NDArray[np.int32]
) -> None: ...  # (const int32_t[::1] ids, const int64_t[::1] offsets, const int32_t[::1] rows)

def sort_strings(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], order: npt.NDArray[np.int32]
) -> None: ...  # (const int64_t[::1] offsets, const uint8_t[::1] data, int32_t[::1] order) sorts order in place, stably

def sorted_dictionary_of_rows(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], valid: npt.NDArray[np.uint8] | None = None
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.uint8], npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.int32], bool
]: ...  # (const int64_t[::1] offsets, const uint8_t[::1] data, valid) -> (dict offsets int64[card + 1], dict data, ids int32[n], index offsets int64[card + 1], index rows int32[n], has_null)

class StringDictionary:
    """Distinct strings in first-seen order through a hash table (memory: the distinct values)."""

    has_null: bool
    @property
    def cardinality(self) -> int: ...
    def encode(
        self, offsets: npt.NDArray[np.int32] | npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
        valid: npt.NDArray[np.uint8] | None = None,
    ) -> npt.NDArray[np.int32]: ...  # (const offset_t[::1] offsets (int32 or int64), const uint8_t[::1] data, valid) -> int32[n]: first-seen id + 1, 0 for null
    def values(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]: ...  # (offsets int64[card + 1], data uint8)
