"""The Orpheus/SNAC token layout: exact ids, exact flattening, round trips, stream repair."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from audio_tokenizer import layout as L


def test_constants_match_orpheus():
    assert L.custom_token_id(1) == L.START_OF_SPEECH_ID == 128257
    assert (L.END_OF_SPEECH_ID, L.START_OF_HUMAN_ID, L.END_OF_HUMAN_ID) == (128258, 128259, 128260)
    assert (L.START_OF_AI_ID, L.END_OF_AI_ID, L.PAD_ID) == (128261, 128262, 128263)
    assert L.AUDIO_OFFSET == 128266 and L.AUDIO_END == 128266 + 7 * 4096 == 156938
    # the mask token is outside text, specials and audio; the vocab has one unused row after it
    assert L.MASK_ID == 156938 and L.VOCAB_SIZE == 156940
    assert L.slot_band(0) == (128266, 128266 + 4096)
    assert L.slot_band(6) == (128266 + 6 * 4096, 156938)


def test_orpheus_decoder_formula_agrees():
    """Orpheus turns ``<custom_token_N>`` at position i back into code N - 10 - (i % 7) * 4096."""
    codes = [torch.tensor([5]), torch.tensor([6, 7]), torch.tensor([8, 9, 10, 11])]
    ids = L.codes_to_tokens(codes).tolist()
    for i, tok in enumerate(ids):
        n = tok - L.CUSTOM_TOKEN_OFFSET
        code = n - 10 - (i % 7) * 4096
        assert code == [5, 6, 8, 9, 7, 10, 11][i]


def test_codes_to_tokens_exact_frame_order():
    l0 = torch.tensor([1, 2])
    l1 = torch.tensor([10, 11, 12, 13])
    l2 = torch.tensor([20, 21, 22, 23, 24, 25, 26, 27])
    got = L.codes_to_tokens([l0, l1, l2]).tolist()
    frames = [[1, 10, 20, 21, 11, 22, 23], [2, 12, 24, 25, 13, 26, 27]]
    want = [L.AUDIO_OFFSET + s * 4096 + c for f in frames for s, c in enumerate(f)]
    assert got == want


def test_codes_to_tokens_batched_matches_rows():
    g = torch.Generator().manual_seed(0)
    codes = [torch.randint(0, 4096, (3, k * 5), generator=g) for k in (1, 2, 4)]
    batched = L.codes_to_tokens(codes)
    assert batched.shape == (3, 35)
    for b in range(3):
        assert torch.equal(batched[b], L.codes_to_tokens([c[b] for c in codes]))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 12), seed=st.integers(0, 2**31 - 1))
def test_round_trip_property(n, seed):
    g = torch.Generator().manual_seed(seed)
    codes = [torch.randint(0, 4096, (2, k * n), generator=g) for k in (1, 2, 4)]
    back = L.tokens_to_codes(L.codes_to_tokens(codes))
    for a, b in zip(codes, back):
        assert torch.equal(a, b)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="n, 2n, 4n"):
        L.codes_to_tokens([torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long),
                           torch.zeros(8, dtype=torch.long)])
    with pytest.raises(ValueError, match="outside 0..4095"):
        L.codes_to_tokens([torch.tensor([4096]), torch.zeros(2, dtype=torch.long), torch.zeros(4, dtype=torch.long)])
    with pytest.raises(ValueError, match="multiple of 7"):
        L.tokens_to_codes(torch.full((8,), L.AUDIO_OFFSET))
    ids = L.codes_to_tokens([torch.tensor([1]), torch.tensor([2, 3]), torch.tensor([4, 5, 6, 7])])
    ids[3] = L.slot_band(0)[0]  # a slot-0 id in slot 3
    with pytest.raises(ValueError, match="frame 0 slot 3"):
        L.tokens_to_codes(ids)


def _frames(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return L.codes_to_tokens([torch.randint(0, 4096, (k * n,), generator=g) for k in (1, 2, 4)])


def test_validate_clean_stream_with_markers():
    audio = _frames(3)
    stream = torch.cat([torch.tensor([L.START_OF_HUMAN_ID, 5, L.START_OF_SPEECH_ID]), audio,
                        torch.tensor([L.END_OF_SPEECH_ID, L.END_OF_AI_ID, L.PAD_ID])])
    rep = L.validate_audio_tokens(stream)
    assert rep.ok and rep.frames_kept == 3 and rep.valid_fraction == 1.0
    assert rep.ended_by == L.END_OF_SPEECH_ID
    assert torch.equal(rep.tokens, audio)


def test_validate_drops_bad_frame_without_shifting_later_frames():
    audio = _frames(4, seed=1)
    broken = audio.clone()
    broken[7 + 2] = L.MASK_ID  # frame 1, slot 2
    rep = L.validate_audio_tokens(broken)
    assert [i for i, _ in rep.bad_frames] == [1]
    assert "slot 2" in rep.bad_frames[0][1]
    # frames 0, 2, 3 survive at their original content (nothing shifted)
    assert torch.equal(rep.tokens, torch.cat([audio[:7], audio[14:]]))
    assert rep.frames_total == 4 and rep.frames_kept == 3
    with pytest.raises(ValueError, match="frame 1"):
        L.validate_audio_tokens(broken, strict=True)


def test_validate_trailing_partial_frame_and_special_inside():
    audio = _frames(2, seed=2)
    rep = L.validate_audio_tokens(torch.cat([audio, audio[:3]]))
    assert rep.trailing_tokens == 3 and rep.frames_kept == 2 and not rep.ok
    # a special id in the middle ends the stream (never a silent shift of later frames)
    rep = L.validate_audio_tokens(torch.cat([audio[:7], torch.tensor([L.PAD_ID]), audio[7:]]))
    assert rep.frames_kept == 1 and rep.ended_by == L.PAD_ID


def test_tts_row_layout_exact():
    text_ids = [L.BOS_ID, 104, 105]
    audio = _frames(1).tolist()
    row, plen = L.tts_row_ids(text_ids, audio)
    assert row == [128259, 128000, 104, 105, 128009, 128260, 128261, 128257, *audio, 128258, 128262]
    assert plen == 8 and row[plen - 1] == L.START_OF_SPEECH_ID


def test_id_table_covers_every_constant():
    table = dict(L.id_table())
    for value in (L.BOS_ID, L.END_OF_TEXT_ID, L.START_OF_SPEECH_ID, L.END_OF_SPEECH_ID, L.PAD_ID, L.MASK_ID):
        assert str(value) in table.values()
