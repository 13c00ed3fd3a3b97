"""LLaDA SFT: {"input_ids","prompt_length"} or conversations (role/content, from/value); answers padded with EOS.

    python recipes/sft.py --config recipes/configs/<config>.yaml [--key value ...] [--resume [CHECKPOINT]]
    python recipes/sft.py --create-sample-config [PATH]
    accelerate launch --config_file recipes/accelerate/ddp.yaml recipes/sft.py --config ...

Run with --help for every config key.
"""
import sys

from llada_tts.training.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], recipe="sft"))
