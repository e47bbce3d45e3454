"""Surgery: vessel-aware planning of thread insertion on an image of the exposed cortex.

One capability, usable on its own from Python: read an image (:mod:`~neurolace.surgery.images`),
segment its surface vessels and measure the distance to them in µm
(:mod:`~neurolace.surgery.vessels`), and draw synthetic vasculature with ground truth to test
and benchmark it (:mod:`~neurolace.surgery.synthetic`). scikit-image is needed (the
``surgery`` extra); ``import neurolace`` does not load this package. See docs/surgery.md.
"""

from neurolace.surgery.errors import ImageError
from neurolace.surgery.images import load_image, to_grey
from neurolace.surgery.synthetic import SyntheticCortex, synthetic_vasculature
from neurolace.surgery.vessels import METHODS, VesselMap, dice, distance_map_um, overlay, segment_vessels

__all__ = [
    "METHODS",
    "ImageError",
    "SyntheticCortex",
    "VesselMap",
    "dice",
    "distance_map_um",
    "load_image",
    "overlay",
    "segment_vessels",
    "synthetic_vasculature",
    "to_grey",
]
