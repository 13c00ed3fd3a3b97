"""``python -m llada_tts.app --model CHECKPOINT ...`` = ``llada-tts app ...``."""
import sys

from llada_tts.app.launch import main

sys.exit(main())
