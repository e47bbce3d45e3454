"""The spike-events CSV that ``neurolace detect --out`` and ``neurolace batch detect`` write: one home for it.

One header line ``sample_index,channel``, then one row of two integers per threshold crossing.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["EVENTS_HEADER", "write_events_csv"]

EVENTS_HEADER = "sample_index,channel"


def write_events_csv(path: str | os.PathLike, sample_index: np.ndarray, channel_index: np.ndarray, *,
                     header: bool = True) -> None:
    """Write detections as ``sample_index,channel`` rows of ints (``path``: a file name or an open file)."""
    table = np.column_stack([sample_index, channel_index])
    np.savetxt(path, table, fmt="%d", delimiter=",", header=EVENTS_HEADER if header else "", comments="")
