"""Prometheus text metrics (exposition format 0.0.4), no dependency: counters, gauges, histograms.

    llada_tts_requests_total{status}            speech requests by HTTP status (499: client went away)
    llada_tts_queue_depth                       chunks waiting to be sampled
    llada_tts_active_requests                   speech requests admitted whose response is not over
                                                (what --max-queue bounds)
    llada_tts_batch_size                        rows per sample() call (histogram)
    llada_tts_request_latency_seconds           request start -> last byte (histogram)
    llada_tts_time_to_first_audio_seconds       request start -> first audio byte (histogram)
    llada_tts_batch_seconds                     wall time of one sample() call + decode (histogram)
    llada_tts_audio_seconds_total               seconds of audio produced
"""
from __future__ import annotations

import threading
from collections import Counter

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, edge in enumerate(self.buckets):
            if value <= edge:
                self.counts[i] += 1

    def lines(self, name: str) -> list[str]:
        out = [f'{name}_bucket{{le="{edge:g}"}} {n}' for edge, n in zip(self.buckets, self.counts)]
        return out + [f'{name}_bucket{{le="+Inf"}} {self.count}', f"{name}_sum {self.sum:.6f}",
                      f"{name}_count {self.count}"]


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests = Counter()
        self.queue_depth = 0
        self.active = 0
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.first_audio = Histogram(LATENCY_BUCKETS)
        self.batch_seconds = Histogram(LATENCY_BUCKETS)
        self.audio_seconds = 0.0

    def request_done(self, status: int, latency: float | None = None) -> None:
        with self._lock:
            self.requests[str(status)] += 1
            if latency is not None:
                self.latency.observe(latency)

    def batch(self, rows: int, seconds: float) -> None:
        with self._lock:
            self.batch_size.observe(rows)
            self.batch_seconds.observe(seconds)

    def audio(self, seconds: float) -> None:
        with self._lock:
            self.audio_seconds += seconds

    def first_byte(self, seconds: float) -> None:
        with self._lock:
            self.first_audio.observe(seconds)

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP llada_tts_requests_total Speech requests by HTTP status (499: client disconnected).",
                     "# TYPE llada_tts_requests_total counter"]
            lines += [f'llada_tts_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
            for name, value, help_ in (("queue_depth", self.queue_depth, "Chunks waiting to be sampled."),
                                       ("active_requests", self.active,
                                        "Speech requests admitted whose response is not over "
                                        "(bounded by --max-queue).")):
                lines += [f"# HELP llada_tts_{name} {help_}", f"# TYPE llada_tts_{name} gauge",
                          f"llada_tts_{name} {value}"]
            for name, hist, help_ in (
                    ("batch_size", self.batch_size, "Rows (chunks) per sample() call."),
                    ("request_latency_seconds", self.latency, "Request start to last byte."),
                    ("time_to_first_audio_seconds", self.first_audio, "Request start to first audio byte."),
                    ("batch_seconds", self.batch_seconds, "Wall time of one sample() call and its decodes.")):
                lines += [f"# HELP llada_tts_{name} {help_}", f"# TYPE llada_tts_{name} histogram",
                          *hist.lines(f"llada_tts_{name}")]
            lines += ["# HELP llada_tts_audio_seconds_total Seconds of audio produced.",
                      "# TYPE llada_tts_audio_seconds_total counter",
                      f"llada_tts_audio_seconds_total {self.audio_seconds:.3f}"]
        return "\n".join(lines) + "\n"
