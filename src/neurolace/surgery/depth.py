"""Insertion depth: how deep each thread goes so its electrodes sample the target layers.

A thread carries its electrodes in a line up from the tip: 16 at 50 µm pitch on the N1
(:meth:`neurolace.core.geometry.ElectrodeGeometry.threads`, whose geometry this module reads),
so they span 750 µm. The target is given as a band of cortical depth; by default from the top of
layer 2/3 to the bottom of layer 5 of human primary motor cortex, the layers whose pyramidal
neurons carry the movement signals intracortical BCIs decode (layer 5 holds the corticospinal
Betz cells).

Defaults (:class:`CorticalLayers`)
----------------------------------
- ``thickness_um = 3000``. Human cortex is 1-4.5 mm thick, about 2.5 mm on average, and
  Brodmann area 4 (primary motor cortex) is among the thickest, frequently over 4 mm in
  histology (Fischl & Dale 2000, PNAS 97:11050, from von Economo 1929 and Zilles 1990); MRI
  measures of the precentral gyrus are lower. 3 mm is between the two; set it from the
  patient's MRI.
- ``target_top_fraction = 0.10`` and ``target_bottom_fraction = 0.75`` of the thickness: the
  top of layer 2/3 (below the cell-poor layer 1) and the bottom of layer 5. Agranular motor
  cortex has no layer 4 and a thick layer 5 (the BigBrain laminar atlas shows both; Wagstyl
  et al. 2020, PLoS Biol 18:e3000678); the fractions are round numbers of this project in that
  spirit, not a fit to a measurement.

Rule
----
When the band is deeper than the electrodes' span, the span is centred in the band (at 3 mm
thickness: band 300-2250 µm, electrodes 900-1650 µm, across the layer 3 / layer 5 border);
when the band is thinner, the span starts at the band's top so every band depth is sampled. The
insertion depth reported per site is the depth of the deepest electrode below the pial surface,
along the insertion axis. A photograph carries no thickness, so every site gets the same depth
unless a thickness per site is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurolace.core.checks import check_array, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.geometry import ElectrodeGeometry

__all__ = ["CorticalLayers", "ThreadDepth", "insertion_depths"]


@dataclass(frozen=True)
class CorticalLayers:
    """Cortical thickness and the target band as fractions of it (module docstring for sources)."""

    thickness_um: float = 3000.0
    target_top_fraction: float = 0.10
    target_bottom_fraction: float = 0.75

    def __post_init__(self) -> None:
        check_positive(self.thickness_um, "thickness_um")
        top, bottom = self.target_top_fraction, self.target_bottom_fraction
        if not (0.0 <= top < bottom <= 1.0):
            raise InvalidInputError(
                f"target fractions must satisfy 0 <= top < bottom <= 1, got top={top!r}, bottom={bottom!r}"
            )

    def band_um(self, thickness_um=None) -> tuple[np.ndarray, np.ndarray]:
        """Top and bottom depth of the target band (µm) for each thickness (default the model's)."""
        thickness = np.asarray(self.thickness_um if thickness_um is None else thickness_um, dtype=np.float64)
        return thickness * self.target_top_fraction, thickness * self.target_bottom_fraction

    def to_dict(self) -> dict:
        return {
            "thickness_um": self.thickness_um,
            "target_top_fraction": self.target_top_fraction,
            "target_bottom_fraction": self.target_bottom_fraction,
        }


@dataclass(frozen=True, eq=False)
class ThreadDepth:
    """Depths of one insertion per site.

    Attributes
    ----------
    depth_um : ndarray, shape (n_sites,)
        Insertion depth: the deepest electrode below the pial surface.
    shallowest_electrode_um : ndarray, shape (n_sites,)
    band_top_um, band_bottom_um : ndarray, shape (n_sites,)
        The target band at each site.
    electrode_span_um, pitch_um : float
    n_electrodes : int
    """

    depth_um: np.ndarray
    shallowest_electrode_um: np.ndarray
    band_top_um: np.ndarray
    band_bottom_um: np.ndarray
    electrode_span_um: float
    pitch_um: float
    n_electrodes: int


def _thread_geometry() -> tuple[int, float]:
    """Electrodes per thread and their pitch, from the N1 geometry of ``neurolace.core``."""
    thread = ElectrodeGeometry.threads(n_threads=1)
    pitch = np.diff(np.sort(thread.depth_um))
    return thread.n_channels, float(pitch.mean()) if pitch.size else 0.0


def insertion_depths(n_sites: int, layers: CorticalLayers | None = None, *, thickness_um=None) -> ThreadDepth:
    """Insertion depth per site so the thread's electrodes span the target layers.

    Parameters
    ----------
    n_sites : int
        Number of sites.
    layers : CorticalLayers, optional
        Default :class:`CorticalLayers()`.
    thickness_um : float or array-like, shape (n_sites,), optional
        Cortical thickness at each site, if known (e.g. from MRI); default the model's.

    Returns
    -------
    ThreadDepth
    """
    layers = CorticalLayers() if layers is None else layers
    if thickness_um is None:
        thickness = np.full(n_sites, layers.thickness_um)
    else:
        thickness = np.broadcast_to(
            check_array(thickness_um, "thickness_um", ndim=(0, 1), dtype=np.float64), (n_sites,)
        ).astype(np.float64)
        if (thickness <= 0).any():
            raise InvalidInputError("thickness_um must be > 0 at every site")
    n_electrodes, pitch_um = _thread_geometry()
    span_um = pitch_um * (n_electrodes - 1)
    top, bottom = layers.band_um(thickness)
    shallowest = np.where(bottom - top > span_um, (top + bottom) / 2.0 - span_um / 2.0, top)
    return ThreadDepth(
        depth_um=shallowest + span_um,
        shallowest_electrode_um=shallowest,
        band_top_um=top,
        band_bottom_um=bottom,
        electrode_span_um=span_um,
        pitch_um=pitch_um,
        n_electrodes=n_electrodes,
    )
