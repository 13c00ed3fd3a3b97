"""Held-out evaluation of a TTS: metrics (WER, duration), pluggable ASR, report over a text list.

The ASR backends and WER are the judge's (``audio_tokenizer.judge``), re-exported under these names.

    from llada_tts.evaluation import evaluate, get_asr, load_items, write_report, format_table
"""
from llada_tts.evaluation.asr import ASR_CHOICES, ASRError, get_asr, parse_asr_spec, resolve_asr_spec, whisper_available
from llada_tts.evaluation.metrics import (
    corpus_wer,
    duration_ratio,
    edit_distance,
    expected_duration,
    normalize_words,
    wer,
    word_errors,
)
from llada_tts.evaluation.report import (
    EvalInputError,
    EvalItem,
    evaluate,
    format_table,
    load_items,
    summarize,
    write_report,
)

__all__ = [
    "ASR_CHOICES", "ASRError", "EvalInputError", "EvalItem", "corpus_wer", "duration_ratio", "edit_distance",
    "evaluate", "expected_duration", "format_table", "get_asr", "load_items", "normalize_words",
    "parse_asr_spec", "resolve_asr_spec", "summarize", "wer", "whisper_available", "word_errors", "write_report",
]
