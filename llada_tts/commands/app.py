"""``llada-tts app``: start the Gradio web demo (``llada_tts.app``; gradio is imported only when it starts)."""
from __future__ import annotations

import argparse

from llada_tts import app as demo

HELP = "start the web demo (Gradio) on http://127.0.0.1:7860"
DESCRIPTION = """Start the Gradio web demo. Speak tab: a text box, a voice, an optional reference recording +
transcript (continue its voice), sampler settings, a Generate button, an audio player with a download
button, a status line (duration, wall time, real-time factor, NFE) and the output's spectrogram.
Edit tab: upload a recording, type what it says and what it should say (and the seconds of each
change, unless Whisper is installed); get the edited audio and before / after spectrograms with the
edited spans highlighted.

It binds to 127.0.0.1 (this machine only) unless --host is given and never opens a public link
unless --share. Needs the app extra: pip install 'llada-tts[app]' (in a checkout: pip install -e '.[app]').

examples:
  llada-tts app --model path/to/checkpoint                  # then open http://127.0.0.1:7860
  llada-tts app --model ckpt/ --port 8080 --concurrency 2
  llada-tts app --model ckpt/ --host 0.0.0.0                # reachable from your network (no auth!)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    demo.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return demo.run(args)
