"""The work plan: the task list cut into units, and which slice does which unit.

Pure functions of their inputs. The task order is the task store's (already a
deterministic function of the dataset source, ``maxTasks`` and ``seed``), so the plan is a
function of the dataset fingerprint and the config, and every process of every slice
computes the same one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Unit:
    index: int
    start: int  # first task index, inclusive
    stop: int  # last task index, exclusive

    @property
    def num_tasks(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class UnitPlan:
    num_tasks: int
    unit_size: int
    units: tuple[Unit, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "numTasks": self.num_tasks,
            "unitSize": self.unit_size,
            "units": [[u.start, u.stop] for u in self.units],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnitPlan:
        units = tuple(Unit(i, int(a), int(b)) for i, (a, b) in enumerate(data["units"]))
        return cls(int(data["numTasks"]), int(data["unitSize"]), units)


def plan_units(num_tasks: int, unit_size: int) -> UnitPlan:
    """Consecutive units of ``unit_size`` tasks; the last one may be shorter."""
    if num_tasks < 0:
        raise ValueError(f"num_tasks must be >= 0, got {num_tasks}")
    if unit_size < 1:
        raise ValueError(f"unit_size must be >= 1, got {unit_size}")
    units = tuple(
        Unit(i, start, min(start + unit_size, num_tasks))
        for i, start in enumerate(range(0, num_tasks, unit_size))
    )
    return UnitPlan(num_tasks, unit_size, units)


def slice_of(unit: int, slices: int) -> int:
    return unit % slices


def units_for_slice(plan: UnitPlan, slice_index: int, slices: int) -> list[Unit]:
    """The units one slice works on, in the order every process of the slice visits them."""
    if not 0 <= slice_index < slices:
        raise ValueError(f"slice index {slice_index} is outside 0..{slices - 1}")
    return [u for u in plan.units if slice_of(u.index, slices) == slice_index]
