"""The bottom layer's shared rules: atomic folders and "local folder or hub id?"."""
from __future__ import annotations

import pytest

from audio_tokenizer.fileio import atomic_dir
from audio_tokenizer.hub import local_folder


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_atomic_dir_swaps_the_whole_folder_in(tmp_path):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "old.txt").write_text("old")
    with atomic_dir(dst) as tmp:
        assert tmp.parent == tmp_path and tmp != dst
        (tmp / "a.txt").write_text("new")
        assert _tree(dst) == {"old.txt": "old"}  # readers still see the previous folder
    assert _tree(dst) == {"a.txt": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or parked folder left


def test_atomic_dir_failure_leaves_the_previous_folder_and_no_temp(tmp_path):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(dst) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert _tree(dst) == {"old.txt": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_refusals(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        with atomic_dir(tmp_path / "file"):
            pass
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not empty"):
        with atomic_dir(tmp_path / "full", overwrite=False):
            pass
    assert _tree(tmp_path / "full") == {"keep.txt": "keep"}
    with atomic_dir(tmp_path / "new" / "deep", overwrite=False) as tmp:  # parents are made
        (tmp / "x").write_text("1")
    assert _tree(tmp_path / "new" / "deep") == {"x": "1"}


def test_local_folder_or_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tmp_path = tmp_path.resolve()
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    assert local_folder(str(tmp_path / "ckpt"), "config.json", "model directory") == tmp_path / "ckpt"
    assert local_folder("ckpt", "config.json", "model directory").resolve() == tmp_path / "ckpt"  # local wins
    assert local_folder("org/name", "config.json", "model directory") is None  # a hub id
    with pytest.raises(FileNotFoundError, match=r"^no codec folder at .*missing \(it does not exist\)$"):
        local_folder(str(tmp_path / "missing"), "config.json", "codec folder")
    with pytest.raises(FileNotFoundError, match=r"^no codec folder at missing \(it does not exist\)$"):
        local_folder("./missing", "config.json", "codec folder")  # path-shaped: never a hub id
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"^model directory .*empty has no config\.json$"):
        local_folder(str(tmp_path / "empty"), "config.json", "model directory")
    with pytest.raises(FileNotFoundError, match="is a file, not a codec folder"):
        local_folder(str(tmp_path / "ckpt" / "config.json"), "config.json", "codec folder")


def test_a_failed_rename_puts_the_previous_folder_back(tmp_path, monkeypatch):
    from audio_tokenizer import fileio

    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "old.txt").write_text("old")
    real, calls = fileio.os.replace, []

    def second_fails(src, target):
        calls.append(target)
        if len(calls) == 2:  # parking the old folder worked; renaming the new one in fails
            raise OSError("cross-device link")
        real(src, target)

    monkeypatch.setattr(fileio.os, "replace", second_fails)
    with pytest.raises(OSError, match="cross-device"):
        with atomic_dir(dst) as tmp:
            (tmp / "new.txt").write_text("new")
    assert _tree(dst) == {"old.txt": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
