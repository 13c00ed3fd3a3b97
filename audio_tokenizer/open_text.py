"""Open-vocabulary English sentences for eSpeak corpora, offline.

Words come from the word lists shipped in the ``wonderwords`` wheel (MIT): ~6,800 nouns, ~1,000
verbs and ~900 adjectives, with profanity removed. Every word is assigned to ``train`` or ``heldout``
by a stable hash (about 1 in 10 goes to ``heldout``): training sentences use only ``train`` words,
and every held-out sentence contains at least one ``heldout`` word, so an evaluation on held-out
sentences always includes words never spoken in training.

Everything is a pure function of (n, seed, split): the same arguments give the same sentences.
"""
from __future__ import annotations

import functools
import random
import re
import zlib
from importlib import resources

from audio_tokenizer.numbers import number_to_words

HELDOUT_ONE_IN = 10  # share of words reserved for held-out sentences
SPLITS = ("train", "heldout")
_PEOPLE = ("my sister", "the farmer", "our teacher", "a stranger", "the captain", "her uncle",
           "the old man", "my neighbour", "the doctor", "a young girl", "the driver", "his friend")
_TIMES = ("yesterday", "last week", "this morning", "on Sunday", "after dinner", "before noon",
          "every winter", "tomorrow", "at midnight", "in the spring")
_TEMPLATE_TEXT = ("the wants to said we should an why would anyone near there were things in and nobody "
                  "knew how them please before finds i never thought could be so tried with is really "
                  "more than will until her his left by",)


def _words(name: str) -> list[str]:
    text = resources.files("wonderwords").joinpath("assets", name).read_text(encoding="utf-8")
    return [w.strip() for w in text.splitlines() if w.strip()]


def _template_words() -> set[str]:
    return set(re.findall(r"[a-z]+", " ".join(_PEOPLE + _TIMES + _TEMPLATE_TEXT).lower()))


def is_heldout_word(word: str) -> bool:
    """True for the stable ~1/10 of the vocabulary that only held-out sentences may use (words the
    sentence templates themselves use are never held out)."""
    word = word.lower()
    return zlib.crc32(word.encode("utf-8")) % HELDOUT_ONE_IN == 0 and word not in _template_words()


@functools.cache
def vocabulary(split: str) -> dict[str, tuple[str, ...]]:
    """{'noun': ..., 'verb': ..., 'adj': ...} of plain lower-case words of ``split`` ('train'/'heldout')."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    bad = set(_words("profanitylist.txt"))
    out = {}
    for kind, name in (("noun", "nounlist.txt"), ("verb", "verblist.txt"), ("adj", "adjectivelist.txt")):
        words = [w for w in _words(name) if w.isalpha() and w.islower() and w not in bad]
        out[kind] = tuple(w for w in words if is_heldout_word(w) == (split == "heldout"))
    return out


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _sentence(rng: random.Random, v: dict[str, tuple[str, ...]]) -> str:
    n, vb, adj, c = (lambda: rng.choice(v["noun"])), (lambda: rng.choice(v["verb"])), \
        (lambda: rng.choice(v["adj"])), rng.choice
    templates = (
        lambda: f"The {adj()} {n()} wants to {vb()} the {n()} {c(_TIMES)}.",
        lambda: f"{c(_PEOPLE).capitalize()} said we should {vb()} {_a(adj())} {n()}.",
        lambda: f"Why would anyone {vb()} the {n()} near the {adj()} {n()}?",
        lambda: f"There were {number_to_words(rng.randint(2, 90))} {adj()} things in the {n()}, "
                f"and nobody knew how to {vb()} them.",
        lambda: f"Please {vb()} the {n()} before {c(_PEOPLE)} finds the {adj()} {n()}.",
        lambda: f"I never thought {_a(n())} could be so {adj()}.",
        lambda: f"{c(_TIMES).capitalize()}, {c(_PEOPLE)} tried to {vb()} {_a(n())} with {_a(n())}.",
        lambda: f"Is the {n()} really more {adj()} than the {n()}?",
        lambda: f"We will {vb()} and {vb()} until the {n()} is {adj()}!",
        lambda: f"Her {adj()} {n()} and his {adj()} {n()} were left by the {n()}.",
    )
    return c(templates)()


def make_open_sentences(n: int, seed: int = 0, split: str = "train") -> list[str]:
    """``n`` distinct sentences of ``split``: 'train' uses only train words; 'heldout' sentences each
    contain at least one held-out word (and may mix in train words)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"open-{split}-{seed}")
    train = vocabulary("train")
    if split == "heldout":
        held = vocabulary("heldout")
        mixed = {k: train[k] + held[k] * 3 for k in train}  # held-out words ~1/4 of the draws
    seen, out = set(), []
    for _ in range(100 * n + 1000):
        if len(out) == n:
            return out
        s = _sentence(rng, train if split == "train" else mixed)
        if split == "heldout" and not heldout_words_in(s):
            continue
        if s not in seen:
            seen.add(s)
            out.append(s)
    raise ValueError(f"could not make {n} distinct sentences; ask for fewer")


@functools.cache
def _heldout_set() -> frozenset[str]:
    return frozenset(w for words in vocabulary("heldout").values() for w in words)


def heldout_words_in(sentence: str) -> list[str]:
    """The held-out vocabulary words of ``sentence`` (never spoken in a 'train' corpus)."""
    return [w for w in re.findall(r"[a-z]+", sentence.lower()) if w in _heldout_set()]
