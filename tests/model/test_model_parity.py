"""Parity with transformers' PyTorch Qwen2ForCausalLM on random tiny checkpoints.

The reference activations come from forward hooks on the PyTorch modules (not from
``hidden_states``), so each site is checked against the tensor it names: the decoder
layer's input (resid_pre) and output (resid_post), the attention block's o_proj output
(attn_out), the input of post_attention_layernorm (resid_mid), and the MLP output (mlp_out).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from hf_reference import hf_generate

from arcx.model import SITES, Capture, forward, greedy_generate, load_model, make_mesh

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.torch

ATOL = 1e-4  # fp32, absolute, on activations and logits
SHAPE_NAMES = ["tied_gqa2", "untied_gqa4_theta1e6", "tied_gqa3_theta100"]

_jit_forward = jax.jit(forward, static_argnums=3)


def _hf_model(path: Path, dtype: torch.dtype = torch.float32):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path), dtype=dtype, attn_implementation="eager"
    )
    return model.eval()


def _hf_sites(model, ids: np.ndarray, mask: np.ndarray) -> tuple[dict[str, np.ndarray], object]:
    """Every site at every layer from hooks, and the model output (with hidden_states)."""
    acts: dict[str, torch.Tensor] = {}
    handles = []
    for i, layer in enumerate(model.model.layers):

        def pre(_m, args, kwargs, i=i):
            acts[f"resid_pre.{i}"] = (args[0] if args else kwargs["hidden_states"]).detach()

        def post(_m, _args, out, i=i):
            acts[f"resid_post.{i}"] = (out[0] if isinstance(out, tuple) else out).detach()

        def attn(_m, _args, out, i=i):
            acts[f"attn_out.{i}"] = out[0].detach()

        def mid(_m, args, i=i):
            acts[f"resid_mid.{i}"] = args[0].detach()

        def mlp(_m, _args, out, i=i):
            acts[f"mlp_out.{i}"] = out.detach()

        handles += [
            layer.register_forward_pre_hook(pre, with_kwargs=True),
            layer.register_forward_hook(post),
            layer.self_attn.register_forward_hook(attn),
            layer.post_attention_layernorm.register_forward_pre_hook(mid),
            layer.mlp.register_forward_hook(mlp),
        ]
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    try:
        with torch.no_grad():
            out = model(
                input_ids=torch.tensor(ids, dtype=torch.long),
                attention_mask=torch.tensor(mask, dtype=torch.long),
                position_ids=torch.tensor(positions, dtype=torch.long),
                output_hidden_states=True,
            )
    finally:
        for h in handles:
            h.remove()
    return {k: v.float().numpy() for k, v in acts.items()}, out


def _all_sites(n_layers: int) -> Capture:
    return Capture(SITES, tuple(range(n_layers)))


@pytest.mark.parametrize("shape", SHAPE_NAMES)
def test_every_site_and_logits_match_transformers_fp32(shape, tiny_dirs, make_batch):
    lm = load_model(str(tiny_dirs[shape]), mesh=make_mesh())
    n = lm.config.num_hidden_layers
    ids, mask = make_batch(lm.config.vocab_size, [13, 13, 13], side="right", seed=3)
    ours = _jit_forward(lm.model, ids, mask, _all_sites(n))
    ref, out = _hf_sites(_hf_model(tiny_dirs[shape]), ids, mask)

    assert set(ours.activations) == set(ref) and len(ref) == 5 * n
    for key, want in ref.items():
        np.testing.assert_allclose(
            np.asarray(ours.activations[key]), want, atol=ATOL, rtol=0, err_msg=key
        )
    np.testing.assert_allclose(np.asarray(ours.logits), out.logits.numpy(), atol=ATOL, rtol=0)
    assert ours.logits.dtype == np.float32 and ours.logits.shape == (3, 13, lm.config.vocab_size)


def test_hidden_states_mapping_as_documented(tiny_dir, make_batch):
    """hidden_states[i] is resid_pre.i; the last entry is after the final norm, not resid_post."""
    lm = load_model(str(tiny_dir), mesh=make_mesh())
    n = lm.config.num_hidden_layers
    ids, mask = make_batch(lm.config.vocab_size, [9, 9], side="right", seed=4)
    ours = _jit_forward(lm.model, ids, mask, Capture(("resid_pre", "resid_post"), tuple(range(n))))
    _, out = _hf_sites(_hf_model(tiny_dir), ids, mask)
    hs = [h.numpy() for h in out.hidden_states]
    assert len(hs) == n + 1
    for i in range(n):
        np.testing.assert_allclose(np.asarray(ours.activations[f"resid_pre.{i}"]), hs[i], atol=ATOL)
    for i in range(n - 1):
        np.testing.assert_allclose(
            np.asarray(ours.activations[f"resid_post.{i}"]), hs[i + 1], atol=ATOL
        )
    last = np.asarray(ours.activations[f"resid_post.{n - 1}"])
    assert np.abs(last - hs[n]).max() > 0.1, "the last hidden_states entry is normed"
    normed = np.asarray(lm.model.norm(ours.activations[f"resid_post.{n - 1}"]))
    np.testing.assert_allclose(normed, hs[n], atol=ATOL)


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_matches_transformers_on_real_tokens(side, tiny_dirs, make_batch):
    shape = "untied_gqa4_theta1e6"
    lm = load_model(str(tiny_dirs[shape]), mesh=make_mesh())
    n = lm.config.num_hidden_layers
    ids, mask = make_batch(lm.config.vocab_size, [13, 5, 9], side=side, seed=5)
    ours = _jit_forward(lm.model, ids, mask, _all_sites(n))
    ref, out = _hf_sites(_hf_model(tiny_dirs[shape]), ids, mask)
    real = mask.astype(bool)
    for key, want in ref.items():
        got = np.asarray(ours.activations[key])
        np.testing.assert_allclose(got[real], want[real], atol=ATOL, rtol=0, err_msg=key)
    np.testing.assert_allclose(np.asarray(ours.logits)[real], out.logits.numpy()[real], atol=ATOL)


def test_left_padding_gives_the_activations_of_no_padding(tiny_dir, make_batch):
    lm = load_model(str(tiny_dir), mesh=make_mesh())
    n = lm.config.num_hidden_layers
    padded_ids, padded_mask = make_batch(lm.config.vocab_size, [11, 4, 7], side="left", seed=6)
    padded = _jit_forward(lm.model, padded_ids, padded_mask, _all_sites(n))
    t = padded_ids.shape[1]
    for row, length in enumerate([11, 4, 7]):
        alone = _jit_forward(
            lm.model,
            padded_ids[row : row + 1, t - length :],
            padded_mask[row : row + 1, t - length :],
            _all_sites(n),
        )
        for key, got in alone.activations.items():
            np.testing.assert_allclose(
                np.asarray(padded.activations[key])[row, t - length :],
                np.asarray(got)[0],
                atol=1e-5,
                err_msg=key,
            )


@pytest.mark.parametrize("shape", ["tied_gqa2", "untied_gqa4_theta1e6"])
def test_greedy_generation_is_token_identical_with_left_padding(shape, tiny_dirs, make_batch):
    lm = load_model(str(tiny_dirs[shape]), mesh=make_mesh())
    hf = _hf_model(tiny_dirs[shape])
    ids, mask = make_batch(lm.config.vocab_size, [10, 6, 3, 8], side="left", seed=7)
    max_new = 12
    pad = lm.pad_token_id
    # First without a reachable stop token, then stopping at a token row 0 emits at step 4,
    # so at least one row stops early and the others keep going (per-row stop).
    free = np.asarray(
        greedy_generate(
            lm.model,
            ids,
            mask,
            max_new_tokens=max_new,
            eos_token_ids=[lm.config.vocab_size - 1],
            pad_token_id=pad,
        )
    )
    np.testing.assert_array_equal(
        free, hf_generate(hf, ids, mask, max_new, [lm.config.vocab_size - 1], pad)
    )
    stop = int(free[0, 4])
    ours = np.asarray(
        greedy_generate(
            lm.model, ids, mask, max_new_tokens=max_new, eos_token_ids=[stop], pad_token_id=pad
        )
    )
    np.testing.assert_array_equal(ours, hf_generate(hf, ids, mask, max_new, [stop], pad))
    first = int(np.argmax(ours[0] == stop))
    assert first <= 4 and (ours[0, first + 1 :] == pad).all()


def test_right_padded_generation_equals_each_row_alone(tiny_dir, make_batch):
    lm = load_model(str(tiny_dir), mesh=make_mesh())
    hf = _hf_model(tiny_dir)
    lengths = [9, 3, 6]
    ids, mask = make_batch(lm.config.vocab_size, lengths, side="right", seed=8)
    eos, pad, max_new = list(lm.eos_token_ids), lm.pad_token_id, 8
    batched = np.asarray(
        greedy_generate(
            lm.model, ids, mask, max_new_tokens=max_new, eos_token_ids=eos, pad_token_id=pad
        )
    )
    for row, n in enumerate(lengths):
        alone = hf_generate(hf, ids[row : row + 1, :n], mask[row : row + 1, :n], max_new, eos, pad)
        np.testing.assert_array_equal(batched[row], alone[0], err_msg=f"row {row}")


def test_bfloat16_stays_close_to_fp32_reference(tiny_dir, make_batch):
    """bf16 weights and compute against transformers in fp32: the documented tolerance."""
    lm = load_model(str(tiny_dir), mesh=make_mesh(), dtype="bfloat16")
    n = lm.config.num_hidden_layers
    ids, mask = make_batch(lm.config.vocab_size, [16, 16], side="right", seed=9)
    ours = _jit_forward(lm.model, ids, mask, _all_sites(n))
    ref, out = _hf_sites(_hf_model(tiny_dir), ids, mask)
    for key, want in ref.items():
        got = np.asarray(ours.activations[key], dtype=np.float32)
        rel = np.abs(got - want).max() / np.abs(want).max()
        assert rel < 0.05, (key, rel)
    assert np.asarray(ours.activations["resid_post.0"]).dtype == np.dtype("bfloat16")
    rel_logits = (
        np.abs(np.asarray(ours.logits) - out.logits.numpy()).max()
        / np.abs(out.logits.numpy()).max()
    )
    assert rel_logits < 0.05


def test_linear_rope_scaling_matches_transformers(tiny_dir, tmp_path, make_batch):
    import json
    import shutil

    d = Path(shutil.copytree(tiny_dir, tmp_path / "linear"))
    cfg = json.loads((d / "config.json").read_text())
    cfg["rope_parameters"] = {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}
    (d / "config.json").write_text(json.dumps(cfg))
    lm = load_model(str(d), mesh=make_mesh())
    assert lm.config.rope.type == "linear" and lm.config.rope.factor == 4.0
    ids, mask = make_batch(lm.config.vocab_size, [20, 20], side="right", seed=12)
    ours = _jit_forward(lm.model, ids, mask, Capture(("resid_post",), (0,)))
    ref, out = _hf_sites(_hf_model(d), ids, mask)
    np.testing.assert_allclose(
        np.asarray(ours.activations["resid_post.0"]), ref["resid_post.0"], atol=ATOL
    )
    np.testing.assert_allclose(np.asarray(ours.logits), out.logits.numpy(), atol=ATOL)
