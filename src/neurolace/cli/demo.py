"""``neurolace demo``: the main job on embedded defaults.

Two parts, both simulated and seeded:

1. the implant: a short N1-like recording (``--electrodes``, the path's default) runs
   through the on-implant signal chain; raw codes, detections, binned features
   and ground truth are written to one NWB file;
2. the closed loop: the automated calibration session (observation block,
   first decoder, closed-loop block, ReFIT, timed Webgrid blocks) on the
   simulated participant, scored in bits per second; with ``--task typing``
   the same calibration, then copy-typing blocks on the on-screen keyboard
   without word prediction, with it, and with it plus the decoder assistance
   (same phrases and noise seeds, :func:`neurolace.runtime.typing.compare_typing`),
   scored in correct characters per minute.

A rich progress bar on stderr steps through both parts (simulate, chain,
write, then each closed-loop block) in an interactive terminal; elsewhere
each step is one status line. Each run draws a run id, written as the NWB
file's ``identifier`` and as ``run_id`` in the summary, so ``neurolace
report`` can tell that a summary and a recording belong together.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from neurolace.cli.args import Number
from neurolace.cli.output import stdout_console
from neurolace.core.errors import InvalidInputError
from neurolace.decode.registry import DECODERS  # light: the names, no scipy

#: feature paths (the default first); mirrors neurolace.runtime.nodes.sources.PATHS, kept here so
#: ``neurolace --help`` does not import the runtime (tests/test_cli_demo.py checks they agree)
PATHS = ("implant", "counts")
#: what the calibrated decoder is scored on
TASKS = ("webgrid", "typing")
#: Sizes per path. The implant path simulates every waveform and its decoders fit on two features per
#: channel: the counts path's sizes (1024 electrodes, 120 s calibration blocks) took over 344 CPU s
#: there (unfinished), so it runs 256 electrodes and the calibration blocks of sessions/closed_loop_sim.toml
#: (docs/closed-loop.md, "Paths", has the measurements and the BPS of both paths at these sizes).
DEFAULT_ELECTRODES = {"implant": 256, "counts": 1024}
DEFAULT_OPEN_LOOP_S = {"implant": 60.0, "counts": 120.0}
DEFAULT_CLOSED_LOOP_S = {"implant": 40.0, "counts": 120.0}

DESCRIPTION = """\
Run a simulated brain-computer-interface session end to end and print what it did.

  1. implant: simulate --chain-seconds of an N1-like implant of --electrodes, run the
     on-implant chain (band-pass, common-average reference, threshold crossings,
     spike-band power, 20 ms bins) and write everything with ground truth to an NWB file;
  2. closed loop: calibrate a decoder on the simulated participant (observation block of
     --open-loop-seconds, first decoder, closed-loop block and ReFIT check block of
     --closed-loop-seconds each) and score --blocks timed Webgrid blocks of --seconds each
     in bits per second, beside the perfect decoder's on the same participant and targets.
     --path implant (the default): every 20 ms intention drives the simulated implant's
     units, their spike waveforms at 19.5 kHz go through the on-implant chain, and the
     decoder sees each bin's threshold crossings and spike-band power of every channel.
     --path counts: the decoder sees the participant's Poisson counts (fast mode, no
     waveforms). The JSON says which (path, features, n_features).

Sizes: the implant path simulates every spike waveform and its decoders fit on two features
per channel, so by default it runs 256 electrodes and calibration blocks of 60 s (observation)
and 40 s (closed loop, ReFIT check): 200 s simulated with one 60 s Webgrid block. The counts
path keeps 1024 electrodes and 120 s blocks (420 s simulated). Measured on the project's 2-core
machine, quiet: implant path at its defaults 27 s wall (31 CPU s), counts path 38 s (52 CPU s);
under load 52 and 115 CPU s; the implant path at the counts path's sizes over 344 CPU s. Any of
--electrodes, --open-loop-seconds and --closed-loop-seconds overrides a path's default.

Unless --headless, the live dashboard starts first on http://127.0.0.1:8000 (another free
port if that one is taken) and its login link is printed: it shows a simulated session live,
lets you play Webgrid with the mouse, and shows this run's blocks when they finish. In an
interactive terminal the dashboard keeps serving after the run until Ctrl-C.

examples:
  neurolace demo
  neurolace demo --headless --seconds 30 --json
  neurolace demo --decoder wiener --no-refit --seed 3
  neurolace demo --path counts                      # the fast mode
  neurolace demo --open-loop-seconds 60 --closed-loop-seconds 40
  neurolace demo --task typing --headless --json   # copy-typing, with and without prediction

--task typing: after the same calibration, three copy-typing blocks of --seconds each on the
on-screen QWERTY keyboard (held-out phrases of the project's phrase set, same phrases and noise
seeds): without word prediction, with it (three suggestion keys from the package's language
model; needs pip install 'neurolace[keyboard]'), and with it plus the decoder assistance (the
cursor slowed over keys the model ranks likely). The JSON has ccpm, ccpm_without_prediction,
ccpm_assisted, error_rate, keystrokes_per_char; each block's text is saved as it is typed in
--out-dir/typed-<block>.txt. --blocks and --grid-side apply to Webgrid only.
"""



def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run a simulated session: implant chain, then closed-loop Webgrid",
                                   description=DESCRIPTION)
    parser.add_argument("--task", choices=TASKS, default="webgrid",
                        help="what the calibrated decoder is scored on: 'webgrid' (default, bits per second) or "
                        "'typing' (copy-typing on the on-screen keyboard with and without word prediction, "
                        "correct characters per minute)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of each scored Webgrid (or typing) block in seconds (default 60)")
    parser.add_argument("--blocks", type=int, default=1, help="number of scored Webgrid blocks (default 1)")
    parser.add_argument("--chain-seconds", type=float, default=2.0,
                        help="seconds of raw implant data to simulate and process (default 2)")
    parser.add_argument("--electrodes", type=int, default=None,
                        help=f"electrodes/channels of both parts (default {DEFAULT_ELECTRODES['implant']} on the "
                        f"implant path, {DEFAULT_ELECTRODES['counts']} on the counts path; see 'Time' above)")
    parser.add_argument("--path", choices=PATHS, default="implant",
                        help="what the decoder sees: 'implant' (default): the intention drives the simulated "
                        "implant's units, spike waveforms at 19.5 kHz go through the on-implant chain, and each "
                        "20 ms bin holds every channel's threshold crossings and spike-band power; 'counts': the "
                        "participant's Poisson counts (fast mode, no waveforms)")
    parser.add_argument("--no-link", action="store_true",
                        help="hand the bins to the decoder in memory instead of across the secure link (sealed "
                        "Noise_IK frames on a simulated BLE-class radio, the default)")
    parser.add_argument("--link-loss", type=Number(float, minimum=0.0, maximum=0.99), default=0.0, metavar="P",
                        help="mean frame loss of the simulated radio, in bursts (default 0); lost bins reach "
                        "the decoder as missing bins")
    parser.add_argument("--open-loop-seconds", type=float, default=None,
                        help=f"length of the observation block (default {DEFAULT_OPEN_LOOP_S['implant']:g} on the "
                        f"implant path, {DEFAULT_OPEN_LOOP_S['counts']:g} on the counts path)")
    parser.add_argument("--closed-loop-seconds", type=float, default=None,
                        help="length of the first closed-loop block and of the ReFIT check block (default "
                        f"{DEFAULT_CLOSED_LOOP_S['implant']:g} on the implant path, "
                        f"{DEFAULT_CLOSED_LOOP_S['counts']:g} on the counts path)")
    parser.add_argument("--decoder", choices=DECODERS, default="kalman", help="velocity decoder (default kalman)")
    parser.add_argument("--no-refit", action="store_true", help="skip the ReFIT recalibration block")
    parser.add_argument("--grid-side", type=int, default=30, help="Webgrid side N of the scored blocks (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole session (default 0)")
    parser.add_argument("--out-dir", default="out/demo", help="where the NWB file goes (default out/demo)")
    parser.add_argument("--headless", action="store_true", help="do not start the live web dashboard")
    parser.add_argument("--port", type=int, default=8000, help="dashboard port on 127.0.0.1 (default 8000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the text summary")
    parser.set_defaults(handler=run)


def _check_args(args: argparse.Namespace) -> None:
    for name, defaults in (("electrodes", DEFAULT_ELECTRODES), ("open_loop_seconds", DEFAULT_OPEN_LOOP_S),
                           ("closed_loop_seconds", DEFAULT_CLOSED_LOOP_S)):
        if getattr(args, name) is None:
            setattr(args, name, defaults[args.path])
    for name in ("seconds", "chain_seconds", "open_loop_seconds", "closed_loop_seconds"):
        value = getattr(args, name)
        if not np.isfinite(value) or value <= 0:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be a positive number of seconds, got {value:g}")
    if args.blocks < 1:
        raise InvalidInputError(f"--blocks must be >= 1, got {args.blocks}")
    if args.seed < 0:
        raise InvalidInputError(f"--seed must be >= 0, got {args.seed}")
    if args.grid_side < 2:
        raise InvalidInputError(f"--grid-side must be >= 2, got {args.grid_side}")


#: steps of the implant part, in order (the progress bar counts them before the closed-loop blocks)
IMPLANT_STEPS = 3


def run_implant_part(args: argparse.Namespace, status, run_id: str) -> dict:
    """Simulate, run the chain, write the NWB file (NWB ``identifier`` = ``run_id``); return the summary."""
    from neurolace.dsp.chain import run_signal_chain
    from neurolace.io.nwb import write_nwb
    from neurolace.sim.implant import simulate_implant

    status(f"simulating {args.chain_seconds:g} s of {args.electrodes} electrodes")
    simulated = simulate_implant(duration_s=args.chain_seconds, n_electrodes=args.electrodes, seed=args.seed)
    recording = simulated.recording
    status("running the on-implant signal chain")
    # compile the chain's numba kernels on a few channels first, so the real-time factor
    # measures the chain, not the one-off compilation
    warm_up_samples = min(recording.n_samples, int(1.2 * recording.fs_hz))
    run_signal_chain(recording.slice_samples(0, warm_up_samples).select_channels(np.arange(min(4, recording.n_channels))))
    started = time.perf_counter()
    chain = run_signal_chain(recording)
    chain_s = time.perf_counter() - started
    truth = simulated.ground_truth
    path = Path(args.out_dir) / "demo.nwb"
    status(f"writing {path}")
    write_nwb(
        path,
        recording,
        identifier=run_id,
        events=chain.events,
        features=[chain.features],
        units=truth.units,
        unit_table=truth.unit_table(),
        session_description=f"neurolace demo: simulated {args.electrodes}-electrode implant, seed {args.seed}",
        subject_id="simulated-participant",
        extra_metadata={
            "subject": {"species": "Homo sapiens", "sex": "U", "age": "P30Y",
                        "description": "simulated participant (neurolace.sim)"},
            "keywords": ["simulation", "neurolace", "demo"],
        },
    )
    rates = chain.events.rates_hz(recording.duration_s)
    return {
        "channels": recording.n_channels,
        "chain_seconds": recording.duration_s,
        "fs_hz": recording.fs_hz,
        "n_spikes": chain.events.n_spikes,
        "mean_rate_hz": float(rates.mean()),
        "median_noise_uv": float(np.median(chain.noise_uv)),
        "ground_truth_units": truth.n_units,
        "realtime_factor": recording.duration_s / chain_s,
        "nwb_path": str(path),
    }


def n_closed_loop_blocks(args: argparse.Namespace) -> int:
    """Blocks of the calibration session: open loop, closed loop, ReFIT (unless --no-refit), the Webgrid blocks.

    With ``--task typing``: the calibration (one step) and the three typing blocks.
    """
    if getattr(args, "task", "webgrid") == "typing":
        return 1 + TYPING_BLOCKS
    return 2 + (0 if args.no_refit else 1) + args.blocks


#: typing blocks of ``--task typing``: without prediction, with it, with it and the assistance
TYPING_BLOCKS = 3


class _Steps:
    """The demo's steps: one rich progress bar in a terminal, one status line per step elsewhere.

    Calling the object with a message starts the next step; ``total`` corrects
    the number of steps when the session reports its own block count.
    """

    def __init__(self, console, *, n_steps: int, quiet: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.quiet = quiet
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True,
                                 disable=quiet or not console.is_terminal)
        self.task = self.progress.add_task("starting", total=n_steps)
        self.started = 0

    def __call__(self, message: str, *, total: int | None = None) -> None:
        if self.progress.disable:
            if not self.quiet:
                self.console.print(f"[dim]… {message}[/dim]")
            return
        self.progress.update(self.task, description=message, completed=self.started,
                             **({} if total is None else {"total": total}))
        self.started += 1

    def __enter__(self) -> "_Steps":
        self.progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.progress.stop()


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    _check_args(args)
    console = Console(stderr=True)
    dashboard = None if args.headless else _start_dashboard(args, console)
    try:
        with _Steps(console, n_steps=IMPLANT_STEPS + n_closed_loop_blocks(args), quiet=args.json) as status:
            summary = _run_session(args, status, dashboard)
        return _report(args, summary, dashboard)
    finally:
        if dashboard is not None:
            dashboard.stop()


def still_serving_message(login_url: str) -> str:
    """The line printed while the dashboard keeps serving after the run.

    The URL stands alone between spaces: terminals take trailing punctuation such
    as ``;`` into a clicked link, and the token's signature then fails to verify.
    """
    return f"dashboard still serving at  {login_url}  (Ctrl-C stops it)"


def _start_dashboard(args: argparse.Namespace, console):
    from neurolace.core.errors import NeurolaceError
    from neurolace.web.server import start_in_background

    try:
        dashboard = start_in_background(host="127.0.0.1", port=args.port)
    except NeurolaceError:
        if args.port != 8000:
            raise
        dashboard = start_in_background(host="127.0.0.1", port=0)
    console.print(f"dashboard: {dashboard.login_url()}", soft_wrap=True)
    return dashboard


def _run_session(args: argparse.Namespace, status: _Steps, dashboard=None) -> dict:
    """Both parts of the demo; return the summary (``neurolace demo --json``)."""
    from neurolace.runtime.closed_loop import ideal_webgrid_bps, run_calibration_session
    from neurolace.runtime.nodes.sources import PATH_FEATURES, build_feature_source
    from neurolace.sim.participant import SimulatedParticipant

    run_id = f"neurolace-demo-{uuid.uuid4()}"
    implant = run_implant_part(args, status, run_id)

    def progress(block_name: str, index: int, n_blocks: int) -> None:
        status(f"closed loop: block {index + 1}/{n_blocks} ({block_name})", total=IMPLANT_STEPS + n_blocks)

    started, cpu_started = time.perf_counter(), time.process_time()
    participant = SimulatedParticipant(n_channels=args.electrodes, seed=args.seed)
    source = build_feature_source(participant, args.path)
    if not args.no_link:  # implant -> sealed frames -> radio -> host, one bin at a time
        from neurolace.runtime.secure_link import LinkSettings, SecureLinkSource

        source = SecureLinkSource(source, LinkSettings(loss=args.link_loss), seed=args.seed)
    webgrid = {"seed": args.seed, "n_channels": args.electrodes, "grid_side": args.grid_side,
               "webgrid_seconds": args.seconds, "n_webgrid_blocks": args.blocks, "participant": participant}
    if args.task == "typing":
        scored = _run_typing(args, status, webgrid, source, dashboard)
        loop_elapsed_s, loop_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        return {**scored, "path": args.path, "features": list(PATH_FEATURES[args.path]),
                "n_features": int(source.n_features), "run_id": run_id, "implant": implant,
                "link": _link_summary(source), "nwb_path": implant["nwb_path"],
                "closed_loop_elapsed_s": loop_elapsed_s, "closed_loop_cpu_s": loop_cpu_s}
    session = run_calibration_session(decoder=args.decoder, refit=not args.no_refit, progress=progress,
                                      source=source, open_loop_seconds=args.open_loop_seconds,
                                      closed_loop_seconds=args.closed_loop_seconds, **webgrid)
    loop_elapsed_s, loop_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    # The ceiling: the perfect decoder on the same participant, seeds and block lengths. It never reads
    # the features (the cursor follows the intention) and the participant's noise does not depend on the
    # source (runtime.closed_loop.block_seeds), so the counts source gives the same ceiling at no cost.
    ideal_bps = ideal_webgrid_bps(cursor_gain_per_s=session.cursor_gain_per_s, **webgrid)
    closed_loop = session.to_dict()
    simulated_s = sum(block["duration_s"] for block in closed_loop["blocks"])
    return {**closed_loop, "task": "webgrid", "path": args.path, "features": list(PATH_FEATURES[args.path]),
            "n_features": int(source.n_features), "ideal_bps": ideal_bps, "run_id": run_id, "implant": implant,
            "link": _link_summary(source),
            "nwb_path": implant["nwb_path"], "closed_loop_elapsed_s": loop_elapsed_s,
            "closed_loop_cpu_s": loop_cpu_s, "closed_loop_simulated_s": simulated_s}


def _live_typing(dashboard):
    """The ``on_step`` that shows a typing block on the dashboard's live view (None without a dashboard)."""
    if dashboard is None or not dashboard.sessions:
        return None
    from neurolace.web.typing_view import keyboard_keys, typing_state

    live = next(iter(dashboard.sessions.values()))
    shown = {"task": None}

    def on_step(task, cursor_xy, time_s: float) -> None:
        keys = None
        if shown["task"] is not task:  # a new block: its keys go once
            shown["task"], keys = task, keyboard_keys(task)
        live.set_typing(typing_state(task, cursor_xy, time_s=time_s), keys=keys)

    return on_step


def _run_typing(args: argparse.Namespace, status: _Steps, webgrid: dict, source, dashboard=None) -> dict:
    """``--task typing``: the demo's calibration, then the typing blocks with and without prediction."""
    from neurolace.runtime.closed_loop import calibrate_session
    from neurolace.runtime.typing import KeyAssistance, compare_typing
    from neurolace.tasks.language import LanguageModel

    n_steps = IMPLANT_STEPS + n_closed_loop_blocks(args)
    status("closed loop: calibration (observation, closed loop" + ("" if args.no_refit else ", ReFIT") + ")",
           total=n_steps)
    language_model = LanguageModel()  # before the calibration: a missing keyboard extra fails fast
    calibration = calibrate_session(decoder=args.decoder, refit=not args.no_refit, source=source,
                                    open_loop_seconds=args.open_loop_seconds,
                                    closed_loop_seconds=args.closed_loop_seconds, **webgrid)

    def progress(block_name: str, index: int, n_blocks: int) -> None:
        status(f"typing: block {index + 1}/{n_blocks} ({block_name})", total=n_steps)

    on_step = _live_typing(dashboard)
    try:
        comparison = compare_typing(calibration, language_model=language_model, assistance=KeyAssistance(),
                                    text_dir=args.out_dir, progress=progress, duration_s=args.seconds,
                                    seed=args.seed, on_step=on_step)
    finally:
        if on_step is not None:
            next(iter(dashboard.sessions.values())).set_typing(None)  # the live view goes back to Webgrid
    blocks = [block.to_dict() for block in calibration.blocks]
    simulated_s = sum(block["duration_s"] for block in blocks) + TYPING_BLOCKS * args.seconds
    return {"task": "typing", **comparison.to_dict(), "decoder": args.decoder, "channels": args.electrodes,
            "seed": args.seed, "refit": not args.no_refit, "typing_seconds": args.seconds,
            "cursor_gain_per_s": calibration.settings.cursor_gain_per_s, "blocks": blocks,
            "closed_loop_simulated_s": simulated_s}


def _link_summary(source) -> dict | None:
    """What the secure link did in the closed loop (None with ``--no-link``)."""
    report = getattr(source, "report", None)
    if report is None:
        return None
    link = report()
    host = link["host"]
    return {"handshakes": host["handshakes"], "delivered_bins": host["delivered_bins"],
            "missing_bins": host["missing_bins"], "late_bins": host["late_bins"] + link["late_for_loop"],
            "rejected_frames": host["endpoint"]["rejected_total"],
            "uplink_bytes": link["implant"]["radio"]["bytes_sent"], "radio_lost": link["implant"]["radio"]["lost"]}


def _report(args: argparse.Namespace, summary: dict, dashboard) -> int:
    """Print the summary (text or one JSON object); keep an interactive dashboard serving until Ctrl-C."""
    if dashboard is not None:
        dashboard.set_summary(summary)
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return 0
    (_print_typing_summary if summary.get("task") == "typing" else _print_summary)(summary)
    if dashboard is not None and sys.stdin.isatty() and sys.stdout.isatty():
        from rich.console import Console

        Console(stderr=True).print(still_serving_message(dashboard.login_url()), soft_wrap=True, highlight=False)
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
    return 0


def _print_summary(summary: dict) -> None:
    from rich.table import Table

    console = stdout_console()
    implant = summary["implant"]
    console.print(
        f"[bold]implant[/bold]  {implant['channels']} channels at {implant['fs_hz']:.2f} Hz, "
        f"{implant['chain_seconds']:.2f} s simulated ({implant['ground_truth_units']} ground-truth units)\n"
        f"  {implant['n_spikes']} threshold crossings, mean {implant['mean_rate_hz']:.1f} Hz per channel, "
        f"median noise {implant['median_noise_uv']:.1f} µV RMS\n"
        f"  signal chain ran at {implant['realtime_factor']:.1f}x real time\n"
        f"  wrote {implant['nwb_path']}"
    )
    table = Table(title=f"closed loop: {summary['decoder']} decoder, {summary['channels']} channels")
    for column in ("block", "kind", "seconds", "grid", "correct", "wrong", "NTPM", "BPS", "success"):
        table.add_column(column, justify="left" if column in ("block", "kind") else "right")
    for block in summary["blocks"]:
        success = block["success_rate"]
        table.add_row(block["name"], block["kind"], f"{block['duration_s']:.0f}", f"{block['grid_side']}",
                      str(block["correct"]), str(block["incorrect"]), f"{block['ntpm']:.1f}",
                      f"{block['bps']:.2f}", "-" if success is None else f"{success:.0%}")
    console.print(table)
    console.print(
        f"[bold]Webgrid {summary['grid_side']}x{summary['grid_side']}: {summary['bps']:.2f} bits/s[/bold] "
        f"({summary['ntpm']:.1f} net correct targets per minute over {summary['webgrid_seconds']:.0f} s); "
        f"perfect decoder on the same participant and targets: {summary['ideal_bps']:.2f} bits/s "
        f"({_path_text(summary)})"
    )
    link = summary.get("link")
    if link is not None:
        console.print(
            f"secure link: {link['delivered_bins']} bins sealed and opened, {link['missing_bins']} missing, "
            f"{link['late_bins']} late, {link['rejected_frames']} frames rejected ({link['uplink_bytes'] / 1e6:.1f} MB "
            f"on the simulated radio; --no-link hands the bins over in memory)"
        )


def _print_typing_summary(summary: dict) -> None:
    from rich.table import Table

    console = stdout_console()
    table = Table(title=f"copy-typing: {summary['decoder']} decoder, {summary['channels']} channels, "
                  f"{summary['typing_seconds']:g} s per block, same phrases and noise")
    for column in ("block", "ccpm", "wpm", "uncorrected errors", "corrected errors", "keystrokes/char",
                   "suggestions taken"):
        table.add_column(column, justify="left" if column == "block" else "right")
    for block in summary["typing_blocks"]:
        table.add_row(block["name"], f"{block['ccpm']:.1f}", f"{block['wpm']:.1f}",
                      _percent(block["uncorrected_error_rate"]), _percent(block["corrected_error_rate"]),
                      "-" if block["keystrokes_per_char"] is None else f"{block['keystrokes_per_char']:.2f}",
                      str(block["suggestions_taken"]))
    console.print(table)
    gain = summary["prediction_gain"]
    console.print(f"[bold]{summary['ccpm']:.1f} correct characters per minute with word prediction[/bold], "
                  f"{summary['ccpm_without_prediction']:.1f} without"
                  + ("" if gain is None else f" ({gain:+.0%})")
                  + f"; with the decoder assistance {summary['ccpm_assisted']:.1f} ({_path_text(summary)})")
    for block in summary["typing_blocks"]:
        console.print(f"typed ({block['name']}), saved as typed in {block['text_path']}:", highlight=False,
                      soft_wrap=True)
        console.print(block["text"], highlight=False, markup=False)


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _path_text(summary: dict) -> str:
    """What the decoder saw, e.g. ``implant path: crossings + spike-band power of 1024 channels``."""
    if summary["path"] == "implant":
        return f"implant path: crossings + spike-band power of {summary['channels']} channels"
    return f"counts path: Poisson counts of {summary['channels']} channels, no waveforms"
