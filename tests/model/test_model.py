"""The bidirectional Llama mask predictor: attention direction, padding, save/load, conversion."""
from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from audio_tokenizer import layout as L
from llada_tts.model import (
    LLAMA3_ROPE,
    config_for_size,
    count_parameters,
    create_model,
    from_llama,
    load_model,
    position_ids_from_mask,
    save_model,
    tiny_config,
)

IMPLS = ("eager", "sdpa")


def _ids(length: int, seed: int = 0) -> torch.Tensor:  # [1, length], text + audio ids
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, L.VOCAB_SIZE - 2, (1, length), generator=g)


@torch.no_grad()
def _logits(model, ids, **kw) -> torch.Tensor:  # [B, L, V]
    kw = {k: v.to(model.device) for k, v in kw.items()}
    return model.eval()(input_ids=ids.to(model.device), **kw).logits


def _first_sees_last(model) -> bool:
    """Does changing the last token change the logits at position 0?"""
    ids = _ids(12)
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 1000
    a, b = _logits(model, ids), _logits(model, changed)
    assert not torch.allclose(a[0, -1], b[0, -1])  # the probe does reach the model
    return not torch.allclose(a[0, 0], b[0, 0], atol=1e-6)


def _plain_llama(vocab: int = L.TEXT_VOCAB_SIZE, tied: bool = False, rope=None) -> LlamaForCausalLM:
    """A tiny stock (causal) Llama as a hub checkpoint would give it."""
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=128, tie_word_embeddings=tied,
                      max_position_embeddings=131072, bos_token_id=L.BOS_ID, eos_token_id=128001,
                      rope_parameters=dict(rope or {"rope_type": "default", "rope_theta": 500000.0}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return LlamaForCausalLM(cfg)


def _save_like_meta(model, d) -> None:
    """save_pretrained, then rewrite config.json the way Llama 3.2 ships it (rope_scaling + rope_theta)."""
    model.save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = rope
    cfg.pop("is_causal", None)
    (d / "config.json").write_text(json.dumps(cfg))


def _llama3_inv_freq(head_dim: int) -> torch.Tensor:
    """Llama 3.1 rotary frequencies, written out from Meta's reference implementation."""
    r = LLAMA3_ROPE
    inv = 1.0 / (r["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    old = r["original_max_position_embeddings"]
    low_wl, high_wl = old / r["low_freq_factor"], old / r["high_freq_factor"]
    out = []
    for f in inv.tolist():
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(f)
        elif wl > low_wl:
            out.append(f / r["factor"])
        else:
            s = (old / wl - r["low_freq_factor"]) / (r["high_freq_factor"] - r["low_freq_factor"])
            out.append((1 - s) * f / r["factor"] + s * f)
    return torch.tensor(out)


# --- configs --------------------------------------------------------------------------------------

def test_tiny_config_values():
    c = tiny_config()
    assert (c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads,
            c.num_key_value_heads, c.intermediate_size, c.max_position_embeddings) == (
        156940, 64, 2, 4, 2, 128, 2048)
    assert c.is_causal is False and c.tie_word_embeddings is True and c.model_type == "llama"
    assert (c.mask_token_id, c.pad_token_id, c.bos_token_id, c.eos_token_id) == (156938, 128263, 128000, 128009)
    assert c._attn_implementation == "sdpa"
    assert tiny_config(hidden_size=32).hidden_size == 32


def test_named_sizes():
    with torch.device("meta"):
        counts = {n: count_parameters(create_model(config_for_size(n))) for n in ("tiny", "small", "1b")}
    assert counts["tiny"]["embedding"] == L.VOCAB_SIZE * 64  # tied: counted once
    assert 9e6 < counts["small"]["non_embedding"] < 11e6
    assert counts["1b"]["non_embedding"] == 973_146_112  # Llama-3.2-1B body, exactly
    for name, (hidden, layers, heads, kv, head_dim) in {"1b": (2048, 16, 32, 8, 64),
                                                        "3b": (3072, 28, 24, 8, 128)}.items():
        c = config_for_size(name)
        assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
                c.head_dim, c.intermediate_size, c.max_position_embeddings) == (
            hidden, layers, heads, kv, head_dim, 8192, 131072)
        assert c.rope_parameters == LLAMA3_ROPE
    with pytest.raises(ValueError, match="tiny"):
        config_for_size("7b")


# --- attention direction and padding --------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_bidirectional(impl):
    model = create_model(tiny_config(attn_implementation=impl))
    assert model.config._attn_implementation == impl
    assert _first_sees_last(model)


@pytest.mark.parametrize("impl", IMPLS)
def test_causal_config_fails_the_probe(impl):
    model = LlamaForCausalLM(tiny_config(is_causal=True, attn_implementation=impl))
    assert not _first_sees_last(model)


def test_create_model_forces_bidirectional_and_is_seeded():
    a = create_model(tiny_config(is_causal=True), seed=3)
    b = create_model(tiny_config(), seed=3)
    assert a.config.is_causal is False
    assert torch.equal(a.lm_head.weight, b.lm_head.weight)
    assert a.lm_head.weight is a.model.embed_tokens.weight  # tied
    assert not torch.equal(a.lm_head.weight, create_model(tiny_config(), seed=4).lm_head.weight)
    assert create_model(tiny_config(), dtype=torch.bfloat16).dtype == torch.bfloat16


def test_eager_and_sdpa_agree():
    eager = create_model(tiny_config(attn_implementation="eager"))
    sdpa = create_model(tiny_config(attn_implementation="sdpa"))
    ids = torch.cat([_ids(9, 1), _ids(9, 2)])  # [2, 9]
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    for kw in ({}, {"attention_mask": mask}):
        torch.testing.assert_close(_logits(eager, ids, **kw), _logits(sdpa, ids, **kw), atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("side", ("right", "left"))
def test_padding_does_not_leak(impl, side):
    model = create_model(tiny_config(attn_implementation=impl))
    short, long_ = _ids(6, 1), _ids(10, 2)
    pad = torch.full((1, 4), L.PAD_ID)
    row = torch.cat([short, pad], 1) if side == "right" else torch.cat([pad, short], 1)
    ids = torch.cat([long_, row])  # [2, 10]
    mask = (torch.arange(10) < 6) if side == "right" else (torch.arange(10) >= 4)
    mask = torch.stack([torch.ones(10, dtype=torch.long), mask.long()])
    out = _logits(model, ids, attention_mask=mask, position_ids=position_ids_from_mask(mask))
    real = slice(0, 6) if side == "right" else slice(4, 10)
    torch.testing.assert_close(out[1, real], _logits(model, short)[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0], _logits(model, long_)[0], atol=1e-5, rtol=0)
    # without the mask the padding does leak: the comparison above can fail
    leaky = _logits(model, ids, position_ids=position_ids_from_mask(mask))
    assert not torch.allclose(leaky[1, real], _logits(model, short)[0], atol=1e-3)


@pytest.mark.gpu
def test_cuda_sdpa_is_bidirectional_and_matches_eager():
    """CUDA sdpa may pick flash / mem-efficient kernels: they must stay bidirectional too."""
    sdpa = create_model(tiny_config(attn_implementation="sdpa")).cuda()
    eager = create_model(tiny_config(attn_implementation="eager")).cuda()
    assert _first_sees_last(sdpa)
    ids = torch.cat([_ids(64, 1), _ids(64, 2)])  # [2, 64]
    mask = torch.ones_like(ids)
    mask[1, 40:] = 0
    for kw in ({}, {"attention_mask": mask}):
        torch.testing.assert_close(_logits(sdpa, ids, **kw), _logits(eager, ids, **kw), atol=1e-4, rtol=0)
    sdpa_bf16 = sdpa.to(torch.bfloat16)
    assert _first_sees_last(sdpa_bf16)


def test_position_ids_from_mask():
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1]])
    assert position_ids_from_mask(mask).tolist() == [[0, 1, 2, 2], [0, 0, 0, 1]]


# --- save / load ----------------------------------------------------------------------------------

def test_save_load_round_trip_and_overwrite(tmp_path, offline_tokenizer):
    model = create_model(tiny_config(), seed=0)
    out = tmp_path / "ckpt"
    save_model(model, out, tokenizer=offline_tokenizer,
               extra_files={"train.yaml": "lr: 1.0e-4\n", "state/rng.bin": b"\x00\x01"})
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "train.yaml", "tokenizer_config.json"} <= files
    assert (out / "state" / "rng.bin").read_bytes() == b"\x00\x01"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["is_causal"] is False and cfg["mask_token_id"] == L.MASK_ID and cfg["model_type"] == "llama"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp dirs left
    mode = (out / "config.json").stat().st_mode & 0o777  # the weights too (transformers writes them 0600)
    assert mode & 0o044 and all(f.stat().st_mode & 0o777 == mode for f in out.rglob("*") if f.is_file())

    loaded = load_model(out)
    ids = _ids(16)
    assert torch.equal(_logits(loaded, ids), _logits(model, ids))
    assert _first_sees_last(loaded)

    other = create_model(tiny_config(), seed=1)
    save_model(other, out)  # replaces the directory, stale files included
    assert not (out / "train.yaml").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    assert torch.equal(_logits(load_model(out), ids), _logits(other, ids))
    assert load_model(out, dtype=torch.bfloat16, device="cpu").dtype == torch.bfloat16


def test_failed_save_keeps_old_checkpoint(tmp_path):
    out = tmp_path / "ckpt"
    model = create_model(tiny_config())
    save_model(model, out, extra_files={"marker.txt": "old"})
    with pytest.raises(ValueError, match="relative path"):
        save_model(create_model(tiny_config(), seed=5), out, extra_files={"../escape.txt": "x"})
    assert (out / "marker.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    causal = LlamaForCausalLM(tiny_config(is_causal=True))
    with pytest.raises(ValueError, match="causal"):
        save_model(causal, tmp_path / "causal")


def test_llama3_rope_survives_save_and_load(tmp_path):
    model = create_model(tiny_config(rope_parameters=dict(LLAMA3_ROPE), max_position_embeddings=131072))
    ref = _llama3_inv_freq(16)
    torch.testing.assert_close(model.model.rotary_emb.inv_freq, ref, atol=0, rtol=1e-6)
    plain = 1.0 / (500000.0 ** (torch.arange(0, 16, 2, dtype=torch.float) / 16))
    assert not torch.allclose(ref, plain)  # the scaling matters at head_dim 16
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert torch.equal(loaded.model.rotary_emb.inv_freq, model.model.rotary_emb.inv_freq)
    assert loaded.config.rope_parameters == LLAMA3_ROPE


def test_load_causal_orpheus_sized_checkpoint(tmp_path, caplog):
    d = tmp_path / "orpheus"
    _save_like_meta(_plain_llama(vocab=L.VOCAB_SIZE, tied=True), d)
    with caplog.at_level(logging.WARNING, logger="llada_tts.model.modeling"):
        model = load_model(d)
    assert "bidirectional" in caplog.text
    assert model.config.is_causal is False and model.config.mask_token_id == L.MASK_ID
    assert _first_sees_last(model)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model directory"):
        load_model(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(empty)
    (empty / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_model(empty)
    small = tmp_path / "small_vocab"
    _plain_llama(vocab=L.TEXT_VOCAB_SIZE).save_pretrained(small)
    with pytest.raises(ValueError, match="from_llama"):
        load_model(small)
    (small / "config.json").write_text(json.dumps({"model_type": "mistral"}))
    with pytest.raises(ValueError, match="'llama'"):
        load_model(small)


# --- from_llama -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tied", (False, True))
def test_from_llama_grows_vocab_with_mean_rows(tmp_path, tied):
    plain = _plain_llama(tied=tied, rope=LLAMA3_ROPE)
    d = tmp_path / "llama"
    _save_like_meta(plain, d)
    model = from_llama(d)
    n = L.TEXT_VOCAB_SIZE
    old_in, old_out = plain.model.embed_tokens.weight, plain.lm_head.weight
    for new, old in ((model.model.embed_tokens.weight, old_in), (model.lm_head.weight, old_out)):
        assert new.shape == (L.VOCAB_SIZE, 64)
        assert torch.equal(new[:n], old)
        torch.testing.assert_close(new[n:], old.mean(0).expand(L.VOCAB_SIZE - n, 64), atol=1e-7, rtol=0)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    c = model.config
    assert (c.vocab_size, c.is_causal, c.mask_token_id, c.pad_token_id) == (L.VOCAB_SIZE, False, L.MASK_ID, L.PAD_ID)
    assert torch.equal(model.model.rotary_emb.inv_freq, plain.model.rotary_emb.inv_freq)
    torch.testing.assert_close(model.model.rotary_emb.inv_freq, _llama3_inv_freq(16), atol=0, rtol=1e-6)
    assert _first_sees_last(model)
    ids = torch.tensor([[L.BOS_ID, 10, L.MASK_ID, L.AUDIO_OFFSET]])
    save_model(model, tmp_path / "converted")
    loaded = load_model(tmp_path / "converted")
    assert torch.equal(_logits(loaded, ids), _logits(model, ids))
    assert torch.equal(loaded.model.rotary_emb.inv_freq, plain.model.rotary_emb.inv_freq)


def test_from_llama_keeps_orpheus_rows_and_seeded_noise(tmp_path):
    plain = _plain_llama(vocab=L.VOCAB_SIZE - 1)
    plain.save_pretrained(tmp_path / "o")
    model = from_llama(tmp_path / "o")
    w = model.model.embed_tokens.weight
    assert torch.equal(w[:-1], plain.model.embed_tokens.weight)
    torch.testing.assert_close(w[-1], plain.model.embed_tokens.weight.mean(0), atol=1e-7, rtol=0)

    _plain_llama().save_pretrained(tmp_path / "p")
    a, b = (from_llama(tmp_path / "p", noise_std=0.01, seed=7) for _ in range(2))
    new_a = a.model.embed_tokens.weight[L.TEXT_VOCAB_SIZE:]
    assert torch.equal(new_a, b.model.embed_tokens.weight[L.TEXT_VOCAB_SIZE:])
    assert 0.005 < (new_a - new_a.mean(0)).std() < 0.015

    _plain_llama(vocab=32000).save_pretrained(tmp_path / "l2")
    with pytest.raises(ValueError, match="Llama-3 vocabulary"):
        from_llama(tmp_path / "l2")
