"""Text -> Llama-3 ids for prompts (shared by dataset building and synthesis)."""
from __future__ import annotations

from audio_tokenizer.layout import BOS_ID


def encode_text(tokenizer, text: str, add_bos: bool = True) -> list[int]:
    """Tokenise user text with BOS first; special-token strings in it are split like ordinary text.

    Splitting matters: a transcript containing ``<custom_token_5>`` or ``<|mdm_mask|>`` must not turn
    into an audio or mask id.
    """
    ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return [BOS_ID, *ids] if add_bos else list(ids)
