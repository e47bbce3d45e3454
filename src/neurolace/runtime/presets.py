"""Preset sessions shipped with the package: ``neurolace run demo`` (and the dashboard's live session).

A preset is session TOML text, validated like any file, so what a preset runs
is exactly what a user can copy into a file and change.
"""

from __future__ import annotations

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.session_file import SessionSpec, parse_session

__all__ = ["PRESETS", "preset_session", "preset_text"]

_DEMO = """\
# The demo's closed loop as a node graph, through the implant: the simulated participant (1024
# channels, 20 ms bins) watches the cursor and the lit target; each intention drives the implant's
# units (spike waveforms at 19.5 kHz), the on-implant chain gives every channel's threshold crossings
# and spike-band power per bin, the secure link carries each bin (link_implant seals it, a seeded
# BLE-class radio carries it, link_host opens it; lost bins go on as missing bins), and one
# closed_loop node runs the calibration session of
# neurolace.runtime.run_calibration_session on them: an observation block (the computer moves the
# cursor; labels shifted by the neural lag), the first Kalman decoder, a closed-loop block, ReFIT and
# its check block, then a scored 30 x 30 Webgrid block. path = "counts" is the fast mode (Poisson
# counts, no waveforms). The same graph as sessions/closed_loop_sim.toml.
[session]
name = "demo"
description = "simulated participant -> implant (waveforms, on-implant chain) -> calibration session -> Webgrid"
duration_s = 180.0   # open_loop_s + 2 x closed_loop_s + webgrid_s
seed = 1
cursor_gain_per_s = 0.5   # set once: the participant expects it, the loop applies it

[nodes.participant]
type = "sim_participant"
n_channels = 1024
loop_ms = 20.0
path = "implant"   # or "counts"
feedback = { cursor = "task.cursor", target = "task.target", block = "task.block" }

[nodes.implant_link]   # the implant's end of the secure link (runtime.nodes.link): sealed frames on a radio
type = "link_implant"
inputs = { features = "participant.features" }
feedback = { downlink = "host_link.downlink" }

[nodes.host_link]   # the host's end: Noise_IK handshake, opens frames, lost bins passed on as missing
type = "link_host"
inputs = { uplink = "implant_link.uplink" }

[nodes.task]   # the whole session: decoder, click policy, cursor, Webgrid (runtime.nodes.loop)
type = "closed_loop"
decoder = "kalman"
open_loop_s = 60.0
closed_loop_s = 40.0
webgrid_s = 40.0
n_webgrid_blocks = 1
grid_side = 30
inputs = { features = "host_link.features", intention = "participant.intention" }
"""

#: preset name -> session TOML
PRESETS = {"demo": _DEMO}


def preset_text(name: str) -> str:
    """The TOML of preset ``name``."""
    if name not in PRESETS:
        raise InvalidInputError(f"unknown preset session {name!r}; presets: {sorted(PRESETS)}")
    return PRESETS[name]


def preset_session(name: str) -> SessionSpec:
    """The validated preset session ``name``."""
    return parse_session(preset_text(name), source=f"<preset {name}>")
