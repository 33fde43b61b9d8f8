"""A real run's parts hold token annotations, each sequence's augmentation and statistics
that equal a direct computation over the stored rows; `arcx inspect` merges them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from arcx_store import layout
from arcx_store.parts import decode_part
from arcx_store.stats import Moments

from arcx.prompts import choose_augmentation
from arcx.prompts.annotations import Role
from tests.runner import harness

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def augmented_store(tmp_path_factory, tiny_model, arc_tasks, jax_cache):
    wd = tmp_path_factory.mktemp("annotated")
    cfg = harness.write_config(
        wd / "job.yaml",
        model=tiny_model,
        tasks=arc_tasks,
        out=str(wd / "store"),
        prompt={"augmentation": {"dihedral": "random", "permuteColors": True, "seed": 3}},
        extraction={"teacherForcing": True},
    )
    codes = harness.run(cfg, 1, 1, harness.base_env(jax_cache), wd / "logs")
    assert codes == [0], harness.logs(wd / "logs")[-3000:]
    return wd / "store"


def parts(store):
    for marker_path in harness.marker_paths(store):
        for part in json.loads(marker_path.read_text())["parts"]:
            yield decode_part((store / part["key"]).read_bytes())


def test_parts_hold_annotations_augmentations_and_exact_statistics(augmented_store, tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    seen_roles: set[int] = set()
    every: dict[str, list[np.ndarray]] = {}
    for tensors, meta in parts(augmented_store):
        n = len(tensors[layout.TOKEN_IDS])
        assert all(tensors[name].shape == (n,) for name in layout.ANNOTATION_TENSORS)
        seqs = json.loads(meta["sequences"])
        for j, (task_id, _) in enumerate(seqs):
            aug = choose_augmentation(task_id, "random", True, 3)
            assert tensors[layout.SEQ_DIHEDRAL][j] == aug.dihedral
            assert tuple(tensors[layout.SEQ_COLOUR_PERM][j]) == aug.colors
        role = tensors[layout.ANN_ROLE]
        seen_roles.update(role.tolist())
        words = tok.convert_ids_to_tokens(tensors[layout.TOKEN_IDS].tolist())
        for t in np.flatnonzero(tensors[layout.ANN_ROW] >= 0):
            assert words[t] == str(tensors[layout.ANN_COLOUR][t])  # a cell is its colour digit
        specials = np.isin(tensors[layout.TOKEN_IDS], tok.all_special_ids)
        assert np.array_equal(specials, role == Role.SPECIAL)
        for name in ("resid_post.1", "mlp_out.3"):
            site, layer = name.rsplit(".", 1)
            x = np.asarray(tensors[name], np.float64)
            got, want = Moments.from_tensors(tensors, site, int(layer)), Moments.of(x)
            assert got.count == want.count == n
            np.testing.assert_allclose(got.mean, want.mean, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(got.variance, want.variance, rtol=1e-3, atol=1e-4)
            np.testing.assert_allclose(got.norm, want.norm, rtol=1e-4)
            np.testing.assert_allclose(got.maxabs, want.maxabs, rtol=1e-6)
            np.testing.assert_allclose(got.top_norm, want.top_norm, rtol=1e-4)
            rows = got.top_ids[:, 0][got.top_ids[:, 0] >= 0]
            assert len(rows) == min(n, len(got.top_norm))
            top = np.linalg.norm(x[rows], axis=1)
            np.testing.assert_allclose(top, got.top_norm[: len(rows)], rtol=1e-4)
            every.setdefault(name, []).append(x)
    assert seen_roles == {int(r) for r in Role}
    out = subprocess.run(
        [sys.executable, "-m", "arcx.cli", "inspect", "--json", str(augmented_store)],
        capture_output=True,
        text=True,
    )
    summary = json.loads(out.stdout)
    assert sum(summary["tokensByRole"].values()) == summary["tokens"]
    assert set(summary["tokensByRole"]) == {r.name.lower() for r in Role}
    for name, xs in every.items():
        merged, want = summary["stats"][name], Moments.of(np.concatenate(xs))
        assert merged["count"] == want.count
        np.testing.assert_allclose(merged["meanNorm"], want.norm, rtol=1e-4)
        np.testing.assert_allclose(merged["meanVariance"], want.variance.mean(), rtol=1e-3)
        np.testing.assert_allclose(merged["largestNorms"][0]["norm"], want.top_norm[0], rtol=1e-4)
    text = subprocess.run(
        [sys.executable, "-m", "arcx.cli", "inspect", str(augmented_store)],
        capture_output=True,
        text=True,
    ).stdout
    assert "roles        template" in text and "stats        resid_post.1:" in text


def test_the_sae_loader_filters_by_annotation_and_normalises_by_the_stored_norm(
    augmented_store,
):
    from arcx.sae.loader import ActivationLoader

    every = [t for t, _ in parts(augmented_store)]

    def rows(where: str, want) -> None:
        loader = ActivationLoader(
            str(augmented_store), site="resid_post", layer=1, batch_size=64,
            exclude_token_ids=(), shuffle=False, where=where,
        )  # fmt: skip
        got = np.concatenate([b for b in loader] or [np.zeros((0, 64))])
        expect = np.concatenate([t["resid_post.1"][want(t)] for t in every]).astype(np.float32)
        assert len(expect) and np.array_equal(got, expect)

    rows("role=answer cells", lambda t: (t[layout.ANN_ROLE] == Role.ANSWER) & (t["ann.cells"] > 0))
    rows(
        "role=test_input colour=3",
        lambda t: (t[layout.ANN_ROLE] == Role.TEST_INPUT) & (t[layout.ANN_COLOUR] == 3),
    )
    loader = ActivationLoader(
        str(augmented_store), site="mlp_out", layer=3, batch_size=128,
        exclude_token_ids=(), normalize="mean_norm",
    )  # fmt: skip
    norms = np.concatenate([np.linalg.norm(b, axis=1) for b in loader])
    np.testing.assert_allclose(norms.mean(), np.sqrt(64), rtol=1e-3)


def test_the_saelens_export_filters_and_normalises_like_the_loader(augmented_store, tmp_path):
    from datasets import load_from_disk

    from arcx.sae.export import PROVENANCE_FILE, export_saelens
    from arcx.sae.loader import ActivationLoader

    opts = dict(site="resid_post", layer=1, exclude_token_ids=(), where="role=answer cells")
    report = export_saelens(
        str(augmented_store), tmp_path / "out", context_size=8, shuffle=False,
        normalize="mean_norm", **opts,
    )  # fmt: skip
    loader = ActivationLoader(
        str(augmented_store), batch_size=8, shuffle=False, normalize="mean_norm", **opts
    )
    want = np.concatenate(list(loader))
    got = load_from_disk(str(tmp_path / "out")).with_format("numpy")[:][report.hook_name]
    got = got.reshape(-1, 64)
    assert report.norm_scale == loader.norm_scale != 1.0
    np.testing.assert_array_equal(got, want[: len(got)])
    assert len(want) - len(got) == report.tokens_dropped < 8
    meta = json.loads((tmp_path / "out" / PROVENANCE_FILE).read_text())
    assert meta["where"] == "role=answer cells" and meta["norm_scale"] == report.norm_scale
