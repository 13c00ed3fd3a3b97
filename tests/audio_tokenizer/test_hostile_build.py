"""Hostile inputs to `python -m audio_tokenizer build` (issue 14): each case gets one line and the right
exit code, or a reported skip, and never a stale, escaped or silently duplicated training row."""
from __future__ import annotations

import csv
import json
import os
import shutil

import datasets
import numpy as np
import pytest
from synthesis_fixtures import tiny_codec_dir, tiny_model_dir  # noqa: F401  (fixtures, for `say`)

from audio_tokenizer import audio_io
from audio_tokenizer.__main__ import main
from audio_tokenizer.build import BuildConfig, build
from audio_tokenizer.codec import SnacCodec, create_random_codec
from audio_tokenizer.corpus import make_corpus

SR = 24000


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("codec") / "tiny"
    create_random_codec(d, size="tiny", seed=0)
    return d


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """3 eSpeak utterances (utt_00000..2), made once; tests copy it before changing anything."""
    return make_corpus(tmp_path_factory.mktemp("spoken") / "c", 3, voices=("en-us",), seed=0, progress=False)


@pytest.fixture
def corpus(tmp_path, spoken):
    """A private copy of the spoken corpus: (folder, its metadata lines without the header)."""
    d = tmp_path / "corpus"
    shutil.copytree(spoken, d)
    return d


def _write_meta(folder, lines, header="file|text|voice"):
    (folder / "metadata.csv").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")


def _cfg(corpus, out, tok, codec, **kw) -> BuildConfig:
    return BuildConfig(input=str(corpus), output=str(out), tokenizer=str(tok), codec=str(codec), **kw)


def _skipped(out) -> dict[str, str]:
    with open(out / "skipped.csv", newline="", encoding="utf-8") as f:
        return {src: why for src, why in list(csv.reader(f))[1:]}


def _cli(capsys, corpus, out, tok, codec, *extra):
    code = main(["build", "--input", str(corpus), "--output", str(out), "--tokenizer", str(tok),
                 "--codec", str(codec), "--quiet", *extra])
    o, e = capsys.readouterr()
    return code, o, [ln for ln in e.splitlines() if ln.strip()]


# item 3: long audio is filtered on its header, never decoded
def test_long_audio_is_skipped_from_its_header_without_being_decoded(
        tmp_path, corpus, offline_tokenizer_dir, codec_dir, monkeypatch):
    rng = np.random.default_rng(0)
    long_wave = (0.1 * rng.standard_normal(SR * 90)).astype(np.float32)  # 90 s
    audio_io.save_wav(corpus / "wavs" / "long.wav", long_wave, SR)
    _write_meta(corpus, ["utt_00000|Short and kept.|en-us", "long|Ninety seconds of noise.|en-us"])
    decoded = []
    real_load = audio_io.load_audio
    monkeypatch.setattr(audio_io, "load_audio", lambda p, **kw: decoded.append(os.path.basename(p)) or
                        real_load(p, **kw))
    out = tmp_path / "out"
    info = build(_cfg(corpus, out, offline_tokenizer_dir, codec_dir, max_duration=30.0), progress=False)
    assert decoded == ["utt_00000.wav"]  # the 90 s file was never read past its header
    assert _skipped(out) == {"long": "too long: 90.00 s > 30 s"}
    assert info["counts"]["rows"] == 1
    # the same holds for a Hugging Face dataset whose audio is raw bytes
    hf = datasets.Dataset.from_dict({"audio": [{"bytes": (corpus / "wavs" / "long.wav").read_bytes(),
                                                "path": "long.wav"}],
                                     "text": ["Ninety seconds."]})
    hf.save_to_disk(str(tmp_path / "hf"))
    decoded.clear()
    build(_cfg(tmp_path / "hf", tmp_path / "out_hf", offline_tokenizer_dir, codec_dir, max_duration=30.0),
          progress=False)
    assert decoded == [] and _skipped(tmp_path / "out_hf") == {"row:0": "too long: 90.00 s > 30 s"}


# item 4: a shard's fingerprint covers its inputs
def test_edited_transcript_or_replaced_wav_rebuilds_only_its_shard(
        tmp_path, corpus, offline_tokenizer_dir, codec_dir, capsys):
    lines = (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:]
    out = tmp_path / "out"
    cfg = _cfg(corpus, out, offline_tokenizer_dir, codec_dir, shard_size=1)
    assert build(cfg, progress=False)["shards"]["built"] == 3
    old = datasets.load_from_disk(str(out))
    # edit the transcript of utterance 1, replace the wav of utterance 2 by utterance 0's audio
    lines[1] = lines[1].replace(lines[1].split("|")[1], "An edited transcript.")
    _write_meta(corpus, lines)
    shutil.copy(corpus / "wavs" / "utt_00000.wav", corpus / "wavs" / "utt_00002.wav")
    code, stdout, err = _cli(capsys, corpus, out, offline_tokenizer_dir, codec_dir, "--shard-size", "1")
    assert code == 0, err
    assert "shards built 2 (2 because their inputs changed), reused 1" in stdout
    new = datasets.load_from_disk(str(out))
    assert new["text"] == [old["text"][0], "An edited transcript.", old["text"][2]]
    assert new["input_ids"][0] == old["input_ids"][0]
    codec = SnacCodec.from_pretrained(str(codec_dir), device="cpu")
    want = codec.encode_tokens(audio_io.load_audio(corpus / "wavs" / "utt_00000.wav", target_sr=SR), SR).tolist()
    row = new[2]
    assert row["input_ids"][row["prompt_lengths"]:-2] == want  # the replacement audio, not the old codes
    assert row["duration"] == pytest.approx(new[0]["duration"])
    # unchanged inputs: everything reused
    assert build(cfg, progress=False)["shards"] == {"built": 0, "reused": 3, "stale": 0}


def test_a_shard_from_before_fingerprints_is_rebuilt(tmp_path, corpus, offline_tokenizer_dir, codec_dir):
    out = tmp_path / "out"
    cfg = _cfg(corpus, out, offline_tokenizer_dir, codec_dir, shard_size=2)
    build(cfg, progress=False)
    (out / ".shards" / "00000" / "inputs.sha256").unlink(missing_ok=True)  # as written by an older build
    info = build(cfg, progress=False)
    assert (info["shards"]["built"], info["shards"]["reused"], info["shards"].get("stale")) == (1, 1, 1)


# item 7: metadata paths must stay inside the input folder
def test_paths_outside_the_input_folder_are_refused_unless_allowed(
        tmp_path, corpus, offline_tokenizer_dir, codec_dir, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(corpus / "wavs" / "utt_00001.wav", outside / "x.wav")
    (corpus / "wavs" / "link.wav").symlink_to(outside / "x.wav")
    _write_meta(corpus, ["utt_00000|Inside.|en-us", "../outside/x.wav|Dot dot.|en-us",
                         f"{outside / 'x.wav'}|Absolute.|en-us", "link|A symlink out.|en-us"])
    code, stdout, err = _cli(capsys, corpus, tmp_path / "o1", offline_tokenizer_dir, codec_dir)
    assert code == 0, err
    assert stdout.startswith("1 rows from 4 utterances") and "outside input folder: 3" in stdout
    assert datasets.load_from_disk(str(tmp_path / "o1"))["source"] == ["utt_00000"]
    skipped = _skipped(tmp_path / "o1")
    assert sorted(skipped) == sorted(["../outside/x.wav", str(outside / "x.wav"), "link"])
    for why in skipped.values():
        assert why.startswith("outside input folder:") and why.endswith("(pass --allow-outside-paths)")
        assert str((outside / "x.wav").resolve()) in why
    code, stdout, err = _cli(capsys, corpus, tmp_path / "o2", offline_tokenizer_dir, codec_dir,
                             "--allow-outside-paths")
    assert code == 0, err
    assert datasets.load_from_disk(str(tmp_path / "o2"))["text"] == ["Inside.", "Dot dot.", "Absolute.",
                                                                     "A symlink out."]


def test_only_outside_paths_exit_1_naming_the_flag(tmp_path, corpus, offline_tokenizer_dir, codec_dir, capsys):
    _write_meta(corpus, ["/etc/hostname|Secrets.|en-us"])
    code, _, err = _cli(capsys, corpus, tmp_path / "o", offline_tokenizer_dir, codec_dir)
    assert code == 1 and err == [f"error: no usable rows; see {tmp_path / 'o'}/skipped.csv"]
    assert _skipped(tmp_path / "o")["/etc/hostname"].startswith("outside input folder: /etc/hostname resolves to")


# item 10: a metadata.csv that is not UTF-8
def test_non_utf8_metadata_is_one_line_naming_file_and_line_exit_2(
        tmp_path, corpus, offline_tokenizer_dir, codec_dir, capsys):
    (corpus / "metadata.csv").write_bytes(
        b"file|text|voice\nutt_00000|Fine.|en-us\n\nutt_00001|Caf\xe9 au lait.|en-us\n")  # Latin-1 on line 4
    code, stdout, err = _cli(capsys, corpus, tmp_path / "o", offline_tokenizer_dir, codec_dir)
    assert (code, stdout) == (2, "")
    assert err == [f"error: {corpus / 'metadata.csv'} line 4 is not UTF-8 (byte 0xe9); save metadata.csv as UTF-8"]
    assert not (tmp_path / "o").exists()


def test_line_numbers_count_blank_lines(tmp_path, corpus, offline_tokenizer_dir, codec_dir):
    (corpus / "metadata.csv").write_text("file|text|voice\n\nutt_00000|Fine.|en-us\n\nutt_00001|a|b|c\n",
                                         encoding="utf-8")
    build(_cfg(corpus, tmp_path / "o", offline_tokenizer_dir, codec_dir), progress=False)
    assert _skipped(tmp_path / "o") == {"metadata.csv:5": "malformed metadata: line 5 has 4 fields, expected 3"}


# item 14: duplicate ids, zero-width text
def test_duplicate_ids_warn_and_are_reported(tmp_path, corpus, offline_tokenizer_dir, codec_dir, capsys):
    _write_meta(corpus, ["utt_00000|First.|en-us", "utt_00001|Other.|en-us", "utt_00000|Again.|en-us"])
    out = tmp_path / "o"
    code, stdout, err = _cli(capsys, corpus, out, offline_tokenizer_dir, codec_dir)
    assert code == 0
    assert err == [f"warning: 1 duplicate utterance id(s) (utt_00000); kept the first of each, see {out}/skipped.csv"]
    assert "duplicate id: 1" in stdout
    assert datasets.load_from_disk(str(out))["text"] == ["First.", "Other."]
    assert _skipped(out) == {"utt_00000": "duplicate id: utt_00000 already on metadata.csv line 2"}
    assert json.loads((out / "build_info.json").read_text())["duplicate_ids"] == ["utt_00000"]


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200b \u2060", "\ufeff\u200d\u200c", " \u200b\t"])
def test_zero_width_text_is_empty_for_the_build(tmp_path, corpus, offline_tokenizer_dir, codec_dir, text):
    _write_meta(corpus, ["utt_00000|Kept.|en-us", f"utt_00001|{text}|en-us"])
    build(_cfg(corpus, tmp_path / "o", offline_tokenizer_dir, codec_dir), progress=False)
    assert _skipped(tmp_path / "o") == {"utt_00001": "empty text"}
    assert datasets.load_from_disk(str(tmp_path / "o"))["text"] == ["Kept."]


def test_zero_width_spaces_are_dropped_from_kept_text(tmp_path, corpus, offline_tokenizer_dir, codec_dir):
    _write_meta(corpus, ["utt_00000|Zero\u200bwidth\ufeff here.|en-us"])
    build(_cfg(corpus, tmp_path / "o", offline_tokenizer_dir, codec_dir), progress=False)
    assert datasets.load_from_disk(str(tmp_path / "o"))["text"] == ["Zerowidth here."]


def test_zero_width_text_is_empty_for_say(tmp_path, capsys, tiny_model_dir, tiny_codec_dir):
    from llada_tts.cli import main as llada_main
    from llada_tts.synthesis.text import normalize_text

    assert normalize_text("\u200b\u200b \u2060") == "" and normalize_text("a\u200bb") == "ab"
    assert normalize_text("\u200dx\u200d") == "\u200dx\u200d"  # joiners inside real text are kept
    code = llada_main(["say", "\u200b\u200b", "-o", str(tmp_path / "o.wav"), "--model", str(tiny_model_dir),
                       "--codec", str(tiny_codec_dir), "--device", "cpu"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and err[-1] == "llada-tts say: error: text is empty: nothing to say"
    assert not (tmp_path / "o.wav").exists()


# a stray WORLD_SIZE (exported by cluster job environments) must not make a plain build wait for a group
def test_stray_world_size_is_one_line_not_a_hang(tmp_path, corpus, offline_tokenizer_dir, codec_dir, capsys,
                                                 monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    for k in ("LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    code, _, err = _cli(capsys, corpus, tmp_path / "o", offline_tokenizer_dir, codec_dir)
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: WORLD_SIZE is 4 but LOCAL_RANK, MASTER_ADDR, MASTER_PORT is not set")

