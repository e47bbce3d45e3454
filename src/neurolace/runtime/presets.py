"""Preset sessions shipped with the package: ``neurolace run demo`` (and ``neurolace demo``).

A preset is session TOML text, validated like any file, so what a preset runs
is exactly what a user can copy into a file and change.
"""

from __future__ import annotations

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.session_file import SessionSpec, parse_session

__all__ = ["PRESETS", "preset_session", "preset_text"]

_DEMO = """\
# The simulated closed loop: the participant (1024 channels, 20 ms bins) watches the cursor and the
# lit Webgrid cell; for the first 15 s the cursor follows their intention while the decoder collects
# labelled bins (an observation block), then the Kalman decoder alone drives the cursor.
[session]
name = "demo"
description = "simulated participant -> Kalman decoder -> task cursor -> Webgrid"
duration_s = 45.0
seed = 1
cursor_gain_per_s = 1.2   # set once: the participant expects it, the cursor applies it

[nodes.participant]
type = "sim_participant"
n_channels = 1024
loop_ms = 20.0
feedback = { cursor = "cursor.cursor", target = "task.target" }

[nodes.decoder]
type = "decoder"
decoder = "kalman"
calibration_s = 15.0
inputs = { features = "participant.features", intention = "participant.intention" }

[nodes.cursor]
type = "cursor"
inputs = { velocity = "decoder.velocity" }

[nodes.task]
type = "webgrid"
grid_side = 8
score = "decoded"   # BPS counts only moves the decoder made on its own
inputs = { cursor = "cursor.cursor" }
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
