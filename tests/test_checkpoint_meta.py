"""llada_tts.json: read/validate, computed from a TTS dataset, written by the trainer, read by LladaTTS."""
from __future__ import annotations

import json

import datasets
import pytest
from synthesis_fixtures import tiny_codec_dir  # noqa: F401  (fixture)

from llada_tts.checkpoint_meta import META_FILE, CheckpointMeta, dataset_codec, meta_from_columns, read_meta
from llada_tts.data.toy_data import toy_tts_rows
from llada_tts.training.config import TrainConfig


def test_meta_from_columns():
    cols = {"voice": ["bob", "", "alice", "bob", None], "text": ["abcd", "ef", "", "ghij", "k"],
            "duration": [1.0, 0.5, 2.0, 1.5, 0.0]}
    meta = meta_from_columns(cols, codec="x/snac")
    assert meta.voices == ["alice", "bob"]  # sorted, distinct, empty and missing dropped
    assert meta.codec == "x/snac"
    assert meta.chars_per_second == round(10 / 3, 4)  # rows with text and duration > 0: 10 chars / 3 s
    assert meta_from_columns({"text": ["a"]}) == CheckpointMeta()  # no durations: rate unknown
    assert json.loads(meta.to_json()) == {"voices": ["alice", "bob"], "codec": "x/snac",
                                          "chars_per_second": round(10 / 3, 4), "front_end": "text",
                                          "format_version": 1, "sampler": {}}


def test_read_meta_defaults_and_validation(tmp_path):
    assert read_meta(tmp_path) == CheckpointMeta(voices=[], codec=None, chars_per_second=None, format_version=1)
    (tmp_path / META_FILE).write_text(json.dumps({"voices": ["a"], "codec": None, "chars_per_second": 12}))
    assert read_meta(tmp_path) == CheckpointMeta(voices=["a"], chars_per_second=12.0)
    for bad, match in [("[1]", "expected a JSON object"), ("{", "cannot read"),
                       ('{"voices": "a"}', "'voices' must be a list"),
                       ('{"chars_per_second": -1}', "'chars_per_second' must be a positive number")]:
        (tmp_path / META_FILE).write_text(bad)
        with pytest.raises(ValueError, match=match):
            read_meta(tmp_path)


def test_dataset_codec_reads_build_info(tmp_path):
    (tmp_path / "ds").mkdir()
    assert dataset_codec(tmp_path / "ds") is None
    (tmp_path / "ds" / "build_info.json").write_text(json.dumps({"codec": "some/codec", "rows": 3}))
    assert dataset_codec(tmp_path / "ds") == "some/codec"
    assert dataset_codec("hub/name-not-a-folder") is None


@pytest.mark.slow
def test_trainer_checkpoint_has_meta_and_loads_into_lladatts(tmp_path, offline_tokenizer, tiny_codec_dir):
    cols = toy_tts_rows(offline_tokenizer, n_rows=4, frames=2, codes=4, texts=["hello", "hi"], voices=["tara", "leo"])
    cols["duration"] = [1.0, 0.5, 1.0, 0.5]  # 5 + 2 + 5 + 2 chars over 3 s
    datasets.Dataset.from_dict(cols).save_to_disk(str(tmp_path / "tts"))
    (tmp_path / "tts" / "build_info.json").write_text(json.dumps({"codec": str(tiny_codec_dir)}))
    from llada_tts.training import Trainer

    cfg = TrainConfig(TTS_dataset=str(tmp_path / "tts"), max_length=64, model_name="tiny", tokenizer_name="offline",
                      batch_size=2, max_steps=1, mixed_precision="no", report_to="none",
                      save_folder=str(tmp_path / "run"))
    result = Trainer(cfg).train()
    meta = json.loads((result.checkpoint / META_FILE).read_text())
    assert meta == {"voices": ["leo", "tara"], "codec": str(tiny_codec_dir), "chars_per_second": round(14 / 3, 4),
                    "front_end": "text", "format_version": 1, "sampler": {}}
    from llada_tts.synthesis import LladaTTS

    tts = LladaTTS.from_pretrained(str(result.checkpoint))  # codec from the metadata, no --codec needed
    assert tts.voices == ["leo", "tara"] and tts.codec_source == str(tiny_codec_dir)
    assert tts.chars_per_second == pytest.approx(14 / 3, abs=1e-4)
    voice_cfg = TrainConfig(**{**cfg.to_dict(), "voice_type": "tara", "save_folder": str(tmp_path / "run2")})
    from llada_tts.training.build import checkpoint_meta

    assert checkpoint_meta(voice_cfg).voices == ["tara"]  # what the run trained on
