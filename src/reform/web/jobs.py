"""Long work started from the page (scan, embed, train) in a background thread, with progress.

One job runs at a time: a scan removes the spectrograms of deleted files that a
training run may be reading, and embedding while a model trains would use the
old model, so a second job waits for the first (the API answers 409).  Every
job also holds the home's writer lock (:mod:`reform.lock`), so a job is refused
while a command in a terminal changes the library, and the other way round.  Each
job opens its own Library, hence its own SQLite connection; the page's
snapshot sees its commits as they land.  A scan from the page rescans the
folders already known to the library: adding a folder stays a terminal command,
so the page can never be used to read folders the user did not choose.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..api import Library
from ..errors import BusyError, ReformError
from ..home import RunFiles
from ..lock import WriterLock
from ..text import agree, listing, naming_home, plural, with_article

log = logging.getLogger("reform.web")
KEEP_FINISHED = 20      # finished jobs remembered for the page
KEEP_LOG_LINES = 200


class Busy(BusyError):
    """Another job is running, or a command is changing the library (answered 409 with its hint)."""


@dataclass
class Job:
    """A job's state as the page shows it; the worker thread updates it as it goes."""

    id: int
    kind: str
    options: dict
    state: str = "running"             # running, done or failed
    phase: str = "starting"            # what is being done now, in words
    done: int = 0                      # units of work done in this phase (songs, windows)
    total: int | None = None           # units in this phase, if known
    unit: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    summary: str = ""
    error: str | None = None
    hint: str | None = None
    log: list[str] = field(default_factory=list)
    stopping: str = ""                 # why the work stops at its next step (the server stops, or
                                       # the page stopped it); "" while it goes on

    def note(self, line: str) -> None:
        self.log.append(line)
        del self.log[:-KEEP_LOG_LINES]

    def advance(self, n: int) -> None:
        self.check()
        self.done += n

    def check(self) -> None:
        """Stop the work here, as Ctrl-C stops the command (each kind keeps what it finished),
        when the server is stopping or the page asked."""
        if self.stopping:
            raise KeyboardInterrupt

    def to_dict(self, home: str | None = None) -> dict:
        """The job as the API gives it; ``home``: the home given by --home, which the commands in
        its hint then name (:func:`reform.text.naming_home`)."""
        stopping = bool(self.stopping) and self.state == "running"   # the work's own phases said after it
        return {"id": self.id, "kind": self.kind, "options": self.options, "state": self.state,
                "phase": "stopping after its current step" if stopping else self.phase, "stopping": stopping,
                "done": self.done, "total": self.total, "unit": self.unit,
                "started": self.started, "finished": self.finished, "summary": naming_home(self.summary, home),
                "error": self.error, "hint": self.hint and naming_home(self.hint, home),
                "log": list(self.log[-20:])}


Runner = Callable[[Path, dict, Job], str]


def run_scan(home: Path, options: dict, job: Job) -> str:
    """Rescan the library's known folders, embedding new songs with the active model."""
    def start(total: int) -> None:
        job.phase = f"analysing {plural(total, 'new or changed file')}" if total else "nothing new to analyse"
        job.total, job.unit = total, "files"

    with Library(home, create=False) as lib:
        job.phase = "looking for new, changed and removed files"
        s = lib.scan(embed=True, on_start=start, on_step=job.advance)
    if s.interrupted:   # the scan keeps what it did and returns: the job still ends as stopped
        job.hint = f"{plural(s.analysed, 'file')} analysed and kept; the next scan goes on"
        raise KeyboardInterrupt
    passed = f", skipped {sum(s.unread.values())} in formats not read: {s.unread_kinds()}" if s.unread else ""
    if s.unnamed:
        passed += f", passed over {len(s.unnamed)} not UTF-8 (rename them): {listing(s.unnamed)}"
    if s.kept:
        passed += (f", {len(s.kept)} could not be read again and kept their earlier analysis: "
                   f"{listing([f.entry.path for f in s.kept], 3)}")
    if s.failed_before:   # the page's scan tries nothing again: these stay as they were
        passed += (f", skipped {s.failed_before} that failed before and did not change (`reform errors` lists "
                   "them; `reform scan --retry-failed` tries the files again)")
    for folder, songs in s.vanished.items():
        passed += f"; {folder} holds no audio now (a disk not mounted, or the music moved?): its {songs} songs are kept"
    return (f"analysed {s.analysed}{s.new_and_changed()}, embedded {s.embedded}, unchanged {s.unchanged}, "
            f"reused {s.reused}, removed {s.removed}, failed {s.failed}{passed}")


def run_embed(home: Path, options: dict, job: Job) -> str:
    """Embed the songs that have no embedding from the active model yet."""
    def start(total: int) -> None:
        job.phase = f"embedding {plural(total, 'song')}" if total else "every song is embedded already"
        job.total, job.unit = total, "songs"

    with Library(home, create=False) as lib:
        job.phase = "loading the model"
        s = lib.embed(on_start=start, on_step=job.advance)
    return (f"embedded {plural(s.embedded, 'song')} with model {s.model} "
            f"({s.unchanged} {agree(s.unchanged, 'was', 'were')} already)")


def run_train(home: Path, options: dict, job: Job) -> str:
    """Train a model with the default settings, from the shipped model on a small library (as
    `reform train` does); it becomes the active model if both phases ended on their schedule
    (see :mod:`reform.home`)."""
    from ..config import FINE_TUNE_BELOW, TrainConfig

    def event(e: dict) -> None:
        job.check()
        if e["type"] == "epoch_start":
            job.phase = f"{e['phase']} epoch {e['epoch']} (at most {e['max_epochs']})"
            job.done, job.total, job.unit = 0, e["windows"], "windows"
        elif e["type"] == "batch":
            job.done += e["windows"]
        elif e["type"] == "epoch_end":
            job.note(f"{e['phase']} epoch {e['epoch']}: loss {e.get('total', float('nan')):.4f}, "
                     f"lr {e['lr']:g}" + (f" [{e['event']}]" if e.get("event") else ""))

    train_cfg = TrainConfig(max_epochs=options["max_epochs"]) if options.get("max_epochs") else None
    with Library(home, create=False) as lib:
        init = lib.default_start()
        if init is not None:
            job.note(f"fine-tuning the shipped model, as on every library of fewer than {FINE_TUNE_BELOW} songs")
        folder = lib.new_run_folder(options.get("name"))   # named now, to say how to go on if stopped
        try:
            result = lib.train(name=folder.name, train_cfg=train_cfg, callback=event, init=init)
        except KeyboardInterrupt:
            job.hint = (f"its finished epochs are kept: `reform train --resume --name {folder.name}` goes on"
                        if RunFiles(folder).checkpoint.exists() else "no epoch had finished: start it again")
            raise
        name = result.files.folder.name
        active = lib.models.active_name() == name
    reasons = "; ".join(f"{p}: {r}" for p, r in result.stop_reasons.items())
    if active:
        return f"model {name} is now active ({reasons}); compute the embeddings next"
    return (f"model {name} trained ({reasons}) but not made active: a phase stopped before its "
            f"schedule ended; `reform use {name}` makes it active anyway")


RUNNERS: dict[str, Runner] = {"scan": run_scan, "embed": run_embed, "train": run_train}
# how to go on with a job stopped with the server or from the page (a scan and a training run
# give their own hint)
STOPPED_HINTS = {"embed": "the songs embedded are kept: start it again to go on"}


class Jobs:
    """The registry of jobs of one library home.

    Parameters
    ----------
    home : the library home
    runners : the work of each kind of job (tests replace them)
    named_home : the home as given by --home, which the hints' commands name (None: the default)
    """

    def __init__(self, home: Path, runners: dict[str, Runner] | None = None, named_home: str | None = None):
        self.home = Path(home)
        self.named_home = named_home
        self.runners = dict(runners or RUNNERS)
        self.lock = threading.Lock()
        self.jobs: list[Job] = []
        self.threads: dict[int, threading.Thread] = {}
        self._next = 1

    def start(self, kind: str, options: dict) -> Job:
        """Start a job in a background thread; Busy if one is running."""
        runner = self.runners[kind]
        with self.lock:
            running = self.running()
            if running is not None:
                raise Busy(f"{with_article(running.kind)} is running: wait until it has finished",
                           hint="its progress is shown on the page and at /api/jobs")
            holder = WriterLock(self.home).holder()
            if holder is not None:  # a command in a terminal is changing the library
                raise Busy(f"the library is busy: {holder.describe()} is changing it",
                           hint="wait until it has finished, then try again")
            job = Job(self._next, kind, options)
            self._next += 1
            self.jobs.append(job)
            finished = [j for j in self.jobs if j.state != "running"]
            for old in finished[:-KEEP_FINISHED]:
                self.jobs.remove(old)
        thread = threading.Thread(target=self._run, args=(job, runner), name=f"reform-{kind}-{job.id}",
                                  daemon=True)
        self.threads = {job.id: thread}   # one job runs at a time
        thread.start()
        return job

    def stop(self, timeout: float = 60.0) -> Job | None:
        """Stop the running job at its next step and wait for it (the server is stopping: torch
        must not be torn down under a running thread); returns it, or None if none ran."""
        job = self.running()
        if job is None:
            return None
        job.stopping = job.stopping or "stopped with the server"
        self.threads[job.id].join(timeout)
        return job

    def cancel(self, job: Job) -> None:
        """Ask the running ``job`` to stop at its next step, keeping what it finished (a training
        started by mistake from the page would otherwise run for hours); Busy if it has ended."""
        if job.state != "running":
            raise Busy(f"the {job.kind} has ended already", hint="nothing to stop")
        job.stopping = job.stopping or "stopped from the page"

    def _run(self, job: Job, runner: Runner) -> None:
        state = "failed"
        try:
            job.summary = runner(self.home, job.options, job)
            state = "done"
        except KeyboardInterrupt:   # stopped, not failed: the page says so without alarm
            state = "stopped"
            job.error = job.stopping or "stopped with the server"
            job.hint = job.hint or STOPPED_HINTS.get(job.kind)
        except ReformError as exc:
            job.error, job.hint = str(exc), exc.hint
        except BaseException as exc:  # a thread must report, never die silently
            log.exception("the %s job failed", job.kind)
            job.error = f"internal error ({type(exc).__name__}: {exc})"
        finally:
            job.finished = time.time()
            job.state = state

    def running(self) -> Job | None:
        return next((j for j in self.jobs if j.state == "running"), None)

    def get(self, job_id: int) -> Job | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    def all(self) -> list[dict]:
        return [self.view(j) for j in reversed(self.jobs)]

    def view(self, job: Job) -> dict:
        """A job as the API gives it."""
        return job.to_dict(self.named_home)
