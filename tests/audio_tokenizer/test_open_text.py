"""Open-vocabulary corpus text: train sentences never use held-out words; held-out ones always do."""
from __future__ import annotations

import re

import pytest

from audio_tokenizer import open_text
from audio_tokenizer.corpus import corpus_sentences


def _words(sentences):
    return {w for s in sentences for w in re.findall(r"[a-z]+", s.lower())}


def test_heldout_sentences_hold_words_never_spoken_in_training():
    train = open_text.make_open_sentences(1500, seed=3)
    held = open_text.make_open_sentences(60, seed=3, split="heldout")
    seen = _words(train)
    assert len(seen) > 1500  # open vocabulary, not ~150 words
    assert not seen & set(open_text.heldout_words_in(" ".join(seen)))
    assert all(set(open_text.heldout_words_in(s)) - seen for s in held)


def test_sentences_are_deterministic_and_distinct():
    a = open_text.make_open_sentences(200, seed=5)
    assert a == open_text.make_open_sentences(200, seed=5)
    assert len(set(a)) == 200 and a != open_text.make_open_sentences(200, seed=6)


def test_corpus_sources():
    spoken, held = corpus_sentences(20, 5, 0, "open")
    assert len(spoken) == 20 and len(held) == 5 and all(open_text.heldout_words_in(s) for s in held)
    spoken, _ = corpus_sentences(10, 0, 0, "open-heldout")
    assert all(open_text.heldout_words_in(s) for s in spoken)
    with pytest.raises(ValueError, match="text must be one of"):
        corpus_sentences(1, 0, 0, "nope")
