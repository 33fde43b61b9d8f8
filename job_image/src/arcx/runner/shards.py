"""Re-export: parts are assembled, encoded and decoded by ``arcx_store.parts``."""

from arcx_store.header import read_header
from arcx_store.layout import tensor_name
from arcx_store.parts import decode_part, encode_part

__all__ = ["decode_part", "encode_part", "read_header", "tensor_name"]
