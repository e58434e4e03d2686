"""Finding songs by words or file name, the same way in the terminal, the web page and the players.

A query names one song when it is, in order of precedence: the exact file name of one
song (``hr3-caves.ogg``); words that are exactly one song's "artist title" or title; or
words that all appear in one song's artist, title, album or file name (the files of one
song count as one).  Case, accents
and punctuation are ignored throughout (see :func:`reform.text.norm`); a query of no letter
or digit at all (an emoji) is looked for as it is written.

The songs are looked for in rows in memory or in the catalogue, whose table of search words
answers the same two questions (:class:`Songs`) through indexes; either way the rows it gives
are checked here by the same words, so the two can only differ in speed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Protocol

from .audio import is_audio_path
from .errors import QueryError
from .store import FileRow, one_per_recording
from .text import listing, name_key, norm, search_words, shown, song_title


class Songs(Protocol):
    """Where :func:`find` looks: the analysed songs with a file name, or holding words."""

    def named(self, name: str) -> list[FileRow]:
        """The songs whose file name is ``name`` ignoring case (at least those)."""

    def with_words(self, words: list[str]) -> list[FileRow]:
        """The songs whose search text holds every one of the normalised ``words`` (at least those)."""


class InRows:
    """:class:`Songs` over rows in memory."""

    def __init__(self, rows: Iterable[FileRow]):
        self.rows = list(rows)

    def named(self, name: str) -> list[FileRow]:
        return [r for r in self.rows if name_key(r.path) == name_key(name)]

    def with_words(self, words: list[str]) -> list[FileRow]:
        return [r for r in self.rows if holds(search_text(r), words)]


def title_of(row: FileRow) -> str:
    """The title tag, else the file name without its extension."""
    return song_title(row.title, row.path)


def search_text(row: FileRow) -> str:
    """The normalised words a query is matched in: artist, album, title and file name."""
    return search_words(row.artist, row.album, row.title, row.path)


def holds(text: str, words: list[str]) -> bool:
    """Whether the search text ``text`` holds every one of the normalised ``words``: the one
    test of a match, wherever the text was kept."""
    return all(w in text for w in words)


def symbols_in(rows: Iterable[FileRow], text: str) -> list[FileRow]:
    """The songs whose artist, title, album or file name holds ``text`` as it is written, case
    aside: how a query of no letter or digit (an emoji, a sign) matches, since the search words
    keep letters and digits only.  Every song is looked at: such queries are rare."""
    needle = text.strip().casefold()
    return [r for r in rows
            if any(needle in (v or "").casefold() for v in (r.artist, r.title, r.album, os.path.basename(r.path)))]


def looks_like_path(text: str) -> bool:
    """A query written as a path (a folder separator, or an audio file's extension)."""
    return os.sep in text or text.startswith("~") or is_audio_path(text)


def find(songs: Songs | Iterable[FileRow], text: str,
         one_song: Callable[[FileRow, FileRow], bool] | None = None) -> FileRow:
    """The one song ``text`` names among ``songs`` (rows, or the catalogue); see the module's
    docstring.  QueryError otherwise.  ``one_song`` tells the files of one song (a FLAC and its
    MP3: the recommender's :meth:`~reform.recommend.Recommender.one_song`) that no words can
    tell apart; the largest of them is the match."""
    if not text.strip():
        raise QueryError("the query is empty", hint="give words of the artist or title, or a path")
    if not hasattr(songs, "with_words"):
        songs = InRows(songs)
    name = os.path.basename(text.rstrip(os.sep))
    candidates = songs.named(name)
    for same in (lambda r: os.path.basename(r.path) == name,
                 lambda r: name_key(r.path) == name_key(name)):
        named = list(one_per_recording(r for r in candidates if same(r)).values())
        if len(named) == 1:
            return named[0]
    words = norm(text).split()
    found = (r for r in songs.with_words(words) if holds(search_text(r), words)) if words else \
        symbols_in(songs.with_words([]), text)
    matches = list(one_per_recording(found).values())
    if not matches:
        if os.path.isdir(os.path.expanduser(text)):
            raise QueryError("this is a folder, and a query is one song", path=text,
                             hint="give a file of it, or words of a song; `reform playlists --to DIR --mix FOLDER` "
                                  "makes a playlist from a folder")
        if looks_like_path(text):
            raise QueryError("no such file, and no song in the library has this file name",
                             path=text, hint="check the path, or run `reform scan` on its folder")
        raise QueryError(f"no song matches {text!r}",
                         hint="try fewer words, or give the path of the file")
    said = " ".join(words)
    exact = [r for r in matches if said in (norm(f"{r.artist or ''} {title_of(r)}"), norm(title_of(r)))]
    if len(matches) == 1 or len(exact) == 1:
        return (exact or matches)[0]
    alike = exact or matches
    if one_song is not None and all(one_song(r, alike[0]) for r in alike[1:]):
        return max(alike, key=lambda r: (r.size, r.path))   # recommendations take them for one song
    named = listing([f"{r.label} ({shown(r.path)})" for r in matches[:10]], total=len(matches))
    raise QueryError(f"{len(matches)} songs match {text!r}: {named}",
                     hint="add words to the query (several words go in quotes: \"groove no 1\"), or give the "
                          "path of the file")

