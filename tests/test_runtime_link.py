"""The secure link in the node graph: the demo's loop through link_implant -> radio -> link_host."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from runtime_fixtures import redis_server  # noqa: F401  (fixtures)

from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.runtime.bus import InProcessBus
from neurolace.runtime.graph import Graph
from neurolace.runtime.secure_link import decode_features, encode_features, link_keystores
from neurolace.runtime.session_file import parse_session

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (REPO_ROOT / "sessions" / "closed_loop_sim.toml").read_text()


def _small(text: str, **link) -> str:
    """The shipped session, small (32 channels, counts path, 4 s on the stepped clock), link options added."""
    for old, new in (("duration_s = 180.0", 'duration_s = 4.0\nclock = "stepped"'), ("n_channels = 1024", "n_channels = 32"),
                     ('path = "implant"   # or "counts"', 'path = "counts"'), ("open_loop_s = 60.0", "open_loop_s = 1.5"),
                     ("closed_loop_s = 40.0", "closed_loop_s = 0.5"), ("webgrid_s = 40.0", "webgrid_s = 1.4")):
        assert old in text, f"sessions/closed_loop_sim.toml no longer holds {old!r}"
        text = text.replace(old, new)
    options = "".join(f"{key} = {value}\n" for key, value in link.items())
    for node in ('type = "link_implant"\n', 'type = "link_host"\n'):
        assert node in text, "the shipped session no longer runs through the secure link"
        text = text.replace(node, node + options)
    return text


def _run(text: str):
    bus = InProcessBus()
    tap = bus.subscribe("host_link.features", maxlen=100_000)
    report = Graph(parse_session(text, source="link.toml"), bus).run()
    bins = []
    while (message := tap.get(timeout_s=0)) is not None:
        bins.append(np.asarray(message.payload))
    return report, bins


def _node(report: dict, name: str) -> dict:
    return report["nodes"][name]


def test_the_shipped_loop_runs_through_a_sealed_link_and_loses_nothing_on_a_clean_radio():
    report, bins = _run(_small(SHIPPED))
    host, implant, task = (_node(report, n) for n in ("host_link", "implant_link", "task"))
    assert host["handshakes"] == 1 and implant["handshakes"] == 1
    assert host["missing_bins"] == 0 and host["late_bins"] == 0
    assert host["delivered_bins"] == len(bins) >= 190  # 200 bins, the last ones still on the air
    assert sum(host["endpoint"]["rejected"].values()) == 0
    assert host["session"]["opened"] == host["delivered_bins"]
    assert task["complete"], task


def test_bursty_loss_with_reordering_is_survived_and_gaps_reach_the_decoder_as_missing_bins():
    report, bins = _run(_small(SHIPPED, loss=0.1, burst_frames=3.0, reorder=0.05, duplicate=0.02))
    host, task = _node(report, "host_link"), _node(report, "task")
    nan_bins = sum(bool(np.isnan(b).all()) for b in bins)
    assert host["missing_bins"] > 5 and nan_bins == host["missing_bins"]
    assert not any(np.isnan(b).any() and not np.isnan(b).all() for b in bins)  # a bin is whole or missing
    assert task["missing_bins"] == host["missing_bins"]
    assert task["complete"]
    # duplicates and late copies are refused once accepted: nothing is passed on twice
    assert host["delivered_bins"] + host["missing_bins"] == len(bins)


def test_a_bit_error_radio_rejects_the_corrupted_frames_and_counts_why():
    report, _ = _run(_small(SHIPPED, bit_error_rate=2e-5))
    rejected = {k: v for k, v in _node(report, "host_link")["endpoint"]["rejected"].items() if v}
    assert sum(rejected.values()) > 0 and set(rejected) <= {"bad_header", "tag_mismatch", "garbage", "truncated"}


def test_feature_payload_is_exact_for_counts_and_close_for_power():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 20, 64).astype(np.float32)
    power = rng.gamma(2.0, 30.0, 64).astype(np.float32)
    back = decode_features(encode_features(np.concatenate([counts, power])))
    assert np.array_equal(back[:64], counts)
    np.testing.assert_allclose(back[64:], power, rtol=1e-3)
    assert len(encode_features(np.concatenate([counts, power]))) == 2 + 64 + 2 * 64
    with pytest.raises(FormatError, match="uint8 then float16"):
        decode_features(b"\x05\x00\x01")


def test_a_pairing_directory_without_keystores_is_refused_with_the_command_that_makes_them(tmp_path):
    with pytest.raises(InvalidInputError, match=r"neurolace link pair"):
        link_keystores(str(tmp_path), 0)


def test_the_offline_runner_sees_the_link_through_a_source_wrapper():
    """``neurolace demo``'s loop: SecureLinkSource seals, radios and opens each bin; losses become missing bins."""
    from neurolace.runtime.loop import CountsSource
    from neurolace.runtime.secure_link import LinkSettings, SecureLinkSource
    from neurolace.sim.participant import Intention, SimulatedParticipant

    participant = SimulatedParticipant(n_channels=16, seed=3)
    clean = SecureLinkSource(CountsSource(participant), LinkSettings(), seed=1)
    lossy = SecureLinkSource(CountsSource(participant), LinkSettings(loss=0.2, burst_frames=3.0), seed=1)
    intention = Intention(np.array([0.3, -0.2]), 0.0, np.array([0.5, 0.5]))
    for source in (clean, lossy):
        source.start(5)
        rows = np.array([source.emit(intention) for _ in range(300)])
        missing = np.isnan(rows).all(axis=1)
        assert not (np.isnan(rows).any(axis=1) & ~missing).any()
        host = source.report()["host"]
        assert host["handshakes"] == 1 and missing[0]  # the first bin waits for the handshake
        if source is clean:
            assert missing.sum() <= 3 and host["missing_bins"] == 0
        else:
            assert missing.sum() > 30 and host["missing_bins"] > 30
        assert np.all(rows[~missing] >= 0) and np.all(rows[~missing] == np.round(rows[~missing]))  # exact counts


def test_the_shipped_loop_runs_its_link_ends_in_separate_processes_on_redis(redis_server, tmp_path, capsys):  # noqa: F811
    """`run --processes`: each link end in its own process, paired for the run on disk, sealed over Redis."""
    from neurolace.cli import main as cli_main

    text = _small(SHIPPED).replace('duration_s = 4.0\nclock = "stepped"', 'duration_s = 6.0')
    path = tmp_path / "link.toml"
    path.write_text(text)
    code = cli_main.main(["run", str(path), "--bus", redis_server.url, "--processes", "--json"])
    captured = capsys.readouterr()
    assert captured.out, captured.err
    report = json.loads(captured.out)
    host = report["nodes"]["host_link"]
    assert code == 0 and report["processes"] == 4
    assert host["handshakes"] == 1 and host["delivered_bins"] > 100
    assert sum(host["endpoint"]["rejected"].values()) == 0
    assert report["nodes"]["task"]["complete"]


def _implant_path_through_the_link(loss: float, n_bins: int):
    """A 32-channel implant path behind SecureLinkSource, every product the implant made kept for checking."""
    from neurolace.runtime.secure_link import LinkSettings, SecureLinkSource
    from neurolace.sim.neural_source import ImplantFeatureSource
    from neurolace.sim.participant import Intention, SimulatedParticipant

    implant = ImplantFeatureSource(SimulatedParticipant(n_channels=32, seed=2), features="both")
    source = SecureLinkSource(implant, LinkSettings(loss=loss, burst_frames=3.0), seed=4)
    made, take = [], implant.take_products

    def keep():
        products = take()
        made.append(products)
        return products

    implant.take_products = keep
    decoded = []
    source.start(1)
    intention = Intention(np.array([0.4, 0.1]), 0.0, np.array([0.5, 0.5]))
    for _ in range(n_bins):
        rows = source.emit(intention)
        if source.host.last_raw is not None:
            decoded.append(source.host.last_raw)
            source.host.last_raw = None
    return source, made, decoded, rows


def test_the_implant_path_sends_events_and_lossless_raw_beside_the_bins_through_the_governor():
    source, made, decoded, _ = _implant_path_through_the_link(0.0, 150)
    report = source.report()
    host, implant = report["host"], report["implant"]
    governor = implant["governor"]
    assert governor["n_channels"] == 32 and implant["endpoint"]["sent_by_stream"]["features"] == host["delivered_bins"]
    assert governor["sent"]["features_frames"] == governor["ticks"] == implant["endpoint"]["sent_by_stream"]["events"]
    made_events = sum(p.events.n_spikes for p in made[2:] if p is not None)  # the bins a session carried
    assert host["events"] > 0 and host["events"] <= sum(p.events.n_spikes for p in made if p is not None)
    assert host["events"] >= 0.9 * made_events
    sent_raw = governor["sent"]["raw_channel_ticks"]
    assert sent_raw > 0 and sent_raw - 8 <= host["raw_channel_ticks"] <= sent_raw  # the last bin's may be on the air
    assert host.get("raw_undecodable", 0) == 0 and implant["acks"] > 0
    by_clock = {p.raw_clock: p.raw_codes for p in made if p is not None}
    assert decoded, "no raw group reached the host"
    for raw in decoded:  # every decoded group is the implant's codes, sample for sample
        np.testing.assert_array_equal(raw.samples, by_clock[raw.sample_clock][:, raw.channel_index])
    assert host["late_bins"] + report["late_for_loop"] <= 2  # raw never pushes a bin past its deadline


def test_under_loss_the_governor_backs_off_and_the_bins_still_come_as_missing_not_zeros():
    source, _, _, _ = _implant_path_through_the_link(0.2, 250)
    report = source.report()
    governor = report["implant"]["governor"]
    assert governor["observations"] > 10 and governor["goodput_estimate"] < 0.97
    assert governor["dropped"]["budget"] > 0
    assert report["host"]["missing_bins"] > 10
