"""Text matching shared by every interface: one normaliser, so a query that finds a song on
the web page finds it in the terminal too."""

from __future__ import annotations

import functools
import os
import re
import shlex
import unicodedata
from pathlib import Path


# Latin letters that are no accented letter to Unicode, so NFKD keeps them, as a listener types them
# without the key: "odegard" for Ødegård, "aetherisk" for Ætherisk, "strasse" for Straße (the page's too)
_FOLDED = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "đ": "d", "ð": "d", "ł": "l", "þ": "th",
                         "ı": "i"})


def norm(text: str | None) -> str:
    """Lower case, accents and punctuation removed, words separated by one space:
    ``"Ñandú (Live)"`` -> ``"nandu live"``, ``"Ødegård"`` -> ``"odegard"``.  Every mark goes, as the
    web page's normaliser drops them (``\\p{M}``): the vowel signs of Devanagari and other scripts
    too, which split a word where they stood when only the combining accents went (``"गाना"``
    became ``"ग न"``)."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.category(c).startswith("M"))
    return " ".join(re.sub(r"[^\w]+", " ", text.lower().translate(_FOLDED)).split())


# Between the artists of one tag: " / " (how ReFORM joins a tag's several values, ID3v2.4's
# null-separated ones among them), ";" (many taggers'), and a stray null.  Never "&", "and" or a
# bare "/": they are inside names ("Simon & Garfunkel", "AC/DC").
_ARTIST_SEPARATORS = re.compile(r"\s+/\s+|;|\x00")


@functools.lru_cache(maxsize=65536)   # a radio or a mix asks it of the same few thousand tags again and again
def artists(tag: str | None) -> frozenset[str]:
    """The artists of an artist tag, each as :func:`norm` makes it, for the filters that compare
    artists (a song shares its artist with ``Björk`` when tagged ``"A / B / Björk"`` too):
    ``"Artist A / Björk; C"`` -> ``{"artist a", "bjork", "c"}``; empty for no tag."""
    return frozenset(filter(None, (norm(part) for part in _ARTIST_SEPARATORS.split(tag or ""))))


def album_key(album: str | None) -> str | None:
    """An album tag as every comparison of albums takes it (:func:`norm`: case, accents and
    punctuation aside); None for a song without one, which shares its album with no song."""
    return norm(album) or None


def song_title(title: str | None, path: str) -> str:
    """The title tag, else the file name without its extension."""
    return title or Path(path).stem


MAX_LABEL = 200   # characters of a tag shown: a 20,000-character title filled the heading line


def one_line(text: str | None) -> str:
    """``text`` as one line of a listing: line breaks, tabs and every other control character
    (a tag's ESC or BEL would recolour or retitle the terminal) become single spaces, and a
    tag longer than MAX_LABEL characters is cut, with an ellipsis."""
    line = " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in text or "").split())
    return line if len(line) <= MAX_LABEL else line[:MAX_LABEL - 1].rstrip() + "…"


# what names many artists at once: a compilation's "artist" (iTunes' "Compilations" folder, "Various
# Artists", "VA"), which no song's artist is
_MANY_ARTISTS = re.compile(r"^\s*(?:various(?:\s+artists)?|v\.?\s?a\.?|compilations?|soundtracks?)\s*$", re.IGNORECASE)


def many_artists(name: str | None) -> bool:
    """Whether an artist tag or folder names no artist but many (``Various Artists``): taken for
    one, it kept a compilation's songs away from each other by the artist filter, and let the
    query's own artist through."""
    return bool(name) and _MANY_ARTISTS.match(name) is not None


def song_label(artist: str | None, title: str | None, path: str) -> str:
    """How a song is named in text: ``"Artist - Title"``, or the title alone when the artist
    tag is missing (no ``"? - "`` for the untagged files of a real library), each on one line
    (:func:`one_line`)."""
    title = one_line(song_title(title, path))
    artist = one_line(artist)
    return f"{artist} - {title}" if artist else title


def search_words(artist: str | None, album: str | None, title: str | None, path: str) -> str:
    """The normalised words a query is matched in: artist, album, title and file name, and for a
    song that names neither artist nor album the names of the two folders above it
    (:func:`telling_folders`), which are all that tell it apart (two soundtracks' untagged
    "track18" could only be named by their whole paths); two, not all: "home" or "music" would
    name every such song.  The catalogue
    keeps them for every file (its table ``song_words``), so they are made here, from the row's
    fields, for SQL and Python alike."""
    return " ".join(filter(None, (norm(artist), norm(album), norm(song_title(title, path)),
                                  norm(os.path.basename(path)), norm(telling_folders(artist, album, path)))))


def telling_folders(artist: str | None, album: str | None, path: str) -> str | None:
    """The two folders above a song that names neither artist nor album (``drascula/audio``),
    which :func:`search_words` holds and the web page searches in too; None for a tagged song."""
    return None if artist or album else os.sep.join(path.split(os.sep)[-3:-1])


def name_key(path: str) -> str:
    """The file name of ``path``, case-folded and composed (NFC): what a query by file name is
    looked up by, so that "Café.wav" typed finds a name stored decomposed, as macOS writes it."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", os.path.basename(path)).casefold())


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 song``, ``2 songs``; ``nouns`` for irregular plurals."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def listing(items: list[str], limit: int = 10, more: str = "", total: int | None = None) -> str:
    """The first ``limit`` of ``items`` joined with "; ", then how many more there are and
    ``more`` (where to see them all): a message naming every root of a library of loose files,
    or every song a query matches, would run on for pages.  ``total``: how many there are, when
    ``items`` holds only the first of them (a query can match 700,000 songs)."""
    total = len(items) if total is None else total
    text = "; ".join(items[:limit])
    if total > limit:
        text += f"; and {total - limit} more" + (f" ({more})" if more else "")
    return text


def with_article(noun: str) -> str:
    """``a scan``, ``an embed``: the indefinite article by the noun's first letter."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def agree(count: int, one: str, many: str) -> str:
    """The word that agrees with ``count`` things: ``agree(1, "has", "have")`` is ``has``."""
    return one if count == 1 else many


RENAME_HINT = "rename to UTF-8, for example with `convmv -f latin1 -t utf8 --notest -r FOLDER`"
UNNAMED_REASON = "the name is not UTF-8, so the catalogue cannot hold it: passed over"


def storable(path: str) -> bool:
    """Whether ``path`` is text: a name of bytes that are not UTF-8 arrives with surrogates."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown(path: str) -> str:
    r"""``path`` as it can be printed, its undecodable bytes and control characters written out:
    ``caf\xe9.flac``, ``\x01ctrl.mp3`` (a line break or escape in a name would break a listing
    or drive the terminal)."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def home_command(home: str | None) -> str:
    """How a command is written to act on ``home``: `reform --home H` (H quoted for a shell), or
    `reform` for the home found by default (``home`` None)."""
    return "reform" if home is None else f"reform --home {shlex.quote(home)}"


def naming_home(text: str, home: str | None) -> str:
    """``text`` with every `reform ...` command in it acting on ``home`` (:func:`home_command`).  A
    hint printed for a home given by --home is copied and run as it reads, and without the option
    it would act on the default home."""
    return text if home is None else text.replace("`reform ", f"`{home_command(home)} ")
