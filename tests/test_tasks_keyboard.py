"""The on-screen keyboard task: geometry, typing by clicks, errors, suggestions, metric known answers."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.tasks.base import PointAndClickTask
from neurolace.tasks.keyboard import (
    LAYOUTS,
    LETTER_FREQUENCY_ORDER,
    KeyboardLayout,
    KeyboardTask,
    KeySelection,
    levenshtein,
)
from neurolace.tasks.phrases import load_phrases

N_KEYS = 26 + 2 + 3  # letters, space, backspace, three suggestion keys


class StubModel:
    """A language model with fixed answers: completes "he" and "wo", predicts "world" after "hello"."""

    def completion(self, prefix, context_words=(), k=3):
        words = {"he": ["hello", "help", "he"], "wo": ["world", "word", "work"]}.get(prefix, [])
        return [w for w in words if w.startswith(prefix)][:k]

    def next_words(self, context_words=(), k=3):
        return (["world", "there"] if list(context_words)[-1:] == ["hello"] else ["hello"])[:k]


def press(task, xy, time_s):
    """A click at ``xy`` at ``time_s`` (rising edge) and its release half a step later."""
    selection = task.update(time_s, xy, True)
    task.update(time_s + 0.5, xy, False)
    return selection


def type_by_target(task, n_presses, period_s=1.0, start_s=0.0):
    """Click the target every ``period_s`` s after ``start_s``, ``n_presses`` times; return the last time."""
    for step in range(1, n_presses + 1):
        press(task, task.target.center_xy, start_s + step * period_s)
    return start_s + n_presses * period_s


def key_xy(task, label):
    return next(k for k in task.layout.keys if k.label == label).target.center_xy


# layouts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LAYOUTS)
@pytest.mark.parametrize("n_suggestions", [0, 1, 3, 5])
def test_keys_lie_in_the_unit_square_and_never_overlap(name, n_suggestions):
    layout = KeyboardLayout.build(name, n_suggestions=n_suggestions)
    keys = layout.keys
    assert len(keys) == 28 + n_suggestions
    assert [k.target.index for k in keys] == list(range(len(keys)))
    for key in keys:
        (x, y), half = key.target.center_xy, 0.5 * key.target.width
        assert 0.0 <= x - half and x + half <= 1.0 and 0.0 <= y - half and y + half <= 1.0
    for a, b in itertools.combinations(keys, 2):
        (xa, ya), (xb, yb) = a.target.center_xy, b.target.center_xy
        reach = 0.5 * (a.target.width + b.target.width) - 1e-12
        assert abs(xa - xb) >= reach or abs(ya - yb) >= reach, (a.label, b.label)
    assert sorted(k.label for k in keys if k.kind == "char") == list("abcdefghijklmnopqrstuvwxyz")
    assert layout.alphabet == "abcdefghijklmnopqrstuvwxyz "


def test_suggestion_keys_are_large_and_across_the_top():
    layout = KeyboardLayout.build("qwerty", n_suggestions=3)
    letters = [k for k in layout.keys if k.kind == "char"]
    suggestions = layout.suggestion_keys
    assert [k.kind for k in layout.keys[:3]] == ["suggestion"] * 3
    assert all(s.target.width >= 2 * letters[0].target.width for s in suggestions)
    lowest_suggestion = min(s.target.center_xy[1] - 0.5 * s.target.width for s in suggestions)
    assert lowest_suggestion > max(k.target.center_xy[1] + 0.5 * k.target.width for k in letters)
    xs = [s.target.center_xy[0] for s in suggestions]
    assert xs == sorted(xs) and xs[1] == pytest.approx(0.5)
    assert layout.space_key.target.width > letters[0].target.width


def test_qwerty_rows_read_left_to_right_top_to_bottom():
    layout = KeyboardLayout.build("qwerty")
    rows = {}
    for key in layout.keys:
        if key.kind == "char":
            rows.setdefault(-key.target.center_xy[1], []).append(key)
    lines = ["".join(k.label for k in sorted(row, key=lambda k: k.target.center_xy[0]))
             for _, row in sorted(rows.items())]
    assert lines == ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def test_frequency_layout_puts_frequent_letters_nearest_the_centre():
    layout = KeyboardLayout.build("frequency")
    letters = {k.label: np.array(k.target.center_xy) for k in layout.keys if k.kind == "char"}
    centre = np.mean(list(letters.values()), axis=0)
    distance = [float(np.hypot(*(letters[c] - centre))) for c in LETTER_FREQUENCY_ORDER]
    assert np.all(np.diff(distance) >= -1e-12)  # never closer than a more frequent letter
    assert distance[0] == min(distance) and LETTER_FREQUENCY_ORDER[0] == "e"
    qwerty = KeyboardLayout.build("qwerty")
    assert {k.target.center_xy for k in layout.keys} == {k.target.center_xy for k in qwerty.keys}


def test_key_at_finds_keys_and_gaps():
    layout = KeyboardLayout.build("qwerty")
    for key in layout.keys:
        assert layout.key_at(key.target.center_xy) is key
    assert layout.key_at((0.02, 0.02)) is None  # a corner with no key
    q, w = layout.key_for("q"), layout.key_for("w")
    edge_x = 0.5 * (q.target.center_xy[0] + w.target.center_xy[0])
    assert layout.key_at((edge_x - 1e-6, q.target.center_xy[1])) is q
    assert layout.key_for(" ") is layout.space_key


# copy typing ------------------------------------------------------------------------------------
def test_typing_the_target_every_second_gives_the_phrase_and_known_metrics():
    texts = []
    task = KeyboardTask(phrases=["hello world"], seed=0, on_text=texts.append)
    assert isinstance(task, PointAndClickTask)
    task.start(0.0, (0.5, 0.5))
    assert task.target_phrase == "hello world" and task.target == task.layout.key_for("h").target
    end_s = type_by_target(task, 11)
    summary = task.summary(end_s)
    assert texts[:3] == ["h", "he", "hel"] and texts[-1] == "hello world\n"
    assert task.records[0].transcribed == "hello world" and task.records[0].completed
    assert task.target_phrase == "hello world"  # one phrase: shown again
    assert summary.ccpm == pytest.approx(60.0)  # 11 correct characters in 11 s
    assert summary.wpm == pytest.approx(12.0)  # 11 / 5 words in 11 / 60 minutes
    assert summary.keystrokes_per_char == 1.0
    assert summary.uncorrected_error_rate == 0.0 and summary.corrected_error_rate == 0.0
    assert summary.selection_bps == pytest.approx(11 / 11 * math.log2(N_KEYS - 1))
    assert (summary.phrases_done, summary.chars_typed, summary.correct, summary.incorrect) == (1, 11, 11, 0)
    assert json.loads(json.dumps(summary.to_dict()))["phrases"][0]["transcribed"] == "hello world"


def test_a_wrong_key_makes_backspace_the_target_and_counts_as_corrected():
    task = KeyboardTask(phrases=["cat"], seed=0)
    task.start(0.0, (0.5, 0.5))
    assert press(task, key_xy(task, "c"), 1.0).correct
    wrong = press(task, key_xy(task, "x"), 2.0)
    assert isinstance(wrong, KeySelection) and not wrong.correct and wrong.key.label == "x"
    assert task.typed_text == "cx" and task.target == task.layout.backspace_key.target
    assert wrong.target == task.layout.key_for("a").target  # the selection records what was lit
    end_s = type_by_target(task, 3, start_s=2.0)  # backspace, a, t
    summary = task.summary(end_s)
    assert task.records[0].transcribed == "cat" and summary.phrases_done == 1
    # C = 3, INF = 0, IF = 1 (the erased x): corrected 1 / 4, uncorrected 0 (Soukoreff & MacKenzie 2003)
    assert summary.corrected_error_rate == pytest.approx(0.25) and summary.uncorrected_error_rate == 0.0
    assert summary.keystrokes_per_char == pytest.approx(5 / 3) and summary.backspaces == 1
    assert (summary.correct, summary.incorrect) == (4, 1)
    assert summary.selection_bps == pytest.approx((4 - 1) / 5.0 * math.log2(N_KEYS - 1))
    assert summary.ccpm == pytest.approx(3 / (5.0 / 60))


def test_errors_left_in_a_given_up_phrase_are_uncorrected():
    task = KeyboardTask(phrases=["cat"], seed=0)
    task.start(0.0, (0.5, 0.5))
    for step, letter in enumerate("cst", start=1):
        press(task, key_xy(task, letter), float(step))
    task.end_phrase(3.0)
    summary = task.summary(6.0)
    # MSD("cat", "cst") = 1: C = 2, INF = 1, IF = 0
    assert summary.uncorrected_error_rate == pytest.approx(1 / 3) and summary.corrected_error_rate == 0.0
    assert summary.ccpm == pytest.approx(2 / (6.0 / 60)) and summary.phrases_done == 0
    assert summary.phrases_shown == 2 and summary.error_rate == summary.uncorrected_error_rate


def test_the_phrase_on_screen_at_the_end_is_scored_on_what_was_typed():
    task = KeyboardTask(phrases=["good morning"], seed=0)
    task.start(0.0, (0.5, 0.5))
    end_s = type_by_target(task, 4)
    summary = task.summary(end_s)
    assert task.typed_text == "good" and summary.uncorrected_error_rate == 0.0
    assert summary.ccpm == pytest.approx(60.0) and summary.phrases_done == 0


def test_a_click_on_no_key_types_nothing_and_is_incorrect():
    task = KeyboardTask(phrases=["ok"], seed=0)
    task.start(0.0, (0.5, 0.5))
    before = task.target
    selection = press(task, (0.02, 0.02), 1.0)
    assert selection.key is None and not selection.correct and task.typed_text == ""
    assert task.target == before and task.incorrect == 1 and task.trials[-1].n_incorrect == 1


def test_a_held_click_selects_once():
    task = KeyboardTask(phrases=["ok"], seed=0)
    task.start(0.0, (0.5, 0.5))
    xy = task.target.center_xy
    assert task.update(1.0, xy, True) is not None
    assert task.update(1.1, xy, True) is None and task.typed_text == "o"


def test_trials_follow_the_intended_keys():
    task = KeyboardTask(phrases=["hi"], seed=0)
    task.start(0.0, (0.5, 0.5))
    type_by_target(task, 2)
    assert [t.target.index for t in task.trials[:2]] == [task.layout.key_for(c).index for c in "hi"]
    assert all(t.success for t in task.trials[:2])


# suggestions ------------------------------------------------------------------------------------
def test_suggestions_complete_words_and_predict_the_next():
    task = KeyboardTask(phrases=["hello world"], language_model=StubModel(), seed=0)
    task.start(0.0, (0.5, 0.5))
    assert task.suggestions == ["hello"] and [k.label for k in task.keys[:3]] == ["hello", "", ""]
    assert task.target == task.layout.suggestion_keys[0].target  # the intended word is offered: take it
    selection = press(task, task.target.center_xy, 1.0)
    assert selection.correct and selection.key.label == "hello" and task.typed_text == "hello "
    assert task.suggestions == ["world", "there"]
    press(task, task.target.center_xy, 2.0)
    summary = task.summary(2.0)
    assert task.records[0].transcribed == "hello world " and task.records[0].completed
    assert summary.chars_typed == 11 and summary.suggestions_taken == 2  # the trailing space is not scored
    assert summary.keystrokes_per_char == pytest.approx(2 / 11)
    assert summary.ccpm == pytest.approx(11 / (2 / 60))


def test_a_completion_replaces_the_rest_of_the_word():
    task = KeyboardTask(phrases=["help"], language_model=StubModel(), seed=0, take_suggestions=False)
    task.start(0.0, (0.5, 0.5))
    type_by_target(task, 2)
    assert task.typed_text == "he" and task.suggestions == ["hello", "help", "he"]
    assert task.target == task.layout.key_for("l").target  # the policy says type on
    task.take_suggestions = True
    assert task.target == task.layout.suggestion_keys[1].target
    press(task, task.target.center_xy, 3.0)
    assert task.records[0].transcribed == "help " and task.records[0].completed


def test_a_wrong_suggestion_is_an_error_to_erase():
    task = KeyboardTask(phrases=["help"], language_model=StubModel(), seed=0)
    task.start(0.0, (0.5, 0.5))
    type_by_target(task, 2)
    press(task, task.layout.suggestion_keys[0].target.center_xy, 3.0)  # "hello"
    assert task.typed_text == "hello " and task.target == task.layout.backspace_key.target
    end_s = type_by_target(task, 4, start_s=3.0)  # as the target says: erase "lo " (3 backspaces), then "p"
    summary = task.summary(end_s)
    assert task.records[0].transcribed == "help" and task.records[0].completed
    assert summary.chars_incorrect_fixed == 3 and summary.backspaces == 3 and summary.keystrokes == 7


def test_no_language_model_leaves_the_suggestion_keys_empty():
    task = KeyboardTask(phrases=["hello"], seed=0)
    task.start(0.0, (0.5, 0.5))
    assert task.suggestions == [] and [k.label for k in task.keys[:3]] == ["", "", ""]
    selection = press(task, task.layout.suggestion_keys[0].target.center_xy, 1.0)
    assert not selection.correct and task.typed_text == "" and task.records[0].keystrokes == 1


def test_typing_with_the_shipped_language_model_saves_keystrokes():
    from neurolace.tasks.language import LanguageModel

    model = LanguageModel(vocabulary_size=5000)
    phrase = "thank you for your help"
    with_model = KeyboardTask(phrases=[phrase], language_model=model, seed=0)
    without = KeyboardTask(phrases=[phrase], seed=0)
    for task in (with_model, without):
        task.start(0.0, (0.5, 0.5))
        while task.summary().phrases_done == 0:
            press(task, task.target.center_xy, task._last_s + 0.5)
    assert with_model.records[0].transcribed.rstrip() == phrase == without.records[0].transcribed
    assert with_model.summary().keystrokes_per_char < 0.7 < without.summary().keystrokes_per_char == 1.0


# modes, phrases, timeouts -----------------------------------------------------------------------
def test_phrases_cycle_in_a_seeded_order():
    phrases = ["a", "b", "c"]
    shown = []
    task = KeyboardTask(phrases=phrases, seed=7)
    task.start(0.0, (0.5, 0.5))
    for step in range(6):
        shown.append(task.target_phrase)
        press(task, task.target.center_xy, step + 1.0)
    assert sorted(shown[:3]) == phrases and sorted(shown[3:]) == phrases
    again = KeyboardTask(phrases=phrases, seed=7)
    again.start(0.0, (0.5, 0.5))
    assert again.target_phrase == shown[0]


def test_copy_mode_defaults_to_the_held_out_phrases():
    task = KeyboardTask(seed=0)
    assert task.phrases == load_phrases("test")


def test_a_timeout_gives_up_the_phrase():
    task = KeyboardTask(phrases=["abc", "xyz"], seed=0, timeout_s=10.0)
    task.start(0.0, (0.5, 0.5))
    first = task.target_phrase
    press(task, task.target.center_xy, 1.0)
    task.update(10.0, (0.5, 0.5), False)
    assert task.target_phrase != first and task.records[0].end_s == 10.0 and not task.records[0].completed
    summary = task.summary(12.0)
    assert summary.uncorrected_error_rate == pytest.approx(2 / 3)  # two characters never typed


def test_free_typing_without_a_reference():
    texts = []
    task = KeyboardTask(mode="free", seed=0, on_text=texts.append)
    assert task.start(0.0, (0.5, 0.5)) is None and task.target is None and task.target_phrase is None
    for step, label in enumerate(["h", "i", "space", "x", "backspace"], start=1):
        assert press(task, key_xy(task, label), float(step)).correct
    summary = task.summary(6.0)
    assert texts == ["h", "hi", "hi ", "hi x", "hi "] and task.text == "hi "
    assert summary.ccpm == pytest.approx(3 / 0.1) and math.isnan(summary.uncorrected_error_rate)
    assert press(task, (0.02, 0.02), 7.0).correct is False


def test_free_typing_toward_an_intended_text():
    task = KeyboardTask(mode="free", phrases=["yes"], seed=0)
    task.start(0.0, (0.5, 0.5))
    assert task.target_phrase is None and task.intended_phrase == "yes"
    end_s = type_by_target(task, 3)
    assert task.records[0].completed and task.summary(end_s).ccpm == pytest.approx(60.0)


def test_the_simulated_participant_types_in_the_closed_loop():
    from neurolace.runtime import run_block
    from neurolace.sim.participant import SimulatedParticipant

    task = KeyboardTask(phrases=["the cat sat"], seed=0)
    block = run_block(SimulatedParticipant(n_channels=16, seed=0), task, duration_s=8.0,
                      observation="intention", seed=1)
    assert task.records[0].transcribed and "the cat sat".startswith(task.typed_text or "the cat sat")
    assert block.summary.ccpm > 0 and block.summary.uncorrected_error_rate == 0.0


# metrics helpers and bad input ------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b", "distance"), [
    ("", "", 0), ("", "abc", 3), ("kitten", "sitting", 3), ("quick", "qucik", 2), ("abc", "abc", 0),
])
def test_levenshtein_known_answers(a, b, distance):
    assert levenshtein(a, b) == distance == levenshtein(b, a)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"phrases": ["hello there", "good night!"]}, r"phrases\[1\] 'good night!' has the character '!' the"),
    ({"phrases": ["Hello"]}, r"phrases\[0\] 'Hello' has the character 'H'"),
    ({"phrases": []}, "phrases is empty: give at least one phrase"),
    ({"phrases": "hello"}, "phrases must be a list of strings, got str"),
    ({"phrases": ["  "]}, r"phrases\[0\] must be a non-empty string"),
    ({"layout": "dvorak"}, "layout must be one of 'qwerty', 'frequency'; got 'dvorak'"),
    ({"mode": "dictation"}, "mode must be one of 'copy', 'free'; got 'dictation'"),
    ({"n_suggestions": 9}, "n_suggestions must be <= 5, got 9"),
    ({"language_model": "gpt"}, "language_model must have completion"),
    ({"on_text": "file.txt"}, "on_text must be callable, got str"),
])
def test_bad_input(arguments, message):
    with pytest.raises(InvalidInputError, match=message):
        KeyboardTask(**arguments)


def test_update_and_summary_before_start_are_refused():
    task = KeyboardTask(phrases=["a"])
    with pytest.raises(InvalidInputError, match="call start"):
        task.update(0.0, (0.5, 0.5), False)
    with pytest.raises(InvalidInputError, match="has not started"):
        task.summary()
    with pytest.raises(InvalidInputError, match="has not started"):
        task.end_phrase(0.0)
    task.start(0.0, (0.5, 0.5))
    task.update(2.0, (0.5, 0.5), False)
    with pytest.raises(InvalidInputError, match=r"time_s must not go backwards: 1.0 s after 2.0 s"):
        task.update(1.0, (0.5, 0.5), False)
    with pytest.raises(InvalidInputError, match=r"cursor_xy must have shape \(2,\)"):
        task.update(3.0, (0.5, 0.5, 0.1), False)
