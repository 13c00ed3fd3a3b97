"""Files and folders written safely (torch-free, so command-line start-up stays light; shared by
audio_tokenizer and llada_tts): atomic text files, strict JSON lines, atomic folder swaps and the tidying
of their temp folders after a kill, and the one-run-per-folder lock of both trainers."""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

from audio_tokenizer.errors import UserInputError


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """Yield a temp path in ``path``'s folder to write the whole file to (any writer: text, safetensors);
    when the block ends without an error it is renamed to ``path``: readers see the old file or the new
    one, never half of one, and a failed write leaves no temp file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str | os.PathLike, text: str, newline: str | None = None) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_file`)."""
    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline=newline) as f:
            f.write(text)
    return Path(path)


def json_line(row: dict) -> str:
    """One JSON-lines row (metrics.jsonl of both trainers): strict JSON, a NaN / inf value written as null
    (a bare NaN is not JSON)."""
    return json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()},
                      allow_nan=False)


# --- atomic folders ------------------------------------------------------------------------------------
# A folder NAME is written as ``.NAME.partial`` beside it, then swapped in by :func:`replace_dir`, which
# parks the previous NAME as ``.NAME.old-XXXXXXXX`` until the swap is done. These two temp names are
# defined here only, next to :func:`clean_temp_dirs`, which tidies what a killed save left of them.

def partial_dir(final: str | os.PathLike) -> Path:
    """Where the new contents of folder ``final`` are written before :func:`replace_dir` swaps them in."""
    final = Path(final)
    return final.parent / f".{final.name}.partial"


def _old_dir(final: Path) -> Path:
    return final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"


def _temp_name(names: str) -> re.Pattern:
    """The temp names of :func:`partial_dir` / :func:`replace_dir` for final names matching regex ``names``."""
    return re.compile(rf"^\.(?P<name>{names})\.(?:partial|old-[0-9a-f]{{8}})$")


def replace_dir(tmp: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Swap the complete folder ``tmp`` (usually :func:`partial_dir` of ``dst``) in as ``dst``: readers
    see the old folder or the new one; a kill midway leaves temp names that :func:`clean_temp_dirs` tidies."""
    tmp, dst = Path(tmp), Path(dst)
    old = _old_dir(dst)
    if dst.exists():
        os.replace(dst, old)
    try:
        os.replace(tmp, dst)
    except OSError:  # the rename itself failed: put the previous folder back (a kill is left to clean_temp_dirs)
        if old.exists():
            os.replace(old, dst)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return dst


@contextlib.contextmanager
def atomic_dir(dst: str | os.PathLike, overwrite: bool = True):
    """Yield a fresh temp folder beside ``dst`` to write the whole folder into; when the block ends
    without an error it is swapped in as ``dst`` (:func:`replace_dir`), so readers see the old folder or
    the new one, never half of one. On an error the temp folder is removed and ``dst`` is untouched.

    ``overwrite=False`` refuses a non-empty ``dst`` up front (``FileExistsError``); a ``dst`` that is a
    file is always refused."""
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise FileExistsError(f"{dst} exists and is not a folder")
    if not overwrite and dst.is_dir() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} is not empty; choose a new folder or pass overwrite=True")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only
        replace_dir(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def clean_temp_dirs(folder: str | os.PathLike, names: str) -> list[str]:
    """Tidy what a killed :func:`replace_dir` save left in ``folder``; ``names`` is a regex of the final
    folder names.

    An ``.NAME.old-`` folder whose NAME is missing is the last complete copy and is renamed back; every
    other ``.partial`` / ``.old-`` folder of a matching NAME is removed. Nothing else is touched (call it
    only while holding the folder's :class:`RunLock`: a live save's ``.partial`` looks the same).
    Returns one line per action."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    temp = _temp_name(names)
    done = []
    entries = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and temp.match(p.name))
    for p in entries:  # first put back a complete copy whose rename was cut off
        name = temp.match(p.name)["name"]
        if ".old-" in p.name and not (folder / name).exists():
            p.rename(folder / name)
            done.append(f"restored {folder / name} from {p.name} (a save was interrupted)")
    for p in entries:
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p} (left by an interrupted save)")
    return done


# --- one run per folder -----------------------------------------------------------------------------------

LOCK_FILE = "run.lock"
_EMPTY_LOCK_GRACE_S = 30.0  # a lock file still empty after this long was left by a process killed while creating it


class RunLockedError(UserInputError):
    """The run folder is in use by a live process (one-line message)."""


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None where unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def _start_ticks(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot; Linux), which tells a reused pid from the lock's holder."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def pid_alive(pid: int, start: str | None = None) -> bool:
    """True if process ``pid`` runs on this host (a zombie, or a pid reused since ``start``, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        pass
    except (OSError, OverflowError, ValueError):
        return False
    fields = _proc_stat(pid)
    if fields and fields[0] == "Z":
        return False
    return not (start and fields and len(fields) > 19 and fields[19] != start)


class RunLock:
    """An exclusive lock on a run folder: ``folder/run.lock``, created with O_EXCL and holding the pid and
    host of its holder. Stale (taken over) when that process no longer runs on this host; a lock of another
    host is always respected. Take it before anything in the folder is cleaned or written; :meth:`release`
    at exit."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.token = uuid.uuid4().hex
        self.held = self.created = False

    def _holder(self) -> tuple[str, dict | None]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return "", {}
        except OSError:
            return "", None
        try:
            info = json.loads(text)
            return text, info if isinstance(info, dict) else None
        except ValueError:
            return text, None

    def _stale(self, text: str, info: dict | None) -> str | None:
        """Why the current lock is stale (None: it is live, or cannot be shown to be dead)."""
        if info == {}:
            return "gone"
        if info is None or not isinstance(info.get("pid"), int):
            try:
                age = time.time() - self.path.stat().st_mtime
            except OSError:
                return "gone"
            return "an unreadable lock file" if not text.strip() and age > _EMPTY_LOCK_GRACE_S else None
        if info.get("host") != socket.gethostname():
            return None
        if info["pid"] == os.getpid():  # an earlier trainer of this very process that was not closed
            return "an earlier run of this process"
        if not pid_alive(info["pid"], info.get("start")):
            return f"pid {info['pid']} on {info['host']}, which no longer runs"
        return None

    def acquire(self) -> list[str]:
        """Take the lock (one line per stale lock taken over); RunLockedError when a live run holds it."""
        self.created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_ticks(os.getpid()),
              "token": self.token, "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        notes = []
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError as e:
                text, info = self._holder()
                why = self._stale(text, info)
                if why is None:
                    who = (f"pid {info['pid']} on {info['host']}" if info and isinstance(info.get("pid"), int)
                           else "a process that is starting")
                    raise RunLockedError(f"{self.folder} is in use by a live run ({who}; lock {self.path}): wait for "
                                         f"it to end, or choose another folder; if no run is live, delete "
                                         f"{self.path}") from e
                if why != "gone" and self._holder()[0] == text:  # unchanged since read: remove the stale lock
                    self.path.unlink(missing_ok=True)
                    notes.append(f"took over the stale lock {self.path} ({why})")
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(me) + "\n")
            self.held = True
            return notes
        raise RunLockedError(f"{self.folder}: could not take {self.path} (other processes keep taking it)")

    def release(self) -> None:
        """Remove the lock if this object still holds it (idempotent)."""
        if self.held:
            self.held = False
            _, info = self._holder()
            if info and info.get("token") == self.token:
                self.path.unlink(missing_ok=True)
            if self.created:  # a start that failed before writing anything leaves no empty folder behind
                try:
                    self.folder.rmdir()
                except OSError:
                    pass
