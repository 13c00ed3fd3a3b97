"""Load test of ``llada-tts serve``: batching on vs ``--max-batch 1`` at concurrency 1, 4 and 16.

    python benchmarks/serve_load.py                                   # tiny random model + tiny codec
    nice -n 10 python benchmarks/serve_load.py --requests 2 --steps 8  # smaller / quicker
    python benchmarks/serve_load.py --model ckpt/ --codec demo --max-batch 16 --device cuda

Two server processes are started on free localhost ports (``llada-tts serve --port 0``): batching
on (``--max-batch N``, default 16) and off (``--max-batch 1``), each warmed up with three requests.
At each concurrency C the two are driven in turn (so a drift in the machine's load hits both) by C
client threads, each sending ``--requests`` requests one after another (a bounded load: C x
requests in all, each with a timeout). Every request asks for pcm over the streaming response and
reads it to the end. Reported per run:

    audio s / wall s   seconds of audio received / wall time of the run (throughput)
    p50 / p95 latency  request sent -> last byte
    p50 / p95 TTFA     request sent -> first audio byte (time to first audio)
    errors             non-200 answers, broken streams, timeouts

Without ``--model`` a tiny random model (hidden 64, 2 layers) and the tiny random codec are built
in ``--work-dir``: that measures the server and the batching, not speech quality. The texts are
one or two short sentences, one chunk each (the default chunk size), so a batch holds one chunk
of each of up to max-batch requests. The server runs with ``--threads`` torch threads (default 1).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TEXTS = ["The cat sat on the mat and looked out of the window.", "A dog ran in the park after a red ball.",
         "We like to read books on a rainy afternoon.", "Birds sing at dawn, long before the town wakes up.",
         "Rain falls softly on the roof of the old house.", "The sun is warm today, so we will walk to the sea."]


def build_tiny(work: Path) -> tuple[Path, Path]:
    """A tiny random checkpoint (voices alice/bob, 14 chars/s) and the tiny random codec, cached."""
    import json

    model_dir, codec_dir = work / "tiny_model", work / "tiny_codec"
    if not (model_dir / "config.json").is_file():
        from llada_tts.model import create_model, save_model, tiny_config
        from llada_tts.vocab import build_offline_tokenizer

        meta = {"voices": ["alice", "bob"], "codec": None, "chars_per_second": 14.0, "format_version": 1}
        save_model(create_model(tiny_config(), seed=0), model_dir, tokenizer=build_offline_tokenizer(),
                   extra_files={"llada_tts.json": json.dumps(meta)})
    if not (codec_dir / "config.json").is_file():
        from audio_tokenizer.codec import create_random_codec

        create_random_codec(codec_dir, size="tiny", overwrite=True)
    return model_dir, codec_dir


class Server:
    def __init__(self, args, max_batch: int, log: Path):
        cmd = [sys.executable, "-m", "llada_tts", "serve", "--model", str(args.model), "--codec", str(args.codec),
               "--port", "0", "--max-batch", str(max_batch), "--batch-wait-ms", str(args.batch_wait_ms),
               "--max-queue", "256", "--threads", str(args.threads), "--device", args.device, "--log-level", "warning",
               "--steps", str(args.steps), "--min-length", "1"]
        env = dict(os.environ, LLADA_TTS_API_KEY="")
        self.log = open(log, "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     start_new_session=True)
        deadline = time.monotonic() + 300
        self.url = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", self.proc.stdout.readline())
            if m:
                self.url = m.group(1)
                break
        if self.url is None:
            self.stop()
            raise SystemExit(f"serve_load: the server did not start; see {log}")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def one_request(url: str, text: str, voice: str, timeout: float) -> dict:
    import httpx

    start = time.perf_counter()
    first, n = None, 0
    try:
        with httpx.stream("POST", f"{url}/v1/audio/speech", timeout=timeout,
                          json={"model": "tts-1", "voice": voice, "input": text, "response_format": "pcm"}) as r:
            if r.status_code != 200:
                r.read()
                return {"error": f"HTTP {r.status_code}"}
            for piece in r.iter_bytes():
                if piece and first is None:
                    first = time.perf_counter() - start
                n += len(piece)
    except Exception as e:  # noqa: BLE001  counted, the run goes on
        return {"error": type(e).__name__}
    return {"latency": time.perf_counter() - start, "ttfa": first, "audio": n / 2 / 24000}


def load(url: str, concurrency: int, requests: int, timeout: float) -> dict:
    jobs = [(TEXTS[i % len(TEXTS)], ("alice", "bob")[i % 2]) for i in range(concurrency * requests)]

    def client(k: int) -> list[dict]:
        return [one_request(url, *jobs[k * requests + j], timeout) for j in range(requests)]

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = [r for rs in pool.map(client, range(concurrency)) for r in rs]
    wall = time.perf_counter() - start
    ok = [r for r in results if "error" not in r]
    lat = sorted(r["latency"] for r in ok)
    ttfa = sorted(r["ttfa"] for r in ok if r["ttfa"] is not None)
    return {"requests": len(results), "errors": len(results) - len(ok), "wall": wall,
            "throughput": sum(r["audio"] for r in ok) / wall, "p50": _q(lat, 0.5), "p95": _q(lat, 0.95),
            "ttfa50": _q(ttfa, 0.5), "ttfa95": _q(ttfa, 0.95)}


def _q(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def batch_totals(url: str) -> tuple[float, float]:
    """(rows, sample() calls) so far, from the server's /metrics."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    count = float(re.search(r"llada_tts_batch_size_count (\S+)", text).group(1))
    total = float(re.search(r"llada_tts_batch_size_sum (\S+)", text).group(1))
    return total, count


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint (default: a tiny random one built in --work-dir)")
    p.add_argument("--codec", default=None, help="codec (default with the tiny model: the tiny random codec)")
    p.add_argument("--work-dir", default=None,
                   help="where the tiny model/codec and server logs go (default: a temp dir)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--requests", type=int, default=3, help="requests per client thread (default 3)")
    p.add_argument("--max-batch", type=int, default=16, help="the batching arm's --max-batch (default 16)")
    p.add_argument("--batch-wait-ms", type=int, default=20)
    p.add_argument("--steps", type=int, default=16, help="denoising steps per chunk (default 16)")
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads (default 1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    args = p.parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="serve_load_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        model, codec = build_tiny(work)
        args.model, args.codec = model, args.codec or codec
    rows = []
    arms = [(f"on (max batch {args.max_batch})", args.max_batch), ("off (max batch 1)", 1)]
    servers = []
    try:  # both servers up at once; the arms alternate at each concurrency, so drift in the machine's load
        for _label, max_batch in arms:  # hits both alike
            servers.append(Server(args, max_batch, work / f"server_b{max_batch}.log"))
        for server in servers:
            for text in TEXTS[:3]:  # warm-up
                one_request(server.url, text, "alice", args.timeout)
        for c in args.concurrency:
            for (label, _), server in zip(arms, servers):
                rows0, calls0 = batch_totals(server.url)
                r = load(server.url, c, args.requests, args.timeout)
                rows1, calls1 = batch_totals(server.url)
                mean = f"{(rows1 - rows0) / (calls1 - calls0):.1f}" if calls1 > calls0 else "-"
                r.update(batching=label, concurrency=c, mean_batch=mean)
                rows.append(r)
                print(f"  {label:24s} c={c:<3d} {r['throughput']:.2f} audio s/s, p50 {r['p50']:.2f} s, "
                      f"errors {r['errors']}", file=sys.stderr, flush=True)
    finally:
        for server in servers:
            server.stop()
    rows.sort(key=lambda r: (not r["batching"].startswith("on"), r["concurrency"]))
    print(f"\nllada-tts serve load (model {Path(str(args.model)).name}, codec {Path(str(args.codec)).name}, "
          f"{args.steps} steps, {args.threads} torch thread(s), {args.device}; {args.requests} requests per client)\n")
    print("| batching | concurrency | requests | errors | audio s / wall s | p50 latency (s) | p95 latency (s) "
          "| p50 TTFA (s) | p95 TTFA (s) | mean rows per sample() |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batching']} | {r['concurrency']} | {r['requests']} | {r['errors']} | {r['throughput']:.2f} | "
              f"{r['p50']:.2f} | {r['p95']:.2f} | {r['ttfa50']:.2f} | {r['ttfa95']:.2f} | {r['mean_batch']} |")
    by = {(r["batching"].startswith("on"), r["concurrency"]): r for r in rows}
    for c in args.concurrency:
        if (True, c) in by and (False, c) in by and by[(False, c)]["throughput"] > 0:
            gain = by[(True, c)]["throughput"] / by[(False, c)]["throughput"]
            print(f"\nconcurrency {c}: batching gives {gain:.2f}x "
                  "the throughput of --max-batch 1", end="")
    print()
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
