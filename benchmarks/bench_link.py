"""The secure link's cost on one core: seal and open throughput, handshake, added latency; the attack bench.

Reported, all measured in this run on one thread:

- seal (``LinkEndpoint.send``: sequence, header, ChaCha20-Poly1305 under the header as
  associated data) and open (``LinkEndpoint.receive``: frame reader, replay window, tag check,
  decryption) throughput, MB/s of payload and frames/s, for 1024-channel feature frames
  (2 x 1024 float32 = 8192 bytes) and raw-codec-sized frames (one 16-channel group's 20 ms
  codec frame at the codec's measured N1 ratio, about 3.5 kB), against the two rates the link
  has to carry: the feature rate (2 x 1024 x 4 B x 50/s = 410 kB/s) and the lossless raw rate
  (1024 x 19,531 x 2 B / 3.54, about 11.3 MB/s). Aim: seal and open each >= 10 x the feature
  rate on one core;
- the Noise_IK session handshake (initiate + respond + finish, in memory), median of 50;
- the added latency per feature frame, p50 and p99: CPU time of seal + frame + parse + open of
  each frame (``perf_counter_ns``). Aim: < 50 µs at p99;
- the attack bench (:func:`neurolace.link.attack.run_attack_bench`) at 0, 5 and 20 % loss:
  frames delivered and lost, attacks refused, forged and replayed frames accepted (must be 0).

Times are wall clock on one thread of a shared machine; ``--quick`` runs fewer frames.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import statistics
import time

import numpy as np

from benchmarks._common import console, table
from neurolace.codec.budget import MEASURED_N1_RATIO
from neurolace.link.attack import ATTACK_KINDS, FEATURE_BYTES, HANDSHAKE_ATTACKS, run_attack_bench
from neurolace.link.endpoint import LinkEndpoint
from neurolace.link.frames import StreamType
from neurolace.link.keys import ephemeral_pairing
from neurolace.link.session import initiate, respond

N_CHANNELS = 1024
FS_HZ = 19531.0
BINS_PER_S = 50
#: 2 x 1024 float32 every 20 ms, bytes/s
FEATURE_RATE_B_S = 2 * N_CHANNELS * 4 * BINS_PER_S
#: the whole array's raw samples losslessly compressed, bytes/s
RAW_RATE_B_S = N_CHANNELS * FS_HZ * 2 / MEASURED_N1_RATIO
#: one 16-channel group's codec frame of a 20 ms tick (the uplink's raw frames)
RAW_FRAME_BYTES = int(round(16 * FS_HZ / BINS_PER_S * 2 / MEASURED_N1_RATIO))
AIM_THROUGHPUT_X_FEATURES = 10.0
AIM_ADDED_P99_US = 50.0
LOSSES = (0.0, 0.05, 0.20)


def _session_pair() -> tuple[LinkEndpoint, LinkEndpoint]:
    implant_store, host_store = ephemeral_pairing()
    message1, pending = initiate(host_store, implant_store.public_key)
    message2, implant_session = respond(implant_store, message1)
    return LinkEndpoint(implant_session, name="implant"), LinkEndpoint(pending.finish(message2), name="host")


def _throughput(payload_bytes: int, n_frames: int) -> dict:
    """Seal all frames, then open all frames, each timed as a whole; MB/s of payload and frames/s."""
    implant, host = _session_pair()
    payload = np.random.default_rng(0).bytes(payload_bytes)
    for _ in range(20):  # warm-up: first calls, caches
        host.receive(implant.send(StreamType.FEATURES, payload, 0))
    start = time.perf_counter()
    frames = [implant.send(StreamType.FEATURES, payload, index) for index in range(n_frames)]
    seal_s = time.perf_counter() - start
    start = time.perf_counter()
    opened = sum(len(host.receive(frame)) for frame in frames)
    open_s = time.perf_counter() - start
    assert opened == n_frames, (opened, n_frames)
    total = payload_bytes * n_frames
    return {
        "payload_bytes": payload_bytes,
        "frames": n_frames,
        "seal_mb_s": total / seal_s / 1e6,
        "open_mb_s": total / open_s / 1e6,
        "seal_frames_s": n_frames / seal_s,
        "open_frames_s": n_frames / open_s,
    }


def _handshake_ms(repeats: int = 50) -> dict:
    implant_store, host_store = ephemeral_pairing()
    times_ms = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        message1, pending = initiate(host_store, implant_store.public_key)
        message2, _ = respond(implant_store, message1)
        pending.finish(message2)
        times_ms.append((time.perf_counter_ns() - start) / 1e6)
    return {"median_ms": statistics.median(times_ms), "min_ms": min(times_ms), "repeats": repeats}


def _added_latency(n_frames: int) -> dict:
    """seal + frame + parse + open of each 8 kB feature frame, one at a time, µs."""
    implant, host = _session_pair()
    rng = np.random.default_rng(1)
    wall_ns, cpu_ns = [], []
    for index in range(n_frames + 50):
        payload = rng.bytes(FEATURE_BYTES)
        start_cpu, start = time.thread_time_ns(), time.perf_counter_ns()
        (delivered,) = host.receive(implant.send(StreamType.FEATURES, payload, index))
        elapsed, elapsed_cpu = time.perf_counter_ns() - start, time.thread_time_ns() - start_cpu
        assert delivered.payload == payload
        if index >= 50:  # after warm-up
            wall_ns.append(elapsed)
            cpu_ns.append(elapsed_cpu)
    wall_us, cpu_us = np.asarray(wall_ns) / 1e3, np.asarray(cpu_ns) / 1e3
    return {
        "frames": n_frames,
        "p50_us": float(np.percentile(wall_us, 50)),
        "p99_us": float(np.percentile(wall_us, 99)),
        "max_us": float(wall_us.max()),
        "thread_cpu_p50_us": float(np.percentile(cpu_us, 50)),
        "thread_cpu_p99_us": float(np.percentile(cpu_us, 99)),
    }


def _loop_latency(seconds: float, n_channels: int) -> dict:
    """End-to-end latency of the live loop with and without the link, in the same run.

    The demo preset in real time (counts path), once as shipped and once with the link nodes taken out
    (the closed loop reads the participant's features directly). Latency of a bin: the cursor's publish
    time minus the ``origin_ns`` of the participant's features message with the same sample index (so a
    bin the link delivers a bin later counts that delay).
    """
    import numpy as np

    from neurolace.runtime.bus import InProcessBus
    from neurolace.runtime.graph import Graph
    from neurolace.runtime.presets import preset_text
    from neurolace.runtime.session_file import parse_session

    shipped = preset_text("demo").replace('path = "implant"', 'path = "counts"')
    shipped = shipped.replace("n_channels = 1024", f"n_channels = {n_channels}")
    start, end = shipped.index("\n[nodes.implant_link]"), shipped.index("\n[nodes.task]")
    bare = (shipped[:start] + shipped[end:]).replace('features = "host_link.features"',
                                                      'features = "participant.features"')
    out = {}
    for label, text in (("with link", shipped), ("without link", bare)):
        spec = parse_session(text, source=f"<demo {label}>")
        spec.duration_s = seconds
        bus = InProcessBus()
        features = bus.subscribe("participant.features", maxlen=1_000_000)
        cursor = bus.subscribe("task.cursor", maxlen=1_000_000)
        Graph(spec, bus).run()
        origins = {}
        while (message := features.get(timeout_s=0)) is not None:
            origins[message.sample_index] = message.origin_ns
        latencies_us = []
        while (message := cursor.get(timeout_s=0)) is not None:
            if message.sample_index in origins:
                latencies_us.append((message.timestamp_ns - origins[message.sample_index]) / 1e3)
        values = np.array(latencies_us[50:]) if len(latencies_us) > 100 else np.array(latencies_us)
        out[label] = {"n": int(values.size), "p50_us": float(np.percentile(values, 50)),
                      "p99_us": float(np.percentile(values, 99))}
    return out


def run(quick: bool = False) -> dict:
    n_frames = 2000 if quick else 20000
    sizes = {"features (8 kB)": FEATURE_BYTES, f"raw codec group ({RAW_FRAME_BYTES} B)": RAW_FRAME_BYTES}
    throughput = {name: _throughput(size, n_frames) for name, size in sizes.items()}
    rows = []
    for name, result in throughput.items():
        for direction in ("seal", "open"):
            rate = result[f"{direction}_mb_s"] * 1e6
            rows.append([name, direction, result[f"{direction}_mb_s"], result[f"{direction}_frames_s"],
                         rate / FEATURE_RATE_B_S, rate / RAW_RATE_B_S])
    table(
        f"seal and open on one core, {n_frames} frames each (payload MB/s; x features: against the 1024-ch "
        f"feature rate {FEATURE_RATE_B_S / 1e3:.0f} kB/s; x raw: against the lossless raw rate "
        f"{RAW_RATE_B_S / 1e6:.1f} MB/s)",
        ["frames", "direction", "MB/s", "frames/s", "x features", "x raw"],
        rows,
    )
    handshake = _handshake_ms()
    latency = _added_latency(n_frames // 2)
    features = throughput["features (8 kB)"]
    slowest_x = min(features["seal_mb_s"], features["open_mb_s"]) * 1e6 / FEATURE_RATE_B_S
    table(
        "aims of the link issue",
        ["aim", "target", "measured", "met"],
        [
            ["seal and open, x feature rate (slower of the two)", f">= {AIM_THROUGHPUT_X_FEATURES:g}",
             round(slowest_x, 1), "yes" if slowest_x >= AIM_THROUGHPUT_X_FEATURES else "NO"],
            ["added latency per frame p99, µs", f"< {AIM_ADDED_P99_US:g}", round(latency["p99_us"], 1),
             "yes" if latency["p99_us"] < AIM_ADDED_P99_US else "NO"],
            ["added latency per frame p50, µs", "-", round(latency["p50_us"], 1), "-"],
            ["the same, thread CPU time p50 / p99, µs", "-",
             f"{latency['thread_cpu_p50_us']:.1f} / {latency['thread_cpu_p99_us']:.1f}", "-"],
            ["Noise_IK handshake, median of 50, ms", "-", round(handshake["median_ms"], 3), "-"],
        ],
    )
    loop = _loop_latency(5.0 if quick else 20.0, 1024)
    table(
        "the live loop's end to end (cursor publish - the bin's origin), demo preset, counts path, 1024 ch, "
        "real time, same run; the link delivers at bin ticks, so a bin later than its tick costs one bin",
        ["loop", "bins", "p50 ms", "p99 ms"],
        [[label, r["n"], r["p50_us"] / 1e3, r["p99_us"] / 1e3] for label, r in loop.items()],
    )
    seconds = 2.0 if quick else 20.0
    attack_rows, attacks = [], {}
    for loss in LOSSES:
        report = run_attack_bench(loss=loss, seconds=seconds, seed=0)
        attacks[f"{loss:g}"] = report
        refused_right = sum(
            record["rejected"].get(record["expected"], 0) == record["injected"] > 0
            for record in report["attacks"].values()
        )
        handshakes_right = sum(
            report["handshake_attacks"][kind] == reason for kind, reason in HANDSHAKE_ATTACKS.items()
        )
        attack_rows.append([
            f"{loss:.0%}", report["sent"], report["delivered"], report["lost"],
            sum(record["injected"] for record in report["attacks"].values()),
            f"{refused_right}/{len(ATTACK_KINDS)}", f"{handshakes_right}/{len(HANDSHAKE_ATTACKS)}",
            report["forged_accepted"], report["replayed_accepted"], report["throughput_kbps"],
            report["added_latency_us_p99"],
        ])
    table(
        f"attack bench, {seconds:g} s of 8 kB feature frames at 50/s, seed 0. kinds: attack kinds refused, "
        "every time, with the expected reason; hs: unpaired, revoked, garbage handshakes refused so; forged, "
        "replayed: attacker frames accepted (must be 0); p99: added µs a frame",
        ["loss", "sent", "delivered", "lost", "attacks", "kinds", "hs", "forged", "replayed", "kbit/s", "p99"],
        attack_rows,
    )
    breached = any(r["forged_accepted"] or r["replayed_accepted"] for r in attacks.values())
    if breached:
        console.print("[bold red]the link accepted a forged or replayed frame[/]")
    return {
        "feature_rate_b_s": FEATURE_RATE_B_S,
        "raw_rate_b_s": RAW_RATE_B_S,
        "raw_frame_bytes": RAW_FRAME_BYTES,
        "throughput": throughput,
        "handshake": handshake,
        "added_latency": latency,
        "loop_end_to_end": loop,
        "attack_bench": attacks,
        "aims": {
            "seal_open_x_feature_rate": slowest_x,
            "seal_open_x_feature_rate_met": slowest_x >= AIM_THROUGHPUT_X_FEATURES,
            "added_p99_us": latency["p99_us"],
            "added_p99_met": latency["p99_us"] < AIM_ADDED_P99_US,
        },
    }
