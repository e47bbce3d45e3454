"""The session report: one self-contained HTML file of plots from an NWB session (``neurolace report``).

:func:`build_report` reads a session written by :func:`neurolace.io.nwb.write_nwb`
and, optionally, a JSON session summary (``neurolace demo --json`` or the
dashboard's ``/api/sessions/<id>/export``), and draws what they hold:

- **BPS per block** and **time to target** per block (session summary);
- **tuning curves** of the highest-SNR ground-truth units
  (:class:`neurolace.sim.tuning.TuningModel` at unit intended speed, from the
  simulator's unit table);
- **detection rates**: threshold crossings per channel, and for ground-truth
  units the fraction of their spikes with a crossing on their peak channel
  within :data:`DETECTION_TOLERANCE_MS`, against SNR;
- **spike-band power** per channel (binned features);
- **latency histogram** (summary with ``latency_ms`` samples).

Anything the inputs do not carry is named in the report as "not recorded in
this file" rather than left out silently. Figures are matplotlib PNGs
embedded as base64, so the report is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurolace.core.errors import InvalidInputError
from neurolace.io.atomic import atomic_output

__all__ = ["DETECTION_TOLERANCE_MS", "ReportSection", "build_report", "detection_rates", "load_session_summary"]

#: a ground-truth spike counts as detected if a crossing on its peak channel lies this close
DETECTION_TOLERANCE_MS = 0.5
#: tuning curves drawn for this many units (highest SNR first)
N_TUNING_UNITS = 12
NOT_RECORDED = "not recorded in this file"


@dataclass
class ReportSection:
    """One section of the report: a title, a note, an optional figure (PNG bytes) and table rows."""

    title: str
    note: str = ""
    png: bytes | None = None
    rows: list[list[str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    recorded: bool = True


def load_session_summary(path: str | os.PathLike) -> dict:
    """Read a JSON session summary and check it has a ``blocks`` list (or a latency list)."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--session-json {path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(summary, dict) or not ("blocks" in summary or "latency_ms" in summary):
        raise InvalidInputError(f"--session-json {path}: expected an object with 'blocks' "
                                "(neurolace demo --json) or 'latency_ms'")
    if "blocks" in summary and not isinstance(summary["blocks"], list):
        raise InvalidInputError(f"--session-json {path}: 'blocks' must be a list")
    return summary


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
        note = (f"BPS per block: {NOT_RECORDED}; pass --session-json with 'neurolace demo --json' output"
                if summary is None else "BPS per block: the session summary has no blocks")
        return [ReportSection("BPS per block", note, recorded=False),
                ReportSection("Time to target", f"time to target: {NOT_RECORDED}", recorded=False)]
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
        return [bps_section, ReportSection("Time to target", f"time to target: {NOT_RECORDED}", recorded=False)]
    figure, axis = plt.subplots(figsize=(7, 3))
    axis.bar(names, [t if t is not None else 0.0 for t in times], color=colours)
    axis.set_ylabel("mean time to target (s)")
    axis.set_title("Time to target per block (mean over correct selections)")
    axis.tick_params(axis="x", rotation=30)
    return [bps_section, ReportSection("Time to target", "", _figure_png(figure))]


def _tuning_section(contents: Any) -> ReportSection:
    import matplotlib.pyplot as plt

    from neurolace.sim.tuning import TuningModel

    table = contents.unit_table
    needed = ("baseline_hz", "depth_hz", "preferred_direction_rad", "speed_gain_hz")
    if not all(name in table for name in needed):
        return ReportSection("Tuning curves", f"tuning curves: {NOT_RECORDED} (no ground-truth tuning in the unit "
                             "table; a recorded session needs cursor kinematics, which this file does not carry)",
                             recorded=False)
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
    for column, unit in enumerate(chosen):
        axis.plot(np.degrees(angles), rates[:, column], lw=1.2, label=f"unit {int(table['unit_id'][unit])}"
                  if "unit_id" in table else None)
    axis.set_xlabel("intended direction (deg), unit speed")
    axis.set_ylabel("rate (Hz)")
    axis.set_title(f"Ground-truth tuning of the {chosen.size} highest-SNR units")
    axis.legend(fontsize=6, ncol=4)
    return ReportSection("Tuning curves", "from the simulator's unit table (velocity cosine tuning, "
                         "neurolace.sim.tuning.TuningModel)", _figure_png(figure))


def _detection_section(contents: Any) -> ReportSection:
    import matplotlib.pyplot as plt

    events, recording = contents.events, contents.recording
    if events is None:
        return ReportSection("Detection rates", f"threshold crossings: {NOT_RECORDED}", recorded=False)
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
    note = ""
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
        note = "a unit's spike counts as detected when a crossing on its peak channel lies within the tolerance"
    section = ReportSection("Detection rates", note, _figure_png(figure), rows, ["measure", "value"])
    return section


def _sbp_section(contents: Any) -> ReportSection:
    import matplotlib.pyplot as plt

    for features in contents.features:
        names = list(features.feature_names)
        columns = [i for i, name in enumerate(names) if "spike_band_power" in str(name) or "sbp" in str(name).lower()]
        if not columns:
            continue
        mean_sbp = np.asarray(features.data)[:, columns].mean(axis=0)
        n = mean_sbp.size
        rows_per_column = 16 if n % 16 == 0 else 1
        image = mean_sbp.reshape(-1, rows_per_column).T
        figure, axis = plt.subplots(figsize=(9, 2.6))
        shown = axis.imshow(image, aspect="auto", cmap="inferno", interpolation="nearest")
        figure.colorbar(shown, ax=axis, label="mean SBP")
        axis.set_xlabel("thread" if rows_per_column == 16 else "channel")
        axis.set_ylabel("electrode" if rows_per_column == 16 else "")
        axis.set_title(f"Mean spike-band power over {features.n_bins} bins of {features.bin_width_s * 1e3:g} ms")
        return ReportSection("Spike-band power", "", _figure_png(figure))
    return ReportSection("Spike-band power", f"spike-band power: {NOT_RECORDED}", recorded=False)


def _latency_section(summary: dict | None) -> ReportSection:
    import matplotlib.pyplot as plt

    samples = None if summary is None else summary.get("latency_ms")
    if not samples:
        return ReportSection("Loop latency", f"latency histogram: {NOT_RECORDED}; the dashboard's session export "
                             "(GET /api/sessions/<id>/export) carries latency samples", recorded=False)
    values = np.asarray(samples, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return ReportSection("Loop latency", "latency_ms holds no finite samples", recorded=False)
    figure, axis = plt.subplots(figsize=(7, 3))
    axis.hist(values, bins=60, color="#9467bd")
    p50, p99 = np.percentile(values, [50, 99])
    axis.axvline(p50, color="k", lw=1)
    axis.axvline(p99, color="k", lw=1, ls="--")
    axis.set_xlabel("loop latency (ms): bin available -> cursor published")
    axis.set_ylabel("bins")
    axis.set_title(f"Loop latency, {values.size} bins: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    return ReportSection("Loop latency", "", _figure_png(figure))


def _render(title: str, facts: list[tuple[str, str]], sections: list[ReportSection]) -> str:
    escape = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        (f"<title>{escape(title)}</title><style>body{{font:14px/1.45 system-ui,sans-serif;max-width:1000px;"
        "margin:2rem auto;padding:0 1rem;color:#1b1f24}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;"
        "border-bottom:1px solid #ddd}table{border-collapse:collapse}td,th{padding:.15rem .6rem;border-bottom:"
        "1px solid #eee;text-align:right}td:first-child,th:first-child{text-align:left}.missing{color:#8a6d3b;"
        "background:#fcf8e3;padding:.3rem .6rem}img{max-width:100%}</style></head><body>"),
        f"<h1>{escape(title)}</h1><table>",
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
                 session_summary: dict | None = None) -> list[ReportSection]:
    """Write the HTML report of ``nwb_path`` to ``out_path`` (atomically); return its sections.

    Parameters
    ----------
    nwb_path : path
        A session written by :func:`neurolace.io.nwb.write_nwb`.
    out_path : path
        The HTML file to write.
    session_summary : dict, optional
        ``neurolace demo --json`` output (blocks with BPS, time to target) or a
        dashboard export (blocks, ``latency_ms`` samples).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from neurolace.io.nwb import read_nwb

    nwb_path = Path(nwb_path)
    if not nwb_path.is_file():
        raise FileNotFoundError(f"session file not found: {nwb_path}")
    contents = read_nwb(nwb_path)
    recording = contents.recording
    facts = [("file", nwb_path.name),
             ("recording", (f"{recording.n_channels} channels at {recording.fs_hz:.2f} Hz, "
                           f"{recording.duration_s:.2f} s")),
             ("ground-truth units", str(np.unique(contents.units.unit_id).size) if contents.units is not None
              else NOT_RECORDED)]
    if session_summary is not None:
        for key in ("decoder", "channels", "grid_side", "seed"):
            if key in session_summary:
                facts.append((key, str(session_summary[key])))
    sections = [*_block_sections(session_summary), _tuning_section(contents), _detection_section(contents),
                _sbp_section(contents), _latency_section(session_summary)]
    text = _render(f"neurolace session report: {nwb_path.stem}", facts, sections)
    with atomic_output(out_path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return sections
