"""The live dashboard at 1024 channels: browser frame rate, server CPU, WebSocket bytes, loop latency.

One process runs the ``demo`` preset session (simulated participant, 1024 channels, 20 ms bins ->
Kalman decoder -> cursor -> Webgrid) in real time, and a dashboard server that can watch its bus
(``LiveSession.watch``). Measured on the same running graph, in interleaved phases:

- **baseline**: the graph alone; the dashboard is up but not reading the bus;
- **served, no viewer**: the dashboard's feed reads the bus and builds frames, nobody watches;
- **WebSocket client, no browser**: a plain WebSocket client in another process receiving every
  frame (the server's cost of a viewer, without a browser's CPU on the same machine);
- **viewer attached**: headless Chromium (/usr/bin/chromium through Playwright) showing the live
  view over the WebSocket.

The four phases alternate ``repeats`` times on the same graph, so slow drift of a shared machine
hits all of them alike.
Per phase:

- decoding-loop latency: the runtime's own end-to-end measure at the cursor node (apply time
  minus the ``origin_ns`` of the feature bin, so the decoder step and every hop are in it), p50
  and p99 over the phase; the aim is "unchanged within noise" with a viewer attached;
- server CPU: process CPU seconds (all threads: graph, feed, uvicorn) per wall second;
- browser frames per second: requestAnimationFrame draws that had a new frame to draw
  (``window.neurolace.stats.framesDrawn``), sampled each second, median; aim 30+;
- WebSocket bytes per second received by the page, and the size of one frame;
- Chromium CPU (all its processes, from /proc) per wall second.

The decoder is calibrated once (``calibration_s``) and measurements start after it is fitted.
Medians are quoted; ratios compare with the baseline of the same run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks._common import console, table

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _demo_spec(calibration_s: float):
    from neurolace.runtime.presets import preset_session

    spec = preset_session("demo")
    # the demo preset's closed-loop node ("task") runs the session schedule; a short observation block
    # gets the first decoder fitted quickly, then the dashboard is measured while the loop runs
    spec.node("task").params["open_loop_s"] = calibration_s
    # and Webgrid goes on for the whole measurement: the preset's session ends after 180 s, and a
    # finished session publishes no cursor, so the dashboard would have no frames to measure
    spec.node("task").params["n_webgrid_blocks"] = 1000
    spec.duration_s = 0.0
    return spec


def _wait_until(page, expression: str, *, timeout_s: float) -> None:
    """Poll ``expression`` in the page (the dashboard's CSP forbids the eval behind ``wait_for_function``)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise SystemExit(f"the dashboard page did not reach {expression!r} within {timeout_s:g} s")
        time.sleep(0.1)


def _latency(summary: dict) -> dict:
    return {"n": summary["n"], "p50_us": summary["p50_us"], "p99_us": summary["p99_us"]}


def _chromium_cpu_s(user_data_dir: str) -> float:
    """CPU seconds (user + system) of every process whose command line names ``user_data_dir``."""
    total_ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if user_data_dir.encode() not in (entry / "cmdline").read_bytes():
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total_ticks += int(fields[11]) + int(fields[12])  # utime, stime (proc(5), fields 14 and 15)
    return total_ticks / os.sysconf("SC_CLK_TCK")


def _served_phase(graph, page, duration_s: float, user_data_dir: str | None) -> dict:
    from neurolace.web.live import cursor_latency_us

    graph.reset_measurements()
    fps_samples = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    browser0 = _chromium_cpu_s(user_data_dir) if user_data_dir else 0.0
    stats0 = page.evaluate("({f: neurolace.stats.framesDrawn, b: neurolace.stats.wsBytes})") if page else None
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if page is not None:
            fps_samples.append(page.evaluate("neurolace.stats.fps"))
    wall = time.perf_counter() - wall0
    result = {**_latency(cursor_latency_us(graph)), "server_cpu": (time.process_time() - cpu0) / wall}
    if page is not None:
        stats1 = page.evaluate("({f: neurolace.stats.framesDrawn, b: neurolace.stats.wsBytes})")
        result.update({
            "fps_median": statistics.median(fps_samples[1:] or fps_samples),
            "frames_per_s": (stats1["f"] - stats0["f"]) / wall,
            "ws_bytes_per_s": (stats1["b"] - stats0["b"]) / wall,
            "browser_cpu": (_chromium_cpu_s(user_data_dir) - browser0) / wall,
        })
    return result


_WS_CLIENT = """
import asyncio, json, sys, time
import websockets

async def main(url, token, seconds):
    received = frames = 0
    async with websockets.connect(url, subprotocols=["neurolace.v1", "bearer." + token]) as socket:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = await socket.recv()
            if isinstance(message, bytes):
                received += len(message)
                frames += 1
    print(json.dumps({"bytes": received, "frames": frames, "seconds": seconds}))

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def _ws_client_phase(graph, live, server, duration_s: float) -> dict:
    """A WebSocket client in another process receives frames while the loop latency is measured."""
    import json
    import subprocess
    import sys

    url = server.url.replace("http://", "ws://") + f"/ws/sessions/{live.session_id}"
    client = subprocess.Popen([sys.executable, "-c", _WS_CLIENT, url, server.bootstrap_token, str(duration_s + 1.0)],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    result = _served_phase(graph, None, duration_s, None)
    output, _ = client.communicate(timeout=60)
    received = json.loads(output)
    result.update({"ws_bytes_per_s": received["bytes"] / received["seconds"],
                   "ws_frames_per_s": received["frames"] / received["seconds"]})
    return result


def run(quick: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    from neurolace.runtime.bus import InProcessBus
    from neurolace.runtime.graph import Graph, RunLog
    from neurolace.web.live import LiveSession
    from neurolace.web.server import start_in_background

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    phase_s = 5.0 if quick else 15.0
    repeats = 2 if quick else 3
    calibration_s = 5.0

    fitted = threading.Event()
    log = RunLog(echo=lambda record: fitted.set() if record["event"] == "decoder_fitted" else None)
    bus = InProcessBus()
    spec = _demo_spec(calibration_s)
    graph = Graph(spec, bus, log=log)
    data_dir = tempfile.mkdtemp(prefix="neurolace-bench-web-")
    user_data_dir = tempfile.mkdtemp(prefix="neurolace-bench-chromium-")
    live = LiveSession(spec=spec)
    server = start_in_background(port=0, data_dir=data_dir, sessions=[live], start_sessions=False)
    bare, served, socket_only, viewed = [], [], [], []
    graph.start()
    try:
        if not fitted.wait(calibration_s + 120):
            raise SystemExit("the decoder was not fitted in time")
        time.sleep(1.0)
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                user_data_dir, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1500, "height": 1100})
            for repeat in range(repeats):
                console.print(f"repeat {repeat + 1}/{repeats}: graph alone, fed, WebSocket client, Chromium")
                live.stop()
                bare.append(_served_phase(graph, None, phase_s, None))
                live.watch(bus)
                served.append(_served_phase(graph, None, phase_s, None))
                if live.latest_frame is None:
                    raise SystemExit("the live session made no dashboard frame while fed: "
                                     f"state {live.state}, error {live.error}")
                frame_bytes = len(live.latest_frame)
                socket_only.append(_ws_client_phase(graph, live, server, phase_s))
                page = context.new_page()
                page.goto(f"{server.url}/#token={server.bootstrap_token}")
                _wait_until(page, "window.neurolace.stats.framesDrawn > 30", timeout_s=30.0)
                viewed.append(_served_phase(graph, page, phase_s, user_data_dir))
                page.close()
            context.close()
    finally:
        server.stop()
        graph.stop()
        bus.close()
        shutil.rmtree(user_data_dir, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)

    def median(rows: list[dict], key: str) -> float:
        return float(statistics.median(row[key] for row in rows))

    summary = {
        "baseline": {key: median(bare, key) for key in ("p50_us", "p99_us", "server_cpu")},
        "served": {key: median(served, key) for key in ("p50_us", "p99_us", "server_cpu")},
        "websocket_client": {key: median(socket_only, key) for key in ("p50_us", "p99_us", "server_cpu",
                                                                        "ws_bytes_per_s", "ws_frames_per_s")},
        "viewed": {key: median(viewed, key) for key in ("p50_us", "p99_us", "server_cpu", "fps_median",
                                                         "frames_per_s", "ws_bytes_per_s", "browser_cpu")},
        "frame_bytes": frame_bytes,
        "phases": {"baseline": bare, "served": served, "websocket_client": socket_only, "viewed": viewed},
        "phase_s": phase_s,
        "repeats": repeats,
        "channels": 1024,
    }
    baseline = summary["baseline"]
    rows = [
        ["graph alone (baseline)", baseline["p50_us"], baseline["p99_us"], 100 * baseline["server_cpu"], "-", "-",
         "-"],
        ["served, no viewer", summary["served"]["p50_us"], summary["served"]["p99_us"],
         100 * summary["served"]["server_cpu"], "-", "-", "-"],
        ["WebSocket client, no browser", summary["websocket_client"]["p50_us"],
         summary["websocket_client"]["p99_us"], 100 * summary["websocket_client"]["server_cpu"], "-",
         summary["websocket_client"]["ws_bytes_per_s"] / 1024, "-"],
        ["viewer attached", summary["viewed"]["p50_us"], summary["viewed"]["p99_us"],
         100 * summary["viewed"]["server_cpu"], summary["viewed"]["fps_median"],
         summary["viewed"]["ws_bytes_per_s"] / 1024, 100 * summary["viewed"]["browser_cpu"]],
    ]
    table(f"dashboard at 1024 channels: medians of {repeats} x {phase_s:g} s phases (frame {frame_bytes} bytes)",
          ["phase", "loop p50 µs", "loop p99 µs", "server CPU %", "browser frames/s", "WS kB/s", "Chromium CPU %"],
          rows)
    summary["latency_p50_ratio_viewed_vs_baseline"] = summary["viewed"]["p50_us"] / baseline["p50_us"]
    summary["latency_p50_baseline_spread_us"] = [min(p["p50_us"] for p in bare), max(p["p50_us"] for p in bare)]
    summary["latency_p50_ratio_viewed_vs_served"] = summary["viewed"]["p50_us"] / summary["served"]["p50_us"]
    summary["latency_p50_ratio_socket_vs_served"] = (summary["websocket_client"]["p50_us"]
                                                     / summary["served"]["p50_us"])
    console.print(f"loop latency p50 ratios: viewer / graph alone {summary['latency_p50_ratio_viewed_vs_baseline']:.2f}, "
                  f"viewer / served {summary['latency_p50_ratio_viewed_vs_served']:.2f}, "
                  f"WebSocket client / served {summary['latency_p50_ratio_socket_vs_served']:.2f}")
    return summary
