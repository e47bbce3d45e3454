"""Typing in the one closed loop: the simulated typist, prediction, assistance, the text saved as typed, Webgrid unchanged."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.closed_loop import Calibration, SessionPlan, run_block
from neurolace.runtime.loop import DecoderError, LoopSettings
from neurolace.runtime.typing import (
    TYPING_CLICK_LOCKOUT_S,
    AssistedDecoder,
    KeyAssistance,
    TypedTextFile,
    TypistSettings,
    compare_typing,
    run_typing,
)
from neurolace.sim.participant import SimulatedParticipant
from neurolace.tasks import WebgridTask
from neurolace.tasks.keyboard import KeyboardTask
from neurolace.tasks.language import LanguageModel


def _digest(*arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


class IntentionSource:
    """Features that carry the intention itself (velocity, click): a near-perfect decoder, no fitting."""

    n_features = 3

    def __init__(self, participant):
        self.participant = participant

    def start(self, seed=None):
        pass

    def emit(self, intention):
        self.participant.emit_counts(intention)  # draw the counts' noise as the counts path would
        return np.array([*intention.velocity, intention.click])


class VelocityFromFeatures:
    last_status = None

    def __init__(self, fail_at_step=None):
        self.fail_at_step = fail_at_step
        self.steps = 0

    def reset(self):
        return self

    def step(self, features):
        self.steps += 1
        if self.fail_at_step is not None and self.steps >= self.fail_at_step:
            raise RuntimeError("the decoder stopped")
        return np.asarray(features[:2]) * 0.9

    def step_missing(self):
        return np.zeros(2)


class ClickFromFeatures:
    def reset(self):
        return self

    def step(self, features):
        return np.array([features[2]])

    def step_missing(self):
        return np.array([0.0])


def _calibration(*, n_channels=16, seed=0, fail_at_step=None) -> Calibration:
    """A Calibration whose decoders read the intention from IntentionSource (no calibration blocks run)."""
    participant = SimulatedParticipant(n_channels=n_channels, seed=seed)
    plan = SessionPlan.build(seed=seed, decoder="kalman", grid_side=30, webgrid_seconds=1.0, n_webgrid_blocks=1,
                             open_loop_seconds=1.0, closed_loop_seconds=1.0, calibration_grid_side=6,
                             variants=(False,))
    return Calibration(plan, LoopSettings(), {"first": VelocityFromFeatures(fail_at_step)}, ClickFromFeatures(),
                       (None, None, None), [], n_channels, participant, IntentionSource(participant))


@pytest.fixture(scope="module")
def model():
    return LanguageModel(vocabulary_size=5000)


@pytest.fixture(scope="module")
def typist():
    return SimulatedParticipant(n_channels=8, seed=0)


# -- the typist ------------------------------------------------------------------------------------
def test_perfect_decoder_copies_phrases_exactly_with_double_letters(typist):
    phrases = ["see you all soon", "a good book"]
    result = run_typing(participant=typist, phrases=phrases, duration_s=45.0, seed=1)
    summary = result.summary
    done = [p for p in summary.phrases if p["completed"]]
    assert len(done) >= 2 and {p["transcribed"].strip() for p in done} == set(phrases)
    assert summary.incorrect == 0 and summary.uncorrected_error_rate == 0 and summary.corrected_error_rate == 0
    assert summary.keystrokes_per_char == pytest.approx(1.0)  # no prediction: one key per character
    assert summary.ccpm > 40  # perfect decoder on 0.09-wide keys (measured ~56)
    assert result.decoder == "perfect" and not result.prediction and result.suggestion_searches == 0
    assert result.record.kind == "typing" and result.record.cursor_xy.shape == (round(45.0 / 0.02), 2)


def test_prediction_saves_keystrokes_on_the_same_phrases_and_noise(typist, model):
    comparison = compare_typing(participant=typist, language_model=model, duration_s=30.0, seed=2)
    without, with_prediction = comparison.without_prediction, comparison.with_prediction
    assert comparison.assisted is None
    # same seed: the same first phrase in both blocks
    assert without.summary.phrases[0]["presented"] == with_prediction.summary.phrases[0]["presented"]
    assert with_prediction.summary.suggestions_taken > 0 and with_prediction.suggestion_searches > 0
    assert with_prediction.summary.keystrokes_per_char < 0.8 <= without.summary.keystrokes_per_char
    assert with_prediction.summary.ccpm > without.summary.ccpm
    out = comparison.to_dict()
    assert out["ccpm"] == with_prediction.summary.ccpm and out["ccpm_without_prediction"] == without.summary.ccpm
    assert out["prediction_gain"] == pytest.approx(with_prediction.summary.ccpm / without.summary.ccpm - 1)
    assert {"error_rate", "keystrokes_per_char"} <= set(out) and len(out["typing_blocks"]) == 2


def test_reading_the_suggestions_costs_time_and_only_with_suggestions(typist, model):
    def ccpm(search_s, language_model, take=True):
        settings = TypistSettings(take_suggestions=take, suggestion_search_s=search_s)
        result = run_typing(participant=typist, language_model=language_model, duration_s=30.0, seed=3,
                            typist=settings)
        return result.summary.ccpm, result.suggestion_searches, result.text

    fast, slow = ccpm(0.0, model), ccpm(0.6, model)
    assert fast[0] > slow[0] and fast[1] == 0 and slow[1] > 0
    # no suggestions (no model), or a typist who ignores them: nothing to read, the same block bit for bit
    assert ccpm(0.0, None) == ccpm(0.6, None)
    ignoring = ccpm(0.6, model, take=False)
    assert ignoring[1] == 0 and ignoring[2] == ccpm(0.0, None)[2]


# -- with decoders, assistance, the text saved as typed -------------------------------------------
def test_decoders_type_in_the_closed_loop_and_save_the_text_as_typed(tmp_path, model):
    calibration = _calibration()
    path = tmp_path / "typed.txt"
    result = run_typing(calibration, language_model=model, duration_s=30.0, seed=4, text_path=path)
    assert result.decoder == "kalman" and result.summary.chars_correct > 20
    assert path.read_text() == result.text  # one line per phrase, as typed (a suggestion's trailing space too)
    lines = result.text.split("\n")
    assert len(lines) == len(result.summary.phrases) >= 2
    assert lines[0].strip() == result.summary.phrases[0]["presented"]
    assert not list(tmp_path.glob(".*.part"))  # only whole versions were published
    assert calibration.decoders["first"].steps == 0  # the calibration's decoders are copied, never stepped


def test_typing_blocks_use_the_typing_click_lockout(typist):
    calibration = _calibration()
    result = run_typing(calibration, phrases=["hi"], duration_s=1.0)
    assert result.summary.duration_s == pytest.approx(1.0)
    assert result.settings.click_lockout_s == TYPING_CLICK_LOCKOUT_S > LoopSettings().click_lockout_s
    assert result.settings.cursor_gain_per_s == calibration.settings.cursor_gain_per_s
    custom = LoopSettings(click_lockout_s=0.3)
    assert run_typing(calibration, phrases=["hi"], duration_s=1.0, settings=custom).settings == custom
    assert run_typing(participant=typist, phrases=["hi"], duration_s=1.0).settings == LoopSettings()
    with pytest.raises(InvalidInputError, match="loop_s"):
        run_typing(calibration, phrases=["hi"], duration_s=1.0, settings=LoopSettings(loop_s=0.01))


def test_a_decoder_that_stops_mid_sentence_loses_no_text(tmp_path):
    calibration = _calibration(fail_at_step=600)  # 12 s into the block
    path = tmp_path / "typed.txt"
    phrase = "the weather is nice today and we can walk"
    with pytest.raises(DecoderError, match=r"the decoder stopped.*typing stopped at 1[12]\.\d\d s.*saved in") as info:
        run_typing(calibration, phrases=[phrase], duration_s=60.0, text_path=path)
    saved = path.read_text()
    assert 5 <= len(saved) < len(phrase) and phrase.startswith(saved)  # mid-sentence, exactly as typed
    assert repr(saved) in str(info.value)
    with pytest.raises(DecoderError, match="not saved"):
        run_typing(_calibration(fail_at_step=50), phrases=[phrase], duration_s=5.0)


def test_typed_text_file_publishes_whole_versions(tmp_path):
    path = tmp_path / "sub" / "typed.txt"
    saver = TypedTextFile(path)
    assert path.read_text() == "" and saver.writes == 1
    for text in ("h", "he", "hel", "he"):
        saver(text)
        assert path.read_text() == text
    with pytest.raises(InvalidInputError, match="directory"):
        TypedTextFile(tmp_path)


def test_assistance_slows_the_cursor_over_likely_keys_only(model):
    task = KeyboardTask(phrases=["the cat"], language_model=model, seed=0)
    task.start(0.0, (0.5, 0.5))
    assisted = AssistedDecoder(VelocityFromFeatures(), task, KeyAssistance(strength=2.0))
    layout = task.layout
    probabilities = model.char_probabilities("", [])
    likely = max("abcdefghijklmnopqrstuvwxyz", key=probabilities.get)
    unlikely = min("abcdefghijklmnopqrstuvwxyz", key=probabilities.get)
    gain = assisted.gain_at(layout.key_for(likely).target.center_xy)
    assert gain == pytest.approx(1.0 / (1.0 + 2.0 * probabilities[likely]))
    assert gain < assisted.gain_at(layout.key_for(unlikely).target.center_xy) <= 1.0
    assert assisted.gain_at((0.01, 0.01)) == 1.0  # off the keys
    assert assisted.gain_at(layout.backspace_key.target.center_xy) == 1.0
    assert assisted.last_status is None  # every other member is the decoder's
    with pytest.raises(InvalidInputError, match="bind"):
        assisted.step(np.ones(3))
    with pytest.raises(InvalidInputError, match="language model"):
        AssistedDecoder(VelocityFromFeatures(), KeyboardTask(phrases=["a"]), KeyAssistance())


def test_assisted_block_runs_and_is_reported_separately(model):
    comparison = compare_typing(_calibration(), language_model=model, assistance=KeyAssistance(), duration_s=20.0,
                                seed=5)
    out = comparison.to_dict()
    assert comparison.assisted.assisted and not comparison.with_prediction.assisted
    assert out["ccpm_assisted"] == comparison.assisted.summary.ccpm > 0
    assert [b["name"] for b in out["typing_blocks"]] == ["no-prediction", "prediction", "prediction-assisted"]


# -- bad input -------------------------------------------------------------------------------------
def test_bad_input(typist, model):
    with pytest.raises(InvalidInputError, match="participant="):
        run_typing()
    with pytest.raises(InvalidInputError, match="assistance needs a calibration"):
        run_typing(participant=typist, language_model=model, assistance=KeyAssistance())
    with pytest.raises(InvalidInputError, match=r"'hello!'.*'!'"):
        run_typing(participant=typist, phrases=["hello!"])
    with pytest.raises(InvalidInputError, match="empty"):
        run_typing(participant=typist, phrases=[])
    with pytest.raises(InvalidInputError, match="suggestion_search_s"):
        TypistSettings(suggestion_search_s=-1.0)
    with pytest.raises(InvalidInputError, match="typist must be a TypistSettings"):
        run_typing(participant=typist, typist={"take_suggestions": False})
    with pytest.raises(InvalidInputError, match="duration_s"):
        run_typing(participant=typist, duration_s=0.0)
    with pytest.raises(InvalidInputError, match="driver"):
        run_typing(_calibration(), driver="refit")
    with pytest.raises(InvalidInputError, match="do not pass text_path"):
        compare_typing(participant=typist, language_model=model, text_path="x.txt")


# -- Webgrid is unchanged --------------------------------------------------------------------------
#: Digests of seeded Webgrid blocks computed with the code before the keyboard existed (git archive of
#: 0e301f4, the same script): typing lives on the typist's side and must leave Webgrid bit for bit the same.
WEBGRID_INTENTION_DIGEST = "94abadffa15602a0"
WEBGRID_CLOSED_DIGEST = "3ce7744722fcd62b"


def test_webgrid_blocks_are_unchanged_bit_for_bit():
    import neurolace.runtime.typing  # noqa: F401  (imported: nothing it defines may touch the Webgrid path)

    record = run_block(SimulatedParticipant(n_channels=32, seed=3), WebgridTask(grid_side=10, seed=4),
                       duration_s=10.0, observation="intention", seed=5)
    assert _digest(record.cursor_xy, record.intended_velocity, record.intended_click,
                   record.counts) == WEBGRID_INTENTION_DIGEST
    participant = SimulatedParticipant(n_channels=32, seed=3)
    record = run_block(participant, WebgridTask(grid_side=10, seed=4), duration_s=10.0,
                       decoder=VelocityFromFeatures(), click_decoder=ClickFromFeatures(),
                       source=IntentionSource(participant), seed=5)
    assert _digest(record.cursor_xy, record.decoded_velocity, record.click, record.counts) == WEBGRID_CLOSED_DIGEST


def test_the_demo_shows_each_typing_step_on_the_dashboards_live_view(typist):
    """``neurolace demo --task typing`` with a dashboard: every step's keyboard state reaches the live frames."""
    from types import SimpleNamespace

    from neurolace.cli.demo import _live_typing
    from neurolace.web.live import LiveSession

    live = LiveSession()
    on_step = _live_typing(SimpleNamespace(sessions={"live": live}))
    seen = []

    def watch(task, cursor_xy, time_s):
        on_step(task, cursor_xy, time_s)
        seen.append((live._typing["typed_text"], live._typing_keys is not None))

    result = run_typing(participant=typist, phrases=["hi"], duration_s=2.0, seed=1, on_step=watch)
    assert len(seen) == 100 and all(keys for _, keys in seen)  # one call a 20 ms step, keys sent with the block
    assert seen[-1][0] == result.text.rstrip() or result.text.startswith(seen[-1][0])
    assert _live_typing(None) is None and _live_typing(SimpleNamespace(sessions={})) is None
