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

from llada_tts.data.toy_data import toy_tts_rows, write_toy_text
from llada_tts.training import read_metrics
from llada_tts.training.checkpoint import CONFIG_FILE, STATE_DIR, STATE_FILE, read_state
from llada_tts.training.cli import main


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


LOCK_FILE = "run.lock"  # a run folder's lock (audio_tokenizer.fileio.LOCK_FILE), held by a live run


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
    where, got = ("the command line", "'inf'") if how == "command line" else (tmp_path / "inf.yaml", "inf")
    assert error_line(capsys.readouterr().err) == f"error: learning_rate in {where} must be a finite number, got {got}"
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


# review of the issue-14 pass, item 1: --resume CKPT from another working folder continues the run in its folder
def _relative_run(data, proj: Path, monkeypatch) -> Path:
    """A 1-update run made from ``proj`` with relative dataset and save_folder paths; its checkpoint."""
    shutil.copytree(data["dir"] / "tts", proj / "data" / "tts")
    shutil.copy(data["dir"] / "text.jsonl", proj / "data" / "text.jsonl")
    text = Path(data["config"]).read_text().replace(str(data["dir"] / "tts"), "data/tts")
    (proj / "run.yaml").write_text(text.replace(str(data["dir"] / "text.jsonl"), "data/text.jsonl"))
    monkeypatch.chdir(proj)
    assert main(["--config", "run.yaml", "--save_folder", "runs/a", "--max_steps", "1"]) == 0
    return next((proj / "runs" / "a").glob("checkpoint-epoch-*"))


def test_resume_from_another_folder_continues_the_run_in_its_own_folder(data, tmp_path, capsys, monkeypatch):
    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    elsewhere.mkdir()
    ck = _relative_run(data, proj, monkeypatch)
    from llada_tts.training.config import load_config

    saved = load_config(ck / CONFIG_FILE)  # the stored config means the same from any folder
    assert saved.TTS_dataset == str(proj / "data" / "tts") and saved.save_folder == str(proj / "runs" / "a")
    monkeypatch.chdir(elsewhere)
    rc = main(["--resume", str(ck), "--max_steps", "2"])
    assert rc == 0, capsys.readouterr().err[-2000:]
    assert sorted(read_metrics(proj / "runs" / "a")) == [1, 2] and not list(elsewhere.iterdir())
    # a save_folder other than the checkpoint's own is refused: the run would be split over two folders
    rc = main(["--resume", str(ck), "--save_folder", str(tmp_path / "other"), "--max_steps", "3"])
    line = error_line(capsys.readouterr().err)
    assert rc == 2 and line.startswith(f"error: --resume {ck}: that checkpoint belongs to the run in "), line
    assert not (tmp_path / "other").exists() and not list(elsewhere.iterdir())


def test_resume_of_an_older_checkpoint_with_relative_paths_from_another_folder(data, tmp_path, capsys, monkeypatch):
    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    elsewhere.mkdir()
    ck = _relative_run(data, proj, monkeypatch)
    for f in (ck / CONFIG_FILE, proj / "runs" / "a" / CONFIG_FILE):  # as checkpoints before absolute paths held
        f.write_text(f.read_text().replace(str(proj) + "/", ""))
    assert "TTS_dataset: data/tts" in (ck / CONFIG_FILE).read_text()
    monkeypatch.chdir(elsewhere)
    rc = main(["--resume", str(ck), "--max_steps", "2"])
    assert rc == 0, capsys.readouterr().err[-2000:]
    assert sorted(read_metrics(proj / "runs" / "a")) == [1, 2] and not list(elsewhere.iterdir())


# review item 2: a second start into a live run's folder refuses before touching anything; a stale lock is taken over
def _hold_lock(folder: Path):
    """A live process (not this one) holding ``folder``'s run lock, as a running trainer would."""
    import socket
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (folder / LOCK_FILE).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}) + "\n")
    return holder


def test_second_start_into_a_live_run_refuses_and_leaves_its_save_alone(data, finished, tmp_path, capsys):
    out, ck = run_copy(finished, tmp_path)
    saving = out / ".checkpoint-epoch-2.partial"  # the live run's save in progress
    (saving / STATE_DIR).mkdir(parents=True)
    holder = _hold_lock(out)
    try:
        for args in (resume(data, out),  # all refused in one line, the live save untouched
                     ["--config", data["config"], "--save_folder", str(out), "--max_steps", "1"],
                     ["--config", data["config"], "--save_folder", str(out), "--max_steps", "1",
                      "--overwrite_output_dir"]):
            rc = main(args)
            err = capsys.readouterr().err
            assert rc == 2 and "Traceback" not in err, err[-2000:]
            assert saving.is_dir() and read_state(ck).global_step == 2, args
            assert (out / LOCK_FILE).is_file()
        assert f"in use by a live run (pid {holder.pid} on " in line_of(main(resume(data, out)), capsys)
        assert saving.is_dir()
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale, taken over, and released when the run ends
    assert main(resume(data, out)) == 0, capsys.readouterr().err[-2000:]
    assert not saving.exists() and not (out / LOCK_FILE).exists()


def line_of(rc: int, capsys) -> str:
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err[-2000:]
    return error_line(err)


def test_run_lock_rules(tmp_path):
    import socket

    from audio_tokenizer import fileio
    from audio_tokenizer.fileio import RunLock, RunLockedError

    assert fileio.LOCK_FILE == LOCK_FILE
    folder = tmp_path / "run"
    lock = RunLock(folder)
    assert lock.acquire() == [] and json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()
    second = RunLock(folder)  # this process again (an earlier trainer not closed): taken over
    assert "an earlier run of this process" in second.acquire()[0]
    lock.release()  # no longer its lock: left alone
    assert (folder / LOCK_FILE).is_file()
    second.release()
    assert not (folder / LOCK_FILE).exists()
    (folder / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": socket.gethostname() + "-other"}))
    with pytest.raises(RunLockedError, match="in use by a live run \\(pid 1 on .*-other"):
        RunLock(folder).acquire()  # another host's lock cannot be checked: respected
    (folder / LOCK_FILE).write_text("")  # a creator still writing: live for now
    with pytest.raises(RunLockedError, match="a process that is starting"):
        RunLock(folder).acquire()
    os.utime(folder / LOCK_FILE, (0, 0))  # ... but not after a kill long ago
    third = RunLock(folder)
    assert "unreadable lock file" in third.acquire()[0]
    third.release()
    holder = _hold_lock(folder)  # a live pid that started after the lock was written: a reused pid
    try:
        info = json.loads((folder / LOCK_FILE).read_text())
        (folder / LOCK_FILE).write_text(json.dumps({**info, "start": "1"}))
        assert f"pid {holder.pid} on " in RunLock(folder).acquire()[0]
    finally:
        holder.kill()
        holder.wait()
    fresh = RunLock(tmp_path / "new")  # a start that fails before writing anything leaves no empty folder
    fresh.acquire()
    fresh.release()
    assert not (tmp_path / "new").exists()


# review item 4: FSDP state never holds a pickle: the save deletes accelerate's RNG pickles, --resume refuses any
def test_pickles_in_the_fsdp_state_are_refused_before_loading(data, finished, tmp_path, capsys):
    out, ck = run_copy(finished, tmp_path)
    marker = tmp_path / "marker"
    (ck / STATE_DIR / "fsdp").mkdir()
    plant(ck / STATE_DIR / "fsdp" / "random_states_0.pkl", marker)
    line = line_of(main(resume(data, out, str(ck))), capsys)
    assert not marker.exists()
    assert line.startswith(f"error: {ck / STATE_DIR / 'fsdp'} holds pickle files (random_states_0.pkl)"), line
    assert f"--model_name {ck}" in line


def test_an_fsdp_save_keeps_no_pickle(data, tmp_path):
    from accelerate.utils import DistributedType

    from llada_tts.training import checkpoint as ckpt
    from llada_tts.training.config import load_config
    from llada_tts.training.trainer import Trainer

    trainer = Trainer(load_config(data["config"], ["--save_folder", str(tmp_path / "run"), "--max_steps", "1"]))
    real = trainer.accelerator

    class FSDPLike:  # the accelerator as under FSDP: save_state writes accelerate's files, RNG pickles included
        distributed_type = DistributedType.FSDP

        def __getattr__(self, name):
            return getattr(real, name)

        def get_state_dict(self, model):
            return real.unwrap_model(model).state_dict()

        def save_state(self, folder):
            Path(folder).mkdir(parents=True)
            (Path(folder) / "pytorch_model_fsdp.bin").write_bytes(b"shards")
            plant(Path(folder) / "random_states_0.pkl", tmp_path / "marker")

    saved = ckpt.save_checkpoint(FSDPLike(), trainer.model, trainer.tokenizer, trainer.cfg, trainer.state,
                                 tmp_path / "run" / "checkpoint-epoch-1", trainer.optimizer, trainer.scheduler)
    state = saved / STATE_DIR
    assert sorted(p.name for p in (state / "fsdp").iterdir()) == ["pytorch_model_fsdp.bin"]
    assert (state / "rng_0.safetensors").is_file()  # the RNG state is ours, as safetensors
    ckpt.check_fsdp_state(saved)
    assert read_state(saved).global_step == 0
    trainer.close()


# review item 7: the printed resume command of a multi-process run keeps its launcher
def test_printed_resume_command_of_a_multi_process_run_keeps_the_launcher(data, tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    from llada_tts.training import trainer as trainer_module

    class TwoProcesses:  # what a 2-process bf16 run reports after Ctrl-C
        def __init__(self, cfg, resume=None, overwrite=False):
            self.cfg = cfg
            self.accelerator = SimpleNamespace(num_processes=2, mixed_precision="bf16", print=print)

        def train(self):
            return trainer_module.TrainResult(state=None, checkpoint=tmp_path / "run" / "checkpoint-epoch-0.5",
                                              interrupted=True)

    monkeypatch.setattr(trainer_module, "Trainer", TwoProcesses)
    assert main(["--config", data["config"], "--save_folder", str(tmp_path / "run")]) == 130
    command = capsys.readouterr().out.split("resume with: ")[1].splitlines()[0]
    assert command == ("accelerate launch --num_processes 2 --mixed_precision bf16 recipes/tts_train.py --resume "
                       f"{tmp_path / 'run' / 'checkpoint-epoch-0.5'}")


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
    from audio_tokenizer.training.config import load_config
    from audio_tokenizer.training.trainer import CodecTrainer

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


# review item 2, codec trainer: the same run lock, taken before its temp folders are tidied
def test_codec_second_start_into_a_live_run_refuses_and_leaves_its_save_alone(codec_run, tmp_path, capsys):
    from audio_tokenizer.training.cli import main as codec_main

    out, args = codec_copy(codec_run, tmp_path)
    saving = out / ".checkpoint.partial" / "training_state"  # the live run's save in progress
    saving.mkdir(parents=True)
    holder = _hold_lock(out)
    try:
        for extra in (["--resume"], []):
            rc = codec_main([*args, "--max_steps", "3", *extra])
            err = capsys.readouterr().err
            assert rc == 2 and "Traceback" not in err and saving.is_dir(), err[-2000:]
        line = error_line(err)  # a fresh start is refused as before; --resume by the lock
        assert line.startswith("codec_train: error: ") and "already holds a codec run" in line, line
        assert f"in use by a live run (pid {holder.pid} on " in line_of(codec_main([*args, "--resume"]), capsys)
        assert saving.is_dir() and (out / LOCK_FILE).is_file()
    finally:
        holder.kill()
        holder.wait()
    assert codec_main([*args, "--max_steps", "3", "--resume"]) == 0, capsys.readouterr().err[-2000:]
    assert not saving.parent.exists() and not (out / LOCK_FILE).exists()
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == 3


# review item 3: a run made before a config key existed resumes (the key counts as its default)
def test_codec_resume_of_a_run_older_than_a_config_key(codec_run, tmp_path, capsys):
    from audio_tokenizer.training.cli import main as codec_main

    out, args = codec_copy(codec_run, tmp_path)
    config = out / "run_config.yaml"
    old = [ln for ln in config.read_text().splitlines() if not ln.startswith(("adversarial:", "disc_channels:"))]
    config.write_text("\n".join(old) + "\n")
    assert codec_main([*args, "--max_steps", "3", "--resume"]) == 0, capsys.readouterr().err[-2000:]
    config.write_text("\n".join(old) + "\n")  # a value other than the default is still a change
    line = line_of(codec_main([*args, "--max_steps", "4", "--adversarial", "true", "--resume"]), capsys)
    assert line == "codec_train: error: cannot resume: settings differ from the run's: adversarial: False -> True"


def test_codec_old_pickled_state_message_wins_over_settings(codec_run, tmp_path, capsys):
    from audio_tokenizer.training.cli import main as codec_main

    out, args = codec_copy(codec_run, tmp_path)
    state = out / "checkpoint" / "training_state"
    for f in state.iterdir():
        f.unlink()
    plant(state / "optimizer.bin", tmp_path / "marker")
    line = line_of(codec_main([*args, "--learning_rate", "1e-2", "--resume"]), capsys)
    assert "old pickled format" in line and "settings differ" not in line, line
    assert not (tmp_path / "marker").exists()


# review item 6: codec_train: a damaged checkpoint is one line exit 2, whatever raised it; a bug keeps its traceback
def test_codec_checkpoint_weights_that_do_not_fit_are_one_line_exit_2(codec_run, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    from audio_tokenizer.training.cli import main as codec_main

    out, args = codec_copy(codec_run, tmp_path)
    weights = out / "checkpoint" / "model.safetensors"
    state = load_file(str(weights))
    name = next(iter(state))
    state[name] = state[name].new_zeros(*[n + 1 for n in state[name].shape])
    save_file(state, str(weights))
    line = line_of(codec_main([*args, "--max_steps", "3", "--resume"]), capsys)
    assert line.startswith(f"codec_train: error: {weights}: does not fit the model"), line


@pytest.mark.parametrize("error", ["SafetensorError", "TrainingStateError", "NonFiniteLossError", "KeyError"])
def test_codec_cli_error_kinds(monkeypatch, capsys, error):
    from safetensors import SafetensorError

    from audio_tokenizer.training import cli, state
    from audio_tokenizer.training import trainer as codec_trainer

    kind = {"SafetensorError": SafetensorError, "TrainingStateError": state.TrainingStateError,
            "NonFiniteLossError": state.NonFiniteLossError, "KeyError": KeyError}[error]

    def fail(*a, **k):
        raise kind("checkpoint/model.safetensors: header too large\nsecond line")

    monkeypatch.setattr(codec_trainer, "CodecTrainer", fail)
    argv = ["--train_data", "corpus/", "--resume"]
    if error == "KeyError":  # not an input problem: a bug, whose traceback is kept
        with pytest.raises(KeyError):
            cli.main(argv)
        return
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == (1 if error == "NonFiniteLossError" else 2) and "Traceback" not in err
    assert err.strip() == "codec_train: error: checkpoint/model.safetensors: header too large", err
    monkeypatch.setenv("LLADA_TTS_DEBUG", "1")
    with pytest.raises(kind):
        cli.main(argv)
