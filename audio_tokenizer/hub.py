"""Local folder or Hugging Face hub id? (one rule for models, codecs, voices and datasets), and hub
``datasets`` inputs: one split of a hub dataset or a ``save_to_disk`` folder."""
from __future__ import annotations

import re
from pathlib import Path

from audio_tokenizer.errors import first_line

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # "name" or "org/name"


def looks_like_hub_id(name: str) -> bool:
    """True for a hub id ("org/name"); False for anything path-shaped or existing on disk."""
    return not (Path(name).expanduser().exists() or name.startswith(("/", ".", "~")) or "\\" in name
                or not HUB_ID.match(name))


def local_folder(name: str, required: str, what: str) -> Path | None:
    """The local folder ``name`` names, checked to hold the file ``required``; None when ``name`` is a
    hub id (the caller fetches it). One-line ``FileNotFoundError`` naming ``what`` (e.g. "codec folder")
    for a missing folder, a file, or a folder without ``required``."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / required).is_file():
            raise FileNotFoundError(f"{what} {path} has no {required}")
        return path
    if path.exists():
        raise FileNotFoundError(f"{path} is a file, not a {what}; pass the folder holding {required}")
    if looks_like_hub_id(name):
        return None
    raise FileNotFoundError(f"no {what} at {path} (it does not exist)")


def select_split(ds, split: str, source: str):
    """``ds[split]`` for a DatasetDict (ValueError naming the splits), ``ds`` itself otherwise."""
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(f"{source}: no split {split!r} (splits: {', '.join(ds)}); pass --split")
        return ds[split]
    return ds


def load_hub_split(name: str, split: str):
    """One split of a hub dataset; any loading failure (offline, unknown name) is one ValueError line."""
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # noqa: BLE001  (offline, unknown name, bad config: all unusable input)
        raise ValueError(f"{name!r} is not a local folder and could not be loaded as a Hugging Face "
                         f"dataset: {first_line(e)}") from e
    return select_split(ds, split, name)
