"""The implant's on-board signal chain, wired from the streaming stages.

::

    ADC codes ─▶ band-pass 300-6000 Hz ─▶ common-average reference ─┬─▶ noise (MAD) ─▶ threshold crossings ─▶ SpikeEvents
       │                                                            │                        │
       └─▶ band-pass 300-1000 Hz ─▶ reference ─▶ |x| per bin ──────┴────── counts per bin ◀─┘ ─▶ BinnedFeatures

:class:`SignalChain` takes blocks of int16 ADC codes as they arrive and returns,
per block, the spike events and the feature bins that block finalized.
Processing a recording in chunks of any size -- one sample, a prime number,
random sizes, or the whole recording -- gives identical events (bit-exact:
same samples, channels and amplitudes) and the same feature rows (within
float rounding of the per-bin sums). The tests check this with random
chunkings.

What is delayed and why:

- detection waits for the first noise window (``noise_window_s``, default 1 s):
  its samples are held, then detected with the estimate they produced;
- an event is returned once its amplitude window (the dead time after the
  crossing) is complete, so up to ``dead_time_ms`` after it;
- a feature row is returned once its bin has ended and every event in it is final.

Stimulation blanking (optional, ``blanking=``
:class:`~neurolace.dsp.blanking.Blanker`): the ADC codes are held across each
scheduled pulse before both band-passes, and detection waits while the spike
band still carries the hold's edges; streaming still equals whole.

Memory is bounded by the chunk size plus one noise window, whatever the
recording length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurolace.core.checks import check_in, check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.core.events import SpikeEvents
from neurolace.core.features import BinnedFeatures
from neurolace.core.recording import Recording
from neurolace.dsp.blanking import Blanker
from neurolace.dsp.defaults import (
    DEFAULT_BIN_MS,
    DEFAULT_CHUNK_MS,
    DEFAULT_DEAD_TIME_MS,
    DEFAULT_NOISE_WINDOW_S,
    DEFAULT_THRESHOLD,
)
from neurolace.dsp.detection import ThresholdDetector
from neurolace.dsp.features import SBP_BAND_HZ, CrossingCounter, SpikeBandPower
from neurolace.dsp.filters import (
    DEFAULT_LOWPASS_TAPS,
    BandpassFilter,
    LinearPhaseBandpass,
    MovingAverageBandpass,
    check_chunk,
)
from neurolace.dsp.noise import NoiseEstimator
from neurolace.dsp.reference import CommonAverageReference

__all__ = [
    "DEFAULT_CHUNK_MS",
    "ChainOutput",
    "ChainResult",
    "SignalChain",
    "detect_spikes",
    "run_signal_chain",
]

@dataclass(frozen=True)
class ChainOutput:
    """What one call of :meth:`SignalChain.process` or :meth:`SignalChain.finish` finalized.

    Attributes
    ----------
    events : SpikeEvents
        Threshold crossings with ``sample_index`` on the global clock and ``amplitude_uv``.
    features : BinnedFeatures, shape (n_new_bins, 2 * n_channels)
        Completed bins: columns ``0 .. n_channels - 1`` are crossing counts ("count/chNNNN"),
        the next ``n_channels`` spike-band power ("sbp/chNNNN"); ``start_sample`` is where the
        first new bin starts.
    """

    events: SpikeEvents
    features: BinnedFeatures


@dataclass(frozen=True)
class ChainResult:
    """Result of running the chain over a whole recording.

    Attributes
    ----------
    events : SpikeEvents
    features : BinnedFeatures, shape (n_bins, 2 * n_channels)
        Counts then spike-band power, as in :class:`ChainOutput`.
    noise_uv : ndarray of float64, shape (n_channels,)
        Final noise estimate of each channel in µV.
    thresholds_uv : ndarray of float32, shape (n_channels,)
        Final detection threshold of each channel in µV.
    n_samples : int
        Samples processed.
    """

    events: SpikeEvents
    features: BinnedFeatures
    noise_uv: np.ndarray
    thresholds_uv: np.ndarray
    n_samples: int

    @property
    def counts(self) -> np.ndarray:
        """Threshold-crossing counts, shape (n_bins, n_channels)."""
        return self.features.data[:, : self.events.n_channels]

    @property
    def spike_band_power(self) -> np.ndarray:
        """Spike-band power, shape (n_bins, n_channels)."""
        return self.features.data[:, self.events.n_channels :]


class SignalChain:
    """Band-pass, reference, noise, detection and binned features, block by block.

    Parameters
    ----------
    fs_hz : float
        Sampling rate in Hz.
    n_channels : int
        Number of channels.
    gain_uv : float, default 1.0
        µV per ADC code; inputs are codes, outputs are in µV.
    low_hz, high_hz : float
        Spike band, default 300-6000 Hz (``high_hz=None``: high-pass only).
    filter_design : {"moving_average", "butterworth", "fir"}, default "moving_average"
        ``"moving_average"``: linear-phase band-pass from running sums
        (:class:`~neurolace.dsp.MovingAverageBandpass`; half gain at ``low_hz`` and at
        ``high_hz``), which keeps spike shapes for a fixed delay of 33 samples (1.69 ms) at
        19,531 Hz and costs about as much as the IIR. ``"butterworth"``: causal IIR of order
        ``filter_order`` (:class:`~neurolace.dsp.BandpassFilter`), no added latency, but its
        phase response shrinks narrow spike troughs (F1 at SNR >= 5 falls from 0.94 to 0.65 in
        ``benchmarks/bench_detection.py``). ``"fir"``: windowed-sinc FIR of ``fir_taps`` taps
        (:class:`~neurolace.dsp.LinearPhaseBandpass`), the same shape-keeping at about 5 times
        the cost and 2.56 ms of delay. With a delaying design, event sample indices are shifted
        back by the delay so they stay on the recording's clock.
    filter_order : int, default 4
        Butterworth order of each edge (``filter_design="butterworth"`` only).
    fir_taps : int, default 101
        Length of the FIR (``filter_design="fir"`` only); 2.56 ms of delay at 19,531 Hz.
    lowpass_taps : int, default 11
        Length of the low-pass after the running sums (``filter_design="moving_average"`` only).
    reference : {"mean", "median", None}, default "mean"
        Common-average reference after filtering; None to skip.
    reference_groups : ElectrodeGeometry or array-like of int, optional
        Reference per group (per thread for a geometry); default all channels together.
    noise_window_s : float, default 1.0
        Window of the noise estimate (:class:`~neurolace.dsp.NoiseEstimator`).
    noise_update_weight : float, default 0.0
        Weight of each later window in the running noise estimate; 0 keeps the first.
    threshold : float, default -4.5
        Detection threshold as a multiple of noise RMS.
    dead_time_ms : float, default 1.0
        Per-channel dead time after a detection.
    bin_ms : float, default 20.0
        Feature bin width (rounded to whole samples unless ``fractional_bins``).
    fractional_bins : bool, default False
        Keep the exact bin width and carry its fraction of a sample from bin to bin, so the
        bins stay locked to a ``bin_ms`` control clock (at 19,531.25 Hz a 20 ms bin is 390.625
        samples: 391 and 390 alternate, 5 and 3 in every 8 bins; :mod:`neurolace.dsp.features`).
    sbp_band_hz : (float, float) or None, default (300, 1000)
        Band of the spike-band power (Nason et al. 2020), filtered with its own Butterworth of
        order ``sbp_order`` and referenced like the spike band; None computes SBP on the
        spike-band signal instead (cheaper: no second filter).
    sbp_order : int, default 2
    sbp_statistic : {"mean_abs", "mean_square"}, default "mean_abs"
    blanking : Blanker, optional
        Stimulation blanking (:mod:`neurolace.dsp.blanking`): codes inside its windows are held
        before filtering and no crossing is detected while the filter rings; schedule the pulse
        onsets on it (or with :meth:`schedule_blanking`) before their chunk. None: no blanking.
    """

    def __init__(
        self,
        fs_hz: float,
        n_channels: int,
        *,
        gain_uv: float = 1.0,
        low_hz: float = 300.0,
        high_hz: float | None = 6000.0,
        filter_order: int = 4,
        filter_design: str = "moving_average",
        fir_taps: int = 101,
        lowpass_taps: int = DEFAULT_LOWPASS_TAPS,
        reference: str | None = "mean",
        reference_groups: Any = None,
        noise_window_s: float = DEFAULT_NOISE_WINDOW_S,
        noise_update_weight: float = 0.0,
        threshold: float = DEFAULT_THRESHOLD,
        dead_time_ms: float = DEFAULT_DEAD_TIME_MS,
        bin_ms: float = DEFAULT_BIN_MS,
        sbp_band_hz: tuple[float, float] | None = SBP_BAND_HZ,
        sbp_order: int = 2,
        sbp_statistic: str = "mean_abs",
        fractional_bins: bool = False,
        blanking: Blanker | None = None,
    ) -> None:
        self.fs_hz = check_positive(fs_hz, "fs_hz")
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.gain_uv = check_positive(gain_uv, "gain_uv")
        check_in(reference, "reference", ("mean", "median", None))
        self.filter_design = check_in(
            filter_design, "filter_design", ("moving_average", "butterworth", "fir")
        )
        if filter_design == "moving_average":
            self.bandpass = MovingAverageBandpass(
                self.fs_hz,
                self.n_channels,
                low_hz=low_hz,
                high_hz=high_hz,
                lowpass_taps=lowpass_taps,
                scale=self.gain_uv,
            )
        elif filter_design == "fir":
            self.bandpass = LinearPhaseBandpass(
                self.fs_hz,
                self.n_channels,
                low_hz=low_hz,
                high_hz=high_hz,
                n_taps=fir_taps,
                scale=self.gain_uv,
            )
        else:
            self.bandpass = BandpassFilter(
                self.fs_hz,
                self.n_channels,
                low_hz=low_hz,
                high_hz=high_hz,
                order=filter_order,
                scale=self.gain_uv,
            )
        self.delay_samples = self.bandpass.delay_samples
        self.reference = (
            None
            if reference is None
            else CommonAverageReference(self.n_channels, operator=reference, groups=reference_groups)
        )
        if sbp_band_hz is None:
            self.sbp_bandpass = None
        else:
            if len(sbp_band_hz) != 2:
                raise InvalidInputError(f"sbp_band_hz must be (low_hz, high_hz) or None, got {sbp_band_hz!r}")
            self.sbp_bandpass = BandpassFilter(
                self.fs_hz,
                self.n_channels,
                low_hz=sbp_band_hz[0],
                high_hz=sbp_band_hz[1],
                order=sbp_order,
                scale=self.gain_uv,
            )
        self.noise = NoiseEstimator(
            self.fs_hz, self.n_channels, window_s=noise_window_s, update_weight=noise_update_weight
        )
        self.detector = ThresholdDetector(
            self.fs_hz, self.n_channels, threshold=threshold, dead_time_ms=dead_time_ms
        )
        self.sbp = SpikeBandPower(
            self.fs_hz, self.n_channels, bin_ms=bin_ms, statistic=sbp_statistic, fractional_bins=fractional_bins
        )
        if blanking is not None and (
            not isinstance(blanking, Blanker) or blanking.n_channels != self.n_channels
            or blanking.fs_hz != self.fs_hz
        ):
            raise InvalidInputError(
                f"blanking must be a Blanker for {self.n_channels} channels at {self.fs_hz:g} Hz or None, "
                f"got {blanking!r}"
            )
        self.blanking = blanking
        self.counter = CrossingCounter(self.fs_hz, self.n_channels, bin_ms=bin_ms, fractional_bins=fractional_bins)
        self.feature_names = [f"count/ch{index:04d}" for index in range(self.n_channels)] + [
            f"sbp/ch{index:04d}" for index in range(self.n_channels)
        ]
        self.reset()

    @classmethod
    def for_recording(
        cls, recording: Recording, *, reference_by_thread: bool = False, **options: Any
    ) -> SignalChain:
        """A chain matching ``recording``'s rate, channel count and gain (``options`` as ``__init__``)."""
        if not isinstance(recording, Recording):
            raise InvalidInputError(f"recording must be a Recording, got {type(recording).__name__}")
        if reference_by_thread:
            options["reference_groups"] = recording.geometry
        return cls(recording.fs_hz, recording.n_channels, gain_uv=recording.gain_uv, **options)

    @property
    def bin_width_s(self) -> float:
        return self.sbp.bin_width_s

    @property
    def noise_uv(self) -> np.ndarray | None:
        """Current noise estimate in µV, shape (n_channels,), None before the first window."""
        return self.noise.noise_uv

    @property
    def samples_seen(self) -> int:
        return self._samples_seen

    def reset(self) -> None:
        """Return every stage to its initial state."""
        for stage in (
            self.bandpass,
            self.reference,
            self.sbp_bandpass,
            self.noise,
            self.detector,
            self.sbp,
            self.counter,
            self.blanking,
        ):
            if stage is not None:
                stage.reset()
        self._samples_seen = 0
        self._sbp_waiting = np.zeros((0, self.n_channels), dtype=np.float64)
        self._counts_waiting = np.zeros((0, self.n_channels), dtype=np.int64)
        self._no_data = np.zeros((0, 2 * self.n_channels), dtype=np.float64)
        self._no_data.flags.writeable = False
        self._bins_emitted = 0
        self._thresholds: np.ndarray | None = None
        self._thresholds_for: np.ndarray | None = None
        self._last_codes: np.ndarray | None = None

    def process(self, chunk: Any) -> ChainOutput:
        """Run the next block of ADC codes through the chain.

        Parameters
        ----------
        chunk : array-like, shape (n_samples, n_channels)
            ADC codes (int16, or any real array; floats must be finite), continuing the last block.

        Returns
        -------
        ChainOutput
            Events and feature bins finalized by this block.
        """
        codes = check_chunk(chunk, self.n_channels)
        start = self._samples_seen
        self._samples_seen += codes.shape[0]
        if self.blanking is not None:
            codes = self.blanking._hold(codes)
        if codes.shape[0]:
            self._last_codes = codes[-1:].copy()
        filtered = self.bandpass._process(codes)
        if self.reference is not None:
            self.reference._process(filtered)
        if self.blanking is not None:
            self._suppress(filtered, start)
        if self.sbp_bandpass is None:
            sbp_rows = self.sbp._process(filtered)
        else:
            band = self.sbp_bandpass._process(codes)
            if self.reference is not None:
                self.reference._process(band)
            sbp_rows = self.sbp._process(band)
        events = self._detect(filtered)
        return self._output(events, sbp_rows)

    def finish(self) -> ChainOutput:
        """Flush at the end of the recording: a short first noise window, pending events, last bins.

        A partial last bin is dropped. Call :meth:`reset` before reusing the chain.
        """
        parts = [self.detector._events(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))]
        if self.delay_samples and self._last_codes is not None:
            # push the last input value through the delay line so the final samples are seen
            padding = np.repeat(self._last_codes, self.delay_samples, axis=0)
            filtered = self.bandpass._process(padding)
            if self.reference is not None:
                self.reference._process(filtered)
            if self.blanking is not None:
                self._suppress(filtered, self._samples_seen)
            parts.append(self._detect(filtered))
        if not self.noise.ready:
            self.noise.finish()
            if self.noise.ready:
                parts.append(
                    self._on_recording_clock(
                        self.detector._process(self.noise.completed_block, self._current_thresholds())
                    )
                )
        parts.append(self._on_recording_clock(self.detector.finish()))
        return self._output(SpikeEvents.concatenate(parts), np.zeros((0, self.n_channels)), final=True)

    def schedule_blanking(self, onset_samples: Any) -> None:
        """Blank stimulation pulses at ``onset_samples`` (sample indices; see :class:`Blanker.schedule`)."""
        if self.blanking is None:
            raise InvalidInputError("this SignalChain has no blanking; build it with blanking=Blanker(...)")
        self.blanking.schedule(onset_samples)

    def _suppress(self, filtered: np.ndarray, start: int) -> None:
        """Zero the spike band where detection waits for the blanking (outputs from ``start``), in place."""
        mask = self.blanking.detection_mask(start, filtered.shape[0], self.delay_samples)
        if mask.any():
            filtered[mask] = 0.0
        self.blanking.forget_before(start + filtered.shape[0], self.delay_samples)

    def _current_thresholds(self) -> np.ndarray:
        noise = self.noise.noise_uv
        if self._thresholds_for is not noise:
            self._thresholds = self.detector.thresholds_uv(noise)
            self._thresholds_for = noise
        return self._thresholds

    def _detect(self, filtered: np.ndarray) -> SpikeEvents:
        parts = []
        position = 0
        n_samples = filtered.shape[0]
        while position < n_samples:
            take = int(min(n_samples - position, self.noise.samples_until_update))
            piece = filtered[position : position + take]
            position += take
            if not self.noise.ready:
                self.noise._process(piece)
                if self.noise.ready:
                    parts.append(
                        self.detector._process(self.noise.completed_block, self._current_thresholds())
                    )
                continue
            parts.append(self.detector._process(piece, self._current_thresholds()))
            if self.noise.buffering:
                self.noise._process(piece)
        if not parts:
            events = self.detector._events(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))
        else:
            events = parts[0] if len(parts) == 1 else SpikeEvents.concatenate(parts)
        return self._on_recording_clock(events)

    def _on_recording_clock(self, events: SpikeEvents) -> SpikeEvents:
        """Undo the filter's delay; drop events that would fall before sample 0 or after the end."""
        if not self.delay_samples:
            return events
        shifted = events.sample_index - self.delay_samples
        keep = (shifted >= 0) & (shifted < self._samples_seen)
        return SpikeEvents._from_sorted(  # a constant shift and a mask keep the (sample, channel) order
            shifted[keep],
            events.channel_index[keep],
            fs_hz=self.fs_hz,
            n_channels=self.n_channels,
            amplitude_uv=events.amplitude_uv[keep],
        )

    def _start_sample(self) -> int:
        """Sample where the next feature bin to be returned starts."""
        return self.sbp.clock.bin_start(self._bins_emitted)

    def _output(self, events: SpikeEvents, sbp_rows: np.ndarray, *, final: bool = False) -> ChainOutput:
        through = (
            self._samples_seen if final else max(0, self.detector.finalized_through - self.delay_samples)
        )
        count_rows = self.counter._process(events, through)
        if sbp_rows.shape[0]:
            self._sbp_waiting = np.concatenate([self._sbp_waiting, sbp_rows])
        if count_rows.shape[0]:
            self._counts_waiting = np.concatenate([self._counts_waiting, count_rows])
        n_ready = min(self._sbp_waiting.shape[0], self._counts_waiting.shape[0])
        if n_ready == 0:
            data = self._no_data  # most 1 ms blocks end no bin
        else:
            data = np.concatenate(
                [self._counts_waiting[:n_ready].astype(np.float64), self._sbp_waiting[:n_ready]], axis=1
            )
            self._sbp_waiting = self._sbp_waiting[n_ready:]
            self._counts_waiting = self._counts_waiting[n_ready:]
        features = BinnedFeatures._from_checked(
            data,
            bin_width_s=self.bin_width_s,
            feature_names=self.feature_names,
            start_sample=self._start_sample(),
            fs_hz=self.fs_hz,
            kind="threshold_crossings+spike_band_power",
        )
        self._bins_emitted += n_ready
        return ChainOutput(events=events, features=features)

    def __repr__(self) -> str:
        return (
            f"SignalChain(fs_hz={self.fs_hz:g}, n_channels={self.n_channels}, {self.bandpass!r}, "
            f"reference={None if self.reference is None else self.reference.operator!r}, "
            f"threshold={self.detector.threshold:g}, dead_time_ms={self.detector.dead_time_ms:g}, "
            f"bin_samples={self.sbp.bin_samples})"
        )


def run_signal_chain(
    recording: Recording,
    *,
    chunk_ms: float = DEFAULT_CHUNK_MS,
    reference_by_thread: bool = False,
    progress: Any = None,
    **options: Any,
) -> ChainResult:
    """Run the on-implant chain over a whole recording, block by block.

    Parameters
    ----------
    recording : Recording
    chunk_ms : float, default 20.0
        Block length fed to the chain (results do not depend on it).
    reference_by_thread : bool, default False
        Reference each thread of ``recording.geometry`` separately.
    progress : callable, optional
        Called as ``progress(n_samples_done)`` after each block (for progress bars).
    **options
        Any :class:`SignalChain` parameter.

    Returns
    -------
    ChainResult
    """
    chain = SignalChain.for_recording(recording, reference_by_thread=reference_by_thread, **options)
    chunk_samples = max(1, round(check_positive(chunk_ms, "chunk_ms") * recording.fs_hz / 1000.0))
    event_parts = []
    feature_parts = []
    done = 0
    for chunk in recording.iter_chunks(chunk_samples):
        output = chain.process(chunk)
        event_parts.append(output.events)
        feature_parts.append(output.features.data)
        done += chunk.shape[0]
        if progress is not None:
            progress(done)
    output = chain.finish()
    event_parts.append(output.events)
    feature_parts.append(output.features.data)
    events = SpikeEvents.concatenate(event_parts)
    features = BinnedFeatures(
        np.concatenate(feature_parts),
        bin_width_s=chain.bin_width_s,
        feature_names=chain.feature_names,
        fs_hz=recording.fs_hz,
        kind="threshold_crossings+spike_band_power",
    )
    noise = chain.noise_uv if chain.noise_uv is not None else np.zeros(recording.n_channels)
    return ChainResult(
        events=events,
        features=features,
        noise_uv=noise,
        thresholds_uv=chain.detector.thresholds_uv(noise),
        n_samples=recording.n_samples,
    )


def detect_spikes(recording: Recording, **options: Any) -> SpikeEvents:
    """Threshold-crossing events of a whole recording (the chain's events; see :func:`run_signal_chain`)."""
    return run_signal_chain(recording, **options).events
