"""Log-mel spectrogram images with highlighted time spans (numpy-rendered, no plotting dependency)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

HIGHLIGHT = (255, 96, 0)  # the edited spans: the ruler strip above the spectrogram, borders, tint
RULER_ROWS, TICK_ROWS, MEL_BANDS, ROW_SCALE = 8, 6, 80, 2
RULER_BG, TICK_BG, TICK = (48, 48, 48), (24, 24, 24), (220, 220, 220)
COLUMNS_PER_SECOND, MAX_COLUMNS = 100, 2400
# magma-like colour map: anchors at 0, .25, .5, .75, 1 (no orange: the highlight stays distinct)
_CMAP = ((0, 0, 4), (59, 15, 112), (140, 41, 129), (222, 73, 104), (252, 253, 191))


def spectrogram_hop(samples: int, sample_rate: int) -> int:
    """Samples per image column: ``COLUMNS_PER_SECOND`` columns a second, fewer for long audio
    (at most ``MAX_COLUMNS`` columns). Give before and after the same hop to compare them."""
    return max(sample_rate // COLUMNS_PER_SECOND, -(-samples // MAX_COLUMNS))


def span_columns(spans, sample_rate: int, hop: int, width: int) -> list[tuple[int, int]]:
    """Image columns [c0, c1) of time spans in seconds: the columns the span touches, at least one
    (an empty span, e.g. an insertion's place, is a one-column mark), clipped to the image."""
    out = []
    for start, end in spans:
        c0 = min(int(start * sample_rate // hop), width - 1)
        c1 = min(max(c0 + 1, -(-round(end * sample_rate) // hop)), width)
        out.append((max(c0, 0), c1))
    return out


def mel_filterbank(sample_rate: int, n_fft: int, bands: int) -> np.ndarray:
    """[bands, n_fft // 2 + 1] triangular HTK-mel filters from 0 Hz to Nyquist."""
    import numpy as np

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges = 700.0 * (10 ** (np.linspace(0, mel(sample_rate / 2), bands + 2) / 2595.0) - 1.0)  # Hz
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs) / np.maximum(hi - mid, 1e-9)
    return np.clip(np.minimum(up, down), 0.0, None)


def spectrogram_image(wave, sample_rate: int, spans=(), *, hop: int | None = None, n_fft: int = 1024,
                      dynamic_range_db: float = 80.0) -> np.ndarray:
    """An RGB image [H, W, 3] uint8 of ``wave``'s log-mel spectrogram (low frequencies at the
    bottom, one column per ``hop`` samples), with a ruler strip on top whose ``HIGHLIGHT``
    columns are ``spans`` (seconds; ``span_columns``), the spans tinted and bordered, and a tick
    strip at the bottom with a tick every second (a long one every 5 s)."""
    import numpy as np

    wave = np.asarray(wave).reshape(-1)
    wave = wave / 32767.0 if np.issubdtype(wave.dtype, np.integer) else wave  # int16 PCM -> [-1, 1]
    wave = wave.astype(np.float32)
    hop = hop or spectrogram_hop(len(wave), sample_rate)
    width = max(1, -(-len(wave) // hop))
    padded = np.pad(wave, (n_fft // 2, n_fft // 2 + width * hop - len(wave)))
    window = np.hanning(n_fft).astype(np.float32)
    starts = np.arange(width) * hop
    frames = padded[starts[:, None] + np.arange(n_fft)[None, :]] * window  # [W, n_fft]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # [W, n_fft/2+1]
    mel = mel_filterbank(sample_rate, n_fft, MEL_BANDS) @ power.T  # [bands, W]
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    top = db.max()
    level = np.clip((db - (top - dynamic_range_db)) / dynamic_range_db, 0.0, 1.0)[::-1]  # low bands at the bottom
    anchors = np.linspace(0.0, 1.0, len(_CMAP))
    rgb = np.stack([np.interp(level, anchors, [c[k] for c in _CMAP]) for k in range(3)], axis=-1)
    rgb = np.repeat(rgb, ROW_SCALE, axis=0)  # [H, W, 3]
    color = np.array(HIGHLIGHT, dtype=np.float64)
    ruler = np.tile(np.array(RULER_BG, dtype=np.float64), (RULER_ROWS, width, 1))
    for c0, c1 in span_columns(spans, sample_rate, hop, width):
        rgb[:, c0:c1] = 0.7 * rgb[:, c0:c1] + 0.3 * color
        rgb[:, [c0, c1 - 1]] = color
        ruler[:, c0:c1] = color
    ticks = np.tile(np.array(TICK_BG, dtype=np.float64), (TICK_ROWS, width, 1))
    for second in range(int(len(wave) / sample_rate) + 1):
        c = int(second * sample_rate // hop)
        if c < width:
            ticks[: TICK_ROWS if second % 5 == 0 else TICK_ROWS // 2, c] = TICK
    return np.concatenate([ruler, rgb, ticks], axis=0).round().astype(np.uint8)
