"""Synthetic audio made on the spot with a fixed seed: tones, chords, noise, clicks, stereo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 22050


def tone(freq: float = 440.0, seconds: float = 3.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chord(freqs=(261.6, 329.6, 392.0), seconds: float = 3.0, sr: int = SR) -> np.ndarray:
    return (sum(tone(f, seconds, sr, 0.25) for f in freqs)).astype(np.float32)


def noise(seconds: float = 3.0, sr: int = SR, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def clicks(seconds: float = 3.0, sr: int = SR, every: float = 0.25) -> np.ndarray:
    out = np.zeros(int(seconds * sr), np.float32)
    out[:: int(every * sr)] = 0.9
    return out


def stereo(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(samples, 2) with different content per channel."""
    n = min(len(left), len(right))
    return np.stack([left[:n], right[:n]], axis=1)


def write(path: Path, audio: np.ndarray, sr: int = SR, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sr, **kwargs)
    return path


def write_encoded(path: Path, audio: np.ndarray, codec: str, sr: int = SR) -> Path:
    """Encode ``audio`` (samples, channels) float in [-1, 1] with one of FFmpeg's built-in
    encoders (through PyAV), in the container the file's extension names: the formats
    libsndfile cannot write (AAC, WavPack, TTA, ALAC)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    audio = audio if audio.ndim == 2 else audio[:, None]
    layout = "stereo" if audio.shape[1] == 2 else "mono"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sr, layout=layout)
        fmt = stream.codec_context.codec.audio_formats[-1]   # float where the encoder takes it, else 16 bits
        if fmt.name == "fltp":
            samples = np.ascontiguousarray(audio.T, dtype=np.float32)
        else:
            fmt = av.AudioFormat("s16p" if fmt.is_planar else "s16")
            ints = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
            samples = np.ascontiguousarray(ints.T if fmt.is_planar else ints.reshape(1, -1))
        stream.format = fmt
        frame = av.AudioFrame.from_ndarray(samples, format=fmt.name, layout=layout)
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture
def music(tmp_path: Path) -> Path:
    """A small library in Artist/Album/NN Title layout: mono and stereo, several formats."""
    root = tmp_path / "music"
    write(root / "Tone Band" / "Sines" / "01 A Four Forty.wav", tone(440, 16))
    write(root / "Tone Band" / "Sines" / "02 Chord.flac", stereo(chord(seconds=16), tone(660, 16)))
    write(root / "Noise Crew" / "Hiss" / "01 White.ogg", stereo(noise(16, seed=1), noise(16, seed=2)))
    write(root / "Noise Crew" / "Hiss" / "02 Clicks.wav", clicks(16))
    return root


def run_unprivileged(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command that must respect file permissions.

    Root reads every file regardless of its mode, through the capabilities
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH; as root, drop both with setpriv
    (util-linux) so that a mode-000 file really is unreadable.
    """
    if os.geteuid() == 0:
        args = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *args]
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def reform_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "reform", *args]


def ctrl_c_as_in_a_terminal() -> None:
    """``preexec_fn`` of a child that must stop on SIGINT as after Ctrl-C in a terminal.

    A shell starts its background jobs with SIGINT ignored, the tests among them when they
    run there, and a child inherits that: Python then installs no KeyboardInterrupt for it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def build_music(root: Path) -> Path:
    write(root / "Tone Band" / "Sines" / "01 A Four Forty.wav", tone(440, 16))
    write(root / "Tone Band" / "Sines" / "02 Chord.flac", stereo(chord(seconds=16), tone(660, 16)))
    write(root / "Noise Crew" / "Hiss" / "01 White.ogg", stereo(noise(16, seed=1), noise(16, seed=2)))
    write(root / "Noise Crew" / "Hiss" / "02 Clicks.wav", clicks(16))
    write(root / "Noise Crew" / "Hiss" / "03 Short.wav", noise(6, seed=5))  # shorter than a window
    return root


@pytest.fixture(scope="session")
def scanned(tmp_path_factory) -> Path:
    """A scanned library home (shared, read-only for tests): five songs, one shorter than a window."""
    from reform import Library

    base = tmp_path_factory.mktemp("scanned")
    build_music(base / "music")
    with Library(base / "home") as lib:
        lib.scan(base / "music", jobs=1)
    return base / "home"


@pytest.fixture
def home(scanned, tmp_path) -> Path:
    """A writable copy of the scanned home (test files that need a trained one override this)."""
    import shutil

    copy = tmp_path / "home"
    shutil.copytree(scanned, copy)
    return copy


def tiny_model_config():
    from reform.config import ModelConfig

    return ModelConfig(window_frames=64, widths=(4, 8), embedding_dim=8)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, scanned) -> Path:
    """A copy of the scanned home with a tiny model trained for a few epochs and all songs embedded."""
    import shutil

    from reform import Library
    from reform.config import TrainConfig

    home = tmp_path_factory.mktemp("trained") / "home"
    shutil.copytree(scanned, home)
    with Library(home) as lib:
        lib.train(name="tiny", model_cfg=tiny_model_config(),
                  train_cfg=TrainConfig(max_epochs=3, batch_size=4, cluster_batch_size=4,
                                        learning_rate=3e-3, threads=1), activate=True)
        lib.embed()
    return home


@dataclass(frozen=True)
class DyingEmbedder:
    """The real embedder, except that the worker process exits at once when it is given a
    song of ``frames`` frames while a ticket is left in ``tickets`` (each death takes one)."""

    inner: object
    frames: int
    tickets: str

    @property
    def key(self) -> str:
        return self.inner.key

    def load(self):
        return self.inner.load()

    def __call__(self, spec: np.ndarray) -> np.ndarray:
        if spec.shape[1] == self.frames:
            for ticket in sorted(Path(self.tickets).iterdir()):
                try:
                    ticket.unlink()
                except FileNotFoundError:
                    continue  # another worker took it
                os._exit(1)
        return self.inner(spec)
