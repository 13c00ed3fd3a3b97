"""Trainer building blocks: LR schedule, optimizer groups, the diffusion step's loss and metrics, checkpoint names."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from audio_tokenizer import layout as L
from llada_tts.data import collate
from llada_tts.diffusion import forward_process, mask_prompt
from llada_tts.model import create_model, tiny_config
from llada_tts.training.checkpoint import checkpoint_dir, format_epoch
from llada_tts.training.optim import build_optimizer, build_scheduler, lr_factor, param_groups
from llada_tts.training.step import accuracy_counts, crop_text_rows, diffusion_step, drop_prompts, step_generator
from llada_tts.training.warmup import from_legacy


@pytest.fixture(scope="module")
def model():
    return create_model(tiny_config(), seed=0)


def test_lr_factor_exact_values():
    assert [lr_factor(s, 3, 10, "linear") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(6, 2, 10, "linear") == pytest.approx(0.5)
    assert lr_factor(10, 2, 10, "linear") == 0.0
    assert lr_factor(6, 2, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(4, 2, 10, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert [lr_factor(s, 1, 10, "constant") for s in (0, 1, 9)] == [0.5, 1.0, 1.0]
    with pytest.raises(ValueError, match="lr_scheduler_type"):
        lr_factor(5, 0, 10, "step")


def test_scheduler_follows_lr_factor(model):
    opt = build_optimizer(model, 1e-3)
    sched = build_scheduler(opt, "cosine", 2, 8)
    seen = []
    for _ in range(8):
        seen.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert seen == pytest.approx([1e-3 * lr_factor(s, 2, 8, "cosine") for s in range(8)])


def test_warmup_updates():  # the earlier keys' schedules, through the one warmup rule
    assert from_legacy(warmup_ratio=0.03).updates(100, 10) == 3
    assert from_legacy(warmup_ratio=0.5, warmup_steps=7).updates(100, 10) == 7
    assert from_legacy(warmup_epochs=0.5).updates(100, 10) == 5


def test_weight_decay_skips_norms_and_embeddings(model):
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    emb = model.get_input_embeddings().weight
    assert any(p is emb for p in no_decay["params"]) and not any(p is emb for p in decay["params"])
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 or p is emb for p in no_decay["params"])
    n = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())


def _rows():
    text = {"input_ids": [L.BOS_ID, 40, 41, 42, 43, 44, L.END_OF_TEXT_ID], "prompt_length": 0, "kind": "text"}
    sft = {"input_ids": [L.BOS_ID, 50, 51, 52, 53, L.END_OF_TEXT_ID], "prompt_length": 3, "kind": "sft"}
    audio = L.codes_to_tokens(([1], [2, 3], [4, 5, 6, 7])).tolist()
    tts = {"input_ids": L.tts_prompt_ids([L.BOS_ID, 60]) + audio + [L.END_OF_SPEECH_ID, L.END_OF_AI_ID],
           "prompt_length": 6, "kind": "tts"}
    return [text, sft, tts]


def _hand_loss(model, batch, seed):
    """LLaDA's loss written out: sum over masked positions of CE / p_mask, over the row's normaliser, mean."""
    gen = step_generator(seed, 0, 0, torch.device("cpu"))
    noisy, masked, p_mask = forward_process(batch["input_ids"], batch["maskable"], L.MASK_ID, generator=gen)
    logp = model(input_ids=noisy, attention_mask=batch["attention_mask"]).logits.float().log_softmax(-1)  # [B, L, V]
    total = 0.0
    for b in range(noisy.shape[0]):
        row = 0.0
        for i in range(noisy.shape[1]):
            if masked[b, i]:
                row += -logp[b, i, batch["input_ids"][b, i]] / p_mask[b, i]
        total += row / batch["normalizer"][b]
    return total / noisy.shape[0], masked


def _masks_every_row(batch, seed):
    gen = step_generator(seed, 0, 0, torch.device("cpu"))
    return bool(forward_process(batch["input_ids"], batch["maskable"], L.MASK_ID, generator=gen)[1].any(1).all())


@pytest.mark.parametrize("which", [[0], [1], [2], [0, 1, 2]], ids=["text", "sft", "tts", "mixed"])
def test_step_loss_is_the_llada_formula_and_never_zero_for_text(model, which):
    batch = collate([_rows()[i] for i in which])
    seed = next(s for s in range(100) if _masks_every_row(batch, s))
    out = diffusion_step(model, batch, step_generator(seed, 0, 0, torch.device("cpu")))
    want, masked = _hand_loss(model, batch, seed)
    assert masked.any(1).all() and float(out.loss.detach()) > 0
    assert float(out.loss.detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    model.zero_grad()
    out.loss.backward()
    assert model.get_input_embeddings().weight.grad.abs().sum() > 0
    assert not masked[~batch["maskable"]].any()  # prompts never masked


def test_masked_only_logits_match_full_logits(model):
    batch = collate(_rows())
    seed = next(s for s in range(100) if _masks_every_row(batch, s))
    outs, grads = [], []
    for full in (True, False):
        model.zero_grad()
        out = diffusion_step(model, batch, step_generator(seed, 0, 0, torch.device("cpu")), full_logits=full)
        out.loss.backward()
        outs.append(out)
        grads.append([p.grad.clone() for p in model.parameters()])
    full, ours = outs
    assert float(ours.loss.detach()) == pytest.approx(float(full.loss.detach()), rel=1e-6)
    for k in full.stats:
        assert float(ours.stats[k]) == pytest.approx(float(full.stats[k]), rel=1e-5, abs=1e-6), k
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(*grads))
    assert model.get_output_embeddings()._forward_pre_hooks == {}  # the hook is removed again


def test_text_rows_normalised_by_length_tts_by_answer(model):
    batch = collate(_rows() + [_rows()[0]])  # each kind's length: text 7, sft 6, tts 16
    assert batch["normalizer"].tolist() == [7, 6 - 3, 16 - 6, 7]


def test_accuracy_counts_match_a_hand_count():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 9, L.VOCAB_SIZE, generator=gen)
    targets = torch.tensor([[5, L.AUDIO_OFFSET, 7, L.AUDIO_OFFSET + 9, 1, 2, 3, 4, 5]] * 2)
    targets[1, :4] = logits[1, :4].argmax(-1)
    masked = torch.rand(2, 9, generator=gen) < 0.7
    masked[1, :4] = True
    pred = logits[masked].argmax(dim=-1)
    ours = {k: int(v) for k, v in accuracy_counts(pred, targets[masked]).items()}
    want = dict.fromkeys(ours, 0)
    for p, t in zip(pred.tolist(), targets[masked].tolist()):
        kind = "audio" if L.AUDIO_OFFSET <= t < L.AUDIO_END else "text"
        for name in ("all", kind):
            want[f"{name}_total"] += 1
            want[f"{name}_correct"] += int(p == t)
    assert ours == want and ours["all_correct"] >= 4


def test_step_generator_is_a_function_of_seed_step_rank():
    def draw(*key):
        return torch.rand(4, generator=step_generator(*key, torch.device("cpu"))).tolist()

    assert draw(1, 5, 0) == draw(1, 5, 0)
    assert len({tuple(draw(*k)) for k in [(1, 5, 0), (1, 5, 1), (1, 6, 0), (2, 5, 0)]}) == 4


def test_random_length_crop_applies_to_text_rows_wherever_they_are():
    rows = _rows()
    text_batch = collate([rows[0], rows[0]])
    gen = torch.Generator().manual_seed(3)
    cropped, did = crop_text_rows(text_batch, 1.0, gen)
    n = cropped["input_ids"].shape[1]
    assert did and n < text_batch["input_ids"].shape[1]
    assert cropped["normalizer"].tolist() == [float(n)] * 2
    assert cropped["maskable"].shape == cropped["attention_mask"].shape == (2, n)
    # a mixed batch: the text row is cut to the drawn length, the sft and TTS rows are untouched
    mixed = collate(rows)
    gen = torch.Generator().manual_seed(3)
    out, did = crop_text_rows(mixed, 1.0, gen)
    assert did and out["input_ids"].shape == mixed["input_ids"].shape  # the TTS row still needs every column
    assert out["attention_mask"][0].tolist() == [1] * n + [0] * (mixed["input_ids"].shape[1] - n)
    assert not out["maskable"][0, n:].any() and out["normalizer"][0] == n
    for key in ("attention_mask", "maskable", "input_ids"):
        assert torch.equal(out[key][1:], mixed[key][1:]), key
    assert out["normalizer"][1:].tolist() == mixed["normalizer"][1:].tolist()
    assert crop_text_rows(collate(rows[1:]), 1.0, gen)[0]["input_ids"].shape[1] == 16  # no text row: no crop
    assert crop_text_rows(text_batch, 0.0, gen) == (text_batch, False)


def test_diffusion_step_counts_crops(model):
    batch = collate(_rows())
    counts = [int(diffusion_step(model, batch, step_generator(s, 0, 0, torch.device("cpu")),
                                 random_length_prob=p).stats["crops"]) for s in range(6) for p in (0.0, 1.0)]
    assert counts[0::2] == [0] * 6 and sum(counts[1::2]) >= 4  # a drawn length equal to the row's keeps it


def test_tts_row_weight_and_logits_do_not_depend_on_other_kinds(model):
    tts = _rows()[2]
    long_text = {"input_ids": list(range(100, 140)), "prompt_length": 0, "kind": "text"}
    alone = collate([tts])
    n = alone["input_ids"].shape[1]
    for batch in (collate([tts, long_text]), collate([long_text, _rows()[1], tts]), collate([tts, _rows()[0]])):
        j = int((batch["kind"] == 2).nonzero()[0])
        assert batch["normalizer"][j] == alone["normalizer"][0] == n - tts["prompt_length"]
        assert torch.equal(batch["maskable"][j, :n], alone["maskable"][0]) and not batch["maskable"][j, n:].any()
        assert torch.equal(batch["input_ids"][j, :n], alone["input_ids"][0])
        assert batch["attention_mask"][j].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
        with torch.no_grad():
            got = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[j, :n]
            want = model(input_ids=alone["input_ids"], attention_mask=alone["attention_mask"]).logits[0]
        assert torch.allclose(got, want, atol=1e-4)


def test_fill_is_logged_apart_from_text_and_audio(model):
    tts = _rows()[2]
    longer = {**tts, "input_ids": tts["input_ids"][:6] + L.codes_to_tokens(([1, 2], [3, 4, 5, 6], [7] * 8)).tolist()
              + [L.END_OF_SPEECH_ID, L.END_OF_AI_ID]}
    batch = collate([tts, longer])
    assert batch["input_ids"][0, len(tts["input_ids"]):].eq(L.PAD_ID).all()
    gen = step_generator(0, 0, 0, torch.device("cpu"))
    _, masked, _ = forward_process(batch["input_ids"], batch["maskable"], L.MASK_ID, generator=gen)
    fill = masked[0, len(tts["input_ids"]):].sum()
    out = diffusion_step(model, batch, step_generator(0, 0, 0, torch.device("cpu")))
    s = out.stats
    assert int(s["fill_count"]) == int(s["fill_total"]) == int(fill) > 0
    control = masked & (batch["input_ids"] < L.AUDIO_OFFSET)  # [B, L] masked non-audio targets
    assert int(s["text_count"]) == int(control.sum()) - int(fill) > 0  # control tokens only: the pad fill is not text
    assert int((control & (batch["input_ids"] == L.PAD_ID)).sum()) == int(fill)
    assert int(s["text_count"] + s["audio_count"] + s["fill_count"]) == int(masked.sum())
    want_frac = (len(longer["input_ids"]) - len(tts["input_ids"])) / (2 * len(longer["input_ids"]) - 12)
    assert float(s["tts_fill"] / s["tts_answer"]) == pytest.approx(want_frac)


def test_prompt_drop_masks_the_whole_prompt_as_the_sampler_does(model):
    from llada_tts.sampling import SamplerConfig, sample

    rows = _rows()
    batch = collate(rows)
    seen = []
    hook = model.model.register_forward_pre_hook(lambda _, args, kw: seen.append(kw["input_ids"].clone()),
                                                 with_kwargs=True)  # the decoder, as training and sampler call it
    try:
        out = diffusion_step(model, batch, step_generator(0, 0, 0, torch.device("cpu")), prompt_drop_prob=1.0)
        kept = diffusion_step(model, batch, step_generator(0, 0, 0, torch.device("cpu")), prompt_drop_prob=0.0)
        p = rows[2]["prompt_length"]
        sample(model, rows[2]["input_ids"][:p], SamplerConfig(gen_length=14, block_length=14, steps=1, cfg_scale=1.0))
    finally:
        hook.remove()
    dropped, intact, cfg_pass = seen
    uncond = cfg_pass[1]  # the sampler's unconditional half
    assert dropped[2, :p].eq(L.MASK_ID).all() and torch.equal(dropped[2, :p], uncond[:p])
    assert torch.equal(intact[2, :p], batch["input_ids"][2, :p]) and torch.equal(cfg_pass[0, :p], intact[2, :p])
    assert torch.equal(dropped[:2], intact[:2]) and torch.equal(dropped[2, p:], intact[2, p:])  # only TTS prompts
    assert int(out.stats["prompt_drops"]) == 1 and int(kept.stats["prompt_drops"]) == 0
    assert int(out.stats["all_total"]) == int(kept.stats["all_total"])  # the prompt is never a target
    assert torch.equal(mask_prompt(intact, torch.tensor([0, 0, p]), L.MASK_ID), dropped)


def test_prompt_drop_rate():
    batch = collate([_rows()[2]] * 400)
    _, dropped = drop_prompts(batch["input_ids"], batch, 0.1, L.MASK_ID, torch.Generator().manual_seed(0))
    assert 20 <= int(dropped.sum()) <= 60  # 40 expected, std 6


def test_checkpoint_names():
    assert [format_epoch(x) for x in (1, 2.0, 0.5, 1 / 3, 2.25)] == ["1", "2", "0.5", "0.3333", "2.25"]
    assert checkpoint_dir("out", 1.5).as_posix() == "out/checkpoint-epoch-1.5"


def test_hand_loss_uses_cross_entropy_sanity(model):
    """The hand loop above agrees with F.cross_entropy on a fully masked row (guards the reference itself)."""
    batch = collate([_rows()[0]])
    logits = model(input_ids=torch.full_like(batch["input_ids"], L.MASK_ID)).logits
    ce = F.cross_entropy(logits[0], batch["input_ids"][0], reduction="sum") / batch["normalizer"][0]
    logp = logits.log_softmax(-1)
    manual = -sum(logp[0, i, t] for i, t in enumerate(batch["input_ids"][0].tolist())) / batch["normalizer"][0]
    assert float(ce.detach()) == pytest.approx(float(manual.detach()), rel=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    from llada_tts.training.build import build_model
    from llada_tts.training.config import TrainConfig

    batch = collate(_rows())
    grads = []
    for ckpt in (False, True):
        m = build_model(TrainConfig(TTS_dataset="x", model_name="tiny", gradient_checkpointing=ckpt))
        assert m.config.use_cache is False and m.is_activation_checkpointing == ckpt
        m.train()
        diffusion_step(m, batch, step_generator(1, 0, 0, torch.device("cpu"))).loss.backward()
        grads.append([p.grad for p in m.parameters()])
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-8) for a, b in zip(*grads))


def test_precision_auto_is_fp32_without_a_bf16_gpu(monkeypatch):
    from llada_tts.training.trainer import resolve_precision

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    want = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    assert resolve_precision("auto") == want
    assert resolve_precision("fp16") == "fp16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert resolve_precision("auto") is None  # the launcher's setting wins


@pytest.mark.parametrize("argv,want", [  # (--config given, its path or None, the overrides)
    (["--config", "x.yaml", "--seed", "1"], (True, "x.yaml", {"seed": "1"})),
    (["--config=x.yaml", "--seed", "1"], (True, "x.yaml", {"seed": "1"})),
    (["--seed", "1", "--config"], (True, None, {"seed": "1"})),
    (["--config", "--seed", "1"], (True, None, {"seed": "1"})),
    (["--seed", "1"], (False, None, {"seed": "1"})),
])
def test_recipe_flags_accept_space_and_equals_forms(argv, want):
    from llada_tts.training.cli import parse_args

    args = parse_args(argv)
    assert (args.config is not None, args.config or None, args.overrides) == want


@pytest.mark.parametrize("argv,want", [  # (resume, overwrite, sample_config, overrides)
    (["--resume", "--seed", "1"], ("", False, None, {"seed": "1"})),
    (["--resume=ck", "--overwrite_output_dir"], ("ck", True, None, {})),
    (["--epochs=3", "--resume", "ck", "--gradient_checkpointing"], ("ck", False, None,
                                                                   {"epochs": "3", "gradient_checkpointing": "true"})),
    (["--create-sample-config"], (None, False, "", {})),
    (["--create-sample-config", "s.yaml", "--batch-size", "2"], (None, False, "s.yaml", {"batch_size": "2"})),
])
def test_recipe_command_line_splits_its_options_from_the_config_overrides(argv, want):
    from llada_tts.training.cli import parse_args

    args = parse_args(argv)
    assert (args.resume, args.overwrite, args.sample_config, args.overrides) == want


def test_recipe_command_line_errors_are_one_line_with_the_nearest_key(capsys):
    from llada_tts.training.cli import main

    assert main(["--config", "x.yaml", "--learnig_rate", "1e-4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'learnig_rate' in the command line (did you mean "
                          "'learning_rate'?)") and err.count("\n") == 1
    assert main(["--config", "x.yaml", "epochs", "3"]) == 2
    assert capsys.readouterr().err == "error: expected --key value, got 'epochs'\n"
    assert main(["--config"]) == 2
    assert capsys.readouterr().err == "error: --config needs a path\n"


# --- one definition per rule, shared by both trainers (review of the issue-14 pass, item 5) ---------------

def test_both_trainers_share_one_definition_of_each_rule():
    import inspect

    from audio_tokenizer import fileio
    from audio_tokenizer.training import state
    from audio_tokenizer.training import trainer as codec_trainer
    from llada_tts import training
    from llada_tts.training import checkpoint
    from llada_tts.training import logging as run_logging

    assert training.NonFiniteLossError is codec_trainer.NonFiniteLossError is state.NonFiniteLossError
    assert run_logging.json_line is fileio.json_line
    for module in (checkpoint, codec_trainer, state):  # the temp names are spelled in fileio only
        source = inspect.getsource(module)
        assert "def _replace_dir" not in source and "old-{" not in source and '.partial"' not in source, module


def test_a_killed_folder_swap_is_put_right_by_clean_temp_dirs(tmp_path, monkeypatch):
    import os

    from audio_tokenizer import fileio

    final = tmp_path / "checkpoint"
    final.mkdir()
    (final / "v").write_text("1")
    tmp = fileio.partial_dir(final)
    tmp.mkdir()
    (tmp / "v").write_text("2")
    real, calls = os.replace, []

    def killed(src, dst):  # the process dies after parking the old copy, before the new one is renamed in
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        fileio.replace_dir(tmp, final)
    monkeypatch.undo()
    assert not final.exists()
    lines = fileio.clean_temp_dirs(tmp_path, "checkpoint")
    assert (final / "v").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert lines[0].startswith(f"restored {final} from .checkpoint.old-")
    assert lines[1] == f"removed {tmp} (left by an interrupted save)"


def test_resume_refuses_settings_it_would_silently_ignore_or_break():
    from llada_tts.training.checkpoint import TrainerState, check_resumable
    from llada_tts.training.config import TrainConfig

    saved = TrainConfig(TTS_dataset="d", learning_rate=1e-3, max_steps=100).to_dict()
    state = TrainerState(num_processes=1)
    check_resumable(saved, TrainConfig(TTS_dataset="d", learning_rate=1e-3, max_steps=400), 1, state)  # schedule: ok
    with pytest.raises(ValueError, match=r"learning_rate: 0.001 -> 0.002.*model_name"):
        check_resumable(saved, TrainConfig(TTS_dataset="d", learning_rate=2e-3), 1, state)
    with pytest.raises(ValueError, match=r"data order would change: batch_size: 8 -> 4"):
        check_resumable(saved, TrainConfig(TTS_dataset="d", learning_rate=1e-3, batch_size=4), 1, state)
