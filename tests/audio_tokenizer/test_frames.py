"""The espeak-frames front end: eSpeak NG's phoneme timeline sampled at codec-frame centres."""
from __future__ import annotations

import numpy as np
import pytest

from audio_tokenizer import espeak
from audio_tokenizer import frames as F
from audio_tokenizer import layout as L
from audio_tokenizer.audio_io import resample
from audio_tokenizer.text import prompt_ids


def test_phone_ids_are_the_reserved_special_tokens(offline_tokenizer):
    assert offline_tokenizer.convert_tokens_to_ids("<|reserved_special_token_20|>") == F.FIRST_ID
    last = 20 + len(F.FRAME_PHONES) - 1
    assert offline_tokenizer.convert_tokens_to_ids(f"<|reserved_special_token_{last}|>") == F.ID_RANGE[1] - 1
    assert F.ID_RANGE[1] <= 128256 and len(set(F.FRAME_PHONES)) == len(F.FRAME_PHONES)


def test_phone_index_falls_back_to_the_unstressed_phoneme_then_unknown():
    assert F.phone_index("ˈɛ") == F.PHONE_INDEX["ˈɛ"]
    assert F.phone_index("ˈr") == F.PHONE_INDEX["r"]  # "ˈr" is not in the table, "r" is
    assert F.phone_index("ʀ") == F.PHONE_INDEX["?"] and F.phone_index("") == 0


def test_timeline_frames_hand_values():
    hop = L.SAMPLES_PER_FRAME
    sr = 24000  # frame centres at 1024, 3072, 5120, 7168 samples
    events = [(1100, "n"), (3072, "t"), (6000, "")]  # before the first event: a pause; a start at a centre counts
    assert F.timeline_frames(events, 4 * hop, sr) == [0, F.PHONE_INDEX["t"], F.PHONE_INDEX["t"], 0]
    events = [(0, "n"), (3073, "t")]
    assert F.timeline_frames(events, 4 * hop, sr) == [F.PHONE_INDEX["n"]] * 2 + [F.PHONE_INDEX["t"]] * 2
    assert len(F.timeline_frames(events, 4 * hop + 1, sr)) == 5  # a partial frame counts, as the codec pads
    assert F.frame_count(22050, 22050) == 12  # 1 s = 24000 samples at 24 kHz = 11.7 frames


def test_quarter_timeline_hand_values():
    hop = L.SAMPLES_PER_FRAME
    sr = 24000  # quarter centres at 256, 768, 1280, 1792 (frame 0), 2304, ... samples
    events = [(0, "n"), (800, "t"), (1900, "")]  # "t" lasts 46 ms: no frame centre (1024 samples) misses it
    assert F.timeline_frames(events, 2 * hop, sr, per_frame=4) == [F.PHONE_INDEX["n"]] * 2 + [F.PHONE_INDEX["t"]] * 2 \
        + [0] * 4
    assert F.timeline_frames(events, 2 * hop, sr) == [F.PHONE_INDEX["t"], 0]


def test_quarters_keep_the_short_phonemes_that_frame_centres_skip():
    text = "Hello there, world."
    _, _, events = espeak.synthesize_timed(text, "en-us")
    spoken = {F.phone_index(p) for _, p in events if p}
    frames, quarters = set(F.frame_phonemes(text)), set(F.frame_phonemes(text, per_frame=4))
    assert spoken <= quarters and not spoken <= frames  # "ə" of hello, "d" of world fall between frame centres
    assert len(F.frame_ids(text, per_frame=4)) == 4 * len(F.frame_ids(text))
    assert F.frames_of_ids(F.frame_ids(text, per_frame=4), per_frame=4) == len(F.frame_ids(text))


def test_timed_synthesis_is_the_same_audio_and_the_frames_match_the_codec_frames():
    text = "The quick brown fox jumps over the lazy dog."
    wave, sr = espeak.synthesize(text, "en-gb+m3")
    timed, sr2, events = espeak.synthesize_timed(text, "en-gb+m3")
    assert sr == sr2 and np.array_equal(wave, timed)
    assert [p for _, p in events][:3] == ["ð", "ə", "k"] and all(a[0] <= b[0] for a, b in zip(events, events[1:]))
    frames = F.frame_phonemes(text, "en-gb+m3")
    at_24k = resample(wave, sr, L.SAMPLE_RATE)
    assert len(frames) == -(-len(at_24k) // L.SAMPLES_PER_FRAME)  # one phoneme per frame of the 24 kHz rendering
    assert F.PHONE_INDEX["k"] in frames and frames[-1] == 0  # speech then the closing pause


def test_a_slower_voice_gets_more_frames():
    assert len(F.frame_phonemes("Hello there, my friend.", rate=120)) > len(F.frame_phonemes("Hello there, my friend."))


def test_frame_prompt_ids_are_bos_voice_then_one_phone_per_frame(offline_tokenizer):
    text = "Good morning."
    ids = prompt_ids(offline_tokenizer, text, "en-us", "espeak-frames")
    head = [L.BOS_ID, *offline_tokenizer("en-us: ", add_special_tokens=False)["input_ids"]]
    assert ids[: len(head)] == head
    assert ids[len(head):] == F.frame_ids(text, "en-us") and F.frames_of_ids(ids) == len(ids) - len(head)
    assert all(F.ID_RANGE[0] <= i < F.ID_RANGE[1] for i in ids[len(head):])
    # text that spells a phone token stays text: only the front end writes phone ids
    typed = prompt_ids(offline_tokenizer, "<|reserved_special_token_20|>", None, "text")
    assert F.frames_of_ids(typed) == 0


def test_frame_prompt_is_readable():
    assert F.frame_prompt("Hi.").split()[0] == "h"


def test_frames_need_words():
    with pytest.raises(ValueError, match="non-empty"):
        F.frame_ids("   ")
