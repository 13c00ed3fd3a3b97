"""Training on accelerate (the only package that imports it): config -> data -> model -> diffusion loss.

    from llada_tts.config import load_config
    from llada_tts.training import Trainer
    Trainer(load_config("recipes/configs/tiny_cpu.yaml")).train()
"""
from llada_tts.training.checkpoint import TrainerState, find_latest, read_state
from llada_tts.training.logging import read_metrics
from llada_tts.training.step import StepOutput, diffusion_step, step_generator
from llada_tts.training.trainer import NonFiniteLossError, Trainer, TrainResult

__all__ = ["NonFiniteLossError", "StepOutput", "Trainer", "TrainResult", "TrainerState", "diffusion_step",
           "find_latest", "read_metrics", "read_state", "step_generator"]
