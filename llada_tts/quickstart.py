"""The offline quickstart: corpus -> codec -> dataset -> training -> speech, with the product's own commands.

Every stage runs a real command in a subprocess (printed before it runs; its output is shown and
saved to ``OUT/logs/<stage>.log``)::

    1 corpus   python -m audio_tokenizer corpus OUT/corpus --n N --holdout H --voices ...
    2 codec    llada-tts tokenizer OUT/tokenizer --from offline  (the codec: the shipped `demo` codec, or --codec;
               --codec random: python -m audio_tokenizer random-codec OUT/codec --size tiny, UNTRAINED)
    3 dataset  python -m audio_tokenizer build --input OUT/corpus --output OUT/dataset ...  (+ OUT/text.jsonl)
    4 train    llada-tts train --config OUT/train.yaml                     (mixed text + TTS rows)
    5 say      llada-tts say "..." --model OUT/train/checkpoint-epoch-N --codec demo -o OUT/sample.wav
               (--min-length 0.8: a barely trained model would otherwise end the speech at once)
    6 voice    llada-tts say "..." --model demo -o OUT/demo_voice.wav  (the shipped demo voice; only when
               this installation carries it)

A stage that finished is recorded in ``OUT/.quickstart/<stage>.json`` with the settings it ran
with; a rerun skips it while its settings and outputs are unchanged (``force`` redoes all), and
once one stage runs, every later one runs too. The commands write their outputs atomically, so an
interrupted stage never looks finished.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from audio_tokenizer.errors import RuntimeFailure
from llada_tts.fileio import write_atomic

DEFAULT_VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f2")  # = audio_tokenizer.corpus.DEFAULT_VOICES
REAL_CODEC = "hubertsiuzdak/snac_24khz"
DEMO_CODEC = "demo"  # the codec shipped in the package (audio_tokenizer.codec.DEMO_NAME)
RANDOM_CODEC = "random"  # an UNTRAINED tiny codec made by the codec stage (offline plumbing only)
STAMP_DIR = ".quickstart"
SAY_CHARS = 45  # `say` speaks the held-out sentence closest to this length
SENTENCES_PER_DOC = 4  # corpus sentences per {"text": ...} line of text.jsonl

# the training settings of OUT/train.yaml (train_config adds the paths and sizes); recipes/configs/quickstart.yaml
# is generated from them (recipe_yaml)
TRAIN_SETTINGS = dict(ratio=0.25, voice_type="all", tokenizer_name="offline", batch_size=4,
                      gradient_accumulation_steps=1, learning_rate=3.0e-3, lr_scheduler_type="linear",
                      warmup_ratio=0.05, max_grad_norm=1.0, mixed_precision="no", seed=42,
                      report_to="none", logging_steps=5)


@dataclass(frozen=True)
class Settings:
    """Everything the quickstart does; ``reduced()`` gives the CI-sized variant."""

    out: Path = Path("quickstart")
    sentences: int = 80  # spoken utterances
    holdout: int = 4  # extra sentences never spoken; `say` speaks one of them
    voices: tuple[str, ...] = DEFAULT_VOICES
    seed: int = 0
    codec: str = DEMO_CODEC  # demo (shipped, trained on eSpeak), a folder / hub id, or random (UNTRAINED tiny)
    model_size: str = "tiny"  # fresh model size (tiny, small)
    epochs: int = 2
    max_steps: int | None = None
    batch_size: int = 4
    max_duration: float = 3.0  # seconds: longer utterances are skipped (short rows keep CPU training quick)
    max_length: int = 384  # tokens per training row (build skips longer rows)
    text: str | None = None  # what `say` speaks (default: the held-out sentence nearest SAY_CHARS long)
    say_steps: int = 32  # denoising steps for `say`
    say_min_length: float = 0.8  # a barely trained model prefers ending at once: forbid it before 80% of the estimate
    voice: str = "en-us"  # the shipped demo voice's voice for the last stage
    force: bool = False

    @property
    def codec_dir(self) -> Path:
        return self.out / "codec"

    @property
    def codec_spec(self) -> str:
        return str(self.codec_dir) if self.untrained_codec else self.codec

    @property
    def untrained_codec(self) -> bool:
        return self.codec == RANDOM_CODEC


REDUCED = dict(sentences=10, holdout=4, voices=("en-us", "en-gb"), max_steps=2, batch_size=2, say_steps=8)


def reduced(settings: Settings) -> Settings:
    """The smallest run that still exercises every stage (what the CI test runs)."""
    return replace(settings, **REDUCED)


class StageError(RuntimeFailure):
    """A stage failed; the message names the stage and its log."""


# --- small helpers --------------------------------------------------------------------------------

def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def shell(cmd: list[str]) -> str:
    """The command as a user would type it: ``python`` for this interpreter, ``llada-tts`` for its module."""
    shown = list(cmd)
    if shown[:3] == [sys.executable, "-m", "llada_tts"]:
        shown = ["llada-tts", *shown[3:]]
    elif shown and shown[0] == sys.executable:
        shown[0] = "python"
    return shlex.join(shown)


def check_out_dir(out: Path) -> None:
    """Refuse an existing folder with other content: the quickstart only writes into its own folder."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / STAMP_DIR).is_dir():
        raise ValueError(f"--out {out} is not empty and was not made by the quickstart; choose a new folder")


# --- what each stage made -------------------------------------------------------------------------

def corpus_counts(out: Path) -> dict:
    info = json.loads((out / "corpus" / "corpus_info.json").read_text())
    wavs = sorted((out / "corpus" / "wavs").glob("*.wav"))
    return {"wavs": len(wavs), "seconds": info["total_seconds"], "voices": info["voices"]}


def heldout_sentences(out: Path) -> list[str]:
    path = out / "corpus" / "heldout.txt"
    return [s for s in path.read_text(encoding="utf-8").splitlines() if s.strip()] if path.is_file() else []


def corpus_sentences(out: Path) -> list[str]:
    from audio_tokenizer.corpus import read_metadata

    return [u.text for u in read_metadata(out / "corpus")]


def write_text_rows(out: Path) -> Path:
    """OUT/text.jsonl: pretraining documents (``{"text": ...}``) of the spoken corpus sentences."""
    sents = corpus_sentences(out)
    docs = [" ".join(sents[i:i + SENTENCES_PER_DOC]) for i in range(0, len(sents), SENTENCES_PER_DOC)]
    return write_atomic(out / "text.jsonl", "".join(json.dumps({"text": d}) + "\n" for d in docs))


def final_checkpoint(save_folder: Path) -> Path | None:
    """The complete checkpoint with the most optimizer updates: the trainer's own ``find_latest``."""
    from llada_tts.training.checkpoint import find_latest  # torch and accelerate: only once a stage needs it

    return find_latest(save_folder)


def train_config(s: Settings) -> dict:
    """The training config the quickstart writes to OUT/train.yaml."""
    cfg = {"TTS_dataset": str(s.out / "dataset"), "text_QA_dataset": str(s.out / "text.jsonl"),
           **TRAIN_SETTINGS, "max_length": s.max_length, "model_name": s.model_size, "epochs": s.epochs,
           "batch_size": s.batch_size, "save_folder": str(s.out / "train"), "save_epochs": s.epochs}
    if s.max_steps is not None:
        cfg["max_steps"] = s.max_steps
    return cfg


KEY_NOTES = {  # the comments of train.yaml
    "TTS_dataset": "Orpheus rows of the corpus (stage 3, python -m audio_tokenizer build)",
    "text_QA_dataset": '{"text": ...} documents of the corpus sentences',
    "ratio": "a quarter of the samples are text",
    "max_length": "the build skipped longer rows (--max-length, --max-duration)",
    "model_name": "a fresh model (tiny: hidden 64, 2 layers), no download",
    "tokenizer_name": "byte-level tokenizer with the Llama-3/Orpheus ids",
    "save_epochs": "one checkpoint, at the end",
    "report_to": "metrics.jsonl is always written",
}
RECIPE_HEAD = """\
# The training stage of `llada-tts quickstart` (default --out quickstart), offline on a CPU in about a minute.
# `llada-tts quickstart` makes the data and runs this for you; to run the stage by hand afterwards:
#   llada-tts train --config recipes/configs/quickstart.yaml
# A fresh tiny model trained for a minute: a pipeline check, not a voice. For real speech see
# recipes/configs/llama3_1b_single_gpu.yaml.
# GENERATED from llada_tts/quickstart.py (TRAIN_SETTINGS, train_config): change those, then rewrite this file:
#   python -c 'import llada_tts.quickstart as q; print(q.recipe_yaml(), end="")' > recipes/configs/quickstart.yaml
"""


TRAIN_HEAD = """\
# written by `llada-tts quickstart`: a fresh tiny model, offline byte-level tokenizer,
# mixed training (a quarter of the samples are text rows from text.jsonl)
"""


def config_yaml(s: Settings) -> str:
    """``train_config(s)`` as YAML, one commented key a line."""
    import yaml

    lines = []
    for key, value in train_config(s).items():
        line = yaml.safe_dump({key: value}, width=float("inf")).rstrip("\n")
        note = KEY_NOTES.get(key) if "\n" not in line else None
        lines.append(f"{line:40s} # {note}" if note else line)
    return "\n".join(lines) + "\n"


def train_yaml(s: Settings) -> str:
    """OUT/train.yaml, the training stage's config."""
    return TRAIN_HEAD + config_yaml(s)


def recipe_yaml() -> str:
    """recipes/configs/quickstart.yaml of a checkout: the default run's config (``--out quickstart``)."""
    return RECIPE_HEAD + config_yaml(Settings())


def train_command(config: Path) -> list[str]:
    """The trainer's command line: ``llada-tts train`` (= recipes/tts_train.py of a checkout)."""
    return [sys.executable, "-m", "llada_tts", "train", "--config", str(config)]


def wav_info(path: Path) -> dict:
    import soundfile as sf

    info = sf.info(str(path))
    return {"seconds": info.frames / info.samplerate, "sample_rate": info.samplerate, "channels": info.channels,
            "samples": info.frames}


def say_text(s: Settings) -> str:
    if s.text:
        return s.text
    held = heldout_sentences(s.out)  # never spoken in the corpus; ~45 characters is about the 3 s of the rows
    return (min(held, key=lambda x: (abs(len(x) - SAY_CHARS), x)) if held
            else "The quick brown fox jumps over the lazy dog.")


# --- the stages -----------------------------------------------------------------------------------

@dataclass
class Stage:
    name: str
    title: str
    outputs: list[Path]
    key: dict
    commands: list[list[str]] = field(default_factory=list)


def codec_label(s: Settings) -> str:
    if s.untrained_codec:
        return "UNTRAINED random tiny codec"
    if s.codec == DEMO_CODEC:
        return "the shipped demo codec, trained on eSpeak speech only"
    return "the given codec"


def demo_voice_installed() -> bool:
    """True when the package carries the shipped demo voice (stage 6 speaks with it)."""
    from llada_tts.demo_voice import DEMO_DIR

    return (DEMO_DIR / "config.json").is_file()


def stages(s: Settings) -> list[Stage]:
    out = s.out
    corpus_key = {"sentences": s.sentences, "holdout": s.holdout, "voices": list(s.voices), "seed": s.seed}
    codec_key = {"codec": s.codec}
    data_key = {**corpus_key, **codec_key, "max_duration": s.max_duration, "max_length": s.max_length}
    train_key = {**data_key, "train": train_config(s)}
    say_key = {**train_key, "text": s.text, "steps": s.say_steps, "min_length": s.say_min_length}
    return [
        Stage("corpus", "speak a small corpus with eSpeak NG", [out / "corpus" / "corpus_info.json"], corpus_key),
        Stage("codec", ("create an UNTRAINED tiny SNAC-layout codec and the offline tokenizer" if s.untrained_codec
                        else "save the offline tokenizer (codec: " + codec_label(s) + ")"),
              [out / "tokenizer" / "tokenizer.json"]
              + ([s.codec_dir / "model.safetensors"] if s.untrained_codec else []),
              codec_key),
        Stage("dataset", "tokenise the corpus into Orpheus rows, write text rows",
              [out / "dataset" / "build_info.json", out / "text.jsonl"], data_key),
        Stage("train", f"train a {s.model_size} LLaDA-TTS on mixed text + TTS rows", [out / "train.yaml"], train_key),
        Stage("say", "synthesise a sentence with llada-tts say", [out / "sample.wav"], say_key),
    ] + ([Stage("voice", "speak the same sentence with the shipped demo voice", [out / "demo_voice.wav"],
                {**corpus_key, "text": s.text, "voice": s.voice})] if demo_voice_installed() else [])


def commands(stage: Stage, s: Settings, redo: bool, resume: bool = False) -> list[list[str]]:
    """The command lines of ``stage``; ``redo`` replaces earlier (stale) output, ``resume`` continues
    an interrupted training run."""
    out, py = s.out, sys.executable
    if stage.name == "corpus":
        cmd = [py, "-m", "audio_tokenizer", "corpus", str(out / "corpus"), "--n", str(s.sentences),
               "--holdout", str(s.holdout), "--voices", ",".join(s.voices), "--seed", str(s.seed)]
        return [cmd + (["--force"] if redo and (out / "corpus").exists() else [])]
    if stage.name == "codec":
        tokenizer = [py, "-m", "llada_tts", "tokenizer", str(out / "tokenizer"), "--from", "offline", "--overwrite"]
        if not s.untrained_codec:
            return [tokenizer]
        return [[py, "-m", "audio_tokenizer", "random-codec", str(s.codec_dir), "--size", "tiny",
                 "--seed", str(s.seed), "--overwrite"], tokenizer]
    if stage.name == "dataset":
        cmd = [py, "-m", "audio_tokenizer", "build", "--input", str(out / "corpus"), "--output", str(out / "dataset"),
               "--tokenizer", str(out / "tokenizer"), "--codec", s.codec_spec,
               "--max-duration", f"{s.max_duration:g}", "--max-length", str(s.max_length)]
        return [cmd + (["--overwrite"] if redo and (out / "dataset").exists() else [])]
    if stage.name == "train":
        return [train_command(out / "train.yaml") + (["--resume"] if resume else [])]
    if stage.name == "say":
        ckpt = final_checkpoint(out / "train")
        text = say_text(s)
        return [[py, "-m", "llada_tts", "say", *([] if text.startswith("-") else [text]), "--model", str(ckpt),
                 "--codec", s.codec_spec, "--voice", s.voices[0], "-o", str(out / "sample.wav"),
                 "--seed", str(s.seed), "--steps", str(s.say_steps),
                 "--min-length", f"{s.say_min_length:g}", *(["--", text] if text.startswith("-") else [])]]
    if stage.name == "voice":
        text = say_text(s)
        return [[py, "-m", "llada_tts", "say", *([] if text.startswith("-") else [text]), "--model", "demo",
                 "--voice", s.voice, "-o", str(out / "demo_voice.wav"), "--seed", str(s.seed),
                 *(["--", text] if text.startswith("-") else [])]]
    raise ValueError(stage.name)


def can_resume(stage: Stage, s: Settings) -> bool:
    """True when an interrupted training run of the same config can be continued (its inputs unchanged)."""
    config = s.out / "train.yaml"
    return (stage.name == "train" and config.is_file() and config.read_text(encoding="utf-8") == train_yaml(s)
            and final_checkpoint(s.out / "train") is not None)


def before(stage: Stage, s: Settings, resume: bool) -> None:
    """Preparation that is not a command: clear a stale training run, write the training config."""
    if stage.name == "train" and not resume:
        shutil.rmtree(s.out / "train", ignore_errors=True)  # stale checkpoints would be picked as "final"
        write_atomic(s.out / "train.yaml", train_yaml(s))


def after(stage: Stage, s: Settings) -> None:
    """Outputs the stage must have made (StageError otherwise) and files derived from them."""
    if stage.name == "dataset":
        write_text_rows(s.out)
    if stage.name == "train" and final_checkpoint(s.out / "train") is None:
        raise StageError(f"training finished without a checkpoint in {s.out / 'train'}")
    missing = [str(p) for p in stage.outputs if not p.exists()]
    if missing:
        raise StageError(f"expected output missing: {', '.join(missing)}")


def summary(stage: Stage, s: Settings) -> list[str]:
    """What the stage produced and where (read back from the files)."""
    out = s.out
    if stage.name == "corpus":
        c = corpus_counts(out)
        return [f"{out / 'corpus'}: {c['wavs']} wavs, {c['seconds']:.1f} s of 24 kHz speech, voices "
                f"{', '.join(c['voices'])} ({human_size(tree_size(out / 'corpus'))})",
                f"{out / 'corpus' / 'metadata.csv'} (file|text|voice), {len(heldout_sentences(out))} held-out "
                f"sentence(s) in {out / 'corpus' / 'heldout.txt'}"]
    if stage.name == "codec":
        lines = [f"{out / 'tokenizer'}: offline byte-level tokenizer with the Llama-3/Orpheus special ids"]
        if s.untrained_codec:
            lines.insert(0, f"{s.codec_dir}: UNTRAINED random tiny SNAC 24 kHz codec, exact token layout "
                            f"({human_size(tree_size(s.codec_dir))}); it decodes to noise, not speech")
        else:
            lines.insert(0, f"{s.codec}: {codec_label(s)}, used as is")
        return lines
    if stage.name == "dataset":
        info = json.loads((out / "dataset" / "build_info.json").read_text())
        n = info["counts"]
        reasons = ", ".join(f"{k}: {v}" for k, v in n["skipped_by_reason"].items())
        docs = sum(1 for line in (out / "text.jsonl").read_text().splitlines() if line.strip())
        return [f"{out / 'dataset'}: {n['rows']} TTS rows from {n['utterances']} utterances, {n['skipped']} skipped"
                + (f" ({reasons}; see {out / 'dataset' / 'skipped.csv'})" if reasons else "")
                + f", {info['durations']['total_audio_seconds']:.1f} s of audio, longest row "
                f"{info['row_lengths']['max']} tokens ({human_size(tree_size(out / 'dataset'))})",
                f"{out / 'text.jsonl'}: {docs} text documents for the mixed path"]
    if stage.name == "train":
        ckpt = final_checkpoint(out / "train")
        state = json.loads((ckpt / "trainer_state.json").read_text())
        loss = ""
        metrics = out / "train" / "metrics.jsonl"
        if metrics.is_file():
            rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
            if rows and "loss" in rows[-1]:
                loss = f", last logged loss {rows[-1]['loss']:.3f}"
        meta = " + llada_tts.json" if (ckpt / "llada_tts.json").is_file() else ""
        epochs = state["epoch"] + state["step_in_epoch"] / max(1, state["steps_per_epoch"])
        return [f"{ckpt}: checkpoint after {state['global_step']} updates ({epochs:.2g} epochs){loss} "
                f"({human_size(tree_size(ckpt))}; config.json + model.safetensors + tokenizer{meta})",
                f"{out / 'train.yaml'} (training config), {metrics} (metrics)"]
    if stage.name in ("say", "voice"):
        wav = out / ("sample.wav" if stage.name == "say" else "demo_voice.wav")
        w = wav_info(wav)
        who = "this run's tiny model" if stage.name == "say" else f"the shipped demo voice ({s.voice})"
        return [f"{wav}: {w['seconds']:.2f} s, {w['sample_rate']} Hz, "
                f"{'mono' if w['channels'] == 1 else str(w['channels']) + ' channels'} "
                f"(\"{say_text(s)}\", {who})"]
    return []


# --- running --------------------------------------------------------------------------------------

def run_logged(cmd: list[str], log: Path, echo) -> int:
    """Run ``cmd``, copying its output (progress bars included) to ``echo`` (a text stream, e.g.
    ``sys.stderr``; None: log only) and to ``log``; returns its exit status."""
    import codecs

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    raw = getattr(echo, "buffer", None)  # a text stream's bytes, when it has them
    text = codecs.getincrementaldecoder("utf-8")(errors="replace") if echo is not None and raw is None else None
    with open(log, "ab") as f:
        f.write(f"$ {shlex.join(cmd)}\n".encode())
        f.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        try:
            while chunk := os.read(proc.stdout.fileno(), 4096):
                f.write(chunk)
                if raw is not None:
                    raw.write(chunk)
                    raw.flush()
                elif text is not None:
                    echo.write(text.decode(chunk))
                    echo.flush()
            return proc.wait()
        except KeyboardInterrupt:  # the child got the same Ctrl-C: let it finish cleanly (the trainer saves)
            proc.wait()
            raise
        finally:
            proc.stdout.close()


def is_done(stage: Stage, s: Settings) -> bool:
    stamp = s.out / STAMP_DIR / f"{stage.name}.json"
    if not stamp.is_file() or not all(p.exists() for p in stage.outputs):
        return False
    try:
        return json.loads(stamp.read_text())["key"] == json.loads(json.dumps(stage.key))
    except (OSError, ValueError, KeyError):
        return False


def run_quickstart(s: Settings, printer=print, echo=None) -> dict:
    """Run (or skip) every stage; returns {stage: {"seconds", "skipped", "commands", "summary"}}.

    ``printer`` gets the headers, commands and summaries; ``echo`` (a text stream, e.g.
    ``sys.stderr``) gets the commands' own output. Raises StageError when a stage fails.
    """
    check_out_dir(s.out)
    (s.out / STAMP_DIR).mkdir(parents=True, exist_ok=True)
    (s.out / "logs").mkdir(exist_ok=True)
    all_stages = stages(s)
    report, rerun = {}, s.force
    for i, stage in enumerate(all_stages, start=1):
        head = f"[{i}/{len(all_stages)}] {stage.name}: {stage.title}"
        if not rerun and is_done(stage, s):
            saved = json.loads((s.out / STAMP_DIR / f"{stage.name}.json").read_text())
            printer(f"{head}\n  up to date (made in {saved['seconds']:.1f} s; --force redoes it)")
            lines = summary(stage, s)
            for line in lines:
                printer(f"  -> {line}")
            report[stage.name] = {"seconds": 0.0, "skipped": True, "commands": saved["commands"], "summary": lines}
            continue
        resume = not rerun and can_resume(stage, s)  # nothing upstream changed: continue, don't restart
        rerun = True  # everything after a stage that ran is redone
        (s.out / STAMP_DIR / f"{stage.name}.json").unlink(missing_ok=True)
        printer(head)
        log = s.out / "logs" / f"{stage.name}.log"
        log.unlink(missing_ok=True)
        start = time.perf_counter()
        before(stage, s, resume)
        if resume:
            printer(f"  continuing the interrupted run in {s.out / 'train'}")
        shown = []
        for cmd in commands(stage, s, redo=True, resume=resume):
            printer(f"  $ {shell(cmd)}")
            shown.append(shell(cmd))
            rc = run_logged(cmd, log, echo)
            if rc != 0:
                raise StageError(f"stage {i}/{len(all_stages)} '{stage.name}' failed (exit {rc}); see {log}")
        try:
            after(stage, s)
        except (StageError, OSError, ValueError) as e:
            raise StageError(f"stage {i}/{len(all_stages)} '{stage.name}' failed: {e}; see {log}") from e
        seconds = time.perf_counter() - start
        lines = summary(stage, s)
        for line in lines:
            printer(f"  -> {line}")
        printer(f"  done in {seconds:.1f} s (log: {log})")
        write_atomic(s.out / STAMP_DIR / f"{stage.name}.json",
                     json.dumps({"key": stage.key, "seconds": round(seconds, 2), "commands": shown}, indent=1))
        report[stage.name] = {"seconds": seconds, "skipped": False, "commands": shown, "summary": lines}
    return report


def closing_text(s: Settings, report: dict) -> str:
    """The final table, the honest quality statement and the commands for real weights."""
    rows = []
    for name, r in report.items():
        took = "skipped" if r["skipped"] else f"{r['seconds']:6.1f} s"
        rows.append(f"  {name:8s} {took:>9s}  {r['summary'][0].split(':')[0]}")
    total = sum(r["seconds"] for r in report.values())
    ckpt = final_checkpoint(s.out / "train")
    codec_note = (f"The codec in {s.codec_dir} is UNTRAINED (random weights) and the model is a {s.model_size} "
                  "network trained for a few steps, so sample.wav is noise, not speech."
                  if s.untrained_codec else
                  f"The codec ({codec_label(s)}) decodes speech, but the model is a {s.model_size} network trained "
                  "for a few steps on a tiny corpus, so sample.wav is not intelligible speech.")
    return "\n".join([
        "", "quickstart finished:", *rows, f"  {'total':8s} {total:7.1f} s", "",
        f"Every stage above is a product command; rerun any of them from {s.out / 'logs'} or "
        f"{s.out / STAMP_DIR}.", "",
        "AUDIO QUALITY NEEDS REAL WEIGHTS. " + codec_note,
        f"This run only shows that the pipeline works end to end offline (`say` ran with --min-length "
        f"{s.say_min_length:g} only because a barely trained model otherwise ends the speech at once; trained "
        "checkpoints need no such guard). For real speech:",
        "  # 1. tokenise real speech with the trained SNAC codec and a Llama-3 tokenizer (hub ids or local folders)",
        "  python -m audio_tokenizer build --input MY_CORPUS --output data/my_tok \\",
        f"      --tokenizer meta-llama/Llama-3.2-1B-Instruct --codec {REAL_CODEC}",
        "  # 2. train from a Llama-3.2-1B base on one GPU (edit TTS_dataset / text_QA_dataset in the config)",
        "  llada-tts train --config recipes/configs/llama3_1b_single_gpu.yaml --TTS_dataset data/my_tok",
        "  # 3. speak with your trained checkpoint and the real codec",
        f"  llada-tts say \"Hello there.\" --model checkpoints/llada-tts-1b/checkpoint-epoch-10 "
        f"--codec {REAL_CODEC} -o hello.wav",
        f"  (offline: download {REAL_CODEC} once elsewhere and pass its local folder to --codec;"
        f" this run's checkpoint is {ckpt})",
    ])
