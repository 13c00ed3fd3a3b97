"""Voice continuation: speak new text in the voice of a reference recording (Orpheus / F5 prompting).

    prompt = tts.prompt(ref.text + " " + chunk text, voice)          the reference's words come first
    canvas = [reference audio ids (fixed) | MASK ... (new speech, then its stream end)]
    sample(..., init=canvas); the output is the part after the reference only

    ref = load_reference(tts.codec, "ref.wav", "What the reference says.")
    wav, sr = tts.synthesize("New words.", reference=ref, seed=0)

References longer than ``MAX_REFERENCE_SECONDS`` are cut at a pause before the limit (the
transcript is cut in proportion, an estimate: a note says so); silent or too short ones are refused.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch

from audio_tokenizer import layout as L
from llada_tts.sampling import sample
from llada_tts.synthesis.errors import SynthesisError
from llada_tts.synthesis.infill import SILENCE_DBFS, canvas_init, infill_config, load_wave, rms_dbfs
from llada_tts.synthesis.join import Joiner, crossfade_samples
from llada_tts.synthesis.request import SynthesisRequest
from llada_tts.synthesis.text import normalize_text

MAX_REFERENCE_SECONDS = 15.0
MIN_REFERENCE_SECONDS = 0.5
CUT_SEARCH_SECONDS = 1.5  # look for the quietest 20 ms in the last 1.5 s before the limit
F = L.SLOTS_PER_FRAME


@dataclass(frozen=True)
class Reference:
    """A reference voice: its transcript (normalised) and codec ids [7n]; ``note`` says what was trimmed."""

    text: str
    tokens: torch.Tensor  # [7n] audio ids
    note: str = ""

    @property
    def frames(self) -> int:
        return self.tokens.numel() // F

    @property
    def seconds(self) -> float:
        return self.frames / L.FRAMES_PER_SECOND


def trim_reference(wave: np.ndarray, text: str, max_seconds: float) -> tuple[np.ndarray, str, str]:
    """(wave, text, note): a wave [T] longer than ``max_seconds`` cut at its quietest 20 ms in the
    last ``CUT_SEARCH_SECONDS`` before the limit, and the transcript's words cut in proportion."""
    limit = int(max_seconds * L.SAMPLE_RATE)
    if len(wave) <= limit:
        return wave, text, ""
    hop = L.SAMPLE_RATE // 50  # 20 ms
    lo = max(0, limit - int(CUT_SEARCH_SECONDS * L.SAMPLE_RATE))
    window = wave[lo : lo + (limit - lo) // hop * hop].reshape(-1, hop)  # [k, hop]
    cut = lo + int(np.argmin(np.square(window).mean(axis=1))) * hop + hop // 2 if len(window) else limit
    words = text.split()
    budget, keep = len(text) * cut / len(wave), 0
    while keep < len(words) and len(" ".join(words[: keep + 1])) <= budget:
        keep += 1
    keep = max(1, keep)
    note = (f"the reference is {len(wave) / L.SAMPLE_RATE:.1f} s, longer than {max_seconds:g} s: using its first "
            f"{cut / L.SAMPLE_RATE:.1f} s (cut at a pause) and the first {keep} of its {len(words)} transcript "
            f"words (an estimate; for the best match give at most {max_seconds:g} s with its exact transcript)")
    return wave[:cut], " ".join(words[:keep]), note


def load_reference(codec, audio, text: str | None, sample_rate: int | None = None, *,
                   max_seconds: float = MAX_REFERENCE_SECONDS) -> Reference:
    """Encode a reference (a path, or samples at ``sample_rate``) with its transcript ``text``.
    SynthesisError (one line) for a missing transcript, unreadable, silent or too short audio.
    A trimmed reference carries a ``note`` (also given as a warning)."""
    wave, text, note = check_reference(audio, text, sample_rate, max_seconds=max_seconds)
    if note:
        warnings.warn(note, stacklevel=2)
    return Reference(text, codec.encode(wave, L.SAMPLE_RATE).tokens().long(), note)


def check_reference(audio, text: str | None, sample_rate: int | None = None, *,
                    max_seconds: float = MAX_REFERENCE_SECONDS) -> tuple[np.ndarray, str, str]:
    """(wave [T] at 24 kHz, normalised transcript, note) of a usable reference, trimmed as
    ``trim_reference`` does; no codec needed (a front end can check before loading a model)."""
    if not isinstance(text, str) or not normalize_text(text):
        raise SynthesisError("reference: no transcript: give what the reference audio says (--ref-text)")
    if not 0 < max_seconds < math.inf:
        raise SynthesisError(f"reference: max_seconds must be a finite number > 0, got {max_seconds!r}")
    wave = load_wave(audio, sample_rate, "reference audio")
    seconds = len(wave) / L.SAMPLE_RATE
    if seconds < MIN_REFERENCE_SECONDS:
        raise SynthesisError(f"reference audio is {seconds:.2f} s long; give at least {MIN_REFERENCE_SECONDS:g} s "
                             "of speech")
    level = rms_dbfs(wave)
    if level < SILENCE_DBFS:
        raise SynthesisError(f"reference audio is silent ({level:.0f} dBFS RMS, below {SILENCE_DBFS:g}); give a "
                             "recording of speech")
    return trim_reference(wave, normalize_text(text), max_seconds)


def reference_prompt(tts, ref: Reference, text: str, voice: str | None = None, speed: float = 1.0) -> list[int]:
    """The prompt of a continuation: the reference's transcript, then the new text (one prompt). A
    frame-timed checkpoint gets the two timelines, the reference's stretched to its frames."""
    from audio_tokenizer.frames import PER_FRAME  # (lazy: it loads eSpeak NG)

    if tts.front_end in PER_FRAME:
        from llada_tts.synthesis.timeline import reference_timeline

        return tts.timeline_prompt(reference_timeline(ref.text, ref.frames, text, voice, PER_FRAME[tts.front_end],
                                                      speed), voice)
    return tts.prompt(f"{ref.text} {text}", voice)


def reference_init(ref: Reference, gen_length: int) -> torch.Tensor:
    """[gen_length] canvas: the reference's ids (fixed), then masks for the new speech and its end."""
    return canvas_init(ref.tokens, gen_length, end=False)


def synthesize_with_reference(tts, request: SynthesisRequest, reference: Reference):
    """``LladaTTS.synthesize(request, reference=reference)``: same chunking, batching, seeds and result
    (a ``SynthesisResult`` of the new speech only); every chunk's canvas starts with the reference."""
    from llada_tts.synthesis.pipeline import SynthesisResult

    if not isinstance(reference, Reference):
        raise SynthesisError(f"reference must be a Reference (tts.reference(audio, text)), got "
                             f"{type(reference).__name__}")
    start = time.perf_counter()
    run = tts._prepare(request)
    generator = torch.Generator(device=tts.device).manual_seed(run.seed)
    joiner = Joiner(crossfade_samples(tts.sample_rate, tts.crossfade_ms))
    k, R = reference.frames, reference.tokens.numel()
    parts, infos = [], []
    for b in range(0, len(run.plans), run.batch_size):
        batch = run.plans[b : b + run.batch_size]
        new = max(p.frames for p in batch)
        min_new = math.floor(run.options.get("min_length", 0.0) * new)
        config = infill_config(k + new, new, run.options, min_frames=k + min_new)
        out = sample(tts.model, [reference_prompt(tts, reference, p.text, run.voice, run.speed) for p in batch], config,
                     generator=generator, init=reference_init(reference, config.gen_length))
        run.nfe += out.nfe
        own = replace(config, gen_length=config.gen_length - R)  # the chunk's own canvas, for its ChunkInfo
        for i, (plan, row) in enumerate(zip(batch, out.generated)):
            chunk = tts._decode_chunk(b + i, len(run.plans), plan, row[R:], own, out.nfe, run.seed)
            parts += [joiner.feed(chunk.wave), joiner.end_chunk()]
            infos.append(chunk.info)
    parts.append(joiner.finish())
    return SynthesisResult(np.concatenate(parts).astype(np.float32), tts.sample_rate, infos, run.seed,
                           time.perf_counter() - start, overlap=joiner.overlap, nfe=run.nfe)
