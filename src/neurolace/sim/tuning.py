"""How simulated motor-cortex neurons encode intended movement.

One :class:`TuningModel` is shared by the simulated implant (which turns rates
into spike waveforms on electrodes) and the simulated participant (which, for
speed, can draw binned spike counts straight from the same rates), so both
see the same neurons.

The model is the velocity form of cosine tuning (Georgopoulos et al. 1982,
J Neurosci 2:1527) with the speed term of Moran & Schwartz (1999,
J Neurophysiol 82:2676)::

    rate_hz = baseline_hz + speed * (speed_gain_hz + depth_hz * cos(theta - preferred_direction))
              + click_gain_hz * click

where ``speed`` and ``theta`` are the magnitude and angle of the intended
velocity in normalised units (1.0 = a typical peak reaching speed), and
``click`` is 1 while the participant intends to click. Rates are clipped at 0.

Default distributions (per unit, drawn from a seeded generator):

- ``baseline_hz``: log-normal, median 8 Hz, clipped to [1, 60] Hz. Motor cortex
  units fire at ~5-20 Hz at rest (Truccolo et al. 2008, J Neurosci 28:1163).
- ``depth_hz``: gamma with mean 10 Hz; modulation depths of 5-20 Hz are typical
  of M1 during reaching (Georgopoulos 1982; Hochberg et al. 2006, Nature 442:164).
- ``preferred_direction_rad``: uniform on the circle (Georgopoulos 1982).
- ``speed_gain_hz``: normal, mean 2 Hz, sd 3 Hz (Moran & Schwartz 1999 find a
  speed term in most cells, of either sign).
- ``click_gain_hz``: normal, mean 0, sd 6 Hz, in a random 30 % of units (M1
  units modulate with attempted hand grasp used as a click; Bacher et al.
  2015, Neurorehabil Neural Repair 29:462).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurolace.core.checks import check_array, check_int
from neurolace.core.errors import InvalidInputError
from neurolace.core.random import SeedLike, check_rng

__all__ = ["TuningModel"]


@dataclass(eq=False)
class TuningModel:
    """Cosine-and-speed tuning of ``n_units`` neurons to a 2-D intended velocity.

    Attributes
    ----------
    baseline_hz, depth_hz, preferred_direction_rad, speed_gain_hz, click_gain_hz : ndarray, shape (n_units,)
        Per-unit parameters of the model in the module docstring.
    """

    baseline_hz: np.ndarray
    depth_hz: np.ndarray
    preferred_direction_rad: np.ndarray
    speed_gain_hz: np.ndarray
    click_gain_hz: np.ndarray

    def __post_init__(self) -> None:
        n = None
        for name in ("baseline_hz", "depth_hz", "preferred_direction_rad", "speed_gain_hz", "click_gain_hz"):
            value = check_array(getattr(self, name), name, ndim=1, dtype=np.float64)
            if n is None:
                n = value.shape[0]
            elif value.shape[0] != n:
                raise InvalidInputError(f"{name} has {value.shape[0]} units, expected {n}")
            setattr(self, name, value)

    @property
    def n_units(self) -> int:
        return int(self.baseline_hz.shape[0])

    @classmethod
    def random(cls, n_units: int, *, seed: SeedLike = None, click_fraction: float = 0.3) -> "TuningModel":
        """Draw ``n_units`` units from the default distributions (see module docstring)."""
        n_units = check_int(n_units, "n_units", minimum=1)
        rng = check_rng(seed)
        baseline = np.clip(rng.lognormal(np.log(8.0), 0.6, n_units), 1.0, 60.0)
        depth = rng.gamma(shape=4.0, scale=2.5, size=n_units)
        preferred = rng.uniform(-np.pi, np.pi, n_units)
        speed_gain = rng.normal(2.0, 3.0, n_units)
        click_gain = np.where(rng.random(n_units) < click_fraction, rng.normal(0.0, 6.0, n_units), 0.0)
        return cls(baseline, depth, preferred, speed_gain, click_gain)

    def rates_hz(self, velocity: np.ndarray, click: np.ndarray | None = None) -> np.ndarray:
        """Firing rates for intended velocities.

        Parameters
        ----------
        velocity : ndarray, shape (n_times, 2)
            Intended velocity (vx, vy) in normalised units.
        click : ndarray, shape (n_times,), optional
            Click intention in [0, 1].

        Returns
        -------
        rates_hz : ndarray, shape (n_times, n_units)
        """
        velocity = check_array(velocity, "velocity", ndim=2, dtype=np.float64)
        if velocity.shape[1] != 2:
            raise InvalidInputError(f"velocity must have shape (n_times, 2), got {velocity.shape}")
        # speed * cos(theta - pd) = vx cos(pd) + vy sin(pd): no angles needed.
        cos_pd, sin_pd = self._direction_components()
        directional = velocity[:, :1] * cos_pd + velocity[:, 1:] * sin_pd
        speed = np.hypot(velocity[:, 0], velocity[:, 1])[:, np.newaxis]
        rates = self.baseline_hz + speed * self.speed_gain_hz + directional * self.depth_hz
        if click is not None:
            click = check_array(click, "click", ndim=1, dtype=np.float64, shape=(velocity.shape[0],))
            rates = rates + click[:, np.newaxis] * self.click_gain_hz
        return np.maximum(rates, 0.0)

    def _direction_components(self) -> tuple[np.ndarray, np.ndarray]:
        """cos and sin of the preferred directions, kept while they are unchanged.

        The implant stream asks for rates every millisecond; recomputing them took
        ~40 % of a 1 ms step at 5,736 units (profile of ``ImplantStream``, 1024 channels).
        """
        cached = getattr(self, "_direction_cache", None)
        if cached is None or not np.array_equal(cached[0], self.preferred_direction_rad):
            direction = self.preferred_direction_rad.copy()
            cached = (direction, np.cos(direction), np.sin(direction))
            self._direction_cache = cached
        return cached[1], cached[2]

    def drifted(self, *, days: float, seed: SeedLike = None) -> "TuningModel":
        """The same units after ``days`` of drift in baseline and preferred direction.

        Day-to-day instability of intracortical recordings: baselines and
        preferred directions wander as a random walk (Perge et al. 2013,
        J Neural Eng 10:036004 report shifts that degrade a fixed decoder
        within days). We use a baseline log-sd of 0.15 and a preferred-direction
        sd of 10 degrees per sqrt(day).
        """
        rng = check_rng(seed)
        scale = np.sqrt(max(float(days), 0.0))
        baseline = self.baseline_hz * np.exp(rng.normal(0.0, 0.15 * scale, self.n_units))
        preferred = self.preferred_direction_rad + rng.normal(0.0, np.deg2rad(10.0) * scale, self.n_units)
        return TuningModel(baseline, self.depth_hz.copy(), preferred, self.speed_gain_hz.copy(),
                           self.click_gain_hz.copy())

    def __repr__(self) -> str:
        return (
            f"TuningModel(n_units={self.n_units}, median_baseline_hz={np.median(self.baseline_hz):.1f}, "
            f"mean_depth_hz={self.depth_hz.mean():.1f})"
        )
