"""The channel inspector: masks that reach the decoder, one channel's data against the implant's chain, flags, roles,
the audit trail, and the inspector, axes and thread map in real Chromium (tests/test_web_browser.py's launcher)."""

from __future__ import annotations

import re
import time

import httpx
import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.privacy.audit import read_entries
from neurolace.runtime.conformance import check_node
from neurolace.runtime.nodes.mask import ChannelMaskNode, format_channel_list, mask_features, parse_channel_list
from neurolace.web.inspect import (
    FLAG_RULES,
    MASK_NODE,
    MASK_STREAM,
    FlagRules,
    channel_flags,
    with_channel_mask,
)
from neurolace.web.live import LiveSession
from neurolace.web.server import start_in_background
from tests.test_web_browser import _wait_for, browser_context  # noqa: F401  (the browser fixture)

OWN = "sim-a"


# the mask node and the flag rules: known answers --------------------------------------------------------------------
def test_mask_features_zeroes_counts_and_sbp_of_masked_channels_and_keeps_a_missing_bin():
    mask = np.array([False, True, False, True])
    counts_and_sbp = np.arange(1, 9, dtype=np.float32)  # 4 counts, then 4 SBP
    out = mask_features(counts_and_sbp, mask)
    assert out.dtype == np.float32
    assert out.tolist() == [1, 0, 3, 0, 5, 0, 7, 0]
    assert counts_and_sbp.tolist() == list(range(1, 9))  # the input is not changed
    assert mask_features(np.array([2.0, 3.0, 4.0, 5.0]), mask).tolist() == [2, 0, 4, 0]
    bins = np.array([[1.0] * 4, [np.nan] * 4])  # a missing bin stays all NaN, so it is still seen as missing
    out = mask_features(bins, mask)
    assert out[0].tolist() == [1, 0, 1, 0] and np.isnan(out[1]).all()
    unmasked = np.ones(4)
    assert mask_features(unmasked, np.zeros(4, bool)) is unmasked
    with pytest.raises(InvalidInputError, match="3 columns does not fit a mask of 4 channels"):
        mask_features(np.ones(3), mask)


def test_channel_lists_round_trip_and_refuse_what_is_not_a_channel():
    mask = parse_channel_list(" 3, 17,1020 ,", 1024)
    assert np.flatnonzero(mask).tolist() == [3, 17, 1020] and format_channel_list(mask) == "3,17,1020"
    assert not parse_channel_list("", 8).any()
    with pytest.raises(InvalidInputError, match="masked channel 8 is outside"):
        parse_channel_list("8", 8)
    with pytest.raises(InvalidInputError, match="comma-separated integers, got 'x'"):
        parse_channel_list("1,x", 8)


def test_the_mask_node_passes_the_node_contract_and_zeroes_its_masked_channels():
    emitted = check_node(ChannelMaskNode, params={"n_channels": 4, "masked": "1,2"},
                         messages={"features": [np.arange(1.0, 9.0), np.ones(8)]})
    assert [m.payload.tolist() for m in emitted] == [[1, 0, 0, 4, 5, 0, 0, 8], [1, 0, 0, 1, 1, 0, 0, 1]]


def test_flags_follow_their_documented_thresholds():
    rules = FlagRules(dead_below_uv=2.0, noisy_above_uv=30.0, saturated_above=0.01)
    noise = np.array([0.0, 1.9, 2.0, 12.0, 30.0, 30.1, 80.0, 12.0])
    rails = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.011])
    # 0: flat at a rail is dead, not saturated; 6: clipped and loud is saturated, not noisy
    assert channel_flags(noise, rails, rules) == {"dead": [0, 1], "noisy": [5], "saturated": [6, 7]}
    assert channel_flags(None, None, rules) == {"dead": [], "noisy": [], "saturated": []}
    assert channel_flags(noise, None, rules)["noisy"] == [5, 6]
    assert "2 µV" in FLAG_RULES.to_dict()["dead"] and "ADC rail" in FLAG_RULES.to_dict()["saturated"]


def test_the_decoder_reads_its_features_through_the_mask_node():
    from neurolace.runtime.presets import preset_session

    spec = preset_session("demo")
    masked = with_channel_mask(spec, "5")
    names = [node.name for node in masked.nodes]
    assert names.index(MASK_NODE) < names.index("task")
    assert masked.node("task").inputs["features"] == [f"{MASK_NODE}.features"]
    assert masked.node(MASK_NODE).inputs["features"] == ["host_link.features"]
    assert masked.node(MASK_NODE).feedback == {"mask": MASK_STREAM}
    assert spec.node("task").inputs["features"] == ["host_link.features"]  # the original is left alone
    assert with_channel_mask(masked) is masked


# one live session with a site: consent for researchers and clinicians, an audit log ---------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir, site = tmp_path_factory.mktemp("web"), tmp_path_factory.mktemp("site")
    live = LiveSession("live", OWN)
    handle = start_in_background(port=0, data_dir=data_dir, sessions=[live], start_sessions=False, site_dir=site)
    handle.site = site
    handle.store.create_user("pa", "participant", participant_id=OWN)
    handle.store.create_user("cleo", "clinician")
    for purpose in ("clinician_view", "research_sharing"):
        handle.access.consent.grant(OWN, purpose, recorded_by="dr-lee", note="enrolment")
    live.start(wait=True)
    assert live.wait_for_frames(5), f"live session did not produce frames: {live.state} {live.error}"
    yield handle
    handle.stop()


def _headers(server, name: str = "admin") -> dict:
    return {"Authorization": f"Bearer {server.store.issue_token(server.store.user(name))}"}


def _call(server, method: str, path: str, name: str = "admin", **kwargs) -> httpx.Response:
    return httpx.request(method, server.url + path, headers=_headers(server, name), timeout=30.0, **kwargs)


def _wait_for_channel(server, channel: int, ready, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        view = _call(server, "GET", f"/api/sessions/live/channels/{channel}").json()
        if ready(view) or time.monotonic() > deadline:
            return view
        time.sleep(0.25)


def test_a_channel_view_agrees_with_the_implants_own_chain(server):
    channel = 200
    view = _wait_for_channel(server, channel, lambda v: v.get("ready") and len(v["snippets"]["uv"]) >= 10)
    assert view["raw"] and view["ready"], view.get("raw_reason")
    assert (view["thread"], view["electrode"]) == (12, 8)
    # the same band-pass and common-average reference as the chain: the same noise within the estimate's spread
    assert view["noise_uv"] == pytest.approx(view["chain_noise_uv"], rel=0.15)
    assert view["threshold_multiple"] == -4.5
    assert view["threshold_uv"] == pytest.approx(-4.5 * view["noise_uv"], rel=1e-3)
    fs_hz = 1 / view["trace"]["dt_s"]
    assert fs_hz == pytest.approx(19531.25)
    assert len(view["trace"]["uv"]) == round(0.1 * fs_hz)
    t_ms = np.array(view["snippets"]["t_ms"])
    crossing = int(np.argmin(np.abs(t_ms)))
    snippets = np.array(view["snippets"]["uv"])
    assert t_ms[0] == pytest.approx(-0.6, abs=0.03) and t_ms[-1] == pytest.approx(1.2 - 1e3 / fs_hz, abs=0.03)
    # every snippet is cut at a downward crossing of the threshold: at or below it at t = 0, above it just before
    # each snippet crossed the threshold of its own moment; the noise estimate (so the threshold) drifts a
    # little from block to block, so the view's current threshold is met within 5 %
    drift = 0.05 * abs(view["threshold_uv"])
    assert (snippets[:, crossing] <= view["threshold_uv"] + drift).all()
    assert (snippets[:, crossing - 1] > view["threshold_uv"] - drift).all()
    rate = view["rate"]
    assert rate["bin_s"] == 0.1 and len(rate["hz"]) == len(rate["chain_hz"]) == 200
    # same threshold as the chain (-4.5 x RMS): the two rates agree over the data seen so far
    assert sum(rate["hz"]) == pytest.approx(sum(rate["chain_hz"]), rel=0.35, abs=20)


def test_a_lower_threshold_finds_more_crossings(server):
    channel = 201
    base = _wait_for_channel(server, channel, lambda v: v.get("ready") and sum(v["rate"]["hz"]) > 0)
    assert _call(server, "PUT", "/api/sessions/live/inspector/threshold",
                 json={"channel": channel, "multiple": -3.0}).status_code == 200
    low = _wait_for_channel(server, channel, lambda v: v["threshold_multiple"] == -3.0 and len(v["snippets"]["uv"]) >= 5)
    assert low["threshold_uv"] == pytest.approx(-3.0 * low["noise_uv"], rel=1e-3)
    assert low["threshold_uv"] > base["threshold_uv"]  # -3 x RMS sits closer to zero than -4.5 x RMS
    crossing = int(np.argmin(np.abs(np.array(low["snippets"]["t_ms"]))))
    # within the noise estimate's drift since each snippet's crossing (5 %)
    assert np.array(low["snippets"]["uv"])[:, crossing].max() <= low["threshold_uv"] + 0.05 * abs(low["threshold_uv"])
    # over the same seconds, the lower threshold counts at least as many crossings as the chain at -4.5
    assert sum(low["rate"]["hz"][-20:]) >= sum(low["rate"]["chain_hz"][-20:])


def test_a_masked_channel_reads_zero_in_every_bin_the_decoder_sees(server):
    live = server.sessions["live"]
    graph = live._graph
    masked = [3, 700]
    decoder_input = graph.bus.subscribe(f"{MASK_NODE}.features", maxlen=200, mode="queue")
    source = graph.bus.subscribe("participant.features", maxlen=200, mode="queue")
    try:
        reply = _call(server, "PUT", "/api/sessions/live/inspector/mask", json={"channels": masked, "masked": True})
        assert reply.status_code == 200 and reply.json() == {"masked": masked, "decoder_masked": True}
        time.sleep(0.3)  # bins decoded before the change are not checked
        while decoder_input.get(timeout_s=0.0) is not None:
            pass
        seen, raw_crossings = [], 0
        deadline = time.monotonic() + 10.0
        while len(seen) < 100 and time.monotonic() < deadline:
            message = decoder_input.get(timeout_s=0.5)
            if message is not None and not np.isnan(message.payload).all():
                seen.append(np.asarray(message.payload))
            while (raw := source.get(timeout_s=0.0)) is not None:
                raw_crossings += int(np.asarray(raw.payload)[masked].sum())
        bins = np.array(seen)
        n = live.streams.n_channels
        assert bins.shape[0] >= 50 and bins.shape[1] == 2 * n
        assert (bins[:, masked] == 0).all() and (bins[:, [n + c for c in masked]] == 0).all()
        assert raw_crossings > 0  # the channels themselves still fire (and the heat map still shows it)
        assert bins[:, 4].sum() > 0  # an unmasked neighbour is passed on
        assert graph.runners[MASK_NODE].node.summary()["masked_channels"] == masked
        assert live.spec.node(MASK_NODE).params["masked"] == "3,700"  # the next start begins masked
        state = _call(server, "GET", "/api/sessions/live/inspector").json()
        assert state["masked"] == masked and state["raw"]
        assert set(state["flags"]) == {"dead", "noisy", "saturated"}
    finally:
        _call(server, "PUT", "/api/sessions/live/inspector/mask", json={"channels": masked, "masked": False})
        decoder_input.close()
        source.close()


def test_only_researchers_change_masks_and_thresholds_and_every_change_is_audited(server):
    before = len([e for _, e in read_entries(server.site / "audit.log") if e])
    for name in ("cleo", "pa"):
        reply = _call(server, "PUT", "/api/sessions/live/inspector/mask", name,
                      json={"channels": [9], "masked": True})
        assert reply.status_code == 403 and "researchers can" in reply.json()["detail"]
    assert _call(server, "GET", "/api/sessions/live/channels/9", "cleo").status_code == 200  # a clinician looks
    bad = [({"channels": [1024], "masked": True}, "channel must be in \\[0, 1024\\)"),
           ({"channels": [1], "masked": "yes"}, "masked must be true or false"),
           ({"channels": [1]}, "body must be")]
    for body, message in bad:
        reply = _call(server, "PUT", "/api/sessions/live/inspector/mask", json=body)
        assert reply.status_code == 400
        assert re.search(message, reply.json()["detail"]), reply.json()
    reply = _call(server, "PUT", "/api/sessions/live/inspector/threshold", json={"channel": 9, "multiple": -1.0})
    assert reply.status_code == 400 and "between -12 and -2" in reply.json()["detail"]
    assert _call(server, "GET", "/api/sessions/nope/inspector").status_code == 404
    assert _call(server, "PUT", "/api/sessions/live/inspector/mask", json={"channels": [9], "masked": True}).status_code == 200
    assert _call(server, "PUT", "/api/sessions/live/inspector/mask", json={"channels": [9], "masked": False}).status_code == 200
    assert _call(server, "PUT", "/api/sessions/live/inspector/threshold",
                 json={"channel": 9, "multiple": -5}).status_code == 200
    entries = [e for _, e in read_entries(server.site / "audit.log") if e][before:]
    changes = [e for e in entries if e.get("details", e).get("resource") in ("channel_mask", "channel_threshold")]
    details = [e.get("details", e) for e in changes]
    assert [(d["resource"], d["change"]) for d in details] == [
        ("channel_mask", {"channels": [9], "masked": True}), ("channel_mask", {"channels": [9], "masked": False}),
        ("channel_threshold", {"channel": 9, "multiple": -5})]
    assert all(e["actor"] == "admin" and e["participant_id"] == OWN for e in changes)
    assert {e["action"] for e in changes} == {"channel_setting"}


# in Chromium ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page(server, browser_context):
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    token = server.store.issue_token(server.store.user("admin"))
    page.goto(f"{server.url}/#token={token}")
    page.locator("#app").wait_for(state="visible", timeout=15000)
    yield page
    page.close()


def test_clicking_the_heat_map_opens_the_inspector_on_that_channel(page):
    _wait_for(page, "window.neurolace.stats.framesDrawn > 20")
    channel = 5 * 16 + 7  # thread 5, electrode 7
    point = page.evaluate(f"""() => {{
        const canvas = document.getElementById('heatmap'), box = canvas.getBoundingClientRect();
        const rect = neurolaceCharts.plotRect(canvas, {{right: 74, bottom: 24, left: 40}});
        const n = neurolace.stats.lastHeader.n_channels, columns = n / 16;
        const x = rect.x + ({channel} / 16 + 0.5) * rect.w / columns, y = rect.y + ({channel} % 16 + 0.5) * rect.h / 16;
        return [box.left + x * box.width / canvas.width, box.top + y * box.height / canvas.height]; }}""")
    page.mouse.click(*point)
    page.locator("#inspector").wait_for(state="visible", timeout=5000)
    assert page.evaluate("neurolaceInspector.state.channel") == channel
    assert "thread 5, electrode 7" in page.locator("#inspector-title").inner_text()
    _wait_for(page, "neurolaceInspector.state.view && neurolaceInspector.state.view.snippets.uv.length > 3")
    summary = page.locator("#inspector-summary").inner_text()
    assert "µV RMS" in summary and "× RMS" in summary and "Hz" in summary
    bars = page.evaluate("neurolaceInspector.state.scaleBars")
    assert bars["ms"] > 0 and bars["uv"] > 0
    labels = page.evaluate("""() => Object.fromEntries(['inspector-snippets', 'inspector-trace', 'inspector-rate',
        'heatmap', 'raster', 'bps-chart', 'latency-chart', 'thread-map'].map(
        (id) => [id, document.getElementById(id).getAttribute('aria-label') || '']))""")
    assert "threshold" in labels["inspector-snippets"] and "ms" in labels["inspector-snippets"]
    assert "scale bars" in labels["inspector-trace"] and "µV" in labels["inspector-trace"]
    assert "Hz" in labels["inspector-rate"]
    assert "Hz" in labels["heatmap"] and "64 threads by 16 electrodes" in labels["heatmap"]
    assert "one column per 20 ms bin" in labels["raster"]
    assert "time (s)" in labels["latency-chart"] and "ms" in labels["latency-chart"]
    assert "64 threads" in labels["thread-map"]
    assert page.evaluate("neurolaceCharts.flagState.selected") == channel
    assert page.errors == []


def test_the_inspectors_mask_button_masks_the_channel_for_the_decoder(page, server):
    page.evaluate("neurolaceInspector.open(42)")
    _wait_for(page, "neurolaceInspector.state.view && neurolaceInspector.state.view.channel === 42")
    assert page.locator("#inspector-mask").is_visible()  # a researcher sees the controls
    page.locator("#inspector-mask").click()
    _wait_for(page, "neurolaceInspector.state.view.masked === true")
    state = _call(server, "GET", "/api/sessions/live/inspector").json()
    assert 42 in state["masked"]
    assert page.locator("#inspector-mask").get_attribute("aria-pressed") == "true"
    page.locator("#inspector-mask").click()
    _wait_for(page, "neurolaceInspector.state.view.masked === false")
    assert 42 not in _call(server, "GET", "/api/sessions/live/inspector").json()["masked"]
    assert page.errors == []
