"""Writing results for other tools: embeddings as .npz/.csv/.parquet, playlists as M3U."""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .files import remove_dead_temporaries, replacing, write_text
from .store import FileRow

TAG_FIELDS = ("artist", "album", "title", "track", "year", "genre", "duration")
NUMBER_FIELDS = {"track": np.int64, "year": np.int64, "duration": np.float64}  # -1 / NaN: unknown
FORMATS = (".npz", ".csv", ".parquet")


def check_output(path: str | os.PathLike, example: str = ".m3u8") -> Path:
    """The output file ``path``, refused before any work when it cannot be written.

    ConfigError (one sentence and a hint) when it names a folder, when its folder does not
    exist, or when that folder cannot be written to (tried with a temporary file, so
    permissions, read-only disks and ACLs all count).  ``example``: the extension of the file
    name the hint suggests in a folder given.
    """
    out = Path(path).expanduser()
    if out.is_dir():
        raise ConfigError("this is a folder, not a file", path=out,
                          hint=f"give a file name inside it, e.g. {out / ('reform' + (out.suffix or example))}")
    folder = out.parent
    if not folder.is_dir():
        raise ConfigError(f"the folder {folder} does not exist", path=out,
                          hint=f"create it first (mkdir -p '{folder}'), or write somewhere else")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".reform-probe-")
    except OSError as exc:
        raise ConfigError(f"cannot write in the folder {folder} ({exc.strerror})", path=out,
                          hint="choose a folder you can write to") from None
    os.close(fd)
    os.unlink(probe)
    remove_dead_temporaries(folder, of=out.name)   # of a run killed while writing this file
    return out


def export_format(out: str | os.PathLike) -> str:
    """The format named by the extension of ``out``; ConfigError for one ReFORM cannot write."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"unknown export format {suffix or '(none)'}",
                          hint="end the file name with .npz, .csv or .parquet")
    return suffix


def export_embeddings(out: str | os.PathLike, rows: list[FileRow], embeddings: dict[str, np.ndarray],
                      model: str) -> int:
    """Every analysed file with its tags and embedding, in the format of ``out``'s extension.

    Duplicated recordings appear under each of their paths.  Returns the number of rows.
    """
    out = Path(out)
    rows = [r for r in rows if r.hash in embeddings]
    matrix = np.stack([embeddings[r.hash] for r in rows]) if rows else np.zeros((0, 0), np.float32)
    tags = {f: [getattr(r, f) for r in rows] for f in TAG_FIELDS}
    suffix = export_format(out)
    if suffix == ".npz":
        with replacing(out) as stream:
            np.savez(stream, paths=np.array([r.path for r in rows]), embeddings=matrix.astype(np.float32),
                     model=np.array(model), **{f: _column(f, tags[f]) for f in TAG_FIELDS})
    elif suffix == ".csv":
        with replacing(out, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            dims = matrix.shape[1] if len(rows) else 0
            writer.writerow(["path", *TAG_FIELDS, *(f"e{i}" for i in range(dims))])
            for i, r in enumerate(rows):
                writer.writerow([r.path, *("" if tags[f][i] is None else tags[f][i] for f in TAG_FIELDS),
                                 *(f"{v:.9g}" for v in matrix[i])])   # 9 digits: a float32 exactly
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError("writing .parquet needs pyarrow", hint="pip install pyarrow, "
                              "or export to .npz or .csv") from None
        # the columns' types fixed, whatever the tags hold (a year nobody tagged is not a null column)
        types = {"track": pa.int64(), "year": pa.int64(), "duration": pa.float64()}
        table = pa.table({"path": pa.array([r.path for r in rows], pa.string()),
                          **{f: pa.array(tags[f], types.get(f, pa.string())) for f in TAG_FIELDS},
                          "embedding": pa.array(list(matrix), type=pa.list_(pa.float32()))},
                         metadata={"model": model})   # as the .npz's model: which model made them
        with replacing(out) as stream:
            pq.write_table(table, stream)
    return len(rows)


def _column(name: str, values: list) -> np.ndarray:
    """One .npz column: numbers as numbers (-1 for an unknown track or year, NaN for an unknown
    duration), text as text ("" when unknown)."""
    kind = NUMBER_FIELDS.get(name)
    if kind is None:
        return np.array(["" if v is None else str(v) for v in values])
    missing = -1 if kind is np.int64 else np.nan
    return np.array([missing if v is None else v for v in values], dtype=kind)


# Characters that end a line for some reader of M3U files (str.splitlines' list), and the
# other control characters: none may reach a playlist line.
_LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def m3u_text(rows: list[FileRow], base: str | os.PathLike | None = None, *, title: str | None = None,
             line: Callable[[FileRow], str] | None = None) -> tuple[str, list[FileRow]]:
    """An extended M3U playlist, and the songs left out of it.

    Paths are relative to ``base`` if given, or whatever ``line`` makes of each song;
    ``title`` names the playlist (``#PLAYLIST``).  A path holding a line break cannot be
    written in M3U (it would inject lines into the playlist): such songs are left out,
    and a comment line says how many; control characters in names become spaces. A relative
    path that starts with '#' or a blank is written as ``./path``, which players read as it is.
    """
    lines, skipped = ["#EXTM3U"], []
    if title:
        lines.append(f"#PLAYLIST:{_CONTROL.sub(' ', title)}")
    for r in rows:
        path = line(r) if line else os.path.relpath(r.path, base) if base is not None else r.path
        if _LINE_BREAK.search(path):
            skipped.append(r)
            continue
        lines.append(f"#EXTINF:{round(r.duration or -1)},{_CONTROL.sub(' ', r.label)}")
        # a relative path starting with '#' would be read as a comment, a leading blank stripped
        lines.append(f"./{path}" if path[:1] == "#" or path[:1].isspace() else path)
    if skipped:
        lines.append(f"# {len(skipped)} song(s) left out: a line break in the file path "
                     "cannot be written in M3U")
    return "\n".join(lines) + "\n", skipped


def relative_path(target: str, folder: str) -> str:
    """The way from ``folder`` to ``target`` as a playlist entry: the paths as they are written (links
    kept, so that a server matching entries against the paths it scanned finds them, and a music
    folder linked to a disk moves with the link), unless a player opening it from the folder would
    reach another file: from a linked playlist folder, ``..`` leads out of the folder the link
    points to, and the way then goes between the real paths."""
    plain = os.path.relpath(target, folder)
    # where the system's walk along the written way ends (links followed as it goes; a folder not
    # made yet, or a disk away, taken as written), against where the target is
    if os.path.realpath(os.path.join(folder, plain)) == os.path.realpath(target):
        return plain
    return os.path.relpath(os.path.realpath(target), os.path.realpath(folder))


def check_playlist_name(out: str | os.PathLike) -> None:
    """ConfigError unless ``out`` ends in .m3u or .m3u8: M3U text in a .pls or .npz would
    confuse the player or tool that opens it by its extension."""
    if Path(out).suffix.lower() not in (".m3u", ".m3u8"):
        raise ConfigError(f"-o writes M3U playlists, not {Path(out).suffix or 'a file without an extension'}",
                          path=out, hint="end the file name with .m3u8 (or .m3u); `reform export` writes "
                                         ".npz, .csv and .parquet")


def write_m3u(out: str | os.PathLike, rows: list[FileRow], relative: bool = False) -> list[FileRow]:
    """Write an extended M3U playlist (UTF-8), paths relative to its folder if asked;
    returns the songs left out (see :func:`m3u_text`); relative paths as :func:`relative_path` makes them."""
    out = Path(out)
    folder = os.path.dirname(os.path.abspath(out))
    text, skipped = m3u_text(rows, line=(lambda r: relative_path(r.path, folder)) if relative else None)
    write_text(out, text)
    return skipped
