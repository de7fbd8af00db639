"""Which chunks of a study's sweep a run computes: a shard of a split sweep, and what a resumed run
still lacks.

A study's chunks are numbered ``0 .. total - 1`` in a fixed order set by its config (the sweep's
points, the chunk size), so a run can be split across jobs by chunk number and the pieces put
back together: job ``i`` of ``n`` (``sweep.shard_count=n sweep.shard_index=i``) computes the
chunks ``c`` with ``c % n == i``; a resumed run (``resume=true``) skips the chunks its folder
already holds. :func:`wants` is what a study asks before computing a chunk whose work does not
depend on the others (a study whose chunks build on each other computes them all and the run
folder keeps the wanted ones: the numbers are the same either way).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

__all__ = ["ChunkPlan", "PLAN_KEY", "wants", "plan_of"]

PLAN_KEY = "chunk_plan"  # where the command puts the plan in a study's spec


@dataclasses.dataclass(frozen=True)
class ChunkPlan:
    """The chunks a run computes.

    Attributes:
        shard_count, shard_index: this run's share of the chunks: ``c % shard_count == shard_index``.
        done: chunk numbers already in the run folder (a resumed run), skipped.
    """

    shard_count: int = 1
    shard_index: int = 0
    done: frozenset = frozenset()

    def __post_init__(self) -> None:
        if not 0 <= int(self.shard_index) < int(self.shard_count):
            raise ValueError(f"shard_index = {self.shard_index} is out of range: must be from 0 to "
                             f"shard_count - 1 = {int(self.shard_count) - 1}")
        object.__setattr__(self, "done", frozenset(int(c) for c in self.done))

    def owns(self, index: int) -> bool:
        """Whether chunk ``index`` belongs to this run's shard (done or not)."""
        return int(index) % int(self.shard_count) == int(self.shard_index)

    def wants(self, index: int) -> bool:
        """Whether this run computes chunk ``index``: its shard's and not done yet."""
        return self.owns(index) and int(index) not in self.done

    def owned(self, total: int) -> list[int]:
        """The chunk numbers of ``range(total)`` in this run's shard."""
        return [c for c in range(int(total)) if self.owns(c)]

    @property
    def trivial(self) -> bool:
        """Whether the plan computes every chunk (one shard, nothing done)."""
        return int(self.shard_count) == 1 and not self.done


def plan_of(spec: Mapping[str, Any]) -> ChunkPlan:
    """The plan of a study's built config (every chunk where the command set none)."""
    return spec.get(PLAN_KEY) or ChunkPlan()


def wants(spec: Mapping[str, Any], index: int) -> bool:
    """Whether the run of ``spec`` computes chunk ``index`` (:meth:`ChunkPlan.wants`); a study
    whose chunks are independent asks before computing one, and yields nothing for a chunk it
    skips."""
    return plan_of(spec).wants(index)
