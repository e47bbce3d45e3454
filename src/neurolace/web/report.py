"""The session report: one self-contained HTML file of plots from an NWB session (``neurolace report``).

:func:`build_report` reads a recording written by :func:`neurolace.io.nwb.write_nwb`
(``neurolace simulate`` or ``neurolace demo``) and, optionally, a JSON session
summary (``neurolace demo --json`` or the dashboard's
``/api/sessions/<id>/export``), and draws what they hold.

From the recording itself (a bare NWB file is enough):

- **raw traces** of the busiest channels around the middle of the recording;
- **spike raster** of the threshold crossings of every channel;
- **crossing rate per channel** and **noise per channel** (MAD noise of the
  spike band, µV RMS), as electrode maps;
- **detection rates**: threshold crossings per channel, and for ground-truth
  units the fraction of their spikes with a crossing on their peak channel
  within :data:`DETECTION_TOLERANCE_MS`, against SNR;
- **spike-band power** per channel (binned features);
- **tuning curves** of the highest-SNR ground-truth units
  (:class:`neurolace.sim.tuning.TuningModel` at unit intended speed, from the
  simulator's unit table).

Crossings, features and noise the file does not store are computed here by
running the on-implant chain (:func:`neurolace.dsp.chain.run_signal_chain`)
on the raw samples; such sections say so (``ReportSection.computed``).

From a closed-loop session run only (the session summary):

- **BPS per block** and **time to target** per block;
- **latency histogram** (summary with ``latency_ms`` samples).

An NWB recording holds the implant's signals, not the Webgrid blocks or the
loop's timing, so without a summary these sections are listed as "not
recorded in this file" with what they need (``ReportSection.needs``), never
left out silently.

The summary and the recording must come from the same run: ``neurolace demo``
writes one run id into both (the NWB ``identifier`` and the summary's
``run_id``), and :func:`check_same_run` refuses a pair whose ids differ.
Figures are matplotlib PNGs embedded as base64, so the report is one file
that opens anywhere (with a viewport meta tag, so a phone shows it at its own
width). The header names the recording's date, the report's date, the
neurolace version and the decoder (from the session summary), and counts
ground-truth units as ``neurolace simulate`` and ``neurolace demo`` do: every
unit of the unit table, with how many of them fired in the recording.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurolace.core.errors import InvalidInputError
from neurolace.io.atomic import atomic_output

__all__ = ["DETECTION_TOLERANCE_MS", "NEEDS_SESSION_RUN", "ReportSection", "RunCheckWarning", "RunMismatchError", "build_report",
           "check_same_run", "detection_rates", "load_session_summary", "tuning_styles", "unit_count_text"]

#: a ground-truth spike counts as detected if a crossing on its peak channel lies this close
DETECTION_TOLERANCE_MS = 0.5
#: tuning curves drawn for this many units (highest SNR first)
N_TUNING_UNITS = 12
NOT_RECORDED = "not recorded in this file"
#: what a section drawn from the session summary needs when there is none
NEEDS_SESSION_RUN = "a session run"
#: raw traces drawn for this many channels (most crossings first), over this long a window
N_TRACE_CHANNELS = 8
TRACE_WINDOW_MS = 60.0
_SESSION_HINT = ("the Webgrid blocks are scored by a closed-loop session, not stored in an NWB recording: run "
                 "'neurolace demo --json > summary.json' and pass --session-json summary.json with the NWB "
                 "file that run wrote")


class RunMismatchError(InvalidInputError):
    """The session summary and the NWB recording were written by different runs."""


class RunCheckWarning(UserWarning):
    """The report could not confirm that the summary and the recording come from one run."""


@dataclass
class ReportSection:
    """One section of the report: a title, a note, an optional figure (PNG bytes) and table rows."""

    title: str
    note: str = ""
    png: bytes | None = None
    rows: list[list[str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    recorded: bool = True
    #: drawn from values the report computed from the raw samples (the file does not store them)
    computed: bool = False
    #: for a section that is not recorded: what it needs ("a session run", "simulator ground truth", ...)
    needs: str = ""


def load_session_summary(path: str | os.PathLike) -> dict:
    """Read a JSON session summary and check it has a ``blocks`` list (or a latency list)."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--session-json {path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"--session-json {path}: not a text file (JSON must be UTF-8): {exc.reason} "
                                f"at byte {exc.start}") from None
    if not isinstance(summary, dict) or not ("blocks" in summary or "latency_ms" in summary):
        raise InvalidInputError(f"--session-json {path}: expected an object with 'blocks' "
                                "(neurolace demo --json) or 'latency_ms'")
    if "blocks" in summary and not isinstance(summary["blocks"], list):
        raise InvalidInputError(f"--session-json {path}: 'blocks' must be a list")
    if "run_id" in summary and not isinstance(summary["run_id"], str):
        raise InvalidInputError(f"--session-json {path}: 'run_id' must be a string, got "
                                f"{type(summary['run_id']).__name__}")
    return summary


def check_same_run(nwb_path: str | os.PathLike, nwb_run_id: str, summary: dict, summary_name: str, *,
                   allow_other_run: bool = False) -> str:
    """Check that a session summary and an NWB recording come from the same run.

    ``neurolace demo`` writes one run id as the NWB file's ``identifier`` and as
    the summary's ``run_id``.

    Parameters
    ----------
    nwb_path : path
        The recording (named in messages).
    nwb_run_id : str
        Its NWB ``identifier``.
    summary : dict
        The session summary.
    summary_name : str
        How to name the summary in messages (its path).
    allow_other_run : bool, default False
        Warn instead of raising when the ids differ.

    Returns
    -------
    problem : str
        ``""`` when the ids match; otherwise what is wrong (also issued as a
        :class:`RunCheckWarning`).

    Raises
    ------
    RunMismatchError
        The ids differ and ``allow_other_run`` is false.
    """
    run_id = summary.get("run_id")
    if run_id is None:
        problem = (f"cannot check that {summary_name} and {nwb_path} come from the same run: the summary "
                   "carries no 'run_id' (neurolace demo writes one into both); its blocks may belong to "
                   "another recording")
    elif run_id != nwb_run_id:
        problem = (f"{summary_name} (run {run_id}) and {nwb_path} (run {nwb_run_id}) come from different "
                   "runs: pass the summary printed by the run that wrote this NWB file")
        if not allow_other_run:
            raise RunMismatchError(problem + " (or --allow-other-run to draw them together anyway)")
    else:
        return ""
    warnings.warn(problem, RunCheckWarning, stacklevel=2)
    return problem


def detection_rates(events: Any, units: Any, peak_channel_index: np.ndarray, *,
                    tolerance_ms: float = DETECTION_TOLERANCE_MS) -> np.ndarray:
    """Fraction of each ground-truth unit's spikes with a threshold crossing on its peak channel nearby.

    Parameters
    ----------
    events : SpikeEvents
        Threshold crossings (sample_index, channel_index).
    units : SpikeEvents
        Ground-truth spikes with ``unit_id``.
    peak_channel_index : ndarray, shape (n_units,)
        Peak channel of each unit id (indexed by unit id).
    tolerance_ms : float

    Returns
    -------
    rates : ndarray, shape (n_units,)
        Detected fraction per unit; ``nan`` for a unit without spikes in the
        span where detection ran (from the first crossing on).
    """
    n_units = peak_channel_index.shape[0]
    tolerance = tolerance_ms * 1e-3 * events.fs_hz
    # detection starts after the chain's first noise window: score spikes from the first crossing on
    start = events.sample_index.min() if events.n_spikes else np.inf
    spike_samples = np.asarray(units.sample_index)
    spike_units = np.asarray(units.unit_id)
    keep = spike_samples >= start
    spike_samples, spike_units = spike_samples[keep], spike_units[keep]
    spike_channels = peak_channel_index[spike_units]
    detected = np.zeros(spike_samples.shape[0], dtype=bool)
    order = np.argsort(events.channel_index, kind="stable")
    channels_sorted = events.channel_index[order]
    samples_sorted = events.sample_index[order]
    bounds = np.searchsorted(channels_sorted, np.arange(events.n_channels + 1))
    for channel in np.unique(spike_channels):
        crossings = np.sort(samples_sorted[bounds[channel]:bounds[channel + 1]])
        mask = spike_channels == channel
        if crossings.size == 0:
            continue
        samples = spike_samples[mask]
        position = np.searchsorted(crossings, samples)
        left = crossings[np.clip(position - 1, 0, crossings.size - 1)]
        right = crossings[np.clip(position, 0, crossings.size - 1)]
        nearest = np.minimum(np.abs(samples - left), np.abs(right - samples))
        detected[mask] = nearest <= tolerance
    totals = np.bincount(spike_units, minlength=n_units).astype(np.float64)
    hits = np.bincount(spike_units, weights=detected, minlength=n_units)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, hits / totals, np.nan)


def _figure_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return buffer.getvalue()


def _block_sections(summary: dict | None) -> list[ReportSection]:
    import matplotlib.pyplot as plt

    if not summary or not summary.get("blocks"):
        if summary is None:
            note = f"BPS per block: {NOT_RECORDED}; needs {NEEDS_SESSION_RUN}: {_SESSION_HINT}"
            time_note = f"time to target: {NOT_RECORDED}; needs {NEEDS_SESSION_RUN} (see BPS per block)"
            needs = NEEDS_SESSION_RUN
        else:
            note = "BPS per block: the session summary has no blocks"
            time_note, needs = "time to target: the session summary has no blocks", "a summary with blocks"
        return [ReportSection("BPS per block", note, recorded=False, needs=needs),
                ReportSection("Time to target", time_note, recorded=False, needs=needs)]
    blocks = summary["blocks"]
    names = [str(b.get("name", f"block {i + 1}")) for i, b in enumerate(blocks)]
    bps = np.array([float(b.get("bps") or 0.0) for b in blocks])
    kinds = [str(b.get("kind", "")) for b in blocks]
    colours = ["#1f77b4" if kind == "webgrid" else "#ff7f0e" if "loop" in kind else "#2ca02c" for kind in kinds]
    figure, axis = plt.subplots(figsize=(7, 3))
    axis.bar(names, bps, color=colours)
    for index, value in enumerate(bps):
        axis.text(index, value, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    axis.set_ylabel("bits per second")
    axis.set_title(f"Webgrid BPS per block (decoder {summary.get('decoder', '?')})")
    axis.tick_params(axis="x", rotation=30)
    rows = [[n, k, f"{float(b.get('duration_s') or 0):.0f}", str(b.get("grid_side", "")), str(b.get("correct", "")),
             str(b.get("incorrect", "")), f"{float(b.get('ntpm') or 0):.1f}", f"{float(b.get('bps') or 0):.2f}"]
            for n, k, b in zip(names, kinds, blocks, strict=True)]
    bps_section = ReportSection(
        "BPS per block",
        f"pooled Webgrid score {float(summary['bps']):.2f} BPS" if "bps" in summary else "",
        _figure_png(figure), rows, ["block", "kind", "s", "grid", "correct", "wrong", "NTPM", "BPS"])
    times = [b.get("mean_time_to_target_s") for b in blocks]
    if all(t is None for t in times):
        return [bps_section, ReportSection("Time to target", f"time to target: {NOT_RECORDED} (the summary's "
                                           "blocks carry no mean_time_to_target_s)", recorded=False,
                                           needs="blocks with mean_time_to_target_s")]
    figure, axis = plt.subplots(figsize=(7, 3))
    axis.bar(names, [t if t is not None else 0.0 for t in times], color=colours)
    axis.set_ylabel("mean time to target (s)")
    axis.set_title("Time to target per block (mean over correct selections)")
    axis.tick_params(axis="x", rotation=30)
    return [bps_section, ReportSection("Time to target", "", _figure_png(figure))]


def tuning_styles(n_units: int) -> list[tuple[tuple[float, ...], str]]:
    """A distinct colour (RGBA) and a line style for each of ``n_units`` tuning curves.

    The 20 colours of matplotlib's ``tab20`` in order (dark and light of ten hues; the light ones dashed,
    so a pair reads apart in grey too), then the cycle again dotted: colours repeat only past 20 units.
    """
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors
    styles = ("-", "--", ":", "-.")
    return [(tuple(palette[index % 20]), styles[(index % 2) + 2 * ((index // 20) % 2)]) for index in range(n_units)]


def unit_count_text(contents: Any) -> str:
    """Ground-truth units as ``neurolace simulate`` counts them (the unit table), and how many fired here."""
    if contents.units is None and not contents.unit_table:
        return NOT_RECORDED
    table = contents.unit_table
    fired = int(np.unique(contents.units.unit_id).size) if contents.units is not None else 0
    if not table:
        return f"{fired} (with spikes in this recording)"
    n_units = len(table["unit_id"]) if "unit_id" in table else len(next(iter(table.values())))
    return f"{n_units} ({fired} fired in this recording)"


def _tuning_section(contents: Any) -> ReportSection:
    import matplotlib.pyplot as plt

    from neurolace.sim.tuning import TuningModel

    table = contents.unit_table
    needed = ("baseline_hz", "depth_hz", "preferred_direction_rad", "speed_gain_hz")
    if not all(name in table for name in needed):
        return ReportSection("Tuning curves", f"tuning curves: {NOT_RECORDED} (no ground-truth tuning in the unit "
                             "table; a recorded session needs cursor kinematics, which this file does not carry)",
                             recorded=False, needs="simulator ground truth")
    snr = np.asarray(table.get("snr", np.zeros(len(table["baseline_hz"]))), dtype=np.float64)
    chosen = np.argsort(-np.nan_to_num(snr, nan=-np.inf))[:N_TUNING_UNITS]
    model = TuningModel(
        baseline_hz=np.asarray(table["baseline_hz"])[chosen], depth_hz=np.asarray(table["depth_hz"])[chosen],
        preferred_direction_rad=np.asarray(table["preferred_direction_rad"])[chosen],
        speed_gain_hz=np.asarray(table["speed_gain_hz"])[chosen],
        click_gain_hz=np.zeros(chosen.size),
    )
    angles = np.linspace(-np.pi, np.pi, 73)
    rates = model.rates_hz(np.column_stack([np.cos(angles), np.sin(angles)]))
    figure, axis = plt.subplots(figsize=(7, 3.2))
    for column, (unit, (colour, style)) in enumerate(zip(chosen, tuning_styles(chosen.size), strict=True)):
        axis.plot(np.degrees(angles), rates[:, column], lw=1.2, color=colour, ls=style,
                  label=f"unit {int(table['unit_id'][unit])}" if "unit_id" in table else f"unit {int(unit)}")
    axis.set_xlabel("intended direction (deg), unit speed")
    axis.set_ylabel("rate (Hz)")
    axis.set_title(f"Ground-truth tuning of the {chosen.size} highest-SNR units")
    axis.legend(fontsize=6, ncol=4)
    return ReportSection("Tuning curves", "from the simulator's unit table (velocity cosine tuning, "
                         "neurolace.sim.tuning.TuningModel)", _figure_png(figure))


@dataclass
class _Signals:
    """Threshold crossings, binned features and noise of a recording: stored in the file or computed here."""

    events: Any
    features: list
    noise_uv: np.ndarray | None
    #: which of "crossings", "features", "noise" the chain computed because the file does not store them
    computed: set[str]


def _sbp_columns(features: Any) -> list[int]:
    names = [str(name) for name in features.feature_names]
    return [i for i, name in enumerate(names) if "spike_band_power" in name or "sbp" in name.lower()]


def _recording_signals(contents: Any) -> _Signals:
    """Run the on-implant chain on the raw samples for what the file does not store (noise always)."""
    from neurolace.dsp.chain import run_signal_chain

    chain = run_signal_chain(contents.recording)
    computed = {"noise"}
    events = contents.events
    if events is None:
        events = chain.events
        computed.add("crossings")
    features = [f for f in contents.features if _sbp_columns(f)]
    if not features:
        features = [chain.features]
        computed.add("features")
    return _Signals(events, features, np.asarray(chain.noise_uv, dtype=np.float64), computed)


def _computed_note(what: str) -> str:
    return (f"computed here by running the on-implant chain on the raw samples (the file stores no {what})")


def _channel_map(figure: Any, axis: Any, values: np.ndarray, label: str, cmap: str) -> None:
    """Draw one value per channel as an electrode map (16 electrodes per thread when the count allows)."""
    rows_per_column = 16 if values.size % 16 == 0 else 1
    shown = axis.imshow(values.reshape(-1, rows_per_column).T, aspect="auto", cmap=cmap, interpolation="nearest")
    figure.colorbar(shown, ax=axis, label=label)
    axis.set_xlabel("thread" if rows_per_column == 16 else "channel")
    axis.set_ylabel("electrode" if rows_per_column == 16 else "")


def _traces_section(recording: Any, signals: _Signals) -> ReportSection:
    import matplotlib.pyplot as plt

    events = signals.events
    counts = events.count_per_channel()
    chosen = np.sort(np.argsort(-counts, kind="stable")[:N_TRACE_CHANNELS])
    window = max(2, round(TRACE_WINDOW_MS * 1e-3 * recording.fs_hz))
    start = max(0, recording.n_samples // 2 - window // 2)
    stop = min(recording.n_samples, start + window)
    traces = recording.get_traces_uv(start, stop, dtype=np.float64)[:, chosen]
    traces -= np.median(traces, axis=0)
    spacing = max(float(np.percentile(np.abs(traces), 99.5)) * 2.2, 1e-6)
    time_ms = np.arange(start, stop) / recording.fs_hz * 1e3
    in_window = (events.sample_index >= start) & (events.sample_index < stop)
    figure, axis = plt.subplots(figsize=(9, 0.45 * chosen.size + 1.2))
    for row, channel in enumerate(chosen):
        offset = -row * spacing
        axis.plot(time_ms, traces[:, row] + offset, lw=0.6, color="#1b1f24")
        crossing = events.sample_index[in_window & (events.channel_index == channel)]
        axis.plot(crossing / recording.fs_hz * 1e3, np.full(crossing.shape, offset + 0.45 * spacing), "v",
                  ms=3, color="#d62728")
    axis.set_yticks([-row * spacing for row in range(chosen.size)], [f"ch {int(c)}" for c in chosen])
    axis.set_xlabel("time (ms)")
    axis.set_title(f"Raw traces (µV, channel median removed) of the {chosen.size} channels with most crossings; "
                   "▼ threshold crossing", fontsize=9)
    note = f"{stop - start} samples from {start / recording.fs_hz:.3f} s; scale: {spacing:.0f} µV between traces"
    if "crossings" in signals.computed:
        note += "; crossings " + _computed_note("threshold crossings")
    return ReportSection("Raw traces", note, _figure_png(figure), computed="crossings" in signals.computed)


def _raster_section(recording: Any, signals: _Signals) -> ReportSection:
    import matplotlib.pyplot as plt

    events = signals.events
    figure, (raster, population) = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True,
                                                  gridspec_kw={"height_ratios": [3, 1]})
    raster.plot(events.times_s, events.channel_index, ",", color="#1f77b4")
    raster.set_ylim(-0.5, events.n_channels - 0.5)
    raster.set_ylabel("channel")
    raster.set_title(f"{events.n_spikes} threshold crossings on {events.n_channels} channels")
    bin_s = 0.02
    edges = np.arange(0.0, recording.duration_s + bin_s, bin_s)
    counts, _ = np.histogram(events.times_s, bins=edges)
    population.step(edges[:-1], counts / bin_s / max(events.n_channels, 1), where="post", color="#1b1f24", lw=0.8)
    population.set_ylabel("Hz per ch")
    population.set_xlabel("time (s), 20 ms bins")
    computed = "crossings" in signals.computed
    return ReportSection("Spike raster", _computed_note("threshold crossings") if computed else "",
                         _figure_png(figure), computed=computed)


def _rate_section(recording: Any, signals: _Signals) -> ReportSection:
    import matplotlib.pyplot as plt

    rates_hz = signals.events.rates_hz(recording.duration_s)
    figure, axis = plt.subplots(figsize=(9, 2.6))
    _channel_map(figure, axis, rates_hz, "crossings per s", "viridis")
    axis.set_title(f"Threshold-crossing rate per channel over {recording.duration_s:.2f} s")
    rows = [["mean (Hz)", f"{rates_hz.mean():.2f}"], ["median (Hz)", f"{np.median(rates_hz):.2f}"],
            ["max (Hz)", f"{rates_hz.max():.2f}"], ["channels without crossings", str(int((rates_hz == 0).sum()))]]
    computed = "crossings" in signals.computed
    return ReportSection("Crossing rate per channel", _computed_note("threshold crossings") if computed else "",
                         _figure_png(figure), rows, ["measure", "value"], computed=computed)


def _noise_section(signals: _Signals) -> ReportSection:
    import matplotlib.pyplot as plt

    noise = signals.noise_uv
    figure, (electrodes, histogram) = plt.subplots(1, 2, figsize=(10, 2.6), gridspec_kw={"width_ratios": [3, 1]})
    _channel_map(figure, electrodes, noise, "µV RMS", "magma")
    electrodes.set_title("Noise per channel (MAD of the spike band)")
    histogram.hist(noise, bins=30, color="#8c564b")
    histogram.set_xlabel("µV RMS")
    histogram.set_ylabel("channels")
    low, median, high = np.percentile(noise, [5, 50, 95])
    rows = [["median (µV RMS)", f"{median:.1f}"], ["5th-95th percentile (µV RMS)", f"{low:.1f}-{high:.1f}"]]
    return ReportSection("Noise per channel", _computed_note("noise estimate"), _figure_png(figure), rows,
                         ["measure", "value"], computed=True)


def _detection_section(contents: Any, signals: _Signals) -> ReportSection:
    import matplotlib.pyplot as plt

    events, recording = signals.events, contents.recording
    rates_hz = events.rates_hz(recording.duration_s)
    ground_truth = contents.units is not None and "peak_channel_index" in contents.unit_table
    figure, axes = plt.subplots(1, 2 if ground_truth else 1, figsize=(10 if ground_truth else 5, 3.2))
    axes = np.atleast_1d(axes)
    axes[0].hist(rates_hz, bins=40, color="#1f77b4")
    axes[0].set_xlabel("threshold crossings per channel (Hz)")
    axes[0].set_ylabel("channels")
    axes[0].set_title(f"{events.n_spikes} crossings on {events.n_channels} channels")
    rows = [["channels", str(events.n_channels)], ["crossings", str(events.n_spikes)],
            ["median rate (Hz)", f"{np.median(rates_hz):.2f}"]]
    notes = []
    if ground_truth:
        peak = np.asarray(contents.unit_table["peak_channel_index"], dtype=np.int64)
        detected = detection_rates(events, contents.units, peak)
        snr = np.asarray(contents.unit_table.get("snr", np.full(peak.shape, np.nan)), dtype=np.float64)
        valid = np.isfinite(detected)
        axes[1].scatter(snr[valid], detected[valid], s=3, alpha=0.4, color="#d62728")
        axes[1].set_xscale("log")
        axes[1].set_xlabel("ground-truth unit SNR")
        axes[1].set_ylabel("fraction of spikes detected")
        axes[1].set_title(f"Detection of ground-truth spikes (±{DETECTION_TOLERANCE_MS:g} ms, peak channel)")
        for low, high in ((0, 3), (3, 5), (5, 10), (10, np.inf)):
            band = valid & (snr >= low) & (snr < high)
            if band.any():
                rows.append([f"detected, SNR {low:g}-{high:g}", f"{np.mean(detected[band]):.1%} of {band.sum()} units"])
        notes.append("a unit's spike counts as detected when a crossing on its peak channel lies within the tolerance")
    else:
        notes.append("no ground-truth units in this file: crossing rates only")
    computed = "crossings" in signals.computed
    if computed:
        notes.append(_computed_note("threshold crossings"))
    return ReportSection("Detection rates", "; ".join(notes), _figure_png(figure), rows, ["measure", "value"],
                         computed=computed)


def _sbp_section(signals: _Signals) -> ReportSection:
    import matplotlib.pyplot as plt

    features = signals.features[0]
    mean_sbp = np.asarray(features.data)[:, _sbp_columns(features)].mean(axis=0)
    figure, axis = plt.subplots(figsize=(9, 2.6))
    _channel_map(figure, axis, mean_sbp, "mean SBP", "inferno")
    axis.set_title(f"Mean spike-band power over {features.n_bins} bins of {features.bin_width_s * 1e3:g} ms")
    computed = "features" in signals.computed
    return ReportSection("Spike-band power", _computed_note("binned features") if computed else "",
                         _figure_png(figure), computed=computed)


def _latency_section(summary: dict | None) -> ReportSection:
    import matplotlib.pyplot as plt

    samples = None if summary is None else summary.get("latency_ms")
    if not samples:
        return ReportSection("Loop latency", f"latency histogram: {NOT_RECORDED}; needs {NEEDS_SESSION_RUN}: the "
                             "loop's timing is measured by the live runtime, and the dashboard's session export "
                             "(GET /api/sessions/<id>/export) carries its latency samples", recorded=False,
                             needs=NEEDS_SESSION_RUN)
    values = np.asarray(samples, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return ReportSection("Loop latency", "latency_ms holds no finite samples", recorded=False,
                             needs="finite latency_ms samples")
    figure, axis = plt.subplots(figsize=(7, 3))
    axis.hist(values, bins=60, color="#9467bd")
    p50, p99 = np.percentile(values, [50, 99])
    axis.axvline(p50, color="k", lw=1)
    axis.axvline(p99, color="k", lw=1, ls="--")
    axis.set_xlabel("loop latency (ms): bin available -> cursor published")
    axis.set_ylabel("bins")
    axis.set_title(f"Loop latency, {values.size} bins: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    return ReportSection("Loop latency", "", _figure_png(figure))


def _render(title: str, facts: list[tuple[str, str]], sections: list[ReportSection], *, warning: str = "") -> str:
    escape = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        (f"<title>{escape(title)}</title><style>body{{font:14px/1.45 system-ui,sans-serif;max-width:1000px;"
        "margin:2rem auto;padding:0 1rem;color:#1b1f24}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;"
        "border-bottom:1px solid #ddd}table{border-collapse:collapse}td,th{padding:.15rem .6rem;border-bottom:"
        "1px solid #eee;text-align:right}td:first-child,th:first-child{text-align:left}.missing{color:#8a6d3b;"
        "background:#fcf8e3;padding:.3rem .6rem}.warning{color:#fff;background:#b52a1d;padding:.5rem .8rem;"
        "font-weight:bold}img{max-width:100%}</style></head><body>"),
        f"<h1>{escape(title)}</h1>",
        f"<p class='warning'>{escape(warning)}</p>" if warning else "",
        "<table>",
    ]
    parts += [f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in facts]
    parts.append("</table>")
    for section in sections:
        parts.append(f"<h2>{escape(section.title)}</h2>")
        if section.note:
            css = " class='missing'" if not section.recorded else ""
            parts.append(f"<p{css}>{escape(section.note)}</p>")
        if section.png is not None:
            encoded = base64.b64encode(section.png).decode("ascii")
            parts.append(f"<img alt='{escape(section.title)}' src='data:image/png;base64,{encoded}'>")
        if section.rows:
            parts.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in section.header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in section.rows]
            parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def build_report(nwb_path: str | os.PathLike, out_path: str | os.PathLike, *,
                 session_summary: dict | None = None, session_name: str = "the session summary",
                 allow_other_run: bool = False) -> list[ReportSection]:
    """Write the HTML report of ``nwb_path`` to ``out_path`` (atomically); return its sections.

    Parameters
    ----------
    nwb_path : path
        A recording written by :func:`neurolace.io.nwb.write_nwb`; a bare
        recording (``neurolace simulate``) is enough for every section drawn
        from the signals.
    out_path : path
        The HTML file to write.
    session_summary : dict, optional
        ``neurolace demo --json`` output (blocks with BPS, time to target) or a
        dashboard export (blocks, ``latency_ms`` samples).
    session_name : str
        How messages name the summary (its path).
    allow_other_run : bool, default False
        Draw a summary whose ``run_id`` differs from the recording's NWB
        ``identifier`` (with a warning and a banner) instead of refusing.

    Raises
    ------
    FileNotFoundError
        ``nwb_path`` does not exist.
    RunMismatchError
        The summary and the recording come from different runs.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from neurolace.io.nwb import read_nwb

    nwb_path = Path(nwb_path)
    if not nwb_path.is_file():
        raise FileNotFoundError(f"session file not found: {nwb_path}")
    contents = read_nwb(nwb_path)
    recording = contents.recording
    run_id = str(recording.metadata.get("identifier", ""))
    run_problem = ("" if session_summary is None else
                   check_same_run(nwb_path, run_id, session_summary, session_name, allow_other_run=allow_other_run))
    import neurolace

    started = recording.metadata.get("session_start_time")
    decoder = (session_summary or {}).get("decoder")
    facts = [("file", nwb_path.name), ("run", run_id),
             ("recorded", started.isoformat(timespec="seconds") if isinstance(started, dt.datetime)
              else str(started or NOT_RECORDED)),
             ("report written", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")),
             ("neurolace", neurolace.__version__),
             ("decoder", str(decoder) if decoder else "none named: a session summary (--session-json) names it"),
             ("recording", (f"{recording.n_channels} channels at {recording.fs_hz:.2f} Hz, "
                           f"{recording.duration_s:.2f} s")),
             ("ground-truth units", unit_count_text(contents))]
    if session_summary is not None:
        facts.append(("session summary", f"{session_name}: " + (run_problem or "same run")))
        for key in ("channels", "grid_side", "seed"):
            if key in session_summary:
                facts.append((key, str(session_summary[key])))
    signals = _recording_signals(contents)
    sections = [_traces_section(recording, signals), _raster_section(recording, signals),
                _rate_section(recording, signals), _noise_section(signals), _detection_section(contents, signals),
                _sbp_section(signals), _tuning_section(contents), *_block_sections(session_summary),
                _latency_section(session_summary)]
    text = _render(f"neurolace session report: {nwb_path.stem}", facts, sections, warning=run_problem)
    with atomic_output(out_path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return sections
