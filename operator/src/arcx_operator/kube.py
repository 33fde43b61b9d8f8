"""The operator's only door to the Kubernetes API (official client), kept thin on purpose."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from arcx_operator import constants as c

Body = dict[str, Any]


class Kube:
    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api_client = api_client or client.ApiClient()
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    # -- ConfigMap -----------------------------------------------------------------------
    def ensure_config_map(self, desired: Body) -> Body:
        """Create the ConfigMap if missing; an existing one is left as it is."""
        meta = desired["metadata"]
        try:
            found = self.core.read_namespaced_config_map(meta["name"], meta["namespace"])
            return self.api_client.sanitize_for_serialization(found)
        except ApiException as err:
            if err.status != 404:
                raise
        try:
            made = self.core.create_namespaced_config_map(meta["namespace"], desired)
            return self.api_client.sanitize_for_serialization(made)
        except ApiException as err:
            if err.status != 409:
                raise
            found = self.core.read_namespaced_config_map(meta["name"], meta["namespace"])
            return self.api_client.sanitize_for_serialization(found)

    # -- JobSet --------------------------------------------------------------------------
    def get_jobset(self, namespace: str, name: str) -> Body | None:
        try:
            return self.custom.get_namespaced_custom_object(
                c.JOBSET_GROUP, c.JOBSET_VERSION, namespace, c.JOBSET_PLURAL, name
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def create_jobset(self, desired: Body) -> tuple[Body, bool]:
        """Create the JobSet; (the JobSet, True) if this call made it, (existing, False) if not."""
        meta = desired["metadata"]
        try:
            made = self.custom.create_namespaced_custom_object(
                c.JOBSET_GROUP, c.JOBSET_VERSION, meta["namespace"], c.JOBSET_PLURAL, desired
            )
            return made, True
        except ApiException as err:
            if err.status != 409:
                raise
            found = self.get_jobset(meta["namespace"], meta["name"])
            if found is None:
                raise
            return found, False

    def set_jobset_suspend(self, namespace: str, name: str, suspend: bool) -> Body:
        return self.custom.patch_namespaced_custom_object(
            c.JOBSET_GROUP,
            c.JOBSET_VERSION,
            namespace,
            c.JOBSET_PLURAL,
            name,
            {"spec": {"suspend": suspend}},
        )

    # -- pods (list only) -----------------------------------------------------------------
    def config_error_message(self, namespace: str, jobset: str) -> str | None:
        """The termination message of a pod that exited with the configuration-error code."""
        pods = self.core.list_namespaced_pod(
            namespace, label_selector=f"{c.JOBSET_NAME_LABEL}={jobset}"
        )
        for pod in pods.items:
            for status in (pod.status and pod.status.container_statuses) or []:
                term = status.state and status.state.terminated
                if (
                    status.name == c.CONTAINER_NAME
                    and term
                    and term.exit_code == c.CONFIG_ERROR_EXIT_CODE
                ):
                    text = (term.message or "").strip()
                    return (
                        text or f"pod {pod.metadata.name} exited with the configuration-error code"
                    )
        return None
