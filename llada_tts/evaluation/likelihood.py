"""LLaDA's Monte Carlo ELBO: an upper bound on a masked-diffusion model's negative log-likelihood.

For an answer of L tokens after a prompt (the prompt is never masked), LLaDA (arXiv:2502.09992,
Eq. 6 and Appendix B.5; ``get_log_likelihood.py`` of the official repository) bounds

    -log p(answer | prompt) <= E_{l ~ U{1..L}} E_{l of L answer tokens masked} [ L / l * sum_masked CE ]

where CE is the model's cross-entropy at each masked position, given the partly masked sequence.
This is the same bound as the training loss's E_t[1/t sum_masked CE] (mask ratio t = l / L) with
lower variance: exactly l tokens are masked and l is *stratified* over the draws, as in
``get_log_likelihood.py``: l_i = ((k + i * L / n) rounded - 1) mod L + 1 for draws i = 0 .. n-1
from one random start k in 1..L. Here the strata span all ``mc_samples`` draws (upstream spans one
batch of ``batch_size``; the same when mc_samples == batch_size), so ``batch_size`` changes memory
and speed only, not the draws (the estimate is equal up to float rounding).

    elbo_nll(model, prompt_ids, answer_ids, mc_samples=128, batch_size=32, generator=...) -> ElboEstimate
    stratified_mask_counts(n, L, generator) / draw_masks(counts, L, generator)     the noise draws
    bits_per_byte(nll_nats, n_bytes)
    score_report(model, rows, mc_samples=128, batch_size=32, seed=0)    rows of ``records.score_rows``

``llada-tts score`` reports it per token and in bits per byte (``score_report``); the learning
benchmark's ``diffusion_nll_bound`` (``benchmarks/learning.py``) is ``elbo_nll(...).per_token``.

Bits per byte: the bound in bits over the UTF-8 bytes of the scored text. For text and conversation
rows the scored ids end with the end-of-text / end-of-turn token, whose NLL is in the bound (the
model must also predict that the text ends there) while it adds no bytes; each row's ``end_token``
says so. The figure is therefore slightly above one over the text alone (by that one token's NLL
over the row's bytes), as a byte-level model that also predicts the end would be.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from audio_tokenizer import layout as L

HEAD_CHUNK = 512  # masked positions projected onto the vocabulary at once (512 x 156940 fp32 = 320 MB)


@dataclass
class ElboEstimate:
    """The bound for one answer: ``nll`` nats for the whole answer (mean over the draws),
    ``tokens`` answer tokens, ``stderr`` the standard error of ``nll`` (from the spread of the
    per-draw estimates; conservative, as stratified draws vary less than independent ones; 0 for
    one draw) and ``draws`` the per-draw estimates [mc_samples]."""

    nll: float
    tokens: int
    stderr: float
    draws: torch.Tensor

    @property
    def per_token(self) -> float:
        return self.nll / self.tokens


def stratified_mask_counts(n: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[n] int64 masked-token counts in 1..length, evenly spread from one random start (LLaDA's
    ``forward_process`` in ``get_log_likelihood.py``): round(linspace(k, k + (n-1) * length / n, n)),
    wrapped into 1..length."""
    if n < 1 or length < 1:
        raise ValueError(f"need at least one draw and one answer token, got n={n}, length={length}")
    k = torch.randint(1, length + 1, (), generator=generator)
    x = torch.round(torch.linspace(float(k), float(k) + (n - 1) * (length / n), steps=n)).long()
    return (x - 1) % length + 1


def draw_masks(counts: torch.Tensor, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[n, length] bool: row i masks ``counts[i]`` positions chosen uniformly (a random permutation per row)."""
    rows = [torch.randperm(length, generator=generator) < int(c) for c in counts]
    return torch.stack(rows)


def _masked_ce(model, noisy: torch.Tensor, masked: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[N] float32 cross-entropy at the ``masked`` [B, T] positions of ``noisy`` [B, T] against
    ``targets`` [N]. A transformers ``*ForCausalLM`` runs its decoder once and its head only on the
    masked positions, ``HEAD_CHUNK`` at a time; any other mask predictor: ``model(x).logits``.
    A compact-embedding model (``adapters``) takes full ids but its logits index its rows, so its
    targets become rows too."""
    from llada_tts.model import adapters

    lut = adapters.row_lookup_of(model) if hasattr(model, "model") else None
    if lut is not None:
        targets = adapters.to_rows(targets, lut)
    head = model.get_output_embeddings() if callable(getattr(model, "get_output_embeddings", None)) else None
    if head is None or not hasattr(model, "model"):
        logits = model(noisy).logits[masked]  # [N, V]
        return F.cross_entropy(logits.float(), targets, reduction="none")
    hidden = model.model(input_ids=noisy).last_hidden_state[masked]  # [N, H]
    return torch.cat([F.cross_entropy(head(h).float(), t, reduction="none")
                      for h, t in zip(hidden.split(HEAD_CHUNK), targets.split(HEAD_CHUNK))])


@torch.no_grad()
def elbo_nll(model, prompt_ids, answer_ids, mc_samples: int = 128, batch_size: int = 32,
             generator: torch.Generator | None = None, mask_id: int = L.MASK_ID) -> ElboEstimate:
    """LLaDA's Monte Carlo ELBO bound on -log p(answer | prompt), in nats (see the module docstring).

    prompt_ids [P] (may be empty: the whole sequence is scored) and answer_ids [L >= 1], any int
    sequences. ``mc_samples`` draws (stratified mask counts), ``batch_size`` of them per forward pass.
    All draws come from ``generator`` (on the CPU), so a seeded generator reproduces the draws
    whatever ``batch_size`` is. Each draw's estimate is (L / l) * sum of the CE at its l masked
    answer positions.
    """
    if mc_samples < 1 or batch_size < 1:
        raise ValueError(f"mc_samples and batch_size must be >= 1, got {mc_samples} and {batch_size}")
    try:
        device = next(model.parameters()).device
    except (AttributeError, StopIteration):
        device = torch.device("cpu")
    prompt = torch.as_tensor(prompt_ids, dtype=torch.long).flatten()
    answer = torch.as_tensor(answer_ids, dtype=torch.long).flatten()
    n = answer.numel()
    if n == 0:
        raise ValueError("the answer is empty: nothing to score")
    if bool((torch.cat([prompt, answer]) == mask_id).any()):
        raise ValueError(f"the sequence contains the mask id {mask_id}: it must be fully observed")
    counts = stratified_mask_counts(mc_samples, n, generator)  # [mc]
    masks = draw_masks(counts, n, generator)  # [mc, n]
    seq = torch.cat([prompt, answer]).to(device)  # [T]
    estimates = []
    for lo in range(0, mc_samples, batch_size):
        m = masks[lo:lo + batch_size].to(device)  # [b, n]
        b = m.shape[0]
        masked = torch.cat([torch.zeros(b, prompt.numel(), dtype=torch.bool, device=device), m], dim=1)  # [b, T]
        batch = seq.expand(b, -1)
        noisy = batch.masked_fill(masked, mask_id)
        ce = _masked_ce(model, noisy, masked, batch[masked])  # [N], row-major over the batch
        rows = masked.nonzero(as_tuple=True)[0]  # [N]
        per_draw = torch.zeros(b, dtype=torch.float64, device=device).index_add_(0, rows, ce.double())
        estimates.append((per_draw * (n / counts[lo:lo + b].to(device).double())).cpu())
    draws = torch.cat(estimates)  # [mc]
    stderr = float(draws.std(unbiased=True) / math.sqrt(mc_samples)) if mc_samples > 1 else 0.0
    return ElboEstimate(nll=float(draws.mean()), tokens=n, stderr=stderr, draws=draws)


def bits_per_byte(nll_nats: float, n_bytes: int) -> float | None:
    """Nats over ``n_bytes`` UTF-8 bytes as bits per byte (None without bytes)."""
    return nll_nats / math.log(2) / n_bytes if n_bytes > 0 else None


def score_report(model, rows: list[dict], mc_samples: int = 128, batch_size: int = 32, seed: int = 0) -> dict:
    """The report of ``llada-tts score``: per row and in total, the ELBO bound in nats, per token, and
    in bits per byte. ``rows``: ``{"where", "prompt", "answer", "bytes", "end_token"}`` (``records.score_rows``).

    One generator seeded with ``seed`` draws every row's masks in order, so the same rows and seed
    give the same numbers. stderr values are the standard errors of the Monte Carlo estimate."""
    if not rows:
        raise ValueError("no records to score: the input is empty")
    generator = torch.Generator().manual_seed(seed)
    per_row, total, tokens, variance = [], 0.0, 0, 0.0
    for row in rows:
        est = elbo_nll(model, row["prompt"], row["answer"], mc_samples=mc_samples, batch_size=batch_size,
                       generator=generator)
        total, tokens, variance = total + est.nll, tokens + est.tokens, variance + est.stderr ** 2
        per_row.append({"where": row["where"], "tokens": est.tokens, "bytes": row["bytes"],
                        "end_token": bool(row.get("end_token", False)),
                        "nll": est.nll, "nll_per_token": est.per_token, "nll_per_token_stderr": est.stderr / est.tokens,
                        "bits_per_byte": None if row["bytes"] is None else bits_per_byte(est.nll, row["bytes"])})
    n_bytes = None if any(r["bytes"] is None for r in rows) else sum(r["bytes"] for r in rows)
    per_token = total / tokens
    return {"rows": len(rows), "tokens": tokens, "bytes": n_bytes, "mc_samples": mc_samples, "seed": seed,
            "nll": total, "nll_per_token": per_token, "nll_per_token_stderr": math.sqrt(variance) / tokens,
            "perplexity_bound": math.exp(min(per_token, 700.0)),
            "bits_per_byte": None if not n_bytes else bits_per_byte(total, n_bytes),
            "per_row": per_row}
