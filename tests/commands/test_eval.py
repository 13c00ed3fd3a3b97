"""Evaluation: metrics against hand-computed values, ASR specs, input loading, reports, the eval CLI."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from llada_tts.evaluation import (
    ASRError,
    EvalInputError,
    corpus_wer,
    duration_ratio,
    edit_distance,
    expected_duration,
    get_asr,
    load_items,
    normalize_words,
    parse_asr_spec,
    summarize,
    wer,
    word_errors,
    write_report,
)
from llada_tts.evaluation.metrics import aggregate, mean
from llada_tts.evaluation.report import ROW_FIELDS, format_table


# --- metrics -------------------------------------------------------------------------------------
def test_normalize_words_spells_out_and_strips_punctuation():
    assert normalize_words("Hello, World-wide!") == ["hello", "world", "wide"]
    assert normalize_words("It costs $5. Don't 'quote' me, 3rd time") == [
        "it", "costs", "five", "dollars", "don't", "quote", "me", "third", "time"]
    assert normalize_words(" ... ") == []


def test_edit_distance_reference_values():
    assert edit_distance("kitten", "sitting") == 3  # 2 substitutions + 1 insertion
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "") == 3
    assert edit_distance(["a", "b"], ["a", "b"]) == 0
    assert edit_distance("flaw", "lawn") == 2


@pytest.mark.parametrize("ref, hyp, errors, words", [
    ("the cat sat on the mat", "the cat sit on mat", 2, 6),  # 1 substitution + 1 deletion
    ("Hello, world!", "hello world", 0, 2),
    ("It costs $5.", "it costs five dollars", 0, 4),  # normalised before scoring
    ("a b", "a b c d", 2, 2),  # 2 insertions over 2 words
    ("one two three", "", 3, 3),
])
def test_word_errors_and_wer_of_known_pairs(ref, hyp, errors, words):
    assert word_errors(ref, hyp) == (errors, words)
    assert wer(ref, hyp) == pytest.approx(errors / words)


def test_wer_edge_cases():
    assert wer("a", "b c d") == 3.0  # 1 substitution + 2 insertions over 1 word
    assert wer("", "") == 0.0
    assert wer("", "something") == 1.0


def test_corpus_wer_is_total_errors_over_total_words():
    assert corpus_wer([(1, 4), (3, 6)]) == pytest.approx(0.4)  # not the mean of 0.25 and 0.5
    assert corpus_wer([]) is None
    assert corpus_wer([(0, 0)]) is None


def test_expected_duration_and_ratio():
    assert expected_duration("abcdefghijklmn", 14.0) == pytest.approx(1.0)  # 14 chars at 14 chars/s
    assert expected_duration("$5", 12.0) == pytest.approx(1.0)  # "five dollars" = 12 characters
    with pytest.raises(ValueError, match="chars_per_second"):
        expected_duration("x", 0)
    assert duration_ratio(3.0, 2.0) == pytest.approx(1.5)
    assert duration_ratio(1.0, 0.0) is None


def test_mean_and_aggregate_skip_missing_values():
    assert mean([1, None, 3, float("nan")]) == pytest.approx(2.0)
    assert mean([None]) is None
    rows = [{"a": 1.0, "b": None}, {"a": 2.0, "b": 4.0}, {"a": 6.0}]
    assert aggregate(rows, ["a", "b"]) == {"mean_a": pytest.approx(3.0), "mean_b": pytest.approx(4.0)}


def _row(i, ok, duration=None, wall=None, nfe=None, valid=None, ratio=None, errors=None, words=None):
    row = dict.fromkeys(ROW_FIELDS)
    row.update(index=i, id=f"u{i}", ok=ok, duration=duration, wall_time=wall, nfe=nfe, valid_fraction=valid,
               duration_ratio=ratio, word_errors=errors, ref_words=words,
               rtf=None if not ok else wall / duration, frames=None if duration is None else int(duration * 10),
               wer=None if words is None else errors / words)
    return row


def test_summarize_hand_computed():
    rows = [_row(0, True, duration=2.0, wall=1.0, nfe=10, valid=1.0, ratio=1.0, errors=1, words=4),
            _row(1, True, duration=4.0, wall=4.0, nfe=20, valid=0.5, ratio=2.0, errors=3, words=6),
            _row(2, False, valid=0.0, errors=5, words=5)]  # failed: every word deleted
    s = summarize(rows)
    assert (s["lines"], s["ok"], s["failed"], s["failed_ids"]) == (3, 2, 1, ["u2"])
    assert s["total_audio_seconds"] == pytest.approx(6.0)
    assert s["total_wall_time"] == pytest.approx(5.0)
    assert s["rtf"] == pytest.approx(5.0 / 6.0)
    assert s["mean_rtf"] == pytest.approx((0.5 + 1.0) / 2)
    assert s["mean_nfe"] == pytest.approx(15.0)
    assert s["mean_duration_ratio"] == pytest.approx(1.5)
    assert s["mean_valid_fraction"] == pytest.approx(0.5)  # over all three rows
    assert s["wer"] == pytest.approx(9 / 15)
    assert s["mean_wer"] == pytest.approx((0.25 + 0.5 + 1.0) / 3)


def test_write_report_json_csv_roundtrip(tmp_path):
    rows = [_row(0, True, duration=2.0, wall=1.0, nfe=10, valid=1.0, ratio=1.0),
            _row(1, False, valid=float("nan"))]
    rows[0]["text"], rows[1]["text"] = "a, \"quoted\" | line", "b"
    report = {"config": {"asr": "none"}, "summary": summarize(rows), "rows": rows}
    jpath, cpath = write_report(report, tmp_path / "out")
    data = json.loads(jpath.read_text())
    assert data["rows"][1]["valid_fraction"] is None  # NaN is not valid JSON: written as null
    assert data["summary"]["failed"] == 1
    with cpath.open(newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == list(ROW_FIELDS)
    assert got[0]["text"] == "a, \"quoted\" | line" and got[0]["ok"] == "True" and got[1]["duration"] == ""
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left
    table = format_table(report)
    assert "FAIL" in table and "1/2 lines ok" in table


# --- ASR -----------------------------------------------------------------------------------------
def test_parse_asr_spec():
    assert parse_asr_spec("none") == ("none", None)
    assert parse_asr_spec("auto") == ("auto", None)
    assert parse_asr_spec("whisper") == ("whisper", None)
    assert parse_asr_spec("PocketSphinx") == ("pocketsphinx", None)
    assert parse_asr_spec("faster-whisper:/models/base.en") == ("whisper", "/models/base.en")
    assert get_asr("none") is None


def test_llada_tts_evaluation_reexports_the_judge():
    from audio_tokenizer import judge
    from llada_tts.evaluation import asr, metrics

    assert normalize_words is judge.normalize_words and metrics.wer is judge.wer
    assert get_asr is judge.get_asr and asr.PocketSphinxASR is judge.PocketSphinxASR


@pytest.mark.parametrize("spec, message", [
    ("sphinx", "choose one of: auto, whisper, faster-whisper:MODEL, pocketsphinx, none"),
    ("", "choose one of"),
    ("faster-whisper", "needs a model"),
    ("faster-whisper:", "needs a model"),
    ("pocketsphinx:big", "takes no argument"),
])
def test_asr_spec_errors_name_the_choices(spec, message):
    with pytest.raises(ASRError, match=message):
        get_asr(spec)


def test_faster_whisper_errors(tmp_path):
    with pytest.raises(ASRError, match="is not a folder"):
        get_asr(f"faster-whisper:{tmp_path / 'missing'}")
    with pytest.raises(ASRError, match="no model.bin"):
        get_asr(f"faster-whisper:{tmp_path}")
    (tmp_path / "model.bin").write_bytes(b"")
    try:
        import faster_whisper  # noqa: F401  only checks whether the optional package is installed
    except ImportError:
        with pytest.raises(ASRError, match="pip install faster-whisper"):
            get_asr(f"faster-whisper:{tmp_path}")
    else:  # an empty model.bin: one ASRError line, not a CTranslate2 traceback
        with pytest.raises(ASRError, match="cannot load Whisper model"):
            get_asr(f"faster-whisper:{tmp_path}")


def test_pocketsphinx_transcribes_espeak_speech():
    pytest.importorskip("pocketsphinx")
    from audio_tokenizer import espeak

    asr = get_asr("pocketsphinx")
    text = "one two three four five six seven"
    wave, sr = espeak.synthesize(text, rate=140)  # 22050 Hz: resampled to 16 kHz inside
    hyp = asr.transcribe(wave, sr)
    assert hyp.strip()
    assert len(set(normalize_words(hyp)) & set(normalize_words(text))) >= 2  # a weak ASR, but not deaf
    assert wer(text, hyp) < 1.0
    assert asr.transcribe(np.zeros(0, np.float32), 24000) == ""


# --- input -----------------------------------------------------------------------------------------
def test_load_items_from_text_file(tmp_path):
    p = tmp_path / "texts.txt"
    p.write_text("First line.\n\n  Second line.  \nThird.\n", encoding="utf-8")
    items = load_items(p)
    assert [(i.id, i.text, i.reference_duration) for i in items] == [
        ("line_0001", "First line.", None), ("line_0003", "Second line.", None), ("line_0004", "Third.", None)]
    assert [i.id for i in load_items(p, limit=2)] == ["line_0001", "line_0003"]


def test_load_items_from_metadata_uses_reference_durations(tmp_path):
    from audio_tokenizer.audio_io import save_wav

    (tmp_path / "wavs").mkdir()
    save_wav(tmp_path / "wavs" / "a.wav", np.zeros(36000, np.float32), 24000)  # 1.5 s
    save_wav(tmp_path / "wavs" / "b.wav", np.zeros(8000, np.float32), 16000)  # 0.5 s
    (tmp_path / "metadata.csv").write_text("file|text|voice\na|Hello there.|en-us\nb|Bye.|en-gb\nbad line\n"
                                           "missing|No audio.|en-us\n", encoding="utf-8")
    items = load_items(tmp_path / "metadata.csv")
    assert [(i.id, i.text, i.voice) for i in items[:2]] == [("a", "Hello there.", "en-us"), ("b", "Bye.", "en-gb")]
    assert items[0].reference_duration == pytest.approx(1.5)
    assert items[1].reference_duration == pytest.approx(0.5)
    assert "malformed metadata" in items[2].error  # kept, reported as a failed row later
    assert items[3].reference_duration is None and not items[3].error  # falls back to the text estimate
    assert len(load_items(tmp_path, limit=1)) == 1  # the folder works too


@pytest.mark.parametrize("name, content, message", [
    ("missing.txt", None, "does not exist"),
    ("empty.txt", "\n \n", "holds no lines"),
    ("other.csv", "a|b\n", "must be named metadata.csv"),
])
def test_load_items_errors(tmp_path, name, content, message):
    p = tmp_path / name
    if content is not None:
        p.write_text(content, encoding="utf-8")
    with pytest.raises(EvalInputError, match=message):
        load_items(p)
    if content is not None:
        with pytest.raises(EvalInputError, match="--limit"):
            load_items(p, limit=0)


# --- evaluate over a tiny random model -----------------------------------------------------------
FAST = {"method": "fixed_length", "steps": 4}  # one block: nfe = 4 per sample() call


def _mute(model):
    """Rig a tiny model so every position's top audio candidate is end_of_speech: no frame survives."""
    import torch

    from audio_tokenizer import layout as L

    with torch.no_grad():
        c = torch.ones(model.config.hidden_size)
        model.model.embed_tokens.weight[:] = c  # constant residual stream ...
        for layer in model.model.layers:  # ... that no layer changes
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.get_output_embeddings().weight[L.END_OF_SPEECH_ID] = 100 * c
    return model


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory, offline_tokenizer):
    """(model dir, mute model dir, codec dir): tiny, random, saved and loaded by the real loaders."""
    from audio_tokenizer.codec import create_random_codec
    from llada_tts.model import create_model, save_model, tiny_config

    root = tmp_path_factory.mktemp("eval")
    meta = {"llada_tts.json": json.dumps({"voices": ["en-us", "en-gb"], "chars_per_second": 10.0})}
    save_model(create_model(tiny_config(), seed=0), root / "model", tokenizer=offline_tokenizer, extra_files=meta)
    save_model(_mute(create_model(tiny_config(), seed=0)), root / "mute", tokenizer=offline_tokenizer)
    create_random_codec(root / "codec", size="tiny")
    return root / "model", root / "mute", root / "codec"


def _check_rows(rows, texts, overlap_s=0.04):
    """Numbers a row must satisfy whatever the model said."""
    from audio_tokenizer import layout as L

    assert [r["text"] for r in rows] == texts
    for r in rows:
        assert r["ok"] is True and r["error"] == ""
        trimmed = (r["chunks"] - 1) * overlap_s  # crossfades between chunks shorten the join
        assert r["frames"] * L.SAMPLES_PER_FRAME / L.SAMPLE_RATE - trimmed == pytest.approx(r["duration"], abs=1e-6)
        assert r["rtf"] == pytest.approx(r["wall_time"] / r["duration"])
        assert r["duration_ratio"] == pytest.approx(r["duration"] / r["expected_duration"])
        assert r["valid_fraction"] == 1.0 and r["bad_frames"] == 0  # constrained decoding: always valid
        assert r["nfe"] == FAST["steps"] * math.ceil(r["chunks"] / 4)  # chunks go 4 per sample() call


@pytest.mark.slow
def test_evaluate_tiny_model_numbers_are_consistent(tiny_dirs, tmp_path):
    import soundfile as sf

    from llada_tts.evaluation import evaluate
    from llada_tts.synthesis.pipeline import LladaTTS
    from llada_tts.synthesis.text import normalize_text

    model, _, codec = tiny_dirs
    tts = LladaTTS.from_pretrained(str(model), codec=str(codec))
    texts = ["Hello there.", "It costs $5, Alice said."]
    items = load_items_from(texts, tmp_path)
    options = dict(FAST, max_chunk_chars=16)  # the second line becomes several crossfaded chunks
    partial = []  # what an interrupted run would have saved after each line
    report = evaluate(tts, items, voice="en-us", sampler_options=options, audio_dir=tmp_path / "audio",
                      progress=False, on_row=lambda r: partial.append((len(r["rows"]), r["summary"]["complete"])))
    assert partial == [(1, False), (2, True)]
    rows = report["rows"]
    assert [r["chunks"] for r in rows] == [1, 3]  # "It costs five", "dollars,", "Alice said."
    _check_rows(rows, texts)
    for r in rows:  # expected: normalised characters at the checkpoint's 10 chars/s
        assert r["expected_source"] == "text"
        assert r["expected_duration"] == pytest.approx(len(normalize_text(r["text"])) / 10.0)
        assert r["voice"] == "en-us" and r["wer"] is None
        assert sf.info(r["audio"]).frames == round(r["duration"] * 24000)
    s = report["summary"]
    assert (s["lines"], s["ok"], s["failed"]) == (2, 2, 0)
    assert s["total_audio_seconds"] == pytest.approx(sum(r["duration"] for r in rows))
    assert s["rtf"] == pytest.approx(s["total_wall_time"] / s["total_audio_seconds"])
    assert s["mean_nfe"] == pytest.approx(FAST["steps"])
    # the same seed gives the same audio: evaluation is reproducible
    again = evaluate(tts, items[:1], voice="en-us", sampler_options=options, progress=False, warmup=True)
    assert (again["rows"][0]["frames"], again["rows"][0]["duration"]) == (rows[0]["frames"], rows[0]["duration"])


def load_items_from(texts, tmp_path):
    p = tmp_path / "texts.txt"
    p.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return load_items(p)


# --- the llada-tts eval command ------------------------------------------------------------------
def _metadata_folder(root):
    """metadata.csv + two reference WAVs of known length (1.5 s and 0.5 s) + one extra line."""
    from audio_tokenizer.audio_io import save_wav

    (root / "wavs").mkdir(parents=True)
    save_wav(root / "wavs" / "a.wav", np.zeros(36000, np.float32), 24000)
    save_wav(root / "wavs" / "b.wav", np.zeros(12000, np.float32), 24000)
    (root / "metadata.csv").write_text("file|text|voice\na|Hello there.|en-us\nb|Good morning!|en-gb\n"
                                       "c|Not evaluated.|en-us\n", encoding="utf-8")
    return root


def _cli(argv, capsys):
    from llada_tts.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_eval_command_writes_a_consistent_report(tiny_dirs, tmp_path, capsys):
    model, _, codec = tiny_dirs
    meta = _metadata_folder(tmp_path / "corpus")
    out = tmp_path / "report"
    code, stdout, err = _cli(["eval", "--model", str(model), "--codec", str(codec),
                              "--texts", str(meta / "metadata.csv"),
                              "--limit", "2", "--out", str(out), "--save-audio", "--seed", "3", "--device", "cpu",
                              "--method", "fixed_length", "--steps", str(FAST["steps"]), "--no-warmup"], capsys)
    assert code == 0, err
    data = json.loads((out / "report.json").read_text())
    rows = data["rows"]
    assert [r["id"] for r in rows] == ["a", "b"] and [r["voice"] for r in rows] == ["en-us", "en-gb"]
    _check_rows(rows, ["Hello there.", "Good morning!"])
    assert [r["expected_source"] for r in rows] == ["reference", "reference"]
    assert [r["expected_duration"] for r in rows] == pytest.approx([1.5, 0.5])  # the recordings' lengths
    assert all(Path(r["audio"]).parent == out / "audio" and Path(r["audio"]).is_file() for r in rows)
    s = data["summary"]
    assert (s["lines"], s["ok"], s["failed"], s["complete"]) == (2, 2, 0, True)
    assert s["mean_duration_ratio"] == pytest.approx((rows[0]["duration"] / 1.5 + rows[1]["duration"] / 0.5) / 2)
    assert data["config"]["seed"] == 3 and data["config"]["sampler"]["steps"] == FAST["steps"]
    with (out / "report.csv").open(newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["id"] for r in csv_rows] == ["a", "b"]
    assert float(csv_rows[1]["rtf"]) == pytest.approx(rows[1]["rtf"])
    assert "2/2 lines ok" in stdout and f"wrote {out / 'report.json'}" in stdout


@pytest.mark.slow
def test_eval_command_failed_lines_exit_1(tiny_dirs, tmp_path, capsys):
    _, mute, codec = tiny_dirs
    texts = tmp_path / "t.txt"
    texts.write_text("Hello there.\nGood morning!\n", encoding="utf-8")
    out = tmp_path / "report"
    code, stdout, err = _cli(["eval", "--model", str(mute), "--codec", str(codec), "--texts", str(texts), "--out",
                              str(out), "--asr", "none", "-q", "--steps", "4", "--method", "fixed_length"], capsys)
    assert code == 1
    assert "2 of 2 lines failed: line_0001, line_0002" in err
    data = json.loads((out / "report.json").read_text())
    assert [r["ok"] for r in data["rows"]] == [False, False]
    assert all("no valid audio frames" in r["error"] for r in data["rows"])
    s = data["summary"]
    assert (s["failed"], s["failed_ids"], s["rtf"], s["mean_rtf"]) == (2, ["line_0001", "line_0002"], None, None)


@pytest.mark.parametrize("extra, message", [
    (["--texts", "missing.txt"], "does not exist"),
    (["--texts", "T", "--asr", "sphinx"], "unknown ASR 'sphinx'; choose one of: auto, whisper"),
    (["--texts", "T", "--asr", "faster-whisper:/no/such/dir"], "is not a folder"),
    (["--texts", "T", "--out", "T"], "is a file"),
])
def test_eval_command_bad_input_exits_2_before_loading(tmp_path, capsys, extra, message):
    texts = tmp_path / "t.txt"
    texts.write_text("Hello.\n", encoding="utf-8")
    argv = ["eval", "--model", str(tmp_path / "no-model")] + [str(texts) if a == "T" else a for a in extra]
    code, _, err = _cli(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and message in err  # one line, no traceback


@pytest.mark.slow
def test_eval_command_unknown_voice_exits_2(tiny_dirs, tmp_path, capsys):
    model, _, codec = tiny_dirs
    texts = tmp_path / "t.txt"
    texts.write_text("Hello.\n", encoding="utf-8")
    code, _, err = _cli(["eval", "--model", str(model), "--codec", str(codec), "--texts", str(texts),
                         "--out", str(tmp_path / "r"), "--voice", "nobody"], capsys)
    assert code == 2 and "unknown voice(s) 'nobody'; this checkpoint has: en-us, en-gb" in err
