"""Song embeddings from a trained model: every window of every channel, aggregated per song.

A song is cut into 640-frame windows every ``hop`` frames (320: half a window),
plus one window ending on the last frame so that the end of the song counts; a
song shorter than a window is one zero-padded window.  All windows of all
channels go through the encoder.  The song's embedding is the mean of the
window embeddings followed by their standard deviation (how much the music
moves within the song), scaled to unit length; the mean alone, and the same with the
last feature map's channel statistics beside it, are selectable (docs/method.md has the
measurements).  Embeddings are stored per audio content
(hash) under a key made of the model's version and these settings, so nothing
made by one model or one setting is ever mixed with another.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from .checkpoint import Bundle
from .config import EmbedConfig
from .dataset import Normaliser
from .device import autocast
from .device import resolve as resolve_device
from .errors import EmbedError, StoreError
from .model import inference_encoder
from .store import Catalogue, SpectrogramStore, one_per_recording

# Windows per encoder batch on the CPU: with the shipped model on one core, 16 windows ran at
# 1150 windows/s, 64 at 740 (the first layers' activations stay in cache); a GPU gets 1024.
BATCH_WINDOWS = 16
GPU_BATCH_WINDOWS = 1024


def window_starts(frames: int, window: int, hop: int = EmbedConfig.hop) -> list[int]:
    """Start frames of the windows that cover a song of ``frames`` frames."""
    if frames <= window:
        return [0]
    starts = list(range(0, frames - window + 1, hop))
    if starts[-1] != frames - window:
        starts.append(frames - window)
    return starts


def song_windows(spec: np.ndarray, normaliser: Normaliser, window: int,
                 hop: int = EmbedConfig.hop) -> np.ndarray:
    """All normalised windows of all channels of one song.

    Parameters
    ----------
    spec : ndarray, shape (channels, frames, n_mels), dB (float16 from the store is fine)

    Returns
    -------
    ndarray, shape (n_windows, 1, n_mels, window), float32, padding (if any) is 0
    """
    song = np.ascontiguousarray(normaliser.apply(spec))
    return _cut(song, _places(spec.shape, window, hop), window)


def _places(shape: tuple[int, int, int], window: int, hop: int) -> list[tuple[int, int]]:
    """(channel, start frame) of every window of a song of ``shape`` (channels, frames, n_mels)."""
    starts = window_starts(shape[1], window, hop)
    return [(c, s) for c in range(shape[0]) for s in starts]


def _cut(song: np.ndarray, places: list[tuple[int, int]], window: int) -> np.ndarray:
    """The windows at ``places`` of a normalised song (channels, n_mels, frames), zero-padded:
    (len(places), 1, n_mels, window) float32."""
    out = np.zeros((len(places), 1, song.shape[1], window), np.float32)
    for i, (c, s) in enumerate(places):
        chunk = song[c, :, s:s + window]
        out[i, 0, :, :chunk.shape[1]] = chunk
    return out


class Embedder:
    """Runs the encoder of a bundle over windows, in batches, in inference mode (batch norms
    folded into the layers before them), on the CPU or a GPU (``device``: auto, cpu, cuda)."""

    def __init__(self, bundle: Bundle, cfg: EmbedConfig = EmbedConfig(), precision: str = "bfloat16",
                 device: str = "cpu"):
        self.bundle, self.cfg, self.hop = bundle, cfg, cfg.hop
        self.key = cfg.key(bundle.version)
        self.window = bundle.cfg.window_frames
        self.precision = precision
        self.device = resolve_device(device)
        self.batch_windows = BATCH_WINDOWS if self.device.type == "cpu" else GPU_BATCH_WINDOWS
        encoder = inference_encoder(bundle.model.encoder, map_statistics=cfg.aggregation.endswith("+map"))
        self.encoder = encoder.to(self.device, memory_format=torch.channels_last)

    @torch.inference_mode()
    def windows(self, x: np.ndarray) -> np.ndarray:
        """(n, 1, n_mels, window) -> (n, D) float32 window embeddings, (n, D + 2C) with the
        last feature map's channel statistics when the aggregation needs them."""
        out = []
        for b in range(0, len(x), self.batch_windows):
            batch = torch.from_numpy(x[b:b + self.batch_windows]).to(self.device, non_blocking=True)
            with autocast(self.device, self.precision):
                out.append(self.encoder(batch.contiguous(memory_format=torch.channels_last)).float())
        return torch.cat(out).cpu().numpy()

    def aggregate(self, windows: np.ndarray) -> np.ndarray:
        """One song's vector from the rows :meth:`windows` gave, by this embedder's aggregation."""
        return aggregate(windows, self.cfg.aggregation, self.bundle.cfg.embedding_dim)

    def song(self, spec: np.ndarray) -> np.ndarray:
        """One song's embedding from its spectrogram (channels, frames, n_mels): (D,) unit length.

        Windows are cut one encoder batch at a time (the same batches as all at once), so a
        long song costs the memory of its normalised spectrogram, not of all its windows:
        each frame is in two windows, in float32, four times the stored float16 spectrogram.
        """
        batches = SongBatches(self)
        (_, vector), = batches.add(None, spec) + batches.flush()
        return vector

    def songs(self, specs: Iterator[tuple[str, np.ndarray]]) -> Iterator[tuple[str, np.ndarray]]:
        """Embed many songs, packing windows of several songs into each encoder batch."""
        batches = SongBatches(self)
        for key, spec in specs:
            yield from batches.add(key, spec)
        yield from batches.flush()


class SongBatches:
    """Windows of several songs packed into full encoder batches, songs in, embeddings out.

    Songs are added one at a time; every full batch of windows goes through the encoder at
    once, and each song whose windows are all done comes back with its embedding, in the
    order the songs were added.  Windows are cut only when their batch runs, so the songs
    waiting cost their normalised spectrograms, not all their windows.  This is how one
    process embeds what many scan workers analyse: on a GPU, batches of many songs keep
    the card busy.  ``key`` names the embeddings, as ``reform.scan.Embedding.key`` does.
    """

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self.key = embedder.key
        self._songs: list[_Waiting] = []  # in the order added; the first ones are being cut
        self._ready = 0                   # windows added and not yet through the encoder

    def add(self, key, spec: np.ndarray) -> list[tuple[object, np.ndarray]]:
        """Queue a song (channels, frames, n_mels); return the songs finished by full batches."""
        e = self.embedder
        song = np.ascontiguousarray(e.bundle.normaliser.apply(spec))
        places = _places(spec.shape, e.window, e.hop)
        self._songs.append(_Waiting(key, song, places))
        self._ready += len(places)
        done: list[tuple[object, np.ndarray]] = []
        while self._ready >= e.batch_windows:
            done += self._run(e.batch_windows)
        return done

    def flush(self) -> list[tuple[object, np.ndarray]]:
        """Embed every window still waiting, in batches; return the songs they finish."""
        done: list[tuple[object, np.ndarray]] = []
        while self._ready:
            done += self._run(min(self._ready, self.embedder.batch_windows))
        return done

    def __len__(self) -> int:
        """Songs added and not yet returned."""
        return len(self._songs)

    def _run(self, n: int) -> list[tuple[object, np.ndarray]]:
        """Cut the next ``n`` windows from the waiting songs and embed them in one batch."""
        e = self.embedder
        cuts, owners, wanted = [], [], n
        for waiting in self._songs:
            take = waiting.places[waiting.cut:waiting.cut + wanted]
            if take:
                cuts.append(_cut(waiting.song, take, e.window))
                owners.append((waiting, len(take)))
                waiting.cut += len(take)
                wanted -= len(take)
            if not wanted:
                break
        emb = e.windows(np.concatenate(cuts) if len(cuts) > 1 else cuts[0])
        at = 0
        for waiting, count in owners:
            waiting.parts.append(emb[at:at + count])
            at += count
        self._ready -= n
        done = []
        while self._songs and self._songs[0].finished:
            waiting = self._songs.pop(0)
            done.append((waiting.key, e.aggregate(np.concatenate(waiting.parts))))
        return done


@dataclass
class _Waiting:
    """A song in :class:`SongBatches`: its normalised spectrogram and the windows done so far."""

    key: object
    song: np.ndarray                    # (channels, n_mels, frames) float32, normalised
    places: list[tuple[int, int]]       # (channel, start frame) of every window
    cut: int = 0                        # windows cut so far
    parts: list[np.ndarray] = field(default_factory=list)  # their embeddings, (n, D) each

    @property
    def finished(self) -> bool:
        return sum(len(p) for p in self.parts) == len(self.places)


AGGREGATIONS = ("meanstd", "mean", "unitmeanstd", "unitmean", "meanstd+map")


def aggregate(window_embeddings: np.ndarray, how: str = EmbedConfig.aggregation,
              embedding_dim: int | None = None) -> np.ndarray:
    """One song vector from its window embeddings, scaled to unit length.

    (n, D) -> (2D,) for "meanstd" (mean, then standard deviation), (D,) for "mean".
    The "unit" forms first scale every window embedding to unit length, as the
    contrast losses compare them (by direction only).  "meanstd+map" takes windows of
    (n, D + 2C), the embedding then the last feature map's channel statistics
    (``embedding_dim`` = D says where they split), aggregates both parts by "meanstd"
    and gives each part the same weight: (2D + 4C,).
    """
    if how == "meanstd+map":
        if embedding_dim is None:
            raise ValueError("meanstd+map needs the embedding's size to split the window vectors")
        parts = [aggregate(window_embeddings[:, :embedding_dim], "meanstd"),
                 aggregate(window_embeddings[:, embedding_dim:], "meanstd")]
        return (np.concatenate(parts) / np.sqrt(2.0)).astype(np.float32)
    if how.startswith("unit"):
        norms = np.linalg.norm(window_embeddings, axis=1, keepdims=True)
        window_embeddings = window_embeddings / np.where(norms > 0, norms, 1.0)
    vector = window_embeddings.mean(axis=0)
    if how.endswith("meanstd"):
        vector = np.concatenate([vector, window_embeddings.std(axis=0)])
    norm = np.linalg.norm(vector)
    return (vector / norm if norm > 0 else vector).astype(np.float32)


@dataclass
class EmbedSummary:
    model: str
    embedded: int
    unchanged: int
    seconds: float
    audio_seconds: float
    damaged: list[str] = field(default_factory=list)  # hashes whose spectrogram is unusable

    @property
    def songs_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


def embed_library(catalogue: Catalogue, store: SpectrogramStore, bundle: Bundle, *,
                  cfg: EmbedConfig = EmbedConfig(), on_start: Callable[[int], None] | None = None,
                  progress: Callable[[int], None] | None = None, device: str = "cpu") -> EmbedSummary:
    """Embed every analysed song that has no embedding from this model yet."""
    started = time.perf_counter()
    if bundle.feature_version != store.feature_version:
        raise EmbedError("the model was trained on other spectrogram settings than this library's",
                         hint="train a model on this library with `reform train`")
    rows = one_per_recording(catalogue.files(status="ok"))
    if not rows:
        raise EmbedError("the library has no analysed songs", hint="run `reform scan FOLDER` first")
    embedder = Embedder(bundle, cfg, device=device)
    done = set(catalogue.embedding_matrix(embedder.key)[0])   # a damaged vector is embedded again
    todo = [h for h in rows if h not in done]
    if on_start:
        on_start(len(todo))
    batch: list[tuple[str, np.ndarray]] = []
    damaged: list[str] = []
    for key, vector in embedder.songs(_readable(store, todo, damaged)):
        if progress:
            progress(1)
        if not np.isfinite(vector).all():  # a damaged spectrogram: never store a NaN embedding
            damaged.append(key)
            continue
        batch.append((key, vector))
        if len(batch) >= 64:  # commit often: an interrupted run keeps what it embedded
            with catalogue.transaction():
                catalogue.put_embeddings(embedder.key, batch)
            batch = []
    if batch:
        with catalogue.transaction():
            catalogue.put_embeddings(embedder.key, batch)
    with catalogue.transaction():
        keep_recent(catalogue, embedder.key)
    return EmbedSummary(model=embedder.key, embedded=len(todo) - len(damaged),
                        unchanged=len(done & set(rows)), seconds=time.perf_counter() - started,
                        audio_seconds=sum(rows[h].duration for h in todo), damaged=damaged)


KEPT_MODELS = 3        # the models whose embeddings a library keeps: the one in use and the two before it
RECENT_MODELS = "embedding_models_recent"   # catalogue meta: their keys as JSON, the one in use first


def keep_recent(catalogue: Catalogue, key: str) -> None:
    """Make ``key``'s embeddings the library's (queries read no other: two models' are never
    mixed), and keep those of the models used before it, up to :data:`KEPT_MODELS` in all: going
    back to one with `reform use` needs no new `reform embed` (hours on a large library: its
    embeddings were all deleted).  Older models' embeddings are deleted."""
    try:
        before = json.loads(catalogue.get_meta(RECENT_MODELS) or "[]")
    except ValueError:
        before = []
    stored = catalogue.embedding_models()
    used = [catalogue.get_meta("embedding_model")] + (before if isinstance(before, list) else [])
    recent = list(dict.fromkeys([key] + [m for m in used if isinstance(m, str) and m in stored]))[:KEPT_MODELS]
    for model in stored:
        if model not in recent:
            catalogue.drop_embeddings(model=model)
    catalogue.set_meta("embedding_model", key)
    catalogue.set_meta(RECENT_MODELS, json.dumps(recent))


def _readable(store: SpectrogramStore, hashes: list[str],
              damaged: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    """The stored spectrograms that can be opened; the others are noted in ``damaged``."""
    for h in hashes:
        try:
            yield h, store.open(h)
        except StoreError:
            damaged.append(h)
