"""What plays next, for players that keep going by themselves: MPD's queue (`reform mpd`),
Lyrion's "Don't Stop The Music" (`reform serve`) and radio playlists (`reform playlists`).

The next songs are those closest to a blend of what is playing and what played just
before (the newest weighs most), under rules a listener sets: nothing heard within
the last ``no_repeat`` songs comes back, an artist (or album) waits ``artist_gap``
(``album_gap``) songs before it returns, durations within bounds, the library's
filters.  The artist and album gaps give way when the library is too small to keep
them; the no-repeat window never does.

:class:`MusicRoot` translates between a player's paths (relative to its music folder)
and the library's (absolute paths on this computer).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, QueryError
from .recommend import Filters, Recommendation, Recommender, same_album
from .store import FileRow
from .text import artists

MAX_SEEDS = 5         # the current song and the four before it


@dataclass(frozen=True)
class Rules:
    """How a radio chooses (the defaults suit a few hours of listening)."""

    no_repeat: int = 50                  # a song within the last N played or queued never returns
    artist_gap: int = 3                  # an artist returns only after N other songs (0: no rule)
    album_gap: int = 5                   # the same for albums (0: no rule)
    min_duration: float = 0.0            # seconds; 0: no lower bound
    max_duration: float = 0.0            # seconds; 0: no upper bound
    filters: Filters = Filters()         # the library's filters, relative to the seeds
    keep: Callable[[FileRow], bool] | None = None  # any further test a song must pass
    shuffle: int = 1                     # draw n among the best shuffle * n (1: the best n, in order)
    seed_decay: float = 0.5              # each older seed weighs this much of the next (1: all equal)

    def __post_init__(self) -> None:
        for name in ("no_repeat", "artist_gap", "album_gap", "min_duration", "max_duration"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.replace('_', ' ')} cannot be negative",
                                  hint="give 0 to turn the rule off")
        if self.max_duration and self.min_duration > self.max_duration:
            raise ConfigError(f"the shortest length asked for ({self.min_duration:g} s) is above the longest "
                              f"({self.max_duration:g} s): no song could pass",
                              hint="give --min-duration below --max-duration")
        if self.shuffle < 1:
            raise ConfigError("shuffle must be at least 1", hint="1 keeps the best songs in order")
        if not 0 < self.seed_decay <= 1:
            raise ConfigError("seed_decay must be above 0 and at most 1", hint="1 weighs all seeds equally")

    def limits(self) -> str:
        """The rules that can leave a radio without a song, in words ("no song of the last 50, at
        least 600 s long"; the gaps give way, so they never do)."""
        said = [f"no song of the last {self.no_repeat}"] if self.no_repeat else []
        said += [f"at least {self.min_duration:g} s long"] if self.min_duration else []
        said += [f"at most {self.max_duration:g} s long"] if self.max_duration else []
        said += ["the artist and album filters"] if self.filters.active else []
        return ", ".join(said) or "none"


def next_songs(rec: Recommender, seeds: list[FileRow], recent: list[FileRow], n: int,
               rules: Rules = Rules(), rng: random.Random | None = None) -> list[Recommendation]:
    """Up to ``n`` songs to play next.

    Parameters
    ----------
    rec : the library's recommender
    seeds : what the next songs should be like, newest first (the playing song first);
        songs without an embedding are skipped
    recent : what was played or is queued, newest first (the song the new ones follow
        first); the no-repeat window and the gaps count back through it
    rules : see :class:`Rules`
    rng : for ``rules.shuffle`` (a fixed seed gives a repeatable draw)
    """
    if n < 1:
        return []
    centre = rec.expanded(_centre(rec, seeds, rules.seed_decay), seeds)
    banned = {r.hash for r in seeds} | {r.hash for r in recent[:rules.no_repeat]}
    want = n * rules.shuffle
    k = min(len(rec), max(8 * (want + len(banned)), 256))
    near = seeds + recent[:rules.no_repeat]   # another file of one of them is no new song either
    while True:
        usable = [(row, score) for row, score in _ranked(rec, centre, k)
                  if row.hash not in banned and _allowed(row, seeds, rules)
                  and not any(rec.one_recording(row, other) for other in near)]
        picked = _pick(usable, recent, want, rules, strict=True, same=rec.one_recording)
        if len(picked) >= want or k >= len(rec):
            break
        k = min(len(rec), 4 * k)
    if len(picked) < n:  # too few songs keep the gaps: let them give way, as few as need to
        picked = _pick(usable, recent, n, rules, strict=False, start=picked, same=rec.one_recording)
    if rules.shuffle > 1 and len(picked) > n:
        # a random order of the best, then the first that keep the gaps: a plain draw from them
        # put two songs of one artist side by side that the gaps had kept apart
        pool = list(picked)
        (rng or random.Random()).shuffle(pool)
        picked = spaced(pool, n, rules, rec.one_recording, recent)
    return [Recommendation(row, score) for row, score in picked[:n]]


def _centre(rec: Recommender, seeds: list[FileRow], decay: float) -> np.ndarray:
    """The blend of the seeds' unit vectors, the newest weighing most."""
    vectors = [rec.vector_of(r.hash) for r in seeds if rec.has(r.hash)][:MAX_SEEDS]
    if not vectors:
        raise QueryError("none of the songs to continue from has an embedding",
                         hint="run `reform scan` on their folder, then `reform embed`")
    weights = decay ** np.arange(len(vectors))
    units = np.stack([v / (np.linalg.norm(v) or 1.0) for v in vectors])     # (S, D)
    return (weights[:, None] * units).sum(axis=0) / weights.sum()           # (D,)


def _ranked(rec: Recommender, centre: np.ndarray, k: int) -> list[tuple[FileRow, float]]:
    """The ``k`` songs closest to ``centre``, closest first."""
    return [(row, score) for _, row, score in rec.ranked(centre.astype(np.float32), k)]


def fits_length(row: FileRow, rules: Rules) -> bool:
    """Whether a song's length lies within the rules' shortest and longest (0: no bound)."""
    duration = row.duration or 0.0
    return not (rules.min_duration and duration < rules.min_duration
                or rules.max_duration and duration > rules.max_duration)


def spaced(items: list[tuple[FileRow, float]], n: int, rules: Rules,
           same: Callable[[FileRow, FileRow], bool] | None = None,
           recent: list[FileRow] = ()) -> list[tuple[FileRow, float]]:
    """The first ``n`` of ``items`` (row, score) in their order, each the first left that keeps the
    artist and album gaps from the songs before it (and ``recent``, newest first); where too few
    keep them, the gaps give way as few times as need be.  A folder's mix keeps its gaps so, and
    a radio its shuffled draw."""
    picked = _pick(items, list(recent), n, rules, strict=True, same=same)
    if len(picked) < n:
        picked = _pick(items, list(recent), n, rules, strict=False, start=picked, same=same)
    return picked


def _allowed(row: FileRow, seeds: list[FileRow], rules: Rules) -> bool:
    """The rules that never give way: durations, the library's filters, ``keep``."""
    if not fits_length(row, rules):
        return False
    f = rules.filters
    if f.exclude_same_artist and artists(row.artist) & {a for s in seeds for a in artists(s.artist)}:
        return False
    if f.exclude_same_album and any(same_album(row, s) for s in seeds):
        return False
    return rules.keep is None or rules.keep(row)


def _pick(usable: list[tuple[FileRow, float]], recent: list[FileRow], n: int, rules: Rules,
          strict: bool, start: list[tuple[FileRow, float]] = (),
          same: Callable[[FileRow, FileRow], bool] | None = None) -> list[tuple[FileRow, float]]:
    """Up to ``n`` songs (after those of ``start``), each the best usable one that keeps the
    artist and album gaps from the songs before it (``strict``) and the cap per artist, and is
    no file of a recording picked already (``same``)."""
    picked = list(start)
    while len(picked) < n:
        before = [r for r, _ in reversed(picked)] + recent               # newest first
        choice = next((u for u in usable if _fits(u[0], before, picked, rules, strict)
                       and not (same and any(same(u[0], r) for r, _ in picked))), None)
        if choice is None:
            break
        picked.append(choice)
    return picked


def _fits(row: FileRow, before: list[FileRow], picked: list[tuple[FileRow, float]], rules: Rules,
          strict: bool) -> bool:
    if any(row.hash == r.hash for r, _ in picked):
        return False
    names = artists(row.artist)
    f = rules.filters
    # the cap counts back through what played too (over the no-repeat window): a radio picks one
    # song at a time, so the songs picked in this call alone never held an artist twice
    window = before[:rules.no_repeat] if rules.no_repeat else before
    if f.max_per_artist is not None and f.capped(names, Counter(a for r in window for a in artists(r.artist))):
        return False
    if strict and names & {a for r in before[:rules.artist_gap] for a in artists(r.artist)}:
        return False
    return not (strict and any(same_album(row, r) for r in before[:rules.album_gap]))


class MusicRoot:
    """A player's music folder as this computer sees it: player paths <-> library paths.

    Parameters
    ----------
    local : the folder on this computer that the player calls its music folder, or None
        to find it from the first song the player names (:meth:`learn`)
    """

    def __init__(self, local: str | os.PathLike | None = None):
        self.local = None if local is None else os.path.abspath(os.path.expanduser(os.fspath(local)))
        self.candidates: list[str] = []   # the folders the last song left to choose from, when several

    def learn(self, player_path: str, rows: list[FileRow]) -> bool:
        """Find the local folder from one song the player names (its path relative to the
        player's music folder): the one library song whose path ends with it.  True when
        the folder is known afterwards; a song the library holds under several folders (a
        backup scanned too) leaves them in :attr:`candidates` and the folder unknown."""
        if self.local is not None:
            return True
        tail = os.sep + player_path.lstrip("/").replace("/", os.sep)
        found = sorted({row.path[: -len(tail)] or os.sep for row in rows if row.path.endswith(tail)})
        self.candidates = found if len(found) > 1 else []
        if len(found) == 1:
            self.local = found[0]
        return self.local is not None

    def to_library(self, player_path: str) -> str | None:
        """The library path of a song the player names relative to its music folder."""
        if self.local is None:
            return None
        return os.path.normpath(os.path.join(self.local, player_path.lstrip("/")))

    def to_player(self, path: str) -> str | None:
        """The player's name (relative, "/"-separated) of a library song; None when the song
        lies outside the player's music folder."""
        if self.local is None:
            return None
        rel = os.path.relpath(path, self.local)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
            return None
        return rel.replace(os.sep, "/")
