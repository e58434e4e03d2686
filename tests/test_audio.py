"""Decoding every supported format to (channels, samples) float32 at 22050 Hz."""

import numpy as np
import pytest
import soundfile as sf

from conftest import noise, stereo, tone, write, write_aac
from reform.audio import decode, is_audio_path, stream
from reform.config import AudioConfig
from reform.errors import DecodeError

FORMATS = [
    ("song.wav", dict(format="WAV", subtype="PCM_16")),
    ("song.flac", dict(format="FLAC")),
    ("song.aiff", dict(format="AIFF")),
    ("song.ogg", dict(format="OGG", subtype="VORBIS")),
    ("song.opus", dict(format="OGG", subtype="OPUS")),
    ("song.mp3", dict(format="MP3")),
]


@pytest.mark.parametrize("name,kwargs", FORMATS)
def test_every_format_decodes_keeping_channels(tmp_path, name, kwargs):
    sr = 48000 if name.endswith(".opus") else 44100
    audio = stereo(tone(440, 3, sr), tone(1000, 3, sr, amp=0.1))
    path = write(tmp_path / name, audio, sr, **kwargs)
    x, info = decode(path)
    assert x.dtype == np.float32 and x.shape[0] == 2
    assert info.sample_rate == sr and info.channels == 2
    assert abs(info.duration - 3.0) < 0.1  # codecs add a little padding
    # channels stay in file order: the left one is the loud one
    assert np.abs(x[0]).max() > 3 * np.abs(x[1]).max()


def test_m4a_aac(tmp_path):
    path = write_aac(tmp_path / "song.m4a", stereo(tone(440, 3), noise(3, amp=0.05)))
    x, info = decode(path)
    assert info.channels == 2 and info.codec == "aac"
    assert abs(x.shape[1] / 22050 - 3.0) < 0.1


def test_resampled_to_22050_with_soxr(tmp_path):
    path = write(tmp_path / "a.wav", tone(1000, 2, 44100), 44100)
    x, _ = decode(path)
    assert x.shape == (1, 44100)
    spectrum = np.abs(np.fft.rfft(x[0]))
    assert np.argmax(spectrum) == pytest.approx(2000, abs=2)  # 1 kHz at 2 s -> bin 2000


def test_blocks_are_bounded(tmp_path):
    path = write(tmp_path / "long.wav", noise(50, sr=22050), 22050)
    _, blocks = stream(path, AudioConfig(), block_seconds=5)
    sizes = [b.shape[1] for b in blocks]
    assert len(sizes) >= 10 and max(sizes) <= 5 * 22050 + 2048


def test_extensions():
    assert is_audio_path("x/y/Song.MP3") and is_audio_path("a.flac") and is_audio_path("a.opus")
    assert not is_audio_path("cover.jpg") and not is_audio_path("notes.txt")


@pytest.mark.parametrize("content,name", [
    (b"", "empty.wav"),
    (b"this is not music\n" * 20, "text.mp3"),
    (bytes(np.random.default_rng(0).integers(0, 256, 50000, dtype=np.uint8)), "random.ogg"),
])
def test_garbage_raises_decode_error(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DecodeError):
        decode(path)


@pytest.mark.parametrize("name,kwargs", [("t.wav", {}), ("t.flac", {}), ("t.ogg", {}), ("t.mp3", {})])
def test_truncated_files_are_detected(tmp_path, name, kwargs):
    full = write(tmp_path / name, stereo(tone(440, 10, 44100), noise(10, 44100)), 44100)
    data = full.read_bytes()
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="truncated|part-way"):
        decode(cut)


def test_unreadable_reports_path(tmp_path):
    with pytest.raises(DecodeError) as err:
        decode(tmp_path / "missing.flac")
    assert "missing.flac" in str(err.value)
