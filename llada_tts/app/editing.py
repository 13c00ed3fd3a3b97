"""The Edit tab: make a recording say other words; the changed spans highlighted on before / after
spectrograms, every other frame kept token for token (``LladaTTS.edit``)."""
from __future__ import annotations

from llada_tts.app.errors import ui_errors
from llada_tts.app.spectrogram import spectrogram_hop, spectrogram_image
from llada_tts.app.values import NO_VOICE, audio_input, check_text, sampler_options, seed_value, to_int16


def parse_spans(text: str | None) -> list[tuple[float, float]] | None:
    """``"1.2:1.55, 2.0:2.0"`` -> [(1.2, 1.55), (2.0, 2.0)] (commas, semicolons or spaces between
    spans); empty -> None (Whisper word timestamps). ValueError naming the bad span."""
    from llada_tts.synthesis.edit import parse_span

    parts = [p for p in (text or "").replace(";", ",").replace(",", " ").split() if p]
    return [parse_span(p) for p in parts] or None


def format_edit_status(res) -> str:
    """One line: the changes, where they landed (input -> output seconds), kept frames, timing, seed."""
    from llada_tts.synthesis.edit import describe

    where = ", ".join(f"{a:.2f}–{b:.2f} s → {c:.2f}–{d:.2f} s" for (a, b), (c, d) in zip(res.spans_in, res.spans_out))
    return " · ".join([describe(res.changes), f"edited (before → after) {where}",
                       f"kept frames identical {100.0 * res.kept_fraction:.1f}%",
                       f"{res.duration:.2f} s of audio in {res.wall_time:.2f} s", f"NFE {res.nfe}",
                       f"seed {res.seed}"])


def edit_for_ui(tts, audio, text: str, to: str, spans: str | None = None, voice: str | None = None, *, seed=-1,
                margin=None, max_chars: int = 1000, max_duration: float = 60.0, **sampler):
    """The Edit tab: make ``audio`` (gradio's ``(sample_rate, samples)`` or a path), whose transcript
    is ``text``, say ``to``. ``spans``: "START:END, ..." seconds, one per changed word group (empty:
    Whisper word timestamps when installed). Returns ``(result, (sr, int16 wave), before image,
    after image, status line)``; the images are spectrograms with ``result.spans_in`` /
    ``result.spans_out`` highlighted. Bad input raises one ``gr.Error`` (no traceback)."""
    import gradio as gr

    from llada_tts.synthesis.edit import DEFAULT_MARGIN_FRAMES, describe, word_changes

    def fail(message: str, title: str = "Check the edit"):
        return gr.Error(message, title=title, print_exception=False)

    given = audio_input(audio)
    if given is None:
        raise fail("Upload (or record) the audio to edit.", "Check the recording")
    try:
        text = check_text(text, max_chars)
    except ValueError as e:
        raise fail(f"What it says: {e}" if "Please type" not in str(e) else
                   "Type what the recording says (its transcript).", "Check the text") from None
    try:
        to = check_text(to, max_chars)
    except ValueError as e:
        raise fail(f"What it should say: {e}" if "Please type" not in str(e) else
                   "Type what the recording should say.", "Check the text") from None
    try:
        span_list = parse_spans(spans)
    except ValueError as e:
        raise fail(f"Spans: {e}; separate several with commas, e.g. 1.2:1.55, 2.0:2.0") from None
    from audio_tokenizer.frames import PER_FRAME

    if span_list is None and tts.front_end not in PER_FRAME:  # a frame-timed voice times words with eSpeak
        from audio_tokenizer.judge import whisper_available

        changes = word_changes(text, to)
        if changes and not whisper_available():
            raise fail(f"Give the spans: one START:END in seconds per change, in order ({len(changes)}: "
                       f"{describe(changes)}), e.g. 1.2:1.55 (an insertion may be empty: 2.0:2.0). Without "
                       "spans the app needs Whisper word timestamps: pip install \"llada-tts[eval]\".")
    if margin is None or margin == "":
        margin = DEFAULT_MARGIN_FRAMES
    if isinstance(margin, float) and margin.is_integer():
        margin = int(margin)
    voice = (voice or "").strip()
    with ui_errors("Check the edit", "The edit", "edit failed"):
        res = tts.edit(given[0], given[1], text, to, span_list, voice=None if voice in ("", NO_VOICE) else voice,
                       seed=seed_value(seed), margin=margin, max_duration=max_duration, **sampler_options(**sampler))
    from llada_tts.synthesis.infill import load_wave

    before = load_wave(given[0], given[1], "input audio")  # as the edit read it: mono 24 kHz
    hop = spectrogram_hop(max(len(before), len(res.waveform)), res.sample_rate)
    images = (spectrogram_image(before, res.sample_rate, res.spans_in, hop=hop),
              spectrogram_image(res.waveform, res.sample_rate, res.spans_out, hop=hop))
    return res, (int(res.sample_rate), to_int16(res.waveform)), *images, format_edit_status(res)
