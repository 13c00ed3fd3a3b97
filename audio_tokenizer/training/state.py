"""Resumable training state without pickle: safetensors for tensors, JSON for everything else.

Both trainers (the codec's and llada-tts's) keep their optimizer, LR-scheduler, gradient-scaler and
RNG states here instead of in ``accelerate.save_state``, whose registered custom objects are
reloaded with ``torch.load(weights_only=False)``: a crafted checkpoint could run code on
``--resume``. Loading this format never unpickles anything.

Folder layout (``training_state/``)::

    training_state.json       {"format": "llada-tts-training-state", "version": 1, "optimizers": [...],
                               "schedulers": [...], "scaler": ... | null}  (tensors by reference)
    optimizer.safetensors     the tensors those state dicts refer to (AdamW moments and steps)
    rng_<rank>.safetensors    one per process: torch CPU / CUDA generator states, with the Python and
                              NumPy generator states as JSON in the file's metadata

Every load problem (missing, truncated or inconsistent file) is a :class:`TrainingStateError`, a
``ValueError`` with a one-line message, which the command lines print as ``error: ...`` (exit 2).
Also here, for both trainers: :class:`NonFiniteLossError` (a diverged run, exit 1) and
:func:`take_run_lock` (one live run per folder; the lock and the temp-folder tidying are in
:mod:`audio_tokenizer.fileio`).
"""
from __future__ import annotations

import json
import math
import random
import weakref
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from audio_tokenizer.errors import RuntimeFailure, UserInputError, first_line
from audio_tokenizer.fileio import RunLock, RunLockedError

FORMAT, VERSION = "llada-tts-training-state", 1
INDEX, TENSORS = "training_state.json", "optimizer.safetensors"
# what accelerate.save_state wrote before this format: pickles (custom_checkpoint_N.pkl is unpickled
# with weights_only=False), never loaded again
OLD_FILES = ("optimizer.bin", "scheduler.bin", "random_states_0.pkl", "custom_checkpoint_0.pkl", "scaler.pt")
_NDARRAY_DTYPES = ("uint32", "int64", "float64")


class TrainingStateError(UserInputError):
    """A training-state folder that cannot be resumed from (one-line message)."""


class NonFiniteLossError(RuntimeFailure):
    """A NaN / inf loss stopped a run before it was stepped, logged or saved (one-line message; both
    trainers raise it and both command lines exit 1 on it)."""


def rng_file(rank: int) -> str:
    return f"rng_{rank}.safetensors"


# --- a JSON encoding of state dicts, tensors kept aside ---------------------------------------------

def _split(obj, key: str, tensors: dict[str, torch.Tensor]):
    """A JSON-able copy of ``obj``; each tensor goes to ``tensors`` under ``key`` and is referenced."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        if obj.dtype.name not in _NDARRAY_DTYPES:
            raise TypeError(f"cannot store a {obj.dtype} array in the training state")
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.name}
    if isinstance(obj, dict):  # keys may be ints (optimizer state): kept as [key, value] pairs
        for k in obj:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"cannot store a {type(k).__name__} key in the training state")
        return {"__dict__": [[k, _split(v, f"{key}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_split(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_split(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if isinstance(obj, np.generic):
        return _split(obj.item(), key, tensors)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in the training state")


def _join(obj, tensors: dict[str, torch.Tensor]):
    """Inverse of :func:`_split` (plain data only: nothing here can construct an arbitrary object)."""
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__dict__" in obj:
        return {k: _join(v, tensors) for k, v in obj["__dict__"]}
    if "__tuple__" in obj:
        return tuple(_join(v, tensors) for v in obj["__tuple__"])
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__ndarray__" in obj:
        if obj.get("dtype") not in _NDARRAY_DTYPES:
            raise ValueError(f"unexpected array dtype {obj.get('dtype')!r}")
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    raise ValueError(f"unexpected entry {sorted(obj)[:3]}")


# --- RNG ---------------------------------------------------------------------------------------------

def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- save / load -------------------------------------------------------------------------------------

def save_state(folder: str | Path, optimizers: list, schedulers: list, scaler=None, *, process_index: int = 0,
               main: bool = True) -> Path:
    """Write the state of ``optimizers`` / ``schedulers`` / ``scaler`` (main process) and this process's RNG.

    Call on every process (each writes its own ``rng_<rank>.safetensors``); the caller makes the
    folder appear atomically (it is part of a checkpoint written beside and renamed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if main:
        tensors: dict[str, torch.Tensor] = {}
        doc = {"format": FORMAT, "version": VERSION,
               "optimizers": [_split(o.state_dict(), f"optimizer{i}", tensors) for i, o in enumerate(optimizers)],
               "schedulers": [_split(s.state_dict(), f"scheduler{i}", tensors) for i, s in enumerate(schedulers)],
               "scaler": None if scaler is None else _split(scaler.state_dict(), "scaler", tensors)}
        save_file(tensors, str(folder / TENSORS))
        (folder / INDEX).write_text(json.dumps(doc, allow_nan=False) + "\n", encoding="utf-8")
    tensors = {}
    doc = _split(rng_state(), "rng", tensors)
    save_file(tensors, str(folder / rng_file(process_index)), metadata={"state": json.dumps(doc, allow_nan=False)})
    return folder


def is_old_format(folder: str | Path) -> bool:
    """True for a ``training_state/`` written by ``accelerate.save_state`` (pickles, not loaded any more)."""
    folder = Path(folder)
    return not (folder / INDEX).exists() and any((folder / name).exists() for name in OLD_FILES)


def old_format_message(where: str | Path, model_hint: str) -> str:
    return (f"{where} holds training state in the old pickled format (accelerate's *.bin / *.pkl), which "
            f"--resume no longer loads because unpickling can run code; {model_hint}")


def check_state(folder: str | Path, process_index: int = 0,
                model_hint: str = "start a new run from its weights") -> None:
    """TrainingStateError unless ``folder`` looks like a complete state in this format (cheap: no tensors read)."""
    folder = Path(folder)
    if is_old_format(folder):
        raise TrainingStateError(old_format_message(folder, model_hint))
    missing = [n for n in (INDEX, TENSORS, rng_file(process_index)) if not (folder / n).is_file()]
    if missing:
        raise TrainingStateError(f"{folder}: training state is incomplete (missing {', '.join(missing)}); "
                                 "resume from another checkpoint")


def load_state(folder: str | Path, optimizers: list, schedulers: list, scaler=None, *, process_index: int = 0,
               model_hint: str = "start a new run from its weights") -> None:
    """Restore what :func:`save_state` wrote; TrainingStateError (one line) if anything is missing or damaged."""
    folder = Path(folder)
    check_state(folder, process_index, model_hint)
    try:
        doc = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"{INDEX} is not a {FORMAT} file")
        if doc.get("version") != VERSION:
            raise ValueError(f"{INDEX} has version {doc.get('version')!r}; this llada-tts reads version {VERSION}")
        tensors = load_file(str(folder / TENSORS))
        want = (len(optimizers), len(schedulers), scaler is not None)
        got = (len(doc["optimizers"]), len(doc["schedulers"]), doc["scaler"] is not None)
        if want != got:
            raise ValueError(f"it holds {got[0]} optimizer(s), {got[1]} scheduler(s) and "
                             f"{'a' if got[2] else 'no'} gradient scaler; this run has {want[0]}, {want[1]} and "
                             f"{'a' if want[2] else 'no'} (different settings?)")
        for o, saved in zip(optimizers, doc["optimizers"]):
            o.load_state_dict(_join(saved, tensors))
        for s, saved in zip(schedulers, doc["schedulers"]):
            s.load_state_dict(_join(saved, tensors))
        if scaler is not None:
            scaler.load_state_dict(_join(doc["scaler"], tensors))
        with safe_open(str(folder / rng_file(process_index)), framework="pt") as f:
            meta = f.metadata() or {}
            rng = {k: f.get_tensor(k) for k in f.keys()}
        set_rng_state(_join(json.loads(meta["state"]), rng))
    except Exception as e:  # noqa: BLE001  truncated / edited / foreign files: one line, never a traceback
        raise TrainingStateError(f"{folder}: training state is damaged or incomplete ({type(e).__name__}: "
                                 f"{first_line(e)}); resume from another checkpoint") from e


# --- one run per folder -------------------------------------------------------------------------------

def take_run_lock(accelerator, folder: str | Path, log=print) -> RunLock | None:
    """Take ``folder``'s :class:`~audio_tokenizer.fileio.RunLock` on the main process, before anything in
    the folder is cleaned or written; every process raises the same RunLockedError when a live run holds
    it. Returns the lock (main process) or None; release it when the run ends."""
    lock, refused = None, None
    if accelerator.is_main_process:
        lock = RunLock(folder)
        try:
            for line in lock.acquire():
                log(line)
        except RunLockedError as e:
            refused = str(e)
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        refused = broadcast_object_list([refused])[0]
    if refused is not None:
        raise RunLockedError(refused)
    return lock


def build_holding(owner, lock: RunLock | None, build) -> None:
    """Run ``build()`` while holding ``lock`` (a trainer's run lock, or None off the main process): the
    lock is released when ``owner`` is collected or the interpreter exits, and at once if ``build``
    fails, so a failed start never leaves its folder locked."""
    if lock is not None:
        weakref.finalize(owner, lock.release)
    try:
        build()
    except BaseException:
        if lock is not None:
            lock.release()
        raise
