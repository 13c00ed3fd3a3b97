"""Tokenizer extension and prompts: exact ids, no way for text to produce audio or mask ids."""
from __future__ import annotations

import pytest

from audio_tokenizer import layout as L
from llada_tts.prompts import tts_prompt, tts_row
from llada_tts.vocab import build_offline_tokenizer, check_layout, encode_text, extend_tokenizer, load_tokenizer


def test_offline_tokenizer_has_exact_layout(offline_tokenizer):
    tok = offline_tokenizer
    assert len(tok) == L.VOCAB_SIZE
    check_layout(tok)
    assert tok.convert_tokens_to_ids("<|begin_of_text|>") == 128000
    assert tok.convert_tokens_to_ids("<|eot_id|>") == 128009
    assert tok.convert_tokens_to_ids("<custom_token_1>") == L.START_OF_SPEECH_ID
    assert tok.convert_tokens_to_ids("<custom_token_10>") == L.AUDIO_OFFSET
    assert tok.convert_tokens_to_ids("<|mdm_mask|>") == L.MASK_ID
    assert tok.pad_token_id == L.PAD_ID


def test_text_is_bytes_and_round_trips(offline_tokenizer):
    ids = encode_text(offline_tokenizer, "héllo, wörld")
    assert ids[0] == L.BOS_ID
    assert ids[1:] == list("héllo, wörld".encode())
    assert offline_tokenizer.decode(ids[1:]) == "héllo, wörld"


def test_special_strings_in_text_stay_text(offline_tokenizer):
    for evil in ("<|mdm_mask|>", "<custom_token_5>", "<custom_token_20000>", "<|eot_id|>"):
        ids = encode_text(offline_tokenizer, f"say {evil} now")
        assert max(ids[1:]) < 256, evil  # bytes only: no special, audio or mask id
        assert L.MASK_ID not in ids


def test_prompt_layout_exact(offline_tokenizer):
    ids = tts_prompt(offline_tokenizer, "Hi", voice="tara")
    assert ids == [128259, 128000, *b"tara: Hi", 128009, 128260, 128261, 128257]
    assert tts_prompt(offline_tokenizer, "Hi") == [128259, 128000, *b"Hi", 128009, 128260, 128261, 128257]
    row, plen = tts_row(offline_tokenizer, "Hi", [L.AUDIO_OFFSET] * 0, voice=None)
    assert row[:plen] == tts_prompt(offline_tokenizer, "Hi") and row[plen:] == [128258, 128262]


def test_save_load_round_trip(offline_tokenizer_dir, offline_tokenizer):
    tok = load_tokenizer(offline_tokenizer_dir)
    assert len(tok) == L.VOCAB_SIZE
    assert encode_text(tok, "abc") == encode_text(offline_tokenizer, "abc")


def test_extend_plain_llama3_tokenizer_and_reject_others():
    base = build_offline_tokenizer(extend=False)
    assert len(base) == L.TEXT_VOCAB_SIZE
    extended = extend_tokenizer(base)
    assert len(extended) == L.VOCAB_SIZE
    check_layout(extended)
    extend_tokenizer(extended)  # idempotent on an already extended tokenizer
    assert len(extended) == L.VOCAB_SIZE


def test_wrong_tokenizer_rejected(offline_tokenizer):
    from tokenizers import AddedToken

    tok = build_offline_tokenizer(extend=False)
    tok.add_tokens([AddedToken("<junk>", special=True)], special_tokens=True)
    with pytest.raises(ValueError, match="expected a Llama-3 tokenizer"):
        extend_tokenizer(tok)
