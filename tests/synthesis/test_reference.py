"""Voice continuation from a reference (``llada_tts.synthesis.reference``) on the tiny model and codec:
the prompt and canvas layout, the output holds only the new speech, trimming, clean errors, CLI."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from synthesis_fixtures import FAST, tiny_codec_dir, tiny_model_dir, tts  # noqa: F401  (fixtures)

from audio_tokenizer import layout as L
from llada_tts.cli import main
from llada_tts.synthesis import SynthesisError
from llada_tts.synthesis import reference as R

SR, F = L.SAMPLE_RATE, L.SLOTS_PER_FRAME
REF_TEXT = "The cat sat on the mat."


def tone(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def ref(tts):
    return tts.reference(tone(1.0), REF_TEXT, SR)


def test_reference_holds_the_codec_ids_and_normalised_transcript(tts, ref):
    assert torch.equal(ref.tokens, tts.codec.encode(tone(1.0), SR).tokens())
    assert ref.frames == 12 and ref.text == REF_TEXT and ref.note == ""  # ceil(24000 / 2048)
    assert tts.reference(tone(1.0), "It costs $5.", SR).text == "It costs five dollars."


def test_prompt_layout_with_a_reference(tts, ref):
    ids = R.reference_prompt(tts, ref, "Hello there.", "alice")
    assert ids == tts.prompt("The cat sat on the mat. Hello there.", "alice")
    assert "alice: The cat sat on the mat. Hello there." in tts.tokenizer.decode(ids)  # one voice prefix, ref first
    assert ids[0] == L.START_OF_HUMAN_ID and ids[-1] == L.START_OF_SPEECH_ID


def test_canvas_layout_with_a_reference(ref):
    init = R.reference_init(ref, 140)
    assert init.shape == (140,)
    assert torch.equal(init[: 7 * ref.frames], ref.tokens)
    assert (init[7 * ref.frames:] == L.MASK_ID).all()


def test_synthesis_continues_the_reference_and_returns_the_new_part_only(tts, ref, monkeypatch):
    calls = []
    real = R.sample

    def spy(model, prompts, config, **kw):
        out = real(model, prompts, config, **kw)
        calls.append((prompts, config, kw["init"].clone(), out))
        return out

    monkeypatch.setattr(R, "sample", spy)
    text = "Hello there. How are you today?"
    res = tts.synthesize(text, "bob", reference=ref, seed=0, max_chunk_chars=20, batch_size=2, **FAST)
    assert len(calls) == 1 and len(res.chunks) == 2
    prompts, config, init, out = calls[0]
    assert prompts == [tts.prompt(f"{REF_TEXT} {c.text}", "bob") for c in res.chunks]
    n = ref.tokens.numel()
    assert torch.equal(init[:n], ref.tokens) and (init[n:] == L.MASK_ID).all()
    assert all(torch.equal(row[:n].cpu(), ref.tokens) for row in out.generated)  # the reference stays
    new = max(p.frames for p in tts.prepare(text, max_chunk_chars=20).plans)
    assert config.min_frames == ref.frames and config.gen_length >= F * (ref.frames + new + 1)
    for c, row in zip(res.chunks, out.generated):  # each chunk's audio is the part after the reference
        assert c.frames == L.validate_audio_tokens(row[n:].cpu()).frames_kept
        assert c.canvas_frames == (config.gen_length - n) // F
    assert len(res.waveform) == sum(c.samples for c in res.chunks) - res.overlap
    again = tts.synthesize(text, "bob", reference=ref, seed=0, max_chunk_chars=20, batch_size=2, **FAST)
    assert np.array_equal(again.waveform, res.waveform)


def test_min_length_counts_from_the_end_of_the_reference(tts, ref, monkeypatch):
    configs = []
    real = R.sample
    monkeypatch.setattr(R, "sample", lambda *a, **kw: (configs.append(a[2]), real(*a, **kw))[1])
    tts.synthesize("Hello there.", reference=ref, seed=0, min_length=0.5, **FAST)
    new = tts.prepare("Hello there.").plans[0].frames
    assert configs[0].min_frames == ref.frames + new // 2


def test_long_reference_is_trimmed_at_a_pause_with_a_note(tts):
    wave = tone(20.0)
    wave[int(14.0 * SR): int(14.1 * SR)] = 0.0  # a pause before the 15 s limit
    text = " ".join(["alpha", "beta", "gamma", "delta", "epsilon"] * 8)  # 40 words
    with pytest.warns(UserWarning, match=r"reference is 20.0 s, longer than 15 s: using its first 14.0 s"):
        ref = tts.reference(wave, text, SR)
    assert "cut at a pause" in ref.note
    assert 14.0 <= ref.seconds <= 14.2
    kept = ref.text.split()
    assert kept == text.split()[: len(kept)] and abs(len(" ".join(kept)) - len(text) * 14.05 / 20) < 8


def test_trim_keeps_short_references_whole():
    wave = tone(3.0)
    out, text, note = R.trim_reference(wave, REF_TEXT, 15.0)
    assert out is wave and text == REF_TEXT and note == ""


@pytest.mark.parametrize("audio, sr, text, match", [
    (np.zeros(SR), SR, REF_TEXT, r"reference audio is silent \(-inf dBFS"),
    (tone(1.0) * 1e-4, SR, REF_TEXT, "reference audio is silent"),
    (tone(0.2), SR, REF_TEXT, "reference audio is 0.20 s long; give at least 0.5 s"),
    (tone(1.0), SR, "  ", "reference: no transcript"),
    (tone(1.0), None, REF_TEXT, "reference audio: an audio array needs its sample_rate"),
    (np.full(SR, np.nan, dtype=np.float32), SR, REF_TEXT, "reference audio: audio has NaN"),
    (np.zeros(0, dtype=np.float32), SR, REF_TEXT, "reference audio: expected non-empty audio"),
])
def test_bad_references_are_one_clear_error(tts, audio, sr, text, match):
    with pytest.raises(SynthesisError, match=match) as e:
        tts.reference(audio, text, sr)
    assert "\n" not in str(e.value)


def test_references_from_files_and_pcm(tts, tmp_path):
    path = tmp_path / "r.wav"
    sf.write(path, tone(1.0)[:16000], 16000)  # 1 s at 16 kHz, read and resampled to 24 kHz
    assert tts.reference(path, REF_TEXT).frames == 12
    pcm = (tone(1.0) * 32767).astype(np.int16)  # integer PCM, e.g. an upload
    assert tts.reference(pcm, REF_TEXT, SR).frames == 12
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    with pytest.raises(SynthesisError, match="reference audio: .*cannot read audio"):
        tts.reference(bad, REF_TEXT)
    with pytest.raises(SynthesisError, match="reference must be a Reference"):
        tts.synthesize("Hi.", reference="r.wav")


# --- CLI -----------------------------------------------------------------------------------------------

def _say(tmp_path, tiny_model_dir, tiny_codec_dir, *extra):
    return main(["say", "Hello there.", "-o", str(tmp_path / "out.wav"), "--model", str(tiny_model_dir),
                 "--codec", str(tiny_codec_dir), "--device", "cpu", "--steps", "2", "--block-length", "28",
                 "--seed", "0", "-q", *extra])


def test_cli_say_with_a_reference(tmp_path, tiny_model_dir, tiny_codec_dir):
    sf.write(tmp_path / "ref.wav", tone(1.0), SR)
    assert _say(tmp_path, tiny_model_dir, tiny_codec_dir, "--ref-audio", str(tmp_path / "ref.wav"),
                "--ref-text", REF_TEXT, "--voice", "alice") == 0
    assert sf.info(tmp_path / "out.wav").frames > 0


@pytest.mark.parametrize("extra, match", [
    (("--ref-audio", "REF"), "--ref-audio needs --ref-text"),
    (("--ref-text", REF_TEXT), "--ref-text needs --ref-audio"),
    (("--ref-audio", "REF", "--ref-text", REF_TEXT, "--stream"), "does not stream yet"),
    (("--ref-audio", "SILENT", "--ref-text", REF_TEXT), "reference audio is silent"),
    (("--ref-audio", "MISSING", "--ref-text", REF_TEXT), "audio file not found"),
])
def test_cli_reference_errors_exit_2(tmp_path, tiny_model_dir, tiny_codec_dir, capsys, extra, match):
    sf.write(tmp_path / "ref.wav", tone(1.0), SR)
    sf.write(tmp_path / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    names = {"REF": tmp_path / "ref.wav", "SILENT": tmp_path / "silent.wav", "MISSING": tmp_path / "none.wav"}
    assert _say(tmp_path, tiny_model_dir, tiny_codec_dir, *[str(names.get(a, a)) for a in extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llada-tts say: error: ") and match in err and len(err.splitlines()) == 1
