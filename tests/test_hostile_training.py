"""Hostile inputs against training and resume (issue 14): both trainers, one test per defect.

Every case asserts what a careless or hostile user gets: the exit code, the one error line, and which
files exist afterwards. Nothing here may run planted code, leave a NaN checkpoint, or mix two runs.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import datasets
import pytest

from llada_tts.training import read_metrics
from llada_tts.training.checkpoint import CONFIG_FILE, STATE_DIR, STATE_FILE, read_state
from llada_tts.training.cli import main
from llada_tts.training.toy_data import toy_tts_rows, write_toy_text


class _Planted:
    """A pickle that, when unpickled, writes ``marker``: what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def plant(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(_Planted(marker), protocol=2))


def truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(max(1, os.path.getsize(path) // 2))


def strict_json(line: str):
    def refuse(name):
        raise ValueError(f"bare {name} is not JSON")
    return json.loads(line, parse_constant=refuse)


def error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# --- the LLaDA trainer ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory, offline_tokenizer):
    d = tmp_path_factory.mktemp("hostile")
    cols = toy_tts_rows(offline_tokenizer, n_rows=8, frames=2, codes=4, texts=["hi", "yo"], voices=["a", "b"])
    datasets.Dataset.from_dict(cols).save_to_disk(str(d / "tts"))
    write_toy_text(d / "text.jsonl", 4)
    config = d / "run.yaml"  # no save_folder: the runs below pick theirs on the command line
    config.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in dict(
        TTS_dataset=str(d / "tts"), text_QA_dataset=str(d / "text.jsonl"), ratio=0.5, max_length=32,
        model_name="tiny", tokenizer_name="offline", batch_size=2, epochs=1, learning_rate=3e-3,
        mixed_precision="no", report_to="none", logging_steps=1, warmup_steps=1, save_epochs=100).items()) + "\n")
    return {"dir": d, "config": str(config)}


@pytest.fixture(scope="module")
def finished(data):
    """A finished 2-update run (its final checkpoint resumes with nothing left to train: quick)."""
    out = data["dir"] / "finished"
    assert main(["--config", data["config"], "--save_folder", str(out), "--max_steps", "2"]) == 0
    return out


def run_copy(finished, tmp_path) -> tuple[Path, Path]:
    """(save_folder, its checkpoint): a private copy of the finished run."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    for f in out.glob("checkpoint-epoch-*"):  # the copied config names the original folder
        text = (f / CONFIG_FILE).read_text().replace(str(finished), str(out))
        (f / CONFIG_FILE).write_text(text)
    return out, next(out.glob("checkpoint-epoch-*"))


def resume(data, out, *extra) -> list[str]:
    return ["--config", data["config"], "--save_folder", str(out), "--max_steps", "2", "--resume", *extra]


# item 1: --resume must never unpickle a file of the checkpoint
def test_resume_never_runs_code_planted_in_the_training_state(data, finished, tmp_path, capsys):
    out, ck = run_copy(finished, tmp_path)
    marker = tmp_path / "marker"
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "scheduler.bin", "scaler.pt"):
        plant(ck / STATE_DIR / name, marker)
    try:
        rc = main(resume(data, out))
    finally:
        assert not marker.exists(), "--resume ran code planted in the checkpoint"
    assert rc == 0, capsys.readouterr().err[-2000:]


def test_old_pickled_training_state_is_refused_in_one_line(data, finished, tmp_path, capsys):
    out, ck = run_copy(finished, tmp_path)
    marker = tmp_path / "marker"
    for f in (ck / STATE_DIR).iterdir():  # what accelerate.save_state wrote before: pickles only
        f.unlink()
    plant(ck / STATE_DIR / "custom_checkpoint_0.pkl", marker)
    rc = main(resume(data, out))
    err = capsys.readouterr().err
    assert not marker.exists()
    assert rc == 2 and "Traceback" not in err
    line = error_line(err)
    assert line.startswith("error: ") and "old pickled format" in line and f"--model_name {ck}" in line, err


# items 12 + 13: a truncated file of the checkpoint is one line and exit 2, never a traceback
@pytest.mark.parametrize("target", ["optimizer", "rng", "trainer_state", "model"])
def test_truncated_checkpoint_file_is_one_line_exit_2(data, finished, tmp_path, capsys, target):
    out, ck = run_copy(finished, tmp_path)
    state = sorted((ck / STATE_DIR).iterdir())
    path = {"optimizer": next((f for f in state if f.name.startswith("optimizer")), None),
            "rng": next((f for f in state if f.name.startswith(("rng", "random_states"))), None),
            "trainer_state": ck / STATE_FILE, "model": ck / "model.safetensors"}[target]
    assert path is not None and path.is_file(), [f.name for f in state]
    truncate(path)
    rc = main(resume(data, out, str(ck)))
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err[-2000:]
    line = error_line(err)
    assert line.startswith("error: ") and "damaged" in line and str(ck) in line, line


# item 5: a fresh run into a used save_folder
def test_fresh_run_into_a_used_save_folder_is_refused(data, finished, tmp_path, capsys):
    out, ck = run_copy(finished, tmp_path)
    before = (out / "metrics.jsonl").read_text()
    rc = main(["--config", data["config"], "--save_folder", str(out), "--max_steps", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    line = error_line(err)
    assert line.startswith("error: save_folder ") and "already holds a run" in line
    assert "--resume" in line and "--overwrite_output_dir" in line
    assert (out / "metrics.jsonl").read_text() == before and read_state(ck).global_step == 2
    # --overwrite_output_dir replaces the earlier run: no old checkpoint or metrics row survives
    assert main(["--config", data["config"], "--save_folder", str(out), "--max_steps", "1",
                 "--overwrite_output_dir"]) == 0
    assert sorted(read_metrics(out)) == [1]
    assert [read_state(c).global_step for c in out.glob("checkpoint-epoch-*")] == [1]


# item 6: non-finite settings and losses
@pytest.mark.parametrize("how", ["command line", "yaml"])
def test_non_finite_learning_rate_is_refused(data, tmp_path, capsys, how):
    out = tmp_path / "run"
    if how == "yaml":
        cfg = tmp_path / "inf.yaml"
        cfg.write_text(Path(data["config"]).read_text() + "learning_rate: .inf\n")
        args = ["--config", str(cfg)]
    else:
        args = ["--config", data["config"], "--learning_rate", "inf"]
    rc = main([*args, "--save_folder", str(out), "--max_steps", "2"])
    assert rc == 2
    assert error_line(capsys.readouterr().err) == "error: learning_rate: must be a finite number, got inf"
    assert not out.exists()


def test_nan_loss_stops_naming_the_update_without_saving(data, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["--config", data["config"], "--save_folder", str(out), "--max_steps", "6", "--learning_rate", "1e30",
               "--max_grad_norm", "null", "--lr_scheduler_type", "constant", "--warmup_steps", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    line = error_line(err)
    assert line.startswith("error: loss became NaN or inf at optimizer update ") and "without saving" in line, line
    bad = int(line.split("optimizer update ")[1].split(";")[0])
    assert 2 <= bad <= 6
    assert not list(out.glob("checkpoint-epoch-*")) and not list(out.glob(".checkpoint-*"))
    rows = [strict_json(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, bad))  # every row before it, none from it on


def test_metrics_lines_are_strict_json():
    from llada_tts.training.logging import json_line

    row = strict_json(json_line({"step": 3, "loss": float("nan"), "grad_norm": float("inf"), "lr": 1e-3}))
    assert row == {"step": 3, "loss": None, "grad_norm": None, "lr": 1e-3}


# item 8: the printed resume command keeps command-line overrides
def test_printed_resume_command_continues_the_same_run(data, tmp_path, capsys, monkeypatch):
    from llada_tts.training.trainer import Trainer

    monkeypatch.chdir(tmp_path)
    train = Trainer.train
    monkeypatch.setattr(Trainer, "train", lambda self, stop_after=None: train(self, stop_after=1))  # a Ctrl-C
    run_b = tmp_path / "runB"
    assert main(["--config", data["config"], "--save_folder", str(run_b), "--max_steps", "3"], prog="tts_train") == 130
    out = capsys.readouterr().out
    command = out.split("resume with: ")[1].splitlines()[0].split()
    assert command[0] == "tts_train"
    monkeypatch.setattr(Trainer, "train", train)
    assert main(command[1:], prog="tts_train") == 0, capsys.readouterr().err[-2000:]
    assert sorted(read_metrics(run_b)) == [1, 2, 3]  # continued in runB, with max_steps 3
    assert not (tmp_path / "checkpoints_llada_tts").exists()
    # --resume without --config takes the latest checkpoint of save_folder and its own config
    assert main(["--resume", "--save_folder", str(run_b), "--max_steps", "4"]) == 0
    assert sorted(read_metrics(run_b)) == [1, 2, 3, 4]
    assert main(["--resume", "--save_folder", str(tmp_path / "nothing")]) == 2
    assert "no resumable checkpoint in" in error_line(capsys.readouterr().err)


# item 9: temp folders of a killed save
def test_temp_folders_of_a_killed_save_are_tidied_and_checkpoints_kept(data, finished, tmp_path, capsys):
    out, ck = run_copy(finished, tmp_path)
    # killed between "checkpoint -> .old" and ".partial -> checkpoint": the .old copy is the complete one
    ck.rename(out / f".{ck.name}.old-0123abcd")
    (out / f".{ck.name}.partial").mkdir()
    (out / f".{ck.name}.partial" / "model.safetensors").write_bytes(b"half")
    (out / ".checkpoint-epoch-0.5.partial" / STATE_DIR).mkdir(parents=True)  # killed while writing
    (out / ".keep-me").mkdir()  # not ours: never touched
    (out / "checkpoint-epoch-9.partial").mkdir()
    rc = main(resume(data, out))
    assert rc == 0, capsys.readouterr().err[-2000:]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".keep-me"]
    assert (out / "checkpoint-epoch-9.partial").is_dir()
    assert read_state(ck).global_step == 2 and (ck / "model.safetensors").stat().st_size > 1000


# item 11: model_name pointing at something that is not a Llama checkpoint
def test_model_name_of_a_non_llama_folder_is_one_line(data, tmp_path, capsys):
    from audio_tokenizer.codec import create_random_codec

    codec = create_random_codec(tmp_path / "codec", size="tiny")
    rc = main(["--config", data["config"], "--save_folder", str(tmp_path / "run"), "--model_name", str(codec)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    line = error_line(err)
    assert line.startswith(f"error: model_name {codec}: not a Llama model") and "model_type None" in line, line


# --- the codec trainer ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def codec_run(tmp_path_factory):
    from audio_tokenizer import corpus
    from audio_tokenizer.training.cli import main as codec_main

    d = tmp_path_factory.mktemp("codec")
    corpus_dir = corpus.make_corpus(d / "corpus", 3, text="open", progress=False)
    args = ["--train_data", str(corpus_dir), "--model", "frame-tiny", "--batch_size", "2", "--segment_samples",
            "4096", "--max_steps", "2", "--save_every", "2", "--log_every", "1", "--restart_every", "2",
            "--eval_every", "0", "--tensorboard", "false", "--progress", "false", "--threads", "1"]
    assert codec_main([*args, "--output_dir", str(d / "run")]) == 0
    return d / "run", args


def codec_copy(codec_run, tmp_path) -> tuple[Path, list[str]]:
    src, args = codec_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    text = (out / "run_config.yaml").read_text().replace(str(src), str(out))
    (out / "run_config.yaml").write_text(text)
    return out, [*args, "--output_dir", str(out)]


def test_codec_resume_refuses_old_pickled_state_in_one_line(codec_run, tmp_path, capsys):
    from audio_tokenizer.training.cli import main as codec_main

    out, args = codec_copy(codec_run, tmp_path)
    marker = tmp_path / "marker"
    state = out / "checkpoint" / "training_state"
    for f in state.iterdir():
        f.unlink()
    for name in ("optimizer.bin", "scheduler.bin", "random_states_0.pkl", "custom_checkpoint_0.pkl"):
        plant(state / name, marker)
    rc = codec_main([*args, "--resume"])
    err = capsys.readouterr().err
    assert not marker.exists()
    assert rc == 2 and "Traceback" not in err
    line = error_line(err)
    assert line.startswith("codec_train: error: ") and "old pickled format" in line
    assert f"--model {out / 'checkpoint'}" in line, line


@pytest.mark.parametrize("target", ["optimizer", "rng", "trainer_state"])
def test_codec_truncated_state_is_one_line_exit_2(codec_run, tmp_path, capsys, target):
    from audio_tokenizer.training.cli import main as codec_main

    out, args = codec_copy(codec_run, tmp_path)
    ck = out / "checkpoint"
    state = sorted((ck / "training_state").iterdir())
    path = {"optimizer": next((f for f in state if f.name.startswith("optimizer")), None),
            "rng": next((f for f in state if f.name.startswith(("rng", "random_states"))), None),
            "trainer_state": ck / "trainer_state.json"}[target]
    truncate(path)
    rc = codec_main([*args, "--max_steps", "3", "--resume"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err[-2000:]
    assert "damaged" in error_line(err) and not (out / "codec" / "trainer_state.json").exists()


def test_codec_temp_folders_of_a_killed_save_are_tidied(codec_run, tmp_path):
    from audio_tokenizer.training.trainer import CodecTrainer
    from audio_tokenizer.training.config import load_config

    out, args = codec_copy(codec_run, tmp_path)
    (out / ".checkpoint.partial" / "training_state").mkdir(parents=True)
    (out / ".codec.old-89abcdef").mkdir()  # codec/ exists: this is the leftover of a finished rename
    (out / "snapshots" / ".step-2.partial").mkdir(parents=True)
    (out / ".not-ours").mkdir()
    CodecTrainer(load_config(None, args), resume=True)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".not-ours"]
    assert not list((out / "snapshots").iterdir())
    assert (out / "checkpoint" / "model.safetensors").is_file() and (out / "codec" / "model.safetensors").is_file()


def test_codec_non_finite_settings_and_losses_stop(codec_run, tmp_path, capsys):
    from audio_tokenizer.training.cli import main as codec_main

    src, args = codec_run
    assert codec_main([*args, "--output_dir", str(tmp_path / "inf"), "--learning_rate", "inf"]) == 2
    assert "learning_rate in the command line must be a finite number, got 'inf'" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "inf").exists()
    out = tmp_path / "nan"
    rc = codec_main([*args, "--output_dir", str(out), "--learning_rate", "1e30", "--max_grad_norm", "0",
                     "--max_steps", "6", "--save_every", "1", "--warmup_steps", "1", "--restart_every", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err  # a diverged run exits 1, as tts_train does
    line = error_line(err)
    assert "loss became nan at step " in line or "loss became inf at step " in line, line
    bad = int(line.split(" at step ")[1].split(";")[0])
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == bad - 1
    rows = [strict_json(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and max(r["step"] for r in rows) < bad and not (out / "codec").exists()
