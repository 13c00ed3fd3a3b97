"""``llada-tts score``: LLaDA's ELBO bound on the NLL of held-out text, per token and in bits per byte."""
from __future__ import annotations

import argparse
import json
import math
import sys

from llada_tts.commands.common import CliError, positive_int, seed_number
from llada_tts.commands.generate import add_text_model_arguments, context_length, load_text_model

HELP = "LLaDA ELBO bound on held-out text: NLL per token and bits per byte"
DESCRIPTION = """Score held-out text with a text checkpoint (recipes/pretrain.py, recipes/sft.py): LLaDA's Monte Carlo
ELBO, an upper bound on the negative log-likelihood (get_log_likelihood.py of the official LLaDA
repository: exactly l of the L scored tokens masked, l stratified over the --mc-samples draws,
weight L / l). Prints JSON (totals and one entry per row) on stdout and a one-line summary on stderr.

Input: JSONL, one record a line (or a folder of .jsonl files; '-' reads stdin):
  {"text": "..."}                          a document: BOS given, the text + end_of_text scored
  {"prompt": "...", "answer": "..."}       the answer scored after the prompt (--chat: the prompt
                                           through the chat template, the answer + end of turn)
  {"messages": [...]} / {"conversations": [...]}   the last assistant turn scored, as in SFT
  {"input_ids": [...], "prompt_length": n} pre-tokenised (no bits per byte)
bits per byte = the bound in bits over the UTF-8 bytes of the scored text (the answer).
A fixed --seed gives the same draws whatever --batch-size is (the same numbers up to float
rounding); more --mc-samples give a tighter estimate (see nll_per_token_stderr).

examples:
  llada-tts score --model outputs/pretrain_tiny/checkpoint-epoch-2 --input held_out.jsonl
  llada-tts score --model sft_ckpt/ --input qa.jsonl --chat --mc-samples 256 --batch-size 64 > scores.json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", "-i", required=True, metavar="JSONL", help="held-out records ('-' reads stdin)")
    p.add_argument("--mc-samples", "--mc_num", dest="mc_samples", type=positive_int, default=128,
                   help="Monte Carlo draws per row (default 128)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=positive_int, default=32,
                   help="draws per forward pass (default 32; memory and speed only: the draws are the same)")
    p.add_argument("--seed", type=seed_number, default=0, help="seed of the mask draws (default 0)")
    p.add_argument("--chat", "--is_instruct", action="store_true",
                   help="prompt/answer records: render the prompt with the chat template, end the answer with "
                        "end of turn")
    p.add_argument("-o", "--output", default=None, metavar="JSON", help="write the JSON here instead of stdout")
    add_text_model_arguments(p)


# --- records -> (prompt ids, answer ids, answer bytes) --------------------------------------------

def score_rows(records, tokenizer, chat: bool = False) -> list[dict]:
    """``{"where", "prompt", "answer", "bytes"}`` per record (ids lists; bytes None when unknown)."""
    from audio_tokenizer import layout as L
    from audio_tokenizer.text import encode_text
    from llada_tts.data.text import checked_ids, messages_of, sft_row

    rows = []
    for where, rec in records:
        if isinstance(rec.get("text"), str):
            ids = checked_ids(encode_text(tokenizer, rec["text"]) + [L.END_OF_TEXT_ID], where)
            row = dict(prompt=ids[:1], answer=ids[1:], bytes=len(rec["text"].encode("utf-8")))
        elif isinstance(rec.get("prompt"), str) and isinstance(rec.get("answer"), str):
            answer = tokenizer(rec["answer"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
            if chat:
                from llada_tts.commands.generate import prompt_ids

                prompt = prompt_ids(tokenizer, messages=[{"role": "user", "content": rec["prompt"]}])
                answer = [*answer, L.END_OF_TEXT_ID]
            else:
                prompt = encode_text(tokenizer, rec["prompt"])
            if not answer:
                raise ValueError(f"{where}: the answer is empty: nothing to score")
            prompt, answer = checked_ids(prompt, where), checked_ids(answer, where)
            row = dict(prompt=prompt, answer=answer, bytes=len(rec["answer"].encode("utf-8")))
        elif "messages" in rec or "conversations" in rec:
            ids, n = sft_row(rec, tokenizer, where)
            content = messages_of(rec, where)[-1]["content"].strip()  # the template trims it
            row = dict(prompt=ids[:n], answer=ids[n:], bytes=len(content.encode("utf-8")))
        elif "input_ids" in rec:
            n = rec.get("prompt_length", 0)
            if not isinstance(n, int) or isinstance(n, bool):
                raise ValueError(f"{where}: prompt_length must be an integer")
            ids = checked_ids(rec["input_ids"], where)
            if not 0 <= n < len(ids):
                raise ValueError(f"{where}: prompt_length {n} for {len(ids)} ids leaves nothing to score")
            row = dict(prompt=ids[:n], answer=ids[n:], bytes=None)
        else:
            raise ValueError(f"{where}: expected 'text', 'prompt' + 'answer', 'messages', 'conversations' or "
                             f"'input_ids' (keys: {', '.join(rec) or 'none'})")
        rows.append(dict(where=where, **row))
    if not rows:
        raise CliError("no records to score: the input is empty")
    return rows


def _records(path: str):
    from llada_tts.data.text import read_records

    if path != "-":
        try:
            return list(read_records(path))
        except ValueError as e:
            if "invalid JSON" not in str(e):
                raise
            raise CliError(f"{e}; score reads JSONL: one object a line, e.g. {{\"text\": \"...\"}} or "
                           f"{{\"prompt\": \"...\", \"answer\": \"...\"}}") from None
    out = []
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"stdin line {n}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"stdin line {n}: expected a JSON object, got {type(rec).__name__}")
        out.append((f"stdin line {n}", rec))
    return out


# --- scoring --------------------------------------------------------------------------------------

def score(model, rows: list[dict], mc_samples: int = 128, batch_size: int = 32, seed: int = 0) -> dict:
    """The report: per row and in total, the ELBO bound in nats, per token, and in bits per byte.

    One generator seeded with ``seed`` draws every row's masks in order, so the same rows and seed
    give the same numbers. stderr values are the standard errors of the Monte Carlo estimate."""
    import torch

    from llada_tts.evaluation.likelihood import bits_per_byte, elbo_nll

    generator = torch.Generator().manual_seed(seed)
    per_row, total, tokens, variance = [], 0.0, 0, 0.0
    for row in rows:
        est = elbo_nll(model, row["prompt"], row["answer"], mc_samples=mc_samples, batch_size=batch_size,
                       generator=generator)
        total, tokens, variance = total + est.nll, tokens + est.tokens, variance + est.stderr ** 2
        per_row.append({"where": row["where"], "tokens": est.tokens, "bytes": row["bytes"],
                        "nll": est.nll, "nll_per_token": est.per_token, "nll_per_token_stderr": est.stderr / est.tokens,
                        "bits_per_byte": None if row["bytes"] is None else bits_per_byte(est.nll, row["bytes"])})
    n_bytes = None if any(r["bytes"] is None for r in rows) else sum(r["bytes"] for r in rows)
    per_token = total / tokens
    return {"rows": len(rows), "tokens": tokens, "bytes": n_bytes, "mc_samples": mc_samples, "seed": seed,
            "nll": total, "nll_per_token": per_token, "nll_per_token_stderr": math.sqrt(variance) / tokens,
            "perplexity_bound": math.exp(min(per_token, 700.0)),
            "bits_per_byte": None if not n_bytes else bits_per_byte(total, n_bytes),
            "per_row": per_row}


def summary(report: dict) -> str:
    bpb = f", {report['bits_per_byte']:.4f} bits/byte" if report["bits_per_byte"] is not None else ""
    return (f"NLL bound {report['nll_per_token']:.4f} ± {report['nll_per_token_stderr']:.4f} nats/token"
            f"{bpb} (perplexity <= {report['perplexity_bound']:.4g}) over {report['rows']} "
            f"row{'s' * (report['rows'] != 1)}, {report['tokens']} tokens, {report['mc_samples']} draws each")


def run(args: argparse.Namespace) -> int:
    out_path = None
    if args.output is not None:
        from llada_tts.commands.common import check_output_path

        out_path = check_output_path(args.output)
    records = _records(args.input)  # read and checked before the model is loaded
    if not records:
        raise CliError(f"no records to score: {args.input} is empty")
    model, tokenizer = load_text_model(args)
    rows = score_rows(records, tokenizer, chat=args.chat)
    context = context_length(model)
    for row in rows:
        n = len(row["prompt"]) + len(row["answer"])
        if context is not None and n > context:
            raise CliError(f"{row['where']}: {n} tokens > the model's context of {context} tokens; split it")
    import os

    from llada_tts.commands.common import MODEL_ENV

    report = {"model": args.model or os.environ.get(MODEL_ENV), "input": args.input,
              **score(model, rows, args.mc_samples, args.batch_size, args.seed)}
    text = json.dumps(report, indent=1)
    if out_path is None:
        print(text)
    else:
        out_path.write_text(text + "\n", encoding="utf-8")
    print(summary(report), file=sys.stderr)
    return 0
