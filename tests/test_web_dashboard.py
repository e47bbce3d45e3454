"""The dashboard a team works in, in a real browser (issue 16): connection loss, phone width, charts that
restart with the graph, every raster bin drawn, calibration progress and confirmations, roles that show,
``#token=`` links in an open tab, users created while the server runs, closed tabs without tracebacks,
session state (decoder, recorder, export).

Playwright drives Debian's Chromium (/usr/bin/chromium, see tests/test_web_browser.py). Two servers: one
in this process (a 64-channel demo graph with a recorder, shared by most tests) and one
``neurolace serve`` subprocess under a site, whose stderr the tests read and which one test stops and
starts again.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from neurolace.runtime.presets import preset_text
from neurolace.runtime.session_file import parse_session
from neurolace.web.live import LiveSession
from neurolace.web.server import start_in_background
from tests.test_web_browser import SCREENSHOTS, _wait_for, launch_chromium

#: a small demo: 64 channels on the implant path, short calibration blocks, every bin recorded
SMALL_DEMO_CHANNELS = 64


def _small_demo_text(record_path: Path) -> str:
    text = (preset_text("demo").replace("n_channels = 1024", f"n_channels = {SMALL_DEMO_CHANNELS}")
            .replace("open_loop_s = 60.0", "open_loop_s = 3.0").replace("closed_loop_s = 40.0", "closed_loop_s = 3.0"))
    return text + (f'\n[nodes.recorder]\ntype = "recorder"\npath = "{record_path.as_posix()}"\nnwb_path = "none"\n'
                   'fsync = false\ninputs = { streams = ["task.cursor", "task.score"] }\n')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("dashboard")
    live = LiveSession("live", "sim-001", spec=parse_session(_small_demo_text(directory / "live.nlrec")))
    handle = start_in_background(port=0, data_dir=directory / "web", sessions=[live])
    store = handle.store
    handle.tokens = {
        "researcher": handle.bootstrap_token,
        "clinician": store.issue_token(store.create_user("cleo", "clinician")),
        "participant": store.issue_token(store.create_user("pia", "participant", participant_id="sim-001")),
    }
    assert live.wait_for_frames(5, timeout_s=60.0), live.error
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        user_data_dir = tempfile.mkdtemp(prefix="neurolace-chromium-")
        context = launch_chromium(playwright, user_data_dir)
        yield context
        context.close()
        shutil.rmtree(user_data_dir, ignore_errors=True)


def _open(context, url: str, token: str):
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(f"{url}/#token={token}")
    page.locator("#app").wait_for(state="visible", timeout=15000)
    return page


def _restart_graph(server) -> None:
    """Start the shared session afresh (another test may have stopped it) and wait for its frames."""
    live = server.sessions["live"]
    live.start(calibration_s=3.0, wait=True)
    assert live.wait_for_frames(3, timeout_s=60.0), live.error


def test_page_is_as_wide_as_a_phone_screen(server, browser):
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(server.url + "/")
    widths = {"login": page.evaluate("document.documentElement.scrollWidth")}
    page.goto(f"{server.url}/#token={server.tokens['researcher']}")
    page.locator("#app").wait_for(state="visible", timeout=15000)
    _wait_for(page, "window.neurolace.stats.framesDrawn > 5")
    widths["live"] = page.evaluate("document.documentElement.scrollWidth")
    for tab in ("play", "scores"):
        page.click(f"button[data-tab={tab}]")
        widths[tab] = page.evaluate("document.documentElement.scrollWidth")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.click("button[data-tab=live]")
    page.screenshot(path=str(SCREENSHOTS / "dashboard-phone.png"), full_page=True)
    assert widths == {"login": 390, "live": 390, "play": 390, "scores": 390}
    page.close()


def test_raster_draws_every_bin_it_receives_even_at_a_low_frame_rate(server, browser):
    page = browser.new_page()
    # a slow display: the page gets about 8 animation frames per second while 50 bins per second arrive
    page.add_init_script("""(() => {
        const raf = window.requestAnimationFrame.bind(window);
        window.requestAnimationFrame = (callback) => setTimeout(() => raf(callback), 120);
    })();""")
    page.goto(f"{server.url}/#token={server.tokens['researcher']}")
    page.locator("#app").wait_for(state="visible", timeout=15000)
    _wait_for(page, "window.neurolace.stats.framesReceived >= 150", timeout_s=30.0)
    # the raster's image (300 columns, scaled onto the canvas) scrolls left one column per bin; columns never
    # drawn stay transparent
    counted = page.evaluate("""() => {
        const canvas = neurolace.rasterImage;
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let opaque = 0;
        for (let x = 0; x < canvas.width; x++) {
            for (let y = 0; y < canvas.height; y++) if (data[(y * canvas.width + x) * 4 + 3] > 0) { opaque++; break; }
        }
        return {opaque, received: neurolace.stats.framesReceived, pending: neurolace.state.bins.length,
                drawn: neurolace.stats.rasterColumns, gaps: neurolace.stats.rasterGaps,
                label: document.getElementById('raster-label').textContent};
    }""")
    # every bin received is drawn (the few the page has not reached yet are pending), and a bin the server
    # skipped for this viewer is a gap column, so the columns stay 20 ms each
    assert counted["drawn"] == counted["received"] - counted["pending"], counted
    assert counted["opaque"] == min(counted["drawn"] + counted["gaps"], 300), counted
    assert counted["label"].startswith("last 6 s")  # 300 bins of 20 ms
    page.close()


def test_switch_decoder_starts_new_series_and_the_dropdown_shows_the_active_decoder(server, browser):
    _restart_graph(server)
    page = _open(browser, server.url, server.tokens["researcher"])
    _wait_for(page, "neurolace.state.series.length >= 3 && neurolace.stats.lastHeader.t_s > 4", timeout_s=60.0)
    assert page.locator("#decoder-select").input_value() == "kalman"
    run = page.evaluate("neurolace.stats.lastHeader.run")
    page.select_option("#decoder-select", "wiener")
    page.click("#btn-decoder")
    page.locator("#confirm-dialog").wait_for(state="visible", timeout=5000)  # a live participant: ask first
    assert "wiener" in page.locator("#confirm-text").inner_text()
    page.click("#confirm-ok")
    _wait_for(page, f"neurolace.stats.lastHeader.run !== {run} && neurolace.stats.lastHeader.t_s > 3", timeout_s=60.0)
    # one snapshot of the page's state in which the new run's BPS series has begun (read at once: a later
    # frame of the same run may arrive between two reads)
    deadline = time.monotonic() + 30.0
    while True:
        series, latency, t_s = page.evaluate(
            "[neurolace.state.series.map((p) => p[0]), neurolace.state.latency.map((p) => p[0]),"
            " neurolace.stats.lastHeader.t_s]")
        if series or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert series and max(series) <= t_s + 1.0, "the BPS chart kept points of the run before"
    assert all(b > a for a, b in zip(series, series[1:])), series
    assert latency and all(b >= a for a, b in zip(latency, latency[1:])), "the latency chart ran back in time"
    _wait_for(page, "document.getElementById('decoder').textContent === 'wiener'"
                    " && document.getElementById('decoder-select').value === 'wiener'", timeout_s=10.0)
    assert server.sessions["live"].decoder == "wiener"
    assert page.errors == []
    page.close()


def test_calibration_counts_down_through_its_stages_and_stop_asks_first(server, browser):
    _restart_graph(server)
    page = _open(browser, server.url, server.tokens["researcher"])
    page.evaluate("""() => {  // every stage the page shows, in order
        window.stagesSeen = [];
        const status = document.getElementById('calibration-status');
        new MutationObserver(() => {
            const stage = status.dataset.stage;
            if (stage && window.stagesSeen[window.stagesSeen.length - 1] !== stage) window.stagesSeen.push(stage);
        }).observe(status, {attributes: true, childList: true, characterData: true, subtree: true});
    }""")
    page.fill("#calibration-s", "3")
    page.click("#btn-start")
    page.locator("#confirm-dialog").wait_for(state="visible", timeout=5000)
    page.click("#confirm-ok")
    _wait_for(page, "document.getElementById('calibration-status').dataset.stage === 'collecting'", timeout_s=30.0)
    text = page.locator("#calibration-status").inner_text()
    assert "collecting" in text and "left" in text and "calibration" in text, text
    _wait_for(page, "window.stagesSeen.includes('done')", timeout_s=60.0)
    stages = page.evaluate("window.stagesSeen")
    assert stages[stages.index("collecting"):] == ["collecting", "fitting", "closed_loop", "fitting", "refit", "done"]
    assert page.locator("#calibration-progress").evaluate("p => p.value") == 1
    # Stop asks first; Cancel leaves the participant's session running
    page.click("#btn-stop")
    page.locator("#confirm-dialog").wait_for(state="visible", timeout=5000)
    page.click("#confirm-cancel")
    time.sleep(0.5)
    assert server.sessions["live"].running
    page.click("#btn-stop")
    page.click("#confirm-ok")
    _wait_for(page, "document.getElementById('state').textContent === 'stopped'", timeout_s=20.0)
    assert not server.sessions["live"].running
    assert page.errors == []
    page.close()


def test_session_state_shows_the_recorder_and_exports_the_session(server, browser):
    _restart_graph(server)
    page = _open(browser, server.url, server.tokens["researcher"])
    _wait_for(page, "document.getElementById('recorder-status').dataset.recording === 'on'", timeout_s=30.0)
    status = page.locator("#recorder-status").inner_text()
    assert "recording live" in status and ".nlrec" in status and "messages" in status, status
    _wait_for(page, "window.neurolace.stats.framesDrawn > 20")
    with page.expect_download(timeout=15000) as download:
        page.click("#btn-export")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["session_id"] == "live" and exported["latency_ms"] and "blocks" in exported
    assert download.value.suggested_filename == "live-export.json"
    page.close()


def _visible(page, selector: str) -> bool:
    return page.locator(selector).is_visible()


def test_each_role_sees_its_own_controls(server, browser):
    _restart_graph(server)
    seen = {}
    for role in ("participant", "clinician", "researcher"):
        page = _open(browser, server.url, server.tokens[role])
        _wait_for(page, "window.neurolace.stats.framesDrawn > 3", timeout_s=30.0)
        seen[role] = {name: _visible(page, selector) for name, selector in (
            ("start", "#btn-start"), ("stop", "#btn-stop"), ("decoder", "#btn-decoder"), ("block", "#btn-block"),
            ("export", "#btn-export"))}
        assert _visible(page, "#state") and _visible(page, "#webgrid")  # everyone sees the session itself
        assert page.errors == []
        page.close()
    assert seen == {
        "participant": {"start": False, "stop": False, "decoder": False, "block": False, "export": False},
        "clinician": {"start": True, "stop": True, "decoder": False, "block": True, "export": False},
        "researcher": {"start": True, "stop": True, "decoder": True, "block": True, "export": True},
    }
    # and the server agrees: what a role does not see, it cannot do
    refused = httpx.post(f"{server.url}/api/sessions/live/control", json={"action": "decoder", "decoder": "wiener"},
                         headers={"Authorization": f"Bearer {server.tokens['clinician']}"})
    assert refused.status_code == 403 and "clinician cannot switch decoders (researchers can)" in refused.text
    assert httpx.get(f"{server.url}/api/sessions/live/export",
                     headers={"Authorization": f"Bearer {server.tokens['clinician']}"}).status_code == 403


def test_a_token_link_in_an_open_tab_switches_user_without_a_reload(server, browser):
    page = _open(browser, server.url, server.tokens["researcher"])
    page.evaluate("window.notReloaded = true")
    assert _visible(page, "#btn-start")
    page.evaluate(f"location.hash = '#token={server.tokens['participant']}'")
    _wait_for(page, "document.getElementById('who').textContent.startsWith('pia')", timeout_s=15.0)
    assert page.evaluate("window.notReloaded === true")
    assert "#token" not in page.url
    assert not _visible(page, "#btn-start") and not _visible(page, "#controls")
    _wait_for(page, "window.neurolace.state.ws && window.neurolace.state.ws.readyState === 1")
    page.close()


# ------------------------------------------------------------------------------------- a `neurolace serve` process

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _ServeProcess:
    """``neurolace serve`` under a site in a subprocess; its stderr goes to a file the tests read."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, _free_port()
        self.data_dir, self.site = root / "web", root / "site"
        self.session = root / "small.toml"
        self.session.write_text(_small_demo_text(root / "serve.nlrec"))
        self.stderr_path = root / "serve.stderr"
        self.process = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "neurolace.cli.main", *args], capture_output=True, text=True,
                              timeout=120, env=self.env, check=True)
        return done.stdout

    def start(self) -> None:
        stderr = self.stderr_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "neurolace.cli.main", "serve", "--port", str(self.port), "--data-dir",
             str(self.data_dir), "--site", str(self.site), "--session", str(self.session)],
            stdout=subprocess.DEVNULL, stderr=stderr, env=self.env)
        stderr.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"neurolace serve did not come up: {self.stderr()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    process = _ServeProcess(tmp_path_factory.mktemp("serve"))
    process.cli("serve", "--data-dir", str(process.data_dir), "--create-user", "root", "--role", "researcher",
                "--json")
    process.start()
    for purpose in ("clinician_view", "research_sharing"):
        process.cli("consent", "grant", "sim-001", purpose, "--by", "dr-lee", "--site", str(process.site))
    yield process
    process.stop()


def test_a_user_created_while_the_server_runs_can_sign_in_under_the_sites_consent(serve, browser):
    created = json.loads(serve.cli("serve", "--data-dir", str(serve.data_dir), "--create-user", "nora", "--role",
                                   "clinician", "--json"))
    page = _open(browser, serve.url, created["token"])
    assert page.locator("#who").inner_text() == "nora (clinician)"
    _wait_for(page, "document.getElementById('session-select').options.length === 1", timeout_s=15.0)
    assert "sim-001" in page.locator("#session-select").inner_text()  # consent clinician_view is on record
    _wait_for(page, "window.neurolace.stats.framesReceived > 3", timeout_s=60.0)
    page.close()


def test_closing_tabs_prints_no_traceback_on_the_server(serve, browser):
    token = json.loads(serve.cli("serve", "--data-dir", str(serve.data_dir), "--token-for", "root",
                                 "--json"))["token"]
    for wait_s in (0.0, 0.05, 0.3, 1.5):  # during the handshake, the hello, and while frames stream
        page = browser.new_page()
        page.goto(f"{serve.url}/#token={token}")
        time.sleep(wait_s)
        page.close()
    page = _open(browser, serve.url, token)
    _wait_for(page, "window.neurolace.stats.framesReceived > 10", timeout_s=60.0)
    page.close()
    time.sleep(1.5)  # the server notices the closed sockets
    assert httpx.get(serve.url + "/healthz").status_code == 200
    stderr = serve.stderr()
    assert "Traceback" not in stderr and "WebSocketDisconnect" not in stderr, stderr[-3000:]


def test_a_stopped_server_shows_connection_lost_within_3_s_and_it_goes_when_the_server_returns(serve, browser):
    token = json.loads(serve.cli("serve", "--data-dir", str(serve.data_dir), "--token-for", "root",
                                 "--json"))["token"]
    page = _open(browser, serve.url, token)
    _wait_for(page, "window.neurolace.stats.framesReceived > 3", timeout_s=60.0)
    assert not _visible(page, "#conn-banner")
    serve.process.kill()  # no goodbye: the browser must notice by itself
    stopped = time.monotonic()
    page.locator("#conn-banner").wait_for(state="visible", timeout=3000)
    assert time.monotonic() - stopped < 3.0
    assert "Connection lost" in page.locator("#conn-banner").inner_text()
    assert page.locator("#state").inner_text() == "connection lost"
    assert page.locator("#btn-stop").is_disabled() and page.locator("#btn-start").is_disabled()
    serve.process.wait(timeout=10)
    serve.start()
    page.locator("#conn-banner").wait_for(state="hidden", timeout=30000)
    assert not page.locator("#btn-stop").is_disabled()
    _wait_for(page, "window.neurolace.conn.lostCount === 1 && !window.neurolace.conn.lost")
    assert page.errors == []
    page.close()
