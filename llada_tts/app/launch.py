"""Start the demo: load the model, build the page, serve it until Ctrl-C."""
from __future__ import annotations

import argparse
import os
import sys

from audio_tokenizer.errors import first_line
from llada_tts.app.options import PROG, build_parser, launch_kwargs, queue_kwargs
from llada_tts.app.ui import build_demo


def run(args: argparse.Namespace) -> int:
    """Load the model, start the server, block until Ctrl-C. Bad options or files: one line, exit 2."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no phoning home
    try:
        import gradio  # noqa: F401  only checks that the app extra is installed
    except ImportError:
        print("error: the web demo needs gradio: pip install 'llada-tts[app]' (in a checkout: "
              "pip install -e '.[app]')", file=sys.stderr)
        return 2
    from llada_tts.commands.common import CliError, load_tts, model_name

    print(f"loading {model_name(args)} ...", file=sys.stderr, flush=True)
    try:
        tts = load_tts(args)
    except (CliError, ValueError) as e:  # SynthesisError: "model: ..." / "codec: ..." in one line
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 2
    except (ImportError, OSError, RuntimeError) as e:
        print(f"error: could not load {model_name(args)!r}: {type(e).__name__}: {first_line(e)}", file=sys.stderr)
        return 1
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host}: anyone who can reach this address can use the demo "
              "(it has no authentication)", file=sys.stderr)
    demo = build_demo(tts, max_chars=args.max_chars, max_duration=args.max_duration)
    demo.queue(**queue_kwargs(args))
    try:
        demo.launch(**launch_kwargs(args))
    except OSError as e:
        print(f"error: could not start the server on {args.host}:{args.port}: {first_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        demo.close()
    return 0


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Parse ``argv`` (usage errors exit 2) and run the demo; ``prog`` names the command in its help."""
    return run(build_parser(prog).parse_args(argv))
