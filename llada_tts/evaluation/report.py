"""Run a TTS over held-out lines and report per line + averaged: RTF, NFE, duration vs expected,
valid frames and (with an ASR) word error rate. Written as report.json + report.csv, atomically.

    items = load_items("heldout.txt")                  # or a metadata.csv folder/file
    report = evaluate(tts, items, asr=get_asr("pocketsphinx"))
    write_report(report, "reports/run1"); print(format_table(report))

A line that fails (an exception, or no valid frame) becomes a failed row, never a crash. With an
ASR on, a failed line counts as all its words deleted (WER 1.0), so failures cannot flatter WER.
"""
from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from audio_tokenizer.audio_io import save_wav
from audio_tokenizer.corpus import read_metadata
from audio_tokenizer.errors import UserInputError, first_line
from llada_tts.evaluation.metrics import (
    aggregate,
    corpus_wer,
    duration_ratio,
    expected_duration,
    mean,
    word_errors,
)
from llada_tts.fileio import write_atomic
from llada_tts.sampling.constraints import DEFAULT_CHARS_PER_SECOND

ROW_FIELDS = ("index", "id", "text", "voice", "ok", "error", "frames", "duration", "expected_duration",
              "expected_source", "duration_ratio", "valid_fraction", "bad_frames", "nfe", "wall_time", "rtf",
              "chunks", "ended", "transcript", "word_errors", "ref_words", "wer", "audio")
WARMUP_TEXT = "Hello."
SUMMARY_MEANS = ("rtf", "nfe", "duration_ratio", "wall_time", "duration", "frames")


class EvalInputError(UserInputError):
    """The texts file / metadata folder cannot be used."""


@dataclass
class EvalItem:
    """One held-out line. reference_duration: seconds of its recorded audio, when there is one."""

    id: str
    text: str
    voice: str | None = None
    reference_duration: float | None = None
    error: str = ""  # a malformed input entry: reported as a failed row, not synthesised


# --- input -----------------------------------------------------------------------------------------
def _audio_seconds(path) -> float | None:
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001  missing or unreadable reference: fall back to the text estimate
        return None
    return info.frames / info.samplerate if info.samplerate else None


def load_items(path, limit: int | None = None) -> list[EvalItem]:
    """Held-out lines from a text file (one line each, blank lines skipped) or from a
    ``metadata.csv`` (the file or its folder; ``audio_tokenizer.corpus.read_metadata`` layouts),
    whose audio durations become the expected durations. ``limit``: keep the first N."""
    path = Path(path)
    if limit is not None and limit < 1:
        raise EvalInputError(f"--limit must be >= 1, got {limit}")
    if not path.exists():
        raise EvalInputError(f"{path} does not exist; pass a text file (one line per utterance) or a "
                             "metadata.csv folder")
    if path.is_dir() or path.name == "metadata.csv":
        folder = path if path.is_dir() else path.parent
        try:
            utts = read_metadata(folder)
        except ValueError as e:
            raise EvalInputError(str(e)) from e
        utts = utts[:limit] if limit else utts
        items = [EvalItem(u.source, u.text.strip(), u.voice or None,
                          None if u.error else _audio_seconds(u.audio), error=u.error) for u in utts]
    elif path.suffix.lower() == ".csv":
        raise EvalInputError(f"{path}: a .csv must be named metadata.csv (file|text[|voice] lines) or "
                             "be passed as its folder; for plain text use one line per utterance")
    else:
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise EvalInputError(f"{path}: cannot read as UTF-8 text ({e})") from e
        items = [EvalItem(f"line_{n:04d}", ln.strip()) for n, ln in enumerate(lines, start=1) if ln.strip()]
        items = items[:limit] if limit else items
    for it in items:
        if not it.error and not it.text:
            it.error = "empty text"
    if not items:
        raise EvalInputError(f"{path} holds no lines to synthesise")
    return items


# --- running ---------------------------------------------------------------------------------------
def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "utt"


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {first_line(e)}" if str(e).strip() else type(e).__name__


def evaluate_item(tts, item: EvalItem, index: int, *, asr=None, seed: int = 0, voice: str | None = None,
                  sampler_options: dict | None = None, audio_dir=None,
                  chars_per_second: float = DEFAULT_CHARS_PER_SECOND) -> dict:
    """One report row (keys: ROW_FIELDS) for ``item``; never raises for a failed synthesis."""
    voice = voice or item.voice
    row = dict.fromkeys(ROW_FIELDS)
    row.update(index=index, id=item.id, text=item.text, voice=voice, ok=False, error="")
    if item.reference_duration:
        row.update(expected_duration=item.reference_duration, expected_source="reference")
    elif item.text:
        row.update(expected_duration=expected_duration(item.text, chars_per_second), expected_source="text")
    if asr is not None and item.text:
        row["ref_words"] = word_errors(item.text, "")[1]
    if item.error:
        return _failed(row, item.error, asr)
    try:
        res = tts.synthesize(item.text, voice=voice, seed=seed, **(sampler_options or {}))
    except Exception as e:  # noqa: BLE001  a failed line is a row, not a crash
        return _failed(row, _first_line(e), asr)
    chunks = list(getattr(res, "chunks", None) or [])
    samples = int(len(res.waveform))
    duration = samples / res.sample_rate
    row.update(frames=int(res.frames), duration=duration, nfe=int(res.nfe),
               valid_fraction=float(res.valid_fraction), wall_time=float(res.wall_time),
               chunks=len(chunks), bad_frames=sum(int(getattr(c, "bad_frames", 0) or 0) for c in chunks),
               ended=bool(getattr(res, "ended", False)))
    row["duration_ratio"] = duration_ratio(duration, row["expected_duration"] or 0.0)
    if samples == 0 or res.frames == 0:
        return _failed(row, "no valid frames", asr)
    row["rtf"] = row["wall_time"] / duration
    if audio_dir is not None:
        path = Path(audio_dir) / f"{index:04d}_{_safe_name(item.id)}.wav"
        save_wav(path, res.waveform, res.sample_rate)
        row["audio"] = str(path)
    if asr is not None:
        try:
            transcript = asr.transcribe(res.waveform, res.sample_rate)
        except Exception as e:  # noqa: BLE001  a failed transcription is a row, not a crash
            return _failed(row, f"ASR failed: {_first_line(e)}", asr)
        errors, n = word_errors(item.text, transcript)
        row.update(transcript=transcript, word_errors=errors, ref_words=n,
                   wer=(errors / n) if n else float(errors > 0))
    row["ok"] = True
    return row


def _failed(row: dict, error: str, asr) -> dict:
    row.update(ok=False, error=error)
    if asr is not None and row["ref_words"] is not None:  # nothing intelligible: every word deleted
        row.update(transcript="", word_errors=row["ref_words"], wer=1.0 if row["ref_words"] else 0.0)
    return row


def summarize(rows: list[dict]) -> dict:
    """Counts, totals and means. Means of rtf/nfe/duration_ratio/... are over successful rows;
    valid_fraction over every row that has one; WER over every row scored (failed = all deleted)."""
    ok = [r for r in rows if r["ok"]]
    audio = sum(r["duration"] for r in ok)
    wall = sum(r["wall_time"] for r in ok)
    scored = [r for r in rows if r.get("word_errors") is not None]
    out = {"lines": len(rows), "ok": len(ok), "failed": len(rows) - len(ok),
           "failed_ids": [r["id"] for r in rows if not r["ok"]],
           "total_audio_seconds": audio, "total_wall_time": wall, "rtf": wall / audio if audio else None}
    out.update(aggregate(ok, SUMMARY_MEANS))
    out["mean_valid_fraction"] = mean(r["valid_fraction"] for r in rows)
    out["ended_fraction"] = sum(bool(r.get("ended")) for r in rows) / len(rows) if rows else None
    ratios = sorted(r["duration_ratio"] for r in ok if r.get("duration_ratio") is not None)
    out["median_duration_ratio"] = ratios[len(ratios) // 2] if len(ratios) % 2 else (
        (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2 if ratios else None)
    out["wer"] = corpus_wer((r["word_errors"], r["ref_words"]) for r in scored) if scored else None
    out["mean_wer"] = mean(r["wer"] for r in scored) if scored else None
    return out


def evaluate(tts, items: list[EvalItem], *, asr=None, seed: int = 0, voice: str | None = None,
             sampler_options: dict | None = None, audio_dir=None, chars_per_second: float | None = None,
             progress: bool = True, config: dict | None = None, on_row=None, warmup: bool = False) -> dict:
    """Synthesise every item (line i uses seed ``seed + i``); returns {"config", "summary", "rows"}.

    Expected durations: the item's reference audio when it has one, else the text at
    ``chars_per_second`` (default: the TTS's calibrated rate ``tts.chars_per_second``).
    ``on_row(report)`` is called after each line with the report so far (``summary["complete"]``
    False until the last line), e.g. to save it so an interrupted run keeps its finished lines.
    ``warmup``: first speak a short line, unreported, so one-time start-up costs (kernel and codec
    initialisation) do not inflate the first line's wall time and RTF.
    """
    if chars_per_second is None:
        chars_per_second = getattr(tts, "chars_per_second", None) or DEFAULT_CHARS_PER_SECOND
    if audio_dir is not None:
        Path(audio_dir).mkdir(parents=True, exist_ok=True)
    config = dict(config or {}, asr=getattr(asr, "name", "none"), seed=seed, chars_per_second=chars_per_second)
    if warmup:
        try:
            tts.synthesize(WARMUP_TEXT, voice=voice, seed=seed, **(sampler_options or {}))
        except Exception:  # noqa: BLE001  a failing warm-up line says nothing about the real ones
            pass
    rows, start = [], time.perf_counter()

    def report() -> dict:
        summary = summarize(rows)
        summary.update(complete=len(rows) == len(items), elapsed_seconds=time.perf_counter() - start)
        return {"config": config, "summary": summary, "rows": rows}

    bar = tqdm(items, desc="eval", unit="line", disable=not progress)
    for i, item in enumerate(bar):
        row = evaluate_item(tts, item, i, asr=asr, seed=seed + i, voice=voice, sampler_options=sampler_options,
                            audio_dir=audio_dir, chars_per_second=chars_per_second)
        rows.append(row)
        if on_row is not None:
            on_row(report())
        bar.set_postfix(failed=sum(not r["ok"] for r in rows),
                        rtf=f"{row['rtf']:.2f}" if row["rtf"] is not None else "-")
    return report()


# --- output ----------------------------------------------------------------------------------------
def _json_safe(x):
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def rows_to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r[k] for k in ROW_FIELDS})
    return buf.getvalue()


def write_report(report: dict, out_dir) -> tuple[Path, Path]:
    """Write ``out_dir/report.json`` (config, summary, rows) and ``out_dir/report.csv`` (rows);
    each through a temp file + ``os.replace``, so a reader never sees half a report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / "report.json", out / "report.csv"
    write_atomic(json_path, json.dumps(_json_safe(report), indent=2, ensure_ascii=False) + "\n")
    write_atomic(csv_path, rows_to_csv(report["rows"]), newline="")
    return json_path, csv_path


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def format_table(report: dict, id_width: int = 18) -> str:
    """A plain-text table: one line per row, then the means and the totals."""
    head = f"{'id':<{id_width}} {'ok':>4} {'frames':>6} {'sec':>6} {'exp':>6} {'ratio':>5} {'valid':>5} " \
           f"{'nfe':>5} {'rtf':>6} {'wer':>5}"
    lines = [head, "-" * len(head)]
    for r in report["rows"]:
        name = r["id"] if len(r["id"]) <= id_width else r["id"][: id_width - 1] + "~"
        lines.append(f"{name:<{id_width}} {'yes' if r['ok'] else 'FAIL':>4} {_fmt(r['frames'], 'd'):>6} "
                     f"{_fmt(r['duration'], '.2f'):>6} {_fmt(r['expected_duration'], '.2f'):>6} "
                     f"{_fmt(r['duration_ratio'], '.2f'):>5} {_fmt(r['valid_fraction'], '.2f'):>5} "
                     f"{_fmt(r['nfe'], 'd'):>5} {_fmt(r['rtf'], '.3f'):>6} {_fmt(r['wer'], '.2f'):>5}")
    s = report["summary"]
    lines.append("-" * len(head))
    lines.append(f"{'mean':<{id_width}} {s['ok']:>4} {_fmt(s['mean_frames'], '.0f'):>6} "
                 f"{_fmt(s['mean_duration'], '.2f'):>6} {'':>6} {_fmt(s['mean_duration_ratio'], '.2f'):>5} "
                 f"{_fmt(s['mean_valid_fraction'], '.2f'):>5} {_fmt(s['mean_nfe'], '.0f'):>5} "
                 f"{_fmt(s['mean_rtf'], '.3f'):>6} {_fmt(s['mean_wer'], '.2f'):>5}")
    lines.append(f"{s['ok']}/{s['lines']} lines ok, {s['failed']} failed; {s['total_audio_seconds']:.2f} s of "
                 f"audio in {s['total_wall_time']:.2f} s (RTF {_fmt(s['rtf'], '.3f')}); corpus WER "
                 f"{_fmt(s['wer'], '.3f')} (asr: {report['config'].get('asr', 'none')})")
    lines.append(f"speech ended by itself in {_fmt(s.get('ended_fraction'), '.0%')} of lines; median duration "
                 f"ratio {_fmt(s.get('median_duration_ratio'), '.2f')}")
    return "\n".join(lines)
