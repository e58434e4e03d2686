"""Training examples: random 640-frame windows read from the memory-mapped spectrogram store.

Pretraining takes one random window from every channel of every song per pass,
in a shuffled order (each channel is an example of its own: the two channels
of a stereo song differ, and both are music).  The clustering phase makes each
batch from N random windows of one song, drawn from all its channels.  Every
pass is first planned (which song and channel goes in which batch) from a
generator seeded by (seed, phase, epoch), and every batch draws its window
positions from its own seed, so an interrupted run that resumes sees exactly the
batches it would have seen, whichever process reads them.

Several training processes (:mod:`reform.distributed`) share each optimizer step:
a pretraining batch is split by rows (:meth:`BatchPlan.shard`), and the one-song
batches of a clustering step are dealt out whole (:func:`shard_steps`).  Every
process draws the positions of the whole batch and reads its own rows, so the
windows are those one process would read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import DatasetError, StoreError
from .store import SpectrogramStore
from .text import album_key

PHASES = {"pretrain": 1, "cluster": 2, "probe": 3, "bank": 4}
# spectrograms kept memory-mapped at once: each map holds a file descriptor, and a library of
# thousands of songs passed the usual limit of 1024 in its first epoch ("Too many open files")
OPEN_MAPS = 256


@dataclass
class Batch:
    """Windows for one training step, with the song each window comes from."""

    x: np.ndarray                    # (B, T, M) float16 windows as stored (dB, time-major, zero on
                                     # padding): half the bytes of float32 to copy to a GPU;
                                     # loader.Step normalises them on the model's device
    mask: np.ndarray                 # (B, 1, 1, T) 1.0 on real frames, 0.0 on padding
    songs: np.ndarray                # (B,) index of each window's song in ``Windows.songs``
    x2: np.ndarray | None = None     # (B, T, M) another window of the same songs (for contrast)
    mask2: np.ndarray | None = None  # (B, 1, 1, T)
    # per view, windows of random songs to mix in underneath (augmentation), and their masks
    backgrounds: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    seed: tuple[int, ...] = ()       # the plan's seed (the batch's augmentations are drawn from it)
    total: int = 0                   # windows in the whole planned batch (B when it is not split)
    rows: slice = field(default_factory=lambda: slice(None))  # which of them this batch holds
    share: float = 1.0               # this batch's part of its optimizer step's reconstruction loss
    frames: float = 1.0              # its part of the planned batch's real frames (1 unless split)


@dataclass(frozen=True)
class BatchPlan:
    """What one batch holds, decided before any window is read: (song, channel) picks and the
    seed of the window positions.  A batch depends on its plan alone, so a reading thread can
    read batches ahead of the step and a resumed run still reads exactly the same windows."""

    picks: tuple[tuple[int, int], ...]
    seed: tuple[int, ...]
    views: int = 1
    backgrounds: bool = False   # also read, per view, a window of a random song for each row
    part: int = 0          # this process reads rows part, part + parts, ... of the picks
    parts: int = 1
    weight: float = 1.0    # the batch's part of its optimizer step (1 / songs per clustering step)

    def shard(self, part: int, parts: int) -> BatchPlan:
        """The rows of this batch that process ``part`` of ``parts`` trains on."""
        return replace(self, part=part, parts=parts)


@dataclass(frozen=True)
class Song:
    hash: str
    channels: int
    frames: int
    album: str | None = None   # the album tag (only the contrast's album share reads it)


def album_ids(songs: list[Song]) -> np.ndarray:
    """One integer per song, equal for songs of one album; a song without an album tag is
    on an album of its own.  Tags are compared as everywhere (:func:`reform.text.album_key`)."""
    ids: dict[str, int] = {}
    out = np.empty(len(songs), np.int64)
    for i, song in enumerate(songs):
        key = album_key(song.album)
        out[i] = ids.setdefault(key, len(ids)) if key else -1 - i
    return out


@dataclass(frozen=True)
class Normaliser:
    """Per-mel-bin mean and standard deviation of the training spectrograms (dB)."""

    mean: np.ndarray   # (n_mels,) float32
    std: np.ndarray    # (n_mels,) float32

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Normaliser:
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32))

    def apply(self, window_tm: np.ndarray) -> np.ndarray:
        """(..., T, M) float16/32 in dB, time-major as stored -> normalised float32 (..., M, T)."""
        x = (window_tm.astype(np.float32) - self.mean) / self.std
        return np.swapaxes(x, -1, -2)


def fit_normaliser(store: SpectrogramStore, songs: list[Song], max_frames_per_song: int = 20000,
                   seed: int = 0) -> Normaliser:
    """Mean and std per mel bin over every song, at most ``max_frames_per_song`` evenly spaced
    frames of each of its channels (so that long songs do not outweigh the others)."""
    if not songs:
        raise DatasetError("there are no analysed songs to learn from", hint="run `reform scan` first")
    rng = np.random.default_rng(seed)
    count, s1, s2 = 0, None, None
    for song in songs:
        spec = store.open(song.hash)                                   # (C, T, M) float16
        step = max(1, -(-song.frames // max_frames_per_song))         # rounded up: at most that many
        frames = spec[:, int(rng.integers(step))::step].astype(np.float64).reshape(-1, spec.shape[2])
        if not np.isfinite(frames).all():
            raise _not_finite(song)
        s1 = frames.sum(0) if s1 is None else s1 + frames.sum(0)
        s2 = (frames ** 2).sum(0) if s2 is None else s2 + (frames ** 2).sum(0)
        count += len(frames)
    mean = s1 / count
    std = np.sqrt(np.maximum(s2 / count - mean ** 2, 1e-6))
    return Normaliser(mean.astype(np.float32), std.astype(np.float32))


def _not_finite(song: Song) -> StoreError:
    """Damage in a stored spectrogram, said for what it is: the NaN it holds made training
    stop as if its learning rate had diverged."""
    return StoreError(f"spectrogram {song.hash} holds values that are not finite numbers",
                      hint="run `reform check --repair` to re-analyse the song")


class Windows:
    """Reads windows of songs from the store: training batches as stored (float16 dB, which
    :class:`reform.loader.Step` normalises on the model's device), the probe and the bank's
    windows normalised.

    Parameters
    ----------
    store : the spectrogram store
    songs : the songs to draw from (one entry per distinct audio)
    normaliser : statistics applied to every window
    window : frames per window (640)
    """

    def __init__(self, store: SpectrogramStore, songs: list[Song], normaliser: Normaliser,
                 window: int = 640):
        if not songs:
            raise DatasetError("there are no analysed songs to learn from", hint="run `reform scan` first")
        self.store, self.songs, self.normaliser, self.window = store, songs, normaliser, window
        self._maps: dict[str, np.ndarray] = {}    # the last OPEN_MAPS songs read, oldest first
        self._maps_lock = threading.Lock()        # the reading thread and the probe share them
        self.examples = [(i, c) for i, s in enumerate(songs) for c in range(s.channels)]

    def _spec(self, song: Song) -> np.ndarray:
        with self._maps_lock:
            spec = self._maps.pop(song.hash, None)
        if spec is None:
            spec = self.store.open(song.hash)
        with self._maps_lock:
            self._maps[song.hash] = spec          # now the newest
            while len(self._maps) > OPEN_MAPS:    # the oldest map closes once no window reads it
                del self._maps[next(iter(self._maps))]
        return spec

    def read(self, song: Song, channel: int, start: int, out: np.ndarray, mask: np.ndarray) -> None:
        """Fill ``out`` (window, M) float16 with one window as stored and ``mask`` (1, 1, window);
        short songs are zero-padded and the padding masked out."""
        frames = self._spec(song)[channel, start:start + self.window]   # (t, M) float16, one read
        n = len(frames)
        out[:n] = frames
        if not np.isfinite(out[:n]).all():
            raise _not_finite(song)
        out[n:] = 0.0
        mask[...] = 0.0
        mask[0, 0, :n] = 1.0

    def random_start(self, song: Song, rng: np.random.Generator) -> int:
        return int(rng.integers(0, song.frames - self.window + 1)) if song.frames > self.window else 0

    def _starts(self, picks: list[tuple[int, int]], rng: np.random.Generator) -> list[int]:
        return [self.random_start(self.songs[i], rng) for i, _ in picks]

    def _read(self, picks: list[tuple[int, int]], starts: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Windows as stored, (B, T, M) float16, and their masks."""
        n_mels = len(self.normaliser.mean)
        x = np.empty((len(picks), self.window, n_mels), np.float16)
        mask = np.empty((len(picks), 1, 1, self.window), np.float32)
        for b, ((i, c), start) in enumerate(zip(picks, starts, strict=True)):
            self.read(self.songs[i], c, start, x[b], mask[b])
        return x, mask

    def _batch(self, picks: list[tuple[int, int]], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Normalised windows (B, 1, M, T) float32, zero on padding, and their masks."""
        x, mask = self._read(picks, self._starts(picks, rng))
        return self.normalised(x, mask), mask

    def normalised(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Windows as stored (B, T, M) -> normalised (B, 1, M, T) float32, zero on padding, in
        numpy (a training step does the same in torch on its device: loader.Step)."""
        return np.where(mask > 0, self.normaliser.apply(x)[:, None], np.float32(0.0))

    def _frames(self, picks: list[tuple[int, int]], starts: list[int]) -> int:
        """Real (unpadded) frames of these windows."""
        return sum(min(self.songs[i].frames - s, self.window) for (i, _), s in zip(picks, starts, strict=True))

    def pretrain_plan(self, seed: int, epoch: int, batch_size: int, views: int = 1,
                      backgrounds: bool = False) -> list[BatchPlan]:
        """One pass: a random window of every (song, channel), shuffled, in batches of at most
        ``batch_size`` and as equal as possible, and of at least 2 (3 where 2 would leave one
        alone: at a batch size of 2, 5 windows make batches of 3 and 2).  With ``views=2`` every window comes with a
        second one from another random place (and channel) of the same song; with
        ``backgrounds`` every view of it with a window of another random song."""
        rng = np.random.default_rng([seed, PHASES["pretrain"], epoch])
        order = rng.permutation(len(self.examples))
        # equal-sized batches: a last batch of one window would break batch norm's statistics
        parts = np.array_split(order, max(1, min(-(-len(order) // batch_size), len(order) // 2)))
        return [BatchPlan(tuple(self.examples[j] for j in part), (seed, PHASES["pretrain"], epoch, b), views,
                          backgrounds) for b, part in enumerate(parts)]

    def cluster_plan(self, seed: int, epoch: int, batch_size: int, songs_per_step: int = 1) -> list[BatchPlan]:
        """One pass: for every song in a shuffled order, ``batch_size`` random windows of it.

        With ``songs_per_step`` above 1, each optimizer step averages that many one-song
        batches (each weighs 1 / songs_per_step); the last step is filled up with the first
        songs of the order again (other windows of them), so that every step is whole.
        """
        rng = np.random.default_rng([seed, PHASES["cluster"], epoch])
        weight = 1.0 / songs_per_step
        plans = []
        for b, i in enumerate(rng.permutation(len(self.songs))):
            channels = rng.integers(0, self.songs[i].channels, size=batch_size)
            plans.append(BatchPlan(tuple((int(i), int(c)) for c in channels),
                                   (seed, PHASES["cluster"], epoch, b), weight=weight))
        fill = -len(plans) % songs_per_step
        plans += [replace(plans[j], seed=(seed, PHASES["cluster"], epoch, len(plans) + j)) for j in range(fill)]
        return plans

    def load(self, plan: BatchPlan) -> Batch:
        """Read the windows a plan names (this process's rows of them), at positions drawn from
        the plan's own seed."""
        rng = np.random.default_rng(list(plan.seed))
        picks = list(plan.picks)
        starts = self._starts(picks, rng)
        mine = slice(plan.part, None, plan.parts)
        x, mask = self._read(picks[mine], starts[mine])
        songs = np.array([i for i, _ in picks])
        frames = 1.0 if plan.parts == 1 else self._frames(picks[mine], starts[mine]) / self._frames(picks, starts)
        batch = Batch(x, mask, songs[mine], seed=plan.seed, total=len(picks), rows=mine,
                      share=plan.weight * frames, frames=frames)
        if plan.views == 2:
            second = [(int(i), int(rng.integers(self.songs[i].channels))) for i in songs]
            starts2 = self._starts(second, rng)
            batch.x2, batch.mask2 = self._read(second[mine], starts2[mine])
        if plan.backgrounds:   # drawn for every row, so that each process reads its rows' own
            batch.backgrounds = tuple(self._read(*self._others(songs, rng, mine)) for _ in range(plan.views))
        return batch

    def _others(self, songs: np.ndarray, rng: np.random.Generator,
                mine: slice) -> tuple[list[tuple[int, int]], list[int]]:
        """A random (song, channel) other than each row's own song, and a start in it: the
        picks and starts of this process's rows."""
        n = len(self.songs)
        other = (songs + rng.integers(1, max(n, 2), size=len(songs))) % n   # never the row's song (n > 1)
        picks = [(int(i), int(rng.integers(self.songs[i].channels))) for i in other]
        starts = self._starts(picks, rng)
        return picks[mine], starts[mine]

    def pretrain_batches(self, seed: int, epoch: int, batch_size: int, views: int = 1) -> Iterator[Batch]:
        """The batches of :meth:`pretrain_plan`, read one after the other."""
        return (self.load(p) for p in self.pretrain_plan(seed, epoch, batch_size, views))

    def song_windows(self, per_song: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
        """``per_song`` random windows of every song, song by song: (index, (n, 1, M, T))."""
        rng = np.random.default_rng([seed, PHASES["bank"]])
        for i, song in enumerate(self.songs):
            channels = rng.integers(0, song.channels, size=per_song)
            yield i, self._batch([(i, int(c)) for c in channels], rng)[0]

    def probe(self, n_songs: int, per_song: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A fixed set of windows for watching the embedding spread: (x, mask, song index)."""
        rng = np.random.default_rng([seed, PHASES["probe"]])
        chosen = rng.permutation(len(self.songs))[:n_songs]
        picks = [(int(i), int(rng.integers(self.songs[i].channels))) for i in chosen for _ in range(per_song)]
        x, mask = self._batch(picks, rng)
        return x, mask, np.repeat(np.arange(len(chosen)), per_song)


def shard_steps(plans: list[BatchPlan], per_step: int, part: int, parts: int) -> list[BatchPlan]:
    """The whole batches that process ``part`` of ``parts`` trains on: of every optimizer step
    of ``per_step`` consecutive plans, the ``per_step / parts`` after the first ``part`` ones'."""
    if per_step % parts:
        raise DatasetError(f"{per_step} batches per step cannot be shared by {parts} processes")
    k = per_step // parts
    return [plan for s in range(0, len(plans), per_step) for plan in plans[s + part * k:s + (part + 1) * k]]
