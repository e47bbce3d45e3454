"""``neurolace simulate``: write a simulated N1-like recording with its ground truth as NWB."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from neurolace.cli.args import Number, add_force, check_output, physical_memory_bytes
from neurolace.core.errors import InvalidInputError
from neurolace.core.geometry import MAX_ELECTRODES

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


#: Accepted values of the numeric options (checked by argparse, shown in --help).
SECONDS = Number(float, minimum=0.0, exclusive_minimum=True, maximum=86400.0, unit="s")
ELECTRODES = Number(int, minimum=1, maximum=1_000_000)
SEED = Number(int, minimum=0, maximum=2**63 - 1)
MEMORY_GB = Number(float, minimum=0.0, exclusive_minimum=True, unit="GB")

#: Without --allow-large, at most MAX_ELECTRODES (four N1 implants). The NWB units table
#: is written unit by unit, about 0.4 CPU ms per unit (measured: 10.0 CPU s for the 22,588
#: ground-truth units of 4096 electrodes, 2.3 CPU s for the 5736 of 1024), so 100,000 electrodes
#: would spend minutes on it after simulating.
#: Without --allow-large, the estimated peak memory may be at most this many GB.
DEFAULT_MAX_MEMORY_GB = 4.0
#: Even with --allow-large, the estimate may use at most this share of the machine's memory.
MAX_PHYSICAL_SHARE = 0.8

# Peak memory model, fitted to the peak resident set (ru_maxrss) of `neurolace simulate` on the
# 2-core EPYC development machine (1024 x 0.2/2/8 s, 256 x 8 s, 2048 x 0.2 s, 4096 x 0.2 s measured
# 107-469 MB above the interpreter; the model's residuals were within 15 %) and rounded up.
ESTIMATE_FIXED_BYTES = 64e6
ESTIMATE_BYTES_PER_ELECTRODE = 80e3
ESTIMATE_BYTES_PER_CHANNEL_SAMPLE = 3.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write a simulated implant recording with ground truth (NWB)",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "--seconds", type=SECONDS, required=True, help=SECONDS.help("length of the recording in seconds")
    )
    parser.add_argument(
        "--electrodes",
        type=ELECTRODES,
        default=1024,
        help=f"number of electrodes: 1-16 (one thread) or a multiple of 16 (default 1024 = 64 threads x 16); "
        f"at most {MAX_ELECTRODES} without --allow-large",
    )
    parser.add_argument(
        "--seed", type=SEED, default=0, help=SEED.help("random seed; same seed, same data (default 0)")
    )
    parser.add_argument(
        "--out", required=True, metavar="FILE.nwb", help="output NWB file (written atomically)"
    )
    add_force(parser)
    parser.add_argument(
        "--max-memory-gb",
        type=MEMORY_GB,
        default=None,
        help=f"refuse a recording whose estimated peak memory exceeds this (default {DEFAULT_MAX_MEMORY_GB:g} GB; "
        f"never more than {100 * MAX_PHYSICAL_SHARE:.0f} %% of this machine's memory)",
    )
    parser.add_argument(
        "--allow-large",
        action="store_true",
        help=f"lift the caps of {MAX_ELECTRODES} electrodes and {DEFAULT_MAX_MEMORY_GB:g} GB estimated memory "
        f"(the {100 * MAX_PHYSICAL_SHARE:.0f} %% of physical memory still holds)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    parser.set_defaults(handler=run)


def _check_output_path(path: Path, *, force: bool) -> None:
    if path.suffix.lower() != ".nwb":
        raise InvalidInputError(f"--out must name a .nwb file, got {str(path)!r}")
    check_output(path, "--out", force=force)


def estimate_peak_bytes(seconds: float, electrodes: int) -> float:
    """Estimated peak memory of ``neurolace simulate``, in bytes (the measured model above)."""
    from neurolace.sim.spiking import N1_FS_HZ

    channel_samples = round(seconds * N1_FS_HZ) * electrodes
    return (
        ESTIMATE_FIXED_BYTES
        + ESTIMATE_BYTES_PER_ELECTRODE * electrodes
        + ESTIMATE_BYTES_PER_CHANNEL_SAMPLE * channel_samples
    )


def check_resources(
    seconds: float, electrodes: int, *, max_memory_gb: float | None = None, allow_large: bool = False
) -> float:
    """Refuse, before any work, a recording too large for the caps or for this machine.

    Parameters
    ----------
    seconds : float
        Length of the recording, s.
    electrodes : int
        Number of electrodes.
    max_memory_gb : float, optional
        Budget for the estimated peak memory, GB (default ``DEFAULT_MAX_MEMORY_GB``, or no
        budget but the machine's with ``allow_large``).
    allow_large : bool
        Lift the electrode cap and the default memory budget.

    Returns
    -------
    float
        The estimated peak memory, bytes.

    Raises
    ------
    InvalidInputError
        A cap is exceeded; the message gives the estimate and the flag that lifts the cap.
    """
    needed_bytes = estimate_peak_bytes(seconds, electrodes)
    estimate = (
        f"--seconds {seconds:g} with --electrodes {electrodes} needs about {needed_bytes / 1e9:.1f} GB "
        f"(estimated peak memory: {ESTIMATE_FIXED_BYTES / 1e6:.0f} MB + {ESTIMATE_BYTES_PER_ELECTRODE / 1e3:.0f} kB "
        f"per electrode + {ESTIMATE_BYTES_PER_CHANNEL_SAMPLE:g} B per sample and channel)"
    )
    physical_bytes = physical_memory_bytes()
    if physical_bytes is not None and needed_bytes > MAX_PHYSICAL_SHARE * physical_bytes:
        raise InvalidInputError(
            f"{estimate}; this machine has {physical_bytes / 1e9:.1f} GB (simulate shorter sessions or fewer electrodes)"
        )
    if not allow_large and electrodes > MAX_ELECTRODES:
        raise InvalidInputError(
            f"--electrodes {electrodes} is above the cap of {MAX_ELECTRODES}; {estimate}; "
            "pass --allow-large to simulate it anyway"
        )
    budget_gb = max_memory_gb if max_memory_gb is not None else (None if allow_large else DEFAULT_MAX_MEMORY_GB)
    if budget_gb is not None and needed_bytes > budget_gb * 1e9:
        raise InvalidInputError(
            f"{estimate}, above the budget of {budget_gb:g} GB; raise --max-memory-gb or pass --allow-large"
        )
    return needed_bytes


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from neurolace.io.nwb import write_nwb
    from neurolace.sim.implant import implant_geometry, simulate_implant

    try:
        implant_geometry(args.electrodes)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--electrodes: {exc}") from exc
    path = Path(args.out)
    _check_output_path(path, force=args.force)
    check_resources(args.seconds, args.electrodes, max_memory_gb=args.max_memory_gb, allow_large=args.allow_large)

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
            overwrite=args.force,
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
