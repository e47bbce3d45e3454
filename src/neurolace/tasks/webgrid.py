"""The Webgrid task: an N x N grid of cells, one lit at a time, select it with a click.

Webgrid is the cursor benchmark Neuralink publishes its participants' scores on
(neuralink.com/webgrid). The workspace is the unit square divided into
``grid_side x grid_side`` square cells; one cell is lit; a click inside it is
a correct selection and lights a new cell (drawn uniformly among the others);
a click anywhere else is an incorrect selection and the target stays lit. The
block is scored as net correct targets per minute and bits per second
(:func:`neurolace.tasks.metrics.webgrid_bps`).
"""

from __future__ import annotations

import numpy as np

from neurolace.core.checks import check_int
from neurolace.core.random import SeedLike, check_rng
from neurolace.tasks.base import BlockSummary, PointAndClickTask, Target
from neurolace.tasks.metrics import net_targets_per_minute, webgrid_bps

__all__ = ["WebgridTask"]

#: Distance bins (workspace units) that group Webgrid movements into ISO 9241-9 conditions.
WEBGRID_DISTANCE_EDGES = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.5])


class WebgridTask(PointAndClickTask):
    """Webgrid on the unit square.

    Parameters
    ----------
    grid_side : int, default 30
        Cells per side (30 is the standard grid, 35 the high-score grid), >= 2.
    seed : int or numpy Generator, optional
        Seeds the sequence of lit cells.

    Examples
    --------
    >>> task = WebgridTask(grid_side=2, seed=0)
    >>> target = task.start(0.0, (0.5, 0.5))
    >>> task.update(0.5, target.center_xy, click=True).correct
    True
    """

    name = "webgrid"

    def __init__(self, *, grid_side: int = 30, seed: SeedLike = None) -> None:
        super().__init__(timeout_s=None)
        self.grid_side = check_int(grid_side, "grid_side", minimum=2)
        self.cell_width = 1.0 / self.grid_side
        self._rng = check_rng(seed)

    def cell_center(self, index: int) -> tuple[float, float]:
        """Centre of cell ``index`` (row-major from the bottom-left corner)."""
        row, column = divmod(int(index), self.grid_side)
        return ((column + 0.5) * self.cell_width, (row + 0.5) * self.cell_width)

    def _next_target(self) -> Target:
        n_cells = self.grid_side * self.grid_side
        previous = self.target.index if self.target is not None else -1
        index = int(self._rng.integers(n_cells - (previous >= 0)))
        if previous >= 0 and index >= previous:
            index += 1  # never relight the cell just selected
        return Target(self.cell_center(index), self.cell_width, "square", index)

    def _distance_edges(self) -> np.ndarray:
        return WEBGRID_DISTANCE_EDGES

    def _success_rate(self, finished) -> float:
        clicks = self.correct + self.incorrect
        return self.correct / clicks if clicks else float("nan")

    def summary(self, end_s: float | None = None) -> BlockSummary:
        """Block metrics with NTPM and BPS filled in."""
        block = super().summary(end_s)
        block.grid_side = self.grid_side
        if block.duration_s > 0:
            block.ntpm = net_targets_per_minute(self.correct, self.incorrect, block.duration_s)
            block.bps = webgrid_bps(block.ntpm, self.grid_side)
        else:
            block.ntpm, block.bps = 0.0, 0.0
        return block
