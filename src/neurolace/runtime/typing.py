"""Copy-typing blocks in the one closed loop: the simulated typist, the typed text saved as typed, assistance.

:func:`run_typing` runs one block of a :class:`~neurolace.tasks.keyboard.KeyboardTask`
through :class:`~neurolace.runtime.closed_loop.BlockRun` and the same
:class:`~neurolace.runtime.loop.ClosedLoop` as Webgrid, with a
:class:`~neurolace.runtime.closed_loop.Calibration`'s decoders (or the perfect
decoder, the cursor following the intention, without one). The keyboard's
:attr:`~neurolace.tasks.keyboard.KeyboardTask.target` is the key the typist
should press next: the next character of the phrase, the suggestion key when
it offers the intended word (``take_suggestions``), backspace after an error.
:func:`compare_typing` runs the same block (same phrases, same noise seeds)
without prediction, with it, and with it plus assistance, the comparison
``neurolace demo --task typing`` and ``benchmarks/bench_typing.py`` report.

The simulated typist (:class:`SimulatedTypist`) is the
:class:`~neurolace.sim.participant.SimulatedParticipant` unchanged, aiming at
the task's target, with two things a person typing does on top, both on the
typist's side so Webgrid stays bit for bit the same:

1. **Reading the suggestion row costs time.** Word prediction saves keystrokes
   but each look at the list is perceptual and cognitive time that eats part of
   the saving (Koester & Levine 1994, IEEE Trans Rehabil Eng 2:177, "Modeling
   the speed of text entry with a word prediction interface"; their model adds a
   list-search time to every keystroke made while predictions are used). After
   every selection, while the suggestion keys show words and the typist uses
   them, the typist looks at the row for ``suggestion_search_s`` before the next
   key is acted on (the participant sees no target meanwhile, so it holds still;
   its own reaction time comes on top, as after any new target). The default,
   0.3 s for a row of three words, is a chosen value, not a fitted one: the
   benchmark reports how the gain from prediction moves with it (0 to 0.6 s).
2. **A repeated key is a new target.** The participant treats a target as new
   when its place changes; a double letter ("ll") keeps the same key lit, so
   each new keystroke is shown to the participant shifted by 1e-9 workspace
   units, which makes it start a fresh dwell and click as a person pressing the
   key again would.

**Assistance** (:class:`KeyAssistance`, opt-in, reported separately): the
language model's next-character probabilities (:meth:`~neurolace.tasks.language.LanguageModel.char_probabilities`)
lower the cursor's gain over the keys it ranks likely, ``gain = 1 / (1 +
strength * p)`` over a key of probability ``p``: semantic pointing, the
control-display ratio raised over important targets so they are larger in
motor space (Blanch, Guiard & Beaudouin-Lafon 2004, CHI 519-526). It wraps the
velocity decoder (:class:`AssistedDecoder`), so the loop itself is unchanged;
because the click is refused above a decoded speed
(:data:`~neurolace.runtime.loop.DEFAULT_CLICK_SPEED_LIMIT`), a slower cursor
over a likely key also lets its click through sooner. It never reads the
target: only the typed text and the model.

**The typed text is never lost.** With ``text_path`` the block's text (one
line per phrase, :attr:`~neurolace.tasks.keyboard.KeyboardTask.text`) is
written after every change, each time to a temporary file renamed over the
target (:func:`neurolace.io.atomic.atomic_output`), so a kill or a failing
decoder leaves the text as typed up to its last keystroke; a
:class:`~neurolace.runtime.loop.DecoderError` that stops the block says where
the text is and what it was.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from neurolace.core.checks import check_nonnegative, check_positive
from neurolace.core.errors import InvalidInputError
from neurolace.io.atomic import atomic_output, check_output_path
from neurolace.runtime.closed_loop import BlockRecord, BlockRun, Calibration, _drive_block
from neurolace.runtime.loop import ClosedLoop, CountsSource, DecoderError, LoopSettings, check_feature_source

__all__ = [
    "DEFAULT_SUGGESTION_SEARCH_S",
    "TYPING_CLICK_LOCKOUT_S",
    "AssistedDecoder",
    "KeyAssistance",
    "SimulatedTypist",
    "TypedTextFile",
    "TypingComparison",
    "TypingResult",
    "TypistSettings",
    "compare_typing",
    "run_typing",
]

#: Time to read the suggestion row after each keystroke, seconds (a chosen value; module docstring).
DEFAULT_SUGGESTION_SEARCH_S = 0.3
#: Click lockout of the typing blocks, seconds (the loop's default is 0.3 s). While the typist reads the
#: suggestion row the cursor rests on the key just pressed, and a resting cursor is where the click decoder
#: gives false clicks; the keyboard's next intended click is never sooner than a reaction time and a dwell
#: (~0.45 s, a double letter). On seeds 10 and 11 (not the benchmark's), Kalman filter, 0.3 s search:
#: ccpm with prediction 52 / 38 at 0.3 s, 66 / 58 at 0.5 s, 70 / 62 at 0.7 s (corrected error rate
#: 16 / 33 %, 4 / 7 %, 1.4 / 1.6 %), without prediction 47 / 50, 46 / 50, 46 / 50.
TYPING_CLICK_LOCKOUT_S = 0.7
#: Shift of a repeated key as shown to the participant, workspace units (so it starts a fresh click).
_REPEAT_SHIFT = 1e-9
#: Keys of the typing blocks' task (phrase order) and noise seeds: ``SeedSequence([seed, key])``.
TYPING_TASK_KEY = 52361
TYPING_NOISE_KEY = 52363


@dataclass(frozen=True)
class TypistSettings:
    """How the simulated typist uses the keyboard (on top of the participant's own control model).

    Parameters
    ----------
    take_suggestions : bool, default True
        Take a suggestion key when it offers the intended word (as a person
        would); False types every letter (the suggestion row is then ignored).
    suggestion_search_s : float, default 0.3
        Time to read the suggestion row after every selection while it shows
        words and the typist uses it, seconds (module docstring).
    """

    take_suggestions: bool = True
    suggestion_search_s: float = DEFAULT_SUGGESTION_SEARCH_S

    def __post_init__(self) -> None:
        if not isinstance(self.take_suggestions, (bool, np.bool_)):
            raise InvalidInputError(f"take_suggestions must be True or False, got {self.take_suggestions!r}")
        object.__setattr__(self, "suggestion_search_s",
                           check_nonnegative(self.suggestion_search_s, "suggestion_search_s"))


@dataclass(frozen=True)
class _SeenKey:
    """The key as the participant is shown it (a target's place, size and shape)."""

    center_xy: tuple[float, float]
    width: float
    shape: str


class SimulatedTypist:
    """A :class:`~neurolace.sim.participant.SimulatedParticipant` copy-typing on a keyboard task.

    It has the participant's members (``n_channels``, ``control``,
    ``emit_counts``, ...) and steps it with the task's target, adding the
    suggestion-row reading time and the fresh start of a repeated key (module
    docstring).

    Parameters
    ----------
    participant : SimulatedParticipant
    task : KeyboardTask
        The task whose keys the typist presses (its suggestions and selections are read).
    settings : TypistSettings, optional
    """

    def __init__(self, participant: Any, task: Any, settings: TypistSettings | None = None) -> None:
        self.participant = participant
        self.task = task
        self.settings = TypistSettings() if settings is None else settings
        self._selections = 0
        self._search_left_s = 0.0
        self.searches = 0

    def __getattr__(self, name: str) -> Any:
        if name == "participant":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.participant, name)

    def start(self, cursor_xy: Any, *, cursor_gain_per_s: float, seed: Any = None) -> None:
        """Begin a block (the participant's :meth:`~neurolace.sim.participant.SimulatedParticipant.start`)."""
        self.participant.start(cursor_xy, cursor_gain_per_s=cursor_gain_per_s, seed=seed)
        self._selections = self.task.correct + self.task.incorrect
        self._search_left_s = 0.0
        self.searches = 0

    def step(self, cursor_xy: Any, target: Any = None, *, touch: bool | None = None) -> Any:
        """One control step: the participant's intention for the key it is shown now."""
        selections = self.task.correct + self.task.incorrect
        if selections != self._selections:
            self._selections = selections
            if self.settings.suggestion_search_s > 0 and self.task.take_suggestions and any(self.task.suggestions):
                self._search_left_s = self.settings.suggestion_search_s
                self.searches += 1
        shown = None
        if self._search_left_s > 1e-12:
            self._search_left_s -= self.participant.control.loop_s
        elif target is not None:
            shift = _REPEAT_SHIFT * (selections % 2)
            shown = _SeenKey((float(target.center_xy[0]) + shift, float(target.center_xy[1])), float(target.width),
                             getattr(target, "shape", "square"))
        return self.participant.step(cursor_xy, shown, touch=touch)


@dataclass(frozen=True)
class KeyAssistance:
    """Semantic pointing over the keys the language model ranks likely (module docstring).

    Parameters
    ----------
    strength : float, default 2.0
        Over a key of next-character probability ``p`` the cursor gain is
        ``1 / (1 + strength * p)`` (0: no assistance).
    """

    strength: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", check_nonnegative(self.strength, "strength"))


class AssistedDecoder:
    """A velocity decoder whose output is slowed over likely keys (:class:`KeyAssistance`).

    Every member but ``step`` and ``step_missing`` is the wrapped decoder's.
    :meth:`bind` gives it the loop whose cursor it reads.

    Parameters
    ----------
    decoder : fitted velocity decoder
    task : KeyboardTask
        Its layout, typed text and language model.
    assistance : KeyAssistance
    """

    def __init__(self, decoder: Any, task: Any, assistance: KeyAssistance) -> None:
        if task.language_model is None or not hasattr(task.language_model, "char_probabilities"):
            raise InvalidInputError("assistance needs the task's language model (with char_probabilities); "
                                    "the task has none")
        self.decoder = decoder
        self.task = task
        self.assistance = assistance
        self.loop: ClosedLoop | None = None
        self._cached_text: str | None = None
        self._gains: dict[int, float] = {}

    def __getattr__(self, name: str) -> Any:
        if name == "decoder":
            raise AttributeError(name)
        return getattr(self.decoder, name)

    def bind(self, loop: ClosedLoop) -> AssistedDecoder:
        self.loop = loop
        return self

    def reset(self) -> AssistedDecoder:
        self.decoder.reset()
        self._cached_text = None
        return self

    def gain_at(self, cursor_xy: Any) -> float:
        """The gain multiplier at ``cursor_xy`` for the text typed now (1 off the likely keys)."""
        text = self.task.typed_text
        if text != self._cached_text:
            self._cached_text = text
            start = text.rfind(" ") + 1
            probabilities = self.task.language_model.char_probabilities(text[start:], text[:start].split())
            strength = self.assistance.strength
            self._gains = {}
            for key in self.task.layout.keys:
                character = " " if key.kind == "space" else key.label if key.kind == "char" else None
                if character in probabilities:
                    self._gains[key.index] = 1.0 / (1.0 + strength * probabilities[character])
        key = self.task.layout.key_at(cursor_xy)
        return 1.0 if key is None else self._gains.get(key.index, 1.0)

    def _scaled(self, velocity: Any) -> np.ndarray:
        velocity = np.asarray(velocity, dtype=np.float64)
        if self.loop is None:
            raise InvalidInputError("AssistedDecoder.bind(loop) must be called before the block starts")
        return velocity * self.gain_at(self.loop.cursor_xy)

    def step(self, features: np.ndarray) -> np.ndarray:
        return self._scaled(self.decoder.step(features))

    def step_missing(self) -> np.ndarray:
        return self._scaled(self.decoder.step_missing())


class TypedTextFile:
    """Saves a block's text as it is typed: the whole text, atomically, after every change.

    Use it as the task's ``on_text``. The file holds the text exactly (one line
    per phrase); every write goes to a temporary file renamed over ``path``,
    so the file is always a whole version of the text.

    Parameters
    ----------
    path : str or path-like
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = check_output_path(path, name="text_path")
        self.writes = 0
        self.text = ""
        self(self.text)  # the file exists from the start of the block

    def __call__(self, text: str) -> None:
        with atomic_output(self.path) as temporary:
            temporary.write_text(text, encoding="utf-8")
        self.text = text
        self.writes += 1


@dataclass
class TypingResult:
    """One typing block: its text-entry metrics, what it typed, the step-by-step record.

    Attributes
    ----------
    name : str
    summary : TypingSummary
        :class:`~neurolace.tasks.keyboard.TypingSummary` of the block.
    text : str
        The block's text, one line per phrase.
    prediction, assisted : bool
        Whether the suggestion keys were filled, and whether :class:`KeyAssistance` was on.
    decoder : str
        ``"perfect"`` without a calibration, else the calibration's decoder (and driver).
    record : BlockRecord
    text_path : str or None
    suggestion_searches : int
        Looks at the suggestion row the typist made.
    settings : LoopSettings or None
        The loop settings of the block.
    """

    name: str
    summary: Any
    text: str
    prediction: bool
    assisted: bool
    decoder: str
    record: BlockRecord = field(repr=False)
    text_path: str | None = None
    suggestion_searches: int = 0
    settings: LoopSettings | None = None

    def to_dict(self) -> dict:
        """JSON-able: the summary's fields (NaN as None), the text and what ran."""
        summary = {key: _json_number(value) for key, value in self.summary.to_dict().items()}
        return {"name": self.name, **summary, "text": self.text, "prediction": self.prediction,
                "assisted": self.assisted, "decoder": self.decoder, "text_path": self.text_path,
                "suggestion_searches": self.suggestion_searches}


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def run_typing(
    calibration: Calibration | None = None,
    *,
    participant: Any = None,
    source: Any = None,
    language_model: Any = None,
    phrases: list[str] | None = None,
    layout: str = "qwerty",
    n_suggestions: int = 3,
    duration_s: float = 60.0,
    seed: int = 0,
    typist: TypistSettings | None = None,
    assistance: KeyAssistance | None = None,
    text_path: str | os.PathLike | None = None,
    settings: LoopSettings | None = None,
    driver: str | None = None,
    name: str | None = None,
    on_step: Callable[[Any, np.ndarray, float], None] | None = None,
) -> TypingResult:
    """One copy-typing block of ``duration_s`` in the closed loop.

    Parameters
    ----------
    calibration : Calibration, optional
        The decoders (copies are used; the calibration is kept), from
        :func:`~neurolace.runtime.closed_loop.calibrate_session`. ``None``: the
        perfect decoder (the cursor follows the participant's intention).
    participant : SimulatedParticipant, optional
        Default: the calibration's participant as the calibration left it (copied).
        Required without a calibration.
    source : feature source, optional
        Default: the calibration's (with its participant), else the participant's counts (copied).
    language_model : LanguageModel, optional
        Fills the suggestion keys; ``None``: no prediction.
    phrases : list of str, optional
        Phrases to copy (default: the phrase set's held-out split).
    layout : {"qwerty", "frequency"}
    n_suggestions : int, default 3
    duration_s : float, default 60
    seed : int, default 0
        Seeds the phrase order and the participant's (and source's) noise: the
        same seed gives the same phrases and noise with and without prediction.
    typist : TypistSettings, optional
    assistance : KeyAssistance, optional
        Needs a calibration (a decoder to wrap) and a language model.
    text_path : str or path-like, optional
        Where the block's text is saved as it is typed (:class:`TypedTextFile`).
    settings : LoopSettings, optional
        Default: the calibration's with the click lockout :data:`TYPING_CLICK_LOCKOUT_S`
        (the loop defaults without a calibration: the perfect decoder has no lockout).
    driver : {"first", "refit"}, optional
        Which of the calibration's decoders (default its own driver).
    name : str, optional
    on_step : callable ``(task, cursor_xy, time_s)``, optional
        Called after every control step with the keyboard task, the cursor and the block's time (the
        dashboard's live typing view: ``neurolace demo --task typing``).

    Returns
    -------
    TypingResult

    Raises
    ------
    DecoderError
        A decoder failed mid-block; the message says where the text typed so far is saved and what it is.
    """
    from neurolace.tasks.keyboard import KeyboardTask

    typist = TypistSettings() if typist is None else typist
    if not isinstance(typist, TypistSettings):
        raise InvalidInputError(f"typist must be a TypistSettings, got {type(typist).__name__}")
    if assistance is not None and not isinstance(assistance, KeyAssistance):
        raise InvalidInputError(f"assistance must be a KeyAssistance or None, got {type(assistance).__name__}")
    if assistance is not None and (calibration is None or language_model is None):
        raise InvalidInputError("assistance needs a calibration (a decoder to assist) and a language_model")
    duration_s = check_positive(duration_s, "duration_s")
    if calibration is not None and not isinstance(calibration, Calibration):
        raise InvalidInputError(f"calibration must be a Calibration or None, got {type(calibration).__name__}")
    participant, source = _who_types(calibration, participant, source)
    text_file = None if text_path is None else TypedTextFile(text_path)
    task = KeyboardTask(layout=layout, mode="copy", phrases=phrases, language_model=language_model,
                        n_suggestions=n_suggestions, seed=np.random.SeedSequence([int(seed), TYPING_TASK_KEY]),
                        on_text=text_file, take_suggestions=typist.take_suggestions)
    loop, decoder_name = _typing_loop(calibration, participant, task, settings, driver, assistance)
    block_name = name or ("typing" + ("+prediction" if language_model is not None else "")
                          + ("+assist" if assistance is not None else ""))
    block = BlockRun(task, loop, duration_s=duration_s, n_features=source.n_features, name=block_name, kind="typing")
    who = SimulatedTypist(participant, task, typist)
    try:
        step = None if on_step is None else (
            lambda run: on_step(task, run.cursor_xy, run.index * loop.settings.loop_s))
        record = _drive_block(who, source, block, np.random.SeedSequence([int(seed), TYPING_NOISE_KEY]), step)
    except DecoderError as exc:
        where = f"saved in {str(text_file.path)!r}" if text_file is not None else "not saved (no text_path)"
        raise DecoderError(f"{exc}; typing stopped at {block.index * loop.settings.loop_s:.2f} s of block "
                           f"{block_name!r}, the text typed so far is {where}: {task.text!r}") from exc
    return TypingResult(block_name, record.summary, task.text, language_model is not None, assistance is not None,
                        decoder_name, record, None if text_file is None else str(text_file.path), who.searches,
                        loop.settings)


def _who_types(calibration: Calibration | None, participant: Any, source: Any) -> tuple[Any, Any]:
    """Copies of the participant and the feature source of a typing block."""
    if participant is None:
        if calibration is None or calibration.participant is None:
            raise InvalidInputError("pass participant= (or a Calibration that holds one)")
        participant, default_source = copy.deepcopy((calibration.participant, calibration.source))
        source = default_source if source is None else copy.deepcopy(check_feature_source(source))
        return participant, source
    participant = copy.deepcopy(participant)
    if calibration is not None and participant.n_channels != calibration.n_channels:
        raise InvalidInputError(f"participant has {participant.n_channels} channels, the calibration "
                                f"{calibration.n_channels}")
    if source is None:
        return participant, CountsSource(participant)
    return participant, copy.deepcopy(check_feature_source(source))


def _typing_loop(calibration: Calibration | None, participant: Any, task: Any, settings: LoopSettings | None,
                 driver: str | None, assistance: KeyAssistance | None) -> tuple[ClosedLoop, str]:
    """The block's ClosedLoop (the calibration's decoders, copied; or the perfect decoder) and its decoder's name."""
    if calibration is None:
        settings = LoopSettings(loop_s=participant.control.loop_s) if settings is None else settings
        return ClosedLoop(settings, observation="intention"), "perfect"
    if settings is None:
        settings = replace(calibration.settings, click_lockout_s=TYPING_CLICK_LOCKOUT_S)
    if not isinstance(settings, LoopSettings) or abs(settings.loop_s - calibration.settings.loop_s) > 1e-12:
        raise InvalidInputError("settings must be a LoopSettings with the calibration's loop_s "
                                f"({calibration.settings.loop_s} s)")
    driver = calibration.driver if driver is None else driver
    if driver not in calibration.decoders:
        raise InvalidInputError(f"driver must be one of {sorted(calibration.decoders)}, got {driver!r}")
    decoder = copy.deepcopy(calibration.decoders[driver])
    if assistance is not None:
        decoder = AssistedDecoder(decoder, task, assistance)
    loop = ClosedLoop(settings, decoder=decoder, click_decoder=copy.deepcopy(calibration.click_decoder))
    if assistance is not None:
        decoder.bind(loop)
    label = calibration.plan.decoder + (" + ReFIT" if driver == "refit" else "")
    return loop, label


@dataclass
class TypingComparison:
    """The same typing block without prediction, with it, and (optionally) with it and assistance.

    Attributes
    ----------
    without_prediction, with_prediction : TypingResult
    assisted : TypingResult or None
    """

    without_prediction: TypingResult
    with_prediction: TypingResult
    assisted: TypingResult | None = None

    @property
    def prediction_gain(self) -> float:
        """ccpm with prediction over ccpm without, minus 1 (0.3 = prediction adds 30 %)."""
        base = self.without_prediction.summary.ccpm
        return self.with_prediction.summary.ccpm / base - 1.0 if base > 0 else float("nan")

    def to_dict(self) -> dict:
        """``ccpm``, ``ccpm_without_prediction``, ``error_rate``, ``keystrokes_per_char`` and the blocks.

        ``ccpm``, ``error_rate`` (uncorrected: errors left in the text),
        ``corrected_error_rate``, ``keystrokes_per_char`` and ``wpm`` are the
        block with prediction (no assistance); ``*_without_prediction`` the same
        phrases and noise without; ``*_assisted`` with prediction and assistance.
        """
        out: dict[str, Any] = {}
        for suffix, result in (("", self.with_prediction), ("_without_prediction", self.without_prediction),
                               ("_assisted", self.assisted)):
            if result is None:
                continue
            s = result.summary
            out.update({f"ccpm{suffix}": s.ccpm, f"wpm{suffix}": s.wpm,
                        f"error_rate{suffix}": _json_number(s.uncorrected_error_rate),
                        f"corrected_error_rate{suffix}": _json_number(s.corrected_error_rate),
                        f"keystrokes_per_char{suffix}": _json_number(s.keystrokes_per_char)})
        out["prediction_gain"] = _json_number(self.prediction_gain)
        out["typing_blocks"] = [r.to_dict() for r in (self.without_prediction, self.with_prediction, self.assisted)
                                if r is not None]
        return out


def compare_typing(
    calibration: Calibration | None = None,
    *,
    language_model: Any = None,
    assistance: KeyAssistance | None = None,
    text_dir: str | os.PathLike | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    **kwargs: Any,
) -> TypingComparison:
    """:func:`run_typing` without prediction, with it, and with it plus ``assistance`` (if given): same seed.

    Parameters
    ----------
    calibration : Calibration, optional
    language_model : LanguageModel, optional
        Default: ``LanguageModel()`` (the package's model; needs the keyboard extra).
    assistance : KeyAssistance, optional
        Adds the assisted block (needs a calibration).
    text_dir : str or path-like, optional
        Each block's text is saved as typed in ``typed-<block>.txt`` there.
    progress : callable ``(block_name, block_index, n_blocks)``, optional
        Called before each block (for a progress bar).
    **kwargs
        Other arguments of :func:`run_typing` (``seed``, ``duration_s``, ``participant``, ...).

    Returns
    -------
    TypingComparison
    """
    for reserved in ("name", "text_path"):
        if reserved in kwargs:
            raise InvalidInputError(f"compare_typing names its blocks and their files; do not pass {reserved}")
    if language_model is None:
        from neurolace.tasks.language import LanguageModel

        language_model = LanguageModel()

    blocks = [("no-prediction", None, None), ("prediction", language_model, None)]
    if assistance is not None:
        blocks.append(("prediction-assisted", language_model, assistance))
    results = []
    for index, (name, model, assist) in enumerate(blocks):
        if progress is not None:
            progress(name, index, len(blocks))
        path = None if text_dir is None else Path(text_dir) / f"typed-{name}.txt"
        results.append(run_typing(calibration, language_model=model, assistance=assist, name=name, text_path=path,
                                  **kwargs))
    return TypingComparison(*results)
