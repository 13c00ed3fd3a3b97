"""The web demo's plain functions (no browser, no server): the UI callback against a tiny real
checkpoint + tiny random codec, input validation, the Blocks layout, and the safe launch defaults."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gr = pytest.importorskip("gradio")

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app" / "app.py"


def _load_app():
    spec = importlib.util.spec_from_file_location("llada_tts_app_under_test", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app = _load_app()


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
    assert "synthesize" in apis


# --- options and launch --------------------------------------------------------------------------

def test_defaults_bind_localhost_without_share():
    args = app.build_parser().parse_args(["--model", "m"])
    kw = app.launch_kwargs(args)
    assert (kw["server_name"], kw["server_port"], kw["share"]) == ("127.0.0.1", 7860, False)
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
    assert err[-1] == f"error: model: no checkpoint folder at {tmp_path / 'missing'}"
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
            "assert c.app_path().is_file(); "
            "print(sorted(m for m in ('gradio', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
