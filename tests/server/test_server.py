"""``llada-tts serve`` end to end: a real server process on a free localhost port (the tiny model
and tiny random codec), driven by the official ``openai`` package and raw HTTP.

Server A (module fixture): API key, max batch 4, chunks of <= 40 characters: formats, streaming,
concurrency + batching metrics, every bad request; reference voices (upload with the openai
client's ``audio.voices.create``, list, speak with, delete; bad names and bad audio).
Server B (max batch 1, max queue 2): a client
that disconnects mid-stream frees its slot, a full queue answers 503 + Retry-After, SIGTERM
finishes the stream in flight and refuses new work. In-process (TestClient): 500 bodies carry an
id and no traceback; the library's cross-request hook matches ``synthesize``.
"""
from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from synthesis_fixtures import FAST, silent_model_dir, tiny_codec_dir, tiny_model_dir, tts  # noqa: F401  (fixtures)

httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
sf = pytest.importorskip("soundfile")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key-123"
SENTENCES = ["The cat sat on the mat.", "A dog ran in the park.", "We like to read books.", "Birds sing at dawn.",
             "Rain falls on the roof.", "The sun is warm today.", "Fish swim in the sea.", "Trees grow very tall."]
MULTI = " ".join(SENTENCES[:6])


def _start(model_dir, codec_dir, *extra, log_path: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "llada_tts", "serve", "--model", str(model_dir), "--codec", str(codec_dir),
           "--port", "0", "--threads", "1", "--steps", str(FAST["steps"]), "--block-length", str(FAST["block_length"]),
           "--min-length", "1", "--log-level", "warning", *extra]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1", LLADA_TTS_API_KEY="")
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    url = None
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        m = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", line)
        if m:
            url = m.group(1)
            break
    assert url, f"server did not start: {log_path.read_text()[-2000:]}"
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain stdout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log_path.read_text()[-2000:]
        time.sleep(0.2)
    raise AssertionError("server never became healthy")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def voices_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("voices") / "data"  # not created: the first upload creates it


@pytest.fixture(scope="module")
def server_a(tiny_model_dir, tiny_codec_dir, tmp_path_factory, voices_dir):
    proc, url = _start(tiny_model_dir, tiny_codec_dir, "--api-key", KEY, "--max-batch", "4", "--batch-wait-ms", "50",
                       "--max-chunk-chars", "40", "--max-input-chars", "400", "--max-queue", "32",
                       "--data-dir", str(voices_dir), log_path=tmp_path_factory.mktemp("serve") / "a.log")
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def client(server_a):
    return openai.OpenAI(base_url=f"{server_a}/v1", api_key=KEY, max_retries=0, timeout=60)


def _metric(url: str, name: str, key: str | None = KEY) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith(name):
            label, value = line.rsplit(" ", 1)
            out[label] = float(value)
    return out


def _decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768, 24000
    wave, sr = sf.read(io.BytesIO(data), dtype="float32")
    return wave, sr


def _show(r) -> tuple:
    """A response for an assertion message: never an audio body."""
    kind = r.headers.get("content-type", "")
    return (r.status_code, kind, r.text[:500] if kind.startswith(("application/json", "text/plain")) else "")


# --- server A -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["wav", "flac", "pcm", "mp3", "opus"])
def test_speech_create_decodes_to_24khz_audio_of_plausible_length(client, server_a, fmt):
    formats = httpx.get(f"{server_a}/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()["data"][0]
    if fmt not in formats["response_formats"]:
        pytest.skip(f"this libsndfile cannot write {fmt}")
    text = "The cat sat on the mat. A dog ran."  # 34 chars at 40 chars/s: ~0.85 s, canvas x1.2
    audio = client.audio.speech.create(model="tts-1", voice="alice", input=text, response_format=fmt).content
    wave, sr = _decode(audio, fmt)
    if fmt in ("wav", "flac", "pcm"):
        assert sr == 24000
    seconds = len(wave) / sr
    assert 0.3 < seconds < 3.0, seconds  # min_length 1: about the estimated length, never past the canvas
    assert np.isfinite(wave).all() and np.abs(wave).max() > 0


def test_served_model_name_speed_and_sampler_extras(client, server_a):
    name = httpx.get(f"{server_a}/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()["data"][0]["id"]
    slow = client.audio.speech.create(model=name, voice="bob", input="We like to read books.", response_format="pcm",
                                      speed=0.5,
                                      extra_body={"steps": 4, "temperature": 0.0, "cache": "none", "seed": 7})
    fast = client.audio.speech.create(model="tts-1-hd", voice="bob", input="We like to read books.",
                                      response_format="pcm", speed=2.0)
    assert len(slow.content) > 2 * len(fast.content)  # speed scales the duration


def test_streaming_response_arrives_in_several_chunks(client):
    pieces = []
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="alice", input=MULTI,
                                                            response_format="pcm") as response:
        assert response.headers["content-type"].startswith("audio/pcm")
        for piece in response.iter_bytes():
            pieces.append((time.perf_counter(), len(piece)))
    assert len(pieces) > 1, pieces  # 6 chunks, max batch 4: at least two sample() calls
    assert sum(n for _, n in pieces) % 2 == 0


def test_sse_stream_sends_deltas_then_done(server_a):
    events = []
    with httpx.stream("POST", f"{server_a}/v1/audio/speech", headers={"Authorization": f"Bearer {KEY}"}, timeout=60,
                      json={"model": "tts-1", "voice": "alice", "input": MULTI, "response_format": "pcm",
                            "stream_format": "sse"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    import base64

    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1) and len(events) > 2
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["output_tokens"] > 0
    assert sum(len(base64.b64decode(e["audio"])) for e in events[:-1]) > 24000  # > 0.5 s of 16-bit audio


def test_sixteen_concurrent_requests_all_succeed_and_share_batches(client, server_a):
    before = _metric(server_a, "llada_tts_batch_size")

    def one(i):
        return client.audio.speech.create(model="tts-1", voice=("alice", "bob")[i % 2], input=SENTENCES[i % 8],
                                          response_format="wav").content

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(16), timeout=120))
    for data in results:
        wave, sr = _decode(data, "wav")
        assert sr == 24000 and len(wave) > 2048
    after = _metric(server_a, "llada_tts_batch_size")
    count = after["llada_tts_batch_size_count"] - before.get("llada_tts_batch_size_count", 0)
    singles = after['llada_tts_batch_size_bucket{le="1"}'] - before.get('llada_tts_batch_size_bucket{le="1"}', 0)
    assert count - singles >= 1, (before, after)  # at least one sample() call held more than one chunk
    assert count < 16  # 16 one-chunk requests took fewer than 16 sample() calls
    ok = _metric(server_a, "llada_tts_requests_total")
    assert ok['llada_tts_requests_total{status="200"}'] >= 16


BAD = [  # (json body or raw bytes, headers override, status, param, code)
    ({"model": "tts-1", "voice": "carol", "input": "Hi."}, None, 400, "voice", "unknown_voice"),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "response_format": "aiff"}, None, 400, "response_format",
     "unsupported_format"),
    ({"model": "tts-1", "voice": "alice", "input": "   "}, None, 400, "input", None),
    ({"model": "tts-1", "voice": "alice", "input": "x" * 401}, None, 413, "input", "input_too_long"),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "speed": 4.5}, None, 400, "speed", None),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "speed": "fast"}, None, 400, "speed", None),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "stream_format": "chunks"}, None, 400, "stream_format", None),
    ({"model": "gpt-4o-mini-tts", "voice": "alice", "input": "Hi."}, None, 400, "model", "model_not_found"),
    ({"model": "tts-1", "voice": "alice", "input": 5}, None, 400, "input", None),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "steps": 0}, None, 400, "steps", None),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "temperature": -1}, None, 400, "temperature", None),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "cfg_scale": "big"}, None, 400, "cfg_scale", None),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "method": "greedy"}, None, 400, "method", None),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "cache": "triple"}, None, 400, "cache", None),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "top_p": 0.9}, None, 400, "top_p", "unknown_field"),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "max_duration": 1e9}, None, 400, "max_duration",
     "unknown_field"),  # the library's other keywords never pass through
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "duration": "x", "text": 1}, None, 400, None,
     "unknown_field"),
    ({"model": "tts-1", "voice": "alice", "input": "Hi.", "seed": -1}, None, 400, "seed", None),
    (b"{not json", None, 400, None, "invalid_json"),
    (b"[1, 2]", None, 400, None, "invalid_json"),
    (b"[" * 60000, None, 400, None, "invalid_json"),  # nesting deeper than the parser's recursion limit
    (b'{"model": "tts-1", "voice": "alice", "input": "Hi.", "speed": NaN}', None, 400, "speed", None),
    ({"model": "tts-1", "voice": ["alice"], "input": "Hi.", "response_format": {"a": 1}}, None, 400, "voice", None),
    ({"model": "tts-1", "voice": "alice", "input": "Hi."}, {}, 401, None, "invalid_api_key"),
    ({"model": "tts-1", "voice": "alice", "input": "Hi."}, {"Authorization": "Bearer nope"}, 401, None,
     "invalid_api_key"),
    (b"x" * 70000, None, 413, "input", "request_too_large"),
]


@pytest.mark.parametrize("body, headers, status, param, code", BAD,
                         ids=[f"{i}-{b[2]}-{b[3] or b[4]}" for i, b in enumerate(BAD)])
def test_bad_requests_get_openai_shaped_errors(server_a, body, headers, status, param, code):
    headers = {"Authorization": f"Bearer {KEY}"} if headers is None else headers
    kwargs = {"content": body, "headers": {**headers, "content-type": "application/json"}} \
        if isinstance(body, bytes) else {"json": body, "headers": headers}
    r = httpx.post(f"{server_a}/v1/audio/speech", timeout=30, **kwargs)
    assert r.status_code == status, _show(r)
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param and (code is None or error["code"] == code), error
    assert "Traceback" not in r.text
    if body == BAD[1][0]:
        assert "available: wav, pcm" in error["message"]


def test_other_errors_are_openai_shaped_and_the_server_still_answers(server_a, client):
    r = httpx.get(f"{server_a}/v1/nothing", timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(f"{server_a}/v1/audio/speech", timeout=10)
    assert r.status_code == 405 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(f"{server_a}/metrics", timeout=10).status_code == 401
    assert httpx.get(f"{server_a}/v1/models", timeout=10).status_code == 401
    voices = httpx.get(f"{server_a}/v1/audio/voices", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).json()
    assert voices["voices"] == ["alice", "bob"]
    with pytest.raises(openai.BadRequestError, match="unknown voice"):
        client.audio.speech.create(model="tts-1", voice="nobody", input="Hi.")
    data = client.audio.speech.create(model="tts-1", voice="alice", input="Still here.", response_format="wav").content
    assert _decode(data, "wav")[1] == 24000
    counts = _metric(server_a, "llada_tts_requests_total")
    assert counts['llada_tts_requests_total{status="400"}'] >= 1
    assert counts['llada_tts_requests_total{status="413"}'] >= 1


# --- reference voices (server A) ---------------------------------------------------------------------

SR = 24000
REF_TEXT = "The cat sat on the mat."


def tone_wav(seconds: float, amplitude: float = 0.2, seed: int = 0) -> bytes:
    """A 16-bit WAV of a tone plus a little noise (something the codec encodes and is not silent)."""
    t = np.arange(int(seconds * SR)) / SR
    wave = (amplitude * np.sin(2 * np.pi * 220 * t)
            + amplitude * 0.1 * np.random.default_rng(seed).standard_normal(len(t)))
    buf = io.BytesIO()
    sf.write(buf, wave.astype(np.float32), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


AUTH = {"Authorization": f"Bearer {KEY}"}


def _speak(url, voice, seed=5, text="We like to read books.", fmt="pcm"):
    return httpx.post(f"{url}/v1/audio/speech", headers=AUTH, timeout=120,
                      json={"model": "tts-1", "voice": voice, "input": text, "response_format": fmt, "seed": seed})


def test_reference_voice_upload_list_speak_and_delete(client, server_a, voices_dir, tts):
    wav = tone_wav(1.5)
    assert not voices_dir.exists()  # created on the first upload
    voice = client.audio.voices.create(name="ana_1", audio_sample=("ana.wav", wav, "audio/wav"), consent="not-used",
                                       extra_body={"transcript": REF_TEXT})
    assert (voice.id, voice.name, voice.object, voice.type) == ("ana_1", "ana_1", "audio.voice", "audio_sample")
    extra = voice.model_extra
    assert extra["transcript"] == REF_TEXT and extra["note"] is None
    assert extra["seconds"] == round(18 * 2048 / SR, 3)  # 36000 samples -> 18 codec frames = 1.536 s
    assert abs(voice.created_at - time.time()) < 120
    # stored as safetensors (ids + metadata), never pickle
    from safetensors import safe_open

    stored = voices_dir / "ana_1.safetensors"
    assert sorted(p.name for p in voices_dir.iterdir()) == ["ana_1.safetensors"]
    with safe_open(str(stored), framework="numpy") as f:
        meta, ids = f.metadata(), f.get_tensor("tokens")
    assert meta["transcript"] == REF_TEXT and meta["format"] == "llada-tts-reference-voice/1"
    ref = tts.reference(_wav_array(wav), REF_TEXT, sample_rate=SR)
    np.testing.assert_array_equal(ids, ref.tokens.numpy())  # the same codec ids as the library's reference
    # listed with the checkpoint's voices
    listing = httpx.get(f"{server_a}/v1/audio/voices", headers=AUTH, timeout=10).json()
    assert listing["voices"] == ["alice", "bob"] and listing["object"] == "list"
    assert [v["id"] for v in listing["data"]] == ["ana_1"] and listing["data"][0]["transcript"] == REF_TEXT
    # speech with it: reproducible (not batched), different from speech without it, same by name or by {"id"}
    r1, r2 = _speak(server_a, "ana_1"), _speak(server_a, "ana_1")
    assert r1.status_code == r2.status_code == 200, _show(r1)
    assert r1.content == r2.content and len(r1.content) > 2 * 2048
    by_id = client.audio.speech.create(model="tts-1", voice={"id": "ana_1"}, input="We like to read books.",
                                       response_format="pcm", extra_body={"seed": 5}).content
    assert by_id == r1.content
    plain = _speak(server_a, "alice").content
    assert plain != r1.content
    # the server's audio is the library's continuation of that reference (same settings, same seed)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the server (--threads 1)
    try:
        res = tts.synthesize("We like to read books.", None, reference=ref, seed=5, max_chunk_chars=40, min_length=1,
                             **FAST)
    finally:
        torch.set_num_threads(threads)
    got = np.frombuffer(r1.content, dtype="<i2")
    want = (np.clip(res.waveform, -1, 1) * 32767).round().astype("<i2")
    assert len(got) == len(want)
    np.testing.assert_array_equal(got, want)
    # SSE works too: deltas of the same audio, then done
    with httpx.stream("POST", f"{server_a}/v1/audio/speech", headers=AUTH, timeout=60,
                      json={"model": "tts-1", "voice": "ana_1", "input": "We like to read books.", "seed": 5,
                            "response_format": "pcm", "stream_format": "sse"}) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    import base64

    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done"
    assert b"".join(base64.b64decode(e["audio"]) for e in events[:-1]) == r1.content
    # delete: gone from the list, the disk and speech
    deleted = client.audio.voices.delete("ana_1")
    assert (deleted.id, deleted.deleted, deleted.object) == ("ana_1", True, "audio.voice.deleted")
    assert not stored.exists()
    assert httpx.get(f"{server_a}/v1/audio/voices", headers=AUTH, timeout=10).json()["data"] == []
    r = _speak(server_a, "ana_1")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_voice"
    with pytest.raises(openai.NotFoundError, match="no reference voice 'ana_1'"):
        client.audio.voices.delete("ana_1")
    r = _speak(server_a, {"id": "ana_1"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "voice"


def _wav_array(data: bytes) -> np.ndarray:
    wave, sr = sf.read(io.BytesIO(data), dtype="float32")
    assert sr == SR
    return wave


BAD_VOICES = [  # (form fields, file (name, bytes) or None, status, param, code, message part)
    ({"name": "../etc", "transcript": REF_TEXT}, ("a.wav", "tone"), 400, "name", "invalid_name",
     "name must be 1 to 64"),
    ({"name": "a" * 65, "transcript": REF_TEXT}, ("a.wav", "tone"), 400, "name", "invalid_name", "got 'aaaa"),
    ({"name": "", "transcript": REF_TEXT}, ("a.wav", "tone"), 400, "name", "invalid_name", "got ''"),
    ({"name": "has space", "transcript": REF_TEXT}, ("a.wav", "tone"), 400, "name", "invalid_name", None),
    ({"name": "émile", "transcript": REF_TEXT}, ("a.wav", "tone"), 400, "name", "invalid_name", None),
    ({"transcript": REF_TEXT}, ("a.wav", "tone"), 400, "name", "invalid_name", "name is missing"),
    ({"name": "alice", "transcript": REF_TEXT}, ("a.wav", "tone"), 409, "name", "voice_exists", "built-in voice"),
    ({"name": "Alloy", "transcript": REF_TEXT}, ("a.wav", "tone"), 409, "name", "voice_exists", "built-in voice"),
    ({"name": "ok_name"}, ("a.wav", "tone"), 400, "transcript", None, "transcript is missing"),
    ({"name": "ok_name", "transcript": "   "}, ("a.wav", "tone"), 400, "transcript", None, "transcript is missing"),
    ({"name": "ok_name", "transcript": "x" * 401}, ("a.wav", "tone"), 413, "transcript", "input_too_long", None),
    ({"name": "ok_name", "transcript": REF_TEXT}, None, 400, "audio_sample", "invalid_audio",
     "audio_sample is missing"),
    ({"name": "ok_name", "transcript": REF_TEXT, "audio_sample": "not a file"}, None, 400, "audio_sample",
     "invalid_audio", "not a file"),
    ({"name": "ok_name", "transcript": REF_TEXT}, ("a.wav", b"RIFF not really a wav"), 400, "audio_sample",
     "invalid_audio", "reference audio: a.wav: "),
    ({"name": "ok_name", "transcript": REF_TEXT}, ("a.wav", b""), 400, "audio_sample", "invalid_audio", "empty file"),
    ({"name": "ok_name", "transcript": REF_TEXT}, ("quiet.wav", "silence"), 400, "audio_sample", "invalid_audio",
     "reference audio is silent"),
    ({"name": "ok_name", "transcript": REF_TEXT}, ("short.wav", "short"), 400, "audio_sample", "invalid_audio",
     "reference audio is 0.20 s long; give at least 0.5 s"),
    ({"name": "ok_name", "transcript": REF_TEXT, "type": "prompt"}, ("a.wav", "tone"), 400, "type", None,
     "type must be audio_sample"),
]


@pytest.mark.parametrize("fields, upload, status, param, code, message", BAD_VOICES,
                         ids=[f"{i}-{b[2]}-{b[3]}" for i, b in enumerate(BAD_VOICES)])
def test_bad_voice_uploads_get_openai_shaped_errors_and_store_nothing(server_a, voices_dir, fields, upload, status,
                                                                      param, code, message):
    files = None
    if upload is not None:
        content = {"tone": tone_wav(1.0), "silence": tone_wav(1.0, amplitude=0.0),
                   "short": tone_wav(0.2)}.get(upload[1], upload[1])
        files = {"audio_sample": (upload[0], content, "audio/wav")}
    else:
        files = {"other": ("x.txt", b"x", "text/plain")}  # still multipart
    r = httpx.post(f"{server_a}/v1/audio/voices", headers=AUTH, data=fields, files=files, timeout=60)
    assert r.status_code == status, _show(r)
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param, error
    assert code is None or error["code"] == code, error
    assert message is None or message in error["message"], error
    assert "Traceback" not in r.text
    names = [v["id"] for v in httpx.get(f"{server_a}/v1/audio/voices", headers=AUTH, timeout=10).json()["data"]]
    assert "ok_name" not in names and not any(p.name.startswith("ok_name") for p in
                                              (voices_dir.iterdir() if voices_dir.exists() else []))


def test_voice_upload_needs_the_key_multipart_and_a_free_name(server_a, client):
    wav = tone_wav(1.0)
    r = httpx.post(f"{server_a}/v1/audio/voices", data={"name": "x", "transcript": REF_TEXT},
                   files={"audio_sample": ("a.wav", wav, "audio/wav")}, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.post(f"{server_a}/v1/audio/voices", headers=AUTH, json={"name": "x", "transcript": REF_TEXT}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_content_type"
    assert httpx.get(f"{server_a}/v1/audio/voices", timeout=10).status_code == 401
    assert httpx.delete(f"{server_a}/v1/audio/voices/x", timeout=10).status_code == 401
    client.audio.voices.create(name="Case-Voice", audio_sample=("a.wav", wav, "audio/wav"), consent="-",
                               extra_body={"transcript": REF_TEXT})
    try:
        for name in ("Case-Voice", "case-voice"):  # the same file on a case-insensitive disk: refused
            with pytest.raises(openai.ConflictError, match="'Case-Voice' is already registered"):
                client.audio.voices.create(name=name, audio_sample=("a.wav", wav, "audio/wav"), consent="-",
                                           extra_body={"transcript": REF_TEXT})
        r = _speak(server_a, "case-voice")  # names are case-sensitive
        assert r.status_code == 400 and "registered reference voices: Case-Voice" in r.json()["error"]["message"]
    finally:
        client.audio.voices.delete("Case-Voice")


def test_voice_store_refuses_other_codecs_and_skips_damaged_files(tmp_path, tts):
    """In process: a voice encoded with another codec is a 400 naming it; a damaged file is left out
    of the list and its use is a 500 with an id; an oversized upload is a 413 before it is read."""
    from fastapi.testclient import TestClient

    from llada_tts.server import Settings, create_app
    from llada_tts.server.voices import VoiceStore

    ref = tts.reference(_wav_array(tone_wav(1.0)), REF_TEXT, sample_rate=SR)
    VoiceStore(tmp_path, codec="some/other-codec").save("elsewhere", ref)
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    (tmp_path / "not a name.safetensors").write_bytes(b"")  # ignored: not a voice name
    settings = Settings(data_dir=str(tmp_path), max_voice_bytes=50_000, sampler_defaults=dict(FAST))
    with TestClient(create_app(tts, settings), raise_server_exceptions=False) as c:
        assert [v["id"] for v in c.get("/v1/audio/voices").json()["data"]] == ["elsewhere"]
        r = c.post("/v1/audio/speech", json={"model": "tts-1", "voice": "elsewhere", "input": "Hi."})
        assert r.status_code == 400 and r.json()["error"]["code"] == "voice_codec_mismatch", _show(r)
        assert "other-codec" in r.json()["error"]["message"]
        r = c.post("/v1/audio/speech", json={"model": "tts-1", "voice": "broken", "input": "Hi."})
        assert r.status_code == 500 and re.search(r"id [0-9a-f]{12}", r.json()["error"]["message"]), _show(r)
        r = c.post("/v1/audio/voices", data={"name": "big", "transcript": REF_TEXT},
                   files={"audio_sample": ("big.wav", tone_wav(2.0), "audio/wav")})  # 96 kB > 50 kB
        assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large", _show(r)
        assert r.json()["error"]["message"] == "the upload is over the limit (50000 bytes of audio)"
        r = c.post("/v1/audio/voices", data={"name": "fits", "transcript": REF_TEXT},
                   files={"audio_sample": ("fits.wav", tone_wav(1.0), "audio/wav")})  # 48 kB
        assert r.status_code == 201, _show(r)
        r = c.post("/v1/audio/speech", json={"model": "tts-1", "voice": "fits", "input": "Hi.",
                                             "response_format": "wav", "seed": 1})
        assert r.status_code == 200 and _decode(r.content, "wav")[1] == 24000


def test_serve_refuses_a_data_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    out = subprocess.run([sys.executable, "-m", "llada_tts", "serve", "--model", "m", "--data-dir", str(f)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and f"--data-dir {f}: exists and is not a folder" in out.stderr, out.stderr


def test_whole_requests_hold_a_slot_and_deliver_one_chunk():
    """A request with a reference voice (``submit_whole``) takes a slot like any request, runs on the
    model thread outside the batches, and delivers its audio as one chunk; cancelled before it runs,
    it never runs."""
    from types import SimpleNamespace

    from llada_tts.server.errors import ApiError
    from llada_tts.server.scheduler import ChunkReady, JobDone, JobFailed, Scheduler

    async def scenario():
        sched = Scheduler(tts=None, max_batch=4, max_queue=2)
        gate, ran = threading.Event(), []

        def slow():
            gate.wait(10)
            ran.append("slow")
            return SimpleNamespace(wave="audio")

        try:
            a = sched.submit_whole(slow)
            b = sched.submit_whole(lambda: ran.append("b"))
            assert sched.queue_depth == 0 and sched.pick() == [] and len(sched.jobs) == 2  # never in a batch
            with pytest.raises(ApiError) as e:
                sched.submit_whole(slow)
            assert e.value.status == 503
            assert sched.cancel(b)  # still waiting behind a: never runs
            gate.set()
            assert await asyncio.wait_for(a.events.get(), 10) == ChunkReady(SimpleNamespace(wave="audio"))
            assert a.events.get_nowait() == JobDone() and a.finished and a in sched.jobs
            await asyncio.sleep(0.1)
            assert ran == ["slow"]
            failing = sched.submit_whole(lambda: 1 / 0)
            event = await asyncio.wait_for(failing.events.get(), 10)
            assert isinstance(event, JobFailed) and isinstance(event.error, ZeroDivisionError)
        finally:
            sched._executor.shutdown()

    import asyncio

    asyncio.run(scenario())


# --- server B: slots, queue, shutdown -----------------------------------------------------------------

LONG = " ".join(SENTENCES * 2)  # 16 chunks of one sentence each, sampled one per call (max batch 1)
# a slot holder: 40 chunks at speed 0.25 (~90 s, ~6 MB of PCM): seconds of sampling, and more bytes than
# a localhost connection buffers (tcp_wmem max 4 MB by default), so it cannot end while its client reads nothing
HOLD = " ".join(SENTENCES * 5)


def test_disconnect_frees_slot_full_queue_503_and_sigterm_drains(tiny_model_dir, tiny_codec_dir, tmp_path):
    proc, url = _start(tiny_model_dir, tiny_codec_dir, "--max-batch", "1", "--batch-wait-ms", "0", "--max-queue", "2",
                       "--max-chunk-chars", "30", "--max-input-chars", "1000", "--max-duration", "120",
                       "--shutdown-timeout", "60", "--data-dir", str(tmp_path / "voices"),
                       log_path=tmp_path / "b.log")
    try:
        body = {"model": "tts-1", "voice": "alice", "input": LONG, "response_format": "pcm"}
        # a client that leaves after the first bytes frees its slot: its pending chunks are dropped
        with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=60) as r:
            assert r.status_code == 200
            next(r.iter_bytes())
        for _ in range(100):
            m = _metric(url, "llada_tts_", key=None)
            if m.get("llada_tts_active_requests") == 0 and m.get('llada_tts_requests_total{status="499"}') == 1:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"slot not freed: {m}")
        assert m["llada_tts_queue_depth"] == 0
        # two long requests fill the queue (max 2): the third is refused with 503 + Retry-After. A request
        # holds its slot until its response is over, so holders whose audio is unread keep theirs
        hold = {**body, "input": HOLD, "speed": 0.25}
        with httpx.Client(timeout=60) as c1, httpx.Client(timeout=60) as c2:
            with c1.stream("POST", f"{url}/v1/audio/speech", json=hold) as r1, \
                    c2.stream("POST", f"{url}/v1/audio/speech", json=hold) as r2:
                assert (r1.status_code, r2.status_code) == (200, 200)
                active = "llada_tts_active_requests"
                assert _metric(url, active, key=None)[active] == 2  # both admitted
                r = httpx.post(f"{url}/v1/audio/speech", json={**body, "input": "Hi."}, timeout=30)
                # slots are only given back, never retaken: 2 held now means 2 held when the third came
                held = _metric(url, active, key=None)[active]
                assert held == 2, f"a holder's response ended before the third request was answered: {held}, {_show(r)}"
                assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, _show(r)
                assert r.json()["error"]["code"] == "queue_full"
        for _ in range(100):  # the holders' clients left: their slots come back, each counted once as 499
            m = _metric(url, "llada_tts_", key=None)
            if m[active] == 0 and m['llada_tts_requests_total{status="499"}'] == 3:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"holders' slots not freed: {m}")
        assert m['llada_tts_requests_total{status="503"}'] == 1, m
        # SIGTERM: the stream in flight finishes whole, new requests are refused, the process exits 0
        with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=60) as r:
            pieces = r.iter_bytes()
            data = bytearray(next(pieces))
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            try:
                refused = httpx.post(f"{url}/v1/audio/speech", json={**body, "input": "Hi."}, timeout=10).status_code
            except httpx.TransportError:
                refused = "connection refused"
            assert refused in (503, "connection refused")
            for piece in pieces:
                data += piece
        assert len(data) / 2 / 24000 > 16 * 0.5  # 16 chunks of >= 0.6 s each, none cut off
        assert proc.wait(timeout=60) == 0
    finally:
        _stop(proc)


# --- in process: internal errors, the library hook -------------------------------------------------------

def test_internal_errors_have_an_id_and_no_traceback(tts, silent_model_dir, tiny_codec_dir, caplog):
    from fastapi.testclient import TestClient

    from llada_tts.server import Settings, create_app
    from llada_tts.synthesis import LladaTTS

    class Broken:
        voices, sample_rate, crossfade_ms = ["alice"], 24000, 40.0

        def prepare(self, *a, **k):
            raise RuntimeError("secret internal detail")

    with TestClient(create_app(Broken(), Settings()), raise_server_exceptions=False) as c:
        r = c.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alice", "input": "Hi."})
    assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text
    error_id = re.search(r"id ([0-9a-f]{12})", r.json()["error"]["message"]).group(1)
    assert error_id in caplog.text and "secret internal detail" in caplog.text
    silent = LladaTTS.from_pretrained(str(silent_model_dir), codec=str(tiny_codec_dir))
    with TestClient(create_app(silent, Settings(sampler_defaults=dict(FAST)))) as c:
        r = c.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hi there.", "response_format": "wav"})
        assert r.status_code == 500 and r.json()["error"]["code"] == "no_audio", _show(r)
        assert c.get("/health").json()["status"] == "ok"


def test_sample_chunks_batches_runs_and_matches_synthesize_for_a_lone_chunk(tts):
    a = tts.prepare("The cat sat on the mat.", "alice", seed=3, **FAST)
    b = tts.prepare("A dog ran. We like to read books.", "bob", seed=4, max_chunk_chars=12, **FAST)
    alone = tts.sample_chunks([(a, 0)])[0]
    ref = tts.synthesize("The cat sat on the mat.", "alice", seed=3, **FAST)
    np.testing.assert_array_equal(alone.wave, ref.waveform)
    mixed = tts.sample_chunks([(a, 0), (b, 0), (b, 1)])
    assert len(mixed) == 3 and all(m.info.samples == len(m.wave) for m in mixed)
    with pytest.raises(ValueError, match="share their sampler options"):
        tts.sample_chunks([(a, 0), (tts.prepare("Hi.", "alice", steps=4, block_length=28), 0)])


def test_round_robin_a_long_request_does_not_block_short_ones():
    from types import SimpleNamespace

    from llada_tts.server.scheduler import Scheduler
    from llada_tts.synthesis.plan import ChunkPlan

    def run(n):
        return SimpleNamespace(plans=[ChunkPlan(f"chunk {i}", 8) for i in range(n)], options={"steps": 2})

    sched = Scheduler(tts=None, max_batch=3, max_duration=60.0)
    try:
        long, shorts = sched.submit(run(10)), [sched.submit(run(1)) for _ in range(4)]
        first = sched.pick()
        assert first == [(long, 0), (shorts[0], 0), (shorts[1], 0)]  # one chunk per request per pass
        second = sched.pick()
        assert second == [(shorts[2], 0), (shorts[3], 0), (long, 1)]  # those that waited go first
        assert sched.pick() == [(long, 2), (long, 3), (long, 4)]  # alone: several of its chunks per batch
        other = sched.submit(SimpleNamespace(plans=[ChunkPlan("x", 8)], options={"steps": 4}))
        assert sched.pick() == [(long, 5), (long, 6), (long, 7)]  # other options: never in the same batch ...
        assert sched.pick() == [(other, 0)]  # ... but it heads the next one
        sched.cancel(long)
        assert sched.pick() == [] and sched.queue_depth == 0  # cancelled: its pending chunks are gone
    finally:
        sched._executor.shutdown()


def test_a_request_holds_its_slot_until_its_response_is_over():
    """--max-queue counts responses in progress: a request whose chunks are all sampled (its audio
    still being sent) keeps its slot; ``cancel`` (the handler, when the response ends) frees it."""
    from types import SimpleNamespace

    from llada_tts.server.errors import ApiError
    from llada_tts.server.scheduler import ChunkReady, JobDone, JobFailed, Scheduler
    from llada_tts.synthesis.plan import ChunkPlan

    def run(n):
        return SimpleNamespace(plans=[ChunkPlan(f"chunk {i}", 8) for i in range(n)], options={"steps": 2})

    async def scenario():
        sched = Scheduler(tts=None, max_batch=4, max_queue=2)
        try:
            a, b = sched.submit(run(2)), sched.submit(run(1))
            for job, i in sched.pick():
                sched._deliver(job, i, SimpleNamespace(wave=None))
            sched._deliver(b, 0, RuntimeError("boom"))  # already done: ignored
            assert sched.queue_depth == 0 and a.finished and b.finished and len(sched.jobs) == 2
            assert [type(a.events.get_nowait()) for _ in range(3)] == [ChunkReady, ChunkReady, JobDone]
            with pytest.raises(ApiError) as e:  # all sampled, responses not over: still full
                sched.submit(run(1))
            assert e.value.status == 503 and sched.metrics.active == 2
            assert sched.cancel(a) and not sched.cancel(a)  # a's response ended (idempotent)
            c = sched.submit(run(1))
            assert sched.jobs == {b, c} and sched.metrics.active == 2
            sched._deliver(c, 0, RuntimeError("boom"))  # a failed chunk: the slot waits for the handler
            assert c in sched.jobs and isinstance(c.events.get_nowait(), JobFailed)
        finally:
            sched._executor.shutdown()

    import asyncio

    asyncio.run(scenario())


def test_the_server_goes_through_the_synthesis_api():
    """The server is built on ``llada_tts.synthesis`` (LladaTTS.prepare / sample_chunks, the option
    definitions, the joiner) and the shared file helpers, never on the sampler, model or trainer
    internals."""
    import ast

    allowed = ("llada_tts.server", "llada_tts.synthesis", "llada_tts.fileio")

    for f in sorted((ROOT / "llada_tts" / "server").glob("*.py")):
        mods = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods.add(node.module)
        bad = {m for m in mods
               if m.startswith("llada_tts") and not m.startswith(allowed)}
        assert not bad and "torch" not in mods, f"{f.name} imports {bad or 'torch'}"
