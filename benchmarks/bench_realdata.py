"""The signal chain on real recordings: detection rates, noise levels, agreement between channels.

Data (read from ../shared/data, never copied):

- ``neuralink-compression/wav``: 496 single-channel N1 clips (~5 s, 19,531 Hz). Each clip runs
  through the chain with its defaults (a single channel has nothing to common-average, so the
  reference leaves it alone). Reported over clips: median and IQR of the detection rate (Hz)
  and of the noise RMS (median(|x|)/0.6745 over the first 1 s of the causally band-passed
  signal) in file units (int16 steps), in 10-bit ADC codes (about 64 steps each) and in µV
  under the reader's gain assumption (``neurolace.io.N1_WAV_GAIN_UV``). The rate with a
  positive threshold (+4.5) is reported too: the clips do not say which polarity their ADC
  uses, and many show large upward deflections.
- ``pouzat-locust-tetrode``: two 28.8 s trials of a 4-wire tetrode at 15 kHz. The chain runs
  without common-average reference (the four wires of a tetrode see the same neurons, so their
  average holds spikes, not just common noise). Per channel: rate and noise (in ADC codes; the
  gain is not published). Agreement: for each channel, the fraction of its detections that
  have a detection on at least one other wire within +-0.5 ms.

No ground truth exists for either set: these numbers describe, they do not score. A PNG of a
stretch of filtered signal with its detections and thresholds is written to
``bench-results/realdata.png``. There is no alternative detector to race here, so the
"baseline in the same run" is the same chain with zero-phase offline filtering
(``scipy.signal.sosfiltfilt``) on the tetrode, to show how much causality changes the rates.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.signal

from benchmarks._common import RESULTS_DIR, console, shared_data, table
from neurolace.core import SpikeEvents
from neurolace.dsp import ThresholdDetector, bandpass_filter, mad_noise, run_signal_chain
from neurolace.dsp.detection import DEFAULT_THRESHOLD
from neurolace.io import N1_WAV_GAIN_UV, read_recording

AGREEMENT_MS = 0.5
N1_STEPS_PER_CODE = 64
PLOT_STRETCH_S = 0.25


def _quartiles(values: np.ndarray) -> dict:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1)}


def channel_agreement(events: SpikeEvents, tolerance_samples: int) -> np.ndarray:
    """Fraction of each channel's detections with one on another channel within the tolerance."""
    fractions = np.full(events.n_channels, np.nan)
    for channel in range(events.n_channels):
        mine = events.sample_index[events.channel_index == channel]
        others = np.sort(events.sample_index[events.channel_index != channel])
        if mine.size == 0 or others.size == 0:
            continue
        position = np.searchsorted(others, mine)
        after = others[np.minimum(position, others.size - 1)]
        before = others[np.maximum(position - 1, 0)]
        nearest = np.minimum(np.abs(after - mine), np.abs(mine - before))
        fractions[channel] = float(np.mean(nearest <= tolerance_samples))
    return fractions


def _offline_events(recording) -> SpikeEvents:
    sos = scipy.signal.butter(4, [300, 6000], btype="bandpass", fs=recording.fs_hz, output="sos")
    filtered = np.ascontiguousarray(
        scipy.signal.sosfiltfilt(sos, recording.get_traces_uv(dtype=np.float64), axis=0), dtype=np.float32
    )
    detector = ThresholdDetector(recording.fs_hz, recording.n_channels)
    window = int(recording.fs_hz)
    events = detector.process(filtered, mad_noise(filtered[:window]))
    return SpikeEvents.concatenate([events, detector.finish()])


def _n1(quick: bool) -> tuple[dict, object]:
    paths = sorted(shared_data("neuralink-compression", "wav").glob("*.wav"))
    if quick:
        paths = paths[:60]
    rates, positive_rates, noise_uv, gains, durations = [], [], [], [], []
    example = None
    start = time.perf_counter()
    for path in paths:
        recording = read_recording(path)
        result = run_signal_chain(recording, chunk_ms=1000.0)
        rates.append(result.events.n_spikes / recording.duration_s)
        positive = run_signal_chain(recording, chunk_ms=1000.0, threshold=-DEFAULT_THRESHOLD)
        positive_rates.append(positive.events.n_spikes / recording.duration_s)
        noise_uv.append(float(result.noise_uv[0]))
        gains.append(recording.gain_uv)
        durations.append(recording.duration_s)
        if example is None and result.events.n_spikes >= 20:
            example = (path, recording, result)
    elapsed = time.perf_counter() - start
    rates, noise_uv = np.array(rates), np.array(noise_uv)
    noise_steps = noise_uv / np.array(gains)
    summary = {
        "n_clips": len(paths),
        "seconds": float(np.sum(durations)),
        "processing_seconds": elapsed,
        "gain_uv_assumed": N1_WAV_GAIN_UV,
        "rate_hz": _quartiles(rates),
        "positive_threshold_rate_hz": _quartiles(np.array(positive_rates)),
        "noise_uv": _quartiles(noise_uv),
        "noise_int16_steps": _quartiles(noise_steps),
        "noise_10bit_codes": _quartiles(noise_steps / N1_STEPS_PER_CODE),
        "fraction_of_clips_without_detections": float(np.mean(rates == 0)),
        "example_clip": None if example is None else example[0].name,
    }
    return summary, example


def _tetrode() -> tuple[dict, list]:
    info_rows, trials, examples = [], {}, []
    for trial in ("locust_trial_01.raw", "locust_trial_02.raw"):
        recording = read_recording(shared_data("pouzat-locust-tetrode", trial), fs_hz=15000.0, n_channels=4)
        result = run_signal_chain(recording, reference=None, chunk_ms=1000.0)
        tolerance = round(AGREEMENT_MS * 1e-3 * recording.fs_hz)
        rates = result.events.rates_hz(recording.duration_s)
        agreement = channel_agreement(result.events, tolerance)
        offline = _offline_events(recording)
        offline_rates = offline.rates_hz(recording.duration_s)
        trials[trial] = {
            "seconds": recording.duration_s,
            "rate_hz": rates.tolist(),
            "noise_codes": (result.noise_uv / recording.gain_uv).tolist(),
            "agreement": agreement.tolist(),
            "offline_sosfiltfilt_rate_hz": offline_rates.tolist(),
            "offline_sosfiltfilt_agreement": channel_agreement(offline, tolerance).tolist(),
        }
        for channel in range(4):
            info_rows.append(
                [
                    f"{trial[7:15]} ch{channel}",
                    rates[channel],
                    result.noise_uv[channel] / recording.gain_uv,
                    agreement[channel],
                    offline_rates[channel],
                ]
            )
        examples.append((trial, recording, result))
    return {"trials": trials, "rows": info_rows}, examples


def _plot(n1_example, tetrode_example, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 1, figsize=(11, 8), gridspec_kw={"height_ratios": [1, 2]})
    if n1_example is not None:
        name, recording, result = n1_example
        width = int(PLOT_STRETCH_S * recording.fs_hz)
        spikes = result.events.sample_index
        in_window = np.searchsorted(spikes, spikes + width) - np.arange(spikes.size)
        densest = int(spikes[int(np.argmax(in_window))])
        start = max(0, min(densest - int(0.01 * recording.fs_hz), recording.n_samples - width))
        stop = min(recording.n_samples, start + width)
        trace = bandpass_filter(recording.slice_samples(0, stop))[start:stop, 0]
        time_ms = (np.arange(start, stop) - start) / recording.fs_hz * 1e3
        axis = axes[0]
        axis.plot(time_ms, trace, lw=0.6, color="0.2")
        axis.axhline(result.thresholds_uv[0], color="tab:red", lw=0.8, ls="--", label="threshold -4.5 x RMS")
        marks = result.events.sample_index[
            (result.events.sample_index >= start) & (result.events.sample_index < stop)
        ]
        axis.plot(
            (marks - start) / recording.fs_hz * 1e3,
            trace[marks - start],
            "v",
            color="tab:red",
            ms=6,
            label="detections",
        )
        axis.set_title(
            f"N1 clip {name.stem[:8]}, from {start / recording.fs_hz:.2f} s: causal 300-6000 Hz, "
            f"{PLOT_STRETCH_S * 1e3:.0f} ms with the most detections"
        )
        axis.set_xlabel("time (ms)")
        axis.set_ylabel("µV (assumed gain)")
        axis.legend(loc="upper right", fontsize=8, framealpha=0.9)
    trial, recording, result = tetrode_example
    start = int(10.0 * recording.fs_hz)
    stop = start + int(PLOT_STRETCH_S * recording.fs_hz)
    traces = bandpass_filter(recording.slice_samples(0, stop))[start:stop]
    spacing = 14 * float(np.max(result.noise_uv))
    time_ms = np.arange(stop - start) / recording.fs_hz * 1e3
    axis = axes[1]
    for channel in range(recording.n_channels):
        offset = -channel * spacing
        axis.plot(time_ms, traces[:, channel] + offset, lw=0.6, color="0.2")
        axis.axhline(result.thresholds_uv[channel] + offset, color="tab:red", lw=0.6, ls="--")
        mask = (
            (result.events.channel_index == channel)
            & (result.events.sample_index >= start)
            & (result.events.sample_index < stop)
        )
        marks = result.events.sample_index[mask] - start
        axis.plot(marks / recording.fs_hz * 1e3, traces[marks, channel] + offset, "v", color="tab:red", ms=5)
    axis.set_yticks([-channel * spacing for channel in range(recording.n_channels)])
    axis.set_yticklabels([f"ch{channel}" for channel in range(recording.n_channels)])
    axis.set_title(
        f"locust tetrode {trial[7:15]}, 10.00-{10 + PLOT_STRETCH_S:.2f} s: causal 300-6000 Hz, no CAR; "
        "dashed = threshold, triangles = detections"
    )
    axis.set_xlabel("time (ms)")
    axis.set_ylabel("ADC codes (offset per channel)")
    figure.tight_layout()
    RESULTS_DIR.mkdir(exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run(quick: bool = False) -> dict:
    n1, n1_example = _n1(quick)
    tetrode, tetrode_examples = _tetrode()
    table(
        f"N1 clips ({n1['n_clips']} clips, {n1['seconds']:.0f} s): median [IQR] over clips",
        ["quantity", "median", "Q1", "Q3"],
        [
            [
                "detection rate (Hz), threshold -4.5",
                n1["rate_hz"]["median"],
                n1["rate_hz"]["q1"],
                n1["rate_hz"]["q3"],
            ],
            [
                "detection rate (Hz), threshold +4.5",
                n1["positive_threshold_rate_hz"]["median"],
                n1["positive_threshold_rate_hz"]["q1"],
                n1["positive_threshold_rate_hz"]["q3"],
            ],
            [
                "noise RMS (µV, assumed gain)",
                n1["noise_uv"]["median"],
                n1["noise_uv"]["q1"],
                n1["noise_uv"]["q3"],
            ],
            [
                "noise RMS (int16 steps)",
                n1["noise_int16_steps"]["median"],
                n1["noise_int16_steps"]["q1"],
                n1["noise_int16_steps"]["q3"],
            ],
            [
                "noise RMS (10-bit codes)",
                n1["noise_10bit_codes"]["median"],
                n1["noise_10bit_codes"]["q1"],
                n1["noise_10bit_codes"]["q3"],
            ],
        ],
    )
    console.print(f"N1 clips without any detection: {100 * n1['fraction_of_clips_without_detections']:.1f} %")
    table(
        "locust tetrode (15 kHz, 4 wires, no CAR)",
        [
            "trial / channel",
            "rate (Hz)",
            "noise (codes)",
            "agreement +-0.5 ms",
            "offline sosfiltfilt rate (Hz)",
        ],
        tetrode["rows"],
    )
    plot_path = RESULTS_DIR / "realdata.png"
    _plot(n1_example, tetrode_examples[0], plot_path)
    console.print(f"plot: {plot_path}")
    return {"quick": quick, "n1": n1, "tetrode": tetrode["trials"], "plot": str(plot_path.name)}
