"""arcx_operator: turns ArcExtractionJob resources into a ConfigMap and a JobSet.

Pure modules (``tpu``, ``render``, ``status``, ``crd``) hold the logic; ``handlers``,
``leader``, ``progress`` and ``main`` are the edges that talk to Kubernetes and storage.
This package never imports ``arcx`` or JAX: the operator image stays small.
"""

__version__ = "0.1.0"
