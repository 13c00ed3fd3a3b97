"""Speech editing (``llada_tts.synthesis.edit``) and the sampler's partly given canvas (``sample(init=...)``),
on the tiny random model and codec: frames outside the spans stay token for token, span/frame
arithmetic at frame boundaries, resize arithmetic, clean errors and CLI exit codes."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from synthesis_fixtures import FAST, tiny_codec_dir, tiny_model_dir, tts  # noqa: F401  (fixtures)

from audio_tokenizer import layout as L
from llada_tts.cli import main
from llada_tts.sampling import SamplerConfig, sample
from llada_tts.synthesis import SynthesisError
from llada_tts.synthesis import edit as E
from llada_tts.synthesis.edit import Change, Region

SR, SPF, F = L.SAMPLE_RATE, L.SAMPLES_PER_FRAME, L.SLOTS_PER_FRAME
TEXT = "the cat sat on the mat"


def tone(seconds: float, seed: int = 0) -> np.ndarray:
    """A quiet tone plus noise: something the codec can encode (float32 [T] at 24 kHz)."""
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * noise).astype(np.float32)


def audio_ids(frames: int, start: int = 0) -> torch.Tensor:
    """[7 * frames] valid audio ids, distinct per frame (code = frame index + start)."""
    codes = torch.arange(start, start + frames).unsqueeze(1).expand(-1, F)  # [frames, 7]
    return (codes + L.AUDIO_OFFSET + L.CODEBOOK_SIZE * torch.arange(F)).reshape(-1)


# --- the sampler hook: sample(..., init=canvas) ----------------------------------------------------

def _config(**kw) -> SamplerConfig:
    return SamplerConfig(**{"audio": True, "gen_length": 28, "block_length": 14, "steps": 4, "temperature": 0.7, **kw})


def test_init_of_all_masks_is_the_plain_sampler(tts):
    prompt = tts.prompt("hi there")
    plain = sample(tts.model, [prompt], _config(), generator=torch.Generator().manual_seed(3))
    init = sample(tts.model, [prompt], _config(), generator=torch.Generator().manual_seed(3),
                  init=torch.full((28,), L.MASK_ID))
    assert torch.equal(plain.sequences, init.sequences) and plain.nfe == init.nfe


def test_init_keeps_given_ids_and_fills_every_mask(tts):
    given = torch.full((2, 28), L.MASK_ID)
    given[0, 7:14] = audio_ids(1, 5)  # frame 1 of row 0
    given[1, :7], given[1, 21:] = audio_ids(1, 9), audio_ids(1, 11)  # frames 0 and 3 of row 1
    out = sample(tts.model, [tts.prompt("a"), tts.prompt("a longer prompt")], _config(min_frames=4),
                 generator=torch.Generator().manual_seed(0), init=given)
    gen = out.generated.cpu()  # [2, 28]
    fixed = given != L.MASK_ID
    assert torch.equal(gen[fixed], given[fixed])
    assert not (gen == L.MASK_ID).any()
    assert all(L.validate_audio_tokens(row).frames_kept == 4 for row in gen)  # in band, no end (min_frames)


def test_blocks_with_nothing_masked_cost_no_forward_pass(tts):
    given = torch.full((28,), L.MASK_ID)
    given[:14] = audio_ids(2)  # block 0 given, block 1 masked
    out = sample(tts.model, [tts.prompt("a")], _config(), generator=torch.Generator().manual_seed(0), init=given)
    assert out.nfe == 2  # steps 4 over 2 blocks: only block 1's 2 steps run


def test_init_errors(tts):
    prompt = [tts.prompt("a")]
    with pytest.raises(ValueError, match=r"init must be \[28\]"):
        sample(tts.model, prompt, _config(), init=torch.full((21,), L.MASK_ID))
    with pytest.raises(ValueError, match="whole canvas up front"):
        sample(tts.model, prompt, _config(method="semi_autoregressive_origin"), init=torch.full((28,), L.MASK_ID))


# --- words and spans -------------------------------------------------------------------------------

def test_word_changes_substitute_insert_delete():
    assert E.word_changes(TEXT, "The dog sat on the mat.") == [Change(1, 2, ("cat",), ("dog",), 1)]
    assert E.word_changes(TEXT, "the cat sat quietly on the mat") == [Change(3, 3, (), ("quietly",), 3)]
    assert E.word_changes(TEXT, "the cat sat on mat") == [Change(4, 5, ("the",), (), 4)]
    assert E.word_changes("I have 84 cats", "I have cats") == [Change(2, 4, ("eighty", "four"), (), 2)]
    assert [c.kind for c in E.word_changes(TEXT, "a cat sat on the big mat")] == ["substitute", "insert"]
    assert E.word_changes(TEXT, "The cat, sat on the MAT!") == []


def test_spans_from_whisper_word_times():
    words = TEXT.split()
    heard = [(w, 0.5 * i, 0.5 * i + 0.4) for i, w in enumerate(words)]  # word i: [0.5 i, 0.5 i + 0.4]
    spans = E.spans_from_word_times(words, heard, E.word_changes(TEXT, "the dog sat on the mat"), 3.0)
    assert spans == [(0.5, 0.9)]  # "cat"
    insert = E.word_changes(TEXT, "the cat sat quietly on the mat")
    assert E.spans_from_word_times(words, heard, insert, 3.0) == [(1.4, 1.5)]  # the pause after "sat"
    misheard = [("bat", *heard[1][1:]) if w == "cat" else (w, s, e) for w, s, e in heard]
    assert E.spans_from_word_times(words, misheard, E.word_changes(TEXT, "the dog sat on the mat"), 3.0) == [(0.5, 0.9)]
    unheard = heard[:1] + heard[2:]  # "cat" not recognised: bounded by its neighbours
    assert E.spans_from_word_times(words, unheard, E.word_changes(TEXT, "the dog sat on the mat"), 3.0) == [(0.4, 1.0)]
    with pytest.raises(SynthesisError, match="does not match the transcript"):
        E.spans_from_word_times(words, [("hello", 0.0, 1.0)], E.word_changes(TEXT, "the dog sat"), 3.0)


def test_span_to_frame_mapping_at_frame_boundaries():
    b = SPF / SR  # one frame in seconds
    assert E.span_frames(b, 2 * b, 10) == (1, 2)  # exactly one frame
    assert E.span_frames(b, 2 * b + 1 / SR, 10) == (1, 3)  # one sample into frame 2
    assert E.span_frames(b - 1 / SR, 2 * b, 10) == (0, 2)  # one sample before frame 1
    assert E.span_frames(3 * b, 3 * b, 10) == (3, 3)  # empty, on a boundary: no frame
    assert E.span_frames(3 * b + 100 / SR, 3 * b + 100 / SR, 10) == (3, 4)  # empty inside frame 3
    assert E.span_frames(0.0, 100.0, 10) == (0, 10)  # clipped to the audio


def test_resize_arithmetic():
    assert E.speech_frames((), 14.0) == 0
    assert E.speech_frames(("elephant",), 14.0) == round(9 / 14 * L.FRAMES_PER_SECOND) == 8
    assert E.speech_frames(("a",), 1000.0) == 1  # at least one frame
    b = SPF / SR
    sub = E.span_region((b, 2 * b), Change(1, 2, ("cat",), ("elephant",)), 10, 2, 14.0)
    assert sub == Region(0, 4, 1 + 2 + 8, 8)  # left margin clipped to 1 frame, right 2, + 8 new
    ins = E.span_region((3 * b, 3 * b), Change(3, 3, (), ("elephant",)), 10, 1, 14.0)
    assert ins == Region(2, 4, 2 + 8, 8)  # empty span: the margins + the new words
    dele = E.span_region((4 * b, 7 * b), Change(3, 4, ("on",), ()), 10, 2, 14.0)
    assert dele == Region(2, 9, 4, 0)  # 3 frames gone, the 4 margin frames re-generated
    end = E.span_region((8 * b, 10 * b), Change(5, 6, ("mat",), ()), 10, 2, 14.0)
    assert end == Region(6, 10, 2, 0)  # right margin clipped at the end


def test_merge_regions():
    assert E.merge_regions([Region(13, 18, 6, 2), Region(8, 14, 7, 3)]) == [Region(8, 18, 12, 5)]  # 1 shared margin
    assert E.merge_regions([Region(0, 4, 5, 1), Region(4, 6, 3, 1)]) == [Region(0, 6, 8, 2)]  # touching
    assert E.merge_regions([Region(5, 6, 1, 1), Region(0, 2, 2, 2)]) == [Region(0, 2, 2, 2), Region(5, 6, 1, 1)]


def test_edit_canvas_layout():
    tokens = audio_ids(6)  # frames f0..f5
    canvas, origin, out = E.edit_canvas(tokens, [Region(1, 3, 1, 1), Region(4, 5, 3, 3)])
    frames = tokens.view(6, F)
    mask = torch.full((F,), L.MASK_ID)
    assert torch.equal(canvas.view(-1, F), torch.stack([frames[0], mask, frames[3], mask, mask, mask, frames[5]]))
    assert origin.tolist() == [0, -1, 3, -1, -1, -1, 5]
    assert out == [(1, 2), (3, 6)]


def test_parse_span():
    assert E.parse_span("1.2:1.55") == (1.2, 1.55)
    assert E.parse_span("2:2") == (2.0, 2.0)
    for bad in ("1.2", "a:b", "1:2:3", "2:1", "-1:1", "nan:1", "1:inf"):
        with pytest.raises(ValueError, match="span"):
            E.parse_span(bad)


# --- LladaTTS.edit end to end ------------------------------------------------------------------------

def test_edit_keeps_every_frame_outside_the_spans(tts):
    wave = tone(2.0)
    b = SPF / SR
    to = "the dog sat on the big mat"  # substitute "cat", insert "big"
    r = tts.edit(wave, SR, TEXT, to, spans=[(3 * b, 5 * b), (15 * b, 15 * b)], seed=1, margin=1, **FAST)
    src = tts.codec.encode(wave, SR).tokens()
    n = src.numel() // F
    assert torch.equal(r.source_tokens, src)
    speech = [E.speech_frames(("dog",), tts.chars_per_second), E.speech_frames(("big",), tts.chars_per_second)]
    assert r.regions == [Region(2, 6, 2 + speech[0], speech[0]), Region(14, 16, 2 + speech[1], speech[1])]
    m = n - 4 - 2 + sum(r.frames for r in r.regions)
    assert r.tokens.numel() == F * m and len(r.origin) == m
    out, inp = r.tokens.view(m, F), src.view(n, F)
    assert torch.equal(out[:2], inp[:2])  # before the first region
    a = 2 + r.regions[0].frames
    assert torch.equal(out[a : a + 8], inp[6:14])  # between the regions
    assert torch.equal(out[m - (n - 16):], inp[16:])  # after the last one
    assert r.kept_fraction == 1.0 and r.out_regions == [(2, a), (a + 8, a + 8 + r.regions[1].frames)]
    pad = n * SPF - len(wave)
    assert len(r.waveform) == m * SPF - pad and r.waveform.dtype == np.float32 and r.nfe > 0
    again = tts.edit(wave, SR, TEXT, to, spans=r.spans, seed=1, margin=1, **FAST)
    assert torch.equal(again.tokens, r.tokens)  # same seed, same edit


def test_insertion_and_deletion_lengths(tts):
    wave, b = tone(1.5), SPF / SR
    n = tts.codec.encode(wave, SR).frames
    ins = tts.edit(wave, SR, TEXT, "the cat sat quietly on the mat", spans=[(8 * b, 8 * b)], seed=0, **FAST)
    assert len(ins.origin) == n + E.speech_frames(("quietly",), tts.chars_per_second)  # margins keep their length
    dele = tts.edit(wave, SR, TEXT, "the cat sat on mat", spans=[(5 * b, 8 * b)], seed=0, margin=0, **FAST)
    assert len(dele.origin) == n - 3 and dele.nfe == 0 and dele.kept_fraction == 1.0  # nothing to generate


def test_spans_come_from_whisper_when_not_given(tts, monkeypatch):
    import audio_tokenizer.judge as judge

    monkeypatch.setattr(judge, "whisper_available", lambda: True)
    monkeypatch.setattr(E, "whisper_word_times", lambda wave: [(w, 0.2 * i, 0.2 * i + 0.15)
                                                               for i, w in enumerate(TEXT.split())])
    r = tts.edit(tone(1.5), SR, TEXT, "the dog sat on the mat", seed=0, **FAST)
    assert r.spans == [(0.2, 0.35)]
    monkeypatch.setattr(judge, "whisper_available", lambda: False)
    with pytest.raises(SynthesisError, match=r'no spans: give one --span START:END .*"cat" -> "dog"'):
        tts.edit(tone(1.5), SR, TEXT, "the dog sat on the mat", seed=0, **FAST)


@pytest.mark.parametrize("kwargs, match", [
    (dict(text=""), "no transcript"),
    (dict(text=None), "no transcript"),
    (dict(to="  "), "no target text"),
    (dict(to="The cat sat on the mat!"), "nothing to edit"),
    (dict(spans=[(0.1, 9.0)]), r"span 1 \(0.1:9 s\) is outside the audio \(0:1.500 s\)"),
    (dict(spans=[(0.1, 0.2), (0.3, 0.4)]), r"2 span\(s\) for 1 change\(s\)"),
    (dict(sample_rate=None), "input audio: an audio array needs its sample_rate"),
    (dict(max_duration=1.0), "longer than max_duration=1 s"),
    (dict(voice="carol"), "unknown voice 'carol'"),
    (dict(margin=-1), "margin must be"),
    (dict(method="semi_autoregressive_origin"), "needs method fixed_length or semi_autoregressive_padding"),
])
def test_edit_errors_are_one_line(tts, kwargs, match):
    args = dict(audio=tone(1.5), sample_rate=SR, text=TEXT, to="the dog sat on the mat", spans=[(0.1, 0.2)])
    args.update(kwargs)
    with pytest.raises(SynthesisError, match=match) as e:
        tts.edit(**args, seed=0, **FAST)
    assert "\n" not in str(e.value)


def test_unreadable_input_errors(tts, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(SynthesisError, match=r"input audio: .*bad.wav: cannot read audio"):
        tts.edit(bad, None, TEXT, "the dog sat on the mat", [(0.1, 0.2)])
    with pytest.raises(SynthesisError, match="input audio: .*audio file not found"):
        tts.edit(tmp_path / "missing.wav", None, TEXT, "the dog sat on the mat", [(0.1, 0.2)])


# --- CLI -----------------------------------------------------------------------------------------------

def _cli(tmp_path, tiny_model_dir, tiny_codec_dir, *extra):
    wav = tmp_path / "in.wav"
    sf.write(wav, tone(1.5), SR)
    return main(["edit", str(wav), "-o", str(tmp_path / "out.wav"), "--model", str(tiny_model_dir),
                 "--codec", str(tiny_codec_dir), "--device", "cpu", "--steps", "2", "--block-length", "28",
                 "--seed", "0", *extra])


def test_cli_edit_writes_the_file(tmp_path, tiny_model_dir, tiny_codec_dir, capsys):
    code = _cli(tmp_path, tiny_model_dir, tiny_codec_dir, "--text", TEXT, "--to", "the dog sat on the mat",
                "--span", "0.2:0.4")
    assert code == 0
    out = capsys.readouterr().out
    assert '"cat" -> "dog"' in out and "kept frames identical: 100.0%" in out
    info = sf.info(tmp_path / "out.wav")
    assert info.samplerate == SR and info.frames > 0


@pytest.mark.parametrize("extra, match", [
    (("--to", "the dog sat on the mat", "--span", "0.2:0.4"), "no transcript: give what IN.wav says with --text"),
    (("--text", TEXT, "--to", TEXT, "--span", "0.2:0.4"), "nothing to edit"),
    (("--text", TEXT, "--to", "the dog sat on the mat", "--span", "0.2:9"), "is outside the audio"),
])
def test_cli_edit_errors_exit_2(tmp_path, tiny_model_dir, tiny_codec_dir, capsys, extra, match):
    assert _cli(tmp_path, tiny_model_dir, tiny_codec_dir, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llada-tts edit: error: ") and match in err and len(err.splitlines()) == 1


def test_cli_malformed_span_is_a_usage_error(tmp_path, tiny_model_dir, tiny_codec_dir, capsys):
    with pytest.raises(SystemExit) as e:
        _cli(tmp_path, tiny_model_dir, tiny_codec_dir, "--text", TEXT, "--to", "a dog", "--span", "0.2-0.4")
    assert e.value.code == 2
    assert "a span is START:END in seconds" in capsys.readouterr().err
