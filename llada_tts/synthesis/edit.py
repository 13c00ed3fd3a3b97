"""Speech editing: rewrite some words of a recording; every frame outside the edits stays token for token.

    tokens  = codec.encode(audio)                       [7n] audio ids (n frames of 2048 samples)
    changes = word_changes(text, to)                    word-level diff (difflib) of normalised words
    spans   = given (seconds) | Whisper word times      one (start, end) per change
    regions = span_region(...) per change, merged       input frames [lo, hi): the span's frames plus
                                                        ``margin`` on each side -> ``frames`` new ones
                                                        (the margins + the new words' estimated length)
    canvas  = prompt(to) + [kept ids | MASK x 7 frames | kept ids ...] + end_of_speech, end_of_ai, pad
    sample(..., init=canvas) fills only the masks; the whole stream is decoded once (no seams).

An insertion is an empty span (the pause between two words) resized to the inserted words' length;
a deletion is a span resized to its margins (nothing new is said there).
"""
from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import numpy as np
import torch

from audio_tokenizer import layout as L
from audio_tokenizer.errors import first_line
from llada_tts.sampling import sample
from llada_tts.synthesis.defaults import DEFAULT_MAX_DURATION, check_max_duration, check_sampler_options, check_seed
from llada_tts.synthesis.errors import SynthesisError
from llada_tts.synthesis.infill import canvas_init, infill_config, load_wave
from llada_tts.synthesis.text import normalize_text

SPF, F = L.SAMPLES_PER_FRAME, L.SLOTS_PER_FRAME
DEFAULT_MARGIN_FRAMES = 2  # ~0.17 s re-generated on each side of a span: word timestamps are not exact


@dataclass(frozen=True)
class Change:
    """Transcript words [start, end) (normalised word indices) become ``new`` (start == end: an insertion)."""

    start: int
    end: int
    old: tuple[str, ...]
    new: tuple[str, ...]
    at: int = 0  # where the new words start among the target's normalised words

    @property
    def kind(self) -> str:
        return "insert" if not self.old else "delete" if not self.new else "substitute"


@dataclass(frozen=True)
class Region:
    """Input frames [lo, hi) replaced by ``frames`` generated frames, ``speech`` of them for new words."""

    lo: int
    hi: int
    frames: int
    speech: int


@dataclass
class EditResult:
    """``wav, sr = tts.edit(...)`` unpacks to (waveform float32 [T], 24000)."""

    waveform: np.ndarray
    sample_rate: int
    tokens: torch.Tensor  # output audio ids [7m]
    source_tokens: torch.Tensor  # input audio ids [7n]
    origin: torch.Tensor  # [m] input frame of each output frame, -1 where generated
    regions: list[Region]  # input frames replaced
    changes: list[Change]
    spans: list[tuple[float, float]]  # seconds of the input, one per change
    seed: int
    nfe: int = 0
    wall_time: float = 0.0
    out_regions: list[tuple[int, int]] = field(default_factory=list)  # output frames [lo, hi) generated

    def __iter__(self):
        return iter((self.waveform, self.sample_rate))

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sample_rate

    @property
    def spans_in(self) -> list[tuple[float, float]]:
        """Seconds of the input that were replaced (the spans plus margins, in whole frames)."""
        return [(r.lo * SPF / L.SAMPLE_RATE, r.hi * SPF / L.SAMPLE_RATE) for r in self.regions]

    @property
    def spans_out(self) -> list[tuple[float, float]]:
        """Seconds of the output that were generated (to highlight the edits)."""
        return [(lo * SPF / L.SAMPLE_RATE, hi * SPF / L.SAMPLE_RATE) for lo, hi in self.out_regions]

    @property
    def kept_fraction(self) -> float:
        """Of the output frames taken from the input, the fraction identical token for token (1.0)."""
        kept = (self.origin >= 0).nonzero().squeeze(1)  # [k]
        if not len(kept):
            return 1.0
        out = self.tokens.view(-1, F)[kept]  # [k, 7]
        src = self.source_tokens.view(-1, F)[self.origin[kept]]  # [k, 7]
        return float((out == src).all(dim=1).float().mean())


# --- words -------------------------------------------------------------------------------------------

def words_of(text: str) -> list[str]:
    """Normalised words (numbers spelled out, lower case, no punctuation), as the WER judge sees them."""
    from audio_tokenizer.judge import normalize_words

    return normalize_words(text)


def word_changes(text: str, to: str) -> list[Change]:
    """The word-level differences between transcript ``text`` and target ``to``, in order."""
    a, b = words_of(text), words_of(to)
    ops = SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return [Change(i1, i2, tuple(a[i1:i2]), tuple(b[j1:j2]), j1) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def spans_from_word_times(words: list[str], heard: list[tuple[str, float, float]], changes: list[Change],
                          duration: float) -> list[tuple[float, float]]:
    """Seconds (start, end) of each change, from recognised (word, start, end) aligned to the
    transcript ``words``. A changed word runs from its start to its end; an insertion spans the pause
    between its neighbours; an unrecognised word is bounded by its nearest recognised neighbours."""
    at: dict[int, tuple[float, float]] = {}
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, words, [w for w, _, _ in heard], autojunk=False).get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):  # misheard words keep their times
            at.update({i1 + k: heard[j1 + k][1:] for k in range(i2 - i1)})
    if len(at) * 2 < len(words):
        said = " ".join(w for w, _, _ in heard) or "nothing"
        raise SynthesisError(f"the recording does not match the transcript (Whisper heard: {said[:80]!r}); "
                             "check --text or give the spans with --span START:END")

    def prev_end(i):  # end of the last recognised word before word i
        return max((at[k][1] for k in at if k < i), default=0.0)

    def next_start(i):  # start of the first recognised word at or after word i
        return min((at[k][0] for k in at if k >= i), default=duration)

    spans = []
    for c in changes:
        if c.end > c.start:
            start = at[c.start][0] if c.start in at else prev_end(c.start)
            end = at[c.end - 1][1] if c.end - 1 in at else next_start(c.end)
        else:
            start, end = prev_end(c.start), next_start(c.start)
        spans.append((min(start, duration), min(max(start, end), duration)))
    return spans


def whisper_word_times(wave: np.ndarray) -> list[tuple[str, float, float]]:
    """(normalised word, start s, end s) recognised in a 24 kHz wave by the bundled Whisper tiny.en."""
    from audio_tokenizer.judge import WHISPER_DECODE, ASRError, FasterWhisperASR, to_16k

    try:
        asr = FasterWhisperASR()
        decode = {**WHISPER_DECODE, "without_timestamps": False}
        segments, _ = asr._model.transcribe(to_16k(wave, L.SAMPLE_RATE), beam_size=asr.beam_size,
                                            word_timestamps=True, **decode)
        return [(w, float(word.start), float(word.end)) for s in segments for word in (s.words or [])
                for w in words_of(word.word)]
    except ASRError as e:
        raise SynthesisError(f"word timestamps: {first_line(e)}; or give the spans with --span START:END") from e


def find_spans(wave: np.ndarray, text: str, changes: list[Change], spans) -> list[tuple[float, float]]:
    """The given spans (checked: one per change, inside the audio) or Whisper's; SynthesisError otherwise."""
    from audio_tokenizer.judge import whisper_available

    duration = len(wave) / L.SAMPLE_RATE
    if spans is None:
        if not whisper_available():
            raise SynthesisError(f"no spans: give one --span START:END (seconds) per change ({len(changes)}: "
                                 f"{describe(changes)}), or install the eval extra for Whisper word timestamps "
                                 '(pip install "llada-tts[eval]")')
        return spans_from_word_times(words_of(text), whisper_word_times(wave), changes, duration)
    spans = [tuple(s) for s in spans]
    if len(spans) != len(changes):
        raise SynthesisError(f"{len(spans)} span(s) for {len(changes)} change(s) ({describe(changes)}): give "
                             "one START:END per change, in order")
    for i, span in enumerate(spans, 1):
        if len(span) != 2 or not all(isinstance(t, (int, float)) and math.isfinite(t) for t in span):
            raise SynthesisError(f"span {i} must be (start, end) in seconds, got {span!r}")
        start, end = span
        if not 0 <= start <= end <= duration + 1e-6:
            raise SynthesisError(f"span {i} ({start:g}:{end:g} s) is outside the audio (0:{duration:.3f} s) "
                                 "or ends before it starts")
    return [(float(s), min(float(e), duration)) for s, e in spans]


def describe(changes: list[Change]) -> str:
    """``"dog" -> "cat", + "very", - "old"`` for messages."""
    show = {"substitute": lambda c: f'"{" ".join(c.old)}" -> "{" ".join(c.new)}"',
            "insert": lambda c: f'+ "{" ".join(c.new)}"', "delete": lambda c: f'- "{" ".join(c.old)}"'}
    return ", ".join(show[c.kind](c) for c in changes)


# --- frames --------------------------------------------------------------------------------------

def span_frames(start: float, end: float, n_frames: int) -> tuple[int, int]:
    """Frames [lo, hi) covering seconds [start, end): whole frames touched (times rounded to samples
    first, so a time on a frame boundary is exact). An empty span on a boundary covers no frame."""
    s, e = round(start * L.SAMPLE_RATE), round(end * L.SAMPLE_RATE)
    lo, hi = s // SPF, -(-e // SPF)
    return min(lo, n_frames), min(max(lo, hi), n_frames)


def speech_frames(words, chars_per_second: float) -> int:
    """Frames to say ``words``: their characters plus one separating space at ``chars_per_second``
    (at least 1; 0 for no words)."""
    if not words:
        return 0
    return max(1, round((len(" ".join(words)) + 1) / chars_per_second * L.FRAMES_PER_SECOND))


def span_region(span: tuple[float, float], change: Change, n_frames: int, margin: int,
                chars_per_second: float, speech: int | None = None) -> Region:
    """The input frames to replace for one change (span + ``margin`` frames each side, inside the
    audio) and how many frames replace them (the margins, re-generated at their length, + the new
    words' length: ``speech`` frames, else estimated at ``chars_per_second``)."""
    lo, hi = span_frames(*span, n_frames)
    lo_m, hi_m = max(0, lo - margin), min(n_frames, hi + margin)
    speech = speech_frames(change.new, chars_per_second) if speech is None else speech
    return Region(lo_m, hi_m, (lo - lo_m) + (hi_m - hi) + speech, speech)


def merge_regions(regions: list[Region]) -> list[Region]:
    """Sorted, with overlapping or touching regions merged (frames both re-generate as margins count once)."""
    out: list[Region] = []
    for r in sorted(regions, key=lambda r: (r.lo, r.hi)):
        if out and r.lo <= out[-1].hi:
            p = out[-1]
            overlap = min(p.hi, r.hi) - r.lo
            speech = p.speech + r.speech
            out[-1] = Region(p.lo, max(p.hi, r.hi), max(speech, p.frames + r.frames - overlap), speech)
        else:
            out.append(r)
    return out


def edit_canvas(tokens: torch.Tensor, regions: list[Region]) -> tuple[torch.Tensor, torch.Tensor, list]:
    """(canvas [7m] ids: kept frames as given, MASK where generated; origin [m]: the input frame of
    each output frame, -1 where generated; the generated output frames [lo, hi) per region)."""
    n = tokens.numel() // F
    parts, origin, out = [], [], []
    pos = 0
    for r in regions:  # sorted, disjoint
        parts += [tokens[F * pos : F * r.lo], torch.full((F * r.frames,), L.MASK_ID, dtype=torch.long)]
        origin += [torch.arange(pos, r.lo), torch.full((r.frames,), -1)]
        m = sum(len(o) for o in origin[:-1])
        out.append((m, m + r.frames))
        pos = r.hi
    parts.append(tokens[F * pos :])
    origin.append(torch.arange(pos, n))
    return torch.cat(parts).long(), torch.cat(origin).long(), out


# --- the edit -------------------------------------------------------------------------------------

def edit(tts, audio, sample_rate: int | None = None, text: str | None = None, to: str | None = None, spans=None,
         *, voice: str | None = None, seed: int | None = None, margin: int = DEFAULT_MARGIN_FRAMES,
         max_duration: float | None = DEFAULT_MAX_DURATION, **sampler_options) -> EditResult:
    """Make the recording ``audio`` (a path, or samples at ``sample_rate``) whose transcript is
    ``text`` say ``to``. ``spans``: one (start, end) in seconds per word-level change, in order
    (None: Whisper word timestamps, if installed; eSpeak NG's word times for a frame-timed checkpoint).
    ``margin``: frames re-generated on each side of a span. Sampler options as for ``synthesize``,
    over the checkpoint's own defaults (steps per block of the masked frames). Frames outside the
    regions are kept token for token. Raises SynthesisError (one line)."""
    start_time = time.perf_counter()
    from audio_tokenizer.frames import PER_FRAME  # (lazy: it loads eSpeak NG)

    per_frame = PER_FRAME.get(tts.front_end, 0)  # a frame-timed checkpoint: its prompt names every frame
    if voice is not None and not isinstance(voice, str):
        raise SynthesisError(f"voice must be a string, got {type(voice).__name__}")
    voice = voice.strip() if voice else None
    if voice and tts.voices and voice not in tts.voices:
        raise SynthesisError(f"unknown voice {voice!r}; this checkpoint has: {', '.join(tts.voices)}")
    if per_frame and not voice and tts.voices:
        voice = tts.voices[0]  # as synthesis does: a frame-timed checkpoint's rows always named a voice
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise SynthesisError(f"margin must be a whole number of frames >= 0, got {margin!r}")
    seed = secrets.randbits(31) if seed is None else check_seed(seed)
    max_duration = check_max_duration(max_duration)
    options = check_sampler_options({**tts.meta.sampler, **sampler_options}, max_duration)  # checkpoint's first
    if not isinstance(text, str) or not words_of(text):
        raise SynthesisError("no transcript: give the words the recording says (--text)")
    if not isinstance(to, str) or not normalize_text(to):
        raise SynthesisError("no target text: give what the recording should say (--to)")
    changes = word_changes(text, to)
    if not changes:
        raise SynthesisError("the transcript and the target have the same words: nothing to edit")
    wave = load_wave(audio, sample_rate, "input audio")
    seconds = len(wave) / L.SAMPLE_RATE
    if max_duration is not None and seconds > max_duration:
        raise SynthesisError(f"the input audio is {seconds:.1f} s, longer than max_duration={max_duration:g} s "
                             "(an edit samples the whole recording at once); raise --max-duration or cut it")
    if spans is not None or not per_frame:
        spans = find_spans(wave, text, changes, spans)
    encoded = tts.codec.encode(wave, L.SAMPLE_RATE)
    source = encoded.tokens().long()  # [7n]
    n = encoded.frames
    speech, phones = [None] * len(changes), None
    if per_frame:  # eSpeak's timelines: the spans (unless given), the new words' lengths, the prompt
        from llada_tts.synthesis import timeline as tl

        before = tl.word_timeline(normalize_text(text), voice, per_frame)
        after = tl.word_timeline(normalize_text(to), voice, per_frame)
        # eSpeak speaks some words as one ("in the"): change whole groups, on both sides
        changes, owner = tl.group_changes(changes, before, after, words_of(text), words_of(to))
        if spans is None:
            at = tl.source_spans(before, n, changes)
        else:  # the given spans of the changes a group holds, joined
            given = [span_frames(*s, n) for s in spans]
            at = [(min(given[i][0] for i in range(len(owner)) if owner[i] == g),
                   max(given[i][1] for i in range(len(owner)) if owner[i] == g)) for g in range(len(changes))]
        phones, speech = tl.edit_timeline(before, after, n, at, changes)
        spans = [(lo * SPF / L.SAMPLE_RATE, hi * SPF / L.SAMPLE_RATE) for lo, hi in at]
    regions = merge_regions([span_region(s, c, n, margin, tts.chars_per_second, k)
                             for s, c, k in zip(spans, changes, speech)])
    head, origin, out_regions = edit_canvas(source, regions)  # [7m], [m]
    m, masked = len(origin), int((origin < 0).sum())
    if m == 0:
        raise SynthesisError("the edit leaves no audio")
    if max_duration is not None and m / L.FRAMES_PER_SECOND > max_duration:
        raise SynthesisError(f"the edited audio would be {m / L.FRAMES_PER_SECOND:.1f} s, longer than "
                             f"max_duration={max_duration:g} s")
    tokens, nfe = head, 0
    if masked:
        config = infill_config(m, masked, options, min_frames=m)  # no stream end inside the audio
        generator = torch.Generator(device=tts.device).manual_seed(seed)
        prompt = tts.prompt(normalize_text(to), voice) if phones is None else tts.timeline_prompt(phones, voice)
        out = sample(tts.model, [prompt], config, generator=generator,
                     init=canvas_init(head, config.gen_length, end=True))
        tokens, nfe = out.generated[0, : F * m].cpu().long(), out.nfe
    report = L.validate_audio_tokens(tokens)
    if report.frames_kept != m or not report.ok:
        raise SynthesisError(f"the edit produced invalid audio ({report.frames_kept}/{m} valid frames)")
    wave_out = tts.codec.decode(tokens, seed=seed)  # one decode: no seams to crossfade
    if origin[-1] == n - 1:  # the input's last (zero-padded) frame is kept: trim its padding again
        wave_out = wave_out[: len(wave_out) - (n * SPF - encoded.length)]
    return EditResult(wave_out.astype(np.float32), L.SAMPLE_RATE, tokens, source, origin, regions, changes, spans,
                      int(seed), nfe, time.perf_counter() - start_time, out_regions)


def parse_span(text: str) -> tuple[float, float]:
    """``"1.2:1.5"`` -> (1.2, 1.5) seconds; ValueError naming the expected form."""
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, end = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"a span is START:END in seconds (e.g. 1.2:1.55), got {text!r}") from None
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
        raise ValueError(f"a span needs 0 <= START <= END (finite seconds), got {text!r}")
    return start, end
