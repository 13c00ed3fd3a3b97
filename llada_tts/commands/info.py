"""``llada-tts info``: what a checkpoint, its codec and the token layout are."""
from __future__ import annotations

import argparse
import json

from llada_tts.commands.common import add_model_arguments, load_tts

HELP = "describe a checkpoint, its codec and the token layout"
DESCRIPTION = """Load a checkpoint and its codec and print what they are: parameters, layers, vocabulary,
attention (bidirectional: is_causal false), dtype, voices, speaking rate and prompt front end
(text, or espeak-ipa: prompts are eSpeak NG phonemes, applied automatically); the codec's source,
sample rate and levels; the token layout (mask id, audio offset, frame size, tokens per second).

examples:
  llada-tts info --model path/to/checkpoint
  llada-tts info --model path/to/checkpoint --codec path/to/snac --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_model_arguments(p)


def describe(tts) -> dict:
    """Everything ``info`` reports, as plain JSON-able values."""
    from audio_tokenizer import layout as L
    from llada_tts.model import count_parameters

    cfg = tts.model.config
    counts = count_parameters(tts.model)
    codec_cfg = tts.codec.config
    strides = list(codec_cfg["vq_strides"])
    hop = tts.codec.samples_per_frame // strides[0]
    return {
        "checkpoint": {
            "source": tts.source,
            "parameters": counts["total"], "non_embedding_parameters": counts["non_embedding"],
            "layers": cfg.num_hidden_layers, "hidden_size": cfg.hidden_size,
            "attention_heads": cfg.num_attention_heads, "kv_heads": cfg.num_key_value_heads,
            "vocab_size": tts.model.get_input_embeddings().weight.shape[0],
            "tokenizer_size": len(tts.tokenizer),
            "is_causal": bool(getattr(cfg, "is_causal", True)),
            "dtype": str(next(tts.model.parameters()).dtype).removeprefix("torch."),
            "voices": tts.voices,
            "chars_per_second": tts.meta.chars_per_second,
            "front_end": tts.meta.front_end,
            "sampler_defaults": dict(tts.meta.sampler),
        },
        "codec": {
            "source": tts.codec_source, "sample_rate": tts.codec.sample_rate,
            "levels": len(strides),
            "level_rates_hz": [round(tts.codec.sample_rate / (hop * s), 3) for s in strides],
            "codebook_size": codec_cfg["codebook_size"],
            "parameters": sum(p.numel() for p in tts.codec.model.parameters()),
        },
        "layout": {
            "mask_id": L.MASK_ID, "audio_offset": L.AUDIO_OFFSET, "audio_end": L.AUDIO_END,
            "start_of_speech": L.START_OF_SPEECH_ID, "end_of_speech": L.END_OF_SPEECH_ID,
            "tokens_per_frame": L.SLOTS_PER_FRAME, "samples_per_frame": L.SAMPLES_PER_FRAME,
            "frames_per_second": L.FRAMES_PER_SECOND, "tokens_per_second": round(L.TOKENS_PER_SECOND, 3),
        },
        "device": str(tts.device),
    }


_FRONT_END_NOTES = {"text": "text (prompts are the text itself)",
                    "espeak-ipa": "espeak-ipa (prompts are eSpeak NG IPA phonemes of the text)",
                    "espeak-frames": "espeak-frames (prompts hold one eSpeak NG phoneme per audio frame; "
                                     "speech lasts as long as eSpeak's)",
                    "espeak-quarters": "espeak-quarters (prompts hold one eSpeak NG phoneme per quarter frame; "
                                       "speech lasts as long as eSpeak's)"}


def _human(n: int) -> str:
    for unit, size in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def run(args: argparse.Namespace) -> int:
    info = describe(load_tts(args))
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    c, k, lay = info["checkpoint"], info["codec"], info["layout"]
    voices = ", ".join(c["voices"]) if c["voices"] else "none recorded"
    cps = f"{c['chars_per_second']:g} chars/s" if c["chars_per_second"] else "not recorded (default 14 chars/s)"
    print(f"checkpoint  {c['source']}\n"
          f"  parameters    {_human(c['parameters'])} ({_human(c['non_embedding_parameters'])} non-embedding)\n"
          f"  layers        {c['layers']} x hidden {c['hidden_size']}, {c['attention_heads']} heads "
          f"({c['kv_heads']} kv)\n"
          f"  vocabulary    {c['vocab_size']} rows (tokenizer {c['tokenizer_size']})\n"
          f"  is_causal     {str(c['is_causal']).lower()} "
          f"({'causal' if c['is_causal'] else 'bidirectional'} attention)\n"
          f"  dtype         {c['dtype']}\n"
          f"  voices        {voices}\n"
          f"  speaking rate {cps}\n"
          f"  front end     {_FRONT_END_NOTES.get(c['front_end'], c['front_end'])}\n"
          f"  sampler       {', '.join(f'{k}={v}' for k, v in c['sampler_defaults'].items()) or 'global defaults'}\n"
          f"codec       {k['source']}\n"
          f"  sample rate   {k['sample_rate']} Hz, {k['levels']} levels at "
          f"{' / '.join(f'{r:g}' for r in k['level_rates_hz'])} Hz, {k['codebook_size']} codes each\n"
          f"  parameters    {_human(k['parameters'])}\n"
          f"token layout\n"
          f"  mask id       {lay['mask_id']}\n"
          f"  audio ids     {lay['audio_offset']} .. {lay['audio_end'] - 1} "
          f"(start_of_speech {lay['start_of_speech']}, end_of_speech {lay['end_of_speech']})\n"
          f"  frame         {lay['tokens_per_frame']} tokens = {lay['samples_per_frame']} samples; "
          f"{lay['frames_per_second']:g} frames/s = {lay['tokens_per_second']:g} tokens/s\n"
          f"device      {info['device']}")
    return 0
