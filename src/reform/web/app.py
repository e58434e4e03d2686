"""The FastAPI application: routes, error answers, compression and the access guard.

Every error answers JSON ``{"error": sentence, "hint": next step or null}``
with a status that says whose problem it is (404 unknown id, 409 not possible
yet, 422 malformed input), never a traceback: unexpected exceptions become a
500 whose details stay in the server's log.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware

from .. import __version__
from ..errors import (ConfigError, DecodeError, EmbedError, LibraryError, ModelError, QueryError,
                      ReformError, StoreError, TrainError)
from ..store import catalogue_error
from ..text import naming_home
from . import media, routes
from .jobs import Jobs
from .security import Guard
from .state import LibraryState

log = logging.getLogger("reform.web")

STATUS_OF = [(media.Unavailable, None), (QueryError, 404), (ConfigError, 422), (EmbedError, 409),
             (ModelError, 409), (TrainError, 409), (LibraryError, 409), (DecodeError, 409),
             (StoreError, 500)]


def _status(exc: ReformError) -> int:
    for kind, status in STATUS_OF:
        if isinstance(exc, kind):
            return status or exc.status
    return 500


def _answer(status: int, error: str, hint: str | None = None, headers: dict | None = None,
            **extra) -> JSONResponse:
    return JSONResponse({"error": error, "hint": hint, **extra}, status_code=status, headers=headers)


def _validation_problems(exc: RequestValidationError) -> list[dict]:
    """Where and what, without echoing the input back."""
    return [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()]


def _methods_of_path(request: Request) -> set[str]:
    """The methods of the API routes written exactly as this request's path (no parameter in them).

    ``GET /api/jobs/scan`` also matches ``GET /api/jobs/{job_id}``, whose validation then fails;
    the right answer is that /api/jobs/scan exists but takes another method (405)."""
    return {method for route in routes.router.routes if route.path == request.scope["path"]
            for method in route.methods}


def _refused(method: str, allowed: Iterable[str]) -> JSONResponse:
    """A method the address does not take (405), in words, its methods in one order."""
    methods = ", ".join(sorted({m.strip() for m in allowed if m.strip()}))
    return _answer(405, f"{method} is not allowed here (it takes {methods})", headers={"Allow": methods})


def create_app(home: str | os.PathLike, *, token: str | None = None, loopback_only: bool = True,
               runners: dict | None = None, named: bool = False) -> FastAPI:
    """The web application over a library home.

    Parameters
    ----------
    home : the library home (StoreError if it holds no library)
    token : access token every request must carry, or None
    loopback_only : answer only requests addressed to 127.0.0.1 / localhost / ::1
    runners : the work behind each job kind (tests replace it; see :mod:`reform.web.jobs`)
    named : the home was given by --home: the commands in hints name it (`reform --home H ...`),
        and the status gives the command to the page (``command``)
    """
    state = LibraryState(home, os.fspath(home) if named else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.close()

    app = FastAPI(title="ReFORM", version=__version__, lifespan=lifespan,
                  description="Explore a ReFORM library and listen to recommendations. Songs are "
                              "addressed by their catalogue id; errors answer "
                              '`{"error": ..., "hint": ...}`.',
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.library = state
    app.state.jobs = Jobs(state.home, runners, state.named_home)
    app.state.static = routes.static_files()
    app.include_router(routes.router)
    app.include_router(routes.page)

    @app.exception_handler(ReformError)
    async def reform_error(request: Request, exc: ReformError):
        status = _status(exc)
        if status >= 500:
            log.error("%s: %s", request.url.path, exc)
        hint = exc.hint and naming_home(exc.hint, state.named_home)
        return _answer(status, exc.message, hint, getattr(exc, "headers", None))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 405:
            return _refused(request.method, (exc.headers or {}).get("Allow", "").split(","))
        detail = {"Not Found": "no such address"}.get(str(exc.detail), str(exc.detail))
        return _answer(exc.status_code, detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        allowed = _methods_of_path(request)
        if allowed and request.method not in allowed:
            return _refused(request.method, allowed)
        problems = _validation_problems(exc)
        first = problems[0] if problems else {"where": "", "problem": "invalid request"}
        return _answer(422, f"invalid request: {first['where']}: {first['problem']}",
                       problems=problems)

    @app.exception_handler(sqlite3.Error)
    async def catalogue_damaged(request: Request, exc: sqlite3.Error):
        return await reform_error(request, catalogue_error(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return _answer(500, f"internal error ({type(exc).__name__}); the details are in the "
                            "server's log")

    def openapi() -> dict:
        """FastAPI's schema, with the 422 answer described as this API sends it."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {})["HTTPValidationError"] = {
                "title": "ValidationAnswer", "type": "object", "required": ["error"],
                "properties": {
                    "error": {"type": "string", "description": "the first problem, in words"},
                    "hint": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "problems": {"type": "array", "description": "every problem: where and what",
                                 "items": {"type": "object", "properties": {
                                     "where": {"type": "string"}, "problem": {"type": "string"}}}}}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    audio_types = tuple(set(media.BROWSER_TYPES.values()) | {media.WAV_TYPE, "audio/x-mpegurl"})
    app.add_middleware(GZipMiddleware, minimum_size=4096,
                       exclude_content_types=("text/event-stream", *audio_types))
    app.add_middleware(Guard, token=token, loopback_only=loopback_only)
    return app
