"""`reform playlists --to DIR`: a folder of M3U playlists that music servers import by themselves.

Navidrome, Jellyfin and most servers import the playlists they find in a folder and
refresh them when the files change.  Each run writes the wanted playlists (a radio per
seed song, a mix per folder), rewrites only those whose songs changed, and removes
the ones no longer wanted, and it never touches a file it did not write: a manifest
(``.reform-playlists.json``) holds the content hash of every file it wrote, and a
file whose name or content it does not know is left alone.  Every file is written to
a temporary name and renamed; the manifest names the old and the new content while
files change, so an interrupted run leaves nothing it would not recognise.

Songs are written relative to a music root: ``prefix + path under the root``, the
prefix being by default the way from the playlist folder to the root (``../``), so
that a server resolving entries from the playlist's folder finds them whatever it
calls the root (``/music`` in a container).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .export import m3u_text, relative_path
from .files import remove_dead_temporaries, write_text
from .radio import Rules, fits_length, next_songs, spaced
from .recommend import Recommender
from .store import FileRow, one_per_recording

MANIFEST = ".reform-playlists.json"
SUFFIX = ".m3u8"   # UTF-8 by name; MPD's playlist folder reads only .m3u (same text: --extension m3u)
MAX_NAME = 120         # characters of a playlist's file name before " (2)" and its extension,
MAX_NAME_BYTES = 200   # and bytes in UTF-8: file systems allow 255, and a Japanese letter takes 3
EDITED = "changed since ReFORM wrote it: no longer managed (remove it to have ReFORM write it again)"
_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*]+')


@dataclass(frozen=True)
class Playlist:
    """A playlist to write: its title (the file is named after it) and its songs in order."""

    title: str
    rows: list[FileRow]
    why_empty: str | None = None   # why it holds no song, when its songs do not say it
    misplaced: bool = False        # empty as its song lies outside the music root (a radio's seed)


@dataclass
class Report:
    """What a run did to the folder, file by file."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    left_alone: list[tuple[str, str]] = field(default_factory=list)   # (file, why)
    outside_root: int = 0                                             # songs not under the root
    empty: list[tuple[str, bool, str]] = field(default_factory=list)   # (title, an earlier file is
                                              # kept, why): playlists with no song to write
    unwritable: int = 0                       # songs whose path holds a line break (see m3u_text)
    gone: int = 0                             # songs whose file was deleted since the last scan
    untouched: bool = False                   # every playlist was empty: the folder is left as it was
    misplaced: bool = False                   # one was empty as its songs lie outside the music root


# -- what to write ----------------------------------------------------------------------------------
def radio(rec: Recommender, seed: FileRow, length: int, rules: Rules = Rules(),
          root: Path | None = None) -> Playlist:
    """The seed, then each next song chosen from the last ones as `reform mpd` would (drifting,
    artists spread, nothing twice).  A seed that a playlist under ``root`` cannot hold
    (:func:`unwritable`) gives an empty playlist that says why: a radio starts with its song."""
    if root is not None and (why := unwritable(seed, root)):
        return Playlist(f"ReFORM radio - {seed.label}", [], f"its song cannot be in it: {why}",
                        misplaced=_entry(seed, root, "") is None)
    rows = [seed]
    while len(rows) < length:
        picks = next_songs(rec, rows[::-1], rows[::-1], 1, rules)
        if not picks:
            break
        rows.append(picks[0].row)
    return Playlist(f"ReFORM radio - {seed.label}", rows)


def folder_mix(rec: Recommender, songs: list[FileRow], folder: str | os.PathLike, length: int,
               rules: Rules = Rules()) -> Playlist:
    """Songs like those of ``songs`` under ``folder``, none of them itself, chosen by the radios'
    ``rules`` but the no-repeat window: their filters, song lengths and ``keep`` (which songs the
    playlist can hold, :func:`unwritable`, chosen from before the filters count them), and the
    artist and album gaps, which the mix's order then keeps where it can."""
    base = os.path.join(os.path.abspath(os.fspath(folder)), "")
    real = os.path.join(os.path.realpath(base), "")   # a link to a folder the library scanned
    rows = list(one_per_recording(r for r in songs if rec.has(r.hash) and (
        r.path.startswith(base) or r.path.startswith(real))).values())
    if not rows:
        if not os.path.isdir(base):
            raise ConfigError("no such folder", path=folder, hint="give --mix a folder the library has scanned")
        raise ConfigError("no song of the library with an embedding lies in this folder",
                          path=folder, hint="give a folder the library has scanned")
    def usable(row: FileRow) -> bool:
        return fits_length(row, rules) and (rules.keep is None or rules.keep(row))

    # more songs than asked for, so that the gaps have others to take in turn
    spare = length * (1 + max(rules.artist_gap, rules.album_gap))
    recs = rec.mix([rec.seed_of(r) for r in rows], spare, rules.filters, keep=usable)
    picked = spaced([(r.row, r.score) for r in recs], length, rules)
    title = f"ReFORM mix - {Path(base).name}"
    if picked:
        return Playlist(title, [row for row, _ in picked])
    seeds = {r.hash for r in rows}
    if all(r.hash in seeds for r in songs if rec.has(r.hash)):
        return Playlist(title, [], "every song of the library with an embedding lies in this folder, so none "
                                   "is left to mix in")
    return Playlist(title, [], "no other song passes the filters and lengths with its file there under the "
                               "music root")


# -- writing --------------------------------------------------------------------------------------
def file_name(title: str, taken: set[str], suffix: str = SUFFIX) -> str:
    """A file name for ``title`` that every system accepts and no other playlist has."""
    base = _UNSAFE.sub("-", title)[:MAX_NAME]
    while len(base.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        base = base[:-1]
    base = base.strip(" .-") or "ReFORM playlist"   # cut, then trimmed
    name, n = base + suffix, 2
    while name.casefold() in taken:
        name, n = f"{base} ({n}){suffix}", n + 1
    taken.add(name.casefold())
    return name


def entry_prefix(folder: Path, root: Path) -> str:
    """How the playlist folder reaches the music root: ``../`` when the folder is inside it (see
    :func:`reform.export.relative_path`)."""
    rel = relative_path(str(root), str(folder))
    return "" if rel == "." else rel.replace(os.sep, "/") + "/"


def music_root(path: str | os.PathLike) -> Path:
    """The music root as an absolute folder; a ConfigError when there is no such folder (a
    mistyped root would leave every song out, and every playlist empty)."""
    root = Path(path).expanduser().absolute()
    if not root.exists():   # most often the library's own music folder, on a disk not mounted
        raise ConfigError("the music root is not there (a disk not mounted?)", path=root,
                          hint="mount it, or give --music-root the folder your music lies in now")
    if not root.is_dir():
        raise ConfigError("the music root is not a folder", path=root,
                          hint="give --music-root the folder your music lies in")
    return root


def unwritable(row: FileRow, root: Path) -> str | None:
    """Why a playlist under ``root`` cannot hold the song; None when it can (radios and mixes
    choose only such songs)."""
    if _entry(row, root, "") is None:
        return f"it lies outside the music root {root}"
    if "\n" in row.path or "\r" in row.path:
        return "a line break in its path cannot be written in M3U"
    if not os.path.exists(row.path):
        return "its file is gone since the last scan (`reform scan` takes it out of the library)"
    return None


def write_folder(folder: str | os.PathLike, playlists: list[Playlist], root: str | os.PathLike,
                 prefix: str | None = None, suffix: str = SUFFIX) -> Report:
    """Bring ``folder`` to exactly ``playlists`` among the files ReFORM wrote there.

    Parameters
    ----------
    folder : the playlist folder (created with its parents if missing, once a playlist is to be written)
    root : the music root; songs outside it are left out of the playlists
    prefix : the folder put before each song's path under the root ("/music" and "/music/" alike;
        None: :func:`entry_prefix`)
    suffix : the files' extension (MPD's playlist folder wants ``.m3u``)
    """
    folder, root = playlist_folder(folder), Path(root).expanduser().absolute()
    prefix = entry_prefix(folder, root) if prefix is None else prefix
    if prefix and not prefix.endswith("/"):   # "/music" is a folder, as a container mounts it
        prefix += "/"
    report = Report()
    ours = _read_manifest(folder) if folder.is_dir() else {}
    taken: set[str] = set()
    wanted: dict[str, str] = {}
    empty: set[str] = set()     # asked for, with no song under the root: an earlier file stays
    for playlist in playlists:
        name = file_name(playlist.title, taken, suffix)
        under = [row for row in playlist.rows if _entry(row, root, prefix) is not None]
        report.outside_root += len(playlist.rows) - len(under)
        there = [row for row in under if os.path.exists(row.path)]   # a player skips the others
        report.gone += len(under) - len(there)
        if not there:   # a server would import it as an empty playlist
            why = playlist.why_empty or (f"none of its songs lies under the music root {root}" if not under else
                                         "the files of its songs are gone since the last scan")
            report.empty.append((playlist.title, (folder / name).exists(), why))
            report.misplaced |= playlist.misplaced or (playlist.why_empty is None and not under)
            empty.add(name)
            continue
        text, skipped = m3u_text(there, title=playlist.title, line=lambda r: _entry(r, root, prefix))
        report.unwritable += len(skipped)
        wanted[name] = text
    if playlists and len(report.empty) == len(playlists):   # a run that can write nothing is a mistake
        report.untouched = True                              # (a typo in a cron line): remove nothing
        return report
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the playlist folder ({exc.strerror})", path=folder,
                          hint="choose a folder you can write to") from None
    remove_dead_temporaries(folder)   # of a run killed mid-write
    hashes = {name: _digest(text) for name, text in wanted.items()}
    for name in list(wanted):
        why = _not_ours(folder / name, ours.get(name), hashes[name])
        if why:
            report.left_alone.append((name, why))
            del wanted[name]
    if playlists and not wanted:   # every playlist left alone or empty: change nothing either
        report.untouched = True
        return report
    # the manifest first names both contents, so an interrupted run recognises every file
    _write_manifest(folder, {name: sorted(set(ours.get(name, [])) | {hashes.get(name, "")} - {""})
                             for name in set(ours) | set(wanted)})
    for name, text in wanted.items():
        now = _hash_of(folder / name)
        if now == hashes[name]:
            report.unchanged.append(name)
        elif now is not None and now not in ours.get(name, []):   # changed by its owner since it was checked
            report.left_alone.append((name, EDITED))
            hashes[name] = ""
        else:
            _replace(folder / name, text)
            report.written.append(name)
    kept = {name: [hashes[name]] for name in wanted if hashes[name]}
    for name in sorted(set(ours) - set(wanted)):
        if any(n == name for n, _ in report.left_alone):
            continue
        if name in empty:
            kept[name] = ours[name]
            continue
        if _hash_of(folder / name) in ours[name]:
            (folder / name).unlink()
            report.removed.append(name)
        elif (folder / name).exists():
            report.left_alone.append((name, EDITED))
    _write_manifest(folder, kept)
    return report


def playlist_folder(folder: str | os.PathLike) -> Path:
    """The playlist folder as an absolute path; ConfigError when a file holds its name or it
    cannot be written (or made), said before any playlist is made."""
    folder = Path(folder).expanduser().absolute()
    there = next(p for p in (folder, *folder.parents) if p.exists())   # what creating it would start from
    if not there.is_dir():
        raise ConfigError("this is a file, not a folder", path=there, hint="give --to the folder of the playlists")
    try:   # a folder made and removed at once: what the playlists or the missing folders need
        os.rmdir(tempfile.mkdtemp(prefix=".reform-probe-", dir=there))
    except OSError as exc:
        doing = "write in the playlist folder" if there == folder else "create the playlist folder"
        raise ConfigError(f"cannot {doing} ({exc.strerror})", path=there,
                          hint="choose a folder you can write to") from None
    return folder


def _entry(row: FileRow, root: Path, prefix: str) -> str | None:
    rel = os.path.relpath(row.path, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        return None
    return prefix + rel.replace(os.sep, "/")


def _not_ours(path: Path, hashes: list[str] | None, new: str) -> str | None:
    """Why ReFORM must not replace ``path`` with the text of hash ``new`` (None: it may).  A file
    that already holds that text is ReFORM's from then on, whether the manifest named it or not
    (playlists copied without their manifest, a hidden file that `cp folder/*` leaves behind)."""
    if not path.exists() or _hash_of(path) == new:   # writing changes nothing
        return None
    if hashes is None:
        return "a file ReFORM does not manage has this name (yours, or one of its own you edited): " \
               "remove or rename it to have ReFORM write this playlist"
    if _hash_of(path) not in hashes:
        return EDITED
    return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hash_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _read_manifest(folder: Path) -> dict[str, list[str]]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the manifest of this playlist folder is unreadable ({exc})",
                          path=folder / MANIFEST,
                          hint="fix or remove it: without it every playlist there is left alone") from None
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): [str(h) for h in v] for k, v in (files or {}).items() if isinstance(v, list)}


def _write_manifest(folder: Path, files: dict[str, list[str]]) -> None:
    _replace(folder / MANIFEST, json.dumps({"format": 1, "written_by": "reform playlists",
                                            "files": dict(sorted(files.items()))}, indent=1) + "\n")


def _replace(path: Path, text: str) -> None:
    write_text(path, text)   # a test replaces this to interrupt the writes
