"""The sealed session (explicit nonces, replay window, key epochs) and the IK handshake drivers.

A :class:`SecureSession` is what an endpoint holds once a Noise_IK handshake
finished (:func:`initiate` and :meth:`PendingSession.finish` on the host,
:func:`respond` on the implant). It implements the link's ``Sealer``
protocol (docs/link.md):

``seal(nonce, header, plaintext)``
    ChaCha20-Poly1305 under this side's send key, at the explicit nonce
    ``nonce`` (the frame's sequence number, encoded as Noise encodes nonces),
    with the frame header as associated data. Nonces must strictly increase,
    so none is ever used twice under one key.
``open(nonce, header, body)``
    Refuses a replayed or too old sequence number (:class:`ReplayWindow`),
    then verifies the tag; only then is the window updated. Explicit nonces
    (as in WireGuard, Donenfeld 2017, section 5.4.6) let late and reordered
    frames open, which Noise's implicit counter would not.

Key epochs: ``epoch = sequence // rekey_frames``; the key of epoch ``e + 1``
is Noise's REKEY of epoch ``e``'s key, so both sides derive every key from
the sequence number alone. The sender moves to the next epoch when the
sequence crosses a boundary, or, through :meth:`SecureSession.next_sequence`,
when its epoch is older than ``rekey_s`` (the sequence jumps to the next
boundary); the old send key is dropped at once. The receiver follows the
sequence numbers (a tag must verify under the new key before it moves).
Each receive epoch has its own replay window, so the jump of a time rekey
(up to ``rekey_frames`` sequence numbers) does not push the old epoch's late
frames behind the window. The previous epoch's key and window are kept only
while its frames could still be inside the window, that is until the new
epoch has accepted a sequence number ``window_size`` past its first; then
they are dropped and the old epoch's frames are refused as too old. Python
cannot wipe memory; dropping the last reference is what "erase" means here.

Every refusal raises a :class:`~neurolace.link.errors.LinkError` and is
counted by reason (:meth:`SecureSession.report`).
"""

from __future__ import annotations

import numbers
import struct
import time
from collections.abc import Callable
from typing import Any, Protocol

from neurolace.core.checks import check_int, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.link.errors import REJECT_REASONS, AuthenticationError, HandshakeError, LinkError, ReplayError
from neurolace.link.keys import DeviceIdentity, Keystore
from neurolace.link.noise import DH_BYTES, KEY_BYTES, MAX_NONCE, TAG_BYTES, CipherState, HandshakeState, rekey
from neurolace.link.replay import ReplayWindow

__all__ = [
    "DEFAULT_REKEY_FRAMES",
    "DEFAULT_REKEY_S",
    "LINK_PROLOGUE",
    "SEAL_OVERHEAD_BYTES",
    "SESSION_PROTOCOL",
    "PendingSession",
    "SecureSession",
    "Sealer",
    "initiate",
    "respond",
]

#: bytes :meth:`SecureSession.seal` adds to a plaintext (the Poly1305 tag)
SEAL_OVERHEAD_BYTES = TAG_BYTES
#: frames per key epoch
DEFAULT_REKEY_FRAMES = 2**20
#: the longest a sender keeps one epoch's key, seconds
DEFAULT_REKEY_S = 600.0
#: the most epochs a receiver derives forward for one frame (each costs one REKEY)
DEFAULT_MAX_EPOCH_SKIP = 64
#: the session handshake's Noise pattern and hash
SESSION_PROTOCOL = ("IK", "SHA256")
#: mixed into the handshake hash: a peer speaking another link version gets a different hash and fails
LINK_PROLOGUE = b"neurolace link v1"

#: message 1's payload: the host's wall clock in ns, which must grow from one handshake to the next, so
#: a recorded message 1 played again is refused ("replayed") instead of replacing the live session (the
#: same defence as WireGuard's TAI64N timestamp)
_STAMP = struct.Struct(">Q")


class Sealer(Protocol):
    """What an endpoint needs of a session: seal outgoing frame bodies, open incoming ones."""

    def seal(self, nonce: int, header: bytes, plaintext: bytes) -> bytes: ...

    def open(self, nonce: int, header: bytes, body: bytes) -> bytes: ...


def _check_bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


class SecureSession:
    """One side of an established link session (the ``Sealer`` of the link's endpoints).

    Parameters
    ----------
    send_key, receive_key : bytes
        32-byte transport keys of epoch 0 (from Noise's Split()).
    handshake_hash : bytes
        The Noise handshake hash (channel binding; the same on both sides).
    peer_public : bytes
        The peer's static public key.
    initiator : bool
        True on the side that started the handshake (the host).
    rekey_frames : int
        Frames per key epoch (both sides must use the same); at least ``window_size``.
    rekey_s : float
        The longest the sender keeps one epoch, seconds (:meth:`next_sequence` jumps after it).
    window_size : int
        Replay window, in frames.
    max_epoch_skip : int
        The most epochs a received frame may be ahead of the receiver's (a longer gap needs a new handshake).
    clock : callable () -> float
        Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        send_key: bytes,
        receive_key: bytes,
        *,
        handshake_hash: bytes,
        peer_public: bytes,
        initiator: bool,
        rekey_frames: int = DEFAULT_REKEY_FRAMES,
        rekey_s: float = DEFAULT_REKEY_S,
        window_size: int = 1024,
        max_epoch_skip: int = DEFAULT_MAX_EPOCH_SKIP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for key, name in ((send_key, "send_key"), (receive_key, "receive_key")):
            if len(_check_bytes(key, name)) != KEY_BYTES:
                raise InvalidInputError(f"{name} must be {KEY_BYTES} bytes, got {len(key)}")
        self.window_size = check_int(window_size, "window_size", minimum=1)
        self.rekey_frames = check_int(rekey_frames, "rekey_frames", minimum=self.window_size,
                                      maximum=MAX_NONCE)
        self.rekey_s = check_positive(rekey_s, "rekey_s", allow_inf=True)
        self.max_epoch_skip = check_int(max_epoch_skip, "max_epoch_skip", minimum=1)
        self.handshake_hash = _check_bytes(handshake_hash, "handshake_hash")
        self.peer_public = _check_bytes(peer_public, "peer_public")
        self.initiator = bool(initiator)
        self._clock = clock
        self._send = CipherState(send_key)
        self._send_epoch = 0
        self._send_epoch_started_s = clock()
        self._last_sealed: int | None = None
        # receive epoch -> (its key, its replay window): the current epoch, and the previous while needed
        self._receive: dict[int, tuple[CipherState, ReplayWindow]] = {
            0: (CipherState(receive_key), ReplayWindow(self.window_size))
        }
        self._receive_epoch = 0
        self.sealed = 0
        self.opened = 0
        self.rekeys_sent = 0
        self.rekeys_received = 0
        self.rejected = dict.fromkeys(REJECT_REASONS, 0)

    def __repr__(self) -> str:
        role = "initiator" if self.initiator else "responder"
        return (f"SecureSession({role}, peer={self.peer_public.hex()[:16]}..., sealed={self.sealed}, "
                f"opened={self.opened}, epochs send={self._send_epoch} receive={self._receive_epoch})")

    # -- sending --------------------------------------------------------------------------------

    def next_sequence(self) -> int:
        """The sequence number (nonce) the next frame should carry.

        One more than the last sealed, or the next epoch boundary when the current send epoch
        is older than ``rekey_s``. Calling it twice without sealing returns the same number.
        """
        candidate = 0 if self._last_sealed is None else self._last_sealed + 1
        if (candidate // self.rekey_frames == self._send_epoch
                and self._clock() - self._send_epoch_started_s >= self.rekey_s):
            candidate = (self._send_epoch + 1) * self.rekey_frames
        if candidate >= MAX_NONCE:
            raise InvalidInputError("this session has used all its sequence numbers; start a new handshake")
        return candidate

    def seal(self, nonce: int, header: bytes, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` at sequence ``nonce`` with ``header`` as associated data.

        Parameters
        ----------
        nonce : int
            The frame's sequence number; larger than every nonce sealed before (see :meth:`next_sequence`).
        header : bytes
            The frame header (authenticated, not encrypted).
        plaintext : bytes

        Returns
        -------
        bytes
            Ciphertext followed by the 16-byte tag (``len(plaintext) + SEAL_OVERHEAD_BYTES`` bytes).

        Raises
        ------
        InvalidInputError
            ``nonce`` not above the last sealed one (it would reuse a nonce), out of range, or
            more than ``max_epoch_skip`` epochs ahead.
        """
        if isinstance(nonce, bool) or not isinstance(nonce, numbers.Integral) or not 0 <= nonce < MAX_NONCE:
            raise InvalidInputError(f"nonce must be an integer in 0 .. 2**64 - 2, got {nonce!r}")
        nonce = int(nonce)
        if self._last_sealed is not None and nonce <= self._last_sealed:
            raise InvalidInputError(f"nonce {nonce} is not above the last sealed nonce {self._last_sealed}: "
                                    "a nonce is never used twice")
        header, plaintext = _check_bytes(header, "header"), _check_bytes(plaintext, "plaintext")
        epoch = nonce // self.rekey_frames
        if epoch > self._send_epoch:
            steps = epoch - self._send_epoch
            if steps > self.max_epoch_skip:
                raise InvalidInputError(f"nonce {nonce} is {steps} key epochs ahead; the receiver follows at "
                                        f"most {self.max_epoch_skip}")
            key = self._send.key
            for _ in range(steps):
                key = rekey(key)
            self._send = CipherState(key)  # the old key is dropped here
            self._send_epoch = epoch
            self._send_epoch_started_s = self._clock()
            self.rekeys_sent += steps
        body = self._send.encrypt(nonce, header, plaintext)
        self._last_sealed = nonce
        self.sealed += 1
        return body

    # -- receiving ------------------------------------------------------------------------------

    def open(self, nonce: int, header: bytes, body: bytes) -> bytes:
        """Check, verify and decrypt a received body; count a refusal by its reason.

        Parameters
        ----------
        nonce : int
            The frame's sequence number.
        header : bytes
            The frame header, as received (the associated data).
        body : bytes
            Ciphertext and tag.

        Returns
        -------
        bytes
            The plaintext.

        Raises
        ------
        ReplayError
            ``"replayed"``: that sequence number already opened; ``"too_old"``: behind the window.
        AuthenticationError
            ``"tag_mismatch"``: tampered, forged, corrupted, sealed under another key, or a
            sequence number no sender of this session could have used.
        """
        try:
            return self._open(nonce, header, body)
        except LinkError as exc:
            self.rejected[exc.reason] += 1
            raise

    def _open(self, nonce, header, body) -> bytes:
        header, body = _check_bytes(header, "header"), _check_bytes(body, "body")
        if isinstance(nonce, bool) or not isinstance(nonce, numbers.Integral) or not 0 <= nonce < MAX_NONCE:
            raise AuthenticationError("tag_mismatch", f"sequence {nonce!r} is outside 0 .. 2**64 - 2")
        nonce = int(nonce)
        epoch = nonce // self.rekey_frames
        advanced: list[CipherState] = []
        if epoch > self._receive_epoch:
            steps = epoch - self._receive_epoch
            if steps > self.max_epoch_skip:
                raise AuthenticationError("tag_mismatch", f"sequence {nonce} is {steps} key epochs ahead "
                                          f"(at most {self.max_epoch_skip} are followed)")
            key = self._receive[self._receive_epoch][0].key
            for _ in range(steps):
                key = rekey(key)
                advanced.append(CipherState(key))
            cipher, window = advanced[-1], ReplayWindow(self.window_size)
        elif epoch in self._receive:
            cipher, window = self._receive[epoch]
            window.check(nonce)
        else:
            raise ReplayError("too_old", f"sequence {nonce} is of key epoch {epoch}, whose key was erased: "
                              "behind the replay window")
        plaintext = cipher.decrypt(nonce, header, body)
        window.accept(nonce)
        if advanced:
            previous = ((advanced[-2], ReplayWindow(self.window_size)) if len(advanced) > 1
                        else self._receive[self._receive_epoch])
            self._receive = {epoch - 1: previous, epoch: (cipher, window)}
            self.rekeys_received += len(advanced)
            self._receive_epoch = epoch
        current_window = self._receive[self._receive_epoch][1]
        if len(self._receive) > 1 and current_window.lowest >= self._receive_epoch * self.rekey_frames:
            del self._receive[self._receive_epoch - 1]  # no frame of it could pass a window any more
        self.opened += 1
        return plaintext

    # -- state ----------------------------------------------------------------------------------

    @property
    def window(self) -> ReplayWindow:
        """The replay window of the current receive epoch."""
        return self._receive[self._receive_epoch][1]

    @property
    def send_epoch(self) -> int:
        return self._send_epoch

    @property
    def receive_epoch(self) -> int:
        return self._receive_epoch

    @property
    def receive_epochs_held(self) -> tuple[int, ...]:
        """The receive key epochs still held (the current one, and the previous while it can be needed)."""
        return tuple(sorted(self._receive))

    def report(self) -> dict:
        """Counters: frames sealed and opened, refusals by reason, rekeys each way, current epochs."""
        return {
            "sealed": self.sealed,
            "opened": self.opened,
            "rejected": dict(self.rejected),
            "rekeys_sent": self.rekeys_sent,
            "rekeys_received": self.rekeys_received,
            "send_epoch": self._send_epoch,
            "receive_epoch": self._receive_epoch,
        }


# -- handshake drivers ------------------------------------------------------------------------------


_SESSION_OPTIONS = ("rekey_frames", "rekey_s", "window_size", "max_epoch_skip", "clock")


def _check_options(options: dict) -> dict:
    unknown = sorted(set(options) - set(_SESSION_OPTIONS))
    if unknown:
        raise InvalidInputError(f"unknown session options {unknown}; expected some of {_SESSION_OPTIONS}")
    return options


def _session_from(handshake: HandshakeState, options: dict) -> SecureSession:
    send_key, receive_key = handshake.transport_keys()
    return SecureSession(send_key, receive_key, handshake_hash=handshake.handshake_hash,
                         peer_public=handshake.remote_static, initiator=handshake.initiator, **options)


class PendingSession:
    """The host's half-done handshake: waits for the implant's message 2 (:meth:`finish`)."""

    def __init__(self, handshake: HandshakeState, options: dict) -> None:
        self._handshake = handshake
        self._options = options

    def __repr__(self) -> str:
        return f"PendingSession({self._handshake!r})"

    def finish(self, message2: bytes) -> SecureSession:
        """Read the implant's handshake reply and return the established session.

        Raises
        ------
        HandshakeError
            ``"bad_handshake"``: malformed, not from the expected implant, or finished already.
        """
        self._handshake.read_message(message2)
        return _session_from(self._handshake, self._options)


def _identity(keys: Keystore | DeviceIdentity, name: str) -> DeviceIdentity:
    if isinstance(keys, Keystore):
        return keys.identity
    if isinstance(keys, DeviceIdentity):
        return keys
    raise InvalidInputError(f"{name} must be a Keystore or a DeviceIdentity, got {type(keys).__name__}")


def _refuse_unless_paired(store: Keystore, public_key: bytes, who: str) -> None:
    status = store.status(public_key)
    if status != "paired":
        raise HandshakeError(status, f"{who} {public_key.hex()[:16]}... is {status} on {store.name!r}")


def initiate(
    host_keys: Keystore | DeviceIdentity, implant_public: bytes | str, **session_options
) -> tuple[bytes, PendingSession]:
    """Start the session handshake on the host: Noise_IK message 1 and the pending session.

    Parameters
    ----------
    host_keys : Keystore or DeviceIdentity
        The host's identity. With a keystore, the implant must be paired and not revoked in it,
        and may be named instead of given by key.
    implant_public : bytes or str
        The implant's 32-byte static public key (known from pairing), or its name in ``host_keys``.
    **session_options
        Passed to :class:`SecureSession` (``rekey_frames``, ``rekey_s``, ``window_size``, ``clock``, ...).

    Returns
    -------
    message1 : bytes
        To carry to the implant (a HANDSHAKE frame's body); 104 bytes (96 + the 8-byte timestamp payload).
    pending : PendingSession
        ``pending.finish(message2)`` gives the :class:`SecureSession`.
    """
    identity = _identity(host_keys, "host_keys")
    if isinstance(implant_public, str):
        if not isinstance(host_keys, Keystore) or host_keys.find(implant_public) is None:
            raise InvalidInputError(f"no paired implant named {implant_public!r}")
        implant_public = host_keys.find(implant_public).public_key
    implant_public = _check_bytes(implant_public, "implant_public")
    if len(implant_public) != DH_BYTES:
        raise InvalidInputError(f"implant_public must be {DH_BYTES} bytes, got {len(implant_public)}")
    if isinstance(host_keys, Keystore):
        _refuse_unless_paired(host_keys, implant_public, "implant")
    pattern, hash_name = SESSION_PROTOCOL
    handshake = HandshakeState(pattern, initiator=True, static=identity.private_key,
                               remote_static=implant_public, prologue=LINK_PROLOGUE, hash_name=hash_name)
    stamp_ns = time.time_ns()
    if isinstance(host_keys, Keystore):  # strictly increasing per implant, even within one clock tick
        stamp_ns = max(stamp_ns, host_keys.handshake_times_ns.get(implant_public, 0) + 1)
        host_keys.handshake_times_ns[implant_public] = stamp_ns
    message1 = handshake.write_message(_STAMP.pack(stamp_ns))
    return message1, PendingSession(handshake, _check_options(session_options))


def respond(implant_keys: Keystore, message1: bytes, **session_options) -> tuple[bytes, SecureSession]:
    """Answer a host's handshake on the implant: check the host is paired, then message 2 and the session.

    Parameters
    ----------
    implant_keys : Keystore
        The implant's identity and its paired hosts.
    message1 : bytes
        The host's Noise_IK message 1, as received.
    **session_options
        Passed to :class:`SecureSession`.

    Returns
    -------
    message2 : bytes
        To carry back to the host; 48 bytes.
    session : SecureSession

    Raises
    ------
    HandshakeError
        ``"bad_handshake"`` (malformed, or not for this implant's key), ``"unpaired"`` (a host
        key this implant never paired with), ``"revoked"`` (a host revoked since) or ``"replayed"``
        (a message 1 whose timestamp is not newer than the last from that host).
    """
    if not isinstance(implant_keys, Keystore):
        raise InvalidInputError(f"implant_keys must be a Keystore, got {type(implant_keys).__name__}")
    _check_options(session_options)
    pattern, hash_name = SESSION_PROTOCOL
    handshake = HandshakeState(pattern, initiator=False, static=implant_keys.identity.private_key,
                               prologue=LINK_PROLOGUE, hash_name=hash_name)
    payload = handshake.read_message(message1)
    _refuse_unless_paired(implant_keys, handshake.remote_static, "host")
    if len(payload) != _STAMP.size:
        raise HandshakeError("bad_handshake", f"message 1 carries {len(payload)} payload bytes, expected a "
                                              f"{_STAMP.size}-byte timestamp")
    (stamp_ns,) = _STAMP.unpack(payload)
    last_ns = implant_keys.handshake_times_ns.get(handshake.remote_static, -1)
    if stamp_ns <= last_ns:  # a recorded message 1 played again: answering it would drop the live session
        raise HandshakeError("replayed", "message 1 is not newer than the last one from this host")
    implant_keys.handshake_times_ns[handshake.remote_static] = stamp_ns
    message2 = handshake.write_message()
    return message2, _session_from(handshake, session_options)
