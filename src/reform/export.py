"""Writing results for other tools: embeddings as .npz/.csv/.parquet, playlists as M3U."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .errors import ConfigError
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
    tmp = out.with_name(f".{out.name}.tmp{suffix}")
    if suffix == ".npz":
        np.savez(tmp, paths=np.array([r.path for r in rows]), embeddings=matrix.astype(np.float32),
                 model=np.array(model),
                 **{f: np.array(["" if v is None else str(v) for v in tags[f]]) for f in TAG_FIELDS})
    elif suffix == ".csv":
        with open(tmp, "w", newline="", encoding="utf-8") as f:
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
        pq.write_table(table, tmp)
    else:
        raise ConfigError(f"unknown export format {suffix or '(none)'}; use .npz, .csv or .parquet")
    os.replace(tmp, out)
    return len(rows)


def write_m3u(out: str | os.PathLike, rows: list[FileRow], relative: bool = False) -> None:
    """An extended M3U playlist (UTF-8); paths relative to the playlist's folder if asked."""
    out = Path(out)
    lines = ["#EXTM3U"]
    for r in rows:
        name = " - ".join(x for x in (r.artist, r.title) if x) or Path(r.path).stem
        lines.append(f"#EXTINF:{round(r.duration or -1)},{name}")
        lines.append(os.path.relpath(r.path, out.resolve().parent) if relative else r.path)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, out)
