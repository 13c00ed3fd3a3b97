"""Round-trip quality of a codec on held-out audio: ``python -m audio_tokenizer eval-codec``.

    codec = SnacCodec.from_pretrained("demo")
    utts = load_corpus("data/heldout", limit=100)          # a metadata.csv folder (make_corpus layout)
    report = evaluate_codec(codec, utts, asr=get_asr("auto"))
    write_report(report, "reports/codec"); print(format_table(report))

Every utterance is loaded at 24 kHz, encoded, and decoded back (``decode_codes(seed=seed + i)``, so
runs are reproducible). Per utterance and over the set it reports:

- ``mel_distance``: mean |log-mel(original) - log-mel(round trip)| (natural log, floor 1e-5; 80 mels,
  n_fft 1024, hop 256 at 24 kHz; ``audio_tokenizer.spectral``), lower is better;
- ``stoi``: STOI of the round trip against the original (``judge.stoi``), higher is better;
- ``wer_original`` / ``wer_roundtrip`` / ``wer_gap``: the judge's WER of each against the transcript
  (summary: corpus WER, total errors / total words), and round trip minus original;
- ``codes_used``: distinct codes per level (L0, L1, L2); over the set also as a fraction of
  min(4096, code positions) (the most that many positions could use) and of the 4096 codes;
- ``encode_rtf`` / ``decode_rtf``: seconds of compute per second of audio (summary: totals), after an
  unreported warm-up.

A row that fails (a malformed metadata line, unreadable audio) is kept with its error and left out of
every average; bad input as a whole (no corpus, no codec, bad ASR) raises :class:`EvalCodecError`.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audio_tokenizer import layout, spectral
from audio_tokenizer.audio_io import load_audio
from audio_tokenizer.corpus import InputError, Utterance, read_metadata
from audio_tokenizer.errors import UserInputError, first_line
from audio_tokenizer.fileio import write_atomic
from audio_tokenizer.judge import corpus_wer, stoi, word_errors

LEVELS = 3
MEL = {"n_fft": 1024, "hop": 256, "n_mels": 80}
ROW_FIELDS = ("index", "id", "text", "voice", "ok", "error", "duration", "frames", "mel_distance", "stoi",
              "transcript_original", "transcript_roundtrip", "ref_words", "word_errors_original",
              "word_errors_roundtrip", "wer_original", "wer_roundtrip", "wer_gap", "codes_used",
              "encode_seconds", "decode_seconds", "encode_rtf", "decode_rtf")
SUMMARY_FIELDS = ("utterances", "scored", "failed", "failed_ids", "complete", "audio_seconds", "mel_distance",
                  "stoi", "wer_original", "wer_roundtrip", "wer_gap", "mean_wer_original", "mean_wer_roundtrip",
                  "codes_used", "code_positions", "codes_used_fraction", "codes_used_fraction_of_codebook",
                  "encode_rtf", "decode_rtf")
WARMUP_SECONDS = 0.5


class EvalCodecError(UserInputError):
    """Input that eval-codec cannot use as a whole: the command line prints it as one line and exits 2."""


# --- input ---------------------------------------------------------------------------------------
def load_corpus(path, limit: int | None = None) -> list[Utterance]:
    """Utterances of a corpus folder (``metadata.csv`` + ``wavs/``; the file itself works too), first
    ``limit`` rows (all by default). Raises :class:`EvalCodecError` for unusable input."""
    if limit is not None and limit < 1:
        raise EvalCodecError(f"--limit must be >= 1, got {limit}")
    folder = Path(path).expanduser()
    if folder.name == "metadata.csv" and folder.is_file():
        folder = folder.parent
    try:
        utts = read_metadata(folder)
    except InputError as e:
        raise EvalCodecError(str(e)) from e
    if not utts:
        raise EvalCodecError(f"{folder / 'metadata.csv'} lists no utterances")
    return utts[:limit] if limit else utts


def load_codec(name: str, device: str = "cpu"):
    """``SnacCodec.from_pretrained(name)``; any failure is one :class:`EvalCodecError` line."""
    from audio_tokenizer.codec import SnacCodec

    try:
        return SnacCodec.from_pretrained(name, device=device)
    except Exception as e:  # noqa: BLE001  missing folder, bad config or weights, hub unreachable
        raise EvalCodecError(f"cannot load codec {name!r}: {first_line(e)}") from e


# --- metrics -------------------------------------------------------------------------------------
def mel_distance(original: np.ndarray, roundtrip: np.ndarray, sample_rate: int = layout.SAMPLE_RATE) -> float:
    """Mean absolute log-mel difference (see module doc) of two mono waves, cut to the shorter."""
    n = min(len(original), len(roundtrip))
    if n == 0:
        raise ValueError("mel_distance needs non-empty audio")
    x = torch.from_numpy(np.stack([original[:n], roundtrip[:n]]).astype(np.float32))  # [2, T]
    mel = spectral.log_mel(x, sample_rate, MEL["n_fft"], MEL["hop"], MEL["n_mels"])
    return float((mel[0] - mel[1]).abs().mean())


def count_codes(codes_per_utterance: Sequence[Sequence[torch.Tensor]]) -> tuple[list[int], list[int]]:
    """(distinct codes per level over all utterances, code positions per level)."""
    used = [set() for _ in range(LEVELS)]
    positions = [0] * LEVELS
    for codes in codes_per_utterance:
        for lvl, c in enumerate(codes):
            used[lvl].update(torch.as_tensor(c).reshape(-1).tolist())
            positions[lvl] += int(torch.as_tensor(c).numel())
    return [len(u) for u in used], positions


# --- evaluation ----------------------------------------------------------------------------------
def _blank_row(index: int, utt: Utterance) -> dict:
    row = dict.fromkeys(ROW_FIELDS)
    row.update(index=index, id=utt.source, text=utt.text, voice=utt.voice, ok=False, error=utt.error)
    return row


def _transcribe(asr, wave: np.ndarray, text: str) -> tuple[str, int, int]:
    hyp = asr.transcribe(wave, layout.SAMPLE_RATE)
    errors, words = word_errors(text, hyp)
    return hyp, errors, words


def evaluate_utterance(codec, utt: Utterance, index: int, *, asr=None, seed: int = 0) -> tuple[dict, tuple | None]:
    """(row, codes) for one utterance; a failure gives a row with ``ok`` False and codes None."""
    row = _blank_row(index, utt)
    if utt.error:
        return row, None
    try:
        wave = load_audio(utt.audio, layout.SAMPLE_RATE)
    except ValueError as e:
        row["error"] = first_line(e)
        return row, None
    seconds = len(wave) / layout.SAMPLE_RATE
    t0 = time.perf_counter()
    enc = codec.encode(wave, layout.SAMPLE_RATE)
    t1 = time.perf_counter()
    rt = codec.decode_codes(enc.codes, seed=seed, length=enc.length)
    t2 = time.perf_counter()
    row.update(ok=True, duration=seconds, frames=enc.frames, mel_distance=mel_distance(wave, rt),
               stoi=stoi(wave, rt, layout.SAMPLE_RATE),
               codes_used=[int(torch.unique(c).numel()) for c in enc.codes],
               encode_seconds=t1 - t0, decode_seconds=t2 - t1,
               encode_rtf=(t1 - t0) / seconds, decode_rtf=(t2 - t1) / seconds)
    if asr is not None and utt.text.strip():
        row["transcript_original"], e_orig, words = _transcribe(asr, wave, utt.text)
        row["transcript_roundtrip"], e_rt, _ = _transcribe(asr, rt, utt.text)
        row.update(ref_words=words, word_errors_original=e_orig, word_errors_roundtrip=e_rt)
        if words:
            row.update(wer_original=e_orig / words, wer_roundtrip=e_rt / words, wer_gap=(e_rt - e_orig) / words)
    return row, enc.codes


def _mean(values) -> float | None:
    kept = [float(v) for v in values if v is not None and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def summarize(rows: Sequence[dict], codes: Sequence[Sequence[torch.Tensor]], complete: bool = True) -> dict:
    """Set-level numbers (module doc) from the rows and the codes of the scored utterances."""
    ok = [r for r in rows if r["ok"]]
    used, positions = count_codes(codes)
    audio = sum(r["duration"] for r in ok)
    scored = [r for r in ok if r["ref_words"]]
    wer_orig = corpus_wer((r["word_errors_original"], r["ref_words"]) for r in scored)
    wer_rt = corpus_wer((r["word_errors_roundtrip"], r["ref_words"]) for r in scored)
    return {
        "utterances": len(rows), "scored": len(ok), "failed": len(rows) - len(ok),
        "failed_ids": [r["id"] for r in rows if not r["ok"]], "complete": complete, "audio_seconds": audio,
        "mel_distance": _mean(r["mel_distance"] for r in ok), "stoi": _mean(r["stoi"] for r in ok),
        "wer_original": wer_orig, "wer_roundtrip": wer_rt,
        "wer_gap": None if wer_orig is None or wer_rt is None else wer_rt - wer_orig,
        "mean_wer_original": _mean(r["wer_original"] for r in ok),
        "mean_wer_roundtrip": _mean(r["wer_roundtrip"] for r in ok),
        "codes_used": used, "code_positions": positions,
        "codes_used_fraction": [u / min(layout.CODEBOOK_SIZE, p) if p else None for u, p in zip(used, positions)],
        "codes_used_fraction_of_codebook": [u / layout.CODEBOOK_SIZE for u in used],
        "encode_rtf": sum(r["encode_seconds"] for r in ok) / audio if audio else None,
        "decode_rtf": sum(r["decode_seconds"] for r in ok) / audio if audio else None,
    }


def warm_up(codec) -> None:
    """One unreported encode + decode, so start-up costs stay out of the first utterance's RTF."""
    enc = codec.encode(np.zeros(int(WARMUP_SECONDS * layout.SAMPLE_RATE), np.float32), layout.SAMPLE_RATE)
    codec.decode_codes(enc.codes, seed=0, length=enc.length)


def evaluate_codec(codec, utterances: Sequence[Utterance], *, asr=None, seed: int = 0, progress: bool = True,
                   config: dict | None = None, on_row: Callable[[dict], None] | None = None,
                   warmup: bool = True) -> dict:
    """``{"config", "summary", "rows"}`` for ``utterances`` (module doc). Utterance i decodes with seed
    ``seed + i``. ``on_row(partial_report)`` runs after every utterance (e.g. to save progress)."""
    config = dict(config or {}, asr=getattr(asr, "name", "none"), seed=seed, mel=dict(MEL),
                  sample_rate=layout.SAMPLE_RATE, torch_threads=torch.get_num_threads())
    if warmup:
        warm_up(codec)
    rows, codes = [], []
    for i, utt in enumerate(tqdm(utterances, desc="eval-codec", unit="utt", disable=not progress)):
        row, utt_codes = evaluate_utterance(codec, utt, i, asr=asr, seed=seed + i)
        rows.append(row)
        if utt_codes is not None:
            codes.append(utt_codes)
        if on_row is not None:
            on_row({"config": config, "summary": summarize(rows, codes, complete=False), "rows": rows})
    return {"config": config, "summary": summarize(rows, codes), "rows": rows}


# --- output --------------------------------------------------------------------------------------
def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_report(report: dict, out_dir) -> Path:
    """Write ``out_dir/report.json`` atomically (a reader never sees half a report); returns its path."""
    return write_atomic(Path(out_dir) / "report.json",
                        json.dumps(_json_safe(report), indent=2, ensure_ascii=False) + "\n")


def _f(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: dict, rows: bool = True) -> str:
    """Markdown: one line per utterance (unless ``rows`` is False), then the set's numbers."""
    s, lines = report["summary"], []
    if rows:
        lines += ["| id | seconds | mel dist | STOI | WER orig | WER round trip | codes L0/L1/L2 | enc RTF | dec RTF |",
                  "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
        for r in report["rows"]:
            if not r["ok"]:
                lines.append(f"| {r['id']} | FAIL: {r['error']} | | | | | | | |")
                continue
            lines.append(f"| {r['id']} | {r['duration']:.2f} | {_f(r['mel_distance'])} | {_f(r['stoi'])} | "
                         f"{_f(r['wer_original'])} | {_f(r['wer_roundtrip'])} | "
                         f"{'/'.join(map(str, r['codes_used']))} | {_f(r['encode_rtf'])} | {_f(r['decode_rtf'])} |")
        lines.append("")
    used = " / ".join(f"{u} ({_f(f, '.1%')} of {min(layout.CODEBOOK_SIZE, p)}, {_f(c, '.1%')} of "
                      f"{layout.CODEBOOK_SIZE})" for u, p, f, c in zip(s["codes_used"], s["code_positions"],
                                                                       s["codes_used_fraction"],
                                                                       s["codes_used_fraction_of_codebook"]))
    gap = "-" if s["wer_gap"] is None else f"{s['wer_gap']:+.3f}"
    lines += ["| metric | value |", "|---|---|",
              f"| utterances (scored / all) | {s['scored']} / {s['utterances']} "
              f"({s['audio_seconds']:.1f} s of audio) |",
              f"| mel distance (log-mel L1) | {_f(s['mel_distance'])} |",
              f"| STOI | {_f(s['stoi'])} |",
              f"| WER round trip / originals (gap) | {_f(s['wer_roundtrip'])} / {_f(s['wer_original'])} ({gap}) "
              f"(asr: {report['config'].get('asr', 'none')}) |",
              f"| codes used L0 / L1 / L2 | {used} |",
              f"| encode / decode RTF | {_f(s['encode_rtf'])} / {_f(s['decode_rtf'])} |"]
    return "\n".join(lines)


def prepare_out_dir(path) -> Path:
    """The report folder, created; :class:`EvalCodecError` if it is a file or cannot be made."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise EvalCodecError(f"--out {out} is a file; give a folder for report.json")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EvalCodecError(f"cannot create report folder {out}: {e.strerror or e}") from e
    return out
