"""Brain motion and insertion timing: insert each thread while the cortex is quiet.

The exposed cortex moves with each heartbeat and breath. The model is the sum of two sinusoids
of surface displacement along one in-plane direction:

    d(t) = A_c sin(2 pi f_c t + phi_c) + A_r sin(2 pi f_r t + phi_r)

Amplitudes (zero to peak; :class:`BrainMotion`)
-----------------------------------------------
- Human (default, :meth:`BrainMotion.human`): cardiac 100 µm at 1.2 Hz, respiratory 300 µm at
  0.25 Hz. Stereo-camera tracking of the exposed human cortex after craniotomy found motion of
  less than 0.8 mm with spectral peaks at about 1 Hz (blood pressure) and 0.2 Hz (breathing)
  (Faria et al. 2014, Med Phys 41:113502). The amplitudes are chosen so the largest
  peak-to-peak excursion, 2 x (100 + 300) µm, equals that bound, with breathing the larger part
  as in the same study; 1.2 Hz is 72 beats per minute and 0.25 Hz 15 breaths per minute, inside
  the issue's 1-1.5 Hz and 0.2-0.3 Hz.
- Rat (:meth:`BrainMotion.rat`): cardiac 3 µm, respiratory 20 µm, the middles of the 2-4 µm
  (vascular pulsation) and 10-30 µm (respiration) measured against stationary implants in
  anaesthetised rats (Gilletti & Muthuswamy 2006, J Neural Eng 3:189); rat heart and breathing
  rates (6 Hz, 1 Hz) are used for it.

Timing (:class:`RobotTiming`, :func:`schedule_insertions`)
----------------------------------------------------------
The robot fixes the site's position from its camera and then drives the needle through the pia
``latency_s`` (50 ms) later; whatever the surface moves in between is placement error. A
moment is *quiet* when the surface moves at most ``quiet_residual_um`` (5 µm) during the next
``latency_s``. Each insertion starts at the first quiet moment after the robot has reached the
site; the thread's whole cycle (needle in, release, retract, pick up the next thread) takes
``insertion_s`` = 10 s, the robot's rate of six threads per minute (Musk & Neuralink 2019,
J Med Internet Res 21:e16194). The stage moves between sites at ``stage_speed_mm_s`` = 5 mm/s
(an assumption: travel is a fraction of a second against 10 s per thread, so the estimate
barely depends on it). The procedure's estimated duration is the end of the last insertion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurolace.core.checks import check_array, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError

__all__ = ["BrainMotion", "RobotTiming", "InsertionSchedule", "schedule_insertions"]

#: Time step of the quiet-phase search.
TIME_STEP_S = 0.001
#: The quiet-phase search looks this far ahead at a time.
SEARCH_CHUNK_S = 2.0


@dataclass(frozen=True)
class BrainMotion:
    """Cardiac and respiratory surface displacement along ``direction_xy`` (module docstring)."""

    cardiac_hz: float = 1.2
    cardiac_amplitude_um: float = 100.0
    respiratory_hz: float = 0.25
    respiratory_amplitude_um: float = 300.0
    cardiac_phase_rad: float = 0.0
    respiratory_phase_rad: float = 0.0
    direction_xy: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("cardiac_hz", "respiratory_hz"):
            check_positive(getattr(self, name), name)
        for name in ("cardiac_amplitude_um", "respiratory_amplitude_um"):
            check_nonnegative(getattr(self, name), name)
        direction = check_array(self.direction_xy, "direction_xy", shape=(2,), dtype=np.float64)
        norm = float(np.hypot(*direction))
        if norm == 0:
            raise InvalidInputError("direction_xy must not be the zero vector")
        object.__setattr__(self, "direction_xy", (float(direction[0] / norm), float(direction[1] / norm)))

    @classmethod
    def human(cls) -> "BrainMotion":
        """Exposed human cortex (the default; Faria et al. 2014)."""
        return cls()

    @classmethod
    def rat(cls) -> "BrainMotion":
        """Anaesthetised rat somatosensory cortex (Gilletti & Muthuswamy 2006)."""
        return cls(cardiac_hz=6.0, cardiac_amplitude_um=3.0, respiratory_hz=1.0, respiratory_amplitude_um=20.0)

    @classmethod
    def still(cls) -> "BrainMotion":
        """No motion (for tests and for a perfectly motion-compensated robot)."""
        return cls(cardiac_amplitude_um=0.0, respiratory_amplitude_um=0.0)

    def displacement_um(self, time_s) -> np.ndarray:
        """Displacement along ``direction_xy`` at ``time_s`` (any shape), µm."""
        t = np.asarray(time_s, dtype=np.float64)
        return (
            self.cardiac_amplitude_um * np.sin(2 * np.pi * self.cardiac_hz * t + self.cardiac_phase_rad)
            + self.respiratory_amplitude_um * np.sin(2 * np.pi * self.respiratory_hz * t + self.respiratory_phase_rad)
        )

    def speed_um_s(self, time_s) -> np.ndarray:
        """Surface speed ``|d'(t)|`` at ``time_s``, µm/s."""
        t = np.asarray(time_s, dtype=np.float64)
        omega_c, omega_r = 2 * np.pi * self.cardiac_hz, 2 * np.pi * self.respiratory_hz
        return np.abs(
            self.cardiac_amplitude_um * omega_c * np.cos(omega_c * t + self.cardiac_phase_rad)
            + self.respiratory_amplitude_um * omega_r * np.cos(omega_r * t + self.respiratory_phase_rad)
        )

    def to_dict(self) -> dict:
        return {
            "cardiac_hz": self.cardiac_hz, "cardiac_amplitude_um": self.cardiac_amplitude_um,
            "respiratory_hz": self.respiratory_hz, "respiratory_amplitude_um": self.respiratory_amplitude_um,
            "direction_xy": list(self.direction_xy),
        }


@dataclass(frozen=True)
class RobotTiming:
    """The robot's pace and timing (module docstring for each default)."""

    insertion_s: float = 10.0
    stage_speed_mm_s: float = 5.0
    latency_s: float = 0.05
    quiet_residual_um: float = 5.0
    timing_jitter_s: float = 0.005
    max_wait_s: float = 20.0

    def __post_init__(self) -> None:
        for name in ("insertion_s", "stage_speed_mm_s", "latency_s", "quiet_residual_um", "max_wait_s"):
            check_positive(getattr(self, name), name)
        check_nonnegative(self.timing_jitter_s, "timing_jitter_s")

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class InsertionSchedule:
    """When each insertion happens (arrays indexed by site, not by order).

    Attributes
    ----------
    start_s : ndarray, shape (n_sites,)
        Position fix of the insertion (the needle enters ``latency_s`` later).
    wait_s : ndarray, shape (n_sites,)
        Time spent waiting for a quiet moment after reaching the site.
    travel_s : ndarray, shape (n_sites,)
        Stage travel to the site from the previous one (from home for the first).
    residual_um : ndarray, shape (n_sites,)
        Largest surface excursion during the latency of the chosen moment.
    quiet : ndarray of bool, shape (n_sites,)
        A quiet moment was found within ``max_wait_s`` (else the calmest moment in it was taken).
    duration_s : float
        End of the last insertion: the estimated procedure time.
    """

    start_s: np.ndarray
    wait_s: np.ndarray
    travel_s: np.ndarray
    residual_um: np.ndarray
    quiet: np.ndarray
    duration_s: float


def _excursion_um(displacement: np.ndarray, window: int) -> np.ndarray:
    """For each sample, the largest ``|d[k + i] - d[k]|`` for ``0 <= i <= window``."""
    from numpy.lib.stride_tricks import sliding_window_view

    padded = np.concatenate([displacement, np.full(window, displacement[-1])])
    view = sliding_window_view(padded, window + 1)[: displacement.size]
    return np.maximum(view.max(axis=1) - displacement, displacement - view.min(axis=1))


def schedule_insertions(
    sites_xy_um,
    order,
    *,
    home_xy_um=None,
    motion: BrainMotion | None = None,
    robot: RobotTiming | None = None,
) -> InsertionSchedule:
    """Time each insertion at a quiet phase of the brain motion.

    Parameters
    ----------
    sites_xy_um : array-like, shape (n_sites, 2)
    order : array-like of int, shape (n_sites,)
        Site indices in insertion sequence (:attr:`InsertionOrder.order`).
    home_xy_um : array-like, shape (2,), optional
        Where the robot starts; default the first site (no travel before it).
    motion : BrainMotion, optional
        Default :meth:`BrainMotion.human`.
    robot : RobotTiming, optional
        Default ``RobotTiming()``.

    Returns
    -------
    InsertionSchedule
    """
    sites = check_array(sites_xy_um, "sites_xy_um", ndim=2, dtype=np.float64)
    order = check_array(order, "order", ndim=1, dtype="integer")
    n = sites.shape[0]
    if sorted(order.tolist()) != list(range(n)):
        raise InvalidInputError(f"order must be a permutation of the {n} site indices")
    motion = BrainMotion.human() if motion is None else motion
    robot = RobotTiming() if robot is None else robot
    start, wait, travel, residual = (np.zeros(n) for _ in range(4))
    quiet = np.zeros(n, dtype=bool)
    if n == 0:
        return InsertionSchedule(start, wait, travel, residual, quiet, 0.0)
    position = sites[order[0]] if home_xy_um is None else check_array(home_xy_um, "home_xy_um", shape=(2,), dtype=np.float64)
    window = max(1, int(round(robot.latency_s / TIME_STEP_S)))
    offsets = np.arange(0.0, robot.max_wait_s, TIME_STEP_S)
    chunk = int(round(SEARCH_CHUNK_S / TIME_STEP_S))
    clock = 0.0
    for site in order:
        travel[site] = float(np.hypot(*(sites[site] - position))) / (robot.stage_speed_mm_s * 1000.0)
        ready = clock + travel[site]
        best_index, best_excursion = 0, np.inf
        for first in range(0, offsets.size, chunk):  # most waits end in the first chunk
            excursion = _excursion_um(motion.displacement_um(ready + offsets[first:first + chunk + window]), window)
            excursion = excursion[:chunk]
            calm = np.flatnonzero(excursion <= robot.quiet_residual_um)
            if calm.size:
                best_index, best_excursion, quiet[site] = first + int(calm[0]), float(excursion[calm[0]]), True
                break
            if excursion.min() < best_excursion:
                best_index, best_excursion = first + int(np.argmin(excursion)), float(excursion.min())
        start[site] = ready + offsets[best_index]
        wait[site] = offsets[best_index]
        residual[site] = best_excursion
        clock = start[site] + robot.insertion_s
        position = sites[site]
    return InsertionSchedule(start, wait, travel, residual, quiet, float(clock))
