"""eval-codec: round-trip report of a tiny random codec on a 3-utterance eSpeak corpus, and bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audio_tokenizer import eval_codec as ec
from audio_tokenizer import judge


@pytest.fixture(scope="module")
def corpus_and_codec(tmp_path_factory):
    from audio_tokenizer.codec import create_random_codec
    from audio_tokenizer.corpus import make_corpus

    root = tmp_path_factory.mktemp("eval_codec")
    corpus = make_corpus(root / "corpus", 3, seed=0, progress=False)
    codec = create_random_codec(root / "codec", size="tiny")
    return corpus, codec


def _main(argv, capsys):
    from audio_tokenizer.__main__ import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_count_codes_and_mel_distance():
    codes = [(torch.tensor([1, 1]), torch.tensor([2, 3, 2, 2]), torch.arange(8)),
             (torch.tensor([5]), torch.tensor([3, 3]), torch.tensor([0, 0, 9, 9]))]
    assert ec.count_codes(codes) == ([2, 2, 9], [3, 6, 12])
    wave = (0.3 * np.random.default_rng(0).standard_normal(24000)).astype(np.float32)  # broadband: above the floor
    assert ec.mel_distance(wave, wave) == 0.0
    assert ec.mel_distance(wave, 0.1 * wave) == pytest.approx(np.log(10.0), rel=1e-3)  # 20 dB quieter: log 10
    assert ec.mel_distance(wave, wave[:12000]) == 0.0  # cut to the shorter


def test_eval_codec_report(corpus_and_codec, tmp_path, capsys):
    from audio_tokenizer.audio_io import load_audio
    from audio_tokenizer.codec import SnacCodec
    from audio_tokenizer.corpus import read_metadata

    corpus, codec_dir = corpus_and_codec
    out = tmp_path / "report"
    code, stdout, err = _main(["eval-codec", "--codec", str(codec_dir), "--input", str(corpus), "--out", str(out),
                               "--quiet"], capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert set(report) == {"config", "summary", "rows"}
    assert list(report["summary"]) == list(ec.SUMMARY_FIELDS)
    rows, s = report["rows"], report["summary"]
    assert len(rows) == 3 and all(list(r) == list(ec.ROW_FIELDS) and r["ok"] for r in rows)
    assert (s["utterances"], s["scored"], s["failed"], s["complete"]) == (3, 3, 0, True)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # atomic writes leave no temp files

    # codes used: a recount from the codec's own encode
    codec = SnacCodec.from_pretrained(str(codec_dir))
    encoded = [codec.encode(load_audio(u.audio, 24000), 24000) for u in read_metadata(corpus)]
    assert [r["codes_used"] for r in rows] == [[int(torch.unique(c).numel()) for c in e.codes] for e in encoded]
    used = [len(set().union(*(set(e.codes[lvl].tolist()) for e in encoded))) for lvl in range(3)]
    positions = [sum(e.codes[lvl].numel() for e in encoded) for lvl in range(3)]
    assert s["codes_used"] == used and s["code_positions"] == positions
    assert s["codes_used_fraction"] == pytest.approx([u / min(4096, p) for u, p in zip(used, positions)])
    assert s["codes_used_fraction_of_codebook"] == pytest.approx([u / 4096 for u in used])
    assert [r["frames"] for r in rows] == [e.frames for e in encoded]

    # quality: a random codec makes noise
    for r in rows:
        assert r["mel_distance"] > 0.5 and 0.0 < r["stoi"] < 0.8
        assert r["encode_rtf"] == pytest.approx(r["encode_seconds"] / r["duration"])
    assert s["audio_seconds"] == pytest.approx(sum(r["duration"] for r in rows))
    assert s["stoi"] == pytest.approx(np.mean([r["stoi"] for r in rows]))
    assert s["encode_rtf"] == pytest.approx(sum(r["encode_seconds"] for r in rows) / s["audio_seconds"])
    if judge.whisper_available():  # the default judge is Whisper tiny.en
        assert report["config"]["asr"] == "whisper:tiny.en"
        assert s["wer_original"] < 0.5, [(r["text"], r["transcript_original"]) for r in rows]
        assert s["wer_roundtrip"] > 0.9
        assert s["wer_gap"] == pytest.approx(s["wer_roundtrip"] - s["wer_original"])
        words = sum(r["ref_words"] for r in rows)
        assert s["wer_original"] == pytest.approx(sum(r["word_errors_original"] for r in rows) / words)
    assert "| metric | value |" in stdout and "STOI" in stdout and f"wrote {out / 'report.json'}" in stdout
    assert "| utt_00000 |" not in stdout  # --quiet: summary only


def test_eval_codec_failed_row_exits_1(corpus_and_codec, tmp_path, capsys):
    import shutil

    corpus, codec_dir = corpus_and_codec
    broken = tmp_path / "broken"
    shutil.copytree(corpus, broken)
    (broken / "wavs" / "utt_00001.wav").unlink()
    code, stdout, err = _main(["eval-codec", "--codec", str(codec_dir), "--input", str(broken / "metadata.csv"),
                               "--out", str(tmp_path / "r"), "--asr", "none", "--limit", "2"], capsys)
    assert code == 1
    assert "1 of 2 utterances failed: utt_00001" in err
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [r["ok"] for r in report["rows"]] == [True, False]
    assert "not found" in report["rows"][1]["error"]
    assert report["summary"]["scored"] == 1 and report["summary"]["wer_original"] is None
    assert "| utt_00001 | FAIL:" in stdout


@pytest.mark.parametrize("extra, message", [
    (["--input", "MISSING"], "does not exist"),
    (["--input", "EMPTY"], "no metadata.csv"),
    (["--codec", "MISSING"], "cannot load codec"),
    (["--limit", "0"], "--limit must be >= 1"),
    (["--asr", "sphinx"], "unknown ASR 'sphinx'"),
    (["--out", "FILE"], "is a file"),
])
def test_eval_codec_bad_input_exits_2_with_one_line(corpus_and_codec, tmp_path, capsys, extra, message):
    corpus, codec_dir = corpus_and_codec
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    subst = {"MISSING": str(tmp_path / "missing"), "EMPTY": str(tmp_path / "empty"), "FILE": str(tmp_path / "file")}
    args = {"--codec": str(codec_dir), "--input": str(corpus), "--out": str(tmp_path / "r"), "--asr": "none"}
    args.update({k: subst.get(v, v) for k, v in zip(extra[::2], extra[1::2])})
    code, _, err = _main(["eval-codec", *[x for kv in args.items() for x in kv]], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
