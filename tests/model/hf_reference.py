"""transformers-side helpers the parity tests share (the reference, run in PyTorch)."""

from __future__ import annotations

import numpy as np
import torch


def hf_generate(model, ids, mask, max_new, eos, pad) -> np.ndarray:
    """transformers' greedy tokens after the prompt, padded with ``pad`` to ``max_new``."""
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=list(eos),
            pad_token_id=pad,
        )
    new = out[:, ids.shape[1] :].numpy()
    return np.pad(new, ((0, 0), (0, max_new - new.shape[1])), constant_values=pad)
