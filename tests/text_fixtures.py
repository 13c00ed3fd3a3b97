"""A tiny text checkpoint trained a few steps by the pretrain recipe, for the generate / score tests.

Import the fixture into a test module by name (``from text_fixtures import text_checkpoint``);
it is module-scoped, so each module trains once (a few seconds on a CPU).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6


@pytest.fixture(scope="module")
def text_checkpoint(tmp_path_factory) -> Path:
    """checkpoint folder of ``recipes/pretrain.py --config recipes/configs/pretrain_tiny.yaml`` after STEPS updates."""
    from llada_tts.data.toy_data import write_toy_text
    from llada_tts.training import find_latest
    from llada_tts.training.cli import main

    d = tmp_path_factory.mktemp("pretrain_tiny")
    text = write_toy_text(d / "text.jsonl", 8)
    rc = main(["--config", str(ROOT / "recipes" / "configs" / "pretrain_tiny.yaml"), "--text_QA_dataset", str(text),
               "--save_folder", str(d / "run"), "--max_steps", str(STEPS), "--epochs", "1", "--save_epochs", "1",
               "--report_to", "none", "--logging_steps", str(STEPS)], recipe="pretrain")
    assert rc == 0
    ckpt = find_latest(d / "run")
    assert ckpt is not None
    return ckpt


def tts_only_copy(ckpt: Path, out: Path) -> Path:
    """A copy of ``ckpt`` whose recorded training config is a TTS-only run (TTS_dataset, no text)."""
    import yaml

    shutil.copytree(ckpt, out, ignore=shutil.ignore_patterns("training_state"))
    cfg_file = out / "train_config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text())
    cfg.update(TTS_dataset=str(out / "tts"), text_QA_dataset=None, text_format="auto")
    cfg_file.write_text(yaml.safe_dump(cfg))
    return out


_LOADED: dict = {}


def loaded(ckpt):
    """(model, tokenizer) of ``ckpt`` as ``generate`` / ``score`` load it by default, loaded once."""
    import argparse

    from llada_tts.commands.generate import load_text_model

    key = (str(ckpt), "auto", "auto")
    if key not in _LOADED:
        _LOADED[key] = load_text_model(argparse.Namespace(model=str(ckpt), device="auto", dtype="auto"))
    return _LOADED[key]


@pytest.fixture
def cached_model_loading(monkeypatch):
    """``generate`` / ``score`` load each (checkpoint, device, dtype) from disk once per session (the
    offline tokenizer takes seconds to parse): the first call runs the real loader, checks included."""
    import llada_tts.commands.generate as gen
    import llada_tts.commands.score as score

    real = gen.load_text_model

    def load(args):
        key = (str(args.model), args.device, args.dtype)
        if key not in _LOADED:
            _LOADED[key] = real(args)
        return _LOADED[key]

    monkeypatch.setattr(gen, "load_text_model", load)
    monkeypatch.setattr(score, "load_text_model", load)
