"""The ``channel_mask`` node: masked channels read as dead electrodes before the decoder sees them.

A researcher who finds a channel broken or misleading (the dashboard's channel
inspector) masks it; the node sits between the feature source and the decoder
and sets that channel's features to 0 in every bin: its crossing count and,
when the bin carries spike-band power (``2 * n_channels`` columns, counts
first), its SBP column too. Zero is what a dead electrode of the simulated
implant reads (:class:`~neurolace.sim.neural_source.ImplantFeatureSource`
``dead_channels``), so the decoder's signal guard
(:class:`~neurolace.decode.guard.SignalGuard`) treats a masked channel as it
treats a dead one: masked through a calibration, the column is constant and is
held at its training value; masked after a fit, it is replaced by its training
mean once its run of zeros is long enough to count as dead. Either way its
contribution becomes neutral instead of pulling the cursor.

The mask comes from the ``masked`` parameter (the channels masked from the
start) and changes live through the optional ``mask`` feedback input: the newest
message there, a float array of shape ``(n_channels,)`` with 1 for a masked
channel, replaces the mask from the next bin on. Every change is logged as
``channel_mask_changed`` with the masked channels. A missing bin (all NaN) is
passed on as it is, so it stays recognisable as missing.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from neurolace.core.errors import InvalidInputError
from neurolace.core.geometry import MAX_ELECTRODES
from neurolace.runtime.messages import Message
from neurolace.runtime.node import REQUIRED, Node, Parameter, Port, register_node

__all__ = ["ChannelMaskNode", "format_channel_list", "mask_features", "parse_channel_list"]


def parse_channel_list(text: str, n_channels: int) -> np.ndarray:
    """Channel indices written as ``"3,17,1020"`` (``""``: none), as a boolean mask of shape (n_channels,).

    Raises
    ------
    InvalidInputError
        A part that is not an integer in ``[0, n_channels)``, named.
    """
    mask = np.zeros(n_channels, dtype=bool)
    for part in (piece.strip() for piece in str(text).split(",")):
        if not part:
            continue
        try:
            index = int(part)
        except ValueError:
            raise InvalidInputError(f"masked channels must be comma-separated integers, got {part!r}") from None
        if not 0 <= index < n_channels:
            raise InvalidInputError(f"masked channel {index} is outside [0, {n_channels})")
        mask[index] = True
    return mask


def format_channel_list(mask: Any) -> str:
    """Inverse of :func:`parse_channel_list`: ``"3,17,1020"`` for a boolean mask."""
    return ",".join(str(int(index)) for index in np.flatnonzero(np.asarray(mask, dtype=bool)))


def mask_features(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Features of one bin (or bins, time first) with the masked channels' columns set to 0.

    Parameters
    ----------
    features : ndarray, shape (n_features,) or (n_bins, n_features)
        ``n_features`` is ``n_channels`` (counts) or ``2 * n_channels`` (counts, then SBP).
    mask : ndarray of bool, shape (n_channels,)

    Returns
    -------
    ndarray
        A copy when something is masked, else ``features`` itself; an all-NaN (missing) bin is kept.
    """
    n_channels = mask.shape[0]
    width = features.shape[-1]
    if width not in (n_channels, 2 * n_channels):
        raise InvalidInputError(f"a feature bin of {width} columns does not fit a mask of {n_channels} channels "
                                f"(expected {n_channels} or {2 * n_channels} columns)")
    if not mask.any():
        return features
    columns = np.flatnonzero(mask)
    if width == 2 * n_channels:
        columns = np.concatenate([columns, columns + n_channels])
    masked = np.array(features, dtype=np.float64 if features.dtype.kind != "f" else features.dtype)
    rows = masked.reshape(-1, width)
    missing = np.isnan(rows).all(axis=1)
    rows[np.ix_(~missing, columns)] = 0.0
    return masked


@register_node
class ChannelMaskNode(Node):
    """Zero the features of masked channels (counts and SBP) on their way to the decoder."""

    type_name = "channel_mask"
    description = "masked channels read 0 (as dead electrodes) before the decoder; the mask changes live"
    inputs: ClassVar[dict[str, Port]] = {
        "features": Port("features", help="one feature bin: counts, or counts then SBP"),
        "mask": Port("any", optional=True, feedback=True,
                     help="newest mask, float (n_channels,), 1 = masked (from the dashboard's inspector)"),
    }
    outputs: ClassVar[dict[str, Port]] = {"features": Port("features")}
    parameters: ClassVar[dict[str, Parameter]] = {
        "n_channels": Parameter(int, REQUIRED, "channels of the feature bins", minimum=1, maximum=MAX_ELECTRODES),
        "masked": Parameter(str, "", "channels masked from the start, comma-separated indices ('' for none)"),
    }

    def setup(self) -> None:
        self.n_channels = self.params["n_channels"]
        self.mask = parse_channel_list(self.params["masked"], self.n_channels)
        self._mask_message: Message | None = None
        self.changes = 0
        self.masked_bins = 0

    def _follow_mask(self) -> None:
        message = self.context.feedback("mask")
        if message is None or message is self._mask_message:
            return
        self._mask_message = message
        payload = np.asarray(message.payload, dtype=np.float64).reshape(-1)
        if payload.shape[0] != self.n_channels:
            self.context.log("channel_mask_refused", reason=f"mask of {payload.shape[0]} values for "
                                                           f"{self.n_channels} channels")
            return
        mask = payload > 0.5
        if not np.array_equal(mask, self.mask):
            self.mask = mask
            self.changes += 1
            self.context.log("channel_mask_changed", masked=np.flatnonzero(mask).tolist())

    def on_message(self, port: str, message: Message) -> None:
        self._follow_mask()
        features = np.asarray(message.payload)
        output = mask_features(features, self.mask)
        if output is not features:
            self.masked_bins += 1
        self.emit("features", output, parent=message)

    def summary(self) -> dict:
        return {"masked_channels": np.flatnonzero(self.mask).tolist(), "mask_changes": self.changes,
                "masked_bins": self.masked_bins}
