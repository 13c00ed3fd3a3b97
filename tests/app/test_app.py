"""The web demo's plain functions (no browser, no server): the UI callbacks (Speak, with and without a
reference voice; Edit) against a tiny real checkpoint + tiny random codec, the spectrogram images and
their highlighted spans, input validation, the Blocks layout, and the safe launch defaults."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llada_tts import app  # the demo's package (it imports gradio lazily)

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gr = pytest.importorskip("gradio")


ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app" / "app.py"  # the checkout's launcher of the demo


def make_checkpoint(root: Path, tokenizer, voices=("tara", "leo")) -> Path:
    """A tiny untrained llada-tts checkpoint (+ its tiny random codec recorded in llada_tts.json)."""
    from audio_tokenizer.codec import create_random_codec
    from llada_tts.checkpoint_meta import META_FILE, CheckpointMeta
    from llada_tts.model import create_model, save_model, tiny_config

    codec = create_random_codec(root / "codec", size="tiny")
    meta = CheckpointMeta(voices=list(voices), codec=str(codec))
    return save_model(create_model(tiny_config(), seed=0), root / "model", tokenizer=tokenizer,
                      extra_files={META_FILE: meta.to_json()})


@pytest.fixture(scope="module")
def tts(tmp_path_factory, offline_tokenizer):
    from llada_tts.synthesis.pipeline import LladaTTS

    return LladaTTS.from_pretrained(str(make_checkpoint(tmp_path_factory.mktemp("app"), offline_tokenizer)))


# --- the UI callback -------------------------------------------------------------------------------

def test_callback_returns_the_pipelines_audio_as_24k_int16_and_a_status_line(tts):
    (sr, wave), status = app.synthesize_for_ui(tts, "Hello there.", "tara", seed=3, steps=8)
    res = tts.synthesize("Hello there.", voice="tara", seed=3, steps=8)
    assert sr == 24000 == res.sample_rate
    assert wave.dtype == np.int16 and wave.shape == res.waveform.shape and len(wave) > 0
    np.testing.assert_array_equal(wave, app.to_int16(res.waveform))  # same seed: bit-identical audio
    assert f"{res.duration:.2f} s of audio in " in status
    assert re.search(r"RTF \d+\.\d\d", status)
    assert f"NFE {res.nfe}" in status and "valid frames 100.0%" in status and "seed 3" in status


def test_sampler_widgets_reach_the_sampler(tts):
    """fixed_length with 7 steps is 7 forward passes; CFG doubles them."""
    common = dict(seed=0, method="fixed_length", steps=7, threshold=0, temperature=0.0)
    _, status = app.synthesize_for_ui(tts, "Hi.", "tara", cfg_scale=0.0, **common)
    assert "NFE 7 " in status
    _, status = app.synthesize_for_ui(tts, "Hi.", "tara", cfg_scale=1.5, **common)
    assert "NFE 14 " in status


def test_fixed_duration_sets_the_audio_length(tts):
    """A duration of d seconds is a canvas of round(d * 24000 / 2048) frames (the tiny model fills it)."""
    for seconds, frames in ((1.0, 12), (2.0, 24)):
        (sr, wave), status = app.synthesize_for_ui(tts, "Hi.", "tara", seed=0, duration=seconds, speed=1.0,
                                                   method="fixed_length", steps=4)
        assert len(wave) == frames * 2048
        assert f"{frames * 2048 / 24000:.2f} s of audio" in status


def test_random_seed_is_reported_and_replays(tts):
    (_, wave), status = app.synthesize_for_ui(tts, "Hi.", app.NO_VOICE, seed=-1, steps=4)
    seed = int(re.search(r"seed (\d+)", status).group(1))
    (_, again), _ = app.synthesize_for_ui(tts, "Hi.", app.NO_VOICE, seed=seed, steps=4)
    np.testing.assert_array_equal(wave, again)
    np.testing.assert_array_equal(wave, app.to_int16(tts.synthesize("Hi.", voice=None, seed=seed, steps=4).waveform))


@pytest.mark.parametrize("text, message", [
    ("", "Please type some text"),
    ("   \n\t ", "Please type some text"),
    ("x" * 11, "The text is 11 characters long; the limit is 10"),
])
def test_bad_text_is_a_message_not_a_traceback(tts, text, message):
    with pytest.raises(gr.Error, match=re.escape(message)) as err:
        app.synthesize_for_ui(tts, text, "tara", max_chars=10)
    assert err.value.print_exception is False


@pytest.mark.parametrize("kwargs, message", [
    (dict(block_length=10), "multiple of 7"),
    (dict(voice="nobody"), "unknown voice 'nobody'"),
    (dict(max_duration=0.5, text="A sentence far too long for half a second of audio."), "max_duration"),
    (dict(method="sideways"), "unknown method"),
])
def test_bad_settings_are_a_message(tts, kwargs, message):
    kwargs = {"text": "Hello.", "voice": "tara", "seed": 0, **kwargs}
    with pytest.raises(gr.Error, match=message):
        app.synthesize_for_ui(tts, kwargs.pop("text"), kwargs.pop("voice"), **kwargs)


def test_to_int16_clips_instead_of_normalising():
    got = app.to_int16(np.array([-2.0, -1.0, 0.0, 0.25, 0.5, 1.0, 3.0], dtype=np.float32))
    np.testing.assert_array_equal(got, [-32767, -32767, 0, 8192, 16384, 32767, 32767])
    assert got.dtype == np.int16


def test_sampler_options_map_widget_values():
    assert app.sampler_options(method="fixed_length", steps=0, block_length=56.0, threshold=0.0, cfg_scale=0.0,
                               temperature=0.5, remasking="random", use_cache=False) == dict(
        method="fixed_length", remasking="random", block_length=56, cfg_scale=0.0, temperature=0.5, use_cache=False)
    assert app.sampler_options(steps=12.0, threshold=0.9) == dict(steps=12, threshold=0.9)
    assert app.sampler_options(cache="dual") == dict(cache="dual") and app.sampler_options(cache="none") == {}


# --- voice continuation (Speak tab) ---------------------------------------------------------------

SR = 24000


def tone(seconds: float, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A tone plus a little noise as gradio's microphone/upload gives it: int16 PCM [T]."""
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return ((0.2 * np.sin(2 * np.pi * freq * t) + 0.02 * noise) * 32767).astype(np.int16)


def test_reference_voice_is_continued_with_the_pipelines_reference(tts):
    """The Speak tab's reference (gradio's (sample rate, int16 samples) + transcript) gives exactly
    ``synthesize(..., reference=tts.reference(...))``; the status line names the reference."""
    ref_wave = tone(1.5)
    (sr, wave), status = app.synthesize_for_ui(tts, "Hello there.", "tara", seed=5, steps=4,
                                               ref_audio=(SR, ref_wave), ref_text="The cat sat on the mat.")
    ref = tts.reference(ref_wave, "The cat sat on the mat.", sample_rate=SR)
    res = tts.synthesize("Hello there.", voice="tara", seed=5, steps=4, reference=ref)
    assert sr == 24000
    np.testing.assert_array_equal(wave, app.to_int16(res.waveform))
    plain = tts.synthesize("Hello there.", voice="tara", seed=5, steps=4)
    assert not np.array_equal(app.to_int16(plain.waveform), wave)  # the reference changed the canvas
    frames = -(-len(ref_wave) // 2048)  # 18 frames of 2048 samples
    assert f"continuing a {frames * 2048 / SR:.2f} s reference" in status and "seed 5" in status


@pytest.mark.parametrize("ref_audio, ref_text, message", [
    (None, "What it says.", "A reference transcript needs its recording"),
    ((SR, tone(1.0)), "   ", "Type what the reference recording says"),
    ((SR, np.zeros(SR, np.int16)), "Silence.", "reference audio is silent"),
    ((SR, tone(0.2)), "Short.", "reference audio is 0.20 s long; give at least 0.5 s"),
    ((0, tone(1.0)), "Bad rate.", "reference audio: an audio array needs its sample_rate"),
    ((SR, np.full(SR, np.nan, np.float32)), "Not a number.", "reference audio: audio has NaN"),
    ("/no/such/file.wav", "Missing.", "reference audio: "),
])
def test_bad_reference_is_one_message(tts, ref_audio, ref_text, message):
    with pytest.raises(gr.Error, match=re.escape(message)) as err:
        app.synthesize_for_ui(tts, "Hi.", "tara", seed=0, steps=4, ref_audio=ref_audio, ref_text=ref_text)
    assert err.value.title == "Check the reference" and err.value.print_exception is False


# --- the Edit tab ----------------------------------------------------------------------------------

def ruler_columns(image: np.ndarray) -> list[int]:
    """Columns of the ruler strip (the image's top row) painted in the highlight colour."""
    return [int(c) for c in np.flatnonzero((image[0] == app.HIGHLIGHT).all(axis=1))]


def columns_of(spans, hop: int) -> list[int]:
    """The image columns a list of (start, end) seconds covers, at ``hop`` samples per column."""
    out = []
    for a, b in spans:
        c0 = int(a * SR // hop)
        out += range(c0, max(c0 + 1, -(-round(b * SR) // hop)))
    return out


def test_edit_tab_keeps_the_length_arithmetic_and_highlights_the_edit_results_spans(tts):
    """Substitute one word at 0.3-0.5 s of a 1.5 s recording: input frames [1, 8) (the span's frames
    3..5 plus the 2-frame margins) are replaced; the output is as long as the input plus the
    frames added; the ruler strips highlight exactly ``spans_in`` (before) and ``spans_out`` (after)."""
    wave = tone(1.5)
    res, (sr, out), before, after, status = app.edit_for_ui(
        tts, (SR, wave), "The cat sat on the mat.", "The dog sat on the mat.", "0.3:0.5", "tara", seed=2, steps=4)
    assert sr == 24000 and out.dtype == np.int16
    np.testing.assert_array_equal(out, app.to_int16(res.waveform))
    assert [(r.lo, r.hi) for r in res.regions] == [(1, 8)]
    assert res.spans_in == [(2048 / SR, 8 * 2048 / SR)]
    added = res.regions[0].frames - 7
    assert len(out) == len(wave) + added * 2048  # the kept last frame keeps the input's exact end
    assert res.out_regions == [(1, 1 + res.regions[0].frames)]
    assert res.spans_out == [(2048 / SR, (1 + res.regions[0].frames) * 2048 / SR)]
    assert res.kept_fraction == 1.0
    hop = 240  # 100 columns per second (1.5 s: no need to widen)
    assert before.shape == (app.RULER_ROWS + 2 * app.MEL_BANDS + app.TICK_ROWS, -(-len(wave) // hop), 3)
    assert after.shape[1] == -(-len(out) // hop)
    assert ruler_columns(before) == list(range(8, 69)) == columns_of(res.spans_in, hop)  # 0.0853 s .. 0.6827 s
    assert ruler_columns(after) == columns_of(res.spans_out, hop)
    assert '"cat" -> "dog"' in status and "kept frames identical 100.0%" in status and "seed 2" in status
    assert "edited (before → after) 0.09–0.68 s → 0.09–" in status


def test_edit_tab_insertion_and_substitution_give_two_highlighted_spans(tts):
    wave = tone(2.0, seed=1)
    res, (_, out), before, after, _ = app.edit_for_ui(
        tts, (SR, wave), "The cat sat on the mat.", "The big cat sat on the rug.", "0.25:0.25, 1.5:1.8", "tara",
        seed=0, steps=4, margin=1)
    assert [c.kind for c in res.changes] == ["insert", "substitute"]
    assert len(res.spans_in) == len(res.spans_out) == 2
    assert len(out) == len(wave) + sum(r.frames - (r.hi - r.lo) for r in res.regions) * 2048
    hop = app.spectrogram_hop(max(len(wave), len(out)), SR)
    assert ruler_columns(before) == columns_of(res.spans_in, hop)
    assert ruler_columns(after) == columns_of(res.spans_out, hop)
    runs = np.split(np.array(ruler_columns(after)), np.flatnonzero(np.diff(ruler_columns(after)) > 1) + 1)
    assert len(runs) == 2  # two separate highlighted spans


def test_edit_tab_accepts_a_file_path(tts, tmp_path):
    import soundfile as sf

    path = tmp_path / "in.wav"
    sf.write(path, tone(1.5), SR, subtype="PCM_16")
    res, (_, out), _, _, _ = app.edit_for_ui(tts, str(path), "The cat sat.", "The dog sat.", "0.3:0.5", "tara", seed=1,
                                             steps=4)
    assert len(out) == 36000 + (res.regions[0].frames - (res.regions[0].hi - res.regions[0].lo)) * 2048


@pytest.mark.parametrize("kwargs, title, message", [
    (dict(audio=None), "Check the recording", "Upload (or record) the audio to edit."),
    (dict(text="  "), "Check the text", "Type what the recording says (its transcript)."),
    (dict(to=""), "Check the text", "Type what the recording should say."),
    (dict(text="A cat.", to="x" * 11, max_chars=10), "Check the text", "What it should say: The text is 11 characters"),
    (dict(spans="0.3-0.5"), "Check the edit", "Spans: a span is START:END in seconds (e.g. 1.2:1.55), got '0.3-0.5'"),
    (dict(spans="0.5:0.3"), "Check the edit", "Spans: a span needs 0 <= START <= END"),
    (dict(spans="0.3:0.5, 1:1.2"), "Check the edit", "2 span(s) for 1 change(s) (\"cat\" -> \"dog\")"),
    (dict(spans="1.2:3.0"), "Check the edit", "span 1 (1.2:3 s) is outside the audio (0:1.500 s)"),
    (dict(to="The cat sat on the mat!"), "Check the edit", "the transcript and the target have the same words"),
    (dict(voice="nobody"), "Check the edit", "unknown voice 'nobody'"),
    (dict(margin=-1), "Check the edit", "margin must be a whole number of frames >= 0, got -1"),
    (dict(max_duration=1.0), "Check the edit", "the input audio is 1.5 s, longer than max_duration=1 s"),
    (dict(steps=1e9), "Check the edit", "steps must be at most"),
])
def test_bad_edit_input_is_one_message(tts, kwargs, title, message):
    args = {**dict(audio=(SR, tone(1.5)), text="The cat sat on the mat.", to="The dog sat on the mat.",
                   spans="0.3:0.5", voice="tara", seed=0), **kwargs}
    with pytest.raises(gr.Error) as err:
        app.edit_for_ui(tts, args.pop("audio"), args.pop("text"), args.pop("to"), args.pop("spans"), args.pop("voice"),
                        **args)
    assert (err.value.title, err.value.print_exception) == (title, False)
    assert message in err.value.message, err.value.message


def test_edit_without_spans_or_whisper_asks_for_the_spans(tts, monkeypatch):
    import audio_tokenizer.judge

    monkeypatch.setattr(audio_tokenizer.judge, "whisper_available", lambda: False)
    with pytest.raises(gr.Error) as err:
        app.edit_for_ui(tts, (SR, tone(1.5)), "The cat sat on the mat.", "A cat sat on a rug.", "", "tara")
    assert err.value.title == "Check the edit"
    assert err.value.message.startswith('Give the spans: one START:END in seconds per change, in order (2: "the" -> '
                                        '"a", "the mat" -> "a rug"), e.g. 1.2:1.55')


def test_parse_spans():
    assert app.parse_spans("1.2:1.55, 2.0:2.0") == [(1.2, 1.55), (2.0, 2.0)]
    assert app.parse_spans(" 0:1;2:3  4:5 ") == [(0.0, 1.0), (2.0, 3.0), (4.0, 5.0)]
    assert app.parse_spans("") is None and app.parse_spans(None) is None and app.parse_spans(" , ") is None
    for bad in ("1.2", "a:b", "1:2:3", "nan:1", "-1:2", "inf:inf"):
        with pytest.raises(ValueError, match="a span"):
            app.parse_spans(bad)


# --- spectrograms ----------------------------------------------------------------------------------

def test_spectrogram_image_shape_orientation_ticks_and_spans():
    hop = app.spectrogram_hop(SR * 3, SR)
    assert hop == 240 and app.spectrogram_hop(SR * 60, SR) == 600  # 60 s: at most 2400 columns
    low, high = app.spectrogram_image(tone(3.0, 200.0), SR), app.spectrogram_image(tone(3.0, 4000.0), SR)
    assert low.shape == high.shape == (app.RULER_ROWS + 2 * app.MEL_BANDS + app.TICK_ROWS, 300, 3)
    assert low.dtype == np.uint8
    body = slice(app.RULER_ROWS, app.RULER_ROWS + 2 * app.MEL_BANDS)

    def loudest_row(img):
        return int(np.argmax(img[body].astype(int).sum(axis=(1, 2))))

    assert loudest_row(high) < loudest_row(low)  # high frequencies nearer the top
    assert ruler_columns(low) == []  # no spans: nothing highlighted
    ticks = low[-1]  # bottom row: a long tick every 5 s, short ones every second only in the upper tick rows
    assert [int(c) for c in np.flatnonzero((ticks == app.TICK).all(axis=1))] == [0]
    assert [int(c) for c in np.flatnonzero((low[-app.TICK_ROWS] == app.TICK).all(axis=1))] == [0, 100, 200]
    marked = app.spectrogram_image(tone(3.0), SR, [(0.5, 1.0), (2.0, 2.0)])
    assert ruler_columns(marked) == list(range(50, 100)) + [200]  # an empty span is a one-column mark
    np.testing.assert_array_equal(marked[body, 50], np.tile(app.HIGHLIGHT, (2 * app.MEL_BANDS, 1)))  # span border
    same = app.spectrogram_image(app.to_int16(tone(3.0) / 32767.0), SR)  # int16 input: scaled as PCM
    assert same.shape == low.shape
    silent = app.spectrogram_image(np.zeros(SR, np.float32), SR)  # silence renders (flat), no error
    assert silent.shape[1] == 100


# --- the page ----------------------------------------------------------------------------------

def test_demo_layout(tts):
    demo = app.build_demo(tts, max_chars=123, examples=["One.", "Two."])
    props = {c["props"].get("elem_id"): c["props"] for c in demo.config["components"] if c["props"].get("elem_id")}
    assert props["text"]["max_length"] == 123
    assert [v for v, _ in props["voice"]["choices"]] == [app.NO_VOICE, "tara", "leo"]
    assert props["voice"]["value"] == "tara"
    assert props["audio"]["format"] == "wav"
    assert [v for v, _ in props["cache"]["choices"]] == ["none", "prefix", "dual"] and props["cache"]["value"] == "none"
    apis = [d["api_name"] for d in demo.config["dependencies"]]
    assert "synthesize" in apis and "edit" in apis
    for key in ("spectrogram", "edit_before", "edit_after"):
        assert props[key]["format"] == "png"  # lossless: the highlight keeps its colour
    for key in ("ref_audio", "ref_text", "edit_audio", "edit_text", "edit_to", "edit_spans", "edit_margin",
                "edit_button", "edit_output", "edit_status"):
        assert key in props, key
    assert props["edit_margin"]["value"] == 2 and props["edit_text"]["max_length"] == 123
    assert [v for v, _ in props["edit_voice"]["choices"]] == [app.NO_VOICE, "tara", "leo"]
    tabs = [c["props"].get("label") for c in demo.config["components"] if c.get("type") == "tabitem"]
    assert tabs == ["Speak", "Edit"]


def test_page_callbacks_return_audio_and_spectrograms(tts):
    """The functions behind the buttons, as gradio calls them: Speak returns (audio, status,
    spectrogram); Edit returns (audio, before, after, status)."""
    demo = app.build_demo(tts, examples=[])
    fns = {d["api_name"]: demo.fns[i].fn for i, d in enumerate(demo.config["dependencies"]) if d["api_name"]}
    (sr, wave), status, image = fns["synthesize"]("Hi there.", "tara", 3, None, "", "fixed_length", "low_confidence",
                                                  "none", 4, 28, 0.0, 0.0, 0.7, 0, 1.0,
                                                  progress=lambda *a, **k: None)
    assert sr == 24000 and "seed 3" in status and image.shape[1] == -(-len(wave) // 240)
    out, before, after, line = fns["edit"]((SR, tone(1.5)), "The cat sat.", "The dog sat.", "0.3:0.5", 2, "tara", 1, 4)
    assert out[0] == 24000 and len(out[1]) > 0 and before.shape[1] == 150 and "kept frames identical" in line
    assert ruler_columns(before) == list(range(8, 69))


# --- options and launch --------------------------------------------------------------------------

def test_defaults_bind_localhost_without_share():
    args = app.build_parser().parse_args(["--model", "m"])
    kw = app.launch_kwargs(args)
    assert (kw["server_name"], kw["server_port"], kw["share"]) == ("127.0.0.1", 7860, False)
    assert kw["max_file_size"] == "50mb"  # uploads (recordings to edit, references) are capped
    assert app.queue_kwargs(args) == dict(default_concurrency_limit=1, max_size=20)
    args = app.build_parser().parse_args(["--model", "m", "--host", "0.0.0.0", "--port", "8000", "--share",
                                          "--concurrency", "3", "--max-queue", "5"])
    kw = app.launch_kwargs(args)
    assert (kw["server_name"], kw["server_port"], kw["share"]) == ("0.0.0.0", 8000, True)
    assert app.queue_kwargs(args) == dict(default_concurrency_limit=3, max_size=5)


@pytest.mark.parametrize("argv, message", [
    (["--port", "70000"], "--port: must be in 1..65535"),
    (["--max-chars", "0"], "--max-chars: must be >= 1"),
    (["--concurrency", "x"], "--concurrency: expected an integer"),
    (["--max-duration", "0"], "--max-duration: must be a finite number > 0"),
    (["--device", "tpu"], "--device: invalid choice"),
])
def test_bad_options_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        app.main(["--model", "m", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    assert app.main(["--model", str(tmp_path / "missing"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: model: no checkpoint folder at {tmp_path / 'missing'} (it does not exist)"
    assert not any("Traceback" in line for line in err)


def test_script_help_runs_from_any_folder(tmp_path):
    out = subprocess.run([sys.executable, str(APP), "--help"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--host HOST" in out.stdout and "default 127.0.0.1" in out.stdout and "--share" in out.stdout


def test_cli_command_loads_the_app_lazily():
    """`llada-tts app` parses the demo's options without importing gradio or torch."""
    code = ("import sys, argparse; from llada_tts.commands import app as c; p = argparse.ArgumentParser(); "
            "c.add_arguments(p); a = p.parse_args(['--model', 'm']); "
            "assert (a.host, a.port, a.share) == ('127.0.0.1', 7860, False), a; "
            "assert c.demo.__name__ == 'llada_tts.app' and c.demo.run is not None; "
            "print(sorted(m for m in ('gradio', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_sliders_start_at_the_checkpoints_own_sampler_defaults(tts, monkeypatch):
    """A voice that records temperature / guidance / cache defaults (the demo voice: temperature 0.2, dual
    cache) gets them from the page too: the sliders always send their value, so a fixed 0.5 would
    override the voice, and the cache box shows what runs."""
    import dataclasses

    def sliders(demo):
        return {c["props"]["label"]: c["props"]["value"] for c in demo.config["components"]
                if c["props"].get("label") in ("Temperature", "CFG scale", "KV cache")}

    assert sliders(app.build_demo(tts, examples=[])) == {"Temperature": 0.5, "CFG scale": 0.0, "KV cache": "none"}
    monkeypatch.setattr(tts, "meta", dataclasses.replace(tts.meta, sampler={"temperature": 0.2, "cfg_scale": 1.0,
                                                                            "cache": "dual"}))
    assert sliders(app.build_demo(tts, examples=[])) == {"Temperature": 0.2, "CFG scale": 1.0, "KV cache": "dual"}
