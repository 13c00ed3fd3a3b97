"""The shipped-voice plumbing: export to an fp16 compact folder, the `demo` alias, the offline tokenizer rule."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from audio_tokenizer import layout as L
from llada_tts import demo_voice
from llada_tts.checkpoint_meta import META_FILE, CheckpointMeta
from llada_tts.model import adapters, config_for_size, create_model, save_model
from llada_tts.prompts import tts_prompt
from llada_tts.synthesis import LladaTTS
from llada_tts.vocab import build_offline_tokenizer


@pytest.fixture(scope="module")
def voice_dir(tmp_path_factory):
    """A tiny compact + slot-mask checkpoint (with tokenizer files, as the trainer writes it), exported."""
    root = tmp_path_factory.mktemp("voice")
    model = create_model(config_for_size("tiny", compact=True, slot_masks=True), seed=5)
    meta = CheckpointMeta(voices=["en-us", "en-gb+m3"], codec="demo", chars_per_second=14.0, front_end="espeak-ipa")
    save_model(model, root / "ckpt", tokenizer=build_offline_tokenizer(), extra_files={META_FILE: meta.to_json()})
    return demo_voice.export_voice(root / "ckpt", root / "voice", readme="# tiny test voice\n"), model


def test_export_is_fp16_compact_without_tokenizer_files(voice_dir):
    out, model = voice_dir
    assert not any((out / f).exists() for f in demo_voice.TOKENIZER_FILES)
    assert (out / "README.md").read_text() == "# tiny test voice\n"
    assert json.loads((out / META_FILE).read_text())["front_end"] == "espeak-ipa"
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        embed = f.get_tensor("model.embed_tokens.weight")
    assert embed.dtype == torch.float16 and embed.shape == (29196, 64)
    assert torch.equal(embed, model.get_input_embeddings().weight.detach().half())
    assert demo_voice.needs_offline_tokenizer(out)
    assert not demo_voice.needs_offline_tokenizer(out.parent / "ckpt")  # has tokenizer files


def test_exported_voice_loads_with_the_offline_tokenizer_and_aligned_phoneme_prompts(voice_dir):
    out, _ = voice_dir
    tts = LladaTTS.from_pretrained(str(out), dtype=torch.float32)
    assert tts.voices == ["en-us", "en-gb+m3"] and tts.front_end == "espeak-ipa"
    assert tts.model.get_input_embeddings().weight.shape[0] == L.VOCAB_SIZE  # expanded for the sampler
    prompt = tts.prompt("Hello there.", "en-us")
    assert len(prompt) % 7 == 0 and prompt[0] == adapters.FILLER_ID
    want = tts_prompt(build_offline_tokenizer(), "Hello there.", "en-us", front_end="espeak-ipa")
    assert prompt[-len(want):] == want
    wave, sr = tts.synthesize("Hi.", voice="en-us", seed=0, duration=0.5, steps=8)
    assert sr == 24000 and len(wave) > 0


def test_demo_alias(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert demo_voice.resolve("some/hub-id") == "some/hub-id"
    if (demo_voice.DEMO_DIR / "config.json").is_file():
        assert demo_voice.resolve("demo") == str(demo_voice.DEMO_DIR)
    (tmp_path / "demo").mkdir()  # a local folder of that name wins
    assert demo_voice.resolve("demo") == "demo"


@pytest.mark.skipif((demo_voice.DEMO_DIR / "config.json").is_file(), reason="a demo voice ships: nothing missing")
def test_the_default_model_says_in_one_line_that_no_demo_voice_ships_yet(tmp_path, monkeypatch, capsys):
    from llada_tts.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLADA_TTS_MODEL", raising=False)
    assert main(["say", "Hello there.", "-o", str(tmp_path / "x.wav")]) == 2
    assert main(["voices"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("no demo voice ships in this installation yet" in line for line in err)
    assert "pass --model DIR_OR_ID" in err[0] and not (tmp_path / "x.wav").exists()
