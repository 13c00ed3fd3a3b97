"""Model configurations: plain ``LlamaConfig`` objects with bidirectional attention.

We keep ``model_type == "llama"`` so checkpoints load anywhere in the HF ecosystem; what makes the
model a mask predictor travels in ``config.json`` as two extra keys:

    "is_causal": false          every position attends to every non-padding position
    "mask_token_id": 156938     the dedicated diffusion mask (``layout.MASK_ID``)

transformers 5.x stores RoPE settings in ``config.rope_parameters`` (a legacy ``rope_scaling`` +
``rope_theta`` pair in an old ``config.json`` is converted on load). The Llama 3.2 sizes below carry
the ``llama3`` scaling exactly as Meta ships it, including ``original_max_position_embeddings``
(without it transformers would default it to ``max_position_embeddings`` and change every
low-frequency rotary band).
"""
from __future__ import annotations

from transformers import LlamaConfig

from audio_tokenizer import layout as L
from llada_tts.model import adapters

# Llama 3.1 / 3.2 RoPE: theta 500k with the "llama3" frequency rescaling.
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 32.0,
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192,
}
PLAIN_ROPE = {"rope_type": "default", "rope_theta": 500000.0}

_COMMON = dict(
    vocab_size=L.VOCAB_SIZE,
    hidden_act="silu",
    tie_word_embeddings=True,
    is_causal=False,
    mask_token_id=L.MASK_ID,
    pad_token_id=L.PAD_ID,
    bos_token_id=L.BOS_ID,
    eos_token_id=L.END_OF_TEXT_ID,
    attn_implementation="sdpa",
    initializer_range=0.02,
    use_cache=False,
)

# name -> hyper-parameters on top of _COMMON. Non-embedding parameter counts in the comments.
SIZES: dict[str, dict] = {
    # ~74k non-embedding: unit tests.
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, max_position_embeddings=2048, rms_norm_eps=1e-6,
                 rope_parameters=PLAIN_ROPE),
    # ~9.8M non-embedding: CPU learning benchmark.
    "small": dict(hidden_size=256, num_hidden_layers=10, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=1024, max_position_embeddings=4096, rms_norm_eps=1e-5,
                  rope_parameters=PLAIN_ROPE),
    # ~4.7M non-embedding: the shipped CPU demo voice (compact embeddings, frame-phase masks).
    "voice": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=768, max_position_embeddings=4096, rms_norm_eps=1e-5,
                  rope_parameters=PLAIN_ROPE),
    # meta-llama/Llama-3.2-1B body (~0.97B non-embedding).
    "1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
               head_dim=64, intermediate_size=8192, max_position_embeddings=131072, rms_norm_eps=1e-5,
               rope_parameters=LLAMA3_ROPE),
    # meta-llama/Llama-3.2-3B body (~2.8B non-embedding).
    "3b": dict(hidden_size=3072, num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8,
               head_dim=128, intermediate_size=8192, max_position_embeddings=131072, rms_norm_eps=1e-5,
               rope_parameters=LLAMA3_ROPE),
}


def config_for_size(name: str, compact: bool = False, slot_masks: bool = False, frame_phones: int = 0,
                    **overrides) -> LlamaConfig:
    """A bidirectional ``LlamaConfig`` of a named size ("tiny", "small", "voice", "1b", "3b") plus overrides.

    ``compact``: embeddings hold only the rows the offline byte tokenizer uses (``adapters.BYTE_ROWS``);
    ``slot_masks``: masked positions are fed with their frame slot (``adapters.SLOT_MASK_IDS``);
    ``frame_phones``: audio frames get their prompt's frame phonemes (``audio_tokenizer.frames``),
    this many per frame (True = 1; 4 for ``espeak-quarters``; 0/False = none).
    """
    if name not in SIZES:
        raise ValueError(f"unknown model size {name!r}; choose one of {sorted(SIZES)}")
    kwargs = {**_COMMON, **SIZES[name], **overrides}
    rope = kwargs.get("rope_parameters")
    if rope is not None:
        kwargs["rope_parameters"] = dict(rope)  # transformers mutates it in place
    if slot_masks:
        kwargs[adapters.SLOT_MASKS_KEY] = list(adapters.SLOT_MASK_IDS)
    if frame_phones:
        from audio_tokenizer.frames import ID_RANGE

        kwargs[adapters.FRAMES_KEY] = list(ID_RANGE)
        if int(frame_phones) > 1:
            kwargs[adapters.PER_FRAME_KEY] = int(frame_phones)
    config = LlamaConfig(**kwargs)
    return adapters.compact_config(config) if compact else config


def tiny_config(**overrides) -> LlamaConfig:
    """The unit-test model: hidden 64, 2 layers, 4 heads (2 kv), full 156940-row vocabulary."""
    return config_for_size("tiny", **overrides)
