"""The secure implant-host link: frames, Noise sessions, replay protection, a lossy radio simulator.

One capability: everything that turns the implant's data products into sealed
frames on a lossy byte channel and back, and nothing about what the products
mean (the codec, the chain and the decoders know that). See docs/link.md.
"""

from neurolace.link.channel import BLE_2M_THROUGHPUT_KBPS, ChannelSettings, LinkChannel, gilbert_elliott
from neurolace.link.endpoint import MAX_PAYLOAD_BYTES, Delivered, LinkEndpoint
from neurolace.link.errors import (
    REJECT_REASONS,
    AuthenticationError,
    FrameError,
    HandshakeError,
    LinkError,
    ReplayError,
)
from neurolace.link.frames import (
    FRAME_SYNC,
    HEADER_BYTES,
    LINK_VERSION,
    MAX_BODY_BYTES,
    SUPPORTED_VERSIONS,
    Frame,
    FrameReader,
    StreamType,
    build_header,
    parse_frame,
)
from neurolace.link.keys import (
    DeviceIdentity,
    Keystore,
    PairedPeer,
    PairingResult,
    comparison_code,
    ephemeral_pairing,
    pair,
)
from neurolace.link.noise import HandshakeState
from neurolace.link.replay import ReplayWindow
from neurolace.link.session import (
    DEFAULT_REKEY_FRAMES,
    DEFAULT_REKEY_S,
    SEAL_OVERHEAD_BYTES,
    PendingSession,
    Sealer,
    SecureSession,
    initiate,
    respond,
)

__all__ = [
    "BLE_2M_THROUGHPUT_KBPS",
    "MAX_PAYLOAD_BYTES",
    "Delivered",
    "LinkEndpoint",
    "ChannelSettings",
    "LinkChannel",
    "gilbert_elliott",
    "FRAME_SYNC",
    "HEADER_BYTES",
    "LINK_VERSION",
    "MAX_BODY_BYTES",
    "SUPPORTED_VERSIONS",
    "Frame",
    "FrameReader",
    "StreamType",
    "build_header",
    "parse_frame",
    "REJECT_REASONS",
    "AuthenticationError",
    "FrameError",
    "HandshakeError",
    "LinkError",
    "ReplayError",
    "DeviceIdentity",
    "Keystore",
    "PairedPeer",
    "PairingResult",
    "comparison_code",
    "ephemeral_pairing",
    "pair",
    "HandshakeState",
    "ReplayWindow",
    "DEFAULT_REKEY_FRAMES",
    "DEFAULT_REKEY_S",
    "SEAL_OVERHEAD_BYTES",
    "PendingSession",
    "Sealer",
    "SecureSession",
    "initiate",
    "respond",
]
