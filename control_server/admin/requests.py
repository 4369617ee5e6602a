"""Reading what a request to the admin API asks for: its JSON body, its fields and its query,
checked once at the edge; anything wrong is an `ApiError` with the status and the message a user
reads."""

from __future__ import annotations

import json

from aiohttp import web

from ..store import ROLES, HistoryQuery, check_user_name, split_device

HISTORY_LIMIT = 1000


class ApiError(Exception):
    """A refusal of the API with its HTTP status and the message a user reads."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def json_body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def text_field(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"'{field}' is required and must be a non-empty string")
    return value


def role_field(body: dict) -> str:
    role = body.get("role", "admin")
    if role not in ROLES:
        raise ApiError(400, f"'role' must be one of: {', '.join(ROLES)}")
    return role


def disabled_field(body: dict) -> bool:
    disabled = body["disabled"]
    if not isinstance(disabled, bool):
        raise ApiError(400, "'disabled' must be true or false")
    return disabled


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def history_query(request: web.Request) -> HistoryQuery:
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
