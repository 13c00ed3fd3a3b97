"""Small-model levers: compact embeddings, frame-phase masks, the slot-restricted audio loss."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from audio_tokenizer import layout as L
from llada_tts.data import collate
from llada_tts.diffusion import forward_process, restricted_ce
from llada_tts.model import adapters, config_for_size, create_model, load_model, save_model
from llada_tts.sampling.constraints import slot_candidates
from llada_tts.training.step import audio_slots, diffusion_step, step_generator


def _rows():
    text = {"input_ids": [L.BOS_ID, 40, 41, 42, 43, 44, L.END_OF_TEXT_ID], "prompt_length": 0, "kind": "text"}
    audio = L.codes_to_tokens(([1, 9], [2, 3, 8, 7], [4, 5, 6, 7, 1, 2, 3, 4])).tolist()
    prompt = L.tts_prompt_ids([L.BOS_ID, 60])
    tts = {"input_ids": prompt + audio + [L.END_OF_SPEECH_ID, L.END_OF_AI_ID], "prompt_length": len(prompt),
           "kind": "tts"}
    return [text, tts]


def test_compact_rows_cover_bytes_controls_audio_and_mask():
    ids = adapters.row_ids(adapters.BYTE_ROWS)
    assert len(ids) == 256 + (L.VOCAB_SIZE - L.BOS_ID) == 29196
    lut = adapters.row_lookup(adapters.BYTE_ROWS)
    for full in (0, 255, L.BOS_ID, L.START_OF_SPEECH_ID, L.AUDIO_OFFSET, L.AUDIO_END - 1, L.MASK_ID):
        assert int(ids[lut[full]]) == full
    assert int(lut[300]) == -1
    with pytest.raises(ValueError, match="id 300 has no embedding row"):
        adapters.to_rows(torch.tensor([65, 300]), lut)
    with pytest.raises(ValueError, match="sorted and disjoint"):
        adapters.row_ids([[10, 20], [15, 30]])


def test_phase_masks_follow_positions_not_content():
    ids = torch.tensor([[5, L.MASK_ID, L.MASK_ID, 7, L.MASK_ID]])
    out = adapters.phase_masks(ids, torch.tensor([[12, 13, 14, 15, 16]]), L.MASK_ID, adapters.SLOT_MASK_IDS)
    want = [5, adapters.SLOT_MASK_IDS[13 % 7], adapters.SLOT_MASK_IDS[14 % 7], 7, adapters.SLOT_MASK_IDS[16 % 7]]
    assert out.tolist() == [want]


def test_align_prompt_pads_in_front_to_whole_frames():
    ids, n = adapters.align_prompt([1, 2, 3, 4, 5, 6, 7, 8, 9], 9)
    assert n == 14 and ids == [adapters.FILLER_ID] * 5 + [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert adapters.align_prompt([1] * 7, 7) == ([1] * 7, 7)


def test_compact_model_equals_its_expanded_checkpoint(tmp_path):
    model = create_model(config_for_size("tiny", compact=True, slot_masks=True), seed=3)
    assert model.get_input_embeddings().weight.shape[0] == 29196
    ids = torch.tensor([[L.START_OF_HUMAN_ID, 65, 66, L.START_OF_SPEECH_ID, L.MASK_ID, L.MASK_ID, L.AUDIO_OFFSET + 5]])
    compact_logits = model(ids).logits  # [1, 7, K]
    save_model(model, tmp_path / "m")
    raw = json.loads((tmp_path / "m" / "config.json").read_text())
    assert raw["vocab_size"] == 29196 and raw[adapters.ROWS_KEY] == [[0, 256], [L.BOS_ID, L.VOCAB_SIZE]]
    full = load_model(tmp_path / "m")
    assert full.get_input_embeddings().weight.shape[0] == L.VOCAB_SIZE and full.config.pad_token_id == L.PAD_ID
    logits = full(ids).logits  # [1, 7, V]
    assert torch.allclose(logits[..., adapters.row_ids(adapters.BYTE_ROWS)], compact_logits, atol=1e-5)
    assert (logits.detach()[..., 300] == adapters.UNUSED_LOGIT).all()  # no row: the unused-id logit
    kept = load_model(tmp_path / "m", expand=False)
    assert torch.allclose(kept(ids).logits, compact_logits, atol=1e-6)


def test_slot_masks_change_what_a_masked_position_sees():
    ids = torch.tensor([[L.START_OF_SPEECH_ID, L.MASK_ID, L.MASK_ID]])
    plain = create_model(config_for_size("tiny"), seed=1)
    phased = create_model(config_for_size("tiny", slot_masks=True), seed=1)
    h_plain = plain.model(input_ids=ids).last_hidden_state
    h_phase = phased.model(input_ids=ids).last_hidden_state
    swapped = torch.tensor([[L.START_OF_SPEECH_ID, *adapters.SLOT_MASK_IDS[1:3]]])
    assert torch.allclose(h_phase, plain.model(input_ids=swapped).last_hidden_state, atol=1e-6)
    assert not torch.allclose(h_phase, h_plain, atol=1e-4)
    # a block call with explicit positions sees the same phase as the full call
    block = phased.model(input_ids=ids[:, 2:], position_ids=torch.tensor([[2]])).last_hidden_state
    ref = plain.model(input_ids=swapped[:, 2:], position_ids=torch.tensor([[2]])).last_hidden_state
    assert torch.allclose(block, ref, atol=1e-6)


def test_restricted_ce_equals_full_ce_over_the_candidates():
    torch.manual_seed(0)
    weight, hidden = torch.randn(L.VOCAB_SIZE, 8), torch.randn(5, 8)
    cand = slot_candidates()  # [7, 4099]
    slots = torch.tensor([0, 3, -1, 6, 0])
    targets = torch.tensor([int(cand[0, 17]), int(cand[3, 4096]), 65, int(cand[6, 4000]), L.PAD_ID])
    ce, pred = restricted_ce(hidden, weight, targets, slots, cand)
    logits = hidden @ weight.T  # [5, V]
    for i, s in enumerate(slots.tolist()):
        row = logits[i] if s < 0 else torch.full_like(logits[i], -torch.inf).index_copy(0, cand[s], logits[i, cand[s]])
        assert float(ce[i]) == pytest.approx(float(F.cross_entropy(row[None], targets[i:i + 1])), rel=1e-5)
        assert int(pred[i]) == int(row.argmax())
    with pytest.raises(ValueError, match="not a candidate of frame slot 1"):
        restricted_ce(hidden[:1], weight, cand[0, :1], torch.tensor([1]), cand)


def test_audio_slots_count_from_each_prompt():
    batch = collate(_rows())
    slots = audio_slots(batch)
    assert (slots[0] == -1).all()  # a text row has no frame slots
    assert slots[1, :7].tolist() == [-1] * 7 and slots[1, 7:14].tolist() == list(range(7))


def _slot_hand_loss(model, batch, seed):
    """The LLaDA formula with each audio-region target scored over its slot's candidates only."""
    gen = step_generator(seed, 0, 0, torch.device("cpu"))
    noisy, masked, p_mask = forward_process(batch["input_ids"], batch["maskable"], L.MASK_ID, generator=gen)
    logits = model(input_ids=noisy, attention_mask=batch["attention_mask"]).logits.float()  # [B, L, V]
    slots, cand, total = audio_slots(batch), slot_candidates(), 0.0
    for b in range(noisy.shape[0]):
        row = 0.0
        for i in masked[b].nonzero().flatten().tolist():
            s = int(slots[b, i])
            z = logits[b, i] if s < 0 else torch.full_like(logits[b, i], -torch.inf).index_copy(
                0, cand[s], logits[b, i, cand[s]])
            row += -z.log_softmax(-1)[batch["input_ids"][b, i]] / p_mask[b, i]
        total += row / batch["normalizer"][b]
    return total / noisy.shape[0]


@pytest.mark.parametrize("compact", [False, True], ids=["full-vocab", "compact"])
def test_slot_loss_is_the_formula_over_slot_candidates(compact):
    model = create_model(config_for_size("tiny", compact=compact), seed=0)
    batch = collate(_rows()[1:] if compact else _rows())  # text targets of a compact model: next test
    out = diffusion_step(model, batch, step_generator(4, 0, 0, torch.device("cpu")), audio_loss="slot")
    reference = load_model_like(model) if compact else model
    want = _slot_hand_loss(reference, batch, 4)
    assert float(out.loss) == pytest.approx(float(want), rel=1e-5)
    out.loss.backward()
    assert model.get_input_embeddings().weight.grad.abs().sum() > 0
    assert model.get_output_embeddings()._forward_pre_hooks == {} and "forward" not in vars(model.lm_head)


def test_compact_full_loss_equals_the_full_vocabulary_loss():
    model = create_model(config_for_size("tiny", compact=True), seed=0)
    batch = collate(_rows())
    ours = diffusion_step(model, batch, step_generator(4, 0, 0, torch.device("cpu")))
    # the expanded model's extra rows are zero, so its full softmax has 156940 - 29196 extra exp(0) terms:
    # compare against the compact softmax written out instead
    gen = step_generator(4, 0, 0, torch.device("cpu"))
    noisy, masked, p_mask = forward_process(batch["input_ids"], batch["maskable"], L.MASK_ID, generator=gen)
    lut = adapters.row_lookup(adapters.BYTE_ROWS)
    logp = model(input_ids=noisy, attention_mask=batch["attention_mask"]).logits.log_softmax(-1)
    rows = lut[batch["input_ids"]]
    want = sum((-(logp[b].gather(-1, rows[b][:, None])[:, 0] / p_mask[b]) * masked[b]).sum() / batch["normalizer"][b]
               for b in range(2)) / 2
    assert masked.any()
    assert float(ours.loss) == pytest.approx(float(want), rel=1e-5)
    assert int(ours.stats["all_correct"]) <= int(ours.stats["all_total"])


def load_model_like(model):
    """The compact model's full-vocabulary twin (rows it lacks are zero; slot candidates are all real rows)."""
    import copy

    twin = copy.deepcopy(model)
    adapters.expand_rows(twin)
    return twin


def test_trained_levers_resume_and_save(tmp_path):
    """A fresh compact + slot-mask model trains with the slot loss, aligns prompts, saves compact."""
    from llada_tts.data.toy_data import write_all
    from llada_tts.training import Trainer
    from llada_tts.training.config import TrainConfig

    data = write_all(tmp_path / "data")
    cfg = TrainConfig(TTS_dataset=str(data["tts"]), model_name="tiny", tokenizer_name="offline",
                      compact_embeddings=True, slot_masks=True, audio_loss="slot", max_length=160, epochs=1,
                      batch_size=4, learning_rate=3e-3, save_folder=str(tmp_path / "run"), report_to="none")
    trainer = Trainer(cfg)
    try:
        rows = trainer.loader.dataset.sources["tts"]
        result = trainer.train()
    finally:
        trainer.close()
    assert all(n % 7 == 0 for n in rows["prompt_length"])
    assert any(ids[0] == adapters.FILLER_ID for ids in rows["input_ids"])
    raw = json.loads((result.checkpoint / "config.json").read_text())
    assert raw["vocab_size"] == 29196 and raw[adapters.SLOT_MASKS_KEY] == list(adapters.SLOT_MASK_IDS)
    assert result.state.global_step > 0


def test_cached_constants_made_while_sampling_still_train():
    """Cached tensors first asked for inside inference mode (sampling, codec encoding) are made as
    normal tensors: a later training step that multiplies by them must not fail."""
    from audio_tokenizer import spectral

    adapters.slot_weights.cache_clear()
    spectral._mel_filters_cpu.cache_clear()
    with torch.inference_mode():
        adapters.slot_weights(4)
        spectral.mel_filters(24000, 1024, 80)
    x = torch.ones(7, 4, requires_grad=True)
    (x * adapters.slot_weights(4)).sum().backward()
    m = torch.ones(80, 513, requires_grad=True)
    (m * spectral.mel_filters(24000, 1024, 80)).sum().backward()
    assert torch.equal(x.grad, adapters.slot_weights(4)) and not spectral.mel_filters(24000, 1024, 80).is_inference()
