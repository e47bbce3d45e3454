"""Two dashboard views: the surgical plan (``serve --plan``) and the typing task drawn live (``typing.js``).

The plan is the file ``neurolace surgery plan`` writes (made here by the CLI on a small
synthetic cortex); the typing view is checked on the frame content a real
:class:`~neurolace.tasks.keyboard.KeyboardTask` gives and in Chromium on frames of a live session.
"""

from __future__ import annotations

import json

import httpx
import pytest

from neurolace.cli.main import main
from neurolace.web.plan import SITE_FIELDS, attach_plan, load_plan_view
from neurolace.web.server import start_in_background
from tests.test_web_browser import server  # noqa: F401  (the dashboard with its demo session live)


# ------------------------------------------------------------------------------------------- the plan
@pytest.fixture(scope="module")
def plan_files(tmp_path_factory):
    """plan.json and plan.png from the CLI: a 256 px synthetic cortex at 10 µm/px, 6 threads."""
    directory = tmp_path_factory.mktemp("plan")
    image, plan, overlay = directory / "cortex.png", directory / "plan.json", directory / "plan.png"
    assert main(["surgery", "synth", str(image), "--um-per-px", "10", "--size-px", "256", "--seed", "2"]) == 0
    code = main(["surgery", "plan", str(image), "--um-per-px", "10", "--threads", "6", "--out", str(plan),
                 "--overlay", str(overlay)])
    assert code in (0, 3), code
    return plan, overlay


@pytest.fixture(scope="module")
def plan_server(tmp_path_factory, plan_files):
    from neurolace.web.live import LiveSession

    handle = start_in_background(port=0, data_dir=tmp_path_factory.mktemp("web"),
                                 sessions=[LiveSession("live", "sim-001")], start_sessions=False)
    attach_plan(handle, load_plan_view(*plan_files))
    store = handle.store
    handle.tokens = {
        "researcher": handle.bootstrap_token,
        "clinician": store.issue_token(store.create_user("cleo", "clinician", password="clinic-pass")),
        "participant": store.issue_token(store.create_user("p01", "participant", participant_id="sim-001")),
    }
    yield handle
    handle.stop()


def _get(server, path: str, role: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.tokens[role]}"} if role else {}
    return httpx.get(server.url + path, headers=headers, timeout=30.0)


@pytest.mark.parametrize("role", ["clinician", "researcher"])
def test_api_plan_returns_the_file_the_cli_wrote(plan_server, plan_files, role):
    response = _get(plan_server, "/api/plan", role)
    assert response.status_code == 200
    answer = response.json()
    written = json.loads(plan_files[0].read_text())
    assert answer["plan"] == written
    assert answer["source"] == "plan.json" and answer["has_overlay"] is True
    assert len(answer["plan"]["sites"]) == written["n_sites"] > 0
    for site in answer["plan"]["sites"]:
        assert set(SITE_FIELDS) <= set(site)


def test_overlay_is_the_png_the_cli_drew(plan_server, plan_files):
    response = _get(plan_server, "/api/plan/overlay", "clinician")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content == plan_files[1].read_bytes()


@pytest.mark.parametrize("path", ["/api/plan", "/api/plan/overlay"])
def test_plan_needs_a_token_and_a_staff_role(plan_server, path):
    anonymous = _get(plan_server, path)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    participant = _get(plan_server, path, "participant")
    assert participant.status_code == 403
    assert "clinicians and researchers" in participant.json()["detail"]


def test_plan_page_is_served_with_the_security_headers(plan_server):
    response = _get(plan_server, "/plan")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert '<script src="/static/plan.js">' in response.text and "plan-table" in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert _get(plan_server, "/static/plan.js").status_code == 200


@pytest.mark.parametrize("content,match", [
    (None, "no such file"),
    ("{not json", "not JSON"),
    ('{"format": "something.else"}', "not a neurolace surgery plan"),
    ('{"format": "neurolace.surgery.plan", "clearance_um": 52, "min_margin_um": null, '
     '"estimated_duration_s": 1, "sites": [{"order": 0, "x_um": 1, "y_um": "2"}]}', "site 0 field y_um"),
    ('{"format": "neurolace.surgery.plan", "clearance_um": 52, "min_margin_um": 1, "sites": []}',
     "estimated_duration_s must be a finite number"),
])
def test_a_missing_or_malformed_plan_is_exit_2_before_serving(tmp_path, capsys, content, match):
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_text(content)
    code = main(["serve", "--plan", str(path), "--data-dir", str(tmp_path / "web"), "--port", "0", "--no-site"])
    assert code == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "web").exists()  # nothing was served, no store was made


def test_an_overlay_that_is_not_a_png_is_exit_2(tmp_path, capsys, plan_files):
    fake = tmp_path / "plan.png"
    fake.write_text("not an image")
    code = main(["serve", "--plan", str(plan_files[0]), "--plan-overlay", str(fake), "--port", "0", "--no-site",
                 "--data-dir", str(tmp_path / "web")])
    assert code == 2 and "not a PNG image" in capsys.readouterr().err
    code = main(["serve", "--plan-overlay", str(plan_files[1]), "--port", "0", "--no-site",
                 "--data-dir", str(tmp_path / "web")])
    assert code == 2 and "--plan-overlay needs --plan" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- typing live
def _typed_one_key():
    from neurolace.tasks.keyboard import KeyboardTask

    task = KeyboardTask(phrases=["hi there"], seed=0)
    target = task.start(0.0, (0.5, 0.5))
    task.update(0.6, target.center_xy, click=True)
    return task


def test_typing_state_says_what_the_keyboard_shows():
    from neurolace.web.typing_view import keyboard_keys, typing_state

    task = _typed_one_key()
    keys = keyboard_keys(task)
    assert [key["index"] for key in keys] == list(range(len(task.keys)))
    h = next(key for key in keys if key["label"] == "h")
    assert (h["x"], h["y"]) == pytest.approx(task.layout.key_for("h").target.center_xy, abs=1e-5)
    state = typing_state(task, (0.25, 0.75), time_s=1.2)
    assert state["typed_text"] == "h" and state["target_phrase"] == "hi there"
    assert state["target_key"] == task.layout.key_for("i").index  # the next character
    assert state["cursor"] == [0.25, 0.75] and state["ccpm"] > 0
    with pytest.raises(Exception, match="cursor_xy must be two finite numbers"):
        typing_state(task, (0.1, float("nan")), time_s=1.0)


def test_live_frames_carry_the_keys_once_and_the_state_every_frame(server):
    from neurolace.web.live import decode_frame
    from neurolace.web.typing_view import keyboard_keys, typing_state

    session, task = server.sessions["live"], _typed_one_key()
    session.set_typing(typing_state(task, (0.3, 0.4), time_s=1.0), keys=keyboard_keys(task))
    first = session.frame_sequence
    headers = []
    while len(headers) < 2:
        assert session.wait_for_frames(session.frame_sequence + 1, timeout_s=10)
        headers.append(decode_frame(session.latest_frame)[0])
    assert session.frame_sequence > first
    assert all(h["task"] == "typing" and h["typing"]["typed_text"] == "h" for h in headers)
    assert "keys" not in headers[-1]["typing"]  # sent once
    assert session.snapshot()["typing_keys"] == keyboard_keys(task)  # a late viewer's keys
    session.set_typing(None)
    assert session.wait_for_frames(session.frame_sequence + 1, timeout_s=10)
    assert decode_frame(session.latest_frame)[0]["task"] == "webgrid"


def test_the_dashboard_draws_the_keyboard_and_reads_the_text_out(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from neurolace.web.typing_view import keyboard_keys, typing_state
    from tests.test_web_browser import _wait_for, launch_chromium

    session, task = server.sessions["live"], _typed_one_key()
    session.set_typing(typing_state(task, (0.3, 0.4), time_s=1.0), keys=keyboard_keys(task))
    with sync_playwright() as playwright:
        context = launch_chromium(playwright, str(tmp_path / "chromium"))
        try:
            page = context.new_page()
            page.goto(server.login_url())
            _wait_for(page, "window.neurolaceTyping && window.neurolaceTyping.drawn > 2")
            status = page.locator("#typing-status")
            assert status.get_attribute("aria-live") == "polite"
            assert 'typed "h"' in status.text_content() and 'copy "hi there"' in status.text_content()
            # the aimed key ("i") is drawn green at its place on the task canvas
            key = task.layout.key_for("i").target
            colour = page.evaluate(
                "([x, y, width]) => { const c = document.getElementById('webgrid');"  # a key corner, off the label
                " const px = (x - 0.4 * width) * c.width, py = (1 - y - 0.4 * width) * c.height;"
                " return Array.from(c.getContext('2d').getImageData(px, py, 1, 1).data); }",
                [*key.center_xy, key.width])
            assert colour[:3] == [0x2e, 0x7d, 0x32], colour
        finally:
            context.close()
            session.set_typing(None)
