"""Tiny real checkpoints and codecs for the synthesis / CLI tests (built once per session, offline).

Import the fixtures into a test module with ``from tests.synthesis_fixtures import *`` style
explicit imports (pytest finds fixtures by name in the module namespace).
"""
from __future__ import annotations

import json

import pytest
import torch

from audio_tokenizer import layout as L

VOICES = ["alice", "bob"]
CHARS_PER_SECOND = 40.0  # fast "speaker": small canvases keep the tests quick
FAST = dict(steps=2, block_length=28)  # 4-frame blocks, one step per block


def _save(model, out, tokenizer, meta: dict | None):
    from llada_tts.model import save_model

    extra = {"llada_tts.json": json.dumps(meta)} if meta is not None else None
    return save_model(model, out, tokenizer=tokenizer, extra_files=extra)


@pytest.fixture(scope="session")
def tiny_codec_dir(tmp_path_factory):
    from audio_tokenizer.codec import create_random_codec

    return create_random_codec(tmp_path_factory.mktemp("codec") / "snac", size="tiny")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, offline_tokenizer):
    """A random tiny model + offline tokenizer + llada_tts.json (voices alice/bob, 40 chars/s)."""
    from llada_tts.model import create_model, tiny_config

    meta = {"voices": VOICES, "codec": None, "chars_per_second": CHARS_PER_SECOND, "format_version": 1}
    return _save(create_model(tiny_config(), seed=0), tmp_path_factory.mktemp("ckpt") / "tiny", offline_tokenizer, meta)


@pytest.fixture(scope="session")
def silent_model_dir(tmp_path_factory, offline_tokenizer):
    """A degenerate but real checkpoint that always says end_of_speech first: every layer's output
    projections are zero (the residual stream stays the input embedding), every embedding row is
    the same all-ones vector, and the untied head scores only end_of_speech (logit 64, all else 0)."""
    from llada_tts.model import create_model, tiny_config

    model = create_model(tiny_config(tie_word_embeddings=False), seed=0)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[L.END_OF_SPEECH_ID] = 1.0
    meta = {"voices": [], "codec": None, "chars_per_second": CHARS_PER_SECOND, "format_version": 1}
    return _save(model, tmp_path_factory.mktemp("ckpt") / "silent", offline_tokenizer, meta)


@pytest.fixture(scope="session")
def text_only_model_dir(tmp_path_factory, offline_tokenizer):
    """A Llama-3-vocabulary model (128256 rows): no audio tokens, no mask row."""
    from llada_tts.model import create_model, tiny_config

    model = create_model(tiny_config(vocab_size=L.TEXT_VOCAB_SIZE, pad_token_id=None), seed=0)
    return _save(model, tmp_path_factory.mktemp("ckpt") / "textonly", offline_tokenizer, None)


@pytest.fixture(scope="session")
def tts(tiny_model_dir, tiny_codec_dir):
    from llada_tts.synthesis import LladaTTS

    return LladaTTS.from_pretrained(str(tiny_model_dir), codec=str(tiny_codec_dir))
