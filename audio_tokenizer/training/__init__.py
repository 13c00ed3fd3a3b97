"""Codec training (the only part of audio_tokenizer that imports accelerate):
config · data (random crops) · losses (spectral, VQ) · guard (codebook collapse) · trainer."""
