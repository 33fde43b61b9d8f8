"""The extraction runner: `arcx run`, `arcx verify`, `arcx inspect`, `arcx demo`.

Pure planning (``plan``, ``batching``, ``layout``, ``manifest``, ``commit``) is kept apart
from the edges (``distributed``, ``engine``, ``run``), so the rules that decide what is
written where are unit-tested without JAX or a store.
"""
