"""``neurolace stim``: check a stimulation pattern against the safety envelope; make a clinician key."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from neurolace.cli.args import add_force, check_output

__all__ = ["EXIT_UNSAFE", "register"]

#: Exit status of ``stim check`` when the pattern breaks at least one rule (2 is bad input).
EXIT_UNSAFE = 3

DESCRIPTION = """\
Intracortical microstimulation. 'check' reads one pulse-train pattern (a JSON object: the electrode's
electrode_area_um2 and material, and the train's amplitude_ua, cathodic_width_us, interphase_us,
anodic_width_us, anodic_amplitude_ua, frequency_hz, train_s, channels; see docs/stimulation.md) and
judges it against the default safety envelope: charge balance, charge per phase, charge density
against the material's charge-injection capacity, Shannon k, amplitude, frequency, train length,
total current and the stimulator's hardware range. Exit status 0: safe, with the computed charge,
charge density and Shannon k; 3: unsafe, every violated rule named; 2: not a valid pattern, every
bad field named. 'keygen' writes a clinician's Ed25519 signing key and prints its public key.

examples:
  neurolace stim check examples/stim/icms_safe.json
  neurolace stim check examples/stim/too_dense.json --json
  neurolace stim keygen dr-a.pem
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "stim", help="check stimulation patterns against the safety envelope", description=DESCRIPTION
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    check = actions.add_parser(
        "check",
        help="judge PATTERN.json against the safety envelope (exit 0 safe, 3 unsafe, 2 bad input)",
        description="Judge one pattern against every rule of the default safety envelope.",
    )
    check.add_argument("pattern", type=Path, metavar="PATTERN.json")
    check.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    check.set_defaults(handler=check_command)
    keygen = actions.add_parser(
        "keygen",
        help="write a clinician's Ed25519 signing key (PEM, mode 0600) and print its public key",
        description="Write a new Ed25519 private key to OUT.pem and print the public key (base64) that the "
        "implant's clinician list stores.",
    )
    keygen.add_argument("output", type=Path, metavar="OUT.pem")
    add_force(keygen)
    keygen.set_defaults(handler=keygen_command)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def _finite(value):
    return value if value is None or math.isfinite(value) else None


def check_command(args) -> int:
    from neurolace.stim.envelope import SafetyEnvelope
    from neurolace.stim.errors import PatternError
    from neurolace.stim.pulses import load_pattern

    try:
        pattern = load_pattern(args.pattern)
    except PatternError as error:
        if not args.json:
            raise
        print(json.dumps({"safe": False, "error": str(error),
                          "fields": [{"field": f, "message": m} for f, m in error.problems]}, ensure_ascii=False))
        return 2
    envelope = SafetyEnvelope(electrodes=pattern.electrodes())
    result = envelope.check(pattern.train)
    if args.json:
        output = result.to_dict()
        output["pattern"] = pattern.to_dict()
        output["limits"] = envelope.limits.to_dict()
        print(json.dumps(output, ensure_ascii=False, allow_nan=False))
    else:
        train = pattern.train
        print(f"{args.pattern}: {'SAFE' if result.safe else 'UNSAFE'}")
        print(f"  charge per phase   {result.charge_per_phase_nc:.4g} nC "
              f"(cathodic {train.cathodic_charge_nc:.4g} nC, anodic {train.anodic_charge_nc:.4g} nC)")
        print(f"  charge density     {result.charge_density_uc_per_cm2:.4g} µC/cm² "
              f"on {pattern.electrode.area_um2:g} µm² {pattern.electrode.material}")
        k = _finite(result.shannon_k)
        print(f"  Shannon k          {'-' if k is None else f'{k:.2f}'} (limit {envelope.limits.shannon_k:g})")
        print(f"  pulses             {train.n_pulses} at {train.frequency_hz:g} Hz on channels "
              f"{', '.join(map(str, train.channels))}")
        for violation in result.violations:
            unit = f" {violation.unit}" if violation.unit else ""
            bound = "" if violation.limit is None else \
                f" [limit {violation.limit:.4g}{unit}, value {violation.value:.4g}{unit}]"
            print(f"  violated: {violation.rule}: {violation.message}{bound}")
    return 0 if result.safe else EXIT_UNSAFE


def keygen_command(args) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from neurolace.stim.commands import public_key_text, save_clinician_key

    check_output(args.output, "OUT.pem", force=args.force)
    key = Ed25519PrivateKey.generate()
    save_clinician_key(key, args.output, overwrite=args.force)
    print(public_key_text(key))
    print(f"wrote {args.output} (keep it like a password file); the line above is its public key",
          file=sys.stderr)
    return 0
