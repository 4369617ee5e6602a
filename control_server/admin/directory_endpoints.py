"""The admin API's endpoints for the directory: users, devices and shares. Each change is
written on the API's store thread, then the server is asked to reload the directory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..store import DirectoryStore, check_device_name, check_user_name, split_device
from .replies import done_reply
from .requests import ApiError, disabled_field, json_body, text_field
from .rows import share_row, user_row


class DirectoryEndpoints:
    """Part of `AdminApi`, which provides what is declared here."""

    directory: DirectoryStore
    _run: Callable[..., Any]
    _directory_changed: Callable[[], None]

    # -- users -----------------------------------------------------------------------------------

    async def users(self, request: web.Request) -> web.Response:
        return web.json_response([user_row(u) for u in await self._run(self.directory.users)])

    async def add_user(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        name = check_user_name(text_field(body, "name"))
        await self._run(self.directory.add_user, name, text_field(body, "password"))
        self._directory_changed()
        return done_reply(f"added user {name}", 201)

    async def import_users(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        rows = body.get("users")
        if not isinstance(rows, list) or not all(
            isinstance(r, dict) and isinstance(r.get("name"), str)
            and isinstance(r.get("password"), str) for r in rows
        ):
            raise ApiError(400, "'users' must be a list of {\"name\", \"password\"} objects")
        count = await self._run(self.directory.import_users,
                                [(r["name"], r["password"]) for r in rows])
        self._directory_changed()
        return web.json_response({"message": f"imported {count} user(s)", "imported": count})

    async def change_user(self, request: web.Request) -> web.Response:
        name = check_user_name(request.match_info["name"])
        body = await json_body(request)
        unknown = set(body) - {"disabled", "password"}
        if unknown or not body:
            raise ApiError(400, "send 'disabled' (true or false) and/or 'password'")
        try:
            if "disabled" in body:
                await self._run(self.directory.set_disabled, name, disabled_field(body))
            if "password" in body:
                await self._run(self.directory.set_password, name, text_field(body, "password"))
        finally:
            self._directory_changed()  # the first half may have been done
        return done_reply(f"changed user {name}")

    async def reset_password(self, request: web.Request) -> web.Response:
        name = check_user_name(request.match_info["name"])
        body = await json_body(request)
        await self._run(self.directory.set_password, name, text_field(body, "password"))
        self._directory_changed()
        return done_reply(f"changed the password of {name}")

    async def remove_user(self, request: web.Request) -> web.Response:
        name = check_user_name(request.match_info["name"])
        await self._run(self.directory.remove_user, name)
        self._directory_changed()
        return done_reply(f"removed user {name}")

    # -- devices and shares ----------------------------------------------------------------------

    async def add_device(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        user = check_user_name(text_field(body, "user"))
        device = check_device_name(text_field(body, "device"))
        await self._run(self.directory.add_device, user, device)
        self._directory_changed()
        return done_reply(f"added device {user}/{device}", 201)

    async def remove_device(self, request: web.Request) -> web.Response:
        user = check_user_name(request.match_info["user"])
        device = check_device_name(request.match_info["device"])
        await self._run(self.directory.remove_device, user, device)
        self._directory_changed()
        return done_reply(f"removed device {user}/{device}")

    async def change_device(self, request: web.Request) -> web.Response:
        user = check_user_name(request.match_info["user"])
        device = check_device_name(request.match_info["device"])
        body = await json_body(request)
        if set(body) != {"disabled"}:
            raise ApiError(400, "send 'disabled' (true or false)")
        disabled = disabled_field(body)
        await self._run(self.directory.set_device_disabled, user, device, disabled)
        self._directory_changed()
        return done_reply(f"{'disabled' if disabled else 'enabled'} device {user}/{device}")

    async def shares(self, request: web.Request) -> web.Response:
        return web.json_response([share_row(s) for s in await self._run(self.directory.shares)])

    async def add_share(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        owner, device = split_device(text_field(body, "device"))
        grantee = check_user_name(text_field(body, "user"))
        await self._run(self.directory.add_share, owner, device, grantee)
        self._directory_changed()
        return done_reply(f"shared {owner}/{device} with {grantee}", 201)

    async def remove_share(self, request: web.Request) -> web.Response:
        owner = check_user_name(request.match_info["owner"])
        device = check_device_name(request.match_info["device"])
        grantee = check_user_name(request.match_info["user"])
        await self._run(self.directory.remove_share, owner, device, grantee)
        self._directory_changed()
        return done_reply(f"stopped sharing {owner}/{device} with {grantee}")
