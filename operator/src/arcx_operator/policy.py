"""The cluster admin's policy for ArcExtractionJobs: what a job's author may ask the pods for.

An ArcExtractionJob must never grant more than its author already has, so the admin (chart
values ``policy``, or the operator's ``--allowed-*`` flags) lists the image repositories,
service accounts and volume types jobs may use and extra env names they may not set. Env
names that load code into an allowed image (``ALWAYS_DENIED_ENV``) are refused always, by
the CRD's CEL as well. Pure: ``violations`` returns every breach, each naming its field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from arcx_operator import constants as c
from arcx_operator import podspec
from arcx_operator.spec import JobSpec, SpecError

ANY = "*"
# Env names that make an allowed image run other code: the dynamic loader's LD_* variables
# (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT), glibc's GCONV_PATH, PATH (which `arcx` runs),
# Python's import and start-up hooks, and the shared libraries JAX loads for TPU/PJRT.
ALWAYS_DENIED_ENV_PREFIXES: tuple[str, ...] = ("LD_",)
ALWAYS_DENIED_ENV: tuple[str, ...] = (
    "GCONV_PATH",
    "PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONWARNINGS",
    "PYTHONBREAKPOINT",
    "PYTHONINSPECT",
    "PYTHONEXECUTABLE",
    "TPU_LIBRARY_PATH",
    "PJRT_NAMES_AND_LIBRARY_PATHS",
)
# Volume types allowed when the admin says nothing in the chart: hostPath (the node's
# filesystem), secret and projected (credentials of the namespace) and nfs (any server) are off.
DEFAULT_VOLUME_TYPES: tuple[str, ...] = (
    "persistentVolumeClaim",
    "emptyDir",
    "csi",
    "configMap",
    "ephemeral",
    "image",
)


class PolicyError(SpecError):
    """The spec asks for something the cluster's policy does not allow."""

    reason = c.POLICY_VIOLATION


@dataclass(frozen=True)
class Policy:
    """None means any; an empty tuple means none (service accounts: only the default one)."""

    image_repositories: tuple[str, ...] | None = None
    service_accounts: tuple[str, ...] | None = None
    volume_types: tuple[str, ...] | None = None
    denied_env: tuple[str, ...] = ()


def parse_list(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated flag value: absent or containing ``*`` -> None (any); "" -> ()."""
    if text is None:
        return None
    items = tuple(i.strip() for i in text.split(",") if i.strip())
    return None if ANY in items else items


def image_repository(image: str) -> str:
    """``ghcr.io/a/b:tag@sha256:...`` -> ``ghcr.io/a/b`` (a registry port is not a tag)."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def _repository_allowed(repo: str, allowed: Iterable[str]) -> bool:
    # An entry ending in "/" allows every repository under it; any other must match exactly.
    return any(repo.startswith(a) if a.endswith("/") else repo == a for a in allowed)


def env_always_denied(name: str) -> bool:
    return name in ALWAYS_DENIED_ENV or name.startswith(ALWAYS_DENIED_ENV_PREFIXES)


def _listed(items: Iterable[str]) -> str:
    return ", ".join(items) or "none"


def violations(policy: Policy, spec: JobSpec) -> list[str]:
    """Every breach of the policy, each "field: what is wrong; what to do"."""
    out: list[str] = []
    ask = "ask the cluster admin to allow it in the arcx chart's policy values"
    if spec.image is not None and policy.image_repositories is not None:
        repo = image_repository(spec.image)
        if not _repository_allowed(repo, policy.image_repositories):
            out.append(
                f"spec.image: repository {repo} is not allowed (allowed: "
                f"{_listed(policy.image_repositories)}); use an allowed image or {ask}"
            )
    sa = spec.service_account_name
    allowed_sa = policy.service_accounts
    if sa not in (None, "default") and allowed_sa is not None and sa not in allowed_sa:
        out.append(
            f"spec.serviceAccountName: {sa} is not allowed (allowed: "
            f"{_listed(('default', *allowed_sa))}); {ask}"
        )
    if policy.volume_types is not None:
        for i, volume in enumerate(spec.volumes):
            kind = podspec.volume_source(volume)
            if kind is not None and kind not in policy.volume_types:
                out.append(
                    f"spec.volumes[{i}].{kind}: volume type {kind} is not allowed (allowed: "
                    f"{_listed(policy.volume_types)}); {ask}"
                )
    for i, env in enumerate(spec.env):
        if env_always_denied(env.name) or env.name in policy.denied_env:
            out.append(
                f"spec.env[{i}].name: {env.name} may not be set on arcx jobs (it changes "
                "which code the image runs); remove it"
            )
    return out


def check(policy: Policy, spec: JobSpec) -> None:
    """Raise PolicyError naming every field that breaches the policy."""
    if found := violations(policy, spec):
        raise PolicyError("; ".join(found))
