"""``llada-tts train``: mixed text + TTS masked-diffusion training, the command line of
``python recipes/tts_train.py`` (``llada_tts.training.cli``): the same options, messages and exit statuses."""
from __future__ import annotations

import argparse

from llada_tts.commands.delegate import prog

HELP = "train a model on TTS (+ text) rows from a YAML config (= python recipes/tts_train.py)"
PASSTHROUGH = True  # every word after `train`, --help included, goes to the training command line


def run(args: argparse.Namespace) -> int:
    from llada_tts.training.cli import main  # torch and accelerate: only when training

    return main(args.argv, recipe="tts", prog=prog("train"))
