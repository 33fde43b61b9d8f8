"""Test node agent: stands in for the kubelet and the container runtime of the local test
control plane, where no container runtime can run. Test-only; never part of the product.

What it does, as a kubelet would, through the API server:
- registers Node objects: CPU nodes, and fake TPU nodes with GKE's labels
  (``cloud.google.com/gke-tpu-accelerator``, ``-tpu-topology``, ``-nodepool``, ``-spot``),
  ``google.com/tpu`` capacity and the ``google.com/tpu`` NoSchedule taint; keeps their
  Ready condition and node Leases fresh;
- runs each pod bound to a CPU node as a local process: the first container's command
  and args (``$(VAR)`` expanded), its env with downward-API fields resolved (metadata.name,
  namespace, uid, labels[...], annotations[...], spec.nodeName, status.podIP, ...). Images
  are ignored: commands run from this Python environment (its ``bin`` first on PATH);
  a container without a command runs ``--default-entrypoint`` (``arcx``, the job image's);
- container isolation is emulated with Linux namespaces (we run as root): each pod runs
  under ``unshare --mount --uts`` with its hostname set, its volumes bind-mounted at their
  mountPaths (ConfigMap/Secret keys materialised into a per-pod directory, emptyDir a
  per-pod directory, hostPath the host path itself, a PersistentVolumeClaim the path of the
  hostPath or local PersistentVolume it is bound to) and its own ``/etc/hosts``;
- pod networking is emulated with one loopback address per pod (127.n.x.y, reported as
  status.podIP). The agent writes each pod's ``/etc/hosts`` with the DNS names a headless
  Service gives pods that set hostname/subdomain (as JobSet does), so the pods of a JobSet
  find their JAX coordinator. Since processes share the host's network namespace, a pod
  whose env sets ``JAX_COORDINATOR_ADDRESS`` also gets ``JAX_COORDINATOR_BIND_ADDRESS`` =
  its own IP and that port, so two slices' coordinators do not collide on ``[::]:port``;
- reports phase, container statuses (exit code, reason, termination message with the
  FallbackToLogsOnError policy) and conditions; on deletion sends SIGTERM, waits the grace
  period, SIGKILLs the process group, reports the terminal status and removes the pod.
  Eviction (the API's preemption path) therefore works as on a real node: the API server
  sets the ``DisruptionTarget`` condition, the agent kills the process.
- pods bound to fake TPU nodes are not executed: they are reported Running (placement is
  all that can be checked) until deleted.

Not emulated: init containers, sidecars, probes, resource limits, dynamic provisioning
(claims bind to pre-created PersistentVolumes through kube-controller-manager), projected
service-account tokens, ``kubectl logs``/``exec`` (logs are in ``<workdir>/pods/*/log``).

Run as ``python -m hack.cluster.nodeagent --kubeconfig K --nodes nodes.json --workdir D``.
The modules, one job each:

- ``agent``: the event loop and the pod lifecycle (start, restart, finish, delete);
- ``nodes``: Node objects, their Ready condition and Leases;
- ``podwatch``: the list-and-watch of pods feeding the event loop;
- ``processes``: pod process groups on the shared process state (hack/cluster/procs.py);
- ``podenv``: env, downward API, ``$(VAR)`` expansion: the process a container runs as;
- ``sources``: the ConfigMaps, Secrets and claims a pod's env and volumes come from;
- ``volumes``: materialised volumes, bind mounts and the shared mount points on the host;
- ``hosts``: loopback addresses and per-pod ``/etc/hosts``;
- ``podstatus``: phase, container statuses, conditions, the termination message;
- ``podrun``: what the agent knows about one pod it runs.
"""
