"""The log-mel front-end against librosa, the reference implementation."""

import numpy as np
import pytest

from conftest import SR, chord, clicks, noise, tone
from reform.config import AudioConfig, MelConfig
from reform.features import LogMel, clip_top_db, hann_window, mel_filterbank

librosa = pytest.importorskip("librosa")  # a test dependency: installed by `make test`

SIGNALS = {
    "tone": lambda: tone(440, 4)[None],
    "chord": lambda: chord(seconds=4)[None],
    "noise": lambda: noise(4)[None],
    "clicks": lambda: clicks(4)[None],
    "stereo": lambda: np.stack([tone(220, 4), noise(4, seed=3)]),
    "odd_length": lambda: noise(1.234567, seed=4)[None],
}


def reference(signal: np.ndarray) -> np.ndarray:
    """librosa's mel power in dB with our reference and clipping: (channels, frames, mels)."""
    power = librosa.feature.melspectrogram(y=signal, sr=SR, n_fft=2048, hop_length=512, n_mels=128)
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=80.0).transpose(0, 2, 1)


def test_filterbank_matches_librosa():
    ours = mel_filterbank(SR, 2048, 128)
    theirs = librosa.filters.mel(sr=SR, n_fft=2048, n_mels=128)
    assert ours.shape == (128, 1025)
    np.testing.assert_allclose(ours, theirs, atol=1e-7)


def test_window_is_periodic_hann():
    np.testing.assert_allclose(hann_window(2048), librosa.filters.get_window("hann", 2048), atol=1e-7)


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_logmel_matches_librosa_within_005_db(name):
    signal = SIGNALS[name]()
    ours = clip_top_db(LogMel().spectrogram(signal), 80.0)
    theirs = reference(signal)
    assert ours.shape == theirs.shape == (signal.shape[0], 1 + signal.shape[1] // 512, 128)
    # align the maxima (a no-op here: both use 0 dB = power 1), then compare every bin within 80 dB
    ours = ours - ours.max() + theirs.max()
    loud = theirs > theirs.max() - 80
    assert loud.mean() > 0.01
    assert np.abs(ours - theirs)[loud].max() < 0.05
    # the float16 storage keeps the same bound
    stored = ours.astype(np.float16).astype(np.float32)
    assert np.abs(stored - theirs)[loud].max() < 0.05


def test_streaming_blocks_equal_whole_signal():
    signal = np.stack([noise(5, seed=1), chord(seconds=5)])
    logmel = LogMel()
    whole = logmel.spectrogram(signal)
    stream = logmel.stream(2)
    parts, pos = [], 0
    for size in (1, 511, 2048, 7777, 30000, 10 ** 6):
        parts.append(stream.push(signal[:, pos:pos + size]))
        pos += size
    parts.append(stream.finish())
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)


def test_reference_level_is_absolute():
    """0 dB is power 1.0: a quieter copy of a signal is lower by the gain, not re-normalised."""
    loud = LogMel().spectrogram(tone(440, 2)[None])
    quiet = LogMel().spectrogram(tone(440, 2, amp=0.05)[None])
    assert loud.max() - quiet.max() == pytest.approx(20.0, abs=0.01)  # 20 log10(0.5 / 0.05)


def test_clip_is_relative_to_song_maximum():
    spec = np.array([[[0.0, -50.0, -95.0]], [[-10.0, -85.0, -100.0]]], np.float32)
    clip_top_db(spec, 80.0)
    assert spec.min() == -80.0 and spec.max() == 0.0
    assert spec[0, 0, 1] == -50.0


def test_other_settings_follow_config():
    mel = MelConfig(n_fft=1024, hop_length=256, n_mels=64)
    signal = noise(2)[None]
    ours = LogMel(AudioConfig(), mel).spectrogram(signal)
    power = librosa.feature.melspectrogram(y=signal, sr=SR, n_fft=1024, hop_length=256, n_mels=64)
    theirs = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None).transpose(0, 2, 1)
    assert ours.shape == theirs.shape
    loud = theirs > theirs.max() - 80
    assert np.abs(ours - theirs)[loud].max() < 0.05
