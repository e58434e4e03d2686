"""The catalogue (SQLite) and the spectrogram store (memory-mapped float16 files) of a library
home (whose layout :mod:`reform.home` owns).

    catalogue.db                       one row per file, WAL mode, schema in user_version
    spectrograms/<feature-version>/ab/<hash>.npy    (channels, frames, n_mels) float16
    spectrograms/<feature-version>/ab/<hash>.json   what the source file held

Spectrograms are keyed by the content hash of the file, so a moved file or a
copy of the same audio needs no new analysis, and stored time-major so that a
640-frame window of one channel is a single contiguous read (160 KB) of a
memory-mapped file.  A spectrogram is complete exactly when its ``.npy``
exists: it is written under a temporary name and renamed, after its sidecar.

A catalogue is created whole (built under a temporary name, then linked into
place), so an existing catalogue that is empty, unreadable or of another
schema is never taken for a new library: it is refused with a hint to run
``reform check --repair``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .errors import FeatureError, StoreError, WriteError
from .files import replacing, temporary_name, write_error, write_text, writer_alive
from .text import many_artists, name_key, search_words, song_label

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

# Version 2: failures whose cause can change (permission, memory) are retried; the players'
# play log (`reform mpd` records what played; `reform playlists --most-played` reads it).
_SCHEMA_V2 = """
ALTER TABLE files ADD COLUMN retry INTEGER NOT NULL DEFAULT 0;
UPDATE files SET retry = 1 WHERE status = 'failed' AND (reason LIKE 'permission denied%'
    OR reason LIKE 'cannot read the file%' OR reason LIKE 'out of memory%');
CREATE TABLE IF NOT EXISTS plays (
    hash      TEXT NOT NULL,
    path      TEXT NOT NULL,
    played_at REAL NOT NULL,
    player    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS plays_hash ON plays (hash);
"""

# Version 3: every change to the embeddings is logged (by triggers, so no writer can forget
# it), so the home's stored search index can take in just what changed since it was written
# (reform.songindex); the log's last number is the embeddings' revision.  The catalogue gets an
# identity, so an index is never taken for that of a catalogue rebuilt in its place.
CATALOGUE_ID = "catalogue_id"
_SCHEMA_V3 = f"""
CREATE TABLE IF NOT EXISTS embedding_changes (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS embedding_added AFTER INSERT ON embeddings
    BEGIN INSERT INTO embedding_changes (hash) VALUES (NEW.hash); END;
CREATE TRIGGER IF NOT EXISTS embedding_changed AFTER UPDATE ON embeddings
    BEGIN INSERT INTO embedding_changes (hash) VALUES (NEW.hash); END;
CREATE TRIGGER IF NOT EXISTS embedding_removed AFTER DELETE ON embeddings
    BEGIN INSERT INTO embedding_changes (hash) VALUES (OLD.hash); END;
INSERT OR REPLACE INTO meta (key, value) VALUES ('{CATALOGUE_ID}', lower(hex(randomblob(16))));
"""


def _schema_v4(fts5: bool) -> str:
    """Version 4: each file's case-folded file name and normalised search words
    (reform.text), kept in step with ``files`` by triggers (so in the writer's transaction, and
    no writer can forget them), so that a query by words or file name is an indexed lookup,
    not a pass over every row in Python (30.7 s at a million songs).  The words get an FTS5
    trigram index, which finds any substring of 3 characters or more; without FTS5 (an SQLite
    built without it) the words are scanned in SQL instead, with the same answers.  The
    triggers call Python functions: every connection that writes ``files`` registers them
    (_register_functions)."""
    words = "reform_search_words(NEW.artist, NEW.album, NEW.title, NEW.path)"
    script = f"""
CREATE TABLE IF NOT EXISTS song_words (
    id    INTEGER PRIMARY KEY,   -- files.id
    name  TEXT NOT NULL,         -- the file name, case-folded
    words TEXT NOT NULL          -- reform.text.search_words
);
CREATE INDEX IF NOT EXISTS song_words_name ON song_words (name);
INSERT OR REPLACE INTO song_words (id, name, words)
    SELECT id, reform_name_key(path), reform_search_words(artist, album, title, path) FROM files;
CREATE TRIGGER IF NOT EXISTS song_words_added AFTER INSERT ON files BEGIN
    INSERT OR REPLACE INTO song_words (id, name, words) VALUES (NEW.id, reform_name_key(NEW.path), {words});
END;
CREATE TRIGGER IF NOT EXISTS song_words_changed AFTER UPDATE OF artist, album, title, path ON files BEGIN
    UPDATE song_words SET name = reform_name_key(NEW.path), words = {words} WHERE id = NEW.id;
END;
CREATE TRIGGER IF NOT EXISTS song_words_removed AFTER DELETE ON files BEGIN
    DELETE FROM song_words WHERE id = OLD.id;
END;
"""
    if fts5:  # an index of the words' trigrams that reads them from song_words (no second copy)
        script += """
CREATE VIRTUAL TABLE IF NOT EXISTS song_words_fts USING fts5(words, content = 'song_words',
    content_rowid = 'id', tokenize = 'trigram case_sensitive 1');
INSERT INTO song_words_fts (song_words_fts) VALUES ('rebuild');
CREATE TRIGGER IF NOT EXISTS song_words_fts_added AFTER INSERT ON song_words BEGIN
    INSERT INTO song_words_fts (rowid, words) VALUES (NEW.id, NEW.words);
END;
CREATE TRIGGER IF NOT EXISTS song_words_fts_changed AFTER UPDATE ON song_words BEGIN
    INSERT INTO song_words_fts (song_words_fts, rowid, words) VALUES ('delete', OLD.id, OLD.words);
    INSERT INTO song_words_fts (rowid, words) VALUES (NEW.id, NEW.words);
END;
CREATE TRIGGER IF NOT EXISTS song_words_fts_removed AFTER DELETE ON song_words BEGIN
    INSERT INTO song_words_fts (song_words_fts, rowid, words) VALUES ('delete', OLD.id, OLD.words);
END;
"""
    return script


def _fts5_trigram() -> bool:
    """Whether this Python's SQLite has FTS5 and its trigram tokenizer (SQLite 3.34+)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'trigram')")
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


# Version 5: the search words and file names again, as reform.text.norm now drops every mark (the
# vowel signs of Devanagari split its words before) and name_key composes the name (a name stored
# decomposed, as macOS writes it, was not found typed); only the rows that change are written.
_NEW_WORDS = "(SELECT reform_search_words(artist, album, title, path) FROM files WHERE files.id = song_words.id)"
_NEW_NAME = "(SELECT reform_name_key(path) FROM files WHERE files.id = song_words.id)"
_SCHEMA_V5 = (f"UPDATE song_words SET words = {_NEW_WORDS}, name = {_NEW_NAME} "
              f"WHERE words != {_NEW_WORDS} OR name != {_NEW_NAME};")

# Version 6: the same again, as a song with neither artist nor album is found by its folders' names too.
# Version 7: "Various Artists", "VA" and the like (from a tag, or a compilations folder) name no artist
# (reform.text.many_artists); the search words follow by their trigger.
_SCHEMA_V7 = "UPDATE files SET artist = NULL WHERE reform_many_artists(artist);"
# Version 8: the words again, as norm folds the Latin letters NFKD keeps (ø, æ, ß...).
# MIGRATIONS[i] takes a catalogue from schema version i to i + 1.
MIGRATIONS = [_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _schema_v4(_fts5_trigram()), _SCHEMA_V5, _SCHEMA_V5, _SCHEMA_V7,
              _SCHEMA_V5]
SCHEMA_VERSION = len(MIGRATIONS)
# the oldest schema a home that cannot be written is read in as it is: versions 5 and 6 only refresh
# derived words, so until a writer migrates it a search misses what the new words find
READABLE_SCHEMA = 4
CATALOGUE_NAME = "catalogue.db"
TABLES = frozenset({"meta", "files", "embeddings"})
CHANGES_KEPT_FROM = "changes_kept_from"   # meta: the first revision the change log still holds
REPAIR_HINT = ("run `reform check --repair` to rebuild it (the stored spectrograms are kept and "
               "reused), or use another --home")

# SQLite result codes (the low byte of sqlite_errorcode) that mean a write could not be made.
_WRITE_FAILED = {8: "read-only", 10: "disk I/O error", 13: "the disk is full", 14: "cannot open"}
_DAMAGED = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def catalogue_error(exc: sqlite3.Error, path: str | os.PathLike | None = None) -> StoreError:
    """One plain StoreError (a WriteError when a write failed) for an error SQLite raised."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = " ".join(str(exc).split())
    if code in _WRITE_FAILED or "full" in text:
        errno_of = (errno.ENOSPC if code == 13 or "full" in text or code == 10 and _disk_full(path)
                    else errno.EROFS if code in (8, 14) else errno.EIO)  # read-only, or no journal to open
        if errno_of == errno.ENOSPC and code == 10:
            text = f"{os.strerror(errno.ENOSPC)}: SQLite's {text}"
        return write_error(OSError(errno_of, text), path or "catalogue", what="the catalogue")
    if code in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
        return StoreError(f"the catalogue is busy ({text})", path=path,
                          hint="another program holds it: wait, then run the command again")
    if code == 26:      # SQLITE_NOTADB
        return StoreError("the catalogue is damaged: it is not an SQLite database", path=path, hint=REPAIR_HINT)
    return StoreError(f"the catalogue is damaged ({text})", path=path, hint=REPAIR_HINT)


def _disk_full(path: str | os.PathLike | None) -> bool:
    """Whether the disk of ``path`` is full: SQLite says "disk I/O error" when it cannot grow its
    journal there, and the user should read that the disk is full."""
    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(path or "."))).free < 1 << 20
    except OSError:
        return False


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
    damage: str | None = None   # what decoding passed over in a damaged file (audio.Damage.note)


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
    retry: bool = False   # a failure whose cause can change (permission, memory): tried again

    @property
    def tags(self) -> Tags:
        return Tags(self.artist, self.album, self.title, self.track, self.year, self.genre)

    @property
    def tagged(self) -> bool:
        """Whether it names an artist or an album: every row has a title, its file name's where
        the tags give none, so a title alone says nothing of the tags."""
        return bool(self.artist or self.album)

    @property
    def label(self) -> str:
        """``"Artist - Title"`` as every interface names the song (reform.text.song_label)."""
        return song_label(self.artist, self.title, self.path)


ROW_FIELDS = [f.name for f in fields(FileRow)]


def one_per_recording(rows: Iterable[FileRow]) -> dict[str, FileRow]:
    """One row of every recording, keyed by its content hash (by its path when it has none):
    copies of the same audio are one song everywhere, shown under their first tagged path (by
    name) whose file is there: an untagged copy named "empty.mp3" showed a tagged song under that
    name, and its missing artist let it past the artist filter.  A moved folder whose old place a
    scan keeps (an unmounted disk looks the same) leaves copies that are gone; only copies are
    looked for on disk."""
    copies: dict[str, list[FileRow]] = {}
    for row in sorted(rows, key=lambda r: r.path):
        copies.setdefault(row.hash or row.path, []).append(row)
    return {key: group[0] if len(group) == 1 else _shown_copy(group) for key, group in copies.items()}


def _shown_copy(group: list[FileRow]) -> FileRow:
    """Of copies in path order: the first tagged one whose file is there, else the first there."""
    there = [r for r in group if os.path.exists(r.path)] or group
    return next((r for r in there if r.tagged), there[0])


# In a store's folder: every spectrogram in it is stored under the hash of its audio alone
# (reform.library.content_hash).  A store made before the tags were left out of the hash lacks it.
AUDIO_HASHES = "audio-hashes"


class SpectrogramStore:
    """Spectrogram files of one feature version; safe to use from worker processes."""

    def __init__(self, root: Path, feature_version: str):
        self.feature_version = feature_version
        self.base = Path(root)
        self.root = self.base / feature_version
        # spectrograms may be stored under their whole file's hash (tags included)
        self.whole_file_hashes = self.root.is_dir() and not (self.root / AUDIO_HASHES).exists()

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
                             hint="run `reform check --repair` to re-analyse the song") from exc

    def make(self) -> None:
        """Make the store's folder where it is not yet; a new store holds only hashes of audio.
        One level at a time, never the home above it: a home moved (or deleted) while a scan ran
        was made again at its old place, holding half of its spectrograms.  OSError (a
        FileNotFoundError for a home no longer there) where it cannot be made."""
        if not self.root.is_dir():
            self.base.mkdir(exist_ok=True)
            self.root.mkdir(exist_ok=True)
            (self.root / AUDIO_HASHES).touch()

    def write(self, info: SpectrogramInfo, spec: np.ndarray) -> None:
        """Atomically store ``spec`` (channels, frames, n_mels) as float16 with its sidecar.

        Raises FeatureError for a spectrogram holding NaN or infinity (nothing is written)
        and WriteError when the disk refuses the write (no temporary file is left).
        """
        with np.errstate(over="ignore"):  # a value beyond float16 becomes inf, refused below
            data = np.ascontiguousarray(spec, dtype=np.float16)
        if not np.isfinite(data).all():
            raise FeatureError("the spectrogram holds values that are not finite numbers")
        target = self.path(info.hash)
        try:
            self.make()
            target.parent.mkdir(exist_ok=True)
        except FileNotFoundError:
            raise WriteError("the library home is not there any more (moved or deleted while this ran)",
                             path=self.base.parent, hint="run the command again with the home where it is now: "
                                                         "what was finished is kept") from None
        except OSError as exc:
            raise write_error(exc, target.parent) from exc
        write_text(target.with_suffix(".json"), json.dumps(asdict(info)))
        with replacing(target) as f:  # np.save's own tofile() reports a full disk without errno
            np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(data))
            f.write(data.data)

    def open(self, digest: str) -> np.ndarray:
        """Memory-map a spectrogram: (channels, frames, n_mels) float16, read-only, nothing loaded.

        StoreError when it is missing, unreadable, or not the shape its sidecar describes.
        """
        try:
            spec = np.load(self.path(digest), mmap_mode="r")
        except (OSError, ValueError, EOFError, OverflowError) as exc:   # (a header's shape damaged)
            # numpy takes a damaged header for pickled objects and advises loading it unsafely
            reason = "its header is damaged" if "allow_pickle" in str(exc) else str(exc)
            raise StoreError(f"spectrogram {digest} is missing or unreadable ({reason})",
                             hint="run `reform check --repair` to re-analyse the song") from exc
        info = self.info(digest)
        if spec.ndim != 3 or spec.dtype != np.float16 or spec.shape[:2] != (info.channels, info.frames):
            raise StoreError(f"spectrogram {digest} is damaged: {spec.dtype} {spec.shape}, its "
                             f"description says {info.channels} channels of {info.frames} frames",
                             hint="run `reform check --repair` to re-analyse the song")
        return spec

    def openable(self, digests: Iterable[str]) -> dict[str, np.ndarray]:
        """The spectrograms of ``digests`` that open as their description says (:meth:`open`
        reads the header alone), by digest; the missing or damaged ones left out."""
        return {digest: spec for digest, spec in self._opened(digests) if spec is not None}

    def unreadable(self, digests: Iterable[str]) -> list[str]:
        """Those of ``digests`` whose spectrogram is missing or cannot be opened as its
        description says."""
        return [digest for digest, spec in self._opened(digests) if spec is None]

    def _opened(self, digests: Iterable[str]) -> Iterator[tuple[str, np.ndarray | None]]:
        for digest in digests:
            try:
                yield digest, self.open(digest)
            except StoreError:
                yield digest, None

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

    def remove_dead_temporaries(self) -> int:
        """Delete the temporary files of writers that no longer run (a worker stopped
        mid-write); returns the bytes freed.  A live writer's are kept."""
        if not self.root.is_dir():
            return 0
        return sum(_unlink(tmp) for tmp in self.root.glob("*/*.tmp-*") if not writer_alive(tmp))

    def collect_garbage(self, keep: set[str], written_before: float | None = None) -> int:
        """Remove spectrograms not in ``keep``, dead writers' temporaries, and other feature
        versions; returns the bytes freed.

        A spectrogram written at or after ``written_before`` (a time stamp) is kept even
        if ``keep`` lacks it: it may belong to a writer that has not recorded it yet, and
        so may a temporary file whose writer still runs.
        """
        freed = 0
        for digest in list(self.digests()):
            if digest not in keep and not self._recent(self.path(digest), written_before):
                freed += self.remove(digest)
        freed += self.remove_dead_temporaries()
        if self.root.is_dir():
            for side in self.root.glob("*/*.json"):  # a sidecar whose spectrogram never came
                if not side.with_suffix(".npy").exists() and not self._recent(side, written_before):
                    freed += _unlink(side)
        if self.base.is_dir():
            for other in self.base.iterdir():
                if other.is_dir() and other.name != self.feature_version:
                    freed += sum(p.stat().st_size for p in other.rglob("*") if p.is_file())
                    shutil.rmtree(other, ignore_errors=True)
        return freed

    @staticmethod
    def _recent(path: Path, written_before: float | None) -> bool:
        if written_before is None:
            return False
        try:
            return path.stat().st_mtime >= written_before
        except FileNotFoundError:
            return False


def _unlink(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except FileNotFoundError:
        return 0


class Catalogue:
    """The SQLite catalogue of one library home (one writer, many readers).

    ``read_only`` opens it for reading only, so that commands that only read work in a
    home they cannot write to (a read-only disk, another user's library).
    """

    def __init__(self, db_path: Path, *, create: bool = True, read_only: bool = False):
        self.path = Path(db_path)
        self._fts: bool | None = None   # whether the search words have their FTS5 index
        self._after_commit: list[Callable[[], None]] = []
        if not self.path.exists():
            if not create or read_only:
                raise StoreError(f"no catalogue at {self.path}",
                                 hint="run `reform scan FOLDER` first to build the library")
            create_catalogue(self.path)
        refusal = _unusable(self.path)
        if refusal:
            raise StoreError(refusal, path=self.path, hint=REPAIR_HINT)
        try:
            if read_only and self._schema_at_least(SCHEMA_VERSION if os.access(self.path.parent, os.W_OK)
                                                   else READABLE_SCHEMA):
                self.conn = _connect_read_only(self.path)
                return
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                        check_same_thread=False)
        except sqlite3.Error as exc:
            raise catalogue_error(exc, self.path) from exc
        try:
            self.conn.row_factory = sqlite3.Row
            _register_functions(self.conn)
            self._migrate()
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException as exc:
            self.conn.close()
            if isinstance(exc, sqlite3.Error):
                raise catalogue_error(exc, self.path) from exc
            raise

    def _schema_at_least(self, version: int) -> bool:
        """The catalogue's schema is ``version`` or later (so it can be opened without writing)."""
        conn = _connect_read_only(self.path)
        try:
            return conn.execute("PRAGMA user_version").fetchone()[0] >= version
        finally:
            conn.close()

    def _migrate(self) -> None:
        """Bring an older schema up to date; refuse a catalogue this ReFORM did not make."""
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"the catalogue has schema {version}, newer than this ReFORM "
                             f"({SCHEMA_VERSION})", path=self.path, hint="upgrade ReFORM")
        if version == 0:  # every catalogue ReFORM creates has a version: this one is not ours
            raise StoreError("this is not a ReFORM catalogue (it has no schema version), and it "
                             "is not taken for a new library", path=self.path, hint=REPAIR_HINT)
        names = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not TABLES <= names:  # checked before any migration touches them
            raise StoreError(f"the catalogue lacks its tables {', '.join(sorted(TABLES - names))}: "
                             "it is damaged or of another program", path=self.path, hint=REPAIR_HINT)
        for step in range(version, SCHEMA_VERSION):
            self.conn.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[step]} "
                                    f"PRAGMA user_version = {step + 1}; COMMIT;")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing; a failed write (disk full) rolls back and raises WriteError."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise catalogue_error(exc, self.path) from exc
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as exc:
            self._after_commit.clear()
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite rolls back by itself when it cannot go on
            if isinstance(exc, sqlite3.Error):
                raise catalogue_error(exc, self.path) from exc
            raise
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            action()

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once what is written now is committed: at once outside a transaction,
        else after its COMMIT, and never after a rollback.  The copies beside the catalogue are
        written so: written inside, a COMMIT that failed (a full disk) or a kill before it left a
        copy ahead of the catalogue, and a catalogue lost later came back from that copy."""
        if self.conn.in_transaction:
            self._after_commit.append(action)
        else:
            action()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """One consistent view of the catalogue across several reads (a read transaction;
        inside a transaction already, that one)."""
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            if self.conn.in_transaction:
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
        sql = f"SELECT {', '.join(ROW_FIELDS)} FROM files"
        args: tuple = ()
        if status:
            sql += " WHERE status = ?"
            args = (status,)
        return [FileRow(*r) for r in self.conn.execute(sql + " ORDER BY path", args)]

    def file(self, *, path: str | None = None, id: int | None = None) -> FileRow | None:
        key, value = ("path", path) if path is not None else ("id", id)
        row = self.conn.execute(f"SELECT {', '.join(ROW_FIELDS)} FROM files WHERE {key} = ?",
                                (value,)).fetchone()
        return None if row is None else FileRow(*row)

    def named(self, name: str) -> list[FileRow]:
        """The analysed files whose file name is ``name`` ignoring case, sorted by path (an
        indexed lookup: reform.search.find's first step)."""
        return self._songs("SELECT id FROM song_words WHERE name = ?", [name_key(name)])

    def with_words(self, words: list[str]) -> list[FileRow]:
        """The analysed files whose search words (reform.text.search_words) hold every one of
        the normalised ``words`` as a substring, sorted by path; all of them for no words.
        Words of 3 characters or more are looked up in the trigram index, shorter ones (which
        it cannot find) are tested on the words of the files it gave, or on every file's
        words when the query has no longer one or this SQLite has no FTS5."""
        indexed = [w for w in words if len(w) >= 3] if self._has_fts() else []
        sql, args = "SELECT id FROM song_words WHERE 1", []
        if indexed:
            sql += " AND id IN (SELECT rowid FROM song_words_fts WHERE song_words_fts MATCH ?)"
            args.append(" ".join(f'"{w}"' for w in indexed))  # each a phrase: a substring
        for w in words:
            if w not in indexed:
                sql += " AND instr(words, ?) > 0"
                args.append(w)
        return self._songs(sql, args)

    def _songs(self, ids: str, args: list) -> list[FileRow]:
        rows = self.conn.execute(f"SELECT {', '.join(ROW_FIELDS)} FROM files WHERE status = 'ok' "
                                 f"AND id IN ({ids}) ORDER BY path", args)
        return [FileRow(*r) for r in rows]

    def _has_fts(self) -> bool:
        """Whether this catalogue's words have their FTS5 index (see _schema_v4)."""
        if self._fts is None:
            self._fts = self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'song_words_fts'"
                                          ).fetchone() is not None
        return self._fts

    def put_ok(self, path: str, size: int, mtime_ns: int, info: SpectrogramInfo, tags: Tags,
               feature_version: str) -> None:
        values = dict(path=path, size=size, mtime_ns=mtime_ns, hash=info.hash, status="ok",
                      reason=info.damage, duration=info.duration, sample_rate=info.sample_rate,
                      channels=info.channels, frames=info.frames, codec=info.codec,
                      feature_version=feature_version, **asdict(tags), updated_at=time.time(),
                      retry=0)
        self._upsert(values)

    def put_failed(self, path: str, size: int, mtime_ns: int, reason: str,
                   digest: str | None = None, retry: bool = False) -> None:
        values = dict(path=path, size=size, mtime_ns=mtime_ns, hash=digest, status="failed",
                      reason=reason, duration=None, sample_rate=None, channels=None, frames=None,
                      codec=None, feature_version=None, artist=None, album=None, title=None,
                      track=None, year=None, genre=None, updated_at=time.time(), retry=int(retry))
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

    def rename_under(self, folder: str, to: str) -> int:
        """Give the rows under ``folder`` the same paths under ``to``, keeping their ids, their size
        and time forgotten (the next scan of them hashes the files, finds their audio stored, and
        reads their tags again); a row already at a new path gives way.  Returns how many."""
        prefix = folder.rstrip(os.sep) + os.sep
        rows = self.conn.execute("SELECT path FROM files WHERE substr(path, 1, ?) = ?",
                                 (len(prefix), prefix)).fetchall()
        for (path,) in rows:
            new = os.path.join(to, path[len(prefix):])
            self.conn.execute("DELETE FROM files WHERE path = ?", (new,))
            self.conn.execute("UPDATE files SET path = ?, mtime_ns = -1 WHERE path = ?", (new, path))
        return len(rows)

    def fill_tags(self, items: Iterable[tuple[str, str | None, str | None]]) -> None:
        """Give files an artist and album where they have none: (path, artist, album)."""
        self.conn.executemany("UPDATE files SET artist = COALESCE(artist, ?), album = COALESCE(album, ?) "
                              "WHERE path = ?", ((a, b, p) for p, a, b in items))

    def remove(self, paths: Iterable[str]) -> int:
        cur = self.conn.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in paths))
        return cur.rowcount

    def has_songs(self) -> bool:
        """Whether any file was analysed."""
        return self.conn.execute("SELECT 1 FROM files WHERE status = 'ok' LIMIT 1").fetchone() is not None

    def missing_embeddings(self, model: str | None) -> int:
        """How many distinct analysed recordings have no embedding of ``model``."""
        if model is None:
            return self.conn.execute("SELECT COUNT(DISTINCT hash) FROM files WHERE status = 'ok'").fetchone()[0]
        return self.conn.execute(
            "SELECT COUNT(DISTINCT hash) FROM files WHERE status = 'ok' AND NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.hash = files.hash AND e.model = ?)", (model,)).fetchone()[0]

    def live_hashes(self) -> set[str]:
        rows = self.conn.execute("SELECT DISTINCT hash FROM files WHERE status = 'ok'")
        return {r[0] for r in rows}

    def counts(self) -> dict[str, int]:
        row = self.conn.execute(
            "SELECT COUNT(*) FILTER (WHERE status = 'ok'), COUNT(*) FILTER (WHERE status = 'failed'),"
            " COUNT(DISTINCT hash) FILTER (WHERE status = 'ok'),"
            " COALESCE(SUM(duration) FILTER (WHERE status = 'ok'), 0),"
            " COUNT(*) FILTER (WHERE status = 'ok' AND reason IS NOT NULL) FROM files").fetchone()
        return {"songs": row[0], "failed": row[1], "unique_audio": row[2],
                "duplicates": row[0] - row[2], "seconds": row[3], "damaged": row[4]}

    # -- plays ---------------------------------------------------------------------------------
    def add_play(self, row: FileRow, player: str, when: float | None = None) -> None:
        """Note that a player played the song ``row`` (counted by its audio, so moves keep counts)."""
        self.conn.execute("INSERT INTO plays (hash, path, played_at, player) VALUES (?, ?, ?, ?)",
                          (row.hash, row.path, time.time() if when is None else when, player))

    def plays(self) -> list[tuple[str, str, float, str]]:
        """Every play, oldest first: (content hash, path, when, player)."""
        return list(self.conn.execute("SELECT hash, path, played_at, player FROM plays ORDER BY played_at, rowid"))

    def add_plays(self, plays: Iterable[tuple[str, str, float, str]]) -> None:
        self.conn.executemany("INSERT INTO plays (hash, path, played_at, player) VALUES (?, ?, ?, ?)", plays)

    def most_played(self, limit: int) -> list[tuple[str, int]]:
        """The ``limit`` most played recordings: (content hash, plays), most played first."""
        rows = self.conn.execute("SELECT hash, COUNT(*) AS n, MAX(played_at) FROM plays GROUP BY hash "
                                 "ORDER BY n DESC, MAX(played_at) DESC LIMIT ?", (limit,))
        return [(h, n) for h, n, _ in rows]

    # -- embeddings ---------------------------------------------------------------------------
    def put_embeddings(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store embeddings; StoreError (nothing stored by this call) if one is not finite:
        callers leave such songs out and say why."""
        rows = []
        for h, v in items:
            vector = np.asarray(v, np.float32)
            if not np.isfinite(vector).all():
                raise StoreError(f"refusing to store an embedding that is not finite (song {h})",
                                 hint="run `reform check --repair`")
            rows.append((h, model, vector.tobytes()))
        self.conn.executemany(
            "INSERT INTO embeddings (hash, model, vector) VALUES (?, ?, ?) "
            "ON CONFLICT (hash, model) DO UPDATE SET vector = excluded.vector", rows)

    def embeddings(self, model: str, *, finite_only: bool = True) -> dict[str, np.ndarray]:
        """The embedding of every song hash; one that is not finite (stored by an older ReFORM
        or damaged) or cut inside a number is left out unless ``finite_only`` is False (`reform
        check` lists them: a cut one by its whole numbers, and :meth:`cut_embeddings` names it)."""
        rows = self.conn.execute("SELECT hash, vector FROM embeddings WHERE model = ?", (model,))
        if finite_only:
            return {h: v for h, v in ((h, _floats(b)) for h, b in rows) if v is not None and np.isfinite(v).all()}
        return {h: np.frombuffer(b[: len(b) - len(b) % 4], np.float32) for h, b in rows}

    def embedding_matrix(self, model: str) -> tuple[list[str], np.ndarray]:
        """Every finite embedding of ``model``: the hashes and their vectors (N, D) float32,
        without making an array per song (a million songs read in seconds).  Vectors of
        another size than most are damage (`reform check` names them): left out, as songs
        without an embedding are, rather than breaking every query."""
        hashes, blobs = [], []
        for h, v in self.conn.execute("SELECT hash, vector FROM embeddings WHERE model = ?", (model,)):
            hashes.append(h)
            blobs.append(v)
        if not blobs:
            return [], np.zeros((0, 0), np.float32)
        sizes = Counter(len(b) for b in blobs)
        if len(sizes) > 1:
            size = sizes.most_common(1)[0][0]
            hashes, blobs = map(list, zip(*((h, b) for h, b in zip(hashes, blobs) if len(b) == size)))
        matrix = np.frombuffer(b"".join(blobs), np.float32).reshape(len(blobs), -1)
        finite = np.isfinite(matrix).all(axis=1)
        if not finite.all():
            hashes = [h for h, ok in zip(hashes, finite) if ok]
            matrix = matrix[finite]
        return hashes, matrix

    def cut_embeddings(self, model: str) -> set[str]:
        """The songs whose stored embedding of ``model`` ends inside a number (a damaged row:
        :meth:`embeddings` gives its whole numbers, which may be as many as the others have)."""
        rows = self.conn.execute("SELECT hash FROM embeddings WHERE model = ? AND length(vector) % 4 != 0", (model,))
        return {h for (h,) in rows}

    def embedding_of(self, model: str, digest: str) -> np.ndarray | None:
        """One song's embedding of ``model`` (None if it has none, or one that is not finite)."""
        row = self.conn.execute("SELECT vector FROM embeddings WHERE hash = ? AND model = ?",
                                (digest, model)).fetchone()
        vector = None if row is None else _floats(row[0])
        return vector if vector is not None and np.isfinite(vector).all() else None

    def rows_by_hash(self, hashes: Iterable[str]) -> dict[str, FileRow]:
        """The analysed row of each of ``hashes`` (of copies of the same audio, the one
        :func:`one_per_recording` shows); hashes that no analysed file has are left out."""
        wanted = list(dict.fromkeys(hashes))
        rows: list[FileRow] = []
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            rows += [FileRow(*r) for r in self.conn.execute(
                f"SELECT {', '.join(ROW_FIELDS)} FROM files WHERE status = 'ok' "
                f"AND hash IN ({', '.join('?' for _ in part)})", part)]
        return one_per_recording(rows)

    # -- the change log of the embeddings (schema 3) --------------------------------------------
    def identity(self) -> str:
        """This catalogue's identity (a rebuilt or new catalogue has another)."""
        return self.get_meta(CATALOGUE_ID, "")

    def embeddings_revision(self) -> int:
        """The number of the last change to the embeddings (0: none yet)."""
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'embedding_changes'").fetchone()
        return 0 if row is None else int(row[0])

    def changed_since(self, revision: int) -> set[str] | None:
        """The hashes whose embeddings changed after ``revision``; None when the log no longer
        reaches back that far (then everything must be read again)."""
        if revision < int(self.get_meta(CHANGES_KEPT_FROM, "0")):
            return None
        rows = self.conn.execute("SELECT DISTINCT hash FROM embedding_changes WHERE seq > ?", (revision,))
        return {h for (h,) in rows}

    def forget_changes(self, upto: int) -> None:
        """Drop the log up to ``upto`` (what every stored index has taken in)."""
        self.conn.execute("DELETE FROM embedding_changes WHERE seq <= ?", (upto,))
        self.set_meta(CHANGES_KEPT_FROM, str(upto))

    def embedded_hashes(self, model: str) -> set[str]:
        """The audio that has an embedding of ``model`` (without reading the vectors)."""
        return {h for (h,) in self.conn.execute("SELECT hash FROM embeddings WHERE model = ?", (model,))}

    def embedding_models(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT model, COUNT(*) FROM embeddings GROUP BY model")
        return dict(rows.fetchall())

    def drop_embeddings(self, keep_hashes: set[str] | None = None, model: str | None = None,
                        hashes: Iterable[str] = ()) -> None:
        """Forget every embedding of ``model``, those of songs whose hash is not in
        ``keep_hashes``, and those of the songs ``hashes``; with no argument nothing is dropped."""
        if model is not None:
            self.conn.execute("DELETE FROM embeddings WHERE model = ?", (model,))
        self.conn.executemany("DELETE FROM embeddings WHERE hash = ?", ((h,) for h in hashes))
        if keep_hashes is not None:
            stale = [(h,) for (h,) in self.conn.execute("SELECT DISTINCT hash FROM embeddings")
                     if h not in keep_hashes]
            self.conn.executemany("DELETE FROM embeddings WHERE hash = ?", stale)


def _floats(blob: bytes) -> np.ndarray | None:
    """An embedding as stored; None for bytes cut inside a number (a damaged row: numpy refused
    it with a traceback, in `check` and in every query)."""
    return None if len(blob) % 4 else np.frombuffer(blob, np.float32)


def _unusable(path: Path) -> str | None:
    """Why an existing catalogue file cannot be opened as one, without changing it: SQLite
    would take an empty file for a new database (a file that is not one, SQLite refuses
    itself; see :func:`catalogue_error`).

    The file is only stat'ed, never opened here: closing any descriptor of a database file
    drops every POSIX lock this process holds on it through SQLite, and the web page's
    jobs open a catalogue in a process that already has it open. A command run meanwhile
    then took itself for the only user and checkpointed the write-ahead log away under the
    page (its later writes were lost, or it saw a malformed database).
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"the catalogue cannot be read ({exc.strerror})"
    if not size:
        return "the catalogue is empty (0 bytes): it was damaged, and is not taken for a new library"
    return None


def _register_functions(conn: sqlite3.Connection) -> None:
    """The Python functions the catalogue's triggers and migrations call (schema 4)."""
    conn.create_function("reform_name_key", 1, name_key, deterministic=True)
    conn.create_function("reform_search_words", 4, search_words, deterministic=True)
    conn.create_function("reform_many_artists", 1, many_artists, deterministic=True)


def create_catalogue(path: Path) -> None:
    """Create an empty catalogue at ``path`` whole: built under a temporary name, then linked
    into place, so a crash never leaves a half-made catalogue and a catalogue another
    process created meanwhile is never replaced."""
    tmp = temporary_name(path)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            _register_functions(conn)
            for step, script in enumerate(MIGRATIONS):
                conn.executescript(f"BEGIN; {script} PRAGMA user_version = {step + 1}; COMMIT;")
        finally:
            conn.close()
        if not path.exists():
            for stale in ("-wal", "-shm"):  # a journal left by a catalogue that was deleted
                path.with_name(path.name + stale).unlink(missing_ok=True)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            if not path.exists():  # a file system without hard links
                os.replace(tmp, path)
    except sqlite3.Error as exc:
        raise catalogue_error(exc, path) from exc
    except OSError as exc:
        raise write_error(exc, path) from exc
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            leftover.unlink(missing_ok=True)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes.  SQLite reads a WAL catalogue read-only only where it
    can create the shared-memory file beside it; in a folder it cannot write to, nobody else
    can change the catalogue either, so it is opened as immutable."""
    uri = Path(path).resolve().as_uri()
    for mode in ("?mode=ro", "?mode=ro&immutable=1"):
        conn = sqlite3.connect(uri + mode, uri=True, timeout=30, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            continue
        conn.row_factory = sqlite3.Row
        return conn
    raise sqlite3.OperationalError("the catalogue cannot be opened for reading")
