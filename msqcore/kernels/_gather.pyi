import numpy as np
import pyarrow as pa

def gather(arrays: list[pa.Array], run_of: np.ndarray, row_of: np.ndarray) -> pa.Array | None: ...
