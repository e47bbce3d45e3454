"""``neurolace simulate``: write a simulated N1-like recording with its ground truth as NWB."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from neurolace.core.errors import InvalidInputError

DESCRIPTION = """\
Simulate an N1-like implant: tuned motor-cortex units around threads of 16 electrodes,
recorded at 19,531.25 Hz by a 10-bit ADC, while a simulated participant makes
center-out-and-back reaches and clicks. Writes one NWB file holding the raw ADC codes
(with gain and electrode geometry), the ground-truth spike times of every unit, and a
units table (peak channel, position, amplitude, SNR, tuning). The same --seed always
gives the same samples and ground truth.

examples:
  neurolace simulate --seconds 10 --out session.nwb
  neurolace simulate --seconds 2 --electrodes 64 --seed 3 --out small.nwb --json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write a simulated implant recording with ground truth (NWB)",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "--seconds", type=float, required=True, help="length of the recording in seconds (> 0)"
    )
    parser.add_argument(
        "--electrodes",
        type=int,
        default=1024,
        help="number of electrodes: 1-16 (one thread) or a multiple of 16 (default 1024 = 64 threads x 16)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same data (default 0)")
    parser.add_argument(
        "--out", required=True, metavar="FILE.nwb", help="output NWB file (written atomically)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    parser.set_defaults(handler=run)


def _check_output_path(path: Path) -> None:
    if path.suffix.lower() != ".nwb":
        raise InvalidInputError(f"--out must name a .nwb file, got {str(path)!r}")
    if path.is_dir():
        raise IsADirectoryError(f"--out {str(path)!r} is a directory")
    existing = path.parent if str(path.parent) else Path(".")
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidInputError(f"cannot write --out {str(path)!r}: {str(existing)!r} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot write --out {str(path)!r}: directory {str(existing)!r} is not writable"
        )


def _check_memory(seconds: float, electrodes: int) -> None:
    """Refuse sessions whose int16 samples alone would not fit in this machine's memory."""
    from neurolace.sim.spiking import N1_FS_HZ

    needed_bytes = round(seconds * N1_FS_HZ) * electrodes * 2
    try:
        physical_bytes = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not available on this platform
        return
    if needed_bytes > 0.8 * physical_bytes:
        raise InvalidInputError(
            f"--seconds {seconds:g} with --electrodes {electrodes} needs {needed_bytes / 1e9:.1f} GB for the "
            f"samples alone; this machine has {physical_bytes / 1e9:.1f} GB (simulate shorter sessions)"
        )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from neurolace.io.nwb import write_nwb
    from neurolace.sim.implant import implant_geometry, simulate_implant

    if not np.isfinite(args.seconds) or args.seconds <= 0:
        raise InvalidInputError(f"--seconds must be a positive number, got {args.seconds:g}")
    if args.seed < 0:
        raise InvalidInputError(f"--seed must be >= 0, got {args.seed}")
    try:
        implant_geometry(args.electrodes)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--electrodes: {exc}") from exc
    path = Path(args.out)
    _check_output_path(path)
    _check_memory(args.seconds, args.electrodes)

    console = Console(stderr=True)
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("simulating", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        simulated = simulate_implant(
            duration_s=args.seconds, n_electrodes=args.electrodes, seed=args.seed, progress=advance
        )
        progress.update(task, description="writing NWB", completed=None, total=None)
        truth = simulated.ground_truth
        write_nwb(
            path,
            simulated.recording,
            units=truth.units,
            unit_table=truth.unit_table(),
            session_description=(
                f"neurolace simulated N1-like implant: {args.electrodes} electrodes, {args.seconds:g} s, "
                f"seed {args.seed}"
            ),
            extra_metadata={
                "keywords": ["simulation", "neurolace", "ground truth"],
                "experiment_description": (
                    "Simulated center-out-and-back reaching with clicks; raw 10-bit N1-like recording and "
                    "ground-truth units from neurolace.sim.simulate_implant (see docs/simulator.md)."
                ),
            },
        )
    elapsed_s = time.perf_counter() - started
    summary = {
        "path": str(path),
        "seconds": float(args.seconds),
        "electrodes": int(args.electrodes),
        "seed": int(args.seed),
        "units": int(truth.n_units),
        "spikes": int(truth.units.n_spikes),
        "noise_rms_uv": float(np.median(truth.noise_rms_uv)),
        "fs_hz": float(simulated.recording.fs_hz),
        "units_per_electrode_snr5": float(truth.units_per_channel(min_snr=5.0).mean()),
        "elapsed_s": round(elapsed_s, 3),
    }
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        sys.stdout.write(
            f"wrote {summary['path']}\n"
            f"  {summary['seconds']:g} s x {summary['electrodes']} electrodes at {summary['fs_hz']:.2f} Hz, "
            f"seed {summary['seed']}\n"
            f"  {summary['units']} units, {summary['spikes']} spikes, "
            f"{summary['units_per_electrode_snr5']:.2f} units per electrode above 5x noise\n"
            f"  median noise {summary['noise_rms_uv']:.1f} µV RMS (thermal + hash); took {elapsed_s:.1f} s\n"
        )
    return 0
