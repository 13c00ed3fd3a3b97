"""The demo's options (shared by ``llada-tts app``, ``python -m llada_tts.app`` and ``python app/app.py``) and
what they make of gradio's ``launch`` / ``queue`` arguments: local-only unless --host, no share link unless --share."""
from __future__ import annotations

import argparse

MAX_UPLOAD = "50mb"  # recordings to edit / reference recordings: gradio refuses larger uploads
PROG = "python -m llada_tts.app"
DESCRIPTION = "Gradio web demo for llada-tts: type text, pick a voice, press Generate, listen or download."


def port_number(text: str) -> int:
    from llada_tts.commands.common import ranged_number

    return ranged_number(int, "a port number", lambda v: 1 <= v <= 65535, "in 1..65535")(text)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The demo's options, added to ``parser`` (``llada-tts app`` adds them to its subcommand)."""
    from llada_tts.commands.common import add_model_arguments, positive_float, positive_int

    add_model_arguments(parser)  # --model/-m, --codec, --device, --dtype: as in `llada-tts say`
    g = parser.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes the demo, "
                        "which has no authentication, to your network)")
    g.add_argument("--port", type=port_number, default=7860, help="port to listen on (default 7860)")
    g.add_argument("--share", action="store_true",
                   help="also open a public *.gradio.live link (default off; anyone with the link can use it)")
    g.add_argument("--concurrency", type=positive_int, default=1,
                   help="requests synthesised at the same time; the others wait in the queue (default 1)")
    g.add_argument("--max-queue", type=positive_int, default=20,
                   help="requests allowed to wait; later ones are turned away with a message (default 20)")
    g = parser.add_argument_group("limits")
    g.add_argument("--max-chars", type=positive_int, default=1000,
                   help="longest text accepted per request, in characters (default 1000)")
    g.add_argument("--max-duration", type=positive_float, default=60.0,
                   help="longest audio per request in seconds; longer requests are refused (default 60)")
    return parser


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The stand-alone parser (``python -m llada_tts.app``, ``python app/app.py``)."""
    return add_arguments(argparse.ArgumentParser(prog=prog, description=DESCRIPTION))


def launch_kwargs(args: argparse.Namespace) -> dict:
    """What ``demo.launch`` gets: local-only unless --host, no share link unless --share."""
    return dict(server_name=args.host, server_port=args.port, share=bool(args.share), ssr_mode=False,
                show_error=False, footer_links=[], theme=_theme(), quiet=False, max_file_size=MAX_UPLOAD)


def queue_kwargs(args: argparse.Namespace) -> dict:
    return dict(default_concurrency_limit=args.concurrency, max_size=args.max_queue)


def _theme():
    """Default theme with system fonts: the page makes no request to Google Fonts."""
    import gradio as gr

    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    mono = ["ui-monospace", "monospace"]
    return gr.themes.Default(font=system, font_mono=mono)
