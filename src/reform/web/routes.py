"""The JSON API: the operations of the CLI over HTTP, songs addressed by their catalogue id.

Reads are GET; what changes the library (scan, embed, train) is a POST that
starts a job.  Large answers are serialised straight to JSON (no per-item
validation), so listing 10,000 songs stays a few tens of milliseconds; the
models below document their shape in the OpenAPI schema.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import quote
from typing import Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..api import Library, short_note
from ..errors import EmbedError
from ..export import m3u_text
from ..home import RUN_NAME
from ..playlists import file_name
from ..recommend import Filters
from ..text import listing
from . import media
from .projection import view_box
from .jobs import Jobs
from .state import NO_EMBEDDINGS_HINT, SORT_KEYS, LibraryState, Snapshot, song_dict



def _known_parameters(request: Request) -> None:
    """Refuse a query parameter the route does not take (`?n=3` where it takes `length`),
    which would otherwise be dropped and answered with the defaults."""
    route = request.scope.get("route")
    known = {p.alias for p in route.dependant.query_params} if route is not None else set()
    unknown = sorted(set(request.query_params) - known - {"token"})
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise HTTPException(422, f"unknown query parameter {', '.join(unknown)} (this route takes: {takes})")


router = APIRouter(prefix="/api", dependencies=[Depends(_known_parameters)])


# -- the shapes of the answers (documentation) ------------------------------------------------------
class Song(BaseModel):
    id: int = Field(description="catalogue id: the only way to address a song")
    title: str = Field(description="the title tag, else the file name")
    artist: str | None
    album: str | None
    track: int | None
    year: int | None
    genre: str | None
    duration: float = Field(description="seconds")
    file: str = Field(description="the file's name (without its folder)")
    folder: str | None = Field(description="the two folders above a song with neither artist nor album "
                               "(what tells such songs apart, and what a search looks in), else null")
    embedded: bool = Field(description="has an embedding: can be recommended and is on the map")


class SongDetail(Song):
    path: str
    codec: str | None
    sample_rate: int | None
    channels: int | None
    size: int
    copies: list[int] = Field(description="ids of the other files holding this song's audio (other paths or tags)")
    playback: Literal["file", "wav"] = Field(description="how /audio sends it by default")


class SongList(BaseModel):
    revision: int = Field(description="changes whenever the catalogue does")
    total: int = Field(description="songs matching, before offset and limit")
    offset: int
    items: list[Song]


class Scored(Song):
    score: float = Field(description="similarity to the seed(s): cosine, 1 is identical")
    flow: float | None = Field(None, description="playlists: similarity to the previous song")


class Recommendations(BaseModel):
    seeds: list[Song]
    items: list[Scored]
    notes: list[str] = Field(description="what the answer lacks, as the command line notes it: embeddings "
                                         "from another model than the active one, songs left out unembedded")


class LibraryMap(BaseModel):
    model: str = Field(description="the embedding model the map was computed for")
    method: str = Field(description="'pca'")
    explained: list[float] = Field(description="share of the variance each axis shows")
    ids: list[int]
    x: list[float]
    y: list[float]
    view: dict[str, list[float]] = Field(description="the box to show, per axis [low, high]: the bulk "
                                         "of the songs; the few outside it are pinned to its edge")


class Failure(BaseModel):
    id: int | None = Field(description="the file's id in the catalogue (a file that could not be analysed "
                                       "is no song of /api/songs); null for a name not UTF-8, which the "
                                       "catalogue cannot hold (its bytes are written out in the path)")
    path: str
    reason: str | None
    analysed: bool = Field(description="true: a damaged file analysed, passing over what could not be "
                                       "read (the reason says what); false: a file that could not be analysed")


class JobInfo(BaseModel):
    id: int
    kind: Literal["scan", "embed", "train"]
    options: dict
    state: Literal["running", "done", "failed", "stopped"] = Field(
        description="stopped: by the page's Stop or with the server, keeping what it finished (error says which)")
    phase: str
    stopping: bool = Field(description="asked to stop: it stops at its next step, keeping what it finished")
    done: int
    total: int | None
    unit: str
    started: float
    finished: float | None
    summary: str
    error: str | None
    hint: str | None
    log: list[str]


class TrainOptions(BaseModel):
    # a misspelt option is refused, not silently dropped; true is no number of epochs (lax mode took it for 1)
    model_config = ConfigDict(extra="forbid", strict=True)

    max_epochs: int | None = Field(None, ge=1, le=10_000, description="cap on the epochs of each phase")
    name: str | None = Field(None, pattern=RUN_NAME,
                             description="run folder under <home>/models (default: a time stamp)")


class ErrorAnswer(BaseModel):
    error: str
    hint: str | None = None


ERRORS = {404: {"model": ErrorAnswer, "description": "unknown song id"},
          409: {"model": ErrorAnswer, "description": "not possible yet (no embeddings, file changed)"}}


# -- helpers ------------------------------------------------------------------------------------------
def _state(request: Request) -> LibraryState:
    return request.app.state.library


def _song(snap: Snapshot, song_id: int):
    row = snap.by_id.get(song_id)
    if row is None:
        raise HTTPException(404, f"no song has the id {song_id}")
    return row


def _scored(recs) -> list[dict]:
    """Recommendations as the API gives them; scores unrounded, so that the page's 3 decimals round as
    the command line's do (0.54454 rounded to 0.5445 first showed 0.544 where `reform similar` shows
    0.545, and any rounding before the page's can do so again)."""
    out = []
    for r in recs:
        item = song_dict(r.row, True) | {"score": float(r.score)}
        if r.flow is not None:
            item["flow"] = float(r.flow)
        out.append(item)
    return out


def _filters(exclude_same_artist: bool, exclude_same_album: bool, max_per_artist: int | None) -> Filters:
    return Filters(exclude_same_artist=exclude_same_artist, exclude_same_album=exclude_same_album,
                   max_per_artist=max_per_artist)


def _seeds(request: Request, ids: list[int]):
    state = _state(request)
    snap = state.snapshot()
    rows = [_song(snap, i) for i in dict.fromkeys(ids)]   # a seed given twice is one seed
    rec = state.recommender(snap)
    missing = [r.label for r in rows if not snap.embedded(r)]   # named as the page shows them, not by id
    if missing:
        which = f"{missing[0]} has" if len(missing) == 1 else f"{listing(missing, 3)} have"
        raise EmbedError(f"{which} no embedding yet", hint=NO_EMBEDDINGS_HINT)
    return rec, rows, [rec.seed_of(r) for r in rows]


def _answered(request: Request, rows, recs, wanted: int, filters: Filters, library: int) -> JSONResponse:
    """Recommendations from the seeds ``rows``, with the notes the command line prints beside them
    (``wanted``: how many were asked for, which a shorter list says, as the command line does;
    ``library``: the songs the recommender holds)."""
    notes = _state(request).notes()
    if note := short_note(len(recs), wanted, filters.active, library - len(rows)):   # none: the page says so
        notes.append(note)
    return JSONResponse({"seeds": [song_dict(r, True) for r in rows], "items": _scored(recs), "notes": notes})


MaxPerArtist = Query(None, ge=1, le=1000, description="at most this many songs per artist")


# -- library ------------------------------------------------------------------------------------------
@router.get("/status", summary="Library status: counts, embeddings, active model, running job")
def status(request: Request) -> dict:
    out = _state(request).status()
    running = request.app.state.jobs.running()
    out["job"] = _jobs(request).view(running) if running else None
    return out


@router.head("/status", include_in_schema=False)   # what an uptime monitor asks
def status_head(request: Request) -> dict:
    return status(request)


@router.get("/songs", response_model=SongList, summary="List, search, filter and sort the songs")
def songs(request: Request,
          q: str = Query("", max_length=500, description="words that must all appear in the artist, "
                         "title, album or file name, or the two folders above an untagged song (case and accents "
                         "ignored)"),
          artist: str | None = Query(None, max_length=500, description="only this artist"),
          album: str | None = Query(None, max_length=500, description="only this album"),
          genre: str | None = Query(None, max_length=500, description="only this genre"),
          sort: Literal[SORT_KEYS] = Query("artist", description="sort key"),
          desc: bool = Query(False, description="descending order"),
          offset: int = Query(0, ge=0),
          limit: int | None = Query(None, ge=1, le=1_000_000, description="default: all")):
    snap = _state(request).snapshot()
    rows = snap.select(q, artist, album, genre, sort, desc)
    page = rows[offset:offset + limit if limit else None]
    return JSONResponse({"revision": snap.revision, "total": len(rows), "offset": offset,
                         "items": [snap.listing(r) for r in page]})


@router.get("/songs/{song_id}", response_model=SongDetail, responses=ERRORS, summary="One song")
def song(request: Request, song_id: int):
    snap = _state(request).snapshot()
    row = _song(snap, song_id)
    copies = [r.id for r in snap.rows if r.hash == row.hash and r.id != row.id]
    return song_dict(row, snap.embedded(row)) | {
        "path": row.path, "codec": row.codec, "sample_rate": row.sample_rate,
        "channels": row.channels, "size": row.size, "copies": copies,
        "playback": "file" if media.plays_natively(row) else "wav"}


@router.head("/songs/{song_id}/audio", include_in_schema=False)   # the same, its length and type only
@router.get("/songs/{song_id}/audio", responses={**ERRORS, 206: {"description": "a byte range"},
                                                 416: {"description": "range outside the file"}},
            response_class=Response, summary="The song's audio, with HTTP ranges (seeking)")
def audio(request: Request, song_id: int,
          format: Literal["auto", "file", "wav"] = Query(
              "auto", description="'file': the file's own bytes; 'wav': decoded to 16-bit WAV; "
                                  "'auto': the file if browsers play its format, else WAV")):
    row = _song(_state(request).snapshot(), song_id)
    as_file = format == "file" or (format == "auto" and media.plays_natively(row))
    make = media.file_body if as_file else media.wav_body
    body = make(row, request.headers.get("range"))
    if request.method == "HEAD":   # players ask a stream's length and type first: nothing is read
        return Response(status_code=body.status, headers=body.headers, media_type=body.media_type)
    return StreamingResponse(body.chunks, status_code=body.status, headers=body.headers,
                             media_type=body.media_type)


@router.get("/failures", response_model=list[Failure],
            summary="Files that could not be analysed, then damaged files analysed, passing over what "
                    "could not be read")
def failures(request: Request):
    return JSONResponse(_state(request).failures())


@router.get("/model", summary="The active model: its card and evaluation numbers if any")
def model(request: Request) -> dict:
    return _state(request).model()


# -- recommendations ------------------------------------------------------------------------------------
@router.get("/songs/{song_id}/similar", response_model=Recommendations, responses=ERRORS,
            summary="The songs most similar to one song")
def similar(request: Request, song_id: int, n: int = Query(10, ge=1, le=500),
            exclude_same_artist: bool = False, exclude_same_album: bool = False,
            max_per_artist: int | None = MaxPerArtist):
    rec, rows, seeds = _seeds(request, [song_id])
    filters = _filters(exclude_same_artist, exclude_same_album, max_per_artist)
    recs = rec.similar(seeds[0], n, filters)
    return _answered(request, rows, recs, n, filters, len(rec))


@router.get("/mix", response_model=Recommendations, responses=ERRORS,
            summary="A mix of several songs: the nearest songs of each in turn")
def mix(request: Request, seed: list[int] = Query(..., min_length=1, max_length=200),
        n: int = Query(10, ge=1, le=500), exclude_same_artist: bool = False,
        exclude_same_album: bool = False, max_per_artist: int | None = MaxPerArtist):
    rec, rows, seeds = _seeds(request, seed)
    filters = _filters(exclude_same_artist, exclude_same_album, max_per_artist)
    recs = rec.mix(seeds, n, filters)
    return _answered(request, rows, recs, n, filters, len(rec))


@router.get("/playlist", response_model=Recommendations, responses=ERRORS,
            summary="A playlist that flows from one or more songs")
def playlist(request: Request, seed: list[int] = Query(..., min_length=1, max_length=200),
             length: int = Query(20, ge=1, le=500), exclude_same_artist: bool = False,
             exclude_same_album: bool = False, max_per_artist: int | None = MaxPerArtist):
    rec, rows, seeds = _seeds(request, seed)
    filters = _filters(exclude_same_artist, exclude_same_album, max_per_artist)
    recs = rec.playlist(seeds, length, filters)
    return _answered(request, rows, recs, length, filters, len(rec))


@router.get("/export.m3u", response_class=Response, responses={404: ERRORS[404]},
            summary="An M3U playlist of the given songs, in the given order (a song whose path "
                    "holds a line break is left out; X-Reform-Skipped lists their ids)")
def export_m3u(request: Request, id: list[int] = Query(..., min_length=1, max_length=10_000),
               name: str = Query("reform-playlist", max_length=100, description="file name")):
    snap = _state(request).snapshot()
    text, skipped = m3u_text([_song(snap, i) for i in id])
    # the name as given (RFC 6266's filename*, which browsers read), and an ASCII one for the others;
    # a name given with the extension gets it once
    name = re.sub(r"\.m3u8?$", "", name, flags=re.IGNORECASE)
    given = file_name(name, set())
    # (accents dropped from their letters, not the letters: "préférées" -> "preferees")
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = (re.sub(r"[^A-Za-z0-9_.-]+", "-", plain).strip("-.") or "playlist") + ".m3u8"
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(given, safe='')}"
    return Response(text, media_type="audio/x-mpegurl; charset=utf-8",
                    headers={"Content-Disposition": disposition,
                             **({"X-Reform-Skipped": ",".join(str(r.id) for r in skipped)} if skipped else {})})


@router.get("/map", response_model=LibraryMap, responses={409: ERRORS[409]},
            summary="Every embedded song in 2-D (PCA of the embeddings, cached per model)")
def library_map_route(request: Request):
    state = _state(request)
    snap = state.snapshot()
    data = state.map(snap)
    ids, xs, ys = [], [], []
    for row in snap.rows:
        xy = data["points"].get(row.hash)
        if xy is not None:
            ids.append(row.id)
            xs.append(xy[0])
            ys.append(xy[1])
    return JSONResponse({"model": data["model"], "method": data["method"],
                         "explained": data["explained"], "ids": ids, "x": xs, "y": ys,
                         "view": view_box(xs, ys)})


# -- jobs -------------------------------------------------------------------------------------------------
def _jobs(request: Request) -> Jobs:
    return request.app.state.jobs


@router.get("/jobs", response_model=list[JobInfo], summary="Jobs started from the page, newest first")
def jobs(request: Request):
    return JSONResponse(_jobs(request).all())


@router.get("/jobs/{job_id}", response_model=JobInfo, responses={404: ERRORS[404]}, summary="One job")
def job(request: Request, job_id: int):
    found = _jobs(request).get(job_id)
    if found is None:
        raise HTTPException(404, f"no job has the id {job_id}")
    return JSONResponse(_jobs(request).view(found))


def _start(request: Request, kind: str, options: dict):
    started = _jobs(request).start(kind, options)   # Busy: 409, with its hint
    return JSONResponse(_jobs(request).view(started), status_code=202)


@router.post("/jobs/{job_id}/stop", status_code=202, response_model=JobInfo,
             responses={404: ERRORS[404], 409: ERRORS[409]},
             summary="Stop a running job at its next step, keeping what it finished")
def stop_job(request: Request, job_id: int):
    found = _jobs(request).get(job_id)
    if found is None:
        raise HTTPException(404, f"no job has the id {job_id}")
    _jobs(request).cancel(found)   # Busy (409) when it has ended
    return JSONResponse(_jobs(request).view(found), status_code=202)


@router.post("/jobs/scan", status_code=202, response_model=JobInfo, responses={409: ERRORS[409]},
             summary="Rescan the library's folders (new, changed and removed files)")
def start_scan(request: Request):
    return _start(request, "scan", {})


@router.post("/jobs/embed", status_code=202, response_model=JobInfo, responses={409: ERRORS[409]},
             summary="Embed the songs the active model has not embedded yet")
def start_embed(request: Request):
    return _start(request, "embed", {})


@router.post("/jobs/train", status_code=202, response_model=JobInfo, responses={409: ERRORS[409]},
             summary="Train a model on the library (it becomes the active model)")
def start_train(request: Request, options: TrainOptions | None = Body(None)):
    options = (options or TrainOptions()).model_dump(exclude_none=True)
    if options.get("name"):   # a name taken by a run that trained: refused now (409), not by the job
        with Library(_jobs(request).home, create=False, read_only=True) as lib:
            lib.new_run_folder(options["name"])
    return _start(request, "train", options)


def static_dir() -> Path:
    return Path(__file__).parent / "static"


STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}


def static_files() -> dict[str, Path]:
    """The page's files, by name: regular files of static/ only (no folders, no links)."""
    folder = static_dir()
    return {p.name: p for p in folder.iterdir()
            if p.suffix in STATIC_TYPES and p.is_file() and not p.is_symlink()} \
        if folder.is_dir() else {}


page = APIRouter()


# HEAD too: link checkers and uptime monitors ask the page with it
@page.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
def index(request: Request):
    return _static(request, "index.html")


@page.api_route("/api/docs", methods=["GET", "HEAD"], include_in_schema=False)
def api_docs(request: Request):
    return _static(request, "api.html")


@page.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
def static(request: Request, name: str):
    return _static(request, name)


def _static(request: Request, name: str) -> Response:
    path = request.app.state.static.get(name)
    if path is None:
        raise HTTPException(404, "no such file")
    return Response(path.read_bytes(), media_type=STATIC_TYPES[path.suffix],
                    headers={"Cache-Control": "no-cache"})

