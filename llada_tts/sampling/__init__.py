"""Samplers for the masked-diffusion model: LLaDA-exact iterative unmasking, audio-aware decoding,
Fast-dLLM-style threshold parallel decoding and block KV cache.

    generate(model, prompt_ids, *, gen_length, steps, block_length, ...)  official LLaDA algorithm
    sample(model, prompt_ids, SamplerConfig(...)) -> SampleResult           everything else
"""
from llada_tts.sampling.config import METHODS, REMASKING, SamplerConfig, SampleResult
from llada_tts.sampling.constraints import (
    AUDIO_END_IDS,
    allowed_ids,
    canvas_frames,
    chars_per_second,
    estimate_frames,
    frames_for_duration,
)
from llada_tts.sampling.core import sample
from llada_tts.sampling.generate import generate
from llada_tts.sampling.schedule import add_gumbel_noise, get_num_transfer_tokens

__all__ = [
    "AUDIO_END_IDS", "METHODS", "REMASKING", "SampleResult", "SamplerConfig", "add_gumbel_noise",
    "allowed_ids", "canvas_frames", "chars_per_second", "estimate_frames", "frames_for_duration", "generate",
    "get_num_transfer_tokens", "sample",
]
