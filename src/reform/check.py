"""``reform check``: find a damaged catalogue, spectrograms and embeddings, and repair them.

A scan trusts what it stored before (a file whose size and modification time
did not change costs nothing), so damage done to the home afterwards (a
spectrogram deleted, truncated or overwritten, bytes flipped in the catalogue,
an embedding that is not finite) would go unnoticed until a command failed.
This module reads everything back and says what is wrong.  Repairing is done
by :meth:`reform.Library.check` (re-analysis and re-embedding reuse the scan
and the embedder) and, for a catalogue that cannot be opened, by
:func:`rebuild_catalogue`, which keeps every row that can still be read.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import AudioConfig, MelConfig
from .errors import StoreError
from .files import sync_folder, write_text
from .home import Home, Keys, leftovers, rebuild_marker, restore_copies, restore_plays, text_of
from .store import ROW_FIELDS, TABLES, Catalogue, FileRow

CHUNK_FRAMES = 8192  # frames read at a time when looking for values that are not finite


@dataclass(frozen=True)
class Problem:
    """One thing found wrong: ``what`` is "spectrogram" or "embedding"."""

    what: str
    reason: str
    hash: str
    paths: tuple[str, ...]  # the files holding this audio (copies of the same audio share it)

    @property
    def unrepairable(self) -> bool:
        """A spectrogram whose audio is gone: no repair can analyse it again."""
        return self.what == "spectrogram" and not any(os.path.exists(p) for p in self.paths)

    def line(self) -> str:
        more = f" (and {len(self.paths) - 1} identical copies)" if len(self.paths) > 1 else ""
        gone = ""
        if self.unrepairable:
            gone = ("; the file is not there either, so it cannot be analysed again (moved, or a disk not "
                    "mounted?): `reform scan` its new folder, or `reform scan --forget-missing`")
        return f"{self.paths[0]}{more}: {self.what}: {self.reason}{gone}"


@dataclass
class Inspection:
    """What ``reform check`` looked at and what it found."""

    songs: int                      # distinct analysed audio
    embedding_model: str | None
    problems: list[Problem]

    def of(self, what: str) -> list[Problem]:
        return [p for p in self.problems if p.what == what]


# -- the catalogue ------------------------------------------------------------------------------------
def catalogue_problem(path: Path) -> str | None:
    """Why the catalogue at ``path`` is unusable (None: it opens, passes SQLite's integrity
    check, and every row of every table reads back)."""
    if rebuild_marker(path).exists():
        return "a rebuild of the catalogue was stopped before it ended"
    if not path.exists():   # deleted: what a scan cannot find in the music may still be beside it
        left = leftovers(path.parent)
        return f"the catalogue is missing ({left} remain)" if left else None
    try:   # read only: a check must work in a home it cannot write to
        catalogue = Catalogue(path, create=False, read_only=True)
    except StoreError as exc:
        return exc.message
    try:
        verdict = [r[0] for r in catalogue.conn.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:   # SQLite's report: a line per fault, some of them several lines long
            first, more = " ".join(str(verdict[0]).split()), len(verdict) - 1
            return f"the catalogue is damaged ({first}" + (f", and {more} more)" if more else ")")
        for table in sorted(TABLES):
            for _ in catalogue.conn.execute(f"SELECT * FROM {table}"):
                pass
    except sqlite3.Error as exc:
        return f"the catalogue is damaged ({' '.join(str(exc).split())})"
    finally:
        catalogue.close()
    return None


@dataclass(frozen=True)
class Rebuilt:
    kept: int           # catalogue rows carried over
    lost: int           # rows that could not be read: a scan adds their files back
    embeddings: int     # embeddings carried over
    damaged_copy: Path | None  # where the damaged catalogue was moved (None: there was none)


_COLUMNS = {"meta": ("key", "value"), "files": tuple(ROW_FIELDS), "embeddings": ("hash", "model", "vector"),
            "plays": ("hash", "path", "played_at", "player")}


def rebuild_catalogue(path: Path) -> Rebuilt:
    """Move a damaged catalogue aside and build a new one from every row that can still be
    read (an empty one where the catalogue was deleted).  Spectrograms are keyed by content,
    so a scan re-adds the lost rows without decoding any audio again.  The caller holds the home's writer lock.

    The new catalogue is built under another name and takes the catalogue's place only once it
    holds every row salvaged; until then a marker beside it names the damaged copy, so that a
    rebuild stopped anywhere (Ctrl-C in a long salvage) is finished by the next one from that copy.
    Built in place, a stopped rebuild left an empty catalogue that passed every check, and the
    salvage was never made."""
    marker = rebuild_marker(path)
    building = path.with_name(path.name + ".new")
    named = text_of(marker)
    aside = path.with_name(named or f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    if named and aside.exists() and path.exists():   # stopped after the new catalogue took its place
        marker.unlink()
        done = Catalogue(path, create=False, read_only=True)
        try:   # what it holds is what that rebuild kept
            return Rebuilt(len(done.files()), 0, sum(done.embedding_models().values()), aside)
        finally:
            done.close()
    if not named:
        write_text(marker, aside.name)
    existed = path.exists() or aside.exists()
    for suffix in ("-wal", "-shm", ""):   # the database last: it never stands here without its journal
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, aside.with_name(aside.name + suffix))
    for suffix in ("", "-wal", "-shm"):   # what a stopped rebuild had begun to build
        path.with_name(building.name + suffix).unlink(missing_ok=True)
    fresh = Catalogue(building)
    fresh.set_meta(Keys.UNFINISHED, "the catalogue was rebuilt")   # until a scan adds back the rows lost
    kept = lost = embeddings = 0
    old = _open_read_only(aside)
    try:
        if old is not None:
            with fresh.transaction():
                for table in _COLUMNS:
                    columns, rows, unreadable = _salvage(old, table)
                    lost += unreadable if table == "files" else 0
                    for values in rows:
                        try:
                            fresh.conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) "
                                               f"VALUES ({', '.join('?' for _ in values)})", values)
                        except sqlite3.Error:
                            lost += table == "files"
                            continue
                        kept += table == "files"
                        embeddings += table == "embeddings"
        restore_plays(fresh, path.parent)   # where none could be read, the copy beside it has them
        restore_copies(fresh, path.parent)  # and the music folders, those passed over, the active model
    finally:
        if old is not None:
            old.close()
        fresh.close()   # the last connection: SQLite folds its journal into the file and removes it
    os.replace(building, path)
    sync_folder(path.parent)
    marker.unlink()
    return Rebuilt(kept, lost, embeddings, aside if existed else None)


def _open_read_only(path: Path) -> sqlite3.Connection | None:
    try:
        # as a URI, so that a '#' or '?' in the home's path is not read as its end (nothing was kept)
        conn = sqlite3.connect(Path(path).absolute().as_uri() + "?mode=ro", uri=True)
        conn.text_factory = bytes  # text that is not UTF-8 is checked row by row, not fatal
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.Error:
        return None


def _salvage(conn: sqlite3.Connection, table: str) -> tuple[tuple[str, ...], list[tuple], int]:
    """The columns of ``table`` that the damaged catalogue has (an older schema has fewer),
    the rows that read back whole, and how many did not."""
    try:
        have = {r[1].decode() if isinstance(r[1], bytes) else r[1]
                for r in conn.execute(f"PRAGMA table_info({table})")}
        columns = tuple(c for c in _COLUMNS[table] if c in have)
    except sqlite3.Error:
        return (), [], 0
    try:   # from the table itself: SQLite would list the rowids from an index, which may be the damage
        ids = [r[0] for r in conn.execute(f"SELECT rowid FROM {table} NOT INDEXED")]
    except sqlite3.Error:
        ids = _rowids_one_by_one(conn, table)
    rows, lost = [], 0
    for rowid in ids:
        try:
            raw = conn.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE rowid = ?",
                               (rowid,)).fetchone()
            rows.append(tuple(v.decode("utf-8") if isinstance(v, bytes) and c != "vector" else v
                              for c, v in zip(columns, raw)))
        except (sqlite3.Error, UnicodeDecodeError, TypeError):
            lost += 1
    return columns, rows, lost


def _rowids_one_by_one(conn: sqlite3.Connection, table: str) -> list[int]:
    """The rowids of a table whose scan breaks part-way: each next one asked for alone, up to
    where the table can no longer be read (those before are kept, not the whole table lost)."""
    ids: list[int] = []
    after = -2 ** 63
    while True:
        try:
            found = conn.execute(f"SELECT min(rowid) FROM {table} NOT INDEXED WHERE rowid > ?", (after,)).fetchone()
        except sqlite3.Error:
            return ids
        if found is None or found[0] is None:
            return ids
        after = found[0]
        ids.append(after)


# -- spectrograms and embeddings ---------------------------------------------------------------------
def spectrogram_problem(home: Home, row: FileRow, audio: AudioConfig, mel: MelConfig) -> str | None:
    """Why the stored spectrogram of a catalogue row is unusable (None: it is whole)."""
    store = home.spectrograms
    if not store.exists(row.hash):
        return "the spectrogram is missing"
    try:
        spec = store.open(row.hash)  # checks the file and its shape against its description
    except StoreError as exc:
        return exc.message
    channels, frames, n_mels = spec.shape
    if (channels, frames, n_mels) != (row.channels, row.frames, mel.n_mels):
        return (f"the spectrogram is {channels} x {frames} x {n_mels}, the catalogue expects "
                f"{row.channels} x {row.frames} x {mel.n_mels}")
    expected = 1 + round((row.duration or 0.0) * audio.sample_rate) // mel.hop_length
    if abs(frames - expected) > 1:
        return f"the spectrogram has {frames} frames, {row.duration:.2f} s of audio make {expected}"
    for c in range(channels):
        for start in range(0, frames, CHUNK_FRAMES):
            if not np.isfinite(spec[c, start:start + CHUNK_FRAMES]).all():
                return "the spectrogram holds values that are not finite numbers"
    return None


def inspect(home: Home, audio: AudioConfig, mel: MelConfig,
            on_start: Callable[[int], None] | None = None,
            progress: Callable[[int], None] | None = None) -> Inspection:
    """Check the spectrogram of every analysed song and the stored embedding of each;
    ``on_start(total)`` and ``progress(1)`` report the spectrograms read."""
    catalogue = home.catalogue
    by_hash: dict[str, list[FileRow]] = {}
    for row in catalogue.files(status="ok"):
        by_hash.setdefault(row.hash, []).append(row)
    if on_start:
        on_start(len(by_hash))
    problems: list[Problem] = []
    for digest, rows in by_hash.items():
        reason = spectrogram_problem(home, rows[0], audio, mel)
        if reason:
            problems.append(Problem("spectrogram", reason, digest, tuple(r.path for r in rows)))
        if progress:
            progress(1)
    model = home.embedding_model()
    if model:
        vectors = catalogue.embeddings(model, finite_only=False)
        cut = catalogue.cut_embeddings(model)
        sizes = [len(v) for v in vectors.values()]
        size = max(set(sizes), key=sizes.count) if sizes else None
        for digest, rows in by_hash.items():
            vector = vectors.get(digest)
            if vector is None:
                reason = "no embedding"
            elif digest in cut:
                reason = "the embedding is damaged: its bytes end inside a number"
            elif len(vector) != size:
                reason = f"the embedding has {len(vector)} values, the others {size}"
            elif not np.isfinite(vector).all():
                reason = "the embedding holds values that are not finite numbers"
            else:
                continue
            problems.append(Problem("embedding", reason, digest, tuple(r.path for r in rows)))
    return Inspection(len(by_hash), model, problems)


def forget(home: Home, problems: list[Problem]) -> None:
    """Remove what the problems name (damaged spectrograms, bad embeddings), so that a scan
    analyses those songs again and an embedding run embeds them.  A sound embedding of a song
    whose spectrogram is damaged is kept: it came from the same audio, and a repair that is
    interrupted, or cannot reach the file, must not leave the song out of recommendations."""
    for p in problems:
        if p.what == "spectrogram":
            home.spectrograms.remove(p.hash)
    with home.catalogue.transaction():
        home.catalogue.drop_embeddings(hashes=[p.hash for p in problems if p.what == "embedding"])
