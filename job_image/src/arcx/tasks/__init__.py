"""ARC tasks: grids, sources, validation, the barc rule, the task store and `arcx prepare`."""

from arcx.tasks.task import Grid, Pair, Task

__all__ = ["Grid", "Pair", "Task"]
