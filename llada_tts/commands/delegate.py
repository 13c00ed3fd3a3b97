"""Commands that hand their words to another command line (``llada-tts train``, ``llada-tts data``)."""
from __future__ import annotations

import sys
from pathlib import Path


def prog(command: str, argv0: str | None = None) -> str:
    """The command as the user typed it, for the other command line's usage and messages (a resume
    command, for example): ``llada-tts train`` from the console script, ``python -m llada_tts train``
    otherwise (``python -m llada_tts``, or ``accelerate launch -m llada_tts train`` on several GPUs)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    return f"llada-tts {command}" if Path(argv0).stem == "llada-tts" else f"python -m llada_tts {command}"
