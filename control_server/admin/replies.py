"""The two JSON shapes the admin API answers with besides data: a change done, with what was
done, and a refusal, with its status and the reason a user reads."""

from __future__ import annotations

from aiohttp import web


def done_reply(message: str, status: int = 200) -> web.Response:
    return web.json_response({"message": message}, status=status)


def error_reply(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)
