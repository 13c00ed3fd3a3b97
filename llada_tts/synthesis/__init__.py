"""Text -> speech: ``LladaTTS`` (pipeline), the text front end, chunk joining, errors.

    from llada_tts.synthesis import LladaTTS
    tts = LladaTTS.from_pretrained("path/to/checkpoint")
    wav, sr = tts.synthesize("Hello there.", voice="tara", seed=0)
"""
from llada_tts.synthesis.errors import NoAudioError, SynthesisError

__all__ = ["ChunkInfo", "LladaTTS", "NoAudioError", "SynthesisError", "SynthesisResult"]


def __getattr__(name):  # the pipeline pulls in torch/transformers: import it on first use only
    if name in ("LladaTTS", "SynthesisResult", "ChunkInfo"):
        from llada_tts.synthesis import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
