"""library -> audio -> features -> store, in parallel worker processes, resumable.

Each worker hashes a file, reads its tags and, unless a spectrogram of the same
bytes is already stored, decodes it in blocks (in a thread of its own, a block
ahead of the log-mel) and writes its log-mel spectrogram.  Given an embedder (see
:class:`Embedding`), the song is also embedded while its spectrogram is in memory,
so a new library is ready for recommendations after one pass: by the worker (the
CPU default, measured faster there), or by the main process in batches of many
songs' windows (``batch_device``: what keeps a GPU busy).  The main process alone
writes the catalogue, one short transaction per file, so an interrupted scan
(Ctrl-C, ``kill -9``) keeps every song finished so far and the next scan carries
on from there.  The longest files are started first, so no worker ends alone.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import select
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing import forkserver
from typing import Protocol

import numpy as np

from . import library
from .ahead import read_ahead
from .audio import stream
from .config import AudioConfig, MelConfig
from .errors import DecodeError, FeatureError, LibraryError, ModelError, ReformError, StoreError, WriteError
from .files import process_alive
from .library import Entry
from .home import Home
from .store import FileRow, SpectrogramInfo, SpectrogramStore, Tags
from .text import RENAME_HINT, listing, shown, storable

SILENCE_PEAK = 10 ** (-80 / 20)  # a file whose loudest sample is below -80 dBFS counts as silent
SILENT_LEAD_SECONDS = 30 * 60    # silent this long from the start: rejected without reading on
DIED_ALONE = ("the worker analysing it died, with no other file in flight (a crash in a decoder, "
              "or out of memory); the next scan tries it again")


class Batches(Protocol):
    """Songs in, embeddings out, windows of many songs per encoder batch, in one process
    (``reform.embed.SongBatches``): a song comes back once a batch has finished it."""

    def add(self, key: str, spec: np.ndarray) -> list[tuple[str, np.ndarray]]: ...

    def flush(self) -> list[tuple[str, np.ndarray]]: ...


class Embedding(Protocol):
    """Turns a spectrogram into a song embedding: it must pickle (hold a model path, not a
    model) and ``key`` names the embeddings it makes in the catalogue.  Called in the
    workers, it embeds one song; ``batches(device)`` embeds in the scan's own process,
    windows of many songs per batch.  ``reform.scanmodel.SpectrogramEmbedder`` is the one
    ReFORM uses."""

    key: str

    def __call__(self, spec: np.ndarray) -> np.ndarray: ...

    def load(self) -> object:
        """Load the model in this process now, once (a Ray worker does before its first song)."""

    def batches(self, device: str) -> Batches: ...


@dataclass(frozen=True)
class Analysed:
    entry: Entry
    info: SpectrogramInfo
    tags: Tags
    reused: bool          # the same bytes were already analysed: no audio work was done
    embedding: np.ndarray | None = None


@dataclass(frozen=True)
class Failed:
    entry: Entry
    reason: str
    digest: str | None = None
    retry: bool = False   # the cause can change without the file changing: try it next scan


@dataclass
class ScanSummary:
    found: int = 0               # audio files found under the scanned folders
    analysed: int = 0            # decoded and turned into spectrograms
    changed: int = 0             # of those, files the library held at that path before, rewritten since
    reused: int = 0              # known audio under a new path (moved or copied) or new tags: no audio work
    retagged: int = 0            # of those, files rewritten in place with the same audio (new tags)
    resumed: int = 0             # of those, audio no song held: analysed by a scan killed before it recorded it
    moved: int = 0
    unchanged: int = 0
    failed: int = 0              # failures found by this scan (new or changed files)
    failed_before: int = 0       # unchanged files that failed earlier and were skipped
    damaged: int = 0             # analysed with damaged parts passed over (the catalogue notes what)
    removed: int = 0
    duplicates: int = 0          # copies of the same audio in the library after the scan
    unread: dict[str, int] = field(default_factory=dict)   # music in formats not read: extension -> files
    unnamed: list[str] = field(default_factory=list)  # passed over: names not UTF-8 (bytes written out)
    vanished: dict[str, int] = field(default_factory=dict)  # folder with no audio now -> its songs, kept
    respelled: dict[str, str] = field(default_factory=dict)  # path asked for -> its name in the library
    unreached: list[str] = field(default_factory=list)   # catalogue made again: folders with no audio now
    waiting: int = 0     # catalogue made again, its music folders unknown: spectrograms whose songs are not back
    elsewhere: list[str] = field(default_factory=list)   # links passed over: to folders elsewhere in the library
    audio_seconds: float = 0.0   # audio decoded by this scan
    embedded: int = 0            # songs embedded by this scan
    embedding_model: str | None = None
    wall_seconds: float = 0.0
    freed_bytes: int = 0
    interrupted: bool = False
    failures: list[Failed] = field(default_factory=list)
    # songs analysed before whose file could not be read again for a passing cause (a file being
    # written, a permission, memory): they keep their earlier analysis, and the next scan tries again
    kept: list[Failed] = field(default_factory=list)

    def new_and_changed(self) -> str:
        """How many of the songs analysed were new and how many changed, for every interface:
        `` (1 new, 1 changed)``; empty when none changed (all were new)."""
        return f" ({self.analysed - self.changed} new, {self.changed} changed)" if self.changed else ""

    def unread_kinds(self) -> str:
        """The formats passed over, most files first, for every interface: ``.xm (2), .mid (1)``."""
        return ", ".join(f"{ext} ({n})" for ext, n in sorted(self.unread.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def songs_per_second(self) -> float:
        return self.analysed / self.wall_seconds if self.wall_seconds else 0.0


# -- worker side --------------------------------------------------------------------------------
_worker_logmel: dict[tuple, object] = {}
_worker_embedded: frozenset[str] = frozenset()  # audio that already has an embedding


def init_worker(embedded: frozenset[str] = frozenset(), scan: int | None = None) -> None:
    """Set up a worker process (a pool's, or a Ray actor's) before its first file; a pool's
    worker ends with the scan's process ``scan``."""
    import torch

    global _worker_embedded
    _worker_embedded = embedded
    torch.set_num_threads(1)  # one thread per process beat two per process (bench/ingest.py)
    if scan is not None:
        _end_with(scan)


def _end_with(pid: int) -> None:
    """End this process when process ``pid`` ends, however it ends.  A pool's workers wait
    for files on a queue whose writing end they hold too, so a scan killed outright (kill -9,
    the kernel's out-of-memory killer) left them, and the forkserver they keep alive, holding
    some 300 MB each for good."""
    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)           # readable once the process ends
        except (AttributeError, OSError):   # no pidfd (not Linux, or an old kernel): ask every 2 s
            while process_alive(pid):
                time.sleep(2.0)
        else:
            select.select([fd], [], [])
        os._exit(1)
    threading.Thread(target=watch, name="reform-end-with-scan", daemon=True).start()


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one thread for a while, then give back the caller's thread count.

    How a matrix product is split between threads can change the last bit of a float16 value
    (seen about once in fifteen test sessions on a busy machine), so a scan in the calling
    process uses one thread, as every worker of a pool does (:func:`init_worker`).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _logmel(audio_cfg: AudioConfig, mel_cfg: MelConfig):
    """One LogMel per process (torch is imported here, not when the scan starts: a scan with
    nothing to do stays instant)."""
    from .features import LogMel

    key = (audio_cfg, mel_cfg)
    if key not in _worker_logmel:
        _worker_logmel[key] = LogMel(audio_cfg, mel_cfg)
    return _worker_logmel[key]


def analyse_entry(entry: Entry, store: SpectrogramStore, audio_cfg: AudioConfig,
                  mel_cfg: MelConfig, embedding: Embedding | None = None,
                  embedded: frozenset[str] | None = None) -> Analysed | Failed:
    """Hash, tag and (unless already stored) analyse and embed one file; never raises for a
    bad file, only when the library itself cannot be written (WriteError).

    ``embedded`` names the audio that already has an embedding (default: what the worker
    was started with); reused audio outside it is embedded from its stored spectrogram.
    """
    try:
        return _analyse(entry, store, audio_cfg, mel_cfg, embedding,
                        _worker_embedded if embedded is None else embedded)
    except (WriteError, ModelError):
        raise  # the disk or the model, not the file: the scan stops and the file stays to do
    except ReformError as exc:
        return Failed(entry, exc.message)
    except MemoryError:
        return Failed(entry, "out of memory while analysing the file", retry=True)
    except PermissionError:
        return Failed(entry, "permission denied: the file cannot be read", retry=True)
    except OSError as exc:
        return Failed(entry, f"cannot read the file ({exc.strerror or exc})", retry=True)


def _same_stat(entry: Entry) -> bool:
    st = os.stat(entry.path)
    return (st.st_size, st.st_mtime_ns) == (entry.size, entry.mtime_ns)


def _changed(entry: Entry) -> Failed:
    return Failed(entry, "the file changed while it was being scanned; the next scan analyses it again",
                  retry=True)


def _analyse(entry: Entry, store: SpectrogramStore, audio_cfg: AudioConfig,
             mel_cfg: MelConfig, embedding: Embedding | None,
             embedded: frozenset[str]) -> Analysed | Failed:
    if not _same_stat(entry):
        return _changed(entry)
    if not os.path.isfile(entry.path):   # a pipe, a socket or a device named like a song
        return Failed(entry, "not a regular file (a pipe, socket or device)")
    if entry.size == 0:
        return Failed(entry, "the file is empty")
    digest = library.stored_hash(entry.path, store)
    tags = library.read_tags(entry.path, entry.root)
    stored = _stored(store, digest)
    if stored is not None:
        info, spec = stored
        vector = None
        if embedding is not None and digest not in embedded:  # e.g. a crash before it was recorded
            vector = _embed(embedding, spec)
        return Analysed(entry, info, tags, reused=True, embedding=vector)
    spec, info = analyse(entry.path, audio_cfg, mel_cfg, digest)
    if not _same_stat(entry):
        return _changed(entry)
    store.write(info, spec)
    vector = _embed(embedding, spec) if embedding is not None else None
    return Analysed(entry, info, tags, reused=False, embedding=vector)


def _stored(store: SpectrogramStore, digest: str) -> tuple[SpectrogramInfo, np.ndarray] | None:
    """The stored spectrogram of this audio, if there is one that can be read whole; a damaged
    one is removed so that the file is analysed again."""
    if not store.exists(digest):
        return None
    try:
        return store.info(digest), store.open(digest)
    except StoreError:
        store.remove(digest)
        return None


def _embed(embedding: Embedding, spec: np.ndarray) -> np.ndarray | None:
    """The song's embedding, or None when it is not finite (never stored: `reform embed` and
    `reform check` name such songs)."""
    vector = embedding(spec)
    return vector if np.isfinite(vector).all() else None


def refuse_soundless(path: str, duration: float, peak: float, audio_cfg: AudioConfig) -> None:
    """FeatureError for audio shorter than ``audio_cfg.min_duration``, or silent: there is nothing
    to recommend by (a scanned file, or a query file outside the library, alike)."""
    if duration < audio_cfg.min_duration:
        raise FeatureError(f"too short: {duration:.2f} s of audio, at least "
                           f"{audio_cfg.min_duration:g} s needed", path=path)
    if peak < SILENCE_PEAK:
        raise FeatureError("the audio is silent (no sample above -80 dBFS)", path=path)


def analyse(path: str, audio_cfg: AudioConfig, mel_cfg: MelConfig,
            digest: str = "") -> tuple[np.ndarray, SpectrogramInfo]:
    """Stream-decode a file into its clipped float16 log-mel, (channels, frames, n_mels): a
    scanned song's, and a query file's from outside the library, so that both embed alike.

    Decoding and resampling run in a thread of their own, a block ahead of the log-mel
    (``reform.ahead``), and so does the check for a silent start, which stops the decoding.
    """
    source, blocks = stream(path, audio_cfg)
    level = _Level(path, SILENT_LEAD_SECONDS * audio_cfg.sample_rate)
    mel = _logmel(audio_cfg, mel_cfg).stream(source.channels)
    parts = [mel.push(block).astype(np.float16) for block in read_ahead(level.watch(blocks))]
    duration = level.samples / audio_cfg.sample_rate
    if level.samples == 0:
        raise DecodeError("the file holds no audio samples", path=path)
    refuse_soundless(path, duration, level.peak, audio_cfg)
    parts.append(mel.finish().astype(np.float16))
    from .features import clip_top_db

    spec = clip_top_db(np.concatenate(parts, axis=1), mel_cfg.top_db)
    info = SpectrogramInfo(hash=digest, channels=spec.shape[0], frames=spec.shape[1],
                           duration=duration, sample_rate=source.sample_rate, codec=source.codec,
                           damage=source.damage.note())
    return spec, info


class _Level:
    """Counts the samples of the decoded blocks and their peak, and stops the decoding of a
    file that stays silent for ``lead`` samples from its start: hours of silence are not
    decoded to the end."""

    def __init__(self, path: str, lead: int):
        self.path, self.lead = path, lead
        self.samples, self.peak = 0, 0.0

    def watch(self, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            self.samples += block.shape[1]
            self.peak = max(self.peak, float(block.max(initial=0.0)), -float(block.min(initial=0.0)))
            if self.peak < SILENCE_PEAK and self.samples > self.lead:
                blocks.close()
                raise FeatureError(f"the audio is silent (no sample above -80 dBFS in its first "
                                   f"{SILENT_LEAD_SECONDS / 60:g} minutes)", path=self.path)
            yield block


# -- main process -------------------------------------------------------------------------------
class Pool(Protocol):
    """Runs :func:`analyse_entry` on every file to do and yields the results as they come:
    :func:`run_pool` (local processes) or ``reform.cluster.RayPool`` (a Ray cluster)."""

    def __call__(self, todo: list[Entry], store: SpectrogramStore, audio_cfg: AudioConfig,
                 mel_cfg: MelConfig, jobs: int | None, embedding: Embedding | None,
                 embedded: frozenset[str]) -> Iterator[Analysed | Failed]: ...


@contextmanager
def _workers_starting() -> Iterator[None]:
    """Hold Ctrl-C back while a pool's processes start, and raise it once they exist.

    Interrupted while importing torch, the forkserver would print a traceback; interrupted
    while asking the forkserver for a worker, the scan would clean up before that worker
    starts, and the worker would print another. So the forkserver starts with Ctrl-C ignored,
    which it and its workers keep (an interrupted scan terminates them itself).
    """
    if threading.current_thread() is not threading.main_thread():
        yield   # only the main thread may set handlers (a web job's scan runs in another)
        return
    caught: list[int] = []
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
        signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
        yield
    finally:
        signal.signal(signal.SIGINT, before)
    if caught:
        raise KeyboardInterrupt


class _Copies:
    """The files of a scan in order, holding back a file that looks like a byte-for-byte copy
    of one in flight (the same size, the same first and last 64 KB) until that one is done.

    Copies have the same size, so the longest-first order starts them side by side, and two
    workers would each decode the same audio; held back, the copy finds the first one's
    spectrogram stored and reuses it.  Only files whose size another file of the scan shares
    are read for this, so that files of one fixed length (a sample pack) still run in
    parallel unless their bytes agree.
    """

    SAMPLE = 64 * 1024

    def __init__(self, todo: list[Entry]):
        self._queue = iter(todo)
        self._sizes = Counter(e.size for e in todo)
        self._busy: Counter[object] = Counter()
        self._held: list[tuple[Entry, object]] = []

    def take(self) -> tuple[Entry, object] | None:
        """The next file to start and its key (to hand back to :meth:`done`), or None while
        every file left waits for its twin (or none is left)."""
        for i, (entry, key) in enumerate(self._held):
            if not self._busy[key]:
                del self._held[i]
                self._busy[key] += 1
                return entry, key
        for entry in self._queue:
            key = self._key(entry)
            if self._busy[key]:
                self._held.append((entry, key))
                continue
            self._busy[key] += 1
            return entry, key
        return None

    def done(self, key: object) -> None:
        self._busy[key] -= 1

    def _key(self, entry: Entry) -> object:
        if self._sizes[entry.size] < 2:
            return entry.path   # no other file of this size: no copy of anything here
        try:
            with open(entry.path, "rb") as f:
                digest = hashlib.blake2b(f.read(self.SAMPLE), digest_size=16)
                f.seek(max(0, entry.size - self.SAMPLE))
                digest.update(f.read(self.SAMPLE))
        except OSError:
            return entry.path   # the worker says why it cannot be read
        return entry.size, digest.digest()


def run_pool(todo: list[Entry], store: SpectrogramStore, audio_cfg: AudioConfig,
             mel_cfg: MelConfig, jobs: int | None, embedding: Embedding | None,
             embedded: frozenset[str]) -> Iterator[Analysed | Failed]:
    """Yield results as worker processes finish, keeping at most 2 * jobs files in flight
    (jobs None: one per core).

    A worker that dies (a crash in a native decoder, the out-of-memory killer) breaks the whole
    pool and says nothing of which file killed it.  So every file then in flight is tried again
    in a fresh pool, one at a time with nothing else in flight; one whose worker dies even so is
    recorded as failed, and the scan goes on.  Without this, a file that crashes its decoder
    would stop every scan of the library before it could be marked.
    """
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1:
        for entry in todo:
            with _one_torch_thread():   # as a pool's worker runs: the same bits whatever --jobs
                result = analyse_entry(entry, store, audio_cfg, mel_cfg, embedding, embedded)
            yield result
        return
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["reform.scan", "reform.features"] + (["reform.embed"] if embedding else []))

    def start() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=init_worker,
                                   initargs=(embedded, os.getpid()))

    pool = start()
    pending: dict[Future, tuple[Entry, object]] = {}   # each file in flight, with its key in ``copies``
    suspects: list[tuple[Entry, object]] = []          # in flight when a worker died, to try alone
    trial: tuple[Entry, object] | None = None          # the suspect in flight, alone
    copies = _Copies(todo)

    def submit(taken: tuple[Entry, object]) -> None:
        pending[pool.submit(analyse_entry, taken[0], store, audio_cfg, mel_cfg, embedding)] = taken

    def fill() -> None:
        nonlocal trial
        if trial is None and suspects:
            trial = suspects.pop(0)
            submit(trial)
        while trial is None and len(pending) < 2 * jobs and (taken := copies.take()) is not None:
            submit(taken)

    try:
        with _workers_starting():   # the first submissions start the workers
            fill()
        while pending:
            done = wait(pending, return_when=FIRST_COMPLETED).done
            broken = False
            for fut in done:
                taken, alone = pending.pop(fut), trial is not None   # a trial is alone in flight
                if alone:
                    trial = None
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken = True
                    if not alone:
                        suspects.append(taken)
                        continue
                    result = Failed(taken[0], DIED_ALONE, retry=True)
                copies.done(taken[1])
                yield result
            if broken:
                suspects.extend(pending.values())   # lost with the pool: none of them is done
                pending.clear()
                _stop(pool, store)
                pool = start()
                with _workers_starting():
                    fill()
            else:
                fill()
    finally:
        for fut in pending:
            fut.cancel()
        _stop(pool, store)


def _stop(pool: ProcessPoolExecutor, store: SpectrogramStore) -> None:
    """End a pool's workers now, not after the files in flight (an interrupted scan must stop at
    once), and delete what they were writing."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
    store.remove_dead_temporaries()


@dataclass
class Forgotten:
    """What `reform forget` did."""

    folders: list[str]   # the music folders no longer followed
    passed_over: list[str]   # folders inside music folders that scans now pass over
    songs: int           # files of the library they held (songs and failures)
    freed_bytes: int     # spectrograms deleted
    respelled: dict[str, str] = field(default_factory=dict)  # folder named -> its name in the library


def forget(home: Home, folders: list[str]) -> Forgotten:
    """Stop following music folders of the library, or pass over folders inside them (a folder
    of audiobooks or podcasts in the music), which may well still exist: their songs leave the
    catalogue, their embeddings and spectrograms go; the files themselves are not touched.  A
    folder inside a music folder is remembered as passed over, or the next scan of the music
    folder would bring it back; `reform scan` of it by name takes it in again."""
    roots = home.roots()
    given = [os.path.abspath(f) for f in folders]
    named = [library.known_spelling(f, roots, home.links()) for f in given]
    for g, f in zip(given, named):
        # a link in a music folder up to a folder holding it (a loop, which scans pass over), or to
        # a music folder: forgetting where it leads would forget that whole folder
        if g != f and library.root_of(g, roots) and (f in roots or library.under(g, f)):
            raise LibraryError(f"{shown(g)} is a link to {shown(f)}, "
                               + ("a music folder of the library" if f in roots else "a folder it lies in")
                               + ": forgetting it would forget that whole folder",
                               hint="remove the link if it is not wanted (scans pass over a link back up, and "
                                    f"`reform errors` lists it till then); to leave out {shown(f)}, name it "
                                    "itself")
    inner = [f for f in named if f not in roots and library.root_of(f, roots) and os.path.isdir(f)]
    strays = [f for f in named if f not in roots and f not in inner]
    files = [f for f in strays if library.root_of(f, roots) and os.path.isfile(f)]
    if files:   # not "not a music folder": it is in one, and forget passes over folders only
        raise LibraryError(f"forget takes folders, and this is a file of a music folder: {shown(files[0])}",
                           hint="move or delete the file (the next `reform scan` takes it out of the library), "
                                "or forget the folder it is in")
    missing = [f for f in strays if library.root_of(f, roots) and not os.path.exists(f)]
    if missing:   # in a music folder but not there: a slip, or a folder deleted since the last scan
        raise LibraryError(f"no such folder: {shown(missing[0])}",
                           hint="check the name; the songs of a folder deleted leave the library at the next "
                                "`reform scan`")
    if strays:
        listed = listing([shown(r) for r in roots], more="`reform status --json` lists them all") or "none yet"
        raise LibraryError(f"not a music folder of this library, nor a folder in one: {', '.join(map(shown, strays))}",
                           hint=f"the library follows: {listed}")
    catalogue = home.catalogue
    with catalogue.transaction():
        gone = [row.path for row in catalogue.files() if row.path in named or library.root_of(row.path, named)]
        catalogue.remove(gone)
        home.forget_roots([f for f in named if f in roots])
        left = home.roots()   # a folder passed over in a music folder no longer followed is moot
        home.set_passed_over([x for x in home.passed_over() + inner if library.root_of(x, left)])
        live = catalogue.live_hashes()
        catalogue.drop_embeddings(keep_hashes=live)
    freed = 0 if home.unfinished() else home.spectrograms.collect_garbage(live, written_before=time.time())
    return Forgotten([f for f in named if f in roots], inner, len(gone), freed,
                     {g: f for g, f in zip(given, named) if g != f})


def scan(home: Home, roots: list[str] | None = None, *, audio_cfg: AudioConfig = AudioConfig(),
         mel_cfg: MelConfig = MelConfig(), jobs: int | None = None,
         progress: Callable[[int], object] | None = None,
         on_start: Callable[[int], None] | None = None,
         embedding: Embedding | None = None, batch_device: str | None = None,
         redo: frozenset[str] = frozenset(), retry_failed: bool = False,
         forget_missing: bool = False, remember: bool = True, pool: Pool = run_pool) -> ScanSummary:
    """Bring the catalogue up to date with the music under ``roots``.

    Parameters
    ----------
    home : the library home to update
    roots : folders (or files) to scan; None rescans the folders scanned before
    remember : add ``roots`` to the folders a later scan goes through (not for a repair's files;
        nor a folder new to the library in which no file was found)
    jobs : worker processes; None uses every core
    pool : where the per-file work runs: this machine's processes, or a Ray cluster
        (``reform.cluster.RayPool``); either way this process alone writes the catalogue
    embedding : also embed every analysed song with it, unless the library holds
        embeddings of another model (they are never mixed: `reform embed` replaces them)
    batch_device : None embeds each song in the worker that analysed it; "cpu" or "cuda"
        embeds in this process on that device, windows of many songs per batch (the
        workers only analyse), and records each song with its embedding
    retry_failed : try again every file that failed before, even if it did not change
        (failures whose cause can change, like a permission, are always tried again)
    forget_missing : remove the songs of a folder named in ``roots`` (or one inside it) that now
        holds no audio at all, or is gone; by default they are kept (``summary.vanished``), since
        such a folder is far more often a disk not mounted than music deleted, and analysing it
        again costs hours.  Without ``roots`` it removes the songs whose files went from folders
        that still hold audio, and keeps a vanished folder's: a `scan --forget-missing` from cron
        while a disk is away must not empty the library
    on_start : called with the number of files that need work, before any is done
    progress : called with 1 after each such file
    redo : paths to analyse again even if they did not change (`reform check --repair`);
        songs whose spectrogram has vanished are analysed again anyway

    Ctrl-C stops the workers at once; everything finished is kept and the
    summary says ``interrupted``.
    """
    started, started_at = time.perf_counter(), time.time()
    catalogue = home.catalogue
    with catalogue.transaction():   # songs an older version named through a link within the library
        home.respell_links_within()
    remembered = roots is None
    if remembered:
        roots = home.roots()
        if not roots:
            raise LibraryError("no music folder is known yet", hint="run `reform scan FOLDER`")
    given = [os.path.abspath(r) for r in roots]
    roots = []
    for r in given:   # each under the name the library, or an earlier one of them, gives its folder
        roots.append(library.known_spelling(r, home.roots() + roots, home.links()))
    respelled = {g: r for g, r in zip(given, roots) if g != r}
    for root in roots:
        if not storable(root):
            raise LibraryError("this name is not UTF-8, so ReFORM cannot keep it in its catalogue",
                               path=root, hint=RENAME_HINT)
        # a remembered folder may be unmounted; a gone one, or a gone disk inside one, may be forgotten
        gone_known = forget_missing and library.root_of(os.path.join(root, ""), home.roots()) is not None
        if not os.path.exists(root) and not remembered and not gone_known:
            raise LibraryError("no such file or folder", path=root,
                               hint="check the name (a disk not mounted? mount it first)")
    # a folder `reform forget` passed over is wanted again when it is scanned by name (or one in it)
    passed_before = home.passed_over()
    passed_over = [x for x in passed_before
                   if remembered or not any(r == x or library.root_of(r, [x]) for r in roots)]
    with catalogue.transaction():
        home.record_settings()
        home.mark_scanning(True)   # until the scan ends: `reform status` tells an interrupted one
        if home.unfinished() and not home.roots():   # the catalogue made again knows no folder: the
            home.mark_folders_unknown()              # first ones scanned may not be all of them
        if passed_over != passed_before:
            home.set_passed_over(passed_over)

    found = library.walk([r for r in roots if os.path.exists(r)], home.roots() + roots, passed_over)
    if remember:   # a folder new to the library in which nothing was found is a slip, not music
        before = set(home.roots())
        holding = {library.root_of(x.path, roots) or x.path for x in [*found.entries, *found.problems]}
        with catalogue.transaction():
            home.add_roots([r for r in roots if r in before or r in holding])
    known = {row.path: row for row in catalogue.files()}
    known_audio = {row.hash for row in known.values() if row.status == "ok" and row.hash}
    todo = library.plan(found.entries, found.problems, known, roots, home.spectrograms.feature_version,
                        retry_failed)
    # a disk mounted in a music folder, or linked into one (music/ext -> /media/disk), is a music
    # folder of its own: it may be away too
    disks = [*{**home.links(), **found.links}.values(), *home.mounts(), *found.mounts]
    disks = [d for d in dict.fromkeys(disks) if library.root_of(d, roots)]
    # a vanished folder is forgotten whole only where named (it, or a folder above it)
    vanished = {} if forget_missing and not remembered else library.vanished(todo.removed, found.entries,
                                                                             roots + disks)
    todo.removed = [row for row in todo.removed if library.root_of(row.path, vanished) is None]
    redo = set(redo) | {e.path for e in todo.unchanged  # a spectrogram deleted since: one stat each
                        if known[e.path].status == "ok" and not home.spectrograms.exists(known[e.path].hash)}
    if redo:
        todo.todo += [e for e in todo.unchanged if e.path in redo]
        todo.unchanged = [e for e in todo.unchanged if e.path not in redo]
    summary = ScanSummary(found=len(found.entries), unread=dict(found.unread), elsewhere=found.elsewhere,
                          unnamed=[shown(p) for p in found.unnamed], vanished=vanished, respelled=respelled,
                          unchanged=sum(known[e.path].status == "ok" for e in todo.unchanged),
                          failed_before=sum(known[e.path].status == "failed" for e in todo.unchanged))
    # an untagged song found before through a folder inside this music folder (`scan ~/Music/Artist/
    # Album` first) had no artist or album: the music folder's layout names them now
    named = [(e.path, *library.layout_tags(e.path, e.root)) for e in todo.unchanged
             if known[e.path].status == "ok" and None in (known[e.path].artist, known[e.path].album)]
    named = [(p, a, b) for p, a, b in named if (a and not known[p].artist) or (b and not known[p].album)]
    with catalogue.transaction():
        catalogue.fill_tags(named)
        # the names not UTF-8 under the folders scanned now, with those found before elsewhere
        home.set_unnamed([n for n in home.unnamed() if not library.root_of(n, roots) and n not in roots]
                         + found.unnamed)
        if found.links:
            home.add_links(found.links)
        if found.mounts:
            home.add_mounts(found.mounts)
        for problem in todo.problems:
            before = known.get(problem.path)
            if before is not None and before.status == "failed" and before.reason == problem.reason:
                summary.failed_before += 1  # the same loop or broken link as last time
                continue
            catalogue.put_failed(problem.path, 0, 0, problem.reason)
            summary.failed += 1
    movable: dict[str, list[FileRow]] = {}  # audio that vanished from its path may reappear
    for row in todo.removed:
        if row.status == "ok" and row.hash:
            movable.setdefault(row.hash, []).append(row)
    moved: set[str] = set()

    if embedding is not None and home.embedding_model() not in (None, embedding.key):
        embedding = None  # the library holds another model's embeddings: never mix them
    summary.embedding_model = embedding.key if embedding is not None else None
    embedded = frozenset(catalogue.embedded_hashes(embedding.key)) if embedding else frozenset()
    if on_start:
        on_start(len(todo.todo))
    here = _EmbedHere(embedding, batch_device, home.spectrograms, embedded) \
        if embedding is not None and batch_device is not None else None
    # the longest files first (size stands for length), so that no worker is left alone
    # with a long one at the end while the others wait
    todo.todo.sort(key=lambda e: e.size, reverse=True)
    try:
        for result in pool(todo.todo, home.spectrograms, audio_cfg, mel_cfg, jobs,
                           None if here else embedding, embedded):
            for ready in here.add(result) if here else [result]:
                _record(home, ready, movable, moved, summary, known, known_audio)
                if progress:
                    progress(1)
        for ready in here.flush() if here else []:
            _record(home, ready, movable, moved, summary, known, known_audio)
            if progress:
                progress(1)
    except KeyboardInterrupt:
        summary.interrupted = True  # songs waiting for their embedding are done by the next scan
    if not summary.interrupted:
        gone = [row.path for row in todo.removed if row.path not in moved]
        with catalogue.transaction():
            catalogue.remove(gone)
            if forget_missing:   # a folder that is gone, with its songs, is no longer one of the library's
                paths = [row.path for row in catalogue.files()]   # (a vanished one kept has its songs still)
                home.forget_roots([r for r in roots if not os.path.exists(r)
                                   and not any(library.root_of(p, [r]) for p in paths)])
        summary.removed = sum(row.status == "ok" for row in todo.removed if row.path not in moved)   # songs
        live = catalogue.live_hashes()
        with catalogue.transaction():
            catalogue.drop_embeddings(keep_hashes=live)
            home.mark_scanning(False)
            if home.unfinished():   # finished once every folder and disk of the library gave back its songs
                # of the folders this scan walked: another one was not looked at, not found empty
                walked = [d for d in [*home.roots(), *disks] if d in roots or library.root_of(d, roots)]
                summary.unreached = [d for d in walked if not any(
                    e.path == d or library.under(e.path, d) for e in found.entries)]
                # with no music folder known (their copy was lost with the catalogue), the folders named
                # may not be all: finished once no stored spectrogram waits for its song, or when told
                # that the songs not found are gone (the spectrograms of every other folder were deleted)
                if home.folders_unknown() and not forget_missing:   # all back, folder by folder
                    summary.waiting = sum(digest not in live for digest in home.spectrograms.digests())
                    done = not summary.waiting
                else:
                    done = set(home.roots()) <= set(roots)
                if done and not summary.unreached:
                    home.mark_finished()
        if not home.unfinished():   # else the songs not added back yet own spectrograms no row names
            summary.freed_bytes = home.spectrograms.collect_garbage(live, written_before=started_at)
    counts = catalogue.counts()
    summary.duplicates = counts["duplicates"]
    summary.wall_seconds = time.perf_counter() - started
    return summary


class _EmbedHere:
    """The scan's own process embeds what the workers analysed, many songs per batch: an
    analysed song waits here, unrecorded, until its batch is done, and is then recorded
    with its embedding in one transaction.  A song that waits when the scan is interrupted
    has its spectrogram stored; the next scan reuses it and embeds it."""

    def __init__(self, embedding: Embedding, device: str, store: SpectrogramStore,
                 embedded: frozenset[str]):
        self.embedding, self.device, self.store = embedding, device, store
        self.embedded = set(embedded)
        self.waiting: dict[str, list[Analysed]] = {}  # by audio: copies share an embedding
        self.batches: Batches | None = None          # the model loads with the first song

    def add(self, result: Analysed | Failed) -> list[Analysed | Failed]:
        """Results ready to record: this one, or those whose batch it completed."""
        if not isinstance(result, Analysed) or result.info.hash in self.embedded:
            return [result]
        digest = result.info.hash
        if digest in self.waiting:
            self.waiting[digest].append(result)
            return []
        try:
            spec = self.store.open(digest)  # just written by the worker: memory-mapped, no copy
        except StoreError:
            return [result]  # no embedding: `reform check` names the song and repairs it
        self.waiting[digest] = [result]
        if self.batches is None:
            self.batches = self.embedding.batches(self.device)
        return self._ready(self.batches.add(digest, spec))

    def flush(self) -> list[Analysed]:
        return self._ready(self.batches.flush()) if self.batches is not None else []

    def _ready(self, done: list[tuple[str, np.ndarray]]) -> list[Analysed]:
        out: list[Analysed] = []
        for digest, vector in done:
            self.embedded.add(digest)
            finite = bool(np.isfinite(vector).all())  # never stored otherwise (see _embed)
            out += [replace(r, embedding=vector if finite else None) for r in self.waiting.pop(digest)]
        return out


def _record(home: Home, result: Analysed | Failed, movable: dict[str, list[FileRow]],
            moved: set[str], summary: ScanSummary, known: dict[str, FileRow], known_audio: set[str]) -> None:
    """Write one file's result into the catalogue and count it; ``known`` holds the rows the
    catalogue had before the scan, by path, and ``known_audio`` the hashes of their songs and of
    those this scan has recorded so far (to which the file's is added)."""
    catalogue = home.catalogue
    entry = result.entry
    before = known.get(entry.path)
    if isinstance(result, Failed) and result.retry and result.reason != DIED_ALONE \
            and before is not None and before.status == "ok":
        # recorded as failed, the song lost its embedding and its spectrogram at the scan's end
        summary.kept.append(result)
        return
    with catalogue.transaction():
        if isinstance(result, Failed):
            catalogue.put_failed(entry.path, entry.size, entry.mtime_ns, result.reason, result.digest,
                                 result.retry)
            summary.failed += 1
            summary.failures.append(result)
            return
        candidates = movable.get(result.info.hash)
        was_moved = bool(candidates)
        if candidates:
            old = candidates.pop()
            catalogue.move(old.path, entry.path, entry.size, entry.mtime_ns, result.tags)
            moved.add(old.path)
            summary.moved += 1
        else:
            catalogue.put_ok(entry.path, entry.size, entry.mtime_ns, result.info, result.tags,
                             home.spectrograms.feature_version)
        if result.embedding is not None:
            if not summary.embedded:  # the first embedding names the library's embedding model
                home.set_embedding_model(summary.embedding_model)
            catalogue.put_embeddings(summary.embedding_model, [(result.info.hash, result.embedding)])
            summary.embedded += 1
    if result.reused:
        summary.reused += 1
        retagged = before is not None and before.hash == result.info.hash
        summary.retagged += retagged
        # a stored spectrogram of audio no song held, nor a file recorded before it in this scan (a
        # copy): a scan killed between writing it and recording the song
        summary.resumed += not (was_moved or retagged) and result.info.hash not in known_audio
    else:
        summary.analysed += 1
        # (not one analysed again as it was: --reanalyse, --retry-failed, a repair)
        summary.changed += before is not None and (before.size, before.mtime_ns) != (entry.size, entry.mtime_ns)
        summary.audio_seconds += result.info.duration
        summary.damaged += result.info.damage is not None
    known_audio.add(result.info.hash)
