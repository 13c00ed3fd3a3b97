"""Hostile sampler options through `llada-tts say` and the Python API (issue 14, item 2 and 14).

Every sampler option has a documented maximum derived from the canvas (``synthesis.defaults``):
the canvas limit is 7 tokens per frame of ``max_duration`` (60 s -> 4928 tokens); steps and
block_length above it are refused before the model is loaded, and a chunk's steps are capped at its
own canvas tokens. Huge values are always sent with something that makes today's main fail cheaply
(a missing model, a tiny max_duration), so running this module against an unfixed tree cannot
exhaust the machine's memory.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from synthesis_fixtures import (  # noqa: F401  (fixtures)
    FAST,
    tiny_codec_dir,
    tiny_model_dir,
    tts,
)

from llada_tts.cli import main
from llada_tts.synthesis import SynthesisError

LIMIT_60 = 4928  # 7 * ceil(60 s * 24000 / 2048) = 7 * 704
LIMIT_1 = 84  # 7 * ceil(11.71875) = 7 * 12
MAX_SEED = 18446744073709551615  # 2**64 - 1
FAST_ARGS = ["--steps", FAST["steps"], "--block-length", FAST["block_length"]]


@pytest.fixture
def model_args(tiny_model_dir, tiny_codec_dir):
    return ["--model", str(tiny_model_dir), "--codec", str(tiny_codec_dir), "--device", "cpu"]


def say(capsys, *args):
    try:
        code = main(["say", *map(str, args)])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    return code, out, lines[-1] if lines else "", err


# --- the caps are values, defined once ----------------------------------------------------------

def test_canvas_limit_values():
    from llada_tts.synthesis import defaults

    assert defaults.canvas_limit(60.0) == LIMIT_60 == defaults.canvas_limit(defaults.DEFAULT_MAX_DURATION)
    assert defaults.canvas_limit(1.0) == LIMIT_1
    assert defaults.canvas_limit(None) is None  # max_duration=None (Python API only): no limit
    assert defaults.MAX_SEED == MAX_SEED


def test_say_help_documents_the_caps(capsys):
    code, out, _, _ = say(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert f"{LIMIT_60} for 60 s" in text  # --steps and --block-length
    assert "0 .. 2**64 - 1" in text  # --seed


# --- say: refused before the model is loaded, one line, exit 2 ------------------------------------

@pytest.mark.parametrize("flag, value, message", [
    ("--steps", 1_000_000_000, f"steps must be at most {LIMIT_60} (the canvas tokens of max_duration=60 s): "
                               "a step commits at least one token, got 1000000000"),
    ("--block-length", 7_000_000_000, f"block_length must be at most {LIMIT_60} (the canvas tokens of "
                                      "max_duration=60 s), got 7000000000"),
])
def test_say_refuses_huge_steps_and_block_length_before_loading(capsys, tmp_path, tiny_codec_dir, flag, value,
                                                                  message):
    """The model folder does not exist: the cap must fire first (the check runs before any loading)."""
    code, _, line, err = say(capsys, "Hi.", "-o", tmp_path / "o.wav", flag, value, "--model", tmp_path / "nockpt",
                             "--codec", tiny_codec_dir, "--device", "cpu")
    assert code == 2
    assert line == f"llada-tts say: error: {message}"
    assert "Traceback" not in err and not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--steps", 5000, f"steps must be at most {LIMIT_1} (the canvas tokens of max_duration=1 s): "
                      "a step commits at least one token, got 5000"),
    ("--block-length", 91, f"block_length must be at most {LIMIT_1} (the canvas tokens of max_duration=1 s), "
                           "got 91"),
])
def test_say_caps_follow_max_duration(capsys, tmp_path, model_args, flag, value, message):
    code, _, line, err = say(capsys, "Hi.", "-o", tmp_path / "o.wav", "--max-duration", 1, flag, value, *model_args)
    assert code == 2
    assert line == f"llada-tts say: error: {message}"
    assert not (tmp_path / "o.wav").exists()
    # at the cap itself the request is accepted
    ok = ["--steps", LIMIT_1] if flag == "--steps" else ["--block-length", LIMIT_1, "--steps", 1]
    code, _, line, err = say(capsys, "Hi.", "-o", tmp_path / "o.wav", "--max-duration", 1, "--seed", 0, "-q", *ok,
                             *model_args)
    assert code == 0, err
    assert (tmp_path / "o.wav").exists()


def test_say_caps_the_tokens_of_one_sampling_call(capsys, tmp_path, model_args):
    """5 one-block chunks of 84 tokens = 420 > 4 x 84: big blocks times many rows cannot add up."""
    from llada_tts.synthesis.defaults import batch_token_limit

    assert (batch_token_limit(60.0), batch_token_limit(1.0), batch_token_limit(None)) == (4 * LIMIT_60, 336, None)
    args = ["Hi. Bye. Ok. Yes. No.", "-o", tmp_path / "o.wav", "--max-duration", 1, "--max-chunk-chars", 4,
            "--block-length", LIMIT_1, "--steps", 1, "--seed", 0, "-q", *model_args]
    code, _, line, _ = say(capsys, *args, "--batch-size", 5)
    assert code == 2
    assert line == ("llada-tts say: error: batch_size=5 samples 5 chunks of 84 canvas tokens at once (420 tokens), "
                    "more than 336 (4 x the canvas tokens of max_duration=1 s); use batch_size <= 4 or a smaller "
                    "block_length")
    assert not (tmp_path / "o.wav").exists()
    code, _, _, err = say(capsys, *args, "--batch-size", 4)
    assert code == 0, err
    # classifier-free guidance doubles the rows of a call: 4 chunks x 2 passes x 84 > 336
    code, _, line, _ = say(capsys, *args, "--batch-size", 4, "--cfg", 1)
    assert code == 2
    assert line == ("llada-tts say: error: batch_size=4 samples 4 chunks of 84 canvas tokens at once (672 tokens "
                    "with the cfg pass), more than 336 (4 x the canvas tokens of max_duration=1 s); use "
                    "batch_size <= 2 or a smaller block_length")


def test_say_refuses_a_seed_beyond_2_to_the_64(capsys, tmp_path, model_args):
    code, _, line, _ = say(capsys, "Hi.", "-o", tmp_path / "o.wav", "--seed", MAX_SEED + 1, *model_args)
    assert code == 2
    assert line == ("llada-tts say: error: argument --seed: must be >= 0 and <= 18446744073709551615 (2**64 - 1), "
                    "got 18446744073709551616 (see llada-tts say --help)")
    code, _, _, err = say(capsys, "Hi.", "-o", tmp_path / "o.wav", "--seed", MAX_SEED, "-q", *FAST_ARGS, *model_args)
    assert code == 0, err  # the largest seed works


# --- the Python API: the same checks, whatever the front end ---------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=float("inf")), "steps must be an integer >= 1, got inf"),
    (dict(steps=float("nan")), "steps must be an integer >= 1, got nan"),
    (dict(steps=10**400), f"steps must be at most {LIMIT_60} .*got an integer of about 401 digits"),
    (dict(block_length=float("inf")), "block_length must be a positive multiple of 7 tokens .*got inf"),
    (dict(temperature=float("nan")), r"temperature must be >= 0 \(a finite number\), got nan"),
    (dict(temperature=float("inf")), r"temperature must be >= 0 \(a finite number\), got inf"),
    (dict(cfg_scale=float("inf")), r"cfg scale must be >= 0 \(0 = no guidance; a finite number\), got inf"),
    (dict(use_cache="yes"), "use_cache must be true or false, got 'yes'"),
    (dict(seed=2**64), r"seed must be an integer >= 0 and <= 18446744073709551615 \(2\*\*64 - 1\), "
                       "got 18446744073709551616"),
    (dict(seed=10**30), r"seed must be an integer >= 0 and <= 18446744073709551615"),
    (dict(duration=float("inf")), r"duration must be > 0 seconds \(a finite number\), got inf"),
    (dict(speed=float("inf")), r"speed must be > 0 \(a finite number\), got inf"),
    (dict(max_duration=float("inf")), "max_duration must be a finite number of seconds > 0, got inf"),
    (dict(max_duration=1.0, steps=5000), f"steps must be at most {LIMIT_1} "),
])
def test_api_refuses_hostile_values_in_one_line(tts, kwargs, message):
    with pytest.raises(SynthesisError, match=message) as info:
        tts.synthesize("Hi.", voice="alice", **kwargs)
    assert "\n" not in str(info.value)


def test_a_chunks_steps_are_capped_at_its_canvas_tokens(tts):
    """More steps than canvas tokens cannot change the result (a step commits >= 1 token): the
    config says so, and the audio is the same as at the cap."""
    from llada_tts.synthesis.plan import sampler_config

    c = sampler_config(13, {"block_length": 28, "steps": 4000})  # 16 frames = 112 tokens
    assert (c.gen_length, c.steps, c.steps_per_block) == (112, 112, 28)
    f = sampler_config(13, {"method": "fixed_length", "steps": 4000})
    assert (f.gen_length, f.steps) == (91, 91)
    kw = dict(voice="alice", seed=1, block_length=28)
    at_cap = tts.synthesize("Hi.", steps=LIMIT_60, **kw)
    canvas = at_cap.chunks[0].canvas_frames * 7
    exact = tts.synthesize("Hi.", steps=canvas, **kw)
    np.testing.assert_array_equal(at_cap.waveform, exact.waveform)
    assert at_cap.nfe == exact.nfe <= canvas


def test_sampler_config_runs_at_most_one_step_per_token():
    """The low-level sampler too: steps beyond the canvas size nothing (no [B, steps] schedule)."""
    from llada_tts.model import create_model, tiny_config
    from llada_tts.sampling import SamplerConfig, sample

    huge = SamplerConfig(gen_length=16, block_length=8, steps=10**9)
    assert (huge.validate().steps_per_block, huge.num_blocks) == (8, 2)
    model = create_model(tiny_config(), seed=0).eval()
    prompt = torch.tensor([[1, 2, 3]])
    a = sample(model, prompt, SamplerConfig(gen_length=16, block_length=8, steps=16, seed=0))
    b = sample(model, prompt, SamplerConfig(gen_length=16, block_length=8, steps=10**9, seed=0))
    assert torch.equal(a.sequences, b.sequences) and a.nfe == b.nfe == 16


def test_check_sampler_options_normalises_whole_numbers_and_cache():
    from llada_tts.synthesis.defaults import check_sampler_options

    assert check_sampler_options({"steps": 12.0, "block_length": 56.0, "threshold": None}) == {"steps": 12,
                                                                                                 "block_length": 56}
    assert check_sampler_options({"cache": "prefix"}) == {"use_cache": True, "cache_mode": "prefix"}
    assert check_sampler_options({"cache": "none"}) == {"use_cache": False}
    with pytest.raises(SynthesisError, match="cache='none' contradicts use_cache=True"):
        check_sampler_options({"cache": "none", "use_cache": True})
    assert check_sampler_options({"steps": 10**6}, max_duration=None) == {"steps": 10**6}  # no limit asked
