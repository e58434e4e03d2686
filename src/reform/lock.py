"""One writer at a time per library home: an advisory lock that a crash releases.

Scanning, embedding, training, ``reform check --repair`` and the page's jobs all
change the home; two at once would corrupt it (one scan's garbage collection
deleting the spectrograms another has just written).  Each takes the lock file
``<home>/writer.lock`` with ``flock`` before it writes and writes its process id,
task and start time into it, so a second writer is refused with a message naming
the first.  The kernel drops the lock when its process ends, however it ends
(``kill -9`` included): a stale lock never needs cleaning up.  Readers (queries,
the page, evaluation) never take it.

A process forked while it holds the lock (a training's loader workers did, when there
were some; a scan's workers start from a forkserver, which holds no copy) closes its copy
of the descriptor at once: ``flock`` belongs to the open file, so a copy would keep the
home locked after its parent let go, until the last child had ended (a training stopped
with Ctrl-C on a GPU left its home busy while its loader workers shut down).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import BusyError, StoreError

LOCK_NAME = "writer.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a home's lock (what it wrote into the lock file)."""

    pid: int | None
    task: str
    since: float | None

    def describe(self) -> str:
        who = f"{self.task} (PID {self.pid})" if self.pid else self.task
        if self.since:
            who += " since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return who


PROBE_GRACE = 0.25   # seconds a writer waits out a look at the lock (:meth:`WriterLock.holder`)


def _lock_soon(fd: int) -> None:
    """Take the lock at once, or within PROBE_GRACE; BlockingIOError if it is held longer.  A look
    at who holds it holds it for an instant, and a scan started in that instant was refused as
    "busy: another process is changing it"."""
    deadline = time.monotonic() + PROBE_GRACE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _read_holder(fd: int) -> Holder:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return Holder(int(data["pid"]), str(data["task"]), float(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Holder(None, "another process", None)  # it has not written its name yet


_held: weakref.WeakSet[WriterLock] = weakref.WeakSet()   # the locks this process holds


def _let_go_in_child() -> None:
    """In a freshly forked child: close every inherited lock descriptor (the parent keeps its own)."""
    for lock in list(_held):
        lock._forget()


os.register_at_fork(after_in_child=_let_go_in_child)


class WriterLock:
    """The writer lock of one home, re-entrant within this object.

    Parameters
    ----------
    home : the library home folder
    """

    def __init__(self, home: str | os.PathLike):
        self.path = Path(home) / LOCK_NAME
        self._fd: int | None = None
        self._depth = 0

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file ({exc.strerror})", path=self.path,
                             hint="check that the library home is writable") from exc

    def acquire(self, task: str) -> None:
        """Take the lock for ``task`` (e.g. "scan"), or raise BusyError naming its holder."""
        if self._fd is not None:
            self._depth += 1
            return
        fd = self._open()
        try:
            _lock_soon(fd)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise BusyError(f"the library is busy: {holder.describe()} is changing it",
                            path=self.path.parent,
                            hint="wait until it has finished (one scan, embed, train or "
                                 "check --repair at a time), then run the command again") from None
        record = json.dumps({"pid": os.getpid(), "task": task, "since": time.time()}).encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
        except OSError:
            pass  # a full disk must not stop the holder: others then read "another process"
        self._fd, self._depth = fd, 1
        _held.add(self)

    def _forget(self) -> None:
        """Close this process's descriptor without unlocking (in a forked child, the parent holds on)."""
        fd, self._fd, self._depth = self._fd, None, 0
        _held.discard(self)
        if fd is not None:
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth:
            return
        fd, self._fd = self._fd, None
        _held.discard(self)
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the descriptor drops the lock

    @contextmanager
    def hold(self, task: str) -> Iterator[None]:
        self.acquire(task)
        try:
            yield
        finally:
            self.release()

    def holder(self) -> Holder | None:
        """Who holds the lock now (None: nobody); takes nothing."""
        if self._fd is not None:
            return _read_holder(self._fd)
        if not self.path.exists():
            return None
        fd = self._open()
        try:   # shared: two such looks (`reform status`, the web page) never take it from each other
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        finally:
            os.close(fd)
        return None
