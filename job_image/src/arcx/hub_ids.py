"""Hugging Face Hub repository ids, checked before an ``hf://`` source reaches a library."""

from __future__ import annotations

import os


def hub_repo_id_problem(name: str, *, local_shadows: bool = True) -> str | None:
    """Why ``name`` is not a Hugging Face Hub repository id, or None when it is one.

    The Hub client's own rule (``huggingface_hub.utils.validate_repo_id``: letters, digits,
    ``-``, ``_``, ``.``, one optional ``org/``, no ``--`` or ``..``, at most 96 characters),
    and, with ``local_shadows`` (for ``datasets``, which reads a local directory of that name
    instead of the Hub), the name must not be a local path.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError as err:
        return str(err).splitlines()[0]
    if local_shadows and os.path.lexists(name):
        return (
            f"{name!r} is also a local path, which would be read instead of the Hub; "
            "give a local path without hf://, or run from another directory"
        )
    return None


def split_hf_model(source: str) -> tuple[str, str | None]:
    """``hf://org/name[@rev]`` -> ("org/name", rev); ValueError says what is wrong.

    huggingface_hub's snapshot_download reads no local directory, so a name that is also a
    local path is fine here.
    """
    rest = source.removeprefix("hf://").strip("/")
    repo, _, rev = rest.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"model source {source!r}: expected hf://org/name[@revision]")
    problem = hub_repo_id_problem(repo, local_shadows=False)
    if problem is not None:
        raise ValueError(f"model source {source!r}: not a Hub model id ({problem})")
    return repo, rev or None
