"""The live dashboard at 1024 channels: browser frame rate, bins drawn per bin, server CPU, loop latency, viewers.

One process runs the ``demo`` preset session (simulated participant through the implant, 1024
channels, 20 ms bins -> the channel inspector's mask node -> Kalman decoder -> cursor -> Webgrid)
in real time, and a dashboard server that watches its bus (``LiveSession.watch``) with the channel
inspector attached to the graph (``ChannelInspector.attach``: it reads the implant's samples).
Measured on the same running graph, in interleaved phases:

- **baseline**: the graph alone; the dashboard is up but not reading the bus;
- **served, no viewer**: the dashboard's feed reads the bus and builds frames, nobody watches;
- **WebSocket client, no browser**: a plain WebSocket client in another process receiving every
  frame (the server's cost of a viewer, without a browser's CPU on the same machine);
- **1 viewer** and **3 viewers**: one and three headless Chromium pages (/usr/bin/chromium through
  Playwright) showing the live view over the WebSocket, each with the channel inspector open on its
  own channel (snippets, trace, rate polled twice a second; the tap reads the implant's samples).

The phases alternate ``repeats`` times on the same graph, so slow drift of a shared machine hits
all of them alike. Per phase:

- decoding-loop latency: the runtime's own end-to-end measure at the closed-loop node (apply time
  minus the ``origin_ns`` of the feature bin, so the decoder step and every hop are in it), p50
  and p99 over the phase;
- server CPU: process CPU seconds (all threads: graph, feed, inspector tap, uvicorn) per wall second;
- browser frames per second: requestAnimationFrame draws that had a new frame to draw
  (``window.neurolace.stats.framesDrawn``), sampled each second, median over pages and samples;
- bins drawn per bin received: raster columns drawn (``stats.rasterColumns``) over bins the page
  received (``stats.binsReceived``), 1.0 when the raster draws every bin;
- WebSocket bytes per second received by the pages, and the size of one frame;
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
    # one fit, before the measurements: without ReFIT the loop never pauses for a second fit mid-phase
    spec.node("task").params["refit"] = False
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


def _page_stats(page) -> dict:
    return page.evaluate("({f: neurolace.stats.framesDrawn, b: neurolace.stats.wsBytes, "
                         "r: neurolace.stats.binsReceived || 0, c: neurolace.stats.rasterColumns || 0})")


def _served_phase(graph, pages, duration_s: float, user_data_dir: str | None) -> dict:
    from neurolace.web.live import cursor_latency_us

    pages = list(pages or [])
    graph.reset_measurements()
    fps_samples = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    browser0 = _chromium_cpu_s(user_data_dir) if user_data_dir else 0.0
    before = [_page_stats(page) for page in pages]
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        time.sleep(1.0)
        fps_samples.extend(page.evaluate("neurolace.stats.fps") for page in pages)
    wall = time.perf_counter() - wall0
    result = {**_latency(cursor_latency_us(graph)), "server_cpu": (time.process_time() - cpu0) / wall}
    if pages:
        after = [_page_stats(page) for page in pages]
        received = sum(a["r"] - b["r"] for a, b in zip(after, before))
        drawn = sum(a["c"] - b["c"] for a, b in zip(after, before))
        skip = len(pages)  # the first second of samples: the pages were just (re)attached
        result.update({
            "fps_median": statistics.median(fps_samples[skip:] or fps_samples),
            "frames_per_s": sum(a["f"] - b["f"] for a, b in zip(after, before)) / wall / len(pages),
            "bins_drawn_per_bin": drawn / received if received else 0.0,
            "ws_bytes_per_s": sum(a["b"] - b["b"] for a, b in zip(after, before)) / wall,
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


def _open_viewer(context, server, channel: int):
    """A page showing the live view with the channel inspector open on ``channel``."""
    page = context.new_page()
    page.goto(f"{server.url}/#token={server.bootstrap_token}")
    _wait_until(page, "window.neurolace.stats.framesDrawn > 30", timeout_s=30.0)
    page.evaluate(f"neurolaceInspector.open({channel})")
    _wait_until(page, "neurolaceInspector.state.view && neurolaceInspector.state.view.ready", timeout_s=30.0)
    return page


VIEWER_CHANNELS = (100, 517, 900)
PHASES = ("baseline", "served", "websocket_client", "viewers_1", "viewers_3")
LATENCY_KEYS = ("p50_us", "p99_us", "server_cpu")
VIEWER_KEYS = (*LATENCY_KEYS, "fps_median", "frames_per_s", "bins_drawn_per_bin", "ws_bytes_per_s", "browser_cpu")


def run(quick: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    from neurolace.runtime.bus import InProcessBus
    from neurolace.runtime.graph import Graph, RunLog
    from neurolace.web.inspect import inspector_of, with_channel_mask
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
    spec = with_channel_mask(_demo_spec(calibration_s))
    graph = Graph(spec, bus, log=log)
    data_dir = tempfile.mkdtemp(prefix="neurolace-bench-web-")
    user_data_dir = tempfile.mkdtemp(prefix="neurolace-bench-chromium-")
    live = LiveSession(spec=spec)
    server = start_in_background(port=0, data_dir=data_dir, sessions=[live], start_sessions=False)
    phases: dict[str, list[dict]] = {name: [] for name in PHASES}
    graph.start()
    try:
        if not fitted.wait(calibration_s + 120):
            raise SystemExit("the decoder was not fitted in time")
        inspector_of(live).attach(graph)
        time.sleep(1.0)
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                user_data_dir, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1500, "height": 1100})
            for repeat in range(repeats):
                console.print(f"repeat {repeat + 1}/{repeats}: graph alone, fed, WebSocket client, 1 and 3 viewers "
                              "with the inspector open")
                live.stop()
                phases["baseline"].append(_served_phase(graph, None, phase_s, None))
                live.watch(bus)
                # a fit (the schedule's ReFIT) pauses the loop at a block boundary: measure once it runs again
                live.wait_for_frames(1, timeout_s=120.0)
                phases["served"].append(_served_phase(graph, None, phase_s, None))
                if live.latest_frame is None:
                    raise SystemExit("the live session made no dashboard frame while fed: "
                                     f"state {live.state}, error {live.error}")
                frame_bytes = len(live.latest_frame)
                phases["websocket_client"].append(_ws_client_phase(graph, live, server, phase_s))
                pages = [_open_viewer(context, server, VIEWER_CHANNELS[0])]
                phases["viewers_1"].append(_served_phase(graph, pages, phase_s, user_data_dir))
                pages += [_open_viewer(context, server, channel) for channel in VIEWER_CHANNELS[1:]]
                phases["viewers_3"].append(_served_phase(graph, pages, phase_s, user_data_dir))
                for page in pages:
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

    keys = {"baseline": LATENCY_KEYS, "served": LATENCY_KEYS,
            "websocket_client": (*LATENCY_KEYS, "ws_bytes_per_s", "ws_frames_per_s"),
            "viewers_1": VIEWER_KEYS, "viewers_3": VIEWER_KEYS}
    summary = {name: {key: median(phases[name], key) for key in keys[name]} for name in PHASES}
    summary.update({"frame_bytes": frame_bytes, "phases": phases, "phase_s": phase_s, "repeats": repeats,
                    "channels": 1024, "inspector_channels": list(VIEWER_CHANNELS)})
    labels = {"baseline": "graph alone (baseline)", "served": "served, no viewer",
              "websocket_client": "WebSocket client, no browser", "viewers_1": "1 viewer, inspector open",
              "viewers_3": "3 viewers, inspector open"}
    rows = []
    for name in PHASES:
        row = summary[name]
        rows.append([labels[name], row["p50_us"], row["p99_us"], 100 * row["server_cpu"],
                     row.get("fps_median", "-"), row.get("bins_drawn_per_bin", "-"),
                     row["ws_bytes_per_s"] / 1024 if "ws_bytes_per_s" in row else "-",
                     100 * row["browser_cpu"] if "browser_cpu" in row else "-"])
    table(f"dashboard at 1024 channels: medians of {repeats} x {phase_s:g} s phases (frame {frame_bytes} bytes)",
          ["phase", "loop p50 µs", "loop p99 µs", "server CPU %", "browser frames/s (per page)",
           "bins drawn / received", "WS kB/s (all pages)", "Chromium CPU %"], rows)
    baseline = summary["baseline"]["p50_us"]
    for name in ("served", "viewers_1", "viewers_3"):
        summary[f"latency_p50_ratio_{name}_vs_baseline"] = summary[name]["p50_us"] / baseline
    summary["latency_p50_baseline_spread_us"] = [min(p["p50_us"] for p in phases["baseline"]),
                                                 max(p["p50_us"] for p in phases["baseline"])]
    console.print("loop latency p50 / graph alone: " + ", ".join(
        f"{labels[name]} {summary[f'latency_p50_ratio_{name}_vs_baseline']:.2f}"
        for name in ("served", "viewers_1", "viewers_3")))
    return summary
