"""Export a trained compact-embedding checkpoint as an fp16 voice folder (what ships as the demo voice).

    python recipes/export_voice.py outputs/voice/run/checkpoint-epoch-4.8 llada_tts/assets/demo_voice \
        --readme outputs/voice/README.md

The weights stay compact (only the rows the byte tokenizer, the control tokens and the audio codes
use) and tied; tokenizer files are left out when the offline byte tokenizer rebuilds them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="trained checkpoint folder (config.json, model.safetensors, llada_tts.json)")
    ap.add_argument("out", help="voice folder to write (replaced atomically)")
    ap.add_argument("--readme", default=None, help="a markdown file to ship as the folder's README.md")
    ap.add_argument("--sampler", action="append", default=[], metavar="KEY=VALUE",
                    help="a default sampler option recorded in llada_tts.json (repeatable), e.g. tokens_per_step=7")
    args = ap.parse_args(argv)
    from llada_tts.demo_voice import export_voice
    from llada_tts.synthesis.defaults import parse_sampler_items
    from llada_tts.synthesis.errors import SynthesisError

    try:
        sampler = parse_sampler_items(args.sampler)
    except ValueError as e:
        ap.error(str(e))

    if not (Path(args.checkpoint) / "config.json").is_file():
        print(f"error: {args.checkpoint} is not a checkpoint folder (no config.json)", file=sys.stderr)
        return 2
    readme = Path(args.readme).read_text(encoding="utf-8") if args.readme else None
    try:
        out = export_voice(args.checkpoint, args.out, readme=readme, sampler=sampler)
    except SynthesisError as e:
        print(f"error: --sampler: {e}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"wrote {out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
