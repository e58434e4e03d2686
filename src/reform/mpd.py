"""`reform mpd`: keep the Music Player Daemon's queue a few songs ahead with songs like what plays.

A small client of MPD's text protocol (https://mpd.readthedocs.io/en/latest/protocol.html)
and one loop: wait for MPD to say that the player or the queue changed (``idle``), note
the song now playing, and when fewer than ``ahead`` songs follow it, add songs chosen by
:func:`reform.radio.next_songs` from the playing song and those before it.

MPD names songs relative to its music folder; :class:`reform.radio.MusicRoot` turns
those names into library paths (the folder comes from ``--music-dir``, from MPD itself
over a local socket, or from the first song playing).  The server is found as every MPD
client finds it: ``--host``/``--port``, else ``$MPD_HOST`` (``password@host`` or a
socket path) and ``$MPD_PORT``, else localhost:6600.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import PlayerError, QueryError, ReformError
from .radio import MusicRoot, Rules, next_songs
from .store import FileRow
from .text import listing, plural

DEFAULT_PORT = 6600
RETRY_SECONDS = 5.0
# a song that starts counts as played once it played half its length or 4 minutes (the rule of
# Last.fm's scrobblers, mpdscribble among them): a skip is no play for --most-played
PLAYED_SHARE, PLAYED_SECONDS = 0.5, 240.0


@dataclass(frozen=True)
class Address:
    """Where MPD listens: a TCP host and port, or a local socket (``host`` is its path)."""

    host: str
    port: int
    password: str | None = None

    @property
    def is_socket(self) -> bool:
        return self.host.startswith(("/", "@", "~"))

    def __str__(self) -> str:
        if self.is_socket:
            return self.host
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def address(host: str | None = None, port: int | None = None, env=os.environ) -> Address:
    """MPD's address from the options, else ``$MPD_HOST``/``$MPD_PORT``, else localhost:6600.

    ``MPD_HOST`` may carry a password (``secret@host``) and may be a socket path.
    """
    host = host or env.get("MPD_HOST") or "localhost"
    password = None
    if "@" in host[1:]:  # "@name" alone is an abstract socket, "pw@host" carries a password
        password, host = host.split("@", 1)
    if host.startswith("[") and host.endswith("]"):   # an IPv6 address as URLs and `reform serve` write it
        host = host[1:-1]
    if port is None:
        raw = env.get("MPD_PORT") or str(DEFAULT_PORT)
        try:
            port = int(raw)
        except ValueError:
            raise PlayerError(f"MPD_PORT is not a port number: {raw!r}",
                              hint="set MPD_PORT to a number such as 6600, or pass --port") from None
    if not 0 < port < 65536:   # the resolver wraps a larger one: 70000 reached port 4464
        raise PlayerError(f"MPD_PORT is not a port number: {port}", hint="set MPD_PORT between 1 and 65535")
    return Address(os.path.expanduser(host), port, password)


def _quote(word: str) -> str:
    """An argument of an MPD command.  A line ends a command, and no escape carries a line
    break: a file name holding one would send its next line to MPD as a command of its own."""
    if "\n" in word or "\r" in word:
        raise ValueError(f"MPD's protocol cannot carry a line break: {word!r}")
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Client:
    """One connection to MPD; every command answers its ``key: value`` pairs in order."""

    def __init__(self, where: Address, timeout: float = 10.0):
        self.where = where
        try:
            if where.is_socket:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect("\0" + where.host[1:] if where.host.startswith("@") else where.host)
            else:
                self.sock = socket.create_connection((where.host, where.port), timeout=timeout)
        except OSError as exc:
            raise PlayerError(f"cannot reach MPD at {where} ({exc.strerror or exc})",
                              hint="start MPD, or say where it listens with --host/--port "
                                   "(or MPD_HOST/MPD_PORT)") from None
        self.timeout = timeout
        self.reader = self.sock.makefile("r", encoding="utf-8", errors="replace", newline="\n")
        try:
            greeting = self.reader.readline()
        except OSError as exc:   # accepted but silent: an MPD started by its socket, still loading
            self.close()
            raise PlayerError(f"MPD at {where} accepted the connection but did not greet ({exc})",
                              hint="wait until MPD has started, or check --host and --port") from None
        if not greeting.startswith("OK MPD "):
            self.close()
            raise PlayerError(f"{where} does not answer like MPD ({greeting.strip()[:60]!r})",
                              hint="check --host and --port")
        self.version = greeting[7:].strip()
        if where.password:
            try:
                self.command("password", where.password)
            except PlayerError as exc:
                self.close()
                raise PlayerError(exc.message, hint="check the password given as MPD_HOST=password@host") from None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def command(self, name: str, *args: str) -> list[tuple[str, str]]:
        """Send one command and read its answer; PlayerError for MPD's refusals (ACK)."""
        line = " ".join([name, *(_quote(str(a)) for a in args)]) + "\n"
        try:
            self.sock.sendall(line.encode("utf-8"))
            return self._answer(name)
        except (OSError, EOFError) as exc:
            raise PlayerError(f"lost the connection to MPD at {self.where} ({exc})",
                              hint="check that MPD is still running") from None

    def _answer(self, name: str) -> list[tuple[str, str]]:
        pairs = []
        while True:
            line = self.reader.readline()
            if not line:
                raise EOFError("MPD closed the connection")
            line = line.rstrip("\n")
            if line == "OK":
                return pairs
            if line.startswith("ACK "):
                refused = line.split("} ", 1)[-1]
                # error 4 (ACK_ERROR_PERMISSION): this MPD asks a password before the command
                hint = "MPD asks for a password: give it as MPD_HOST=password@host" \
                    if line.startswith("ACK [4@") else "see MPD's log for details"
                raise PlayerError(f"MPD refused {name}: {refused}", hint=hint)
            key, _, value = line.partition(": ")
            pairs.append((key, value))

    def status(self) -> dict[str, str]:
        return dict(self.command("status"))

    def queue(self) -> list[dict[str, str]]:
        """The songs of the queue in order, each with its ``file``, ``Pos`` and ``Id``."""
        songs: list[dict[str, str]] = []
        for key, value in self.command("playlistinfo"):
            if key == "file":
                songs.append({})
            if songs:
                songs[-1][key] = value
        return songs

    def add(self, uri: str) -> None:
        self.command("add", uri)

    def idle(self, *subsystems: str) -> list[str]:
        """Wait, without a time limit, until MPD reports a change in one of ``subsystems``."""
        self.sock.settimeout(None)
        try:
            return [value for key, value in self.command("idle", *subsystems) if key == "changed"]
        finally:
            self.sock.settimeout(self.timeout)

    def music_directory(self) -> str | None:
        """MPD's music folder; MPD tells it only over a local socket (None otherwise)."""
        try:
            return dict(self.command("config")).get("music_directory")
        except PlayerError as exc:
            if "lost the connection" in exc.message:
                raise
            return None


@dataclass
class Session:
    """What `reform mpd` knows between two changes: the songs it saw play, newest first."""

    played: list[FileRow]
    skipped: set[str] = dataclasses.field(default_factory=set)   # songs (hashes) of it skipped: no seeds
    last_id: str | None = None
    last_file: str | None = None
    reconnected: bool = False     # MPD may have restarted meanwhile and numbered its queue anew
    added: int = 0
    playing: tuple[FileRow, float] | None = None   # the library song playing, and since when (monotonic)
    paused_at: float | None = None   # when MPD was last seen paused or stopped (monotonic), if it still is
    paused_for: float = 0.0          # how long the song playing has been paused before that

    def note_state(self, state: str) -> None:
        """Follow MPD's state ("play", "pause" or "stop"), so that the time a song is paused
        does not count as played."""
        now = time.monotonic()
        if state == "play" and self.paused_at is not None:
            self.paused_for += now - self.paused_at
            self.paused_at = None
        elif state != "play" and self.paused_at is None:
            self.paused_at = now

    def seeds(self) -> list[FileRow]:
        """What the next songs should be like: the songs played, newest first, less those skipped
        (a song skipped for not being wanted must not steer the radio towards itself)."""
        return [row for row in self.played if row.hash not in self.skipped]

    def played_seconds(self) -> float:
        """How long the song playing has played, its pauses left out."""
        if self.playing is None:
            return 0.0
        end = self.paused_at if self.paused_at is not None else time.monotonic()
        return end - self.playing[1] - self.paused_for


class Radio:
    """Keeps one MPD queue ahead with the library's recommendations.

    Parameters
    ----------
    lib : the open library (:class:`reform.api.Library`)
    rules : how songs are chosen (:class:`reform.radio.Rules`)
    ahead : how many songs should follow the one playing
    root : MPD's music folder on this computer (None: asked from MPD or learned); one that
        holds no song of the library is not trusted (see :meth:`take_root`)
    record : note each song that played long enough (``PLAYED_SHARE``) in the library's play log
    say : where progress lines go
    """

    def __init__(self, lib, rules: Rules, ahead: int = 3, root: MusicRoot | None = None,
                 record: bool = True, say: Callable[[str], None] = print):
        self.lib, self.rules, self.ahead, self.say = lib, rules, ahead, say
        self.record = record
        self.version = None
        self.refused: set[str] = set()   # songs MPD would not add (not in its database yet):
                                         # asked for again once MPD's database changes
        self._said = ""
        self.at_random = False   # MPD said to play its queue in a random order: nothing is queued
        self._refresh()
        self.root = MusicRoot()
        if root is not None and root.local is not None:
            self.take_root(root.local, "--music-dir")

    def take_root(self, folder: str, source: str) -> None:
        """Use ``folder`` as MPD's music folder if a song of the library lies in it, as given
        or with its links resolved; else say so, and learn the folder from the songs MPD plays."""
        for candidate in dict.fromkeys((folder, os.path.realpath(folder))):
            root = MusicRoot(candidate)
            if not self.rows or any(root.to_player(path) is not None for path in self.rows):
                self.root = root
                return
        self.say(f"no song of the library lies in {folder} ({source}): MPD's music folder is "
                 "learned from the songs it plays instead")

    def _refresh(self) -> None:
        """Re-read the songs and their embeddings when the catalogue changed (a scan ran)."""
        version = self.lib.home.catalogue.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version:
            self.rows = {row.path: row for row in self.lib.songs()}
            self.rec = self.lib.recommender()
            self.version = version

    def _row(self, uri: str) -> FileRow | None:
        if uri.startswith("/"):   # a file outside MPD's music folder, added over its local socket by its
            return self.rows.get(os.path.normpath(uri))   # own path: it says nothing of where that folder is
        if not self.root.learn(uri, list(self.rows.values())):
            return None
        return self.rows.get(self.root.to_library(uri))

    def step(self, client: Client, session: Session) -> None:
        """Note a new song, and top the queue up if it runs short."""
        self._refresh()
        status = client.status()
        if "song" not in status:
            session.note_state("stop")
            return  # nothing is current: wait until something plays
        queue = client.queue()
        pos = int(status["song"])
        if pos >= len(queue):
            return
        current = queue[pos]
        if current.get("Id") != session.last_id:
            # the song that played before a reconnection under a new id is the same song going on
            going_on = session.reconnected and current["file"] == session.last_file
            session.last_id, session.last_file = current.get("Id"), current["file"]
            if not going_on:
                self._started(current["file"], queue[:pos], session, _seconds(status.get("elapsed")))
        session.note_state(status.get("state", "play"))
        session.reconnected = False
        if self.root.local is None or not session.played:
            return   # nothing to start from until a song of the library plays
        if self._at_random(status.get("random") == "1"):
            return
        missing = self.ahead - (len(queue) - pos - 1)
        if missing > 0:
            self._add(client, queue, pos, session, missing)

    def _at_random(self, random: bool) -> bool:
        """Whether MPD plays its queue in a random order, said when that changes: the songs queued
        after the one playing would play after any other, and counted by their places in the queue,
        more were added each time MPD happened to play the last."""
        if random != self.at_random:
            self.at_random = random
            self.say("MPD plays its queue at random: nothing is queued until it plays in order again "
                     "(`mpc random off`)" if random else "MPD plays its queue in order again")
        return random

    def heard(self, changed: list[str]) -> None:
        """What MPD said changed: a new database (an `mpc update`) may hold the songs it refused."""
        if "database" in changed:
            self.refused.clear()

    def _note(self, line: str) -> None:
        """Say ``line`` unless it was the last thing said: MPD reports each change several times."""
        if line != self._said:
            self.say(line)
        self._said = line

    def settle(self, session: Session) -> None:
        """Log the song that was playing as played if it played long enough; else it was skipped,
        and is no play, nor a seed of the songs queued from now on."""
        if session.playing is None:
            return
        row, played = session.playing[0], session.played_seconds()
        session.playing = None
        if played < min(PLAYED_SHARE * (row.duration or 0), PLAYED_SECONDS):
            session.skipped.add(row.hash)
            return
        if not self.record:
            return
        try:
            self.lib.home.record_play(row, "mpd")
        except (ReformError, sqlite3.Error) as exc:  # a read-only home still gets its radio
            self.record = False
            self.say(f"note: plays are not recorded ({exc})")

    def _started(self, uri: str, before: list[dict], session: Session, elapsed: float = 0.0) -> None:
        """A new song plays, ``elapsed`` seconds in (MPD's word: a song already playing when this
        program started counts from its start, not as skipped for the time it was seen)."""
        self.settle(session)
        row = self._row(uri)
        if row is None and self.root.local is None and not uri.startswith("/"):   # (a path names no folder)
            if "://" in uri:   # a stream says nothing about MPD's music folder: wait for a song
                self.say(f"playing {uri} (a stream, not a seed; songs are queued once one of the library plays)")
                return
            where = self.root.candidates
            if where:
                self.say(f"cannot tell where MPD's music folder is on this computer ({uri!r} is in the library "
                         f"under each of {listing(where, 3)}): give --music-dir")
            else:   # most often a song not scanned yet, not a wrong folder: the next song may teach it
                self.say(f"playing {uri} (not in the library, not scanned yet? `reform scan` its folder; songs are "
                         "queued once one of the library plays, or give --music-dir)")
            return
        if row is None:
            waiting = "" if session.played else "; songs are queued once one of the library plays"
            self.say(f"playing {uri} (not in the library: not a seed{waiting})")
            return
        if not session.played:  # what was played before this program started counts too
            session.played = [r for r in (self._row(s["file"]) for s in reversed(before)) if r]
        session.played.insert(0, row)
        session.skipped.discard(row.hash)   # playing again: wanted, until skipped again
        del session.played[max(self.rules.no_repeat, 8):]
        session.playing, session.paused_at, session.paused_for = (row, time.monotonic() - elapsed), None, 0.0
        self.say(f"playing {row.label}")

    def _add(self, client: Client, queue: list[dict], pos: int, session: Session, n: int) -> None:
        upcoming = [r for r in (self._row(s["file"]) for s in reversed(queue[pos + 1:])) if r]
        recent = upcoming + session.played
        queued = {r.hash for r in (self._row(s["file"]) for s in queue) if r}
        keep = self.rules.keep
        rules = dataclasses.replace(self.rules, keep=lambda row: (
            self.root.to_player(row.path) is not None and row.hash not in queued
            and "\n" not in row.path and "\r" not in row.path    # no MPD command can name it
            and row.path not in self.refused and (keep is None or keep(row))
            and os.path.exists(row.path)))   # gone since the last scan: MPD would skip it in silence
        try:
            picks = next_songs(self.rec, session.seeds() or session.played, recent, n, rules)
        except QueryError as exc:   # e.g. songs scanned since, not embedded yet: wait for others
            self._note(f"note: {exc.message} ({exc.hint})" if exc.hint else f"note: {exc.message}")
            return
        if not picks:
            self._note(f"no song passes the radio's rules ({self.rules.limits()}): loosen them, or add music")
        for pick in picks:
            uri = self.root.to_player(pick.row.path)
            try:
                client.add(uri)
            except PlayerError as exc:
                if "lost the connection" in exc.message:
                    raise
                self.refused.add(pick.row.path)   # never asked for again in this session
                self.say(f"  MPD would not queue {uri} ({exc.message}): is it in MPD's database? "
                         "`mpc update` reads new music")
                continue
            session.added += 1
            self.say(f"  queued {pick.row.label}  ({pick.score:.3f})")


def _seconds(text: str | None) -> float:
    """MPD's ``elapsed`` (seconds, a decimal), 0 where it gives none or no number."""
    try:
        seconds = float(text or 0)
    except ValueError:
        return 0.0
    return seconds if 0 <= seconds < 1e7 else 0.0   # (nan and inf fail both tests)


def run(radio: Radio, where: Address, say: Callable[[str], None] = print) -> Session:
    """Follow MPD until interrupted (Ctrl-C ends it; returns what was done).  A lost
    connection is retried every few seconds; the first connection must succeed."""
    session = Session(played=[])
    client = Client(where)
    say(f"connected to MPD {client.version} at {where}; keeping {plural(radio.ahead, 'song')} ahead "
        "(Ctrl-C to stop)")
    if radio.root.local is None:
        found = client.music_directory()
        if found:
            radio.take_root(found, "MPD's music_directory")
    try:
        while True:
            try:
                radio.step(client, session)
                radio.heard(client.idle("player", "playlist", "database"))
            except PlayerError as exc:
                if "lost the connection" not in exc.message:
                    raise
                client.close()
                client = _reconnect(where, say)
                session.reconnected = True
    finally:
        radio.settle(session)   # the song playing at Ctrl-C counts if it played long enough
        client.close()
    return session


def _reconnect(where: Address, say: Callable[[str], None]) -> Client:
    say(f"lost the connection to MPD at {where}; trying again every {RETRY_SECONDS:.0f} s")
    while True:
        time.sleep(RETRY_SECONDS)
        try:
            client = Client(where)
        except ReformError:
            continue
        say("connected again")
        return client
