"""Sampler speed: LLaDA reference vs threshold parallel decoding (+ block KV cache) vs an
autoregressive baseline, generating the same number of audio tokens with the same model size.

    python benchmarks/sampling.py                      # 10 s of audio (117 frames = 819 tokens), CPU
    python benchmarks/sampling.py --seconds 5          # quicker
    python benchmarks/sampling.py --peaks 1 50 100     # which logit scales to run threshold rows on

Rows (all audio-constrained, so every output is a whole number of valid SNAC frames):
  reference      LLaDA low_confidence, semi-AR blocks of --block-frames frames, steps ~ tokens/2
  threshold      Fast-dLLM: commit every masked token with confidence >= tau (at least one a step)
  + prefix/dual  the same with the block KV cache (prompt + committed blocks; dual: + masked suffix)
  >= schedule    threshold_floor="schedule": also never fewer than the reference's linear schedule
  AR baseline    a causal LlamaForCausalLM of the same size, HF generate() with KV cache, greedy,
                 with the same slot constraints as a logits processor

The models are randomly initialised (no trained checkpoint exists offline). A random model is
unsure (every confidence << 0.9), so threshold decoding commits one token per step there: that row
shows the worst case. "peak" multiplies the final RMSNorm weight, i.e. scales every logit, giving a
confident model whose argmax is unchanged: it shows what the threshold does when predictions are
peaked, not what a trained TTS model will achieve. The reference's and AR baseline's costs do not
depend on the weights (fixed step counts and shapes), so they run once, on the first peak.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch
from transformers import LlamaForCausalLM, LogitsProcessor, LogitsProcessorList

from audio_tokenizer import layout as L
from llada_tts.model import config_for_size, create_model
from llada_tts.sampling import SamplerConfig, sample
from llada_tts.sampling.constraints import allowed_ids

TEXT = "tara: The quick brown fox jumps over the lazy dog, and then it runs far away into the woods."


class AudioSlotProcessor(LogitsProcessor):
    """Autoregressive version of the sampler's audio constraints (slot bands, ends at frame starts)."""

    def __init__(self, prompt_length: int):
        self.prompt_length = prompt_length
        self.tables = {(s, e): allowed_ids(s, e) for s in range(7) for e in (False, True)}  # [V] bool
        self.ends = torch.tensor(L.STREAM_END_IDS)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        gen = input_ids[:, self.prompt_length:]  # [B, t]
        after_end = torch.isin(gen, self.ends).any(dim=1)
        out = scores.clone()
        for j in range(scores.shape[0]):
            allowed = self.tables[(gen.shape[1] % 7, bool(after_end[j]))][: scores.shape[1]]
            out[j, ~allowed] = -torch.inf
        return out


def _timed(fn, runs: int):
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def _valid(gen: torch.Tensor) -> str:
    r = L.validate_audio_tokens(gen)
    return f"{r.frames_kept}/{r.frames_total}" + ("" if r.ok else " BAD")


def _row(name, nfe, secs, tokens, ref_secs, valid, agree="") -> dict:
    return dict(sampler=name, nfe=nfe, wall=f"{secs:.1f}", tok_s=f"{tokens / secs:.1f}",
                speedup=f"{ref_secs / secs:.1f}x" if ref_secs else "1.0x", valid=valid, agree=agree)


def _print(rows: list[dict]) -> None:
    head = ["sampler", "NFE (cached)", "wall s", "tokens/s", "vs reference", "valid frames", "tokens = no-cache"]
    keys = ["sampler", "nfe", "wall", "tok_s", "speedup", "valid", "agree"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")


def _prompt() -> list[int]:
    from llada_tts.vocab import build_offline_tokenizer, encode_text

    return L.tts_prompt_ids(encode_text(build_offline_tokenizer(), TEXT))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="audio to generate (default 10 -> 117 frames)")
    p.add_argument("--layers", type=int, default=4, help="decoder layers of the 'small' size (default 4)")
    p.add_argument("--block-frames", type=int, default=9, help="frames per semi-AR block (default 9 = 63 tokens)")
    p.add_argument("--threshold", type=float, default=0.9, help="confidence threshold tau (default 0.9)")
    p.add_argument("--peaks", type=float, nargs="+", default=[100.0, 50.0, 1.0],
                   help="logit scales for the threshold rows; the first also runs reference + AR "
                        "(default 100 50 1; 1 = the raw random model)")
    p.add_argument("--runs", type=int, default=1, help="timed runs per row, median reported (default 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a shared CPU, 2 threads contending with other work "
                        "were up to 7x slower per step)")
    a = p.parse_args(argv)
    if a.seconds <= 0 or a.layers < 1 or a.block_frames < 1 or a.runs < 1 or not 0 < a.threshold <= 1:
        p.error("--seconds, --layers, --block-frames, --runs must be positive and --threshold in (0, 1]")
    torch.set_num_threads(a.threads)

    blocks = max(1, int(a.seconds * L.FRAMES_PER_SECOND) // a.block_frames)
    block = 7 * a.block_frames
    gen = blocks * block
    steps = blocks * -(-block // 2)  # ~ tokens / 2, divisible by the number of blocks
    prompt = _prompt()
    cfg = config_for_size("small", num_hidden_layers=a.layers)
    model = create_model(cfg, seed=0).eval()
    norm = model.model.norm.weight.detach().clone()
    print(f"# {gen} audio tokens ({gen // 7} frames, {gen / L.TOKENS_PER_SECOND:.2f} s) after a {len(prompt)}-token "
          f"prompt; model: hidden {cfg.hidden_size}, {a.layers} layers, vocab {cfg.vocab_size}; "
          f"blocks of {block} tokens; {a.threads} CPU threads; {a.runs} run(s), median\n")
    base = dict(method="semi_autoregressive_padding", gen_length=gen, block_length=block, audio=True)
    sample(model, prompt, SamplerConfig(**{**base, "gen_length": block, "steps": 2}))  # warm-up
    rows, ref_secs = [], None
    for n, peak in enumerate(a.peaks):
        with torch.no_grad():
            model.model.norm.weight.copy_(norm * peak)
        tag = f"[peak {peak:g}]"
        if n == 0:
            res, ref_secs = _timed(lambda: sample(model, prompt, SamplerConfig(steps=steps, **base)), a.runs)
            rows.append(_row(f"reference low_confidence, {steps} steps {tag}", res.nfe, ref_secs, gen, None,
                             _valid(res.generated[0])))
            x = res.sequences
            with torch.no_grad():
                _, fwd = _timed(lambda: model(x).logits[:, -1].sum(), 1)  # noqa: B023  _timed calls it at once
            official_note = (f"official-loop forward (whole canvas, full {cfg.vocab_size}-way head at every "
                             f"position): {fwd:.2f} s -> x{steps} steps ~ {fwd * steps:.0f} s (extrapolated, not run)")
        thr = dict(steps=gen, threshold=a.threshold, **base)
        plain = None
        if peak != 1.0:  # an unsure model takes one step per token: uncached/prefix rows take minutes
            plain, secs = _timed(functools.partial(sample, model, prompt, SamplerConfig(**thr)), a.runs)
            rows.append(_row(f"threshold {a.threshold} {tag}", plain.nfe, secs, gen, ref_secs,
                             _valid(plain.generated[0])))
        variants = [("prefix", "one"), ("dual", "one"), ("dual", "schedule")]
        for mode, floor in variants if plain is not None else variants[1:]:
            config = SamplerConfig(use_cache=True, cache_mode=mode, threshold_floor=floor,
                                   **{**thr, "steps": steps if floor == "schedule" else gen})
            res, secs = _timed(functools.partial(sample, model, prompt, config), a.runs)
            agree = ("" if plain is None or floor != "one"
                     else f"{(res.generated == plain.generated).float().mean():.0%}")
            name = f"threshold {a.threshold}" + (f" (>= schedule of {steps} steps)" if floor == "schedule" else "")
            rows.append(_row(f"{name} + {mode} cache {tag}", f"{res.nfe} ({res.nfe_cached})", secs,
                             gen, ref_secs, _valid(res.generated[0]), agree))
        if n == 0:
            causal = config_for_size("small", num_hidden_layers=a.layers, is_causal=True)
            torch.manual_seed(0)
            ar = LlamaForCausalLM(causal).eval()
            ids = torch.tensor([prompt])
            proc = LogitsProcessorList([AudioSlotProcessor(len(prompt))])
            with torch.no_grad():
                out, secs = _timed(functools.partial(ar.generate, ids, attention_mask=torch.ones_like(ids),
                                                     max_new_tokens=gen, min_new_tokens=gen, do_sample=False,
                                                     use_cache=True, logits_processor=proc, pad_token_id=L.PAD_ID),
                                   a.runs)
            rows.append(_row("autoregressive + KV cache (causal, same size)", gen, secs, gen, ref_secs,
                             _valid(out[0, len(prompt):])))
    _print(rows)
    print(f"\n{official_note}")
    print("NFE = model forward passes per sample (cached: passes over the block/suffix only); "
          "valid frames = whole in-band frames before the first stream-end / frames in the region.")


if __name__ == "__main__":
    main()
