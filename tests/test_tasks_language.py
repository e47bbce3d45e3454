"""The keyboard's language model and the phrase set: known completions, the split, bad input."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.tasks import language
from neurolace.tasks.keyboard import LAYOUTS, LETTER_FREQUENCY_ORDER, KeyboardLayout, KeyboardTask
from neurolace.tasks.language import LanguageModel, MissingDependencyError, tokenize
from neurolace.tasks.phrases import check_phrases, load_phrases

try:
    import wordfreq  # noqa: F401
except ImportError as error:  # a missing test dependency is an error, never a skip
    raise ImportError("test_tasks_language.py needs wordfreq: pip install 'neurolace[keyboard]'") from error


@pytest.fixture(scope="module")
def model():
    return LanguageModel()


# the phrase set ---------------------------------------------------------------------------------
def test_phrase_set_size_split_and_alphabet():
    everything, train, test = load_phrases("all"), load_phrases("train"), load_phrases("test")
    assert len(everything) >= 200 and len(set(everything)) == len(everything)
    assert len(test) == len(everything) // 4 and len(train) + len(test) == len(everything)
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(everything)
    assert test == everything[3::4]
    for name in LAYOUTS:
        assert check_phrases(everything, KeyboardLayout.build(name).alphabet) == everything
    assert all(p == " ".join(p.split()) and p == p.lower() for p in everything)


def test_load_phrases_rejects_an_unknown_split():
    with pytest.raises(InvalidInputError, match="split must be one of 'all', 'train', 'test'; got 'dev'"):
        load_phrases("dev")


def test_letter_frequency_order_agrees_with_the_phrase_set():
    counts = Counter(c for p in load_phrases("all") for c in p if c != " ")
    phrase_order = "".join(c for c, _ in counts.most_common())
    assert set(phrase_order[:5]) <= set(LETTER_FREQUENCY_ORDER[:8])
    rare = {"j", "q", "x", "z"}
    assert set(LETTER_FREQUENCY_ORDER[-5:]) >= rare and set(phrase_order[-5:]) >= rare


# completions ------------------------------------------------------------------------------------
def test_th_completes_to_the_first(model):
    words = model.completion("th", [], k=3)
    assert words[0] == "the" and len(words) == 3 and all(w.startswith("th") for w in words)


def test_next_word_after_thank_is_you(model):
    assert "you" in model.next_words(["thank"], k=3)
    assert model.next_words("thank", k=1) == ["you"]  # a string context is tokenised


def test_context_changes_the_ranking_and_order_one_ignores_it(model):
    assert model.completion("y", ["thank"], k=1) == ["you"]
    unigram = LanguageModel(ngram_order=1)
    assert unigram.next_words(["thank"], k=5) == unigram.next_words([], k=5)
    assert model.next_words(["thank"], k=5) != model.next_words([], k=5)


def test_completion_sizes_and_empty_results(model):
    assert model.completion("the", [], k=0) == []
    assert len(model.completion("a", [], k=7)) == 7
    assert model.completion("qzxv", [], k=3) == []
    assert model.completion("TH", [], k=1) == ["the"]


def test_a_corpus_builds_the_ngram_and_adds_its_words():
    custom = LanguageModel(vocabulary_size=1000, corpus=["the purple zorblax sings", "a purple zorblax"])
    assert "zorblax" in custom and "zorblax" in custom.vocabulary
    assert custom.next_words(["purple"], k=1) == ["zorblax"]
    assert custom.completion("zo", ["purple"], k=1) == ["zorblax"]
    assert "2 corpus sentences" in repr(custom)


def test_the_default_ngram_is_the_train_split_only(model):
    train_only = LanguageModel(corpus=load_phrases("train"))
    with_test = LanguageModel(corpus=load_phrases("all"))
    contexts = [[], ["thank"], ["i", "would"], ["the", "package"], ["please"]]
    assert all(model.next_words(c, k=5) == train_only.next_words(c, k=5) for c in contexts)
    assert any(model.next_words(c, k=5) != with_test.next_words(c, k=5) for c in contexts)


def test_char_probabilities(model):
    after_th = model.char_probabilities("th", [])
    assert set(after_th) == set("abcdefghijklmnopqrstuvwxyz ") and abs(sum(after_th.values()) - 1) < 1e-12
    assert max(after_th, key=after_th.get) == "e"
    after_thank = model.char_probabilities("", ["thank"])
    assert max(after_thank, key=after_thank.get) == "y"
    the_word = model.char_probabilities("the", [])
    assert max(the_word, key=the_word.get) == " "  # "the" is most often a whole word
    nothing = model.char_probabilities("qzxv", [])
    assert len(set(nothing.values())) == 1  # uniform when no word has the prefix


def test_tokenize():
    assert tokenize("Don't stop, 2 Believing!") == ["don", "t", "stop", "believing"]


# bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("arguments", "message"), [
    ({"vocabulary_size": 0}, "vocabulary_size must be >= 1, got 0"),
    ({"ngram_order": 6}, "ngram_order must be <= 5, got 6"),
    ({"corpus": "one string"}, "corpus must be a list of sentences, got str"),
    ({"corpus": ["fine", 3]}, r"corpus\[1\] must be a string, got int"),
    ({"corpus_weight": 1.5}, r"corpus_weight must be in \[0, 1\], got 1.5"),
])
def test_bad_parameters(arguments, message):
    with pytest.raises(InvalidInputError, match=message):
        LanguageModel(**arguments)


def test_bad_prefix_and_k(model):
    with pytest.raises(InvalidInputError, match="prefix must be letters a-z, got 'th3'"):
        model.completion("th3", [])
    with pytest.raises(InvalidInputError, match="prefix must be a string, got int"):
        model.completion(3, [])
    with pytest.raises(InvalidInputError, match="k must be >= 0, got -1"):
        model.next_words([], k=-1)


def test_missing_wordfreq_is_a_clear_error_and_the_keyboard_still_works(monkeypatch):
    language._wordfreq_typable.cache_clear()
    monkeypatch.setitem(sys.modules, "wordfreq", None)  # import wordfreq now raises ImportError
    try:
        with pytest.raises(MissingDependencyError, match=r"pip install 'neurolace\[keyboard\]'"):
            LanguageModel()
        task = KeyboardTask(phrases=["ok"], seed=0)  # no prediction needs no wordfreq
        key = task.start(0.0, (0.5, 0.5))
        task.update(1.0, key.center_xy, True)
        assert task.typed_text == "o"
    finally:
        language._wordfreq_typable.cache_clear()


def test_importing_the_keyboard_does_not_import_wordfreq():
    code = ("import sys, neurolace.tasks.keyboard, neurolace.tasks.language, neurolace.tasks.phrases; "
            "assert 'wordfreq' not in sys.modules, 'nest the wordfreq import in the function that needs it'")
    subprocess.run([sys.executable, "-c", code], check=True)
