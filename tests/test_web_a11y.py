"""Accessibility of the dashboard and the report: axe-core run in the page (axe-playwright-python bundles it) finds
no serious or critical violation; live figures have text alternatives and aria-live summaries.

axe-playwright-python is a test dependency (the ``test`` extra); without it these tests fail and say so.
"""

from __future__ import annotations

import time

import pytest

from tests.test_web_browser import _wait_for, browser_context, server  # noqa: F401  (fixtures)
from tests.test_web_report import simulated, small_nwb  # noqa: F401  (a small simulated session file)

BLOCKING = ("serious", "critical")
#: every state the session pill can show (app.js sets the class; style.css colours it)
PILL_STATES = ("stopped", "starting", "calibrating", "decoding", "watching", "failed", "lost")


def _axe():
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        pytest.fail("axe-playwright-python is missing: pip install axe-playwright-python (the test extra); "
                    "it bundles axe-core, which these tests run in the page", pytrace=False)
    return Axe()


def _blocking(page, context=None) -> list[str]:
    results = _axe().run(page, context=context)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]} {v['nodes'][0].get('failureSummary', '')[:200]}"
            for v in results.response["violations"] if v["impact"] in BLOCKING]


# first, before the live server of the other tests runs
def test_the_report_has_no_serious_violation(browser_context, small_nwb, tmp_path):  # noqa: F811
    from neurolace.web.report import build_report

    out = tmp_path / "report.html"
    build_report(small_nwb, out)
    page = browser_context.new_page()
    page.goto(out.as_uri())
    assert _blocking(page) == []
    page.close()


def _open_dashboard(server, page) -> None:
    page.goto(f"{server.url}/#token={server.bootstrap_token}")
    page.locator("#app").wait_for(state="visible", timeout=15000)
    _wait_for(page, "window.neurolace.stats.framesDrawn > 20")


@pytest.fixture(scope="module")
def page(server, browser_context):
    page = browser_context.new_page()
    yield page
    page.close()


def test_the_login_page_has_no_serious_violation(server, page):
    page.goto(server.url + "/")
    page.locator("#login").wait_for(state="visible", timeout=15000)
    assert _blocking(page) == []


def test_the_live_dashboard_with_the_inspector_open_has_no_serious_violation(server, page):
    _open_dashboard(server, page)
    page.evaluate("neurolaceInspector.open(300)")
    _wait_for(page, "neurolaceInspector.state.view && neurolaceInspector.state.view.channel === 300")
    assert _blocking(page) == []
    for tab in ("play", "scores"):
        page.click(f"button[data-tab={tab}]")
        assert _blocking(page) == [], tab
    page.click("button[data-tab=live]")


def test_every_session_state_pill_is_readable(server, page):
    page.goto(f"{server.url}/#token={server.bootstrap_token}")
    page.locator("#app").wait_for(state="visible", timeout=15000)
    for state in PILL_STATES:
        # pin the pill (the live feed would set it back on the next frame)
        page.evaluate(f"""() => {{ const pill = document.getElementById('state');
            const clone = pill.cloneNode(); clone.id = 'pill-check'; clone.className = 'pill {state}';
            clone.textContent = '{state}'; pill.after(clone); }}""")
        assert _blocking(page, "#pill-check") == [], state
        page.evaluate("document.getElementById('pill-check').remove()")


def test_live_figures_have_current_text_alternatives_and_a_spoken_summary(server, page):
    _open_dashboard(server, page)
    page.evaluate("neurolaceInspector.open(5)")
    _wait_for(page, "neurolaceInspector.state.view && neurolaceInspector.state.view.raw !== undefined")
    _wait_for(page, "document.getElementById('live-summary').textContent.length > 0", timeout_s=15)
    canvases = page.evaluate("""() => [...document.querySelectorAll('#tab-live canvas')]
        .filter((c) => !c.closest('[hidden]')).map((c) => [c.id, c.getAttribute('role'), c.getAttribute('aria-label')])""")
    missing = [canvas_id for canvas_id, role, label in canvases if role != "img" or not label]
    assert missing == [], f"canvases without a text alternative: {missing}"
    first = page.evaluate("document.getElementById('heatmap').getAttribute('aria-label')")
    time.sleep(1.0)
    assert page.evaluate("document.getElementById('heatmap').getAttribute('aria-label')") != first  # kept current
    live = page.evaluate("[...document.querySelectorAll('[aria-live]')].map((e) => e.id)")
    assert {"live-summary", "flag-summary", "inspector-summary"} <= set(live)
    summary = page.locator("#live-summary").inner_text()
    assert "1024 channels" in summary and "Hz" in summary and "latency" in summary
