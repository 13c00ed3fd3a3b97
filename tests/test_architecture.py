"""Data flows one way; these import rules keep it so (checked on the source, not by convention)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _files(*parts: str) -> list[Path]:
    return sorted((ROOT.joinpath(*parts)).rglob("*.py"))


def test_audio_tokenizer_never_imports_llada_tts():
    for f in _files("audio_tokenizer"):
        bad = {m for m in _imports(f) if m.split(".")[0] == "llada_tts"}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"


def test_diffusion_imports_only_torch():
    for f in _files("llada_tts", "diffusion"):
        bad = {m for m in _imports(f)
               if m.split(".")[0] not in STDLIB | {"torch", "llada_tts"}
               or (m.startswith("llada_tts") and not m.startswith("llada_tts.diffusion"))}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"


def test_only_training_imports_accelerate():
    for f in _files("llada_tts") + _files("audio_tokenizer"):
        if "training" in f.relative_to(ROOT).parts:
            continue
        bad = {m for m in _imports(f) if m.split(".")[0] == "accelerate"}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"


def test_lower_layers_do_not_reach_up():
    """model, diffusion, sampling and data never import the trainer, synthesis, cli or app."""
    upper = ("llada_tts.training", "llada_tts.synthesis", "llada_tts.cli", "app")
    for pkg in ("model", "diffusion", "sampling", "data"):
        for f in _files("llada_tts", pkg):
            bad = {m for m in _imports(f) if m.startswith(upper)}
            assert not bad, f"{f.relative_to(ROOT)} imports {bad}"
