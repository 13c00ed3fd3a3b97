"""Launcher of the web demo in a checkout: ``python app/app.py --model CHECKPOINT ...`` = ``llada-tts app ...``.

The demo itself is the package ``llada_tts.app`` (installed with ``pip install -e '.[app]'``)."""
import sys

from llada_tts.app import main

if __name__ == "__main__":
    sys.exit(main(prog="python app/app.py"))
