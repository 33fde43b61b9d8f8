"""Checksums a marker records: sha256 (``arcx verify``) and CRC32C, in the form GCS reports
it (base64 of the big-endian 4 bytes), so a listing of a gs:// store can be compared with
the marker at no cost. Computed from the bytes on every backend, so a store's markers are
the same wherever it is written. Needs ``google-crc32c`` (the ``tensors`` extra; the job
image has it through google-cloud-storage).
"""

from __future__ import annotations

import base64
import hashlib


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def crc32c_b64(data: bytes) -> str:
    import google_crc32c  # a C extension; only writers import it

    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
