"""benchmarks/mixed_batching.py (issue 11's before/after): its arithmetic, its configs and a smoke run."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llada_tts.training.config import build_config

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("mixed_batching", ROOT / "benchmarks" / "mixed_batching.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_old_fill_fraction_is_fill_over_answer():
    # rows (length, prompt) padded to 10: fill 10-6 + 10-8 = 6, answer 10-2 + 10-3 = 15
    assert _script().old_fill_fraction([(6, 2), (8, 3)], 10) == pytest.approx(6 / 15)


def test_arm_configs_are_valid_current_configs(tmp_path):
    script = _script()
    args = script.parse_args(["--steps", "7", "--ratio", "0.25", "--max-length", "512"])
    data = {"train": tmp_path / "tts", "text": tmp_path / "text.jsonl"}
    new = build_config(script.train_config(args, data, "new", tmp_path / "run"))
    nodrop = build_config(script.train_config(args, data, "new-nodrop", tmp_path / "run"))
    assert new.prompt_drop_prob == 0.1 and nodrop.prompt_drop_prob == 0.0
    assert new.max_steps == nodrop.max_steps == 7 and new.ratio == 0.25 and new.max_length == 512
    # the old trainer has no such key
    assert "prompt_drop_prob" not in script.train_config(args, data, "old", tmp_path / "run")


def test_bad_arms_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        _script().parse_args(["--arms", "old,newest"])
    assert e.value.code == 2 and "--arms" in capsys.readouterr().err


def test_log_summary_averages_the_last_quarter(tmp_path):
    rows = [{"step": s, "loss_audio": float(s), "loss_text": 1.0, "tts_fill_fraction": 0.5, "crops": 1,
             "prompt_drops": 2} for s in (2, 4, 6, 8)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = _script().log_summary(tmp_path, steps=8)
    assert got["final_step"] == 8 and got["loss_audio"] == 8.0  # last quarter of 8 updates: step 8
    assert got["crops"] == 4 and got["prompt_drops"] == 8 and got["tts_fill_fraction"] == 0.5


@pytest.mark.bench
@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs the git history")
def test_smoke_run_prints_both_arms(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mixed_batching.py"), "--smoke",
                           "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| model | updates | CE @0.25 |" in proc.stdout and "| old | 9ae7057 |" in proc.stdout
    res = json.loads((tmp_path / "r.json").read_text())["results"]
    assert res["old"]["source_check"]["tts_fill"] > 0 and res["new"]["source_check"]["tts_fill"] == 0
    assert res["old"]["updates"] == res["new"]["updates"] == 4
