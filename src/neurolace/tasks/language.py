"""The keyboard's language model: word completion, next-word prediction, next-letter odds.

Everything ships with the package; nothing is downloaded at run time.

* **Word frequencies** come from the `wordfreq` package (Speer 2022,
  doi:10.5281/zenodo.7199437; its English list blends subtitles, Wikipedia,
  books, news, web text, Reddit and Twitter), installed by the optional extra
  ``pip install 'neurolace[keyboard]'`` and imported only when a model is
  built. The vocabulary is the ``vocabulary_size`` most frequent words the
  keyboard can type (letters a-z only, so no "don't").
* **An n-gram** of words (bigram and trigram for the default
  ``ngram_order=3``) counted on text the project ships: the *train* split of
  the phrase set (:func:`neurolace.tasks.phrases.load_phrases`), or any
  ``corpus`` given. Each sentence is padded with the start token ``<s>``.

Scores use *stupid backoff* (Brants et al. 2007, EMNLP-CoNLL 858-867)::

    S(w | context) = count(context, w) / count(context)   if count(context, w) > 0
                   = BACKOFF * S(w | context minus its first word)   otherwise
    S(w)           = (1 - corpus_weight) * f_wordfreq(w) / sum(f_wordfreq)
                     + corpus_weight * count(w) / n_corpus_words

with ``BACKOFF = 0.4`` as in Brants et al. The scores rank candidates; they are
not normalised probabilities, except in :meth:`LanguageModel.char_probabilities`,
which normalises them over the next character.

>>> model = LanguageModel(vocabulary_size=5000)   # doctest: +SKIP
>>> model.completion("th", [], k=3)[0]            # doctest: +SKIP
'the'
"""

from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Any

import numpy as np

from neurolace.core.checks import check_int, check_nonnegative
from neurolace.core.errors import InvalidInputError, NeurolaceError
from neurolace.tasks.phrases import load_phrases

__all__ = ["BACKOFF", "LETTERS", "LanguageModel", "MissingDependencyError", "SENTENCE_START", "tokenize"]

#: The letters the language model's words are made of (what the keyboards type, besides space).
LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: Stupid-backoff factor (Brants et al. 2007).
BACKOFF = 0.4
#: The token that pads the start of every sentence in the n-gram's contexts.
SENTENCE_START = "<s>"
_WORD = re.compile(r"[a-z]+")


class MissingDependencyError(NeurolaceError, ImportError):
    """An optional dependency a feature needs is not installed (the message names the extra)."""


def tokenize(text: str) -> list[str]:
    """Lower-case words of letters a-z in ``text`` (anything else separates words)."""
    return _WORD.findall(text.lower())


@lru_cache(maxsize=1)
def _wordfreq_typable() -> tuple[tuple[str, ...], np.ndarray]:
    """English words of letters a-z from wordfreq, most frequent first, and their frequencies."""
    try:
        import wordfreq
    except ImportError as error:
        raise MissingDependencyError(
            "the keyboard's language model needs the wordfreq package: pip install 'neurolace[keyboard]'"
        ) from error
    frequencies = wordfreq.get_frequency_dict("en")
    typable = ((f, w) for w, f in frequencies.items() if _WORD.fullmatch(w))
    pairs = sorted(typable, key=lambda pair: (-pair[0], pair[1]))
    return tuple(w for _, w in pairs), np.array([f for f, _ in pairs], dtype=np.float64)


class LanguageModel:
    """Word completion and next-word prediction from wordfreq frequencies and a shipped n-gram.

    Parameters
    ----------
    vocabulary_size : int, default 20000
        The most frequent wordfreq words kept (>= 1); words of the corpus are added to them.
    ngram_order : int, default 3
        1 is unigram only (no context), 2 a bigram, 3 a trigram (at most 5).
    corpus : list of str, optional
        Sentences the n-gram is counted on; by default the phrase set's train split.
    corpus_weight : float, default 0.2
        Weight of the corpus's own word counts in the unigram score, in [0, 1].

    Raises
    ------
    MissingDependencyError
        wordfreq is not installed (``pip install 'neurolace[keyboard]'``).

    Examples
    --------
    >>> model = LanguageModel()                       # doctest: +SKIP
    >>> "you" in model.next_words(["thank"], k=3)     # doctest: +SKIP
    True
    """

    def __init__(
        self,
        *,
        vocabulary_size: int = 20000,
        ngram_order: int = 3,
        corpus: list[str] | None = None,
        corpus_weight: float = 0.2,
    ) -> None:
        self.vocabulary_size = check_int(vocabulary_size, "vocabulary_size", minimum=1)
        self.ngram_order = check_int(ngram_order, "ngram_order", minimum=1, maximum=5)
        self.corpus_weight = check_nonnegative(corpus_weight, "corpus_weight")
        if self.corpus_weight > 1:
            raise InvalidInputError(f"corpus_weight must be in [0, 1], got {self.corpus_weight}")
        sentences = load_phrases("train") if corpus is None else _check_corpus(corpus)
        self.corpus = None if corpus is None else list(sentences)
        words, frequencies = _wordfreq_typable()
        self._build(words[: self.vocabulary_size], frequencies[: self.vocabulary_size], sentences)

    def _build(self, words: tuple[str, ...], frequencies: np.ndarray, sentences: list[str]) -> None:
        tokenized = [tokenize(s) for s in sentences]
        unigram_counts = Counter(w for sentence in tokenized for w in sentence)
        vocabulary = sorted(set(words) | set(unigram_counts))
        self._words = vocabulary  # alphabetical: a prefix is one contiguous range
        self._index = {w: i for i, w in enumerate(vocabulary)}
        wordfreq_part = np.zeros(len(vocabulary))
        wordfreq_part[[self._index[w] for w in words]] = frequencies / frequencies.sum()
        corpus_part = np.zeros(len(vocabulary))
        n_corpus = sum(unigram_counts.values())
        if n_corpus:
            for word, count in unigram_counts.items():
                corpus_part[self._index[word]] = count / n_corpus
        self._unigram = (1.0 - self.corpus_weight) * wordfreq_part + self.corpus_weight * corpus_part
        # letter codes of each word (0-25, then 26 = the word has ended): the next key after a prefix
        longest = max(len(w) for w in vocabulary)
        self._codes = np.full((len(vocabulary), longest + 1), len(LETTERS), dtype=np.uint8)
        for index, word in enumerate(vocabulary):
            self._codes[index, : len(word)] = np.frombuffer(word.encode("ascii"), dtype=np.uint8) - ord("a")
        # continuations[context] = Counter of next words, contexts of 1 .. ngram_order - 1 words
        continuations: dict[tuple[str, ...], Counter] = defaultdict(Counter)
        pad = [SENTENCE_START] * (self.ngram_order - 1)
        for sentence in tokenized:
            padded = pad + sentence
            for position in range(len(pad), len(padded)):
                for length in range(1, self.ngram_order):
                    continuations[tuple(padded[position - length:position])][padded[position]] += 1
        self._continuations = {
            context: (dict(counter), sum(counter.values())) for context, counter in continuations.items()
        }

    def __repr__(self) -> str:
        source = "phrase-set train split" if self.corpus is None else f"{len(self.corpus)} corpus sentences"
        return (f"LanguageModel(vocabulary={len(self._words)} words, ngram_order={self.ngram_order}, "
                f"n-gram from {source})")

    # ------------------------------------------------------------------------------------------
    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The model's words in alphabetical order."""
        return tuple(self._words)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word in self._index

    def _context(self, context_words: Any) -> tuple[str, ...]:
        if isinstance(context_words, str):
            context_words = tokenize(context_words)
        words = [] if context_words is None else [str(w).lower() for w in context_words]
        padded = [SENTENCE_START] * (self.ngram_order - 1) + words
        return tuple(padded[len(padded) - (self.ngram_order - 1):]) if self.ngram_order > 1 else ()

    def _scores(self, prefix: str, context_words: Any) -> tuple[int, np.ndarray]:
        """Stupid-backoff scores of the vocabulary words starting with ``prefix``.

        Returns the index of the first such word in :attr:`vocabulary` and the
        scores, shape (n_words_with_prefix,).
        """
        if not isinstance(prefix, str):
            raise InvalidInputError(f"prefix must be a string, got {type(prefix).__name__}")
        prefix = prefix.lower()
        if prefix and not _WORD.fullmatch(prefix):
            raise InvalidInputError(f"prefix must be letters a-z, got {prefix!r}")
        context = self._context(context_words)
        low = bisect.bisect_left(self._words, prefix)
        high = bisect.bisect_left(self._words, prefix + "{")  # "{" sorts right after "z"
        scores = BACKOFF ** (self.ngram_order - 1) * self._unigram[low:high]
        for length in range(1, self.ngram_order):  # longer contexts overwrite: the longest seen wins
            seen = self._continuations.get(context[len(context) - length:])
            if seen is None:
                continue
            counts, total = seen
            weight = BACKOFF ** (self.ngram_order - 1 - length) / total
            for word, count in counts.items():
                index = self._index[word]
                if low <= index < high:
                    scores[index - low] = weight * count
        return low, scores

    def completion(self, prefix: str, context_words: Any = (), k: int = 3) -> list[str]:
        """The ``k`` best words starting with ``prefix`` after ``context_words``.

        Parameters
        ----------
        prefix : str
            The letters of the current word typed so far ("" predicts the next word).
        context_words : sequence of str or str
            The words of the sentence before the current one (empty: its start).
        k : int, default 3
            How many words, >= 0.

        Returns
        -------
        words : list of str
            Best first (ties go to the more frequent word, then alphabetical order); fewer than
            ``k`` if fewer words have the prefix.
        """
        k = check_int(k, "k", minimum=0)
        low, scores = self._scores(prefix, context_words)
        frequency = self._unigram[low:low + scores.size]
        order = np.lexsort((-frequency, -scores))[:k]  # ties: the more frequent word, then alphabetical
        return [self._words[low + int(i)] for i in order]

    def next_words(self, context_words: Any = (), k: int = 3) -> list[str]:
        """The ``k`` most likely next words after ``context_words`` (``completion("", ...)``)."""
        return self.completion("", context_words, k)

    def char_probabilities(self, prefix: str, context_words: Any = ()) -> dict[str, float]:
        """How likely each key is next: the letters a-z and space, given the current word's ``prefix``.

        The score of every word that continues ``prefix`` goes to its next
        letter; the score of ``prefix`` itself as a whole word goes to space.
        Normalised to sum to 1 (uniform if no word has the prefix).

        Returns
        -------
        probabilities : dict
            ``{character: probability}`` over ``LETTERS`` and ``" "``.
        """
        low, scores = self._scores(prefix, context_words)
        characters = LETTERS + " "
        if scores.size == 0 or len(prefix) >= self._codes.shape[1]:
            totals = np.ones(len(characters))
        else:
            following = self._codes[low:low + scores.size, len(prefix)]
            totals = np.bincount(following, weights=scores, minlength=len(characters))
        if not totals.sum() > 0:
            totals = np.ones(len(characters))
        return {c: float(p) for c, p in zip(characters, totals / totals.sum())}


def _check_corpus(corpus: Any) -> list[str]:
    if isinstance(corpus, str) or not hasattr(corpus, "__iter__"):
        raise InvalidInputError(f"corpus must be a list of sentences, got {type(corpus).__name__}")
    sentences = list(corpus)
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise InvalidInputError(f"corpus[{index}] must be a string, got {type(sentence).__name__}")
    return sentences
