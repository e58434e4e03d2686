"""Writing results for other tools: embeddings as .npz/.csv/.parquet, playlists as M3U."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .files import replacing, write_text
from .store import FileRow

TAG_FIELDS = ("artist", "album", "title", "track", "year", "genre", "duration")


def export_embeddings(out: str | os.PathLike, rows: list[FileRow], embeddings: dict[str, np.ndarray],
                      model: str) -> int:
    """Every analysed file with its tags and embedding, in the format of ``out``'s extension.

    Duplicated recordings appear under each of their paths.  Returns the number of rows.
    """
    out = Path(out)
    rows = [r for r in rows if r.hash in embeddings]
    matrix = np.stack([embeddings[r.hash] for r in rows]) if rows else np.zeros((0, 0), np.float32)
    tags = {f: [getattr(r, f) for r in rows] for f in TAG_FIELDS}
    suffix = out.suffix.lower()
    if suffix == ".npz":
        with replacing(out) as stream:
            np.savez(stream, paths=np.array([r.path for r in rows]), embeddings=matrix.astype(np.float32),
                     model=np.array(model),
                     **{f: np.array(["" if v is None else str(v) for v in tags[f]]) for f in TAG_FIELDS})
    elif suffix == ".csv":
        with replacing(out, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            dims = matrix.shape[1] if len(rows) else 0
            writer.writerow(["path", *TAG_FIELDS, *(f"e{i}" for i in range(dims))])
            for i, r in enumerate(rows):
                writer.writerow([r.path, *("" if tags[f][i] is None else tags[f][i] for f in TAG_FIELDS),
                                 *(f"{v:.7g}" for v in matrix[i])])
    elif suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError("writing .parquet needs pyarrow", hint="pip install pyarrow, "
                              "or export to .npz or .csv") from None
        table = pa.table({"path": [r.path for r in rows], **tags,
                          "embedding": pa.array(list(matrix), type=pa.list_(pa.float32()))})
        with replacing(out) as stream:
            pq.write_table(table, stream)
    else:
        raise ConfigError(f"unknown export format {suffix or '(none)'}; use .npz, .csv or .parquet")
    return len(rows)


# Characters that end a line for some reader of M3U files (str.splitlines' list), and the
# other control characters: none may reach a playlist line.
_LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def m3u_text(rows: list[FileRow], base: str | os.PathLike | None = None) -> tuple[str, list[FileRow]]:
    """An extended M3U playlist, and the songs left out of it.

    Paths are relative to ``base`` if given.  A path holding a line break cannot be
    written in M3U (it would inject lines into the playlist): such songs are left out,
    and a comment line says how many; control characters in names become spaces.
    """
    lines, skipped = ["#EXTM3U"], []
    for r in rows:
        path = os.path.relpath(r.path, base) if base is not None else r.path
        if _LINE_BREAK.search(path):
            skipped.append(r)
            continue
        name = " - ".join(x for x in (r.artist, r.title) if x) or Path(r.path).stem
        lines.append(f"#EXTINF:{round(r.duration or -1)},{_CONTROL.sub(' ', name)}")
        lines.append(path)
    if skipped:
        lines.append(f"# {len(skipped)} song(s) left out: a line break in the file path "
                     "cannot be written in M3U")
    return "\n".join(lines) + "\n", skipped


def write_m3u(out: str | os.PathLike, rows: list[FileRow], relative: bool = False) -> list[FileRow]:
    """Write an extended M3U playlist (UTF-8), paths relative to its folder if asked;
    returns the songs left out (see :func:`m3u_text`)."""
    out = Path(out)
    text, skipped = m3u_text(rows, out.resolve().parent if relative else None)
    write_text(out, text)
    return skipped
