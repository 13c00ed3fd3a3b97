"""Text front end: exact normalisations, and splitting that never loses text."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llada_tts.synthesis.text import normalize_text, number_to_words, ordinal_to_words, split_text


@pytest.mark.parametrize("n,words", [
    (0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"), (100, "one hundred"),
    (1205, "one thousand two hundred five"), (1_000_000, "one million"),
    (2_000_017, "two million seventeen"),
])
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def test_ordinals():
    assert [ordinal_to_words(n) for n in (1, 2, 3, 5, 12, 20, 21, 100)] == [
        "first", "second", "third", "fifth", "twelfth", "twentieth", "twenty first", "one hundredth"]


@pytest.mark.parametrize("text,want", [
    ("It costs $3.50 today.", "It costs three dollars and fifty cents today."),
    ("25% off", "twenty five percent off"),
    ("in 1999 and 2024", "in nineteen ninety nine and twenty twenty four"),
    ("room 2005", "room two thousand five"),
    ("1,234 cats & dogs", "one thousand two hundred thirty four cats and dogs"),
    ("pi is 3.14", "pi is three point one four"),
    ("the 3rd day", "the third day"),
    ("  spaced \n out\t text ", "spaced out text"),
    ("wait\u2014what?", "wait, what?"),
])
def test_normalize_text(text, want):
    assert normalize_text(text) == want


def test_split_prefers_sentence_then_clause_then_comma():
    text = "Hello there. This is long, with commas; and clauses."
    assert split_text(text, 100) == [text]
    assert split_text(text, 30) == ["Hello there.", "This is long, with commas;", "and clauses."]
    assert split_text("a" * 25, 10) == ["a" * 10, "a" * 10, "a" * 5]
    with pytest.raises(ValueError):
        split_text("x", 0)


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.text(alphabet="abc.,;: ", min_size=1, max_size=12), min_size=1, max_size=30),
       budget=st.integers(1, 40))
def test_split_never_loses_text_and_respects_budget(words, budget):
    text = " ".join(words)
    chunks = split_text(text, budget)
    assert all(1 <= len(c) <= budget for c in chunks)
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")
