"""``neurolace batch``: one operation over many recordings on Dask, resumable, with a manifest."""

from __future__ import annotations

import argparse
import json
import sys

from neurolace.cli.args import Number
from neurolace.cli.detect import (
    CHANNELS,
    DEAD_TIME_MS,
    FS_HZ,
    GAIN_UV,
    HIGH_HZ,
    LOW_HZ,
    NOISE_WINDOW_S,
    THRESHOLD,
)
from neurolace.dsp.defaults import DEFAULT_DEAD_TIME_MS, DEFAULT_THRESHOLD

__all__ = ["register"]

WORKERS = Number(int, minimum=1, maximum=1024)
CHUNK_S = Number(float, minimum=0.0, exclusive_minimum=True, maximum=86400.0, unit="s")
RETRIES = Number(int, minimum=0, maximum=100)
OPERATIONS = ("compress", "decompress", "evaluate", "detect", "features")

DESCRIPTION = """\
Run one operation over many recordings on a Dask cluster: a LocalCluster on this machine by
default (--workers processes, one thread each, 127.0.0.1 only, no dashboard), or an existing
scheduler with --scheduler tcp://HOST:PORT (its workers must see INPUTS and --out at the same
paths). Each output is the file the single-file command writes, byte for byte:

  compress    IN.wav -> OUT/IN.nlx           (neurolace codec encode)
  decompress  IN.nlx -> OUT/IN.wav           (neurolace codec decode)
  evaluate    IN.wav -> OUT/IN.evaluate.json (ratio, lossless, MB/s; codec bench's measurement)
  detect      IN     -> OUT/IN.spikes.csv    (neurolace detect IN --out)
  features    IN     -> OUT/IN.features.npy  (float64 (n_bins, 2 x channels): crossing counts,
                                              then spike-band power per 20 ms bin)

INPUTS are files, directories (their files of the operation's kinds) or glob patterns. detect and
features cut WAV and raw files longer than --chunk-s into time chunks with margins and merge them
into exactly the whole-file result (docs/batch.md says why it is exact).

OUT/manifest.json records every input (size, mtime), output (SHA-256), timings, worker and error,
rewritten atomically as files complete (at most once a second) and at the end. A re-run skips
files whose outputs exist and match the manifest and redoes the others. Outputs are written atomically. A bad file is recorded and the others go on.
Exit status: 0 when every file is done, 3 when some failed (listed on stderr and in the
manifest), 2 for a usage error or when the run cannot start.

examples:
  neurolace batch compress ../shared/data/neuralink-compression/wav --out archive
  neurolace batch detect 'sessions/*.wav' --out spikes --workers 8 --json
  neurolace batch features long.raw --fs-hz 30000 --channels 384 --out features --chunk-s 30
  neurolace batch detect sessions --out spikes --scheduler tcp://10.0.0.5:8786
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch", help="compress, detect or extract features over many files on Dask (resumable)",
        description=DESCRIPTION,
    )
    parser.add_argument("operation", choices=OPERATIONS, metavar="OPERATION", help=", ".join(OPERATIONS))
    parser.add_argument("inputs", nargs="+", metavar="INPUTS", help="files, directories or glob patterns")
    parser.add_argument("--out", required=True, metavar="DIR", help="outputs and manifest.json go here")
    parser.add_argument("--scheduler", default="local",
                        help="'local' (default: a LocalCluster) or a Dask scheduler address tcp://HOST:PORT")
    parser.add_argument("--workers", type=WORKERS, default=2,
                        help=WORKERS.help("worker processes of the LocalCluster (default 2)"))
    parser.add_argument("--chunk-s", type=CHUNK_S, default=None,
                        help=CHUNK_S.help("time-chunk length of detect/features on long WAV/raw files (default 60)"))
    parser.add_argument("--retries", type=RETRIES, default=2,
                        help=RETRIES.help("retries of a task that raised (default 2)"))
    parser.add_argument("--mode", choices=("context", "fast"), default="context",
                        help="codec mode of compress and evaluate (default context)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the run's report)")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    chain = parser.add_argument_group("signal chain (detect, features), as neurolace detect")
    chain.add_argument("--fs-hz", type=FS_HZ, help=FS_HZ.help("sampling rate of raw files"))
    chain.add_argument("--channels", type=CHANNELS, help=CHANNELS.help("channels of raw files"))
    chain.add_argument("--dtype", default="int16", help="on-disk integer type of raw files (default int16)")
    chain.add_argument("--gain-uv", type=GAIN_UV, help=GAIN_UV.help("µV per ADC code"))
    chain.add_argument("--threshold", type=THRESHOLD, default=DEFAULT_THRESHOLD,
                       help=THRESHOLD.help(f"multiple of noise RMS (default {DEFAULT_THRESHOLD})"))
    chain.add_argument("--dead-time-ms", type=DEAD_TIME_MS, default=DEFAULT_DEAD_TIME_MS,
                       help=DEAD_TIME_MS.help(f"dead time (default {DEFAULT_DEAD_TIME_MS})"))
    chain.add_argument("--low-hz", type=LOW_HZ, default=300.0, help=LOW_HZ.help("band-pass low corner"))
    chain.add_argument("--high-hz", type=HIGH_HZ, default=6000.0,
                       help=HIGH_HZ.help("band-pass high corner (0: high-pass only)"))
    chain.add_argument("--filter", choices=("moving_average", "butterworth", "fir"), default="moving_average",
                       help="spike band-pass design (butterworth files are never cut into time chunks)")
    chain.add_argument("--reference", choices=("mean", "median", "none"), default="mean",
                       help="common-average reference (default mean)")
    chain.add_argument("--noise-window-s", type=NOISE_WINDOW_S, default=1.0,
                       help=NOISE_WINDOW_S.help("seconds at the start used to estimate noise"))
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from neurolace.batch import DEFAULT_CHUNK_S, ChainSettings, RawLayout, run_batch

    settings = ChainSettings(
        threshold=args.threshold, dead_time_ms=args.dead_time_ms, low_hz=args.low_hz,
        high_hz=None if args.high_hz == 0 else args.high_hz, filter_design=args.filter,
        reference=None if args.reference == "none" else args.reference, noise_window_s=args.noise_window_s,
    )
    raw = RawLayout(fs_hz=args.fs_hz, n_channels=args.channels, dtype=args.dtype, gain_uv=args.gain_uv)
    options = dict(
        scheduler=args.scheduler, n_workers=args.workers,
        chunk_s=DEFAULT_CHUNK_S if args.chunk_s is None else args.chunk_s, settings=settings, raw=raw,
        codec_mode=args.mode, retries=args.retries,
    )
    if args.no_progress:
        report = run_batch(args.operation, args.inputs, args.out, **options)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task(f"batch {args.operation}: starting the cluster", total=None)

            def report_progress(done: int, total: int, name: str) -> None:
                progress.update(task, completed=done, total=total, description=f"batch {args.operation}: {name}")

            report = run_batch(args.operation, args.inputs, args.out, progress=report_progress, **options)
    for path, error in report.failed.items():
        print(f"neurolace batch: failed: {path}: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps({"operation": args.operation, **report.to_json()}))
    else:
        rate = report.to_json()["input_mb_s"]
        print(
            f"{report.n_ok} done, {report.n_skipped} already done, {report.n_failed} failed of {report.n_files} "
            f"file(s)" + (f"; {report.input_bytes / 1e6:.1f} MB in {report.wall_seconds:.1f} s ({rate:.1f} MB/s)"
                          if rate else "") + f"; manifest {report.manifest_path}"
        )
    sys.stdout.flush()
    return report.exit_status
