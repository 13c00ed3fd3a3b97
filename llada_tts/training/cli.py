"""Command line shared by recipes/tts_train.py, pretrain.py and sft.py.

    python recipes/tts_train.py --config x.yaml [--key value ...] [--resume [CHECKPOINT]] [--overwrite_output_dir]
    python recipes/tts_train.py --resume CHECKPOINT [--key value ...]   (the checkpoint's own config and folder)
    python recipes/tts_train.py --create-sample-config [PATH]

Exit status: 0 done, 2 bad config / data / checkpoint (one line), 1 training diverged (NaN loss), 130 interrupted.
    accelerate launch --config_file recipes/accelerate/ddp.yaml recipes/tts_train.py --config x.yaml
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from audio_tokenizer.errors import first_line
from audio_tokenizer.typed_config import ArgumentParser
from llada_tts.training.config import ALIASES, TrainConfig, load_config, parse_overrides, write_sample_config

RECIPES = {  # name -> (legacy section, what it trains, sample-config overrides)
    "tts": ("tts", "mixed text + TTS masked-diffusion training",
            dict(TTS_dataset="/path/to/tts_dataset", model_name="meta-llama/Llama-3.2-3B-Instruct",
                 tokenizer_name="meta-llama/Llama-3.2-3B-Instruct", epochs=10, gradient_checkpointing=True)),
    "pretrain": ("pretraining", "LLaDA text pretraining (JSONL {text} or {input_ids}, packed to max_length)",
                 dict(text_QA_dataset="/path/to/pretrain.jsonl", text_format="text", model_name="1b",
                      tokenizer_name="meta-llama/Llama-3.2-1B", learning_rate=4e-4, weight_decay=0.1,
                      warmup="1%", lr_scheduler_type="cosine", max_length=4096)),
    "sft": ("sft", "LLaDA supervised fine-tuning (conversations or input_ids + prompt_length)",
            dict(text_QA_dataset="/path/to/sft.jsonl", text_format="sft", model_name="/path/to/pretrained",
                 tokenizer_name="meta-llama/Llama-3.2-1B-Instruct", learning_rate=2.5e-5, epochs=3,
                 warmup="3%")),
}


def recipe_config(cfg: TrainConfig, recipe: str) -> TrainConfig:
    """Apply a text recipe's fixed settings (text only, its text_format), rejecting contradictions."""
    if recipe == "tts":
        return cfg
    fmt = "text" if recipe == "pretrain" else "sft"
    if cfg.TTS_dataset is not None:
        raise ValueError(f"TTS_dataset is set, but {recipe}.py trains on text only; use recipes/tts_train.py "
                         "for mixed text + TTS training")
    if cfg.text_QA_dataset is None:
        raise ValueError(f"{recipe}.py needs text_QA_dataset (alias data_path): the {fmt} JSONL to train on")
    if cfg.text_format not in ("auto", fmt):
        raise ValueError(f"text_format {cfg.text_format!r} contradicts {recipe}.py, which reads {fmt!r} data")
    return dataclasses.replace(cfg, text_format=fmt, ratio=1.0)


def usage(prog: str, recipe: str) -> str:
    lines = [f"usage: {prog} --config CONFIG.yaml [--KEY VALUE ...] [--resume [CHECKPOINT]] [--overwrite_output_dir]",
             f"       {prog} --resume CHECKPOINT [--KEY VALUE ...]",
             f"       {prog} --create-sample-config [PATH]", "", RECIPES[recipe][1] + ".", "",
             "  --config PATH                YAML/JSON config (keys below); --KEY VALUE overrides one key",
             "  --resume [CHECKPOINT]        continue exactly from a checkpoint-epoch-N folder (default: the",
             "                               latest in save_folder); without --config, the checkpoint's own",
             "                               train_config.yaml (the run's effective settings) is used, and the",
             "                               run goes on in the checkpoint's folder from any working folder",
             "  --overwrite_output_dir       a fresh run into a save_folder that holds a run: delete that run's",
             "                               checkpoints, metrics.jsonl and train_config.yaml first",
             "  --create-sample-config [P]   write a commented sample config and exit", "",
             "multi-GPU: accelerate launch --config_file recipes/accelerate/ddp.yaml " + prog.split()[-1]
             + " --config ...",
             "",
             "config keys:"]
    for f in dataclasses.fields(TrainConfig):
        lines.append(f"  {f.name:28s} " + textwrap.shorten(f.metadata["help"], 100))
    return "\n".join(lines)


@dataclass
class RecipeArgs:
    """The recipe command line: its own options, and every other ``--key value`` as a config override."""

    config: str | None = None  # --config PATH ('' when given without a path)
    resume: str | None = None  # --resume [CHECKPOINT] ('' when given without one: the latest in save_folder)
    overwrite: bool = False  # --overwrite_output_dir
    sample_config: str | None = None  # --create-sample-config [PATH] ('' without a path)
    overrides: dict[str, str] = field(default_factory=dict)  # config key (as spelled) -> raw value


def parse_args(argv: list[str]) -> RecipeArgs:
    """argparse for the recipe's options; the words it does not know go to the config loader's override
    parser (:func:`llada_tts.training.config.parse_overrides`, which names an unknown key's nearest one).
    ValueError (one line) for a malformed command line."""
    parser = ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--config", nargs="?", const="")
    parser.add_argument("--resume", nargs="?", const="")
    parser.add_argument("--overwrite_output_dir", dest="overwrite", action="store_true")
    parser.add_argument("--create-sample-config", dest="sample_config", nargs="?", const="")
    known, rest = parser.parse_known_args(argv)
    return RecipeArgs(**vars(known), overrides=parse_overrides(rest))


def resume_source(args: RecipeArgs) -> tuple[str, Path, dict[str, str], str]:
    """``--resume`` without ``--config``: (the checkpoint's train_config.yaml, the folder its relative paths
    meant, the overrides with save_folder pinned to the run's folder, the checkpoint). The checkpoint is
    the given one, else the latest complete one in save_folder; ValueError (one line) if there is none."""
    from llada_tts.training.checkpoint import CONFIG_FILE, config_base, find_latest, old_format_checkpoints, read_state

    given = {ALIASES.get(k, k): v for k, v in args.overrides.items()}
    resume = args.resume
    if not resume:  # the latest checkpoint of save_folder (from the command line, or the default)
        folder = given.get("save_folder", TrainConfig.save_folder)
        resume = find_latest(folder)
        if resume is None:
            for old in old_format_checkpoints(folder)[-1:]:
                read_state(old)  # the one-line "old pickled format" error
            raise ValueError(f"--resume: no resumable checkpoint in {folder} (pass --resume CHECKPOINT, "
                             "or --config with the run's save_folder)")
    read_state(resume)  # one line if it is not a complete checkpoint
    overrides = dict(args.overrides)
    if "save_folder" not in given:  # the run continues in its own folder, from wherever it is resumed
        overrides["save_folder"] = str(Path(resume).resolve().parent)
    return str(Path(resume) / CONFIG_FILE), config_base(resume), overrides, str(resume)


def main(argv: list[str] | None = None, recipe: str = "tts", prog: str | None = None) -> int:
    """Run a recipe from the command line; returns the exit status (2 = bad config or data)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or f"python recipes/{'tts_train' if recipe == 'tts' else recipe}.py"
    if not argv or "-h" in argv or "--help" in argv:
        print(usage(prog, recipe))
        return 0 if argv else 2
    try:
        args = parse_args(argv)
    except ValueError as e:
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 2
    if args.sample_config is not None:
        out = write_sample_config(args.sample_config or f"sample_{recipe}_config.yaml", RECIPES[recipe][2],
                                  script=Path(prog.split()[-1]).name)
        print(f"wrote {out}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    resume_flag = args.resume is not None
    try:
        if args.config == "":
            raise ValueError("--config needs a path")
        if resume_flag and args.overwrite:
            raise ValueError("--resume continues the run in save_folder and --overwrite_output_dir deletes it; "
                             "pass only one")
        config_path, base, overrides, resume = args.config, None, args.overrides, args.resume or None
        if resume_flag and args.config is None:  # resume from the run's own effective config (overrides included)
            config_path, base, overrides, resume = resume_source(args)
        cfg = recipe_config(load_config(config_path, overrides, section=RECIPES[recipe][0], base=base), recipe)
        from llada_tts.training.trainer import Trainer  # heavy imports only once the config is valid

        trainer = Trainer(cfg, resume=(resume or "latest") if resume_flag else None, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError) as e:  # bad config, data or checkpoint: found before training starts
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 2
    from llada_tts.training.trainer import NonFiniteLossError

    try:
        result = trainer.train()
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's checkpoint was being written
        print("interrupted again before the checkpoint was complete; the last complete checkpoint in "
              f"{cfg.save_folder} is intact", file=sys.stderr)
        return 130
    except NonFiniteLossError as e:
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 1
    if result.interrupted:  # the checkpoint holds the effective config: nothing else is needed to resume
        command = resume_command(prog, result.checkpoint, trainer.accelerator)
        trainer.accelerator.print(f"interrupted; resume with: {command}")
        return 130
    return 0


def resume_command(prog: str, checkpoint, accelerator) -> str:
    """The command that continues an interrupted run: ``prog --resume CHECKPOINT``, under ``accelerate launch``
    with the same process count (and mixed precision) when the run had several processes."""
    command = f"{prog} --resume {checkpoint}"
    n = accelerator.num_processes
    if n <= 1:
        return command
    script = prog.split(maxsplit=1)[1] if prog.split()[0] in ("python", "python3") and " " in prog else prog
    launch = f"accelerate launch --num_processes {n}"
    precision = str(getattr(accelerator, "mixed_precision", "no") or "no")
    if precision != "no":
        launch += f" --mixed_precision {precision}"
    return (f"{launch} {script} --resume {checkpoint}\n  (on every machine of the run, with its other accelerate "
            "launch options too, e.g. the same --config_file)")
