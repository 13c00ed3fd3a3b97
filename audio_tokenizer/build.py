"""Tokenise a speech dataset into Orpheus-layout TTS rows, saved with ``datasets.save_to_disk``.

Input: a folder with ``metadata.csv`` (see :func:`read_metadata`) or a Hugging Face dataset (a
``save_to_disk`` folder or a hub name) with audio and text columns. Output folder::

    OUT/data-*.arrow, dataset_info.json, state.json   the dataset (load with datasets.load_from_disk)
    OUT/skipped.csv      source,reason for every utterance left out
    OUT/build_info.json  settings, counts, durations, total audio seconds, speed
    OUT/.shards/NNNNN/   finished shards; a rerun with the same settings reuses them

Row: [start_of_human, BOS, tokens("voice: text"), end_of_text, end_of_human, start_of_ai,
start_of_speech, audio..., end_of_speech, end_of_ai]; ``prompt_lengths`` counts up to start_of_speech.
With ``front_end="espeak-ipa"`` the prompt's text is eSpeak NG's IPA of the (normalised) transcript
(``audio_tokenizer.espeak.apply_front_end``); the ``text`` column always keeps the transcript.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audio_tokenizer import audio_io, layout
from audio_tokenizer.corpus import InputError, Utterance, read_metadata
from audio_tokenizer.errors import first_line
from audio_tokenizer.espeak import FRONT_ENDS, EspeakError, apply_front_end
from audio_tokenizer.fileio import write_atomic
from audio_tokenizer.hub import load_hub_split, select_split
from audio_tokenizer.normalize import strip_invisible
from audio_tokenizer.text import prompt_ids

_SETTINGS_FILE = "settings.json"
_FINGERPRINT_FILE = "inputs.sha256"  # in each shard: hash of the inputs it was built from
_HEADER_SLACK = 0.01  # seconds: a header duration this far outside the limits is skipped undecoded


@dataclass
class BuildConfig:
    """Everything that decides the output rows (a rerun must match it to reuse shards)."""

    input: str
    output: str
    tokenizer: str
    codec: str
    voice: str | None = None
    text_column: str = "text"
    audio_column: str = "audio"
    voice_column: str = "voice"
    split: str = "train"
    min_duration: float = 0.5
    max_duration: float = 30.0
    max_length: int = 8192
    drop_repeated_frames: bool = False
    shard_size: int = 500
    device: str = "cpu"
    allow_outside_paths: bool = False  # metadata file entries may resolve outside the input folder
    front_end: str = "text"  # prompt text: the transcript ("text") or its eSpeak NG IPA ("espeak-ipa")

# not part of the shard settings: device and output never change rows, and the effect of
# allow_outside_paths is in each shard's input fingerprint (the utterance's error)
_VOLATILE = ("output", "device", "allow_outside_paths")


class HFInput:
    """Rows of a Hugging Face dataset as Utterances; audio stays undecoded until a row is tokenised."""

    def __init__(self, ds, text_column: str, audio_column: str, voice_column: str):
        import datasets

        missing = [c for c in (text_column, audio_column) if c not in ds.column_names]
        if missing:
            raise InputError(f"dataset has no column {missing[0]!r} (columns: {', '.join(ds.column_names)}); "
                             f"pass --{'text' if missing[0] == text_column else 'audio'}-column")
        if isinstance(ds.features[audio_column], datasets.Audio):  # raw bytes/path: no torchcodec needed
            ds = ds.cast_column(audio_column, datasets.Audio(decode=False))
        self.ds, self.text, self.audio = ds, text_column, audio_column
        self.voice = voice_column if voice_column in ds.column_names else None

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, rows: slice) -> list[Utterance]:
        part = self.ds.select(range(rows.start, rows.stop))
        return [Utterance(f"row:{i}", str(r[self.text] or ""), str(r[self.voice] or "") if self.voice else "",
                          r[self.audio]) for i, r in zip(range(rows.start, rows.stop), part)]


def open_input(spec: str, text_column="text", audio_column="audio", voice_column="voice", split="train",
               allow_outside_paths: bool = False):
    """Utterances (a sized, sliceable sequence) of a metadata.csv folder or a Hugging Face dataset."""
    import datasets

    path = Path(spec)
    local_dataset = path.is_dir() and not (path / "metadata.csv").is_file() and any(
        (path / f).is_file() for f in ("state.json", "dataset_dict.json"))
    if not local_dataset and (path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1):
        return read_metadata(path, text_column, voice_column, allow_outside_paths=allow_outside_paths)
    try:
        ds = (select_split(datasets.load_from_disk(str(path)), split, spec) if local_dataset
              else load_hub_split(spec, split))
    except ValueError as e:
        raise InputError(str(e)) from e
    return HFInput(ds, text_column, audio_column, voice_column)


def _array_wave(array, sr, target_sr: int) -> np.ndarray:
    """A decoded audio array [T] or [C, T] -> mono float32 [T] at ``target_sr``."""
    wave = np.asarray(array, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=int(np.argmin(wave.shape)))
    if wave.ndim != 1 or wave.size == 0 or not sr:
        raise audio_io.AudioError(f"audio array has shape {wave.shape} and rate {sr}; expected mono samples")
    if not np.isfinite(wave).all():
        raise audio_io.AudioError("audio array has NaN or infinite samples")
    return audio_io.resample(wave, int(sr), target_sr)


def load_wave(audio, target_sr: int) -> np.ndarray:
    """Mono float32 [T] at ``target_sr`` from a path or a Hugging Face audio value; AudioError if bad."""
    if isinstance(audio, (str, Path)):
        return audio_io.load_audio(audio, target_sr=target_sr)
    if isinstance(audio, dict):
        if audio.get("array") is not None:
            return _array_wave(audio["array"], audio.get("sampling_rate"), target_sr)
        if audio.get("bytes"):
            suffix = Path(audio.get("path") or "audio.wav").suffix or ".wav"
            with tempfile.NamedTemporaryFile(suffix=suffix) as f:
                f.write(audio["bytes"])
                f.flush()
                return audio_io.load_audio(f.name, target_sr=target_sr)
        if audio.get("path"):
            return audio_io.load_audio(audio["path"], target_sr=target_sr)
    raise audio_io.AudioError("row has no audio (no path, bytes or array)")


def audio_header_duration(audio) -> float | None:
    """Seconds of a path or Hugging Face audio value from the file header (nothing decoded), or None."""
    if isinstance(audio, (str, Path)):
        return audio_io.header_duration(audio)
    if isinstance(audio, dict) and audio.get("array") is None:
        if audio.get("bytes"):
            return audio_io.header_duration(io.BytesIO(audio["bytes"]))
        if audio.get("path") and Path(audio["path"]).is_file():
            return audio_io.header_duration(audio["path"])
    return None  # an in-memory array (already decoded) or no audio at all


def _audio_fingerprint(audio) -> object:
    """What identifies an utterance's audio: path, size and mtime of a file, or a hash of its bytes."""
    if isinstance(audio, (str, Path)):
        path = Path(audio)
        try:
            st = path.stat()
        except OSError:
            return [str(path.absolute()), None]
        # ctime too: a file replaced by one of the same size with its mtime kept (cp -p, rsync -a) still differs
        return [str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    if isinstance(audio, dict):
        if audio.get("array") is not None:
            arr = np.ascontiguousarray(np.asarray(audio["array"], dtype=np.float32))
            return ["array", list(arr.shape), audio.get("sampling_rate"), hashlib.sha256(arr.tobytes()).hexdigest()]
        if audio.get("bytes"):
            return ["bytes", audio.get("path"), hashlib.sha256(audio["bytes"]).hexdigest()]
        if audio.get("path"):
            return ["path", *_audio_fingerprint(str(audio["path"]))]
    return None


def shard_fingerprint(utts: list[Utterance]) -> str:
    """SHA-256 over a shard's inputs: each utterance's id, text, voice, error, and its audio's
    path + size + mtime + ctime (files) or content hash (bytes, arrays). Any edit to them changes it."""
    h = hashlib.sha256()
    for u in utts:
        entry = [u.source, u.text, u.voice, u.error, _audio_fingerprint(u.audio)]
        h.update(json.dumps(entry, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
    return h.hexdigest()


def drop_repeated_frames(audio_ids: list[int]) -> list[int]:
    """Orpheus's dedupe: drop each 7-token frame whose L0 id equals the last kept frame's L0 id."""
    if len(audio_ids) % layout.SLOTS_PER_FRAME:
        raise ValueError(f"audio token count {len(audio_ids)} is not a multiple of 7")
    kept = list(audio_ids[:7])
    for i in range(7, len(audio_ids), 7):
        if audio_ids[i] != kept[-7]:
            kept.extend(audio_ids[i : i + 7])
    return kept


def make_row(tokenizer, text: str, voice: str | None, audio_ids: list[int],
             front_end: str = "text") -> tuple[list[int], int]:
    """Orpheus row ids and prompt length for one utterance ("voice: text" when a voice is given);
    ``front_end`` turns the text (never the voice) into what the prompt holds."""
    return layout.tts_row_ids(prompt_ids(tokenizer, text, voice, front_end), audio_ids)


class _Encoder:
    """Loads the tokenizer (always) and the codec (only when a shard needs encoding)."""

    def __init__(self, cfg: BuildConfig):
        from transformers import AutoTokenizer

        self.cfg = cfg
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer, trust_remote_code=False)
        except Exception as e:  # noqa: BLE001  (hub/OS/format errors all mean "cannot load")
            raise InputError(f"cannot load tokenizer {cfg.tokenizer!r}: {first_line(e)}") from e
        for token, want in (("<|begin_of_text|>", layout.BOS_ID), ("<|eot_id|>", layout.END_OF_TEXT_ID)):
            if self.tokenizer.convert_tokens_to_ids(token) != want:
                raise InputError(f"tokenizer {cfg.tokenizer!r} is not a Llama-3 tokenizer ({token} is not {want})")
        self._codec = None

    @property
    def codec(self):
        if self._codec is None:
            from audio_tokenizer.codec import SnacCodec

            try:
                self._codec = SnacCodec.from_pretrained(self.cfg.codec, device=self.cfg.device)
            except Exception as e:  # noqa: BLE001  hub/OS/format errors all mean "cannot load"
                raise InputError(f"cannot load codec {self.cfg.codec!r}: {first_line(e)}") from e
        return self._codec

    def row(self, utt: Utterance) -> tuple[dict | None, str | None]:
        """(row, None) for a usable utterance, else (None, reason it was skipped)."""
        cfg = self.cfg
        text = strip_invisible(utt.text or "").strip()
        if utt.error:
            return None, utt.error
        if not text:
            return None, "empty text"
        voice = cfg.voice or utt.voice or None
        prompt_text = apply_front_end(text, cfg.front_end, voice)  # the text, its phonemes, or frame phonemes
        if not prompt_text:
            return None, "no phonemes: eSpeak NG found nothing to say"
        if isinstance(utt.audio, (str, Path)) and not Path(utt.audio).is_file():
            return None, f"missing audio: {utt.audio}"
        header = audio_header_duration(utt.audio)  # filter on the header first: never decode what is skipped
        if header is not None and header < cfg.min_duration - _HEADER_SLACK:
            return None, f"too short: {header:.2f} s < {cfg.min_duration:g} s"
        if header is not None and header > cfg.max_duration + _HEADER_SLACK:
            return None, f"too long: {header:.2f} s > {cfg.max_duration:g} s"
        try:
            wave = load_wave(utt.audio, layout.SAMPLE_RATE)  # [T] float32, 24 kHz
        except (audio_io.AudioError, OSError, RuntimeError) as e:  # soundfile raises RuntimeError subclasses
            return None, f"bad audio: {e}"
        duration = len(wave) / layout.SAMPLE_RATE
        if duration < cfg.min_duration:
            return None, f"too short: {duration:.2f} s < {cfg.min_duration:g} s"
        if duration > cfg.max_duration:
            return None, f"too long: {duration:.2f} s > {cfg.max_duration:g} s"
        audio_ids = self.codec.encode_tokens(wave, layout.SAMPLE_RATE).tolist()  # [7n]
        if cfg.drop_repeated_frames:
            audio_ids = drop_repeated_frames(audio_ids)
        ids, prompt_len = make_row(self.tokenizer, text, voice, audio_ids, cfg.front_end)
        from audio_tokenizer.frames import PER_FRAME, RATE, frames_of_ids

        if cfg.front_end in PER_FRAME:
            have = frames_of_ids(ids[:prompt_len], PER_FRAME[cfg.front_end])
            if len(audio_ids) != layout.SLOTS_PER_FRAME * have:
                return None, (f"eSpeak's timeline has {have} frames, the audio "
                              f"{len(audio_ids) // layout.SLOTS_PER_FRAME}: "
                              f"{cfg.front_end} needs eSpeak NG renderings of the text in the row's voice at {RATE} "
                              "words/min (corpus --rates 175)")
        if len(ids) > cfg.max_length:
            return None, f"row too long: {len(ids)} tokens > --max-length {cfg.max_length}"
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "prompt_lengths": prompt_len,
                "data_type": "tts", "text": text, "voice": voice or "", "duration": float(duration),
                "source": utt.source}, None


def _features():
    import datasets

    return datasets.Features({
        "input_ids": datasets.Sequence(datasets.Value("int32")),
        "attention_mask": datasets.Sequence(datasets.Value("int8")),
        "prompt_lengths": datasets.Value("int32"),
        "data_type": datasets.Value("string"),
        "text": datasets.Value("string"),
        "voice": datasets.Value("string"),
        "duration": datasets.Value("float32"),
        "source": datasets.Value("string"),
    })


def _write_shard(shard_dir: Path, rows: list[dict], skipped: list[tuple[str, str]], fingerprint: str) -> None:
    """Write one finished shard atomically (temp dir, then rename over any stale one)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = shard_dir.with_name(shard_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    schema = _features().arrow_schema
    table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    pq.write_table(table, tmp / "rows.parquet")
    (tmp / "skipped.json").write_text(json.dumps(skipped), encoding="utf-8")
    (tmp / _FINGERPRINT_FILE).write_text(fingerprint + "\n", encoding="utf-8")
    shutil.rmtree(shard_dir, ignore_errors=True)  # a stale shard (its inputs changed)
    tmp.rename(shard_dir)


def _shard_state(shard_dir: Path, fingerprint: str) -> str:
    """'current' (finished, same inputs), 'stale' (finished from other inputs) or 'missing'."""
    if not shard_dir.is_dir():
        return "missing"
    try:
        have = (shard_dir / _FINGERPRINT_FILE).read_text(encoding="utf-8").strip()
    except OSError:  # a shard from before fingerprints: its inputs are unknown
        return "stale"
    return "current" if have == fingerprint else "stale"


def _where(spec: str) -> str:
    """A local path made absolute (so reruns from another directory match); hub names unchanged."""
    return str(Path(spec).resolve()) if Path(spec).exists() else spec


def _check_output(cfg: BuildConfig) -> Path:
    """The output folder, refusing one that holds anything but an earlier build (or the input)."""
    out = Path(cfg.output)
    if Path(cfg.input).exists() and out.resolve() == Path(cfg.input).resolve():
        raise InputError(f"--output {out} is the input folder; choose a new folder")
    if out.is_dir() and any(out.iterdir()) and not ((out / ".shards").is_dir() or (out / "build_info.json").is_file()):
        raise InputError(f"--output {out} is not empty and holds no earlier build; choose a new folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} is a file; choose a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _check_settings(shards: Path, cfg: BuildConfig, n_items: int, overwrite: bool) -> None:
    """Record the settings next to the shards; refuse to mix shards built with other settings."""
    want = {**asdict(cfg), "n_items": n_items}
    for volatile in _VOLATILE:
        want.pop(volatile)
    for key in ("input", "tokenizer", "codec"):
        want[key] = _where(want[key])
    path = shards / _SETTINGS_FILE
    if path.exists() and not overwrite:
        have = {"front_end": "text", **json.loads(path.read_text(encoding="utf-8"))}  # built before --front-end
        changed = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
        if changed:
            raise InputError(f"{shards.parent} holds shards built with other settings ({', '.join(changed)}); "
                             "pass --overwrite or choose a new --output")
        return
    shutil.rmtree(shards, ignore_errors=True)
    shards.mkdir(parents=True)
    path.write_text(json.dumps(want, indent=2), encoding="utf-8")


def _check_front_end(front_end: str) -> None:
    """InputError unless ``front_end`` is known and works here (eSpeak NG loads), before any work."""
    if front_end not in FRONT_ENDS:
        raise InputError(f"unknown --front-end {front_end!r}; choose one of {', '.join(FRONT_ENDS)}")
    try:
        apply_front_end("test", front_end)
    except EspeakError as e:
        raise InputError(f"--front-end {front_end}: {first_line(e)}") from e


def _remove_dataset(out: Path) -> None:
    """Delete a previously published dataset (state.json first, so a half-deleted one cannot load)."""
    for name in ("state.json", "dataset_info.json", *(p.name for p in out.glob("data-*.arrow"))):
        (out / name).unlink(missing_ok=True)


def _publish(table, out: Path, progress: bool) -> None:
    """Save the final dataset into ``out``; state.json is replaced last, so a crash never leaves a mix."""
    import datasets

    tmp = out / ".dataset.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    bars_were_on = not datasets.are_progress_bars_disabled()
    if not progress:
        datasets.disable_progress_bars()
    try:
        datasets.Dataset(table, info=datasets.DatasetInfo(features=_features())).save_to_disk(str(tmp))
    finally:
        if not progress and bars_were_on:
            datasets.enable_progress_bars()
    _remove_dataset(out)
    for p in sorted(tmp.iterdir(), key=lambda p: p.name == "state.json"):
        p.replace(out / p.name)
    tmp.rmdir()


def _summarise(cfg: BuildConfig, table, skipped, n_items, shards: dict, seconds) -> dict:
    dur = np.asarray(table.column("duration").to_pylist() if table.num_rows else [], dtype=np.float64)
    lens = np.asarray([len(x) for x in table.column("input_ids").to_pylist()] if table.num_rows else [])
    reasons: dict[str, int] = {}
    for _, why in skipped:
        key = why.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "config": asdict(cfg),
        "counts": {"utterances": n_items, "rows": int(table.num_rows), "skipped": len(skipped),
                   "skipped_by_reason": reasons},
        "duplicate_ids": sorted({src for src, why in skipped if why.startswith("duplicate id:")}),
        "durations": {"total_audio_seconds": round(float(dur.sum()), 3),
                      "min": round(float(dur.min()), 3) if dur.size else None,
                      "max": round(float(dur.max()), 3) if dur.size else None,
                      "mean": round(float(dur.mean()), 3) if dur.size else None},
        "row_lengths": {"max": int(lens.max()) if lens.size else None,
                        "mean": round(float(lens.mean()), 1) if lens.size else None},
        "shards": shards,
        "elapsed_seconds": round(seconds, 3),
    }


def _shard_dir(shards: Path, index: int) -> Path:
    return shards / f"{index:05d}"


def _encode_shard(encoder: _Encoder, utts: list[Utterance], shard_dir: Path, fingerprint: str,
                  on_item=None) -> None:
    """Tokenise one shard's utterances and write the finished shard (rows, skipped, fingerprint)."""
    rows, skipped = [], []
    for utt in utts:
        row, why = encoder.row(utt)
        if row is None:
            skipped.append((utt.source, why))
        else:
            rows.append(row)
        if on_item:
            on_item(row is not None)
    _write_shard(shard_dir, rows, skipped, fingerprint)


# --num-processes: a spawn pool whose workers each open the input and load the encoder once
_WORKER: dict = {}


def _worker_init(cfg: BuildConfig, threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    _WORKER["cfg"] = cfg
    _WORKER["inputs"] = open_input(cfg.input, cfg.text_column, cfg.audio_column, cfg.voice_column, cfg.split,
                                   cfg.allow_outside_paths)
    _WORKER["encoder"] = _Encoder(cfg)


def _worker_shard(index: int, fingerprint: str) -> int:
    cfg, inputs = _WORKER["cfg"], _WORKER["inputs"]
    start = index * cfg.shard_size
    utts = inputs[start : min(start + cfg.shard_size, len(inputs))]
    _encode_shard(_WORKER["encoder"], utts, _shard_dir(Path(cfg.output) / ".shards", index), fingerprint)
    return len(utts)


def _distributed():
    """accelerate's PartialState when run by ``accelerate launch`` with several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    missing = [k for k in ("LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:  # a stray WORLD_SIZE (cluster job environments export it): never wait for a group
        raise InputError(f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} is not set: launch "
                         "with 'accelerate launch' or torchrun, or unset WORLD_SIZE for a one-process build")
    from datetime import timedelta

    import torch
    from accelerate import PartialState

    # a process that finishes its shards early waits for the others at the end: allow for a long build.
    # Without CUDA, accelerate only forms a (gloo) process group when told it runs on CPU.
    state = PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(days=7))
    if state.num_processes != int(os.environ["WORLD_SIZE"]):
        raise InputError(f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but accelerate formed a group of "
                         f"{state.num_processes} process(es); launch with 'accelerate launch' or torchrun")
    return state


def build(cfg: BuildConfig, overwrite: bool = False, progress: bool = True, num_processes: int = 1) -> dict | None:
    """Tokenise ``cfg.input`` into ``cfg.output``; returns the build_info dict (also written to disk).

    Work is split into shards of ``cfg.shard_size`` utterances; a finished shard is reused on a
    rerun only if its inputs (ids, texts, voices, audio path + size + mtime or content hash) are
    unchanged, else rebuilt. ``num_processes`` > 1 encodes shards in that many spawned processes;
    under ``accelerate launch`` (WORLD_SIZE > 1) process r encodes shards r, r + N, ... on its own
    device. Either way the main process publishes the dataset once every shard exists, and the
    rows are those of a one-process build. Non-main accelerate processes return None.

    Raises InputError for a missing/unsupported input, missing columns or mismatched shards.
    Unusable utterances are skipped and listed in ``skipped.csv``, never raised.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if cfg.shard_size < 1 or cfg.max_length < 1 or cfg.min_duration > cfg.max_duration:
        raise InputError("need --shard-size >= 1, --max-length >= 1 and --min-duration <= --max-duration")
    if num_processes < 1:
        raise InputError(f"--num-processes must be >= 1, got {num_processes}")
    _check_front_end(cfg.front_end)
    dist = _distributed()
    if dist is not None and num_processes > 1:
        raise InputError("--num-processes cannot be combined with accelerate launch (it already starts "
                         f"{dist.num_processes} processes)")
    start = time.perf_counter()
    inputs = open_input(cfg.input, cfg.text_column, cfg.audio_column, cfg.voice_column, cfg.split,
                        cfg.allow_outside_paths)
    is_main = dist is None or dist.is_main_process
    out, shards = Path(cfg.output), Path(cfg.output) / ".shards"
    if is_main:
        out = _check_output(cfg)
        _check_settings(shards, cfg, len(inputs), overwrite)
    if dist is not None:
        dist.wait_for_everyone()
        if not is_main:  # the main process has (re)made the shard folder: only check it matches
            _check_settings(shards, cfg, len(inputs), overwrite=False)
        device = "cpu" if dist.device.type == "cpu" else str(dist.device)  # cuda:LOCAL_RANK, one per process
        cfg = BuildConfig(**{**asdict(cfg), "device": device})
    n_shards = -(-len(inputs) // cfg.shard_size)
    mine = [i for i in range(n_shards) if dist is None or i % dist.num_processes == dist.process_index]

    def utts_of(i):
        return inputs[i * cfg.shard_size : min((i + 1) * cfg.shard_size, len(inputs))]

    fingerprints = {i: shard_fingerprint(utts_of(i)) for i in mine}
    state = {i: _shard_state(_shard_dir(shards, i), fingerprints[i]) for i in mine}
    todo = [i for i in mine if state[i] != "current"]
    todo_items = sum(min(cfg.shard_size, len(inputs) - i * cfg.shard_size) for i in todo)
    counts = {"built": len(todo), "reused": len(mine) - len(todo), "stale": sum(state[i] == "stale" for i in todo)}
    encoder = _Encoder(cfg) if is_main or todo else None  # tokenizer checked before any work
    bar = tqdm(total=todo_items, desc="tokenising", unit="utt", disable=not progress or not is_main)
    t0 = time.perf_counter()
    if num_processes > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        workers = min(num_processes, len(todo))
        threads = max(1, (os.cpu_count() or 1) // workers) if cfg.device == "cpu" else 0
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(cfg, threads))
        try:
            futures = [pool.submit(_worker_shard, i, fingerprints[i]) for i in todo]
            for f in as_completed(futures):
                try:
                    bar.update(f.result())
                except (InputError, KeyboardInterrupt):
                    raise
                except Exception as e:  # noqa: BLE001 - a worker died or raised: one line, shards kept
                    raise InputError(f"a build process failed ({type(e).__name__}: {first_line(e)}); "
                                     "finished shards are kept, rerun to resume") from e
        finally:  # on an error or Ctrl-C, start no further shard (finished ones are kept)
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        tally = {"rows": 0, "skipped": 0}

        def on_item(kept: bool) -> None:
            tally["rows" if kept else "skipped"] += 1
            bar.update(1)
            bar.set_postfix(tally)

        for i in todo:
            _encode_shard(encoder, utts_of(i), _shard_dir(shards, i), fingerprints[i], on_item)
    bar.close()
    encode_seconds = time.perf_counter() - t0
    if dist is not None:  # every process's counts to the main one (also waits for all shards)
        from accelerate.utils import gather_object

        parts = gather_object([(counts, todo_items, encode_seconds)])
        if not is_main:
            return None
        counts = {k: sum(c[k] for c, _, _ in parts) for k in counts}
        todo_items = sum(n for _, n, _ in parts)
        encode_seconds = max(t for _, _, t in parts)
    tables, skipped = [], []
    for i in range(n_shards):
        d = _shard_dir(shards, i)
        tables.append(pq.read_table(d / "rows.parquet"))
        skipped += [tuple(x) for x in json.loads((d / "skipped.json").read_text(encoding="utf-8"))]
    table = pa.concat_tables(tables) if tables else _features().arrow_schema.empty_table()
    with open(out / "skipped.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("source", "reason"), *skipped])
    if table.num_rows:
        _publish(table, out, progress)
    else:
        _remove_dataset(out)
    info = _summarise(cfg, table, skipped, len(inputs), counts, time.perf_counter() - start)
    info["tokenizer"], info["codec"], info["front_end"] = cfg.tokenizer, cfg.codec, cfg.front_end
    info["processes"] = dist.num_processes if dist is not None else num_processes
    info["speed"] = {"utterances_this_run": todo_items, "encode_seconds": round(encode_seconds, 3),
                     "utterances_per_second": round(todo_items / encode_seconds, 2) if encode_seconds else None}
    write_atomic(out / "build_info.json", json.dumps(info, indent=2) + "\n")
    return info
