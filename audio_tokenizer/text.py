"""Text -> Llama-3 ids for prompts: the ONE definition shared by dataset building and synthesis.

A TTS prompt's text is ``"voice: text"`` (Orpheus), where the text is first put through the
checkpoint's front end (``espeak.apply_front_end``: the text itself, or its eSpeak NG phonemes);
:func:`prompt_ids` tokenises it with BOS first. ``layout.tts_prompt_ids`` / ``tts_row_ids`` wrap
those ids in the control tokens, for ``audio_tokenizer build`` and ``llada_tts.prompts`` alike.
"""
from __future__ import annotations

from audio_tokenizer.layout import BOS_ID


def encode_text(tokenizer, text: str, add_bos: bool = True) -> list[int]:
    """Tokenise user text with BOS first; special-token strings in it are split like ordinary text.

    Splitting matters: a transcript containing ``<custom_token_5>`` or ``<|mdm_mask|>`` must not turn
    into an audio or mask id.
    """
    ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return [BOS_ID, *ids] if add_bos else list(ids)


def voice_text(text: str, voice: str | None) -> str:
    """Orpheus writes the voice as a prefix: ``"tara: Hello"``; no voice -> the bare text."""
    return f"{voice}: {text}" if voice else text


def prompt_text(text: str, voice: str | None = None, front_end: str = "text") -> str:
    """The prompt's text: ``front_end`` applied to ``text`` (never to the voice), then the voice prefix."""
    from audio_tokenizer.espeak import apply_front_end

    return voice_text(apply_front_end(text, front_end, voice), voice)


def prompt_ids(tokenizer, text: str, voice: str | None = None, front_end: str = "text",
               speed: float = 1.0) -> list[int]:
    """BOS + the tokens of :func:`prompt_text`: what sits between start_of_human and end_of_text.

    ``espeak-frames``: BOS, the voice prefix's tokens, then one phoneme id per codec frame
    (``frames.frame_ids``; ids, since the tokenizer splits special-token strings), at ``speed``;
    ``espeak-quarters`` the same with four per frame. Other front ends ignore ``speed`` (their
    canvas length carries it)."""
    from audio_tokenizer.frames import PER_FRAME

    if front_end in PER_FRAME:
        from audio_tokenizer.frames import frame_ids

        return timeline_prompt_ids(tokenizer, frame_ids(text, voice, speed, PER_FRAME[front_end]), voice)
    return encode_text(tokenizer, prompt_text(text, voice, front_end))


def timeline_prompt_ids(tokenizer, phone_ids: list[int], voice: str | None = None) -> list[int]:
    """A frame-timed prompt from its phoneme ids (``frames.frame_ids``, or a timeline spliced by an
    edit or a continuation): BOS, the voice prefix's tokens, then the ids."""
    return encode_text(tokenizer, voice_text("", voice)) + [int(i) for i in phone_ids]
