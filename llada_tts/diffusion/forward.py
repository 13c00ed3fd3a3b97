"""LLaDA's forward (noising) process and its random-length truncation, as pure functions.

A batch is noised once per training step:

    t ~ U(0, 1) per sequence,  p_mask = (1 - eps) * t + eps,  each maskable position masked w.p. p_mask

``maskable`` generalises LLaDA's two recipes: all positions (pretraining) or the answer only (SFT:
the prompt is never masked). Random draws come from ``generator`` when given, so the same seed gives
the same mask. ``mask_prompt`` builds the unconditional (prompt-masked) input of classifier-free
guidance, for the sampler and for training's prompt dropout alike.
"""
from __future__ import annotations

import torch


def _draw_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    """Draw on the generator's device (a CPU generator cannot fill a CUDA tensor)."""
    return generator.device if generator is not None else fallback


def forward_process(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    mask_id: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    t: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask each maskable token independently with probability p_mask = (1 - eps) * t + eps.

    input_ids [B, L] int, maskable [B, L] bool (False = never masked, e.g. the prompt), t [B] in
    [0, 1] (drawn U(0, 1) per sequence when None). Returns noisy_ids [B, L] (masked positions hold
    ``mask_id``), masked [B, L] bool, p_mask [B, L] float32 (per sequence, repeated along L; defined
    at every position, as in LLaDA). t is drawn before the per-token uniforms, so a fixed generator
    seed reproduces both.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [B, L], got shape {tuple(input_ids.shape)}")
    if maskable.shape != input_ids.shape or maskable.dtype != torch.bool:
        raise ValueError(f"maskable must be a bool tensor of shape {tuple(input_ids.shape)}, "
                         f"got {maskable.dtype} {tuple(maskable.shape)}")
    if not 0.0 < eps <= 1.0:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    b, seq_len = input_ids.shape
    device = input_ids.device
    draw_on = _draw_device(generator, device)
    if t is None:
        t = torch.rand(b, generator=generator, device=draw_on).to(device)  # [B]
    else:
        t = torch.as_tensor(t, dtype=torch.float32, device=device)
        if t.shape != (b,):
            raise ValueError(f"t must have shape ({b},), got {tuple(t.shape)}")
        if bool(((t < 0) | (t > 1)).any()):
            raise ValueError("t must lie in [0, 1]")
    p_mask = ((1.0 - eps) * t.float() + eps)[:, None].expand(b, seq_len).contiguous()  # [B, L] float32
    u = torch.rand((b, seq_len), generator=generator, device=draw_on).to(device)  # [B, L]
    masked = (u < p_mask) & maskable  # [B, L]
    noisy_ids = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)  # [B, L]
    return noisy_ids, masked, p_mask


def random_length(length: int, prob: float = 0.01, generator: torch.Generator | None = None) -> int:
    """LLaDA pretraining's random-length draw: with probability ``prob`` a length drawn uniformly
    from {1, ..., length}, otherwise ``length`` itself. Two draws are always made (coin, then
    length), so the generator's stream does not depend on the outcome."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"prob must be in [0, 1], got {prob}")
    draw_on = _draw_device(generator, torch.device("cpu"))
    coin = torch.rand(1, generator=generator, device=draw_on)
    new_len = torch.randint(1, max(length, 1) + 1, (1,), generator=generator, device=draw_on)
    if length == 0 or float(coin) >= prob:
        return length
    return int(new_len)


def random_length_crop(
    input_ids: torch.Tensor, prob: float = 0.01, generator: torch.Generator | None = None
) -> torch.Tensor:
    """LLaDA pretraining's random-length truncation: with probability ``prob`` crop the whole batch
    to a length drawn uniformly from {1, ..., L} (:func:`random_length`); otherwise return
    ``input_ids`` unchanged.

    input_ids [B, L] -> [B, L'] (a view). Crop every other [B, L] tensor of the batch (maskable,
    attention_mask) to ``out.shape[1]`` as well, *before* :func:`forward_process`.

    Composition with the loss normaliser: LLaDA divides by B * L' after the crop, so rows normalised
    by their length (kind "text") must use the cropped length L', and rows normalised by their answer
    length must use the answer part that survived, L' - prompt_length. :func:`crop_normalizer` does
    both.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [B, L], got shape {tuple(input_ids.shape)}")
    length = random_length(input_ids.shape[1], prob, generator)
    return input_ids if length == input_ids.shape[1] else input_ids[:, :length]


def crop_normalizer(
    prompt_lengths: torch.Tensor, full_length_rows: torch.Tensor, length: int | torch.Tensor
) -> torch.Tensor:
    """Loss normaliser [B] float32 for rows of ``length`` positions (an int, or [B] per row: the
    row's attended length, e.g. after a random crop).

    Rows where ``full_length_rows`` [B] bool is True (pretraining text) get ``length`` (LLaDA's B*L);
    the others get their answer length ``length - prompt_lengths`` [B], at least 1 (a row cropped
    inside its prompt has nothing maskable and contributes 0 to the loss).
    """
    length = torch.as_tensor(length, dtype=torch.float32, device=prompt_lengths.device)
    answer = (length - prompt_lengths.to(torch.float32)).clamp(min=1.0)  # [B]
    return torch.where(full_length_rows.bool(), length.expand_as(answer), answer)


def mask_prompt(input_ids: torch.Tensor, prompt_lengths: torch.Tensor | int, mask_id: int) -> torch.Tensor:
    """The unconditional input of classifier-free guidance: row b with positions [0, prompt_lengths[b])
    replaced by ``mask_id`` (the whole prompt, nothing else).

    input_ids [B, T]; prompt_lengths [B] (0 = leave the row as it is) or one int for every row.
    Returns a new [B, T] tensor. The sampler's unconditional pass and training's prompt dropout
    (``prompt_drop_prob``) both use this, so the model is trained on exactly what CFG shows it.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [B, T], got shape {tuple(input_ids.shape)}")
    lengths = torch.as_tensor(prompt_lengths, device=input_ids.device).reshape(-1, 1)  # [B or 1, 1]
    in_prompt = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :] < lengths  # [B, T]
    return input_ids.masked_fill(in_prompt, mask_id)
