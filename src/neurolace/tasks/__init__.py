"""Cursor tasks and their scores: Webgrid (bits per second), center-out, ISO 9241-9 throughput.

>>> from neurolace.tasks import webgrid_bps
>>> round(webgrid_bps(72, grid_side=30), 2)
11.77
"""

from neurolace.tasks.base import BlockSummary, PointAndClickTask, Selection, Target, Trial
from neurolace.tasks.center_out import CenterOutTask
from neurolace.tasks.metrics import (
    ThroughputCondition,
    ThroughputResult,
    iso_throughput,
    net_targets_per_minute,
    path_efficiency,
    webgrid_bps,
)
from neurolace.tasks.webgrid import WebgridTask

__all__ = [
    "BlockSummary",
    "CenterOutTask",
    "PointAndClickTask",
    "Selection",
    "Target",
    "ThroughputCondition",
    "ThroughputResult",
    "Trial",
    "WebgridTask",
    "iso_throughput",
    "net_targets_per_minute",
    "path_efficiency",
    "webgrid_bps",
]
