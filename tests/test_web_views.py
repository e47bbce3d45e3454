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
