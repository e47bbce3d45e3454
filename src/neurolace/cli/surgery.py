"""``neurolace surgery``: plan thread insertions on an image of the cortex; draw a synthetic one.

The parser imports nothing heavy (``neurolace --help`` stays light): the planner, scipy and
scikit-image are imported by the command functions. The option defaults below repeat the
library's and tests/test_cli_surgery.py checks they agree.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from neurolace.cli.args import Number, add_force, check_output

__all__ = ["EXIT_INCOMPLETE", "register"]

#: Exit status of ``surgery plan`` when the plan holds fewer sites than asked (plan.json says why).
EXIT_INCOMPLETE = 3
#: Vesselness filters (``neurolace.surgery.vessels.METHODS``).
METHODS = ("frangi", "sato", "meijering")
#: ``neurolace.surgery.sites.DEFAULT_MIN_SPACING_UM``.
DEFAULT_SPACING_UM = 250.0

SCALE = Number(float, 0.0, 1e6, exclusive_minimum=True, unit="µm per pixel")
THREADS = Number(int, 1, 4096)
SEED = Number(int, 0, 2**32 - 1)
DISTANCE = Number(float, 0.0, 1e6, exclusive_minimum=True, unit="µm")

DESCRIPTION = """\
Vessel-aware planning of robotic thread insertion. 'plan' segments the surface vessels of IMAGE (a photograph
of the exposed cortex, grey or colour, with its scale in µm per pixel), chooses up to --threads insertion sites
in the target region at least the clearance from every vessel (needle radius + robot error + registration
error + segmentation error + a margin: 52 µm at 10 µm/px; vessels as a cautious map of the segmentation)
and 250 µm apart, gives each an insertion depth, orders them so threads
never cross, times each insertion in a quiet phase of the cardiac and respiratory brain motion, estimates
each site's probability of hitting a vessel, and writes plan.json (sites with x_um, y_um from the image's
top-left corner, x right and y down, order, depth_um, margin_um, hit_probability; clearance_um, min_margin_um,
estimated_duration_s). Exit status 0: every site placed; 3: fewer sites than asked, plan.json written with
the reasons (an empty plan when the region is covered by vessels); 2: bad input (not an image, a scale <= 0,
a region outside the image), nothing written. 'synth' writes a synthetic cortex image to try it on.
See docs/surgery.md.

examples:
  neurolace surgery synth cortex.png --um-per-px 10 --seed 1
  neurolace surgery plan cortex.png --um-per-px 10 --target-um 5120,5120,2000 --out plan.json --overlay plan.png
"""


def _target(text: str) -> tuple[float, float, float]:
    """argparse type of ``--target-um CX,CY,R``: three finite numbers, R > 0."""
    parts = text.split(",")
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values) or values[2] <= 0:
        raise argparse.ArgumentTypeError(
            f"must be CX,CY,R in µm (three finite numbers, R > 0; centre from the image's top-left corner), got {text!r}"
        )
    return values


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "surgery", help="plan vessel-aware thread insertion on an image of the cortex", description=DESCRIPTION
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    plan = actions.add_parser(
        "plan", help="plan insertion sites, order and timing on IMAGE; write plan.json (exit 0 all, 3 fewer, 2 bad)",
        description="Plan up to --threads insertions on IMAGE and write plan.json (see 'neurolace surgery --help').",
    )
    plan.add_argument("image", type=Path, metavar="IMAGE")
    plan.add_argument("--um-per-px", type=SCALE, required=True, help=SCALE.help("image scale"))
    plan.add_argument("--threads", type=THREADS, default=64, help=THREADS.help("sites to place (default 64)"))
    plan.add_argument("--target-um", type=_target, metavar="CX,CY,R",
                      help="target disc: centre x, y and radius in µm from the image's top-left corner "
                           "(default: the whole image)")
    plan.add_argument("--out", type=Path, required=True, metavar="PLAN.json", help="the plan to write")
    plan.add_argument("--overlay", type=Path, metavar="PLAN.png",
                      help="also draw vessels, region, threads and numbered sites on the image")
    plan.add_argument("--method", choices=METHODS, default="frangi", help="vesselness filter (default frangi)")
    plan.add_argument("--clearance-um", type=DISTANCE,
                      help=DISTANCE.help("distance to keep from vessels (default: the documented sum, 52 µm at 10 µm/px)"))
    plan.add_argument("--spacing-um", type=DISTANCE, default=DEFAULT_SPACING_UM,
                      help=DISTANCE.help("smallest distance between two sites (default 250)"))
    plan.add_argument("--seed", type=SEED, default=0, help=SEED.help("Monte-Carlo seed (default 0)"))
    plan.add_argument("--json", action="store_true", help="print the plan (the content of plan.json) on stdout")
    add_force(plan)
    plan.set_defaults(handler=plan_command)
    synth = actions.add_parser(
        "synth", help="write a synthetic image of the exposed cortex (branching vessels) as a PNG",
        description="Draw synthetic vasculature on a cortical background (neurolace.surgery.synthetic) and "
                    "write it as an 8-bit grey PNG; --truth also writes its ground-truth vessel mask.",
    )
    synth.add_argument("output", type=Path, metavar="OUT.png")
    synth.add_argument("--um-per-px", type=SCALE, default=10.0, help=SCALE.help("pixel size (default 10)"))
    size = Number(int, 16, 4096, unit="px")
    synth.add_argument("--size-px", type=size, default=1024, help=size.help("width and height (default 1024)"))
    density = Number(float, 0.0, 10.0, exclusive_minimum=True)
    synth.add_argument("--density", type=density, default=1.0, help=density.help("vessel density (default 1)"))
    synth.add_argument("--seed", type=SEED, default=0, help=SEED.help("seed (default 0)"))
    synth.add_argument("--truth", type=Path, metavar="MASK.png", help="also write the vessel mask (white on black)")
    add_force(synth)
    synth.set_defaults(handler=synth_command)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def _check_outputs(paths: list[tuple[Path, str]], *, force: bool) -> None:
    from neurolace.core.errors import InvalidInputError

    for path, option in paths:
        check_output(path, option, force=force)
    resolved = [path.resolve() for path, _ in paths]
    if len(set(resolved)) != len(resolved):
        raise InvalidInputError(f"{' and '.join(option for _, option in paths)} must be different files")


def plan_command(args) -> int:
    from neurolace.surgery.errors import ImageError
    from neurolace.surgery.images import load_image
    from neurolace.surgery.plan import plan_insertions, plan_overlay
    from neurolace.surgery.sites import target_region
    from neurolace.surgery.vessels import segment_vessels

    outputs = [(args.out, "--out")] + ([(args.overlay, "--overlay")] if args.overlay else [])
    _check_outputs(outputs, force=args.force)
    try:
        image = load_image(args.image)
    except ImageError as exc:  # the reader's message may append lines of plugin hints: keep one line
        raise ImageError(str(exc).splitlines()[0], path=exc.path) from exc
    if args.target_um is None:
        region = target_region(image.shape, args.um_per_px)
    else:
        centre_x, centre_y, radius = args.target_um
        region = target_region(image.shape, args.um_per_px, centre_um=(centre_x, centre_y), radius_um=radius)
    vessel_map = segment_vessels(image, args.um_per_px, method=args.method)
    plan = plan_insertions(
        vessel_map, args.threads, region=region, clearance=args.clearance_um, min_spacing_um=args.spacing_um,
        seed=args.seed,
    ).with_image_path(args.image)
    text = plan.to_json()
    if args.overlay:
        plan_overlay(image, vessel_map, plan, args.overlay, overwrite=args.force)
    try:
        plan.write_json(args.out, overwrite=args.force)
    except BaseException:
        if args.overlay:  # no half set of outputs: the overlay goes with the plan it drew
            args.overlay.unlink(missing_ok=True)
        raise
    if args.json:
        print(text)
    else:
        _print_summary(plan, args)
    if not plan.complete:
        for reason in plan.reasons:
            print(f"neurolace surgery plan: {reason}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


def _print_summary(plan, args) -> None:
    document = plan.to_dict()
    margin = document["min_margin_um"]
    print(f"{args.image}: {plan.n_sites} of {plan.selection.requested} sites, "
          f"clearance {plan.clearance_um:g} µm, spacing >= {plan.selection.min_spacing_um:g} µm")
    if plan.n_sites:
        print(f"  min margin         {margin:.1f} µm beyond the clearance")
        print(f"  coverage           {document['coverage']['fraction']:.1%} of the region within "
              f"{document['coverage']['radius_um']:.0f} µm of a site")
        print(f"  max hit prob.      {document['placement_error_um']['max_hit_probability']:.3f} "
              f"(placement error mean {document['placement_error_um']['error_mean_um']:.1f} µm, "
              f"95th percentile {document['placement_error_um']['error_p95_um']:.1f} µm)")
        print(f"  depth              {plan.depth.depth_um[0]:.0f} µm (electrodes from "
              f"{plan.depth.shallowest_electrode_um[0]:.0f} µm)")
        print(f"  robot travel       {plan.ordering.travel_mm:.1f} mm")
        print(f"  estimated duration {plan.estimated_duration_s / 60:.1f} min")
    print(f"wrote {args.out}" + (f" and {args.overlay}" if args.overlay else ""))


def synth_command(args) -> int:
    import imageio.v3 as iio
    import numpy as np

    from neurolace.io.atomic import atomic_output
    from neurolace.surgery.synthetic import synthetic_vasculature

    outputs = [(args.output, "OUT.png")] + ([(args.truth, "--truth")] if args.truth else [])
    _check_outputs(outputs, force=args.force)
    cortex = synthetic_vasculature((args.size_px, args.size_px), args.um_per_px, density=args.density, seed=args.seed)
    grey = np.round(np.clip(cortex.image, 0.0, 1.0) * 255.0).astype(np.uint8)
    if args.truth:
        with atomic_output(args.truth, suffix=".png", overwrite=args.force) as temporary:
            iio.imwrite(temporary, cortex.mask.astype(np.uint8) * 255, extension=".png")
    try:
        with atomic_output(args.output, suffix=".png", overwrite=args.force) as temporary:
            iio.imwrite(temporary, grey, extension=".png")
    except BaseException:
        if args.truth:
            args.truth.unlink(missing_ok=True)
        raise
    field_mm = args.size_px * args.um_per_px / 1000.0
    print(f"wrote {args.output}: {args.size_px} x {args.size_px} px at {args.um_per_px:g} µm/px "
          f"({field_mm:g} x {field_mm:g} mm), vessel fraction {cortex.mask.mean():.1%}"
          + (f"; mask in {args.truth}" if args.truth else ""))
    return 0
