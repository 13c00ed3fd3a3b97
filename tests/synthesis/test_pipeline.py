"""LladaTTS end to end on a tiny random model and codec: lengths, determinism, chunking, streaming, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from synthesis_fixtures import (  # noqa: F401  (fixtures)
    CHARS_PER_SECOND,
    FAST,
    VOICES,
    silent_model_dir,
    text_only_model_dir,
    tiny_codec_dir,
    tiny_model_dir,
    tts,
)

from audio_tokenizer import layout as L
from llada_tts.synthesis import LladaTTS, NoAudioError, SynthesisError
from llada_tts.synthesis.join import Joiner, crossfade_samples, equal_power, join
from llada_tts.synthesis.plan import check_sampler_options, plan_chunks, sampler_config

SPF = L.SAMPLES_PER_FRAME
LONG = "The cat sat on the mat. A dog ran in the park. We like to read books."


# --- planning (pure) ---------------------------------------------------------------------------------

def test_canvas_is_rounded_up_to_whole_blocks_and_steps_to_the_block_count():
    c = sampler_config(13, {"block_length": 28})  # 13 frames -> 4 blocks of 4 frames
    assert (c.gen_length, c.block_length, c.num_blocks, c.steps) == (16 * 7, 28, 4, 56)  # steps: 112 / 2
    assert c.audio and c.method == "semi_autoregressive_padding"
    assert sampler_config(13, {"block_length": 28, "steps": 5}).steps == 8  # up to a multiple of 4
    assert sampler_config(13, {"block_length": 28, "steps": 1}).steps == 4  # at least one per block
    f = sampler_config(13, {"method": "fixed_length", "steps": 5})
    assert (f.gen_length, f.block, f.steps) == (91, 91, 5)
    assert sampler_config(13, {"block_length": 28, "tokens_per_step": 7}).steps == 16  # 112 / 7: one per frame
    assert sampler_config(13, {"block_length": 28, "tokens_per_step": 50}).steps == 4  # 2, up to the block count
    assert sampler_config(13, {"block_length": 28, "tokens_per_step": 7, "steps": 8}).steps == 8  # steps win
    with pytest.raises(SynthesisError, match="tokens_per_step"):
        check_sampler_options({"tokens_per_step": 0})


def test_chunk_plans_estimate_and_share_out_duration():
    plans = plan_chunks(LONG, duration=None, chars_per_second=10.0, max_chunk_chars=25, max_duration=60)
    assert [p.text for p in plans] == ["The cat sat on the mat.", "A dog ran in the park.", "We like to read books."]
    assert [p.frames for p in plans] == [math.ceil(len(p.text) / 10 * 1.2 * L.FRAMES_PER_SECOND) for p in plans]
    shared = plan_chunks(LONG, duration=6.0, chars_per_second=10.0, max_chunk_chars=25, max_duration=60)
    assert sum(p.frames for p in shared) == math.ceil(6 * L.FRAMES_PER_SECOND) == 71
    with pytest.raises(SynthesisError, match=r"needs up to .* more than max_duration=2 s"):
        plan_chunks(LONG, duration=None, chars_per_second=10.0, max_chunk_chars=25, max_duration=2)
    with pytest.raises(SynthesisError, match="text is empty"):
        plan_chunks("  \n ", duration=None, chars_per_second=10.0, max_chunk_chars=25, max_duration=60)


def test_a_frame_prompt_checkpoint_gets_its_exact_length_plus_the_stream_end():
    from audio_tokenizer.frames import frame_phonemes

    exact = lambda piece: len(frame_phonemes(piece, "en-us"))  # noqa: E731
    plans = plan_chunks(LONG, duration=None, chars_per_second=10.0, max_chunk_chars=25, max_duration=60,
                        frames_of=exact)
    assert [p.frames for p in plans] == [exact(p.text) + 1 for p in plans]
    with pytest.raises(SynthesisError, match="duration cannot be set"):
        plan_chunks(LONG, duration=3.0, chars_per_second=10.0, max_chunk_chars=25, max_duration=60, frames_of=exact)
    with pytest.raises(SynthesisError, match="more than max_duration=1 s"):
        plan_chunks(LONG, duration=None, chars_per_second=10.0, max_chunk_chars=25, max_duration=1, frames_of=exact)


@pytest.mark.parametrize("options, match", [
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"block_length": 10}, "multiple of 7"),
    ({"threshold": 1.5}, r"threshold must be in \(0, 1\]"),
    ({"threshold": 0.0}, r"threshold must be in \(0, 1\]"),
    ({"method": "greedy"}, "unknown method 'greedy'"),
    ({"remasking": "top"}, "unknown remasking"),
    ({"temperature": -1}, "temperature must be >= 0"),
    ({"cfg_scale": -0.5}, "cfg scale must be >= 0"),
    ({"threshold": 0.9, "remasking": "random"}, "use remasking low_confidence"),
    ({"top_p": 0.9}, r"unknown sampler option\(s\) \['top_p'\]"),
    ({"threshold": float("nan")}, r"threshold must be in \(0, 1\], got nan"),
    ({"min_length": float("nan")}, r"min_length must be in \[0, 1\]"),
    ({"steps": "64"}, "steps must be an integer >= 1, got '64'"),
    ({"cache": "triple"}, "unknown cache 'triple'; choose one of none, prefix, dual"),
    ({"top_k": 0}, "top_k must be an integer >= 1, got 0"),
    ({"top_k": 2.5}, "top_k must be an integer >= 1"),
])
def test_bad_sampler_options_are_refused(options, match):
    with pytest.raises(SynthesisError, match=match):
        check_sampler_options(options)


def test_a_sampler_option_reaches_the_sampler_config():
    """An option defined once (a SAMPLER_OPTIONS row) flows through validation to SamplerConfig."""
    options = check_sampler_options({"top_k": 50.0, "temperature": 0.7})
    assert options == {"top_k": 50, "temperature": 0.7}
    config = sampler_config(8, options)
    assert (config.top_k, config.temperature) == (50, 0.7)
    assert sampler_config(8, {}).top_k is None


# --- joining -----------------------------------------------------------------------------------------

def test_equal_power_crossfade_and_joined_length():
    fade_out, fade_in = equal_power(8)
    np.testing.assert_allclose(fade_out**2 + fade_in**2, 1.0, rtol=1e-6)
    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal(n).astype(np.float32) for n in (100, 50, 80)]
    out = join(chunks, 10)
    assert len(out) == 230 - 2 * 10
    t = (np.arange(10) + 0.5) / 10
    ref = np.concatenate([chunks[0][:90],
                          chunks[0][90:] * np.cos(np.pi / 2 * t) + chunks[1][:10] * np.sin(np.pi / 2 * t),
                          chunks[1][10:40],
                          chunks[1][40:] * np.cos(np.pi / 2 * t) + chunks[2][:10] * np.sin(np.pi / 2 * t),
                          chunks[2][10:]])
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert crossfade_samples(24000, 40) == 960


def test_incremental_joiner_equals_join_for_any_piece_sizes():
    rng = np.random.default_rng(1)
    chunks = [rng.standard_normal(n).astype(np.float32) for n in (300, 7, 120, 64)]
    j, out = Joiner(16), []
    for c in chunks:
        cuts = np.sort(rng.integers(0, len(c), size=3))
        for piece in np.split(c, cuts):
            out.append(j.feed(piece))
        out.append(j.end_chunk())
    out.append(j.finish())
    np.testing.assert_array_equal(np.concatenate(out), join(chunks, 16))


# --- synthesis ---------------------------------------------------------------------------------------

def test_waveform_is_the_decoded_frames_and_unpacks(tts):
    assert tts.voices == VOICES and tts.sample_rate == 24000 and tts.chars_per_second == CHARS_PER_SECOND
    result = tts.synthesize("Hello there.", voice="alice", seed=0, **FAST)
    wav, sr = result
    assert sr == 24000 and wav.dtype == np.float32 and wav.ndim == 1
    (chunk,) = result.chunks
    assert chunk.canvas_frames == 8  # 12 chars / 40 per s * 1.2 = 0.36 s -> 5 frames -> 2 blocks of 4 frames
    assert len(wav) == result.frames * SPF == chunk.samples
    assert 1 <= chunk.frames <= chunk.canvas_frames and chunk.bad_frames == 0 and chunk.valid_fraction == 1.0
    assert result.nfe == chunk.nfe == 2  # steps=2 over 2 blocks: one forward pass per block
    assert result.duration == len(wav) / 24000 and result.rtf == pytest.approx(result.wall_time / result.duration)
    assert np.isfinite(wav).all()


@pytest.mark.slow
def test_same_seed_same_waveform_other_seed_differs(tts):
    a = tts.synthesize("Hi.", voice="bob", seed=7, **FAST).waveform
    b = tts.synthesize("Hi.", voice="bob", seed=7, **FAST).waveform
    c = tts.synthesize("Hi.", voice="bob", seed=8, **FAST).waveform
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)
    assert tts.synthesize("Hi.", **FAST).seed != tts.synthesize("Hi.", **FAST).seed  # drawn, reported


@pytest.mark.slow
def test_long_text_is_chunked_and_joined_with_crossfades(tts):
    result = tts.synthesize(LONG, voice="alice", seed=1, max_chunk_chars=25, batch_size=2, **FAST)
    assert [c.text for c in result.chunks] == ["The cat sat on the mat.", "A dog ran in the park.",
                                               "We like to read books."]
    assert result.overlap == 960
    assert len(result.waveform) == sum(c.samples for c in result.chunks) - 2 * 960
    assert all(c.samples == c.frames * SPF for c in result.chunks)
    # chunks 1 and 2 shared one sample() call (a canvas sized for the longer), chunk 3 had its own
    assert result.chunks[0].canvas_frames == result.chunks[1].canvas_frames
    assert result.nfe == result.chunks[0].nfe + result.chunks[2].nfe


@pytest.mark.slow
def test_stream_concatenates_to_synthesize_exactly(tts):
    kw = dict(voice="alice", seed=3, max_chunk_chars=4, batch_size=1, **FAST)
    pieces = list(tts.stream("Hi. Bye. Ok.", **kw))
    full = tts.synthesize("Hi. Bye. Ok.", **kw)
    assert len(pieces) >= 3  # at least one piece per chunk, before the next chunk is sampled
    np.testing.assert_array_equal(np.concatenate(pieces), full.waveform)


def test_synthesis_errors_are_one_line(tts):
    cases = [
        (dict(text="   "), "text is empty"),
        (dict(text="Hi.", voice="carol"), "unknown voice 'carol'; this checkpoint has: alice, bob"),
        (dict(text=LONG * 20, max_duration=10.0), "more than max_duration=10 s"),
        (dict(text="Hi.", speed=0), "speed must be > 0"),
        (dict(text="Hi.", seed=-1), "seed must be an integer >= 0"),
        (dict(text="Hi.", steps=0), "steps must be an integer >= 1"),
        (dict(text="Hi.", duration=-1.0), "duration must be > 0"),
    ]
    for kwargs, match in cases:
        with pytest.raises(SynthesisError, match=match) as info:
            tts.synthesize(**kwargs)
        assert "\n" not in str(info.value)


def test_a_chunk_without_valid_frames_is_an_error_naming_it(silent_model_dir, tiny_codec_dir):
    silent = LladaTTS.from_pretrained(str(silent_model_dir), codec=str(tiny_codec_dir))
    out = silent.model(torch.tensor([[L.START_OF_SPEECH_ID, L.MASK_ID]])).logits[0, -1]
    assert int(out.argmax()) == L.END_OF_SPEECH_ID  # the construction does what it says
    with pytest.raises(NoAudioError, match=r"chunk 1/1 \('Hello.'\) produced no valid audio frames "
                                           r"\(the model ended the speech at once\)"):
        silent.synthesize("Hello.", seed=0, **FAST)


@pytest.mark.parametrize("min_length", [1.0, 0.5])
def test_min_length_keeps_a_model_that_stops_at_once_talking(silent_model_dir, tiny_codec_dir, min_length):
    from llada_tts.synthesis.plan import plan_chunks

    silent = LladaTTS.from_pretrained(str(silent_model_dir), codec=str(tiny_codec_dir))
    (plan,) = plan_chunks("Hello.", duration=None, chars_per_second=silent.chars_per_second,
                          max_chunk_chars=180, max_duration=None)
    res = silent.synthesize("Hello.", seed=0, min_length=min_length, **FAST)
    # ends are forbidden before floor(min_length * estimate) frames; the model ends at the first allowed one
    assert res.frames == math.floor(min_length * plan.frames) >= 1
    assert res.waveform.shape[0] == res.frames * 2048


def test_min_length_out_of_range_is_refused(tts):
    with pytest.raises(SynthesisError, match=r"min_length must be in \[0, 1\]"):
        tts.synthesize("Hello.", seed=0, min_length=1.5, **FAST)


# --- loading errors ----------------------------------------------------------------------------------

def test_loading_errors(tmp_path, tiny_model_dir, tiny_codec_dir, text_only_model_dir):
    (tmp_path / "empty").mkdir()
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    cases = [
        (tmp_path / "missing", None, "no checkpoint folder at"),
        (tmp_path / "empty", None, "checkpoint folder .*empty has no config.json"),
        (tmp_path / "noweights", None, "has no model.safetensors weights"),
        (text_only_model_dir, None, "128256 embedding rows"),
        (tiny_model_dir, tmp_path / "nocodec", "codec: no codec folder at .* does not exist"),
    ]
    for model, codec, match in cases:
        with pytest.raises(SynthesisError, match=match):
            LladaTTS.from_pretrained(str(model), codec=str(codec) if codec else str(tiny_codec_dir))


def test_block_streaming_yields_inside_a_chunk_with_the_same_tokens(tts):
    kw = dict(voice="alice", seed=3, batch_size=1, steps=4, block_length=28, duration=1.0)
    full = tts.synthesize("Hello there.", **kw)  # 12 frames: 3 blocks of 4 frames
    pieces = list(tts.stream("Hello there.", blocks=True, **kw))
    assert len(pieces) >= 2  # audio before the chunk finished (block by block)
    stream = np.concatenate(pieces)
    assert len(stream) == len(full.waveform) == full.frames * SPF
    # windowed decoding: SNAC's per-call decoder noise differs; the rest is the same tokens
    rel = np.linalg.norm(stream - full.waveform) / np.linalg.norm(full.waveform)
    assert rel < 0.1, rel
    with pytest.raises(SynthesisError, match="batch_size=1"):
        next(tts.stream("Hi.", blocks=True, batch_size=2))


def test_committed_frames_counts_the_committed_prefix():
    from llada_tts.synthesis.stream import committed_frames

    a = L.AUDIO_OFFSET
    frame = [a + s * 4096 for s in range(7)]
    m = L.MASK_ID
    assert committed_frames(torch.tensor(frame + frame[:3] + [m] * 4)) == (1, False)
    assert committed_frames(torch.tensor(frame * 2)) == (2, True)
    assert committed_frames(torch.tensor(frame + [L.END_OF_SPEECH_ID] + [m] * 6)) == (1, True)
    assert committed_frames(torch.tensor([m] * 7 + frame)) == (0, False)


def test_cache_option_is_the_older_use_cache_and_cache_mode(tts):
    """``cache="dual"`` (one option: none | prefix | dual) gives what use_cache + cache_mode gave."""
    kw = dict(voice="alice", seed=2, **FAST)
    for mode in ("prefix", "dual"):
        new = tts.synthesize("Hi.", cache=mode, **kw)
        old = tts.synthesize("Hi.", use_cache=True, cache_mode=mode, **kw)
        np.testing.assert_array_equal(new.waveform, old.waveform)
    np.testing.assert_array_equal(tts.synthesize("Hi.", cache="none", **kw).waveform,
                                  tts.synthesize("Hi.", **kw).waveform)


def test_sampler_options_are_one_typed_definition_validated_on_construction():
    from llada_tts.synthesis.defaults import OPTIONS, SamplerOptions, describe_options

    o = SamplerOptions(steps=12.0, cache="prefix", max_duration=2.0)
    assert (o.steps, o.cache) == (12, "prefix")
    assert o.to_kwargs() == {"steps": 12, "use_cache": True, "cache_mode": "prefix"}
    with pytest.raises(SynthesisError, match=r"steps must be at most 168 \(the canvas tokens of max_duration=2 s\)"):
        SamplerOptions(steps=169, max_duration=2.0)
    with pytest.raises(TypeError):
        SamplerOptions(top_p=0.9)  # a typed definition: no unknown fields
    rows = {row["name"]: row for row in describe_options(2.0)}
    assert list(rows) == list(OPTIONS)
    assert (rows["steps"]["minimum"], rows["steps"]["maximum"], rows["steps"]["flag"]) == (1, 168, "--steps")
    assert rows["cache"]["choices"] == ["none", "prefix", "dual"] and rows["threshold"]["minimum_exclusive"]
    assert describe_options(None)[1]["maximum"] is None


def _cpu_flags() -> set[str]:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}


def test_speech_runs_in_bfloat16_on_a_cpu_with_native_bf16_else_float32(tiny_model_dir, tiny_codec_dir):
    """The CPU default follows the CPU's own flags (AMX tiles: bf16 matmuls ~5x float32; without them
    bf16 is emulated and slower); an explicit dtype always wins."""
    from llada_tts.model import fast_cpu_bf16, speech_dtype

    native = "amx_tile" in _cpu_flags()
    assert fast_cpu_bf16() == native
    assert speech_dtype("cpu") == (torch.bfloat16 if native else torch.float32)
    assert speech_dtype("meta") is None  # a GPU keeps the checkpoint's own dtype
    default = LladaTTS.from_pretrained(str(tiny_model_dir), codec=str(tiny_codec_dir))
    assert next(default.model.parameters()).dtype == speech_dtype("cpu")
    fp32 = LladaTTS.from_pretrained(str(tiny_model_dir), codec=str(tiny_codec_dir), dtype=torch.float32)
    assert next(fp32.model.parameters()).dtype == torch.float32
