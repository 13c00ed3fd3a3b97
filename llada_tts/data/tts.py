"""TTS training rows from a tokenised ``datasets`` dataset, validated before training starts.

Input: a ``save_to_disk`` folder (our ``audio_tokenizer`` build, or an Orpheus-tokenised dataset)
or a hub name, with columns ``input_ids`` and, when present, ``prompt_lengths``, ``attention_mask``
and ``data_type``. Orpheus datasets have no ``prompt_lengths``: the prompt is then everything up to
and including the first start_of_speech (128257). Output: a dataset of rows
``{"input_ids", "prompt_length", "kind": "tts"}`` (see :mod:`llada_tts.data.collate`).

Validation is vectorised over Arrow batches; the first problem raises ValueError naming the row
index and column.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from audio_tokenizer import layout
from audio_tokenizer.hub import load_hub_split, select_split

log = logging.getLogger(__name__)


def open_dataset(path_or_name: str | Path, split: str = "train"):
    """A ``datasets.Dataset`` from a ``save_to_disk`` folder or a hub name (one split)."""
    import datasets

    path = Path(path_or_name)
    if path.is_dir():
        return select_split(datasets.load_from_disk(str(path)), split, str(path_or_name))
    if path.exists() or str(path_or_name).startswith((".", "/", "~")):
        raise ValueError(f"{path_or_name}: not a dataset folder (expected a datasets.save_to_disk folder)")
    return load_hub_split(str(path_or_name), split)


def _first(flags: np.ndarray) -> int | None:
    hits = np.flatnonzero(flags)
    return int(hits[0]) if len(hits) else None


def check_ids(values: np.ndarray, parents: np.ndarray, starts: np.ndarray, row0: int, column: str) -> None:
    """Raise ValueError at the first id outside [0, VOCAB_SIZE) or equal to MASK_ID.

    values [N] flattened ids, parents [N] row of each id (batch-relative), starts [rows] offset of
    each row in ``values``; ``row0`` is the batch's first row index.
    """
    for flags, why in (((values < 0) | (values >= layout.VOCAB_SIZE), f"outside 0..{layout.VOCAB_SIZE - 1}"),
                       (values == layout.MASK_ID, f"the diffusion mask id {layout.MASK_ID}, which data must "
                                                  "never contain")):
        i = _first(flags)
        if i is not None:
            r = int(parents[i])
            raise ValueError(f"row {row0 + r}, column {column}, position {i - int(starts[r])}: id "
                             f"{int(values[i])} is {why}")


def _list_parts(table: pa.Table, column: str, row0: int):
    """(values [N], parents [N], lengths [rows], starts [rows]) of a list-of-int column."""
    arr = table.column(column).combine_chunks()
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) or not (
            pa.types.is_integer(arr.type.value_type)):
        raise ValueError(f"column {column} must hold lists of integers, got {arr.type}")
    if arr.null_count:
        raise ValueError(f"row {row0 + _first(arr.is_null().to_numpy(zero_copy_only=False))}, column {column}: "
                         "value is missing (null)")
    values = pc.list_flatten(arr)
    if values.null_count:
        raise ValueError(f"column {column} holds null ids")
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
    return values.to_numpy(zero_copy_only=False).astype(np.int64), parents, lengths, starts


def _prompt_lengths(table: pa.Table, values, parents, lengths, starts, row0: int) -> np.ndarray:
    """prompt_lengths [rows] from the column, or derived: index after the first start_of_speech."""
    if "prompt_lengths" in table.column_names:
        col = table.column("prompt_lengths").combine_chunks()
        if col.null_count:
            raise ValueError(f"row {row0 + _first(col.is_null().to_numpy(zero_copy_only=False))}, column "
                             "prompt_lengths: value is missing (null)")
        prompt, column = col.to_numpy(zero_copy_only=False).astype(np.int64), "prompt_lengths"
    else:
        prompt, column = np.full(len(lengths), -1, dtype=np.int64), "input_ids"
        hits = np.flatnonzero(values == layout.START_OF_SPEECH_ID)
        rows, first = np.unique(parents[hits], return_index=True)
        prompt[rows] = hits[first] - starts[rows] + 1
        r = _first(prompt < 0)
        if r is not None:
            raise ValueError(f"row {row0 + r}, column input_ids: no prompt_lengths column and no start_of_speech "
                             f"({layout.START_OF_SPEECH_ID}) to derive the prompt from")
    r = _first((prompt < 1) | (prompt >= lengths))
    if r is not None:
        raise ValueError(f"row {row0 + r}, column {column}: prompt length {int(prompt[r])} for a row of "
                         f"{int(lengths[r])} ids; it must leave a prompt and at least one audio token")
    return prompt


def _check_extras(table: pa.Table, lengths: np.ndarray, row0: int) -> None:
    """attention_mask (if present) all ones and as long as input_ids; data_type (if present) 'tts'."""
    if "attention_mask" in table.column_names:
        values, parents, mlen, starts = _list_parts(table, "attention_mask", row0)
        r = _first(mlen != lengths)
        if r is not None:
            raise ValueError(f"row {row0 + r}, column attention_mask: {int(mlen[r])} values for "
                             f"{int(lengths[r])} input_ids")
        i = _first(values != 1)
        if i is not None:
            raise ValueError(f"row {row0 + int(parents[i])}, column attention_mask, position "
                             f"{i - int(starts[parents[i]])}: 0; rows must be unpadded (batches are padded "
                             "when collated)")
    if "data_type" in table.column_names:
        col = table.column("data_type")
        other = pc.fill_null(pc.not_equal(col, "tts"), True).to_numpy(zero_copy_only=False)
        r = _first(other)
        if r is not None:
            raise ValueError(f"row {row0 + r}, column data_type: {col[r].as_py()!r}, expected 'tts' (load "
                             "text rows with llada_tts.data.text)")


def load_tts_rows(path_or_name, max_length: int, drop_long: bool = False, split: str = "train",
                  batch_size: int = 10_000, progress: bool = True):
    """Validated TTS rows ``{"input_ids", "prompt_length", "kind": "tts"}`` as a ``datasets.Dataset``.

    ``path_or_name``: a ``save_to_disk`` folder, a hub name or a ``datasets.Dataset``. Rows longer
    than ``max_length`` raise ValueError, or are dropped (and counted in a warning) with
    ``drop_long=True``. Raises ValueError naming the row and column for: a missing input_ids
    column, an empty dataset, empty rows, ids outside [0, VOCAB_SIZE), the mask id, bad
    prompt lengths, padded attention masks and non-TTS data_type.
    """
    import datasets

    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    ds = path_or_name if isinstance(path_or_name, datasets.Dataset) else open_dataset(path_or_name, split)
    if "input_ids" not in ds.column_names:
        raise ValueError(f"dataset has no column 'input_ids' (columns: {', '.join(ds.column_names)}); "
                         "build it with `python -m audio_tokenizer`")
    if len(ds) == 0:
        raise ValueError("dataset is empty: no rows to train on")
    prompts, keep = [], []
    batches = ds.with_format("arrow").iter(batch_size=batch_size)
    for b, table in enumerate(tqdm(batches, total=-(-len(ds) // batch_size), desc="validating TTS rows",
                                   disable=not progress or len(ds) <= batch_size)):
        row0 = b * batch_size
        values, parents, lengths, starts = _list_parts(table, "input_ids", row0)
        r = _first(lengths == 0)
        if r is not None:
            raise ValueError(f"row {row0 + r}, column input_ids: empty row")
        check_ids(values, parents, starts, row0, "input_ids")
        _check_extras(table, lengths, row0)
        prompts.append(_prompt_lengths(table, values, parents, lengths, starts, row0))
        r = _first(lengths > max_length)
        if r is not None and not drop_long:
            raise ValueError(f"row {row0 + r}, column input_ids: {int(lengths[r])} ids > max_length {max_length}; "
                             "raise max_length or pass drop_long=True to leave such rows out")
        keep.append(lengths <= max_length)
    if "prompt_lengths" not in ds.column_names:
        log.info("no prompt_lengths column: derived each prompt as everything up to the first start_of_speech")
    keep_all = np.concatenate(keep)
    out = ds.select_columns(["input_ids"])
    out = out.add_column("prompt_length", np.concatenate(prompts))
    out = out.add_column("kind", ["tts"] * len(out))
    dropped = int((~keep_all).sum())
    if dropped:
        if dropped == len(keep_all):
            raise ValueError(f"every row is longer than max_length {max_length}; raise max_length")
        log.warning("dropped %d of %d TTS rows longer than max_length %d", dropped, len(keep_all), max_length)
        out = out.select(np.flatnonzero(keep_all))
    return out
