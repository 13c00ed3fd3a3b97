"""Dataset tokenisation: exact Orpheus rows from real eSpeak speech and a tiny random SNAC codec."""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys

import datasets
import numpy as np
import pytest
import soundfile as sf

from audio_tokenizer import audio_io, espeak
from audio_tokenizer import layout as L
from audio_tokenizer.__main__ import main
from audio_tokenizer.build import BuildConfig, build, drop_repeated_frames, make_row
from audio_tokenizer.codec import SnacCodec, create_random_codec
from audio_tokenizer.corpus import InputError, make_corpus

N_GOOD = 6
BAD = {  # source -> expected start of its skip reason
    "corrupt": "bad audio:", "empty": "bad audio:", "missing": "missing audio:", "blank": "empty text",
}
COLUMNS = {"input_ids", "attention_mask", "prompt_lengths", "data_type", "text", "voice", "duration", "source"}


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("codec") / "tiny"
    create_random_codec(d, size="tiny", seed=0)
    return d


@pytest.fixture(scope="module")
def codec(codec_dir):
    return SnacCodec.from_pretrained(str(codec_dir), device="cpu")


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """6 spoken utterances + a corrupt wav, an empty file, a missing file and an empty transcript."""
    d = make_corpus(tmp_path_factory.mktemp("corpus") / "c", N_GOOD, voices=("en-us", "en-gb+f3"), seed=0,
                    progress=False)
    (d / "wavs" / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + bytes(range(200)))
    (d / "wavs" / "empty.wav").write_bytes(b"")
    shutil.copy(d / "wavs" / "utt_00001.wav", d / "wavs" / "blank.wav")
    with open(d / "metadata.csv", "a", encoding="utf-8") as f:
        f.write("corrupt|This file is broken.|en-us\nempty|This file is empty.|en-us\n"
                "missing|This file does not exist.|en-us\nblank|   |en-gb+f3\n")
    return d


def _cfg(tmp_path, corpus_dir, tok_dir, codec_dir, **kw) -> BuildConfig:
    return BuildConfig(input=str(corpus_dir), output=str(tmp_path), tokenizer=str(tok_dir),
                       codec=str(codec_dir), **{"shard_size": 4, **kw})


@pytest.fixture(scope="module")
def built(tmp_path_factory, corpus_dir, offline_tokenizer_dir, codec_dir):
    out = tmp_path_factory.mktemp("built")
    info = build(_cfg(out, corpus_dir, offline_tokenizer_dir, codec_dir), progress=False)
    return out, info, datasets.load_from_disk(str(out))


def _metadata(corpus_dir) -> dict[str, tuple[str, str]]:
    lines = (corpus_dir / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:]
    return {f: (t, v) for f, t, v in (ln.split("|") for ln in lines)}


def _check_row(row, text: str, voice: str | None, n_samples: int):
    """Exact Orpheus layout, with the prompt written out byte by byte (offline tokenizer = bytes)."""
    prompt_text = f"{voice}: {text}" if voice else text
    prefix = [128259, 128000, *prompt_text.encode("utf-8"), 128009, 128260, 128261, 128257]
    ids = row["input_ids"]
    assert ids[: len(prefix)] == prefix
    assert row["prompt_lengths"] == len(prefix) and ids[row["prompt_lengths"] - 1] == L.START_OF_SPEECH_ID
    assert ids[-2:] == [128258, 128262]
    audio = np.asarray(ids[len(prefix) : -2]).reshape(-1, 7)  # [frames, 7]
    assert audio.shape[0] == math.ceil(n_samples / 2048)
    for slot in range(7):
        lo, hi = L.slot_band(slot)
        assert ((audio[:, slot] >= lo) & (audio[:, slot] < hi)).all(), slot
    assert row["attention_mask"] == [1] * len(ids)
    assert row["data_type"] == "tts"
    assert row["duration"] == pytest.approx(n_samples / 24000, abs=1e-4)


def test_rows_have_the_exact_orpheus_layout(built, corpus_dir):
    out, info, ds = built
    assert set(ds.column_names) == COLUMNS and len(ds) == N_GOOD
    meta = _metadata(corpus_dir)
    assert ds["source"] == [f"utt_{i:05d}" for i in range(N_GOOD)]
    for row in ds:
        text, voice = meta[row["source"]]
        assert (row["text"], row["voice"]) == (text, voice)
        _check_row(row, text, voice, sf.info(corpus_dir / "wavs" / f"{row['source']}.wav").frames)


def test_audio_ids_are_the_codec_tokens(built, corpus_dir, codec):
    _, _, ds = built
    row = ds[0]
    wave = audio_io.load_audio(corpus_dir / "wavs" / f"{row['source']}.wav", target_sr=24000)
    want = codec.encode_tokens(wave, 24000).tolist()
    assert row["input_ids"][row["prompt_lengths"] : -2] == want


def test_bad_inputs_are_listed_with_reasons(built):
    out, info, _ = built
    with open(out / "skipped.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["source", "reason"]
    got = {src: why for src, why in rows[1:]}
    assert sorted(got) == sorted(BAD)
    for src, start in BAD.items():
        assert got[src].startswith(start), (src, got[src])
    counts = info["counts"]
    assert counts == {"utterances": N_GOOD + 4, "rows": N_GOOD, "skipped": 4,
                      "skipped_by_reason": {"empty text": 1, "bad audio": 2, "missing audio": 1}}
    on_disk = json.loads((out / "build_info.json").read_text())
    assert on_disk["counts"] == counts and on_disk["shards"] == {"built": 3, "reused": 0, "stale": 0}
    assert on_disk["durations"]["total_audio_seconds"] == pytest.approx(sum(built[2]["duration"]), abs=1e-2)


def test_resume_reuses_finished_shards(tmp_path, built, corpus_dir, offline_tokenizer_dir, codec_dir):
    first_out, _, first = built
    out = tmp_path / "out"
    shutil.copytree(first_out, out)  # as if a run had finished shards 0 and 1, then died
    shutil.rmtree(out / ".shards" / "00002")
    for p in [*out.glob("data-*.arrow"), out / "state.json", out / "build_info.json"]:
        p.unlink()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob(".shards/0000[01]/rows.parquet")}
    info = build(_cfg(out, corpus_dir, offline_tokenizer_dir, codec_dir), progress=False)
    assert info["shards"] == {"built": 1, "reused": 2, "stale": 0}
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # not rewritten
    again = datasets.load_from_disk(str(out))
    assert again["input_ids"] == first["input_ids"] and again["source"] == first["source"]
    with pytest.raises(InputError, match="other settings .*max_length"):
        build(_cfg(out, corpus_dir, offline_tokenizer_dir, codec_dir, max_length=100), progress=False)


def test_duration_and_length_filters(tmp_path, built, corpus_dir, offline_tokenizer_dir, codec_dir):
    _, _, ds = built
    dur = dict(zip(ds["source"], ds["duration"]))
    length = {s: len(x) for s, x in zip(ds["source"], ds["input_ids"])}
    by_dur = sorted(dur, key=dur.get)
    lo = (dur[by_dur[0]] + dur[by_dur[1]]) / 2  # drops the shortest
    hi = (dur[by_dur[-1]] + dur[by_dur[-2]]) / 2  # drops the longest
    kept = by_dur[1:-1]
    by_len = sorted(kept, key=length.get)
    max_len = length[by_len[-1]] - 1  # drops the longest row of what is left
    info = build(_cfg(tmp_path, corpus_dir, offline_tokenizer_dir, codec_dir, min_duration=lo, max_duration=hi,
                      max_length=max_len, shard_size=100), progress=False)
    assert info["counts"]["skipped_by_reason"] == {
        "too short": 1, "too long": 1, "row too long": 1, "empty text": 1, "bad audio": 2, "missing audio": 1}
    assert datasets.load_from_disk(str(tmp_path))["source"] == [s for s in ds["source"] if s in by_len[:-1]]


def test_header_filter_keeps_the_same_rows_at_the_limits(tmp_path, offline_tokenizer_dir, codec_dir):
    """A file just inside max_duration by its header is decoded and kept exactly as before."""
    corpus = tmp_path / "c"
    (corpus / "wavs").mkdir(parents=True)
    audio_io.save_wav(corpus / "wavs" / "edge.wav", 0.1 * np.sin(np.arange(48000) / 7).astype(np.float32), 24000)
    (corpus / "metadata.csv").write_text("edge|Exactly two seconds.\n", encoding="utf-8")
    info = build(_cfg(tmp_path / "o", corpus, offline_tokenizer_dir, codec_dir, max_duration=2.0, min_duration=2.0),
                 progress=False)
    assert info["counts"]["rows"] == 1
    assert datasets.load_from_disk(str(tmp_path / "o"))["duration"] == [pytest.approx(2.0)]


def test_hugging_face_input_with_files_and_arrays(tmp_path, built, corpus_dir, offline_tokenizer_dir, codec_dir):
    _, _, ds = built
    meta = _metadata(corpus_dir)
    src = ds["source"][:2]
    files = datasets.Dataset.from_dict({
        "audio": [str(corpus_dir / "wavs" / f"{s}.wav") for s in src], "sentence": [meta[s][0] for s in src],
    }).cast_column("audio", datasets.Audio())
    files.save_to_disk(str(tmp_path / "hf_files"))
    cfg = _cfg(tmp_path / "o1", tmp_path / "hf_files", offline_tokenizer_dir, codec_dir, text_column="sentence",
               voice="tara")
    assert build(cfg, progress=False)["counts"]["rows"] == 2
    rows = datasets.load_from_disk(str(tmp_path / "o1"))
    for i, row in enumerate(rows):
        assert row["source"] == f"row:{i}"
        _check_row(row, meta[src[i]][0], "tara", sf.info(corpus_dir / "wavs" / f"{src[i]}.wav").frames)
        assert row["input_ids"][row["prompt_lengths"] :] == ds[i]["input_ids"][ds[i]["prompt_lengths"] :]
    wave, sr = espeak.synthesize("Arrays work too.")  # 22050 Hz: resampled on the way in
    arrays = datasets.DatasetDict({"dev": datasets.Dataset.from_dict(
        {"audio": [{"array": wave.tolist(), "sampling_rate": sr}], "text": ["Arrays work too."]})})
    arrays.save_to_disk(str(tmp_path / "hf_arrays"))
    cfg = _cfg(tmp_path / "o2", tmp_path / "hf_arrays", offline_tokenizer_dir, codec_dir, split="dev")
    build(cfg, progress=False)
    row = datasets.load_from_disk(str(tmp_path / "o2"))[0]
    _check_row(row, "Arrays work too.", None, len(audio_io.resample(wave, sr, 24000)))


def test_cli_exit_codes(tmp_path, capsys, corpus_dir, offline_tokenizer_dir, codec_dir):
    common = ["--tokenizer", str(offline_tokenizer_dir), "--codec", str(codec_dir), "--quiet"]
    assert main(["build", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o"), *common]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty_dir").mkdir()
    assert main(["build", "--input", str(tmp_path / "empty_dir"), "--output", str(tmp_path / "o"), *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no metadata.csv" in err[0]
    datasets.Dataset.from_dict({"audio": ["x.wav"], "words": ["hi"]}).save_to_disk(str(tmp_path / "hf"))
    assert main(["build", "--input", str(tmp_path / "hf"), "--output", str(tmp_path / "o"), *common]) == 2
    assert "no column 'text'" in capsys.readouterr().err
    only_bad = tmp_path / "only_bad"
    (only_bad / "wavs").mkdir(parents=True)
    shutil.copy(corpus_dir / "wavs" / "corrupt.wav", only_bad / "wavs" / "corrupt.wav")
    (only_bad / "metadata.csv").write_text("corrupt|Broken.\n", encoding="utf-8")
    assert main(["build", "--input", str(only_bad), "--output", str(tmp_path / "o3"), *common]) == 1
    one = tmp_path / "one"
    (one / "wavs").mkdir(parents=True)
    shutil.copy(corpus_dir / "wavs" / "utt_00000.wav", one / "wavs" / "utt_00000.wav")
    (one / "metadata.csv").write_text("utt_00000|Hello.\n", encoding="utf-8")
    assert main(["build", "--input", str(one), "--output", str(one), *common]) == 2
    assert "is the input folder" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("keep me")
    assert main(["build", "--input", str(one), "--output", str(tmp_path / "foreign"), *common]) == 2
    assert "not empty" in capsys.readouterr().err and (tmp_path / "foreign" / "notes.txt").exists()
    proc = subprocess.run([sys.executable, "-m", "audio_tokenizer", "build", "--input", str(one), "--output",
                           str(tmp_path / "o4"), *common], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("1 rows from 1 utterances")
    assert len(datasets.load_from_disk(str(tmp_path / "o4"))) == 1


def test_drop_repeated_frames_and_make_row(offline_tokenizer):
    f = [L.AUDIO_OFFSET + s * 4096 for s in range(7)]  # one frame of code 0
    g = [x + 1 for x in f]  # a frame with different codes
    same_l0 = [f[0], *g[1:]]  # L0 repeats f's, the rest differ
    assert drop_repeated_frames([*f, *same_l0, *g, *g, *f]) == [*f, *g, *f]
    assert drop_repeated_frames([]) == []
    with pytest.raises(ValueError):
        drop_repeated_frames(f[:6])
    ids, plen = make_row(offline_tokenizer, "Hi", "tara", f)
    assert ids == [128259, 128000, *b"tara: Hi", 128009, 128260, 128261, 128257, *f, 128258, 128262]
    assert plen == 14
    assert make_row(offline_tokenizer, "Hi", None, [])[0] == [128259, 128000, *b"Hi", 128009, 128260, 128261,
                                                              128257, 128258, 128262]


def test_two_process_build_equals_one_process_build_and_resumes_the_same(
        tmp_path, capsys, built, corpus_dir, offline_tokenizer_dir, codec_dir):
    one_out, one_info, one = built
    out = tmp_path / "two"
    info = build(_cfg(out, corpus_dir, offline_tokenizer_dir, codec_dir), progress=False, num_processes=2)
    assert info["processes"] == 2 and info["shards"] == {"built": 3, "reused": 0, "stale": 0}
    assert info["counts"] == one_info["counts"]
    assert datasets.load_from_disk(str(out)).to_dict() == one.to_dict()  # every column of every row
    assert (out / "skipped.csv").read_bytes() == (one_out / "skipped.csv").read_bytes()
    # resume: two of three shards lost, rebuilt by the two processes through the CLI flag
    for i in ("00000", "00002"):
        shutil.rmtree(out / ".shards" / i)
    common = ["--tokenizer", str(offline_tokenizer_dir), "--codec", str(codec_dir), "--quiet", "--shard-size", "4"]
    assert main(["build", "--input", str(corpus_dir), "--output", str(out), "--num-processes", "2", *common]) == 0
    assert "shards built 2, reused 1" in capsys.readouterr().out
    assert datasets.load_from_disk(str(out)).to_dict() == one.to_dict()
    assert main(["build", "--input", str(corpus_dir), "--output", str(out), "--num-processes", "0", *common]) == 2
    assert "--num-processes must be >= 1" in capsys.readouterr().err


def test_accelerate_launch_build_equals_one_process_build(tmp_path, built, corpus_dir, offline_tokenizer_dir,
                                                          codec_dir):
    """Two processes under `accelerate launch` (gloo on CPU): shard i on process i % 2, one publish."""
    one_out, one_info, one = built
    out = tmp_path / "acc"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           "-m", "audio_tokenizer", "build", "--input", str(corpus_dir), "--output", str(out), "--tokenizer",
           str(offline_tokenizer_dir), "--codec", str(codec_dir), "--shard-size", "4", "--quiet"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("rows from") == 1  # only the main process publishes and reports
    info = json.loads((out / "build_info.json").read_text())
    assert info["processes"] == 2 and info["counts"] == one_info["counts"]
    assert datasets.load_from_disk(str(out)).to_dict() == one.to_dict()
    assert (out / "skipped.csv").read_bytes() == (one_out / "skipped.csv").read_bytes()
