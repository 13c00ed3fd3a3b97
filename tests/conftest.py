"""Shared fixtures: tiny real objects built offline (no hub, no network)."""
from __future__ import annotations

import os

import pytest
import torch

# One thread per pytest-xdist worker (the suite runs on 2 workers: python -m pytest -n 2), else up to two.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def offline_tokenizer():
    """Byte-level tokenizer with the exact Llama-3 + Orpheus + mask id layout."""
    from llada_tts.vocab import build_offline_tokenizer

    return build_offline_tokenizer()


@pytest.fixture(scope="session")
def offline_tokenizer_dir(tmp_path_factory, offline_tokenizer):
    d = tmp_path_factory.mktemp("tokenizer")
    offline_tokenizer.save_pretrained(d)
    return d


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
