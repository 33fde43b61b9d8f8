"""safetensors dtype names and their numpy dtypes: one table for every reader and writer.

bf16 comes through ml_dtypes (the type JAX itself uses), so arrays round-trip without a copy.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

BY_NAME: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "U8": np.dtype(np.uint8),
}
NAME_OF: dict[np.dtype, str] = {v: k for k, v in BY_NAME.items()}
