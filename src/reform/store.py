"""The catalogue (SQLite) and the spectrogram store (memory-mapped float16 files).

Layout of a library home::

    catalogue.db                       one row per file, WAL mode, schema in user_version
    spectrograms/<feature-version>/ab/<hash>.npy    (channels, frames, n_mels) float16
    spectrograms/<feature-version>/ab/<hash>.json   what the source file held

Spectrograms are keyed by the content hash of the file, so a moved file or a
byte-identical copy needs no new analysis, and stored time-major so that a
640-frame window of one channel is a single contiguous read (160 KB) of a
memory-mapped file.  A spectrogram is complete exactly when its ``.npy``
exists: it is written under a temporary name and renamed, after its sidecar.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .errors import StoreError

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id              INTEGER PRIMARY KEY,
    path            TEXT NOT NULL UNIQUE,
    size            INTEGER NOT NULL,
    mtime_ns        INTEGER NOT NULL,
    hash            TEXT,
    status          TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    reason          TEXT,
    duration        REAL,
    sample_rate     INTEGER,
    channels        INTEGER,
    frames          INTEGER,
    codec           TEXT,
    feature_version TEXT,
    artist          TEXT,
    album           TEXT,
    title           TEXT,
    track           INTEGER,
    year            INTEGER,
    genre           TEXT,
    updated_at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_hash ON files (hash);
CREATE TABLE IF NOT EXISTS embeddings (
    hash   TEXT NOT NULL,
    model  TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (hash, model)
);
"""

# MIGRATIONS[i] takes a catalogue from schema version i to i + 1.
MIGRATIONS = [_SCHEMA_V1]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class Tags:
    artist: str | None = None
    album: str | None = None
    title: str | None = None
    track: int | None = None
    year: int | None = None
    genre: str | None = None


@dataclass(frozen=True)
class SpectrogramInfo:
    """What a stored spectrogram was made from (its sidecar)."""

    hash: str
    channels: int
    frames: int
    duration: float      # seconds of decoded audio
    sample_rate: int     # of the source file
    codec: str


@dataclass(frozen=True)
class FileRow:
    """One catalogue row."""

    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str | None
    status: str
    reason: str | None
    duration: float | None
    sample_rate: int | None
    channels: int | None
    frames: int | None
    codec: str | None
    feature_version: str | None
    artist: str | None
    album: str | None
    title: str | None
    track: int | None
    year: int | None
    genre: str | None
    updated_at: float

    @property
    def tags(self) -> Tags:
        return Tags(self.artist, self.album, self.title, self.track, self.year, self.genre)


_ROW_FIELDS = [f.name for f in fields(FileRow)]


class SpectrogramStore:
    """Spectrogram files of one feature version; safe to use from worker processes."""

    def __init__(self, root: Path, feature_version: str):
        self.feature_version = feature_version
        self.base = Path(root)
        self.root = self.base / feature_version

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.npy"

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def info(self, digest: str) -> SpectrogramInfo:
        try:
            data = json.loads(self.path(digest).with_suffix(".json").read_text())
            return SpectrogramInfo(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise StoreError(f"the description of spectrogram {digest} is unreadable ({exc})",
                             hint="run `reform scan` again to re-analyse it") from exc

    def write(self, info: SpectrogramInfo, spec: np.ndarray) -> None:
        """Atomically store ``spec`` (channels, frames, n_mels) as float16 with its sidecar."""
        target = self.path(info.hash)
        target.parent.mkdir(parents=True, exist_ok=True)
        tag = f".tmp-{os.getpid()}"
        side_tmp = target.with_name(target.stem + ".json" + tag)
        npy_tmp = target.with_name(target.name + tag)
        side_tmp.write_text(json.dumps(asdict(info)))
        os.replace(side_tmp, target.with_suffix(".json"))
        with open(npy_tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(spec, dtype=np.float16))
            f.flush()
            os.fsync(f.fileno())
        os.replace(npy_tmp, target)

    def open(self, digest: str) -> np.ndarray:
        """Memory-map a spectrogram: (channels, frames, n_mels) float16, read-only, nothing loaded."""
        try:
            return np.load(self.path(digest), mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise StoreError(f"spectrogram {digest} is missing or unreadable ({exc})",
                             hint="run `reform scan` again to re-analyse the song") from exc

    def digests(self) -> Iterator[str]:
        if self.root.is_dir():
            for p in self.root.glob("*/*.npy"):
                yield p.stem

    def remove(self, digest: str) -> int:
        """Delete one spectrogram; returns the bytes freed."""
        freed = 0
        for p in (self.path(digest), self.path(digest).with_suffix(".json")):
            try:
                freed += p.stat().st_size
                p.unlink()
            except FileNotFoundError:
                pass
        return freed

    def collect_garbage(self, keep: set[str]) -> int:
        """Remove spectrograms not in ``keep``, temporaries, and other feature versions."""
        freed = 0
        for digest in list(self.digests()):
            if digest not in keep:
                freed += self.remove(digest)
        if self.root.is_dir():
            for tmp in self.root.glob("*/*.tmp-*"):
                freed += tmp.stat().st_size
                tmp.unlink(missing_ok=True)
        if self.base.is_dir():
            for other in self.base.iterdir():
                if other.is_dir() and other.name != self.feature_version:
                    freed += sum(p.stat().st_size for p in other.rglob("*") if p.is_file())
                    shutil.rmtree(other, ignore_errors=True)
        return freed


class Catalogue:
    """The SQLite catalogue of one library home (one writer, many readers)."""

    def __init__(self, db_path: Path, *, create: bool = True):
        self.path = Path(db_path)
        if not create and not self.path.exists():
            raise StoreError(f"no catalogue at {self.path}",
                             hint="run `reform scan FOLDER` first to build the library")
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                        check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the catalogue {self.path} is unreadable ({exc})") from exc

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"the catalogue has schema {version}, newer than this ReFORM "
                             f"({SCHEMA_VERSION})", path=self.path, hint="upgrade ReFORM")
        for step in range(version, SCHEMA_VERSION):
            self.conn.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[step]} "
                                    f"PRAGMA user_version = {step + 1}; COMMIT;")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                          "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    # -- files --------------------------------------------------------------------------------
    def files(self, status: str | None = None) -> list[FileRow]:
        sql = f"SELECT {', '.join(_ROW_FIELDS)} FROM files"
        args: tuple = ()
        if status:
            sql += " WHERE status = ?"
            args = (status,)
        return [FileRow(*r) for r in self.conn.execute(sql + " ORDER BY path", args)]

    def file(self, *, path: str | None = None, id: int | None = None) -> FileRow | None:
        key, value = ("path", path) if path is not None else ("id", id)
        row = self.conn.execute(f"SELECT {', '.join(_ROW_FIELDS)} FROM files WHERE {key} = ?",
                                (value,)).fetchone()
        return None if row is None else FileRow(*row)

    def put_ok(self, path: str, size: int, mtime_ns: int, info: SpectrogramInfo, tags: Tags,
               feature_version: str) -> None:
        values = dict(path=path, size=size, mtime_ns=mtime_ns, hash=info.hash, status="ok",
                      reason=None, duration=info.duration, sample_rate=info.sample_rate,
                      channels=info.channels, frames=info.frames, codec=info.codec,
                      feature_version=feature_version, **asdict(tags), updated_at=time.time())
        self._upsert(values)

    def put_failed(self, path: str, size: int, mtime_ns: int, reason: str,
                   digest: str | None = None) -> None:
        values = dict(path=path, size=size, mtime_ns=mtime_ns, hash=digest, status="failed",
                      reason=reason, duration=None, sample_rate=None, channels=None, frames=None,
                      codec=None, feature_version=None, artist=None, album=None, title=None,
                      track=None, year=None, genre=None, updated_at=time.time())
        self._upsert(values)

    def _upsert(self, values: dict) -> None:
        cols = list(values)
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "path")
        self.conn.execute(f"INSERT INTO files ({', '.join(cols)}) VALUES "
                          f"({', '.join('?' for _ in cols)}) "
                          f"ON CONFLICT (path) DO UPDATE SET {updates}", list(values.values()))

    def move(self, old_path: str, new_path: str, size: int, mtime_ns: int, tags: Tags) -> None:
        """Give a row a new path, keeping its id (and so its place in playlists and the web page)."""
        self.conn.execute("DELETE FROM files WHERE path = ?", (new_path,))
        self.conn.execute("UPDATE files SET path = ?, size = ?, mtime_ns = ?, artist = ?, album = ?, "
                          "title = ?, track = ?, year = ?, genre = ?, updated_at = ? WHERE path = ?",
                          (new_path, size, mtime_ns, *asdict(tags).values(), time.time(), old_path))

    def remove(self, paths: Iterable[str]) -> int:
        cur = self.conn.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in paths))
        return cur.rowcount

    def live_hashes(self) -> set[str]:
        rows = self.conn.execute("SELECT DISTINCT hash FROM files WHERE status = 'ok'")
        return {r[0] for r in rows}

    def counts(self) -> dict[str, int]:
        row = self.conn.execute(
            "SELECT COUNT(*) FILTER (WHERE status = 'ok'), COUNT(*) FILTER (WHERE status = 'failed'),"
            " COUNT(DISTINCT hash) FILTER (WHERE status = 'ok'),"
            " COALESCE(SUM(duration) FILTER (WHERE status = 'ok'), 0) FROM files").fetchone()
        return {"songs": row[0], "failed": row[1], "unique_audio": row[2],
                "duplicates": row[0] - row[2], "seconds": row[3]}

    # -- embeddings ---------------------------------------------------------------------------
    def put_embeddings(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        self.conn.executemany(
            "INSERT INTO embeddings (hash, model, vector) VALUES (?, ?, ?) "
            "ON CONFLICT (hash, model) DO UPDATE SET vector = excluded.vector",
            ((h, model, np.asarray(v, np.float32).tobytes()) for h, v in items))

    def embeddings(self, model: str) -> dict[str, np.ndarray]:
        rows = self.conn.execute("SELECT hash, vector FROM embeddings WHERE model = ?", (model,))
        return {h: np.frombuffer(v, np.float32) for h, v in rows}

    def embedding_models(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT model, COUNT(*) FROM embeddings GROUP BY model")
        return dict(rows.fetchall())

    def drop_embeddings(self, keep_hashes: set[str] | None = None, model: str | None = None) -> None:
        """Forget every embedding of ``model``, and/or those of songs whose hash is not in
        ``keep_hashes``; with neither argument nothing is dropped."""
        if model is not None:
            self.conn.execute("DELETE FROM embeddings WHERE model = ?", (model,))
        if keep_hashes is not None:
            stale = [(h,) for (h,) in self.conn.execute("SELECT DISTINCT hash FROM embeddings")
                     if h not in keep_hashes]
            self.conn.executemany("DELETE FROM embeddings WHERE hash = ?", stale)

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class Home:
    """A library home folder: the catalogue, the spectrograms and the trained models."""

    def __init__(self, path: str | os.PathLike, feature_version: str, *, create: bool = True):
        self.path = Path(path).expanduser().resolve()
        if create:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the library home ({exc.strerror})",
                                 path=self.path) from exc
        elif not (self.path / "catalogue.db").exists():
            raise StoreError(f"no library at {self.path}",
                             hint="run `reform scan FOLDER` to build one, or pass --home")
        self.catalogue = Catalogue(self.path / "catalogue.db", create=create)
        self.spectrograms = SpectrogramStore(self.path / "spectrograms", feature_version)
        self.models = self.path / "models"

    def close(self) -> None:
        self.catalogue.close()
