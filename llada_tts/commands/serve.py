"""``llada-tts serve``: an OpenAI-compatible speech server (``llada_tts.server``)."""
from __future__ import annotations

import argparse
import os
import re

from llada_tts.commands.common import (
    CliError,
    add_model_arguments,
    add_sampler_arguments,
    load_tts,
    non_negative_int,
    positive_float,
    positive_int,
)
from llada_tts.synthesis.defaults import DEFAULT_MAX_CHUNK_CHARS, DEFAULT_MAX_DURATION

API_KEY_ENV = "LLADA_TTS_API_KEY"
DEFAULT_DATA_DIR = "llada_tts_voices"
HELP = "serve speech over HTTP with OpenAI's /v1/audio/speech API"
DESCRIPTION = f"""Serve speech with OpenAI's API: POST /v1/audio/speech (wav, pcm, flac, and mp3 / opus where
libsndfile writes them; stream_format audio or sse), GET /v1/models, /v1/audio/voices, /health and
/metrics (Prometheus). Sampler options (steps, temperature, cfg_scale, method, cache, ...) are extra
body fields; the sampler flags below set the server's defaults.

Reference voices: POST /v1/audio/voices (multipart: name, audio_sample = a recording, transcript =
what it says) encodes the recording once and stores it under --data-dir; GET /v1/audio/voices lists
them, DELETE /v1/audio/voices/NAME removes one, and /v1/audio/speech with voice=NAME continues that
voice. Requests with a reference voice are not batched (each runs alone, between batches).

Requests arriving within --batch-wait-ms are split into chunks (as `say` splits them) and sampled
together, up to --max-batch chunks per sample() call, round-robin over requests so a long text never
blocks short ones. Binds 127.0.0.1 unless --host says otherwise. SIGTERM (or Ctrl-C) refuses new
requests and finishes the ones in flight, for up to --shutdown-timeout seconds.

examples:
  llada-tts serve --model ckpt/ --codec demo
  LLADA_TTS_API_KEY=secret llada-tts serve --model ckpt/ --host 0.0.0.0 --port 8000 --max-batch 16
  python -c "from openai import OpenAI; OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='secret')\\
.audio.speech.create(model='tts-1', voice='tara', input='Hello.', response_format='wav').write_to_file('hi.wav')"
  curl http://127.0.0.1:8000/v1/audio/voices -F name=ana -F audio_sample=@ana.wav -F transcript="What ana.wav says."

The API key comes from --api-key or ${API_KEY_ENV}; without one, every client is served."""


def device_name(text: str) -> str:
    if text in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:K or mps, got {text!r}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    net = p.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    net.add_argument("--port", type=non_negative_int, default=8000, help="port (default 8000; 0 = any free port)")
    net.add_argument("--api-key", default=None,
                     help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}; unset = no key)")
    net.add_argument("--served-model-name", default=None,
                     help="the model id clients may name besides tts-1 / tts-1-hd "
                          "(default: the checkpoint's folder name)")
    net.add_argument("--max-batch", type=positive_int, default=8, help="most chunks per sample() call (default 8)")
    net.add_argument("--batch-wait-ms", type=non_negative_int, default=20,
                     help="how long an idle server gathers requests before sampling (default 20)")
    net.add_argument("--max-queue", type=positive_int, default=64,
                     help="most requests admitted at once; more get 503 with Retry-After (default 64)")
    net.add_argument("--max-input-chars", type=positive_int, default=4096,
                     help="longest input in characters; longer gets 413 (default 4096)")
    net.add_argument("--max-duration", type=positive_float, default=DEFAULT_MAX_DURATION,
                     help=f"refuse requests estimated longer than this many seconds (default {DEFAULT_MAX_DURATION:g})")
    net.add_argument("--max-chunk-chars", type=positive_int, default=None,
                     help=f"longest chunk in characters (default {DEFAULT_MAX_CHUNK_CHARS})")
    net.add_argument("--data-dir", default=DEFAULT_DATA_DIR, metavar="DIR",
                     help="folder of the reference voices uploaded with POST /v1/audio/voices (created on the "
                          f"first upload; default ./{DEFAULT_DATA_DIR})")
    net.add_argument("--shutdown-timeout", type=positive_float, default=30.0,
                     help="on SIGTERM, seconds to let in-flight requests finish (default 30)")
    net.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    net.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    add_model_arguments(p)
    for action in p._actions:  # serve also takes cuda:K (one process per GPU)
        if action.dest == "device":
            action.choices, action.type = None, device_name
            action.help = "where to run: auto, cpu, cuda, cuda:K or mps (auto: cuda, then mps, then cpu)"
    add_sampler_arguments(p)


def sampler_defaults(args: argparse.Namespace) -> dict:
    """The server-wide sampler defaults from the sampler flags (by option name), checked by the library."""
    from llada_tts.synthesis.defaults import SAMPLER_OPTIONS, check_sampler_options

    opts = {o.name: getattr(args, o.dest, None) for o in SAMPLER_OPTIONS if o.flag is not None}
    if opts.get("cache") == "none":
        opts["cache"] = None
    opts = {k: v for k, v in opts.items() if v is not None}
    check_sampler_options(opts, args.max_duration)
    return opts


def run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import socket
    from pathlib import Path

    try:
        import uvicorn

        from llada_tts.server import Settings, create_app
    except ModuleNotFoundError as e:
        raise CliError(f"llada-tts serve needs fastapi and uvicorn ({e.name} is missing): "
                       "pip install 'llada-tts[app]' or pip install fastapi uvicorn", code=1) from None
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    if api_key is not None and not api_key.strip():
        raise CliError("--api-key is empty")
    defaults = sampler_defaults(args)
    data_dir = Path(args.data_dir).expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        raise CliError(f"--data-dir {args.data_dir}: exists and is not a folder")
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as e:
        sock.close()
        raise CliError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}", code=1) from None
    sock.set_inheritable(True)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda:"):  # one process per GPU: --device cuda:K
        k = int(args.device.split(":")[1])
        if not torch.cuda.is_available() or k >= torch.cuda.device_count():
            sock.close()
            raise CliError(f"--device {args.device}: no such CUDA device (this machine has "
                           f"{torch.cuda.device_count() if torch.cuda.is_available() else 0})")
        if args.dtype == "auto":  # as --device cuda would choose
            args.dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        tts = load_tts(args)
    except BaseException:
        sock.close()
        raise
    name = args.served_model_name or Path(str(args.model or "llada-tts")).name or "llada-tts"
    settings = Settings(model_name=name, api_key=api_key, max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms,
                        max_queue=args.max_queue, max_input_chars=args.max_input_chars,
                        max_duration=args.max_duration, max_chunk_chars=args.max_chunk_chars,
                        sampler_defaults=defaults, data_dir=str(data_dir))
    app = create_app(tts, settings)
    state = app.state.llada
    registered = len(state.voices.names())

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):  # SIGTERM / SIGINT: refuse new requests, let in-flight ones finish
            state.draining = True
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM:  # a graceful stop is a success: exit 0, not death by SIGTERM afterwards
                self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]

    config = uvicorn.Config(app, log_level=args.log_level, timeout_graceful_shutdown=args.shutdown_timeout,
                            access_log=args.log_level == "debug", lifespan="on")
    host, port = sock.getsockname()[:2]
    print(f"llada-tts serve: {name} on http://{host if family == socket.AF_INET else f'[{host}]'}:{port}/v1 "
          f"(voices: {', '.join(tts.voices) or 'none'}; {registered} reference voice(s) in {data_dir}; "
          f"max batch {args.max_batch}; "
          f"{'API key required' if api_key else 'no API key'})", flush=True)
    Server(config).run(sockets=[sock])
    return 0
