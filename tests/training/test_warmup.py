"""The one warmup rule (llada_tts.training.warmup): its three forms, and the earlier keys' schedules kept."""
from __future__ import annotations

import math

import pytest

from llada_tts.training.config import TrainConfig, load_config, save_config
from llada_tts.training.optim import lr_factor
from llada_tts.training.warmup import Warmup, from_legacy

RUNS = [(100, 10), (8000, 375), (7, 7), (1, 1), (333, 41)]  # (total updates, updates per epoch)


def old_warmup_updates(total_steps, updates_per_epoch, ratio=0.0, steps=None, epochs=None):
    """The trainer's warmup before the one rule (optim.warmup_updates at the commit before it), verbatim."""
    if steps is not None:
        return int(steps)
    if epochs is not None:
        return int(round(epochs * updates_per_epoch))
    return int(math.ceil(ratio * total_steps))


@pytest.mark.parametrize("text, amount, unit, spelled", [
    ("150", 150, "updates", "150"), (150, 150, "updates", "150"), ("150 updates", 150, "updates", "150"),
    ("0", 0, "updates", "0"), ("3%", 0.03, "fraction", "3%"), (" 12.5 % ", 0.125, "fraction", "12.5%"),
    ("0.5 epochs", 0.5, "epochs", "0.5 epochs"), ("1 epoch", 1.0, "epochs", "1 epoch"),
    ("2epochs", 2, "epochs", "2 epochs"),
])
def test_the_three_forms_and_their_one_spelling(text, amount, unit, spelled):
    w = Warmup.parse(text)
    assert (w.amount, w.unit, str(w)) == (amount, unit, spelled)
    assert Warmup.parse(str(w)) == w


@pytest.mark.parametrize("text, match", [
    ("0.05", r"optimizer updates must be a whole number, got '0.05'; write 5% .* or 0.05 epochs"),
    ("100%", r"warmup: must be under 100% of the updates, got 100%"),
    ("-3", r"warmup: must be a whole number of optimizer updates \(150\), a percentage"),
    ("three", r"warmup: must be a whole number"), ("5 minutes", r"warmup: must be a whole number"),
])
def test_a_bad_warmup_is_one_line_naming_the_forms(text, match):
    with pytest.raises(ValueError, match=match):
        Warmup.parse(text)
    with pytest.raises(ValueError, match=match):
        TrainConfig(TTS_dataset="t", warmup=text)


def test_percent_is_exactly_the_earlier_ratio():
    for ratio in (0.01, 0.03, 0.05, 0.1, 0.07, 0.123456789, 1 / 3, 1e-7, 0.999):
        w = from_legacy(warmup_ratio=ratio)
        assert w.amount == ratio and Warmup.parse(str(w)).amount == ratio, ratio


@pytest.mark.parametrize("key, value", [
    ("warmup_ratio", 0.0), ("warmup_ratio", 0.03), ("warmup_ratio", 0.05), ("warmup_ratio", 0.1),
    ("warmup_ratio", 0.07),
    ("warmup_steps", 0), ("warmup_steps", 1), ("warmup_steps", 2), ("warmup_steps", 150),
    ("warmup_epochs", 0.5), ("warmup_epochs", 1.0), ("warmup_epochs", 0.25), ("warmup_epochs", 2.5),
])
def test_each_earlier_key_keeps_its_schedule(tmp_path, key, value):
    """A file (and a command line) with an earlier key: the same warmup updates, so the same LR schedule."""
    old_kw = {"warmup_ratio": "ratio", "warmup_steps": "steps", "warmup_epochs": "epochs"}[key]
    path = tmp_path / "c.yaml"
    path.write_text(f"TTS_dataset: t\n{key}: {value}\n")
    from_file, from_cli = load_config(path), load_config(None, ["--TTS_dataset", "t", f"--{key}", str(value)])
    assert from_file.warmup == from_cli.warmup
    for total, per_epoch in RUNS:
        want = old_warmup_updates(total, per_epoch, **{old_kw: value})
        assert Warmup.parse(from_file.warmup).updates(total, per_epoch) == want, (total, per_epoch)
        # and it survives the run's saved train_config.yaml (what --resume reads)
        saved = load_config(save_config(from_file, tmp_path / "saved.yaml"))
        assert Warmup.parse(saved.warmup).updates(total, per_epoch) == want
        lrs = [lr_factor(s, want, total, "cosine") for s in range(total)]
        assert lrs == [lr_factor(s, Warmup.parse(saved.warmup).updates(total, per_epoch), total, "cosine")
                       for s in range(total)]


def test_a_saved_run_of_the_earlier_trainer_keeps_its_warmup(tmp_path, caplog):
    """Resolved configs written before the one rule list all three keys (unused ones null, ratio 0.0)."""
    path = tmp_path / "train_config.yaml"
    path.write_text("TTS_dataset: t\nwarmup_ratio: 0.0\nwarmup_steps: 150\nwarmup_epochs: null\n")
    assert load_config(path).warmup == "150"
    assert not caplog.records  # ratio 0.0 beside warmup_steps: nothing to warn about
    path.write_text("TTS_dataset: t\nwarmup_ratio: 0.05\nwarmup_steps: null\nwarmup_epochs: 0.5\n")
    cfg = load_config(path)  # as before: warmup_epochs wins over warmup_ratio, which is reported ignored
    assert cfg.warmup == "0.5 epochs" and Warmup.parse(cfg.warmup).updates(100, 10) == old_warmup_updates(
        100, 10, ratio=0.05, epochs=0.5)
    assert "warmup_ratio 0.05" in caplog.text and "ignored" in caplog.text


@pytest.mark.parametrize("text, match", [
    ("warmup: 10\nwarmup_steps: 3\n", r"warmup: .* gives it twice, as warmup and as warmup_steps"),
    ("warmup: 3%\nwarmup_ratio: 0.03\n", r"gives it twice, as warmup and as warmup_ratio"),
    ("warmup_steps: 3\nwarmup_epochs: 1\n", r"only one of warmup_steps and warmup_epochs"),
    ("warmup_ratio: 1.5\n", r"warmup_ratio: must be under 100% of the updates, got 150%"),
    ("warmup_steps: -1\n", r"warmup_steps: must be >= 0"),
])
def test_conflicting_or_bad_warmup_keys_are_one_clear_error(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text("TTS_dataset: t\n" + text)
    with pytest.raises(ValueError, match=match) as e:
        load_config(path)
    assert "\n" not in str(e.value)


def test_the_command_line_warmup_replaces_the_files_in_any_spelling(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("TTS_dataset: t\nwarmup_steps: 2\n")
    assert load_config(path, ["--warmup", "5%"]).warmup == "5%"
    assert load_config(path, ["--warmup_epochs", "1"]).warmup == "1 epoch"
    assert load_config(path, ["--warmup_ratio", "0"]).warmup == "0%"
    assert load_config(path).warmup == "2"
    with pytest.raises(ValueError, match="the command line gives it twice"):
        load_config(path, ["--warmup", "5", "--warmup_steps", "5"])
