"""``llada-tts data corpus | build | random-codec | eval-codec``: make, tokenise and check speech datasets,
the command line of ``python -m audio_tokenizer`` (the same options, messages and exit statuses; usage errors
in one line, as every llada-tts command)."""
from __future__ import annotations

import argparse

from llada_tts.commands.delegate import prog

HELP = "speech datasets: corpus | build | random-codec | eval-codec (= python -m audio_tokenizer)"
PASSTHROUGH = True  # every word after `data`, --help included, goes to audio_tokenizer's command line


def run(args: argparse.Namespace) -> int:
    from audio_tokenizer.__main__ import main
    from llada_tts.cli import Parser

    return main(args.argv, prog=prog("data"), parser_class=Parser)
