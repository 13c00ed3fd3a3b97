"""Masked-diffusion math (LLaDA): forward process, losses, metrics. Imports only torch."""
from llada_tts.diffusion.forward import (
    crop_normalizer,
    forward_process,
    mask_prompt,
    random_length,
    random_length_crop,
)
from llada_tts.diffusion.losses import (
    audio_positions,
    loss_breakdown,
    masked_diffusion_loss,
    restricted_ce,
)

__all__ = [
    "audio_positions",
    "crop_normalizer",
    "forward_process",
    "loss_breakdown",
    "mask_prompt",
    "masked_diffusion_loss",
    "random_length",
    "random_length_crop",
    "restricted_ce",
]
