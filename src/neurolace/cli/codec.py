"""``neurolace codec``: encode, decode and benchmark the lossless neural codec."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from neurolace.cli.args import Number, add_force, check_output
from neurolace.cli.output import stdout_console

__all__ = ["register"]

#: Accepted values of the numeric options (checked by argparse, shown in --help).
FRAME_SAMPLES = Number(int, minimum=1, maximum=1 << 30)
LIMIT = Number(int, minimum=1)

DESCRIPTION = """\
Lossless compression of int16 neural recordings (16-bit PCM WAV), following the contract of
Neuralink's compression challenge: 'decode' rebuilds the original file byte for byte, header
included. The codec maps samples to the recording's own value table, predicts each channel with
an order-selected linear predictor and entropy codes the residual: in 'context' mode (default)
given the predicted code with a numba rANS coder (about 2 % smaller, ~50 MB/s both ways on one
core), in 'fast' mode with one histogram per channel (constriction's range coder).
Damaged files fail with a clear error; frames are checksummed and independently decodable.
'encode' and 'decode' refuse to replace an existing OUT unless --force. 'bench' checks every
WAV first and stops (exit status 2) naming each one it cannot read, before any timing; with
--skip-bad it names them on stderr (and under "skipped" in --json) and measures the others.

examples:
  neurolace codec encode clip.wav clip.nlx
  neurolace codec decode clip.nlx restored.wav && cmp clip.wav restored.wav
  neurolace codec encode --mode fast clip.wav clip.nlx
  neurolace codec bench ../shared/data/neuralink-compression/wav --limit 20 --json
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "codec", help="lossless compression of neural WAV files", description=DESCRIPTION
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    encode = actions.add_parser(
        "encode", help="compress IN.wav to OUT", description="Compress a 16-bit PCM WAV file."
    )
    encode.add_argument("input", type=Path, metavar="IN.wav")
    encode.add_argument("output", type=Path, metavar="OUT")
    encode.add_argument(
        "--mode",
        choices=["context", "fast"],
        default="context",
        help="context: best ratio (default); fast: one histogram per channel, faster encode",
    )
    encode.add_argument(
        "--frame-samples",
        type=FRAME_SAMPLES,
        default=None,
        help=FRAME_SAMPLES.help("samples per channel in each independently decodable frame (default 32768)"),
    )
    add_force(encode)
    encode.set_defaults(handler=encode_command)
    decode = actions.add_parser(
        "decode", help="rebuild OUT.wav from IN", description="Rebuild the exact WAV file."
    )
    decode.add_argument("input", type=Path, metavar="IN")
    decode.add_argument("output", type=Path, metavar="OUT.wav")
    add_force(decode)
    decode.set_defaults(handler=decode_command)
    bench = actions.add_parser(
        "bench",
        help="ratio and speed of every codec on a folder of WAV files",
        description="Compress every *.wav in DIR with neurolace (context, fast), zlib, bz2, lzma, zstandard, "
        "pcodec and FLAC; print total ratio (WAV bytes / compressed bytes), encode and decode MB/s on one "
        "core, and whether every file round-tripped.",
    )
    bench.add_argument("directory", type=Path, metavar="DIR")
    bench.add_argument(
        "--limit", type=LIMIT, default=None, help=LIMIT.help("use only the first N files (sorted by name)")
    )
    bench.add_argument(
        "--skip-bad",
        action="store_true",
        help="measure the readable WAV files and name the others (default: stop, naming them)",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bench.set_defaults(handler=bench_command)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def encode_command(args) -> int:
    from neurolace.codec.neural import DEFAULT_FRAME_SAMPLES, encode_wav
    from neurolace.io.atomic import atomic_output

    from neurolace.io.paths import check_input_file

    check_output(args.output, "OUT", force=args.force)
    data = check_input_file(args.input, "WAV file").read_bytes()
    frame_samples = DEFAULT_FRAME_SAMPLES if args.frame_samples is None else args.frame_samples
    packed = encode_wav(data, frame_samples=frame_samples, mode=args.mode)
    with atomic_output(args.output, overwrite=args.force) as temporary:
        temporary.write_bytes(packed)
    print(
        f"{args.input} -> {args.output}: {len(data)} -> {len(packed)} bytes (ratio {len(data) / len(packed):.4f})",
        file=sys.stderr,
    )
    return 0


def decode_command(args) -> int:
    from neurolace.codec.neural import decode_wav
    from neurolace.io.atomic import atomic_output

    from neurolace.io.paths import check_input_file

    check_output(args.output, "OUT.wav", force=args.force)
    restored = decode_wav(check_input_file(args.input, "codec file").read_bytes())
    with atomic_output(args.output, overwrite=args.force) as temporary:
        temporary.write_bytes(restored)
    return 0


def bench_command(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from neurolace.codec.errors import CodecError
    from neurolace.codec.evaluate import default_codecs, evaluate_codecs

    if not args.directory.is_dir():
        raise CodecError(f"DIR must be a directory of WAV files, got {args.directory}")
    paths = sorted(args.directory.glob("*.wav"))
    if args.limit is not None:
        paths = paths[: args.limit]
    if not paths:
        raise CodecError(f"no *.wav files in {args.directory}")
    paths, skipped = _readable_wavs(paths)
    if skipped and not args.skip_bad:
        raise CodecError(
            f"{len(skipped)} of {len(paths) + len(skipped)} WAV files cannot be read (pass --skip-bad to measure "
            "the others): " + "; ".join(f"{bad['path']}: {bad['error']}" for bad in skipped)
        )
    for bad in skipped:
        print(f"neurolace codec bench: skipping {bad['path']}: {bad['error']}", file=sys.stderr)
    if not paths:
        raise CodecError(f"none of the {len(skipped)} *.wav files in {args.directory} can be read")
    codecs = default_codecs()
    err = Console(file=sys.stderr)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err, transient=True
    ) as progress:
        task = progress.add_task("codecs", total=len(paths) * len(codecs))
        done_before = {}

        def report(name: str, done: int, total: int) -> None:
            done_before.setdefault(name, len(done_before) * total)
            progress.update(
                task, completed=done_before[name] + done, description=f"{name}: file {done}/{total}"
            )

        results = evaluate_codecs(paths, codecs, progress=report)
    if args.json:
        print(json.dumps(
            {"directory": str(args.directory), "n_files": len(paths), "skipped": skipped, "codecs": results}
        ))
        return 0 if all(r["lossless"] for r in results) else 1
    from rich.table import Table

    table = Table(
        title=f"{len(paths)} files, {results[0]['input_bytes']:,} bytes (ratio = WAV bytes / compressed bytes)"
    )
    for column in ("codec", "ratio", "encode MB/s", "decode MB/s", "lossless"):
        table.add_column(column, justify="left" if column == "codec" else "right")
    for row in sorted(results, key=lambda r: -r["ratio"]):
        table.add_row(
            row["name"],
            f"{row['ratio']:.4f}",
            f"{row['encode_mb_s']:.1f}",
            f"{row['decode_mb_s']:.1f}",
            "yes" if row["lossless"] else "NO",
        )
    stdout_console().print(table)
    return 0 if all(r["lossless"] for r in results) else 1


def _readable_wavs(paths: list[Path]) -> tuple[list[Path], list[dict]]:
    """Split ``paths`` into the 16-bit PCM WAV files the codecs can read and the others.

    Returns
    -------
    readable : list of Path
        In the given order.
    skipped : list of dict
        ``{"path": str, "error": str}`` for each file that cannot be read or parsed.
    """
    from neurolace.codec.evaluate import load_wav_samples
    from neurolace.core.errors import NeurolaceError
    from neurolace.io.paths import check_input_file

    readable, skipped = [], []
    for path in paths:
        try:
            load_wav_samples(check_input_file(path, "WAV file").read_bytes())
        except (NeurolaceError, OSError) as exc:
            skipped.append({"path": str(path), "error": str(exc)})
        else:
            readable.append(path)
    return readable, skipped
