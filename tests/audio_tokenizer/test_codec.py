"""SnacCodec on a tiny random SNAC with the exact 24 kHz layout: loader parity with stock snac.SNAC,
frame/token layout, resampling, whole-utterance decode, seeded noise, strict validation, errors."""
from __future__ import annotations

import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from snac import SNAC

from audio_tokenizer import audio_io
from audio_tokenizer import layout as L
from audio_tokenizer.codec import SNAC_24KHZ_CONFIG, TINY_CONFIG, SnacCodec, check_config, create_random_codec

SEED = 0


@pytest.fixture(scope="module")
def stock():
    """The in-memory reference: stock snac.SNAC with the tiny config, initialised from SEED."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return SNAC(**TINY_CONFIG).eval()


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory):
    return create_random_codec(tmp_path_factory.mktemp("codec") / "tiny", size="tiny", seed=SEED)


@pytest.fixture(scope="module")
def codec(codec_dir):
    return SnacCodec.from_pretrained(codec_dir)


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory, stock):
    """A folder in the original SNAC release format: config.json + torch.save'd pytorch_model.bin."""
    d = tmp_path_factory.mktemp("bin")
    (d / "config.json").write_text(json.dumps(TINY_CONFIG))
    torch.save(stock.state_dict(), d / "pytorch_model.bin")
    return d


def _speechlike(n: int, sr: int = 24000, seed: int = 0) -> np.ndarray:
    """Deterministic test signal [n]: two chirping partials plus a little noise."""
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    wave = 0.4 * np.sin(2 * np.pi * (150 + 80 * t) * t) + 0.2 * np.sin(2 * np.pi * 1100 * t)
    return (wave + 0.02 * rng.standard_normal(n)).astype(np.float32)


def _stock_decode(stock, codes, seed: int) -> np.ndarray:
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        return stock.decode([c[None] for c in codes])[0, 0].numpy()


@pytest.mark.parametrize("folder", ["codec_dir", "bin_dir"])
def test_loaded_codec_matches_stock_snac(request, stock, folder):
    codec = SnacCodec.from_pretrained(request.getfixturevalue(folder))
    loaded = codec.model.state_dict()
    assert loaded.keys() == stock.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in stock.state_dict().items())
    wave = _speechlike(5000)  # not a frame multiple: both sides pad to 3 * 2048
    enc = codec.encode(wave, 24000)
    padded = torch.from_numpy(np.pad(wave, (0, 3 * 2048 - 5000)))[None, None]
    with torch.inference_mode():
        want = stock.encode(padded)
    assert [c.tolist() for c in enc.codes] == [c[0].tolist() for c in want]
    got = codec.decode(enc.tokens(), seed=7)
    np.testing.assert_array_equal(got, _stock_decode(stock, enc.codes, 7))


def test_safetensors_only_and_readme(codec_dir):
    assert sorted(p.name for p in codec_dir.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert "UNTRAINED" in (codec_dir / "README.md").read_text()
    assert json.loads((codec_dir / "config.json").read_text()) == TINY_CONFIG
    assert not [p for p in codec_dir.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


@pytest.mark.parametrize("n_samples", [1, 2047, 2048, 2049, 10 * 2048 + 5])
def test_encode_frames_and_slot_bands(codec, n_samples):
    enc = codec.encode(_speechlike(n_samples), 24000)
    n = math.ceil(n_samples / 2048)
    assert enc.frames == n == codec.frames_for_samples(n_samples) and enc.length == n_samples
    assert [c.shape for c in enc.codes] == [(n,), (2 * n,), (4 * n,)]
    assert all(c.dtype == torch.int64 for c in enc.codes)
    tokens = codec.encode_tokens(_speechlike(n_samples), 24000)
    assert tokens.shape == (7 * n,) and torch.equal(tokens, L.codes_to_tokens(enc.codes))
    frames = tokens.view(n, 7)
    for slot in range(7):
        lo, hi = L.slot_band(slot)
        assert ((frames[:, slot] >= lo) & (frames[:, slot] < hi)).all()
    assert all(torch.equal(a, b) for a, b in zip(L.tokens_to_codes(tokens), enc.codes))


@pytest.mark.parametrize("sr,channels,seconds", [(16000, 1, 1.0), (44100, 2, 1.3), (22050, 1, 0.37)])
def test_any_rate_is_resampled_to_24k(codec, sr, channels, seconds):
    t = int(sr * seconds)
    wave = _speechlike(t, sr)
    if channels == 2:
        wave = np.stack([wave, 0.5 * wave[::-1]], axis=1)  # [T, 2] as soundfile returns
    enc = codec.encode(wave, sr)
    assert abs(enc.length - seconds * 24000) <= 1
    assert abs(enc.frames - math.ceil(seconds * 24000 / 2048)) <= 1
    mono = wave.mean(axis=1) if channels == 2 else wave
    want = codec.encode(audio_io.resample(mono, sr, 24000), 24000)  # mix, resample, encode
    assert all(torch.equal(a, b) for a, b in zip(enc.codes, want.codes))
    as_tensor = codec.encode(torch.from_numpy(np.ascontiguousarray(wave)), sr)
    assert all(torch.equal(a, b) for a, b in zip(as_tensor.codes, enc.codes))


def test_encode_rejects_bad_input(codec):
    for bad in (np.zeros((2, 5000), np.float32), np.zeros((1, 5000), np.float32), np.zeros((2, 2, 9), np.float32)):
        with pytest.raises(ValueError, match="shape"):
            codec.encode(bad, 24000)
    with pytest.raises(ValueError, match="empty"):
        codec.encode(np.zeros(0, np.float32), 24000)
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(np.array([0.0, np.nan] * 100, np.float32), 24000)
    with pytest.raises(ValueError, match="sr_in"):
        codec.encode(np.zeros(100, np.float32), 0)


def test_encode_batch(codec):
    a, b, c = _speechlike(3 * 2048, seed=1), _speechlike(3 * 2048, seed=2), _speechlike(3000, seed=3)
    batch = codec.encode_batch(np.stack([a, b]), 24000)
    for wave, got in zip((a, b), batch):
        assert all(torch.equal(x, y) for x, y in zip(got.codes, codec.encode(wave, 24000).codes))
    longest, short = codec.encode_batch([a, c], 24000)
    assert all(torch.equal(x, y) for x, y in zip(longest.codes, codec.encode(a, 24000).codes))
    assert short.frames == 2 and short.length == 3000 and [x.numel() for x in short.codes] == [2, 4, 8]
    assert codec.encode_batch([], 24000) == []


def test_decode_whole_utterance_length_and_trim(codec):
    enc = codec.encode(_speechlike(4 * 2048 + 100), 24000)
    full = codec.decode(enc.tokens(), seed=3)
    assert full.dtype == np.float32 and full.shape == (5 * 2048,)
    assert np.abs(full[: 2048]).max() > 0 and np.abs(full[-2048:]).max() > 0  # every frame decoded
    trimmed = codec.decode(enc.tokens().tolist(), seed=3, length=enc.length)
    assert trimmed.shape == (enc.length,)
    np.testing.assert_array_equal(trimmed, full[: enc.length])
    np.testing.assert_array_equal(codec.decode_codes(enc.codes, seed=3), full)
    assert codec.decode(torch.zeros(0, dtype=torch.long)).shape == (0,)
    with pytest.raises(ValueError, match="outside 0..10240"):
        codec.decode(enc.tokens(), length=5 * 2048 + 1)


def test_seeded_noise_is_local_and_deterministic(codec):
    tokens = codec.encode_tokens(_speechlike(3 * 2048), 24000)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b, c = codec.decode(tokens, seed=1), codec.decode(tokens, seed=1), codec.decode(tokens, seed=2)
    assert torch.equal(torch.random.get_rng_state(), before)  # callers' RNG untouched
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    torch.manual_seed(1)  # seed=None draws from the global RNG, exactly like stock SNAC
    np.testing.assert_array_equal(codec.decode(tokens), a)
    assert not torch.equal(torch.random.get_rng_state(), before)
    with pytest.raises(ValueError, match="seed"):
        codec.decode(tokens, seed=1.5)


def test_seeded_decodes_in_parallel_threads_match_sequential(codec):
    tokens = codec.encode_tokens(_speechlike(6 * 2048), 24000)
    want = {seed: codec.decode(tokens, seed=seed) for seed in range(4)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = dict(zip(range(4), pool.map(lambda seed: codec.decode(tokens, seed=seed), range(4))))
    for seed in range(4):
        np.testing.assert_array_equal(got[seed], want[seed])


def test_create_random_codec_leaves_rng_alone(tmp_path):
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    create_random_codec(tmp_path / "c", seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    with pytest.raises(ValueError, match="size"):
        create_random_codec(tmp_path / "d", size="huge")


def test_bad_tokens_raise(codec):
    tokens = codec.encode_tokens(_speechlike(2 * 2048), 24000)
    shifted = tokens.clone()
    shifted[7] += L.CODEBOOK_SIZE  # frame 1 slot 0 now lies in slot 1's band
    cases = [tokens[:-1], shifted, torch.tensor([L.BOS_ID] * 7), torch.tensor([L.MASK_ID] * 7),
             tokens.view(2, 7), tokens.float()]
    for bad in cases:
        with pytest.raises(ValueError):
            codec.decode(bad)
    codes = list(codec.encode(_speechlike(2048), 24000).codes)
    with pytest.raises(ValueError, match="outside"):
        codec.decode_codes([codes[0], codes[1], codes[2] + 4096])
    with pytest.raises(ValueError, match="n, 2n, 4n"):
        codec.decode_codes([codes[0], codes[1], codes[2][:3]])


def _write_dir(d, config: dict, state: dict | None = None):
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(config))
    torch.save(state if state is not None else {}, d / "pytorch_model.bin")
    return d


@pytest.mark.parametrize("change,message", [
    ({"sampling_rate": 44100}, "sampling_rate is 44100"),
    ({"vq_strides": [8, 4, 2, 1]}, "vq_strides"),
    ({"codebook_size": 1024}, "codebook_size is 1024"),
    ({"encoder_rates": [3, 3, 7, 7]}, "hop"),
    ({"decoder_rates": [8, 8, 4, 4]}, "upsampling"),
    ({"attn_window_size": 32}, "encode padding multiple is 16384"),
    ({"model_type": "snac"}, "unknown SNAC config keys"),
])
def test_wrong_layout_checkpoint_raises(tmp_path, change, message):
    d = _write_dir(tmp_path / "bad", {**TINY_CONFIG, **change})
    with pytest.raises(ValueError, match=message):
        SnacCodec.from_pretrained(d)


def test_layout_configs():
    assert check_config(SNAC_24KHZ_CONFIG)["latent_dim"] is None
    assert {k for k in TINY_CONFIG if TINY_CONFIG[k] != SNAC_24KHZ_CONFIG[k]} == {"encoder_dim", "decoder_dim"}
    with pytest.raises(ValueError, match="sampling_rate is 44100"):
        check_config({})  # SNAC's defaults are the 44.1 kHz model


class _NotATensor:
    pass


def test_weight_errors(tmp_path, stock):
    state = {k: v for k, v in stock.state_dict().items() if "decoder" not in k}
    with pytest.raises(ValueError, match="weights do not match"):
        SnacCodec.from_pretrained(_write_dir(tmp_path / "partial", TINY_CONFIG, state))
    with pytest.raises(ValueError, match="weights do not match"):
        SnacCodec.from_pretrained(_write_dir(tmp_path / "other", {**TINY_CONFIG, "decoder_dim": 64},
                                             stock.state_dict()))
    with pytest.raises(ValueError, match="cannot read codec weights"):  # weights_only refuses pickled objects
        SnacCodec.from_pretrained(_write_dir(tmp_path / "pickle", TINY_CONFIG, {"x": _NotATensor()}))
    d = _write_dir(tmp_path / "corrupt", TINY_CONFIG)
    (d / "pytorch_model.bin").unlink()
    (d / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="cannot read codec weights"):
        SnacCodec.from_pretrained(d)


def test_missing_files_raise_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SnacCodec.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SnacCodec.from_pretrained("./no/such/codec")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        SnacCodec.from_pretrained(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps(TINY_CONFIG))
    with pytest.raises(FileNotFoundError, match="neither model.safetensors nor pytorch_model.bin"):
        SnacCodec.from_pretrained(tmp_path / "empty")
    with pytest.raises(OSError, match="'org/not-cached' is not a local folder"):
        SnacCodec.from_pretrained("org/not-cached", cache_dir=str(tmp_path / "hf"), local_files_only=True)


def test_hub_id_loads_from_the_hub_cache(tmp_path, codec_dir, stock):
    """The hub branch (hf_hub_download) end to end, offline, from a pre-filled cache."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "models--org--tiny-snac"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(codec_dir / name, repo / "snapshots" / commit / name)
    codec = SnacCodec.from_pretrained("org/tiny-snac", cache_dir=str(tmp_path / "hf"), local_files_only=True)
    assert all(torch.equal(codec.model.state_dict()[k], v) for k, v in stock.state_dict().items())


def test_save_pretrained_is_atomic_round_trip(tmp_path, codec):
    out = codec.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    again = SnacCodec.from_pretrained(out)
    assert all(torch.equal(again.model.state_dict()[k], v) for k, v in codec.model.state_dict().items())
    (out / "stale.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        codec.save_pretrained(out)
    codec.save_pretrained(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["saved"]  # no temp or backup folders left
    assert codec.sample_rate == 24000 and codec.samples_per_frame == 2048 and codec.device.type == "cpu"


def test_random_codec_command_writes_a_loadable_untrained_codec(tmp_path, capsys):
    from audio_tokenizer.__main__ import main

    out = tmp_path / "rc"
    assert main(["random-codec", str(out), "--size", "tiny", "--seed", "3"]) == 0
    assert "UNTRAINED" in capsys.readouterr().out
    codec = SnacCodec.from_pretrained(out)
    assert codec.sample_rate == 24000 and codec.samples_per_frame == 2048
    assert main(["random-codec", str(out)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["random-codec", str(out), "--overwrite"]) == 0
