"""A small built-in demo library of synthetic music, made on the spot (nothing is downloaded).

Five made-up artists, each with its own instrumentation, tempo range and
stereo image, so that songs by one artist really do sound alike: a good
recommender should place them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050


@dataclass(frozen=True)
class DemoSong:
    artist: str
    album: str
    title: str
    path: Path


def _envelope(n: int, attack: float, decay: float, sr: int = SR) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)


def _place(out: np.ndarray, start: int, sound: np.ndarray) -> None:
    end = min(len(out), start + len(sound))
    if start < end:
        out[start:end] += sound[: end - start]


def chorale(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Slow sustained chords of soft partials."""
    n = int(seconds * SR)
    out = np.zeros(n)
    root = rng.uniform(110, 220)
    chord_len = int(rng.uniform(2.0, 3.5) * SR)
    t = np.arange(chord_len) / SR
    for start in range(0, n, chord_len):
        ratios = rng.choice([1, 5 / 4, 4 / 3, 3 / 2, 5 / 3, 2], size=3, replace=False)
        chord = sum(np.sin(2 * np.pi * root * r * k * t) / k ** 2 for r in ratios for k in (1, 2, 3))
        _place(out, start, chord * np.sin(np.pi * t / t[-1]) ** 2)
    return out


def beats(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A drum machine: kick, snare and hi-hat on a grid."""
    n = int(seconds * SR)
    out = np.zeros(n)
    step = int(60 / rng.uniform(100, 130) / 4 * SR)
    kick_t = np.arange(int(0.25 * SR)) / SR
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-kick_t * 30)) * kick_t) * np.exp(-kick_t * 12)
    snare = rng.standard_normal(int(0.2 * SR)) * _envelope(int(0.2 * SR), 0.001, 0.05) * 0.6
    hat = np.diff(rng.standard_normal(int(0.05 * SR)), prepend=0) * _envelope(int(0.05 * SR), 0.0005, 0.01) * 0.3
    pattern = rng.integers(0, 2, size=16)
    for i, start in enumerate(range(0, n, step)):
        beat = i % 16
        if beat % 4 == 0:
            _place(out, start, kick)
        if beat % 8 == 4:
            _place(out, start, snare)
        if pattern[beat]:
            _place(out, start, hat)
    return out


def textures(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Band-passed noise that swells and fades."""
    n = int(seconds * SR)
    noise = rng.standard_normal(n)
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    centre = rng.uniform(600, 3000)
    spectrum *= np.exp(-0.5 * (np.log(np.maximum(freqs, 1) / centre) / 0.35) ** 2)
    out = np.fft.irfft(spectrum, n)
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * np.arange(n) / SR / rng.uniform(4, 9))
    return out * swell


def arpeggios(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Plucked strings playing fast broken chords: bright partials that die away quickly."""
    n = int(seconds * SR)
    out = np.zeros(n)
    step = int(60 / rng.uniform(140, 180) / 2 * SR)
    root = rng.uniform(196, 330)
    notes = root * np.array([1, 5 / 4, 3 / 2, 2, 3 / 2, 5 / 4])
    t = np.arange(int(0.6 * SR)) / SR
    for i, start in enumerate(range(0, n, step)):
        f = notes[i % len(notes)]
        pluck = sum(np.sin(2 * np.pi * f * k * t) * np.exp(-t * (3 + 4 * k)) / k for k in range(1, 9))
        _place(out, start, pluck)
    return out


def grooves(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A sawtooth bass line with a click on every beat."""
    n = int(seconds * SR)
    out = np.zeros(n)
    step = int(60 / rng.uniform(85, 100) / 2 * SR)
    root = rng.uniform(45, 70)
    line = root * np.array([1, 1, 3 / 2, 4 / 3, 1, 6 / 5, 1, 3 / 2])
    t = np.arange(step) / SR
    for i, start in enumerate(range(0, n, step)):
        f = line[i % len(line)]
        saw = 2 * ((f * t) % 1.0) - 1
        _place(out, start, saw * _envelope(step, 0.005, 0.25) * 0.7)
        _place(out, start, np.diff(rng.standard_normal(200), prepend=0) * 0.5)
    return out


ARTISTS = {
    "Sine Quartet": ("Chorales", chorale, 2, ".flac"),
    "Drum Machine Ensemble": ("Beats", beats, 2, ".wav"),
    "Noise Garden": ("Textures", textures, 2, ".ogg"),
    "Pluck Collective": ("Arpeggios", arpeggios, 1, ".flac"),
    "Bass Station": ("Grooves", grooves, 1, ".wav"),
}


def make_song(style, rng: np.random.Generator, seconds: float, channels: int) -> np.ndarray:
    """One song of a style: (samples, channels) float32, peak-normalised to -3 dBFS."""
    left = style(rng, seconds)
    if channels == 2:
        right = style(rng, seconds)  # an independent performance: the channels differ
        audio = np.stack([0.7 * left + 0.3 * right, 0.3 * left + 0.7 * right], axis=1)
    else:
        audio = left[:, None]
    return (audio / np.abs(audio).max() * 0.7).astype(np.float32)


def build(folder: str | Path, songs_per_artist: int = 4, seconds: float = 30.0,
          seed: int = 7) -> list[DemoSong]:
    """Write the demo library under ``folder`` as ``Artist/Album/NN Title.ext``.

    Existing files are kept, so building twice costs nothing the second time.
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    songs = []
    for artist, (album, style, channels, ext) in ARTISTS.items():
        for i in range(songs_per_artist):
            song_rng = np.random.default_rng(rng.integers(1 << 32))
            title = f"{album[:-1]} No. {i + 1}"
            path = folder / artist / album / f"{i + 1:02d} {title}{ext}"
            songs.append(DemoSong(artist, album, title, path))
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            length = seconds * song_rng.uniform(0.8, 1.2)
            tmp = path.with_name(path.stem + ".part" + ext)
            sf.write(tmp, make_song(style, song_rng, length, channels), SR,
                     format={".flac": "FLAC", ".wav": "WAV", ".ogg": "OGG"}[ext])
            tmp.replace(path)
    return songs
