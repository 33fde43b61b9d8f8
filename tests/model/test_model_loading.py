"""Loading: config layouts, sharded checkpoints, the hf:// cache path, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from arcx.cli import main as arcx_main
from arcx.model import Capture, ModelConfig, ModelLoadError, forward, load_model, make_mesh
from arcx.model.params import load_params

_jit_forward = jax.jit(forward, static_argnums=3)
BF16 = np.dtype(jax.numpy.bfloat16)


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite_config(model_dir: Path, **changes: object) -> None:
    path = model_dir / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


def _params(lm) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_leaves_with_path(lm.model)
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def test_sharded_checkpoint_with_index_loads_the_same_weights(tiny_dir, tmp_path):
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    for f in tiny_dir.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, sharded / f.name)
    tensors = load_file(str(tiny_dir / "model.safetensors"))
    names = sorted(tensors)
    groups = [names[0::3], names[1::3], names[2::3]]
    weight_map = {}
    for k, group in enumerate(groups, start=1):
        fname = f"model-{k:05d}-of-00003.safetensors"
        save_file({n: tensors[n] for n in group}, str(sharded / fname))
        weight_map.update(dict.fromkeys(group, fname))
    (sharded / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )

    one = load_model(str(tiny_dir), mesh=make_mesh())
    three = load_model(str(sharded), mesh=make_mesh())
    a, b = _params(one), _params(three)
    assert a.keys() == b.keys() and len(a) > 10
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # and the embedding really is the checkpoint's, transposed kernels included
    np.testing.assert_array_equal(
        np.asarray(three.model.embed[...]), tensors["model.embed_tokens.weight"]
    )
    np.testing.assert_array_equal(
        np.asarray(three.model.layers.attn.q_kernel[...][1]),
        tensors["model.layers.1.self_attn.q_proj.weight"].T,
    )


def test_bfloat16_checkpoint_loads_as_float32_and_bfloat16(tiny_dir, tmp_path):
    d = _copy_model(tiny_dir, tmp_path / "bf16")
    tensors = load_file(str(d / "model.safetensors"))
    save_file({k: v.astype(BF16) for k, v in tensors.items()}, str(d / "model.safetensors"))
    f32 = load_model(str(d), mesh=make_mesh(), dtype="float32")
    bf16 = load_model(str(d), mesh=make_mesh(), dtype="bfloat16")
    want = tensors["model.norm.weight"].astype(BF16)
    assert f32.model.norm.weight[...].dtype == np.float32
    assert bf16.model.norm.weight[...].dtype == np.dtype(BF16)
    np.testing.assert_array_equal(np.asarray(bf16.model.norm.weight[...]), want)
    np.testing.assert_array_equal(np.asarray(f32.model.norm.weight[...]), want.astype(np.float32))


def test_missing_tensor_is_named(tiny_dir, tmp_path):
    d = _copy_model(tiny_dir, tmp_path / "missing")
    tensors = load_file(str(d / "model.safetensors"))
    del tensors["model.layers.2.mlp.up_proj.weight"]
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(
        ModelLoadError, match=r"missing tensor\(s\) model\.layers\.2\.mlp\.up_proj\.weight"
    ):
        load_model(str(d), mesh=make_mesh())


def test_wrong_shape_names_both_shapes(tiny_dir, tmp_path):
    d = _copy_model(tiny_dir, tmp_path / "shape")
    tensors = load_file(str(d / "model.safetensors"))
    tensors["model.layers.0.self_attn.k_proj.weight"] = np.zeros((16, 64), np.float32)
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(ModelLoadError) as err:
        load_model(str(d), mesh=make_mesh())
    msg = str(err.value)
    assert "model.layers.0.self_attn.k_proj.weight" in msg
    assert "[16, 64]" in msg and "[32, 64]" in msg


def test_unexpected_tensor_is_rejected(tiny_dir, tmp_path):
    d = _copy_model(tiny_dir, tmp_path / "extra")
    tensors = load_file(str(d / "model.safetensors"))
    tensors["model.layers.0.self_attn.q_norm.weight"] = np.ones((16,), np.float32)
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(
        ModelLoadError, match=r"does not use: model\.layers\.0\.self_attn\.q_norm\.weight"
    ):
        load_model(str(d), mesh=make_mesh())


def test_unsupported_architecture_is_rejected(tiny_dir, tmp_path):
    d = _copy_model(tiny_dir, tmp_path / "arch")
    _rewrite_config(d, architectures=["GPT2LMHeadModel"], model_type="gpt2")
    with pytest.raises(ModelLoadError, match=r"unsupported model_type 'gpt2'; arcx runs"):
        load_model(str(d), mesh=make_mesh())
    _rewrite_config(d, architectures=["LlamaForCausalLM"], model_type="qwen2")
    with pytest.raises(ModelLoadError, match=r"unsupported architecture \['LlamaForCausalLM'\]"):
        load_model(str(d), mesh=make_mesh())


def test_missing_path_and_missing_weights(tmp_path):
    with pytest.raises(ModelLoadError, match="directory not found"):
        load_model(str(tmp_path / "nope"), mesh=make_mesh())
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"]}))
    with pytest.raises(
        ModelLoadError, match=r"required field\(s\) \['vocab_size', .*'num_attention_heads'\]"
    ):
        load_model(str(tmp_path), mesh=make_mesh())
    _rewrite_config(
        tmp_path,
        vocab_size=64,
        hidden_size=8,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    with pytest.raises(
        ModelLoadError, match=r"no model\.safetensors or model\.safetensors\.index\.json"
    ):
        load_params(tmp_path, ModelConfig.from_file(tmp_path / "config.json"), make_mesh())


def test_both_config_layouts_give_the_same_config(tiny_dir):
    new = json.loads((tiny_dir / "config.json").read_text())
    new["rope_parameters"] = {"rope_type": "default", "rope_theta": 1234.5}
    old = {k: v for k, v in new.items() if k != "rope_parameters"}
    old["rope_theta"] = 1234.5
    old["rope_scaling"] = None
    a, b = ModelConfig.from_dict(new), ModelConfig.from_dict(old)
    assert a == b and a.rope.theta == 1234.5 and a.head_dim == 16
    with pytest.raises(ModelLoadError, match="rope type 'yarn' is not supported"):
        ModelConfig.from_dict({**old, "rope_scaling": {"type": "yarn", "factor": 4.0}})
    with pytest.raises(ModelLoadError, match="use_sliding_window"):
        ModelConfig.from_dict({**old, "use_sliding_window": True})


def test_rope_theta_changes_the_output(tiny_dir, tmp_path, make_batch):
    """The theta from config.json is used (a model that ignored it would give equal outputs)."""
    d = _copy_model(tiny_dir, tmp_path / "theta")
    _rewrite_config(d, rope_parameters={"rope_type": "default", "rope_theta": 50.0})
    ids, mask = make_batch(600, [12], side="right")
    cap = Capture(("resid_post",), (0,))
    a = _jit_forward(load_model(str(tiny_dir), mesh=make_mesh()).model, ids, mask, cap)
    b = _jit_forward(load_model(str(d), mesh=make_mesh()).model, ids, mask, cap)
    diff = np.abs(
        np.asarray(a.activations["resid_post.0"]) - np.asarray(b.activations["resid_post.0"])
    )
    assert diff[0, 0].max() < 1e-6  # position 0 has no rotation
    assert diff[0, 1:].max() > 1e-3


def test_capture_requests_are_checked(tiny_dir, make_batch):
    lm = load_model(str(tiny_dir), mesh=make_mesh())
    with pytest.raises(ValueError, match="unknown capture site"):
        Capture(("resid",), (0,))
    with pytest.raises(
        ValueError, match=r"capture layer\(s\) \[4\] out of range: the model has 4 layers"
    ):
        Capture(("resid_post",), (1, 4)).check(lm.config)
    ids, mask = make_batch(lm.config.vocab_size, [5, 5], side="right")
    out = _jit_forward(lm.model, ids, mask, Capture(("attn_out", "resid_post"), (0, 3)))
    assert sorted(out.activations) == ["attn_out.0", "attn_out.3", "resid_post.0", "resid_post.3"]
    assert out.activations["attn_out.3"].shape == (2, 5, lm.config.hidden_size)


def test_logits_at_selected_positions(tiny_dir, make_batch):
    lm = load_model(str(tiny_dir), mesh=make_mesh())
    ids, mask = make_batch(lm.config.vocab_size, [8, 8], side="right")
    full = _jit_forward(lm.model, ids, mask, Capture())
    picked = jax.jit(forward, static_argnums=3)(
        lm.model, ids, mask, Capture(), logit_positions=np.array([[7, 2], [0, 5]], np.int32)
    )
    np.testing.assert_allclose(
        np.asarray(picked.logits)[0, 0], np.asarray(full.logits)[0, 7], atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(picked.logits)[1, 1], np.asarray(full.logits)[1, 5], atol=1e-5
    )


def test_tokenizer_and_ids_come_from_the_model_dir(tiny_dir):
    lm = load_model(str(tiny_dir), mesh=make_mesh())
    text = "## Example 1\n\n### Input\n\n12\n34\n"
    ids = lm.tokenizer(text)["input_ids"]
    assert lm.tokenizer.decode(ids) == text
    assert max(ids) < lm.config.vocab_size
    assert lm.tokenizer.convert_ids_to_tokens(lm.eos_token_ids[0]) == "<|im_end|>"
    assert lm.tokenizer.convert_ids_to_tokens(lm.pad_token_id) == "<|endoftext|>"


def _fill_hf_cache(cache: Path, repo: str, model_dir: Path) -> None:
    """The on-disk layout huggingface_hub's cache uses: refs/main -> snapshots/<commit>/files."""
    commit = "0" * 40
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, root / "snapshots" / commit)


def test_hf_source_reads_the_offline_cache(tiny_dir, tmp_path, monkeypatch):
    """hf:// with HF_HUB_OFFLINE=1 resolves through huggingface_hub from a locally filled cache."""
    cache = tmp_path / "hub"
    _fill_hf_cache(cache, "arcx-test/tiny-qwen2", tiny_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    lm = load_model("hf://arcx-test/tiny-qwen2", mesh=make_mesh())
    assert lm.config.num_hidden_layers == 4
    assert lm.path.is_relative_to(cache)
    with pytest.raises(
        ModelLoadError, match="HF_HUB_OFFLINE is set and the model is not in the local"
    ):
        load_model("hf://arcx-test/not-there", mesh=make_mesh())
    with pytest.raises(ModelLoadError, match="expected hf://org/name"):
        load_model("hf://just-a-name", mesh=make_mesh())


def test_make_tiny_model_command(tmp_path):
    assert arcx_main(["make-tiny-model", str(tmp_path / "m"), "--num-layers", "2", "--untied"]) == 0
    cfg = ModelConfig.from_file(tmp_path / "m" / "config.json")
    assert cfg.num_hidden_layers == 2 and not cfg.tie_word_embeddings
    assert cfg.vocab_size % 64 == 0
    lm = load_model(str(tmp_path / "m"), mesh=make_mesh())
    assert lm.config == cfg and lm.model.lm_head is not None


def test_unreachable_hub_is_a_clear_error(tmp_path, monkeypatch):
    """The hub endpoint is a loopback port nothing listens on: unreachable, without network."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(
        ModelLoadError, match="Hugging Face Hub is unreachable and the model is not"
    ):
        load_model("hf://arcx-test/tiny-qwen2@main", mesh=make_mesh())
