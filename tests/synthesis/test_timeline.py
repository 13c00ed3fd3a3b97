"""Frame-timed edits and continuations (``llada_tts.synthesis.timeline``): eSpeak's word times, the
stretch and splice arithmetic by hand, and edit / continuation on a tiny espeak-quarters model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from audio_tokenizer import espeak
from audio_tokenizer import layout as L
from audio_tokenizer.frames import FIRST_ID, PHONE_INDEX, RATE, frame_phonemes, timed_words
from llada_tts.checkpoint_meta import META_FILE, CheckpointMeta
from llada_tts.model import config_for_size, create_model, save_model
from llada_tts.synthesis import LladaTTS, SynthesisError
from llada_tts.synthesis import timeline as T
from llada_tts.synthesis.edit import Change, word_changes
from llada_tts.vocab import build_offline_tokenizer

SR, F, SPF = L.SAMPLE_RATE, L.SLOTS_PER_FRAME, L.SAMPLES_PER_FRAME
FAST = {"steps": 4}


def test_timed_words_share_the_phoneme_timeline_and_mark_each_word():
    text = "Hello big world."
    phones, words = timed_words(text, "en-us", RATE, 4)
    assert phones == frame_phonemes(text, "en-us", RATE, 4)  # the same synthesis, the same timeline
    assert [p for p, _ in words] == [0, 6, 10]  # character positions of the three words
    frames = [f for _, f in words]
    assert frames == sorted(frames) and frames[-1] < len(phones) // 4


def test_word_timeline_frames_hold_their_words_phonemes():
    tl = T.word_timeline("Hello big world.", "en-us", 4)
    assert tl.starts[0] == 0 and tl.ends[:-1] == tl.starts[1:] and tl.ends[-1] == tl.frames
    lo, hi = tl.span(1, 2)  # the frames of "big" (a boundary frame may hold a neighbour's quarter)
    assert {PHONE_INDEX["b"], PHONE_INDEX["ˈɪ"], PHONE_INDEX["ɡ"]} <= set(tl.segment(lo, hi))
    inside = set(tl.segment(lo + 1, hi - 1))
    assert not inside & {PHONE_INDEX["w"], PHONE_INDEX["ˈoʊ"], PHONE_INDEX["ˈɜː"]}  # none of hello's or world's
    assert PHONE_INDEX["b"] not in set(tl.segment(*tl.span(2, 3)))
    assert tl.span(1, 1) == (tl.starts[1], tl.starts[1]) and tl.span(3, 3) == (tl.frames, tl.frames)


def test_written_words_that_normalise_to_several_share_their_frames():
    tl = T.word_timeline("It costs 23 dollars.", "en-us", 1)  # it costs twenty three dollars
    assert len(tl.starts) == 5 and tl.starts[2] == tl.starts[3] and tl.ends[2] == tl.ends[3] == tl.starts[4]


def test_stretch_and_scale_by_hand():
    assert T.stretch([1, 2, 3, 4], 2, 4) == [1, 2, 1, 2, 3, 4, 3, 4]  # each frame's pair stays together
    assert T.stretch([1, 2, 3, 4], 2, 1) == [3, 4]  # the frame under the centre
    assert T.stretch([1, 2, 3], 1, 3) == [1, 2, 3]  # same length: unchanged
    assert T.stretch([], 4, 2) == [0] * 8  # nothing: pauses
    assert T.scale_frame(5, 10, 20) == 10 and T.scale_frame(10, 10, 13) == 13 and T.scale_frame(3, 0, 5) == 0


def _tl(phones, starts, ends, per_frame=1):
    return T.WordTimeline(tuple(phones), per_frame, tuple(starts), tuple(ends))


def test_edit_timeline_splices_the_new_words_frames_by_hand():
    # source "a b": a = frames [0, 3), b = [3, 6); target "a c": c = [3, 7)
    source = _tl([0, 5, 5, 6, 6, 0], [0, 3], [3, 6])
    target = _tl([0, 5, 5, 7, 7, 7, 0], [0, 3], [3, 7])
    sub = Change(1, 2, ("b",), ("c",), 1)
    phones, speech = T.edit_timeline(source, target, 6, [(3, 6)], [sub])
    assert phones == [0, 5, 5, 7, 7, 7, 0] and speech == [4]
    # the recording is twice eSpeak's length: the kept frames are the stretched source's, and the
    # new words are stretched alike (the recording's tempo)
    phones, speech = T.edit_timeline(source, target, 12, [(6, 12)], [sub])
    assert phones == [0, 0, 5, 5, 5, 5] + [7, 7, 7, 7, 7, 7, 0, 0] and speech == [8]
    assert T.source_spans(source, 12, [sub]) == [(6, 12)]
    dele = Change(1, 2, ("b",), (), 1)  # a deletion adds nothing; an insertion replaces nothing
    assert T.edit_timeline(source, target, 6, [(3, 6)], [dele]) == ([0, 5, 5], [0])
    ins = Change(1, 1, (), ("c",), 1)
    assert T.edit_timeline(source, target, 6, [(3, 3)], [ins]) == ([0, 5, 5, 7, 7, 7, 0, 6, 6, 0], [4])
    # given spans that share a frame: the second starts where the first ends
    assert T.edit_timeline(source, target, 6, [(1, 4), (3, 6)], [sub, sub]) == ([0, 7, 7, 7, 0, 7, 7, 7, 0], [4, 4])
    with pytest.raises(SynthesisError, match="out of order"):
        T.edit_timeline(source, target, 6, [(3, 6), (0, 1)], [sub, sub])


@pytest.mark.parametrize("text, to, old, new", [
    ("Put it in the box.", "Put it at the box.", ("in", "the"), ("at", "the")),  # eSpeak: "in the" is one word
    ("The cat sat on the mat.", "The cat sat on mat.", ("on", "the"), ("on",)),
    ("The cat sat on the mat.", "The cat sat on a mat.", ("on", "the"), ("on", "a")),
    ("A well-known man.", "A known man.", ("well", "known"), ("known",)),  # one written word, two words
    ("A known man.", "A well-known man.", ("known",), ("well", "known")),
    ("The cat sat on the mat.", "The dog sat on the mat.", ("cat",), ("dog",)),  # nothing to widen
])
def test_changes_widen_to_the_words_espeak_speaks_as_one(text, to, old, new):
    from llada_tts.synthesis.edit import words_of

    before, after = T.word_timeline(text, "en-us", 4), T.word_timeline(to, "en-us", 4)
    changes = word_changes(text, to)
    grouped, owner = T.group_changes(changes, before, after, words_of(text), words_of(to))
    assert [(c.old, c.new) for c in grouped] == [(old, new)] and owner == [0] * len(changes)
    c = grouped[0]
    n = before.frames
    phones, speech = T.edit_timeline(before, after, n, T.source_spans(before, n, grouped), grouped)
    lo, hi = after.span(c.at, c.at + len(c.new))
    assert speech == [hi - lo]  # the new group's own frames, whole
    # the spliced timeline is eSpeak's own timeline of the target, up to prosody at the joins
    assert abs(len(phones) // 4 - after.frames) <= 1
    assert sum(x == y for x, y in zip(phones, after.phones)) >= 0.75 * len(after.phones)


def test_word_changes_record_where_the_new_words_start():
    changes = word_changes("the cat sat on the mat", "the big dog sat on mat")
    assert [(c.start, c.end, c.new, c.at) for c in changes] == [(1, 2, ("big", "dog"), 1), (4, 5, (), 5)]


# --- on a tiny espeak-quarters model ---------------------------------------------------------------

@pytest.fixture(scope="module")
def quarters(tmp_path_factory):
    root = tmp_path_factory.mktemp("quarters")
    model = create_model(config_for_size("tiny", compact=True, slot_masks=True, frame_phones=4), seed=7)
    meta = CheckpointMeta(voices=["en-us"], codec="demo", chars_per_second=14.0, front_end="espeak-quarters")
    save_model(model, root / "ckpt", tokenizer=build_offline_tokenizer(), extra_files={META_FILE: meta.to_json()})
    return LladaTTS.from_pretrained(str(root / "ckpt"), dtype=torch.float32)


def test_a_frame_timed_edit_finds_its_spans_on_espeaks_timeline_and_keeps_the_rest(quarters):
    text, to = "The cat sat on the mat.", "The dog sat on the mat."
    wave, sr = espeak.synthesize(text, "en-us")
    r = quarters.edit(wave, sr, text, to, voice="en-us", seed=0, margin=1, **FAST)
    n = r.source_tokens.numel() // F
    before, after = T.word_timeline(text, "en-us", 4), T.word_timeline(to, "en-us", 4)
    lo, hi = T.source_spans(before, n, r.changes)[0]
    assert r.spans == [(lo * SPF / SR, hi * SPF / SR)] and 0 < lo < hi < n  # "cat", from eSpeak's word times
    speech = after.span(1, 2)[1] - after.span(1, 2)[0]  # "dog" lasts as long as eSpeak says it
    assert r.regions[0].speech == speech and r.regions[0].lo == lo - 1 and r.regions[0].hi == hi + 1
    assert len(r.origin) == n - (hi - lo) + speech and r.kept_fraction == 1.0
    given = quarters.edit(wave, sr, text, to, spans=r.spans, voice="en-us", seed=0, margin=1, **FAST)
    assert torch.equal(given.tokens, r.tokens)  # the same spans given by hand: the same edit


def test_a_frame_timed_prompt_names_every_output_frame(quarters, monkeypatch):
    import llada_tts.synthesis.edit as E

    seen = []
    real = E.sample
    monkeypatch.setattr(E, "sample", lambda model, prompts, *a, **k: seen.append(prompts[0]) or real(model, prompts,
                                                                                                     *a, **k))
    text, to = "The cat sat on the mat.", "The cat sat quietly on the mat."
    wave, sr = espeak.synthesize(text, "en-us")
    r = quarters.edit(wave, sr, text, to, voice="en-us", seed=0, **FAST)
    phones = [i - FIRST_ID for i in seen[0] if FIRST_ID <= i < FIRST_ID + 200]
    n = r.source_tokens.numel() // F
    before = T.word_timeline(text, "en-us", 4)
    want, _ = T.edit_timeline(before, T.word_timeline(to, "en-us", 4), n, T.source_spans(before, n, r.changes),
                              r.changes)
    assert phones == want and len(phones) == 4 * len(r.origin)  # four per output frame, kept ones included


def test_a_frame_timed_continuation_stretches_the_reference_timeline(quarters):
    from llada_tts.synthesis.reference import reference_prompt

    ref_wave = np.random.default_rng(0).normal(0, 0.1, 30000).astype(np.float32)
    ref = quarters.reference(ref_wave, "hello there", sample_rate=SR)
    ids = reference_prompt(quarters, ref, "Good morning.", "en-us")
    phones = [i - FIRST_ID for i in ids if FIRST_ID <= i < FIRST_ID + 200]
    own = list(frame_phonemes("Good morning.", "en-us", RATE, 4))
    stretched = T.stretch(list(frame_phonemes("hello there", "en-us", RATE, 4)), 4, ref.frames)
    assert phones == stretched + own and len(stretched) == 4 * ref.frames
    result = quarters.synthesize("Good morning.", voice="en-us", reference=ref, seed=0, **FAST)
    assert result.chunks[0].canvas_frames >= len(own) // 4  # the new speech's own canvas


def test_a_frame_timed_edit_uses_the_checkpoints_voice_and_sampler_defaults(quarters):
    text, to = "The cat sat on the mat.", "The dog sat on the mat."
    wave, sr = espeak.synthesize(text, "en-us")
    quarters.meta.sampler = {"tokens_per_step": 7, "cache": "dual"}
    try:
        r = quarters.edit(wave, sr, text, to, seed=0)  # no voice: the checkpoint's first, as synthesis
        same = quarters.edit(wave, sr, text, to, voice="en-us", seed=0, tokens_per_step=7, cache="dual")
    finally:
        quarters.meta.sampler = {}
    assert torch.equal(r.tokens, same.tokens) and r.kept_fraction == 1.0
    masked = int((r.origin < 0).sum()) * F
    assert r.nfe >= -(-masked // 7)  # 7 tokens per step over the masked frames (the dual cache adds refreshes)
