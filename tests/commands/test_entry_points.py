"""One story for entry points: `llada-tts train` is recipes/tts_train.py's command line, `llada-tts data ...` is
`python -m audio_tokenizer ...`, and the web demo is the package llada_tts.app (app/app.py only launches it)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audio_tokenizer.__main__ import main as audio_tokenizer_main
from llada_tts.cli import build_parser, main
from llada_tts.commands.delegate import prog

ROOT = Path(__file__).resolve().parents[2]
DATA_COMMANDS = ("corpus", "build", "random-codec", "eval-codec")


def cli(capsys, *args):
    """`llada-tts ARGS` in-process: (exit code, stdout, stderr); argparse's SystemExit included."""
    try:
        code = main([*map(str, args)])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def test_prog_names_the_command_as_the_user_typed_it():
    assert prog("train", "/usr/local/bin/llada-tts") == "llada-tts train"
    assert prog("data", "/venv/Scripts/llada-tts.exe") == "llada-tts data"
    assert prog("train", "/x/llada_tts/__main__.py") == "python -m llada_tts train"  # also accelerate launch -m


def test_top_level_help_lists_train_and_data(capsys):
    code, out, _ = cli(capsys, "--help")
    assert code == 0
    assert "recipes/tts_train.py" in out and "python -m audio_tokenizer" in out
    assert {"train", "data"} <= set(next(a for a in build_parser()._actions if a.dest == "command").choices)


# --- llada-tts train -------------------------------------------------------------------------------

def test_train_help_is_the_training_command_lines_help(capsys):
    from llada_tts.training.cli import main as train_main

    code, out, err = cli(capsys, "train", "--help")
    try:
        expected_code = train_main(["--help"], recipe="tts", prog=prog("train"))
    except SystemExit as e:
        expected_code = e.code
    expected = capsys.readouterr().out
    assert (code, out, err) == (expected_code, expected, "") and code == 0
    assert out.startswith(f"usage: {prog('train')} ") and "TTS_dataset" in out and "--resume" in out


def test_train_bad_key_is_one_error_line_and_exit_2(capsys):
    code, out, err = cli(capsys, "train", "--config", ROOT / "recipes" / "configs" / "tiny_cpu.yaml",
                         "--learning_rat", "1e-3")
    assert code == 2 and out == ""
    assert len(lines(err)) == 1 and "learning_rat" in err and "learning_rate" in err  # "did you mean"


def test_train_without_words_prints_its_usage_and_exits_2(capsys):
    code, out, _ = cli(capsys, "train")
    assert code == 2 and out.startswith(f"usage: {prog('train')} ")


def test_train_from_python_m_names_itself():
    out = subprocess.run([sys.executable, "-m", "llada_tts", "train", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m llada_tts train --config CONFIG.yaml")


# --- llada-tts data ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_data_help_is_audio_tokenizers_help(capsys, command):
    code, out, err = cli(capsys, "data", command, "--help")
    with pytest.raises(SystemExit) as exit_:
        audio_tokenizer_main([command, "--help"], prog=prog("data"))
    assert (code, exit_.value.code, err) == (0, 0, "")
    assert out == capsys.readouterr().out  # the same parser, named llada-tts data
    assert out.startswith(f"usage: {prog('data')} {command} ")


def test_data_build_help_reaches_the_build_parser(capsys):
    code, out, _ = cli(capsys, "data", "build", "--help")
    assert code == 0
    for option in ("--tokenizer TOKENIZER", "--front-end {text,espeak-ipa,espeak-frames,espeak-quarters}",
                   "--drop-repeated-frames", "--threads"):
        assert option in out


def test_data_help_lists_the_four_commands_and_examples_under_its_name(capsys):
    code, out, _ = cli(capsys, "data", "--help")
    assert code == 0 and "{corpus,random-codec,eval-codec,build}" in out
    assert f"{prog('data')} corpus data/espeak" in out and "python -m audio_tokenizer" not in out.split("examples:")[1]


@pytest.mark.parametrize("argv, message", [
    (["random-codec"], "random-codec: error: the following arguments are required: out"),
    (["random-codec", "x", "--size", "huge"], "random-codec: error: argument --size: invalid choice: 'huge'"),
    (["build", "--input", "a", "--output", "b", "--tokenizer", "c", "--bogus"],
     "error: unrecognized arguments: --bogus"),
    (["nonsense"], "error: argument command: invalid choice: 'nonsense'"),
    ([], "error: the following arguments are required: command"),
])
def test_data_usage_errors_are_one_line_and_exit_2(capsys, argv, message):
    code, out, err = cli(capsys, "data", *argv)
    assert code == 2 and out == ""
    assert len(lines(err)) == 1, err
    assert err.startswith(prog("data")) and message in err and "--help)" in err


def test_data_runs_the_command(capsys, tmp_path):
    code, out, _ = cli(capsys, "data", "random-codec", tmp_path / "codec", "--size", "tiny")
    assert code == 0 and "UNTRAINED tiny SNAC codec" in out
    assert (tmp_path / "codec" / "config.json").is_file() and (tmp_path / "codec" / "model.safetensors").is_file()
    code, _, err = cli(capsys, "data", "random-codec", tmp_path / "codec")  # audio_tokenizer's own input error
    assert code == 2 and lines(err) == [f"error: {tmp_path / 'codec'} exists; pass --overwrite to replace it"]


def test_python_m_audio_tokenizer_keeps_its_name(capsys):
    with pytest.raises(SystemExit) as exit_:
        audio_tokenizer_main(["build", "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m audio_tokenizer build ")


# --- the web demo ----------------------------------------------------------------------------------

def test_the_demo_is_a_package_and_app_py_only_launches_it():
    import setuptools

    launcher = (ROOT / "app" / "app.py").read_text()
    assert "sys.path" not in launcher and "from llada_tts.app import main" in launcher
    assert len(launcher.splitlines()) <= 10
    assert "spec_from_file_location" not in (ROOT / "llada_tts" / "commands" / "app.py").read_text()
    assert "llada_tts.app" in setuptools.find_packages(str(ROOT), include=["llada_tts*", "audio_tokenizer*"])


def test_python_m_llada_tts_app_help_without_gradio_import():
    code = ("import sys, runpy; sys.argv = ['x', '--help']\n"
            "try:\n    runpy.run_module('llada_tts.app', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print(sorted(m for m in ('gradio', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage: python -m llada_tts.app [-h] [--model DIR_OR_ID]" in out.stdout and "--share" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"
