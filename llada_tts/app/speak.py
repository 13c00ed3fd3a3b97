"""The Speak tab: text (and an optional reference recording + transcript) -> speech and a status line."""
from __future__ import annotations

from typing import TYPE_CHECKING

from llada_tts.app.errors import ui_errors
from llada_tts.app.values import NO_VOICE, audio_input, check_text, sampler_options, seed_value, to_int16

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


def format_status(res) -> str:
    """One line: audio duration, wall time, real-time factor, NFE, valid-frame fraction, seed."""
    return " · ".join([f"{res.duration:.2f} s of audio in {res.wall_time:.2f} s",
                       f"RTF {res.rtf:.2f} (wall time / audio duration)",
                       f"NFE {res.nfe}",
                       f"valid frames {100.0 * res.valid_fraction:.1f}%",
                       f"seed {res.seed}"])


def synthesize_for_ui(tts, text: str, voice: str | None = None, *, seed=-1, duration=0.0, speed=1.0,
                      max_chars: int = 1000, max_duration: float = 60.0, progress: bool = False,
                      ref_audio=None, ref_text: str | None = None,
                      **sampler) -> tuple[tuple[int, np.ndarray], str]:
    """Validate the UI's inputs, synthesise, return ``((sample_rate, int16 waveform), status line)``.

    voice "(none)"/empty: no voice; seed < 0 or empty: random (the status line shows the one used);
    duration <= 0 or empty: estimated from the text; ``sampler``: see ``sampler_options``.
    ``ref_audio`` (gradio's ``(sample_rate, samples)``, or a path) + ``ref_text`` (its transcript):
    continue that recording's voice (``synthesize(..., reference=...)``); both empty: no reference.
    Bad input or a failed synthesis raises ``gr.Error`` with a message for the user (no traceback).
    """
    import gradio as gr

    from llada_tts.synthesis.errors import NoAudioError

    try:
        text = check_text(text, max_chars)
    except ValueError as e:
        raise gr.Error(str(e), title="Check the text", print_exception=False) from None
    voice = (voice or "").strip()
    reference = reference_for_ui(tts, ref_audio, ref_text, max_chars=max_chars)
    with ui_errors("Check the settings", "Synthesis", "synthesis failed"):
        try:
            res = tts.synthesize(text, voice=None if voice in ("", NO_VOICE) else voice, seed=seed_value(seed),
                                 duration=float(duration) if duration and float(duration) > 0 else None,
                                 speed=1.0 if speed is None or speed == "" else float(speed),
                                 max_duration=max_duration, progress=progress, reference=reference,
                                 **sampler_options(**sampler))
        except NoAudioError as e:
            raise gr.Error(str(e), title="No audio", print_exception=False) from None
    wave, sr = res
    status = format_status(res)
    if reference is not None:
        status += f" · continuing a {reference.seconds:.2f} s reference"
        if reference.note:
            status += f" ({reference.note})"
    return (int(sr), to_int16(wave)), status


def reference_for_ui(tts, ref_audio, ref_text: str | None, max_chars: int = 1000):
    """The ``Reference`` of the Speak tab's optional recording + transcript, or None when both are
    empty. A half-given or unusable reference is a ``gr.Error`` titled "Check the reference"."""
    import warnings

    import gradio as gr


    audio = audio_input(ref_audio)
    ref_text = (ref_text or "").strip()
    if audio is None and not ref_text:
        return None

    def fail(message: str):
        return gr.Error(message, title="Check the reference", print_exception=False)

    if audio is None:
        raise fail("A reference transcript needs its recording: upload the reference audio, or clear the "
                   "transcript.")
    if not ref_text:
        raise fail("Type what the reference recording says (its transcript): the model reads it to continue "
                   "the voice.")
    if len(ref_text) > max_chars:
        raise fail(f"The reference transcript is {len(ref_text)} characters long; the limit is {max_chars}.")
    with ui_errors("Check the reference", "Reading the reference", "reading the reference failed"), \
            warnings.catch_warnings():  # a trimmed reference carries its note: the status line shows it
        warnings.simplefilter("ignore")
        return tts.reference(audio[0], ref_text, sample_rate=audio[1])
