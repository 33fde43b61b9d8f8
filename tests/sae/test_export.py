"""`arcx export-saelens`: the datasets layout SAELens' CacheActivationsRunner writes and its
ActivationsStore reads (``load_from_disk``; a ``blocks.L.hook_*`` column of
Array2D(context_size, d_in) and ``token_ids`` Sequence(int32, context_size))."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from arcx_store.layout import TOKEN_IDS, tensor_name
from datasets import Array2D, load_from_disk

from arcx.cli import main
from arcx.config import Site
from arcx.sae.export import PROVENANCE_FILE, SITE_TO_HOOK, export_saelens, hook_name
from arcx.sae.parts import SaeDataError
from tests.sae.stores import SPECIAL_IDS, BuiltStore

CTX = 32


def _store_index(
    store: BuiltStore, site: str, layer: int
) -> dict[int, tuple[np.ndarray, int, int]]:
    """row id -> (row, token id, unit) for every kept row of the store."""
    index = {}
    for (u, _h), t in store.parts.items():
        acts = t[tensor_name(site, layer)].astype(np.float32)
        for row, tok in zip(acts, t[TOKEN_IDS], strict=True):
            if tok not in SPECIAL_IDS:
                index[int(row[0])] = (row, int(tok), u)
    return index


def test_hook_table_covers_every_config_site() -> None:
    assert set(SITE_TO_HOOK) == set(get_args(Site))
    assert hook_name("resid_post", 3) == "blocks.3.hook_resid_post"
    assert hook_name("resid_mid", 0) == "blocks.0.hook_resid_mid"
    assert hook_name("attn_out", 2) == "blocks.2.hook_attn_out"


def test_shuffled_export_round_trip(tmp_path: Path, store: BuiltStore) -> None:
    out = tmp_path / "cache"
    report = export_saelens(
        str(store.root), out, site="resid_post", layer=3, context_size=CTX, seed=5,
        shuffle_buffer_tokens=256,
    )  # fmt: skip
    ds = load_from_disk(str(out))
    hook = "blocks.3.hook_resid_post"
    assert ds.column_names == [hook, "token_ids"]
    feat = ds.features[hook]
    assert isinstance(feat, Array2D) and feat.shape == (CTX, store.d_model)
    assert feat.dtype == "float32"
    assert ds.features["token_ids"].feature.dtype == "int32"
    assert ds.features["token_ids"].length == CTX
    # what SAELens' ActivationsStore checks and reads
    ds.set_format(type="numpy", columns=[hook, "token_ids"])
    whole = ds[:]  # datasets 5: ds[column] is a lazy Column; a slice gives arrays
    acts, tokens = whole[hook], whole["token_ids"]
    assert acts.shape == (len(ds), CTX, store.d_model) and acts.dtype == np.float32
    assert tokens.shape == (len(ds), CTX)  # numpy formatting widens ints; storage is int32:
    assert str(ds.data.schema.field("token_ids").type) == f"fixed_size_list<item: int32>[{CTX}]"

    index = _store_index(store, "resid_post", 3)
    assert report.rows == len(ds)
    assert report.rows * CTX + report.tokens_dropped == len(index)
    assert 0 <= report.tokens_dropped < CTX
    flat = acts.reshape(-1, store.d_model)
    ids = flat[:, 0].astype(np.int64)
    assert len(set(ids.tolist())) == len(ids)  # no row twice
    for row, tok, got_tok in zip(flat, ids, tokens.reshape(-1), strict=True):
        want_row, want_tok, _ = index[int(tok)]
        np.testing.assert_array_equal(row, want_row)
        assert got_tok == want_tok
    # shuffled across units: no exported context comes from a single unit
    units = np.array([index[int(i)][2] for i in ids]).reshape(-1, CTX)
    assert all(len(set(r.tolist())) > 1 for r in units)
    meta = json.loads((out / PROVENANCE_FILE).read_text())
    assert (
        meta["hook_name"] == hook and meta["shuffled"] and meta["excluded_token_ids"] == [0, 1, 2]
    )


def test_unshuffled_export_is_store_order_packed(tmp_path: Path, store: BuiltStore) -> None:
    out = tmp_path / "cache"
    report = export_saelens(
        str(store.root), out, site="mlp_out", layer=1, context_size=CTX, shuffle=False
    )
    ds = load_from_disk(str(out)).with_format("numpy")
    rows = store.rows("mlp_out", 1)
    n = report.rows * CTX
    np.testing.assert_array_equal(
        ds[:]["blocks.1.hook_mlp_out"].reshape(-1, store.d_model), rows[:n]
    )
    assert report.tokens_dropped == len(rows) - n


def test_export_refuses_a_non_empty_folder(tmp_path: Path, store: BuiltStore) -> None:
    out = tmp_path / "cache"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SaeDataError, match="not empty"):
        export_saelens(str(store.root), out, site="resid_post", layer=3, context_size=CTX)
    assert (out / "keep.txt").read_text() == "mine"


def test_cli_export_and_batches(
    tmp_path: Path, store: BuiltStore, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli-cache"
    argv = ["export-saelens", str(store.root), "--out", str(out), "--layer", "1"]
    assert main([*argv, "--context-size", "16", "--exclude-token-ids", "0,1"]) == 0
    printed = capsys.readouterr().out
    assert "blocks.1.hook_resid_post" in printed and "cached_activations_path" in printed
    tokens = load_from_disk(str(out)).with_format("numpy")[:]["token_ids"]
    assert not np.isin(tokens, [0, 1]).any() and (tokens == 2).any()

    assert main(["sae-batches", str(store.root), "--layer", "3", "--batch-size", "64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "6/6 units committed" in lines[0] and "excluding token ids [0, 1, 2]" in lines[0]
    assert len(lines) == 2 + 3 and all(line.split()[1] == "64" for line in lines[2:])

    assert main(["sae-batches", str(store.root), "--layer", "7"]) == 1
    assert "layer 7 is not in the store" in capsys.readouterr().err


@pytest.mark.torch
def test_export_reads_as_saelens_reads_it(tmp_path: Path, store: BuiltStore) -> None:
    """ActivationsStore.load_cached_activation_dataset + _load_raw_llm_batch_from_cached, step
    by step: torch format on [hook, token_ids] with the training dtype, a slice of rows, then
    (rows * context, d_in) and the special-token mask on token_ids."""
    torch = pytest.importorskip("torch")
    out = tmp_path / "cache"
    export_saelens(str(store.root), out, site="resid_post", layer=1, context_size=CTX)
    hook = hook_name("resid_post", 1)
    ds = load_from_disk(str(out))
    assert ds.features[hook].shape == (CTX, store.d_model)
    ds.set_format(type="torch", columns=[hook, "token_ids"], dtype=torch.float32)
    rows = 4
    part = ds[0:rows]
    acts, tokens = part[hook], part["token_ids"]
    assert tuple(acts.shape) == (rows, CTX, store.d_model) and acts.dtype == torch.float32
    assert tuple(tokens.shape) == (rows, CTX)
    flat = acts.reshape(rows * CTX, store.d_model)
    mask = torch.isin(tokens.reshape(-1), torch.tensor(SPECIAL_IDS, dtype=tokens.dtype))
    assert not bool(mask.any())  # already excluded at export
    index = _store_index(store, "resid_post", 1)
    for row in flat.numpy():
        np.testing.assert_array_equal(row, index[int(row[0])][0])
