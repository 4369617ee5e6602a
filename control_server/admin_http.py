"""`sipsync-admin --url URL --token TOKEN`: the admin commands over the admin HTTP API."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

import httpx

from .admin_backend import AdminError

# A users import goes in slices, each well below the API's body limit.
IMPORT_SLICE = 1000


class HttpBackend:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        if not token:
            raise AdminError("--url needs --token TOKEN (or SIPSYNC_TOKEN); "
                             "create one with: sipsync-admin --data-dir DIR tokens create --name NAME")
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout,
                                    headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, body: dict | None = None,
              params: dict | None = None):
        try:
            response = self._client.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:
            raise AdminError(f"cannot reach {self.url}: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_error:
            message = answer.get("error") if isinstance(answer, dict) else None
            raise AdminError(message or f"{self.url}{path}: HTTP {response.status_code}")
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
