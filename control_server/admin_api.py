"""The admin HTTP API, its event stream, `/metrics` and the dashboard, served by aiohttp in the
control server's own event loop. Store work runs on a thread of its own, never on the loop."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .admin_auth import (
    AuthError,
    LoginSessions,
    LoginThrottle,
    Principal,
    check_password,
    hash_password,
    hash_token,
    new_token,
)
from .admin_openapi import openapi_document
from .admin_rows import device_row, online_row, session_row, share_row, user_row
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .store import (
    ROLES,
    HistoryQuery,
    NameTaken,
    Store,
    StoreError,
    UnknownName,
    check_device_name,
    check_user_name,
    split_device,
)

if TYPE_CHECKING:
    from .server import ControlServer

log = logging.getLogger("sipsync.admin")

WEB = Path(__file__).parent / "web"
COOKIE = "sipsync_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_BODY = 256 * 1024  # a users import is sent in slices below this
KEEPALIVE_SECONDS = 15.0
HISTORY_LIMIT = 1000
_PUBLIC = {("GET", "/healthz"), ("GET", "/login"), ("POST", "/api/login")}
_READ_METHODS = {"GET", "HEAD", "OPTIONS"}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class ApiError(Exception):
    """A refusal of the API with its HTTP status and the message a user reads."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _version() -> str:
    try:
        return metadata.version("sipsync")
    except metadata.PackageNotFoundError:
        return "unknown"


class AdminApi:
    def __init__(self, server: ControlServer) -> None:
        self.server = server
        # A connection of our own: the server's is busy with its write-behind thread.
        self.store = Store(server.config.data_dir)
        self._db = ThreadPoolExecutor(1, thread_name_prefix="admin-db")
        self.logins = LoginSessions()
        self.throttle = LoginThrottle()
        self.port = 0
        self._streams: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
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
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("admin HTTP API on http://%s:%d/", host if ":" not in host else f"[{host}]",
                 self.port)

    async def stop(self) -> None:
        for task in list(self._streams):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        self._db.shutdown(wait=True)
        self.store.close()

    async def _run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    # -- middleware: errors as JSON, then who is asking ------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except (ApiError, AuthError) as exc:
            return _error(exc.status, exc.message,
                          {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)
        except UnknownName as exc:
            return _error(404, str(exc))
        except NameTaken as exc:
            return _error(409, str(exc))
        except StoreError as exc:
            return _error(400, str(exc))
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
            return _error(exc.status, message or exc.reason)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("admin API failed on %s %s", request.method, request.path)
            return _error(500, "internal error; the server log has the details")

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
            token = await self._run(self.store.token, hash_token(credentials.strip()))
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
        response = web.Response(body=self.server.metrics.render())
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(_version()))

    # -- logging in ------------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.Response:
        body = await _body(request)
        name, password = _text(body, "name"), _text(body, "password")
        source = request.remote or "?"
        now = time.time()
        self.throttle.check(source, name, now)
        admin = await self._run(self.store.admin, name)
        # An unknown name costs the same hash as a wrong password, so timing tells nothing.
        stored = admin.password_hash if admin else _DUMMY_HASH
        if not await self._run(check_password, password, stored) or admin is None:
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
        users, devices, shares = await self._run(_counts, self.store)
        now = time.time()
        return web.json_response({
            "version": _version(),
            "started_at": server.started_at,
            "uptime": round(now - server.started_at, 1),
            "realm": server.realm,
            "sip": {"host": server.config.sip_host, "port": server.port},
            "counts": {"users": users, "devices": devices, "shares": shares,
                       "online": len(server.location),
                       "active_sessions": len(server.sessions.active)},
            "counters": dict(server.counters),
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
            with self.server.events.subscribe() as subscription:
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
        if _flag(request, "online"):
            bindings = sorted(self.server.location.all(), key=lambda b: b.key)
            return web.json_response([online_row(b, now) for b in bindings])
        rows = await self._run(self.store.devices)
        location = self.server.location
        return web.json_response([device_row(d, location.get(d.user, d.name)) for d in rows])

    async def sessions(self, request: web.Request) -> web.Response:
        now = time.time()
        active = sorted(self.server.sessions.active.values(), key=lambda s: s.started_at)
        return web.json_response([session_row(s.record(), now) for s in active])

    async def history(self, request: web.Request) -> web.Response:
        query = _history_query(request)
        records, total = await self._run(self.store.session_history, query)
        now = time.time()
        return web.json_response({"sessions": [session_row(r, now) for r in records],
                                  "total": total, "limit": query.limit, "offset": query.offset})

    # -- users -----------------------------------------------------------------------------------

    async def users(self, request: web.Request) -> web.Response:
        return web.json_response([user_row(u) for u in await self._run(self.store.users)])

    async def add_user(self, request: web.Request) -> web.Response:
        body = await _body(request)
        name = check_user_name(_text(body, "name"))
        await self._run(self.store.add_user, name, _text(body, "password"))
        return _done(f"added user {name}", 201)

    async def import_users(self, request: web.Request) -> web.Response:
        body = await _body(request)
        rows = body.get("users")
        if not isinstance(rows, list) or not all(
            isinstance(r, dict) and isinstance(r.get("name"), str)
            and isinstance(r.get("password"), str) for r in rows
        ):
            raise ApiError(400, "'users' must be a list of {\"name\", \"password\"} objects")
        count = await self._run(self.store.import_users,
                                [(r["name"], r["password"]) for r in rows])
        return web.json_response({"message": f"imported {count} user(s)", "imported": count})

    async def change_user(self, request: web.Request) -> web.Response:
        name = check_user_name(request.match_info["name"])
        body = await _body(request)
        unknown = set(body) - {"disabled", "password"}
        if unknown or not body:
            raise ApiError(400, "send 'disabled' (true or false) and/or 'password'")
        if "disabled" in body:
            if not isinstance(body["disabled"], bool):
                raise ApiError(400, "'disabled' must be true or false")
            await self._run(self.store.set_disabled, name, body["disabled"])
        if "password" in body:
            await self._run(self.store.set_password, name, _text(body, "password"))
        return _done(f"changed user {name}")

    async def reset_password(self, request: web.Request) -> web.Response:
        name = check_user_name(request.match_info["name"])
        body = await _body(request)
        await self._run(self.store.set_password, name, _text(body, "password"))
        return _done(f"changed the password of {name}")

    async def remove_user(self, request: web.Request) -> web.Response:
        name = check_user_name(request.match_info["name"])
        await self._run(self.store.remove_user, name)
        return _done(f"removed user {name}")

    # -- devices and shares ----------------------------------------------------------------------

    async def add_device(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user = check_user_name(_text(body, "user"))
        device = check_device_name(_text(body, "device"))
        await self._run(self.store.add_device, user, device)
        return _done(f"added device {user}/{device}", 201)

    async def remove_device(self, request: web.Request) -> web.Response:
        user = check_user_name(request.match_info["user"])
        device = check_device_name(request.match_info["device"])
        await self._run(self.store.remove_device, user, device)
        return _done(f"removed device {user}/{device}")

    async def change_device(self, request: web.Request) -> web.Response:
        user = check_user_name(request.match_info["user"])
        device = check_device_name(request.match_info["device"])
        body = await _body(request)
        if set(body) != {"disabled"}:
            raise ApiError(400, "send 'disabled' (true or false)")
        disabled = body["disabled"]
        if not isinstance(disabled, bool):
            raise ApiError(400, "'disabled' must be true or false")
        await self._run(self.store.set_device_disabled, user, device, disabled)
        return _done(f"{'disabled' if disabled else 'enabled'} device {user}/{device}")

    async def shares(self, request: web.Request) -> web.Response:
        return web.json_response([share_row(s) for s in await self._run(self.store.shares)])

    async def add_share(self, request: web.Request) -> web.Response:
        body = await _body(request)
        owner, device = split_device(_text(body, "device"))
        grantee = check_user_name(_text(body, "user"))
        await self._run(self.store.add_share, owner, device, grantee)
        return _done(f"shared {owner}/{device} with {grantee}", 201)

    async def remove_share(self, request: web.Request) -> web.Response:
        owner = check_user_name(request.match_info["owner"])
        device = check_device_name(request.match_info["device"])
        grantee = check_user_name(request.match_info["user"])
        await self._run(self.store.remove_share, owner, device, grantee)
        return _done(f"stopped sharing {owner}/{device} with {grantee}")

    # -- admin accounts and tokens ---------------------------------------------------------------

    async def admins(self, request: web.Request) -> web.Response:
        rows = await self._run(self.store.admins)
        return web.json_response([{"name": a.name, "role": a.role, "created_at": a.created_at}
                                  for a in rows])

    async def add_admin(self, request: web.Request) -> web.Response:
        body = await _body(request)
        name = check_user_name(_text(body, "name"))
        role = _role(body)
        password_hash = await self._run(hash_password, _text(body, "password"))
        await self._run(self.store.add_admin, name, password_hash, role)
        return _done(f"added admin {name} ({role})", 201)

    async def remove_admin(self, request: web.Request) -> web.Response:
        name = check_user_name(request.match_info["name"])
        await self._run(self.store.remove_admin, name)
        self.logins.close_all_of(name)
        return _done(f"removed admin {name}")

    async def tokens(self, request: web.Request) -> web.Response:
        rows = await self._run(self.store.tokens)
        return web.json_response([{"name": t.name, "role": t.role, "created_at": t.created_at}
                                  for t in rows])

    async def add_token(self, request: web.Request) -> web.Response:
        body = await _body(request)
        name = check_user_name(_text(body, "name"))
        role = _role(body)
        token = new_token()
        await self._run(self.store.add_token, name, hash_token(token), role)
        return web.json_response({"name": name, "role": role, "token": token}, status=201)

    async def remove_token(self, request: web.Request) -> web.Response:
        name = check_user_name(request.match_info["name"])
        await self._run(self.store.remove_token, name)
        return _done(f"revoked token {name}")


# A valid hash of nothing anyone knows: checked against when the admin name is unknown.
_DUMMY_HASH = hash_password("no admin has this password")


def _counts(store: Store) -> tuple[int, int, int]:
    db = store.db
    return tuple(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
                 for t in ("users", "devices", "shares"))


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


def _done(message: str, status: int = 200) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


async def _body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _text(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"'{field}' is required and must be a non-empty string")
    return value


def _role(body: dict) -> str:
    role = body.get("role", "admin")
    if role not in ROLES:
        raise ApiError(400, f"'role' must be one of: {', '.join(ROLES)}")
    return role


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def _history_query(request: web.Request) -> HistoryQuery:
    q = request.query
    device = q.get("device") or None
    if device is not None:
        device = "/".join(split_device(device))
    user = q.get("user") or None
    if user is not None:
        check_user_name(user)
    outcome = q.get("outcome") or None
    if outcome not in (None, "ended", "failed"):
        raise ApiError(400, "'outcome' must be 'ended' or 'failed'")
    return HistoryQuery(
        device=device, user=user, outcome=outcome,
        since=_number(q, "since", float, 0), until=_number(q, "until", float, 0),
        limit=_number(q, "limit", int, 1, HISTORY_LIMIT) or 100,
        offset=_number(q, "offset", int, 0) or 0,
    )


def _number(query, name: str, kind: type, low: float, high: float | None = None):
    raw = query.get(name)
    if raw in (None, ""):
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise ApiError(400, f"'{name}' must be a number, not {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(400, f"'{name}' must be {bound}")
    return value
