"""Synthesis defaults and option choices, importable without torch (the CLI builds its --help from them).

METHODS / REMASKING / CACHE_MODES mirror ``llada_tts.sampling.config`` (tests/test_cli.py checks they agree).
"""
DEFAULT_MAX_CHUNK_CHARS = 180  # ~13 s of speech at 14 chars/s: one Orpheus-sized row
DEFAULT_BLOCK_LENGTH = 7 * 8  # tokens (8 frames, ~0.68 s) per semi-autoregressive block
DEFAULT_TEMPERATURE = 0.5
DEFAULT_BATCH_SIZE = 4  # chunks per sample() call in synthesize (stream: 1)
METHODS = ("fixed_length", "semi_autoregressive_padding", "semi_autoregressive_origin")
REMASKING = ("low_confidence", "random")
CACHE_MODES = ("prefix", "dual")
