"""What the implant-side bandwidth governor delivers at 1, 2, 4 (and 8) Mbit/s and 0, 5 and 20 % loss.

Data: the simulated N1-like implant (:func:`neurolace.sim.implant.simulate_implant`, 1024
electrodes at 19,531.25 Hz, 10-bit ADC, seed 0; 12 s, ``--quick`` 3 s), run through the
on-implant chain (:class:`neurolace.dsp.chain.SignalChain`, 20 ms bins locked to the control
clock) tick by tick. The first second (the chain's noise window, during which it holds its
output) is warm-up; the ticks after it are measured.

Each tick :class:`neurolace.runtime.uplink.UplinkSender` gives the payloads the governor lets
through (features, events, the raw groups that fit); each becomes a frame of payload + 44 bytes
(link header and AEAD tag) on the lossy radio; the host's
:class:`~neurolace.runtime.uplink.UplinkReceiver` decodes what arrives, every raw group checked
sample for sample against the implant's codes, and every 5 ticks (100 ms) an ack report
(frames sent, frames delivered) goes back to the governor. Reported per cell, all measured:

- feature bins and spike events delivered (fraction of those the chain produced);
- raw channels sent per tick and raw channels *decoded* at the host per tick (a raw frame
  decodes only if no frame of its group was lost since the group's last resync), and the
  decoded fraction of the array's raw rate (1024 channels x 19,531 samples/s);
- link load (kbit/s of frames sent) against the budget, the features and events overrun (ticks
  where they alone exceed a tick's budget: they go anyway) and the effective budget the loss
  backoff settled on.

Two feature sets, in the FEATURES layout (:func:`neurolace.runtime.uplink.encode_features`): the
chain's full bin (crossing counts as uint8 and spike-band power as float16 per channel: 3,074 bytes a
tick, 1.2 Mbit/s) and counts alone (1,026 bytes, 0.4 Mbit/s).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time

import numpy as np

from benchmarks._common import console, table
from neurolace.dsp.chain import SignalChain
from neurolace.link.frames import StreamType
from neurolace.link.governor import FRAME_OVERHEAD_BYTES, BandwidthGovernor
from neurolace.runtime.uplink import (
    ReceivedEvents,
    ReceivedFeatures,
    ReceivedRaw,
    UplinkReceiver,
    UplinkSender,
)
from neurolace.sim.implant import simulate_implant

N_CHANNELS = 1024
TICK_S = 0.02
#: the issue's 1, 2 and 4 Mbit/s, and 8 Mbit/s beyond them, where raw has room beside 1024 channels' features
RATES_KBPS = (1000.0, 2000.0, 4000.0, 8000.0)
LOSSES = (0.0, 0.05, 0.20)
ACK_TICKS = 5
RESYNC_FRAMES = 4
WARMUP_S = 1.0


def _chain_products(duration_s: float) -> dict:
    """Simulated codes and, per measured tick, the raw block, its feature bins and its events."""
    implant = simulate_implant(duration_s=duration_s, n_electrodes=N_CHANNELS, seed=0)
    recording = implant.recording
    chain = SignalChain(recording.fs_hz, N_CHANNELS, gain_uv=recording.gain_uv, fractional_bins=True)
    n_ticks = int(np.floor(duration_s / TICK_S + 1e-9))
    edges = np.floor(np.arange(n_ticks + 1) * TICK_S * recording.fs_hz + 1e-9).astype(np.int64)
    ticks = []
    started = False
    for k in range(n_ticks):
        block = recording.samples[edges[k] : edges[k + 1]]
        out = chain.process(block)
        # measure from the first tick after the chain released its warm-up backlog
        if started:
            ticks.append(
                {
                    "clock": int(edges[k]),
                    "raw": block,
                    "features": out.features.data.astype(np.float32),
                    "features_clock": int(out.features.start_sample),
                    "events": out.events,
                }
            )
        started = started or (k * TICK_S >= WARMUP_S and out.features.data.shape[0] > 0)
    return {"fs_hz": recording.fs_hz, "ticks": ticks}


class _Radio:
    """The link's own radio (``link.channel.LinkChannel``) at ``rate_kbps``: Gilbert-Elliott loss at ``loss``
    in bursts of 4 frames, a 40 ms throughput queue (what does not fit is dropped), BLE latency and jitter.

    Each frame travels as one packet of its payload plus :data:`FRAME_OVERHEAD_BYTES` (the link header and
    tag: here the stream byte, the sample clock and padding), so the radio charges what the link would."""

    _HEAD = 9  # stream (1) + sample clock (8)

    def __init__(self, rate_kbps: float, loss: float, seed: int) -> None:
        from neurolace.link.channel import ChannelSettings, LinkChannel

        settings = ChannelSettings.for_loss(loss, 4.0, throughput_kbps=rate_kbps, max_queue_ms=40.0) if loss > 0 \
            else ChannelSettings(throughput_kbps=rate_kbps, max_queue_ms=40.0)
        self.channel = LinkChannel(settings, seed=seed, name=f"{rate_kbps:g} kbit/s")
        self.tick = 0

    def carry(self, frames: list[tuple[StreamType, bytes, int]]) -> list[tuple[StreamType, bytes, int]]:
        now_s = self.tick * TICK_S
        self.tick += 1
        next_s = self.tick * TICK_S  # on the same grid, so the clock never steps back
        pad = bytes(FRAME_OVERHEAD_BYTES - self._HEAD)
        for stream, payload, clock in frames:
            self.channel.send(bytes([int(stream)]) + int(clock).to_bytes(8, "little", signed=True) + payload + pad,
                              now_s)
        arrived = []
        for packet in self.channel.receive(next_s):
            body = packet[self._HEAD:len(packet) - len(pad)]
            arrived.append((StreamType(packet[0]), body, int.from_bytes(packet[1:self._HEAD], "little", signed=True)))
        return arrived


def _cell(products: dict, *, rate_kbps: float, loss: float, n_features: int) -> dict:
    fs_hz = products["fs_hz"]
    governor = BandwidthGovernor(n_channels=N_CHANNELS, budget_kbps=rate_kbps, tick_s=TICK_S)
    sender = UplinkSender(governor, fs_hz=fs_hz, resync_frames=RESYNC_FRAMES)
    receiver = UplinkReceiver(n_channels=N_CHANNELS, n_features=n_features)
    radio = _Radio(rate_kbps, loss, seed=int(rate_kbps) + int(loss * 1000))
    produced = {"bins": 0, "events": 0}
    delivered = {"bins": 0, "events": 0, "raw_channel_ticks": 0}
    ack = {"sent": 0, "delivered": 0}
    encode_s = 0.0
    raw_by_clock = {tick["clock"]: tick["raw"] for tick in products["ticks"]}
    for k, tick in enumerate(products["ticks"]):
        features = tick["features"][:, :n_features]
        produced["bins"] += features.shape[0]
        produced["events"] += tick["events"].n_spikes
        start = time.process_time()
        frames = sender.tick(
            tick["raw"],
            sample_clock=tick["clock"],
            features=features,
            features_clock=tick["features_clock"],
            events=tick["events"],
        )
        encode_s += time.process_time() - start
        arrived = radio.carry(frames)
        ack["sent"] += len(frames)
        ack["delivered"] += len(arrived)
        for stream, payload, clock in arrived:
            got = receiver.receive(stream, payload, clock)
            if isinstance(got, ReceivedFeatures):
                delivered["bins"] += got.data.shape[0]
            elif isinstance(got, ReceivedEvents):
                delivered["events"] += got.sample_index.size
            elif isinstance(got, ReceivedRaw):
                expected = raw_by_clock[clock][:, got.channel_index]  # it may arrive a tick later
                assert np.array_equal(got.samples, expected), "raw round trip not lossless"
                delivered["raw_channel_ticks"] += got.channel_index.size
        if (k + 1) % ACK_TICKS == 0:
            # frames sent late in one ack window may arrive in the next: an ack never reports more than sent
            governor.observe({"sent": ack["sent"], "delivered": min(ack["delivered"], ack["sent"])})
            ack = {"sent": 0, "delivered": 0}
    report = governor.report()
    n_ticks = len(products["ticks"])
    return {
        "rate_kbps": rate_kbps,
        "loss": loss,
        "n_features": n_features,
        "ticks": n_ticks,
        "features_delivered": delivered["bins"] / max(produced["bins"], 1),
        "events_delivered": delivered["events"] / max(produced["events"], 1),
        "raw_channels_sent_mean": report["raw_channels_mean"],
        "raw_channels_decoded_mean": delivered["raw_channel_ticks"] / n_ticks,
        "raw_fraction_decoded": delivered["raw_channel_ticks"] / (n_ticks * N_CHANNELS),
        "link_kbps": report["sent"]["link_kbps"],
        "overrun_ticks_fraction": report["overrun"]["ticks"] / n_ticks,
        "effective_budget_kbps": report["effective_budget_kbps"],
        "raw_bytes_per_channel_tick": report["raw_bytes_per_channel_tick_estimate"],
        "sender_cpu_ms_per_tick": 1e3 * encode_s / n_ticks,
        "governor": report,
        "receiver": dict(receiver.counts),
    }


def run(quick: bool = False) -> dict:
    duration_s = 3.0 if quick else 12.0
    start = time.perf_counter()
    products = _chain_products(duration_s)
    console.print(
        f"simulated {N_CHANNELS} channels for {duration_s:g} s and ran the chain in "
        f"{time.perf_counter() - start:.1f} s; {len(products['ticks'])} ticks measured"
    )
    feature_sets = {"counts + SBP": 2 * N_CHANNELS, "counts only": N_CHANNELS}
    cells = []
    for name, n_features in feature_sets.items():
        rows = []
        for rate_kbps in RATES_KBPS:
            for loss in LOSSES:
                cell = _cell(products, rate_kbps=rate_kbps, loss=loss, n_features=n_features)
                cell["feature_set"] = name
                cells.append(cell)
                rows.append(
                    [
                        f"{rate_kbps / 1000:g}M",
                        f"{loss:.0%}",
                        f"{cell['features_delivered']:.3f}",
                        f"{cell['events_delivered']:.3f}",
                        f"{cell['raw_channels_sent_mean']:.1f}",
                        f"{cell['raw_channels_decoded_mean']:.1f}",
                        f"{cell['raw_fraction_decoded']:.2%}",
                        f"{cell['link_kbps']:.0f}",
                        f"{cell['overrun_ticks_fraction']:.2f}",
                        f"{cell['effective_budget_kbps']:.0f}",
                    ]
                )
        bin_bytes = 2 + N_CHANNELS + 2 * (n_features - N_CHANNELS)  # encode_features: u16, uint8 counts, f16 SBP
        features_kbps = (bin_bytes + FRAME_OVERHEAD_BYTES) * 8 / 1000 / TICK_S
        table(
            f"governor, {N_CHANNELS} channels, {len(products['ticks'])} ticks; features = {name} "
            f"({bin_bytes} bytes a bin, {features_kbps:.0f} kbit/s with its frame). bins, events: "
            f"fraction delivered; raw sent / raw dec: channels a tick sent / decoded at the host (groups "
            f"of 16, resync every {RESYNC_FRAMES} frames); raw %: decoded share of the array's raw rate; "
            f"kbit/s: frames sent; overrun: share of ticks where features + events alone exceed the "
            f"budget; budget: kbit/s after the loss backoff (ack every {ACK_TICKS} ticks)",
            ["link", "loss", "bins", "events", "raw sent", "raw dec", "raw %", "kbit/s", "overrun", "budget"],
            rows,
        )
    return {
        "n_channels": N_CHANNELS,
        "duration_s": duration_s,
        "tick_s": TICK_S,
        "ack_ticks": ACK_TICKS,
        "resync_frames": RESYNC_FRAMES,
        "radio": "link.channel.LinkChannel: the link rate, 40 ms queue (tail drop), Gilbert-Elliott loss in bursts of 4",
        "cells": cells,
    }
