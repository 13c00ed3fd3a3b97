"""FSDP on two CPU processes (gloo), launched the way users launch it: ``accelerate launch --config_file
recipes/accelerate/fsdp.yaml --num_processes 2 --mixed_precision no|bf16``.

Every run here asserts that FSDP really sharded the model (wrapper type, one unit per decoder layer,
each process holding about half of the parameters, the shards adding up to the whole model), so a
launch that silently fell back to DDP or to one process fails. Against that: per-step losses equal
2-process DDP's, the checkpoint is a consolidated save_pretrained folder that ``load_model`` reads in one
process, ``--resume`` continues bit for bit, bf16 tracks fp32, gradient checkpointing changes no loss,
and ``audio_loss: slot`` is refused in one line.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from llada_tts.data.toy_data import toy_tts_rows, write_toy_text
from llada_tts.model import load_model
from llada_tts.training import read_metrics
from llada_tts.training.checkpoint import STATE_DIR
from llada_tts.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
FSDP_YAML = ROOT / "recipes/accelerate/fsdp.yaml"
DDP_YAML = ROOT / "recipes/accelerate/cpu_2proc.yaml"
LOSS_RTOL = 1e-5  # FSDP vs DDP, fp32: only the order of float sums differs (measured <= 1e-7)
BF16_RTOL = 1e-2  # bf16 vs fp32, per step (measured <= 4e-4 on these runs)

# Runs the Trainer in each process and writes what the test checks to rank<N>.json.
RANK_SCRIPT = """
import json, sys, torch
from llada_tts.training.config import TrainConfig
from llada_tts.training import Trainer
spec = json.loads(open(sys.argv[1]).read())
resume, stop_after = spec.pop("_resume", None), spec.pop("_stop_after", None)
t = Trainer(TrainConfig(**spec), resume=resume)
acc, model = t.accelerator, t.model
net = acc.unwrap_model(model)
result = t.train(stop_after=stop_after)
opt_state = [v for s in t.optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.ndim > 0]
info = dict(
    n=acc.num_processes, distributed_type=str(acc.distributed_type), mixed_precision=acc.mixed_precision,
    wrapper=f"{type(model).__module__}.{type(model).__name__}",
    units=sum(type(m).__name__ == "FullyShardedDataParallel" for m in model.modules()),
    strategy=str(getattr(model, "sharding_strategy", None)),
    policy=str(getattr(model, "mixed_precision", None)),
    local={n: [list(p.shape), p.numel()] for n, p in model.named_parameters()},
    param_dtypes=sorted({str(p.dtype) for p in model.parameters()}),
    opt_state=len(opt_state), opt_dtypes=sorted({str(v.dtype) for v in opt_state}),
    checkpointing=bool(getattr(net, "is_gradient_checkpointing", False)),
    checkpoint=str(result.checkpoint), global_step=result.state.global_step, interrupted=result.interrupted)
json.dump(info, open(f"{spec['save_folder']}/rank{acc.process_index}.json", "w"))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], config_file: Path = FSDP_YAML, precision: str = "no", timeout: int = 600):
    """``accelerate launch --config_file CONFIG --num_processes 2 --mixed_precision P ARGS``: (returncode, output)."""
    # CPU processes even on a GPU machine (that is what these tests prove; GPUs: benchmarks/gpu/train_check.sh)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file), "--num_processes",
           "2", "--mixed_precision", precision, "--main_process_port", str(_free_port()), *args]
    run = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=timeout)
    return run.returncode, run.stdout


@pytest.fixture(scope="module")
def data(tmp_path_factory, offline_tokenizer):
    d = tmp_path_factory.mktemp("toy")
    cols = toy_tts_rows(offline_tokenizer, n_rows=8, frames=2, codes=4, texts=["hi", "yo"], voices=["a", "b"])
    datasets.Dataset.from_dict(cols).save_to_disk(str(d / "tts"))
    return {"dir": d, "tts": str(d / "tts"), "text": str(write_toy_text(d / "text.jsonl", 4))}


def run_config(data, out: Path, **kw) -> dict:
    """4 optimizer updates of 2 micro-batches (no_sync on the first), 1 row per process per micro-batch."""
    base = dict(TTS_dataset=data["tts"], text_QA_dataset=data["text"], ratio=0.5, max_length=32, model_name="tiny",
                tokenizer_name="offline", batch_size=1, gradient_accumulation_steps=2, epochs=1, max_steps=4,
                learning_rate=3e-3, warmup="1", mixed_precision="no", report_to="none", logging_steps=1,
                save_epochs=100, number_processes=2, save_folder=str(out))
    extra = {k: kw.pop(k) for k in list(kw) if k.startswith("_")}  # _resume / _stop_after for RANK_SCRIPT
    return {**dataclasses.asdict(TrainConfig(**{**base, **kw})), **extra}


def train(tmp_path: Path, data, name: str, config_file: Path = FSDP_YAML, precision: str = "no", **kw) -> dict:
    """Launch RANK_SCRIPT on 2 processes; returns {"dir", "ranks": [rank0, rank1], "metrics"}."""
    out = tmp_path / name
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps(run_config(data, out, **kw)))
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    code, log = launch([str(script), str(spec)], config_file=config_file, precision=precision)
    assert code == 0, log[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return {"dir": out, "ranks": ranks, "metrics": read_metrics(out), "log": log}


def assert_sharded(run: dict, full_numel: int) -> None:
    """FULL_SHARD really happened: FSDP wrapper, root + one unit per decoder layer, per-rank flat shards that add up
    to the model, no process holding it all."""
    for r in run["ranks"]:
        assert r["n"] == 2 and r["distributed_type"] == "DistributedType.FSDP"
        assert r["wrapper"] == "torch.distributed.fsdp.fully_sharded_data_parallel.FullyShardedDataParallel"
        assert r["units"] == 3  # root (embeddings, norm, head) + 2 LlamaDecoderLayer units (tiny: 2 layers)
        assert r["strategy"] == "ShardingStrategy.FULL_SHARD"
        assert all(len(shape) == 1 for shape, _ in r["local"].values())  # flat views of this rank's shard
        assert all(name.startswith("_fsdp_wrapped_module.") for name in r["local"])
    held = [sum(n for _, n in r["local"].values()) for r in run["ranks"]]
    assert sum(held) == full_numel  # the shards partition the model (tied embeddings/head counted once)
    assert all(abs(h - full_numel / 2) <= 0.01 * full_numel for h in held), (held, full_numel)
    # a parameter split across the ranks' shards (FSDP flattens a unit, then cuts it in two)
    assert any(0 < run["ranks"][0]["local"][k][1] < sum(r["local"][k][1] for r in run["ranks"])
               for k in run["ranks"][0]["local"])


def held_params(rank: dict) -> int:
    """Parameters with elements in this process's shard (the others have no gradient and no AdamW state)."""
    return sum(n > 0 for _, n in rank["local"].values())


def losses(run: dict) -> list[float]:
    return [run["metrics"][s]["loss"] for s in sorted(run["metrics"])]


def checkpoint(run: dict) -> Path:
    return Path(run["ranks"][0]["checkpoint"])


@pytest.fixture(scope="module")
def fsdp_fp32(tmp_path_factory, data):
    return train(tmp_path_factory.mktemp("fsdp"), data, "fsdp")


@pytest.fixture(scope="module")
def ddp_fp32(tmp_path_factory, data):
    return train(tmp_path_factory.mktemp("ddp"), data, "ddp", config_file=DDP_YAML)


@pytest.fixture(scope="module")
def full_numel(fsdp_fp32) -> int:
    return sum(p.numel() for p in load_model(checkpoint(fsdp_fp32)).parameters())


@pytest.mark.slow
def test_fsdp_full_shard_on_two_cpu_processes_matches_ddp(fsdp_fp32, ddp_fp32, full_numel):
    assert_sharded(fsdp_fp32, full_numel)
    for r in ddp_fp32["ranks"]:  # the reference really is DDP, each process holding the whole model
        assert r["distributed_type"] == "DistributedType.MULTI_CPU" and r["wrapper"].endswith("DistributedDataParallel")
        assert sum(n for _, n in r["local"].values()) == full_numel
    assert sorted(fsdp_fp32["metrics"]) == sorted(ddp_fp32["metrics"]) == [1, 2, 3, 4]
    a, b = fsdp_fp32["metrics"], ddp_fp32["metrics"]
    for s in a:
        assert a[s]["loss"] == pytest.approx(b[s]["loss"], rel=LOSS_RTOL), s
        assert a[s]["grad_norm"] == pytest.approx(b[s]["grad_norm"], rel=1e-4), s
        assert a[s]["lr"] == b[s]["lr"] and a[s]["tokens"] == b[s]["tokens"]
    assert len(set(losses(fsdp_fp32))) == 4  # distinct steps, not one value repeated
    for r in fsdp_fp32["ranks"]:  # fp32 master shards and AdamW state (exp_avg + exp_avg_sq per non-empty shard)
        assert r["param_dtypes"] == r["opt_dtypes"] == ["torch.float32"]
        assert r["opt_state"] == 2 * held_params(r)


@pytest.mark.slow
def test_fsdp_checkpoint_is_a_consolidated_save_pretrained_folder(fsdp_fp32, ddp_fp32, full_numel):
    ck, ref = checkpoint(fsdp_fp32), checkpoint(ddp_fp32)
    assert ck.name == ref.name and (ck / "config.json").is_file()
    assert not list(ck.glob("*.bin")) and not list(ck.rglob("*.pkl"))
    weights, ref_weights = load_file(str(ck / "model.safetensors")), load_file(str(ref / "model.safetensors"))
    assert weights.keys() == ref_weights.keys()  # same names as a DDP run's: the tied head is stored once
    assert (ck / "model.safetensors").stat().st_size == (ref / "model.safetensors").stat().st_size
    assert {str(v.dtype) for v in weights.values()} == {"torch.float32"}
    for k, v in weights.items():  # full (unsharded) tensors, equal to DDP's up to float-sum order
        assert v.shape == ref_weights[k].shape
        torch.testing.assert_close(v, ref_weights[k], rtol=0, atol=1e-4)
    # the sharded model + optimizer for --resume, one file per process
    fsdp_state = ck / STATE_DIR / "fsdp"
    assert sorted(p.name for p in (fsdp_state / "pytorch_model_fsdp_0").glob("*.distcp")) == ["__0_0.distcp",
                                                                                         "__1_0.distcp"]
    assert sorted(p.name for p in (fsdp_state / "optimizer_0").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    # one process, no FSDP: load_model reads it as a bidirectional LlamaForCausalLM
    model = load_model(ck)
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.is_causal is False
    assert sum(p.numel() for p in model.parameters()) == full_numel
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    torch.testing.assert_close(model.get_input_embeddings().weight.detach(), weights["model.embed_tokens.weight"],
                               rtol=0, atol=0)


@pytest.mark.slow
def test_fsdp_resume_matches_an_uninterrupted_run(tmp_path, data, fsdp_fp32, full_numel):
    part = train(tmp_path, data, "run", _stop_after=2)
    assert all(r["interrupted"] and r["global_step"] == 2 for r in part["ranks"])
    rest = train(tmp_path, data, "run", _resume="latest")
    assert_sharded(rest, full_numel)
    assert all(r["global_step"] == 4 and not r["interrupted"] for r in rest["ranks"])
    assert "resumed from" in rest["log"]
    for r in rest["ranks"]:
        assert r["opt_state"] == 2 * held_params(r)
    a = {s: (m["loss"], m["lr"], m["grad_norm"]) for s, m in fsdp_fp32["metrics"].items()}
    b = {s: (m["loss"], m["lr"], m["grad_norm"]) for s, m in rest["metrics"].items()}
    assert a == b  # every step's loss, learning rate and gradient norm, bit for bit
    wa = load_file(str(checkpoint(fsdp_fp32) / "model.safetensors"))
    wb = load_file(str(checkpoint(rest) / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_fsdp_bf16_tracks_fp32(tmp_path, data, fsdp_fp32, full_numel):
    # mixed_precision: auto takes the launcher's --mixed_precision bf16
    run = train(tmp_path, data, "bf16", precision="bf16", mixed_precision="auto")
    assert_sharded(run, full_numel)
    for r in run["ranks"]:
        assert r["mixed_precision"] == "bf16"
        # bf16 compute copies; fp32 buffers (RoPE inv_freq, as at inference); fp32 master shards and AdamW state
        assert "param_dtype=torch.bfloat16" in r["policy"] and "buffer_dtype=torch.float32" in r["policy"]
        assert r["param_dtypes"] == r["opt_dtypes"] == ["torch.float32"]
    got, want = losses(run), losses(fsdp_fp32)
    assert all(math.isfinite(x) for x in got) and len(got) == len(want) == 4
    assert got != want  # bf16 really ran
    assert max(abs(g - w) / w for g, w in zip(got, want)) <= BF16_RTOL, (got, want)
    ck = checkpoint(run)
    with safe_open(str(ck / "model.safetensors"), "pt") as f:  # saved in fp32 (the master weights)
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F32"}
    assert next(load_model(ck).parameters()).dtype == torch.float32


@pytest.mark.slow
def test_fsdp_gradient_checkpointing_keeps_the_losses(tmp_path, data, fsdp_fp32, full_numel):
    run = train(tmp_path, data, "gc", gradient_checkpointing=True)
    assert_sharded(run, full_numel)
    assert all(r["checkpointing"] for r in run["ranks"]) and not any(r["checkpointing"] for r in fsdp_fp32["ranks"])
    assert losses(run) == pytest.approx(losses(fsdp_fp32), rel=1e-6)


@pytest.mark.slow
def test_slot_audio_loss_is_refused_under_fsdp(tmp_path, data):
    cfg = run_config(data, tmp_path / "slot", audio_loss="slot")
    (tmp_path / "slot.yaml").write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in cfg.items()))
    code, log = launch([str(ROOT / "recipes/tts_train.py"), "--config", str(tmp_path / "slot.yaml")])
    assert code != 0
    assert "error: audio_loss: slot does not run under FSDP" in log, log[-3000:]
    assert not list((tmp_path / "slot").glob("checkpoint-*"))
