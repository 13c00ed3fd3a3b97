"""Frame-aligned phonemes (``llada_frame_phones``): the hook adds frame i's phoneme embedding to the
positions of audio frame i, read from the prompt of a full call and remembered for cached calls."""
from __future__ import annotations

import pytest
import torch

from audio_tokenizer import frames as F
from audio_tokenizer import layout as L
from llada_tts.model import adapters, config_for_size, create_model, load_model, save_model
from llada_tts.model.modeling import position_ids_from_mask
from llada_tts.sampling import SamplerConfig, sample
from llada_tts.sampling.runner import HFRunner

LO, HI = F.ID_RANGE
SOS = L.START_OF_SPEECH_ID


def _model(seed: int = 0, compact: bool = True, frame_phones: int = 1, **kw):
    return create_model(config_for_size("tiny", compact=compact, frame_phones=frame_phones, **kw), seed=seed).eval()


def _row(phones: list[int], audio: int, seed: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    codes = [L.slot_band(j % 7)[0] + int(torch.randint(0, 4096, (1,), generator=g)) for j in range(audio)]
    return [L.START_OF_HUMAN_ID, L.BOS_ID, 101, 110, *[LO + p for p in phones], L.END_OF_TEXT_ID,
            L.END_OF_HUMAN_ID, L.START_OF_AI_ID, SOS, *codes]


def test_frame_table_and_condition_hand_values():
    ids = torch.tensor([[5, LO + 3, 9, LO + 1, SOS, 7, 7, 7, 7, 7, 7, 7, 7, 7],
                        [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]])  # row 1: no start_of_speech
    pos = torch.arange(14)[None]
    phones, start = adapters.frame_table(ids, pos, LO, HI)
    assert phones.tolist() == [[LO + 3, LO + 1], [-1, -1]] and start.tolist() == [5, -1]
    cond, weight = adapters.frame_condition(phones, start, pos)  # [B, n, 1] each
    assert cond[0, :, 0].tolist() == [-1] * 5 + [LO + 3] * 7 + [LO + 1] * 2
    assert cond[1, :, 0].tolist() == [-1] * 14
    assert weight[..., 0].tolist() == (cond[..., 0] >= 0).float().tolist()
    # left padding: positions, not indices, decide the frame
    pad = torch.tensor([[0, 0, LO + 2, SOS, 7, 7]])
    ppos = position_ids_from_mask(torch.tensor([[0, 0, 1, 1, 1, 1]]))
    phones, start = adapters.frame_table(pad, ppos, LO, HI)
    assert start.tolist() == [2]
    assert adapters.frame_condition(phones, start, ppos)[0][..., 0].tolist() == [[-1, -1, -1, -1, LO + 2, LO + 2]]


def test_slot_weights_follow_snac_time_spans():
    assert adapters.slot_weights(1).tolist() == [[1.0]] * 7
    # slot 0 spans the frame, slots 1 / 4 its halves, slots 2, 3, 5, 6 its quarters (Orpheus order)
    assert adapters.slot_weights(4).tolist() == [[0.25] * 4, [0.5, 0.5, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0],
                                                 [0, 0, 0.5, 0.5], [0, 0, 1, 0], [0, 0, 0, 1]]
    assert adapters.slot_weights(2).tolist() == [[0.5, 0.5], [1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]]


def test_quarter_condition_hand_values():
    # 2 frames x 4 quarter phones; positions of frame 1 read phones 4..7 with their slot's weights
    q = [LO + i for i in (1, 2, 3, 4, 5, 6, 7, 8)]
    ids = torch.tensor([[5, *q, SOS] + [7] * 14])
    pos = torch.arange(ids.shape[1])[None]
    phones, start = adapters.frame_table(ids, pos, LO, HI)
    cond, weight = adapters.frame_condition(phones, start, pos, per_frame=4)
    assert cond.shape == (1, ids.shape[1], 4) and start.tolist() == [10]
    assert cond[0, 10].tolist() == q[:4] and cond[0, 17].tolist() == q[4:] and cond[0, 9].tolist() == [-1] * 4
    assert weight[0, 10 + 2].tolist() == [1, 0, 0, 0] and weight[0, 17 + 4].tolist() == [0, 0, 0.5, 0.5]
    assert weight[0, :10].abs().sum() == 0


def test_the_hook_adds_the_weighted_quarter_embeddings():
    model = _model(4, frame_phones=4)
    assert model.config.llada_phones_per_frame == 4
    plain = create_model(config_for_size("tiny", compact=True), seed=4).eval()
    plain.load_state_dict(model.state_dict())
    ids = torch.tensor([_row([3, 3, 9, 9, 1, 2, 5, 6], 14)])
    lut = adapters.row_lookup_of(plain)
    embed = plain.model.embed_tokens
    e = lambda i: embed(adapters.to_rows(torch.tensor([LO + i]), lut))[0]  # noqa: E731
    hand = embed(adapters.to_rows(ids, lut))[0].clone()
    sos = ids[0].tolist().index(SOS)
    quarters = [[3, 3, 9, 9], [1, 2, 5, 6]]
    for f, qs in enumerate(quarters):
        for slot, w in enumerate(adapters.slot_weights(4).tolist()):
            hand[sos + 1 + 7 * f + slot] += sum(wq * e(p) for wq, p in zip(w, qs))
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, plain(inputs_embeds=hand[None]).logits, atol=1e-5)


def test_the_hook_adds_each_frames_phone_embedding():
    model = _model(1)
    ids = torch.tensor([_row([3, 3, 9], 21)])
    plain = create_model(config_for_size("tiny", compact=True), seed=1).eval()
    plain.load_state_dict(model.state_dict())
    pos = torch.arange(ids.shape[1])[None]
    cond = adapters.frame_condition(*adapters.frame_table(ids, pos, LO, HI), pos)[0][..., 0]  # [B, n]
    lut = adapters.row_lookup_of(plain)
    embed = plain.model.embed_tokens
    hand = embed(adapters.to_rows(ids, lut)) + embed(adapters.to_rows(cond.clamp(min=0), lut)) * (cond >= 0)[..., None]
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, plain(inputs_embeds=hand).logits, atol=1e-5)
        assert not torch.allclose(model(input_ids=ids).logits, plain(input_ids=ids).logits, atol=1e-3)
    first_audio = ids[0].tolist().index(SOS) + 1
    assert cond[0, first_audio:].tolist() == [LO + 3] * 14 + [LO + 9] * 7


def test_a_saved_frame_model_keeps_its_range(tmp_path):
    model = _model(2)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    assert loaded.config.llada_frame_phones == [LO, HI]
    ids = torch.tensor([_row([1, 2], 14)])
    with torch.no_grad():
        a = loaded(input_ids=ids).logits
        b = model(input_ids=ids).logits
    assert torch.allclose(a[..., adapters.row_ids(model.config.llada_rows)], b, atol=1e-5)


@pytest.mark.parametrize("per_frame", [1, 4])
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_a_cached_step_equals_the_refresh(mode, per_frame):
    model = _model(3, slot_masks=True, frame_phones=per_frame)
    rows = [_row([4, 5, 6, 1] * per_frame, 21, 0), _row([7, 8, 9, 2] * per_frame, 14, 1)]
    width = max(map(len, rows))
    x = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    pos = position_ids_from_mask(mask)
    lo = width - 14
    runner = HFRunner(model, cache_mode=mode)
    with torch.no_grad():
        full = runner(x, mask, pos, lo, lo + 7, 7, "refresh")
        cached = runner(x, mask, pos, lo, lo + 7, 7, "cached")
        plain = model(x, attention_mask=mask, position_ids=pos).logits[:, lo:lo + 7]
    assert torch.allclose(full, plain, atol=1e-5)
    assert torch.allclose(cached, full, atol=1e-4)


def test_a_cached_call_without_a_full_one_is_refused():
    model = _model(4)
    model.model._llada_frames = None
    with pytest.raises(ValueError, match="needs a full call"):
        model(input_ids=torch.tensor([[LO, SOS]]), position_ids=torch.tensor([[5, 6]]))


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_cache_refreshed_every_step_equals_uncached(mode):
    model = _model(5, compact=False, slot_masks=True)  # samplers take full-vocabulary models
    prompt = torch.tensor([_row([2, 3, 4], 0, 0)])
    base = dict(gen_length=21, block_length=7, steps=21, threshold=0.9, audio=True)
    plain = sample(model, prompt, SamplerConfig(**base))
    cached = sample(model, prompt, SamplerConfig(use_cache=True, cache_mode=mode, refresh_every=1, **base))
    assert torch.equal(plain.sequences, cached.sequences)
