"""Finding songs by words or file name, the same way in the terminal, the web page and the players.

A query names one song when it is, in order of precedence: the exact file name of one
song (``hr3-caves.ogg``); words that are exactly one song's "artist title" or title; or
words that all appear in one song's artist, title, album or file name.  Case, accents
and punctuation are ignored throughout (see :func:`reform.text.norm`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .audio import is_audio_path
from .errors import QueryError
from .store import FileRow
from .text import norm


def title_of(row: FileRow) -> str:
    """The title tag, else the file name without its extension."""
    return row.title or Path(row.path).stem


def search_text(row: FileRow) -> str:
    """The normalised words a query is matched in: artist, album, title and file name."""
    return " ".join(filter(None, (norm(row.artist), norm(row.album), norm(title_of(row)),
                                  norm(os.path.basename(row.path)))))


def matching(rows: Iterable[FileRow], text: str) -> list[FileRow]:
    """The rows whose search text holds every word of ``text`` (all rows for no words)."""
    words = norm(text).split()
    return [r for r in rows if all(w in search_text(r) for w in words)]


def looks_like_path(text: str) -> bool:
    """A query written as a path (a folder separator, or an audio file's extension)."""
    return os.sep in text or text.startswith("~") or is_audio_path(text)


def find(rows: list[FileRow], text: str) -> FileRow:
    """The one song ``text`` names (see the module's docstring); QueryError otherwise."""
    if not norm(text):
        raise QueryError("the query is empty", hint="give words of the artist or title, or a path")
    name = os.path.basename(text.rstrip(os.sep))
    for same in (lambda r: os.path.basename(r.path) == name,
                 lambda r: os.path.basename(r.path).casefold() == name.casefold()):
        named = _distinct([r for r in rows if same(r)])
        if len(named) == 1:
            return named[0]
    matches = _distinct(matching(rows, text))
    if not matches:
        if looks_like_path(text):
            raise QueryError("no such file, and no song in the library has this file name",
                             path=text, hint="check the path, or run `reform scan` on its folder")
        raise QueryError(f"no song matches {text!r}",
                         hint="try fewer words, or give the path of the file")
    words = " ".join(norm(text).split())
    exact = [r for r in matches if norm(f"{r.artist} {title_of(r)}") == words or norm(title_of(r)) == words]
    if len(matches) == 1 or len(exact) == 1:
        return (exact or matches)[0]
    listing = "; ".join(f"{r.artist or '?'} - {title_of(r)} ({r.path})" for r in matches[:10])
    more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    raise QueryError(f"{len(matches)} songs match {text!r}: {listing}{more}",
                     hint="add words to the query, or give the path of the file")


def _distinct(rows: list[FileRow]) -> list[FileRow]:
    """One row per recording: byte-identical copies are one song (the first path)."""
    seen: dict[str | None, FileRow] = {}
    for r in sorted(rows, key=lambda r: r.path):
        seen.setdefault(r.hash or r.path, r)
    return list(seen.values())
