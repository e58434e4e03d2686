"""Recommendations by similarity in the embedding space: similar songs, mixes, flowing playlists.

Every distinct recording (content hash) appears once, represented by its
first path, so copies of the same audio are never recommended twice and a seed's
copies are never recommended for it.

With the cosine, songs are ranked by a walk over the graph of the query's nearest songs
(graph diffusion, :func:`reform.space.walk`): a song reached through a chain of close songs can
outrank a nearer one off the chain, and the nearest song by the cosine stays first, so that a
song's other part or other recording is not walked away from.  Or, with ``walk=0``, the query is
expanded (alpha-QE, as image retrieval does it): averaged with its ``expand`` nearest songs other
than the seeds, each weighted by its cosine cubed, and searched again.  Either way, where a
song's nearest songs are mostly of its kind, what they share counts; docs/method.md 7 measures both.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from .errors import ConfigError, QueryError
from .index import build_index
from .songindex import SongIndex
from .space import ALPHA, blend, walk
from .store import FileRow, one_per_recording
from .text import album_key, artists, norm

WALK = 20       # links of each song in the walk that ranks songs (cosine only; 0: no walk)
WALK_POOL = 256  # the query's nearest songs the walk runs over
EXPAND = 2      # nearest songs a query is averaged with when there is no walk (cosine only; 0: none)
EXPAND_POWER = ALPHA  # each one weighted by its cosine to this power, as docs/method.md measured
MIX_WAYS = ("each", "centre")   # a mix: each seed's nearest songs in turn, or those nearest their centre
# Two files of one recording (a FLAC and its MP3): less than this many seconds apart, and of one
# title or at least this cosine between their song vectors.  With the shipped model, 23 songs and
# their MP3s (96 and 128 kb/s) measured 0.952 to 1.000 (18 of 23 at 0.99 or more); the 385 pairs of
# distinct songs of realmusic and extramusic within a second of each other's length at most 0.848.
# A model trained briefly on a small library puts its songs closer (two synthetic songs of the tests
# at 0.98 to 0.99), hence the margin; files of one title need no such closeness (README, Queries).
SAME_RECORDING_SECONDS = 1.0
SAME_RECORDING_COSINE = 0.99


def ranking(metric: str, expand: int | None = None, walk: int | None = None) -> tuple[int, int]:
    """How songs are ranked, as (expand, walk): those asked for, the others by default (with the
    cosine, the walk; an expansion asked for, of any size, 0 for the plain cosine, stands alone);
    ConfigError where they cannot be."""
    cosine = metric == "cosine"
    if walk is None:
        walk = WALK if cosine and expand is None else 0
    if expand is None:
        expand = EXPAND if cosine and not walk else 0
    if expand < 0:
        raise ConfigError(f"a query cannot be expanded with {expand} songs", hint="use 0 or more")
    if walk < 0:
        raise ConfigError(f"a walk cannot have {walk} links per song", hint="use 0 or more")
    if (expand or walk) and not cosine:
        raise ConfigError(f"{'query expansion' if expand else 'the walk'} weighs songs by their cosine",
                          hint=f"use --metric cosine, or {'--expand' if expand else '--walk'} 0")
    if expand and walk:
        raise ConfigError("songs are ranked by the walk or by the expanded query, not both",
                          hint="give one of them: --walk N alone, or --walk 0 --expand N")
    return expand, walk


@dataclass(frozen=True)
class Filters:
    exclude_same_artist: bool = False     # no song by an artist of the seeds
    exclude_same_album: bool = False      # no song from an album of the seeds
    max_per_artist: int | None = None     # at most this many songs per artist

    @property
    def active(self) -> bool:
        """Whether any filter can leave a song out."""
        return self.exclude_same_artist or self.exclude_same_album or self.max_per_artist is not None

    def capped(self, names: frozenset[str], per_artist: Counter) -> bool:
        """Whether a song of the artists ``names`` (:func:`reform.text.artists`) would go over the
        cap per artist, given how many songs of each artist ``per_artist`` already holds."""
        return self.max_per_artist is not None and any(per_artist[a] >= self.max_per_artist for a in names)


@dataclass(frozen=True)
class Seed:
    """A resolved query: a song of the library, or a file analysed on the fly (row is None)."""

    vector: np.ndarray
    row: FileRow | None
    label: str
    # a file from outside the library: its length and tags as a row that is in no catalogue, so
    # that the library's other file of its recording (the FLAC of a query MP3), its artist and
    # its album are known to the lists as a library seed's are
    outside: FileRow | None = None


@dataclass(frozen=True)
class Recommendation:
    row: FileRow
    score: float                  # similarity to the seed(s)' query (expanded, where the expansion ranks)
    flow: float | None = None     # playlists: similarity to the previous song

    def to_dict(self) -> dict:
        r = self.row
        out = {"id": r.id, "path": r.path, "artist": r.artist, "title": r.title, "album": r.album,
               "duration": r.duration, "score": round(float(self.score), 4)}
        if self.flow is not None:
            out["flow"] = round(float(self.flow), 4)
        return out


class Recommender:
    """Recommendations over the index of the embedded songs; catalogue rows are looked up only
    for the songs an answer holds, so a query costs the same in a library of any size.

    Parameters
    ----------
    songs : the index of the embedded songs, one slot per distinct recording
        (:class:`reform.songindex.SongIndex`; a library's stored one comes from
        :func:`reform.songindex.load`)
    rows_of : the analysed row of each of some content hashes (the first path of
        copies of the same audio); hashes that no analysed file has are left out
    """

    def __init__(self, songs: SongIndex, rows_of: Callable[[list[str]], dict[str, FileRow]],
                 expand: int | None = None, walk: int | None = None):
        self.songs = songs
        self.rows_of = rows_of
        self.metric = songs.metric
        self.expand, self.walk = ranking(self.metric, expand, walk)
        self._units: dict[int, np.ndarray] = {}
        self._unit_by_hash: dict[str, np.ndarray] = {}

    @classmethod
    def of(cls, rows: list[FileRow], embeddings: dict[str, np.ndarray], metric: str = "cosine",
           index: str = "auto", expand: int | None = None, walk: int | None = None) -> Recommender:
        """A recommender over rows and embeddings held in memory (songs without an embedding
        are left out), its index built here."""
        by_hash = one_per_recording(r for r in rows if r.hash in embeddings)
        if not by_hash:
            raise QueryError("no song has an embedding yet", hint="run `reform embed` first")
        songs = SongIndex.build(list(by_hash), np.stack([embeddings[h] for h in by_hash]), metric, index)
        return cls(songs, lambda hashes: {h: by_hash[h] for h in hashes if h in by_hash}, expand, walk)

    def __len__(self) -> int:
        return len(self.songs)

    def has(self, digest: str | None) -> bool:
        """Whether a recording has an embedding here."""
        return digest is not None and self.songs.slot(digest) is not None

    def vector_of(self, digest: str) -> np.ndarray:
        """A recording's vector as the index holds it (unit length for cosine): (D,)."""
        slot = self.songs.slot(digest)
        if slot is None:
            raise QueryError("this song has no embedding yet", hint="run `reform embed`")
        return self.songs.vector(slot)

    def unit_at(self, slot: int) -> np.ndarray:
        """A slot's vector at unit length, kept: a mix of a folder's 500 songs compares every
        song it meets with the seeds again for each seed."""
        if slot not in self._units:
            self._units[slot] = _unit(self.songs.vector(slot))
        return self._units[slot]

    def unit_of(self, digest: str) -> np.ndarray:
        """A recording's vector at unit length, kept too (:meth:`unit_at`)."""
        if digest not in self._unit_by_hash:
            self._unit_by_hash[digest] = _unit(self.vector_of(digest))
        return self._unit_by_hash[digest]

    @cached_property
    def copy_cosine(self) -> float:
        """The cosine from which two songs about as long are files of one recording:
        SAME_RECORDING_COSINE, unless this model puts a typical pair of songs that close (one that
        collapsed, or one trained briefly on a few songs: every pair of a 10-song library at 0.999
        hid every song as a copy of the query); then infinity, and only their tags can tell."""
        n = len(self)
        if n < 3:
            return SAME_RECORDING_COSINE
        rng = np.random.default_rng(0)
        pairs = rng.integers(0, n, size=(min(n * (n - 1) // 2, 1000), 2))
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        if not len(pairs):
            return SAME_RECORDING_COSINE
        units = _unit(self.songs.index.rows(pairs.ravel())).reshape(len(pairs), 2, -1)
        typical = float(np.median(np.einsum("pd,pd->p", units[:, 0], units[:, 1])))
        return math.inf if typical >= SAME_RECORDING_COSINE else SAME_RECORDING_COSINE

    def one_recording(self, row: FileRow, other: FileRow) -> bool:
        """Whether two songs of the library are files of one recording (:func:`_one_recording`)."""
        if row.hash == other.hash:
            return True
        if row.duration is None or other.duration is None \
                or abs(row.duration - other.duration) >= SAME_RECORDING_SECONDS:
            return False   # (the cheap test first: a radio asks it of many pairs)
        if not (self.has(row.hash) and self.has(other.hash)):
            return False
        cosine = float(self.unit_of(row.hash) @ self.unit_of(other.hash))
        return _one_recording(row, other, cosine, self.copy_cosine)

    def one_song(self, row: FileRow, other: FileRow) -> bool:
        """Files a query by words takes for one song (:func:`reform.search.find`): files of one
        recording by their sound (the cosine), or by their tags where both name an artist and
        no two albums part them.  :meth:`one_recording` takes an untagged "Intro" beside a band's,
        or a live take beside the studio one, for one, which hides a likely copy from a list;
        a query must ask which of them is meant."""
        if row.hash == other.hash:
            return True
        if not _as_long(row, other) or _two_tracks(row, other):
            return False
        if self.has(row.hash) and self.has(other.hash) \
                and float(self.unit_of(row.hash) @ self.unit_of(other.hash)) >= self.copy_cosine:
            return True
        albums = {album_key(row.album), album_key(other.album)} - {None}
        return _same_title_and_artist(row, other) and bool(artists(row.artist) and artists(other.artist)) \
            and len(albums) <= 1

    # -- seeds ------------------------------------------------------------------------------------
    def seed_of(self, row: FileRow) -> Seed:
        if not self.has(row.hash):
            raise QueryError("this song has no embedding yet", path=row.path,
                             hint="run `reform embed`")
        return Seed(self.vector_of(row.hash), row, row.label)

    # -- recommendations ------------------------------------------------------------------------
    def expanded(self, query: np.ndarray, seeds: list[FileRow],
                 outside: list[tuple[FileRow, np.ndarray]] = ()) -> np.ndarray:
        """The query (D,) averaged with its ``expand`` nearest songs other than the ``seeds``
        and their other files (a seed's MP3 would pull the query onto the seed), each weighted by
        max(cosine, 0) ** EXPAND_POWER, at unit length; the query as it is if none.  ``outside``:
        seeds from outside the library (:attr:`Seed.outside`, with their unit vectors), whose
        files in the library are left out too (the OGG of a FLAC given from a download folder
        took one of the query's two neighbours, and added nothing to it).  With the walk the query
        stays as it is: the walk takes what its neighbours share into account itself."""
        if not self.expand:
            return query
        q = query / (np.linalg.norm(query) or 1.0)
        # the seeds found by length, not each compared with every seed, and the search widened only
        # while seeds fill it: a mix of a folder's 200 songs expands 200 queries, and each compared
        # 400 songs with all 200 seeds (7 s)
        hashes = {seed.hash for seed in seeds}
        heard = _Taken([(seed, self.unit_of(seed.hash)) for seed in seeds if self.has(seed.hash)] + list(outside))

        def a_seed(slot: int, row: FileRow) -> bool:
            return row.hash in hashes or heard.holding(row, self.unit_at(slot), self.copy_cosine) is not None

        k = min(len(self), 4 * self.expand + 4)
        while True:
            scores, slots = self.songs.search(q[None], k)
            found = [(int(i), float(c)) for i, c in zip(slots[0], scores[0]) if i >= 0]
            rows = self.rows_of([self.songs.hash_at(i) for i, _ in found])
            near = [(i, c) for i, c in found if (row := rows.get(self.songs.hash_at(i))) is not None
                    and not a_seed(i, row)][: self.expand]
            if len(near) == self.expand or k >= len(self):
                break
            k = min(len(self), 4 * k)
        if not near:
            return q
        vectors = self.songs.index.rows(np.array([i for i, _ in near]))
        return blend(q[None], vectors[None], np.array([[c for _, c in near]]), EXPAND_POWER)[0]

    def ranked(self, query: np.ndarray, k: int, unshown: Callable[[int, FileRow], bool] | None = None,
               spare: int = 0) -> list[tuple[int, FileRow, float]]:
        """The ``k`` songs closest to ``query`` (D,), closest first: (slot, row, score); with the
        walk, in the walk's order, each with its cosine (a score a person can read).  ``unshown``:
        the songs the caller will pass over (the seeds and their other files), up to ``spare`` of
        them, which the walk leaves out of its graph and puts first, so that the song it keeps
        first is the nearest that can be shown."""
        size = max(k, WALK_POOL + 1 + spare) if self.walk else k
        scores, slots = self.songs.search(query[None], min(len(self), size))
        found = [(int(i), float(s)) for i, s in zip(slots[0], scores[0]) if i >= 0]
        rows = self.rows_of([self.songs.hash_at(i) for i, _ in found])
        listed = [(i, rows[h], s) for i, s in found if (h := self.songs.hash_at(i)) in rows]
        return self._walked(query, listed, unshown)[:k] if self.walk else listed

    def _walked(self, query: np.ndarray, found: list[tuple[int, FileRow, float]],
                unshown: Callable[[int, FileRow], bool] | None) -> list[tuple[int, FileRow, float]]:
        """``found`` (slot, row, cosine) in the order of a walk from ``query`` over its first
        WALK_POOL songs, the rest after them by the cosine (one solve of that size however many are
        asked for); first, and no node of the graph, the query's own song (its very vector: the
        query is the node) and the songs ``unshown`` names.

        The files of one recording (a FLAC and its MP3: :meth:`_file_of`) are one node, the first
        by the cosine, with the others after it: ten files of one clip linked to each other drew
        the walk's score into their clique, away from the songs beside them."""
        apart = [s >= 1.0 - 1e-6 or (unshown is not None and unshown(i, row)) for i, row, s in found]
        others = [f for f, out in zip(found, apart) if not out]
        pool, rest = others[:WALK_POOL], others[WALK_POOL:]
        if not pool:
            return found
        heads: list[int] = []              # each recording's first file in the pool
        files: dict[int, list[int]] = {}   # and its other files, by that first one
        taken = _Taken([])
        for j, (slot, row, _) in enumerate(pool):
            held = self._file_of(row, slot, taken)
            if held is None:
                heads.append(j)
            files.setdefault(j if held is None else heads[held], []).append(j)
        q = _unit(np.asarray(query, np.float64))
        units = _unit(self.songs.index.rows(np.array([pool[j][0] for j in heads])).astype(np.float64))
        order = np.argsort(-walk(q, units, self.walk), kind="stable")
        return [f for f, out in zip(found, apart) if out] + [pool[j] for h in order for j in files[heads[h]]] + rest

    def _candidates(self, query: np.ndarray, seeds: list[Seed], filters: Filters, n: int,
                    keep: Callable[[FileRow], bool] | None = None) -> list[tuple[int, FileRow, float]]:
        """Slots, rows and scores of the best songs for ``query``, filtered (and only those
        ``keep`` takes), one file per recording (:meth:`_file_of`), at least n if there are."""
        banned = _recordings(seeds)
        seed_rows = [s.row or s.outside for s in seeds if s.row or s.outside]
        seed_artists = {a for row in seed_rows for a in artists(row.artist)}
        heard = [(s.row, self.unit_of(s.row.hash)) if s.row else (s.outside, _unit(s.vector)) for s in seeds]
        k = min(len(self), max(4 * n + len(banned), 32))
        seeds_heard = _Taken(heard)

        def unshown(slot: int, row: FileRow) -> bool:   # a seed, or another file of one
            return row.hash in banned or seeds_heard.holding(row, self.unit_at(slot), self.copy_cosine) is not None

        def passes(row: FileRow, names: frozenset[str], per_artist: Counter) -> bool:
            return not (keep is not None and not keep(row)
                        or filters.exclude_same_artist and names & seed_artists
                        or filters.exclude_same_album and any(same_album(row, s) for s in seed_rows)
                        or filters.capped(names, per_artist))

        while True:
            # every recording met, in order, as its fuller file so far and whether that file passes
            # the filters: a recording is judged by the file shown for it, so an untagged copy
            # (no artist, no album) can neither bring a left-out song in nor keep it in
            met: list[tuple[int, FileRow, float, bool]] = []
            per_artist: Counter = Counter()
            taken = _Taken(heard)
            for i, row, score in self.ranked(query, k, unshown, len(heard)):
                if row.hash in banned:
                    continue
                names = artists(row.artist)
                same = self._file_of(row, i, taken)
                if same is None:
                    ok = passes(row, names, per_artist)
                    met.append((i, row, score, ok))
                    per_artist.update(names if ok else ())
                    continue
                j = same - len(heard)   # another file of a seed (j < 0), or of a song met before
                if j >= 0 and _fuller(row, met[j][1]):   # shown, and judged, as its fuller file
                    if met[j][3]:
                        per_artist.subtract(artists(met[j][1].artist))
                    ok = passes(row, names, per_artist)
                    per_artist.update(names if ok else ())
                    met[j] = (i, row, met[j][2], ok)
                    taken.rows[same] = row
            picked = [(i, row, score) for i, row, score, ok in met if ok]
            if len(picked) >= n or k >= len(self):
                return picked
            k = min(len(self), k * 4)

    def similar(self, seed: Seed, n: int = 10, filters: Filters = Filters()) -> list[Recommendation]:
        """The n songs closest to one seed (its expanded query)."""
        query = self.expanded(seed.vector, _rows([seed]), _outside([seed]))
        return [Recommendation(row, s) for _, row, s in self._candidates(query, [seed], filters, n)[:n]]

    def mix(self, seeds: list[Seed], n: int = 10, filters: Filters = Filters(),
            how: str = "each", keep: Callable[[FileRow], bool] | None = None) -> list[Recommendation]:
        """Songs for a mix of several liked songs, each seed standing for its expanded query;
        ``keep``: the only songs it may hold (a playlist's: those under its music root).

        ``how="each"`` takes each seed's nearest songs in turn (the first of every seed,
        then the second...), so that every seed's kind is in the mix; ``"centre"`` takes the
        songs nearest the seeds' centre, which lies between unlike seeds and can leave a
        seed's kind out (bench/mix.py measures both).
        """
        if not seeds:
            raise QueryError("a mix needs at least one song")
        if how not in MIX_WAYS:
            raise ConfigError(f"unknown way of mixing {how!r}", hint=f"use {' or '.join(MIX_WAYS)}")
        rows, outside = _rows(seeds), _outside(seeds)
        queries = [self.expanded(s.vector / (np.linalg.norm(s.vector) or 1.0), rows, outside) for s in seeds]
        if how == "centre":
            centre = np.mean(queries, axis=0)
            return [Recommendation(row, s) for _, row, s in self._candidates(centre, seeds, filters, n, keep)[:n]]
        lists = [iter(self._candidates(q, seeds, filters, n, keep)) for q in queries]
        picked: dict[int, Recommendation] = {}
        per_artist: Counter = Counter()
        taken = _Taken([])   # each seed's list holds a recording once; all
        while lists and len(picked) < n:
            for ranked in list(lists):
                for slot, row, score in ranked:   # this seed's next song that is not in the mix yet
                    names = artists(row.artist)
                    if slot in picked or filters.capped(names, per_artist) or \
                            self._file_of(row, slot, taken) is not None:
                        continue
                    picked[slot] = Recommendation(row, score)
                    per_artist.update(names)
                    break
                else:
                    lists.remove(ranked)
                if len(picked) == n:
                    break
        return list(picked.values())

    def playlist(self, seeds: list[Seed], length: int = 20, filters: Filters = Filters(),
                 flow: float = 0.5) -> list[Recommendation]:
        """A playlist that flows: each next song is chosen to be close both to the previous
        song (weight ``flow``) and to its nearest seed (weight 1 - flow), with no repeats.

        It starts next to the last seed, which a playlist written with its seeds (``-o``, the
        page's export) plays just before it; with several seeds, songs near any of them
        qualify, so the playlist can travel from one seed's neighbourhood to another's.
        Each seed stands for its expanded query.
        """
        if not seeds:
            raise QueryError("a playlist needs at least one song")
        pool_size = max(10 * length, 200)
        rows, outside = _rows(seeds), _outside(seeds)
        anchors = [self.expanded(seed.vector, rows, outside) for seed in seeds]
        pool = {i: row for anchor in anchors for i, row, _ in self._candidates(anchor, seeds, filters, pool_size)}
        ids = np.array(sorted(pool))
        if not len(ids):
            return []
        items = [pool[i] for i in ids]
        vectors = self.songs.index.rows(ids)                                 # (P, D)
        units = _unit(vectors)
        exact = build_index(vectors, self.metric, "exact")
        sim = exact.scores(vectors)                                          # (P, P)
        per_seed = exact.scores(np.stack(anchors))                           # (S, P)
        to_seed = per_seed.max(axis=0)
        seed_sim = per_seed[-1]
        used = np.zeros(len(ids), bool)
        per_artist: Counter = Counter()
        out: list[Recommendation] = []
        prev = None
        for _ in range(min(length, len(ids))):
            closeness = seed_sim if prev is None else sim[prev]
            value = flow * closeness + (1 - flow) * to_seed
            value = np.where(used, -np.inf, value)
            if filters.max_per_artist is not None:
                for j in np.flatnonzero(~used):
                    if filters.capped(artists(items[j].artist), per_artist):
                        value[j] = -np.inf
            j = int(np.argmax(value))
            if not np.isfinite(value[j]):
                break
            used[j] = True   # with its other files (a FLAC and its MP3 both near the seeds)
            used |= [_one_recording(items[j], other, cosine, self.copy_cosine)
                     for other, cosine in zip(items, units @ units[j])]
            per_artist.update(artists(items[j].artist))
            out.append(Recommendation(items[j], float(to_seed[j]), float(closeness[j])))
            prev = j
        return out

    def _file_of(self, row: FileRow, slot: int, taken: _Taken) -> int | None:
        """Which recording of ``taken`` ``row`` (at ``slot``) is another file of
        (:func:`_one_recording`); None, and it is added to ``taken``, if none.  Copies of the
        same bytes are one song already; these are a FLAC and its MP3, or a song on an album
        and on a compilation, which would fill the top of a list."""
        vector = self.unit_at(slot)
        held = taken.holding(row, vector, self.copy_cosine)
        if held is None:
            taken.add(row, vector)
        return held


class _Taken:
    """The recordings a list holds so far (rows and unit vectors, in order), found by length:
    two files of one recording last within a second of each other, so a song is compared with
    the few of about its length, not with every song before it (a playlist of 30 over 10,000
    songs made 1.5 million comparisons)."""

    def __init__(self, heard: list[tuple[FileRow | None, np.ndarray]]):
        self.rows: list[FileRow | None] = []
        self.vectors: list[np.ndarray] = []
        self._by_second: dict[int, list[int]] = {}
        for row, vector in heard:
            self.add(row, vector)

    def add(self, row: FileRow | None, vector: np.ndarray) -> None:
        if row is not None and row.duration is not None:
            self._by_second.setdefault(int(row.duration), []).append(len(self.rows))
        self.rows.append(row)
        self.vectors.append(vector)

    def holding(self, row: FileRow, vector: np.ndarray, threshold: float) -> int | None:
        """The place of the recording ``row`` (its unit ``vector``) is another file of
        (:func:`_one_recording`, ``threshold`` its cosine), the first in order; None if none."""
        return next((k for k in self.near(row)
                     if _one_recording(row, self.rows[k], float(vector @ self.vectors[k]), threshold)), None)

    def near(self, row: FileRow) -> list[int]:
        """The places of the recordings about as long as ``row`` (SAME_RECORDING_SECONDS), in order."""
        if row.duration is None:
            return []
        second, reach = int(row.duration), math.ceil(SAME_RECORDING_SECONDS)
        return sorted(k for s in range(second - reach, second + reach + 1) for k in self._by_second.get(s, ()))


def _one_recording(row: FileRow, other: FileRow | None, cosine: float,
                   threshold: float = SAME_RECORDING_COSINE) -> bool:
    """Two files of one recording: as long within a second, and as close as only such files
    are (``threshold``: see SAME_RECORDING_COSINE and :attr:`Recommender.copy_cosine`), or of one
    title by one artist (two artists' "Intro" of a minute are two songs; an untagged artist may
    be either)."""
    return other is not None and _as_long(row, other) and not _two_tracks(row, other) and (
        cosine >= threshold or _same_title_and_artist(row, other))


def tagged_as_one(row: FileRow, other: FileRow) -> bool:
    """Two files of one recording by their lengths and tags alone, whatever a model makes of them:
    an evaluation compares models, so it cannot ask one which files are copies."""
    return _as_long(row, other) and not _two_tracks(row, other) and _same_title_and_artist(row, other)


def _two_tracks(row: FileRow, other: FileRow) -> bool:
    """Two numbered tracks of one album: two recordings however alike they sound and however they
    are titled (a suite's movements of one length, two "Interlude"s).  A FLAC and its MP3 carry
    one number, or one of them none."""
    return row.track is not None and other.track is not None and row.track != other.track \
        and same_album(row, other)


def _as_long(row: FileRow, other: FileRow) -> bool:
    return row.duration is not None and other.duration is not None \
        and abs(row.duration - other.duration) < SAME_RECORDING_SECONDS


def _same_title_and_artist(row: FileRow, other: FileRow) -> bool:
    if not (row.title and other.title and _title_key(row.title) == _title_key(other.title)):
        return False
    named = artists(row.artist), artists(other.artist)
    return not all(named) or bool(named[0] & named[1])


def same_album(row: FileRow, other: FileRow) -> bool:
    """Songs of one album: one album name, and an artist in common (its discs in two folders
    too) or one folder (a compilation's artists differ, its folder holds them together).
    Another artist's "Greatest Hits" is another album."""
    key = album_key(row.album)
    if key is None or key != album_key(other.album):
        return False
    return bool(artists(row.artist) & artists(other.artist)) or os.path.dirname(row.path) == os.path.dirname(
        other.path)


def album_groups(rows: list[FileRow]) -> list[int | None]:
    """Each row's album as a number, songs joined as :func:`same_album` joins two (one album name,
    and an artist in common or one folder) and through each other: the discs of an album in two
    folders are one album; None for a song without an album tag.  Linear: a name that thousands
    of files share ("Greatest Hits") is not compared pair by pair."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple, int] = {}   # (album, artist) and (album, folder): the first song seen with it
    keys = [album_key(r.album) for r in rows]
    for i, (row, key) in enumerate(zip(rows, keys)):
        if key is None:
            continue
        marks = [(key, "artist", a) for a in artists(row.artist)] + [(key, "folder", os.path.dirname(row.path))]
        for mark in marks:
            parent[root(i)] = root(first.setdefault(mark, i))
    return [None if key is None else root(i) for i, key in enumerate(keys)]


@lru_cache(maxsize=1 << 16)
def _title_key(title: str) -> str:
    """A title as compared (:func:`reform.text.norm`), kept: a list compares each title with many."""
    return norm(title)


def shown_file(files: list[FileRow]) -> FileRow:
    """Of the files of one recording, the one the lists show (:func:`_fuller`)."""
    shown = files[0]
    for row in files[1:]:
        if _fuller(row, shown):
            shown = row
    return shown


def _fuller(row: FileRow, other: FileRow) -> bool:
    """Whether ``row`` is the file of a recording to show rather than ``other``: the tagged one
    (:attr:`FileRow.tagged`; every row has a title, so the larger untagged FLAC made from an OGG
    was shown), then the larger one (a FLAC before its MP3)."""
    return (row.tagged, row.size) > (other.tagged, other.size)


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows (or one vector) at unit length, whatever the metric's index holds."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def distinct(seeds: Iterable[Seed]) -> tuple[list[Seed], list[tuple[Seed, Seed]]]:
    """The seeds with a song given twice (by two queries, or by a copy of it) taken once, as a
    mix of A and A is a mix of A, and those left out, each with the seed it repeats."""
    kept: dict[object, Seed] = {}
    repeated = []
    for seed in seeds:
        # a file from outside the library by its sound: two files of one name are two seeds
        key = seed.row.hash if seed.row is not None else seed.vector.tobytes()
        if key in kept:
            repeated.append((seed, kept[key]))
        kept.setdefault(key, seed)
    return list(kept.values()), repeated


def _rows(seeds: list[Seed]) -> list[FileRow]:
    """The seeds that are songs of the library."""
    return [s.row for s in seeds if s.row is not None]


def _outside(seeds: list[Seed]) -> list[tuple[FileRow, np.ndarray]]:
    """The seeds from outside the library, as rows in no catalogue, with their unit vectors."""
    return [(s.outside, _unit(s.vector)) for s in seeds if s.row is None and s.outside is not None]


def _recordings(seeds: list[Seed]) -> set[str]:
    """The content hashes of the seeds that are songs of the library."""
    return {row.hash for row in _rows(seeds)}
