"""The Dockerfile, read as text (no Docker engine here to build it): the three documented
targets exist, every final image runs as the non-root user, every COPY source exists, and
dependencies install against the pinned constraints."""

from __future__ import annotations

import re

from op_helpers import REPO

TEXT = (REPO / "Dockerfile").read_text()


def _stages() -> dict[str, str]:
    """Stage name -> its instructions."""
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", TEXT, flags=re.M | re.I)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_documented_targets_exist_and_run_as_non_root() -> None:
    stages = _stages()
    for target in ("operator", "job-cpu", "job-tpu"):
        assert target in stages, f"no stage {target}"
        assert re.search(r"^USER 65532:65532$", stages[target], re.M), f"{target} runs as root"


def test_copy_sources_exist() -> None:
    for src in re.findall(r"^COPY\s+(?!--from)(\S+)\s+\S+$", TEXT, re.M):
        assert (REPO / src).exists(), f"COPY source {src} does not exist"


def test_installs_are_pinned_and_the_operator_image_has_no_jax() -> None:
    installs = re.findall(r"pip install ([^\n]+)", TEXT)
    assert installs and all("--constraint /src/constraints.txt" in i for i in installs)
    constraints = (REPO / "constraints.txt").read_text()
    for pkg in ("kopf", "kubernetes", "jax", "flax", "pydantic"):
        assert re.search(rf"^{pkg}==\S+$", constraints, re.M | re.I), f"{pkg} is not pinned"
    operator_build = _stages()["operator-build"]
    assert "job_image" not in operator_build and "/src/operator" in operator_build
    assert '"/src/job_image[tpu]"' in _stages()["job-tpu-build"]


def test_every_image_installs_the_shared_store_package() -> None:
    # The operator's progress reader and the runner share arcx-store; each image needs it.
    stages = _stages()
    for build in ("operator-build", "job-cpu-build", "job-tpu-build"):
        installs = re.findall(r"pip install ([^\n]+)", stages[build])
        assert installs and "/src/store " in installs[0], f"{build} does not install arcx-store"
    for src in ("operator-build", "job-src"):
        assert "COPY store/src /src/store/src" in stages[src], f"{src} lacks store/"
