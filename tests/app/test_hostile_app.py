"""Hostile values in the web demo, through its handlers (``synthesize_for_ui``, ``edit_for_ui``) and
its controls, called directly without a browser (issue 14, items 2 and 14; issue 17: the Edit tab's
spans, margins and recordings, the Speak tab's reference).

Every bad value is a ``gr.Error`` with one clear line (title "Check the settings"), never the
generic "Synthesis failed (...)". Huge steps / block lengths are sent with a text too long for
max_duration, so that an unfixed tree refuses them for the wrong reason instead of running them.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from llada_tts import app  # the demo's package (it imports gradio lazily)

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gr = pytest.importorskip("gradio")

LIMIT_60 = 4928  # the canvas limit of 60 s: 7 * ceil(60 * 24000 / 2048)
LIMIT_1 = 84
MAX_SEED = 2**64 - 1
TOO_LONG_FOR_1_S = "This sentence is far too long for one second of audio, by a wide margin."




@pytest.fixture(scope="module")
def tts(tmp_path_factory, offline_tokenizer):
    from audio_tokenizer.codec import create_random_codec
    from llada_tts.checkpoint_meta import META_FILE, CheckpointMeta
    from llada_tts.model import create_model, save_model, tiny_config
    from llada_tts.synthesis.pipeline import LladaTTS

    root = tmp_path_factory.mktemp("hostile_app")
    codec = create_random_codec(root / "codec", size="tiny")
    meta = CheckpointMeta(voices=["tara"], codec=str(codec))
    model = save_model(create_model(tiny_config(), seed=0), root / "model", tokenizer=offline_tokenizer,
                       extra_files={META_FILE: meta.to_json()})
    return LladaTTS.from_pretrained(str(model))


def ui_error(tts, text="Hi.", **kwargs) -> gr.Error:
    with pytest.raises(gr.Error) as info:
        app.synthesize_for_ui(tts, text, "tara", **kwargs)
    assert info.value.print_exception is False
    return info.value


@pytest.mark.parametrize("seed, shown", [(1e30, "1e+30"), (float("inf"), "inf"), (float("nan"), "nan"),
                                         (2.0**64, "1.84467e+19"), (1.5, "1.5")])
def test_seed_out_of_range_names_the_valid_range(tts, seed, shown):
    err = ui_error(tts, seed=seed)
    assert err.title == "Check the settings"
    assert err.message == (f"seed must be -1 (random) or a whole number from 0 to {MAX_SEED} (2**64 - 1), "
                           f"got {shown}")


def test_seed_values_at_the_edges_work(tts):
    assert app.seed_value(-1) is None and app.seed_value(-5.0) is None and app.seed_value(None) is None
    assert app.seed_value(0) == 0 and app.seed_value(7.0) == 7 and app.seed_value(MAX_SEED) == MAX_SEED
    _, status = app.synthesize_for_ui(tts, "Hi.", "tara", seed=MAX_SEED, steps=4)
    assert f"seed {MAX_SEED}" in status


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=1e9), f"steps must be at most {LIMIT_1} (the canvas tokens of max_duration=1 s): "
                      "a step commits at least one token, got 1000000000"),
    (dict(block_length=7e9), f"block_length must be at most {LIMIT_1} (the canvas tokens of max_duration=1 s), "
                             "got 7000000000"),
    (dict(steps=float("inf")), "steps must be an integer >= 1, got inf"),
    (dict(steps=float("nan")), "steps must be an integer >= 1, got nan"),
    (dict(block_length=float("inf")), "block_length must be a positive multiple of 7 tokens (whole SNAC frames), "
                                      "got inf"),
    (dict(cfg_scale=float("inf")), "cfg scale must be >= 0 (0 = no guidance; a finite number), got inf"),
    (dict(temperature=float("nan")), "temperature must be >= 0 (a finite number), got nan"),
])
def test_huge_or_non_finite_sampler_values_are_refused_with_the_cap(tts, kwargs, message):
    err = ui_error(tts, TOO_LONG_FOR_1_S, seed=0, max_duration=1.0, **kwargs)
    assert (err.title, err.message) == ("Check the settings", message)


@pytest.mark.parametrize("kwargs, message", [
    (dict(duration=float("inf")), "duration must be > 0 seconds (a finite number), got inf"),
    (dict(speed=float("inf")), "speed must be > 0 (a finite number), got inf"),
])
def test_non_finite_length_values_are_a_clear_message(tts, kwargs, message):
    err = ui_error(tts, seed=0, **kwargs)
    assert (err.title, err.message) == ("Check the settings", message)


def test_controls_carry_the_caps_and_gradio_enforces_them(tts):
    """A web client that skips the page's own limits is refused by gradio before the handler runs."""
    demo = app.build_demo(tts, max_duration=60.0, examples=[])
    blocks = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    steps, block, seed = blocks["steps"], blocks["block_length"], blocks["seed"]
    assert (steps.minimum, steps.maximum) == (0, LIMIT_60)
    assert (block.minimum, block.maximum) == (7, LIMIT_60)
    assert (seed.minimum, seed.maximum) == (-1, MAX_SEED)
    assert f"at most {LIMIT_60}" in steps.info and f"at most {LIMIT_60}" in block.info
    with pytest.raises(gr.Error, match=re.escape(f"Value 1000000000 is greater than maximum value {LIMIT_60}")):
        steps.preprocess(1_000_000_000)
    assert steps.preprocess(LIMIT_60) == LIMIT_60
    short = app.build_demo(tts, max_duration=1.0, examples=[])
    caps = {b.elem_id: b.maximum for b in short.blocks.values() if getattr(b, "elem_id", None) in ("steps",
                                                                                                  "block_length")}
    assert caps == {"steps": LIMIT_1, "block_length": LIMIT_1}


# --- the Edit tab and the reference voice (issue 17) -------------------------------------------------

SR = 24000


def _tone(seconds: float) -> tuple[int, np.ndarray]:
    t = np.arange(int(seconds * SR)) / SR
    return SR, (0.2 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)


def edit_error(tts, audio=None, spans="0.3:0.5", **kwargs) -> gr.Error:
    with pytest.raises(gr.Error) as info:
        app.edit_for_ui(tts, _tone(1.5) if audio is None else audio, "The cat sat on the mat.",
                        "The dog sat on the mat.", spans, "tara", **{"seed": 0, **kwargs})
    assert info.value.print_exception is False
    return info.value


@pytest.mark.parametrize("margin, message", [
    (1.5, "margin must be a whole number of frames >= 0, got 1.5"),
    (float("inf"), "margin must be a whole number of frames >= 0, got inf"),
    (float("nan"), "margin must be a whole number of frames >= 0, got nan"),
    ("2", "margin must be a whole number of frames >= 0, got '2'"),
])
def test_hostile_margins_are_a_clear_message(tts, margin, message):
    err = edit_error(tts, margin=margin)
    assert (err.title, err.message) == ("Check the edit", message)


@pytest.mark.parametrize("spans, message", [
    ("nan:1", "Spans: a span needs 0 <= START <= END (finite seconds), got 'nan:1'"),
    ("inf:inf", "Spans: a span needs 0 <= START <= END (finite seconds), got 'inf:inf'"),
    ("-1:0.5", "Spans: a span needs 0 <= START <= END (finite seconds), got '-1:0.5'"),
    ("1e308:1e309", "Spans: a span needs 0 <= START <= END (finite seconds), got '1e308:1e309'"),
    ("0.3:0.5 " * 10000, "10000 span(s) for 1 change(s)"),
    ("1e9:1e9", "span 1 (1e+09:1e+09 s) is outside the audio (0:1.500 s)"),
])
def test_hostile_spans_are_a_clear_message(tts, spans, message):
    err = edit_error(tts, spans=spans)
    assert err.title == "Check the edit" and err.message.startswith(message), err.message


@pytest.mark.parametrize("audio, message", [
    ((SR, np.zeros(0, "int16")), "input audio: expected non-empty audio samples"),
    ((SR, np.full(SR, float("nan"), "float32")), "input audio: audio has NaN or infinite samples"),
    ((-5, _tone(1.0)[1]), "input audio: an audio array needs its sample_rate (a positive integer), got -5"),
    ((SR, np.zeros((SR, 2, 2), "int16")), "input audio: expected non-empty audio samples [T] or [T, C]"),
    ((SR, _tone(61.0)[1]), "the input audio is 61.0 s, longer than max_duration=60 s"),
])
def test_hostile_recordings_are_a_clear_message(tts, audio, message):
    err = edit_error(tts, audio=audio)
    assert err.title == "Check the edit" and err.message.startswith(message), err.message


def test_hostile_reference_is_a_clear_message(tts):
    for ref_audio, message in (((SR, np.full(SR, np.inf, np.float32)), "reference audio: audio has NaN or infinite"),
                               ((SR, np.zeros((0, 2), np.int16)), "reference audio: expected non-empty audio samples"),
                               ((SR, np.zeros(SR, np.int16)), "reference audio is silent")):
        with pytest.raises(gr.Error) as info:
            app.synthesize_for_ui(tts, "Hi.", "tara", seed=0, ref_audio=ref_audio, ref_text="Something.")
        assert info.value.title == "Check the reference" and info.value.message.startswith(message), info.value.message
    with pytest.raises(gr.Error, match="The reference transcript is 11 characters long; the limit is 10"):
        app.synthesize_for_ui(tts, "Hi.", "tara", max_chars=10, ref_audio=_tone(1.0), ref_text="x" * 11)


def test_edit_controls_carry_caps(tts):
    demo = app.build_demo(tts, max_duration=60.0, examples=[])
    blocks = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert (blocks["edit_margin"].minimum, blocks["edit_margin"].maximum) == (0, 24)
    assert (blocks["edit_steps"].minimum, blocks["edit_steps"].maximum) == (0, LIMIT_60)
    assert (blocks["edit_seed"].minimum, blocks["edit_seed"].maximum) == (-1, MAX_SEED)
    with pytest.raises(gr.Error, match="greater than maximum value 24"):
        blocks["edit_margin"].preprocess(10**9)
