"""A small offline speech corpus: generated English sentences spoken by eSpeak NG.

Layout written by :func:`make_corpus` (LJSpeech/Piper-like, with a header naming the columns)::

    OUT/metadata.csv     file|text|voice          (header line, then one row per utterance)
    OUT/wavs/<file>.wav  24 kHz mono 16-bit PCM   (the file column has no extension, LJSpeech style)
    OUT/heldout.txt      one sentence per line, never spoken in the corpus (only if holdout > 0)
    OUT/corpus_info.json seed, voices, rates, counts, total seconds

Everything is a pure function of the arguments: the same seed gives byte-identical files.
:func:`read_metadata` reads this layout back, and LJSpeech/Piper folders too.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from audio_tokenizer import audio_io, espeak, open_text
from audio_tokenizer.errors import UserInputError
from audio_tokenizer.fileio import atomic_dir
from audio_tokenizer.numbers import number_to_words, year_to_words

DEFAULT_VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f2")
DEFAULT_RATES = (150, 175, 200)
METADATA_HEADER = "file|text|voice"
FILE_COLUMNS = ("file", "id", "path", "audio", "file_name", "filename", "wav")

_NAMES = ("Alice Bruno Clara Daniel Emma Felix Grace Henry Iris James Kate Leo Maria Nora Oscar Paul "
          "Rosa Sam Tara Victor").split()
_ADJS = ("quiet bright old tiny heavy gentle noisy golden narrow ancient careful sleepy clever "
         "distant warm muddy purple lucky strange busy").split()
_NOUNS = [(s, s + "s") for s in ("dog cat bird lamp river window garden bottle engine letter "
                                 "mountain ticket pencil basket candle bridge clock apple").split()]
_NOUNS += [("box", "boxes"), ("child", "children"), ("bus", "buses"), ("city", "cities")]
_PLACES = ("market station library kitchen harbour museum bakery village school office park "
           "hospital theatre airport farm").split()
_VERBS = ("found painted carried watched repaired followed opened sold borrowed cleaned "
          "noticed dropped").split()
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_FEELINGS = "happy tired surprised worried excited calm hungry".split()
_SHORT = ("Yes, of course.", "Not today.", "Thank you very much.", "Good morning!", "Wait a moment.",
          "Where are you going?", "That sounds wonderful.", "Please sit down.", "I am not sure.")


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _count(rng: random.Random, hi: int) -> tuple[str, int]:
    n = rng.choice((rng.randint(2, 12), rng.randint(13, 99), rng.randint(100, hi)))
    return number_to_words(n), n


def _clause(rng: random.Random) -> str:
    """One clause, without final punctuation."""
    c = rng.choice
    noun, plural = c(_NOUNS)
    kind = rng.randrange(6)
    if kind == 0:
        return f"the {c(_ADJS)} {noun} near the {c(_PLACES)} was {c(_ADJS)}"
    if kind == 1:
        words, n = _count(rng, 2500)
        return f"{c(_NAMES)} {c(_VERBS)} {words} {noun if n == 1 else plural} at the {c(_PLACES)} on {c(_DAYS)}"
    if kind == 2:
        return f"it takes about {_count(rng, 300)[0]} minutes to walk from the {c(_PLACES)} to the {c(_PLACES)}"
    if kind == 3:
        return f"{c(_NAMES)} felt {c(_FEELINGS)} when {_a(c(_ADJS))} {noun} appeared in the {c(_PLACES)}"
    if kind == 4:
        return (f"the train leaves at {number_to_words(rng.randint(1, 12))} o'clock "
                f"from platform {number_to_words(rng.randint(1, 20))}")
    return f"we {c(_VERBS)} {_a(c(_ADJS))} {noun} in {year_to_words(rng.randint(1900, 2030))}"


def make_sentence(rng: random.Random) -> str:
    """One varied English sentence (statement, question, exclamation, short or compound)."""
    kind = rng.random()
    if kind < 0.12:
        return rng.choice(_SHORT)
    if kind < 0.32:
        noun = rng.choice(_NOUNS)[0]
        return rng.choice((
            f"Did you see the {rng.choice(_ADJS)} {noun} at the {rng.choice(_PLACES)}?",
            f"Why is the {noun} so {rng.choice(_ADJS)} today?",
            f"How many {rng.choice(_NOUNS)[1]} did {rng.choice(_NAMES)} find on {rng.choice(_DAYS)}?",
            f"Could you ask {rng.choice(_NAMES)} to meet me by the {rng.choice(_PLACES)}?",
        ))
    first = _clause(rng)
    if kind < 0.65:
        sentence = first
    else:
        sentence = f"{first}, {rng.choice(('and', 'but', 'because', 'so'))} {_clause(rng)}"
    return sentence[0].upper() + sentence[1:] + rng.choice((".", ".", ".", "!"))


def make_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences, a pure function of (n, seed)."""
    rng, seen, out = random.Random(seed), set(), []
    for _ in range(100 * n + 1000):
        if len(out) == n:
            return out
        s = make_sentence(rng)
        if s not in seen:
            seen.add(s)
            out.append(s)
    raise ValueError(f"could not make {n} distinct sentences; ask for fewer")


TEXT_SOURCES = ("builtin", "open", "open-heldout")


def corpus_sentences(n: int, holdout: int, seed: int, text: str) -> tuple[list[str], list[str]]:
    """(spoken, held-out) sentences of a text source:

    - ``builtin``: the ~150-word generator above; held-out sentences are distinct but share words;
    - ``open``: open-vocabulary sentences (:mod:`audio_tokenizer.open_text`) of train words only;
      the held-out ones each contain a word no ``open`` corpus ever speaks;
    - ``open-heldout``: speaks held-out ``open`` sentences (audio for evaluating on unseen words).
    """
    if text == "builtin":
        texts = make_sentences(n + holdout, seed)
        return texts[:n], texts[n:]
    if text == "open":
        return open_text.make_open_sentences(n, seed, "train"), open_text.make_open_sentences(holdout, seed, "heldout")
    if text == "open-heldout":
        texts = open_text.make_open_sentences(n + holdout, seed, "heldout")
        return texts[:n], texts[n:]
    raise ValueError(f"text must be one of {TEXT_SOURCES}, got {text!r}")


def make_corpus(out_dir, n_sentences: int, voices=DEFAULT_VOICES, rates=DEFAULT_RATES, seed: int = 0,
                sample_rate: int = 24000, holdout: int = 0, overwrite: bool = False,
                progress: bool = True, text: str = "builtin") -> Path:
    """Speak ``n_sentences`` generated sentences into ``out_dir`` (see module doc); returns its path.

    Utterance i uses ``voices[i % len(voices)]`` and a seeded choice of ``rates``. ``holdout`` extra
    sentences, distinct from every spoken one, go to ``heldout.txt`` for evaluation. ``text`` picks
    the sentence source (:func:`corpus_sentences`).
    """
    out = Path(out_dir)
    if n_sentences < 1 or holdout < 0:
        raise ValueError(f"need n_sentences >= 1 and holdout >= 0, got {n_sentences}, {holdout}")
    if not voices or not rates:
        raise ValueError("need at least one voice and one rate")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} is not empty; choose a new directory or pass overwrite=True (--force)")
    spoken, held = corpus_sentences(n_sentences, holdout, seed, text)
    rng = random.Random(f"{seed}-rates")
    with atomic_dir(out) as tmp:
        (tmp / "wavs").mkdir()
        rows, seconds = [METADATA_HEADER], 0.0
        for i, text in enumerate(tqdm(spoken, desc="speaking", unit="utt", disable=not progress)):
            voice, rate = voices[i % len(voices)], rng.choice(rates)
            wave, sr = espeak.synthesize(text, voice=voice, rate=rate)
            wave = audio_io.resample(wave, sr, sample_rate)  # [T] float32
            name = f"utt_{i:05d}"
            audio_io.save_wav(tmp / "wavs" / f"{name}.wav", wave, sample_rate)
            rows.append(f"{name}|{text}|{voice}")
            seconds += len(wave) / sample_rate
        (tmp / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        if holdout:
            (tmp / "heldout.txt").write_text("\n".join(held) + "\n", encoding="utf-8")
        info = {"n_sentences": n_sentences, "holdout": holdout, "seed": seed, "text": text, "voices": list(voices),
                "rates": list(rates), "sample_rate": sample_rate, "total_seconds": round(seconds, 3)}
        (tmp / "corpus_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


class InputError(UserInputError):
    """The input as a whole is unusable (missing folder, metadata or column): the CLI exits 2."""


@dataclass
class Utterance:
    """One utterance to tokenise. audio: a file path, or a Hugging Face audio value (dict)."""

    source: str  # id reported in the output and in skipped.csv
    text: str
    voice: str
    audio: object
    error: str = ""  # set when the entry itself is malformed: it is skipped with this reason


def _audio_path(folder: Path, name: str) -> Path:
    """Resolve a metadata file entry: relative to the folder or to wavs/, ``.wav`` optional."""
    candidates = [folder / name, folder / "wavs" / name]
    if not name.lower().endswith(".wav"):
        candidates += [folder / f"{name}.wav", folder / "wavs" / f"{name}.wav"]
    return next((p for p in candidates if p.is_file()), candidates[-1])


def _outside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks and ``..`` resolved) lies outside the resolved folder ``root``."""
    try:
        path.resolve().relative_to(root)
        return False
    except ValueError:
        return True


def _read_lines(meta: Path) -> list[str]:
    """The lines of a UTF-8 metadata file; InputError naming the line of the first byte that is not UTF-8."""
    data = meta.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{meta} line {line} is not UTF-8 (byte 0x{data[e.start]:02x}); "
                         "save metadata.csv as UTF-8") from None
    return text.splitlines()


def read_metadata(folder, text_column: str = "text", voice_column: str = "voice",
                  allow_outside_paths: bool = False) -> list[Utterance]:
    """Utterances of a ``metadata.csv`` folder (``|``-separated, UTF-8).

    With a header line (first field one of FILE_COLUMNS, e.g. ``file|text|voice``) columns are taken
    by name. Without one: 2 fields = ``file|text``; 3 fields = LJSpeech ``file|raw_text|text`` (the
    normalised third column is "text"). A line with the wrong number of fields is kept as an
    utterance with ``error`` set, so it is skipped and reported rather than misread. So are a file
    entry that resolves outside ``folder`` (``../x.wav``, an absolute path, a symlink out) unless
    ``allow_outside_paths``, and a repeated id (the first occurrence is kept). A file that is not
    UTF-8 raises InputError naming the line.
    """
    folder = Path(folder)
    meta = folder / "metadata.csv"
    if not folder.exists():
        raise InputError(f"input {folder} does not exist")
    if not folder.is_dir():
        raise InputError(f"input {folder} is not a folder; pass the folder that holds metadata.csv")
    if not meta.is_file():
        raise InputError(f"no metadata.csv in {folder} (expected file|text lines) and not a saved dataset")
    numbered = [(n, ln) for n, ln in enumerate(_read_lines(meta), start=1) if ln.strip()]
    if not numbered:
        raise InputError(f"{meta} is empty")
    first = [c.strip() for c in numbered[0][1].split("|")]
    if first[0].lower() in FILE_COLUMNS:
        names, numbered = first, numbered[1:]
    elif len(first) in (2, 3):
        names = ["file", "text"] if len(first) == 2 else ["file", "raw_text", "text"]
    else:
        raise InputError(f"{meta} line {numbered[0][0]} has {len(first)} fields; expected file|text, LJSpeech "
                         "file|text|normalized_text, or a header line such as file|text|voice")
    if text_column not in names:
        raise InputError(f"{meta} has no column {text_column!r} (columns: {', '.join(names)}); "
                         "pass --text-column")
    root = folder.resolve()
    out, seen = [], {}
    for n, line in numbered:
        fields = line.split("|")
        if len(fields) != len(names):
            why = f"malformed metadata: line {n} has {len(fields)} fields, expected {len(names)}"
            out.append(Utterance(f"metadata.csv:{n}", "", "", None, error=why))
            continue
        row = dict(zip(names, fields))
        name = row[names[0]].strip()
        audio = _audio_path(folder, name)
        utt = Utterance(name, row[text_column], row.get(voice_column, "").strip() if voice_column else "", audio)
        if name in seen:
            utt.error = f"duplicate id: {name} already on metadata.csv line {seen[name]}"
        elif not allow_outside_paths and _outside(audio, root):
            utt.error = f"outside input folder: {name} resolves to {audio.resolve()} (pass --allow-outside-paths)"
        seen.setdefault(name, n)
        out.append(utt)
    return out
