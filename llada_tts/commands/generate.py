"""``llada-tts generate``: text from a text checkpoint (recipes/pretrain.py, recipes/sft.py), one-shot or as a chat."""
from __future__ import annotations

import argparse
import os
import sys

from llada_tts.commands.common import (
    DEVICES,
    DTYPES,
    MODEL_ENV,
    CliError,
    add_sampler_arguments,
    resolve_device,
    resolve_dtype,
    seed_number,
)
from llada_tts.synthesis.defaults import TEXT_SAMPLER_OPTIONS
from llada_tts.synthesis.errors import SynthesisError
from llada_tts.synthesis.text_gen import (
    generate_text,
    model_context,
    text_generator,
    text_options,
    text_prompt_ids,
)

HELP = "write text with a text checkpoint (one-shot, --chat, or an --interactive chat)"
DESCRIPTION = """Continue PROMPT (an argument, or '-' for stdin) with a masked-diffusion text model trained by
recipes/pretrain.py or recipes/sft.py, and print the answer. --chat renders the prompt with the
checkpoint's chat template (for SFT models); --interactive starts a chat that keeps the conversation
(/reset forgets it, /exit or Ctrl-D quits). The answer ends at end-of-text / end-of-turn and is
streamed block by block with the semi-autoregressive methods. The same prompt, options and --seed
give the same answer. The flags of the earlier LLaDA scripts work too (--model_name_or_path,
--sampling_method, --remasking_strategy, --gen_length, --block_length, --cfg_scale, --is_instruct).

examples:
  llada-tts generate "The capital of France is" --model outputs/pretrain_tiny/checkpoint-epoch-2
  llada-tts generate "What is a cat?" --model sft_ckpt/ --chat --gen-length 64 --steps 64 --block-length 16
  llada-tts generate --model sft_ckpt/ --interactive --method fixed_length --gen-length 128 --steps 128"""

REPL_HELP = "commands: /reset (forget the conversation), /exit (or Ctrl-D) to quit"


def add_text_model_arguments(p: argparse.ArgumentParser) -> None:
    """--model (alias --model_name_or_path), --device, --dtype: a text checkpoint needs no codec."""
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", "--model_name_or_path", dest="model", default=None, metavar="DIR_OR_ID",
                   help=f"checkpoint folder (checkpoint-epoch-N of recipes/pretrain.py or sft.py) or hub id "
                        f"(default: ${MODEL_ENV})")
    g.add_argument("--device", choices=DEVICES, default="auto", help="where to run (auto: cuda, then mps, then cpu)")
    g.add_argument("--dtype", choices=DTYPES, default="auto",
                   help="model weights dtype (auto: bfloat16 on a bf16-capable GPU, else float32)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", default=None, help="the prompt; '-' reads stdin (optional with --interactive)")
    p.add_argument("--chat", "--is_instruct", action="store_true",
                   help="render the prompt with the checkpoint's chat template (instruction-tuned / SFT models)")
    p.add_argument("--interactive", action="store_true",
                   help="chat in a loop, keeping the conversation (implies --chat); /reset, /exit, Ctrl-D")
    p.add_argument("--seed", type=seed_number, default=None,
                   help="seed for temperature sampling and random remasking, 0 .. 2**64 - 1 (default: unseeded; "
                        "temperature 0 with low_confidence remasking needs none)")
    add_text_model_arguments(p)
    add_sampler_arguments(p, TEXT_SAMPLER_OPTIONS)


# --- settings -------------------------------------------------------------------------------------

_FLAG_NAMES = (("gen_length", "--gen-length"), ("block_length", "--block-length"), ("steps (", "--steps ("),
               ("use steps=", "use --steps "))


def text_generation_options(args: argparse.Namespace) -> dict:
    """The text sampler options of the flags (``text_options``: validated, defaults filled), before
    any model is loaded (exit 2): LLaDA's defaults (128 tokens, 128 steps, blocks of 32, greedy), steps
    defaulting to gen_length. Messages name the flags."""
    given = {o.name: getattr(args, o.dest, None) for o in TEXT_SAMPLER_OPTIONS}
    try:
        return text_options(given)
    except SynthesisError as e:
        raise CliError(_flag_names(str(e))) from None


def _flag_names(message: str) -> str:
    for name, flag in _FLAG_NAMES:
        message = message.replace(name, flag)
    return message


# --- loading --------------------------------------------------------------------------------------

def tts_only_reason(path) -> str | None:
    """Why the checkpoint folder ``path`` cannot write text (None: it can, as far as it records):
    its ``train_config.yaml`` names a TTS_dataset and no text_QA_dataset."""
    from pathlib import Path

    import yaml

    cfg_file = Path(path) / "train_config.yaml"
    if not cfg_file.is_file():
        return None  # a converted / hub model: nothing recorded
    try:
        cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if isinstance(cfg, dict) and cfg.get("TTS_dataset") and not cfg.get("text_QA_dataset"):
        return (f"{path} is a TTS-only checkpoint (trained on TTS rows without text_QA_dataset): it speaks, it "
                "does not write text; use `llada-tts say`, or train a text model with recipes/pretrain.py or "
                "recipes/sft.py (or tts_train.py with a text_QA_dataset)")
    return None


def load_text_model(args: argparse.Namespace):
    """(model in eval mode, tokenizer) of a text checkpoint from --model / --device / --dtype (CliError, one line)."""

    from transformers.utils import logging as hf_logging

    from audio_tokenizer.errors import first_line
    from audio_tokenizer.hub import local_folder
    from llada_tts.model import load_model
    from llada_tts.vocab import load_tokenizer

    name = args.model or os.environ.get(MODEL_ENV)
    if not name:
        raise CliError(f"no model: pass --model CKPT (a checkpoint-epoch-N folder of recipes/pretrain.py or "
                       f"recipes/sft.py) or set ${MODEL_ENV}")
    try:
        path = local_folder(name, "config.json", "checkpoint folder")  # None: a hub id
    except FileNotFoundError as e:
        raise CliError(f"model: {e}") from e
    local = path is not None
    if local:
        reason = tts_only_reason(path)
        if reason:
            raise CliError(reason)
        name = str(path)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    hf_logging.disable_progress_bar()
    try:
        model = load_model(name, dtype=dtype, device=device).eval()
    except (OSError, ValueError) as e:
        raise CliError(f"model: {first_line(e)}") from e
    try:
        tokenizer = load_tokenizer(name)
    except (OSError, ValueError, TypeError) as e:
        raise CliError(f"model: cannot load the tokenizer of {name}: {first_line(e)}") from e
    return model, tokenizer


def context_length(model) -> int | None:
    return model_context(model)


# --- prompts and answers --------------------------------------------------------------------------

def prompt_ids(tokenizer, text: str | None = None, messages: list[dict] | None = None) -> list[int]:
    """``text_prompt_ids`` with its error as a CliError naming the flags."""
    try:
        return text_prompt_ids(tokenizer, text, messages)
    except SynthesisError:
        raise CliError("--chat / --interactive need a chat template, and this checkpoint's tokenizer has none") \
            from None


def check_fits(n_prompt: int, options: dict, context: int | None) -> None:
    gen_length = options["gen_length"]
    if context is not None and n_prompt + gen_length > context:
        raise CliError(f"the prompt is {n_prompt} tokens; with --gen-length {gen_length} that is "
                       f"{n_prompt + gen_length} > the model's context of {context} tokens: shorten the "
                       "prompt (or /reset the chat) or lower --gen-length")


def generate_answer(model, tokenizer, ids: list[int], options: dict, generator=None, out=None) -> tuple[str, list[int]]:
    """(answer text, answer ids) for prompt ``ids`` (``generate_text``), streamed to ``out`` (a text
    stream) block by block when given, then a newline."""
    written = []

    def write(piece: str) -> None:
        out.write(piece)
        out.flush()
        written.append(piece)

    try:
        result = generate_text(model, tokenizer, ids, options, generator=generator,
                               on_block=write if out is not None else None)
    except BaseException:
        if written:  # a partly streamed answer: end its line before any message
            write("\n")
        raise
    if out is not None:
        write("\n")
    return result.text, result.ids


# --- the command ----------------------------------------------------------------------------------

def _read_prompt(args: argparse.Namespace) -> str | None:
    text = sys.stdin.read() if args.prompt == "-" else args.prompt
    if text is None:
        if not args.interactive:
            raise CliError("no prompt: give it as an argument ('-' reads stdin), or chat with --interactive")
        return None
    if not text.strip():
        raise CliError("the prompt is empty: give some text to continue (or --interactive to chat)")
    return text


def run(args: argparse.Namespace) -> int:
    text = _read_prompt(args)
    options = text_generation_options(args)  # before loading anything slow
    model, tokenizer = load_text_model(args)
    if (args.chat or args.interactive) and not getattr(tokenizer, "chat_template", None):
        raise CliError(f"--chat / --interactive need a chat template, and {args.model or 'the model'}'s tokenizer "
                       "has none (plain prompts work without --chat)")
    generator = text_generator(model, args.seed)
    if args.interactive:
        return _repl(model, tokenizer, options, generator, text)
    chat = [{"role": "user", "content": text}] if args.chat else None
    ids = prompt_ids(tokenizer, text, chat)
    check_fits(len(ids), options, context_length(model))
    generate_answer(model, tokenizer, ids, options, generator, out=sys.stdout)
    return 0


def _repl(model, tokenizer, options: dict, generator, first: str | None) -> int:
    try:
        import readline  # noqa: F401  line editing and history for input(), where available
    except ImportError:
        pass
    context = context_length(model)
    messages: list[dict] = []
    print(f"chatting with the model; {REPL_HELP}", file=sys.stderr)
    pending = first
    while True:
        if pending is None:
            try:
                line = input(">>> ")
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                print()
                continue
        else:
            line, pending = pending, None
        line = line.strip()
        if not line:
            continue
        if line in ("/exit", "/quit"):
            return 0
        if line == "/reset":
            messages.clear()
            print("(conversation cleared)", file=sys.stderr)
            continue
        if line.startswith("/"):
            print(REPL_HELP, file=sys.stderr)
            continue
        turn = [*messages, {"role": "user", "content": line}]
        try:
            ids = prompt_ids(tokenizer, messages=turn)
            check_fits(len(ids), options, context)
            answer, _ = generate_answer(model, tokenizer, ids, options, generator, out=sys.stdout)
        except (CliError, ValueError, RuntimeError) as e:  # e.g. out of memory: this turn fails, the chat goes on
            print(f"llada-tts generate: error: {_turn_error(e)} (this turn is dropped; the conversation goes on)",
                  file=sys.stderr)
            continue
        except KeyboardInterrupt:
            print("\n(interrupted; the turn is not kept)", file=sys.stderr)
            continue
        messages = [*turn, {"role": "assistant", "content": answer}]


def _turn_error(e: BaseException) -> str:
    """One line for a failed REPL turn."""
    from audio_tokenizer.errors import first_line

    line = first_line(e)
    if isinstance(e, CliError):
        return line
    if isinstance(e, SynthesisError):
        return _flag_names(line)
    return f"{type(e).__name__}: {line}" if isinstance(e, RuntimeError) else line
