"""The app's one error mapping: library failures become one ``gr.Error`` line for the user."""
from __future__ import annotations

import contextlib
import logging

from audio_tokenizer.errors import first_line

log = logging.getLogger("llada_tts.app")


@contextlib.contextmanager
def ui_errors(title: str, failure: str, log_line: str):
    """The app's one error mapping around a library call: a ``gr.Error`` passes through, the
    project's own errors (``LladaTTSError``: bad input, no audio) become their one line under
    ``title``, anything else is logged with its traceback and shown as "<failure> failed (Type: first
    line); see the server log."."""
    import gradio as gr

    from llada_tts.synthesis.errors import LladaTTSError

    try:
        yield
    except gr.Error:
        raise
    except LladaTTSError as e:
        raise gr.Error(str(e), title=title, print_exception=False) from None
    except Exception as e:  # noqa: BLE001  the server logs the traceback, the user gets one line
        log.exception(log_line)
        raise gr.Error(f"{failure} failed ({type(e).__name__}: {first_line(e)}); see the server log.",
                       print_exception=False) from None
