"""Surgery: vessel-aware planning of thread insertion on an image of the exposed cortex.

One capability, usable on its own from Python: read an image (:mod:`~neurolace.surgery.images`),
segment its surface vessels and measure the distance to them in µm
(:mod:`~neurolace.surgery.vessels`), and draw synthetic vasculature with ground truth to test
and benchmark it (:mod:`~neurolace.surgery.synthetic`); then pick, order and time the insertions:
sites clear of the vessels (:mod:`~neurolace.surgery.sites`), their depths
(:mod:`~neurolace.surgery.depth`), an order without crossing threads
(:mod:`~neurolace.surgery.ordering`), timing in the brain's quiet phases
(:mod:`~neurolace.surgery.motion`), hit probabilities (:mod:`~neurolace.surgery.montecarlo`), the
whole plan (:mod:`~neurolace.surgery.plan`). scikit-image is needed (the
``surgery`` extra); ``import neurolace`` does not load this package. See docs/surgery.md.
"""

from neurolace.surgery.depth import CorticalLayers, insertion_depths
from neurolace.surgery.errors import ImageError
from neurolace.surgery.images import load_image, to_grey
from neurolace.surgery.montecarlo import PlacementEstimate, estimate_placement
from neurolace.surgery.motion import BrainMotion, InsertionSchedule, RobotTiming, schedule_insertions
from neurolace.surgery.ordering import InsertionOrder, order_insertions
from neurolace.surgery.plan import Plan, plan_insertions, plan_overlay
from neurolace.surgery.sites import (
    Clearance,
    Region,
    SiteSelection,
    coverage,
    planning_map,
    select_sites,
    target_region,
)
from neurolace.surgery.synthetic import SyntheticCortex, synthetic_vasculature
from neurolace.surgery.vessels import METHODS, VesselMap, dice, distance_map_um, overlay, segment_vessels

__all__ = [
    "METHODS",
    "BrainMotion",
    "Clearance",
    "CorticalLayers",
    "ImageError",
    "InsertionOrder",
    "InsertionSchedule",
    "PlacementEstimate",
    "Plan",
    "Region",
    "RobotTiming",
    "SiteSelection",
    "SyntheticCortex",
    "VesselMap",
    "coverage",
    "dice",
    "distance_map_um",
    "estimate_placement",
    "insertion_depths",
    "load_image",
    "order_insertions",
    "overlay",
    "plan_insertions",
    "plan_overlay",
    "planning_map",
    "schedule_insertions",
    "select_sites",
    "segment_vessels",
    "synthetic_vasculature",
    "target_region",
    "to_grey",
]
