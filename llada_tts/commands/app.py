"""``llada-tts app``: start the Gradio web demo (``app/app.py`` of a source checkout).

``app/`` is not an installed package: this command loads ``app/app.py`` from the checkout the
package lives in, so it needs an editable install (``pip install -e ".[app]"``). gradio is imported
only when the demo starts, never when the CLI builds its parsers.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HELP = "start the web demo (Gradio) on http://127.0.0.1:7860"
DESCRIPTION = """Start the Gradio web demo. Speak tab: a text box, a voice, an optional reference recording +
transcript (continue its voice), sampler settings, a Generate button, an audio player with a download
button, a status line (duration, wall time, real-time factor, NFE) and the output's spectrogram.
Edit tab: upload a recording, type what it says and what it should say (and the seconds of each
change, unless Whisper is installed); get the edited audio and before / after spectrograms with the
edited spans highlighted.

It binds to 127.0.0.1 (this machine only) unless --host is given and never opens a public link
unless --share. Needs a source checkout installed with pip install -e '.[app]'.

examples:
  llada-tts app --model path/to/checkpoint                  # then open http://127.0.0.1:7860
  llada-tts app --model ckpt/ --port 8080 --concurrency 2
  llada-tts app --model ckpt/ --host 0.0.0.0                # reachable from your network (no auth!)"""
MISSING = ("error: the web demo lives in app/app.py of a source checkout and {path} does not exist; "
           "clone the repository and install it with pip install -e '.[app]', then run llada-tts app again")


def app_path() -> Path:
    import llada_tts

    return Path(llada_tts.__file__).resolve().parents[1] / "app" / "app.py"


def load_app() -> ModuleType | None:
    """``app/app.py`` as a module (cheap: it imports gradio and torch lazily); None if absent."""
    path = app_path()
    if not path.is_file():
        return None
    name = "llada_tts_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def add_arguments(parser: argparse.ArgumentParser) -> None:
    module = load_app()
    if module is None:  # run() explains; accept anything so the message is not an argparse error
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    module.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    module = load_app()
    if module is None:
        print(MISSING.format(path=app_path()), file=sys.stderr)
        return 2
    return module.run(args)
