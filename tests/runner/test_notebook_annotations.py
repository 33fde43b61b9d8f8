"""The notebook view selects a sequence's rows by annotation (needs notebook.py's
StoredSequence.select, which lands with the store engineer's notebook.py commit)."""

from __future__ import annotations

import numpy as np
import pytest

from arcx.prompts.annotations import Role
from tests.runner.test_store_annotations import augmented_store  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def test_the_notebook_view_selects_rows_by_annotation(augmented_store):  # noqa: F811
    import arcx

    view = arcx.open_store(str(augmented_store))
    n = 0
    for seq in view.sequences(names=["resid_post.1"]):
        rows = seq.select("role=answer cells")
        ann = seq.annotations
        assert np.array_equal(
            rows, np.flatnonzero((ann["role"] == Role.ANSWER) & (ann["cells"] > 0))
        )
        assert seq["resid_post.1"][rows].shape == (len(rows), 64)
        n += len(rows)
    assert n > 0
