"""Does a TTS model learn? Held-out measurements shared by a masked-diffusion and an autoregressive model.

The measurements of ``benchmarks/learn_tts.py`` (and ``mixed_batching.py``), with their autoregressive
baseline: benchmark code, not part of the ``llada_tts`` package (its likelihood API is
``llada_tts.evaluation.likelihood``).

Teacher-forced (one forward pass per row, prompt always visible):

    masked_accuracy_at_ratio   diffusion: mask exactly round(ratio * answer) answer tokens, argmax accuracy
    diffusion_nll_bound        diffusion: LLaDA's Monte Carlo ELBO (evaluation.likelihood.elbo_nll,
                               stratified mask ratios as in get_log_likelihood.py)
    next_token_metrics         autoregressive: next-token accuracy and exact NLL on the answer tokens

Both NLL numbers are nats per answer token (the answer is everything after start_of_speech: audio,
end_of_speech, end_of_ai), so the diffusion bound and the autoregressive NLL are directly comparable:
the bound is >= the diffusion model's true NLL.

Free-running (the model writes the audio itself):

    greedy_decode    autoregressive greedy decoding on a KV cache, optionally with the same audio
                     constraints as the diffusion sampler (slot bands, ends only at frame boundaries)
    stream_metrics   position-wise token accuracy, valid-frame fraction and length error of a
                     generated audio region against the true tokens

plus ``slot_mode_baseline``: the accuracy of always predicting each slot's most frequent training code,
and ``off_mode``: the positions where the true code is *not* that mode. An untrained (random) SNAC
codec maps most audio to a few codes per slot, so plain token accuracy can be high for a model that
ignores the text; accuracy on off-mode positions measures what was learned beyond that.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from audio_tokenizer import layout as L
from llada_tts.evaluation.likelihood import elbo_nll
from llada_tts.sampling.cache import cache_kwarg
from llada_tts.sampling.constraints import AUDIO_END_IDS, slot_candidates


def mask_fixed_ratio(maskable: torch.Tensor, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, L] bool: exactly ``round(ratio * n_b)`` of row b's ``n_b`` maskable positions, uniformly chosen.

    At least one position is masked in a row that has any (ratio > 0), so every row is measured.
    """
    if maskable.dim() != 2 or maskable.dtype != torch.bool:
        raise ValueError(f"maskable must be a [B, L] bool tensor, got {maskable.dtype} {tuple(maskable.shape)}")
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    scores = torch.rand(maskable.shape, generator=generator).to(maskable.device)  # [B, L]
    scores = scores.masked_fill(~maskable, 2.0)  # never chosen: uniforms are < 1
    n = maskable.sum(dim=1)  # [B]
    k = torch.clamp(torch.round(n.double() * ratio).long(), min=1).minimum(n)  # [B]
    rank = scores.argsort(dim=1).argsort(dim=1)  # [B, L] rank of each position's score
    return (rank < k[:, None]) & maskable


def logits_at(model, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """[N, V] logits of ``model`` at ``positions`` ([B, L] bool) only (the head skips every other position).

    Works for transformers ``*ForCausalLM`` models (decoder ``.model`` + output embeddings); anything
    else falls back to ``model(input_ids).logits[positions]``.
    """
    head = model.get_output_embeddings() if callable(getattr(model, "get_output_embeddings", None)) else None
    if head is None or not hasattr(model, "model"):
        return model(input_ids).logits[positions]
    hidden = model.model(input_ids=input_ids).last_hidden_state  # [B, L, H]
    return head(hidden[positions])  # [N, V]


@torch.no_grad()
def masked_predictions(model, input_ids: torch.Tensor, prompt_length: int, ratio: float,
                       generator: torch.Generator | None = None,
                       mask_id: int = L.MASK_ID) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask ``round(ratio * answer)`` answer tokens of one row and predict them (argmax).

    input_ids [L] or [1, L]; positions >= ``prompt_length`` form the answer. Returns (offsets [N]
    answer offsets of the masked tokens, i.e. position - prompt_length, pred [N], target [N]).
    """
    ids = input_ids.reshape(1, -1)
    maskable = torch.arange(ids.shape[1], device=ids.device)[None] >= prompt_length  # [1, L]
    masked = mask_fixed_ratio(maskable, ratio, generator)  # [1, L]
    noisy = ids.masked_fill(masked, mask_id)
    pred = logits_at(model, noisy, masked).argmax(dim=-1)  # [N]
    return masked[0].nonzero().flatten() - prompt_length, pred, ids[masked]


def masked_accuracy_at_ratio(model, input_ids: torch.Tensor, prompt_length: int, ratio: float,
                             generator: torch.Generator | None = None, mask_id: int = L.MASK_ID) -> tuple[int, int]:
    """(correct, total) argmax predictions on ``round(ratio * answer)`` masked answer tokens of one row."""
    _, pred, target = masked_predictions(model, input_ids, prompt_length, ratio, generator, mask_id)
    return int((pred == target).sum()), int(target.numel())


def diffusion_nll_bound(model, input_ids: torch.Tensor, prompt_length: int, draws: int = 8,
                        generator: torch.Generator | None = None, mask_id: int = L.MASK_ID,
                        batch_size: int = 8) -> float:
    """LLaDA's ELBO bound on the NLL of one row's answer (positions >= ``prompt_length``), in nats
    per answer token, from ``draws`` Monte Carlo draws with stratified mask counts: the one
    implementation, :func:`llada_tts.evaluation.likelihood.elbo_nll` (what ``llada-tts score`` reports)."""
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    ids = torch.as_tensor(input_ids).reshape(-1)
    return elbo_nll(model, ids[:prompt_length], ids[prompt_length:], mc_samples=draws,
                    batch_size=min(batch_size, draws), generator=generator, mask_id=mask_id).per_token


def next_token_loss(model, input_ids: torch.Tensor, maskable: torch.Tensor,
                    normalizer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Autoregressive loss on the answer: mean over rows of (sum of next-token CE on the row's
    maskable targets) / normalizer, the same per-row normalisation as the diffusion loss.

    input_ids [B, L], maskable [B, L] bool (targets that count), normalizer [B]. Returns (loss,
    ce [N] per counted target, correct [N] bool argmax hits); the head runs on counted positions only.
    """
    targets_mask = maskable[:, 1:]  # [B, L-1]: target at position p + 1 is predicted from p
    logits = logits_at(model, input_ids[:, :-1], targets_mask)  # [N, V]
    targets = input_ids[:, 1:][targets_mask]  # [N]
    ce = F.cross_entropy(logits.float(), targets, reduction="none")  # [N]
    rows = targets_mask.nonzero(as_tuple=True)[0]  # [N]
    loss = (ce / normalizer.to(ce.device).float()[rows]).sum() / input_ids.shape[0]
    return loss, ce.detach(), logits.detach().argmax(dim=-1) == targets


@torch.no_grad()
def next_token_predictions(model, input_ids: torch.Tensor,
                           prompt_length: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Teacher-forced next-token prediction on one row's answer: (pred [N], target [N], NLL per
    answer token); target j is answer offset j."""
    ids = input_ids.reshape(1, -1)
    maskable = torch.arange(ids.shape[1], device=ids.device)[None] >= prompt_length  # [1, L]
    targets_mask = maskable[:, 1:]
    logits = logits_at(model, ids[:, :-1], targets_mask)  # [N, V]
    target = ids[:, 1:][targets_mask]  # [N]
    nll = float(F.cross_entropy(logits.float(), target, reduction="mean"))
    return logits.argmax(dim=-1), target, nll


def next_token_metrics(model, input_ids: torch.Tensor, prompt_length: int) -> tuple[int, int, float]:
    """(correct, total, nll per answer token) of teacher-forced next-token prediction on one row."""
    pred, target, nll = next_token_predictions(model, input_ids, prompt_length)
    return int((pred == target).sum()), int(target.numel()), nll


def audio_candidates(offset: int) -> torch.Tensor:
    """Ids [C] that audio offset ``offset`` may take before any stream end: the diffusion sampler's
    ``audio`` constraint (the slot's band; the stream-end ids too at a frame boundary)."""
    cand = slot_candidates()[offset % L.SLOTS_PER_FRAME]  # [4099]: the slot band, then the end ids
    if offset % L.SLOTS_PER_FRAME != 0:
        cand = cand[: -len(AUDIO_END_IDS)]
    return cand


@torch.no_grad()
def greedy_decode(model, prompt_ids: Sequence[int] | torch.Tensor, max_new_tokens: int, audio: bool = True,
                  stop_ids: Sequence[int] = L.STREAM_END_IDS) -> torch.Tensor:
    """Greedy autoregressive continuation [n <= max_new_tokens] of one prompt, on a KV cache.

    ``audio=True`` restricts each step to what the diffusion sampler's ``audio`` mode allows at the
    same offset (the slot's band; end ids only at a frame boundary), so both models are held to the
    same rules. Stops after the first ``stop_ids`` token.
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    ids = torch.as_tensor(prompt_ids, dtype=torch.long, device=device).reshape(1, -1)  # [1, P]
    cache = DynamicCache()
    out: list[int] = []
    stop = set(int(s) for s in stop_ids)
    head = model.get_output_embeddings()
    if audio:  # per slot: candidate ids and their head rows, gathered once (not per token)
        cands = [audio_candidates(s).to(device) for s in range(L.SLOTS_PER_FRAME)]
        rows = [(head.weight[c], None if head.bias is None else head.bias[c]) for c in cands]
    step_in, cache_arg = ids, {cache_kwarg(model.model): cache}
    for j in range(max_new_tokens):
        hidden = model.model(input_ids=step_in, use_cache=True, **cache_arg).last_hidden_state[0, -1]  # [H]
        if audio:
            slot = j % L.SLOTS_PER_FRAME
            token = int(cands[slot][F.linear(hidden, *rows[slot]).argmax()])
        else:
            token = int(head(hidden).argmax())
        out.append(token)
        if token in stop:
            break
        step_in = torch.tensor([[token]], device=device)
    return torch.tensor(out, dtype=torch.long)


def stream_metrics(generated: Sequence[int] | torch.Tensor, true_audio: Sequence[int] | torch.Tensor,
                   modes: Sequence[int] | None = None) -> dict:
    """Compare a generated audio region (ids after start_of_speech) with the true audio ids [7 * T].

    token_accuracy: positions j < 7T whose generated id (before the first stream-end id, raw, not
    repaired) equals the true id, over 7T (missing positions count as wrong, extra ones are not
    counted). valid_fraction: ``validate_audio_tokens`` kept frames / frames before the end (0 for
    an empty stream). frames: frames generated before the first stream-end id (a partial frame
    counts as one); length_error = frames - T; ended: whether a stream-end id was produced.
    With ``modes`` (see :func:`slot_modes`): off_mode_hits / off_mode_total, the same accuracy on the
    true positions whose id is not its slot's mode (the tokens that carry the utterance).
    """
    gen = torch.as_tensor(generated, dtype=torch.long).flatten()
    true = torch.as_tensor(true_audio, dtype=torch.long).flatten()
    if true.numel() == 0 or true.numel() % L.SLOTS_PER_FRAME:
        raise ValueError(f"true audio must be whole 7-token frames, got {true.numel()} ids")
    end = torch.isin(gen, torch.tensor(L.STREAM_END_IDS)).nonzero()
    region = gen[: int(end[0])] if len(end) else gen
    n = min(region.numel(), true.numel())
    report = L.validate_audio_tokens(region)
    true_frames = true.numel() // L.SLOTS_PER_FRAME
    frames = -(-region.numel() // L.SLOTS_PER_FRAME)
    hit = torch.zeros(true.numel(), dtype=torch.bool)
    hit[:n] = region[:n] == true[:n]
    out = {"token_accuracy": float(hit.sum()) / true.numel(),
           "valid_fraction": report.valid_fraction, "frames": frames, "true_frames": true_frames,
           "length_error": frames - true_frames, "ended": bool(len(end))}
    if modes is not None:
        off = off_mode(true, torch.arange(true.numel()), modes)
        out["off_mode_hits"], out["off_mode_total"] = int((hit & off).sum()), int(off.sum())
    return out


def slot_modes(train_audio: Sequence[Sequence[int]]) -> list[int]:
    """Each slot's most frequent id in ``train_audio`` (audio id lists; slot = position % 7), -1 if unseen."""
    counts = [Counter() for _ in range(L.SLOTS_PER_FRAME)]
    for row in train_audio:
        for j, token in enumerate(row):
            counts[j % L.SLOTS_PER_FRAME][int(token)] += 1
    return [c.most_common(1)[0][0] if c else -1 for c in counts]


def off_mode(targets: torch.Tensor, offsets: torch.Tensor, modes: Sequence[int]) -> torch.Tensor:
    """[N] bool: audio targets (at answer ``offsets``) that differ from their slot's mode.

    Non-audio targets (end_of_speech, end_of_ai, fill) are never counted.
    """
    modes_t = torch.as_tensor(list(modes), dtype=torch.long)
    audio = (targets >= L.AUDIO_OFFSET) & (targets < L.AUDIO_END)
    return audio & (targets != modes_t[offsets.long() % L.SLOTS_PER_FRAME])


def slot_mode_baseline(mode: Sequence[int], heldout_audio: Sequence[Sequence[int]]) -> float:
    """Accuracy on ``heldout_audio`` of predicting, at every position, its slot's most frequent
    training id ``mode[slot]`` (slot = position % 7; see :func:`slot_modes`): what a model that
    ignores the text and the context scores."""
    hits = total = 0
    for row in heldout_audio:
        for j, token in enumerate(row):
            hits += int(int(token) == mode[j % L.SLOTS_PER_FRAME])
            total += 1
    if total == 0:
        raise ValueError("no held-out audio tokens")
    return hits / total
