"""``llada-tts score`` and ``evaluation.likelihood`` (LLaDA's Monte Carlo ELBO) on a tiny text model trained
a few steps by the pretrain recipe: the estimator's formula, reproducibility, convergence, input kinds, bad input."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from text_fixtures import cached_model_loading, loaded, text_checkpoint, tts_only_copy  # noqa: F401  (fixtures)

from audio_tokenizer import layout as L
from benchmarks.learning import diffusion_nll_bound
from llada_tts.cli import main
from llada_tts.evaluation.likelihood import bits_per_byte, draw_masks, elbo_nll, stratified_mask_counts

pytestmark = pytest.mark.usefixtures("cached_model_loading")
TEXT = "the cat sat on the mat."


@pytest.fixture(scope="module")
def model_tok(text_checkpoint):
    return loaded(text_checkpoint)


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["score", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


# --- the estimator --------------------------------------------------------------------------------

def test_stratified_counts_cover_one_to_length_evenly():
    gen = torch.Generator().manual_seed(0)
    counts = stratified_mask_counts(8, 8, gen)
    assert sorted(counts.tolist()) == list(range(1, 9))  # n = L: every count once
    counts = stratified_mask_counts(4, 20, gen)
    assert counts.min() >= 1 and counts.max() <= 20 and len(set(counts.tolist())) == 4
    gaps = sorted((int(b) - int(a)) % 20 for a, b in zip(counts, counts.roll(-1)))
    assert gaps[:3] == [5, 5, 5]  # evenly spread, wrapped into 1..L
    masks = draw_masks(counts, 20, gen)
    assert masks.sum(1).tolist() == counts.tolist()


def test_elbo_is_the_llada_formula_by_hand(model_tok):
    """Each draw: (L / l) * sum of the model's CE at the l masked answer positions; nll = the mean."""
    model, tok = model_tok
    prompt = [L.BOS_ID, *tok("the cat", add_special_tokens=False)["input_ids"]]
    answer = tok(" sat on the mat.", add_special_tokens=False)["input_ids"]
    est = elbo_nll(model, prompt, answer, mc_samples=3, batch_size=2, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    counts = stratified_mask_counts(3, len(answer), gen)
    masks = draw_masks(counts, len(answer), gen)
    want = []
    for c, m in zip(counts, masks):
        ids = torch.tensor(prompt + answer)
        masked = torch.cat([torch.zeros(len(prompt), dtype=torch.bool), m])
        with torch.no_grad():
            logits = model(ids.masked_fill(masked, L.MASK_ID)[None]).logits[0]
        want.append(len(answer) / int(c) * float(F.cross_entropy(logits[masked], ids[masked], reduction="sum")))
    assert est.draws.tolist() == pytest.approx(want, rel=1e-4)
    assert est.nll == pytest.approx(sum(want) / 3, rel=1e-4) and est.tokens == len(answer)
    assert est.per_token == pytest.approx(est.nll / len(answer))


def test_learning_benchmark_bound_is_this_implementation(model_tok):
    model, _ = model_tok
    ids = torch.arange(24) + 100
    a = diffusion_nll_bound(model, ids, 6, draws=8, generator=torch.Generator().manual_seed(3))
    b = elbo_nll(model, ids[:6], ids[6:], mc_samples=8, batch_size=3, generator=torch.Generator().manual_seed(3))
    assert a == pytest.approx(b.per_token, rel=1e-6)


def test_estimate_is_reproducible_and_more_samples_shrink_the_spread(model_tok):
    model, tok = model_tok
    ids = [L.BOS_ID, *tok(TEXT, add_special_tokens=False)["input_ids"], L.END_OF_TEXT_ID]

    def estimates(mc, seeds):
        return torch.tensor([elbo_nll(model, ids[:1], ids[1:], mc_samples=mc, batch_size=32,
                                      generator=torch.Generator().manual_seed(s)).per_token for s in seeds])

    few, many = estimates(2, range(6)), estimates(16, range(6))
    assert estimates(2, [0]).item() == few[0].item()  # a fixed seed is reproducible
    assert many.std() < few.std() / 2  # 8x the draws: under half the spread across seeds (sqrt(8) = 2.8)
    assert abs(many.mean() - few.mean()) < 4 * few.std()  # the same quantity
    one = elbo_nll(model, ids[:1], ids[1:], mc_samples=4, generator=torch.Generator().manual_seed(0))
    more = elbo_nll(model, ids[:1], ids[1:], mc_samples=16, generator=torch.Generator().manual_seed(0))
    assert more.stderr < one.stderr


def test_a_compact_model_in_memory_scores_as_its_expanded_copy():
    """Compact embeddings (training's in-memory form) score the same ids as the full-vocabulary model."""
    from types import SimpleNamespace

    from llada_tts.model import adapters, config_for_size, create_model

    compact = create_model(config_for_size("tiny", compact=True), seed=3).eval()
    rows = adapters.row_ids(compact.config.llada_rows)
    full = adapters.expand_rows(create_model(config_for_size("tiny", compact=True), seed=3)).eval()

    class OnlyRows(torch.nn.Module):  # the expanded model, its softmax over the compact rows' ids only
        def forward(self, x):
            logits = full(x).logits
            keep = torch.full_like(logits, float("-inf"))
            keep[..., rows] = logits[..., rows]
            return SimpleNamespace(logits=keep)

    prompt, answer = [L.BOS_ID, 72, 105], [L.START_OF_SPEECH_ID, L.AUDIO_OFFSET + 5, L.END_OF_SPEECH_ID]
    a = elbo_nll(compact, prompt, answer, mc_samples=8, generator=torch.Generator().manual_seed(0))
    b = elbo_nll(OnlyRows(), prompt, answer, mc_samples=8, generator=torch.Generator().manual_seed(0))
    assert math.isfinite(a.nll) and torch.allclose(a.draws, b.draws, atol=1e-4)
    # the expanded model itself: ids it has no row for take no probability (their logit was 0, a
    # leak of log(156940 / 29196) nats per token), and the head's bias never reaches a checkpoint
    c = elbo_nll(full, prompt, answer, mc_samples=8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a.draws, c.draws, atol=1e-4)
    assert not any(k.endswith("bias") for k in full.state_dict())


def test_a_uniform_model_scores_exactly_log_v_per_token():
    class Uniform(torch.nn.Module):
        def forward(self, input_ids):
            return type("Out", (), {"logits": torch.zeros(*input_ids.shape, 1000)})()

    est = elbo_nll(Uniform(), [1, 2], list(range(3, 40)), mc_samples=5, generator=torch.Generator().manual_seed(0))
    assert est.per_token == pytest.approx(math.log(1000), rel=1e-6) and est.stderr == pytest.approx(0, abs=1e-9)
    assert bits_per_byte(math.log(2) * 10, 5) == pytest.approx(2.0)


# --- the command ----------------------------------------------------------------------------------

def test_score_command_reports_json_and_a_summary_reproducibly(capsys, tmp_path, text_checkpoint,
                                                               model_tok):
    model, tok = model_tok
    path = write_jsonl(tmp_path / "held.jsonl", [
        {"text": TEXT},
        {"prompt": "the cat", "answer": " sat on the mat."},
        {"messages": [{"role": "user", "content": "say it"}, {"role": "assistant", "content": "a dog ran."}]},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "we like tea."}]},
    ])
    args = ["--model", text_checkpoint, "--input", path, "--mc-samples", 8]
    code, out, err = run(capsys, *args, "--batch-size", 8)
    assert code == 0, err
    report = json.loads(out)
    summary = [ln for ln in err.splitlines() if ln.strip()]
    assert len(summary) == 1 and summary[0].startswith("NLL bound ") and "bits/byte" in summary[0]
    rows = report["per_row"]
    assert report["rows"] == 4 and [r["tokens"] for r in rows] == [
        len(TEXT) + 1, len(" sat on the mat."), len("a dog ran.") + 1, len("we like tea.") + 1]  # bytes (+ eot)
    assert [r["bytes"] for r in rows] == [len(TEXT), len(" sat on the mat."), len("a dog ran."), len("we like tea.")]
    assert report["tokens"] == sum(r["tokens"] for r in rows) and report["bytes"] == sum(r["bytes"] for r in rows)
    assert report["nll"] == pytest.approx(sum(r["nll"] for r in rows))
    assert report["nll_per_token"] == pytest.approx(report["nll"] / report["tokens"])
    assert report["bits_per_byte"] == pytest.approx(report["nll"] / math.log(2) / report["bytes"])
    assert 0 < report["nll_per_token_stderr"] < report["nll_per_token"]
    # the same seed: the same numbers (the same draws, whatever the batch size: equal up to float
    # rounding, as other batch shapes sum in another order); another seed: other numbers
    assert json.loads(run(capsys, *args, "--batch-size", 8)[1]) == report
    other = json.loads(run(capsys, *args, "--batch-size", 3)[1])
    assert [r["nll"] for r in other["per_row"]] == pytest.approx([r["nll"] for r in rows], rel=1e-6)
    assert json.loads(run(capsys, *args, "--seed", 1)[1])["nll"] != report["nll"]
    # the text row is BOS-conditioned text + end_of_text, scored with the same draws as the library's
    gen = torch.Generator().manual_seed(0)
    ids = [L.BOS_ID, *tok(TEXT, add_special_tokens=False)["input_ids"], L.END_OF_TEXT_ID]
    assert rows[0]["nll"] == pytest.approx(elbo_nll(model, ids[:1], ids[1:], mc_samples=8, generator=gen).nll)


def test_chat_pairs_and_pretokenised_rows(capsys, tmp_path, text_checkpoint, model_tok):
    _, tok = model_tok
    path = write_jsonl(tmp_path / "qa.jsonl", [{"prompt": "say it", "answer": "a dog ran."}])
    code, out, _ = run(capsys, "--model", text_checkpoint, "--input", path, "--mc-samples", 2, "--chat")
    row = json.loads(out)["per_row"][0]
    assert code == 0 and row["tokens"] == len("a dog ran.") + 1  # the answer + end of turn
    path = write_jsonl(tmp_path / "ids.jsonl", [{"input_ids": [L.BOS_ID, 104, 105, 106], "prompt_length": 1}])
    code, out, _ = run(capsys, "--model", text_checkpoint, "--input", path, "--mc-samples", 2)
    report = json.loads(out)
    assert code == 0 and report["tokens"] == 3 and report["bits_per_byte"] is None and report["bytes"] is None


@pytest.mark.parametrize("prompt, answer", [("say it", "a dog ran."), ("  hi there ", " we like tea.  \n")])
def test_chat_prompt_answer_scores_exactly_as_the_same_messages(capsys, tmp_path, text_checkpoint, prompt,
                                                                answer):
    """--chat {"prompt", "answer"} is the conversation [user, assistant]: the same ids, bytes and numbers
    as that conversation written as "messages" (or ShareGPT "conversations"), spaces included."""
    spellings = {
        "pair": {"prompt": prompt, "answer": answer},
        "messages": {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]},
        "conversations": {"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]},
    }
    reports = {}
    for name, record in spellings.items():
        path = write_jsonl(tmp_path / f"{name}.jsonl", [record])
        code, out, err = run(capsys, "--model", text_checkpoint, "--input", path, "--mc-samples", 4, "--chat")
        assert code == 0, err
        reports[name] = json.loads(out)
    rows = {name: {k: v for k, v in r["per_row"][0].items() if k != "where"} for name, r in reports.items()}
    assert rows["pair"] == rows["messages"] == rows["conversations"]
    assert rows["pair"]["bytes"] == len(answer.strip().encode()) and rows["pair"]["end_token"] is True
    for key in ("tokens", "bytes", "nll", "nll_per_token", "bits_per_byte"):
        assert reports["pair"][key] == reports["messages"][key]


def test_rows_record_whether_an_end_token_is_scored(model_tok):
    """bits per byte counts the end-of-text / end-of-turn token's NLL over the text's bytes alone: each
    row says whether its scored ids end with one."""
    from llada_tts.evaluation.records import score_rows

    _, tok = model_tok
    rows = score_rows([("a", {"text": TEXT}), ("b", {"prompt": "the cat", "answer": " sat."}),
                       ("c", {"input_ids": [L.BOS_ID, 104, 105], "prompt_length": 1})], tok)
    assert [r["end_token"] for r in rows] == [True, False, False]
    assert rows[0]["answer"][-1] == L.END_OF_TEXT_ID and rows[0]["bytes"] == len(TEXT)
    assert rows[1]["answer"][-1] != L.END_OF_TEXT_ID


def test_a_conversation_without_a_chat_template_is_one_line():
    from llada_tts.evaluation.records import score_rows

    class NoTemplate:
        chat_template = None

    with pytest.raises(ValueError, match="needs a chat template"):
        score_rows([("x line 1", {"prompt": "a", "answer": "b"})], NoTemplate(), chat=True)


# --- bad input: one line, exit 2 --------------------------------------------------------------------

def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("llada-tts score: error: "), err
    return lines[0]


@pytest.mark.parametrize("content, message", [
    ("", "no records to score"),
    ('{"text": "fine"}\nnot json\n', "line 2: invalid JSON"),
    ('{"title": "x"}\n', "expected 'text', 'prompt' + 'answer'"),
    ('{"prompt": "a", "answer": ""}\n', "the answer is empty"),
    ('{"text": "' + "x" * 2100 + '"}\n', "> the model's context of 2048 tokens"),
])
def test_bad_input_is_one_line(capsys, tmp_path, text_checkpoint, content, message):
    path = tmp_path / "in.jsonl"
    path.write_text(content)
    code, out, err = run(capsys, "--model", text_checkpoint, "--input", path, "--mc-samples", 1)
    assert code == 2 and out == "" and message in _one_line(err)


def test_a_tts_only_checkpoint_is_refused(capsys, tmp_path, text_checkpoint):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": TEXT}])
    tts = tts_only_copy(text_checkpoint, tmp_path / "tts_ckpt")
    code, out, err = run(capsys, "--model", tts, "--input", path)
    assert code == 2 and out == "" and "TTS-only checkpoint" in _one_line(err)


def test_a_missing_input_file_is_one_line(capsys, tmp_path, text_checkpoint):
    code, _, err = run(capsys, "--model", text_checkpoint, "--input", tmp_path / "nope.jsonl")
    assert code == 2 and "nope.jsonl" in _one_line(err)
