"""The phoneme front end: eSpeak NG IPA prompts in build, checkpoint metadata, prompts and synthesis."""
from __future__ import annotations

import json
import shutil
import threading

import datasets
import pytest
from synthesis_fixtures import FAST, tiny_codec_dir, tiny_model_dir  # noqa: F401  (fixtures)

from audio_tokenizer import layout as L
from audio_tokenizer.__main__ import main
from audio_tokenizer.build import BuildConfig, build
from audio_tokenizer.corpus import InputError, make_corpus
from audio_tokenizer.espeak import FRONT_ENDS, apply_front_end, phonemize
from llada_tts.checkpoint_meta import (
    META_FILE,
    CheckpointMeta,
    dataset_front_end,
    meta_from_columns,
    read_meta,
)
from llada_tts.prompts import tts_prompt, tts_row

HUMAN = [128259, 128000]  # start_of_human, BOS
TAIL = [128009, 128260, 128261, 128257]  # end_of_text, end_of_human, start_of_ai, start_of_speech


# --- phonemize / apply_front_end -------------------------------------------------------------------

def test_phonemize_gives_espeak_ipa_with_stress():
    assert phonemize("hello") == "həlˈoʊ"
    assert phonemize("Hello world") == "həlˈoʊ wˈɜːld"
    assert phonemize("Hello, world.") == "həlˈoʊ, wˈɜːld."  # clause punctuation kept


def test_phonemize_reads_numbers_and_keeps_each_clause_mark():
    assert phonemize("I have 42 apples.") == "aɪ hæv fˈɔːɹɾi tˈuː ˈæpəlz."
    assert phonemize("Oh! I? No.") == "ˈoʊ! ˈaɪ? nˈoʊ."
    assert phonemize("It costs 3,000 dollars; 3.5 each") == ("ɪt kˈɔsts θɹˈiː θˈaʊzənd dˈɑːlɚz; "
                                                            "θɹˈiː pɔɪnt fˈaɪv ˈiːtʃ")
    assert phonemize("ok\n\nnew para") == "ˌoʊkˈeɪ nˈuː pˈæɹə"  # a break without a mark: a space


def test_phonemize_empty_and_punctuation_only():
    assert phonemize("") == "" and phonemize("  \n ") == "" and phonemize("...") == ""
    with pytest.raises(TypeError):
        phonemize(None)


def test_phonemize_is_deterministic_in_any_order_and_thread():
    texts = ["The quick brown fox jumps over the lazy dog, twice.", "Is it 1999? No!", "hello"]
    first = [phonemize(t) for t in texts]
    assert [phonemize(t) for t in reversed(texts)][::-1] == first
    got: dict[int, list[str]] = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, [phonemize(t) for t in texts * 5]))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(v == first * 5 for v in got.values()) and len(got) == 4


def test_apply_front_end():
    assert FRONT_ENDS == ("text", "espeak-ipa", "espeak-frames", "espeak-quarters")
    assert apply_front_end("Hello, world.", "text") == "Hello, world."
    assert apply_front_end("Hello, world.", "espeak-ipa") == "həlˈoʊ, wˈɜːld."
    with pytest.raises(ValueError, match="unknown front end 'arpabet'; choose one of text, espeak-ipa, "
                                         "espeak-frames, espeak-quarters"):
        apply_front_end("hello", "arpabet")


def test_the_ipa_front_end_reads_numbers_as_synthesis_does():
    """normalize_text first (synthesis normalises every request): "$12.50" is twelve dollars and fifty
    cents, not eSpeak's own "dollar twelve point five zero"; already-normalised text is unchanged."""
    assert phonemize("I paid $12.50.") == "aɪ pˈeɪd dˈɑːlɚ twˈɛlv pɔɪnt fˈaɪv zˈiəɹoʊ."
    spoken = "aɪ pˈeɪd twˈɛlv dˈɑːlɚz ænd fˈɪfti sˈɛnts."
    assert apply_front_end("I paid $12.50.", "espeak-ipa") == spoken
    assert apply_front_end("I paid twelve dollars and fifty cents.", "espeak-ipa") == spoken


# --- prompts ---------------------------------------------------------------------------------------

def test_prompts_convert_the_text_never_the_voice(offline_tokenizer):
    tok = offline_tokenizer  # byte-level: the prompt is its text, byte by byte
    ipa = [*HUMAN, *"tara: həlˈoʊ.".encode(), *TAIL]
    assert tts_prompt(tok, "Hello.", "tara", front_end="espeak-ipa") == ipa
    assert tts_prompt(tok, "Hello.", "tara") == [*HUMAN, *b"tara: Hello.", *TAIL]
    assert tts_prompt(tok, "Hello.", "tara", front_end="text") == tts_prompt(tok, "Hello.", "tara")
    ids, n = tts_row(tok, "Hello.", [128266] * 7, "tara", front_end="espeak-ipa")
    assert (ids[:n], n) == (ipa, len(ipa))


# --- checkpoint metadata ---------------------------------------------------------------------------

def test_checkpoint_meta_records_and_validates_front_end(tmp_path):
    meta = CheckpointMeta(voices=["a"], chars_per_second=12.0, front_end="espeak-ipa")
    assert json.loads(meta.to_json())["front_end"] == "espeak-ipa"
    (tmp_path / META_FILE).write_text(meta.to_json())
    assert read_meta(tmp_path) == meta
    (tmp_path / META_FILE).write_text(json.dumps({"voices": ["a"], "format_version": 1}))  # an older file
    assert read_meta(tmp_path).front_end == "text"
    assert read_meta(tmp_path / "none").front_end == "text"
    for bad in ("arpabet", None, ["text"]):
        (tmp_path / META_FILE).write_text(json.dumps({"front_end": bad}))
        with pytest.raises(ValueError, match="'front_end' must be one of text, espeak-ipa"):
            read_meta(tmp_path)
    with_sampler = CheckpointMeta(voices=["a"], sampler={"tokens_per_step": 7})
    (tmp_path / META_FILE).write_text(with_sampler.to_json())
    assert read_meta(tmp_path) == with_sampler and read_meta(tmp_path).sampler == {"tokens_per_step": 7}
    (tmp_path / META_FILE).write_text(json.dumps({"sampler": [7]}))
    with pytest.raises(ValueError, match="'sampler' must be an object"):
        read_meta(tmp_path)


def test_dataset_front_end_reads_build_info(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    assert dataset_front_end(ds) == "text" and dataset_front_end(None) == "text"
    (ds / "build_info.json").write_text(json.dumps({"codec": "x"}))  # a build from before the option
    assert dataset_front_end(ds) == "text"
    (ds / "build_info.json").write_text(json.dumps({"codec": "x", "front_end": "espeak-ipa"}))
    assert dataset_front_end(ds) == "espeak-ipa"
    (ds / "build_info.json").write_text(json.dumps({"front_end": "arpabet"}))
    with pytest.raises(ValueError, match="unknown front_end 'arpabet'"):
        dataset_front_end(ds)
    meta = meta_from_columns({"text": ["abcd"], "duration": [1.0]}, front_end="espeak-ipa")
    assert (meta.front_end, meta.chars_per_second) == ("espeak-ipa", 4.0)  # rate counts transcript chars


# --- build ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ipa_corpus(tmp_path_factory):
    """2 spoken utterances + one with an amount + one that is only punctuation (same audio)."""
    d = make_corpus(tmp_path_factory.mktemp("corpus") / "c", 2, voices=("en-us",), seed=0, progress=False)
    for name in ("nums", "dots"):
        shutil.copy(d / "wavs" / "utt_00000.wav", d / "wavs" / f"{name}.wav")
    with open(d / "metadata.csv", "a", encoding="utf-8") as f:
        f.write("nums|I paid $12.50.|en-us\ndots|...|en-us\n")
    return d


def _build_args(corpus, out, tok_dir, codec_dir, *extra):
    return ["build", "--input", str(corpus), "--output", str(out), "--tokenizer", str(tok_dir),
            "--codec", str(codec_dir), "--shard-size", "2", "--quiet", *extra]


def test_build_writes_phoneme_prompts_and_records_the_front_end(tmp_path, ipa_corpus, offline_tokenizer_dir,
                                                               tiny_codec_dir):
    out = tmp_path / "ipa"
    assert main(_build_args(ipa_corpus, out, offline_tokenizer_dir, tiny_codec_dir, "--front-end", "espeak-ipa")) == 0
    ds = datasets.load_from_disk(str(out))
    lines = (ipa_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:]
    transcripts = {f: t for f, t, _ in (ln.split("|") for ln in lines)}
    assert ds["source"] == ["utt_00000", "utt_00001", "nums"]
    for row in ds:
        assert row["text"] == transcripts[row["source"]]  # the text column keeps the transcript
        prompt = [*HUMAN, *f"en-us: {apply_front_end(row['text'], 'espeak-ipa')}".encode(), *TAIL]
        assert row["input_ids"][: row["prompt_lengths"]] == prompt
    nums = ds[2]["input_ids"][2 : ds[2]["prompt_lengths"] - 4]  # between BOS and end_of_text
    assert nums == list("en-us: aɪ pˈeɪd twˈɛlv dˈɑːlɚz ænd fˈɪfti sˈɛnts.".encode())
    info = json.loads((out / "build_info.json").read_text())
    assert info["front_end"] == "espeak-ipa" and info["config"]["front_end"] == "espeak-ipa"
    assert info["counts"]["skipped_by_reason"] == {"no phonemes": 1}
    assert dataset_front_end(out) == "espeak-ipa"


@pytest.mark.parametrize("front_end", ["espeak-frames", "espeak-quarters"])
def test_build_writes_phones_per_frame_and_a_fresh_model_reads_them(tmp_path, offline_tokenizer_dir,
                                                                    tiny_codec_dir, front_end):
    from audio_tokenizer.frames import PER_FRAME, frame_ids
    from llada_tts.model import adapters
    from llada_tts.training.build import build_model
    from llada_tts.training.config import TrainConfig

    corpus = make_corpus(tmp_path / "c", 3, voices=("en-us", "en-gb+m3"), rates=(175,), seed=0, progress=False)
    shutil.copy(corpus / "wavs" / "utt_00000.wav", corpus / "wavs" / "other.wav")
    with open(corpus / "metadata.csv", "a", encoding="utf-8") as f:
        f.write("other|Not what the recording says at all.|en-us\n")
    out = tmp_path / "frames"
    assert main(_build_args(corpus, out, offline_tokenizer_dir, tiny_codec_dir, "--front-end", front_end)) == 0
    ds = datasets.load_from_disk(str(out))
    assert ds["source"] == ["utt_00000", "utt_00001", "utt_00002"]  # not "other": another sentence's audio
    per_frame = PER_FRAME[front_end]
    for row in ds:
        phones = frame_ids(row["text"], row["voice"], per_frame=per_frame)
        assert row["input_ids"][: row["prompt_lengths"]] == [*HUMAN, *f"{row['voice']}: ".encode(), *phones, *TAIL]
        # 7 codes per frame, + end of speech, end of ai
        assert len(row["input_ids"]) - row["prompt_lengths"] == 7 * len(phones) // per_frame + 2
    reasons = json.loads((out / "build_info.json").read_text())["counts"]["skipped_by_reason"]
    assert sum(reasons.values()) == 1 and all(r.startswith("eSpeak's timeline has") for r in reasons)
    assert dataset_front_end(out) == front_end
    model = build_model(TrainConfig(TTS_dataset=str(out), model_name="tiny"))
    assert getattr(model.config, adapters.FRAMES_KEY) == [128028, 128153]
    assert adapters.phones_per_frame(model.config) == per_frame
    if per_frame > 1:  # a one-per-frame checkpoint fine-tunes on quarter prompts: it reads the data's timeline
        from llada_tts.model import config_for_size, create_model, save_model

        save_model(create_model(config_for_size("tiny", frame_phones=1), seed=0), tmp_path / "one")
        warm = build_model(TrainConfig(TTS_dataset=str(out), model_name=str(tmp_path / "one")))
        assert adapters.phones_per_frame(warm.config) == per_frame
    plain = build_model(TrainConfig(TTS_dataset=str(tmp_path / "none"), model_name="tiny"))
    assert getattr(plain.config, adapters.FRAMES_KEY, None) is None


def test_another_front_end_is_another_run(tmp_path, ipa_corpus, offline_tokenizer_dir, tiny_codec_dir):
    cfg = BuildConfig(input=str(ipa_corpus), output=str(tmp_path / "o"), tokenizer=str(offline_tokenizer_dir),
                      codec=str(tiny_codec_dir), shard_size=2)
    info = build(cfg, progress=False)
    assert info["front_end"] == "text" and dataset_front_end(tmp_path / "o") == "text"
    text_ids = datasets.load_from_disk(str(tmp_path / "o"))["input_ids"]
    assert text_ids[2][2:2 + len(b"en-us: I paid $12.50.")] == list(b"en-us: I paid $12.50.")
    ipa = BuildConfig(**{**cfg.__dict__, "front_end": "espeak-ipa"})
    with pytest.raises(InputError, match=r"other settings \(front_end\)"):
        build(ipa, progress=False)
    info = build(ipa, overwrite=True, progress=False)
    assert info["front_end"] == "espeak-ipa" and info["shards"] == {"built": 2, "reused": 0, "stale": 0}
    # shards from before the option (settings without front_end) resume as a "text" build
    settings = tmp_path / "o" / ".shards" / "settings.json"
    build(cfg, overwrite=True, progress=False)
    old = json.loads(settings.read_text())
    del old["front_end"]
    settings.write_text(json.dumps(old))
    assert build(cfg, progress=False)["shards"] == {"built": 0, "reused": 2, "stale": 0}
    with pytest.raises(InputError, match="unknown --front-end 'arpabet'"):
        build(BuildConfig(**{**cfg.__dict__, "front_end": "arpabet"}), progress=False)


# --- synthesis -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ipa_tts(tmp_path_factory, tiny_model_dir, tiny_codec_dir):
    """The tiny checkpoint with ``"front_end": "espeak-ipa"`` in its llada_tts.json."""
    from llada_tts.synthesis import LladaTTS

    ckpt = tmp_path_factory.mktemp("ipa") / "ckpt"
    shutil.copytree(tiny_model_dir, ckpt)
    meta = json.loads((ckpt / META_FILE).read_text())
    (ckpt / META_FILE).write_text(json.dumps({**meta, "front_end": "espeak-ipa"}))
    return LladaTTS.from_pretrained(str(ckpt), codec=str(tiny_codec_dir))


@pytest.fixture
def seen_prompts(monkeypatch):
    """Every prompt the pipeline hands to sample() or stream_chunk()."""
    from llada_tts.synthesis import pipeline, stream

    seen: list[list[int]] = []
    real_sample, real_stream = pipeline.sample, stream.stream_chunk

    def sample(model, prompts, *args, **kwargs):
        seen.extend(list(p) for p in prompts)
        return real_sample(model, prompts, *args, **kwargs)

    def stream_chunk(model, codec, prompt, *args, **kwargs):
        seen.append(list(prompt))
        return real_stream(model, codec, prompt, *args, **kwargs)

    monkeypatch.setattr(pipeline, "sample", sample)
    monkeypatch.setattr(stream, "stream_chunk", stream_chunk)
    return seen


def test_a_phoneme_checkpoint_gets_phoneme_prompts(ipa_tts, seen_prompts):
    tok, text = ipa_tts.tokenizer, "Hello, world."
    want = tts_prompt(tok, text, "alice", front_end="espeak-ipa")
    assert want == [*HUMAN, *"alice: həlˈoʊ, wˈɜːld.".encode(), *TAIL]
    assert ipa_tts.front_end == "espeak-ipa" and ipa_tts.prompt(text, "alice") == want
    result = ipa_tts.synthesize(text, "alice", seed=0, **FAST)  # say and the app
    assert [c.text for c in result.chunks] == [text] and seen_prompts == [want]
    run = ipa_tts.prepare(text, "alice", seed=0, **FAST)  # the server's batched path
    ipa_tts.sample_chunks([(run, 0)])
    list(ipa_tts.stream(text, "alice", seed=0, blocks=True, **FAST))  # block streaming
    assert seen_prompts == [want] * 3


def test_info_shows_the_front_end(ipa_tts, tiny_model_dir, tiny_codec_dir):
    from llada_tts.commands.info import describe
    from llada_tts.synthesis import LladaTTS

    assert describe(ipa_tts)["checkpoint"]["front_end"] == "espeak-ipa"
    plain = LladaTTS.from_pretrained(str(tiny_model_dir), codec=str(tiny_codec_dir))
    assert plain.front_end == "text" and describe(plain)["checkpoint"]["front_end"] == "text"


@pytest.mark.parametrize("front_end", ["text", "espeak-ipa"])
@pytest.mark.parametrize("voice", [None, "en-gb+m3"])
def test_a_built_rows_prompt_is_the_synthesis_prompt(front_end, voice):
    """The invariant between training and synthesis: one prompt builder for both."""
    from audio_tokenizer.build import make_row
    from llada_tts.prompts import tts_prompt
    from llada_tts.vocab import build_offline_tokenizer

    tok = build_offline_tokenizer()
    text = "Dr. Smith paid $12.50 for 3 apples, didn't he?"
    audio = L.codes_to_tokens(([1], [2, 3], [4, 5, 6, 7])).tolist()
    ids, prompt_length = make_row(tok, text, voice, audio, front_end)
    assert ids[:prompt_length] == tts_prompt(tok, text, voice, front_end=front_end)
    assert ids[prompt_length:] == audio + [L.END_OF_SPEECH_ID, L.END_OF_AI_ID]
