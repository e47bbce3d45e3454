"""The simulated closed-loop participant: intention from a feedback-control model, neurons from it.

A person controlling a BCI cursor is a feedback controller: they see the
cursor late, predict where it is now, aim at the target, slow down near it,
and try to click when they believe the cursor is on it. Closed-loop
simulators built on that idea predict online BCI performance far better than
offline decoding accuracy does (Cunningham et al. 2011, J Neurophysiol
105:1932; Willett et al. 2019, Sci Rep 9:8881; Lagang & Srinivasan 2013,
J Neurophysiol 109:1078). This module implements one such user model and
drives simulated motor-cortex channels with it.

Control model (one step every ``loop_s``), parameters in :class:`ControlParameters`,
each default from human data (docs/participant.md lists the sources and ranges):

1. The participant sees the cursor ``visual_delay_s`` late (the latency of
   visually driven corrections, ~100-160 ms) and a new target
   ``reaction_time_s`` late (a simple visual reaction time).
2. An internal forward model (a Smith predictor; Miall et al. 1993, J Mot
   Behav 25:203) adds the motion its *planned* commands should have produced
   during the visual delay: ``estimate = seen + sum(gain * planned * loop_s)``.
   The efference copy carries the plan, not the motor noise that corrupted
   it, so noise shows up only when the cursor is seen (Wolpert et al. 1995,
   Science 269:1880).
3. The planned velocity points at the target from the estimate, its speed a
   piecewise-linear function of distance that saturates at ``max_speed``
   (the "f_targ" of Willett et al. 2019, Sci Rep 9:8881); below
   ``slowdown_distance`` it is proportional to the remaining distance, a
   stopping term that brings the cursor to rest on the target.
4. Motor noise is signal dependent (Harris & Wolpert 1998, Nature 394:780):
   each component of the executed command gets Gaussian noise with SD
   ``motor_noise_cv * |planned| + motor_noise_floor_sd``, so there is no noise
   at rest and the most while moving fast, which is what makes fast movements
   inaccurate (Fitts' law). Plan and noise are low-pass filtered with
   ``smoothing_s``; the noise is scaled so its SD *after* the filter is the
   one above, whatever ``loop_s``. The decoding noise of a BCI is not added
   here: the Poisson channels produce it.
5. When the estimate has stayed inside the central part of the target for
   ``dwell_s`` and the cursor it perceives is on the target too, the participant
   attempts a click (still steering at the centre) (a grasp;
   Bacher et al. 2015) until it sees the click take effect (the target
   changes) or ``max_click_s`` passes, then pauses ``click_refractory_s``
   before trying again. "Perceives on the target" is the earliest percept
   that says so: the seen cursor (``visual_delay_s`` late) or, with sensory
   feedback, an ICMS "touch" felt ``icms_delay_s`` after the stimulator
   delivered it (:meth:`SimulatedParticipant.step`'s ``touch``). Without
   touch the participant is exactly the vision-only one.

Neural model (parameters in :class:`NeuralParameters`): channel ``c`` sees one
unit-mix whose rate follows the shared :class:`~neurolace.sim.tuning.TuningModel`
(cosine + speed + click tuning), scaled by the channel's ``visibility_c``
(how much of the tuned activity the electrode picks up), on top of an untuned
multi-unit background, with a slow shared multiplicative nuisance (population
gain fluctuations unrelated to the task)::

    rate_c(t) = (background_hz_c + visibility_c * tuning_rate_c(v, click)) * exp(loading_c . z(t))

``z`` is ``n_nuisance`` independent Ornstein-Uhlenbeck processes with time
constant ``nuisance_tau_s``. Counts per bin are Poisson. This fast path gives
binned counts directly; the simulated implant can turn the same
``tuning`` and intention into spike waveforms instead.

Calibration at matched population size: ``visibility_scale`` (1.75) was
chosen so that a plain ridge decoder on a random 196 of the participant's
channels (the real recording has 196 units), in 50 ms bins, with the protocol
used on the real Stevenson et al. (2011) M1 data (10 bins of history, sqrt
counts, first 70 % to fit, last 30 % to score, as long as the real recording),
reaches about the R² the same code reaches on the real data: 0.753, 0.798,
0.773 for seeds 0-2 (mean 0.775) against 0.772 (0.810 / 0.734); 1.5 gave
0.760 and 2.0 0.784 (seeds 0, 1). Each channel then carries about as much
velocity information as one sorted M1 unit (mean visibility 0.76 of a
unit-mix), within what the implant simulator supports (1.5 units per
electrode above 5x noise, docs/simulator.md); the default participant has
1024 such channels. That calibration was run with the earlier control model
(constant motor noise, 0.2 s visual delay); with the present one the same
protocol over 300 s gives 0.750 (seed 0) and 0.788 (seed 1), against 0.735
for seed 0 before, so the visibility scale was kept (the test in
tests/test_participant.py holds it within 0.05 of the real data). See
:func:`neurolace.runtime.reaching.offline_decodability`,
``benchmarks/bench_closed_loop.py`` and docs/closed-loop.md.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from neurolace.core.checks import check_array, check_int, check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.random import SeedLike, check_rng, spawn_rngs
from neurolace.sim.tuning import TuningModel

__all__ = [
    "CONTROL_PARAMETER_RANGES",
    "ControlParameters",
    "Intention",
    "NeuralParameters",
    "SimulatedParticipant",
    "nuisance_path",
]


#: Published human range of each control parameter that has one: ``name -> (low, high)``, in the
#: parameter's units. :meth:`ControlParameters.sample` draws from these; the defaults lie inside them.
#: Sources are in the :class:`ControlParameters` docstring (and docs/participant.md).
CONTROL_PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    "visual_delay_s": (0.10, 0.16),
    "reaction_time_s": (0.20, 0.30),
    "dwell_s": (0.07, 0.13),
    "motor_noise_cv": (0.05, 0.20),
}


@dataclass(frozen=True)
class ControlParameters:
    """The participant's feedback-control model; every default has its source or says it has none.

    Attributes
    ----------
    loop_s : float, default 0.02
        Control and binning period (20 ms bins are the norm of intracortical
        cursor BCIs: Gilja et al. 2012, Nat Neurosci 15:1752; Pandarinath et
        al. 2017, eLife 6:e18554).
    visual_delay_s : float, default 0.12
        Delay before a cursor position is seen and used: the latency of
        visually driven corrections of an ongoing reach when the seen hand or
        target jumps, about 100-160 ms (Day & Lyon 2000, Exp Brain Res
        130:159, ~125 ms; Saunders & Knill 2003, Exp Brain Res 152:341,
        corrections to a displaced virtual fingertip within ~150 ms). Range
        used for sampling: 0.10-0.16 s. (The previous default, 0.2 s, was
        Willett et al. 2019's fit for BCI users, which includes the decoder's
        own lag; here the decoder's lag is simulated by the decoder.)
    reaction_time_s : float, default 0.24
        From a target lighting up to the intention changing: a simple visual
        reaction time, 240 ms (range 105-470 ms) in the Model Human Processor
        (perceptual + cognitive + motor cycles, 100 + 70 + 70 ms; Card, Moran &
        Newell 1983, The Psychology of Human-Computer Interaction, Erlbaum).
        Range used for sampling: 0.20-0.30 s, the central part of it.
    max_speed : float, default 1.0
        Saturating intended speed in normalised units (1.0 = the typical peak
        speed the tuning model is scaled to); the cursor gain turns it into
        workspace units per second. Not a human parameter: a unit.
    slowdown_distance : float, default 0.15
        Distance (workspace units, the workspace is the unit square) below
        which intended speed falls linearly to 0: the piecewise-linear f_targ
        of Willett et al. 2019 (their fit saturates at about a third of the
        target distance), and the stopping term of the controller.
    motor_noise_cv : float, default 0.1
        Signal-dependent motor noise: SD of each executed velocity component
        as a fraction of the planned speed (Harris & Wolpert 1998, Nature
        394:780: SD proportional to the command). No published value for a
        cursor-velocity command was found; isometric force and torque in
        the arm vary with a coefficient of variation of a few per cent
        (Hamilton, Jones & Wolpert 2004, Exp Brain Res 157:417), a lower bound
        for a whole moving limb. 0.1 is a chosen value inside the sampling
        range 0.05-0.20, not a fitted one; benchmarks/bench_participant.py
        reports how the results move across that range.
    motor_noise_floor_sd : float, default 0.0
        Constant (signal-independent) noise SD added to each component,
        normalised units. Off by default: no published size for a cursor
        command was found, and a floor makes the participant jitter at rest.
    smoothing_s : float, default 0.06
        Time constant of the first-order low-pass on plan and noise; intended
        movements are smooth on ~50-100 ms scales (Cunningham et al. 2011,
        J Neurophysiol 105:1932 model the arm's dynamics with a similar filter).
    dwell_s : float, default 0.1
        Time the estimated cursor must stay inside the click zone while the
        seen cursor is inside the target before the participant attempts a
        click: the final verification of an aimed movement (Meyer et al. 1988,
        Psychol Rev 95:340), here the time of a button press, 0.1 s in the
        Keystroke-Level Model (Card, Moran & Newell 1980, Commun ACM 23:396).
        The visual delay comes on top of it, so entry to click is at least
        ``visual_delay_s + dwell_s``. Sampling range 0.07-0.13 s (+-30 %, a
        chosen spread: the KLM gives one value).
    click_zone_fraction : float, default 0.7
        The click zone is the target shrunk to this fraction of its size
        (people aim for the middle of a small target). No published value;
        a chosen one.
    max_click_s : float, default 0.6
        Longest attempted click; the participant keeps attempting until it
        sees the target change (feedback), so a click lasts at least the
        reaction time. Attempted grasps used as BCI clicks last a few hundred
        ms (Bacher et al. 2015, Neurorehabil Neural Repair 29:462).
    click_refractory_s : float, default 0.2
        Pause after an attempted click that had no visible effect (no
        published value; about one reaction time).
    forward_model_gain : float, default 1.0
        The participant's belief of the cursor gain as a multiple of the true
        one (1.0 = a perfect internal model, as after practice).
    icms_delay_s : float, default 0.10
        Delay from an ICMS feedback train (``touch`` in :meth:`SimulatedParticipant.step`)
        to its percept being used, 20 ms shorter than ``visual_delay_s``. The published
        comparisons disagree, and this is the favourable end: in monkeys, reaction times to
        100 µA, 330 Hz single-electrode ICMS of area 2 were slightly faster than to a visual
        cue, and multi-electrode ICMS (>= 480 µA over 16 electrodes) up to 20 ms faster than
        a mechanical cue, itself faster than the visual one (Sombeck & Miller 2020, J Neural
        Eng 17:016013); but ICMS was slower than both tactile and visual cues for a monkey
        correcting a reach (Godlove, Whaite & Batista 2014, J Neural Eng 11), a human
        reacted 48 ms slower to ICMS than to intensity-matched vibration although the two
        felt simultaneous in temporal-order judgements (Christie et al. 2022, Brain
        Stimul 15), and surface stimulation of human S1 was slower than touch (median 254-528
        vs 198-313 ms; Caldwell et al. 2019, Sci Rep 9:3292). Used only when touch is given.
    """

    loop_s: float = 0.02
    visual_delay_s: float = 0.12
    reaction_time_s: float = 0.24
    max_speed: float = 1.0
    slowdown_distance: float = 0.15
    motor_noise_cv: float = 0.1
    motor_noise_floor_sd: float = 0.0
    smoothing_s: float = 0.06
    dwell_s: float = 0.1
    click_zone_fraction: float = 0.7
    max_click_s: float = 0.6
    click_refractory_s: float = 0.2
    forward_model_gain: float = 1.0
    icms_delay_s: float = 0.10

    def __post_init__(self) -> None:
        for name in ("loop_s", "max_speed", "slowdown_distance", "max_click_s", "click_zone_fraction",
                     "forward_model_gain"):
            check_positive(getattr(self, name), name)
        for name in ("visual_delay_s", "reaction_time_s", "motor_noise_cv", "motor_noise_floor_sd", "smoothing_s",
                     "dwell_s", "click_refractory_s", "icms_delay_s"):
            check_nonnegative(getattr(self, name), name)
        if self.reaction_time_s < self.visual_delay_s:
            raise InvalidInputError(
                f"reaction_time_s must be >= visual_delay_s (a target must be seen before it is acted on), "
                f"got {self.reaction_time_s} < {self.visual_delay_s}"
            )

    @classmethod
    def sample(cls, seed: SeedLike = None, **fixed: Any) -> ControlParameters:
        """Draw a participant's parameters uniformly from the cited human ranges.

        Each parameter in :data:`CONTROL_PARAMETER_RANGES` is drawn
        independently and uniformly within its range; the others keep their
        defaults.

        Parameters
        ----------
        seed : int or numpy Generator, optional
        **fixed
            Parameters to set instead of drawing (e.g. ``loop_s=0.01``).

        Returns
        -------
        ControlParameters
        """
        unknown = set(fixed) - {f.name for f in fields(cls)}
        if unknown:
            raise InvalidInputError(f"unknown control parameter(s) {sorted(unknown)}; "
                                    f"expected names of ControlParameters fields")
        rng = check_rng(seed)
        drawn = {name: float(rng.uniform(low, high)) for name, (low, high) in CONTROL_PARAMETER_RANGES.items()}
        return cls(**{**drawn, **fixed})


#: Calibrated visibility scale: ridge R² 0.775 on 196 channels at 50 ms vs 0.772 on 196 real M1 units (module docstring).
CALIBRATED_VISIBILITY_SCALE = 1.75


@dataclass(frozen=True)
class NeuralParameters:
    """How the participant's intention shows up on the implant's channels.

    Attributes
    ----------
    background_median_hz : float, default 12.0
        Median untuned multi-unit rate per channel (log-normal across
        channels, log-sd 0.5). Threshold crossings at -4.5 RMS on
        intracortical arrays run at ~10-50 Hz, much of it untuned hash
        (Christie et al. 2015, J Neural Eng 12:016009).
    visibility_scale : float
        Mean fraction of a tuned unit-mix a channel picks up; visibilities are
        exponential across channels (many channels see little, a few see a
        lot), clipped to [0, 1]. The one calibrated knob (see module docstring).
    n_nuisance : int, default 3
        Latent dimensions of task-unrelated shared gain fluctuations.
    nuisance_sd : float, default 0.15
        Log-rate standard deviation each channel gets from them (Goris et al.
        2014, Nat Neurosci 17:858: shared gain fluctuations explain much of
        cortical count variability).
    nuisance_tau_s : float, default 0.5
        Time constant of the nuisance processes.
    """

    background_median_hz: float = 12.0
    visibility_scale: float = CALIBRATED_VISIBILITY_SCALE
    n_nuisance: int = 3
    nuisance_sd: float = 0.15
    nuisance_tau_s: float = 0.5

    def __post_init__(self) -> None:
        check_nonnegative(self.background_median_hz, "background_median_hz")
        check_nonnegative(self.visibility_scale, "visibility_scale")
        check_int(self.n_nuisance, "n_nuisance", minimum=0)
        check_nonnegative(self.nuisance_sd, "nuisance_sd")
        check_positive(self.nuisance_tau_s, "nuisance_tau_s")


#: First entropy word of :meth:`SimulatedParticipant.from_population` seeds, so that family never
#: shares a seed with ``SimulatedParticipant(seed=...)`` (an arbitrary constant).
POPULATION_SEED_FAMILY = 0x9091_1A71


@dataclass(frozen=True)
class Intention:
    """What the participant wants at one control step.

    Attributes
    ----------
    velocity : ndarray, shape (2,)
        Intended cursor velocity in normalised units.
    click : float
        1.0 while attempting a click, else 0.0.
    estimated_cursor_xy : ndarray, shape (2,)
        Where the participant believes the cursor is.
    """

    velocity: np.ndarray
    click: float
    estimated_cursor_xy: np.ndarray


def nuisance_path(state: np.ndarray, n_steps: int, step_s: float, tau_s: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Advance unit-variance Ornstein-Uhlenbeck processes ``n_steps`` of ``step_s`` from ``state``.

    The shared gain fluctuation of :class:`NeuralParameters` (time constant ``tau_s``), written once for
    the counts path and the implant path, so both draw the same path from the same generator.

    Returns
    -------
    path : ndarray, shape (n_steps, n_processes)
    state : ndarray, shape (n_processes,)
        The state after the last step.
    """
    decay = np.exp(-step_s / tau_s)
    innovation = rng.normal(0.0, np.sqrt(1.0 - decay * decay), (n_steps, state.shape[0]))
    path = np.empty((n_steps, state.shape[0]))
    for index in range(n_steps):
        state = decay * state + innovation[index]
        path[index] = state
    return path, state


class SimulatedParticipant:
    """A seeded simulated BCI user: feedback controller plus 1024 motor-cortex channels.

    Parameters
    ----------
    n_channels : int, default 1024
        Channels of the implant (the N1 has 64 threads x 16 electrodes).
    seed : int or numpy Generator, optional
        Seeds the neurons (tuning, background, visibility, nuisance loadings)
        and, through :meth:`start`, the trial-to-trial noise.
    control : ControlParameters, optional
    neural : NeuralParameters, optional
    tuning : TuningModel, optional
        Tuning of the channels' unit-mixes (one per channel); drawn with
        :meth:`TuningModel.random` when omitted.

    Notes
    -----
    Closed-loop use: :meth:`start` once per block, then every ``loop_s`` call
    :meth:`step` with the true cursor and the lit target to get the
    :class:`Intention`, and :meth:`emit_counts` with it to get the bin of
    counts the decoder sees.
    """

    def __init__(
        self,
        *,
        n_channels: int = 1024,
        seed: SeedLike = 0,
        control: ControlParameters | None = None,
        neural: NeuralParameters | None = None,
        tuning: TuningModel | None = None,
        _channels: dict | None = None,
    ) -> None:
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.control = ControlParameters() if control is None else control
        self.neural = NeuralParameters() if neural is None else neural
        rng_tuning, rng_channels, self._rng_noise = spawn_rngs(check_rng(seed), 3)
        self._rng_motor = _motor_rng(self._rng_noise)
        if tuning is None:
            tuning = TuningModel.random(self.n_channels, seed=rng_tuning)
        if tuning.n_units != self.n_channels:
            raise InvalidInputError(
                f"tuning must have one unit-mix per channel ({self.n_channels}), got {tuning.n_units}"
            )
        self.tuning = tuning
        if _channels is None:
            background = self.neural.background_median_hz * rng_channels.lognormal(0.0, 0.5, self.n_channels)
            visibility = np.minimum(rng_channels.exponential(1.0, self.n_channels), 1.0 / max(
                self.neural.visibility_scale, 1e-12))
            loadings = rng_channels.normal(0.0, 1.0, (self.n_channels, self.neural.n_nuisance))
            if self.neural.n_nuisance:
                loadings *= self.neural.nuisance_sd / np.sqrt(self.neural.n_nuisance)
            _channels = {"background_hz": background, "visibility_unit": visibility, "loadings": loadings}
        self.background_hz = _channels["background_hz"]
        self._visibility_unit = _channels["visibility_unit"]
        self.nuisance_loadings = _channels["loadings"]
        self._nuisance = np.zeros(self.neural.n_nuisance)
        self.start((0.5, 0.5), cursor_gain_per_s=1.0)

    @classmethod
    def from_population(cls, seed: int, *, n_channels: int = 1024,
                        neural: NeuralParameters | None = None) -> SimulatedParticipant:
        """A participant of the second family: control drawn from the cited ranges, other neurons.

        For testing decoders on a participant they were not tuned on: the
        control parameters are drawn with :meth:`ControlParameters.sample`
        and the neurons are seeded from ``(POPULATION_SEED_FAMILY, seed)``, a
        seed family disjoint from ``SimulatedParticipant(seed=seed)``'s.

        Parameters
        ----------
        seed : int
            Index of the participant in the family, >= 0.
        n_channels : int, default 1024
        neural : NeuralParameters, optional

        Returns
        -------
        SimulatedParticipant
        """
        seed = check_int(seed, "seed", minimum=0)
        control_rng, neuron_rng = spawn_rngs(np.random.SeedSequence([POPULATION_SEED_FAMILY, seed]), 2)
        return cls(n_channels=n_channels, seed=neuron_rng, control=ControlParameters.sample(control_rng),
                   neural=neural)

    # -- neurons --------------------------------------------------------------------------------
    @property
    def visibility(self) -> np.ndarray:
        """Fraction of its unit-mix each channel picks up, shape (n_channels,), in [0, 1]."""
        return np.minimum(self.neural.visibility_scale * self._visibility_unit, 1.0)

    def rates_hz(self, velocity: Any, click: Any = None) -> np.ndarray:
        """Noise-free channel rates for intended velocities (no nuisance).

        Parameters
        ----------
        velocity : ndarray, shape (n_times, 2)
        click : ndarray, shape (n_times,), optional

        Returns
        -------
        ndarray, shape (n_times, n_channels)
        """
        tuned = self.tuning.rates_hz(velocity, click)
        return self.background_hz + self.visibility * tuned

    def sample_counts(self, velocity: Any, click: Any = None, *, bin_s: float | None = None,
                      seed: SeedLike = None) -> np.ndarray:
        """Poisson counts, shape (n_times, n_channels), for a sequence of intentions.

        Each row is one bin of ``bin_s`` (default ``control.loop_s``); the
        nuisance processes evolve across the rows and continue from the
        participant's current nuisance state.
        """
        bin_s = self.control.loop_s if bin_s is None else check_positive(bin_s, "bin_s")
        rng = self._rng_noise if seed is None else check_rng(seed)
        rates = self.rates_hz(velocity, click)
        if self.neural.n_nuisance:
            z = self._nuisance_path(rates.shape[0], bin_s, rng)
            rates = rates * np.exp(z @ self.nuisance_loadings.T)
        return rng.poisson(rates * bin_s).astype(np.float64)

    def _nuisance_path(self, n_times: int, bin_s: float, rng: np.random.Generator) -> np.ndarray:
        path, self._nuisance = nuisance_path(self._nuisance, n_times, bin_s, self.neural.nuisance_tau_s, rng)
        return path

    def emit_counts(self, intention: Intention) -> np.ndarray:
        """One bin (``control.loop_s``) of counts for one intention, shape (n_channels,)."""
        return self.sample_counts(intention.velocity[np.newaxis], np.array([intention.click]))[0]

    def drifted(self, *, days: float, seed: SeedLike = None) -> SimulatedParticipant:
        """The same participant ``days`` later: tuning, background and visibility have drifted.

        Tuning drifts through :meth:`TuningModel.drifted` (Perge et al. 2013);
        background rates take a log-normal random walk (log-sd 0.15 per
        sqrt(day)) and visibilities another (log-sd 0.2 per sqrt(day)), as
        electrodes gain and lose units (Chestek et al. 2011, J Neural Eng 8:045005).
        """
        days = check_nonnegative(days, "days")
        rng_tuning, rng_channels, rng_noise = spawn_rngs(check_rng(seed), 3)
        scale = np.sqrt(days)
        channels = {
            "background_hz": self.background_hz * np.exp(rng_channels.normal(0, 0.15 * scale, self.n_channels)),
            "visibility_unit": self._visibility_unit * np.exp(rng_channels.normal(0, 0.2 * scale, self.n_channels)),
            "loadings": self.nuisance_loadings.copy(),
        }
        return SimulatedParticipant(
            n_channels=self.n_channels, seed=rng_noise, control=self.control, neural=self.neural,
            tuning=self.tuning.drifted(days=days, seed=rng_tuning), _channels=channels,
        )

    # -- control ----------------------------------------------------------------------------------
    def start(self, cursor_xy: Any, *, cursor_gain_per_s: float, seed: SeedLike = None) -> None:
        """Begin a block: clear the delay lines and the click state.

        Parameters
        ----------
        cursor_xy : array-like, shape (2,)
            Cursor position at the start.
        cursor_gain_per_s : float
            Workspace units per second the cursor moves per unit of decoded
            velocity; the forward model's belief is ``forward_model_gain`` times it.
        seed : optional
            Reseeds the motor and spike noise (default: continue the streams).
            The motor noise has its own stream derived from it, so the
            movements do not depend on the number of channels.
        """
        cursor = check_array(cursor_xy, "cursor_xy", ndim=1, dtype=np.float64, shape=(2,))
        self.cursor_gain_per_s = check_positive(cursor_gain_per_s, "cursor_gain_per_s")
        if seed is not None:
            self._rng_noise = check_rng(seed)
            self._rng_motor = _motor_rng(self._rng_noise)
        control = self.control
        self._delay_steps = round(control.visual_delay_s / control.loop_s)
        self._reaction_steps = round(control.reaction_time_s / control.loop_s)
        self._seen = deque([cursor.copy()] * (self._delay_steps + 1), maxlen=self._delay_steps + 1)
        self._targets: deque = deque([None] * (self._reaction_steps + 1), maxlen=self._reaction_steps + 1)
        self._icms_steps = round(control.icms_delay_s / control.loop_s)
        self._touches: deque = deque([False] * (self._icms_steps + 1), maxlen=self._icms_steps + 1)
        self._sent: deque = deque([np.zeros(2)] * max(self._delay_steps, 1), maxlen=max(self._delay_steps, 1))
        self._velocity = np.zeros(2)
        self._planned = np.zeros(2)
        self._dwell_s = 0.0
        self._click_left_s = 0.0
        self._refractory_left_s = 0.0
        self._target_key: tuple | None = None

    def step(self, cursor_xy: Any, target: Any = None, *, touch: bool | None = None) -> Intention:
        """Advance one control step.

        Parameters
        ----------
        cursor_xy : array-like, shape (2,)
            True cursor position now (the participant sees it ``visual_delay_s`` later).
        target : object with ``center_xy`` and ``width`` (e.g. :class:`neurolace.tasks.Target`), or None
            The lit target now; ``shape`` ("square" or "circle") is used if present.
        touch : bool, optional
            Sensory feedback delivered now that says "the cursor is on the target" (an ICMS
            contact train); felt ``icms_delay_s`` later. None or False: nothing felt (vision only).

        Returns
        -------
        Intention
        """
        control = self.control
        cursor = np.asarray(cursor_xy, dtype=np.float64)
        self._seen.append(cursor.copy())
        self._touches.append(bool(touch))
        self._targets.append(None if target is None else (
            tuple(float(v) for v in target.center_xy), float(target.width), getattr(target, "shape", "square")))
        seen = self._seen[0]
        believed_gain = control.forward_model_gain * self.cursor_gain_per_s
        estimate = seen + believed_gain * control.loop_s * np.sum(self._sent, axis=0) if self._delay_steps else seen
        estimate = np.clip(estimate, 0.0, 1.0)
        perceived = self._targets[0]

        desired = np.zeros(2)
        click = 0.0
        if perceived is not None:
            if perceived != self._target_key:
                self._target_key = perceived
                self._dwell_s = 0.0
                self._click_left_s = 0.0
                self._refractory_left_s = 0.0
            center = np.asarray(perceived[0])
            error = center - estimate
            distance = float(np.hypot(*error))
            if self._click_left_s > 1e-12:
                self._click_left_s -= control.loop_s
                click = 1.0
                if self._click_left_s <= 1e-12:
                    self._refractory_left_s = control.click_refractory_s
            else:
                self._refractory_left_s = max(0.0, self._refractory_left_s - control.loop_s)
                zone = perceived[1] * control.click_zone_fraction
                seen_inside = _inside(center - seen, perceived[1], perceived[2]) or self._touches[0]
                if _inside(error, zone, perceived[2]) and seen_inside:
                    self._dwell_s += control.loop_s
                else:
                    self._dwell_s = 0.0
                if self._dwell_s >= control.dwell_s - 1e-12 and self._refractory_left_s <= 1e-12:
                    self._click_left_s = control.max_click_s - control.loop_s
                    self._dwell_s = 0.0
                    click = 1.0
            if distance > 0:  # keep steering at the centre, also while clicking
                speed = control.max_speed * min(1.0, distance / control.slowdown_distance)
                desired = speed * error / distance
        alpha = 1.0 if control.smoothing_s == 0 else 1.0 - np.exp(-control.loop_s / control.smoothing_s)
        noise_sd = control.motor_noise_cv * float(np.hypot(*desired)) + control.motor_noise_floor_sd
        noise = 0.0
        if noise_sd > 0:  # white noise scaled so that its SD after the low-pass is noise_sd
            noise = self._rng_motor.normal(0.0, noise_sd * np.sqrt((2.0 - alpha) / alpha), 2)
        self._planned = self._planned + alpha * (desired - self._planned)
        self._velocity = self._velocity + alpha * (desired + noise - self._velocity)
        self._sent.append(self._planned.copy())  # the efference copy: the plan, without the noise
        return Intention(self._velocity.copy(), click, estimate)

    def __repr__(self) -> str:
        return (
            f"SimulatedParticipant(n_channels={self.n_channels}, visibility_scale={self.neural.visibility_scale:g}, "
            f"visual_delay_s={self.control.visual_delay_s:g}, loop_s={self.control.loop_s:g})"
        )


def _motor_rng(rng: np.random.Generator) -> np.random.Generator:
    """The motor-noise stream, derived from (and independent of) the spike-noise stream ``rng``."""
    return spawn_rngs(rng, 1)[0]


def _inside(error: np.ndarray, size: float, shape: str) -> bool:
    half = 0.5 * size
    if shape == "circle":
        return float(error[0] ** 2 + error[1] ** 2) <= half * half
    return abs(float(error[0])) <= half and abs(float(error[1])) <= half
