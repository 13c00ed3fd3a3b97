"""``llada-tts``: one console script, one module per subcommand in ``llada_tts/commands/``.

Each ``llada_tts/commands/<name>.py`` exposes ``HELP`` (one line), ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> int``; a command that hands its words to another command
line (``train``, ``data``) sets ``PASSTHROUGH = True`` instead of the last two and gets them, ``--help``
included, as ``args.argv``. Expected failures print one line
``llada-tts <cmd>: error: ...`` (exit 2: bad input / usage, 1: runtime failure, 130: Ctrl-C);
``--verbose`` or ``LLADA_TTS_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

COMMANDS = ("say", "edit", "voices", "info", "app", "eval", "tokenizer", "quickstart", "serve", "generate", "score",
            "train", "data")
EPILOG = """examples:
  llada-tts say "Hello there." -o hello.wav --model path/to/checkpoint
  llada-tts voices --model path/to/checkpoint
  llada-tts info --model path/to/checkpoint --json
  llada-tts generate "The capital of France is" --model path/to/text_checkpoint
  llada-tts data build --input my_corpus --output data/my_tok --tokenizer ./tokenizer --codec ./snac_24khz
  llada-tts train --config recipes/configs/tiny_cpu.yaml
run `llada-tts <command> --help` for each command's options."""


def _load_commands() -> dict:
    """name -> module for every subcommand module that exists (others are skipped silently)."""
    found = {}
    for name in COMMANDS:
        module_name = f"llada_tts.commands.{name}"
        try:
            found[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:  # a missing dependency inside an existing command: a real error
                raise
    return found


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (``llada-tts say: error: ...``), exit 2. A pass-through parser
    (``passthrough = True``) parses nothing: every word after its command, ``--help`` too, goes to
    ``args.argv`` for the command line it hands them to."""

    passthrough = False

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        if not self.passthrough:
            return super().parse_known_args(args, namespace)
        words = list(sys.argv[1:] if args is None else args)
        namespace, _ = super().parse_known_args([], namespace)  # the defaults only (the command's run)
        namespace.argv = words
        return namespace, []


def build_parser(commands: dict | None = None) -> argparse.ArgumentParser:
    commands = _load_commands() if commands is None else commands
    parser = Parser(
        prog="llada-tts", description="Speech synthesis with a masked-diffusion language model over SNAC codec tokens.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="show full tracebacks on errors (or LLADA_TTS_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, module in commands.items():
        if getattr(module, "PASSTHROUGH", False):  # its own command line parses the words (and shows its --help)
            p = sub.add_parser(name, help=module.HELP, add_help=False)
            p.passthrough = True
            p.set_defaults(_run=module.run)
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="show full tracebacks on errors (or LLADA_TTS_DEBUG=1)")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _error(cmd: str | None, message: str) -> None:
    print(f"llada-tts{' ' + cmd if cmd else ''}: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits 2 with its own one-line usage error
    if args.command is None:
        parser.print_help()
        return 2
    debug = getattr(args, "verbose", False) or os.environ.get("LLADA_TTS_DEBUG", "") not in ("", "0")
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        _error(args.command, "interrupted")
        return 130
    except Exception as e:  # noqa: BLE001  every failure ends in one line (the traceback with --verbose)
        if debug:
            traceback.print_exc()
        code, message, expected = _classify(e)
        if not expected and not debug:
            message += " (run with --verbose for the traceback)"
        _error(args.command, message)
        return code


def _classify(e: BaseException) -> tuple[int, str, bool]:
    """(exit code, one-line message, expected) for an exception. The project's own errors
    (``LladaTTSError``) carry their exit code; foreign ones are sorted by type. ``expected``: the
    message says all there is (no traceback hint)."""
    from audio_tokenizer.errors import LladaTTSError, first_line

    line = first_line(e)
    if isinstance(e, LladaTTSError):
        return e.exit_code, line, True
    if type(e).__name__ == "SafetensorError":  # a truncated / damaged weights file (no import of safetensors here)
        return 2, (f"a .safetensors weights file is damaged or incomplete (truncated download or copy?): {line}; "
                   "re-download or re-copy the checkpoint"), True
    if isinstance(e, (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return 2, line, True
    if isinstance(e, OSError):
        return 1, line, True
    return 1, f"{type(e).__name__}: {line}", False


if __name__ == "__main__":
    sys.exit(main())
