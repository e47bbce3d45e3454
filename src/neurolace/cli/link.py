"""``neurolace link budget``: what raw, compressed, spike and feature data cost on a BLE-class link."""

from __future__ import annotations

import json

from neurolace.cli.args import Number
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
        "link", help="radio link tools (bandwidth budget)", description=DESCRIPTION
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
