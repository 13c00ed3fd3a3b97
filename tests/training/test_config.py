"""TrainConfig: YAML + overrides, types, aliases, unknown keys, layout checks, sample and shipped configs."""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from llada_tts.training.config import (
    ALIASES,
    TrainConfig,
    load_config,
    parse_overrides,
    read_file,
    save_config,
    valid_keys,
    write_sample_config,
)
from llada_tts.training.warmup import LEGACY_KEYS as WARMUP_KEYS
from llada_tts.training.warmup import Warmup, from_legacy

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (ROOT / "recipes" / "configs").glob("*.yaml")
                 if not p.name.startswith("codec"))  # codec_*.yaml: recipes/codec_train.py, another schema

# The TTS config of the earlier LLaDA-TTS README, verbatim (what users already have).
LEGACY_TTS_YAML = """
TTS_dataset: "/workspace/combined_tts_dataset_pretrain"
voice_type: "all"
model_name: "meta-llama/Llama-3.2-3B-Instruct"
tokenizer_name: "meta-llama/Llama-3.2-3B-Instruct"
epochs: 10
batch_size: 8
gradient_accumulation_steps: 1
number_processes: 4
pad_token: 128263
save_epochs: 1  # Save checkpoint every N epochs
learning_rate: 5.0e-5
lr_scheduler_type: "linear"
max_grad_norm: 1.0
max_length: 2048
save_folder: "checkpoints_llada_tts"
project_name: "llada-tts-experiment"
run_name: "llada-tts-run-1"
# num_audio_tokens: 28672  # 7 * 4096
# num_special_tokens: 10
# eps: 1e-3
"""


def _write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_legacy_tts_yaml_loads_with_every_value(tmp_path):
    cfg = load_config(_write(tmp_path, LEGACY_TTS_YAML))
    raw = yaml.safe_load(LEGACY_TTS_YAML)
    for key, value in raw.items():
        assert getattr(cfg, key) == value, key
    assert cfg.learning_rate == 5e-5 and isinstance(cfg.learning_rate, float)
    assert cfg.text_QA_dataset is None and cfg.resolved().ratio == 0.0  # TTS only


def test_yaml_1_1_exponent_strings_become_floats(tmp_path):
    cfg = load_config(_write(tmp_path, "TTS_dataset: x\nlearning_rate: 5e-5\neps: 1e-3\n"))
    assert cfg.learning_rate == 5e-5 and cfg.eps == 1e-3


def test_command_line_overrides_with_type_coercion(tmp_path):
    path = _write(tmp_path, LEGACY_TTS_YAML)
    cfg = load_config(path, ["--epochs", "5", "--batch_size=4", "--learning_rate", "1e-5", "--save_epochs", "0.5",
                             "--gradient_checkpointing", "--max_steps", "null", "--output_dir", "ck",
                             "--report_to", "tensorboard,wandb"])
    assert (cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.save_epochs) == (5, 4, 1e-5, 0.5)
    assert cfg.gradient_checkpointing is True and cfg.max_steps is None and cfg.save_folder == "ck"
    assert cfg.trackers == ["tensorboard", "wandb"]


@pytest.mark.parametrize("argv, match", [
    (["--epochs", "two"], "epochs in the command line must be an int"),
    (["--epochs", "1.5"], "epochs in the command line must be an int"),
    (["--gradient_checkpointing", "maybe"], "gradient_checkpointing .* must be a bool"),
    (["--batch_size", "null"], "batch_size in the command line must be an int, got .null."),
    (["--ratio", "1.5"], r"ratio: must be in \[0, 1\]"),
    (["--lr_scheduler_type", "step"], "lr_scheduler_type: must be one of"),
    (["--pad_token", "128001"], "pad_token: is fixed at 128263"),
    (["--mask_token_id", "126336"], "mask_token_id: is fixed at 156938"),
    (["--num_audio_tokens", "4096"], "num_audio_tokens: is fixed at 28672"),
    (["--report_to", "mlflow"], "report_to: must name trackers"),
    (["--warmup_steps", "3", "--warmup_epochs", "1"], "only one of warmup_steps and warmup_epochs"),
])
def test_bad_values_name_the_key(tmp_path, argv, match):
    with pytest.raises(ValueError, match=match):
        load_config(_write(tmp_path, "TTS_dataset: x\n"), argv)


def test_empty_yaml_value_for_a_required_key(tmp_path):
    with pytest.raises(ValueError, match="batch_size in .* cannot be empty"):
        load_config(_write(tmp_path, "TTS_dataset: x\nbatch_size:\n"))


def test_unknown_key_lists_valid_keys_and_suggests(tmp_path):
    with pytest.raises(ValueError) as e:
        load_config(_write(tmp_path, "TTS_dataset: x\nlearnig_rate: 1e-4\n"))
    msg = str(e.value)
    assert "unknown config key 'learnig_rate'" in msg and "did you mean 'learning_rate'" in msg
    assert all(k in msg for k in valid_keys())
    with pytest.raises(ValueError, match="unknown config key 'bogus' in the command line"):
        load_config(_write(tmp_path, "TTS_dataset: x\n"), ["--bogus", "1"])


def test_no_dataset_is_an_error():
    with pytest.raises(ValueError, match="set TTS_dataset and/or text_QA_dataset"):
        load_config(None, [])


@pytest.mark.parametrize("tts, text, ratio, want", [
    ("t", None, None, 0.0), ("t", None, 0.5, 0.0), (None, "x", None, 1.0), ("t", "x", None, 0.5), ("t", "x", 0.2, 0.2),
])
def test_ratio_resolution(tts, text, ratio, want):
    assert TrainConfig(TTS_dataset=tts, text_QA_dataset=text, ratio=ratio).resolved().ratio == want


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_a_ratio_that_never_draws_a_given_dataset_is_refused(ratio):
    with pytest.raises(ValueError, match=r"ratio: .*never drawn.*fraction of training samples that are text.*"
                                         r"ratio = N / \(N \+ 1\), so their 1 is 0\.5"):
        TrainConfig(TTS_dataset="t", text_QA_dataset="x", ratio=ratio)
    assert TrainConfig(TTS_dataset="t", ratio=ratio).resolved().ratio == 0.0  # one dataset: nothing to refuse


def test_prompt_drop_prob_default_and_range():
    assert TrainConfig(TTS_dataset="t").prompt_drop_prob == 0.1
    with pytest.raises(ValueError, match=r"prompt_drop_prob: must be in \[0, 1\]"):
        TrainConfig(TTS_dataset="t", prompt_drop_prob=1.5)
    shipped = {p.name: yaml.safe_load(p.read_text()) for p in CONFIGS}
    assert shipped["tiny_cpu.yaml"]["prompt_drop_prob"] == 0.1
    assert shipped["llama3_1b_single_gpu.yaml"]["prompt_drop_prob"] == 0.1


def test_readme_config_table_lists_every_key_with_its_default():
    readme = (ROOT / "docs" / "training.md").read_text()  # the config keys table (moved from the README)
    for f in dataclasses.fields(TrainConfig):
        default = "null" if f.default is None else str(f.default).lower() if isinstance(f.default, bool) else f.default
        row = f"| {f.metadata['section']} | `{f.name}` | `{default}` |"
        assert row in readme, row


def test_aliases_and_legacy_section(tmp_path):
    assert set(ALIASES.values()) <= set(valid_keys())
    path = _write(tmp_path, '{"sft": {"model_name_or_path": "./m", "output_dir": "./o", "data_path": "d.jsonl", '
                            '"learning_rate": 1e-5, "epochs": 2, "save_epochs": 1}}', "c.json")
    cfg = load_config(path, section="sft")
    assert (cfg.model_name, cfg.save_folder, cfg.text_QA_dataset, cfg.learning_rate) == ("./m", "./o", "d.jsonl", 1e-5)
    two = _write(tmp_path, "pretraining: {data_path: a}\nsft: {data_path: b}\n", "two.yaml")
    with pytest.raises(ValueError, match="keep one section"):
        read_file(two, section=None)


def test_overrides_parser():
    assert parse_overrides(["--seed", "1", "--run_name=x y", "--gradient_checkpointing", "--eps", "-2"]) == {
        "seed": "1", "run_name": "x y", "gradient_checkpointing": "true", "eps": "-2"}
    assert parse_overrides(["--batch-size", "2", "--output_dir", "o", "--warmup_steps", "3"]) == {
        "batch_size": "2", "output_dir": "o", "warmup_steps": "3"}  # dashes, aliases and earlier keys
    with pytest.raises(ValueError, match="expected --key value"):
        parse_overrides(["epochs", "3"])


def test_resolved_config_round_trips(tmp_path):
    cfg = TrainConfig(TTS_dataset="t", text_QA_dataset="x", ratio=0.3, max_steps=7, warmup="2",
                      report_to="none", logging_dir="logs").resolved()
    back = load_config(save_config(cfg, tmp_path / "r.yaml"))
    assert back == cfg


@pytest.mark.parametrize("recipe", ["tts", "pretrain", "sft"])
def test_sample_config_is_commented_and_loads(tmp_path, recipe):
    from llada_tts.training.cli import RECIPES

    path = write_sample_config(tmp_path / "s.yaml", RECIPES[recipe][2])
    text = path.read_text()
    assert "fraction of training SAMPLES that are text" in text
    assert load_config(path) == TrainConfig(**RECIPES[recipe][2])
    for f in dataclasses.fields(TrainConfig):  # every key documented, right above its line
        assert f"# {f.metadata['help']}\n{f.name}:" in text


def test_cli_create_sample_config(tmp_path):
    from llada_tts.training.cli import main

    assert main(["--create-sample-config", str(tmp_path / "x.yaml")]) == 0
    assert load_config(tmp_path / "x.yaml").TTS_dataset == "/path/to/tts_dataset"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_yaml_loads_with_its_values(path):
    raw = yaml.safe_load(path.read_text())
    cfg = load_config(path)
    for key, value in raw.items():
        if key in WARMUP_KEYS:  # an earlier warmup key: the one warmup rule holds its value
            assert Warmup.parse(cfg.warmup) == from_legacy(**{key: value}), key
            continue
        got = getattr(cfg, ALIASES.get(key, key))
        if key == "warmup":  # a string field: `warmup: 100` (YAML reads an int) means 100 updates
            assert Warmup.parse(got) == Warmup.parse(str(value)), key
            continue
        assert got == value or (isinstance(value, str) and got == type(got)(value)), key


def _attributes_read(files) -> set[str]:
    """Names read as ``<something>.<name>`` (cfg.x, c.x, self.cfg.x) in the given source files."""
    names = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
    return names


LAYOUT_CHECKED = {"pad_token"}  # only checked (see test_bad_values)


def test_every_config_key_is_used_by_the_training_code():
    code = [f for f in (ROOT / "llada_tts" / "training").glob("*.py") if f.name != "config.py"]  # not its checks
    used = _attributes_read(code)
    derived = {"report_to": "trackers"}  # read through a TrainConfig property
    unused = [k for k in valid_keys() if derived.get(k, k) not in used and k not in LAYOUT_CHECKED]
    assert not unused, f"config keys never read by the trainer: {unused}"


def test_shipped_accelerate_configs_are_valid_yaml():
    for path in sorted((ROOT / "recipes" / "accelerate").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert data["compute_environment"] == "LOCAL_MACHINE", path.name
        assert re.fullmatch(r"NO|MULTI_GPU|MULTI_CPU|FSDP", data["distributed_type"]), path.name


# --- earlier keys that are no fields any more --------------------------------------------------------------

def test_layout_keys_that_only_restated_the_layout_are_read_and_dropped(tmp_path):
    cfg = load_config(_write(tmp_path, "TTS_dataset: x\nnum_audio_tokens: 28672\nnum_special_tokens: 10\n"),
                      ["--num_audio_tokens", "28672"])
    assert not hasattr(cfg, "num_audio_tokens") and not hasattr(cfg, "num_special_tokens")
    assert {"num_audio_tokens", "num_special_tokens"}.isdisjoint(valid_keys())
    assert "num_audio_tokens" not in save_config(cfg.resolved(), tmp_path / "r.yaml").read_text()


@pytest.mark.parametrize("text, match", [
    ("num_audio_tokens: 4096\n", r"num_audio_tokens: is fixed at 28672 \(7 x 4096\), got 4096 in .*c\.yaml; "
                                 "leave the key out"),
    ("num_special_tokens: 12\n", r"num_special_tokens: is fixed at 10 .*, got 12"),
    ("num_special_tokens: ten\n", r"num_special_tokens in .* must be an int"),
])
def test_a_layout_key_with_another_value_is_one_line(tmp_path, text, match):
    with pytest.raises(ValueError, match=match) as e:
        load_config(_write(tmp_path, "TTS_dataset: x\n" + text))
    assert "\n" not in str(e.value)


def test_unknown_key_error_suggests_an_earlier_key_too(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key 'warmup_step' .*did you mean 'warmup_steps'") as e:
        load_config(_write(tmp_path, "TTS_dataset: x\nwarmup_step: 3\n"))
    assert "warmup_ratio, warmup_steps, warmup_epochs (= warmup)" in str(e.value)


# the train_config.yaml the earlier trainer wrote for a run (every key, its effective values): such runs resume
EARLIER_RUN = """
TTS_dataset: {data}
text_QA_dataset: null
ratio: 0.0
voice_type: all
max_length: 768
model_name: voice
tokenizer_name: offline
compact_embeddings: true
slot_masks: true
audio_loss: slot
epochs: 20
max_steps: 8000
batch_size: 16
gradient_accumulation_steps: 1
number_processes: null
learning_rate: 0.0015
weight_decay: 0.01
lr_scheduler_type: cosine
warmup_ratio: 0.0
warmup_steps: 150
warmup_epochs: null
max_grad_norm: 1.0
mixed_precision: 'no'
seed: 42
eps: 0.001
prompt_drop_prob: 0.1
pad_token: 128263
num_audio_tokens: 28672
num_special_tokens: 10
mask_token_id: 156938
save_folder: {run}
save_epochs: 0.5
report_to: none
logging_dir: null
logging_steps: 25
"""


def test_an_earlier_runs_saved_config_loads_and_resumes_without_complaint(tmp_path):
    from llada_tts.training.checkpoint import TrainerState, check_resumable

    path = _write(tmp_path, EARLIER_RUN.format(data=tmp_path / "data", run=tmp_path / "run"), "train_config.yaml")
    saved = load_config(path, base=tmp_path).resolved(tmp_path)
    assert saved.warmup == "150" and Warmup.parse(saved.warmup).updates(8000, 375) == 150
    assert (saved.lr_scheduler_type, saved.max_steps, saved.learning_rate) == ("cosine", 8000, 0.0015)
    now = load_config(path, ["--save_folder", str(tmp_path / "run")]).resolved()  # what --resume builds
    check_resumable(saved.to_dict(), now, 1, TrainerState(num_processes=1))  # no complaint
    assert now == saved
    rewritten = load_config(save_config(now, tmp_path / "again.yaml"))  # the resumed run writes the new keys
    assert rewritten == now and "\nwarmup_steps:" not in (tmp_path / "again.yaml").read_text()
