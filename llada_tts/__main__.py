"""``python -m llada_tts`` = the ``llada-tts`` console script."""
import sys

from llada_tts.cli import main

sys.exit(main())
