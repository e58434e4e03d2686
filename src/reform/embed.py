"""Song embeddings from a trained model: every window of every channel, aggregated per song.

A song is cut into 640-frame windows every ``hop`` frames (320: half a window),
plus one window ending on the last frame so that the end of the song counts; a
song shorter than a window is one zero-padded window.  All windows of all
channels go through the encoder, and the song's embedding is the mean of the
window embeddings, L2-normalised.  Embeddings are stored per audio content
(hash) under the model's version, so a new model never mixes with an old one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .checkpoint import Bundle
from .dataset import Normaliser
from .errors import EmbedError
from .store import Catalogue, SpectrogramStore

DEFAULT_HOP = 320
BATCH_WINDOWS = 64


def window_starts(frames: int, window: int, hop: int = DEFAULT_HOP) -> list[int]:
    """Start frames of the windows that cover a song of ``frames`` frames."""
    if frames <= window:
        return [0]
    starts = list(range(0, frames - window + 1, hop))
    if starts[-1] != frames - window:
        starts.append(frames - window)
    return starts


def song_windows(spec: np.ndarray, normaliser: Normaliser, window: int,
                 hop: int = DEFAULT_HOP) -> np.ndarray:
    """All normalised windows of all channels of one song.

    Parameters
    ----------
    spec : ndarray, shape (channels, frames, n_mels), dB (float16 from the store is fine)

    Returns
    -------
    ndarray, shape (n_windows, 1, n_mels, window), float32, padding (if any) is 0
    """
    channels, frames, n_mels = spec.shape
    starts = window_starts(frames, window, hop)
    out = np.zeros((channels * len(starts), 1, n_mels, window), np.float32)
    i = 0
    for c in range(channels):
        for s in starts:
            chunk = spec[c, s:s + window]
            out[i, 0, :, :len(chunk)] = normaliser.apply(chunk)
            i += 1
    return out


class Embedder:
    """Runs the encoder of a bundle over windows, in batches, in inference mode."""

    def __init__(self, bundle: Bundle, hop: int = DEFAULT_HOP, precision: str = "bfloat16"):
        self.bundle, self.hop = bundle, hop
        self.window = bundle.cfg.window_frames
        self.bf16 = precision == "bfloat16"
        self.model = bundle.model.eval().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def windows(self, x: np.ndarray) -> np.ndarray:
        """(n, 1, n_mels, window) -> (n, D) float32 window embeddings."""
        out = []
        for b in range(0, len(x), BATCH_WINDOWS):
            batch = torch.from_numpy(x[b:b + BATCH_WINDOWS]).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                out.append(self.model.encoder(batch)[-1].float())
        return torch.cat(out).numpy()

    def song(self, spec: np.ndarray) -> np.ndarray:
        """One song's embedding from its spectrogram (channels, frames, n_mels): (D,) unit length."""
        return aggregate(self.windows(song_windows(spec, self.bundle.normaliser, self.window, self.hop)))

    def songs(self, specs: Iterator[tuple[str, np.ndarray]]) -> Iterator[tuple[str, np.ndarray]]:
        """Embed many songs, packing windows of several songs into each encoder batch."""
        pending: list[tuple[str, int]] = []
        chunks: list[np.ndarray] = []
        size = 0
        for key, spec in specs:
            w = song_windows(spec, self.bundle.normaliser, self.window, self.hop)
            pending.append((key, len(w)))
            chunks.append(w)
            size += len(w)
            if size >= BATCH_WINDOWS:
                yield from self._flush(pending, chunks)
                pending, chunks, size = [], [], 0
        if pending:
            yield from self._flush(pending, chunks)

    def _flush(self, pending, chunks) -> Iterator[tuple[str, np.ndarray]]:
        emb = self.windows(np.concatenate(chunks))
        at = 0
        for key, n in pending:
            yield key, aggregate(emb[at:at + n])
            at += n


def aggregate(window_embeddings: np.ndarray) -> np.ndarray:
    """Mean of the window embeddings, scaled to unit length: (n, D) -> (D,)."""
    mean = window_embeddings.mean(axis=0)
    norm = np.linalg.norm(mean)
    return (mean / norm if norm > 0 else mean).astype(np.float32)


@dataclass
class EmbedSummary:
    model: str
    embedded: int
    unchanged: int
    seconds: float
    audio_seconds: float

    @property
    def songs_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


def embed_library(catalogue: Catalogue, store: SpectrogramStore, bundle: Bundle, *,
                  hop: int = DEFAULT_HOP, on_start: Callable[[int], None] | None = None,
                  progress: Callable[[int], None] | None = None) -> EmbedSummary:
    """Embed every analysed song that has no embedding from this model yet."""
    started = time.perf_counter()
    if bundle.feature_version != store.feature_version:
        raise EmbedError("the model was trained on other spectrogram settings than this library's",
                         hint="train a model on this library with `reform train`")
    rows = {}
    for row in catalogue.files(status="ok"):
        rows.setdefault(row.hash, row)
    if not rows:
        raise EmbedError("the library has no analysed songs", hint="run `reform scan FOLDER` first")
    done = set(catalogue.embeddings(bundle.version))
    todo = [h for h in rows if h not in done]
    if on_start:
        on_start(len(todo))
    embedder = Embedder(bundle, hop)
    batch: list[tuple[str, np.ndarray]] = []
    specs = ((h, store.open(h)) for h in todo)
    for key, vector in embedder.songs(specs):
        batch.append((key, vector))
        if progress:
            progress(1)
        if len(batch) >= 64:  # commit often: an interrupted run keeps what it embedded
            with catalogue.transaction():
                catalogue.put_embeddings(bundle.version, batch)
            batch = []
    if batch:
        with catalogue.transaction():
            catalogue.put_embeddings(bundle.version, batch)
    with catalogue.transaction():
        catalogue.set_meta("embedding_model", bundle.version)
        for model in catalogue.embedding_models():
            if model != bundle.version:
                catalogue.drop_embeddings(model=model)  # never mix two models' embeddings
    return EmbedSummary(model=bundle.version, embedded=len(todo), unchanged=len(done & set(rows)),
                        seconds=time.perf_counter() - started,
                        audio_seconds=sum(rows[h].duration for h in todo))


def spectrogram_of_file(path: str, audio_cfg, mel_cfg) -> np.ndarray:
    """Analyse a file that is not in the library, as a scan would: (channels, frames, n_mels)."""
    from .audio import decode
    from .features import LogMel, clip_top_db

    audio, _ = decode(path, audio_cfg)
    if audio.shape[1] == 0:
        raise EmbedError("the file holds no audio", path=path)
    spec = clip_top_db(LogMel(audio_cfg, mel_cfg).spectrogram(audio), mel_cfg.top_db)
    return spec.astype(np.float16)  # the precision of the store, so it embeds like a scanned song
