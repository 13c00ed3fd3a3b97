"""LLaDA text pretraining: JSONL {"text"} or {"input_ids"}, packed to max_length, 1% random-length batches.

    python recipes/pretrain.py --config recipes/configs/<config>.yaml [--key value ...] [--resume [CHECKPOINT]]
    python recipes/pretrain.py --create-sample-config [PATH]
    accelerate launch --config_file recipes/accelerate/ddp.yaml recipes/pretrain.py --config ...

Run with --help for every config key.
"""
import sys

from llada_tts.training.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], recipe="pretrain"))
