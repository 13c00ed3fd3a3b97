"""Codec training recipe: a tiny codec trains, resumes exactly, and the collapse guard works."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from audio_tokenizer import corpus
from audio_tokenizer.codec import SnacCodec, build_model
from audio_tokenizer.training import guard
from audio_tokenizer.training.config import PRESETS, CodecTrainConfig, load_config
from audio_tokenizer.training.losses import quantize
from audio_tokenizer.training.trainer import CodecTrainer


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    return corpus.make_corpus(tmp_path_factory.mktemp("c") / "corpus", 3, text="open", progress=False)


def _cfg(corpus_dir, out, **kw):
    base = dict(train_data=str(corpus_dir), model="frame-tiny", batch_size=2, segment_samples=4096,
                max_steps=4, save_every=2, log_every=1, restart_every=2, eval_every=0, tensorboard=False,
                progress=False, output_dir=str(out), threads=1)
    return CodecTrainConfig(**{**base, **kw})


def test_tiny_codec_trains_and_loads(tiny_corpus, tmp_path):
    final = CodecTrainer(_cfg(tiny_corpus, tmp_path / "run")).train()
    codec = SnacCodec.from_pretrained(final)
    assert type(codec.model).__name__ == "FrameCodec"
    assert codec.decode(codec.encode_tokens(torch.randn(5000).numpy() * 0.1, 24000)).shape == (6144,)


def test_resumed_run_equals_uninterrupted(tiny_corpus, tmp_path):
    straight = CodecTrainer(_cfg(tiny_corpus, tmp_path / "a")).train()
    CodecTrainer(_cfg(tiny_corpus, tmp_path / "b", max_steps=2)).train()
    resumed = CodecTrainer(_cfg(tiny_corpus, tmp_path / "b"), resume=True).train()
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(ln)["step"] for ln in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]


def test_second_run_in_same_folder_is_refused(tiny_corpus, tmp_path):
    CodecTrainer(_cfg(tiny_corpus, tmp_path / "r", max_steps=1)).train()
    with pytest.raises(ValueError, match="already holds a codec run"):
        CodecTrainer(_cfg(tiny_corpus, tmp_path / "r", max_steps=1))
    with pytest.raises(ValueError, match="settings differ"):
        CodecTrainer(_cfg(tiny_corpus, tmp_path / "r", learning_rate=1e-2), resume=True)


def test_collapse_guard_raises_codebook_usage():
    torch.manual_seed(0)
    model = build_model(PRESETS["frame-tiny"])
    z = torch.randn(4, 32, 64) + 5.0  # a constant offset dominates: every projection points one way
    _, codes, *_ , latents = quantize(model.quantizer, z)
    before = [len(torch.unique(c)) for c in codes]
    guard.init_codebooks(model.quantizer, latents, torch.Generator().manual_seed(0))
    for _ in range(20):
        *_, latents = quantize(model.quantizer, z)
        guard.recenter(model.quantizer, latents, 0.5)
    _, codes, *_ = quantize(model.quantizer, z)
    after = [len(torch.unique(c)) for c in codes]
    assert all(a > 2 * b for a, b in zip(after, before)), (before, after)


def test_config_refuses_typos_and_bad_values(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'batch_size'"):
        load_config(None, ["--train_data", "x", "--batch_sise", "3"])
    with pytest.raises(ValueError, match="segment_samples"):
        load_config(None, ["--train_data", "x", "--segment_samples", "1000"])


def test_adversarial_run_trains_and_resumes_exactly(tiny_corpus, tmp_path):
    gan = dict(adversarial=True, adv_start_step=1, disc_channels=2)
    straight = CodecTrainer(_cfg(tiny_corpus, tmp_path / "a", **gan)).train()
    CodecTrainer(_cfg(tiny_corpus, tmp_path / "b", max_steps=2, **gan)).train()
    resumed = CodecTrainer(_cfg(tiny_corpus, tmp_path / "b", **gan), resume=True).train()
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    da = load_file(str(tmp_path / "a" / "checkpoint" / "discriminator.safetensors"))
    db = load_file(str(tmp_path / "b" / "checkpoint" / "discriminator.safetensors"))
    assert da.keys() == db.keys() and all(torch.equal(da[k], db[k]) for k in da)
    rows = [json.loads(ln) for ln in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert "adv" not in rows[0] and all(r["disc"] > 0 and r["feature"] > 0 for r in rows[1:] if "mel" in r)


def test_lsgan_losses_match_their_formulas():
    from audio_tokenizer.training.discriminators import discriminator_loss, generator_losses
    real = [(torch.tensor([1.0, 0.5]), [torch.ones(2)])]
    fake = [(torch.tensor([0.0, 0.5]), [torch.zeros(2)])]
    assert discriminator_loss(real, fake).item() == pytest.approx((0 + 0.25) / 2 + (0 + 0.25) / 2)
    adv, fm = generator_losses(real, fake)
    assert adv.item() == pytest.approx((1 + 0.25) / 2) and fm.item() == pytest.approx(1.0)
