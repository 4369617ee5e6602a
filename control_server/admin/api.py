"""The admin HTTP API, its event stream, `/metrics` and the dashboard, served by aiohttp in the
control server's own event loop. It sees the server through a `ServerView` and keeps a store
connection of its own; store work runs on a thread of its own, never on the loop."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from aiohttp import web

from protocols.sip.endpoint import bracketed

from ..store import (
    AdminStore,
    DirectoryStore,
    NameTaken,
    StateStore,
    StoreError,
    UnknownName,
    open_database,
)
from .account_endpoints import AccountEndpoints
from .accounts import AdminAccounts
from .auth import AuthError, LoginSessions, LoginThrottle, Principal
from .directory_endpoints import DirectoryEndpoints
from .events import EventHub
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import MetricsExposition
from .openapi import openapi_document
from .replies import error_reply
from .requests import ApiError, flag, history_query, json_body, text_field
from .rows import device_row, online_row, session_row
from .view import ServerView

log = logging.getLogger("sipsync.admin")

WEB = Path(__file__).parent / "web"
COOKIE = "sipsync_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_BODY = 256 * 1024  # a users import is sent in slices below this
KEEPALIVE_SECONDS = 15.0
_PUBLIC = {("GET", "/healthz"), ("GET", "/login"), ("POST", "/api/login")}
_READ_METHODS = {"GET", "HEAD", "OPTIONS"}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _version() -> str:
    try:
        return metadata.version("sipsync")
    except metadata.PackageNotFoundError:
        return "unknown"


class AdminApi(DirectoryEndpoints, AccountEndpoints):
    def __init__(self, server: ServerView, data_dir: Path, store: str = "") -> None:
        self.server = server
        # A connection of our own: the server's is busy with its write-behind thread, and only
        # another connection's commits tell the server that the directory changed.
        self._database = open_database(data_dir, store)
        self.directory = DirectoryStore(self._database)
        self.state = StateStore(self._database)
        self.accounts = AdminAccounts(AdminStore(self._database))
        self._db = ThreadPoolExecutor(1, thread_name_prefix="admin-db")
        self.logins = LoginSessions()
        self.throttle = LoginThrottle()
        self.hub = EventHub()  # the server's events, as the event stream sends them
        self.exposition = MetricsExposition(server.counts, server.metrics)
        self.port = 0
        self._streams: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._reload: asyncio.Task | None = None
        self.app = web.Application(client_max_size=MAX_BODY,
                                   middlewares=[self._errors, self._authenticate])
        self._routes()

    def _routes(self) -> None:
        r = self.app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/", self.page)
        r.add_get("/login", self.login_page)
        r.add_static("/static/", WEB, append_version=False)
        r.add_get("/metrics", self.metrics)
        r.add_get("/api/openapi.json", self.openapi)
        r.add_post("/api/login", self.login)
        r.add_post("/api/logout", self.logout)
        r.add_get("/api/me", self.me)
        r.add_get("/api/status", self.status)
        r.add_get("/api/events", self.events)
        r.add_get("/api/devices", self.devices)
        r.add_post("/api/devices", self.add_device)
        r.add_patch("/api/devices/{user}/{device}", self.change_device)
        r.add_delete("/api/devices/{user}/{device}", self.remove_device)
        r.add_get("/api/users", self.users)
        r.add_post("/api/users", self.add_user)
        r.add_post("/api/users/import", self.import_users)
        r.add_patch("/api/users/{name}", self.change_user)
        r.add_post("/api/users/{name}/password", self.reset_password)
        r.add_delete("/api/users/{name}", self.remove_user)
        r.add_get("/api/shares", self.shares)
        r.add_post("/api/shares", self.add_share)
        r.add_delete("/api/shares/{owner}/{device}/{user}", self.remove_share)
        r.add_get("/api/sessions", self.sessions)
        r.add_get("/api/sessions/history", self.history)
        r.add_get("/api/admins", self.admins)
        r.add_post("/api/admins", self.add_admin)
        r.add_delete("/api/admins/{name}", self.remove_admin)
        r.add_get("/api/tokens", self.tokens)
        r.add_post("/api/tokens", self.add_token)
        r.add_delete("/api/tokens/{name}", self.remove_token)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        self._unsubscribe = self.server.events.subscribe(self.hub.receive)
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("admin HTTP API on http://%s:%d/", bracketed(host), self.port)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in list(self._streams):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._reload is not None:
            await asyncio.gather(self._reload, return_exceptions=True)
        self.close()

    def close(self) -> None:
        """Let go of the store; what `stop` ends with, and all an API never started needs."""
        self._db.shutdown(wait=True)
        self._database.close()

    async def _run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    def _directory_changed(self) -> None:
        """Have the server reload users, devices and shares now rather than at its next second.
        One reload at a time: a change it misses is picked up by the server's own check."""
        if self._reload is None or self._reload.done():
            self._reload = asyncio.create_task(self.server.reload_directory())
            self._reload.add_done_callback(_log_failure)

    # -- middleware: errors as JSON, then who is asking ------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except (ApiError, AuthError) as exc:
            return error_reply(exc.status, exc.message,
                               {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)
        except UnknownName as exc:
            return error_reply(404, str(exc))
        except NameTaken as exc:
            return error_reply(409, str(exc))
        except StoreError as exc:
            return error_reply(400, str(exc))
        except web.HTTPRedirection:
            raise
        except web.HTTPException as exc:
            message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
            if exc.status == 404:
                message = f"no such endpoint: {request.path}"
            elif exc.status == 405:
                message = f"{request.method} is not allowed on {request.path}"
            elif exc.status == 413:
                message = f"request body too large: at most {MAX_BODY} bytes"
            return error_reply(exc.status, message or exc.reason)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("admin API failed on %s %s", request.method, request.path)
            return error_reply(500, "internal error; the server log has the details")

    @web.middleware
    async def _authenticate(self, request: web.Request, handler) -> web.StreamResponse:
        if (request.method, request.path) in _PUBLIC or request.path.startswith("/static/"):
            return await handler(request)
        principal = await self._principal(request)
        if principal is None:
            if request.path == "/" and request.method == "GET":
                raise web.HTTPSeeOther("/login")
            raise AuthError(401, "log in or send 'Authorization: Bearer TOKEN'")
        if request.method not in _READ_METHODS and request.path != "/api/logout":
            if not principal.may_change:
                raise AuthError(403, f"{principal.name} has the {principal.role} role, "
                                     "which may only read")
        if request.method not in _READ_METHODS and not principal.by_token:
            # Only a browser sends the cookie by itself, so only cookie requests can be forged.
            session = self.logins.get(request.cookies.get(COOKIE, ""))
            sent = request.headers.get(CSRF_HEADER, "")
            if session is None or not sent or not _same(sent, session.csrf):
                raise AuthError(403, f"missing or wrong {CSRF_HEADER} header")
        request["principal"] = principal
        return await handler(request)

    async def _principal(self, request: web.Request) -> Principal | None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = await self._run(self.accounts.token, credentials.strip())
            if token is None:
                raise AuthError(401, "invalid API token")
            return Principal(token.name, token.role, by_token=True)
        if scheme:
            raise AuthError(401, "only 'Authorization: Bearer TOKEN' is understood")
        session = self.logins.get(request.cookies.get(COOKIE, ""))
        return None if session is None else session.principal

    # -- pages, health, metrics, the API's description -------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(WEB / "index.html", headers=_PAGE_HEADERS)

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(WEB / "login.html", headers=_PAGE_HEADERS)

    async def metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.exposition.render())
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(_version()))

    # -- logging in ------------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        name, password = text_field(body, "name"), text_field(body, "password")
        source = request.remote or "?"
        now = time.time()
        self.throttle.check(source, name, now)
        admin = await self._run(self.accounts.login, name, password)
        if admin is None:
            self.throttle.failed(source, name, now)
            log.warning("failed admin login for %r from %s", name, source)
            raise AuthError(401, "wrong name or password")
        session = self.logins.open(Principal(admin.name, admin.role, by_token=False))
        response = web.json_response({"name": admin.name, "role": admin.role,
                                      "csrf": session.csrf})
        response.set_cookie(COOKIE, session.id, httponly=True, samesite="Strict",
                            secure=request.secure, path="/", max_age=int(self.logins.lifetime))
        return response

    async def logout(self, request: web.Request) -> web.Response:
        self.logins.close(request.cookies.get(COOKIE, ""))
        response = web.json_response({"message": "logged out"})
        response.del_cookie(COOKIE, path="/")
        return response

    async def me(self, request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        answer: dict[str, Any] = {"name": principal.name, "role": principal.role,
                                  "by_token": principal.by_token}
        session = self.logins.get(request.cookies.get(COOKIE, ""))
        if session is not None and not principal.by_token:
            answer["csrf"] = session.csrf
        return web.json_response(answer)

    # -- the system now --------------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        server = self.server
        users, devices, shares = await self._run(self.directory.counts)
        counts = server.counts()
        host, port = server.sip_address
        now = time.time()
        return web.json_response({
            "version": _version(),
            "started_at": server.started_at,
            "uptime": round(now - server.started_at, 1),
            "realm": server.realm,
            "sip": {"host": host, "port": port},
            "counts": {"users": users, "devices": devices, "shares": shares,
                       "online": counts.online, "active_sessions": counts.active_sessions},
            "counters": counts.counters,
        })

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            with self.hub.subscribe() as subscription:
                await response.write(b"retry: 2000\n: connected\n\n")
                while True:
                    event = await subscription.next(KEEPALIVE_SECONDS)
                    if event is None:
                        if subscription.overflowed:
                            break  # the client reconnects and reloads what it shows
                        await response.write(b": keepalive\n\n")
                        continue
                    data = json.dumps({"at": event.at, **event.data})
                    await response.write(
                        f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n".encode()
                    )
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(task)
        return response

    async def devices(self, request: web.Request) -> web.Response:
        now = time.time()
        if flag(request, "online"):
            return web.json_response([online_row(b, now) for b in self.server.online_bindings()])
        rows = await self._run(self.directory.devices)
        server = self.server
        return web.json_response([device_row(d, server.binding(d.user, d.name)) for d in rows])

    async def sessions(self, request: web.Request) -> web.Response:
        now = time.time()
        return web.json_response([session_row(r, now) for r in self.server.active_sessions()])

    async def history(self, request: web.Request) -> web.Response:
        query = history_query(request)
        records, total = await self._run(self.state.session_history, query)
        now = time.time()
        return web.json_response({"sessions": [session_row(r, now) for r in records],
                                  "total": total, "limit": query.limit, "offset": query.offset})


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("reloading the directory failed", exc_info=task.exception())
