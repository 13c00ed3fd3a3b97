"""Audio-aware decoding: slot constraints give valid SNAC streams, origin growth and stopping,
canvas-length estimates."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from audio_tokenizer import layout as L
from llada_tts.model import create_model, tiny_config
from llada_tts.sampling import (
    AUDIO_END_IDS,
    SamplerConfig,
    allowed_ids,
    canvas_frames,
    chars_per_second,
    estimate_frames,
    frames_for_duration,
    sample,
)
from llada_tts.sampling.constraints import committed_end_before, end_allowed, slot_candidates

PROMPT = L.tts_prompt_ids([L.BOS_ID, 104, 105, 33])  # start_of_human ... start_of_speech (8 ids)


@pytest.fixture(scope="module")
def model():
    return create_model(tiny_config(), seed=0).eval()


class EndAfter(torch.nn.Module):
    """A real tiny model whose ``end_ids[row]`` logit (default end_of_speech) gets +100 at canvas
    columns >= at[row]."""

    def __init__(self, inner, at: list[int], end_ids: list[int] | None = None):
        super().__init__()
        self.inner, self.at, self.end_ids = inner, at, end_ids or [L.END_OF_SPEECH_ID]

    def forward(self, input_ids, **kwargs):
        logits = self.inner(input_ids, **kwargs).logits.clone()  # [B', T, V]
        for j in range(logits.shape[0]):
            logits[j, self.at[j % len(self.at)]:, self.end_ids[j % len(self.end_ids)]] += 100.0
        return SimpleNamespace(logits=logits)


# --- constraint tables ---------------------------------------------------------------------------

def test_slot_candidates_table():
    cand = slot_candidates()
    assert cand.shape == (7, 4099)
    for s in range(7):
        lo, hi = L.slot_band(s)
        assert cand[s, :4096].tolist() == list(range(lo, hi))
        assert cand[s, 4096:].tolist() == [L.END_OF_SPEECH_ID, L.END_OF_AI_ID, L.PAD_ID]
    assert not (cand == L.MASK_ID).any()


def test_end_allowed_only_at_frame_starts_or_after_an_end():
    M, E = L.MASK_ID, L.END_OF_SPEECH_ID
    audio = torch.full((2, 21), M)
    audio[1, 14] = E  # row 1: an end committed at frame 2
    allowed = end_allowed(audio)
    assert allowed[0].nonzero().flatten().tolist() == [0, 7, 14]
    assert allowed[1].nonzero().flatten().tolist() == [0, 7, 14, 15, 16, 17, 18, 19, 20]
    assert committed_end_before(audio)[1].nonzero().flatten().tolist() == list(range(15, 21))
    a = allowed_ids(3, after_end=False)
    assert a.sum() == 4096 and a[L.slot_band(3)[0]] and not a[E] and not a[L.MASK_ID]
    assert allowed_ids(3, after_end=True).sum() == 4099 and allowed_ids(7, after_end=False)[E]


def test_canvas_length_estimates_hand_values():
    assert frames_for_duration(10.0) == 118  # 117.19 frames, rounded up
    assert frames_for_duration(3 * 2048 / 24000) == 3
    text = "x" * 140  # 140 chars at 14 chars/s = 10 s; x1.2 = 12 s = 140.625 frames
    assert estimate_frames(text, chars_per_second=14.0) == 141
    assert estimate_frames(text, chars_per_second=14.0, margin=1.0) == 118
    assert estimate_frames("  hi  ", chars_per_second=2.0, margin=1.0) == 12  # 1 s -> 11.72 -> 12
    assert estimate_frames("") == 1
    assert chars_per_second(["abcd", "ef"], [1.0, 2.0]) == 2.0
    assert canvas_frames(text, duration=2.0) == 24 and canvas_frames(text, chars_per_second=14.0) == 141
    with pytest.raises(ValueError, match="chars_per_second"):
        estimate_frames("hi", chars_per_second=0)
    with pytest.raises(ValueError, match="duration"):
        frames_for_duration(0)


# --- validity ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, block", [("fixed_length", 70), ("semi_autoregressive_padding", 14)])
def test_constrained_output_is_a_valid_snac_stream_and_unconstrained_is_not(model, method, block):
    base = dict(method=method, gen_length=70, block_length=block, steps=10)
    on = sample(model, PROMPT, SamplerConfig(audio=True, **base))
    gen = on.generated[0]
    assert not (gen == L.MASK_ID).any()
    report = L.validate_audio_tokens(torch.cat([torch.tensor(PROMPT), gen]))
    assert report.ok and report.frames_kept == on.audio[0].numel() // 7 and report.trailing_tokens == 0
    off = sample(model, PROMPT, SamplerConfig(audio=False, **base))
    assert not L.validate_audio_tokens(off.generated[0]).ok  # the check can fail


def test_banded_head_equals_full_vocabulary_constraints(model):
    """Projecting onto each slot's candidates = masking the full-vocabulary logits."""
    cfg = SamplerConfig(method="semi_autoregressive_padding", gen_length=42, block_length=14, steps=9, audio=True)
    banded = sample(model, [PROMPT, PROMPT[2:]], cfg)
    full = sample(model, [PROMPT, PROMPT[2:]], cfg, full_logits=True)
    assert torch.equal(banded.sequences, full.sequences)


def test_first_stream_end_is_on_a_frame_boundary_and_trims_there(model):
    P = len(PROMPT)
    boosted = EndAfter(model, at=[P + 31])  # end_of_speech favoured from audio offset 31 (slot 3)
    res = sample(boosted, PROMPT, SamplerConfig(method="semi_autoregressive_padding", gen_length=42,
                                                block_length=14, steps=21, audio=True))
    gen = res.generated[0]
    assert int((gen == L.END_OF_SPEECH_ID).nonzero()[0]) == 35  # next slot-0 position at or after 31
    assert res.audio[0].numel() == 35
    report = L.validate_audio_tokens(gen)
    assert report.ok and report.frames_kept == 5 and report.ended_by == L.END_OF_SPEECH_ID
    assert torch.isin(gen[35:], torch.tensor(AUDIO_END_IDS)).all()  # trailing fill after the end


# --- semi-autoregressive origin --------------------------------------------------------------------

def _never_changes_committed(canvases: list[torch.Tensor]) -> bool:
    for before, after in zip(canvases, canvases[1:]):
        n = before.shape[1]
        done = before != L.MASK_ID
        if not torch.equal(after[:, :n][done], before[done]):
            return False
    return True


def test_origin_grows_until_end_of_speech_and_never_repredicts(model):
    P = len(PROMPT)
    boosted = EndAfter(model, at=[P + 31, P + 10_000])  # row 0 ends in block 3, row 1 never
    canvases = []
    cfg = SamplerConfig(method="semi_autoregressive_origin", gen_length=70, block_length=14, steps=15, audio=True)
    res = sample(boosted, [PROMPT, PROMPT], cfg, on_step=lambda x: canvases.append(x.clone()))
    assert _never_changes_committed(canvases)
    assert [c.shape[1] - P for c in canvases][::3] == [14, 28, 42, 56, 70]  # one block at a time
    assert res.generated.shape == (2, 70) and res.nfe == 15
    row0 = res.generated[0]
    assert int((row0 == L.END_OF_SPEECH_ID).nonzero()[0]) == 35
    assert (row0[42:] == L.PAD_ID).all()  # blocks after the stop are filled, not predicted
    assert res.audio[0].numel() == 35 and res.audio[1].numel() == 70

    alone = sample(EndAfter(model, at=[P + 31]), PROMPT, cfg)
    assert alone.generated.shape == (1, 42) and alone.nfe == 9  # stops after the block with the end
    assert torch.equal(alone.generated[0], row0[:42])


def test_origin_with_hf_model_and_cache_keeps_committed_tokens(model):
    canvases = []
    cfg = SamplerConfig(method="semi_autoregressive_origin", gen_length=42, block_length=14, steps=42,
                        audio=True, threshold=0.9, use_cache=True)
    res = sample(model, PROMPT, cfg, on_step=lambda x: canvases.append(x.clone()))
    assert _never_changes_committed(canvases)
    assert res.generated.shape == (1, 42) and L.validate_audio_tokens(res.generated[0]).ok


def test_stop_at_end_fills_the_rest(model):
    P = len(PROMPT)
    cfg = SamplerConfig(method="semi_autoregressive_padding", gen_length=70, block_length=14, steps=35,
                        audio=True, stop_at_end=True)
    res = sample(EndAfter(model, at=[P + 3]), PROMPT, cfg)
    gen = res.generated[0]
    assert int((gen == L.END_OF_SPEECH_ID).nonzero()[0]) == 7
    assert (gen[14:] == L.PAD_ID).all() and res.nfe == 7  # only the first block was decoded


@pytest.mark.parametrize("method", ["semi_autoregressive_padding", "semi_autoregressive_origin"])
def test_rows_that_stop_early_get_their_kinds_fill(model, method):
    """A text answer ends with end_of_text and continues with end_of_text, speech with pad, as in training."""
    P = len(PROMPT)
    cfg = SamplerConfig(method=method, gen_length=48, block_length=8, steps=12, stop_at_end=True)
    ends = [L.END_OF_TEXT_ID, L.END_OF_SPEECH_ID]
    res = sample(EndAfter(model, at=[P + 3, P + 5], end_ids=ends), [PROMPT, PROMPT], cfg)
    gen = res.generated
    assert gen.shape == (2, 8) if method == "semi_autoregressive_origin" else gen.shape == (2, 48)
    first = [int(torch.isin(row, torch.tensor(L.STREAM_END_IDS)).nonzero()[0]) for row in gen]
    assert first[0] <= 3 and gen[0, first[0]] == L.END_OF_TEXT_ID and first[1] <= 5
    if method == "semi_autoregressive_padding":
        assert (gen[0, 8:] == L.END_OF_TEXT_ID).all() and (gen[1, 8:] == L.PAD_ID).all()
    explicit = sample(EndAfter(model, at=[P + 3], end_ids=[L.END_OF_TEXT_ID]), PROMPT,
                      SamplerConfig(**{**cfg.__dict__, "method": "semi_autoregressive_padding", "fill_id": L.PAD_ID}))
    assert (explicit.generated[0, 8:] == L.PAD_ID).all()  # an explicit fill_id still wins


def test_origin_fills_later_blocks_of_a_stopped_text_row(model):
    P = len(PROMPT)
    cfg = SamplerConfig(method="semi_autoregressive_origin", gen_length=24, block_length=8, steps=6)
    res = sample(EndAfter(model, at=[P + 2, P + 10_000], end_ids=[L.END_OF_TEXT_ID]), [PROMPT, PROMPT], cfg)
    assert res.generated.shape == (2, 24) and (res.generated[0, 8:] == L.END_OF_TEXT_ID).all()


def test_min_frames_moves_the_first_allowed_end():
    audio = torch.full((1, 35), L.MASK_ID)
    assert end_allowed(audio, min_frames=2)[0].nonzero().flatten().tolist() == [14, 21, 28]
    assert end_allowed(audio, min_frames=0)[0].nonzero().flatten().tolist() == [0, 7, 14, 21, 28]
    for offset in range(35):  # the per-position reference table agrees
        ids = allowed_ids(offset, after_end=False, min_frames=2)
        assert bool(ids[L.END_OF_SPEECH_ID]) == (offset in (14, 21, 28))


def test_min_frames_is_validated():
    with pytest.raises(ValueError, match="needs audio=True"):
        SamplerConfig(gen_length=28, block_length=28, steps=4, min_frames=1).validate()
    with pytest.raises(ValueError, match="longer than the canvas"):
        SamplerConfig(gen_length=28, block_length=28, steps=4, audio=True, min_frames=5).validate()


def test_audio_logits_stay_float32_for_a_bf16_body(model):
    """A bf16 body (the CPU default where bf16 is native) still scores the candidates in float32: the
    banded head projects the float32 hidden states onto float32 candidate rows."""
    import copy

    from llada_tts.sampling.constraints import slots_of
    from llada_tts.sampling.runner import HFRunner

    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    x = torch.tensor([PROMPT + [L.MASK_ID] * 14])  # [1, 22]
    lo, end, start = len(PROMPT), len(PROMPT) + 14, len(PROMPT)
    logits = HFRunner(bf16, audio=True)(x, None, None, lo, end, start)  # [1, 14, C]
    assert logits.dtype == torch.float32
    hidden = bf16.model(input_ids=x).last_hidden_state[:, lo:end].float()  # [1, 14, H]
    rows = bf16.get_output_embeddings().weight.float()[slot_candidates()[slots_of(range(14))]]  # [14, C, H]
    expected = torch.einsum("bnh,nch->bnc", hidden, rows)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert not torch.equal(logits, expected.bfloat16().float())  # not rounded to bf16 anywhere
