"""``neurolace link``: the bandwidth budget, the secure link's attack bench, and pairing two keystores.

``budget``: what raw, compressed, spike and feature data cost on a BLE-class link.
``bench``: a seeded link session on the lossy radio under attack (:mod:`neurolace.link.attack`).
``pair``: an implant and a host keystore paired by numeric comparison (:func:`neurolace.link.keys.pair`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from neurolace.cli.args import Number, add_force, check_output
from neurolace.cli.output import stdout_console

__all__ = ["register"]

#: Accepted values of the numeric options (checked by argparse, shown in --help); the upper
#: bounds are sanity limits far above any implant or radio link.
RATIO = Number(float, minimum=0.0, exclusive_minimum=True, maximum=1e6)
CHANNELS = Number(int, minimum=1, maximum=1_000_000)
FS_HZ = Number(float, minimum=0.0, exclusive_minimum=True, maximum=1e7, unit="Hz")
ADC_BITS = Number(int, minimum=1, maximum=32)
EVENT_RATE_HZ = Number(float, minimum=0.0, exclusive_minimum=True, maximum=1e5, unit="Hz")
BIN_MS = Number(float, minimum=0.0, exclusive_minimum=True, maximum=1e6, unit="ms")
LINK_KBPS = Number(float, minimum=0.0, exclusive_minimum=True, maximum=1e9, unit="kbit/s")
LOSS = Number(float, minimum=0.0, maximum=0.95)
BENCH_SECONDS = Number(float, minimum=0.0, exclusive_minimum=True, maximum=3600.0, unit="s")
SEED = Number(int, minimum=0, maximum=2**63 - 1)

DESCRIPTION = """\
Bandwidth budget of a 1024-channel N1-class implant: raw samples, losslessly compressed raw
(at a compression ratio you give; by default the ratio the codec's default mode measured on the
496 public N1 clips, neurolace.codec.budget.MEASURED_N1_RATIO, shown in the table),
spike events and binned features, each in kbit/s beside a Bluetooth LE link (LE 2M PHY, about
1400 kbit/s of application throughput, by default). The event and feature rows rest on the
stated assumptions (event rate, bits per event, bin width); change them with the options.

examples:
  neurolace link budget
  neurolace link budget --ratio 3.43 --link-kbps 700 --json
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "link",
        help="radio link tools (bandwidth budget, attack bench, pairing)",
        description=DESCRIPTION + "\n" + BENCH_DESCRIPTION + "\n" + PAIR_DESCRIPTION,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    budget = actions.add_parser(
        "budget", help="kbit/s of each data product against the link", description=DESCRIPTION
    )
    budget.add_argument(
        "--ratio",
        type=RATIO,
        default=None,
        help=RATIO.help("lossless compression ratio, int16 basis (default: the codec's measured N1 ratio)"),
    )
    budget.add_argument("--channels", type=CHANNELS, default=1024, help=CHANNELS.help("electrodes (default 1024)"))
    budget.add_argument("--fs-hz", type=FS_HZ, default=19531.0, help=FS_HZ.help("sampling rate (default 19531)"))
    budget.add_argument("--adc-bits", type=ADC_BITS, default=10, help=ADC_BITS.help("ADC resolution (default 10)"))
    budget.add_argument(
        "--event-rate-hz",
        type=EVENT_RATE_HZ,
        default=20.0,
        help=EVENT_RATE_HZ.help("threshold crossings per channel per s (default 20)"),
    )
    budget.add_argument("--bin-ms", type=BIN_MS, default=20.0, help=BIN_MS.help("feature bin width (default 20 ms)"))
    budget.add_argument(
        "--link-kbps",
        type=LINK_KBPS,
        default=1400.0,
        help=LINK_KBPS.help("usable link throughput (default 1400, BLE 2M)"),
    )
    budget.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    budget.set_defaults(handler=budget_command)
    _register_bench(actions)
    _register_pair(actions)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def budget_command(args) -> int:
    from neurolace.codec.budget import MEASURED_N1_RATIO, bandwidth_budget

    rows = bandwidth_budget(
        compression_ratio=MEASURED_N1_RATIO if args.ratio is None else args.ratio,
        n_channels=args.channels,
        fs_hz=args.fs_hz,
        adc_bits=args.adc_bits,
        event_rate_hz=args.event_rate_hz,
        bin_ms=args.bin_ms,
        link_kbps=args.link_kbps,
    )
    if args.json:
        print(json.dumps({"link_kbps": args.link_kbps, "rows": [row.as_dict() for row in rows]}))
        return 0
    from rich.table import Table

    table = Table(title=f"bandwidth budget, {args.channels} channels, link {args.link_kbps:g} kbit/s")
    for column in ("data product", "kbit/s", "x link", "fits", "assumption"):
        table.add_column(column, justify="left" if column in ("data product", "assumption") else "right")
    for row in rows:
        table.add_row(
            row.product,
            f"{row.rate_kbps:,.1f}",
            f"{row.fraction_of_link:.3g}",
            "yes" if row.fits else "no",
            row.assumption,
        )
    stdout_console().print(table)
    return 0


BENCH_DESCRIPTION = """\
Attack bench of the secure link: an implant paired in memory with a host streams 1024-channel
feature bins (8192 bytes every 20 ms) through a seeded lossy radio (bursty Gilbert-Elliott loss,
reordering, duplication) while an attacker injects tampered, replayed (inside and behind the
replay window), reordered, forged, truncated and downgraded frames, and unpaired, revoked and
garbage handshakes. Prints what was sent, delivered and lost, every refusal by reason, each
attack kind with the reason it was refused, throughput, the added CPU latency per frame and
the handshake time. Exits 1 if any forged or replayed frame was accepted.

examples:
  neurolace link bench
  neurolace link bench --loss 0.2 --seconds 30 --seed 7 --json
"""

PAIR_DESCRIPTION = """\
Pair an implant and a host keystore: a Noise_XX handshake between two fresh identities, a
6-digit comparison code on each side, and, once you confirm the two codes match, each keystore
stores the other's public key. Writes DIR/implant.json and DIR/host.json (mode 0600: they hold
private keys); an existing keystore is refused unless --force.

examples:
  neurolace link pair keys/
  neurolace link pair keys/ --yes --force
"""


def _register_bench(actions) -> None:
    bench = actions.add_parser(
        "bench", help="a link session on a lossy radio under attack", description=BENCH_DESCRIPTION
    )
    bench.add_argument(
        "--loss", type=LOSS, default=0.0, help=LOSS.help("mean frame loss rate of the radio (default 0)")
    )
    bench.add_argument(
        "--seconds", type=BENCH_SECONDS, default=10.0, help=BENCH_SECONDS.help("session length (default 10)")
    )
    bench.add_argument("--seed", type=SEED, default=0, help=SEED.help("seeds radio, features and attacker (default 0)"))
    bench.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bench.set_defaults(handler=bench_command)


def _register_pair(actions) -> None:
    pair = actions.add_parser(
        "pair", help="make an implant and a host keystore paired with each other", description=PAIR_DESCRIPTION
    )
    pair.add_argument("directory", type=Path, metavar="DIR", help="folder for implant.json and host.json")
    pair.add_argument("--yes", action="store_true", help="confirm the comparison codes without asking")
    pair.add_argument("--implant-name", default="implant", help="the implant's device name (default implant)")
    pair.add_argument("--host-name", default="host", help="the host's device name (default host)")
    add_force(pair)
    pair.set_defaults(handler=pair_command)


def bench_command(args) -> int:
    from neurolace.link.attack import HANDSHAKE_ATTACKS, run_attack_bench

    report = run_attack_bench(loss=args.loss, seconds=args.seconds, seed=args.seed)
    breached = report["forged_accepted"] > 0 or report["replayed_accepted"] > 0
    if args.json:
        print(json.dumps(report))
        return 1 if breached else 0
    from rich.table import Table

    console = stdout_console()
    summary = Table(
        title=f"link attack bench: {report['seconds']:g} s, loss {report['loss']:.0%}, seed {report['seed']}, "
        f"{report['feature_bytes']} B feature frames at 50/s on a {report['link_kbps']:g} kbit/s radio"
    )
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    rows = [
        ("frames sent / delivered / lost", f"{report['sent']} / {report['delivered']} / {report['lost']}"),
        ("throughput (payload delivered)", f"{report['throughput_kbps']:,.1f} kbit/s"),
        ("added latency per frame p50 / p99", f"{report['added_latency_us_p50']:.1f} / "
         f"{report['added_latency_us_p99']:.1f} µs"),
        ("handshake (Noise_IK, CPU)", f"{report['handshake_ms']:.2f} ms"),
        ("refused by the host", ", ".join(f"{reason} {count}" for reason, count in report["rejected"].items())
         or "none"),
        ("forged accepted", str(report["forged_accepted"])),
        ("replayed accepted", str(report["replayed_accepted"])),
    ]
    for row in rows:
        summary.add_row(*row)
    console.print(summary)
    attacks = Table(title="attacks: each kind and what the host refused it as")
    for column in ("attack", "injected", "expected", "refused as", "accepted"):
        attacks.add_column(column, justify="right" if column in ("injected", "accepted") else "left")
    for kind, record in report["attacks"].items():
        refused = ", ".join(f"{reason} {count}" for reason, count in record["rejected"].items()) or "-"
        attacks.add_row(kind, str(record["injected"]), record["expected"], refused, str(record["accepted"]))
    for kind, reason in report["handshake_attacks"].items():
        attacks.add_row(f"{kind} handshake", "1", HANDSHAKE_ATTACKS[kind], reason, str(int(reason == "accepted")))
    console.print(attacks)
    if breached:
        print("neurolace link bench: the link accepted a forged or replayed frame", file=sys.stderr)
    return 1 if breached else 0


def pair_command(args) -> int:
    from neurolace.core.errors import InvalidInputError
    from neurolace.link.keys import Keystore, pair

    directory = args.directory
    if directory.exists() and not directory.is_dir():
        raise InvalidInputError(f"DIR {str(directory)!r} is a file, not a folder")
    paths = {"implant": directory / "implant.json", "host": directory / "host.json"}
    directory.mkdir(parents=True, exist_ok=True)
    for path in paths.values():
        check_output(path, "DIR", force=args.force)
    implant_store, host_store = Keystore(args.implant_name), Keystore(args.host_name)

    def confirm(implant_code: str, host_code: str) -> bool:
        print(f"implant {args.implant_name!r} shows {implant_code}")
        print(f"host    {args.host_name!r} shows {host_code}")
        if args.yes:
            return implant_code == host_code
        try:
            answer = input("Do both devices show the same code? [y/N] ")
        except EOFError:
            answer = ""
        return answer.strip().lower() in ("y", "yes") and implant_code == host_code

    result = pair(implant_store, host_store, confirm)
    if not result.confirmed:
        print("neurolace link pair: not confirmed; no keystore written", file=sys.stderr)
        return 1
    implant_store.save(paths["implant"])
    host_store.save(paths["host"])
    print(f"paired: wrote {paths['implant']} and {paths['host']} (mode 0600, they hold private keys)")
    return 0
