"""The phrase set the keyboard task copy-types, and its train / held-out split.

``data/phrases.txt`` holds 250 short everyday English sentences written for
neurolace (lower case, letters and single spaces only, one a line), in the
spirit of MacKenzie & Soukoreff's (2003) phrase set for text-entry studies but
not taken from it: that set is not packaged and its licence is unclear.

The split is fixed by position so it never changes with a seed: every fourth
phrase (line index 3, 7, 11, ...) is **held out** (``"test"``, 62 phrases) for
evaluating typing; the other 188 (``"train"``) are the only text the
language model's n-gram is built from (:class:`neurolace.tasks.language.LanguageModel`),
so a simulated typist copying the held-out phrases never types a sentence the
n-gram has seen.

>>> from neurolace.tasks.phrases import load_phrases
>>> len(load_phrases("train")), len(load_phrases("test"))
(188, 62)
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

from neurolace.core.checks import check_in
from neurolace.core.errors import InvalidInputError

__all__ = ["PHRASE_SPLITS", "HELD_OUT_EVERY", "check_phrases", "load_phrases"]

#: The splits :func:`load_phrases` knows: every phrase, the n-gram's training text, the held-out phrases.
PHRASE_SPLITS = ("all", "train", "test")
#: Every ``HELD_OUT_EVERY``-th phrase of the file (the last of each group) is held out.
HELD_OUT_EVERY = 4


@lru_cache(maxsize=1)
def _all_phrases() -> tuple[str, ...]:
    text = resources.files("neurolace.tasks").joinpath("data", "phrases.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def load_phrases(split: str = "test") -> list[str]:
    """The project's phrases of one split.

    Parameters
    ----------
    split : {"test", "train", "all"}, default "test"
        ``"test"``: the held-out phrases (what the typist copies);
        ``"train"``: the text the n-gram is built from; ``"all"``: both, in file order.

    Returns
    -------
    phrases : list of str
        Lower-case sentences of letters and single spaces.
    """
    check_in(split, "split", PHRASE_SPLITS)
    phrases = _all_phrases()
    if split == "all":
        return list(phrases)
    held_out = [index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 for index in range(len(phrases))]
    return [p for p, out in zip(phrases, held_out) if out == (split == "test")]


def check_phrases(phrases: Any, alphabet: str | set[str], name: str = "phrases") -> list[str]:
    """Check a phrase set is non-empty and typable with ``alphabet``; return it as a list.

    Parameters
    ----------
    phrases : sequence of str
    alphabet : str or set of str
        The characters the keyboard can type (space included).
    name : str
        The parameter's name in messages.

    Raises
    ------
    InvalidInputError
        An empty set, a phrase that is not a non-empty string, or a character
        the layout cannot type (the message names the character and the phrase).
    """
    if isinstance(phrases, str) or not hasattr(phrases, "__iter__"):
        raise InvalidInputError(f"{name} must be a list of strings, got {type(phrases).__name__}")
    phrases = list(phrases)
    if not phrases:
        raise InvalidInputError(f"{name} is empty: give at least one phrase to type")
    allowed = set(alphabet)
    for index, phrase in enumerate(phrases):
        if not isinstance(phrase, str) or not phrase.strip():
            raise InvalidInputError(f"{name}[{index}] must be a non-empty string, got {phrase!r}")
        for character in phrase:
            if character not in allowed:
                raise InvalidInputError(
                    f"{name}[{index}] {phrase!r} has the character {character!r} the layout cannot type "
                    f"(it types {''.join(sorted(allowed))!r})"
                )
    return phrases
