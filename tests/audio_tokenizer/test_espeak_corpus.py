"""eSpeak NG synthesis, the generated sentences, the offline corpus and metadata.csv reading."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from audio_tokenizer import espeak
from audio_tokenizer.corpus import (
    InputError,
    make_corpus,
    make_sentences,
    number_to_words,
    read_metadata,
    year_to_words,
)
from llada_tts.synthesis.text import normalize_text

SHORT = "Good morning."
LONG = ("Good morning. The quick brown fox jumps over the lazy dog, and then it runs all the way "
        "back to the old farm house by the river before the sun goes down.")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# --- espeak ---------------------------------------------------------------------------------------

def test_speech_is_audible_float_at_native_rate():
    wave, sr = espeak.synthesize(LONG)
    assert sr == 22050
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert np.abs(wave).max() <= 1.0
    assert _rms(wave) > 0.02  # speech, not silence
    voiced = np.mean([_rms(w) > 0.01 for w in np.array_split(wave, len(wave) // 2205)])  # 100 ms windows
    assert voiced > 0.6


def test_duration_grows_with_text_and_shrinks_with_rate():
    short, sr = espeak.synthesize(SHORT)
    long, _ = espeak.synthesize(LONG)
    assert 0.3 < len(short) / sr < 2.0
    words_ratio = len(LONG.split()) / len(SHORT.split())  # 16x
    assert 0.4 * words_ratio < len(long) / len(short) < 1.5 * words_ratio
    slow, _ = espeak.synthesize(LONG, rate=120)
    fast, _ = espeak.synthesize(LONG, rate=300)
    assert len(fast) < 0.6 * len(slow)


def test_synthesis_is_deterministic_across_calls_and_voices():
    a, _ = espeak.synthesize(LONG, voice="en-us")
    espeak.synthesize(SHORT, voice="en-us+f3")  # must not leak state into the next call
    b, _ = espeak.synthesize(LONG, voice="en-us")
    assert np.array_equal(a, b)
    c, _ = espeak.synthesize(LONG, voice="en-gb")
    assert len(c) != len(a) or not np.array_equal(a, c)


def test_breathy_variant_is_deterministic_across_clock_seconds():
    a, _ = espeak.synthesize(SHORT, voice="en-us+f3")  # f3 mixes in noise that eSpeak seeds from time()
    time.sleep(1.1)
    b, _ = espeak.synthesize(SHORT, voice="en-us+f3")
    assert np.array_equal(a, b)


def test_language_names_and_variants_resolve():
    gb, _ = espeak.synthesize(SHORT, voice="en-gb")  # a language, not a voice file name
    en, _ = espeak.synthesize(SHORT, voice="en")
    assert np.array_equal(gb, en)  # en-gb is served by the gmw/en voice
    f3, _ = espeak.synthesize(SHORT, voice="en-gb+f3")
    assert not np.array_equal(gb[: len(f3)], f3[: len(gb)])
    assert "gmw/en-US" in espeak.list_voices()


@pytest.mark.parametrize("kwargs", [
    {"voice": "xx-nope"}, {"voice": "en-us+nope"}, {"rate": 10}, {"pitch": 101}, {"text": "   "},
])
def test_bad_requests_raise_value_error(kwargs):
    args = {"text": SHORT, **kwargs}
    with pytest.raises(ValueError):
        espeak.synthesize(args.pop("text"), **args)


# --- sentences ------------------------------------------------------------------------------------

def test_number_and_year_words_match_the_synthesis_front_end():
    assert number_to_words(0) == "zero"
    assert number_to_words(40) == "forty"
    assert number_to_words(305) == "three hundred five"
    assert number_to_words(2017) == "two thousand seventeen"
    assert number_to_words(21_400) == "twenty one thousand four hundred"
    assert [year_to_words(y) for y in (1953, 1905, 1900, 2005, 2024)] == [
        "nineteen fifty three", "nineteen oh five", "nineteen hundred", "two thousand five",
        "twenty twenty four"]
    # a transcript's numbers are spelled exactly as synthesis spells the digits
    for y in (1953, 1905, 1900, 2005, 2024):
        assert normalize_text(str(y)) == year_to_words(y)


def test_sentences_are_distinct_varied_and_seeded():
    s = make_sentences(300, seed=0)
    assert s == make_sentences(300, seed=0)
    assert s != make_sentences(300, seed=1)
    assert len(set(s)) == 300
    assert not any(re.search(r"\d", x) for x in s)  # numbers are spelled out
    assert sum(x.endswith("?") for x in s) > 20
    lengths = [len(x.split()) for x in s]
    assert min(lengths) <= 3 and max(lengths) >= 20
    assert all(x[0].isupper() and x[-1] in ".!?" for x in s)


# --- corpus ---------------------------------------------------------------------------------------

def test_corpus_layout_rate_and_holdout(tmp_path):
    out = make_corpus(tmp_path / "c", 5, voices=("en-us", "en-gb+f3"), rates=(160, 200), seed=3, holdout=4,
                      progress=False)
    lines = (out / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "file|text|voice"
    rows = [ln.split("|") for ln in lines[1:]]
    assert [r[0] for r in rows] == [f"utt_{i:05d}" for i in range(5)]
    assert [r[2] for r in rows] == ["en-us", "en-gb+f3", "en-us", "en-gb+f3", "en-us"]
    assert [r[1] for r in rows] == make_sentences(9, seed=3)[:5]
    held = (out / "heldout.txt").read_text(encoding="utf-8").splitlines()
    assert held == make_sentences(9, seed=3)[5:]
    for name, text, _ in rows:
        info = sf.info(out / "wavs" / f"{name}.wav")
        assert info.samplerate == 24000 and info.channels == 1
        assert 0.08 * len(text.split()) < info.duration < 1.0 * len(text.split()) + 1.0
        wave, _ = sf.read(out / "wavs" / f"{name}.wav", dtype="float32")
        assert _rms(wave) > 0.02


def test_corpus_is_byte_identical_for_a_seed(tmp_path):
    a = make_corpus(tmp_path / "a", 3, seed=7, progress=False)
    b = make_corpus(tmp_path / "b", 3, seed=7, progress=False)
    c = make_corpus(tmp_path / "c", 3, seed=8, progress=False)
    for name in ["metadata.csv", *(f"wavs/utt_{i:05d}.wav" for i in range(3))]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "metadata.csv").read_bytes() != (c / "metadata.csv").read_bytes()


def test_corpus_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        make_corpus(tmp_path, 1, progress=False)
    assert (tmp_path / "keep.txt").exists()


def test_corpus_cli(tmp_path):
    run = [sys.executable, "-m", "audio_tokenizer", "corpus"]
    ok = subprocess.run([*run, str(tmp_path / "c"), "--n", "2", "--seed", "1", "--holdout", "1"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert len((tmp_path / "c" / "metadata.csv").read_text().splitlines()) == 3
    bad = subprocess.run([*run, str(tmp_path / "d"), "--n", "2", "--voices", "xx-nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: unknown eSpeak voice")
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


# --- metadata.csv reading -------------------------------------------------------------------------

def _folder(tmp_path, text: str, wavs=("a", "b")):
    (tmp_path / "wavs").mkdir(parents=True, exist_ok=True)
    for w in wavs:
        (tmp_path / "wavs" / f"{w}.wav").write_bytes(b"")
    (tmp_path / "metadata.csv").write_text(text, encoding="utf-8")
    return tmp_path


def test_read_metadata_header_and_headerless_forms(tmp_path):
    with_header = read_metadata(_folder(tmp_path / "h", "file|text|voice\na|Hello there.|tara\nb|Bye.|\n"))
    assert [(u.source, u.text, u.voice, u.audio.name) for u in with_header] == [
        ("a", "Hello there.", "tara", "a.wav"), ("b", "Bye.", "", "b.wav")]
    two = read_metadata(_folder(tmp_path / "t", "wavs/a.wav|One.\nb|Two.\n"))
    assert [(u.source, u.text, u.audio.name) for u in two] == [("wavs/a.wav", "One.", "a.wav"), ("b", "Two.", "b.wav")]
    lj = read_metadata(_folder(tmp_path / "l", "a|Dr. Smith, 1|Doctor Smith, one\n"))
    assert (lj[0].text, lj[0].voice) == ("Doctor Smith, one", "")
    assert read_metadata(tmp_path / "l", text_column="raw_text")[0].text == "Dr. Smith, 1"


def test_read_metadata_problems(tmp_path):
    bad_line = read_metadata(_folder(tmp_path / "m", "file|text\na|ok\nb|too|many|fields\n"))
    assert bad_line[1].error == "malformed metadata: line 3 has 4 fields, expected 2"
    with pytest.raises(InputError, match="no column 'sentence'"):
        read_metadata(tmp_path / "m", text_column="sentence")
    with pytest.raises(InputError, match="no metadata.csv"):
        read_metadata(tmp_path / "m" / "wavs")
    with pytest.raises(InputError, match="does not exist"):
        read_metadata(tmp_path / "nope")
