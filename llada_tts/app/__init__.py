"""Gradio web demo for llada-tts: type text, pick a voice, press Generate, listen or download.

Two tabs. **Speak**: text -> speech, optionally continuing the voice of a reference recording
(upload + its transcript), with the output's spectrogram. **Edit**: upload a recording, type what
it says and what it should say (and, without Whisper, the seconds of each change); the changed
words are re-generated and every other frame is kept token for token (``LladaTTS.edit``). The
before and after spectrograms show the edited spans highlighted (numpy-rendered, no plotting
dependency).

    llada-tts app --model CHECKPOINT [--codec CODEC] [--host 127.0.0.1] [--port 7860] [--share]
    python -m llada_tts.app --model CHECKPOINT ...  (same options; python app/app.py in a checkout too)

Binds to 127.0.0.1 (this machine only) unless --host is given; never opens a public share link
unless --share. gradio, numpy and torch are imported lazily, so importing this package and
``add_arguments`` are cheap for the CLI (gradio comes with the app extra: pip install 'llada-tts[app]').

Modules: ``options`` (command line, launch settings), ``values`` (widget values <-> library values),
``errors`` (the one error mapping), ``speak`` and ``editing`` (the tabs' handlers), ``spectrogram``
(the images), ``ui`` (the page), ``launch`` (load, build, serve).
"""
from llada_tts.app.editing import edit_for_ui, format_edit_status, parse_spans
from llada_tts.app.errors import ui_errors
from llada_tts.app.launch import main, run
from llada_tts.app.options import add_arguments, build_parser, launch_kwargs, port_number, queue_kwargs
from llada_tts.app.speak import format_status, reference_for_ui, synthesize_for_ui
from llada_tts.app.spectrogram import (
    HIGHLIGHT,
    MEL_BANDS,
    RULER_ROWS,
    TICK,
    TICK_ROWS,
    mel_filterbank,
    span_columns,
    spectrogram_hop,
    spectrogram_image,
)
from llada_tts.app.ui import EXAMPLES, build_demo
from llada_tts.app.values import NO_VOICE, audio_input, check_text, sampler_options, seed_value, to_int16

__all__ = ["EXAMPLES", "HIGHLIGHT", "MEL_BANDS", "NO_VOICE", "RULER_ROWS", "TICK", "TICK_ROWS", "add_arguments",
           "audio_input", "build_demo", "build_parser", "check_text", "edit_for_ui", "format_edit_status",
           "format_status", "launch_kwargs", "main", "mel_filterbank", "parse_spans", "port_number", "queue_kwargs",
           "reference_for_ui", "run", "sampler_options", "seed_value", "span_columns", "spectrogram_hop",
           "spectrogram_image", "synthesize_for_ui", "to_int16", "ui_errors"]
