"""What the API reads: one catalogue connection and a snapshot of the library built from it.

The snapshot (songs, search text, embeddings, and on demand the recommender and
the map) is rebuilt only when the catalogue changed since it was made, which
SQLite tells for free: ``PRAGMA data_version`` changes whenever another
connection (a scan or an embedding run, started from the page or from a
terminal) commits.  This connection only reads, and a lock keeps it to one
thread at a time: SQLite connections must not be used concurrently.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..api import Library, embedding_note
from ..card import file_problem, read_card
from ..errors import EmbedError, ModelError
from ..home import saved_evaluation
from ..search import holds, search_text, symbols_in, title_of
from ..songindex import SongIndex
from ..store import FileRow, one_per_recording
from ..text import UNNAMED_REASON, home_command, naming_home, norm, shown, telling_folders
from .projection import library_map

SORT_KEYS = ("artist", "title", "album", "year", "genre", "duration", "path")
NO_EMBEDDINGS_HINT = "run `reform embed` (or Embed songs on the Library status tab of the page)"
NO_SONGS_HINT = "run `reform scan FOLDER` first; embedding needs songs"


def song_dict(row: FileRow, embedded: bool) -> dict:
    """What the library listing shows of a song (no path: songs are addressed by id; the folders
    the page's search looks in, as :func:`reform.text.search_words` does)."""
    return {"id": row.id, "title": title_of(row), "artist": row.artist, "album": row.album,
            "track": row.track, "year": row.year, "genre": row.genre,
            "duration": round(row.duration or 0.0, 2), "file": os.path.basename(row.path),
            "folder": telling_folders(row.artist, row.album, row.path),
            "embedded": embedded}


def _order(rows: list[FileRow], keys: dict[int, tuple[str, str, str, str]], sort: str,
           desc: bool) -> list[FileRow]:
    """Sort by ``sort`` (see SORT_KEYS); songs without that tag come last in both directions.

    ``keys`` holds the normalised (artist, album, title, genre) of every song id.
    """
    def k(r: FileRow) -> tuple[str, str, str, str]:
        return keys[r.id]

    orders = {
        "artist": lambda r: (k(r)[0], k(r)[1], r.track or 0, k(r)[2]),
        "album": lambda r: (k(r)[1], r.track or 0, k(r)[2]),
        "title": lambda r: (k(r)[2], k(r)[0]),
        "genre": lambda r: (k(r)[3], k(r)[0], k(r)[2]),
        "year": lambda r: (r.year or 0, k(r)[0], k(r)[2]),
        "duration": lambda r: (r.duration or 0.0,),
        "path": lambda r: (r.path,),
    }
    tagged = sort in ("artist", "album", "genre", "year")
    present = [r for r in rows if not tagged or getattr(r, sort) not in (None, "")]
    absent = [r for r in rows if tagged and getattr(r, sort) in (None, "")]
    present.sort(key=orders[sort], reverse=desc)
    absent.sort(key=lambda r: (k(r)[2], r.path))
    return present + absent


@dataclass
class Snapshot:
    """The analysed songs and their embeddings at one moment (revision) of the catalogue."""

    revision: int
    rows: list[FileRow]
    embedding_model: str | None
    vectors: dict[str, np.ndarray]                  # embedding per content hash
    by_id: dict[int, FileRow] = field(init=False)
    keys: dict[int, tuple[str, str, str, str]] = field(init=False)  # normalised artist, album,
    hay: dict[int, str] = field(init=False)         # title, genre; and search text, per song id
    cache: dict = field(default_factory=dict)       # recommender, map, orders, listing dicts

    def __post_init__(self):
        self.by_id = {r.id: r for r in self.rows}
        self.keys = {r.id: (norm(r.artist), norm(r.album), norm(title_of(r)), norm(r.genre))
                     for r in self.rows}
        self.hay = {r.id: search_text(r) for r in self.rows}

    def embedded(self, row: FileRow) -> bool:
        return row.hash in self.vectors

    def listing(self, row: FileRow) -> dict:
        """``song_dict`` of a row, made once per snapshot (listing 10k songs repeatedly)."""
        made = self.cache.setdefault("listing", {})
        if row.id not in made:
            made[row.id] = song_dict(row, self.embedded(row))
        return made[row.id]

    def select(self, q: str = "", artist: str | None = None, album: str | None = None,
               genre: str | None = None, sort: str = "artist", desc: bool = False) -> list[FileRow]:
        """Songs whose artist/title/album/file name holds every word of ``q``, filtered
        (exact tag, case and accents ignored) and sorted."""
        words = norm(q).split()
        wanted = [(i, norm(value)) for i, value in ((0, artist), (1, album), (3, genre))
                  if value is not None]
        if ("order", sort, desc) not in self.cache:
            self.cache["order", sort, desc] = _order(self.rows, self.keys, sort, desc)
        rows = self.cache["order", sort, desc]
        if q.strip() and not words:   # no letter or digit (an emoji): looked for as written
            rows = symbols_in(rows, q)
        elif not words and not wanted:
            return rows
        return [r for r in rows if holds(self.hay[r.id], words)
                and all(self.keys[r.id][i] == v for i, v in wanted)]

    def nothing_embedded(self, needs: str) -> EmbedError:
        """Why no embedding can be used: an empty library must be scanned before `reform embed`
        can do anything, so its answer names the scan, not the embedding."""
        if not self.rows:
            return EmbedError(f"the library has no song yet: {needs}", hint=NO_SONGS_HINT)
        return EmbedError(f"no song has an embedding yet: {needs}", hint=NO_EMBEDDINGS_HINT)

    def recommender(self, load_index: Callable[[], SongIndex] | None = None):
        """The recommender over the embedded songs, made once per snapshot: over the index
        ``load_index`` gives (the home's stored one), else over one built from the snapshot."""
        if "recommender" not in self.cache:
            from ..recommend import Recommender

            if not self.vectors:
                raise self.nothing_embedded("recommendations and the map need embeddings")
            if load_index is None:
                self.cache["recommender"] = Recommender.of(self.rows, self.vectors)
            else:
                first = one_per_recording(self.rows)
                self.cache["recommender"] = Recommender(
                    load_index(), lambda hashes: {h: first[h] for h in hashes if h in first})
        return self.cache["recommender"]


class LibraryState:
    """The library home as the web API sees it; thread-safe.

    Parameters
    ----------
    home : the library home folder (it must exist: StoreError otherwise)
    named_home : the home as given by --home, which the commands the page suggests then name
        (None: found by default, so `reform ...` finds it too)
    """

    def __init__(self, home: str | os.PathLike, named_home: str | None = None):
        self.library = Library(home, create=False, read_only=True)
        self.home = self.library.home.path
        self.named_home = named_home
        self.lock = threading.RLock()
        self._snapshot: Snapshot | None = None
        self._version: int | None = None
        self._revision = 0

    def close(self) -> None:
        with self.lock:
            self.library.close()

    def snapshot(self) -> Snapshot:
        """The current snapshot, rebuilt first if the catalogue changed since the last one."""
        with self.lock:
            catalogue = self.library.home.catalogue
            version = catalogue.conn.execute("PRAGMA data_version").fetchone()[0]
            if self._snapshot is None or version != self._version:
                with catalogue.reading():   # rows and vectors of one moment, though a scan commits meanwhile
                    version = catalogue.conn.execute("PRAGMA data_version").fetchone()[0]
                    rows = self.library.songs()
                    model = self.library.home.embedding_model()
                    # a damaged vector (another size) left out, as queries leave it out
                    vectors = dict(zip(*catalogue.embedding_matrix(model))) if model else {}
                self._revision += 1
                self._snapshot = Snapshot(self._revision, rows, model, vectors)
                self._version = version
            return self._snapshot

    def recommender(self, snap: Snapshot):
        """The snapshot's recommender over the home's stored search index, made on first use
        (EmbedError when nothing is embedded)."""
        from ..songindex import load

        with self.lock:
            return snap.recommender(lambda: load(self.library.home))

    def map(self, snap: Snapshot) -> dict:
        """The 2-D map of the snapshot's embeddings (see :mod:`reform.web.projection`)."""
        with self.lock:
            if "map" not in snap.cache:
                if not snap.vectors:
                    raise snap.nothing_embedded("the map needs embeddings")
                snap.cache["map"] = library_map(self.library.home.cache, snap.embedding_model,
                                                snap.vectors)
            return snap.cache["map"]

    def status(self) -> dict:
        """Counts, embeddings and the active model: what the status bar and tab show."""
        snap = self.snapshot()
        with self.lock:
            counts = self.library.status()
            model = self.model(counts)
        distinct = {r.hash for r in snap.rows}
        embedded = len(distinct & snap.vectors.keys())
        return {**counts, "revision": snap.revision, "command": home_command(self.named_home),
                "embeddings": {"model": snap.embedding_model, "songs": embedded,
                               "missing": len(distinct) - embedded},
                "model": model}

    def notes(self) -> list[str]:
        """What recommendations lack: embeddings from another model than the active one (after
        `reform use`, until `reform embed`), or songs left out for want of an embedding."""
        snap = self.snapshot()
        with self.lock:
            current = self.library.embedding_status(count_missing=False)["current"]
        note = embedding_note(bool(snap.vectors), current, len({r.hash for r in snap.rows} - snap.vectors.keys()))
        return [naming_home(note, self.named_home)] if note else []

    def failures(self) -> list[dict]:
        with self.lock:
            rows = self.library.failures() + self.library.damaged()
            unnamed = self.library.unnamed()
        # a name not UTF-8 has no catalogue row (so no id), and JSON needs its bytes written out
        return ([{"id": r.id, "path": r.path, "reason": r.reason, "analysed": r.status == "ok"} for r in rows]
                + [{"id": None, "path": shown(name), "reason": UNNAMED_REASON, "analysed": False}
                   for name in unnamed])

    def model(self, status: dict | None = None) -> dict:
        """The active model from its JSON card (no torch needed), with its evaluation numbers
        when `reform evaluate` kept some (:meth:`reform.home.Models.evaluation_file`); ``status`` is the library's
        (:meth:`reform.Library.status`) when the caller has just read it, so that the model
        file's checksums and the embeddings' state are not read twice for one answer."""
        with self.lock:
            active = self.library.models.active_name()
            embedding_model = self.library.home.embedding_model()
            try:
                path = self.library.model_path()
            except ModelError as exc:
                return {"name": None, "active": active, "error": exc.message,
                        "hint": exc.hint and naming_home(exc.hint, self.named_home),
                        "embedding_model": embedding_model}   # name: a model that can be used
            problem = status["model"]["problem"] if status else file_problem(path)
            if problem:   # what status says: songs cannot be embedded until it is replaced
                return {"name": None, "active": active, "error": f"active model {active}: {problem}",
                        "hint": naming_home("`reform use shipped` goes back to the shipped model, or train the "
                                            "run again", self.named_home),
                        "embedding_model": embedding_model}
            if status:
                current = status["embeddings"]["current"]
            else:
                current = self.library.embedding_status(count_missing=False)["current"]
        try:
            card = read_card(path)
        except ModelError:
            card = {}
        name = active
        version = card.get("version")
        kept = self.library.models.evaluation_file(path)
        evaluation = saved_evaluation(kept, version) if kept else None
        return {"name": name, "version": version, "kind": card.get("kind"),
                "info": card.get("info") or {}, "embedding_model": embedding_model,
                "embeddings_current": current,
                "evaluation": evaluation.get("methods") if evaluation else None,
                "evaluation_labels": evaluation.get("labels") if evaluation else None}
