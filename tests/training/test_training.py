"""The trainer end to end on a tiny model: overfitting, exact resume, Ctrl-C, two processes, mixing, bad data."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file

from audio_tokenizer import layout as L
from llada_tts.data import collate, load_tts_rows
from llada_tts.data.toy_data import toy_tts_rows, write_toy_sft, write_toy_text
from llada_tts.model import load_model
from llada_tts.training import Trainer, TrainResult, find_latest, read_metrics
from llada_tts.training.checkpoint import CONFIG_FILE, STATE_DIR, STATE_FILE, read_state
from llada_tts.training.cli import main
from llada_tts.training.config import TrainConfig, load_config
from llada_tts.training.step import diffusion_step, step_generator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory, offline_tokenizer):
    d = tmp_path_factory.mktemp("toy")
    cols = toy_tts_rows(offline_tokenizer, n_rows=8, frames=2, codes=4, texts=["hi", "yo"], voices=["a", "b"])
    datasets.Dataset.from_dict(cols).save_to_disk(str(d / "tts"))
    return {"dir": d, "tts": str(d / "tts"), "text": str(write_toy_text(d / "text.jsonl", 4)),
            "sft": str(write_toy_sft(d / "sft.jsonl", 8)), "cols": cols}


def tiny(data, out, **kw) -> TrainConfig:
    base = dict(TTS_dataset=data["tts"], text_QA_dataset=data["text"], ratio=0.5, max_length=32, model_name="tiny",
                tokenizer_name="offline", batch_size=2, epochs=2, learning_rate=3e-3, mixed_precision="no",
                report_to="none", logging_steps=1, save_folder=str(out), warmup="1")
    return TrainConfig(**{**base, **kw})


def losses(folder) -> dict[int, tuple[float, float]]:
    return {s: (m["loss"], m["lr"]) for s, m in read_metrics(folder).items()}


def weights(ckpt) -> dict[str, torch.Tensor]:
    return load_file(str(Path(ckpt) / "model.safetensors"))


# --- learning ----------------------------------------------------------------------------------------

def _evaluate(model, batch) -> tuple[float, float]:
    """Loss and masked accuracy over 8 fixed mask draws (the same draws before and after training)."""
    loss = correct = total = 0.0
    with torch.no_grad():
        for k in range(8):
            out = diffusion_step(model.eval(), batch, step_generator(123, k, 0, torch.device("cpu")))
            loss += float(out.loss) / 8
            correct, total = correct + float(out.stats["all_correct"]), total + float(out.stats["all_total"])
    return loss, correct / total


@pytest.mark.slow
def test_overfits_a_tiny_dataset(tmp_path, offline_tokenizer):
    cols = toy_tts_rows(offline_tokenizer, n_rows=4, frames=3, codes=1, texts=["hi"], voices=["a"])
    datasets.Dataset.from_dict(cols).save_to_disk(str(tmp_path / "tts"))
    cfg = TrainConfig(TTS_dataset=str(tmp_path / "tts"), max_length=64, model_name="tiny", tokenizer_name="offline",
                      batch_size=4, epochs=24, learning_rate=1e-2, lr_scheduler_type="constant", mixed_precision="no",
                      report_to="none", logging_steps=1, save_epochs=100, save_folder=str(tmp_path / "run"))
    trainer = Trainer(cfg)
    batch = collate([dict(r) for r in load_tts_rows(str(tmp_path / "tts"), 64, progress=False)])
    before = _evaluate(trainer.model, batch)
    result = trainer.train()
    after = _evaluate(load_model(result.checkpoint), batch)
    log = read_metrics(tmp_path / "run")
    first = sum(log[s]["loss"] for s in (1, 2, 3)) / 3
    last = sum(log[s]["loss"] for s in range(20, 25)) / 5
    assert after[0] < 0.4 * before[0], (before, after)  # ~12 (uniform over 157k ids) -> ~2
    assert before[1] < 0.02 and after[1] > 0.1, (before, after)
    assert last < 0.4 * first, (first, last)
    assert result.state.global_step == 24 and not result.interrupted


def test_updates_returns_its_result_and_full_logits_is_a_constructor_setting(data, tmp_path):
    """updates() yields the state after each optimizer update and returns the TrainResult that train()
    returns; Trainer(full_logits=True) trains on logits at every position, to the same losses."""
    kw = dict(max_steps=2, epochs=1, prompt_drop_prob=0.0)
    masked = Trainer(tiny(data, tmp_path / "a", **kw))
    run, steps = masked.updates(), []
    while True:
        try:
            steps.append(next(run).global_step)
        except StopIteration as done:
            result = done.value
            break
    assert steps == [1, 2] and isinstance(result, TrainResult) and not result.interrupted
    assert result.state.global_step == 2 and result.checkpoint == find_latest(tmp_path / "a")
    full = Trainer(tiny(data, tmp_path / "b", **kw), full_logits=True)
    assert full.full_logits and not masked.full_logits
    assert full.train().state.global_step == 2
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(a) == sorted(b) == [1, 2]
    assert all(a[s] == pytest.approx(b[s], rel=1e-4) for s in a)


# --- resume ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_stop_and_resume_matches_an_uninterrupted_run(data, tmp_path):
    kw = dict(gradient_accumulation_steps=2, save_epochs=0.5, epochs=2)
    full = Trainer(tiny(data, tmp_path / "a", **kw)).train()
    part = Trainer(tiny(data, tmp_path / "b", **kw)).train(stop_after=2)
    assert part.interrupted and part.state.global_step == 2
    saved = read_state(part.checkpoint)
    assert (saved.global_step, saved.micro_step) == (2, 4)
    rest = Trainer(tiny(data, tmp_path / "b", **kw), resume="latest").train()
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(a) == sorted(b) == list(range(1, full.state.global_step + 1))
    assert a == b  # every step's loss and learning rate, bit for bit
    wa, wb = weights(full.checkpoint), weights(rest.checkpoint)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert full.checkpoint.name == rest.checkpoint.name == "checkpoint-epoch-2"
    # checkpoint layout: save_pretrained + tokenizer + resolved config + training state; nothing half-written left
    ck = full.checkpoint
    for name in ("config.json", "model.safetensors", "tokenizer.json", CONFIG_FILE, STATE_FILE):
        assert (ck / name).is_file(), name
    # training state: safetensors + JSON only (nothing that loads by unpickling), no duplicate weights
    assert sorted(p.name for p in (ck / STATE_DIR).iterdir()) == ["optimizer.safetensors", "rng_0.safetensors",
                                                                  "training_state.json"]
    assert load_config(ck / CONFIG_FILE) == tiny(data, tmp_path / "a", **kw).resolved()
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]
    epochs = sorted(p.name for p in (tmp_path / "a").glob("checkpoint-epoch-*"))
    assert epochs == [f"checkpoint-epoch-{e}" for e in ("0.5", "1", "1.5", "2")]
    with pytest.raises(ValueError, match="batch_size: 2 -> 1"):
        Trainer(tiny(data, tmp_path / "b", batch_size=1, **kw), resume=part.checkpoint)


def _cli(*args, cwd=ROOT, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(data, tmp_path):
    cfg = tiny(data, tmp_path / "x", epochs=40, max_steps=40, save_epochs=100, ratio=0.25)
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in dataclasses.asdict(cfg).items()))
    script = str(ROOT / "recipes" / "tts_train.py")
    ref = _cli(script, "--config", str(path), "--save_folder", str(tmp_path / "ref"))
    assert ref.wait(timeout=600) == 0, ref.stdout.read()[-3000:]
    run = _cli(script, "--config", str(path), "--save_folder", str(tmp_path / "cut"))
    deadline = time.time() + 300
    while 2 not in read_metrics(tmp_path / "cut") and time.time() < deadline and run.poll() is None:
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    out = run.communicate(timeout=300)[0]
    assert run.returncode == 130, out[-3000:]
    assert "resume with:" in out
    stopped = read_state(next((tmp_path / "cut").glob("checkpoint-epoch-*"))).global_step
    assert 2 <= stopped < 40
    resumed = _cli(script, "--config", str(path), "--save_folder", str(tmp_path / "cut"), "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()[-3000:]
    assert losses(tmp_path / "ref") == losses(tmp_path / "cut")
    last_ref, last_cut = find_latest(tmp_path / "ref"), find_latest(tmp_path / "cut")
    assert last_ref.name == last_cut.name and read_state(last_cut).global_step == 40
    wa, wb = weights(last_ref), weights(last_cut)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# --- two processes -----------------------------------------------------------------------------------

RANK_SCRIPT = """
import hashlib, json, sys, torch
from llada_tts.training.config import TrainConfig
from llada_tts.training import Trainer
cfg = TrainConfig(**json.loads(open(sys.argv[1]).read()))
t = Trainer(cfg)
rank = t.accelerator.process_index
rows = [t.sampler.batch(0, s) for s in range(len(t.sampler))]
before = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in t.model.parameters())).hexdigest()
t.train()
after = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in t.model.parameters())).hexdigest()
json.dump({"rows": rows, "before": before, "after": after, "n": t.accelerator.num_processes},
          open(f"{cfg.save_folder}/rank{rank}.json", "w"))
"""


@pytest.mark.slow
def test_two_cpu_processes_keep_identical_weights(data, tmp_path):
    cfg = tiny(data, tmp_path / "run", epochs=1, max_steps=3, number_processes=2, batch_size=1, ratio=0.5)
    (tmp_path / "cfg.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    launch = _cli("-m", "accelerate.commands.launch", "--config_file", str(ROOT / "recipes/accelerate/cpu_2proc.yaml"),
                  "--main_process_port", "0",  # any free port: never the default 29500 another run may hold
                  str(tmp_path / "rank.py"), str(tmp_path / "cfg.json"))
    out = launch.communicate(timeout=900)[0]
    assert launch.returncode == 0, out[-4000:]
    r0, r1 = (json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["n"] == r1["n"] == 2
    assert r0["after"] == r1["after"] != r0["before"]  # trained, and both ranks hold the same weights
    seen0 = {tuple(k) for b in r0["rows"] for k in b}
    seen1 = {tuple(k) for b in r1["rows"] for k in b if k[0] == "tts"}
    assert not {k for k in seen0 if k[0] == "tts"} & seen1  # each process trains on its own TTS rows
    assert sorted(read_metrics(tmp_path / "run")) == [1, 2, 3]  # logged once, by the main process
    assert (next((tmp_path / "run").glob("checkpoint-epoch-*")) / "model.safetensors").is_file()


# --- mixing ------------------------------------------------------------------------------------------

def test_text_fraction_of_trained_batches_matches_ratio(data, tmp_path):
    trainer = Trainer(tiny(data, tmp_path, ratio=0.3, batch_size=2, epochs=2))
    kinds, orders = [], []
    for epoch in range(2):
        trainer.sampler.set_epoch(epoch)
        batches = list(trainer.loader)
        orders.append([b["input_ids"][b["kind"] == 2].tolist() for b in batches])
        kinds += [b["kind"] for b in batches]
    n = len(kinds)
    text = [int((k == 0).sum()) for k in kinds]
    assert n >= 6 and set(text) == {0, 2}  # one kind per batch
    assert abs(sum(text) / (2 * n) - 0.3) <= 2 / n + 1e-9  # held over the batches of each epoch
    assert orders[0] != orders[1]  # reshuffled every epoch


@pytest.fixture(scope="module")
def uneven(data, offline_tokenizer):
    """TTS rows of three lengths (prompts differ) and text packed to max_length 64."""
    cols = toy_tts_rows(offline_tokenizer, n_rows=12, frames=2, codes=4,
                        texts=["hi", "hello there", "a much longer one"], voices=["a"])
    datasets.Dataset.from_dict(cols).save_to_disk(str(data["dir"] / "uneven"))
    return str(data["dir"] / "uneven")


def _tts_fill_fraction(batch) -> float:
    tts = batch["kind"] == 2
    fill = (batch["input_ids"][tts] == L.PAD_ID).sum()
    return float(fill / batch["maskable"][tts].sum()) if tts.any() else 0.0


def test_tts_padding_fraction_and_fill_loss_are_logged(data, uneven, tmp_path):
    kw = dict(TTS_dataset=uneven, ratio=0.25, max_length=64, batch_size=3, epochs=1, prompt_drop_prob=0.0)
    probe = Trainer(tiny(data, tmp_path / "probe", **kw))
    want = [_tts_fill_fraction(b) for b in probe.loader]
    assert probe.sampler.n_text >= 1 and len(want) == 6 and 0 < max(want) < 0.4
    Trainer(tiny(data, tmp_path / "run", **kw)).train()
    log = read_metrics(tmp_path / "run")
    assert [log[s]["tts_fill_fraction"] for s in sorted(log)] == pytest.approx(want)
    assert [log[s]["tts_rows"] for s in sorted(log)] == [0, 3, 3, 3, 0, 3]  # ratio 0.25: text, TTS x 3, text, TTS
    assert all(m["loss_fill"] >= 0 and "accuracy_fill" in m for m in log.values())


def test_random_length_crops_are_logged(data, tmp_path):
    Trainer(tiny(data, tmp_path, random_length_prob=1.0, ratio=0.5, max_steps=4, epochs=1)).train()
    log = read_metrics(tmp_path)
    crops = [log[s]["crops"] for s in sorted(log)]
    assert crops[1::2] == [0, 0]  # TTS batches: nothing to crop
    assert crops[0::2] != [0, 0] and set(crops) <= {0, 1}  # text batches (a drawn full length is no crop)


# --- bad input ---------------------------------------------------------------------------------------

def _dataset(tmp_path, **cols):
    datasets.Dataset.from_dict(cols).save_to_disk(str(tmp_path / "bad"))
    return str(tmp_path / "bad")


@pytest.mark.parametrize("case, match", [
    ("oov", "row 1, column input_ids, position 3: id 999999"),
    ("missing", "no column 'input_ids'"),
    ("empty", "is it an empty or incomplete save_to_disk folder?"),
    ("long", "row 0, column input_ids: 40 ids > max_length 32"),
])
def test_bad_tts_data_stops_before_training(data, tmp_path, capsys, case, match):
    good = data["cols"]["input_ids"][0]
    cols = {"oov": {"input_ids": [good, good[:3] + [999999] + good[4:]]}, "missing": {"ids": [good]},
            "empty": None, "long": {"input_ids": [good + [L.PAD_ID] * (40 - len(good))]}}[case]
    if case == "empty":
        datasets.Dataset.from_dict({"input_ids": []}, features=datasets.Features(
            {"input_ids": datasets.Sequence(datasets.Value("int64"))})).save_to_disk(str(tmp_path / "bad"))
        path = str(tmp_path / "bad")
    else:
        path = _dataset(tmp_path, **cols)
    rc = main(["--TTS_dataset", path, "--model_name", "tiny", "--tokenizer_name", "offline", "--max_length", "32",
               "--save_folder", str(tmp_path / "out"), "--report_to", "none"])
    err = capsys.readouterr().err
    assert rc == 2 and f"error: TTS_dataset {path}: " in err and match in err, err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("checkpoint-*"))


def test_bad_text_data_and_settings_stop_before_training(data, tmp_path, capsys):
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "typo"}\n')
    args = ["--model_name", "tiny", "--tokenizer_name", "offline", "--save_folder", str(tmp_path),
            "--report_to", "none"]
    assert main(["--text_QA_dataset", str(bad), *args], recipe="pretrain") == 2
    assert f"error: text_QA_dataset {bad}: {bad} line 2: expected a 'text'" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["--text_QA_dataset", str(tmp_path / "empty.jsonl"), *args], recipe="sft") == 2
    assert "no SFT rows" in capsys.readouterr().err
    assert main(["--TTS_dataset", data["tts"], "--text_QA_dataset", data["text"], *args], recipe="pretrain") == 2
    assert "trains on text only" in capsys.readouterr().err
    assert main(["--TTS_dataset", data["tts"], "--number_processes", "4", *args]) == 2
    assert "accelerate launch --num_processes 4" in capsys.readouterr().err
    assert main(["--TTS_dataset", data["tts"], "--voice_type", "zed", *args]) == 2
    assert "voices in TTS_dataset: a, b" in capsys.readouterr().err


def test_voice_type_filters_rows(data, tmp_path):
    trainer = Trainer(tiny(data, tmp_path, voice_type="a", text_QA_dataset=None, batch_size=1))
    assert trainer.sampler.n_tts == 4  # rows alternate voices a, b


def test_tensorboard_logging_when_installed(data, tmp_path):
    pytest.importorskip("tensorboard")
    from accelerate.utils import is_tensorboard_available

    if not is_tensorboard_available():
        pytest.skip("tensorboard importable but not installed as a package")
    Trainer(tiny(data, tmp_path, report_to="tensorboard", max_steps=2, run_name="tb")).train()
    assert list((tmp_path / "runs" / "tb").glob("events.out.tfevents.*"))


# --- shipped configs and recipes ----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("recipe, config, source", [("tts", "tiny_cpu.yaml", None),
                                                   ("pretrain", "pretrain_tiny.yaml", "text"),
                                                   ("sft", "sft_tiny.yaml", "sft")])
def test_shipped_tiny_configs_train(data, tmp_path, recipe, config, source):
    paths = (["--TTS_dataset", data["tts"], "--text_QA_dataset", data["text"]] if source is None
             else ["--text_QA_dataset", data[source]])
    out = tmp_path / "run"
    rc = main(["--config", str(ROOT / "recipes" / "configs" / config), *paths, "--save_folder", str(out),
               "--max_steps", "2", "--logging_steps", "1", "--report_to", "none"], recipe=recipe)
    assert rc == 0
    ck = next(out.glob("checkpoint-epoch-*"))
    model = load_model(ck)
    assert model.config.vocab_size == L.VOCAB_SIZE and model.config.is_causal is False
    saved = load_config(ck / CONFIG_FILE)
    assert saved.ratio == (0.25 if recipe == "tts" else 1.0)
    assert saved.text_format == {"tts": "auto", "pretrain": "text", "sft": "sft"}[recipe]
    log = read_metrics(out)
    assert sorted(log) == [1, 2] and all(m["loss"] > 0 and m["tokens_per_s"] > 0 for m in log.values())
    assert log[1]["loss_text"] > 0  # every epoch starts with a text batch (the TTS-only recipe has none)
