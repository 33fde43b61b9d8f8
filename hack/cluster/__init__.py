"""The local Kubernetes control plane for tests: see docs/testing.md.

``ControlPlane`` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the
JobSet controller and the test node agent; ``arcx_system`` installs the chart with helm and
runs the operator as a local process under the chart's ServiceAccount.
"""

from hack.cluster.controlplane import ControlPlane, ControlPlaneError
from hack.cluster.kubeapi import ApiError, Kube
from hack.cluster.tools import Tools, ToolsMissing, find_tools

__all__ = [
    "ApiError",
    "ControlPlane",
    "ControlPlaneError",
    "Kube",
    "Tools",
    "ToolsMissing",
    "find_tools",
]
