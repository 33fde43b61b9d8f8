"""`arcx export-saelens`: write one site/layer as the dataset SAELens trains from.

SAELens' ``CacheActivationsRunner`` saves a Hugging Face ``datasets`` dataset to disk, and
its ``ActivationsStore`` (``cached_activations_path``) reads it back with
``datasets.load_from_disk``. Per row it holds one context of ``context_size`` tokens:

- ``blocks.{layer}.hook_{site}``: ``Array2D(shape=(context_size, d_in), dtype)``;
- ``token_ids``: ``Sequence(Value("int32"), length=context_size)``.

arcx stores variable-length sequences, so the kept token rows (special tokens dropped, as
by the loader) are packed into rows of exactly ``context_size`` tokens; the last
``< context_size`` tokens are dropped and counted. By default the tokens are shuffled
globally first (with :class:`ActivationLoader`), because ``ActivationsStore`` reads the
cache in order and mixes only within its buffer: an unshuffled cache feeds one task's
tokens in a row (SAELens#612). ``shuffle=False`` keeps store order instead (sequences
concatenated, unit by unit), like SAELens' own packing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from arcx.sae.loader import ActivationLoader
from arcx.sae.parts import SaeDataError

# arcx site -> TransformerLens hook, at blocks.{layer}. The one table of this mapping.
SITE_TO_HOOK = {
    "resid_pre": "hook_resid_pre",
    "resid_mid": "hook_resid_mid",
    "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
}

EXPORT_DTYPES = ("float32", "float16")
PROVENANCE_FILE = "arcx_export.json"
TOKEN_COLUMN = "token_ids"


def hook_name(site: str, layer: int) -> str:
    if site not in SITE_TO_HOOK:
        raise SaeDataError(
            f"site {site!r} has no TransformerLens hook; known: {list(SITE_TO_HOOK)}"
        )
    return f"blocks.{layer}.{SITE_TO_HOOK[site]}"


@dataclass(frozen=True)
class ExportReport:
    out_dir: str
    hook_name: str
    context_size: int
    d_in: int
    dtype: str
    rows: int
    tokens_written: int
    tokens_dropped: int  # the tail shorter than one context
    shuffled: bool
    seed: int
    excluded_token_ids: list[int]
    units: int
    store: str
    config_hash: str
    where: str | None = None  # the annotation filter rows were selected by
    norm_scale: float = 1.0  # every row was multiplied by this (normalize="mean_norm")


def export_saelens(
    store: str,
    out_dir: str | Path,
    *,
    site: str,
    layer: int,
    context_size: int = 128,
    seed: int = 0,
    shuffle: bool = True,
    exclude_token_ids: Iterable[int] | None = None,
    dtype: str = "float32",
    verify_checksums: bool = True,
    shuffle_buffer_tokens: int | None = None,
    rows_per_write: int = 64,
    progress: Callable[[int], None] | None = None,
    where: str | None = None,
    normalize: str = "none",
) -> ExportReport:
    """``progress(tokens)`` is called after each row of ``context_size`` tokens. ``where``
    and ``normalize`` select and scale rows as :class:`ActivationLoader` does."""
    from datasets import Array2D, Dataset, Features, Sequence, Value
    from datasets.arrow_writer import ArrowWriter

    if context_size < 1:
        raise SaeDataError(f"context_size must be >= 1, got {context_size}")
    if dtype not in EXPORT_DTYPES:
        raise SaeDataError(f"dtype {dtype!r} is not supported; use one of {EXPORT_DTYPES}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise SaeDataError(f"{out} is not empty; pick a new folder or delete it (nothing written)")
    hook = hook_name(site, layer)
    loader = ActivationLoader(
        store,
        site=site,
        layer=layer,
        batch_size=context_size,
        seed=seed,
        exclude_token_ids=exclude_token_ids,
        shuffle_buffer_tokens=shuffle_buffer_tokens or max(1 << 16, 8 * context_size),
        verify_checksums=verify_checksums,
        dtype=np.dtype(dtype),
        epochs=1,
        shuffle=shuffle,
        drop_last=False,
        where=where,
        normalize=normalize,
    )
    d_in = loader.d_model
    features = Features(
        {
            hook: Array2D(shape=(context_size, d_in), dtype=dtype),
            TOKEN_COLUMN: Sequence(Value("int32"), length=context_size),
        }
    )
    rows = dropped = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".arcx-export-", dir=out.parent))
    try:
        arrow_path = work / "data.arrow"
        writer = ArrowWriter(features=features, path=str(arrow_path))
        acts_held: list[np.ndarray] = []
        tokens_held: list[np.ndarray] = []

        def flush() -> None:
            if acts_held:
                writer.write_batch(
                    {hook: list(np.stack(acts_held)), TOKEN_COLUMN: list(np.stack(tokens_held))}
                )
                acts_held.clear()
                tokens_held.clear()

        for batch in loader.batches():
            if len(batch.token_ids) < context_size:  # the tail: only the last batch
                dropped += len(batch.token_ids)
                continue
            acts_held.append(batch.activations)
            tokens_held.append(batch.token_ids)
            rows += 1
            if progress is not None:
                progress(context_size)
            if len(acts_held) >= rows_per_write:
                flush()
        flush()
        writer.finalize()
        writer.close()
        if rows == 0:
            raise SaeDataError(
                f"the store holds fewer kept tokens ({dropped}) than one context of "
                f"{context_size}; lower --context-size"
            )
        Dataset.from_file(str(arrow_path)).save_to_disk(str(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = ExportReport(
        out_dir=str(out),
        hook_name=hook,
        context_size=context_size,
        d_in=d_in,
        dtype=dtype,
        rows=rows,
        tokens_written=rows * context_size,
        tokens_dropped=dropped,
        shuffled=shuffle,
        seed=seed,
        excluded_token_ids=[int(i) for i in loader.excluded],
        units=loader.info.units_committed,
        store=loader.info.uri,
        config_hash=str(loader.info.manifest.get("configHash", "")),
        where=where,
        norm_scale=loader.norm_scale,
    )
    (out / PROVENANCE_FILE).write_text(json.dumps(asdict(report), indent=2, sort_keys=True) + "\n")
    return report
