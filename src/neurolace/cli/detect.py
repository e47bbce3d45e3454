"""``neurolace detect``: run the implant's signal chain over a recording file and report spikes."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from neurolace.cli.args import Number, add_force, check_output, physical_memory_bytes
from neurolace.core.errors import InvalidInputError
from neurolace.dsp.defaults import DEFAULT_CHUNK_MS, DEFAULT_DEAD_TIME_MS, DEFAULT_THRESHOLD
from neurolace.io import atomic_output, read_recording

__all__ = ["register", "run"]

#: Recordings at least this long show a progress bar on stderr.
PROGRESS_MIN_SECONDS = 10.0

#: Accepted values of the numeric options (checked by argparse before the file is read, shown
#: in --help). The bounds are sanity limits, far outside any extracellular recording, so that a
#: typo (a rate in Hz given in kHz, a dead time in samples) fails at once.
FS_HZ = Number(float, minimum=0.0, exclusive_minimum=True, maximum=1e6, unit="Hz")
CHANNELS = Number(int, minimum=1, maximum=65536)
GAIN_UV = Number(float, minimum=0.0, exclusive_minimum=True, maximum=1e6, unit="µV per code")
THRESHOLD = Number(float, minimum=-1000.0, maximum=1000.0)
DEAD_TIME_MS = Number(float, minimum=0.0, maximum=1000.0, unit="ms")
LOW_HZ = Number(float, minimum=0.0, exclusive_minimum=True, maximum=5e5, unit="Hz")
HIGH_HZ = Number(float, minimum=0.0, maximum=5e5, unit="Hz")
NOISE_WINDOW_S = Number(float, minimum=0.0, exclusive_minimum=True, maximum=3600.0, unit="s")
CHUNK_MS = Number(float, minimum=0.0, exclusive_minimum=True, maximum=60000.0, unit="ms")

#: detect holds the whole recording in memory as int16 codes; a WAV or raw input whose codes
#: would take more than this share of the machine's memory is refused before it is read.
MAX_MEMORY_SHARE = 0.5

DESCRIPTION = """\
Detect spikes in a recording the way the implant does on board: band-pass 300-6000 Hz
(by default linear-phase from running sums, which keeps spike shapes for a 1.69 ms delay;
detections are reported on the file's clock; --filter butterworth for the causal IIR),
common-average reference, noise per channel as
median(|x|)/0.6745 over the first --noise-window-s seconds, and threshold crossings at
--threshold times that noise with a --dead-time-ms dead time per channel.

INPUT is a .wav (16-bit PCM), .nwb, or headerless .raw/.bin/.dat file (these need
--fs-hz and --channels; --dtype gives the on-disk integer type).

Output: with --out, a CSV of one detection per row, header 'sample_index,channel'
(sample on the file's clock, 0-based channel position), written atomically; an existing
file is refused unless --force. The whole recording is held in memory as int16: a WAV or raw
file whose samples would take more than half of this machine's memory is refused. A summary
goes to stdout; with --json it is one JSON object (n_spikes, n_channels, seconds,
realtime_factor, rates and noise per channel).

examples:
  neurolace detect clip.wav --out spikes.csv
  neurolace detect tetrode.raw --fs-hz 15000 --channels 4 --json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="detect spikes in a WAV, NWB or raw recording with the on-implant signal chain",
        description=DESCRIPTION,
    )
    parser.add_argument("input", metavar="INPUT", help="recording file (.wav, .nwb, .raw/.bin/.dat)")
    parser.add_argument("--out", metavar="CSV", help="write detections here as 'sample_index,channel' rows")
    add_force(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a text summary")
    parser.add_argument("--fs-hz", type=FS_HZ, help=FS_HZ.help("sampling rate (required for raw files)"))
    parser.add_argument(
        "--channels", type=CHANNELS, help=CHANNELS.help("number of interleaved channels (required for raw files)")
    )
    parser.add_argument("--dtype", default="int16", help="on-disk integer type of raw files (default: int16)")
    parser.add_argument(
        "--gain-uv", type=GAIN_UV, help=GAIN_UV.help("µV per ADC code (default: the reader's assumption)")
    )
    parser.add_argument(
        "--threshold",
        type=THRESHOLD,
        default=DEFAULT_THRESHOLD,
        help=THRESHOLD.help(
            f"threshold as a multiple of noise RMS; negative = downward (default: {DEFAULT_THRESHOLD})"
        ),
    )
    parser.add_argument(
        "--dead-time-ms",
        type=DEAD_TIME_MS,
        default=DEFAULT_DEAD_TIME_MS,
        help=DEAD_TIME_MS.help(f"per-channel dead time after a detection (default: {DEFAULT_DEAD_TIME_MS})"),
    )
    parser.add_argument(
        "--low-hz", type=LOW_HZ, default=300.0, help=LOW_HZ.help("band-pass low corner (default: 300)")
    )
    parser.add_argument(
        "--high-hz",
        type=HIGH_HZ,
        default=6000.0,
        help=HIGH_HZ.help("band-pass high corner, below fs/2 (default: 6000; use 0 for a high-pass only)"),
    )
    parser.add_argument(
        "--filter",
        choices=("moving_average", "butterworth", "fir"),
        default="moving_average",
        help="spike band-pass: linear-phase band-pass from running sums (default; keeps spike shapes, "
        "1.69 ms latency at 19.5 kHz), causal 4th-order Butterworth (no latency, shrinks narrow spike "
        "troughs) or a 101-tap linear-phase FIR (2.56 ms latency, slower); detections are always "
        "reported on the file's clock",
    )
    parser.add_argument(
        "--reference",
        choices=("mean", "median", "none"),
        default="mean",
        help="common-average reference across channels (default: mean)",
    )
    parser.add_argument(
        "--noise-window-s",
        type=NOISE_WINDOW_S,
        default=1.0,
        help=NOISE_WINDOW_S.help("seconds at the start used to estimate noise (default: 1.0)"),
    )
    parser.add_argument(
        "--chunk-ms",
        type=CHUNK_MS,
        default=DEFAULT_CHUNK_MS,
        help=CHUNK_MS.help(f"block length fed to the chain; results do not depend on it (default: {DEFAULT_CHUNK_MS:g})"),
    )
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.set_defaults(handler=run)


def _check_input_size(path: str, dtype: str) -> None:
    """Refuse a WAV or raw file whose int16 samples would not fit in half of this machine's memory."""
    from pathlib import Path

    from neurolace.io import RAW_EXTENSIONS

    path = Path(path)
    extension = path.suffix.lower()
    if extension not in (".wav", *RAW_EXTENSIONS) or not path.is_file():
        return  # NWB stores compressed chunks; other problems are the reader's to report
    size_bytes = path.stat().st_size
    if extension != ".wav":
        try:
            size_bytes = size_bytes * 2 // max(np.dtype(dtype).itemsize, 1)
        except TypeError:
            return  # the reader names the bad --dtype
    physical_bytes = physical_memory_bytes()
    if physical_bytes is not None and size_bytes > MAX_MEMORY_SHARE * physical_bytes:
        raise InvalidInputError(
            f"{path} holds about {size_bytes / 1e9:.1f} GB of int16 samples, more than "
            f"{100 * MAX_MEMORY_SHARE:.0f} % of this machine's {physical_bytes / 1e9:.1f} GB; detect reads the "
            "whole recording into memory (split the file, or use a machine with more memory)"
        )


def _summary(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"median": None, "min": None, "max": None}
    return {"median": float(np.median(values)), "min": float(values.min()), "max": float(values.max())}


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_output(args.out, "--out", force=args.force)
    _check_input_size(args.input, args.dtype)
    from neurolace.dsp.chain import run_signal_chain  # scipy and numba: only when detecting

    recording = read_recording(
        args.input, fs_hz=args.fs_hz, n_channels=args.channels, dtype=args.dtype, gain_uv=args.gain_uv
    )
    if recording.n_samples == 0:
        raise InvalidInputError(f"{args.input} holds no samples: nothing to detect")
    options = {
        "chunk_ms": args.chunk_ms,
        "threshold": args.threshold,
        "dead_time_ms": args.dead_time_ms,
        "low_hz": args.low_hz,
        "filter_design": args.filter,
        "high_hz": None if args.high_hz == 0 else args.high_hz,
        "reference": None if args.reference == "none" else args.reference,
        "noise_window_s": args.noise_window_s,
    }
    show_progress = not args.no_progress and recording.duration_s >= PROGRESS_MIN_SECONDS
    start = time.perf_counter()
    if show_progress:
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task(f"detecting in {recording.duration_s:.0f} s", total=recording.n_samples)
            result = run_signal_chain(
                recording, progress=lambda done: progress.update(task, completed=done), **options
            )
    else:
        result = run_signal_chain(recording, **options)
    elapsed_s = time.perf_counter() - start
    events = result.events
    if args.out is not None:
        from neurolace.io.events_csv import write_events_csv

        with atomic_output(args.out, overwrite=args.force) as temporary:
            write_events_csv(temporary, events.sample_index, events.channel_index)
    rates_hz = events.rates_hz(recording.duration_s)
    report = {
        "input": str(args.input),
        "n_spikes": events.n_spikes,
        "n_channels": recording.n_channels,
        "n_samples": recording.n_samples,
        "fs_hz": recording.fs_hz,
        "seconds": recording.duration_s,
        "processing_seconds": elapsed_s,
        "realtime_factor": recording.duration_s / elapsed_s if elapsed_s > 0 else None,
        "gain_uv": recording.gain_uv,
        "gain_uv_assumed": bool(recording.metadata.get("gain_uv_assumed", False)),
        "threshold": args.threshold,
        "filter": args.filter,
        "rate_hz": {"mean": float(rates_hz.mean()), **_summary(rates_hz)},
        "noise_uv": _summary(result.noise_uv),
        "rates_hz_per_channel": [float(rate) for rate in rates_hz],
        "noise_uv_per_channel": [float(noise) for noise in result.noise_uv],
        "out": args.out,
    }
    if args.json:
        print(json.dumps(report))
    else:
        assumed = " (assumed gain, the file does not give one)" if report["gain_uv_assumed"] else ""
        print(
            f"{events.n_spikes} spikes on {recording.n_channels} channel(s) in {recording.duration_s:.3f} s "
            f"({report['rate_hz']['mean']:.2f} Hz per channel); noise median "
            f"{report['noise_uv']['median']:.3g} µV{assumed}; processed at {report['realtime_factor']:.1f}x real time"
        )
        if args.out:
            print(f"wrote {args.out}")
    sys.stdout.flush()
    return 0
