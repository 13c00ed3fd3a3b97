"""``llada-tts score``: LLaDA's ELBO bound on the NLL of held-out text, per token and in bits per byte."""
from __future__ import annotations

import argparse
import json
import os
import sys

from llada_tts.commands.common import MODEL_ENV, CliError, check_output_path, positive_int, seed_number
from llada_tts.commands.generate import add_text_model_arguments, context_length, load_text_model

HELP = "LLaDA ELBO bound on held-out text: NLL per token and bits per byte"
DESCRIPTION = """Score held-out text with a text checkpoint (recipes/pretrain.py, recipes/sft.py): LLaDA's Monte Carlo
ELBO, an upper bound on the negative log-likelihood (get_log_likelihood.py of the official LLaDA
repository: exactly l of the L scored tokens masked, l stratified over the --mc-samples draws,
weight L / l). Prints JSON (totals and one entry per row) on stdout and a one-line summary on stderr.

Input: JSONL, one record a line (or a folder of .jsonl files; '-' reads stdin):
  {"text": "..."}                          a document: BOS given, the text + end_of_text scored
  {"prompt": "...", "answer": "..."}       the answer scored after BOS + the prompt (--chat: as the
                                           conversation [user prompt, assistant answer], the answer
                                           + end of turn, as below)
  {"messages": [...]} / {"conversations": [...]}   the last assistant turn scored, as in SFT
  {"input_ids": [...], "prompt_length": n} pre-tokenised (no bits per byte)
bits per byte = the bound in bits over the UTF-8 bytes of the scored text (the answer). For text
and conversation rows the scored ids end with end_of_text / end of turn: that token's NLL is in
the bound (the model also predicts where the text ends) but it has no bytes ("end_token": true
in the row), so bits per byte is that token's share above a text-only figure. --chat scores a
prompt/answer record exactly as {"messages": [user prompt, assistant answer]}.
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
                   help="prompt/answer records: score them as the conversation {\"messages\": [user prompt, "
                        "assistant answer]} through the chat template (the same numbers as that spelling)")
    p.add_argument("-o", "--output", default=None, metavar="JSON", help="write the JSON here instead of stdout")
    add_text_model_arguments(p)


# --- the command (records: llada_tts.evaluation.records; the bound: llada_tts.evaluation.likelihood) --

def summary(report: dict) -> str:
    bpb = f", {report['bits_per_byte']:.4f} bits/byte" if report["bits_per_byte"] is not None else ""
    return (f"NLL bound {report['nll_per_token']:.4f} ± {report['nll_per_token_stderr']:.4f} nats/token"
            f"{bpb} (perplexity <= {report['perplexity_bound']:.4g}) over {report['rows']} "
            f"row{'s' * (report['rows'] != 1)}, {report['tokens']} tokens, {report['mc_samples']} draws each")


def run(args: argparse.Namespace) -> int:
    out_path = None if args.output is None else check_output_path(args.output)
    from llada_tts.evaluation.likelihood import score_report
    from llada_tts.evaluation.records import read_score_records, score_rows

    records = read_score_records(args.input)  # read and checked before the model is loaded
    if not records:
        raise CliError(f"no records to score: {args.input} is empty")
    model, tokenizer = load_text_model(args)
    rows = score_rows(records, tokenizer, chat=args.chat)
    context = context_length(model)
    for row in rows:
        n = len(row["prompt"]) + len(row["answer"])
        if context is not None and n > context:
            raise CliError(f"{row['where']}: {n} tokens > the model's context of {context} tokens; split it")
    report = {"model": args.model or os.environ.get(MODEL_ENV), "input": args.input,
              **score_report(model, rows, args.mc_samples, args.batch_size, args.seed)}
    text = json.dumps(report, indent=1)
    if out_path is None:
        print(text)
    else:
        out_path.write_text(text + "\n", encoding="utf-8")
    print(summary(report), file=sys.stderr)
    return 0
