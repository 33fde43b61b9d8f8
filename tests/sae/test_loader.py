"""The SAE loader: committed parts only, checksums, special tokens, exactly-once, seeds."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from arcx_store import layout

from arcx.sae.loader import ActivationLoader
from arcx.sae.parts import CorruptPart, SaeDataError
from tests.sae.stores import SPECIAL_IDS, BuiltStore, build_store


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


def _all(loader: ActivationLoader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bs = list(loader.batches())
    return (
        np.concatenate([b.activations for b in bs]),
        np.concatenate([b.token_ids for b in bs]),
        np.concatenate([b.units for b in bs]),
    )


def test_every_kept_row_exactly_once_per_epoch(store: BuiltStore) -> None:
    loader = ActivationLoader(
        str(store.root), site="resid_post", layer=3, batch_size=32, seed=7,
        shuffle_buffer_tokens=128, open_parts=3,
    )  # fmt: skip
    acts, tokens, _ = _all(loader)
    expected = store.rows("resid_post", 3)
    assert acts.shape == expected.shape
    assert len(np.unique(acts[:, 0])) == len(acts)  # no row twice
    np.testing.assert_array_equal(_sorted_rows(acts), _sorted_rows(expected))
    assert not np.isin(tokens, SPECIAL_IDS).any()
    # and it is not simply store order
    assert not np.array_equal(acts, expected)


def test_batch_shapes_and_epochs(store: BuiltStore) -> None:
    n = len(store.rows("mlp_out", 1))
    loader = ActivationLoader(
        str(store.root), site="mlp_out", layer=1, batch_size=50, seed=1,
        shuffle_buffer_tokens=200, epochs=2,
    )  # fmt: skip
    batches = list(loader)
    assert all(b.shape[1] == store.d_model and b.dtype == np.float32 for b in batches)
    # only the last batch of each epoch may be short: an epoch drains its buffer
    assert sum(len(b) != 50 for b in batches) <= 2
    assert sum(len(b) for b in batches) == 2 * n
    ids = np.concatenate(batches)[:, 0]
    assert np.array_equal(np.sort(ids[:n]), np.sort(ids[n:]))  # each epoch covers all rows
    dropped = ActivationLoader(
        str(store.root), site="mlp_out", layer=1, batch_size=50, seed=1,
        shuffle_buffer_tokens=200, epochs=2, drop_last=True,
    )  # fmt: skip
    assert all(len(b) == 50 for b in dropped)


def test_endless_stream_keeps_going(store: BuiltStore) -> None:
    n = len(store.rows("resid_post", 1))
    loader = ActivationLoader(
        str(store.root), site="resid_post", layer=1, batch_size=64, seed=0,
        shuffle_buffer_tokens=256, epochs=None,
    )  # fmt: skip
    seen = 0
    for batch in loader:
        seen += len(batch)
        if seen > 3 * n:
            break
    assert seen > 3 * n


def test_same_seed_same_batches_other_seed_differs(store: BuiltStore) -> None:
    def ids(seed: int) -> np.ndarray:
        loader = ActivationLoader(
            str(store.root), site="resid_post", layer=1, batch_size=16, seed=seed,
            shuffle_buffer_tokens=64,
        )  # fmt: skip
        return np.concatenate([b[:, 0] for b in loader])

    a, b, c = ids(3), ids(3), ids(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(np.sort(a), np.sort(c))


def test_uncommitted_parts_are_never_read(tmp_path: Path, model_dir: Path) -> None:
    built = build_store(tmp_path, model_source=str(model_dir), units=4, commit_units={0, 2})
    # an uncommitted unit's part may be garbage: it must not even be opened
    (built.root / layout.part_key(1, 0)).write_bytes(b"not a safetensors file")
    loader = ActivationLoader(
        str(built.root), site="resid_post", layer=1, batch_size=8, shuffle_buffer_tokens=32
    )
    acts, _, units = _all(loader)
    assert set(np.unique(units)) == {0, 2}
    np.testing.assert_array_equal(_sorted_rows(acts), _sorted_rows(built.rows("resid_post", 1)))
    assert loader.info.units_committed == 2 and loader.info.units_total == 4


def test_store_with_nothing_committed_is_refused(tmp_path: Path, model_dir: Path) -> None:
    built = build_store(tmp_path, model_source=str(model_dir), units=2, commit_units=set())
    with pytest.raises(SaeDataError, match="no committed unit"):
        ActivationLoader(str(built.root), site="resid_post", layer=1, batch_size=8)


def test_flipped_byte_names_unit_and_part(tmp_path: Path, store: BuiltStore) -> None:
    root = tmp_path / "copy"
    shutil.copytree(store.root, root)
    victim = root / layout.part_key(4, 1)
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0x01  # inside the tensor data: still decodes, only the hash can tell
    victim.write_bytes(bytes(data))
    loader = ActivationLoader(
        str(root), site="resid_post", layer=1, batch_size=8, shuffle_buffer_tokens=32
    )
    with pytest.raises(CorruptPart) as err:
        list(loader)
    msg = str(err.value)
    assert "unit 4" in msg and layout.part_key(4, 1) in msg and "sha256" in msg
    assert "arcx verify" in msg
    # explicitly unverified, it reads (the operator's choice)
    unverified = ActivationLoader(
        str(root), site="resid_post", layer=1, batch_size=8, shuffle_buffer_tokens=32,
        verify_checksums=False,
    )  # fmt: skip
    assert sum(len(b) for b in unverified) == len(store.rows("resid_post", 1))


def test_truncated_part_is_a_size_error(tmp_path: Path, store: BuiltStore) -> None:
    root = tmp_path / "copy"
    shutil.copytree(store.root, root)
    victim = root / layout.part_key(2, 0)
    victim.write_bytes(victim.read_bytes()[:-16])
    loader = ActivationLoader(
        str(root), site="resid_post", layer=1, batch_size=8, verify_checksums=False,
        shuffle_buffer_tokens=32,
    )  # fmt: skip
    with pytest.raises(CorruptPart, match=r"unit 2 .*part-00000.*size"):
        list(loader)


def test_special_tokens_default_from_tokenizer_and_explicit(store: BuiltStore) -> None:
    default = ActivationLoader(str(store.root), site="resid_post", layer=1, batch_size=8)
    assert list(default.excluded) == list(SPECIAL_IDS)
    keep_all = ActivationLoader(
        str(store.root), site="resid_post", layer=1, batch_size=8, exclude_token_ids=(),
        shuffle_buffer_tokens=64,
    )  # fmt: skip
    _, tokens, _ = _all(keep_all)
    assert len(tokens) == len(store.rows("resid_post", 1, drop_special=False))
    assert np.isin(tokens, SPECIAL_IDS).any()
    only_start = ActivationLoader(
        str(store.root), site="resid_post", layer=1, batch_size=8, exclude_token_ids=[1],
        shuffle_buffer_tokens=64,
    )  # fmt: skip
    _, tokens, _ = _all(only_start)
    assert not (tokens == 1).any() and (tokens == 2).any()


def test_unknown_model_source_asks_for_special_tokens(tmp_path: Path) -> None:
    built = build_store(tmp_path, model_source="hf://org/model", units=1)
    with pytest.raises(SaeDataError, match="exclude_token_ids"):
        ActivationLoader(str(built.root), site="resid_post", layer=1, batch_size=8)
    ok = ActivationLoader(
        str(built.root), site="resid_post", layer=1, batch_size=8, exclude_token_ids=SPECIAL_IDS
    )
    assert sum(len(b) for b in ok) == len(built.rows("resid_post", 1))


def test_special_tokens_recorded_in_the_manifest_need_no_tokenizer(tmp_path: Path) -> None:
    built = build_store(
        tmp_path, model_source="hf://org/model", units=1, special_token_ids=SPECIAL_IDS
    )
    loader = ActivationLoader(str(built.root), site="resid_post", layer=1, batch_size=8)
    assert list(loader.excluded) == sorted(SPECIAL_IDS)
    _, tokens, _ = _all(loader)
    assert (
        len(tokens) == len(built.rows("resid_post", 1)) and not np.isin(tokens, SPECIAL_IDS).any()
    )


def test_unknown_site_or_layer_is_a_clear_error(store: BuiltStore) -> None:
    with pytest.raises(SaeDataError, match=r"site 'attn_out' .*\['resid_post', 'mlp_out'\]"):
        ActivationLoader(str(store.root), site="attn_out", layer=1, batch_size=8)
    with pytest.raises(SaeDataError, match=r"layer 2 .*\[1, 3\]"):
        ActivationLoader(str(store.root), site="resid_post", layer=2, batch_size=8)


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(SaeDataError, match="not an arcx activation store"):
        ActivationLoader(str(tmp_path), site="resid_post", layer=1, batch_size=8)


def test_bfloat16_store_reads_as_float32(tmp_path: Path, model_dir: Path) -> None:
    built = build_store(tmp_path, model_source=str(model_dir), units=2, dtype="bfloat16")
    loader = ActivationLoader(
        str(built.root), site="mlp_out", layer=3, batch_size=16, shuffle_buffer_tokens=64
    )
    acts, _, _ = _all(loader)
    assert acts.dtype == np.float32
    np.testing.assert_array_equal(_sorted_rows(acts), _sorted_rows(built.rows("mlp_out", 3)))


def test_unshuffled_mode_is_store_order(store: BuiltStore) -> None:
    loader = ActivationLoader(
        str(store.root), site="resid_post", layer=3, batch_size=10, shuffle=False
    )
    acts = np.concatenate(list(loader))
    np.testing.assert_array_equal(acts, store.rows("resid_post", 3))


def test_nothing_left_after_exclusion_is_an_error_not_a_hang(store: BuiltStore) -> None:
    everything = range(640)
    loader = ActivationLoader(
        str(store.root), site="resid_post", layer=1, batch_size=8, exclude_token_ids=everything,
        epochs=None,
    )  # fmt: skip
    with pytest.raises(SaeDataError, match="no token outside the excluded ids"):
        next(iter(loader))
