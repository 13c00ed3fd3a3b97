"""Convert ShareGPT and Alpaca files to our SFT JSONL (``{"messages": [{"role", "content"}, ...]}``).

    python -m llada_tts.data.convert sharegpt IN OUT
    python -m llada_tts.data.convert alpaca IN OUT

IN may be a JSON array or JSONL. OUT is written atomically (temp file, then rename).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from llada_tts.data.text import ROLES


class ConvertStats(NamedTuple):
    written: int
    skipped: int  # records with nothing to learn (no assistant answer / empty output)


def read_json_records(path: str | Path) -> Iterator[tuple[str, object]]:
    """(where, record) for each element of a JSON array or each line of a JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        head = f.read(4096).lstrip()
        f.seek(0)
        if head.startswith("["):
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {e.lineno}: invalid JSON ({e.msg})") from None
            for i, record in enumerate(data):
                yield f"{path} record {i}", record
            return
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield f"{path} line {n}", json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path} line {n}: invalid JSON ({e.msg} at column {e.colno})") from None


def sharegpt_messages(record, where: str) -> list[dict] | None:
    """ShareGPT ``{"conversations": [{"from", "value"}]}`` -> messages ending at the last answer (None: no answer)."""
    turns = record.get("conversations", record.get("items")) if isinstance(record, dict) else None
    if not isinstance(turns, list):
        raise ValueError(f"{where}: expected an object with a 'conversations' list")
    messages = []
    for j, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("value", turn.get("content")), str):
            raise ValueError(f"{where}: conversations[{j}] must be an object with 'from' and a 'value' string")
        name = str(turn.get("from", turn.get("role", ""))).lower()
        if name not in ROLES:
            raise ValueError(f"{where}: conversations[{j}] has 'from' {name!r}; expected one of {sorted(ROLES)}")
        messages.append({"role": ROLES[name], "content": turn.get("value", turn.get("content"))})
    while messages and messages[-1]["role"] != "assistant":  # a trailing question has no answer to learn
        messages.pop()
    return messages or None


def alpaca_messages(record, where: str) -> list[dict] | None:
    """Alpaca ``{"instruction", "input", "output"[, "system"]}`` -> messages (None: empty output)."""
    if not isinstance(record, dict) or not isinstance(record.get("instruction"), str) or not isinstance(
            record.get("output"), str):
        raise ValueError(f"{where}: expected an object with 'instruction' and 'output' strings")
    extra = record.get("input") or ""
    if not isinstance(extra, str):
        raise ValueError(f"{where}: 'input' must be a string")
    if not record["output"].strip():
        return None
    user = record["instruction"] + (f"\n\n{extra}" if extra.strip() else "")
    system = record.get("system")
    return ([{"role": "system", "content": system}] if isinstance(system, str) and system.strip() else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]


def _convert(src, dst, to_messages: Callable[[object, str], list[dict] | None]) -> ConvertStats:
    dst = Path(dst)
    if dst.resolve() == Path(src).resolve():
        raise ValueError(f"output {dst} is the input file; choose another path")
    tmp = dst.with_name(dst.name + ".tmp")
    written = skipped = 0
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            for where, record in read_json_records(src):
                messages = to_messages(record, where)
                if messages is None:
                    skipped += 1
                    continue
                out.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
                written += 1
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return ConvertStats(written, skipped)


def sharegpt_to_jsonl(src: str | Path, dst: str | Path) -> ConvertStats:
    """ShareGPT JSON/JSONL -> SFT messages JSONL; trailing unanswered turns are cut, answerless records skipped."""
    return _convert(src, dst, sharegpt_messages)


def alpaca_to_jsonl(src: str | Path, dst: str | Path) -> ConvertStats:
    """Alpaca JSON/JSONL -> SFT messages JSONL (instruction + input as the user turn); empty outputs skipped."""
    return _convert(src, dst, alpaca_messages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llada_tts.data.convert",
        description="Convert ShareGPT or Alpaca data (JSON array or JSONL) to llada-tts SFT JSONL: one "
                    '{"messages": [{"role", "content"}, ...]} per line, ready for llada_tts.data.text.')
    parser.add_argument("format", choices=["sharegpt", "alpaca"], help="input format")
    parser.add_argument("input", help="input .json or .jsonl file")
    parser.add_argument("output", help="output .jsonl file (written atomically)")
    args = parser.parse_args(argv)
    fn = sharegpt_to_jsonl if args.format == "sharegpt" else alpaca_to_jsonl
    try:
        stats = fn(args.input, args.output)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {stats.written} conversations to {args.output}" +
          (f" ({stats.skipped} without an answer skipped)" if stats.skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
