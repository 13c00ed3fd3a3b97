"""Tokenizer vocabulary: a Llama-3 tokenizer extended with Orpheus's custom tokens and our mask.

``extend_tokenizer`` turns any Llama-3-family tokenizer (128256 ids) into the layout of
:mod:`audio_tokenizer.layout`: ``<custom_token_0>`` .. ``<custom_token_28681>`` at 128256.. and
``<|mdm_mask|>`` at 156938. A tokenizer that already has them (an Orpheus or llada-tts checkpoint) is
checked, not changed.

``build_offline_tokenizer`` makes a byte-level tokenizer with the *same ids* for the special tokens
(BOS 128000, eot 128009, ...) for tests and the offline quickstart, where no hub is reachable. Its
text ids 0..255 are raw bytes, so it needs no merges file; ids 256..127999 are unused placeholders.
"""
from __future__ import annotations

from pathlib import Path

from audio_tokenizer import layout as L
from audio_tokenizer.text import encode_text  # noqa: F401  (re-exported)

MASK_TOKEN = "<|mdm_mask|>"
PAD_ROW_TOKEN = "<|mdm_unused|>"

LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def _llama3_special_names() -> list[str]:
    """Names of ids 128000..128255 as in Llama 3.1/3.2."""
    named = {
        0: "<|begin_of_text|>", 1: "<|end_of_text|>", 4: "<|finetune_right_pad_id|>",
        6: "<|start_header_id|>", 7: "<|end_header_id|>", 8: "<|eom_id|>", 9: "<|eot_id|>",
        10: "<|python_tag|>",
    }
    names, reserved = [], 0
    for i in range(256):
        if i in named:
            names.append(named[i])
        else:
            names.append(f"<|reserved_special_token_{reserved}|>")
            reserved += 1
    return names


def check_layout(tokenizer) -> None:
    """Raise ValueError unless ``tokenizer`` has the llada-tts id layout."""
    expected = {
        "<|begin_of_text|>": L.BOS_ID,
        "<|eot_id|>": L.END_OF_TEXT_ID,
        "<custom_token_0>": L.custom_token_id(0),
        f"<custom_token_{L.NUM_SPECIAL_TOKENS}>": L.AUDIO_OFFSET,
        f"<custom_token_{L.NUM_CUSTOM_TOKENS - 1}>": L.AUDIO_END - 1,
        MASK_TOKEN: L.MASK_ID,
    }
    for token, want in expected.items():
        got = tokenizer.convert_tokens_to_ids(token)
        if got != want:
            raise ValueError(
                f"tokenizer maps {token!r} to {got}, expected {want}: not a Llama-3 tokenizer with the "
                "Orpheus/llada-tts layout (see the id table in docs/token-layout.md)"
            )


def extend_tokenizer(tokenizer):
    """Add the Orpheus custom tokens and the mask token to a Llama-3 tokenizer (in place); returns it."""
    from tokenizers import AddedToken

    n = len(tokenizer)
    if n == L.TEXT_VOCAB_SIZE:
        custom = [AddedToken(f"<custom_token_{i}>", special=True, normalized=False)
                  for i in range(L.NUM_CUSTOM_TOKENS)]
        tokenizer.add_tokens(custom, special_tokens=True)
        n = len(tokenizer)
    if n == L.MASK_ID:
        tokenizer.add_tokens([AddedToken(MASK_TOKEN, special=True, normalized=False),
                              AddedToken(PAD_ROW_TOKEN, special=True, normalized=False)],
                             special_tokens=True)
    elif n not in (L.MASK_ID + 1, L.VOCAB_SIZE):
        raise ValueError(
            f"tokenizer has {n} tokens; expected a Llama-3 tokenizer ({L.TEXT_VOCAB_SIZE}), an Orpheus "
            f"tokenizer ({L.MASK_ID}) or a llada-tts tokenizer ({L.VOCAB_SIZE})"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = f"<custom_token_{L.PAD_ID - L.CUSTOM_TOKEN_OFFSET}>"
    check_layout(tokenizer)
    return tokenizer


def build_offline_tokenizer(extend: bool = True):
    """A byte-level tokenizer with Llama-3's special ids, built without any download.

    Text is encoded as UTF-8 bytes (ids 0..255). Use it for tests and the offline quickstart; use a
    real Llama-3 tokenizer for real training.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_chars = list(pre_tokenizers.ByteLevel.alphabet())
    byte_chars.sort(key=lambda c: _byte_of_char(c))
    vocab = {c: i for i, c in enumerate(byte_chars)}
    vocab.update({f"<|unused_{i}|>": i for i in range(len(vocab), L.BOS_ID)})
    vocab.update({name: L.BOS_ID + i for i, name in enumerate(_llama3_special_names())})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
        additional_special_tokens=None,
    )
    fast.add_special_tokens({"additional_special_tokens": _llama3_special_names()})
    fast.chat_template = LLAMA3_CHAT_TEMPLATE
    fast.add_bos_token = True
    return extend_tokenizer(fast) if extend else fast


def _byte_of_char(c: str) -> int:
    """Inverse of GPT-2's bytes_to_unicode for one character."""
    from tokenizers import pre_tokenizers  # noqa: F401  (alphabet is the same table)

    o = ord(c)
    if 33 <= o <= 126 or 161 <= o <= 172 or 174 <= o <= 255:
        return o
    # the remaining 68 bytes were mapped to 256.. in order
    missing = [b for b in range(256) if not (33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255)]
    return missing[o - 256]


def load_tokenizer(name_or_path: str | Path, extend: bool = True):
    """Load a tokenizer by hub id or local directory (no remote code), optionally extended."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=False)
    return extend_tokenizer(tok) if extend else tok
