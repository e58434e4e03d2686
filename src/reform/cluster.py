"""The scan's per-file work on a Ray cluster: actors that each load the model once.

Each actor runs :func:`reform.scan.analyse_entry`, the function the local worker
processes run, one file at a time; the driver (the `reform scan --ray` process)
gives every actor one file at a time and alone writes the catalogue, so a worker
or a node that dies loses only the file it was analysing.  That file is given
once more to a fresh actor, because a lost node says nothing about the file; if
its worker dies again it is recorded as failed, marked to be tried again by the
next scan (a machine running out of memory can kill it too).  Workers write the
spectrograms themselves, so every node must reach the library home at the same
path (a shared filesystem): each actor proves it before its first file by writing
a probe file that the driver must then see.  Ray is imported only here, and only
when a scan asks for it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .config import AudioConfig, MelConfig
from .errors import ClusterError, ReformError
from .library import Entry
from .scan import Analysed, Embedding, Failed, analyse_entry, init_worker
from .store import SpectrogramStore

INSTALL_HINT = "install Ray with ReFORM's cluster extra: pip install 'reform-music[cluster]'"
SHARED_HINT = "mount the library home on a shared filesystem at the same path on every node"
DIED_TWICE = ("the worker analysing it died twice (a crash, a lost node, or out of memory); "
              "the next scan tries it again")


def import_ray():
    """The ray module, or a ClusterError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError("`--ray` needs Ray, which is not installed", hint=INSTALL_HINT) from None
    return ray


class ScanWorker:
    """A Ray actor: the settings of the scan, the model loaded once, one file per call."""

    def __init__(self, store: SpectrogramStore, audio_cfg: AudioConfig, mel_cfg: MelConfig,
                 embedding: Embedding | None, embedded: frozenset[str]):
        init_worker(embedded)
        self.store, self.audio_cfg, self.mel_cfg, self.embedding = store, audio_cfg, mel_cfg, embedding

    def probe(self) -> tuple[str, str, str | None]:
        """Write a probe file named after this node and process into the store (the driver
        checks that it sees it, and removes it), then load the model: (node's name, the
        probe's path, why this worker cannot work or None)."""
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        node = f"{ray.util.get_node_ip_address()} ({node_id[:12]})"
        probe = self.store.root / f".probe-{node_id}-{os.getpid()}"
        try:
            self.store.make()   # as a write makes it (a first scan on Ray left out its marker)
            probe.write_text(node)
        except OSError as exc:
            return node, str(probe), f"cannot write the spectrogram store {self.store.root} " \
                                     f"({exc.strerror or exc})"
        try:
            if self.embedding is not None:
                self.embedding.load()
        except ReformError as exc:
            return node, str(probe), f"cannot load the model: {exc}"
        return node, str(probe), None

    def analyse(self, entry: Entry) -> Analysed | Failed:
        return analyse_entry(entry, self.store, self.audio_cfg, self.mel_cfg, self.embedding)


@dataclass(frozen=True)
class RayPool:
    """Runs a scan's files on Ray (a :class:`reform.scan.Pool`): on the cluster at ``address``,
    on a Ray instance this process already joined, or else on a local one started for the
    scan.  ``jobs`` (None: every CPU of the cluster) is the number of actors."""

    address: str | None = None

    def __call__(self, todo: list[Entry], store: SpectrogramStore, audio_cfg: AudioConfig,
                 mel_cfg: MelConfig, jobs: int | None, embedding: Embedding | None,
                 embedded: frozenset[str]) -> Iterator[Analysed | Failed]:
        if not todo:
            return
        ray = import_ray()
        joined = not ray.is_initialized()
        if joined:
            _connect(ray, self.address, jobs)
        actors = _Actors(ray, store, audio_cfg, mel_cfg, embedding, embedded)
        try:
            size = min(len(todo), jobs or max(1, int(ray.cluster_resources().get("CPU", 1))))
            idle = actors.start(size)
            yield from _dispatch(ray, actors, idle, deque(todo))
        finally:
            actors.stop()
            store.remove_dead_temporaries()  # what a killed actor was writing
            if joined:
                ray.shutdown()


def _dispatch(ray, actors: _Actors, idle: list, queue: deque[Entry]) -> Iterator[Analysed | Failed]:
    """One file in flight per actor; a file whose actor died goes to a fresh actor once."""
    in_flight: dict = {}  # object ref -> (actor, entry)
    retried: set[str] = set()
    while queue or in_flight:
        while idle and queue:
            actor, entry = idle.pop(), queue.popleft()
            in_flight[actor.analyse.remote(entry)] = (actor, entry)
        (ref,), _ = ray.wait(list(in_flight), num_returns=1)
        actor, entry = in_flight.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError:
            idle += actors.replace(actor)
            if entry.path in retried:
                yield Failed(entry, DIED_TWICE, retry=True)
            else:
                retried.add(entry.path)
                queue.appendleft(entry)
            continue
        except ray.exceptions.RayTaskError as exc:  # a WriteError: the disk, not the file
            raise exc.cause if isinstance(exc.cause, ReformError) else exc
        idle.append(actor)
        yield result


class _Actors:
    """The scan's actors: started, checked against the shared store, replaced, stopped."""

    def __init__(self, ray, store: SpectrogramStore, audio_cfg: AudioConfig, mel_cfg: MelConfig,
                 embedding: Embedding | None, embedded: frozenset[str]):
        self.ray, self.store = ray, store
        self.remote = ray.remote(num_cpus=1, max_restarts=0)(ScanWorker)
        self.args = (store, audio_cfg, mel_cfg, embedding, ray.put(embedded))
        self.live: list = []

    def start(self, n: int) -> list:
        """``n`` new actors, each of which has shown that it can use the store and the model."""
        new = [self.remote.remote(*self.args) for _ in range(n)]
        self.live += new
        try:
            checks = self.ray.get([a.probe.remote() for a in new])
        except self.ray.exceptions.RayActorError as exc:
            raise ClusterError(f"a Ray worker could not start ({exc})",
                               hint="install the same ReFORM at the same path on every node") from exc
        for node, probe, problem in checks:
            seen = Path(probe).exists()
            if seen:
                Path(probe).unlink(missing_ok=True)
            if problem is None and not seen:
                problem = (f"writes the spectrogram store {self.store.root} on a disk that this "
                           f"machine ({os.uname().nodename}) does not see")
            if problem is not None:
                raise ClusterError(f"node {node} {problem}", hint=SHARED_HINT)
        return new

    def replace(self, dead) -> list:
        self.ray.kill(dead, no_restart=True)
        self.live.remove(dead)
        return self.start(1)

    def stop(self) -> None:
        for actor in self.live:
            self.ray.kill(actor, no_restart=True)
        self.live = []


def _connect(ray, address: str | None, jobs: int | None) -> None:
    """Join the cluster at ``address``, or start a local Ray instance with ``jobs`` CPUs."""
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        if address is None:
            # Ray starts its workers 15 steps nicer than the driver (os.nice 15 under a driver
            # at 0, measured): on a machine that also runs other work they would get almost no
            # CPU.  A scan started here runs at the priority its user gave it, as the local
            # worker processes do; a cluster's own settings are left alone.
            os.environ.setdefault("RAY_worker_niceness", "0")
            # "local": an instance of its own, even where one runs already (`ray start --head`),
            # which Ray would otherwise join and refuse, since it was given a number of CPUs
            ray.init(address="local", num_cpus=jobs or os.cpu_count() or 1, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        if address is None:
            raise ClusterError(f"cannot start a local Ray instance ({exc})",
                               hint="`ray status` says whether Ray runs here; `--ray auto` joins the one that "
                                    "does") from exc
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({exc})",
                           hint="check the address: `ray status` on the head node shows it; a cluster whose "
                                "head said \"Token authentication is enabled\" needs RAY_AUTH_MODE=token here "
                                "too, with its token (in ~/.ray/auth_token, or RAY_AUTH_TOKEN)") from exc
