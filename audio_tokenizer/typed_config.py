"""Typed run configs: a dataclass whose fields carry ``help`` metadata, loaded from flat YAML with
``--key value`` overrides. Unknown keys stop the run with the nearest valid key; values are coerced
to the field's type with an error naming the key. The CLI ``--help``, the sample YAML and the docs
all come from the same field metadata.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import typing
from collections.abc import Callable
from dataclasses import field
from pathlib import Path

import yaml


def option(default, help: str, section: str = "run"):
    """A dataclass field with its help text (and section, for grouping in YAML)."""
    return field(default=default, metadata={"help": help, "section": section})


def coerce(cls, key: str, value, where: str = "config"):
    """``value`` (from YAML or the command line) as the type of ``cls.key``; ValueError naming the key."""
    return coerce_to(typing.get_type_hints(cls)[key], key, value, where)


def coerce_to(typ, key: str, value, where: str = "config", join_lists: bool = False):
    """``value`` as type ``typ`` (bool, int, float, str, or Optional of one); ValueError naming ``key``.

    Booleans read true/false/1/0/yes/no/on/off; ints refuse fractions (1e3 is 1000); floats must be
    finite; null/none/~ is None where the type allows it. ``join_lists``: a YAML list for a string
    key becomes comma-separated text (``report_to: [tensorboard, wandb]``); else lists are refused."""
    args = typing.get_args(typ)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), typ) if args else typ
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("null", "none", "~")):
        if optional:
            return None
        raise ValueError(f"{key} in {where} cannot be empty (null)")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if base is float:
            if isinstance(value, bool) or not math.isfinite(float(value)):
                raise ValueError  # inf / nan are never a setting
            return float(value)
        if join_lists and isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        if isinstance(value, (list, tuple, dict)):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        name = getattr(base, "__name__", str(base))
        if name == "float":
            raise ValueError(f"{key} in {where} must be a finite number, got {value!r}") from None
        raise ValueError(f"{key} in {where} must be {'an' if name[0] in 'aeiou' else 'a'} {name}, "
                         f"got {value!r}") from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises ValueError (one line) instead of printing usage and exiting."""

    def error(self, message: str):
        raise ValueError(message)


def unknown_key(key: str, keys: list[str], where: str) -> ValueError:
    """The error for a key not in ``keys``, naming the nearest one and listing them all."""
    near = difflib.get_close_matches(key, keys, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ValueError(f"unknown config key {key!r} in {where}{hint}. Valid keys: {', '.join(keys)}")


def parse_overrides(argv: list[str], keys: list[str],
                    unknown: Callable[[str, str], Exception] | None = None) -> dict[str, str]:
    """``--key value`` / ``--key=value`` pairs (``--key-name`` = ``--key_name``; a bare ``--key`` means true)
    -> {key: raw string}, parsed by argparse with one option per name in ``keys``. An unknown ``--name``
    raises ``unknown(name, where)`` (default: :func:`unknown_key`, naming the nearest key), any other
    word "expected --key value"."""
    parser = ArgumentParser(add_help=False, allow_abbrev=False)
    for key in keys:
        flags = dict.fromkeys((f"--{key}", f"--{key.replace('_', '-')}"))
        parser.add_argument(*flags, dest=key, nargs="?", const="true", default=argparse.SUPPRESS)
    given, rest = parser.parse_known_args(argv)
    if rest:
        word = rest[0]
        if not word.startswith("--") or word == "--":
            raise ValueError(f"expected --key value, got {word!r}")
        name = word[2:].split("=", 1)[0].replace("-", "_")
        raise unknown(name, "the command line") if unknown else unknown_key(name, list(keys), "the command line")
    return vars(given)


def read_yaml(path: str | Path) -> dict:
    """The key -> value mapping of a flat YAML/JSON file; ValueError if missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML/JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    return data


def build(cls, sources: list[tuple[str, dict]]):
    """``cls(**merged)`` from (where, raw mapping) sources in order; unknown keys are refused."""
    keys = [f.name for f in dataclasses.fields(cls)]
    merged = {}
    for where, raw in sources:
        for key, value in raw.items():
            key = str(key)
            if key not in keys:
                raise unknown_key(key, keys, where)
            merged[key] = coerce(cls, key, value, where)
    return cls(**merged)


def load(cls, path: str | Path | None = None, overrides: list[str] | dict | None = None):
    """``cls`` from a YAML file (None = defaults) plus ``--key value`` overrides."""
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides, [f.name for f in dataclasses.fields(cls)])
    sources = [(str(path), read_yaml(path))] if path is not None else []
    return build(cls, sources + [("the command line", overrides or {})])


def to_yaml(cfg, comments: bool = True, header: str = "") -> str:
    """YAML text of a config dataclass, grouped by section, each key with its help as a comment."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    section = None
    for f in dataclasses.fields(cfg):
        if comments and f.metadata.get("section") != section:
            section = f.metadata.get("section")
            lines += ["", f"# --- {section} ---"]
        if comments:
            lines.append(f"# {f.metadata['help']}")
        value = yaml.safe_dump(getattr(cfg, f.name), default_flow_style=True, width=10**6)
        lines.append(f"{f.name}: {value.strip().removesuffix('...').strip()}")
    return "\n".join(lines).lstrip("\n") + "\n"


def help_text(cls) -> str:
    """One line per key: name, default, help (for ``--help``)."""
    return "\n".join(f"  --{f.name} (default {f.default!r}): {f.metadata['help']}" for f in dataclasses.fields(cls))
