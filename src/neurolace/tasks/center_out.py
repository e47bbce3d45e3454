"""The center-out task: reach from the centre to one of ``n_targets`` round targets, and back.

The classic motor-control and BCI task (Georgopoulos et al. 1982; Gilja et al.
2012, Nat Neurosci 15:1752): outer targets sit on a circle around the centre
of the workspace; trials alternate between an outer target (directions in a
seeded random order, each direction once per round) and the centre target. A
trial succeeds when the participant clicks inside the lit target before
``timeout_s``; a click outside it counts as incorrect and the trial goes on.
Throughput pools the outward and return movements into one ISO 9241-9
condition (nominal distance ``radius``, width ``target_width``), with the
effective distance measured from where each movement started.
"""

from __future__ import annotations

import numpy as np

from neurolace.core.checks import check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.random import SeedLike, check_rng
from neurolace.tasks.base import PointAndClickTask, Target

__all__ = ["CenterOutTask"]

CENTER_INDEX = -1
"""``Target.index`` of the centre target; outer targets are numbered 0..n_targets-1 counter-clockwise."""


class CenterOutTask(PointAndClickTask):
    """Center-out-and-back on the unit square.

    Parameters
    ----------
    n_targets : int, default 8
        Outer targets, evenly spaced on the circle, >= 1.
    radius : float, default 0.35
        Distance of the outer targets from the centre (workspace units); the
        outer targets must fit in the unit square.
    target_width : float, default 0.1
        Diameter of every target (workspace units).
    timeout_s : float, default 5.0
        A trial not acquired within this time fails.
    include_center : bool, default True
        Alternate outer targets with the centre target ("and back"); if
        ``False`` every trial is an outer target.
    seed : int or numpy Generator, optional
        Seeds the order of directions.
    """

    name = "center-out"

    def __init__(
        self,
        *,
        n_targets: int = 8,
        radius: float = 0.35,
        target_width: float = 0.1,
        timeout_s: float = 5.0,
        include_center: bool = True,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(timeout_s=check_positive(timeout_s, "timeout_s"))
        self.n_targets = check_int(n_targets, "n_targets", minimum=1)
        self.radius = check_positive(radius, "radius")
        self.target_width = check_positive(target_width, "target_width")
        if self.radius + 0.5 * self.target_width > 0.5:
            raise InvalidInputError(
                f"radius + target_width / 2 must be <= 0.5 to keep targets in the unit square, "
                f"got {self.radius} + {self.target_width / 2}"
            )
        self.include_center = bool(include_center)
        self._rng = check_rng(seed)
        self._order: list[int] = []

    def outer_center(self, index: int) -> tuple[float, float]:
        angle = 2.0 * np.pi * int(index) / self.n_targets
        return (0.5 + self.radius * float(np.cos(angle)), 0.5 + self.radius * float(np.sin(angle)))

    def _next_target(self) -> Target:
        previous = self.target
        if self.include_center and previous is not None and previous.index != CENTER_INDEX:
            return Target((0.5, 0.5), self.target_width, "circle", CENTER_INDEX)
        if not self._order:
            self._order = list(self._rng.permutation(self.n_targets))
        index = int(self._order.pop())
        return Target(self.outer_center(index), self.target_width, "circle", index)

    def _nominal_distances(self, done) -> np.ndarray:
        # every movement, out or back, has the radius as its nominal amplitude (one ISO condition)
        return np.full(len(done), self.radius)
