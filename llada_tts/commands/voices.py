"""``llada-tts voices``: the voices a checkpoint was trained on (from its llada_tts.json)."""
from __future__ import annotations

import argparse
import json

from audio_tokenizer.errors import first_line
from audio_tokenizer.hub import local_folder
from llada_tts.commands.common import CliError, model_name

HELP = "list the voices of a checkpoint"
DESCRIPTION = """List the voices recorded in a checkpoint's llada_tts.json (written by the trainer from the
TTS dataset's voice column). Reads only that file: no weights are loaded.

example:
  llada-tts voices --model path/to/checkpoint"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=None, metavar="DIR_OR_ID",
                   help="checkpoint folder or hub id (default: $LLADA_TTS_MODEL, else the default checkpoint)")
    p.add_argument("--json", action="store_true", help="print a JSON list")


def _meta_dir(name: str):
    from pathlib import Path

    from llada_tts import demo_voice

    try:
        name = demo_voice.resolve(name)
    except FileNotFoundError as e:
        raise CliError(f"{e}; pass --model DIR_OR_ID") from e
    try:
        path = local_folder(name, "config.json", "checkpoint folder")  # None: a hub id
    except FileNotFoundError as e:
        raise CliError(str(e)) from e
    if path is not None:
        return path
    from huggingface_hub import hf_hub_download

    from llada_tts.checkpoint_meta import META_FILE

    try:
        return Path(hf_hub_download(name, META_FILE)).parent
    except Exception:  # noqa: BLE001  no metadata file, or no hub at all: tell them apart
        pass
    try:
        hf_hub_download(name, "config.json")
    except Exception as e:  # noqa: BLE001  offline, unknown repo
        raise CliError(f"{name!r} is not a local folder and cannot be fetched from the hub "
                       f"({first_line(e)})") from e
    return None


def run(args: argparse.Namespace) -> int:
    from llada_tts.checkpoint_meta import CheckpointMeta, read_meta

    name = model_name(args)
    folder = _meta_dir(name)
    meta = read_meta(folder) if folder is not None else CheckpointMeta()
    if args.json:
        print(json.dumps(meta.voices))
    elif meta.voices:
        print("\n".join(meta.voices))
    else:
        print(f"{name}: no voices recorded (no llada_tts.json or an empty voice list); "
              "synthesize without --voice, or with a voice name the model was trained on")
    return 0
