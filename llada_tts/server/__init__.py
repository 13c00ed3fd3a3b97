"""``llada-tts serve``: an OpenAI-compatible speech server with cross-request dynamic batching.

    app.py        routes: POST /v1/audio/speech, GET /v1/models, GET/POST /v1/audio/voices,
                  DELETE /v1/audio/voices/{name}, /health, /metrics
    request.py    parsing a speech request (OpenAI fields; the rest must be sampler options) and a
                  voice upload (multipart)
    voices.py     reference voices: validated names, stored as safetensors under --data-dir
    streams.py    audio byte streams and SSE events from a request's chunks
    scheduler.py  requests -> chunks -> batched ``LladaTTS.sample_chunks`` calls (round-robin fairness);
                  requests with a reference voice run whole, outside the batches
    audio.py      wav / pcm / flac / mp3 / opus stream encoders
    errors.py     OpenAI-shaped error bodies and statuses
    metrics.py    Prometheus text metrics

    from llada_tts.server import Settings, create_app
    app = create_app(LladaTTS.from_pretrained("ckpt/"), Settings(max_batch=8))
"""
from llada_tts.server.app import Settings, create_app

__all__ = ["Settings", "create_app"]
