"""Speech editing and voice continuation on a real voice, judged by Whisper tiny.en (issue 17).

    python benchmarks/edit_eval.py --model demo --heldout outputs/voice/heldout --limit 20

Editing: each of the first --limit held-out eSpeak recordings gets three edits of one word (its
middle word replaced, a word inserted before it, the word deleted), spans found automatically
(eSpeak's word times for a frame-timed checkpoint, Whisper's otherwise). Reported per kind:

    WER        the judge on the edited audio against the new transcript
    landed     edits whose new word the judge heard and whose removed word it did not (a sentence's
               WER is mostly the kept audio's and the judge's own errors)
    kept       of the output frames taken from the input, the fraction identical token for token
    s/edit     wall seconds of one edit (encode, sample, decode)
    resynth    the judge on the whole new sentence synthesised from scratch (same voice, seed)
    roundtrip  the judge on the unedited recordings through the codec (what kept frames sound like)
    input      the judge on the unedited recordings against their own transcripts

The inputs are eSpeak renderings, whose timing eSpeak's word times (a frame-timed checkpoint's spans)
match exactly: a best case for span finding, not what arbitrary recordings give.

Continuation: for each voice in --voices (the training voices plus one never trained on), --pairs
(reference, new sentence) pairs from the held-out lines: the reference is the eSpeak rendering of one
line in that voice, the new text another line. Reported with and without the reference: WER, and the
speaker similarity of the output to the reference (cosine of resemblyzer embeddings, when resemblyzer
loads; `pip install --no-deps resemblyzer librosa webrtcvad-wheels`).

Sampler options are the checkpoint's defaults unless --sampler KEY=VALUE is given. report.json in --out
holds every line.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from audio_tokenizer import espeak
from audio_tokenizer.corpus import read_metadata
from audio_tokenizer.fileio import write_atomic
from audio_tokenizer.judge import corpus_wer, get_asr, word_errors

NEW_WORDS = ("yellow", "garden", "morning", "silver", "window", "happy", "river", "candle")
UNSEEN_VOICE = "en-us+f4"


def one_word_edits(text: str, i: int) -> dict[str, str]:
    """The line with its middle plain word substituted, preceded by an inserted word, and deleted."""
    words = text.split()
    plain = [k for k, w in enumerate(words) if re.fullmatch(r"[A-Za-z]+", w)] or list(range(len(words)))
    k = plain[len(plain) // 2]
    new = NEW_WORDS[i % len(NEW_WORDS)]
    return {"substitute": (" ".join(words[:k] + [new] + words[k + 1:]), new, words[k]),
            "insert": (" ".join(words[:k] + [new] + words[k:]), new, None),
            "delete": (" ".join(words[:k] + words[k + 1:]), None, words[k])}


def landed(heard: str, to: str, new: str | None, old: str | None) -> bool:
    """Did the edit itself land: the new word heard, and the removed word heard no more often than the
    new transcript says it (the rest of a sentence's WER is mostly the input's and the judge's own)."""
    from audio_tokenizer.judge import normalize_words

    words, target = normalize_words(heard), normalize_words(to)
    ok = new is None or normalize_words(new)[0] in words
    if old is not None:
        gone = normalize_words(old)[0]
        ok = ok and words.count(gone) <= target.count(gone)
    return ok


def similarity_fn():
    """cosine(a, b) of two 24 kHz waves' resemblyzer speaker embeddings, or None if it does not load."""
    try:
        import soxr
        from resemblyzer import VoiceEncoder, preprocess_wav

        encoder = VoiceEncoder("cpu", verbose=False)
    except Exception as e:  # noqa: BLE001  (optional: report why and go on)
        print(f"speaker similarity: not measured (resemblyzer does not load: {type(e).__name__}: {e})")
        return None

    def embed(wave, sr):
        return encoder.embed_utterance(preprocess_wav(soxr.resample(np.asarray(wave, np.float32), sr, 16000),
                                                      source_sr=16000))

    return lambda a, sr_a, b, sr_b: float(np.dot(embed(a, sr_a), embed(b, sr_b)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo", help="checkpoint folder, hub id or demo (default demo)")
    ap.add_argument("--heldout", default="outputs/voice/heldout", help="held-out corpus folder")
    ap.add_argument("--limit", type=int, default=20, help="held-out lines to edit (default 20)")
    ap.add_argument("--pairs", type=int, default=5, help="continuation pairs per voice (default 5)")
    ap.add_argument("--voices", default=None,
                    help=f"continuation voices, comma-separated (default: the checkpoint's + {UNSEEN_VOICE})")
    ap.add_argument("--sampler", action="append", default=[], metavar="KEY=VALUE", help="sampler option")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: edit, continuation")
    ap.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                    help="the model's dtype (auto: as say: bfloat16 on a CPU with AMX, else float32)")
    ap.add_argument("--out", default="outputs/edit_eval", help="report folder (default outputs/edit_eval)")
    args = ap.parse_args(argv)

    from llada_tts.synthesis import LladaTTS
    from llada_tts.synthesis.defaults import parse_sampler_items

    try:
        options = parse_sampler_items(args.sampler)
    except ValueError as e:
        ap.error(str(e))
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    asr = get_asr("whisper")
    import torch

    tts = LladaTTS.from_pretrained(args.model, dtype=None if args.dtype == "auto" else getattr(torch, args.dtype))
    utts = read_metadata(Path(args.heldout))
    out = Path(args.out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    report: dict = {"model": args.model, "dtype": str(tts.model.dtype).removeprefix("torch."), "options": options,
                    "front_end": tts.front_end}

    def save():
        write_atomic(out / "report.json", json.dumps(report, indent=1))

    def judged(text, wave, sr):
        heard = asr.transcribe(np.asarray(wave, np.float32), sr)
        return heard, word_errors(text, heard)

    if "edit" not in skip:
        lines = utts[: args.limit]
        rows, pairs = [], {"input": [], "roundtrip": [], "resynth": []}
        for i, u in enumerate(lines):
            wave, sr = sf.read(str(u.audio), dtype="float32")
            pairs["input"].append(judged(u.text, wave, sr)[1])
            round_trip = tts.codec.decode(tts.codec.encode(wave, sr).tokens(), seed=0)  # what kept frames sound like
            pairs["roundtrip"].append(judged(u.text, round_trip, tts.sample_rate)[1])
            for kind, (to, new, old) in one_word_edits(u.text, i).items():
                res = tts.edit(wave, sr, text=u.text, to=to, voice=u.voice, seed=i, **options)
                heard, errors = judged(to, res.waveform, res.sample_rate)
                sf.write(str(out / "audio" / f"{i:02d}-{kind}.wav"), res.waveform, res.sample_rate)
                rows.append({"line": i, "kind": kind, "to": to, "heard": heard, "errors": errors,
                             "landed": landed(heard, to, new, old), "kept_fraction": res.kept_fraction,
                             "changes": [[list(c.old), list(c.new)] for c in res.changes], "spans": res.spans,
                             "nfe": res.nfe, "seconds": res.wall_time})
                pairs.setdefault(kind, []).append(errors)
                if kind == "substitute":
                    syn = tts.synthesize(to, voice=u.voice, seed=i, **options)
                    pairs["resynth"].append(judged(to, syn.waveform, syn.sample_rate)[1])
            print(f"line {i + 1}/{len(lines)}: " + ", ".join(f"{r['kind']} {r['errors'][0]}/{r['errors'][1]}"
                                                            for r in rows[-3:]), flush=True)
            report["edit"] = {"rows": rows, "wer": {k: corpus_wer(v) for k, v in pairs.items()},
                              "kept_fraction_min": min(r["kept_fraction"] for r in rows)}
            save()
        print(f"\n{'edit':<12} {'WER':>6} {'landed':>7} {'kept':>6} {'s/edit':>7}")
        for kind in ("substitute", "insert", "delete"):
            mine = [r for r in rows if r["kind"] == kind]
            print(f"{kind:<12} {corpus_wer(pairs[kind]):>6.3f} {np.mean([r['landed'] for r in mine]):>7.0%} "
                  f"{min(r['kept_fraction'] for r in mine):>6.3f} {np.mean([r['seconds'] for r in mine]):>7.2f}")
        for name in ("resynth", "roundtrip", "input"):
            print(f"{name:<12} {corpus_wer(pairs[name]):>6.3f}")
        report["edit"]["landed"] = {k: float(np.mean([r["landed"] for r in rows if r["kind"] == k]))
                                    for k in ("substitute", "insert", "delete")}
        save()

    if "continuation" not in skip:
        similarity = similarity_fn()
        voices = args.voices.split(",") if args.voices else [*tts.voices, UNSEEN_VOICE]
        if len(utts) < 2 * len(voices) * args.pairs:
            ap.error(f"--pairs {args.pairs} x {len(voices)} voices needs {2 * len(voices) * args.pairs} held-out "
                     f"lines (references and new texts apart); {args.heldout} has {len(utts)}")
        rows = []
        for v, voice in enumerate(voices):
            for p in range(args.pairs):
                ref_u = utts[-1 - (v * args.pairs + p)]  # references from the end, new text from the start
                new_u = utts[v * args.pairs + p]
                ref_wave, ref_sr = espeak.synthesize(ref_u.text, voice)
                ref = tts.reference(ref_wave, ref_u.text, sample_rate=ref_sr)
                tag = voice if voice in tts.voices else None  # an unseen voice: the checkpoint's first
                row = {"voice": voice, "reference": ref_u.text, "text": new_u.text}
                for mode, kwargs in (("with", {"reference": ref}), ("without", {})):
                    res = tts.synthesize(new_u.text, voice=tag, seed=p, **kwargs, **options)
                    heard, errors = judged(new_u.text, res.waveform, res.sample_rate)
                    sf.write(str(out / "audio" / f"cont-{voice}-{p}-{mode}.wav"), res.waveform, res.sample_rate)
                    sim = similarity(res.waveform, res.sample_rate, ref_wave, ref_sr) if similarity else None
                    row[mode] = {"heard": heard, "errors": errors, "similarity": sim}
                rows.append(row)
                print(f"{voice} pair {p + 1}: with {row['with']['errors']} sim {row['with']['similarity']}, "
                      f"without {row['without']['errors']} sim {row['without']['similarity']}", flush=True)
                report["continuation"] = {"rows": rows}
                save()
        print(f"\n{'voice':<12} {'WER ref':>8} {'sim ref':>8} {'WER none':>9} {'sim none':>9}")
        summary = {}
        for voice in voices:
            mine = [r for r in rows if r["voice"] == voice]
            s = summary[voice] = {
                mode: {"wer": corpus_wer([r[mode]["errors"] for r in mine]),
                       "similarity": (float(np.mean([r[mode]["similarity"] for r in mine])) if similarity else None)}
                for mode in ("with", "without")}
            fmt = lambda x: f"{x:.3f}" if x is not None else "-"  # noqa: E731
            print(f"{voice:<12} {s['with']['wer']:>8.3f} {fmt(s['with']['similarity']):>8} "
                  f"{s['without']['wer']:>9.3f} {fmt(s['without']['similarity']):>9}")
        report["continuation"]["summary"] = summary
        save()
    print(f"wrote {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
