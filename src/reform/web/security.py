"""Who may call the page and its API: an ASGI middleware in front of every request.

Four rules, in this order:

* **Well-formed requests**: exactly one ``Host`` header, of the form
  ``name[:port]`` and nothing else (``127.0.0.1:8765@evil.example`` is refused),
  and a body of at most ``MAX_BODY`` bytes (the API takes only small JSON), read
  here before the application sees it so that no request can fill the memory.
* **Host names** (loopback binding only): the ``Host`` header must name this
  computer (127.0.0.1, localhost, ::1) and the port the server listens on.  A
  web site whose DNS name is rebound to 127.0.0.1 sends its own name and is
  refused, so it cannot read the API.
* **Token** (when one is set, always with ``--host``): every request carries it
  as ``Authorization: Bearer T``, a ``reform_token_PORT`` cookie, or ``?token=T``.  The
  page is opened once with ``?token=T``; the answer sets an HttpOnly, SameSite=Strict
  cookie and redirects to the bare address, so the token leaves the address bar
  and the audio element, which cannot send headers, is authorised by the cookie.
  Browsers send a cookie to every port of a host name, so its name holds the port:
  two servers on one computer keep their own tokens and never receive each other's.
* **Same-origin writes**: a request that changes state (POST) must not come from
  another origin (``Origin`` header) or another site (``Sec-Fetch-Site``), so a
  page elsewhere cannot start a scan through the user's browser.  API reads from
  another site are refused too.

Every answer also carries headers that keep the page to its own resources
(Content-Security-Policy) and out of other sites' frames.
"""

from __future__ import annotations

import json
import re
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
COOKIE = "reform_token"   # and "_PORT": see cookie_name
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_BODY = 64 * 1024  # bytes; the largest request the API takes is a few hundred
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::(?P<port>[0-9]{1,5}))?$")

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
     b"script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
     b"frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def is_loopback(host: str) -> bool:
    """True when binding ``host`` keeps the page on this computer."""
    return host.strip("[]").lower() in LOOPBACK_NAMES


def parse_host(host_header: str) -> tuple[str, int | None] | None:
    """The name and port of a Host header (``[::1]:8765`` -> ``("::1", 8765)``), or None
    when it is anything but ``name[:port]``."""
    match = _HOST.match(host_header)
    if match is None:
        return None
    port = match.group("port")
    return (match.group("v6") or match.group("name")).lower(), int(port) if port else None


class Guard:
    """ASGI middleware enforcing the rules of this module.

    Parameters
    ----------
    app : the application behind the guard
    token : the access token, or None for none (loopback only)
    loopback_only : refuse Host headers that do not name this computer
    """

    def __init__(self, app, *, token: str | None, loopback_only: bool):
        self.app = app
        self.token = token
        self.loopback_only = loopback_only

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":  # the API has none: refuse rather than let one past the rules
            return await send({"type": "websocket.close", "code": 1008})
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope.get("path", "")
        problem = _malformed(scope, headers) or self._refusal(scope, headers)
        if problem is None and scope["method"] not in SAFE_METHODS:
            body = await _read_body(receive)
            if body is None:
                problem = (413, f"the request body is larger than {MAX_BODY} bytes", None)
            else:
                receive = _replay(body, receive)
        if problem is not None:
            status, message, hint = problem
            return await _refuse(send, status, message, hint, html=not path.startswith("/api/"))
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if self.token and query.get("token") and scope["method"] == "GET" and not path.startswith("/api/"):
            # First visit with ?token=: keep it in a cookie and take it out of the address.
            rest = urlencode([(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin-1"))
                              if k != "token"])
            location = "/" + quote(path.lstrip("/"))  # never "//host": no redirect off this site
            return await _redirect(send, location + (f"?{rest}" if rest else ""), cookie_name(scope), self.token)
        return await self.app(scope, receive, _with_headers(send))

    def _refusal(self, scope, headers: dict[str, str]) -> tuple[int, str, str | None] | None:
        if self.loopback_only and not _names_this_server(scope, headers.get("host", "")):
            return (403, "this page only answers requests addressed to this computer "
                         "(127.0.0.1 or localhost) and its port",
                    "open http://127.0.0.1:<port>/, or serve with --host and a token")
        if self.token and not self._has_token(scope, headers):
            return (401, "this page needs its access token",
                    "open the address printed by `reform serve` (it ends with ?token=...), "
                    "or send the header 'Authorization: Bearer <token>'")
        site = headers.get("sec-fetch-site", "")
        cross_site = site == "cross-site"
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            if cross_site or (origin is not None and not _same_origin(origin, headers.get("host", ""))):
                return (403, "changes can only be asked for by this page itself",
                        "send the request without an Origin header, or from the page")
        elif cross_site and scope.get("path", "").startswith("/api/"):
            return (403, "another web site cannot read this library", None)
        return None

    def _has_token(self, scope, headers: dict[str, str]) -> bool:
        candidates = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            candidates.append(auth[7:].strip())
        if "cookie" in headers:
            cookie = SimpleCookie()
            try:
                cookie.load(headers["cookie"])
            except Exception:  # a malformed cookie header is simply no token
                cookie = SimpleCookie()
            name = cookie_name(scope)
            if name in cookie:
                candidates.append(cookie[name].value)
        for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            if key == "token":
                candidates.append(value)
        expected = self.token.encode()
        return any(secrets.compare_digest(c.encode("utf-8", "replace"), expected) for c in candidates)


def _malformed(scope, headers: dict[str, str]) -> tuple[int, str, str | None] | None:
    """A request no browser sends: several Host headers, a Host that is not ``name[:port]``,
    or a declared body over the limit."""
    hosts = [v for k, v in scope["headers"] if k.lower() == b"host"]
    if len(hosts) > 1:
        return 400, "the request has several Host headers", None
    if hosts and parse_host(headers["host"]) is None:
        return 400, "the Host header is not of the form name:port", None
    length = headers.get("content-length", "0")
    if not length.isdigit() or len(length) > 12 or int(length) > MAX_BODY:
        return 413, f"the request body is larger than {MAX_BODY} bytes", None
    return None


def _names_this_server(scope, host_header: str) -> bool:
    """The Host names this computer and the port the server listens on (no port: 80)."""
    parsed = parse_host(host_header)
    if parsed is None or parsed[0] not in LOOPBACK_NAMES:
        return False
    server = scope.get("server")
    listening = server[1] if server and len(server) > 1 and server[1] else None
    return listening is None or (parsed[1] or 80) == listening


async def _read_body(receive) -> bytes | None:
    """The whole request body, or None as soon as it passes MAX_BODY (it is not read further)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A receive callable that hands the application the body read already, then goes on."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


def _same_origin(origin: str, host_header: str) -> bool:
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == host_header.lower()


def _with_headers(send):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            message = dict(message)
            names = {k.lower() for k, _ in message.get("headers", [])}
            message["headers"] = list(message.get("headers", [])) + [
                (k, v) for k, v in SECURITY_HEADERS if k not in names]
        await send(message)
    return wrapped


async def _refuse(send, status: int, message: str, hint: str | None, html: bool) -> None:
    if html:
        body = (f"<!doctype html><meta charset=utf-8><title>ReFORM</title>"
                f"<body>"
                f"<h1>ReFORM</h1><p>{_escape(message)}.</p>"
                f"<p>{_escape(hint or '')}</p></body>").encode()
        kind = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"error": message, "hint": hint}).encode()
        kind = b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


def cookie_name(scope) -> str:
    """The token cookie of the server that answers ``scope``: ``reform_token_PORT``."""
    server = scope.get("server")
    return f"{COOKIE}_{server[1]}" if server and server[1] is not None else COOKIE


async def _redirect(send, location: str, name: str, token: str) -> None:
    cookie = f"{name}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0"),
                            (b"set-cookie", cookie.encode("latin-1")), (b"cache-control", b"no-store"),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": b""})


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
