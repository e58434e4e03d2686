"""Walk music folders, read tags, and tell new, changed, unchanged and removed files apart.

Only stat information is used here: a file whose size and modification time
match its catalogue row is unchanged and costs nothing.  Content hashes, which
recognise moved files and copies of the same audio, are computed later by the
scan workers, in parallel.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .audio import is_audio_path, unread_format
from .payload import audio_spans
from .store import FileRow, SpectrogramStore, Tags
from .text import many_artists, storable

_HASH_BLOCK = 1 << 20
_IN_MEMORY = 64 << 20   # files up to this size are hashed from memory: nearly every song
_TRACK_PREFIX = re.compile(r"^\s*(\d{1,3})(?:\s*[-._)]\s*|\s+)(.+)$")
_DISC_FOLDER = re.compile(r"^\s*(?:cd|dis[ck])\s*[-_.]?\s*\d{1,2}\s*$", re.IGNORECASE)   # Album/CD1, Album/Disc 2


@dataclass(frozen=True)
class Entry:
    """An audio file found on disk."""

    path: str
    size: int
    mtime_ns: int
    root: str


@dataclass(frozen=True)
class Problem:
    """A path that could not even be listed (a symlink loop, an unreadable folder)."""

    path: str
    reason: str


@dataclass
class Found:
    """What walking the music folders found."""

    entries: list[Entry]     # audio files, sorted by path
    problems: list[Problem]  # paths that could not be listed, each with a one-line reason
    unread: Counter[str]     # music in formats ReFORM does not read: extension -> files
    unnamed: list[str]       # files and folders passed over because their names are not UTF-8
    links: dict[str, str] = field(default_factory=dict)   # folder walked through a link: real path -> link
    elsewhere: list[str] = field(default_factory=list)    # links passed over: to a folder elsewhere in the library
    mounts: list[str] = field(default_factory=list)       # folders inside that are another file system's


@dataclass
class Plan:
    """What a scan must do, decided from stat information alone."""

    todo: list[Entry] = field(default_factory=list)        # new, changed, or needing re-analysis
    unchanged: list[Entry] = field(default_factory=list)
    removed: list[FileRow] = field(default_factory=list)   # in the catalogue, gone from disk
    problems: list[Problem] = field(default_factory=list)


def walk(roots: Iterable[str | os.PathLike], known: Iterable[str] = (), passed_over: Iterable[str] = ()) -> Found:
    """Find every audio file under ``roots``, following symbolic links without looping, and
    passing over trash folders and macOS's metadata files (:data:`SKIPPED_FOLDER`).

    A folder reached under two names (a link to it beside it, or two roots naming it) is walked
    once: under the name of ``known`` (the library's music folders) when it is one of them, else
    under its first name, every real folder before any link.  A link to a folder of ``known``, or
    to one inside it, is passed over: the walk of that music folder names its songs by their
    real path, so that scanning a folder holding a link to elsewhere in the library (a
    ``Favourites`` folder of links to albums) does not add those songs a second time, under
    the link's folder as their album.  A link back to a folder the walk is inside is a loop,
    reported as a problem.

    A name that is not UTF-8 (Latin-1 bytes from an old disk or share) can be opened but not
    stored, shown or written into a playlist, so such a file or folder is passed over and listed.
    The folders ``passed_over`` (`reform forget` of a folder inside a music folder) are passed
    over in silence, under whatever name the walk reaches them.
    """
    found = Found([], [], Counter(), [])
    entries: dict[str, Entry] = {}
    seen: dict[tuple[int, int], str] = {}
    for folder in passed_over:   # seen already, as nothing: the walk goes round them
        try:
            seen[_identity(folder)] = folder
        except OSError:
            pass   # gone, or its disk away: nothing to pass over
    known = list(known)
    library = [os.path.realpath(root) for root in known]
    names = {}   # the library's own name of each of its folders, by identity
    for root in known:
        try:
            names[_identity(root)] = root
        except OSError:
            pass   # a folder not mounted now
    links: list[_Link] = []   # met on the way, walked after every real folder
    for root in roots:
        root = os.path.abspath(root)
        if not storable(root):
            found.unnamed.append(root)
        elif os.path.isfile(root):
            if is_audio_path(root):
                # a song of a music folder keeps that folder's layout for its tags (a repair)
                _add_file(root, layout_root(root, known) or os.path.dirname(root), entries, found.problems)
            elif unread_format(root):
                found.problems.append(Problem(root, "a music format ReFORM does not read"))
            else:
                found.problems.append(Problem(root, "not an audio file (unknown extension)"))
        else:   # a folder inside a music folder: the tags come from the music folder's layout
            top = layout_root(root, known) or root
            walk = _Walk(seen, names, entries, found, library, links, _above(root, top))
            _walk_dir(root, top, walk, frozenset(walk.above))
    while links:   # in the order met; a link's own links join the end
        link = links.pop(0)
        _walk_dir(link.path, link.root, link.walk, link.inside, link.device, through_link=True)
    found.entries = sorted(entries.values(), key=lambda e: e.path)
    return found


# What a disk holds beside the music and no listener means: deleted files (the trash folders of
# Linux desktops, macOS and Windows) and macOS's metadata ("._" AppleDouble files beside every
# song on a disk a Mac wrote, which are not audio, and its index folders).
SKIPPED_FOLDER = re.compile(r"\.Trash(-\d+)?|\.Trashes|\$RECYCLE\.BIN|\.Spotlight-V100|\.fseventsd", re.IGNORECASE)
SKIPPED_FILE_PREFIX = "._"


@dataclass
class _Walk:
    """What one walk shares between its folders."""

    seen: dict[tuple[int, int], str]    # folders walked, by identity
    names: dict[tuple[int, int], str]   # the library's own names of its music folders
    entries: dict[str, Entry]
    found: Found
    library: list[str]                  # the real paths of the library's music folders
    links: list[_Link]                  # links to folders, waiting for every real folder to be walked
    above: dict[tuple[int, int], str] = field(default_factory=dict)   # the folders holding a scanned one


@dataclass(frozen=True)
class _Link:
    """A link to a folder met in a walk: where it is, and the walk it belongs to."""

    path: str
    root: str
    walk: _Walk
    inside: frozenset
    device: int


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _above(folder: str, top: str) -> dict[tuple[int, int], str]:
    """The folders from ``folder``'s parent up to its music folder ``top``, by identity: a link
    from inside ``folder`` up to one of them is a loop, as it is when the music folder is scanned
    (and not a way to walk the whole music folder under the names of a folder inside it)."""
    above = {}
    while folder != top and under(folder, top):
        folder = os.path.dirname(folder)
        try:
            above[_identity(folder)] = folder
        except OSError:
            break
    return above


def _walk_dir(folder: str, root: str, walk: _Walk, inside: frozenset, parent_device: int | None = None,
              through_link: bool = False) -> None:
    """Walk ``folder`` (of scanned folder ``root``); ``inside`` holds the identities of the folders
    it lies in, so that a link back to one of them is told from a second name of another.  A link
    met inside (``through_link`` when it is walked) waits until every real folder is walked."""
    found, problems = walk.found, walk.found.problems
    try:
        key = _identity(folder)
    except OSError as exc:
        problems.append(Problem(folder, _os_reason(exc)))
        return
    if parent_device is not None and key[0] != parent_device and not os.path.islink(folder):
        found.mounts.append(folder)   # a disk mounted inside a music folder
    if key in inside:
        scanned = walk.seen.get(key) or walk.above[key]
        problems.append(Problem(folder, f"symbolic link loop: this folder is already scanned as {scanned}"))
        return
    if key in walk.seen:
        return   # the same folder under another name: its songs are found under the first
    if through_link and _in_library(os.path.realpath(folder), walk.library):
        found.elsewhere.append(folder)   # named by its real path, as its music folder's scan names it
        return
    if walk.names.get(key, folder) != folder:
        folder = root = walk.names[key]   # the library knows it by another name: keep that one
    walk.seen[key] = folder
    if os.path.islink(folder):
        found.links[os.path.realpath(folder)] = folder
    inside = inside | {key}
    try:
        with os.scandir(folder) as it:
            children = sorted(it, key=lambda d: d.name)
    except OSError as exc:
        problems.append(Problem(folder, _os_reason(exc)))
        return
    for child in children:
        if not storable(child.name):
            if is_audio_path(child.name) or child.is_dir(follow_symlinks=False):
                found.unnamed.append(child.path)
            continue
        try:
            is_dir = child.is_dir(follow_symlinks=True)
        except OSError as exc:
            problems.append(Problem(child.path, _os_reason(exc)))
            continue
        if is_dir:
            if SKIPPED_FOLDER.fullmatch(child.name):
                continue
            if child.is_symlink():
                walk.links.append(_Link(child.path, root, walk, inside, key[0]))
            else:
                _walk_dir(child.path, root, walk, inside, key[0])
        elif child.name.startswith(SKIPPED_FILE_PREFIX):
            continue
        elif is_audio_path(child.name):
            _add_file(child.path, root, walk.entries, problems)
        elif suffix := unread_format(child.name):
            found.unread[suffix] += 1


def _add_file(path: str, root: str, entries: dict, problems: list) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        problems.append(Problem(path, _os_reason(exc)))
        return
    entries[path] = Entry(path, st.st_size, st.st_mtime_ns, root)


def _in_library(real: str, library: list[str]) -> bool:
    return real in library or root_of(real, library) is not None


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop: the link points back to itself"
    if exc.errno == errno.ENOENT:
        return "broken symbolic link: its target does not exist"
    if exc.errno == errno.EACCES:
        return "permission denied"
    return exc.strerror or str(exc)


def plan(entries: list[Entry], problems: list[Problem], known: dict[str, FileRow],
         roots: Iterable[str], feature_version: str, retry_failed: bool = False) -> Plan:
    """Sort found files into work to do and unchanged ones; catalogue rows under ``roots``
    that were not found are removed, but for those in a folder that could not be listed (its
    permissions changed for a while, a share that answers with errors): kept, as the songs of
    an unmounted disk are.

    An unchanged file that failed is tried again when its failure's cause can change
    without the file changing (``row.retry``: permissions, memory), or with ``retry_failed``.
    """
    result = Plan(problems=list(problems))
    found = {e.path for e in entries} | {p.path for p in problems}
    for entry in entries:
        row = known.get(entry.path)
        if row is None or row.size != entry.size or row.mtime_ns != entry.mtime_ns:
            result.todo.append(entry)
        elif row.status == "ok" and row.feature_version != feature_version:
            result.todo.append(entry)
        elif row.status == "failed" and (row.retry or retry_failed):
            result.todo.append(entry)
        else:
            result.unchanged.append(entry)  # unchanged songs, and failures that did not change
    prefixes = [os.path.join(os.path.abspath(r), "") for r in roots]
    unlisted = tuple(os.path.join(p.path, "") for p in problems)
    for path, row in known.items():
        scanned = any(path.startswith(p) or path == p.rstrip(os.sep) for p in prefixes)
        if scanned and path not in found and not path.startswith(unlisted):
            result.removed.append(row)
    return result


def root_of(path: str, roots: Iterable[str]) -> str | None:
    """The folder of ``roots`` that ``path`` lies under, if any."""
    return next((r for r in roots if under(path, r)), None)


def under(path: str, folder: str) -> bool:
    """Whether ``path`` lies inside ``folder`` (both absolute), by their names.  Called for every
    song and music folder of a scan: ``os.path.join(folder, "")`` cost 0.8 s of a rescan of 342
    files scanned one by one (each one a music folder of its own)."""
    return path.startswith(folder if folder.endswith(os.sep) else folder + os.sep)


def layout_root(path: str, roots: Iterable[str]) -> str | None:
    """The widest folder of ``roots`` that ``path`` lies under, if any: the music folder whose
    ``Artist/Album`` layout names an untagged song, whichever folder inside it was scanned
    (`reform scan ~/Music/Artist/Album` read the album as a folder of songs with no album)."""
    holding = [r for r in roots if under(path, r)]
    return min(holding, key=len) if holding else None


def known_spelling(path: str, known: Iterable[str], links: dict[str, str] | None = None) -> str:
    """``path`` (absolute) written under the known music folder that holds it by another name: a
    link to that folder, or the folder such a link points to; else under a link inside one of
    them that a scan went through (``links``: real path -> link, :attr:`Found.links`), where that
    link still points there.  One folder scanned under two names would otherwise be two sets of
    songs in the catalogue.  So is a path inside a music folder that a link there leads elsewhere
    in the library (``~/Music/alias -> ~/Music/Artist``): the walk of the music folder names
    those songs by the folder's own name, and a scan or `forget` of ``alias`` is one of that
    folder."""
    known = list(known)
    if path in known:
        return path
    holder = root_of(path, known)
    real = os.path.realpath(path)
    if holder is not None and real == os.path.join(os.path.realpath(holder), os.path.relpath(path, holder)):
        return path   # no link on the way down from its music folder
    names = [(os.path.realpath(root), root) for root in known]
    names += [(target, link) for target, link in (links or {}).items() if os.path.realpath(link) == target]
    for real_root, root in sorted(names, key=lambda name: len(name[0]), reverse=True):   # the nearest first
        if real == real_root:
            return root
        if under(real, real_root):
            return os.path.join(root, os.path.relpath(real, real_root))
    return path


def vanished(removed: list[FileRow], entries: list[Entry], roots: Iterable[str]) -> dict[str, int]:
    """The scanned folders in which no audio is left although songs were there, each with how
    many: an unmounted disk or share leaves an empty folder (or none, or a dangling link)
    behind.  A path counts for the deepest of ``roots`` that holds it: a folder linked into a
    music folder is a disk of its own."""
    roots = sorted(roots, key=len, reverse=True)
    alive = {root_of(e.path, roots) for e in entries}
    lost: Counter[str] = Counter()
    for row in removed:
        root = root_of(row.path, roots)
        if root is not None and root not in alive and row.status == "ok":
            lost[root] += 1
    return dict(lost)


def content_hash(path: str) -> str:
    """SHA-256 of the file's audio, first 160 bits in hex: its bytes less the tags a tagger
    rewrites (:mod:`reform.payload`), so equal hashes mean the same audio, byte for byte,
    whatever the tags.  A file whose layout is not recognised is hashed whole.

    SHA-256 rather than BLAKE2b because CPUs with SHA extensions run it twice as fast.
    """
    with open(path, "rb") as f:
        return file_hash(f, os.path.splitext(path)[1].lower())


def file_hash(f: BinaryIO, suffix: str, whole: bool = False) -> str:
    """:func:`content_hash` of an open file, read from its start, whose name ends in ``suffix``;
    with ``whole``, the hash of all its bytes (what a store made before tags were left out
    of the hash holds)."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    # one read, then no seek costs a system call (an Ogg file has thousands of pages)
    data = io.BytesIO(f.read()) if size <= _IN_MEMORY else f
    found = None if whole else audio_spans(data, size, suffix)
    if found is None:
        return _sha256(data, [(0, size)])
    kind, spans = found
    return _sha256(data, spans, f"audio of {kind}:".encode())   # never equal to a whole file's hash


def stored_hash(path: str, store: SpectrogramStore) -> str:
    """The hash this file's audio is, or will be, stored under in ``store``: :func:`content_hash`;
    in a store made before tags were left out of the hash, the whole file's hash where that is
    the one stored (the library's moved files and new copies are then still recognised)."""
    digest = content_hash(path)
    if not store.whole_file_hashes or store.exists(digest):
        return digest
    with open(path, "rb") as f:
        whole = file_hash(f, "", whole=True)
    return whole if store.exists(whole) else digest


def _sha256(f, spans: list[tuple[int, int]], prefix: bytes = b"") -> str:
    h = hashlib.sha256(prefix)
    for start, end in spans:
        f.seek(start)
        while start < end and (block := f.read(min(_HASH_BLOCK, end - start))):
            h.update(block)
            start += len(block)
    return h.hexdigest()[:40]


def read_tags(path: str, root: str | None = None) -> Tags:
    """Artist, album, title, track, year and genre from the file's tags.

    Missing values come from a folder layout ``Artist/Album/01 Title.ext`` (or
    ``Artist/Album/CD1/01 Title.ext``) relative to ``root``, and the title and track from the
    file name.
    """
    raw = _mutagen_tags(path)
    artist, album = layout_tags(path, root)
    stem = Path(path).stem
    match = _TRACK_PREFIX.match(stem)
    name_track, name_title = (int(match.group(1)), match.group(2).strip()) if match else (None, stem)
    tagged = raw.get("artist")   # one naming many artists gives way to the folders' (as a scan fills it in)
    return Tags(
        artist=tagged if tagged and not many_artists(tagged) else artist,
        album=raw.get("album") or album,
        title=raw.get("title") or name_title,
        track=_leading_int(raw.get("tracknumber") or raw.get("track")) or name_track,   # APEv2: "Track"
        year=_year(raw.get("date") or raw.get("year")),
        genre=raw.get("genre"),
    )


def layout_tags(path: str, root: str | None = None) -> tuple[str | None, str | None]:
    """The artist and album named by the folders between ``root`` and the file (``Artist/Album/``,
    or ``Artist/Album/CD1/``); None where there are too few folders, and no artist in a folder of
    many artists' albums (``Various Artists/Album/``: :func:`reform.text.many_artists`)."""
    parts = Path(os.path.relpath(path, root)).parts if root else Path(path).parts[-3:]
    folders = parts[:-1]
    if folders and _DISC_FOLDER.match(folders[-1]):   # Artist/Album/CD1: the album is the folder above
        folders = folders[:-1]
    artist = folders[-2] if len(folders) >= 2 and not many_artists(folders[-2]) else None
    return artist, (folders[-1] if folders else None)


ID3_FRAMES = {"artist": "TPE1", "album": "TALB", "title": "TIT2", "tracknumber": "TRCK", "date": "TDRC",
              "genre": "TCON"}


def _mutagen_tags(path: str) -> dict[str, str]:
    import mutagen
    import mutagen._vorbis
    import mutagen.easyid3
    import mutagen.id3

    try:
        tagged = mutagen.File(path, easy=True)
    except Exception:  # broken tags must never stop a scan: fall back to the folder layout
        tagged = _tags_by_content(path)
    if tagged is None or not tagged.tags:
        return {}
    tags = tagged.tags
    if isinstance(tags, mutagen._vorbis.VComment) and any("\ufffd" in value for _, value in tags):
        tags = _vorbis_bytes_kept(tagged)
    # WAV and AIFF carry ID3 frames, which mutagen's easy mode does not name for them
    frames = isinstance(tags, mutagen.id3.ID3) and not isinstance(tags, mutagen.easyid3.EasyID3)
    out = {}
    for key in ("artist", "album", "title", "tracknumber", "track", "date", "year", "genre"):
        try:
            values = tags.get(ID3_FRAMES.get(key, "") if frames else key)
            values = getattr(values, "text", values)
        except (KeyError, ValueError):
            values = None
        if values:
            text = " / ".join(_cp1252_kept(str(v)) for v in values)
            text = " ".join(text.replace("\x00", " ").split())
            if text:
                out[key] = text
    return out


class _Nameless(io.BufferedReader):
    """A file whose name mutagen cannot see, so that it goes by the file's first bytes alone."""

    name = ""


def _tags_by_content(path: str):
    """The tags of a file that is not what its extension says (an MP3 named .flac, whose FLAC
    reader mutagen chose by the name and which then failed), or None."""
    import mutagen

    try:
        with _Nameless(io.FileIO(path)) as f:
            return mutagen.File(f, easy=True)
    except Exception:
        return None


def _vorbis_bytes_kept(tagged):
    """The Vorbis comments of an Ogg or FLAC file read again, their bytes that are not UTF-8 kept (as
    surrogates, for :func:`_cp1252_kept`) where mutagen put U+FFFD: old taggers wrote Latin-1 there.
    The comments as first read if they cannot be read so."""
    comments, kind = type(tagged.tags), type(tagged)

    class Kept(comments):
        def load(self, fileobj, *args, **kwargs):
            self.vendor, pairs = _comments_kept(fileobj)
            self.extend(pairs)

    blocks = getattr(kind, "METADATA_BLOCKS", None)   # FLAC's block types; the Ogg formats' _Tags
    made = {"METADATA_BLOCKS": [Kept if b is comments else b for b in blocks]} if blocks else {"_Tags": Kept}
    try:
        return type(f"Kept{kind.__name__}", (kind,), made)(tagged.filename).tags
    except Exception:
        return tagged.tags


def _comments_kept(fileobj) -> tuple[str, list[tuple[str, str]]]:
    """The vendor and (key, value) pairs of a Vorbis comment block, read as mutagen reads them but
    with the bytes that are not UTF-8 kept as surrogates, and a comment without "=" passed over
    (mutagen's own reading with its errors kept refused the whole block for one such comment:
    warmux's "encoded by samplitude" beside ``ALBUM=Apn\xe9e``)."""
    import struct

    from mutagen._vorbis import is_valid_key

    def text() -> str:
        (length,) = struct.unpack("<I", fileobj.read(4))
        return fileobj.read(length).decode("utf-8", "surrogateescape")

    vendor = text()
    (count,) = struct.unpack("<I", fileobj.read(4))
    pairs = []
    for _ in range(count):
        key, sign, value = text().partition("=")
        if sign and key.isascii() and is_valid_key(key):
            pairs.append((key, value))
    return vendor, pairs


_NOT_UTF8 = re.compile("[\udc80-\udcff]")   # a byte that is not UTF-8, as surrogateescape keeps it


def _cp1252_kept(text: str) -> str:
    r"""``text`` with each byte that was not UTF-8 read as Windows-1252 (Latin-1 with curly quotes
    and the euro sign), as players show it: ``Apn\xe9e`` is ``Apnée``, not ``Apn\ufffde``."""
    def byte(match: re.Match) -> str:
        code = ord(match.group()) - 0xDC00
        try:
            return bytes([code]).decode("cp1252")
        except UnicodeDecodeError:   # the five bytes cp1252 leaves out: Latin-1's control characters
            return chr(code)

    return _NOT_UTF8.sub(byte, text)


def _leading_int(text: str | None) -> int | None:
    """The number a track tag starts with ("3", "03/12"); None for none, or for one of more
    than six digits, which no album numbers and SQLite could not store (the scan stopped there)."""
    match = re.match(r"\s*(\d+)", text or "")
    return int(match.group(1)) if match and len(match.group(1).lstrip("0")) <= 6 else None


def _year(text: str | None) -> int | None:
    match = re.search(r"(1[89]\d\d|20\d\d)", text or "")
    return int(match.group(1)) if match else None
