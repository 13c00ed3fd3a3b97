"""Training on accelerate (the only package that imports it): config -> data -> model -> diffusion loss.

    from llada_tts.training import Trainer
    from llada_tts.training.config import load_config
    Trainer(load_config("recipes/configs/tiny_cpu.yaml")).train()

The names below are imported on first use, so ``llada_tts.training.config`` (YAML, no torch) loads
without the trainer's torch and accelerate.
"""
from __future__ import annotations

import importlib

_HOMES = {  # name -> module that defines it
    "TrainerState": "checkpoint", "find_latest": "checkpoint", "read_state": "checkpoint",
    "read_metrics": "logging",
    "StepOutput": "step", "diffusion_step": "step", "step_generator": "step",
    "NonFiniteLossError": "trainer", "Trainer": "trainer", "TrainResult": "trainer",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
