"""`sipsync-admin --url URL --token TOKEN`: the admin commands over the admin HTTP API, with the
standard library's HTTP client: a command makes a few blocking calls and needs no event loop."""

from __future__ import annotations

import json
from collections.abc import Iterable
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode
from urllib.request import Request, urlopen

from .backend import AdminError

# A users import goes in slices, each well below the API's body limit.
IMPORT_SLICE = 1000


class HttpBackend:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        if not token:
            raise AdminError("--url needs --token TOKEN (or SIPSYNC_TOKEN); "
                             "create one with: sipsync-admin --data-dir DIR tokens create --name NAME")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = token

    def close(self) -> None:
        pass  # every call has its own connection

    def _call(self, method: str, path: str, body: dict | None = None,
              params: dict | None = None):
        headers = {"Authorization": f"Bearer {self._token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        query = f"?{urlencode(params)}" if params else ""
        try:
            request = Request(f"{self.url}{path}{query}", data=data, headers=headers,
                              method=method)
        except ValueError as exc:
            raise AdminError(f"cannot use --url {self.url}: {exc}") from None
        try:
            with urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except HTTPError as refusal:
            status, raw = refusal.code, refusal.read()
        except (URLError, HTTPException, OSError) as exc:
            reason = exc.reason if isinstance(exc, URLError) else exc
            raise AdminError(f"cannot reach {self.url}: {reason}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if status >= 400:
            message = answer.get("error") if isinstance(answer, dict) else None
            raise AdminError(message or f"{self.url}{path}: HTTP {status}")
        return answer

    def users(self) -> list[dict]:
        return self._call("GET", "/api/users")

    def add_user(self, name: str, password: str) -> None:
        self._call("POST", "/api/users", {"name": name, "password": password})

    def import_users(self, rows: Iterable[tuple[str, str]]) -> int:
        total, batch = 0, []
        for name, password in rows:
            batch.append({"name": name, "password": password})
            if len(batch) == IMPORT_SLICE:
                total += self._call("POST", "/api/users/import", {"users": batch})["imported"]
                batch = []
        if batch or not total:
            total += self._call("POST", "/api/users/import", {"users": batch})["imported"]
        return total

    def set_password(self, name: str, password: str) -> None:
        self._call("POST", f"/api/users/{_seg(name)}/password", {"password": password})

    def set_disabled(self, name: str, disabled: bool) -> None:
        self._call("PATCH", f"/api/users/{_seg(name)}", {"disabled": disabled})

    def remove_user(self, name: str) -> None:
        self._call("DELETE", f"/api/users/{_seg(name)}")

    def devices(self) -> list[dict]:
        return self._call("GET", "/api/devices")

    def add_device(self, user: str, device: str) -> None:
        self._call("POST", "/api/devices", {"user": user, "device": device})

    def remove_device(self, user: str, device: str) -> None:
        self._call("DELETE", f"/api/devices/{_seg(user)}/{_seg(device)}")

    def set_device_disabled(self, user: str, device: str, disabled: bool) -> None:
        self._call("PATCH", f"/api/devices/{_seg(user)}/{_seg(device)}", {"disabled": disabled})

    def shares(self) -> list[dict]:
        return self._call("GET", "/api/shares")

    def add_share(self, owner: str, device: str, grantee: str) -> None:
        self._call("POST", "/api/shares", {"device": f"{owner}/{device}", "user": grantee})

    def remove_share(self, owner: str, device: str, grantee: str) -> None:
        self._call("DELETE", f"/api/shares/{_seg(owner)}/{_seg(device)}/{_seg(grantee)}")

    def online(self) -> list[dict]:
        return self._call("GET", "/api/devices", params={"online": "1"})

    def sessions(self, *, history: bool, limit: int) -> list[dict]:
        if not history:
            return self._call("GET", "/api/sessions")[:limit]
        rows: list[dict] = []
        while len(rows) < limit:
            page = self._call("GET", "/api/sessions/history",
                              params={"limit": min(1000, limit - len(rows)), "offset": len(rows)})
            rows += page["sessions"]
            if not page["sessions"] or len(rows) >= page["total"]:
                break
        return rows

    def admins(self) -> list[dict]:
        return self._call("GET", "/api/admins")

    def add_admin(self, name: str, password: str, role: str) -> None:
        self._call("POST", "/api/admins", {"name": name, "password": password, "role": role})

    def remove_admin(self, name: str) -> None:
        self._call("DELETE", f"/api/admins/{_seg(name)}")

    def tokens(self) -> list[dict]:
        return self._call("GET", "/api/tokens")

    def create_token(self, name: str, role: str) -> str:
        return self._call("POST", "/api/tokens", {"name": name, "role": role})["token"]

    def revoke_token(self, name: str) -> None:
        self._call("DELETE", f"/api/tokens/{_seg(name)}")


def _seg(text: str) -> str:
    return quote(text, safe="")
