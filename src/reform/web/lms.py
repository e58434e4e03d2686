"""The "Music Similarity" service that Lyrion Music Server's plugin of that name asks for mixes.

`reform serve` answers it on its own port (11000, the plugin's default), so that the
plugin's "Don't Stop The Music" mixer and its "Similar tracks" menus play ReFORM's
picks.  The contract, as the plugin (CDrummond/lms-musicsimilarity, ``Plugin.pm``)
and its original service (CDrummond/music-similarity, ``lib/app.py``) define it:

``POST /api/similar`` (JSON; GET with the same names as query parameters also works)
    ``track``: seed songs, ``previous``: the queue, newest first, both as ``file://``
    URLs or paths; ``mpath``: LMS's music folder, stripped from them; ``count`` (1-50,
    default 5); ``min``/``max``: durations in seconds (0: none); ``norepart``/``norepalb``:
    songs before an artist/album may return (0-200); ``filterxmas``: no Christmas
    songs except in December; ``filtergenre`` with ``genregroups``: only genres of the
    seeds' groups; ``shuffle``: draw among the best (default on); ``format``: ``text``
    answers one path per line, anything else a JSON list.  Always paths, as the original
    service answers: the plugin makes LMS's own URL of each (``fileURLFromPath``), where a
    URL escaped here (Python's rules, not LMS's) could name no track of LMS's database.
``POST /api/dump``
    one ``track``; ``count`` (default 1000); ``filterartist``: only its artist;
    ``min``/``max``: durations in seconds (0: none); ``format``: ``text-url`` (one path per
    line, as the original service answers it), ``text`` (path and distance), or JSON.
``GET /api/features``
    which optional analyses exist: an empty answer (ReFORM has neither Essentia nor
    bliss attributes, so the plugin offers no attribute mixes).

The Essentia and bliss fields (``maxbpmdiff``, ``filterkey``, ``filterattrib``), the
genre adjustments and ``maxsim`` are accepted and have no effect: ReFORM has no BPM,
key or attributes, and ranks by its own similarity.  Songs are never the seeds
themselves, nor any song of ``previous``, nor a song titled like one of them, nor a song
whose file is gone since the last scan (LMS would leave it out, and the mix come back short).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import random
import re
import socket
from urllib.parse import unquote

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..errors import ConfigError, ReformError
from ..radio import MusicRoot, Rules, fits_length, next_songs
from ..recommend import Recommender
from ..store import FileRow
from ..text import norm
from .state import LibraryState

DEFAULT_PORT = 11000            # the plugin's default
DEFAULT_COUNT, MAX_COUNT = 5, 50
DEFAULT_NOREPART, DEFAULT_NOREPALB = 15, 25
SHUFFLE_FACTOR = 3              # shuffle: draw count songs among the best 3 * count, as the
                                # plugin's own service does (CDrummond/music-similarity, lib/app.py)
CHRISTMAS = {"christmas", "xmas"}


def _value(params: dict, key: str, default):
    value = params.get(key, default)
    if isinstance(value, list):  # GET: every parameter may repeat
        value = value[0] if value else default
    return default if value is None else value


def _int(params: dict, key: str, default: int) -> int:
    try:
        return int(_value(params, key, default))
    except (TypeError, ValueError, OverflowError):   # OverflowError: 1e400 reads as infinity
        return default


def _list(params: dict, key: str) -> list[str]:
    value = params.get(key) or []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def music_path(params: dict) -> str:
    """LMS's music folder with one trailing slash ("" when not given); a Windows folder
    (``C:\\Music``) becomes ``/C:/Music/`` as in LMS's file URLs."""
    path = str(_value(params, "mpath", "") or "")
    if re.match(r"^[A-Za-z]:\\", path):
        path = "/" + path.replace("\\", "/")
    return path if not path or path.endswith("/") else path + "/"


def decode(track: str) -> str:
    """A song as LMS names it (``file://`` URL or path) -> its path, percent-decoded."""
    path = unquote(track)
    for scheme in ("file://", "tmp://"):
        if path.startswith(scheme):
            return path[len(scheme):]
    return path


def _genres(row: FileRow) -> set[str]:
    return {norm(g) for g in re.split(r"\s*[/;,]\s*", row.genre or "") if norm(g)}


class Service:
    """The plugin's requests over one library (its snapshot and recommender).

    Parameters
    ----------
    state : the library as the web page reads it
    root : LMS's music folder as this computer sees it (None: the same paths as LMS's,
        or learned from the first song LMS names)
    rng : draws the shuffled picks (a fixed seed in tests)
    """

    def __init__(self, state: LibraryState, root: MusicRoot | None = None,
                 rng: random.Random | None = None):
        self.state = state
        self.root = root or MusicRoot()
        self.rng = rng or random.Random()

    # -- paths --------------------------------------------------------------------------------
    def _row(self, track: str, mpath: str, by_path: dict[str, FileRow]) -> FileRow | None:
        path = decode(track)
        if path in by_path:
            if self.root.local is None and mpath and path.startswith(mpath):
                self.root = MusicRoot(mpath)   # LMS and ReFORM see the music at the same place
            return by_path[path]
        rel = path[len(mpath):] if mpath and path.startswith(mpath) else path.lstrip("/")
        if not self.root.learn(rel, list(by_path.values())):
            return None
        return by_path.get(self.root.to_library(rel))

    def _lms_path(self, row: FileRow, mpath: str) -> str | None:
        """A song as LMS names it (None: outside LMS's music folder)."""
        if not mpath or self.root.local is None:
            return row.path
        rel = self.root.to_player(row.path)
        return None if rel is None else mpath + rel

    # -- requests -----------------------------------------------------------------------------
    def _library(self, params: dict) -> tuple[Recommender, dict[str, FileRow], str, list[str]]:
        """The recommender, the songs by path, LMS's music folder and the request's tracks."""
        snap = self.state.snapshot()
        return (self.state.recommender(snap), {r.path: r for r in snap.rows}, music_path(params),
                _list(params, "track"))

    def similar(self, params: dict) -> Response:
        """Songs to play next after the seed tracks (the "Don't Stop The Music" mixer)."""
        rec, by_path, mpath, tracks = self._library(params)
        if not tracks:
            return PlainTextResponse("no track given", status_code=400)
        seeds = self._rows(tracks, mpath, by_path)
        previous = self._rows(_list(params, "previous"), mpath, by_path)
        count = min(max(_int(params, "count", DEFAULT_COUNT), 1), MAX_COUNT)
        if not any(rec.has(r.hash) for r in seeds):
            return self._answer([], params)
        norepart = _int(params, "norepart", 0)
        norepalb = _int(params, "norepalb", 0)
        rules = Rules(no_repeat=len(previous) or len(seeds),
                      artist_gap=norepart if 0 <= norepart <= 200 else DEFAULT_NOREPART,
                      album_gap=norepalb if 0 <= norepalb <= 200 else DEFAULT_NOREPALB,
                      min_duration=max(_int(params, "min", 0), 0),
                      max_duration=max(_int(params, "max", 0), 0),
                      keep=self._keep(params, seeds, previous, mpath),
                      shuffle=SHUFFLE_FACTOR if _int(params, "shuffle", 1) == 1 else 1,
                      seed_decay=1.0)   # the plugin's seeds are drawn at random from the queue
        picks = next_songs(rec, seeds, previous or seeds, count, rules, self.rng)
        return self._answer([self._lms_path(p.row, mpath) for p in picks], params)

    def dump(self, params: dict) -> Response:
        """Songs similar to one song, most similar first (the "Similar tracks" menus)."""
        rec, by_path, mpath, tracks = self._library(params)
        if len(tracks) != 1:
            return PlainTextResponse("give exactly one track", status_code=400)
        seed = self._row(tracks[0], mpath, by_path)
        if seed is None or not rec.has(seed.hash):
            return PlainTextResponse("unknown track", status_code=404)
        count = max(_int(params, "count", 1000), 1)
        same_artist = _int(params, "filterartist", 0) == 1
        lengths = Rules(min_duration=max(_int(params, "min", 0), 0), max_duration=max(_int(params, "max", 0), 0))
        rows = [(r, s) for r, s in self._by_similarity(rec, seed) if fits_length(r, lengths)]
        if same_artist:
            rows = [(r, s) for r, s in rows if norm(r.artist) == norm(seed.artist)]
        listed = []
        for row, score in rows:   # in order, until count: a file looked at only where it may be listed
            path = self._lms_path(row, mpath)
            if path is not None and os.path.exists(row.path):
                listed.append((path, score))
                if len(listed) == count:
                    break
        rows = listed
        # a distance that grows down the list, as the plugin reads it: the walk's order, each song's
        # 1 - cosine or the one before it where that is larger (a client sorting by it would undo the walk)
        distances = np.maximum.accumulate([1.0 - s for _, s in rows]) if rows else []
        fmt = _value(params, "format", "")
        if fmt == "text-url":
            return PlainTextResponse("\n".join(p for p, _ in rows))
        if fmt == "text":
            return PlainTextResponse("\n".join(f"{p}\t{d:f}" for (p, _), d in zip(rows, distances)))
        return JSONResponse([{"file": p, "sim": round(float(d), 6)} for (p, _), d in zip(rows, distances)])

    # -- helpers --------------------------------------------------------------------------------
    def _rows(self, tracks: list[str], mpath: str, by_path: dict[str, FileRow]) -> list[FileRow]:
        rows = [self._row(t, mpath, by_path) for t in tracks]
        return [r for r in rows if r is not None]

    def _keep(self, params: dict, seeds: list[FileRow], previous: list[FileRow], mpath: str):
        """The plugin's filters that are not about order: titles already heard, the songs
        LMS can reach (and whose files are there), Christmas out of season, the seeds' genre groups."""
        titles = {norm(r.title) for r in seeds + previous if r.title}
        xmas = _int(params, "filterxmas", 0) == 1 and datetime.date.today().month != 12
        groups = [{norm(g) for g in group if isinstance(g, str)} for group in (params.get("genregroups") or [])
                  if isinstance(group, list)]
        grouped = set().union(*groups) if groups else set()
        accept: set[str] | None = None
        if _int(params, "filtergenre", 0) == 1:
            accept = set()
            for genre in set().union(*(_genres(r) for r in seeds)) if seeds else set():
                for group in groups:
                    if genre in group:
                        accept |= group

        def keep(row: FileRow) -> bool:
            if row.title and norm(row.title) in titles:
                return False
            if self._lms_path(row, mpath) is None:
                return False
            genres = _genres(row)
            if xmas and genres & CHRISTMAS:
                return False
            if accept is not None and genres:   # no group of the seeds' genres: only songs of no group
                if not (genres & accept if accept else not genres & grouped):
                    return False
            return os.path.exists(row.path)
        return keep

    @staticmethod
    def _by_similarity(rec: Recommender, seed: FileRow) -> list[tuple[FileRow, float]]:
        query = rec.expanded(rec.vector_of(seed.hash), [seed])
        return [(row, score) for _, row, score in rec.ranked(query, len(rec)) if row.hash != seed.hash]

    def _answer(self, paths: list[str | None], params: dict) -> Response:
        items = [p for p in paths if p is not None]
        if _value(params, "format", "") == "text":
            return PlainTextResponse("\n".join(items))
        return Response(json.dumps(items), media_type="application/json")


async def _params(request: Request) -> dict:
    """A request's fields: the JSON body of a POST, or the query of a GET (lists kept)."""
    if request.method == "POST":
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    params: dict = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params


def create_lms_app(state: LibraryState, root: MusicRoot | None = None,
                   rng: random.Random | None = None) -> FastAPI:
    """The plugin's service as an application (served on its own port by `reform serve`)."""
    service = Service(state, root, rng)
    app = FastAPI(title="ReFORM for Lyrion's Music Similarity plugin", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.service = service

    @app.exception_handler(ReformError)
    async def reform_error(request: Request, exc: ReformError):  # e.g. nothing embedded yet
        return PlainTextResponse(f"{exc.message} ({exc.hint})" if exc.hint else exc.message,
                                 status_code=409)

    @app.api_route("/api/similar", methods=["GET", "POST"])
    async def similar(request: Request):
        return service.similar(await _params(request))

    @app.api_route("/api/dump", methods=["GET", "POST"])
    async def dump(request: Request):
        return service.dump(await _params(request))

    @app.get("/api/features")
    def features():
        return PlainTextResponse("")

    return app


def client_addresses(names: tuple[str, ...]) -> tuple[str, ...]:
    """The IP addresses of ``names`` (addresses, or host names resolved now): a request
    carries its client's address, never a name, so a name compared as given refused every
    request.  ConfigError for a name that does not resolve."""
    found: list[str] = []
    for name in names:
        try:
            found.append(str(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        try:
            found += [info[4][0] for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)]
        except OSError:
            raise ConfigError(f"--lms-allow {name}: no such address or host name",
                              hint="give the Lyrion server's IP address, e.g. --lms-allow 192.168.1.20") from None
    return tuple(dict.fromkeys(found))


class AllowClients:
    """Answers only requests from the given addresses (all when none are given): the plugin
    cannot send a token, so a service reachable from other computers names its one client."""

    def __init__(self, app, addresses: tuple[str, ...] = ()):
        self.app, self.addresses = app, frozenset(addresses)

    async def __call__(self, scope, receive, send):
        client = (scope.get("client") or ("",))[0]
        client = client.removeprefix("::ffff:")   # an IPv4 client of a socket that takes both
        if scope["type"] == "http" and self.addresses and client not in self.addresses:
            response = PlainTextResponse(f"{client} may not ask this service", status_code=403)
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)
