"""The learning benchmark's measurements (benchmarks/learning.py) and its script (benchmarks/learn_tts.py)."""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from audio_tokenizer import layout as L
from benchmarks.learning import (
    audio_candidates,
    diffusion_nll_bound,
    greedy_decode,
    mask_fixed_ratio,
    masked_accuracy_at_ratio,
    masked_predictions,
    next_token_loss,
    next_token_metrics,
    off_mode,
    slot_mode_baseline,
    slot_modes,
    stream_metrics,
)
from llada_tts.model import tiny_config
from llada_tts.sampling import allowed_ids

ROOT = Path(__file__).resolve().parents[2]
A = L.AUDIO_OFFSET


def audio_id(slot: int, code: int) -> int:
    return A + slot * L.CODEBOOK_SIZE + code


class Oracle(torch.nn.Module):
    """A test model (not ours): logits [B, L, V] = 20 * one_hot(answer) except at ``wrong`` positions,
    where it predicts id 0 instead; uniform (all-zero) logits when ``uniform`` (V = ``vocab``)."""

    def __init__(self, answer: torch.Tensor, wrong: set[int] = frozenset(), uniform: bool = False,
                 vocab: int = L.VOCAB_SIZE):
        super().__init__()
        self.answer, self.wrong, self.uniform, self.vocab = answer, set(wrong), uniform, vocab

    def forward(self, input_ids):
        b, n = input_ids.shape
        logits = torch.zeros(b, n, self.vocab)
        if not self.uniform:
            target = self.answer[:n].clone()
            for p in self.wrong:
                target[p] = 0
            logits[:, torch.arange(n), target] = 20.0

        class Out:
            pass

        out = Out()
        out.logits = logits
        return out


def causal_tiny(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_config(is_causal=True)).eval()


# --- masking at a fixed ratio -------------------------------------------------------------------

def test_mask_fixed_ratio_masks_exact_counts_of_maskable_positions_only():
    maskable = torch.zeros(3, 12, dtype=torch.bool)
    maskable[0, 4:] = True  # 8 maskable
    maskable[1, 8:] = True  # 4 maskable
    gen = torch.Generator().manual_seed(0)
    for ratio, want in ((0.25, [2, 1, 0]), (0.5, [4, 2, 0]), (0.9, [7, 4, 0]), (1.0, [8, 4, 0])):
        m = mask_fixed_ratio(maskable, ratio, gen)
        assert m.sum(dim=1).tolist() == want
        assert not (m & ~maskable).any()


def test_mask_fixed_ratio_masks_at_least_one_and_is_seeded():
    maskable = torch.ones(1, 3, dtype=torch.bool)
    assert mask_fixed_ratio(maskable, 0.01).sum() == 1  # round(0.03) = 0 -> at least one
    big = torch.ones(1, 200, dtype=torch.bool)
    a = mask_fixed_ratio(big, 0.5, torch.Generator().manual_seed(3))
    b = mask_fixed_ratio(big, 0.5, torch.Generator().manual_seed(3))
    c = mask_fixed_ratio(big, 0.5, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="ratio"):
        mask_fixed_ratio(big, 0.0)


def test_masked_accuracy_with_everything_masked_is_the_hand_count():
    ids = torch.tensor([5, 6, 7, 8, audio_id(0, 1), audio_id(1, 2), audio_id(2, 3), audio_id(3, 4),
                        audio_id(4, 5), audio_id(5, 6), L.END_OF_SPEECH_ID, L.END_OF_AI_ID])
    model = Oracle(ids, wrong={4, 7, 11})  # 3 of the 8 answer positions (4..11) predicted wrong
    assert masked_accuracy_at_ratio(model, ids, prompt_length=4, ratio=1.0) == (5, 8)
    # half masked: correct = masked positions outside {4, 7, 11}, recomputed from the same mask draw
    mask = mask_fixed_ratio(torch.arange(12)[None] >= 4, 0.5, torch.Generator().manual_seed(1))[0]
    want = sum(1 for p in mask.nonzero().flatten().tolist() if p not in {4, 7, 11})
    assert masked_accuracy_at_ratio(model, ids, 4, 0.5, torch.Generator().manual_seed(1)) == (want, 4)
    offsets, pred, target = masked_predictions(model, ids, 4, 1.0)
    assert offsets.tolist() == list(range(8)) and torch.equal(target, ids[4:])


def test_masked_accuracy_of_a_real_model_counts_the_masked_tokens():
    model = LlamaForCausalLM(tiny_config(is_causal=False)).eval()
    ids = torch.arange(20) + 1000
    correct, total = masked_accuracy_at_ratio(model, ids, prompt_length=10, ratio=0.5,
                                              generator=torch.Generator().manual_seed(0))
    assert total == 5 and 0 <= correct <= total


# --- ELBO ---------------------------------------------------------------------------------------

def test_diffusion_nll_bound_one_draw_matches_the_formula():
    """draws=1 (LLaDA's estimator, evaluation.likelihood): l of the L answer tokens masked, loss =
    (L / l) * sum of the masked CE, per answer token = the masked CE's mean."""
    import torch.nn.functional as F

    from llada_tts.evaluation.likelihood import draw_masks, stratified_mask_counts

    ids = torch.arange(40) + 100
    model = Oracle(ids, wrong=set(range(10, 40, 3)), vocab=1000)
    got = diffusion_nll_bound(model, ids, prompt_length=10, draws=1, generator=torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)
    masked = draw_masks(stratified_mask_counts(1, 30, gen), 30, gen)[0]  # [30]
    noisy = torch.cat([ids[:10], ids[10:].masked_fill(masked, L.MASK_ID)])
    ce = F.cross_entropy(model(noisy[None]).logits[0, 10:][masked], ids[10:][masked], reduction="none")
    assert got == pytest.approx(float(ce.mean()), rel=1e-5)
    assert ce.max() > 10 > ce.min()  # the draw hit right and wrong positions


def test_diffusion_nll_bound_is_unbiased_for_a_uniform_model():
    """E[sum_masked CE / p_mask] / n = CE: log V nats per token for uniform logits."""
    ids = torch.arange(80) + 100
    got = diffusion_nll_bound(Oracle(ids, uniform=True, vocab=1000), ids, 20, draws=32,
                              generator=torch.Generator().manual_seed(0))
    assert got == pytest.approx(math.log(1000), rel=0.1)


# --- autoregressive -----------------------------------------------------------------------------

def test_next_token_loss_equals_transformers_shifted_loss():
    model = causal_tiny()
    ids = torch.randint(0, 1000, (1, 16))
    labels = ids.clone()
    labels[:, :6] = -100  # prompt of 6: the answer is positions 6..15
    ref = model(input_ids=ids, labels=labels).loss
    maskable = torch.arange(16)[None] >= 6
    loss, ce, hit = next_token_loss(model, ids, maskable, maskable.sum(1).float())
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert ce.shape == (10,) and hit.shape == (10,)
    correct, total, nll = next_token_metrics(model, ids[0], 6)
    assert total == 10 and nll == pytest.approx(ref.item(), rel=1e-5)


def test_next_token_loss_normalises_each_row_by_its_normalizer():
    model = causal_tiny()
    ids = torch.randint(0, 1000, (2, 10))
    maskable = torch.arange(10)[None].expand(2, -1) >= torch.tensor([[3], [6]])
    loss, ce, _ = next_token_loss(model, ids, maskable, torch.tensor([7.0, 4.0]))
    rows = [next_token_loss(model, ids[i:i + 1], maskable[i:i + 1], torch.tensor([n]))[0]
            for i, n in enumerate((7.0, 4.0))]
    assert loss.item() == pytest.approx((rows[0].item() + rows[1].item()) / 2, rel=1e-5)


def _greedy_reference(model, prompt: list[int], n: int, audio: bool) -> list[int]:
    """Greedy decoding without a cache: the whole sequence every step, full-vocabulary logits."""
    seq, out = list(prompt), []
    for j in range(n):
        logits = model(torch.tensor([seq])).logits[0, -1]
        if audio:
            allowed = allowed_ids(j, after_end=False)
            logits = logits.masked_fill(~allowed, -torch.inf)
        token = int(logits.argmax())
        out.append(token)
        seq.append(token)
        if token in L.STREAM_END_IDS:
            break
    return out


@pytest.mark.parametrize("audio", [True, False])
def test_greedy_decode_on_a_cache_matches_the_no_cache_loop(audio):
    model = causal_tiny(seed=1)
    prompt = [L.START_OF_HUMAN_ID, L.BOS_ID, 104, 105, L.END_OF_TEXT_ID, L.END_OF_HUMAN_ID, L.START_OF_AI_ID,
              L.START_OF_SPEECH_ID]
    with torch.no_grad():
        got = greedy_decode(model, prompt, 12, audio=audio).tolist()
        assert got == _greedy_reference(model, prompt, 12, audio)
    if audio:
        for j, token in enumerate(got):
            assert allowed_ids(j, after_end=False)[token]


def test_audio_candidates_match_the_sampler_constraint():
    for offset in (0, 3, 7, 13):
        want = allowed_ids(offset, after_end=False).nonzero().flatten()
        assert torch.equal(audio_candidates(offset).sort().values, want)


# --- free-running metrics -----------------------------------------------------------------------

def frame(codes: list[int]) -> list[int]:
    return [audio_id(s, c) for s, c in enumerate(codes)]


TRUE = frame([1, 2, 3, 4, 5, 6, 7]) + frame([8, 9, 10, 11, 12, 13, 14])  # 2 frames


def test_stream_metrics_exact_length_two_wrong_ids():
    gen = TRUE[:7] + frame([8, 9, 0, 11, 12, 0, 14]) + [L.END_OF_SPEECH_ID, L.PAD_ID]
    m = stream_metrics(gen, TRUE)
    assert m == {"token_accuracy": 12 / 14, "valid_fraction": 1.0, "frames": 2, "true_frames": 2,
                 "length_error": 0, "ended": True}


def test_stream_metrics_invalid_frame_too_long_and_never_ended():
    bad = TRUE[7:].copy()
    bad[3] = audio_id(0, 11)  # slot 3 holding a slot-0 id: that frame is invalid
    gen = TRUE[:7] + bad + frame([0] * 7)
    m = stream_metrics(gen, TRUE)
    assert m["token_accuracy"] == 13 / 14
    assert m["valid_fraction"] == pytest.approx(2 / 3)
    assert (m["frames"], m["length_error"], m["ended"]) == (3, 1, False)


def test_stream_metrics_short_partial_and_empty_streams():
    m = stream_metrics(TRUE[:10] + [L.END_OF_AI_ID], TRUE)  # a frame and 3 ids: 2 frames generated, 1 whole
    assert (m["token_accuracy"], m["frames"], m["length_error"], m["valid_fraction"]) == (10 / 14, 2, 0, 1.0)
    m = stream_metrics([L.END_OF_SPEECH_ID], TRUE)
    assert (m["token_accuracy"], m["frames"], m["length_error"], m["valid_fraction"]) == (0.0, 0, -2, 0.0)
    with pytest.raises(ValueError, match="whole 7-token frames"):
        stream_metrics([], TRUE[:5])


def test_off_mode_accuracy_counts_only_tokens_unlike_the_slot_mode():
    modes = [audio_id(s, s + 1) for s in range(7)]  # frame 1 of TRUE is all modes, frame 2 none
    gen = TRUE[:7] + frame([8, 9, 0, 11, 0, 0, 14])
    m = stream_metrics(gen, TRUE, modes)
    assert (m["off_mode_hits"], m["off_mode_total"]) == (4, 7)
    targets = torch.tensor(TRUE + [L.END_OF_SPEECH_ID])
    assert off_mode(targets, torch.arange(15), modes).tolist() == [False] * 7 + [True] * 7 + [False]


def test_slot_modes_and_baseline_by_hand():
    train = [frame([1, 2, 3, 4, 5, 6, 7]) * 2, frame([1, 0, 3, 4, 5, 6, 0])]
    modes = slot_modes(train)
    assert modes == frame([1, 2, 3, 4, 5, 6, 7])
    held = [frame([1, 2, 0, 0, 5, 6, 7])]  # 5 of 7 positions equal the mode
    assert slot_mode_baseline(slot_modes(train), held) == 5 / 7
    assert slot_modes([]) == [-1] * 7
    with pytest.raises(ValueError):
        slot_mode_baseline(slot_modes(train), [])


# --- the script ---------------------------------------------------------------------------------

def _script():
    spec = importlib.util.spec_from_file_location("learn_tts", ROOT / "benchmarks" / "learn_tts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_rejects_bad_arguments_with_one_line(capsys):
    script = _script()
    for argv, message in ((["--holdout", "0"], "--holdout must be >= 1"), (["--size", "huge"], "--size must be"),
                          (["--budget-seconds", "0"], "--budget-seconds must be > 0")):
        with pytest.raises(SystemExit) as e:
            script.main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_canvas_is_true_length_plus_margin_in_whole_blocks():
    script = _script()
    assert script.canvas_frames(40, 4, 0.25) == 52  # 40 + 10 = 50 -> 52
    assert script.canvas_frames(3, 4, 0.0) == 4  # at least one extra frame, then whole blocks


@pytest.mark.bench
def test_smoke_run_writes_both_models_with_valid_values(tmp_path):
    out = tmp_path / "learn.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "learn_tts.py"), "--smoke", "--out", str(out),
                           "--work-dir", str(tmp_path / "work")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| metric (held-out) | diffusion (LLaDA) | autoregressive |" in proc.stdout
    res = json.loads(out.read_text())
    assert res["data"]["heldout_rows"] == 2 and 0.0 <= res["baseline"]["slot_mode_accuracy"] <= 1.0
    d, a = res["models"]["diffusion"], res["models"]["autoregressive"]
    for m in (d, a):
        assert m["params"]["non_embedding"] == 74_048  # the "tiny" size, both models
        assert m["params"]["total"] == m["params"]["non_embedding"] + L.VOCAB_SIZE * 64
        assert m["train"]["steps"] == 3 and m["train"]["final_loss"] > 0
        assert m["eval"]["nll_per_token"] > 0
        for mode in ("constrained", "free"):
            e = m["eval"][mode]
            for key in ("token_accuracy", "valid_fraction", "ended_fraction"):
                assert 0.0 <= e[key] <= 1.0, (mode, key, e[key])
            assert e["length_error_abs"] >= abs(e["length_error_mean"])
            assert len(e["per_sentence"]) == 2
        for one in m["eval"]["constrained"]["per_sentence"]:  # constrained: whole valid frames, or none at all
            assert one["valid_fraction"] == (1.0 if one["frames"] else 0.0)
    for r in (0.25, 0.5, 0.9):
        assert 0.0 <= d["eval"][f"masked_acc_{r}"] <= 1.0
    assert 0.0 <= a["eval"]["next_token_acc"] <= 1.0
