"""``python -m llada_tts.training [tts|pretrain|sft] --config x.yaml ...``: the recipes' entry point for an
installed package (the same as ``python recipes/tts_train.py`` / ``pretrain.py`` / ``sft.py``)."""
import sys

from llada_tts.training.cli import RECIPES, main

if __name__ == "__main__":
    argv = sys.argv[1:]
    recipe = argv.pop(0) if argv and argv[0] in RECIPES else "tts"
    sys.exit(main(argv, recipe=recipe, prog=f"python -m llada_tts.training {recipe}"))
