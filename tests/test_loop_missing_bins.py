"""Missing bins (frames the link lost): never zeros to a decoder, predicted through, counted, survived."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.core.features import is_missing_bin, missing_bin
from neurolace.decode import ClickDecoder, KalmanFilter, WienerFilter, make_decoding_data
from neurolace.decode.base import MISSING_OUTPUT_DECAY, MISSING_REASON, StepStatus
from neurolace.runtime.closed_loop import BlockResult, run_block, run_calibration_session
from neurolace.runtime.loop import ClosedLoop, CountsSource, DecoderError, LoopSettings
from neurolace.runtime.loss import BurstDrops, ChannelDrops, LossySource, MaskDrops
from neurolace.sim.participant import SimulatedParticipant
from neurolace.tasks import WebgridTask


def test_a_missing_bin_is_none_or_all_nan_and_nothing_else():
    assert is_missing_bin(None) and is_missing_bin(missing_bin(3)) and missing_bin(3).shape == (3,)
    assert is_missing_bin(np.full(1, np.nan))
    for present in (np.zeros(4), np.array([np.nan, 1.0]), np.array([1.0, np.nan]), np.zeros(0), np.arange(3)):
        assert not is_missing_bin(present), present
    with pytest.raises(InvalidInputError, match="n_features"):
        missing_bin(0)


# -- decoders ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data():
    return make_decoding_data(600, 12, seed=0)


def test_kalman_predicts_through_a_gap_with_no_update(data):
    X, y = data
    kalman = KalmanFilter(lag_bins=0, q_shrinkage=0.3).fit(X, y)
    last = [kalman.step(row) for row in X[:20]][-1]
    first = kalman.step_missing()
    second = kalman.step_missing()
    np.testing.assert_allclose(first, kalman.A_ @ last, rtol=1e-12)
    np.testing.assert_allclose(second, kalman.A_ @ kalman.A_ @ last, rtol=1e-12)
    status = kalman.last_status
    assert status.reason == MISSING_REASON and not status.held
    # after the gap the filter updates again from the predicted state
    after = kalman.step(X[20])
    np.testing.assert_allclose(after, kalman.transition_ @ second + kalman.gain_ @ (X[20] - kalman.baseline_),
                               rtol=1e-10)


def test_lagged_kalman_skips_the_update_the_missing_bin_would_have_made(data):
    X, y = data
    kalman = KalmanFilter(lag_bins=2, q_shrinkage=0.3).fit(X, y)
    expected = kalman.predict(X[:30])  # the same bins without a gap
    outputs = [kalman.step(row) for row in X[:10]]
    outputs.append(kalman.step_missing())  # bin 10: its update uses bin 8, which arrived
    outputs += [kalman.step(row) for row in X[11:12]]
    np.testing.assert_allclose(outputs, expected[:12], rtol=1e-10)
    at_12 = kalman.step(X[12])  # bin 12 would have been updated with bin 10's features: prediction only
    np.testing.assert_allclose(at_12, kalman.A_ @ outputs[-1], rtol=1e-12)


def test_default_step_missing_holds_a_decaying_output_and_keeps_the_history(data):
    X, y = data
    wiener = WienerFilter(n_lags=3, alpha=1.0).fit(X, y)
    last = [wiener.step(row) for row in X[:10]][-1]
    np.testing.assert_allclose(wiener.step_missing(), MISSING_OUTPUT_DECAY * last)
    np.testing.assert_allclose(wiener.step_missing(), MISSING_OUTPUT_DECAY**2 * last)
    # the lag buffer still holds bins 7-9, so bin 10 decodes as if it followed bin 9
    np.testing.assert_allclose(wiener.step(X[10]), wiener.predict(X[:11])[-1], rtol=1e-10)
    assert np.array_equal(wiener.reset().step_missing(), np.zeros(2))


def test_click_decoder_gets_no_evidence_from_a_missing_bin():
    X, labels = make_decoding_data(600, 12, seed=1, n_classes=2)
    hmm = ClickDecoder(integration="hmm").fit(X, labels)
    for row in X[:30]:
        hmm.step(row)
    posterior = hmm._stream[2].copy()
    output = hmm.classes_[hmm._stream[1][0]]
    assert hmm.step_missing() == output
    np.testing.assert_allclose(hmm.last_probability, posterior @ hmm.transition_)
    plain = ClickDecoder().fit(X, labels)
    assert plain.step_missing() == plain.rest_class_
    np.testing.assert_allclose(plain.last_probability, plain.lda_.priors_)
    assert plain.last_status.reason == MISSING_REASON


# -- the loop -----------------------------------------------------------------------------------------

class SpyDecoder:
    """A fitted-looking velocity decoder that records every bin it is given."""

    def __init__(self, output=(0.3, 0.0)):
        self.output = np.asarray(output, dtype=np.float64)
        self.seen: list[np.ndarray] = []
        self.n_missing = 0
        self.last_status = None

    def reset(self):
        return self

    def step(self, features):
        self.seen.append(np.array(features, dtype=np.float64))
        self.last_status = StepStatus(False, "ok", 0, False)
        return self.output

    def step_missing(self):
        self.n_missing += 1
        self.last_status = StepStatus(False, MISSING_REASON, 0, False)
        return 0.5 * self.output


class SpyClick(SpyDecoder):
    """Says "click" on every missing bin, "no click" on every real one: the loop must never click on a gap."""

    click_probability = 0.0

    def step(self, features):
        super().step(features)
        return 0

    def step_missing(self):
        super().step_missing()
        return 1


class SpyAdapter:
    """Records what the loop shows the adapter."""

    class settings:
        bias_correction = True

    bias_ = np.array([0.1, 0.0])

    def __init__(self):
        self.corrected = 0
        self.recorded_features: list = []

    def start_block(self, loop_s):
        pass

    def correct(self, velocity):
        self.corrected += 1
        return velocity - self.bias_

    def record(self, features, *args):
        self.recorded_features.append(features)

    def selected(self, xy):
        return None


def test_a_missing_bin_never_reaches_a_decoder_as_data_nor_adapts_nor_clicks():
    participant = SimulatedParticipant(n_channels=16, seed=0)
    mask = np.zeros(100, dtype=bool)
    mask[[3, 10, 11, 12, 13, 50, 99]] = True
    decoder, click, adapter = SpyDecoder(), SpyClick(), SpyAdapter()
    record = run_block(participant, WebgridTask(grid_side=6, seed=1), duration_s=2.0, decoder=decoder,
                       click_decoder=click, adapter=adapter, click_brake=False, click_speed_limit=None,
                       source=LossySource(CountsSource(participant), MaskDrops(mask)), seed=2)
    n_missing = int(mask.sum())
    assert decoder.n_missing == click.n_missing == n_missing
    assert len(decoder.seen) == len(click.seen) == 100 - n_missing
    assert all(np.all(np.isfinite(row)) for row in decoder.seen + click.seen)
    np.testing.assert_array_equal(record.missing, mask)
    assert np.all(np.isnan(record.counts[mask])) and np.all(np.isfinite(record.counts[~mask]))
    # the decoder's prediction moves the cursor, minus the adapter's bias, which it does not update
    np.testing.assert_allclose(record.decoded_velocity[mask], [[0.05, 0.0]] * n_missing)
    np.testing.assert_allclose(record.decoded_velocity[~mask], [[0.2, 0.0]] * (100 - n_missing))
    assert adapter.corrected == 100 - n_missing
    assert [features is None for features in adapter.recorded_features] == mask.tolist()
    assert not record.click.any() and not record.held.any()
    assert BlockResult.from_record(record).missing_bins == n_missing == record.missing_bins


def test_the_loop_counts_missing_bins_and_names_a_decoder_that_cannot_take_them():
    loop = ClosedLoop(LoopSettings(), decoder=SpyDecoder(), click_decoder=SpyClick())
    task = WebgridTask(grid_side=6, seed=0)
    task.start(0.0, loop.cursor_xy)
    assert loop.step(None, task, 0.02).missing and loop.step(missing_bin(4), task, 0.04).missing
    assert not loop.step(np.zeros(4), task, 0.06).missing
    assert loop.missing_bins == 2 and loop.reset().missing_bins == 0

    class Old(SpyDecoder):
        step_missing = None

    old = ClosedLoop(LoopSettings(), decoder=Old(), allow_no_click=True)
    with pytest.raises(DecoderError, match=r"velocity decoder Old has no step_missing\(\).*step 0"):
        old.step(None, task, 0.02)


def test_burst_drops_lose_the_fraction_in_bursts_and_repeat_per_seed():
    drops = BurstDrops(0.1, burst_bins=5)
    drops.start(7)
    mask = np.array([drops.dropped() for _ in range(50_000)])
    assert abs(mask.mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / (50_000 / 5))  # one draw per burst
    starts = np.flatnonzero(np.diff(mask.astype(int)) == 1) + 1
    ends = np.flatnonzero(np.diff(mask.astype(int)) == -1) + 1
    runs = ends[ends > starts[0]][: starts.size - 1] - starts[: starts.size - 1]
    assert runs.size > 100 and np.all(runs % 5 == 0)
    drops.start(7)
    assert np.array_equal([drops.dropped() for _ in range(50_000)], mask)
    for bad, message in ((1.5, "loss_fraction must lie in"), (-0.1, "loss_fraction")):
        with pytest.raises(InvalidInputError, match=message):
            BurstDrops(bad)
    with pytest.raises(InvalidInputError, match="lacks"):
        LossySource(CountsSource(SimulatedParticipant(n_channels=4, seed=0)), object())


def test_a_session_with_ten_percent_bursty_loss_still_selects_targets():
    participant = SimulatedParticipant(n_channels=128, seed=4)
    source = LossySource(CountsSource(participant), BurstDrops(0.1, burst_bins=5))
    kwargs = dict(seed=4, n_channels=128, decoder="kalman", grid_side=8, webgrid_seconds=20.0, n_webgrid_blocks=1,
                  open_loop_seconds=40.0, closed_loop_seconds=20.0, calibration_grid_side=6, refit=False)
    result = run_calibration_session(participant=participant, source=source, **kwargs)
    n_steps = sum(round(b.duration_s / 0.02) for b in result.blocks)
    missing = sum(b.missing_bins for b in result.blocks)
    assert missing == source.n_lost and source.n_bins == n_steps
    assert 0.05 < missing / n_steps < 0.15
    assert all(b.missing_bins > 0 for b in result.blocks)
    assert result.bps > 0 and result.webgrid_blocks[0].correct > 0
    assert result.to_dict()["blocks"][0]["missing_bins"] == result.blocks[0].missing_bins
    same = SimulatedParticipant(n_channels=128, seed=4)
    again = run_calibration_session(participant=same, source=LossySource(CountsSource(same), BurstDrops(0.1)),
                                    **kwargs)
    assert again.to_dict() == result.to_dict()  # seeded: the same losses, the same session


def test_the_closed_loop_node_takes_an_all_nan_features_message_as_a_missing_bin():
    from neurolace.runtime.messages import Message
    from neurolace.runtime.node import NodeContext
    from neurolace.runtime.nodes.loop import ClosedLoopNode
    from neurolace.tasks.base import Target

    published: dict[str, Message] = {}

    def collect(message):
        published[message.stream] = message
        return message

    params = {name: parameter.default for name, parameter in ClosedLoopNode.parameters.items()}
    params.update(open_loop_s=12.0, closed_loop_s=4.0, webgrid_s=1.0, refit=False, grid_side=6)
    outputs = {port: f"loop.{port}" for port in ClosedLoopNode.outputs}
    node = ClosedLoopNode(params, NodeContext(name="loop", outputs=outputs, seed=3, emit_function=collect,
                                              log=lambda *args, **fields: None))
    node.setup()
    participant = SimulatedParticipant(n_channels=48, seed=3)
    participant.start((0.5, 0.5), cursor_gain_per_s=params["cursor_gain_per_s"], seed=3)
    lost = set(range(100, 700, 40)) | {701, 702, 703}  # in the observation block and the closed-loop block
    for index in range(700):
        cursor, target = published["loop.cursor"].payload, published["loop.target"].payload
        intention = participant.step(cursor[:2], Target(center_xy=(target[0], target[1]), width=target[2]))
        counts = participant.emit_counts(intention)
        features = np.full(counts.shape, np.nan) if index in lost else counts
        node.on_message("features", Message("participant.features", features, sample_index=index))
        node.on_message("intention", Message("participant.intention",
                                             np.array([*intention.velocity, intention.click]), sample_index=index))
    summary = node.summary()
    assert summary["missing_bins"] == len([i for i in lost if i < 700])
    assert summary["blocks"][0]["name"] == "open-loop"
    assert summary["blocks"][0]["missing_bins"] == len([i for i in lost if i < 600])
    assert node.runner.block.kind == "closed-loop" and node.runner.block.missing.sum() == 2  # bins 620 and 660


def test_channel_drops_lose_bins_as_the_links_gilbert_elliott_radio_does():
    from neurolace.link.channel import ChannelSettings

    drops = ChannelDrops.for_loss(0.1, burst_bins=5)
    drops.start(3)
    mask = np.array([drops.dropped() for _ in range(40_000)])
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]]))))[::2]
    assert abs(mask.mean() - 0.1) < 0.02 and abs(runs.mean() - 5) < 0.75  # ~800 bursts
    assert mask.sum() == drops.channel.lost
    drops.start(3)
    assert np.array_equal([drops.dropped() for _ in range(40_000)], mask)
    lossless = ChannelDrops(ChannelSettings())
    assert not any(lossless.dropped() for _ in range(1000))
    with pytest.raises(InvalidInputError, match="settings must be a ChannelSettings"):
        ChannelDrops(0.1)
