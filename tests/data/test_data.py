"""Data pipeline: exact collated batches, sampler order vs a reference loop, validation, packing, SFT."""
from __future__ import annotations

import json
import logging
import math
from fractions import Fraction

import datasets
import numpy as np
import pytest
import torch

from audio_tokenizer import layout as L
from llada_tts.data import (
    MixtureDataset,
    MixtureSampler,
    collate,
    fill_positions,
    load_pretrain_rows,
    load_sft_rows,
    load_text_rows,
    load_tts_rows,
)
from llada_tts.data.convert import main as convert_main
from llada_tts.data.convert import sharegpt_to_jsonl
from llada_tts.diffusion import forward_process, masked_diffusion_loss

A = L.AUDIO_OFFSET
EOT, PAD = L.END_OF_TEXT_ID, L.PAD_ID


# --- collate ---------------------------------------------------------------------------------------
ROWS = [
    {"input_ids": [1, 2, 3, 4, 5], "prompt_length": 2, "kind": "tts"},
    {"input_ids": [7, 8], "prompt_length": 0, "kind": "text"},
    {"input_ids": [9, 10, 11], "prompt_length": 1, "kind": "sft"},
]


def test_collate_exact_batch():
    out = collate(ROWS + [{"input_ids": [6], "prompt_length": 0, "kind": "text"}])
    # each row is filled up to its own kind's longest row (text 2, sft 3); past that it is padding
    assert out["input_ids"].tolist() == [[1, 2, 3, 4, 5], [7, 8, EOT, EOT, EOT], [9, 10, 11, EOT, EOT],
                                         [6, EOT, EOT, EOT, EOT]]
    assert out["attention_mask"].tolist() == [[1] * 5, [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    assert out["prompt_lengths"].tolist() == [2, 0, 1, 0] and out["lengths"].tolist() == [5, 2, 3, 1]
    assert out["maskable"].tolist() == [[False, False, True, True, True], [True, True, False, False, False],
                                        [False, True, True, False, False], [True, True, False, False, False]]
    assert out["normalizer"].tolist() == [3.0, 2.0, 2.0, 2.0] and out["normalizer"].dtype == torch.float32
    assert out["kind"].tolist() == [2, 0, 1, 0]
    assert out["input_ids"].dtype == torch.long and out["maskable"].dtype == torch.bool
    assert fill_positions(out).nonzero().tolist() == [[3, 1]]  # the trained fill: attended, past the row's ids


def test_collate_one_kind_fills_to_the_longest_row():
    out = collate([ROWS[0], {"input_ids": [1, 2, 3], "prompt_length": 1, "kind": "tts"}])
    assert out["input_ids"].tolist() == [[1, 2, 3, 4, 5], [1, 2, 3, PAD, PAD]]
    assert out["attention_mask"].tolist() == [[1] * 5] * 2 and out["normalizer"].tolist() == [3.0, 4.0]


def test_collate_pads_tts_with_pad_and_to_multiple():
    out = collate([{"input_ids": [1, 2], "prompt_length": 1, "kind": "tts"}, ROWS[1]], pad_to_multiple_of=4)
    assert out["input_ids"].tolist() == [[1, 2, PAD, PAD], [7, 8, EOT, EOT]]
    assert out["normalizer"].tolist() == [3.0, 4.0]


@pytest.mark.parametrize("row, match", [
    ({"input_ids": [1, 2], "prompt_length": 0, "kind": "audio"}, "kind"),
    ({"input_ids": [1, 2], "prompt_length": 1, "kind": "text"}, "no prompt"),
    ({"input_ids": [1, 2], "prompt_length": 2, "kind": "sft"}, "at least one answer"),
    ({"input_ids": [], "prompt_length": 0, "kind": "text"}, "no input_ids"),
    ({"input_ids": [1, 2], "kind": "text"}, "prompt_length"),
])
def test_collate_rejects_bad_rows(row, match):
    with pytest.raises(ValueError, match=match):
        collate([ROWS[0], row])


# --- mixture sampler --------------------------------------------------------------------------------
def _perm(seed, tag, key, n):
    return np.random.default_rng([seed, tag, key]).permutation(n).tolist()


def reference_batches(n_tts, n_text, ratio, bs, seed, reps, rank, epochs):
    """Simulation: pull rows one by one from a per-epoch TTS order and an endless text stream."""
    r = Fraction(ratio).limit_denominator(10**6)
    text_stream = (i for cycle in range(10**9) for i in _perm(seed, 2, cycle, n_text)) if n_text else None
    out = []
    for epoch in range(epochs):
        tts = iter(_perm(seed, 0, epoch, n_tts))
        left, step = n_tts, 0
        while True:
            k = bs * (math.ceil((step + 1) * r) - math.ceil(step * r))  # one kind per step
            if left < reps * (bs - k):
                break
            tts_rows = [[next(tts) for _ in range(bs - k)] for _ in range(reps)]
            text_rows = [[next(text_stream) for _ in range(k)] for _ in range(reps)]
            out.append([("tts", i) for i in tts_rows[rank]] + [("text", i) for i in text_rows[rank]])
            left -= reps * (bs - k)
            step += 1
    return out


def _run(sampler, epochs):
    out = []
    for e in range(epochs):
        sampler.set_epoch(e)
        out.extend(sampler)
    return out


@pytest.mark.parametrize("n_tts, n_text, ratio, bs, reps", [
    (50, 7, 0.3, 4, 2), (41, 100, 0.5, 3, 1), (64, 5, 0.25, 8, 2), (30, 9, 0.0, 4, 3), (23, 13, 0.9, 2, 1),
])
def test_sampler_matches_reference_loop(n_tts, n_text, ratio, bs, reps):
    for rank in range(reps):
        s = MixtureSampler(n_tts, n_text, ratio, bs, seed=5, num_replicas=reps, rank=rank)
        got = _run(s, 3)
        want = reference_batches(n_tts, n_text, ratio, bs, 5, reps, rank, 3)
        assert got == want
        assert len(s) * 3 == len(want)


def test_sampler_deterministic_and_reshuffled_per_epoch():
    a = _run(MixtureSampler(40, 40, 0.5, 4, seed=1), 2)
    b = _run(MixtureSampler(40, 40, 0.5, 4, seed=1), 2)
    c = _run(MixtureSampler(40, 40, 0.5, 4, seed=2), 2)
    assert a == b and a != c
    half = len(a) // 2
    tts0 = [i for batch in a[:half] for s, i in batch if s == "tts"]
    tts1 = [i for batch in a[half:] for s, i in batch if s == "tts"]
    assert sorted(tts0) == sorted(tts1) == list(range(40)) and tts0 != tts1


@pytest.mark.parametrize("drop_last", [True, False])
def test_ranks_get_distinct_covering_shards(drop_last):
    n, bs, reps = 37, 4, 2
    shards = [_run(MixtureSampler(n, 11, 0.25, bs, seed=3, num_replicas=reps, rank=r, drop_last=drop_last), 1)
              for r in range(reps)]
    assert len(shards[0]) == len(shards[1])
    tts = [[i for batch in shard for s, i in batch if s == "tts"] for shard in shards]
    assert all(len(batch) == bs for shard in shards for batch in shard)
    if drop_last:  # 4 TTS rows per rank per TTS step: 4 TTS steps use 32 rows, 5 rows left out
        assert not set(tts[0]) & set(tts[1])
        assert len(set(tts[0] + tts[1])) == len(tts[0] + tts[1]) == 32
    else:  # 5 TTS steps use 40 slots: all 37 rows, 3 wrapped around
        assert set(tts[0] + tts[1]) == set(range(n)) and len(tts[0] + tts[1]) == 40


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.7, 0.95, 1.0])
@pytest.mark.parametrize("bs", [1, 3, 8])
def test_ratio_is_the_fraction_of_text_samples(ratio, bs):
    s = MixtureSampler(2000, 300, ratio, bs, seed=0)
    batches = list(s)
    counts = [sum(src == "text" for src, _ in b) for b in batches]
    assert all(len(b) == bs for b in batches)
    assert set(counts) <= {0, bs}  # one kind per batch: the ratio is held over batches
    assert counts[0] == (bs if ratio > 0 else 0)  # an epoch starts with text: a given text set is always drawn
    for n in (1, 7, len(batches)):
        assert abs(sum(counts[:n]) / (n * bs) - ratio) < 1 / n + 1e-12
    assert abs(s.text_fraction - ratio) < 1 / len(batches) + 1e-12
    if ratio == 1.0:  # text only: an epoch is one pass over the text rows
        seen = [i for b in batches for _, i in b]
        assert len(seen) == len(set(seen)) == 300 - 300 % bs and set(seen) <= set(range(300))


@pytest.mark.parametrize("n_tts, ratio, bs", [(8, 0.1, 2), (6, 0.05, 3), (40, 0.99, 4)])
def test_every_epoch_draws_both_given_sources(n_tts, ratio, bs):
    s = MixtureSampler(n_tts, 4, ratio, bs, seed=0)
    for epoch in range(3):
        s.set_epoch(epoch)
        assert {src for b in s for src, _ in b} == {"tts", "text"}


def test_small_text_source_is_cycled_in_reshuffled_passes():
    batches = _run(MixtureSampler(100, 5, 0.5, 4, seed=0), 2)
    text = [i for b in batches for s, i in b if s == "text"]
    assert len(text) == 208  # 2 epochs x 26 text steps x 4 rows; the stream continues across the epochs
    passes = [text[i:i + 5] for i in range(0, 200, 5)]
    assert all(sorted(p) == list(range(5)) for p in passes) and len({tuple(p) for p in passes}) > 1


def test_resume_continues_exactly():
    full = _run(MixtureSampler(50, 20, 0.4, 4, seed=9, num_replicas=2, rank=1), 3)
    s = MixtureSampler(50, 20, 0.4, 4, seed=9, num_replicas=2, rank=1)
    seen = list(s)  # epoch 0
    s.set_epoch(1)
    for batch in s:
        seen.append(batch)
        if len(seen) == len(s) + 3:
            break
    state = json.loads(json.dumps(s.state_dict()))
    assert (state["epoch"], state["step"]) == (1, 3)
    r = MixtureSampler(50, 20, 0.4, 4, seed=9, num_replicas=2, rank=1)
    r.load_state_dict(state)
    for e in (1, 2):
        r.set_epoch(e)
        seen.extend(r)
    assert seen == full


def test_resume_refuses_changed_settings():
    state = MixtureSampler(50, 20, 0.4, 4, seed=9).state_dict()
    with pytest.raises(ValueError, match="batch_size"):
        MixtureSampler(50, 20, 0.4, 8, seed=9).load_state_dict(state)
    old = {k: v for k, v in state.items() if k != "batching"}  # written by the mixed-batch sampler
    with pytest.raises(ValueError, match="batching 'mixed' -> 'one kind per batch'"):
        MixtureSampler(50, 20, 0.4, 4, seed=9).load_state_dict(old)


@pytest.mark.parametrize("kw, match", [
    ({"ratio": 1.5}, "fraction"), ({"n_text": 0}, "text rows but there are none"),
    ({"n_tts": 0}, "TTS rows but there are none"),
    ({"rank": 2}, "rank"), ({"n_tts": 3, "batch_size": 4}, "cannot fill"),
])
def test_sampler_rejects_bad_settings(kw, match):
    args = {"n_tts": 10, "n_text": 10, "ratio": 0.5, "batch_size": 2, "num_replicas": 2, "rank": 0, **kw}
    with pytest.raises(ValueError, match=match):
        MixtureSampler(**args)


# --- TTS rows ---------------------------------------------------------------------------------------
def _tts_rows(n=4):
    rows = []
    for i in range(n):
        text = [L.BOS_ID, 65 + i, 66]
        audio = [A + s * 4096 + (i * 7 + s) % 4096 for s in range(7)] * (i + 1)
        ids, p = L.tts_row_ids(text, audio)
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "prompt_lengths": p, "data_type": "tts"})
    return rows


def _save(tmp_path, rows, name="ds"):
    d = tmp_path / name
    datasets.Dataset.from_list(rows).save_to_disk(str(d))
    return d


def test_load_tts_rows_exact(tmp_path):
    rows = _tts_rows()
    out = load_tts_rows(_save(tmp_path, rows), max_length=100, progress=False)
    assert out.column_names == ["input_ids", "prompt_length", "kind"]
    assert [r["input_ids"] for r in out] == [r["input_ids"] for r in rows]
    assert [r["prompt_length"] for r in out] == [8] * 4 and set(out["kind"]) == {"tts"}
    assert out[0]["input_ids"][7] == L.START_OF_SPEECH_ID


def test_orpheus_rows_derive_prompt_length(tmp_path, caplog):
    rows = [{"input_ids": r["input_ids"], "labels": r["input_ids"], "attention_mask": r["attention_mask"]}
            for r in _tts_rows()]
    rows[1]["input_ids"] = [L.START_OF_HUMAN_ID, L.START_OF_SPEECH_ID, A, A + 4096]
    rows[1]["attention_mask"] = [1] * 4
    with caplog.at_level(logging.INFO, logger="llada_tts.data.tts"):
        out = load_tts_rows(_save(tmp_path, rows), max_length=100, progress=False)
    assert out["prompt_length"] == [8, 2, 8, 8]
    assert "derived" in caplog.text


def _bad(rows, i, **change):
    rows = [dict(r) for r in rows]
    rows[i].update(change)
    return rows


@pytest.mark.parametrize("i, change, match", [
    (2, {"input_ids": [L.START_OF_SPEECH_ID, L.VOCAB_SIZE]}, r"row 2, column input_ids, position 1: id 156940"),
    (3, {"input_ids": [5, -1, L.START_OF_SPEECH_ID]}, r"row 3, column input_ids, position 1: id -1"),
    (1, {"input_ids": [5, L.MASK_ID, 7]}, r"row 1, column input_ids, position 1: id 156938 is the diffusion mask"),
    (0, {"input_ids": []}, r"row 0, column input_ids: empty row"),
    (3, {"prompt_lengths": 99}, r"row 3, column prompt_lengths: prompt length 99"),
    (2, {"attention_mask": [1] * 26 + [0] * 5}, r"row 2, column attention_mask, position 26: 0"),
    (1, {"data_type": "text"}, r"row 1, column data_type: 'text'"),
    (3, {"input_ids": list(range(60)), "attention_mask": [1] * 60}, r"row 3, column input_ids: 60 ids > max_length 50"),
])
def test_tts_validation_names_row_and_column(tmp_path, i, change, match):
    rows = _bad(_tts_rows(), i, **change)
    if "input_ids" in change and "attention_mask" not in change:
        rows[i]["attention_mask"] = [1] * len(change["input_ids"])
    with pytest.raises(ValueError, match=match):
        load_tts_rows(_save(tmp_path, rows), max_length=50, batch_size=2, progress=False)


def test_tts_validation_structure_errors(tmp_path):
    with pytest.raises(ValueError, match="no column 'input_ids'"):
        load_tts_rows(_save(tmp_path, [{"tokens": [1]}], "a"), max_length=10)
    empty = datasets.Dataset.from_dict({"input_ids": []}, features=datasets.Features(
        {"input_ids": datasets.Sequence(datasets.Value("int32"))}))
    with pytest.raises(ValueError, match="empty"):
        load_tts_rows(empty, max_length=10)
    no_sos = [{"input_ids": [1, 2, 3]}, {"input_ids": [4, 5]}]
    with pytest.raises(ValueError, match=r"row 0, column input_ids: no prompt_lengths column and no start_of_speech"):
        load_tts_rows(_save(tmp_path, no_sos, "b"), max_length=10)
    with pytest.raises(ValueError, match="not a dataset folder"):
        load_tts_rows(tmp_path / "missing", max_length=10)


def test_dataset_dict_split_and_text_dataset_folder(tmp_path):
    d = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(_tts_rows(2))}).save_to_disk(str(d))
    assert load_tts_rows(d, max_length=64, progress=False)["prompt_length"] == [8, 8]
    with pytest.raises(ValueError, match="no split 'dev'"):
        load_tts_rows(d, max_length=64, split="dev")
    # an earlier-style text dataset folder: input_ids + prompt_lengths columns -> SFT rows
    t = _save(tmp_path, [{"input_ids": [1, 2, 3], "prompt_lengths": 1, "data_type": "text"}], "textds")
    out = load_text_rows(t, None, max_length=8, progress=False)
    assert (out["input_ids"], out["prompt_length"], out["kind"]) == ([[1, 2, 3]], [1], ["sft"])


def test_drop_long_counts_and_drops(tmp_path, caplog):
    rows = _tts_rows()  # lengths 17, 24, 31, 38
    with caplog.at_level(logging.WARNING, logger="llada_tts.data.tts"):
        out = load_tts_rows(_save(tmp_path, rows), max_length=30, drop_long=True, progress=False)
    assert [len(r) for r in out["input_ids"]] == [17, 24]
    assert "dropped 2 of 4 TTS rows" in caplog.text


# --- text and SFT rows ------------------------------------------------------------------------------
def _jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_pretrain_packing_exact(tmp_path, offline_tokenizer):
    f = _jsonl(tmp_path / "pre.jsonl", [{"text": "ab"}, "", {"text": "c"}, {"input_ids": [5, 6, 7]}])
    out = load_pretrain_rows(f, offline_tokenizer, max_length=4, progress=False)
    assert out["input_ids"] == [[L.BOS_ID, 97, 98, EOT], [L.BOS_ID, 99, EOT, 5], [6, 7]]
    assert out["prompt_length"] == [0, 0, 0] and out["kind"] == ["text"] * 3
    dropped = load_pretrain_rows(f, offline_tokenizer, max_length=4, drop_remainder=True, progress=False)
    assert dropped["input_ids"] == out["input_ids"][:2]


def _header(role):
    return [128006, *role.encode(), 128007, 10, 10]


def test_sft_prompt_length_exact_on_conversation(tmp_path, offline_tokenizer):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Yo"}, {"role": "user", "content": "Again?"},
            {"role": "assistant", "content": "Ok"}]
    prompt = [L.BOS_ID]
    for m in msgs[:-1]:
        prompt += _header(m["role"]) + list(m["content"].encode()) + [EOT]
    prompt += _header("assistant")
    want = prompt + [79, 107, EOT]
    sharegpt = [{"from": {"user": "human", "assistant": "gpt"}.get(m["role"], m["role"]), "value": m["content"]}
                for m in msgs]
    f = _jsonl(tmp_path / "sft.jsonl", [{"messages": msgs}, {"conversations": sharegpt},
                                        {"conversations": msgs}, {"input_ids": [1, 2, 3], "prompt_length": 2}])
    out = load_sft_rows(f, offline_tokenizer, max_length=200, progress=False)
    assert out["input_ids"][:3] == [want] * 3 and out["prompt_length"][:3] == [len(prompt)] * 3
    assert out["input_ids"][3] == [1, 2, 3] and out["prompt_length"][3] == 2 and set(out["kind"]) == {"sft"}
    auto = load_text_rows(f, offline_tokenizer, max_length=200, progress=False)
    assert auto["input_ids"] == out["input_ids"]


@pytest.mark.parametrize("records, match", [
    ([{"text": "a"}, "{not json"], r"line 2: invalid JSON"),
    ([{"text": "a"}, {"text": "b"}, {"body": "c"}], r"line 3: expected a 'text' string or an 'input_ids' list"),
    ([{"text": "a"}, "[1, 2]"], r"line 2: expected a JSON object"),
    ([{"input_ids": [1, L.MASK_ID]}], r"line 1: input_ids position 1 holds 156938"),
])
def test_pretrain_errors_name_the_line(tmp_path, offline_tokenizer, records, match):
    with pytest.raises(ValueError, match=match):
        load_pretrain_rows(_jsonl(tmp_path / "x.jsonl", records), offline_tokenizer, 8, progress=False)


@pytest.mark.parametrize("record, match", [
    ({"messages": [{"role": "user", "content": "q"}]}, r"line 2: the conversation must end with an assistant"),
    ({"messages": [{"role": "robot", "content": "q"}]}, r"line 2: messages\[0\] has role 'robot'"),
    ({"conversations": [{"from": "human"}]}, r"line 2: conversations\[0\] must be an object"),
    ({"input_ids": [1, 2], "prompt_length": 2}, r"line 2: prompt_length 2 for 2 ids leaves no answer"),
    ({"question": "q"}, r"line 2: expected 'messages', 'conversations' or 'input_ids'"),
])
def test_sft_errors_name_the_line(tmp_path, offline_tokenizer, record, match):
    f = _jsonl(tmp_path / "s.jsonl", [{"input_ids": [1, 2], "prompt_length": 1}, record])
    with pytest.raises(ValueError, match=match):
        load_sft_rows(f, offline_tokenizer, 64, progress=False)


def test_sft_drop_long(tmp_path, caplog):
    f = _jsonl(tmp_path / "s.jsonl",
               [{"input_ids": [1] * 9, "prompt_length": 1}, {"input_ids": [1, 2], "prompt_length": 1}])
    with pytest.raises(ValueError, match=r"line 1: 9 ids > max_length 8"):
        load_sft_rows(f, None, 8, progress=False)
    with caplog.at_level(logging.WARNING, logger="llada_tts.data.text"):
        assert load_sft_rows(f, None, 8, drop_long=True, progress=False)["input_ids"] == [[1, 2]]
    assert "dropped 1 of 2 SFT rows" in caplog.text


# --- conversion -------------------------------------------------------------------------------------
def test_sharegpt_and_alpaca_conversion(tmp_path, capsys):
    src = tmp_path / "sg.json"
    src.write_text(json.dumps([
        {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"},
                           {"from": "gpt", "value": "A"}, {"from": "human", "value": "unanswered"}]},
        {"conversations": [{"from": "human", "value": "alone"}]},
    ]))
    assert tuple(sharegpt_to_jsonl(src, tmp_path / "sg.jsonl")) == (1, 1)
    assert [json.loads(x) for x in (tmp_path / "sg.jsonl").read_text().splitlines()] == [{"messages": [
        {"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}]
    al = _jsonl(tmp_path / "al.jsonl", [{"instruction": "Add", "input": "1 2", "output": "3"},
                                        {"instruction": "Hi", "input": "", "output": "Hello"}])
    assert convert_main(["alpaca", str(al), str(tmp_path / "al_out.jsonl")]) == 0
    assert "wrote 2 conversations" in capsys.readouterr().out
    assert [json.loads(x)["messages"] for x in (tmp_path / "al_out.jsonl").read_text().splitlines()] == [
        [{"role": "user", "content": "Add\n\n1 2"}, {"role": "assistant", "content": "3"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]]
    bad = _jsonl(tmp_path / "bad.jsonl", [{"instruction": "x", "output": "y"}, {"prompt": "x"}])
    assert convert_main(["alpaca", str(bad), str(tmp_path / "bad_out.jsonl")]) == 2
    assert "line 2: expected an object with 'instruction' and 'output'" in capsys.readouterr().err
    assert not (tmp_path / "bad_out.jsonl").exists() and not (tmp_path / "bad_out.jsonl.tmp").exists()


# --- end to end: rows -> sampler -> collate -> forward process -> loss --------------------------------
def test_mixed_batches_train_end_to_end(tmp_path, offline_tokenizer):
    tts = load_tts_rows(_save(tmp_path, _tts_rows()), max_length=64, progress=False)
    text = load_pretrain_rows(_jsonl(tmp_path / "t.jsonl", [{"text": "hello world"}] * 4), offline_tokenizer, 10,
                              progress=False)
    sampler = MixtureSampler(len(tts), len(text), 0.5, 2, seed=0)
    loader = torch.utils.data.DataLoader(MixtureDataset(tts, text), batch_sampler=sampler, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == len(sampler) == 5  # the trailing text step needs no TTS row
    assert [batch["kind"].tolist() for batch in batches] == [[0, 0], [2, 2], [0, 0], [2, 2], [0, 0]]
    for batch in batches:
        batch = {k: v.repeat(2, *[1] * (v.dim() - 1)) for k, v in batch.items()}  # B = 4
        g = torch.Generator().manual_seed(0)
        noisy, masked, p = forward_process(batch["input_ids"], batch["maskable"], L.MASK_ID, generator=g,
                                           t=torch.ones(4))
        assert torch.equal(masked, batch["maskable"]) and not (noisy[~masked] == L.MASK_ID).any()
        logits = torch.zeros(*batch["input_ids"].shape, L.VOCAB_SIZE)
        loss, _ = masked_diffusion_loss(logits, batch["input_ids"], masked, p, batch["normalizer"])
        # uniform logits: CE = log V everywhere; p = 1; each row sums maskable / normalizer = 1
        assert loss.item() == pytest.approx(math.log(L.VOCAB_SIZE), rel=1e-5)
