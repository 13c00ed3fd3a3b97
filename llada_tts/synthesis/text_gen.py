"""Text generation with a text checkpoint (recipes/pretrain.py, recipes/sft.py): the API ``llada-tts generate`` uses.

    options = text_options({"method": "fixed_length", "gen_length": 64})   # validated, defaults filled
    ids = text_prompt_ids(tokenizer, "The capital of France is")          # or messages=[{"role", "content"}]
    result = generate_text(model, tokenizer, ids, options, generator=text_generator(model, seed=0),
                           on_block=lambda piece: print(piece, end="", flush=True))
    result.text, result.ids

``text_options`` checks a request's options (the rows of ``defaults.TEXT_SAMPLER_OPTIONS``; gen_length
at most ``MAX_GEN_LENGTH``) and fills LLaDA's defaults (128 tokens, 128 steps, blocks of 32, greedy),
before any model is loaded. ``generate_text`` owns the rest: the sampler settings (stop at end of
text / end of turn, ``stop_ids``), the check that prompt + answer fit the model's context, the cut
of the answer at its first stop id (never mask, fill or control tokens) and the block-by-block
streaming of the semi-autoregressive methods. Errors are ``SynthesisError`` (one line).
Importing this module does not import torch (the CLI builds its parser from it).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from llada_tts.synthesis.defaults import (
    DEFAULT_GEN_LENGTH,
    DEFAULT_TEXT_BLOCK_LENGTH,
    TEXT_SAMPLER_OPTIONS,
    check_text_sampler_options,
)
from llada_tts.synthesis.errors import SynthesisError

# Ids that end a text answer: <|eot_id|> (end of text / end of turn), Llama-3's <|end_of_text|>, and the
# speech layout's stream ends (a text model that wanders into them has stopped writing text).
LLAMA3_END_OF_TEXT_ID = 128001
TEXT_OPTION_NAMES = tuple(o.name for o in TEXT_SAMPLER_OPTIONS)


def text_stop_ids() -> tuple[int, ...]:
    """The ids that end a text answer (the first one cuts it)."""
    from audio_tokenizer import layout as L

    return tuple(dict.fromkeys((L.END_OF_TEXT_ID, LLAMA3_END_OF_TEXT_ID, *L.STREAM_END_IDS)))


# --- options --------------------------------------------------------------------------------------

def text_options(options: Mapping | None = None) -> dict:
    """A text request's sampler options, validated and with the defaults filled in: a dict of the
    ``TEXT_SAMPLER_OPTIONS`` names (method, gen_length, steps, block_length, temperature, cfg_scale,
    remasking, cache, and threshold when given). Steps default to gen_length (one token per step);
    fixed_length decodes the whole answer as one block. Idempotent. Raises SynthesisError naming the
    option (``gen_length``, ``block_length``, ``steps``) and the fix."""
    given = {k: v for k, v in (options or {}).items() if v is not None}
    kwargs = check_text_sampler_options(given)  # unknown keys, types, ranges, gen_length <= MAX_GEN_LENGTH
    out = {k: kwargs[k] for k in TEXT_OPTION_NAMES if k in kwargs}  # normalised (3.0 -> 3)
    out.setdefault("method", "semi_autoregressive_padding")
    out.setdefault("gen_length", DEFAULT_GEN_LENGTH)
    out.setdefault("block_length", min(DEFAULT_TEXT_BLOCK_LENGTH, out["gen_length"]))
    out.setdefault("steps", out["gen_length"])
    out.setdefault("temperature", 0.0)
    out.setdefault("cfg_scale", 0.0)
    out.setdefault("remasking", "low_confidence")
    out["cache"] = given.get("cache", "none")
    if out["method"] == "fixed_length":
        out["block_length"] = out["gen_length"]  # one block: the whole answer
    _sampler_config(out)  # the combination rules (divisibility ...), before any model is loaded
    return out


def _sampler_config(options: dict):
    """The sampler's ``SamplerConfig`` of validated ``options`` (ValueError -> SynthesisError)."""
    from llada_tts.sampling import SamplerConfig

    kwargs = check_text_sampler_options(options)
    config = SamplerConfig(**kwargs, stop_ids=text_stop_ids(), stop_at_end=True, seed=None)
    try:
        return config.validate()
    except ValueError as e:
        raise SynthesisError(str(e)) from None


def text_generator(model, seed: int | None):
    """A ``torch.Generator`` on the model's device seeded with ``seed`` (None: None, torch's global RNG)."""
    if seed is None:
        return None
    import torch

    from llada_tts.synthesis.defaults import check_seed

    return torch.Generator(device=next(model.parameters()).device).manual_seed(check_seed(seed))


# --- prompts and answers --------------------------------------------------------------------------

def text_prompt_ids(tokenizer, text: str | None = None, messages: list[dict] | None = None) -> list[int]:
    """Plain text: BOS + the text (special-token strings split like text, as in training). Messages
    (``[{"role", "content"}]``): the chat template with the assistant header appended (SynthesisError
    when the tokenizer has no chat template)."""
    from audio_tokenizer.text import encode_text

    if messages is None:
        return encode_text(tokenizer, text)
    if not getattr(tokenizer, "chat_template", None):
        raise SynthesisError("a chat needs a chat template, and this checkpoint's tokenizer has none")
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=True)
    return list(out["input_ids"])


def model_context(model) -> int | None:
    """The model's context in tokens (``max_position_embeddings``; None when it records none)."""
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def answer_ids(generated, stop_ids) -> list[int]:
    """The generated ids up to (not including) the first stop id."""
    out = []
    for t in generated:
        if int(t) in stop_ids:
            break
        out.append(int(t))
    return out


def answer_text(tokenizer, ids) -> str:
    """Decoded answer ids, special tokens (mask, fill, control) left out, spaces as generated."""
    return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


@dataclass
class TextResult:
    """What ``generate_text`` returns: the answer ``text`` and its ``ids`` (cut before the first stop
    id), whether it ``stopped`` there (False: it ran to gen_length), and the sampler's forward passes."""

    text: str
    ids: list[int]
    stopped: bool
    nfe: int


class _BlockStreamer:
    """Calls ``on_block(piece)`` as blocks finish: after each sampler step, the text of every block left
    of the first masked position (cut at the first stop id) that was not given yet."""

    def __init__(self, tokenizer, prompt_length: int, config, on_block: Callable[[str], object]):
        self.tokenizer, self.P, self.config, self.on_block = tokenizer, prompt_length, config, on_block
        self.stop = set(config.stop_ids)
        self.given = ""
        self.done = False

    def _emit(self, text: str, final: bool) -> None:
        if not final:
            text = text.rstrip("\ufffd")  # a character split over blocks: wait for its other bytes
        if text.startswith(self.given) and len(text) > len(self.given):
            piece, self.given = text[len(self.given):], text
            self.on_block(piece)

    def on_step(self, x) -> None:
        if self.done or self.config.method == "fixed_length":
            return
        gen = x[0, self.P:]
        masked = (gen == self.config.mask_id).nonzero()
        first_mask = int(masked[0]) if len(masked) else gen.numel()
        ready = first_mask // self.config.block_length * self.config.block_length
        ids = gen[:ready].tolist()
        cut = answer_ids(ids, self.stop)
        self.done = len(cut) < len(ids)
        self._emit(answer_text(self.tokenizer, cut), final=False)

    def finish(self, text: str) -> None:
        self._emit(text, final=True)
        if not text.startswith(self.given):  # cannot happen with a prefix-stable decoder; never lose text
            self.on_block("\n" + text)


def generate_text(model, tokenizer, prompt_ids, options: Mapping | None = None, *, generator=None,
                  on_block: Callable[[str], object] | None = None) -> TextResult:
    """The answer to ``prompt_ids`` (a list of ids, e.g. from ``text_prompt_ids``) with ``options``
    (``text_options``' names; validated here again), cut at the first end of text / end of turn.

    on_block(piece): called with each newly finished piece of the answer as the semi-autoregressive
    methods finish blocks (fixed_length: once, at the end); the pieces join to ``result.text`` (with a
    prefix-stable tokenizer; otherwise a last piece of "\\n" + the whole text, so nothing is lost).
    generator: the source of the random draws (``text_generator(model, seed)``); the same prompt,
    options and seed give the same answer. SynthesisError when prompt + gen_length exceed the model's
    context (or ``MAX_GEN_LENGTH``), or the prompt is empty."""
    from llada_tts.sampling import sample

    options = text_options(options)
    config = _sampler_config(options)
    ids = [int(t) for t in prompt_ids]
    if not ids:
        raise SynthesisError("the prompt is empty: give at least one token (plain text starts with BOS)")
    context = model_context(model)
    if context is not None and len(ids) + config.gen_length > context:
        raise SynthesisError(f"the prompt is {len(ids)} tokens; with gen_length {config.gen_length} that is "
                             f"{len(ids) + config.gen_length} > the model's context of {context} tokens")
    streamer = _BlockStreamer(tokenizer, len(ids), config, on_block) if on_block is not None else None
    result = sample(model, ids, config, generator=generator, on_step=streamer.on_step if streamer else None)
    generated = result.generated[0].tolist()
    cut = answer_ids(generated, set(config.stop_ids))
    text = answer_text(tokenizer, cut)
    if streamer is not None:
        streamer.finish(text)
    return TextResult(text=text, ids=cut, stopped=len(cut) < len(generated), nfe=result.nfe)
