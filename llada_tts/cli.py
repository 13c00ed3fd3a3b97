"""``llada-tts``: one console script, one module per subcommand in ``llada_tts/commands/``.

Each ``llada_tts/commands/<name>.py`` exposes ``HELP`` (one line), ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> int``. Expected failures print one line
``llada-tts <cmd>: error: ...`` (exit 2: bad input / usage, 1: runtime failure, 130: Ctrl-C);
``--verbose`` or ``LLADA_TTS_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

COMMANDS = ("say", "edit", "voices", "info", "app", "eval", "tokenizer", "quickstart", "serve", "generate", "score")
EPILOG = """examples:
  llada-tts say "Hello there." -o hello.wav --model path/to/checkpoint
  llada-tts voices --model path/to/checkpoint
  llada-tts info --model path/to/checkpoint --json
  llada-tts generate "The capital of France is" --model path/to/text_checkpoint
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


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (``llada-tts say: error: ...``), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(commands: dict | None = None) -> argparse.ArgumentParser:
    commands = _load_commands() if commands is None else commands
    parser = _Parser(
        prog="llada-tts", description="Speech synthesis with a masked-diffusion language model over SNAC codec tokens.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="show full tracebacks on errors (or LLADA_TTS_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, module in commands.items():
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
    from llada_tts.commands.common import CliError

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
        code, message = _classify(e)
        if code == 1 and not isinstance(e, (CliError, OSError)) and not _is_synthesis_error(e) and not debug:
            message += " (run with --verbose for the traceback)"
        _error(args.command, message)
        return code


def _is_synthesis_error(e: BaseException) -> bool:
    from llada_tts.synthesis.errors import SynthesisError

    return isinstance(e, SynthesisError)


def _classify(e: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an exception."""
    from audio_tokenizer.errors import first_line
    from llada_tts.commands.common import CliError
    from llada_tts.synthesis.errors import NoAudioError

    line = first_line(e)
    if isinstance(e, CliError):
        return e.code, line
    if type(e).__name__ == "SafetensorError":  # a truncated / damaged weights file (no import of safetensors here)
        return 2, (f"a .safetensors weights file is damaged or incomplete (truncated download or copy?): {line}; "
                   "re-download or re-copy the checkpoint")
    if isinstance(e, NoAudioError):
        return 1, line
    if isinstance(e, (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return 2, line
    if isinstance(e, OSError):
        return 1, line
    return 1, f"{type(e).__name__}: {line}"


if __name__ == "__main__":
    sys.exit(main())
