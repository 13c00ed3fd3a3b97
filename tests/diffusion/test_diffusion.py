"""Diffusion math against hand-computed values and LLaDA's reference formulas."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from audio_tokenizer import layout as L
from llada_tts.diffusion import (
    crop_normalizer,
    forward_process,
    loss_breakdown,
    mask_prompt,
    masked_diffusion_loss,
    random_length,
    random_length_crop,
)
from llada_tts.training.step import accuracy_counts

MASK = 99
# B=2, L=3, V=5
LOGITS = torch.tensor([
    [[2.0, 1.0, 0.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 3.0, -2.0, 0.0, 0.0]],
    [[0.0, 0.0, 0.0, 0.0, 0.0], [-1.0, 0.5, 0.25, 2.0, 1.0], [4.0, 0.0, 0.0, 0.0, 0.0]],
])
TARGETS = torch.tensor([[0, 3, 1], [2, 3, 4]])
MASKED = torch.tensor([[True, False, True], [False, True, True]])
P_MASK = torch.tensor([[0.5] * 3, [0.25] * 3])


def ce(row: list[float], target: int) -> float:
    return math.log(sum(math.exp(x) for x in row)) - row[target]


def hand_weighted() -> list[list[float]]:
    w = [[0.0] * 3 for _ in range(2)]
    for b in range(2):
        for pos in range(3):
            if MASKED[b, pos]:
                w[b][pos] = ce(LOGITS[b, pos].tolist(), int(TARGETS[b, pos])) / float(P_MASK[b, pos])
    return w


def test_loss_matches_hand_computation():
    w = hand_weighted()
    # row 0: positions 0, 2 at p=0.5; row 1: positions 1, 2 at p=0.25
    assert w[0][0] == pytest.approx((math.log(math.exp(2) + math.e + 1 + math.exp(-1) + math.exp(0.5)) - 2) / 0.5)
    loss, weighted = masked_diffusion_loss(LOGITS, TARGETS, MASKED, P_MASK, torch.tensor([3.0, 2.0]))
    torch.testing.assert_close(weighted, torch.tensor(w), rtol=1e-6, atol=1e-6)
    want = (sum(w[0]) / 3.0 + sum(w[1]) / 2.0) / 2
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert weighted.dtype == torch.float32 and weighted[~MASKED].eq(0).all()


def _reference_pretrain(logits, ids, m, p_mask):
    """LLaDA GUIDELINES pretraining loss."""
    token_loss = F.cross_entropy(logits[m], ids[m], reduction="none") / p_mask[m]
    return token_loss.sum() / (ids.shape[0] * ids.shape[1])


def _reference_sft(logits, ids, m, p_mask, prompt_lengths):
    """LLaDA GUIDELINES SFT loss (answer length includes trailing EOS fill)."""
    b, seq_len = ids.shape
    prompt_mask = torch.arange(seq_len)[None, :] < prompt_lengths[:, None]
    answer_lengths = torch.sum((1 - prompt_mask.int()), dim=-1, keepdim=True).repeat(1, seq_len)
    token_loss = F.cross_entropy(logits[m], ids[m], reduction="none") / p_mask[m]
    return torch.sum(token_loss / answer_lengths[m]) / b


def test_normalizer_L_is_pretraining_and_answer_length_is_sft():
    g = torch.Generator().manual_seed(0)
    b, seq_len, v = 4, 11, 13
    logits = torch.randn(b, seq_len, v, generator=g)
    ids = torch.randint(0, v, (b, seq_len), generator=g)
    prompt_lengths = torch.tensor([0, 3, 5, 10])
    maskable = torch.arange(seq_len)[None, :] >= prompt_lengths[:, None]
    _, m, p = forward_process(ids, torch.ones_like(maskable), MASK, generator=g)
    loss, _ = masked_diffusion_loss(logits, ids, m, p, torch.full((b,), float(seq_len)))
    torch.testing.assert_close(loss, _reference_pretrain(logits, ids, m, p))
    _, m, p = forward_process(ids, maskable, MASK, generator=g)
    assert m.any()
    loss, _ = masked_diffusion_loss(logits, ids, m, p, (seq_len - prompt_lengths).float())
    torch.testing.assert_close(loss, _reference_sft(logits, ids, m, p, prompt_lengths))


def test_bf16_logits_give_float32_loss_and_gradients():
    logits = LOGITS.to(torch.bfloat16).requires_grad_()
    loss, weighted = masked_diffusion_loss(logits, TARGETS, MASKED, P_MASK, torch.tensor([3.0, 3.0]))
    ref, _ = masked_diffusion_loss(LOGITS.to(torch.bfloat16).float(), TARGETS, MASKED, P_MASK, torch.tensor([3.0, 3.0]))
    assert loss.dtype == torch.float32 and weighted.dtype == torch.float32
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    loss.backward()
    assert logits.grad.dtype == torch.bfloat16
    assert logits.grad[~MASKED].eq(0).all() and logits.grad[MASKED].abs().sum() > 0


def test_nothing_masked_gives_zero_loss_that_backpropagates():
    logits = LOGITS.clone().requires_grad_()
    none = torch.zeros_like(MASKED)
    loss, weighted = masked_diffusion_loss(logits, TARGETS, none, P_MASK, torch.tensor([3.0, 3.0]))
    assert loss.item() == 0.0 and weighted.eq(0).all()
    loss.backward()
    assert logits.grad.eq(0).all()


@pytest.mark.parametrize("normalizer", [[3.0, 0.0], [3.0, -1.0]])
def test_loss_rejects_non_positive_normalizer(normalizer):
    with pytest.raises(ValueError, match="normalizer"):
        masked_diffusion_loss(LOGITS, TARGETS, MASKED, P_MASK, torch.tensor(normalizer))


def test_loss_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="targets"):
        masked_diffusion_loss(LOGITS, TARGETS[:, :2], MASKED, P_MASK, torch.tensor([3.0, 3.0]))


def test_prompt_never_masked_and_noisy_ids_exact():
    g = torch.Generator().manual_seed(1)
    b, seq_len = 16, 24
    ids = torch.randint(0, 50, (b, seq_len), generator=g)
    prompt = torch.randint(0, seq_len, (b,), generator=g)
    maskable = torch.arange(seq_len)[None, :] >= prompt[:, None]
    seen = torch.zeros(b, seq_len, dtype=torch.bool)
    for _ in range(200):
        noisy, m, p = forward_process(ids, maskable, MASK, generator=g)
        assert not (m & ~maskable).any()
        assert torch.equal(noisy, torch.where(m, torch.full_like(ids, MASK), ids))
        assert torch.equal(p, p[:, :1].expand(b, seq_len)) and p.dtype == torch.float32
        seen |= m
    assert torch.equal(seen, maskable)  # every answer position gets masked at some point
    _, m, _ = forward_process(ids, maskable, MASK, t=torch.ones(b))
    assert torch.equal(m, maskable)  # t = 1 masks the whole answer


def test_empirical_mask_rate_matches_p_mask():
    g = torch.Generator().manual_seed(2)
    ids = torch.zeros(4, 50_000, dtype=torch.long)
    t = torch.tensor([0.1, 0.3, 0.6, 0.9])
    _, m, p = forward_process(ids, torch.ones_like(ids, dtype=torch.bool), MASK, generator=g, t=t)
    want = 0.999 * t + 0.001
    torch.testing.assert_close(p[:, 0], want)
    rate = m.float().mean(dim=1)
    assert (rate - want).abs().max() < 0.01  # 4 binomial std devs at n = 50k
    _, _, p = forward_process(torch.zeros(20_000, 1, dtype=torch.long), torch.ones(20_000, 1, dtype=torch.bool),
                              MASK, generator=g)
    assert abs(p.mean().item() - 0.5) < 0.01 and p.min() >= 0.001 and p.max() <= 1.0  # t ~ U(0, 1)


def test_eps_bounds_p_mask():
    ids = torch.zeros(2, 3, dtype=torch.long)
    _, _, p = forward_process(ids, torch.ones(2, 3, dtype=torch.bool), MASK, eps=1e-3, t=torch.tensor([0.0, 1.0]))
    assert p[0].tolist() == [pytest.approx(1e-3)] * 3 and p[1].tolist() == [1.0] * 3
    with pytest.raises(ValueError, match="eps"):
        forward_process(ids, torch.ones(2, 3, dtype=torch.bool), MASK, eps=0.0)
    with pytest.raises(ValueError, match="t must"):
        forward_process(ids, torch.ones(2, 3, dtype=torch.bool), MASK, t=torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="maskable"):
        forward_process(ids, torch.ones(2, 3), MASK)


def test_generator_determinism():
    ids = torch.arange(600).reshape(6, 100)
    maskable = torch.ones_like(ids, dtype=torch.bool)
    a = forward_process(ids, maskable, MASK, generator=torch.Generator().manual_seed(7))
    b = forward_process(ids, maskable, MASK, generator=torch.Generator().manual_seed(7))
    c = forward_process(ids, maskable, MASK, generator=torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[1], c[1])
    # the draws are exactly: t = rand(B), then u = rand(B, L); masked = u < p_mask
    g = torch.Generator().manual_seed(7)
    t = torch.rand(6, generator=g)
    u = torch.rand(6, 100, generator=g)
    assert torch.equal(a[1], u < ((1 - 1e-3) * t + 1e-3)[:, None])


def test_random_length_crop_matches_reference_draws():
    ids = torch.arange(40).reshape(4, 10)
    for seed in range(50):
        out = random_length_crop(ids, prob=0.3, generator=torch.Generator().manual_seed(seed))
        g = torch.Generator().manual_seed(seed)
        coin, n = torch.rand(1, generator=g), torch.randint(1, 11, (1,), generator=g)
        want = ids[:, : int(n)] if coin < 0.3 else ids
        assert torch.equal(out, want)
    assert random_length_crop(ids, prob=0.0) is ids


def test_random_length_crop_rate_and_length_range():
    ids = torch.zeros(2, 5, dtype=torch.long)
    g = torch.Generator().manual_seed(3)
    lengths = [random_length_crop(ids, prob=1.0, generator=g).shape[1] for _ in range(500)]
    assert set(lengths) == {1, 2, 3, 4, 5}
    cropped = sum(random_length_crop(ids, prob=0.01, generator=g).shape[1] < 5 for _ in range(10_000))
    # P(crop and length < 5) = 0.01 * 4/5 = 0.008: 80 expected, std ~9
    assert 45 <= cropped <= 115


def test_crop_normalizer():
    out = crop_normalizer(torch.tensor([0, 3, 9, 2]), torch.tensor([True, False, False, False]), 8)
    assert out.tolist() == [8.0, 5.0, 1.0, 6.0] and out.dtype == torch.float32
    per_row = crop_normalizer(torch.tensor([0, 3, 9, 2]), torch.tensor([True, False, False, False]),
                              torch.tensor([5, 8, 12, 2]))
    assert per_row.tolist() == [5.0, 5.0, 3.0, 1.0]


def test_random_length_draws_like_the_crop():
    for seed in range(30):
        n = random_length(10, 0.3, torch.Generator().manual_seed(seed))
        assert n == random_length_crop(torch.zeros(2, 10), 0.3, torch.Generator().manual_seed(seed)).shape[1]
    assert random_length(7, 0.0) == 7


def test_mask_prompt_masks_each_rows_prompt_only():
    ids = torch.arange(12).reshape(2, 6)
    assert mask_prompt(ids, torch.tensor([2, 0]), MASK).tolist() == [[MASK, MASK, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    assert mask_prompt(ids, 3, MASK).tolist() == [[MASK] * 3 + [3, 4, 5], [MASK] * 3 + [9, 10, 11]]
    assert ids[0, 0] == 0  # a new tensor


def test_loss_breakdown_text_vs_audio():
    a = L.AUDIO_OFFSET
    targets = torch.tensor([[10, a, a + 5, L.END_OF_SPEECH_ID], [L.AUDIO_END - 1, L.AUDIO_END, 7, a + 1]])
    masked = torch.tensor([[True, True, False, True], [True, True, True, False]])
    weighted = torch.tensor([[1.0, 2.0, 0.0, 4.0], [8.0, 16.0, 32.0, 0.0]])
    out = loss_breakdown(weighted, targets, masked, L.AUDIO_OFFSET, L.AUDIO_END)
    # audio: (0,1)=2, (1,0)=8; text: 1, 4 (end_of_speech), 16 (mask id is not audio), 32
    assert out["audio_sum"].item() == 10.0 and out["audio_count"].item() == 2
    assert out["text_sum"].item() == 53.0 and out["text_count"].item() == 4
    assert out["audio_loss"].item() == 5.0 and out["text_loss"].item() == 53.0 / 4
    assert out["text_sum"] + out["audio_sum"] == weighted[masked].sum()
    empty = loss_breakdown(weighted, targets, torch.zeros_like(masked), L.AUDIO_OFFSET, L.AUDIO_END)
    assert empty["audio_loss"].item() == 0.0 and empty["audio_count"].item() == 0
    assert out["fill_count"].item() == 0  # no fill given


def test_loss_breakdown_keeps_fill_out_of_text():
    a = L.AUDIO_OFFSET
    targets = torch.tensor([[10, a, L.END_OF_SPEECH_ID, L.PAD_ID, L.PAD_ID]])
    masked = torch.tensor([[True, True, True, True, False]])
    fill = torch.tensor([[False, False, False, True, True]])
    weighted = torch.tensor([[1.0, 2.0, 4.0, 8.0, 0.0]])
    out = loss_breakdown(weighted, targets, masked, L.AUDIO_OFFSET, L.AUDIO_END, fill=fill)
    assert (out["text_sum"].item(), out["text_count"].item()) == (5.0, 2)
    assert (out["audio_sum"].item(), out["fill_sum"].item(), out["fill_count"].item()) == (2.0, 8.0, 1)
    pred = torch.full((4,), L.PAD_ID)  # the masked positions all predicted as pad
    acc = accuracy_counts(pred, targets[masked], fill[masked])
    assert (acc["fill_correct"].item(), acc["fill_total"].item(), acc["text_total"].item()) == (1, 1, 2)


def test_accuracy_counts_overall_and_per_type():
    a = L.AUDIO_OFFSET
    target = torch.tensor([5, a, a + 9, 7, L.PAD_ID])
    pred = torch.tensor([5, a, a + 1, 8, L.PAD_ID])
    fill = torch.tensor([False, False, False, False, True])
    out = {k: int(v) for k, v in accuracy_counts(pred, target, fill).items()}
    assert out == {"all_correct": 3, "all_total": 5, "text_correct": 1, "text_total": 2,
                   "audio_correct": 1, "audio_total": 2, "fill_correct": 1, "fill_total": 1}


@pytest.mark.gpu
def test_cuda_tensors_with_cpu_generator_and_bf16_logits():
    ids = torch.randint(0, 5, (3, 8), device="cuda")
    maskable = torch.ones_like(ids, dtype=torch.bool)
    noisy, m, p = forward_process(ids, maskable, MASK, generator=torch.Generator().manual_seed(0))
    cpu = forward_process(ids.cpu(), maskable.cpu(), MASK, generator=torch.Generator().manual_seed(0))
    assert noisy.device.type == m.device.type == p.device.type == "cuda"
    assert torch.equal(m.cpu(), cpu[1]) and torch.equal(noisy.cpu(), cpu[0])
    logits = torch.randn(3, 8, 5, device="cuda", dtype=torch.bfloat16)
    loss, _ = masked_diffusion_loss(logits, ids, m, p, torch.full((3,), 8.0, device="cuda"))
    ref, _ = masked_diffusion_loss(logits.float().cpu(), ids.cpu(), m.cpu(), p.cpu(), torch.full((3,), 8.0))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
