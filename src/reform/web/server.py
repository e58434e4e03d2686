"""``reform serve``: bind the address, print the page's URL, run uvicorn until Ctrl-C.

The socket is bound here, before uvicorn starts, so that a port in use or an
address that cannot be bound is one plain error line rather than a server log.
Binding anything other than this computer's loopback address requires a token:
one is made up with :mod:`secrets` when none is given, and printed in the URL.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import sys
import threading
import time
import webbrowser

from ..errors import ConfigError
from .security import Guard, is_loopback

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{8,200}$")


class PortInUse(ConfigError):
    """The port is taken (by another server, often another `reform serve`)."""


def make_token() -> str:
    return secrets.token_urlsafe(24)


def bind(host: str, port: int, option: str = "--port") -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: any free port); ``option`` is
    the one the hint names when the port is taken."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"the port must be between 0 and 65535, not {port}")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot use the address {host!r} ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host.strip("[]") in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise PortInUse(f"cannot listen on {host} port {port}: the port is in use",
                            hint=f"choose another port with {option}") from None
        raise ConfigError(f"cannot listen on {host} port {port}: {exc.strerror}",
                          hint="check the address, or use another") from None
    sock.setblocking(False)
    return sock


def url_of(host: str, port: int, token: str | None) -> str:
    """The address to open: this computer's for a wildcard binding, the token in the query."""
    shown = host.strip("[]")
    if shown in ("0.0.0.0", "::", ""):
        shown = socket.gethostname()
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


class _ByPort:
    """One server, two sockets: requests that arrive on the Music Similarity port go to that
    service, everything else (and the server's start and stop) to the page."""

    def __init__(self, page, lms, lms_port: int):
        self.page, self.lms, self.lms_port = page, lms, lms_port

    async def __call__(self, scope, receive, send):
        server = scope.get("server") or (None, None)
        if scope["type"] != "lifespan" and server[1] == self.lms_port:
            return await self.lms(scope, receive, send)
        return await self.page(scope, receive, send)


def bind_lms(host: str, port: int, optional: bool) -> socket.socket | None:
    """The socket of the Music Similarity service; None, with a warning, when its port is taken
    and ``optional`` (the port is the default one, not chosen): a second `reform serve` over
    another home still serves its page, while the first one answers Lyrion."""
    try:
        return bind(host, port, "--lms-port (or --no-lms)")
    except PortInUse as exc:
        if not optional:
            raise
        print(f"warning: {exc.message}: Lyrion support is off on this server "
              "(choose another port with --lms-port, or --no-lms)", file=sys.stderr, flush=True)
        return None


def serve(home: str, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False,
          token: str | None = None, lms_port: int | None = None, lms_host: str = "127.0.0.1",
          lms_allow: tuple[str, ...] = (), music_dir: str | None = None, lms_optional: bool = False,
          named: bool = False) -> int:
    """Serve the page of the library at ``home`` until interrupted; returns the exit code.

    Parameters
    ----------
    home : the library home (it must hold a scanned library)
    host : address to bind; anything but 127.0.0.1 / localhost / ::1 needs a token
    port : TCP port (0: any free one)
    open_browser : open the page in the default web browser once it answers
    token : access token; made up and printed when ``host`` is not loopback and none is given
    lms_port : also answer Lyrion's Music Similarity plugin on this port (None: do not;
        the plugin cannot send a token, see :mod:`reform.web.lms`)
    lms_host : the address that service binds; anything but this computer's needs ``lms_allow``
    lms_allow : the addresses (of the Lyrion server) that may ask it, when not loopback
    music_dir : Lyrion's music folder as this computer sees it (None: learned)
    lms_optional : ``lms_port`` is the default, not the user's choice: when it is taken, serve
        the page without the service (with a warning) rather than refuse to start
    named : the home was given by --home, not found by default: every `reform ...` command the
        page and the API suggest names it
    """
    try:
        import uvicorn

        from .app import create_app
        from .lms import create_lms_app
    except ImportError as exc:
        raise ConfigError(f"the web page needs FastAPI and uvicorn ({exc.name} is missing)",
                          hint="pip install 'reform-music[web]'") from None
    if token is not None and not TOKEN_PATTERN.match(token):
        raise ConfigError("the token must be 8 to 200 letters, digits or . _ ~ -")
    loopback = is_loopback(host)
    if not loopback and not token:
        token = make_token()
    if lms_port is not None and not is_loopback(lms_host) and not lms_allow:
        raise ConfigError(f"the Music Similarity service cannot check a token: binding {lms_host} "
                          "needs the address of the Lyrion server", hint="add --lms-allow ADDRESS")
    if lms_port is not None:
        from .lms import client_addresses

        lms_allow = client_addresses(lms_allow)
    sockets = [bind(host, port)]
    try:
        lms_socket = bind_lms(lms_host, lms_port, lms_optional) if lms_port is not None else None
        if lms_socket is not None:
            sockets.append(lms_socket)
        app = create_app(home, token=token, loopback_only=loopback, named=named)
        jobs = app.state.jobs
        if lms_socket is not None:
            from ..radio import MusicRoot
            from .lms import AllowClients

            lms = AllowClients(Guard(create_lms_app(app.state.library, MusicRoot(music_dir) if music_dir
                                                    else None), token=None,
                                     loopback_only=is_loopback(lms_host)), lms_allow)
            app = _ByPort(app, lms, lms_socket.getsockname()[1])
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    port = sockets[0].getsockname()[1]
    url = url_of(host, port, token)
    # proxy_headers off: uvicorn would otherwise take a client's address from X-Forwarded-For on
    # connections from this computer, and --lms-allow would then trust what any local program wrote
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False,
                                           timeout_graceful_shutdown=2))
    print(f"ReFORM: serving the library {os.fspath(home)}")
    print(f"open {url}")
    if not loopback:
        print("the page is reachable from other computers: keep the token secret", flush=True)
    if lms_socket is not None:
        where = lms_socket.getsockname()
        print(f"Lyrion's Music Similarity plugin: set its host to {url_of(lms_host, where[1], None)[7:-1]}"
              + (f" (answering {', '.join(lms_allow)} only)" if lms_allow else ""), flush=True)
    print("press Ctrl-C to stop", flush=True)
    if open_browser:
        threading.Thread(target=_open_when_started, args=(server, url), daemon=True).start()
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down: the normal way out
        pass
    finally:
        for sock in sockets:
            sock.close()
        running = jobs.running()
        if running is not None:
            print(f"stopping the {running.kind} job at its next step", flush=True)
            job = jobs.stop()
            if job is not None and job.state != "running":
                print(f"{job.kind}: {job.summary or job.error}" + (f"; {job.hint}" if job.hint else ""))
    print("stopped", flush=True)
    return 0


def _open_when_started(server, url: str, wait: float = 30.0) -> None:
    deadline = time.monotonic() + wait
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if server.started and not webbrowser.open(url):   # a server with no browser, or none set up
        print(f"no web browser could be opened here: open {url} in one", flush=True)
