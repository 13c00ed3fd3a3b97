"""Bidirectional LLaMA mask predictor: configs, creation, loading, conversion, atomic saving."""
from llada_tts.model.configuration import LLAMA3_ROPE, SIZES, config_for_size, tiny_config
from llada_tts.model.modeling import (
    count_parameters,
    create_model,
    fast_cpu_bf16,
    from_llama,
    grow_vocab,
    load_model,
    position_ids_from_mask,
    save_model,
    speech_dtype,
)

__all__ = [
    "LLAMA3_ROPE", "SIZES", "config_for_size", "tiny_config", "count_parameters", "create_model",
    "fast_cpu_bf16", "from_llama", "grow_vocab", "load_model", "position_ids_from_mask", "save_model", "speech_dtype",
]
