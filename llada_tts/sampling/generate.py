"""``generate``: the official LLaDA sampling algorithm, token for token at temperature 0."""
from __future__ import annotations

import torch

from llada_tts.sampling.config import SamplerConfig
from llada_tts.sampling.core import sample


@torch.no_grad()
def generate(model, prompt_ids, *, gen_length: int, steps: int, block_length: int, temperature: float = 0.0,
             cfg_scale: float = 0.0, remasking: str = "low_confidence", mask_id: int,
             attention_mask: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """LLaDA's ``generate()`` (arXiv:2502.09992): returns the full sequences [B, P + gen_length].

    The canvas is the prompt followed by ``gen_length`` masks, decoded in ``gen_length //
    block_length`` blocks left to right (block_length = gen_length: fixed-length sampling), with
    ``steps`` split evenly over the blocks and each block's masked count spread linearly over its
    steps (remainder to the first steps). Each step predicts every position (Gumbel-max at
    ``temperature``), then commits the scheduled number of masked positions of the current block
    with the highest confidence (``low_confidence``: un-tempered softmax probability; ``random``:
    uniform draws). ``cfg_scale`` > 0 adds an unconditional pass with the prompt masked (2 forward
    passes per step). Only ``model(x).logits`` is used. Unlike the production sampler (``sample``),
    the mask id is not forbidden, exactly as upstream.

    Left padding: the first P columns are the caller's prompt tensor as passed, its padding
    included, as upstream (which copies the prompt into the canvas); the model saw the padding as
    mask ids under a 0 attention mask. Prompts given as a list are left-padded here, and that
    padding holds ``mask_id`` (there is no caller padding to return; ``sample`` also returns the
    ``attention_mask``).
    """
    config = SamplerConfig(method="semi_autoregressive_padding", steps=steps, gen_length=gen_length,
                           block_length=block_length, temperature=temperature, cfg_scale=cfg_scale,
                           remasking=remasking, mask_id=mask_id, forbid_mask=False)
    sequences = sample(model, prompt_ids, config, attention_mask=attention_mask, generator=generator,
                       full_logits=True).sequences  # [B, P + gen_length]
    if isinstance(prompt_ids, torch.Tensor):  # give back the caller's padding
        prompt = prompt_ids.reshape(sequences.shape[0], -1)  # [B, P]
        sequences[:, : prompt.shape[1]] = prompt.to(sequences.device)
    return sequences
