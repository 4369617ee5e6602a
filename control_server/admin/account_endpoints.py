"""The admin API's endpoints for its own accounts: admins who log in to the dashboard and API
tokens for scripts. Only the accounts module hashes; no answer carries a hash."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..store import check_user_name
from .accounts import AdminAccounts
from .auth import LoginSessions
from .replies import done_reply
from .requests import json_body, role_field, text_field
from .rows import account_row


class AccountEndpoints:
    """Part of `AdminApi`, which provides what is declared here."""

    accounts: AdminAccounts
    logins: LoginSessions
    _run: Callable[..., Any]

    # -- admin accounts and tokens ---------------------------------------------------------------

    async def admins(self, request: web.Request) -> web.Response:
        return web.json_response([account_row(a) for a in await self._run(self.accounts.admins)])

    async def add_admin(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        name = check_user_name(text_field(body, "name"))
        role = role_field(body)
        await self._run(self.accounts.add_admin, name, text_field(body, "password"), role)
        return done_reply(f"added admin {name} ({role})", 201)

    async def remove_admin(self, request: web.Request) -> web.Response:
        name = check_user_name(request.match_info["name"])
        await self._run(self.accounts.remove_admin, name)
        self.logins.close_all_of(name)
        return done_reply(f"removed admin {name}")

    async def tokens(self, request: web.Request) -> web.Response:
        return web.json_response([account_row(t) for t in await self._run(self.accounts.tokens)])

    async def add_token(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        name = check_user_name(text_field(body, "name"))
        role = role_field(body)
        token = await self._run(self.accounts.create_token, name, role)
        return web.json_response({"name": name, "role": role, "token": token}, status=201)

    async def remove_token(self, request: web.Request) -> web.Response:
        name = check_user_name(request.match_info["name"])
        await self._run(self.accounts.revoke_token, name)
        return done_reply(f"revoked token {name}")
