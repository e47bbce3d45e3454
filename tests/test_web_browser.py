"""The dashboard in a real browser: Playwright driving the system's headless Chromium.

Chromium comes from the distribution (``apt-get install chromium``, /usr/bin/chromium);
Playwright's own browser download is never used. The tests fail, never skip, when it is missing.
Screenshots for review land in out/test-screenshots/.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from neurolace.tasks import net_targets_per_minute, webgrid_bps
from neurolace.web.server import start_in_background

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "out" / "test-screenshots"
GAME_SECONDS = 30


def launch_chromium(playwright, user_data_dir: str):
    """A fresh headless Chromium context from /usr/bin/chromium; fails the test clearly if it is absent."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium); "
                    "the browser tests drive it through Playwright", pytrace=False)
    return playwright.chromium.launch_persistent_context(
        user_data_dir, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1500, "height": 1100})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    handle = start_in_background(port=0, data_dir=tmp_path_factory.mktemp("web"))
    assert handle.sessions["live"].wait_for_frames(5), handle.sessions["live"].error
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def browser_context():
    from playwright.sync_api import sync_playwright

    user_data_dir = tempfile.mkdtemp(prefix="neurolace-chromium-")
    with sync_playwright() as playwright:
        context = launch_chromium(playwright, user_data_dir)
        yield context
        context.close()
    shutil.rmtree(user_data_dir, ignore_errors=True)


def _wait_for(page, expression: str, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = page.evaluate(expression)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {expression}")


def test_requests_without_a_token_get_401_and_the_login_page(server, browser_context):
    page = browser_context.new_page()
    page.goto(server.url + "/")
    assert page.locator("#login").is_visible() and not page.locator("#app").is_visible()
    statuses = page.evaluate("""async () => Promise.all(
        ['/api/sessions', '/api/me', '/api/webgrid/scores', '/api/sessions/live'].map(
            async (path) => (await fetch(path)).status))""")
    assert statuses == [401, 401, 401, 401]
    assert page.evaluate("async () => (await fetch('/healthz')).status") == 200
    page.close()


def test_dashboard_loads_and_the_cursor_moves_during_a_simulated_session(server, browser_context):
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/#token={server.bootstrap_token}")
    # the page verifies the token with the server before it shows the app: wait for that
    page.locator("#app").wait_for(state="visible", timeout=15000)
    assert not page.locator("#login").is_visible()
    assert "#token" not in page.url  # the token is taken out of the address bar
    _wait_for(page, "window.neurolace.stats.framesDrawn > 60")
    stats = page.evaluate("() => ({moves: neurolace.stats.cursorMoves, header: neurolace.stats.lastHeader})")
    assert stats["moves"] > 30
    assert stats["header"]["n_channels"] == 1024
    assert page.locator("#state").inner_text() in ("calibrating", "decoding")
    lit = page.evaluate("""() => {
        const data = document.getElementById('heatmap').getContext('2d').getImageData(0, 0, 640, 160).data;
        let lit = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 120) lit++;
        return lit; }""")
    assert lit > 100  # channels with crossings are drawn
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"))
    assert errors == []
    page.close()


def test_scripted_mouse_plays_30_s_of_webgrid_and_the_server_confirms_the_score(server, browser_context):
    page = browser_context.new_page()
    page.goto(f"{server.url}/#token={server.bootstrap_token}")
    page.click("button[data-tab=play]")
    page.select_option("#play-grid", "30")
    page.fill("#play-seconds", str(GAME_SECONDS))
    page.click("#btn-play")
    _wait_for(page, "window.neurolace.game.running")
    box = page.locator("#play-canvas").bounding_box()
    side = 30
    cell_px = box["width"] / side
    intended = {"correct": 0, "wrong": 0}
    moves = 0
    while page.evaluate("window.neurolace.game.running"):
        _wait_for(page, "window.neurolace.game.inFlight === 0")  # the server's reply lit the next cell
        cell = page.evaluate("neurolace.game.target")
        row, column = divmod(cell, side)
        miss = moves % 5 == 4  # every fifth movement lands one cell off: a wrong selection
        if miss:
            column = column + 1 if column < side - 1 else column - 1
        x = box["x"] + (column + 0.5) * cell_px
        y = box["y"] + box["height"] - (row + 0.5) * cell_px  # row 0 is at the bottom
        page.mouse.move(x, y, steps=4)
        elapsed = page.evaluate("(performance.now() - neurolace.game.startedMs) / 1000")
        if elapsed >= GAME_SECONDS - 0.2:  # leave the last click time to land inside the game
            break
        page.mouse.down()
        page.mouse.up()
        intended["wrong" if miss else "correct"] += 1
        moves += 1
        time.sleep(0.3)
    result = _wait_for(page, "window.neurolace.game.result || window.neurolace.game.error", timeout_s=15.0)
    assert isinstance(result, dict), f"the server did not score the game: {result}"
    client = page.evaluate("({correct: neurolace.game.correct, wrong: neurolace.game.wrong})")
    assert (result["correct"], result["incorrect"]) == (client["correct"], client["wrong"])
    assert (result["correct"], result["incorrect"]) == (intended["correct"], intended["wrong"])
    assert result["correct"] > 20
    ntpm = net_targets_per_minute(result["correct"], result["incorrect"], GAME_SECONDS)
    assert result["ntpm"] == pytest.approx(ntpm)
    assert result["bps"] == pytest.approx(webgrid_bps(ntpm, side))
    assert "Server-verified" in page.locator("#play-result").inner_text()
    stored = [s for s in server.games.scores() if s["game_id"] == result["game_id"]]
    assert len(stored) == 1 and stored[0]["user"] == "admin" and stored[0]["bps"] == result["bps"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "webgrid-game.png"))
    page.click("button[data-tab=scores]")
    page.wait_for_selector("#scores-table tbody tr")
    assert "admin" in page.locator("#scores-table tbody").inner_text()
    page.close()


def test_sign_out_revokes_only_the_pages_token_and_shows_the_login(server, browser_context):
    from neurolace.web.auth import AuthError

    token = server.store.issue_token(server.store.user("admin"))
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/#token={token}")
    page.locator("#app").wait_for(state="visible", timeout=15000)
    _wait_for(page, "window.neurolace.stats.framesReceived > 5")
    page.locator("#btn-logout").click()
    page.locator("#login").wait_for(state="visible", timeout=15000)
    assert page.locator("#login-error").inner_text() == "signed out"
    assert page.evaluate("() => window.neurolace.state.ws === null && sessionStorage.getItem('neurolace.token')") \
        is None
    with pytest.raises(AuthError, match="logged out"):
        server.store.authenticate(token)
    assert server.store.authenticate(server.bootstrap_token).name == "admin"  # the user's other tokens hold
    assert errors == []
    page.close()
