"""The one dtype table: safetensors dtype names, numpy dtypes, and the extraction dtypes.

bf16 comes through ml_dtypes (the type JAX itself uses), so arrays round-trip without a copy.
Needs the ``tensors`` extra (numpy, ml_dtypes); the operator never imports this module.
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

# extraction.dtype / model.dtype (config spelling) -> safetensors name
EXTRACTION: dict[str, str] = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}


def numpy_dtype(config_name: str) -> np.dtype:
    """``bfloat16`` -> the numpy (ml_dtypes) dtype."""
    return BY_NAME[EXTRACTION[config_name]]


def itemsize(config_name: str) -> int:
    return numpy_dtype(config_name).itemsize
