"""Frame-timed checkpoints (``espeak-frames`` / ``espeak-quarters``): the phoneme timelines of an edit
and of a voice continuation.

Such a model reads one phoneme per codec frame (or quarter frame) of the speech it writes, so its
prompt must describe every frame of the canvas, the kept ones included. Where a recording's frames
come from its transcript, eSpeak NG's timeline of that transcript, stretched to the recording's
length, names them: exact for this model's own speech and for eSpeak's (same timing), an estimate
for other speakers.

    source  = timeline(text) stretched to the recording's n frames           [n * d] table indices
    edit    = source with each change's frames replaced by timeline(to)'s frames of the new words
    continue= timeline(reference text) stretched to the reference's k frames + timeline(new text)

Word times come from eSpeak's own word events (``frames.timed_words``), rounded to whole frames, so a
splice never cuts a frame's ``d`` samples apart.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from llada_tts.synthesis.errors import SynthesisError


@dataclass(frozen=True)
class WordTimeline:
    """eSpeak's timeline of a text: ``phones`` [frames * per_frame] table indices; ``starts[k]`` /
    ``ends[k]``: frames [start, end) of normalised word k (a word runs to the next word's start,
    the pause between them included; the last word to the end)."""

    phones: tuple[int, ...]
    per_frame: int
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @property
    def frames(self) -> int:
        return len(self.phones) // self.per_frame

    def segment(self, lo: int, hi: int) -> list[int]:
        """The table indices of frames [lo, hi)."""
        return list(self.phones[lo * self.per_frame : hi * self.per_frame])

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Frames [lo, hi) of normalised words [start, end); an empty range is the boundary before
        word ``start`` (the end of the speech after the last word)."""
        if end > start:
            return self.starts[start], self.ends[end - 1]
        at = self.starts[start] if start < len(self.starts) else self.frames
        return at, at

    def groups(self) -> list[int]:
        """A group number per word: eSpeak NG speaks some words as one (no word event for "the" in
        "in the"; one for "well-known", two words once normalised), so their frames cannot be told
        apart. A word without frames of its own joins the word before (its sound is in that word's
        span; a leading one joins the next), and words of one written word share a group."""
        out: list[int] = []
        for k, (start, end) in enumerate(zip(self.starts, self.ends)):
            joins = k > 0 and (start == end or (start, end) == (self.starts[k - 1], self.ends[k - 1]))
            out.append(out[-1] if joins else (out[-1] + 1 if out else 0))
        if out and self.starts[0] == self.ends[0] and len(out) > 1:  # a leading word without frames
            out = [g if g != out[0] or k else out[1] for k, g in enumerate(out)]
        return out

    def whole(self, start: int, end: int) -> tuple[int, int]:
        """Words [start, end) widened to whole groups; an empty range inside a group widens to it."""
        g = self.groups()
        if end > start:
            return g.index(g[start]), len(g) - g[::-1].index(g[end - 1])
        if 0 < start < len(g) and g[start] == g[start - 1]:
            return g.index(g[start]), len(g) - g[::-1].index(g[start])
        return start, end


def word_timeline(text: str, voice: str | None, per_frame: int, rate: int | None = None) -> WordTimeline:
    """eSpeak NG's timeline of ``text`` with the frames of its normalised words (``edit.words_of``).
    Each written word (split at spaces) starts where eSpeak's first word event inside it starts; the
    normalised words a written one expands to ("23" -> "twenty three") share its frames.
    SynthesisError when the words cannot be matched."""
    from audio_tokenizer.frames import RATE, timed_words
    from llada_tts.synthesis.edit import words_of

    phones, events = timed_words(text, voice or "en-us", rate or RATE, per_frame)
    frames = len(phones) // per_frame
    written = [(m.start(), m.end(), len(words_of(m.group()))) for m in re.finditer(r"\S+", text)]
    if sum(k for _, _, k in written) != len(words_of(text)):
        raise SynthesisError(f"cannot match the words of {text[:60]!r} to eSpeak NG's word timing (they normalise "
                             "differently one by one); write its numbers and symbols as words")
    first: list[int | None] = [None] * len(written)  # first frame of each written word
    for position, frame in events:
        for i, (lo, hi, _) in enumerate(written):
            if lo <= position < hi and first[i] is None:
                first[i] = min(frame, frames)
    following = frames  # a word eSpeak did not mark starts where the next marked one does
    for i in reversed(range(len(written))):
        first[i] = following = min(first[i] if first[i] is not None else following, following)
    starts, ends = [], []
    for i, (_, _, k) in enumerate(written):
        end = first[i + 1] if i + 1 < len(written) else frames
        starts += [first[i]] * k
        ends += [end] * k
    return WordTimeline(tuple(phones), per_frame, tuple(starts), tuple(ends))


def group_changes(changes, source: WordTimeline, target: WordTimeline, old_words: list[str],
                  new_words: list[str]) -> tuple[list, list[int]]:
    """(``changes`` widened to whole word groups (``WordTimeline.groups``) on both sides, and merged
    where they then overlap; for each given change, the widened one it belongs to). Widening one
    side by k kept words widens the other by the same k words (they are equal), so it repeats until
    both sides are whole groups. ``old_words`` / ``new_words``: the two texts' normalised words."""
    from llada_tts.synthesis.edit import Change

    merged: list[list[int]] = []
    owner = []
    for c in changes:
        s, e, a, b = c.start, c.end, c.at, c.at + len(c.new)
        while True:
            s2, e2 = source.whole(s, e)
            a2, b2 = a - (s - s2), b + (e2 - e)
            a3, b3 = target.whole(a2, b2)
            s3, e3 = s2 - (a2 - a3), e2 + (b3 - b2)
            if (s3, e3, a3, b3) == (s, e, a, b):
                break
            s, e, a, b = s3, e3, a3, b3
        if merged and (s < merged[-1][1] or a < merged[-1][3]):
            m = merged[-1]
            m[:] = [min(m[0], s), max(m[1], e), min(m[2], a), max(m[3], b)]
        else:
            merged.append([s, e, a, b])
        owner.append(len(merged) - 1)
    out = [Change(s, e, tuple(old_words[s:e]), tuple(new_words[a:b]), a) for s, e, a, b in merged]
    return out, owner


def stretch(phones, per_frame: int, frames: int) -> list[int]:
    """A timeline [f * per_frame] stretched (or squeezed) to ``frames`` frames: output frame i takes
    the input frame under its centre, whole (its ``per_frame`` samples together)."""
    have = len(phones) // per_frame
    if have == 0:
        return [0] * (frames * per_frame)  # all pause
    out: list[int] = []
    for i in range(frames):
        j = min(have - 1, int((i + 0.5) * have / frames))
        out += phones[j * per_frame : (j + 1) * per_frame]
    return out


def scale_frame(frame: int, have: int, frames: int) -> int:
    """A frame boundary of a ``have``-frame timeline on a ``frames``-frame recording."""
    return min(frames, round(frame * frames / have)) if have else 0


def edit_timeline(source: WordTimeline, target: WordTimeline, n: int, spans: list[tuple[int, int]],
                  changes) -> tuple[list[int], list[int]]:
    """(the output's timeline [m * per_frame], new-word frames per change): ``source`` stretched to the
    recording's ``n`` frames with input frames ``spans[c]`` = [lo, hi) replaced by ``target``'s frames
    of change c's new words (``Change.at`` .. + len(new)), stretched by the same factor (the
    recording's tempo). Spans in order; one that starts inside the previous starts where it ends."""
    d = source.per_frame
    base = stretch(source.phones, d, n)
    out, speech, pos = [], [], 0
    for (lo, hi), change in zip(spans, changes):
        if hi < pos:
            raise SynthesisError("the edit spans are out of order; give one span per change, in order")
        lo = max(lo, pos)
        new = target.segment(*target.span(change.at, change.at + len(change.new))) if change.new else []
        if new and n != source.frames:
            new = stretch(new, d, max(1, round(len(new) // d * n / max(1, source.frames))))
        out += base[pos * d : lo * d] + new
        speech.append(len(new) // d)
        pos = hi
    return out + base[pos * d :], speech


def source_spans(source: WordTimeline, n: int, changes) -> list[tuple[int, int]]:
    """Input frames [lo, hi) of each change on a recording of ``n`` frames, from eSpeak's word times
    of its transcript stretched to the recording."""
    return [tuple(scale_frame(f, source.frames, n) for f in source.span(c.start, c.end)) for c in changes]


def reference_timeline(ref_text: str, ref_frames: int, text: str, voice: str | None, per_frame: int,
                       speed: float = 1.0) -> list[int]:
    """A continuation's timeline: eSpeak's timeline of the reference's transcript stretched to its
    ``ref_frames`` frames, then the new ``text``'s at ``speed`` (as ``frames.frame_ids`` times it)."""
    from audio_tokenizer.frames import RATE, frame_phonemes, speed_rate

    voice = voice or "en-us"
    ref = stretch(list(frame_phonemes(ref_text, voice, RATE, per_frame)), per_frame, ref_frames)
    return ref + list(frame_phonemes(text, voice, speed_rate(speed), per_frame))
