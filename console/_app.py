"""The console's HTTP side: a Starlette app on the service's event loop.

Routes (every ``/api`` route but login needs a session; POSTs need the session's CSRF
token in ``X-CSRF-Token`` and, when the browser sends one, a same-origin ``Origin``)::

    GET  /                         the single-page console (static/index.html)
    GET  /static/...               JS, CSS, vendored Leaflet
    GET  /healthz                  liveness (no session)
    POST /api/login                {"username", "password"} -> session cookie + CSRF token
    POST /api/logout
    GET  /api/session              who am I (and my CSRF token); user null: logged out
    GET  /api/site                 static map layers
    GET  /api/state                the hub's snapshot
    GET  /api/events               Server-Sent Events: snapshot, tracks, alert, health, patrols
    GET  /api/alerts/{id}/audit    the alert's audit trail from the store
    POST /api/alerts/{id}/{action} ack | escalate | resolve | assign | ccp (operators only)

:class:`ConsoleServer` runs uvicorn's server as a task of the caller's loop (it shares
the pipeline in-process) and leaves signal handling to the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast
from urllib.parse import urlsplit

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console._actions import ACTIONS, MAX_NOTE, ConsoleAction, apply_action
from console._auth import Session, SessionStore, load_users
from console._errors import ConsoleError, UsersFileError
from console._geometry import site_layers
from console._hub import ConsoleHub
from console._options import ConsoleOptions

if TYPE_CHECKING:
    from service.runtime import Pipeline

log = logging.getLogger("limes.console")

STATIC = Path(__file__).parent / "static"
COOKIE = "limes_session"
CSRF_HEADER = "x-csrf-token"

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """Where and how the console listens."""

    host: str = "127.0.0.1"
    port: int = 8080
    secure_cookies: bool = False  # set behind TLS (a reverse proxy): cookie ``Secure``
    keepalive_s: float = 15.0


class _Headers:
    """ASGI middleware: security headers on every response; no caching of API answers
    (plain ASGI, so event streams pass through unbuffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = str(scope.get("path", "")).startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                h.setdefault("Content-Security-Policy", _CSP)
                h.setdefault("X-Content-Type-Options", "nosniff")
                h.setdefault("X-Frame-Options", "DENY")
                h.setdefault("Referrer-Policy", "no-referrer")
                if api:
                    h.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _note_and_unit(action: str, data: dict[str, Any]) -> tuple[str, str | None]:
    """The action's note (required for ack/escalate/resolve) and unit, or HTTP 400."""
    note = data.get("note", "")
    unit = data.get("unit")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise HTTPException(400, f"note must be text of at most {MAX_NOTE} characters")
    note = note.strip()
    if action in ("ack", "escalate", "resolve") and not note:
        raise HTTPException(400, f"{action} needs a note")
    if unit is not None and not isinstance(unit, str):
        raise HTTPException(400, "unit must be a unit id")
    return note, unit


def _json_error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def create_app(
    hub: ConsoleHub, sessions: SessionStore, settings: ConsoleSettings | None = None
) -> Starlette:
    """The console app over ``hub`` (state, pipeline) and ``sessions`` (users)."""
    cfg = settings if settings is not None else ConsoleSettings()
    layers: dict[str, Any] = {}

    def session(request: Request) -> Session:
        s = sessions.get(request.cookies.get(COOKIE))
        if s is None:
            raise HTTPException(401, "not logged in")
        return s

    def same_origin(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, "cross-origin request refused")

    def acting(request: Request, *, operator: bool) -> Session:
        same_origin(request)
        s = session(request)
        token = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(token.encode(), s.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token")
        if operator and s.role != "operator":
            raise HTTPException(403, f"role {s.role} may not act on alerts")
        return s

    async def body(request: Request) -> dict[str, Any]:
        try:
            data = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            raise HTTPException(400, "body must be a JSON object") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "body must be a JSON object")
        return data

    async def index(request: Request) -> Response:
        del request
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def healthz(request: Request) -> Response:
        del request
        return JSONResponse({"ok": True, "pipeline": hub.pipeline is not None})

    async def login(request: Request) -> Response:
        same_origin(request)
        data = await body(request)
        name, pw = data.get("username"), data.get("password")
        if not isinstance(name, str) or not isinstance(pw, str) or not name or not pw:
            return _json_error(400, "username and password are required")
        if sessions.locked(name):
            return _json_error(429, "too many failed logins; wait a few minutes")
        user = await run_in_threadpool(sessions.check, name, pw)
        s = sessions.open(name, user)
        if s is None:
            log.warning("console: failed login for %r", name)
            return _json_error(401, "wrong user name or password")
        log.info("console: %s (%s) logged in", s.user, s.role)
        resp = JSONResponse({"user": s.user, "role": s.role, "csrf": s.csrf})
        resp.set_cookie(
            COOKIE,
            s.sid,
            max_age=int(sessions.ttl_s),
            httponly=True,
            samesite="strict",
            secure=cfg.secure_cookies,
            path="/",
        )
        return resp

    async def logout(request: Request) -> Response:
        s = acting(request, operator=False)
        sessions.logout(s.sid)
        resp = JSONResponse({"ok": True})
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return resp

    async def whoami(request: Request) -> Response:
        s = sessions.get(request.cookies.get(COOKIE))
        if s is None:  # not an error: the page asks this before showing the login form
            return JSONResponse({"user": None})
        return JSONResponse({"user": s.user, "role": s.role, "csrf": s.csrf})

    async def site(request: Request) -> Response:
        session(request)
        if not layers:
            layers.update(site_layers(hub.site))
        return JSONResponse(layers)

    async def state(request: Request) -> Response:
        session(request)
        return Response(msgspec.json.encode(hub.snapshot()), media_type="application/json")

    async def events(request: Request) -> Response:
        s = session(request)
        client = hub.subscribe()
        stream = hub.frames(
            client, alive=lambda: sessions.get(s.sid) is not None, keepalive_s=cfg.keepalive_s
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def audit(request: Request) -> Response:
        session(request)
        aid = request.path_params["alert_id"]
        view = hub.alerts.get(aid)
        pipe = hub.pipeline
        if view is None or pipe is None:
            return _json_error(404, f"unknown alert {aid}")
        rows = await pipe.store.audit(str(view["sector"]))
        return JSONResponse([r for r in rows if r.get("alert_id") == aid])

    async def act(request: Request) -> Response:
        s = acting(request, operator=True)
        aid, action = request.path_params["alert_id"], request.path_params["action"]
        if action not in (*ACTIONS, "ccp"):
            return _json_error(404, f"unknown action {action!r}")
        note, unit = _note_and_unit(action, await body(request))
        pipe = hub.pipeline
        if pipe is None:
            return _json_error(503, "the service has not started its pipeline yet")
        t = hub.now()
        vel = None
        if action == "ccp":
            view = hub.alerts.get(aid) or {}
            track = hub.tracks.get(str(view.get("track_id")))
            vel = (float(track["vx"]), float(track["vy"])) if track else None
            note = note or "requested"
        act = ConsoleAction(
            action=cast("Any", action),
            alert_id=aid,
            who=s.user,
            t=t,
            note=note,
            unit=unit,
            velocity=vel,
        )
        # journaled first, then applied (limes run); applied directly without a journal
        out = await hub.act(act) if hub.act is not None else await apply_action(pipe, act)
        log.info("console: %s %s %s: %s", s.user, action, aid, out.reason or "ok")
        if not out.ok:
            return JSONResponse({"error": out.reason, "state": out.state}, status_code=409)
        return JSONResponse({"ok": True, "state": out.state, **(out.detail or {})})

    async def http_error(request: Request, exc: Exception) -> Response:
        del request
        assert isinstance(exc, HTTPException)
        return _json_error(exc.status_code, exc.detail)

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        Route("/api/session", whoami),
        Route("/api/site", site),
        Route("/api/state", state),
        Route("/api/events", events),
        Route("/api/alerts/{alert_id}/audit", audit),
        Route("/api/alerts/{alert_id}/{action}", act, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_Headers)],
        exception_handlers={HTTPException: http_error},
    )


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: the service owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ConsoleServer:
    """The console served on the running loop: ``async with ConsoleServer(...) as c:``.

    Entering binds the socket (``ConsoleError`` if it cannot), starts the hub's periodic
    task and uvicorn; leaving ends the browser streams and stops both.
    """

    def __init__(
        self, hub: ConsoleHub, sessions: SessionStore, settings: ConsoleSettings | None = None
    ) -> None:
        self.hub = hub
        self.sessions = sessions
        self.settings = settings if settings is not None else ConsoleSettings()
        self.app = create_app(hub, sessions, self.settings)
        self.port = self.settings.port
        self._server: _Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        """``http://host:port/`` the console listens on."""
        host = self.settings.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        return f"http://{shown}:{self.port}/"

    async def __aenter__(self) -> Self:
        cfg = self.settings
        sock = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((cfg.host, cfg.port))
        except OSError as exc:
            sock.close()
            raise ConsoleError(f"console cannot listen on {cfg.host}:{cfg.port}: {exc}") from exc
        sock.listen(128)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config)
        self._tasks = [
            asyncio.create_task(self.hub.run(), name="console.hub"),
            asyncio.create_task(self._serve(sock), name="console.http"),
        ]
        await _until(lambda: self._server is not None and self._server.started, self._tasks[1])
        return self

    async def _serve(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            await self._server.serve(sockets=[sock])
        finally:
            sock.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.hub.close()
        if self._server is not None:
            self._server.should_exit = True
        hub_task, http_task = self._tasks
        with contextlib.suppress(asyncio.CancelledError):
            await http_task
        hub_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hub_task


async def _until(ready: Callable[[], bool], task: asyncio.Task[None]) -> None:
    """Wait until ``ready()`` (or ``task`` ended: re-raise its error)."""
    while not ready():
        if task.done():
            task.result()
            raise ConsoleError("console server stopped during start-up")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def serve_console(
    hub: ConsoleHub, pipeline: Pipeline | None, options: ConsoleOptions
) -> AsyncIterator[ConsoleServer]:
    """Serve the console for ``pipeline`` (whose sink feeds ``hub``) while in the block;
    ``None``: the caller attaches it later (:meth:`ConsoleHub.attach`).

    Loads ``options.users`` (:class:`UsersFileError` when missing or invalid) and binds
    the port (:class:`ConsoleError` when taken).
    """
    if options.users is None:
        raise UsersFileError("-", "users", "the console needs a users file (--console-users)")
    sessions = SessionStore(load_users(options.users))
    if pipeline is not None:
        hub.attach(pipeline)
    settings = ConsoleSettings(
        host=options.host, port=options.port, secure_cookies=options.secure_cookies
    )
    async with ConsoleServer(hub, sessions, settings) as server:
        log.info("console on %s (%d users)", server.url, len(sessions.users))
        yield server
