"""Loader options that need format-3 parts refuse an older store with a clear message."""

from __future__ import annotations

import pytest

from arcx.prompts.annotations import Role, TokenFilter
from arcx.sae.loader import ActivationLoader
from arcx.sae.parts import SaeDataError
from tests.sae.stores import build_store, tokenizer_dir


def test_filter_text_parses_and_bad_words_are_named() -> None:
    f = TokenFilter.parse("role=answer,test_input colour=3 example=0,1 cells")
    assert f == TokenFilter((Role.ANSWER, Role.TEST_INPUT), (0, 1), (3,), True)
    with pytest.raises(ValueError, match="'role=nope'"):
        TokenFilter.parse("role=nope")


def test_a_store_without_annotations_or_statistics_is_refused(tmp_path) -> None:
    built = build_store(tmp_path, model_source=str(tokenizer_dir(tmp_path / "m")), units=1)
    loader = ActivationLoader(
        str(built.root), site="resid_post", layer=1, batch_size=4, where="role=answer"
    )
    with pytest.raises(SaeDataError, match="no token annotations"):
        next(iter(loader))
    with pytest.raises(SaeDataError, match="no statistics"):
        ActivationLoader(
            str(built.root), site="resid_post", layer=1, batch_size=4, normalize="mean_norm"
        )
    with pytest.raises(SaeDataError, match="where: cannot read 'colour=x'"):
        ActivationLoader(
            str(built.root), site="resid_post", layer=1, batch_size=4, where="colour=x"
        )
