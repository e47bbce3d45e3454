"""Speed-dependent cursor gain: decoded velocity -> cursor velocity, direction kept, speed reshaped.

A linear velocity decoder's output is scaled by one gain; noise then moves
the cursor as fast at rest (where it ruins the click) as the gain allows
during a reach. Willett et al. 2019 (Sci Rep 9:8881) chose gain and
smoothing by simulating a user model and optimised a *nonlinear speed
scaling function* with it; online with two BrainGate participants it
increased the dynamic range of decoded speeds and shortened target
acquisition against an optimised linear gain. Their function's exact form is
not reproduced here (we did not verify it); this module uses a power law
of the decoded speed ``s``, normalised so that the participant's typical
peak intended speed ``reference_speed`` (1.0 in normalised units) moves the
cursor at ``gain_per_s``::

    cursor_speed(s) = gain_per_s * reference_speed * (s / reference_speed) ** exponent
                      (capped at max_speed_per_s)

``exponent = 1`` is the linear gain; ``exponent > 1`` shrinks slow (mostly
noise) decoded speeds near a target and keeps the reach fast. The
direction of the decoded velocity is unchanged. The curve's gain and
exponent are chosen by closed-loop simulation (docs/closed-loop.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurolace.core.checks import check_positive
from neurolace.core.errors import InvalidInputError

__all__ = ["SpeedGain"]


class SpeedGain:
    """A monotone speed-scaling curve (module docstring).

    Parameters
    ----------
    gain_per_s : float
        Workspace units per second at ``reference_speed`` (and the linear gain when ``exponent == 1``).
    exponent : float, default 1.0
        Power of the normalised decoded speed, > 0 (output speed is then strictly increasing).
    reference_speed : float, default 1.0
        Decoded speed (normalised units) that moves the cursor at ``gain_per_s``.
    max_speed_per_s : float or None, default None
        Cap on the cursor speed, workspace units per second (None: no cap).
    """

    def __init__(self, *, gain_per_s: float, exponent: float = 1.0, reference_speed: float = 1.0,
                 max_speed_per_s: float | None = None) -> None:
        self.gain_per_s = check_positive(gain_per_s, "gain_per_s")
        self.exponent = check_positive(exponent, "exponent")
        self.reference_speed = check_positive(reference_speed, "reference_speed")
        self.max_speed_per_s = None if max_speed_per_s is None else check_positive(max_speed_per_s,
                                                                                   "max_speed_per_s")
        if self.max_speed_per_s is not None and self.max_speed_per_s < self.gain_per_s * self.reference_speed:
            raise InvalidInputError(
                f"max_speed_per_s ({self.max_speed_per_s}) must be at least gain_per_s * reference_speed "
                f"({self.gain_per_s * self.reference_speed}), or the reference speed never reaches its gain"
            )

    @property
    def linear(self) -> bool:
        return self.exponent == 1.0 and self.max_speed_per_s is None

    def speed_per_s(self, speed: Any) -> np.ndarray:
        """Cursor speed (workspace units per second) for decoded speeds ``speed`` (>= 0, any shape)."""
        speed = np.asarray(speed, dtype=np.float64)
        if not np.all(np.isfinite(speed)) or np.any(speed < 0):
            raise InvalidInputError("speed must be finite and >= 0 (a decoded speed in normalised units)")
        out = self.gain_per_s * self.reference_speed * (speed / self.reference_speed) ** self.exponent
        if self.max_speed_per_s is not None:
            out = np.minimum(out, self.max_speed_per_s)
        return out

    def velocity_per_s(self, velocity: Any) -> np.ndarray:
        """Cursor velocity (workspace units per second) for one decoded velocity, shape (2,)."""
        velocity = np.asarray(velocity, dtype=np.float64)
        speed = float(np.hypot(velocity[0], velocity[1]))
        if speed == 0.0:
            return np.zeros(2)
        if self.linear:
            return self.gain_per_s * velocity[:2]
        return velocity[:2] * (float(self.speed_per_s(speed)) / speed)

    def to_dict(self) -> dict:
        return {"gain_per_s": self.gain_per_s, "exponent": self.exponent, "reference_speed": self.reference_speed,
                "max_speed_per_s": self.max_speed_per_s}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpeedGain) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().values()))

    def __repr__(self) -> str:
        cap = "" if self.max_speed_per_s is None else f", max_speed_per_s={self.max_speed_per_s:g}"
        return (f"SpeedGain(gain_per_s={self.gain_per_s:g}, exponent={self.exponent:g}, "
                f"reference_speed={self.reference_speed:g}{cap})")
