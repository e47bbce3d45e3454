"""Electrode geometry: which thread each electrode sits on and where.

A Neuralink-class implant carries electrodes on flexible threads inserted into
cortex. Each electrode therefore has a thread id, a depth along its thread
(µm below the cortical surface) and the thread's insertion point on the
cortical surface (x, y in µm). Tetrodes and single wires fit the same model
with one "thread" each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurolace.core.checks import check_array, check_int, check_positive
from neurolace.core.errors import InvalidInputError

#: The most electrodes a simulation or a session may ask for without an explicit override: four
#: N1 implants. Above it the simulator's ground-truth tables and memory grow past what a session on
#: one machine should start unasked (``neurolace simulate --allow-large`` lifts it for the CLI).
MAX_ELECTRODES = 4096

__all__ = ["ElectrodeGeometry"]


@dataclass(frozen=True, eq=False)
class ElectrodeGeometry:
    """Positions of ``n_channels`` electrodes.

    Attributes
    ----------
    thread_id : ndarray of int32, shape (n_channels,)
        Index of the thread (shank) that carries each electrode.
    depth_um : ndarray of float64, shape (n_channels,)
        Depth of each electrode along its thread below the cortical surface, in µm.
    surface_xy_um : ndarray of float64, shape (n_channels, 2)
        Insertion point of the electrode's thread on the cortical surface, in µm.
    """

    thread_id: np.ndarray
    depth_um: np.ndarray
    surface_xy_um: np.ndarray

    def __post_init__(self) -> None:
        thread_id = check_array(self.thread_id, "thread_id", ndim=1, dtype="integer").astype(np.int32)
        depth_um = check_array(self.depth_um, "depth_um", ndim=1, dtype=np.float64)
        surface = check_array(self.surface_xy_um, "surface_xy_um", ndim=2, dtype=np.float64)
        n = thread_id.shape[0]
        if depth_um.shape != (n,) or surface.shape != (n, 2):
            raise InvalidInputError(
                "thread_id, depth_um and surface_xy_um must describe the same electrodes: got shapes "
                f"{thread_id.shape}, {depth_um.shape}, {surface.shape}; expected (n,), (n,), (n, 2)"
            )
        for attribute, value in (("thread_id", thread_id), ("depth_um", depth_um), ("surface_xy_um", surface)):
            value.setflags(write=False)
            object.__setattr__(self, attribute, value)

    @property
    def n_channels(self) -> int:
        return int(self.thread_id.shape[0])

    @property
    def n_threads(self) -> int:
        return int(np.unique(self.thread_id).size)

    @property
    def positions_um(self) -> np.ndarray:
        """3-D electrode positions (x, y on the surface, z = -depth), shape (n_channels, 3)."""
        return np.column_stack([self.surface_xy_um, -self.depth_um])

    @classmethod
    def threads(
        cls,
        n_threads: int = 64,
        electrodes_per_thread: int = 16,
        *,
        pitch_um: float = 50.0,
        first_depth_um: float = 400.0,
        thread_spacing_um: float = 400.0,
    ) -> "ElectrodeGeometry":
        """A grid of threads, each with evenly spaced electrodes along its length.

        The defaults follow the N1 implant (64 threads x 16 electrodes = 1024
        channels); the pitch of 50 µm along the thread and the depths cover
        the layers that motor cortex recordings target (Musk & Neuralink,
        "An integrated brain-machine interface platform with thousands of
        channels", J Med Internet Res 21(10):e16194, 2019).
        """
        n_threads = check_int(n_threads, "n_threads", minimum=1)
        electrodes_per_thread = check_int(electrodes_per_thread, "electrodes_per_thread", minimum=1)
        pitch_um = check_positive(pitch_um, "pitch_um")
        thread_spacing_um = check_positive(thread_spacing_um, "thread_spacing_um")
        side = int(np.ceil(np.sqrt(n_threads)))
        thread_index = np.arange(n_threads)
        thread_xy = np.column_stack([thread_index % side, thread_index // side]) * thread_spacing_um
        thread_id = np.repeat(thread_index, electrodes_per_thread)
        depth = first_depth_um + pitch_um * np.tile(np.arange(electrodes_per_thread), n_threads)
        return cls(thread_id=thread_id, depth_um=depth, surface_xy_um=thread_xy[thread_id])

    @classmethod
    def linear(cls, n_channels: int, *, pitch_um: float = 50.0) -> "ElectrodeGeometry":
        """Electrodes on a single thread, for files that carry no geometry."""
        n_channels = check_int(n_channels, "n_channels", minimum=1)
        return cls(
            thread_id=np.zeros(n_channels, dtype=np.int32),
            depth_um=pitch_um * np.arange(n_channels, dtype=np.float64),
            surface_xy_um=np.zeros((n_channels, 2)),
        )

    def subset(self, channel_index: np.ndarray) -> "ElectrodeGeometry":
        """Geometry of the selected channels, in the given order."""
        return ElectrodeGeometry(
            thread_id=self.thread_id[channel_index],
            depth_um=self.depth_um[channel_index],
            surface_xy_um=self.surface_xy_um[channel_index],
        )

    def __repr__(self) -> str:
        return f"ElectrodeGeometry(n_channels={self.n_channels}, n_threads={self.n_threads})"
