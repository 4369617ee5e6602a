"""Who makes a request of the admin API: the principal behind a cookie or a token, server-side
login sessions with their CSRF token, and a throttle on failed logins. Passwords and tokens are
hashed and checked in `accounts`."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

SESSION_LIFETIME = 12 * 3600.0
THROTTLE_WINDOW = 300.0
THROTTLE_LIMIT = 10  # failures per source, and per name, within the window


class AuthError(Exception):
    """A request without valid credentials, or with too few rights; `status` is the HTTP one."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request: an admin logged in with a cookie, or a script with a token."""

    name: str
    role: str
    by_token: bool

    @property
    def may_change(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class LoginSession:
    id: str
    principal: Principal
    csrf: str
    expires_at: float


class LoginSessions:
    """Server-side sessions for the dashboard: the cookie carries only a random id."""

    def __init__(self, lifetime: float = SESSION_LIFETIME) -> None:
        self.lifetime = lifetime
        self._sessions: dict[str, LoginSession] = {}

    def open(self, principal: Principal, now: float | None = None) -> LoginSession:
        now = time.time() if now is None else now
        self._forget_expired(now)
        session = LoginSession(secrets.token_urlsafe(32), principal, secrets.token_urlsafe(32),
                               now + self.lifetime)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str, now: float | None = None) -> LoginSession | None:
        session = self._sessions.get(session_id)
        now = time.time() if now is None else now
        if session is None or session.expires_at <= now:
            return None
        return session

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def close_all_of(self, name: str) -> None:
        for key in [k for k, s in self._sessions.items() if s.principal.name == name]:
            del self._sessions[key]

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]


class LoginThrottle:
    """Failed logins counted per source address and per name; over the limit, wait."""

    def __init__(self, limit: int = THROTTLE_LIMIT, window: float = THROTTLE_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[float]] = {}

    def check(self, source: str, name: str, now: float) -> None:
        for key in (f"ip:{source}", f"name:{name}"):
            recent = [t for t in self._failures.get(key, ()) if now - t < self.window]
            if recent:
                self._failures[key] = recent
            else:
                self._failures.pop(key, None)
            if len(recent) >= self.limit:
                raise AuthError(429, "too many failed logins; try again in a few minutes")

    def failed(self, source: str, name: str, now: float) -> None:
        for key in (f"ip:{source}", f"name:{name}"):
            self._failures.setdefault(key, []).append(now)
