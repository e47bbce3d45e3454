"""The on-screen keyboard: layouts, suggestion keys, copy- and free-typing, text-entry metrics.

A :class:`KeyboardTask` is a :class:`~neurolace.tasks.base.PointAndClickTask`
on the unit square (x right, y up), so it runs in the same closed loop as
Webgrid (:func:`neurolace.runtime.closed_loop.run_block`): the cursor moves, a
rising click selects the key under it. Its :attr:`KeyboardTask.target` is the
key the typist should press next, which is what the simulated participant aims
at.

Layout (:meth:`KeyboardLayout.build`), top to bottom: a row of large
suggestion keys (the language model's words), three rows of letter keys, and a
bottom row with a large space key in the middle and a large backspace key to its
right. Keys are squares (the participant model aims at square or round
targets) that tile their rows without gaps; the space between groups selects
nothing.

* ``"qwerty"``: the letter rows ``qwertyuiop`` / ``asdfghjkl`` / ``zxcvbnm``
  staggered by half and one and a half keys, as on a physical keyboard.
* ``"frequency"``: the same 26 letter slots, filled in order of English
  letter frequency -- ``etaoinshrdlcumwfgypbvkjxqz`` (Lewand 2000,
  *Cryptological Mathematics*, table 1.1; the same order the project's phrase
  set gives to within a few ranks, tested) -- the most frequent letter in the
  slot nearest the centre of the letter block (next to space and the
  suggestions, and where the cursor starts), then outwards.

Typing: a letter or the space key appends its character; backspace erases the
last character; a suggestion key completes the current word with the
suggested one and a space (after a space it inserts the predicted next word).
In **copy** mode the phrase to copy is shown (:attr:`KeyboardTask.target_phrase`);
it is done when the typed text equals it (a trailing space from a suggestion
allowed), and the next phrase follows. In **free** mode no phrase is shown;
``phrases`` then are the texts the typist means to write (the simulated
participant's intent, used for :attr:`~KeyboardTask.target` and scoring), or
``None``: nothing to aim at, every typed character is taken as intended.

Metrics (:class:`TypingSummary`) follow Soukoreff & MacKenzie (2003, CHI
"Metrics for text entry research", 113-120). For each phrase, P the presented
text and T the transcribed one, ``MSD`` their Levenshtein distance, ``IF`` the
characters entered and later erased and ``F`` the backspace keystrokes::

    C   = max(|P|, |T|) - MSD(P, T)            correct characters
    INF = MSD(P, T)                            incorrect and not fixed
    uncorrected error rate = INF / (C + INF + IF)
    corrected error rate   = IF  / (C + INF + IF)
    keystrokes per char    = keystrokes / |T|  (KSPC; < 1 with word suggestions)

``ccpm`` is correct characters per minute, ``sum(C) / minutes`` (the measure
of the BrainGate typing studies, Pandarinath et al. 2017, eLife 6:e18554:
copy-typing 39 ccpm, free typing 24 ccpm); ``wpm`` is ``sum(|T|) / 5 /
minutes`` (a "word" is five characters including spaces, MacKenzie 2002).
Both use the block's duration. The phrase on screen when the block ends is
scored against the part of P as long as what was typed. ``selection_bps`` is
the achieved bitrate of the selection stream, Webgrid's formula applied to the
keys (Nuyujukian et al. 2015, IEEE TBME 62:1253)::

    bps = max(0, correct - incorrect) / duration_s * log2(n_keys - 1)

with a selection correct when it is the key the typist should have pressed
(the target), incorrect otherwise (a wrong key, or a click on no key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from neurolace.core.checks import check_in, check_int
from neurolace.core.errors import InvalidInputError
from neurolace.core.random import SeedLike, check_rng
from neurolace.tasks.base import PointAndClickTask, Selection, Target
from neurolace.tasks.metrics import net_targets_per_minute
from neurolace.tasks.phrases import check_phrases, load_phrases

__all__ = [
    "KEY_KINDS",
    "LAYOUTS",
    "LETTER_FREQUENCY_ORDER",
    "MAX_SUGGESTIONS",
    "MODES",
    "Key",
    "KeySelection",
    "KeyboardLayout",
    "KeyboardTask",
    "PhraseRecord",
    "TypingSummary",
    "levenshtein",
]

#: The layouts :meth:`KeyboardLayout.build` knows.
LAYOUTS = ("qwerty", "frequency")
#: The typing modes of :class:`KeyboardTask`.
MODES = ("copy", "free")
#: What a key does.
KEY_KINDS = ("char", "space", "backspace", "suggestion")
#: English letters, most frequent first (Lewand 2000, Cryptological Mathematics, table 1.1).
LETTER_FREQUENCY_ORDER = "etaoinshrdlcumwfgypbvkjxqz"
#: Most suggestion keys a layout has room for.
MAX_SUGGESTIONS = 5

QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ROW_OFFSETS_KEYS = (0.0, 0.5, 1.5)  # stagger of each QWERTY row, in keys
LETTER_KEY_WIDTH = 0.09
_LETTER_ROWS_Y = (0.64, 0.55, 0.46)
_LEFT_EDGE = 0.05
LARGE_KEY_WIDTH = 0.18  # space and backspace
_BOTTOM_ROW_Y = 0.30
_SPACE_X = 0.50
_BACKSPACE_X = 0.80
SUGGESTION_KEY_WIDTH = 0.20
_SUGGESTION_ROW_Y = 0.87


@dataclass(frozen=True)
class Key:
    """One key: what it shows, what it does and where it is.

    Attributes
    ----------
    label : str
        The character for a ``"char"`` key, ``"space"``, ``"backspace"``, or the
        suggested word of a ``"suggestion"`` key ("" while it offers nothing).
    kind : {"char", "space", "backspace", "suggestion"}
    target : Target
        Its square in the workspace; ``target.index`` is the key's position in
        :attr:`KeyboardLayout.keys`.
    """

    label: str
    kind: str
    target: Target

    @property
    def index(self) -> int:
        return self.target.index


@dataclass(frozen=True)
class KeyboardLayout:
    """The keys of an on-screen keyboard (build one with :meth:`build`).

    Attributes
    ----------
    name : str
    keys : tuple of Key
        Suggestion keys first (left to right), then the letters, space, backspace.
    """

    name: str
    keys: tuple[Key, ...]

    @classmethod
    def build(cls, name: str = "qwerty", *, n_suggestions: int = 3) -> KeyboardLayout:
        """Lay out ``name`` ("qwerty" or "frequency") with ``n_suggestions`` (0-5) suggestion keys."""
        check_in(name, "layout", LAYOUTS)
        n_suggestions = check_int(n_suggestions, "n_suggestions", minimum=0, maximum=MAX_SUGGESTIONS)
        specs: list[tuple[str, str, tuple[float, float], float]] = []
        pitch = min(0.3, 0.96 / max(n_suggestions, 1))
        width = min(SUGGESTION_KEY_WIDTH, pitch - 0.01)
        for slot in range(n_suggestions):
            x = 0.5 + (slot - 0.5 * (n_suggestions - 1)) * pitch
            specs.append(("", "suggestion", (x, _SUGGESTION_ROW_Y), width))
        slots = [
            (_LEFT_EDGE + (offset + column + 0.5) * LETTER_KEY_WIDTH, y)
            for row, offset, y in zip(QWERTY_ROWS, _ROW_OFFSETS_KEYS, _LETTER_ROWS_Y)
            for column in range(len(row))
        ]
        if name == "qwerty":
            letters = "".join(QWERTY_ROWS)
        else:
            centre = np.mean(np.asarray(slots), axis=0)
            by_distance = sorted(range(len(slots)), key=lambda i: (
                round(float(np.hypot(*(np.asarray(slots[i]) - centre))), 9), -slots[i][1], slots[i][0]))
            letters_by_slot = [""] * len(slots)
            for letter, slot in zip(LETTER_FREQUENCY_ORDER, by_distance):
                letters_by_slot[slot] = letter
            letters = "".join(letters_by_slot)
        specs.extend((letter, "char", xy, LETTER_KEY_WIDTH) for letter, xy in zip(letters, slots))
        specs.append(("space", "space", (_SPACE_X, _BOTTOM_ROW_Y), LARGE_KEY_WIDTH))
        specs.append(("backspace", "backspace", (_BACKSPACE_X, _BOTTOM_ROW_Y), LARGE_KEY_WIDTH))
        keys = tuple(
            Key(label, kind, Target((round(x, 12), round(y, 12)), width, "square", index))
            for index, (label, kind, (x, y), width) in enumerate(specs)
        )
        return cls(name, keys)

    def __repr__(self) -> str:
        n_suggestions = len(self.suggestion_keys)
        return f"KeyboardLayout({self.name!r}, {len(self.keys)} keys, {n_suggestions} suggestion keys)"

    @property
    def alphabet(self) -> str:
        """The characters the layout types (its letters and the space)."""
        return "".join(sorted(k.label for k in self.keys if k.kind == "char")) + " "

    @property
    def suggestion_keys(self) -> tuple[Key, ...]:
        return tuple(k for k in self.keys if k.kind == "suggestion")

    @property
    def space_key(self) -> Key:
        return next(k for k in self.keys if k.kind == "space")

    @property
    def backspace_key(self) -> Key:
        return next(k for k in self.keys if k.kind == "backspace")

    def key_for(self, character: str) -> Key:
        """The key that types ``character`` (a letter or " ")."""
        if character == " ":
            return self.space_key
        for key in self.keys:
            if key.kind == "char" and key.label == character:
                return key
        raise InvalidInputError(f"the {self.name} layout has no key for {character!r}")

    def key_at(self, xy: Any) -> Key | None:
        """The key under the point ``xy`` (the nearest centre on a shared edge), or ``None``."""
        point = np.asarray(xy, dtype=np.float64)
        centres, half = self._geometry()
        offset = np.abs(centres - point)
        inside = np.all(offset <= half[:, np.newaxis], axis=1)
        if not inside.any():
            return None
        distance = np.where(inside, np.hypot(offset[:, 0], offset[:, 1]), np.inf)
        return self.keys[int(np.argmin(distance))]

    def _geometry(self) -> tuple[np.ndarray, np.ndarray]:
        centres = np.array([k.target.center_xy for k in self.keys], dtype=np.float64)
        half = 0.5 * np.array([k.target.width for k in self.keys], dtype=np.float64)
        return centres, half


def levenshtein(reference: str, text: str) -> int:
    """Minimum string distance: the fewest insertions, deletions and substitutions between two strings.

    The "MSD" of Soukoreff & MacKenzie (2003), by the Wagner-Fischer dynamic
    programme, one row at a time.

    >>> levenshtein("quick", "qucik")
    2
    """
    if len(reference) < len(text):
        reference, text = text, reference
    previous = list(range(len(text) + 1))
    for i, a in enumerate(reference, start=1):
        current = [i]
        for j, b in enumerate(text, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]


@dataclass
class PhraseRecord:
    """One phrase of the block: what was shown (or intended), what was typed, and how.

    ``presented`` is ``None`` in free typing without a reference; ``completed``
    is True when the typed text matched the phrase (False if given up, timed
    out or still on screen).
    """

    presented: str | None
    start_s: float
    transcribed: str = ""
    end_s: float | None = None
    completed: bool = False
    keystrokes: int = 0
    entered: int = 0
    erased: int = 0
    backspaces: int = 0
    suggestions_taken: int = 0

    def scored_texts(self) -> tuple[str | None, str]:
        """The reference and transcription the metrics compare.

        A trailing space a suggestion left after the last word is not part of
        the transcription; a phrase still on screen is compared with the part
        of its reference as long as what was typed.
        """
        text = self.transcribed
        if self.presented is None:
            return None, text
        if self.completed and text == self.presented + " ":
            text = self.presented
        reference = self.presented if self.end_s is not None else self.presented[: len(text)]
        return reference, text


@dataclass
class TypingSummary:
    """Text-entry metrics of a block (definitions and sources in :mod:`neurolace.tasks.keyboard`)."""

    task: str
    layout: str
    mode: str
    duration_s: float
    ccpm: float
    wpm: float
    uncorrected_error_rate: float
    corrected_error_rate: float
    total_error_rate: float
    keystrokes_per_char: float
    selection_bps: float
    phrases_done: int
    phrases_shown: int
    chars_typed: int
    chars_correct: int
    chars_incorrect_not_fixed: int
    chars_incorrect_fixed: int
    keystrokes: int
    backspaces: int
    suggestions_taken: int
    correct: int
    incorrect: int
    n_keys: int
    phrases: list[dict] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        """The uncorrected error rate (what is left in the text)."""
        return self.uncorrected_error_rate

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class KeySelection(Selection):
    """A click on the keyboard: a :class:`~neurolace.tasks.base.Selection` and the key hit (or ``None``)."""

    key: Key | None = None


class KeyboardTask(PointAndClickTask):
    """Copy- or free-typing on an on-screen keyboard, streaming like every point-and-click task.

    Parameters
    ----------
    layout : {"qwerty", "frequency"} or KeyboardLayout, default "qwerty"
    mode : {"copy", "free"}, default "copy"
    phrases : list of str, optional
        Copy mode: the phrases to copy (default: the phrase set's held-out
        split, :func:`neurolace.tasks.phrases.load_phrases`). Free mode: what
        the typist means to write (default ``None``: no reference). Shown in an
        order drawn from ``seed``, reshuffled after each pass.
    language_model : LanguageModel, optional
        Fills the suggestion keys; ``None`` means no prediction (the keys stay empty).
    n_suggestions : int, default 3
        Suggestion keys (0-5); ignored when ``layout`` is a built layout.
    seed : int or numpy Generator, optional
    timeout_s : float, optional
        A phrase not done within this time is given up (scored as typed) and
        the next one shown; ``None`` waits forever.
    on_text : callable(str), optional
        Called with the block's whole text (:attr:`text`) after every change,
        so the caller can save it as it is typed.
    take_suggestions : bool, default True
        Whether :attr:`target` is the suggestion key when it offers the
        intended word (the policy of the simulated typist); settable.

    Examples
    --------
    >>> task = KeyboardTask(phrases=["hi"], seed=0)
    >>> key = task.start(0.0, (0.5, 0.5))
    >>> _ = task.update(0.5, key.center_xy, click=True)
    >>> task.typed_text
    'h'
    """

    name = "keyboard"

    def __init__(
        self,
        *,
        layout: str | KeyboardLayout = "qwerty",
        mode: str = "copy",
        phrases: list[str] | None = None,
        language_model: Any = None,
        n_suggestions: int = 3,
        seed: SeedLike = None,
        timeout_s: float | None = None,
        on_text: Callable[[str], Any] | None = None,
        take_suggestions: bool = True,
    ) -> None:
        super().__init__(timeout_s=timeout_s)
        if isinstance(layout, KeyboardLayout):
            self.layout = layout
        else:
            self.layout = KeyboardLayout.build(layout, n_suggestions=n_suggestions)
        self.mode = check_in(mode, "mode", MODES)
        if phrases is None and mode == "copy":
            phrases = load_phrases("test")
        self.phrases = None if phrases is None else check_phrases(phrases, self.layout.alphabet)
        if language_model is not None and not all(
                hasattr(language_model, m) for m in ("completion", "next_words")):
            raise InvalidInputError("language_model must have completion() and next_words() "
                                    f"(a neurolace.tasks.LanguageModel), got {type(language_model).__name__}")
        self.language_model = language_model
        if on_text is not None and not callable(on_text):
            raise InvalidInputError(f"on_text must be callable, got {type(on_text).__name__}")
        self.on_text = on_text
        self.take_suggestions = bool(take_suggestions)
        self._rng = check_rng(seed)
        self._queue: list[str] = []
        self.records: list[PhraseRecord] = []
        self._suggestions: list[str] = []

    # state -------------------------------------------------------------------------------------
    @property
    def keys(self) -> tuple[Key, ...]:
        """The layout's keys, the suggestion keys labelled with the words they offer now."""
        words = self._suggestions
        slots = iter(range(len(self.layout.suggestion_keys)))
        return tuple(
            replace(k, label=_word_at(words, next(slots))) if k.kind == "suggestion" else k
            for k in self.layout.keys
        )

    @property
    def suggestions(self) -> list[str]:
        """The words on the suggestion keys, left to right."""
        return list(self._suggestions)

    @property
    def typed_text(self) -> str:
        """The text typed for the phrase on screen."""
        return self.records[-1].transcribed if self.records else ""

    @property
    def target_phrase(self) -> str | None:
        """The phrase to copy (copy mode); ``None`` in free mode (nothing is shown)."""
        if self.mode != "copy" or not self.records:
            return None
        return self.records[-1].presented

    @property
    def intended_phrase(self) -> str | None:
        """What the typist means to write now (the shown phrase, or the free-typing intent)."""
        return self.records[-1].presented if self.records else None

    @property
    def text(self) -> str:
        """The block's whole text so far: each phrase's transcription, one a line."""
        return "\n".join(r.transcribed for r in self.records)

    @property
    def target(self) -> Target | None:
        """The key the typist should press next, or ``None`` (not started; free typing with no reference)."""
        key = self.target_key
        return None if key is None else key.target

    @property
    def target_key(self) -> Key | None:
        """The :class:`Key` of :attr:`target` (with its current label)."""
        if not self.records or self.records[-1].presented is None:
            return None
        phrase, typed = self.records[-1].presented, self.records[-1].transcribed
        matched = _common_prefix_length(phrase, typed)
        if matched < len(typed):
            return self.layout.backspace_key
        if matched >= len(phrase):  # cannot stay on screen typed (it would be done); defensive
            return self.layout.space_key
        character = phrase[matched]
        if self.take_suggestions and character != " " and self._suggestions:
            start = typed.rfind(" ") + 1
            end = phrase.find(" ", start)
            word = phrase[start:] if end < 0 else phrase[start:end]
            if word in self._suggestions:
                return replace(self.layout.suggestion_keys[self._suggestions.index(word)], label=word)
        return self.layout.key_for(character)

    # streaming ---------------------------------------------------------------------------------
    def _next_target(self) -> Target:
        return self.target

    def _light(self, time_s: float, cursor: np.ndarray) -> None:
        if self.target is not None:
            super()._light(time_s, cursor)

    def start(self, time_s: float, cursor_xy: Any) -> Target | None:
        """Begin the block at ``time_s``: show the first phrase; return the first target."""
        cursor = self._check_cursor(cursor_xy)
        self._start_s = self._last_s = float(time_s)
        self._show_next_phrase(float(time_s))
        self._light(float(time_s), cursor)
        return self.target

    def update(self, time_s: float, cursor_xy: Any, click: bool) -> KeySelection | None:
        """Advance to ``time_s`` with the cursor at ``cursor_xy``; a rising ``click`` presses the key there.

        Returns
        -------
        KeySelection or None
            The selection (``correct``: it was the target key; ``key``: what was
            pressed, ``None`` for a click on no key), if one happened.
        """
        if self._start_s is None:
            raise InvalidInputError("call start(time_s, cursor_xy) before update()")
        cursor = self._check_cursor(cursor_xy)
        time_s = float(time_s)
        if time_s < self._last_s:
            raise InvalidInputError(f"time_s must not go backwards: {time_s} s after {self._last_s} s")
        self._last_s = time_s
        self._sync_trial(time_s, cursor)
        trial = self.trials[-1] if self.trials else None
        if trial is not None:
            trial.path_xy.append((float(cursor[0]), float(cursor[1])))
            if trial.first_entry_s is None and trial.target.contains(cursor):
                trial.first_entry_s = time_s
        rising = bool(click) and not self._previous_click
        self._previous_click = bool(click)
        if not rising:
            record = self.records[-1]
            if self.timeout_s is not None and time_s - record.start_s >= self.timeout_s:
                self.end_phrase(time_s)
                self._sync_trial(time_s, cursor)
            return None
        xy = (float(cursor[0]), float(cursor[1]))
        key = self.layout.key_at(cursor)
        intended = self.target_key
        correct = key is not None and (intended is None or key.index == intended.index)
        lit = intended.target if intended is not None else (
            key.target if key is not None else Target(xy, 0.0, "square", -1))
        pressed = None if key is None else self.keys[key.index]
        selection = KeySelection(time_s, xy, correct, lit, pressed)
        if correct:
            self.correct += 1
        else:
            self.incorrect += 1
        if trial is not None and correct:
            trial.success, trial.selection_s, trial.selection_xy = True, time_s, xy
        elif trial is not None:
            trial.n_incorrect += 1
        if pressed is not None:
            self._press(pressed, time_s)
        self._sync_trial(time_s, cursor)
        return selection

    def _sync_trial(self, time_s: float, cursor: np.ndarray) -> None:
        """Close the lit trial when the target changed (pressed, erred, phrase ended); light the new one."""
        target = self.target
        trial = self.trials[-1] if self.trials else None
        if trial is not None and (trial.success or target is None or trial.target.index != target.index):
            if trial.selection_s is None:
                trial.selection_s = time_s
            if target is not None:
                self._light(time_s, cursor)
        elif trial is None and target is not None:
            self._light(time_s, cursor)

    def _press(self, key: Key, time_s: float) -> None:
        record = self.records[-1]
        record.keystrokes += 1
        typed = record.transcribed
        if key.kind == "backspace":
            record.backspaces += 1
            if typed:
                record.transcribed, record.erased = typed[:-1], record.erased + 1
        elif key.kind == "suggestion":
            if not key.label:
                return  # an empty suggestion key: a wasted keystroke
            start = typed.rfind(" ") + 1
            partial = typed[start:]
            if not key.label.startswith(partial):  # a model that did not complete the prefix: replace it
                record.erased += len(partial)
                partial = ""
            record.transcribed = typed[:start] + key.label + " "
            record.entered += len(key.label) + 1 - len(partial)
            record.suggestions_taken += 1
        else:
            record.transcribed = typed + (" " if key.kind == "space" else key.label)
            record.entered += 1
        phrase = record.presented
        if phrase is not None and record.transcribed in (phrase, phrase + " "):
            record.completed = True
            self._close_phrase(time_s)
            self._show_next_phrase(time_s)
        else:
            self._update_suggestions()
        self._notify()

    def end_phrase(self, time_s: float) -> None:
        """Give up the phrase on screen (scored as typed) and show the next one."""
        if self._start_s is None:
            raise InvalidInputError("the block has not started: call start() first")
        self._close_phrase(float(time_s))
        self._show_next_phrase(float(time_s))
        self._notify()

    def _close_phrase(self, time_s: float) -> None:
        self.records[-1].end_s = time_s

    def _show_next_phrase(self, time_s: float) -> None:
        if self.phrases is None:
            self.records.append(PhraseRecord(None, time_s))
        else:
            if not self._queue:
                self._queue = [self.phrases[i] for i in self._rng.permutation(len(self.phrases))]
            self.records.append(PhraseRecord(self._queue.pop(0), time_s))
        self._update_suggestions()

    def _update_suggestions(self) -> None:
        n_slots = len(self.layout.suggestion_keys)
        if self.language_model is None or n_slots == 0:
            self._suggestions = []
            return
        typed = self.typed_text
        start = typed.rfind(" ") + 1
        context, partial = typed[:start].split(), typed[start:]
        if partial:
            words = self.language_model.completion(partial, context, n_slots)
        else:
            words = self.language_model.next_words(context, n_slots)
        self._suggestions = list(words)[:n_slots]

    def _notify(self) -> None:
        if self.on_text is not None:
            self.on_text(self.text)

    # metrics -----------------------------------------------------------------------------------
    def summary(self, end_s: float | None = None) -> TypingSummary:
        """Text-entry metrics of the block up to ``end_s`` (default: the last update)."""
        if self._start_s is None:
            raise InvalidInputError("the block has not started: call start() first")
        end_s = self._last_s if end_s is None else float(end_s)
        duration_s = end_s - self._start_s
        minutes = duration_s / 60.0
        correct_chars = not_fixed = typed_chars = 0
        referenced = False
        phrases = []
        for record in self.records:
            reference, text = record.scored_texts()
            typed_chars += len(text)
            if reference is None:
                correct_chars += len(text)
            else:
                referenced = True
                distance = levenshtein(reference, text)
                correct_chars += max(len(reference), len(text)) - distance
                not_fixed += distance
            phrases.append({
                "presented": record.presented, "transcribed": text, "start_s": record.start_s,
                "end_s": record.end_s, "completed": record.completed, "keystrokes": record.keystrokes,
                "suggestions_taken": record.suggestions_taken,
            })
        fixed = sum(r.erased for r in self.records)
        keystrokes = sum(r.keystrokes for r in self.records)
        denominator = correct_chars + not_fixed + fixed
        nan = float("nan")
        uncorrected = not_fixed / denominator if referenced and denominator else nan
        corrected = fixed / denominator if referenced and denominator else nan
        n_keys = len(self.layout.keys)
        bits_per_selection = float(np.log2(n_keys - 1))
        bps = (net_targets_per_minute(self.correct, self.incorrect, duration_s) / 60.0 * bits_per_selection
               if duration_s > 0 else 0.0)
        return TypingSummary(
            task=self.name, layout=self.layout.name, mode=self.mode, duration_s=duration_s,
            ccpm=correct_chars / minutes if minutes > 0 else 0.0,
            wpm=typed_chars / 5.0 / minutes if minutes > 0 else 0.0,
            uncorrected_error_rate=uncorrected, corrected_error_rate=corrected,
            total_error_rate=uncorrected + corrected,
            keystrokes_per_char=keystrokes / typed_chars if typed_chars else nan,
            selection_bps=bps,
            phrases_done=sum(r.completed for r in self.records),
            phrases_shown=len(self.records),
            chars_typed=typed_chars, chars_correct=correct_chars,
            chars_incorrect_not_fixed=not_fixed, chars_incorrect_fixed=fixed,
            keystrokes=keystrokes, backspaces=sum(r.backspaces for r in self.records),
            suggestions_taken=sum(r.suggestions_taken for r in self.records),
            correct=self.correct, incorrect=self.incorrect, n_keys=n_keys, phrases=phrases,
        )


def _word_at(words: list[str], slot: int) -> str:
    return words[slot] if slot < len(words) else ""


def _common_prefix_length(a: str, b: str) -> int:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return min(len(a), len(b))
