"""Crash-safe file writes: a temporary file beside the target, fsynced, then renamed over it.

A kill at any moment leaves either the old file or the new one, never half of
one.  A write that fails (disk full, quota, read-only folder) removes its
temporary file and raises one :class:`WriteError` with a hint, so the next run
starts from a clean state.  Temporary names carry the writer's process id, so
garbage collection can tell a live writer's file from a dead one's.
"""

from __future__ import annotations

import errno
import glob
import json
import math
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import WriteError

TMP_MARK = ".tmp-"
_OWNER = re.compile(r"\.tmp-(\d+)")
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}
DISK_REFUSED = frozenset(_NO_SPACE | {errno.EROFS, errno.EIO})  # errors that only a write meets


def temporary_name(path: Path) -> Path:
    """The hidden name a file is written under before it is renamed to ``path``."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{threading.get_ident()}")


def writer_alive(tmp: Path) -> bool:
    """True when the process that is writing the temporary file ``tmp`` still runs."""
    match = _OWNER.search(tmp.name)
    return match is not None and process_alive(int(match.group(1)))


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (one of another user's counts: it is not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_dead_temporaries(folder: str | os.PathLike, of: str | None = None) -> int:
    """Delete the temporary files in ``folder`` (only the file ``of``'s, if given: a folder of
    the user's) whose writer was killed mid-write; returns how many.  A live writer's are kept."""
    removed = 0
    for tmp in Path(folder).glob(f".{glob.escape(of)}{TMP_MARK}*" if of else f"*{TMP_MARK}*"):
        if tmp.is_file() and not writer_alive(tmp):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def write_error(exc: OSError, path: str | os.PathLike, what: str = "the file") -> WriteError:
    """One plain error, with what to do, for a failed write to ``path``; nothing of the
    failed write is left behind by the callers, and the hint says so."""
    reason = exc.strerror or str(exc)
    if exc.errno in _NO_SPACE:
        hint = "free some disk space, then run the command again: what was finished is kept"
    elif exc.errno in _NOT_WRITABLE:
        hint = "make the folder writable, then run the command again"
    elif exc.errno == errno.EIO:
        hint = "check the disk (free space, errors), then run the command again: what was finished is kept"
    else:
        hint = "run the command again once the cause is fixed: what was finished is kept"
    return WriteError(f"cannot write {what} ({reason})", path=path, hint=hint)


@contextmanager
def replacing(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None,
              newline: str | None = None) -> Iterator[IO]:
    """Write ``path`` through a temporary file: yields the open temporary file, then fsyncs
    it and renames it over ``path``.  On any failure the temporary file is removed and
    ``path`` is left as it was; an OSError becomes a WriteError."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_folder(path.parent)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise write_error(exc, path) from exc
        raise


def sync_folder(folder: str | os.PathLike) -> None:
    """Make the renames in ``folder`` durable: without it a power cut can undo a rename that a
    file's own fsync does not cover (ext4 and btrfs keep the folder's entries apart).  Where a
    folder cannot be opened to sync (Windows), the rename is as durable as the system makes it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), crash-safely."""
    with replacing(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite number replaced by None: they are not JSON (a
    browser's parser refuses the whole document), and "no value" is what they mean here."""
    if isinstance(obj, float) or type(obj).__module__ == "numpy" and hasattr(obj, "dtype"):
        if getattr(obj, "ndim", 0):
            return [finite(v) for v in obj.tolist()]
        value = obj.item() if hasattr(obj, "item") else obj
        return value if not isinstance(value, float) or math.isfinite(value) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def json_text(obj: Any, **options) -> str:
    """JSON of ``obj`` with non-finite numbers written as null (see :func:`finite`)."""
    return json.dumps(finite(obj), allow_nan=False, **options)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Replace ``path`` with the JSON of ``obj`` (non-finite numbers as null), crash-safely."""
    write_text(path, json_text(obj, indent=indent))
