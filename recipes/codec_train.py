"""Train a codec with the SNAC 24 kHz token layout (snac.SNAC or the frame-rate demo architecture).

    python recipes/codec_train.py --config recipes/codec_configs/cpu.yaml [--key value ...] [--resume]
    python recipes/codec_train.py --create-sample-config [PATH]
    accelerate launch --num_processes N recipes/codec_train.py --config ...

Run with --help for every config key.
"""
import sys

from audio_tokenizer.training.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
