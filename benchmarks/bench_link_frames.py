"""The frame reader and the radio simulator: how many frames a second each takes on one core.

Reported, all measured in this run on one thread:

- :class:`neurolace.link.frames.FrameReader` over a clean stream of 2 kB frames fed one
  frame a packet, and fed in 4 kB chunks that cut frames anywhere; and over a damaged
  stream (garbage between frames, 1 frame in 20 cut short by lost bytes, a bit error rate of
  1e-5): frames/s and MB/s. Aim: the link's ~2000 frames/s of ~2 kB with room to spare
  (the reader is one stage of the host's receive path);
- :class:`neurolace.link.channel.LinkChannel` with every effect on (throughput, jitter,
  bursty loss, reordering, duplication, bit errors): packets/s through ``send`` and ``receive``
  on a stepped clock.

Times are wall clock on one thread of a shared machine; ``--quick`` runs fewer frames.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks._common import table
from neurolace.link.channel import ChannelSettings, LinkChannel
from neurolace.link.frames import Frame, FrameReader, StreamType

FRAME_BODY_BYTES = 2000
TARGET_FRAMES_PER_S = 2000


def _frames(n: int, rng: np.random.Generator) -> list[bytes]:
    bodies = (rng.bytes(FRAME_BODY_BYTES) for _ in range(n))
    return [
        Frame(1, StreamType.RAW, index, index * 391, body).to_bytes() for index, body in enumerate(bodies)
    ]


def _damaged_stream(frames: list[bytes], rng: np.random.Generator) -> bytes:
    pieces = []
    for index, frame in enumerate(frames):
        if index % 20 == 7:
            frame = frame[: int(rng.integers(40, len(frame)))]
        pieces.append(rng.bytes(int(rng.integers(0, 40))) + frame)
    stream = np.frombuffer(b"".join(pieces), dtype=np.uint8).copy()
    flips = rng.choice(stream.size * 8, size=int(stream.size * 8 * 1e-5), replace=False)
    np.bitwise_xor.at(stream, flips >> 3, (1 << (flips & 7)).astype(np.uint8))
    return stream.tobytes()


def _read(chunks: list[bytes]) -> tuple[float, int, FrameReader]:
    reader = FrameReader()
    start = time.perf_counter()
    frames = sum(len(reader.feed(chunk)) for chunk in chunks)
    reader.finish()
    return time.perf_counter() - start, frames, reader


def run(quick: bool = False) -> dict:
    rng = np.random.default_rng(0)
    n = 4000 if quick else 40_000
    frames = _frames(n, rng)
    stream = b"".join(frames)
    damaged = _damaged_stream(frames, rng)
    cases = {
        "clean, a frame a packet": frames,
        "clean, 4 kB chunks": [stream[i : i + 4096] for i in range(0, len(stream), 4096)],
        "damaged, 4 kB chunks": [damaged[i : i + 4096] for i in range(0, len(damaged), 4096)],
    }
    result: dict = {"frame_body_bytes": FRAME_BODY_BYTES, "frames": n, "reader": {}}
    rows = []
    for name, chunks in cases.items():
        seconds, read, reader = _read(chunks)
        fed = sum(map(len, chunks))
        entry = {
            "frames_read": read,
            "frames_per_s": read / seconds,
            "mb_per_s": fed / seconds / 1e6,
            "x_target": read / seconds / TARGET_FRAMES_PER_S,
            "rejected": dict(reader.rejected),
        }
        result["reader"][name] = entry
        rows.append([name, read, entry["frames_per_s"], entry["mb_per_s"], entry["x_target"],
                     ", ".join(f"{k} {v}" for k, v in sorted(reader.rejected.items()))])
    table("frame reader, 2 kB frames", ["stream", "frames", "frames/s", "MB/s", "x 2000/s", "rejected"], rows)

    settings = ChannelSettings.for_loss(
        0.05, 3.0, throughput_kbps=40_000.0, jitter_ms=2.0, reorder_probability=0.02,
        duplicate_probability=0.01, bit_error_rate=1e-6,
    )
    channel = LinkChannel(settings, seed=1)
    start = time.perf_counter()
    for index, frame in enumerate(frames):
        channel.send(frame, index * 5e-4)
        channel.receive(index * 5e-4)
    channel.drain()
    seconds = time.perf_counter() - start
    result["channel"] = {"packets_per_s": n / seconds, "stats": channel.stats()}
    table("radio simulator, every effect on", ["packets", "packets/s", "lost", "corrupted", "reordered"],
          [[n, n / seconds, channel.lost, channel.corrupted, channel.reordered]])
    return result
