"""audio_io: WAV round trips, channel mixing, resampling keeps pitch, atomic saves, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio_tokenizer.audio_io import AudioError, load_audio, resample, save_wav, to_mono

PCM16_STEP = 1 / 32768


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def _peak_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spectrum)])


def test_save_load_round_trip_within_16_bit_quantisation(tmp_path):
    wave = _sine(440, 24000, 0.5)
    path = save_wav(tmp_path / "a.wav", wave, 24000)
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 24000, 1)
    back = load_audio(path, target_sr=24000)
    assert back.dtype == np.float32 and back.shape == wave.shape
    assert np.abs(back - wave).max() <= PCM16_STEP
    assert np.abs(back - wave).max() > 0  # really quantised to 16 bits


def test_save_clips_and_float_subtype_is_exact(tmp_path):
    wave = np.array([1.5, -1.5, 0.25, -0.125] * 100, np.float32)
    back = load_audio(save_wav(tmp_path / "c.wav", wave, 8000), target_sr=8000)
    assert back.max() <= 1.0 and back.min() == -1.0 and np.isclose(back.max(), 1.0, atol=PCM16_STEP)
    exact = load_audio(save_wav(tmp_path / "f.wav", wave, 8000, subtype="FLOAT"), target_sr=8000)
    np.testing.assert_array_equal(exact, np.clip(wave, -1, 1))


def test_stereo_file_is_mixed_to_mono_mean(tmp_path):
    left, right = _sine(300, 16000, 0.25), _sine(700, 16000, 0.25, amp=0.3)
    sf.write(str(tmp_path / "s.wav"), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    mono = load_audio(tmp_path / "s.wav", target_sr=16000)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-7)
    np.testing.assert_allclose(to_mono(np.stack([left, right], axis=1)), (left + right) / 2, atol=1e-7)
    assert np.array_equal(to_mono(left), left)
    with pytest.raises(AudioError, match="shape"):
        to_mono(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("freq,sr_in,sr_out", [(440, 16000, 24000), (1000, 44100, 24000), (3000, 24000, 16000)])
def test_resample_keeps_frequency_and_duration(freq, sr_in, sr_out):
    out = resample(_sine(freq, sr_in, 1.0), sr_in, sr_out)
    assert out.dtype == np.float32 and abs(len(out) - sr_out) <= 1
    assert abs(_peak_hz(out, sr_out) - freq) <= 1.0
    assert abs(np.abs(out[1000:-1000]).max() - 0.5) < 0.01  # amplitude kept


def test_resample_multichannel_and_identity():
    stereo = np.stack([_sine(440, 16000, 0.5), _sine(880, 16000, 0.5)], axis=1)  # [T, 2]
    out = resample(stereo, 16000, 24000)
    assert out.shape == (12000, 2)
    assert abs(_peak_hz(out[:, 1], 24000) - 880) <= 2.0
    same = resample(stereo, 16000, 16000)
    assert np.array_equal(same, stereo) and same is not stereo
    with pytest.raises(AudioError, match="sr_out"):
        resample(stereo, 16000, 0)


def test_load_resamples_any_file_rate(tmp_path):
    sf.write(str(tmp_path / "hi.flac"), _sine(1000, 44100, 0.5), 44100)
    wave = load_audio(tmp_path / "hi.flac")  # default target 24 kHz
    assert abs(len(wave) - 12000) <= 1 and abs(_peak_hz(wave, 24000) - 1000) <= 2.0


def test_bad_files_raise_audio_error_naming_the_path(tmp_path):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + bytes(range(200)))
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(str(tmp_path / "zero.wav"), np.zeros(0, np.float32), 16000)
    sf.write(str(tmp_path / "nan.wav"), np.array([0.0, np.nan, 0.5], np.float32), 16000, subtype="FLOAT")
    (tmp_path / "folder.wav").mkdir()
    cases = {"corrupt.wav": "cannot read audio", "empty.wav": "empty file", "zero.wav": "0 samples",
             "nan.wav": "NaN", "missing.wav": "not found", "folder.wav": "not a file"}
    for name, reason in cases.items():
        with pytest.raises(AudioError, match=reason) as e:
            load_audio(tmp_path / name)
        assert str(tmp_path / name) in str(e.value)
    assert issubclass(AudioError, ValueError)


def test_atomic_save_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out.wav"
    save_wav(target, _sine(440, 24000, 0.1), 24000)
    save_wav(target, _sine(880, 24000, 0.2), 24000)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]
    assert sf.info(str(target)).frames == 4800
    with pytest.raises(AudioError, match=str(target)):  # soundfile rejects the subtype mid-write
        save_wav(target, _sine(440, 24000, 0.1), 24000, subtype="NOT_A_SUBTYPE")
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # temp file removed
    assert sf.info(str(target)).frames == 4800  # previous file untouched


def test_save_errors(tmp_path):
    wave = _sine(440, 24000, 0.1)
    with pytest.raises(AudioError, match="does not exist"):
        save_wav(tmp_path / "no_dir" / "a.wav", wave, 24000)
    (tmp_path / "file").write_text("x")
    with pytest.raises(AudioError, match="is not a directory"):
        save_wav(tmp_path / "file" / "a.wav", wave, 24000)
    with pytest.raises(AudioError, match="NaN"):
        save_wav(tmp_path / "a.wav", np.array([0.0, np.inf], np.float32), 24000)
    with pytest.raises(AudioError, match="sample_rate"):
        save_wav(tmp_path / "a.wav", wave, 0)
    with pytest.raises(AudioError, match="non-empty"):
        save_wav(tmp_path / "a.wav", np.zeros(0, np.float32), 24000)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_header_duration_reads_only_the_header(tmp_path):
    import io

    from audio_tokenizer.audio_io import header_duration

    path = save_wav(tmp_path / "a.wav", _sine(440, 16000, 1.5), 16000)
    assert header_duration(path) == 1.5
    with open(path, "rb") as f:
        data = io.BytesIO(f.read())
    assert header_duration(data) == 1.5 and data.tell() == 0  # a file object is rewound for the decoder
    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    assert header_duration(tmp_path / "bad.wav") is None
    assert header_duration(tmp_path / "missing.wav") is None
