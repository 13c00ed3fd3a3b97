"""Benchmark scripts, each run as ``python benchmarks/NAME.py`` (see its docstring); ``benchmarks.learning``
holds the learning benchmark's measurements, shared by ``learn_tts.py``, ``mixed_batching.py`` and the tests."""
