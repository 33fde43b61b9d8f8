"""Peak dense bf16 matmul throughput per chip: the one table `arcx plan` divides by.

Figures are the vendors' published dense (not sparse) bf16 peaks per chip:

- TPU v4 275, v5e 197, v5p 459, v6e (Trillium) 918 TFLOP/s: Google Cloud TPU system
  architecture pages (cloud.google.com/tpu/docs/v4, /v5e, /v5p, /v6e).
- NVIDIA A100 SXM 312, H100 SXM 989, H200 SXM 989, L4 121 TFLOP/s: NVIDIA's A100, H100,
  H200 and L4 datasheets (their "with sparsity" figures are twice these).

An estimate divides FLOPs by ``peak x MFU`` (model FLOP/s utilisation, a stated
assumption, 0.35 by default): prefill-only forwards over a few thousand tokens typically
reach 30-50% on TPUs with splash attention; a small model on a big chip reaches less.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Accelerator:
    name: str
    kind: str  # "tpu" or "gpu"
    peak_tflops_bf16: float


ACCELERATORS: tuple[Accelerator, ...] = (
    Accelerator("tpu-v4", "tpu", 275.0),
    Accelerator("tpu-v5e", "tpu", 197.0),
    Accelerator("tpu-v5p", "tpu", 459.0),
    Accelerator("tpu-v6e", "tpu", 918.0),
    Accelerator("a100", "gpu", 312.0),
    Accelerator("h100", "gpu", 989.0),
    Accelerator("h200", "gpu", 989.0),
    Accelerator("l4", "gpu", 121.0),
)

DEFAULT_MFU = 0.35
