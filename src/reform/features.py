"""Log-mel spectrograms per channel, computed in streaming blocks; pure computation, no file I/O.

The definition is librosa's default mel-spectrogram (periodic Hann window,
centred frames with zero padding, Slaney mel scale and area normalisation,
power 2) followed by a conversion to decibels:

* 0 dB is a mel power of ``MelConfig.ref`` (1.0), an absolute reference, so a
  quiet song stays quieter than a loud one;
* powers below ``amin`` (1e-10) are floored, i.e. nothing is below -100 dB;
* each song is clipped at its own maximum minus ``top_db`` (80 dB), taken over
  all of its channels so that the balance between channels is kept.

Frames are cut from the signal and sent through the FFT and the mel matrix in
chunks of a few hundred frames, which keeps the working set in cache; the mel
matrix is applied block by block, skipping the zeros of its triangles.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .config import AudioConfig, MelConfig

_CHUNK_FRAMES = 192   # frames per FFT + mel step: on a whole 3-minute channel 128-256 ran 40% faster than 512
_BIN_BLOCK = 64       # FFT bins per block of the sparse mel product


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mel = hz / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    above = hz >= min_log_hz
    mel = np.where(above, min_log_mel + np.log(np.maximum(hz, 1e-12) / min_log_hz) / logstep, mel)
    return mel


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular filters on the Slaney mel scale, each scaled to unit area (Slaney norm).

    Returns
    -------
    ndarray, shape (n_mels, n_fft // 2 + 1), float32
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window (the one used for spectral analysis)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def _sparse_blocks(fb: np.ndarray) -> list[tuple[int, int, int, int, torch.Tensor]]:
    """Split the (bins, mels) filter matrix into row blocks, each with only its nonzero columns."""
    fbt = fb.T  # (bins, mels)
    blocks = []
    for b0 in range(0, fbt.shape[0], _BIN_BLOCK):
        b1 = min(fbt.shape[0], b0 + _BIN_BLOCK)
        cols = np.flatnonzero(np.any(fbt[b0:b1] != 0, axis=0))
        if cols.size:
            c0, c1 = int(cols[0]), int(cols[-1]) + 1
            blocks.append((b0, b1, c0, c1, torch.from_numpy(np.ascontiguousarray(fbt[b0:b1, c0:c1]))))
    return blocks


class LogMel:
    """Computes mel power frames of a multi-channel signal, whole or block by block.

    Use :meth:`spectrogram` for a whole signal, or :meth:`stream` to obtain a
    :class:`MelStream` that accepts consecutive blocks.  Both return decibels
    before the per-song ``top_db`` clip; apply :func:`clip_top_db` once the
    whole song is known.
    """

    def __init__(self, audio: AudioConfig = AudioConfig(), mel: MelConfig = MelConfig()):
        self.audio, self.mel = audio, mel
        fb = mel_filterbank(audio.sample_rate, mel.n_fft, mel.n_mels, mel.fmin, mel.fmax)
        self._blocks = _sparse_blocks(fb)
        self._window = torch.from_numpy(hann_window(mel.n_fft))
        self._log_ref = 10.0 * math.log10(max(mel.amin, mel.ref))

    def frames_to_db(self, frames: torch.Tensor) -> np.ndarray:
        """Mel power in dB of already-cut frames.

        Parameters
        ----------
        frames : Tensor, shape (n, n_fft), float32 (a strided view is fine)

        Returns
        -------
        ndarray, shape (n, n_mels), float32
        """
        out = torch.empty(len(frames), self.mel.n_mels)
        for i in range(0, len(frames), _CHUNK_FRAMES):
            spec = torch.fft.rfft(frames[i:i + _CHUNK_FRAMES] * self._window, dim=1)  # (t, bins)
            power = spec.real.square() + spec.imag.square()                          # (t, bins)
            mel = out[i:i + _CHUNK_FRAMES]
            mel.zero_()
            for b0, b1, c0, c1, weights in self._blocks:
                mel[:, c0:c1].addmm_(power[:, b0:b1], weights)
        out.clamp_(min=self.mel.amin).log10_().mul_(10.0).sub_(self._log_ref)
        return out.numpy()

    def stream(self, channels: int) -> MelStream:
        return MelStream(self, channels)

    def spectrogram(self, signal: np.ndarray) -> np.ndarray:
        """Log-mel of a whole signal, before clipping.

        Parameters
        ----------
        signal : ndarray, shape (channels, samples), float32 at ``audio.sample_rate``

        Returns
        -------
        ndarray, shape (channels, frames, n_mels), float32, frames = 1 + samples // hop
        """
        s = self.stream(signal.shape[0])
        parts = [s.push(signal), s.finish()]
        return np.concatenate(parts, axis=1)


class MelStream:
    """Frames a signal that arrives in blocks, exactly as if it had come whole.

    The signal is zero-padded by ``n_fft // 2`` on both ends (centred frames);
    samples that do not yet complete a frame wait for the next block.
    """

    def __init__(self, logmel: LogMel, channels: int):
        self._logmel = logmel
        self._n_fft, self._hop = logmel.mel.n_fft, logmel.mel.hop_length
        self._buffer = np.zeros((channels, self._n_fft // 2), np.float32)  # leading pad

    def push(self, block: np.ndarray) -> np.ndarray:
        """Add samples; returns the frames they complete, shape (channels, t, n_mels)."""
        self._buffer = np.concatenate([self._buffer, block.astype(np.float32, copy=False)], axis=1)
        return self._emit()

    def finish(self) -> np.ndarray:
        """Pad the end and return the remaining frames.

        With ``n_fft // 2`` zeros on each side the total is ``1 + samples // hop``.
        """
        pad = np.zeros((self._buffer.shape[0], self._n_fft // 2), np.float32)
        self._buffer = np.concatenate([self._buffer, pad], axis=1)
        return self._emit()

    def _emit(self) -> np.ndarray:
        channels, length = self._buffer.shape
        n = 0 if length < self._n_fft else 1 + (length - self._n_fft) // self._hop
        out = np.empty((channels, n, self._logmel.mel.n_mels), np.float32)
        if n == 0:
            return out
        for c in range(channels):
            row = torch.from_numpy(np.ascontiguousarray(self._buffer[c]))
            frames = row.unfold(0, self._n_fft, self._hop)[:n]  # (n, n_fft) view, no copy
            out[c] = self._logmel.frames_to_db(frames)
        self._buffer = self._buffer[:, n * self._hop:]
        return out


def clip_top_db(spec_db: np.ndarray, top_db: float) -> np.ndarray:
    """Clip a whole song's dB spectrogram (any shape) at its maximum minus ``top_db``, in place."""
    if spec_db.size:
        np.maximum(spec_db, spec_db.max() - top_db, out=spec_db)
    return spec_db
