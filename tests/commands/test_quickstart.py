"""`llada-tts quickstart`: every stage is a real product command; reruns skip finished stages."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from llada_tts import quickstart as qs
from llada_tts.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_recipe_config_is_the_quickstart_training_config():
    """recipes/configs/quickstart.yaml is generated from the package: the default quickstart's training config."""
    from llada_tts.training.config import load_config

    path = ROOT / "recipes" / "configs" / "quickstart.yaml"
    assert path.read_text() == qs.recipe_yaml(), f"{path} is stale: rewrite it as its header says"
    assert yaml.safe_load(path.read_text()) == qs.train_config(qs.Settings())
    assert yaml.safe_load(qs.train_yaml(qs.Settings())) == qs.train_config(qs.Settings())  # OUT/train.yaml too
    cfg = load_config(path)  # valid keys and values for the real trainer
    assert (cfg.TTS_dataset, cfg.text_QA_dataset, cfg.ratio) == ("quickstart/dataset", "quickstart/text.jsonl", 0.25)
    assert (cfg.model_name, cfg.tokenizer_name, cfg.save_folder) == ("tiny", "offline", "quickstart/train")


def test_training_stage_is_llada_tts_train_and_its_checkpoint_the_trainers_latest(tmp_path):
    """No path out of the package: the stage runs `llada-tts train`, and the final checkpoint is the trainer's
    own find_latest (a folder without a complete training state is not a checkpoint)."""
    s = qs.Settings(out=tmp_path / "q")
    stages = {st.name: st for st in qs.stages(s)}
    (train,) = qs.commands(stages["train"], s, redo=False)
    assert train == [sys.executable, "-m", "llada_tts", "train", "--config", str(tmp_path / "q" / "train.yaml")]
    assert qs.shell(train) == f"llada-tts train --config {tmp_path / 'q' / 'train.yaml'}"
    partial = tmp_path / "q" / "train" / "checkpoint-epoch-1"
    partial.mkdir(parents=True)
    (partial / "trainer_state.json").write_text(json.dumps({"global_step": 5}))
    (partial / "config.json").write_text("{}")
    assert qs.final_checkpoint(tmp_path / "q" / "train") is None


def test_commands_are_the_product_commands(tmp_path):
    s = qs.Settings(out=tmp_path / "q")
    stages = {st.name: st for st in qs.stages(s)}
    corpus = qs.commands(stages["corpus"], s, redo=False)[0]
    assert corpus[:4] == [sys.executable, "-m", "audio_tokenizer", "corpus"]
    assert corpus[corpus.index("--n") + 1] == "80"
    assert corpus[corpus.index("--voices") + 1] == ",".join(qs.DEFAULT_VOICES)
    build = qs.commands(stages["dataset"], s, redo=False)[0]
    assert build[:4] == [sys.executable, "-m", "audio_tokenizer", "build"]
    assert build[build.index("--codec") + 1] == "demo"  # the shipped codec by default
    (tokenizer,) = qs.commands(stages["codec"], s, redo=False)
    assert "UNTRAINED" not in stages["codec"].title and "demo" in stages["codec"].title
    assert tokenizer[:4] == [sys.executable, "-m", "llada_tts", "tokenizer"]
    assert tokenizer[tokenizer.index("--from") + 1] == "offline"
    assert qs.shell([sys.executable, "-m", "llada_tts", "say", "hi there"]) == "llada-tts say 'hi there'"
    assert qs.shell([sys.executable, "-m", "audio_tokenizer", "corpus"]) == "python -m audio_tokenizer corpus"
    # --codec random: the untrained tiny codec is made in OUT/codec and used by the build
    rand = replace(s, codec="random")
    stages = {st.name: st for st in qs.stages(rand)}
    codec, _ = qs.commands(stages["codec"], rand, redo=False)
    assert codec[:5] == [sys.executable, "-m", "audio_tokenizer", "random-codec", str(tmp_path / "q" / "codec")]
    build = qs.commands(stages["dataset"], rand, redo=False)[0]
    assert build[build.index("--codec") + 1] == str(tmp_path / "q" / "codec")
    assert "UNTRAINED" in stages["codec"].title
    # a trained codec: no random codec is made, and the build and say use the given one
    given = replace(s, codec="/models/snac_24khz")
    stages = {st.name: st for st in qs.stages(given)}
    assert [c[3] for c in qs.commands(stages["codec"], given, redo=False)] == ["tokenizer"]
    build = qs.commands(stages["dataset"], given, redo=False)[0]
    assert build[build.index("--codec") + 1] == "/models/snac_24khz"
    assert "UNTRAINED" not in stages["codec"].title


def test_stage_keys_cascade(tmp_path):
    """A finished stage is skipped only while its settings (and everything upstream) are unchanged."""
    s = qs.Settings(out=tmp_path)
    keys = {st.name: st.key for st in qs.stages(s)}
    more_epochs = {st.name: st.key for st in qs.stages(replace(s, epochs=3))}
    other_voices = {st.name: st.key for st in qs.stages(replace(s, voices=("en-us",)))}
    assert [n for n in keys if keys[n] != more_epochs[n]] == ["train", "say"]
    voice = ["voice"] if qs.demo_voice_installed() else []
    assert [n for n in keys if keys[n] != other_voices[n]] == ["corpus", "dataset", "train", "say", *voice]
    corpus = qs.stages(s)[0]
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "corpus_info.json").write_text("{}")
    (tmp_path / qs.STAMP_DIR).mkdir()
    (tmp_path / qs.STAMP_DIR / "corpus.json").write_text(json.dumps({"key": corpus.key, "seconds": 1.0}))
    assert qs.is_done(corpus, s)
    assert not qs.is_done(qs.stages(replace(s, sentences=5))[0], replace(s, sentences=5))
    (tmp_path / "corpus" / "corpus_info.json").unlink()  # output gone: not done, whatever the stamp says
    assert not qs.is_done(corpus, s)


def test_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["quickstart", "--out", str(tmp_path), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty and was not made by the quickstart" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_failed_stage_names_stage_and_log(tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["quickstart", "--out", str(out), "-q", "--voices", "xx-no-such-voice", "--sentences", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    log = out / "logs" / "corpus.log"
    stages = 6 if qs.demo_voice_installed() else 5  # the shipped voice adds stage 6
    assert err == [f"llada-tts quickstart: error: stage 1/{stages} 'corpus' failed (exit 2); see {log}"]
    assert "unknown eSpeak voice 'xx-no-such-voice'" in log.read_text()
    assert not (out / qs.STAMP_DIR / "corpus.json").exists() and not (out / "corpus").exists()


@pytest.mark.slow
def test_reduced_quickstart_end_to_end_then_skips(tmp_path, capsys):
    import datasets
    import soundfile as sf

    from llada_tts.model import load_model

    out = tmp_path / "qs"
    assert main(["quickstart", "--reduced", "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    n = qs.REDUCED["sentences"]

    # 1 corpus: one wav per sentence, several voices
    wavs = sorted((out / "corpus" / "wavs").glob("*.wav"))
    assert len(wavs) == n
    meta = (out / "corpus" / "metadata.csv").read_text().splitlines()
    assert meta[0] == "file|text|voice" and len(meta) == n + 1
    assert {line.split("|")[2] for line in meta[1:]} == set(qs.REDUCED["voices"])
    # 2 codec: the shipped demo codec, used as is (no codec folder is made)
    assert not (out / "codec").exists() and "-> demo: the shipped demo codec" in printed
    # 3 dataset: rows = utterances - skipped, and the saved dataset has them
    info = json.loads((out / "dataset" / "build_info.json").read_text())
    counts = info["counts"]
    assert counts["utterances"] == n and counts["rows"] == n - counts["skipped"] > 0
    assert len(datasets.load_from_disk(str(out / "dataset"))) == counts["rows"]
    assert info["durations"]["max"] <= 3.0 and info["row_lengths"]["max"] <= 384
    docs = [json.loads(x)["text"] for x in (out / "text.jsonl").read_text().splitlines()]
    assert len(docs) == math.ceil(n / qs.SENTENCES_PER_DOC)
    assert " ".join(docs) == " ".join(line.split("|")[1] for line in meta[1:])
    # 4 train: the final checkpoint loads with the real loader after exactly max_steps updates
    ckpt = qs.final_checkpoint(out / "train")
    assert json.loads((ckpt / "trainer_state.json").read_text())["global_step"] == qs.REDUCED["max_steps"]
    model = load_model(ckpt)
    assert model.config.vocab_size == 156940 and model.config.hidden_size == 64
    assert yaml.safe_load((out / "train.yaml").read_text()) == qs.train_config(qs.reduced(qs.Settings(out=out)))
    # 5 say: 24 kHz mono, whole SNAC frames (one chunk, nothing trimmed)
    wav = sf.info(str(out / "sample.wav"))
    assert (wav.samplerate, wav.channels) == (24000, 1)
    assert wav.frames > 0 and wav.frames % 2048 == 0
    # 6 voice: the shipped demo voice spoke the same sentence (its intelligibility: tests/test_demo_voice.py)
    assert (out / "demo_voice.wav").is_file() == qs.demo_voice_installed()
    if qs.demo_voice_installed():
        assert sf.info(str(out / "demo_voice.wav")).frames % 2048 == 0
    # the summary names every stage's output, the commands and the honest quality note
    for where in (out / "corpus", "demo", out / "dataset", ckpt, out / "sample.wav"):
        assert f"-> {where}" in printed
    for cmd in ("$ python -m audio_tokenizer corpus", "$ python -m audio_tokenizer build", "$ llada-tts say",
                "$ llada-tts train --config"):
        assert cmd in printed
    assert "AUDIO QUALITY NEEDS REAL WEIGHTS" in printed and "hubertsiuzdak/snac_24khz" in printed
    assert "recipes/configs/llama3_1b_single_gpu.yaml" in printed

    # a second run without --force skips every stage and leaves the outputs alone
    before = (out / "sample.wav").stat().st_mtime_ns, ckpt.stat().st_mtime_ns
    assert main(["quickstart", "--reduced", "--out", str(out), "-q"]) == 0
    again = capsys.readouterr().out
    assert again.count("up to date") == len(qs.stages(qs.Settings(out=out))) and "$ " not in again
    assert f"-> {out / 'sample.wav'}" in again
    assert ((out / "sample.wav").stat().st_mtime_ns, ckpt.stat().st_mtime_ns) == before

    # training that did not record its end (as after Ctrl-C) is continued with --resume, not restarted;
    # the finished stages before it are still skipped, the stages after it run again
    (out / qs.STAMP_DIR / "train.json").unlink()
    assert main(["quickstart", "--reduced", "--out", str(out), "-q"]) == 0
    third = capsys.readouterr().out
    assert third.count("up to date") == 3 and "continuing the interrupted run" in third
    assert "$ llada-tts train --config" in third and "--resume" in third and "$ llada-tts say" in third
    assert qs.final_checkpoint(out / "train") == ckpt
    assert json.loads((ckpt / "trainer_state.json").read_text())["global_step"] == qs.REDUCED["max_steps"]
