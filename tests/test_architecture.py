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


def test_only_training_and_the_dataset_build_import_accelerate():
    """accelerate is the one distributed layer: the trainers, and the multi-process tokeniser."""
    for f in _files("llada_tts") + _files("audio_tokenizer"):
        if "training" in f.relative_to(ROOT).parts or f == ROOT / "audio_tokenizer" / "build.py":
            continue
        bad = {m for m in _imports(f) if m.split(".")[0] == "accelerate"}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"


def test_lower_layers_do_not_reach_up():
    """model, diffusion, sampling and data never import the trainer, synthesis, cli or app."""
    upper = ("llada_tts.training", "llada_tts.synthesis", "llada_tts.cli", "llada_tts.app")
    for pkg in ("model", "diffusion", "sampling", "data"):
        for f in _files("llada_tts", pkg):
            bad = {m for m in _imports(f) if m.startswith(upper)}
            assert not bad, f"{f.relative_to(ROOT)} imports {bad}"


def test_app_calls_only_the_synthesis_api_and_only_it_imports_gradio():
    """The demo (llada_tts/app/, and its launcher app/app.py) uses the synthesis API; nothing else imports gradio."""
    app = ROOT / "llada_tts" / "app"
    allowed = ("llada_tts.synthesis", "llada_tts.commands.common", "llada_tts.app")
    for f in _files("llada_tts", "app") + _files("app"):
        bad = {m for m in _imports(f) if m.startswith("llada_tts") and not m.startswith(allowed)}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"
    for f in _files("llada_tts") + _files("audio_tokenizer"):
        if app in f.parents:
            continue
        bad = {m for m in _imports(f) if m.split(".")[0] == "gradio"}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad} (gradio belongs to llada_tts/app/)"


def test_cli_commands_never_import_the_sampler_or_trainer_internals():
    """Commands go through the synthesis API (and the recipes' own entry points), not around it."""
    banned = ("llada_tts.sampling", "llada_tts.diffusion", "llada_tts.training", "llada_tts.data")
    entry_points = ("llada_tts.training.cli",)  # `llada-tts train` = recipes/tts_train.py's command line
    for f in [ROOT / "llada_tts" / "cli.py", *_files("llada_tts", "commands")]:
        bad = {m for m in _imports(f) if m.startswith(banned) and m not in entry_points}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"
