"""Mixed text + TTS masked-diffusion training (TTS-only without text_QA_dataset).

    python recipes/tts_train.py --config recipes/configs/<config>.yaml [--key value ...] [--resume [CHECKPOINT]]
    python recipes/tts_train.py --create-sample-config [PATH]
    accelerate launch --config_file recipes/accelerate/ddp.yaml recipes/tts_train.py --config ...

Run with --help for every config key.
"""
import sys

from llada_tts.training.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], recipe="tts"))
