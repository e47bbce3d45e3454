"""The secure link in the node graph: ``link_implant`` and ``link_host``, thin wrappers over one side each.

``link_implant`` hands each feature bin of the implant (the ``sim_participant``
node's ``features``) to :class:`~neurolace.runtime.secure_link.ImplantLinkSide`,
which seals it onto its radio; what the radio delivers by the next bin goes
out on ``uplink`` as raw bytes (uint8; empty when nothing arrived), one message
a bin. ``link_host`` gives those bytes to
:class:`~neurolace.runtime.secure_link.HostLinkSide` and publishes the bins
it returns on ``features``, in order, lost and late bins as missing bins (all
NaN). Its ``downlink`` (the handshake) goes back through its own radio to the
implant node's feedback input, and ``link`` is the health the dashboard shows
(:data:`~neurolace.runtime.secure_link.LINK_STATUS_FIELDS`).

Keys: ``pairing = ""`` pairs a fresh implant and host in this process (the
demo); ``pairing = "DIR"`` loads ``DIR/implant.json`` and ``DIR/host.json``
made by ``neurolace link pair DIR`` (two processes on the Redis bus). Both
nodes step on the implant's bin clock, so the stepped clock and real time give
the same link.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from neurolace.runtime.messages import Message
from neurolace.runtime.node import Node, Parameter, Port, register_node
from neurolace.runtime.nodes.sources import IMPLANT_FS_HZ, _node_seed
from neurolace.runtime.secure_link import (
    LINK_STATUS_FIELDS,
    HostLinkSide,
    ImplantLinkSide,
    LinkSettings,
    link_keystores,
)

__all__ = ["LINK_STATUS_FIELDS", "LinkHostNode", "LinkImplantNode"]

_DEFAULTS = LinkSettings()


def _link_parameters() -> dict[str, Parameter]:
    """The settings of :class:`LinkSettings` as node parameters, shared by both nodes."""
    return {
        "loss": Parameter(float, _DEFAULTS.loss, "mean frame loss of the radio (Gilbert-Elliott bursts), 0-0.99",
                          minimum=0.0, maximum=0.99),
        "burst_frames": Parameter(float, _DEFAULTS.burst_frames, "mean length of a loss burst, frames",
                                  minimum=1.0, maximum=1000.0),
        "throughput_kbps": Parameter(float, _DEFAULTS.throughput_kbps,
                                     "radio throughput, kbit/s (BLE 2M PHY application rate)", minimum=1.0,
                                     maximum=1e6),
        "latency_ms": Parameter(float, _DEFAULTS.latency_ms, "radio latency, ms (one BLE connection interval)",
                                minimum=0.0, maximum=1000.0),
        "reorder": Parameter(float, _DEFAULTS.reorder, "probability a frame is overtaken", minimum=0.0, maximum=1.0),
        "duplicate": Parameter(float, _DEFAULTS.duplicate, "probability a frame arrives twice", minimum=0.0,
                               maximum=1.0),
        "bit_error_rate": Parameter(float, _DEFAULTS.bit_error_rate, "bit error rate of the radio", minimum=0.0,
                                    maximum=0.01),
        "pairing": Parameter(str, _DEFAULTS.pairing, "'' (pair in this process) or a directory of `neurolace link pair`"),
        "loop_ms": Parameter(float, 20.0, "bin period in ms (the link steps on the implant's bin clock)", minimum=1.0),
        "queue_bins": Parameter(int, _DEFAULTS.queue_bins, "bins the implant keeps until a session is up",
                                minimum=1, maximum=100_000),
        "handshake_retry_s": Parameter(float, _DEFAULTS.handshake_retry_s,
                                       "seconds between handshake attempts until one completes", minimum=0.001,
                                       maximum=60.0),
    }


class _LinkNode(Node):
    parameters: ClassVar[dict[str, Parameter]] = _link_parameters()

    def _settings(self) -> LinkSettings:
        params = dict(self.params)
        loop_ms = params.pop("loop_ms")
        return LinkSettings(**params, loop_s=loop_ms / 1e3)

    def _bin(self, message: Message) -> int:
        return round(message.sample_index / self.samples_per_bin)

    def _setup_common(self):
        self.settings = self._settings()
        self.samples_per_bin = self.settings.loop_s * IMPLANT_FS_HZ
        self.radio = self.settings.radio(_node_seed(self.context.seed, f"{self.name}.radio"), f"{self.name}.radio")
        return link_keystores(self.settings.pairing, self.context.seed)

    def _air(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8).copy()

    def summary(self) -> dict:
        return self.side.report()


@register_node
class LinkImplantNode(_LinkNode):
    """The implant's end of the link: seals each feature bin and puts it on the radio."""

    type_name = "link_implant"
    description = "implant side of the secure link: Noise_IK responder, sealed feature frames, simulated radio"
    inputs: ClassVar[dict[str, Port]] = {
        "features": Port("features", help="one feature bin of the implant"),
        "downlink": Port("any", optional=True, feedback=True, help="bytes the host's radio delivered"),
    }
    outputs: ClassVar[dict[str, Port]] = {"uplink": Port("any")}

    def setup(self) -> None:
        implant_keys, _ = self._setup_common()
        self.side = ImplantLinkSide(implant_keys, self.radio, self.settings, name=self.name)
        self.downlink_seen = -1

    def on_message(self, port: str, message: Message) -> None:
        downlink = b""
        feedback = self.context.feedback("downlink")
        if feedback is not None and feedback.sequence != self.downlink_seen:
            self.downlink_seen = feedback.sequence
            downlink = bytes(np.asarray(feedback.payload, dtype=np.uint8))
        uplink = self.side.tick(self._bin(message), message.sample_index, message.payload, downlink)
        self.emit("uplink", self._air(uplink), parent=message)


@register_node
class LinkHostNode(_LinkNode):
    """The host's end of the link: opens the implant's frames and passes the bins on, in order, gaps as missing."""

    type_name = "link_host"
    description = "host side of the secure link: Noise_IK initiator, opens frames, missing bins for gaps"
    inputs: ClassVar[dict[str, Port]] = {"uplink": Port("any", help="bytes the implant's radio delivered")}
    outputs: ClassVar[dict[str, Port]] = {"features": Port("features"), "downlink": Port("any"), "link": Port("any")}

    def setup(self) -> None:
        implant_keys, host_keys = self._setup_common()
        self.side = HostLinkSide(host_keys, implant_keys.public_key, self.radio, self.settings,
                                 samples_per_bin=self.samples_per_bin, name=self.name)

    def on_message(self, port: str, message: Message) -> None:
        uplink = bytes(np.asarray(message.payload, dtype=np.uint8))
        was_up = self.side.session is not None
        bins, downlink = self.side.tick(self._bin(message), message.sample_index, uplink)
        if not was_up and self.side.session is not None:
            self.context.log("link_established", handshakes=self.side.handshakes)
        for sample_index, features in bins:
            self.emit("features", features, parent=message, sample_index=sample_index)
        self.emit("downlink", self._air(downlink), parent=message)
        self.emit("link", self.side.status(), parent=message)
