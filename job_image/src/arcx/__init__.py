"""arcx: run Qwen2-family models over ARC-AGI tasks and record their activations.

Importing ``arcx`` stays cheap (no JAX); heavy modules are imported where used.
"""

__version__ = "0.1.0"
