"""``llada-tts tokenizer``: save an Orpheus-extended Llama-3 tokenizer (or the offline one) to a folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from llada_tts.commands.common import CliError

HELP = "save an Orpheus-extended Llama-3 tokenizer (or the offline byte-level one) to a folder"
DESCRIPTION = """Load a Llama-3 tokenizer (hub id or folder), add the Orpheus special and audio tokens and
the diffusion mask token if they are missing, check every id against the token layout, and save it to OUT.
`--from offline` saves the byte-level test tokenizer with the same ids (no download): enough for
plumbing and the offline quickstart, not for real training. The folder works wherever a tokenizer is
asked for (`python -m audio_tokenizer build --tokenizer OUT`, the trainer's `tokenizer_name`).

examples:
  llada-tts tokenizer tok/ --from meta-llama/Llama-3.2-1B-Instruct
  llada-tts tokenizer tok/ --from offline"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output folder (must not exist unless --overwrite)")
    p.add_argument("--from", dest="source", required=True, metavar="ID_OR_DIR",
                   help="Llama-3 tokenizer hub id or folder, or 'offline'")
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing OUT")


def run(args) -> int:
    from audio_tokenizer.errors import first_line
    from llada_tts.vocab import build_offline_tokenizer, load_tokenizer

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CliError(f"{out} exists; pass --overwrite to replace it")
    try:
        tok = build_offline_tokenizer() if args.source == "offline" else load_tokenizer(args.source)
    except (OSError, ValueError) as e:
        raise CliError(f"cannot load tokenizer {args.source!r}: {first_line(e)}") from e
    tok.save_pretrained(out)
    print(f"wrote {'the offline byte-level' if args.source == 'offline' else args.source} tokenizer "
          f"({len(tok)} ids, Orpheus layout checked) to {out}")
    return 0
