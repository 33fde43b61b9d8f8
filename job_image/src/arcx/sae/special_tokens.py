"""Which token ids the SAE loader leaves out: the tokenizer's special tokens.

Special tokens (ChatML markers, padding, end of text) carry activations unlike any text
token, often with huge norms; SAE training usually drops them. The ids come from the
``added_tokens`` entries marked ``special`` in the model's ``tokenizer.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from arcx.sae.parts import SaeDataError


def special_token_ids(tokenizer_dir: str | Path) -> list[int]:
    """Sorted ids of the special added tokens of the tokenizer saved in ``tokenizer_dir``."""
    path = Path(tokenizer_dir) / "tokenizer.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SaeDataError(
            f"{path} does not exist: no tokenizer to take special tokens from"
        ) from None
    except json.JSONDecodeError as err:
        raise SaeDataError(f"{path} is not valid JSON: {err}") from None
    return sorted(
        int(t["id"])
        for t in data.get("added_tokens", [])
        if isinstance(t, dict) and t.get("special")
    )


def default_excluded_ids(manifest: dict[str, Any], store_uri: str) -> list[int]:
    """The special tokens the manifest records, else those of a local model source's tokenizer."""
    recorded = manifest.get("model", {}).get("specialTokenIds")
    if recorded:
        return as_id_array(recorded)
    source = str(manifest.get("model", {}).get("source", ""))
    local = source.removeprefix("file://")
    if source and "://" not in local and (Path(local) / "tokenizer.json").is_file():
        return special_token_ids(local)
    raise SaeDataError(
        f"the store {store_uri} was made from model source {source!r}, which is not a local "
        "folder with a tokenizer.json, so its special tokens are unknown here. Pass them: "
        "exclude_token_ids=[...] (CLI: --exclude-token-ids 1,2,3 or --tokenizer DIR), or "
        "exclude_token_ids=() / --keep-special-tokens to keep every token"
    )


def parse_id_list(text: str) -> list[int]:
    """``"1, 2,3"`` -> [1, 2, 3]; a clear error for anything else."""
    ids: list[int] = []
    for piece in text.split(","):
        piece = piece.strip()
        if not piece:
            continue
        try:
            ids.append(int(piece))
        except ValueError:
            raise SaeDataError(
                f"token id {piece!r} is not an integer (expected e.g. 0,1,2)"
            ) from None
    return ids


def as_id_array(ids: Iterable[int]) -> list[int]:
    return sorted({int(i) for i in ids})
