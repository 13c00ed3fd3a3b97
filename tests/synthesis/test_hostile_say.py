"""Hostile inputs against `llada-tts say` (issue 14): a damaged checkpoint gets one line and exit 2."""
from __future__ import annotations

import os
import shutil

from synthesis_fixtures import tiny_codec_dir, tiny_model_dir  # noqa: F401  (fixtures)

from llada_tts.cli import main


def test_truncated_model_safetensors_is_one_line_exit_2(capsys, tmp_path, tiny_model_dir, tiny_codec_dir):
    ck = tmp_path / "ck"
    shutil.copytree(tiny_model_dir, ck)
    weights = ck / "model.safetensors"
    with open(weights, "r+b") as f:  # an interrupted download or copy
        f.truncate(os.path.getsize(weights) // 2)
    code = main(["say", "Hi.", "-o", str(tmp_path / "o.wav"), "--model", str(ck), "--codec", str(tiny_codec_dir),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("llada-tts say: error: ") and "damaged or incomplete" in line, line
    assert "--verbose" not in line and not (tmp_path / "o.wav").exists()
