"""``LladaTTS``: text in, 24 kHz waveform out.

    normalize_text -> split_text (per-chunk character budget) -> Orpheus prompt per chunk (in the
    checkpoint's front end: the text, or its eSpeak NG phonemes)
    -> sample(..., SamplerConfig(audio=True)) over a canvas sized from the text (or --duration)
    -> validated whole frames -> SNAC decode -> chunks joined with a 40 ms equal-power crossfade

Chunks are sampled ``batch_size`` at a time (left-padded prompts, one canvas sized for the longest).
The same text, voice, options, seed and batch_size give the same waveform, bit for bit.
"""
from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from audio_tokenizer import layout as L
from audio_tokenizer.errors import first_line
from audio_tokenizer.hub import local_folder
from llada_tts.checkpoint_meta import CheckpointMeta, read_meta
from llada_tts.model.adapters import prompt_multiple
from llada_tts.prompts import tts_prompt, tts_timeline_prompt
from llada_tts.sampling import sample
from llada_tts.sampling.constraints import DEFAULT_CHARS_PER_SECOND
from llada_tts.synthesis.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_DURATION, batch_token_limit, check_seed
from llada_tts.synthesis.errors import NoAudioError, SynthesisError
from llada_tts.synthesis.join import DEFAULT_CROSSFADE_MS, Joiner, crossfade_samples
from llada_tts.synthesis.plan import (
    DEFAULT_MAX_CHUNK_CHARS,
    ChunkPlan,
    check_max_duration,
    check_sampler_options,
    plan_chunks,
    sampler_config,
)
from llada_tts.synthesis.request import SynthesisRequest


@dataclass
class ChunkInfo:
    """One chunk of the text and what became of it."""

    text: str
    frames: int  # valid frames kept (decoded)
    canvas_frames: int  # frames the canvas offered
    nfe: int  # forward passes of the sample() call that made it (shared by its batch)
    valid_fraction: float  # kept / frames before the stream end
    bad_frames: int  # frames dropped by validation (repair policy: drop the whole frame)
    samples: int  # decoded samples (frames * 2048)
    ended: bool = False  # the model closed the stream (a stream-end id) before the canvas ran out


@dataclass
class SynthesisResult:
    """``wav, sr = tts.synthesize(...)`` unpacks to (waveform float32 [n], 24000)."""

    waveform: np.ndarray
    sample_rate: int
    chunks: list[ChunkInfo]
    seed: int
    wall_time: float
    overlap: int = 0  # crossfade samples between chunks
    nfe: int = 0  # forward passes over all sample() calls

    def __iter__(self):
        return iter((self.waveform, self.sample_rate))

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.chunks)

    @property
    def valid_fraction(self) -> float:
        total = sum(c.frames + c.bad_frames for c in self.chunks)
        return self.frames / total if total else 0.0

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sample_rate

    @property
    def ended(self) -> bool:
        """Every chunk's speech ended by itself (a stream-end id before the canvas ran out)."""
        return bool(self.chunks) and all(c.ended for c in self.chunks)

    @property
    def rtf(self) -> float:
        """Real-time factor: wall time / audio duration (< 1 is faster than real time)."""
        return self.wall_time / self.duration if self.duration else float("inf")


@dataclass
class _ChunkAudio:
    info: ChunkInfo
    tokens: torch.Tensor  # valid audio ids [7 * frames]
    wave: np.ndarray


@dataclass
class _Run:
    """Settings of one synthesize/stream call, resolved and validated up front."""

    plans: list[ChunkPlan]
    voice: str | None
    options: dict
    seed: int
    batch_size: int
    progress: bool
    nfe: int = 0  # forward passes so far, over all its sample() calls
    speed: float = 1.0  # espeak-frames / -quarters prompts carry it (eSpeak's rate)


class LladaTTS:
    """A llada-tts checkpoint + tokenizer + SNAC codec, ready to speak."""

    def __init__(self, model, tokenizer, codec, meta: CheckpointMeta | None = None, source: str = "",
                 codec_source: str = ""):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.codec = codec
        self.meta = meta or CheckpointMeta()
        self.source, self.codec_source = source, codec_source
        self.crossfade_ms = DEFAULT_CROSSFADE_MS

    # --- loading --------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model: str, codec: str | None = None, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None) -> LladaTTS:
        """Load a checkpoint (local folder or hub id: weights, tokenizer, llada_tts.json) and a codec
        (folder or hub id; None: the checkpoint's recorded codec, else SNAC 24 kHz). ``dtype`` None:
        ``model.speech_dtype(device)``: on a CPU bfloat16 where it multiplies bf16 in AMX tiles, else
        float32 (emulated half precision is slow: the fp16 demo voice ran at real-time factor 0.62
        against 0.33 in float32, one thread); the checkpoint's own dtype elsewhere.
        SynthesisError (one line) for anything unusable."""
        from safetensors import SafetensorError

        from audio_tokenizer.codec import DEFAULT_CODEC, SnacCodec
        from llada_tts import demo_voice
        from llada_tts.model import load_model, speech_dtype
        from llada_tts.vocab import build_offline_tokenizer, load_tokenizer

        try:
            name = demo_voice.resolve(str(model))
        except FileNotFoundError as e:
            raise SynthesisError(f"model: {e}") from e
        try:
            found = local_folder(name, "config.json", "checkpoint folder")  # None: a hub id
        except FileNotFoundError as e:
            raise SynthesisError(f"model: {e}") from e
        local, path = found is not None, found or Path(name)
        if dtype is None:
            dtype = speech_dtype(device)
        try:
            net = load_model(str(path) if local else name, dtype=dtype, device=device)
        except SafetensorError as e:  # a truncated download or copy
            raise SynthesisError(f"model: the weights of {name} are damaged or incomplete ({first_line(e)})") from e
        except (OSError, ValueError) as e:
            raise SynthesisError(f"model: {first_line(e)}") from e
        rows = net.get_input_embeddings().weight.shape[0]
        if rows < L.AUDIO_END + 1:
            raise SynthesisError(f"model: {name} has {rows} embedding rows, no room for the audio tokens and "
                                 f"mask (needs {L.VOCAB_SIZE}); it is not a llada-tts/Orpheus checkpoint")
        try:
            offline = local and demo_voice.needs_offline_tokenizer(path)
            tokenizer = build_offline_tokenizer() if offline else load_tokenizer(str(path) if local else name)
        except (OSError, ValueError, TypeError) as e:
            raise SynthesisError(f"model: cannot load the tokenizer of {name}: {first_line(e)}") from e
        if local:
            try:
                meta = read_meta(path)
            except ValueError as e:
                raise SynthesisError(f"model: {first_line(e)}") from e
        else:
            meta = _hub_meta(name)
        codec_name = str(codec or meta.codec or DEFAULT_CODEC)
        try:
            snac = SnacCodec.from_pretrained(codec_name, device=device)
        except SafetensorError as e:
            raise SynthesisError(f"codec: the weights of {codec_name} are damaged or incomplete "
                                 f"({first_line(e)})") from e
        except (OSError, ValueError) as e:
            raise SynthesisError(f"codec: {first_line(e)}") from e
        return cls(net, tokenizer, snac, meta, source=str(path.resolve()) if local else name, codec_source=codec_name)

    # --- properties -----------------------------------------------------------------------------
    @property
    def voices(self) -> list[str]:
        return list(self.meta.voices)

    @property
    def sample_rate(self) -> int:
        return L.SAMPLE_RATE

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def chars_per_second(self) -> float:
        return self.meta.chars_per_second or DEFAULT_CHARS_PER_SECOND

    @property
    def front_end(self) -> str:
        """What the checkpoint's prompts hold: "text", "espeak-ipa" (eSpeak NG phonemes) or
        "espeak-frames" / "espeak-quarters" (eSpeak phonemes per codec frame / quarter frame:
        ``audio_tokenizer.frames``)."""
        return self.meta.front_end

    def prompt(self, text: str, voice: str | None = None, speed: float = 1.0) -> list[int]:
        """The prompt ids of one chunk, in the checkpoint's front end (as its training rows were)."""
        return tts_prompt(self.tokenizer, text, voice, front_end=self.front_end,
                          multiple=prompt_multiple(self.model.config), speed=speed)

    def timeline_prompt(self, phones: list[int], voice: str | None = None) -> list[int]:
        """The prompt of a frame-timed checkpoint from its timeline (``frames.FRAME_PHONES`` indices,
        ``per_frame`` per frame of the canvas): what an edit or a continuation splices together."""
        from audio_tokenizer.frames import FIRST_ID

        return tts_timeline_prompt(self.tokenizer, [FIRST_ID + int(i) for i in phones], voice,
                                   multiple=prompt_multiple(self.model.config))

    # --- synthesis ------------------------------------------------------------------------------
    def synthesize(self, text: str, voice: str | None = None, *, seed: int | None = None,
                   duration: float | None = None, speed: float = 1.0,
                   max_duration: float | None = DEFAULT_MAX_DURATION,
                   max_chunk_chars: int = DEFAULT_MAX_CHUNK_CHARS, batch_size: int = DEFAULT_BATCH_SIZE,
                   progress: bool = False, reference=None, **sampler_options) -> SynthesisResult:
        """Speak ``text`` (any length: split into chunks). ``seed`` None draws one (see result.seed).

        duration: seconds of canvas for the whole text (default: estimated from the text at the
        checkpoint's speaking rate / ``speed``). max_duration: refuse (never cut) longer requests; it
        also sets the caps on steps and block_length (``synthesis.defaults.canvas_limit``; None: no
        limit). seed: 0 .. 2**64 - 1.
        sampler_options: method, steps, block_length, threshold, cfg_scale, temperature, remasking,
        min_length, cache ("none", "prefix" or "dual"; or the older use_cache + cache_mode), see
        ``llada_tts.synthesis.defaults`` (checked by ``check_sampler_options``).
        reference: a ``Reference`` (``self.reference(audio, text)``): continue its voice; each chunk's
        prompt starts with its transcript and its canvas with its audio (``synthesis.reference``).
        Raises SynthesisError for bad input, NoAudioError when a chunk yields no valid frame.
        """
        request = SynthesisRequest(text, voice, seed=seed, duration=duration, speed=speed,
                                   max_duration=max_duration, max_chunk_chars=max_chunk_chars,
                                   batch_size=batch_size, progress=progress, options=sampler_options)
        if reference is not None:
            from llada_tts.synthesis.reference import synthesize_with_reference

            return synthesize_with_reference(self, request, reference)
        start = time.perf_counter()
        run = self._prepare(request)
        joiner = Joiner(crossfade_samples(self.sample_rate, self.crossfade_ms))
        parts, infos = [], []
        for chunk in self._chunks(run):
            parts += [joiner.feed(chunk.wave), joiner.end_chunk()]
            infos.append(chunk.info)
        parts.append(joiner.finish())
        wave = np.concatenate(parts).astype(np.float32)
        return SynthesisResult(wave, self.sample_rate, infos, run.seed, time.perf_counter() - start,
                               overlap=joiner.overlap, nfe=run.nfe)

    def stream(self, text: str, voice: str | None = None, *, seed: int | None = None, duration: float | None = None,
               speed: float = 1.0, max_duration: float | None = DEFAULT_MAX_DURATION,
               max_chunk_chars: int = DEFAULT_MAX_CHUNK_CHARS, batch_size: int = 1, progress: bool = False,
               blocks: bool = False, **sampler_options) -> Iterator[np.ndarray]:
        """Yield float32 24 kHz pieces as audio becomes final.

        blocks=False: one piece per finished chunk; concatenated, the pieces equal ``synthesize(...)``
        with the same arguments (same batch_size and seed) exactly.
        blocks=True: pieces as soon as frames are committed inside a chunk (semi-autoregressive
        methods commit block by block; batch_size must be 1). Same tokens and length as
        ``synthesize(..., batch_size=1)``; samples near span edges differ slightly (windowed decode).
        Input is validated before the first piece (errors raise on the first ``next``).
        """
        if blocks and batch_size != 1:
            raise SynthesisError("block streaming samples one chunk at a time: use batch_size=1")
        run = self._prepare(SynthesisRequest(text, voice, seed=seed, duration=duration, speed=speed,
                                             max_duration=max_duration, max_chunk_chars=max_chunk_chars,
                                             batch_size=batch_size, progress=progress, options=sampler_options))
        joiner = Joiner(crossfade_samples(self.sample_rate, self.crossfade_ms))
        for chunk in (self._block_chunks(run) if blocks else self._chunks(run)):
            pieces = [joiner.feed(w) for w in chunk] if blocks else [joiner.feed(chunk.wave)]
            for piece in (*pieces, joiner.end_chunk()):
                if len(piece):
                    yield piece
        last = joiner.finish()
        if len(last):
            yield last

    # --- editing and reference voices -------------------------------------------------------------
    def edit(self, audio, sample_rate: int | None = None, text: str | None = None, to: str | None = None,
             spans=None, **kwargs):
        """Make a recording whose transcript is ``text`` say ``to``; frames outside the edited spans
        stay token for token. See ``llada_tts.synthesis.edit.edit`` (-> ``EditResult``)."""
        from llada_tts.synthesis.edit import edit

        return edit(self, audio, sample_rate, text, to, spans, **kwargs)

    def reference(self, audio, text: str, sample_rate: int | None = None, **kwargs):
        """A ``Reference`` voice for ``synthesize(..., reference=...)``: ``audio`` (a path, or samples at
        ``sample_rate``) encoded with this codec, ``text`` what it says (``synthesis.reference``)."""
        from llada_tts.synthesis.reference import load_reference

        return load_reference(self.codec, audio, text, sample_rate, **kwargs)

    # --- cross-request batching (a server's scheduler) -------------------------------------------
    def prepare(self, text: str, voice: str | None = None, *, seed: int | None = None, duration: float | None = None,
                speed: float = 1.0, max_duration: float | None = DEFAULT_MAX_DURATION,
                max_chunk_chars: int = DEFAULT_MAX_CHUNK_CHARS, **sampler_options) -> _Run:
        """Validate a request and plan its chunks (as ``synthesize`` does) without model work; the
        result's ``plans`` are sampled with ``sample_chunks``. Raises SynthesisError."""
        return self._prepare(SynthesisRequest(text, voice, seed=seed, duration=duration, speed=speed,
                                              max_duration=max_duration, max_chunk_chars=max_chunk_chars,
                                              batch_size=1, options=sampler_options))

    def sample_chunks(self, rows: list[tuple[_Run, int]]) -> list[_ChunkAudio | NoAudioError]:
        """Sample chunks of one or more prepared runs in ONE sample() call: ``rows`` = (run, chunk
        index) pairs whose runs have the same sampler options (canvas sized for the longest chunk,
        like ``synthesize``'s batches). Draws come from a generator seeded with the first row's
        seed + chunk index (a lone chunk 0 matches ``synthesize(..., seed=run.seed)``); each chunk is
        decoded with its own run's seed. Returns one entry per row: the chunk's audio, or the
        NoAudioError of a chunk that produced no valid frame (the other rows are unaffected)."""
        if not rows:
            return []
        options = rows[0][0].options
        if any(run.options != options for run, _ in rows):
            raise SynthesisError("sample_chunks: the rows of one call must share their sampler options")
        plans = [run.plans[i] for run, i in rows]
        config = sampler_config(max(p.frames for p in plans), options)
        first, index = rows[0]
        generator = torch.Generator(device=self.device).manual_seed((first.seed + index) % 2**64)
        prompts = [self.prompt(run.plans[i].text, run.voice, run.speed) for run, i in rows]
        out = sample(self.model, prompts, config, generator=generator)
        results = []
        for (run, i), row in zip(rows, out.generated):
            run.nfe += out.nfe
            try:
                results.append(self._decode_chunk(i, len(run.plans), run.plans[i], row, config, out.nfe, run.seed))
            except NoAudioError as e:
                results.append(e)
        return results

    # --- internals ------------------------------------------------------------------------------
    def _prepare(self, request: SynthesisRequest) -> _Run:
        """Validate ``request`` and resolve it: its chunks planned, sampler options checked, a seed
        drawn when it has none. Raises SynthesisError before any model work."""
        voice, speed, batch_size = request.voice, request.speed, request.batch_size
        if voice is not None and not isinstance(voice, str):
            raise SynthesisError(f"voice must be a string, got {type(voice).__name__}")
        voice = voice.strip() if voice else None
        if voice and self.voices and voice not in self.voices:
            raise SynthesisError(f"unknown voice {voice!r}; this checkpoint has: {', '.join(self.voices)}")
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0 < speed < math.inf:
            raise SynthesisError(f"speed must be > 0 (a finite number), got {speed!r}")
        max_duration = check_max_duration(request.max_duration)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise SynthesisError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        seed = secrets.randbits(31) if request.seed is None else check_seed(request.seed)
        # the checkpoint's own defaults (llada_tts.json "sampler"), then the request's options
        options = check_sampler_options({**self.meta.sampler, **request.options}, max_duration)
        frames_of, prompt_speed = None, 1.0
        from audio_tokenizer.frames import PER_FRAME

        if self.front_end in PER_FRAME:  # eSpeak's timeline, at eSpeak's rate x speed, fixes each length
            from audio_tokenizer.frames import frame_ids, speed_rate

            try:
                speed_rate(speed)
            except ValueError as e:
                raise SynthesisError(str(e)) from None
            voice = voice or (self.voices[0] if self.voices else None)  # its rows always named a voice
            per_frame = PER_FRAME[self.front_end]
            frames_of = lambda piece: len(frame_ids(piece, voice, speed, per_frame)) // per_frame  # noqa: E731
            prompt_speed = speed
        plans = plan_chunks(request.text, duration=request.duration, chars_per_second=self.chars_per_second * speed,
                            max_chunk_chars=request.max_chunk_chars, max_duration=max_duration, frames_of=frames_of)
        for p in plans:  # configuration errors (steps/blocks) surface before any model work
            sampler_config(p.frames, options)
        _check_batches(plans, options, batch_size, max_duration)
        return _Run(plans, voice, options, int(seed), batch_size, request.progress, speed=prompt_speed)

    def _chunks(self, run: _Run) -> Iterator[_ChunkAudio]:
        """Sample, validate and decode the chunks in order, ``run.batch_size`` per sample() call."""
        generator = torch.Generator(device=self.device).manual_seed(run.seed)
        plans = run.plans
        batches = [plans[b : b + run.batch_size] for b in range(0, len(plans), run.batch_size)]
        configs = [sampler_config(max(p.frames for p in batch), run.options) for batch in batches]
        bar = tqdm(total=sum(c.steps for c in configs), desc="synthesizing", unit="step", disable=not run.progress)
        on_step = (lambda x: bar.update(1)) if run.progress else None
        done = 0
        try:
            for batch, config in zip(batches, configs):
                prompts = [self.prompt(p.text, run.voice, run.speed) for p in batch]
                out = sample(self.model, prompts, config, generator=generator, on_step=on_step)
                run.nfe += out.nfe
                bar.update(config.steps - out.steps)  # threshold decoding / early stop take fewer steps
                for plan, row in zip(batch, out.generated):
                    yield self._decode_chunk(done, len(plans), plan, row, config, out.nfe, run.seed)
                    done += 1
        finally:
            bar.close()

    def _block_chunks(self, run: _Run) -> Iterator[Iterator[np.ndarray]]:
        """Per chunk, an iterator of its waveform pieces as frames are committed (see ``stream``)."""
        from llada_tts.synthesis.stream import decode_span, stream_chunk

        generator = torch.Generator(device=self.device).manual_seed(run.seed)

        def pieces(index: int, plan: ChunkPlan):
            config = sampler_config(plan.frames, run.options)
            done = yield from stream_chunk(self.model, self.codec, self.prompt(plan.text, run.voice, run.speed), config,
                                           generator, run.seed)  # its pieces as they become final
            run.nfe += done.result.nfe
            chunk = self._decode_chunk(index, len(run.plans), plan, done.result.generated[0], config,
                                       done.result.nfe, run.seed, decode=False)
            total = chunk.info.frames
            if total > done.emitted:  # the tail: frames held back, or committed after the last step
                yield decode_span(self.codec, chunk.tokens, done.emitted, total, run.seed)

        for i, plan in enumerate(run.plans):
            yield pieces(i, plan)

    def _decode_chunk(self, index, total, plan, row, config, nfe, seed, decode: bool = True) -> _ChunkAudio:
        report = L.validate_audio_tokens(row.cpu())
        if report.frames_kept == 0:
            what = ("the model ended the speech at once" if report.frames_total == 0
                    else f"all {report.frames_total} frames were invalid")
            raise NoAudioError(f"chunk {index + 1}/{total} ({_preview(plan.text)}) produced no valid audio frames "
                               f"({what}); try another seed, more steps or another voice")
        wave = self.codec.decode(report.tokens, seed=seed) if decode else None
        bad = len(report.bad_frames) + (1 if report.trailing_tokens else 0)
        info = ChunkInfo(text=plan.text, frames=report.frames_kept,
                         canvas_frames=config.gen_length // L.SLOTS_PER_FRAME,
                         nfe=nfe, valid_fraction=report.frames_kept / (report.frames_kept + bad), bad_frames=bad,
                         samples=report.frames_kept * L.SAMPLES_PER_FRAME, ended=report.ended_by is not None)
        return _ChunkAudio(info, report.tokens, wave)




def _check_batches(plans: list[ChunkPlan], options: dict, batch_size: int, max_duration: float | None) -> None:
    """Refuse a request whose sampling calls would hold more than ``batch_token_limit`` canvas
    tokens (rows x canvas, the canvas rounded up to whole blocks): the memory of one call."""
    budget = batch_token_limit(max_duration)
    if budget is None:
        return
    passes = 2 if (options.get("cfg_scale") or 0) > 0 else 1  # guidance adds an unconditional row per chunk
    for b in range(0, len(plans), batch_size):
        batch = plans[b : b + batch_size]
        canvas = sampler_config(max(p.frames for p in batch), options).gen_length
        if len(batch) * passes * canvas > budget:
            raise SynthesisError(
                f"batch_size={batch_size} samples {len(batch)} chunks of {canvas} canvas tokens at once "
                f"({len(batch) * passes * canvas} tokens{' with the cfg pass' if passes == 2 else ''}), more "
                f"than {budget} (4 x the canvas tokens of max_duration={max_duration:g} s); use batch_size <= "
                f"{max(1, budget // (passes * canvas))} or a smaller block_length")


def _preview(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def _hub_meta(name: str) -> CheckpointMeta:
    """llada_tts.json of a hub checkpoint, if it has one (the weights already came from the hub)."""
    try:
        from huggingface_hub import hf_hub_download

        from llada_tts.checkpoint_meta import META_FILE

        return read_meta(Path(hf_hub_download(name, META_FILE)).parent)
    except Exception:  # noqa: BLE001  no metadata file: nothing recorded
        return CheckpointMeta()
