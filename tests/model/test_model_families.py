"""Every family (Qwen2, Qwen3, Llama) against transformers, on packed rows of real ARC prompts.

A packed row holds several prompts one after another, each with its own segment id and
positions from 0; each prompt is run alone through transformers' own ``*ForCausalLM`` and
every site of every layer, and the logits, must match that prompt's span of the row.
The long cases fill rows of 8192 tokens (the maximum ARC prompt length the runner uses).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import jax
import numpy as np
import pytest
from arc_rows import arc_prompt_ids, pack
from hf_reference import hf_generate

from arcx.model import SITES, Capture, forward, greedy_generate, load_model, make_mesh

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.torch

FAMILIES = ["qwen2", "qwen3", "llama"]  # conftest.FAMILY_SHAPES
ATOL = 1e-4  # fp32, absolute, as test_model_parity.py
# (grid side, train pairs) of the prompts packed into one row; lengths from the tiny tokenizer.
SHORT = [(8, 2), (5, 2), (6, 2), (3, 2)]  # 737, 449, ... tokens: two rows of 1280
LONG = [(20, 4), (12, 3), (8, 2), (5, 2)]  # 5015 + 1727 + 737 + 449 = 7928 tokens in one 8192 row

_jit = jax.jit(forward, static_argnames=("capture", "compute_logits", "attention_impl", "unroll"))


def _hf(path: Path, attn: str = "eager"):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path), dtype=torch.float32, attn_implementation=attn
    )
    return model.eval()


def _hf_alone(model, ids: list[int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every site of every layer (forward hooks) and the logits for one unpadded sequence."""
    acts: dict[str, np.ndarray] = {}
    handles = []

    def keep(name: str, t: torch.Tensor) -> None:
        acts[name] = t.detach()[0].float().numpy()

    for i, layer in enumerate(model.model.layers):
        handles += [
            layer.register_forward_pre_hook(
                lambda _m, a, kw, i=i: keep(f"resid_pre.{i}", a[0] if a else kw["hidden_states"]),
                with_kwargs=True,
            ),
            layer.register_forward_hook(
                lambda _m, _a, o, i=i: keep(f"resid_post.{i}", o[0] if isinstance(o, tuple) else o)
            ),
            layer.self_attn.register_forward_hook(
                lambda _m, _a, o, i=i: keep(f"attn_out.{i}", o[0])
            ),
            layer.post_attention_layernorm.register_forward_pre_hook(
                lambda _m, a, i=i: keep(f"resid_mid.{i}", a[0])
            ),
            layer.mlp.register_forward_hook(lambda _m, _a, o, i=i: keep(f"mlp_out.{i}", o)),
        ]
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids], dtype=torch.long))
    finally:
        for h in handles:
            h.remove()
    return acts, out.logits[0].numpy()


def _prompts(tokenizer, shapes: list[tuple[int, int]]) -> list[list[int]]:
    return [arc_prompt_ids(tokenizer, side=s, n_train=n, seed=k) for k, (s, n) in enumerate(shapes)]


def _check_packed(family_dir: Path, shapes, rows: int, length: int, attn: str) -> None:
    lm = load_model(str(family_dir), mesh=make_mesh())
    n = lm.config.num_hidden_layers
    seqs = _prompts(lm.tokenizer, shapes)
    batch = pack(seqs, rows, length)
    ours = _jit(
        lm.model,
        batch["ids"],
        segment_ids=batch["segment_ids"],
        positions=batch["positions"],
        capture=Capture(SITES, tuple(range(n))),
    )
    acts = {k: np.asarray(v) for k, v in ours.activations.items()}
    logits = np.asarray(ours.logits)
    assert len(acts) == 5 * n
    hf = _hf(family_dir, attn)
    for k, seq in enumerate(seqs):
        (row, start), span = batch["place"][k], slice(batch["place"][k][1], None)
        span = slice(start, start + len(seq))
        ref, ref_logits = _hf_alone(hf, seq)
        assert set(ref) == set(acts)
        for key, want in ref.items():
            np.testing.assert_allclose(
                acts[key][row, span], want, atol=ATOL, rtol=0, err_msg=f"sequence {k} {key}"
            )
        np.testing.assert_allclose(
            logits[row, span], ref_logits, atol=ATOL, rtol=0, err_msg=f"sequence {k} logits"
        )


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_rows_match_each_prompt_alone(family, family_dirs):
    _check_packed(family_dirs[family], SHORT, rows=2, length=1280, attn="eager")


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_packed_8192_row_matches_each_prompt_alone(family, family_dirs):
    # transformers' sdpa path (no padding mask, so causal without a T x T mask) keeps its
    # memory down at 5k tokens; it differs from eager by summation order only.
    _check_packed(family_dirs[family], LONG, rows=1, length=8192, attn="sdpa")


@pytest.mark.parametrize("family", FAMILIES)
def test_stopping_early_gives_the_same_sites_and_runs_fewer_layers(family, family_dirs):
    lm = load_model(str(family_dirs[family]), mesh=make_mesh())
    ids = np.asarray([arc_prompt_ids(lm.tokenizer, side=3, n_train=2, seed=1)], np.int32)
    seg, pos = np.ones_like(ids), np.arange(ids.shape[1], dtype=np.int32)[None]
    cap = Capture(("resid_post", "attn_out"), (0,))
    run = partial(_jit, lm.model, ids, segment_ids=seg, positions=pos, capture=cap)
    full, early = run(), run(compute_logits=False)
    assert early.logits is None and full.logits is not None
    for key, want in full.activations.items():  # equal up to XLA's fusion of a shorter loop
        np.testing.assert_allclose(np.asarray(early.activations[key]), np.asarray(want), atol=1e-5)
    # the program itself: one scan over 1 layer and no LM head (no matmul outside the scan)
    for compute_logits, depth, head in ((False, 1, 0), (True, lm.config.num_hidden_layers, 1)):
        jaxpr = jax.make_jaxpr(partial(forward, capture=cap, compute_logits=compute_logits))(
            lm.model, ids, segment_ids=seg, positions=pos
        ).jaxpr
        names = [e.primitive.name for e in jaxpr.eqns]
        assert [e.params["length"] for e in jaxpr.eqns if e.primitive.name == "scan"] == [depth]
        assert names.count("dot_general") == head


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generation_is_token_identical(family, family_dirs, make_batch):
    lm = load_model(str(family_dirs[family]), mesh=make_mesh())
    hf = _hf(family_dirs[family])
    ids, mask = make_batch(lm.config.vocab_size, [40, 25, 9], side="left", seed=11)
    never = [lm.config.vocab_size - 1]
    ours = greedy_generate(
        lm.model, ids, mask, max_new_tokens=10, eos_token_ids=never, pad_token_id=lm.pad_token_id
    )
    want = hf_generate(hf, ids, mask, 10, never, lm.pad_token_id)
    np.testing.assert_array_equal(np.asarray(ours), want)


@pytest.mark.parametrize("family", FAMILIES)
def test_make_tiny_model_command_writes_each_family(family, tmp_path):
    from arcx.cli import main as arcx_main
    from arcx.model import ModelConfig

    out = tmp_path / family
    assert (
        arcx_main(["make-tiny-model", str(out), "--model-type", family, "--num-layers", "1"]) == 0
    )
    cfg = ModelConfig.from_file(out / "config.json")
    assert cfg.model_type == family and cfg.num_hidden_layers == 1
    assert (cfg.qkv_bias, cfg.qk_norm) == {"qwen2": (True, False), "qwen3": (False, True)}.get(
        family, (False, False)
    )
    assert cfg.rope.type == ("llama3" if family == "llama" else "default")
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out))
    assert type(hf).__name__ == transformers.AutoConfig.from_pretrained(str(out)).architectures[0]


def test_program_size_does_not_grow_with_depth(tmp_path):
    """The layers are one scan: 2 and 6 layers lower to the same number of matmuls."""
    from arcx.model.tiny import make_tiny_model

    counts = []
    for depth in (2, 6):
        lm = load_model(
            str(make_tiny_model(tmp_path / f"d{depth}", num_layers=depth)), mesh=make_mesh()
        )
        ids = np.zeros((1, 16), np.int32)
        text = (
            jax.jit(partial(forward, capture=Capture(SITES, (0, depth - 1))))
            .lower(lm.model, ids, segment_ids=np.ones_like(ids), positions=np.arange(16)[None])
            .as_text()
        )
        counts.append(text.count("stablehlo.dot_general"))
    assert counts[0] == counts[1] > 0
