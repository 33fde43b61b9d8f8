"""Small activation stores for the SAE tests and bench/loader.py, written with the
runner's own writers (job config -> manifest, ``encode_part``, commit markers), without
running the model. Every activation row carries a unique id in column 0 so rows can be
followed through the shuffle; token ids put the tiny tokenizer's special tokens (0, 1, 2)
at the ends of every sequence."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import ml_dtypes
import numpy as np
from arcx_store import layout, markers, open_storage
from arcx_store.manifest import ensure_manifest
from arcx_store.parts import encode_part

from arcx.config import parse_config
from arcx.prompts.tiny_tokenizer import SPECIAL_TOKENS, build_tokenizer_object
from arcx.runner.manifest import ModelFacts, build_manifest
from arcx.runner.plan import plan_units

SPECIAL_IDS = (0, 1, 2)  # the tiny tokenizer's <|endoftext|>, <|im_start|>, <|im_end|>
VOCAB = 640


@dataclass
class BuiltStore:
    root: Path
    d_model: int
    sites: list[str]
    layers: list[int]
    committed: list[int]
    uncommitted: list[int]
    hosts: int
    dtype: str
    # per committed unit and host: {tensor name: array}, as written
    parts: dict[tuple[int, int], dict[str, np.ndarray]] = field(default_factory=dict)

    def rows(self, site: str, layer: int, *, drop_special: bool = True) -> np.ndarray:
        """Every committed row of one site/layer as float32 (special tokens dropped)."""
        out = []
        for (_u, _h), t in sorted(self.parts.items()):
            keep = ~np.isin(t["token_ids"], SPECIAL_IDS) if drop_special else slice(None)
            out.append(t[layout.tensor_name(site, layer)][keep].astype(np.float32))
        return np.concatenate(out)


def tokenizer_dir(path: Path) -> Path:
    """A model folder holding only the tiny tokenizer's tokenizer.json (built locally)."""
    path.mkdir(parents=True, exist_ok=True)
    build_tokenizer_object().save(str(path / "tokenizer.json"))
    return path


def build_store(
    root: Path,
    *,
    model_source: str,
    units: int = 6,
    hosts: int = 2,
    commit_units: set[int] | None = None,
    seqs_per_part: int = 3,
    seq_len: tuple[int, int] = (20, 60),
    d_model: int = 16,
    sites: tuple[str, ...] = ("resid_post", "mlp_out"),
    layers: tuple[int, ...] = (1, 3),
    dtype: str = "float32",
    seed: int = 0,
    special_token_ids: tuple[int, ...] = (),
) -> BuiltStore:
    unit_size = 2
    config = parse_config(
        {
            "model": {"source": model_source},
            "dataset": {"source": str(root / "tasks")},
            "extraction": {"layers": list(layers), "sites": list(sites), "dtype": dtype},
            "output": {"uri": str(root / "store"), "unitSize": unit_size},
        }
    )
    storage = open_storage(str(root / "store"))
    plan = plan_units(units * unit_size, unit_size)
    manifest = build_manifest(
        config,
        dataset_fingerprint="test",
        plan=plan,
        model=ModelFacts(
            d_model=d_model,
            num_layers=max(layers) + 1,
            vocab_size=VOCAB,
            special_token_ids=special_token_ids,
        ),
    )
    ensure_manifest(storage, manifest)
    np_dtype = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}[dtype]
    rng = np.random.default_rng(seed)
    committed = sorted(commit_units if commit_units is not None else set(range(units)))
    built = BuiltStore(
        root / "store", d_model, list(sites), sorted(layers), committed, [], hosts, dtype
    )
    next_id = 1
    for u in range(units):
        infos = []
        for h in range(hosts):
            lengths = rng.integers(seq_len[0], seq_len[1], size=seqs_per_part)
            tokens = []
            for n in lengths:
                seq = rng.integers(len(SPECIAL_TOKENS), VOCAB, size=n).astype(np.int32)
                seq[0], seq[-1] = 1, 2  # <|im_start|> ... <|im_end|>
                tokens.append(seq)
            token_ids = np.concatenate(tokens)
            n_tok = len(token_ids)
            tensors: dict[str, np.ndarray] = {
                "token_ids": token_ids,
                "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            }
            for s in sites:
                for layer in layers:
                    a = rng.standard_normal((n_tok, d_model)).astype(np.float32)
                    a[:, 0] = np.arange(next_id, next_id + n_tok)  # a unique, exact row id
                    next_id += n_tok
                    tensors[layout.tensor_name(s, layer)] = a.astype(np_dtype)
            data = encode_part(tensors, {"unit": str(u), "host": str(h)})
            key = layout.part_key(u, h)
            storage.write_bytes(key, data)
            infos.append(markers.FileInfo.of(key, data))
            if u in committed:
                built.parts[(u, h)] = tensors
        if u in committed:
            marker = markers.build_marker(
                u,
                parts=infos,
                predictions=None,
                num_tasks=unit_size,
                num_sequences=hosts * seqs_per_part,
                num_tokens=0,
                skipped=[],
            )
            markers.commit_unit(storage, u, marker)
        else:
            built.uncommitted.append(u)
    return built
