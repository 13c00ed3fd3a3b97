"""``python recipes/codec_train.py --config X.yaml [--key value ...] [--resume]``."""
from __future__ import annotations

import os
import sys

from audio_tokenizer import typed_config
from audio_tokenizer.errors import first_line
from audio_tokenizer.training.config import PRESETS, CodecTrainConfig

USAGE = """usage: python recipes/codec_train.py --config CONFIG.yaml [--key value ...] [--resume]
       python recipes/codec_train.py --create-sample-config PATH
       accelerate launch [--num_processes N] recipes/codec_train.py --config ...   (DDP)

Trains a codec with the SNAC 24 kHz token layout (3 levels at 12/23/47 Hz, 4096 codes, 7 tokens per
2048 samples). Model presets: {presets}. Writes output_dir/{{checkpoint,codec,metrics.jsonl,runs}};
--resume continues the run in output_dir exactly. Keys (YAML or --key value):
{keys}
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.format(presets=", ".join(PRESETS), keys=typed_config.help_text(CodecTrainConfig)))
        return 0
    try:
        if argv[0] == "--create-sample-config":
            path = argv[1] if len(argv) > 1 else "codec_train.yaml"
            from audio_tokenizer.fileio import write_atomic
            cfg = CodecTrainConfig(train_data="corpus/")
            write_atomic(path, typed_config.to_yaml(cfg, header="codec training config "
                                                         "(python recipes/codec_train.py --config THIS.yaml)"))
            print(f"wrote {path}")
            return 0
        resume = "--resume" in argv
        argv = [a for a in argv if a != "--resume"]
        path = None
        if argv and argv[0].startswith("--config"):
            path = argv[0].split("=", 1)[1] if "=" in argv[0] else (argv[1] if len(argv) > 1 else None)
            if path is None:
                raise ValueError("--config needs a path")
            argv = argv[1:] if "=" in argv[0] else argv[2:]
        cfg = typed_config.load(CodecTrainConfig, path, argv)
        from audio_tokenizer.training.trainer import CodecTrainer
        final = CodecTrainer(cfg, resume=resume).train()
        print(f"codec written to {final} (load with SnacCodec.from_pretrained)")
        return 0
    except KeyboardInterrupt:
        print("codec_train: interrupted; resume with --resume (the last checkpoint is kept)", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - sorted below: expected failures are one line, the rest a traceback
        from safetensors import SafetensorError  # (torch-free; a config error must not import torch to print)

        state = sys.modules.get("audio_tokenizer.training.state")  # its errors exist only once it is imported
        diverged = (state.NonFiniteLossError,) if state else ()
        expected = (*diverged, *((state.TrainingStateError,) if state else ()), SafetensorError, ValueError, OSError)
        if not isinstance(e, expected) or os.environ.get("LLADA_TTS_DEBUG"):
            raise  # a bug: keep its traceback (LLADA_TTS_DEBUG=1 shows one for the expected errors too)
        print(f"codec_train: error: {first_line(e)}", file=sys.stderr)
        return 1 if isinstance(e, diverged) else 2  # 1: the run diverged (as tts_train); 2: bad input or checkpoint
