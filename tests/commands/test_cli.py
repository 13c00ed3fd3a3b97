"""`llada-tts say / voices / info` on a tiny random checkpoint: files, determinism, messages, exit codes."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from synthesis_fixtures import (  # noqa: F401  (fixtures)
    CHARS_PER_SECOND,
    FAST,
    VOICES,
    silent_model_dir,
    text_only_model_dir,
    tiny_codec_dir,
    tiny_model_dir,
    tts,
)

from audio_tokenizer import layout as L
from llada_tts.cli import COMMANDS, build_parser, main
from llada_tts.model import speech_dtype

ROOT = Path(__file__).resolve().parents[2]
FAST_ARGS = ["--steps", str(FAST["steps"]), "--block-length", str(FAST["block_length"])]


@pytest.fixture
def model_args(tiny_model_dir, tiny_codec_dir):
    return ["--model", str(tiny_model_dir), "--codec", str(tiny_codec_dir), "--device", "cpu"]


def cli(capsys, *args):
    """Run `llada-tts ARGS` in-process: (exit code, stdout, stderr); argparse's SystemExit included."""
    try:
        code = main([*map(str, args)])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def say(capsys, *args):
    return cli(capsys, "say", *args)


def error_line(err: str) -> str:
    """The last stderr line (progress bars and HF loading bars may precede it)."""
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def test_cli_choices_mirror_the_sampler():
    from llada_tts.sampling import config
    from llada_tts.sampling.constraints import frames_for_duration
    from llada_tts.synthesis import defaults

    assert (defaults.METHODS, defaults.REMASKING, defaults.CACHE_MODES) == (config.METHODS, config.REMASKING,
                                                                             config.CACHE_MODES)
    assert defaults.THRESHOLD_FLOORS == config.THRESHOLD_FLOORS
    assert (defaults.SLOTS_PER_FRAME, defaults.FRAMES_PER_SECOND) == (L.SLOTS_PER_FRAME, L.FRAMES_PER_SECOND)
    assert defaults.canvas_limit(10.0) == L.SLOTS_PER_FRAME * frames_for_duration(10.0)  # the cap = a canvas


def test_sampler_flags_come_from_the_one_option_table():
    from llada_tts.synthesis.defaults import SAMPLER_OPTIONS

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("say", "eval"):
        group = next(g for g in sub.choices[name]._action_groups if g.title == "sampler")
        flags = {a.option_strings[0]: a for a in group._group_actions}
        assert list(flags) == [o.flag for o in SAMPLER_OPTIONS if o.flag]
        for o in SAMPLER_OPTIONS:
            if o.flag:
                assert flags[o.flag].help == o.help and (flags[o.flag].choices or ()) == o.choices


def test_parser_has_the_shared_contract():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    assert COMMANDS == ("say", "edit", "voices", "info", "app", "eval", "tokenizer", "quickstart", "serve", "generate",
                        "score", "train", "data")


def test_tokenizer_command_saves_a_layout_checked_tokenizer(capsys, tmp_path):
    from audio_tokenizer import layout as L
    from llada_tts.vocab import check_layout, load_tokenizer

    out = tmp_path / "tok"
    assert main(["tokenizer", str(out), "--from", "offline"]) == 0
    tok = load_tokenizer(out, extend=False)  # saved already extended: nothing to add
    check_layout(tok)
    assert len(tok) == L.VOCAB_SIZE and tok.convert_tokens_to_ids("<|mdm_mask|>") == L.MASK_ID
    capsys.readouterr()
    assert main(["tokenizer", str(out), "--from", "offline"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err


def test_say_writes_the_synthesized_waveform(capsys, tmp_path, model_args, tts):
    out = tmp_path / "hello.wav"
    code, stdout, _ = say(capsys, "Hello there.", "-o", out, "--voice", "alice", "--seed", 5, *FAST_ARGS, *model_args)
    assert code == 0
    data, sr = sf.read(out, dtype="int16")
    info = sf.info(out)
    assert (sr, info.channels, info.subtype, data.ndim) == (24000, 1, "PCM_16", 1)
    ref = tts.synthesize("Hello there.", voice="alice", seed=5, **FAST)  # the API, same settings
    assert len(data) == ref.frames * L.SAMPLES_PER_FRAME == len(ref.waveform)
    np.testing.assert_array_equal(data, sf.read(io.BytesIO(_pcm16(ref.waveform)), dtype="int16")[0])
    assert f"wrote {out}: {ref.duration:.2f} s of audio" in stdout
    assert f"NFE {ref.nfe}, valid frames {ref.frames}/{ref.frames} (100.0%)" in stdout and "seed 5" in stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def _pcm16(wave) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1, 1), 24000, subtype="PCM_16", format="WAV")
    return buf.getvalue()


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_differs_stream_matches(capsys, tmp_path, model_args):
    runs = {"a": ["--seed", 1], "b": ["--seed", 1], "c": ["--seed", 2], "s": ["--seed", 1, "--stream"]}
    for name, extra in runs.items():
        code, _, err = say(capsys, "Hi.", "-o", tmp_path / f"{name}.wav", "-q", *extra, *FAST_ARGS, *model_args)
        assert code == 0, err
    a, b, c, s = ((tmp_path / f"{n}.wav").read_bytes() for n in "abcs")
    assert a == b and a != c
    assert (sf.read(tmp_path / "s.wav", dtype="int16")[0].tolist()
            == sf.read(tmp_path / "a.wav", dtype="int16")[0].tolist())


def test_text_from_a_file_and_from_stdin(capsys, tmp_path, model_args, monkeypatch):
    (tmp_path / "in.txt").write_text("Hi.\n", encoding="utf-8")
    code, _, _ = say(capsys, "-i", tmp_path / "in.txt", "-o", tmp_path / "f.wav", "--seed", 0, "-q", *FAST_ARGS,
                     *model_args)
    assert code == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hi.\n"))
    code, stdout, _ = say(capsys, "-", "-o", tmp_path / "s.wav", "--seed", 0, "-q", *FAST_ARGS, *model_args)
    assert code == 0 and stdout == ""
    assert (tmp_path / "f.wav").read_bytes() == (tmp_path / "s.wav").read_bytes()


def test_bad_input_gives_one_line_and_exit_2(capsys, tmp_path, model_args, tiny_model_dir, tiny_codec_dir,
                                             text_only_model_dir):
    (tmp_path / "malformed").mkdir()
    (tmp_path / "malformed" / "config.json").write_text("{}")
    wav = str(tmp_path / "o.wav")
    codec = ["--codec", str(tiny_codec_dir)]
    cases = [
        (["", "-o", wav, *model_args], "text is empty: nothing to say"),
        (["  \n", "-o", wav, *model_args], "text is empty: nothing to say"),
        (["-o", wav, *model_args], "no text: give it as an argument"),
        (["Hi.", "-o", str(tmp_path / "missing" / "o.wav"), *model_args], "folder .*missing does not exist"),
        (["Hi.", "-o", str(tmp_path), *model_args], "is a folder"),
        (["-i", str(tmp_path / "nope.txt"), "-o", wav, *model_args], "input file .*nope.txt does not exist"),
        (["Hi.", "-o", wav, "--model", str(tmp_path / "nockpt"), *codec], "model: no checkpoint folder at"),
        (["Hi.", "-o", wav, "--model", str(tmp_path / "malformed"), *codec], "model: .*has no model.safetensors"),
        (["Hi.", "-o", wav, "--model", str(text_only_model_dir), *codec], "128256 embedding rows"),
        (["Hi.", "-o", wav, "--voice", "carol", *model_args], "unknown voice 'carol'"),
        (["Hi.", "-o", wav, "--steps", "0", *model_args], "argument --steps: must be >= 1, got 0"),
        (["Hi.", "-o", wav, "--steps", "x", *model_args], "argument --steps: expected an integer"),
        (["Hi.", "-o", wav, "--threshold", "0", *model_args], r"argument --threshold: must be in \(0, 1\]"),
        (["Hi.", "-o", wav, "--threshold", "1.5", *model_args], r"argument --threshold: must be in \(0, 1\]"),
        (["Hi.", "-o", wav, "--min-length", "1.5", *model_args], r"argument --min-length: must be in \[0, 1\]"),
        (["Hi.", "-o", wav, "--method", "magic", *model_args], "argument --method: invalid choice: 'magic'"),
        (["Hi.", "-o", wav, "--block-length", "30", *model_args], "must be a multiple of 7"),
        (["Hi.", "-o", wav, "--speed", "0", *model_args], "argument --speed: must be a finite number > 0"),
        (["Hi.", "-o", wav, "--threshold", "0.9", "--remasking", "random", *model_args],
         "use remasking low_confidence"),
        (["Hello there. " * 10, "-o", wav, "--max-duration", "1", *model_args], "more than max_duration=1 s"),
    ]
    for args, pattern in cases:
        code, _, err = say(capsys, *args)
        line = error_line(err)
        assert code == 2, (args, err)
        assert line.startswith("llada-tts say: error: ") and re.search(pattern, line), (pattern, err)
        assert "Traceback" not in err
    assert not (tmp_path / "o.wav").exists()


def test_no_valid_frames_exits_1(capsys, tmp_path, silent_model_dir, tiny_codec_dir):
    code, _, err = say(capsys, "Hello.", "-o", tmp_path / "o.wav", "--model", silent_model_dir, "--codec",
                       tiny_codec_dir, "--seed", 0, *FAST_ARGS)
    assert code == 1
    assert error_line(err) == ("llada-tts say: error: chunk 1/1 ('Hello.') produced no valid audio frames (the model "
                               "ended the speech at once); try another seed, more steps or another voice")
    assert not (tmp_path / "o.wav").exists()


def test_voices(capsys, tiny_model_dir, silent_model_dir, tmp_path):
    assert main(["voices", "--model", str(tiny_model_dir)]) == 0
    assert capsys.readouterr().out.splitlines() == VOICES
    assert main(["voices", "--model", str(tiny_model_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == VOICES
    assert main(["voices", "--model", str(silent_model_dir)]) == 0
    assert "no voices recorded" in capsys.readouterr().out
    assert main(["voices", "--model", str(tmp_path / "none")]) == 2
    assert error_line(capsys.readouterr().err).startswith("llada-tts voices: error: no checkpoint folder at")


def test_info(capsys, model_args, tiny_model_dir, tiny_codec_dir):
    assert main(["info", *model_args, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    c = info["checkpoint"]
    assert c["source"] == str(tiny_model_dir.resolve())
    assert ((c["layers"], c["hidden_size"], c["vocab_size"], c["is_causal"], c["dtype"])
            == (2, 64, L.VOCAB_SIZE, False, str(speech_dtype("cpu")).removeprefix("torch.")))  # --dtype auto
    assert c["voices"] == VOICES and c["chars_per_second"] == CHARS_PER_SECOND and c["sampler_defaults"] == {}
    assert c["parameters"] == L.VOCAB_SIZE * 64 + c["non_embedding_parameters"]  # tied embeddings counted once
    assert info["codec"]["source"] == str(tiny_codec_dir) and info["codec"]["sample_rate"] == 24000
    assert info["codec"]["levels"] == 3 and info["codec"]["level_rates_hz"] == [11.719, 23.438, 46.875]
    lay = info["layout"]
    assert ((lay["mask_id"], lay["audio_offset"], lay["tokens_per_frame"], lay["tokens_per_second"])
            == (156938, 128266, 7, 82.031))
    assert info["device"] == "cpu"
    assert main(["info", *model_args]) == 0
    text = capsys.readouterr().out
    for expected in ("is_causal     false (bidirectional attention)", "voices        alice, bob",
                     "sampler       global defaults",
                     "mask id       156938", "audio ids     128266 .. 156937", "24000 Hz, 3 levels", "82.031 tokens/s",
                     "device      cpu"):
        assert expected in text, expected


def _run(cmd, **env):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


@pytest.mark.slow
def test_console_script_and_module_entry_point(tmp_path, model_args):
    script = shutil.which("llada-tts") or pytest.skip("llada-tts console script not installed")
    out = tmp_path / "cli.wav"
    r = _run([script, "say", "Hi.", "-o", str(out), "--seed", "0", "-q", *FAST_ARGS, *model_args])
    assert r.returncode == 0, r.stderr
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.frames % L.SAMPLES_PER_FRAME) == (24000, 1, 0)
    # an unreachable hub id fails fast with one line (hub offline), through `python -m llada_tts`
    r = _run([sys.executable, "-m", "llada_tts", "say", "Hi.", "-o", str(tmp_path / "x.wav"), "--device", "cpu"],
             HF_HUB_OFFLINE="1", LLADA_TTS_MODEL="nobody/no-such-model")
    assert r.returncode == 2
    line = error_line(r.stderr)
    assert line.startswith("llada-tts say: error: model: 'nobody/no-such-model' is neither a local model "
                           "directory nor a reachable Hugging Face hub model")
    assert line.endswith("(pass --model DIR_OR_ID or set $LLADA_TTS_MODEL)") and "Traceback" not in r.stderr
    r = _run([sys.executable, "-m", "llada_tts"])
    assert r.returncode == 2 and "say" in r.stdout and "voices" in r.stdout
