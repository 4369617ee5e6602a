"""The OpenAPI 3.1 description of the admin HTTP API, served at `/api/openapi.json`."""

from __future__ import annotations

_JSON = "application/json"


def _ok(description: str, schema: dict | None = None, status: str = "200") -> dict:
    body = {"description": description}
    if schema is not None:
        body["content"] = {_JSON: {"schema": schema}}
    return {status: body, "default": {"$ref": "#/components/responses/Error"}}


def _body(properties: dict, required: list[str]) -> dict:
    return {"required": True, "content": {_JSON: {"schema": {
        "type": "object", "properties": properties, "required": required,
        "additionalProperties": False,
    }}}}


def _path_params(*names: str) -> list[dict]:
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in names]


def _query(name: str, kind: str, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind},
            "description": description}


def _list(ref: str) -> dict:
    return {"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}}


_MESSAGE = {"$ref": "#/components/schemas/Message"}
_STRING = {"type": "string"}
_ROLE = {"type": "string", "enum": ["admin", "viewer"]}


def openapi_document(version: str) -> dict:
    paths = {
        "/healthz": {"get": {"summary": "Liveness; the only endpoint without credentials",
                             "security": [], "responses": _ok("alive")}},
        "/metrics": {"get": {"summary": "Prometheus text exposition (needs credentials)",
                             "responses": {"200": {"description": "metrics",
                                                   "content": {"text/plain": {}}}}}},
        "/api/login": {"post": {
            "summary": "Log in to the dashboard: sets an HttpOnly session cookie, returns the "
                       "CSRF token to send as X-CSRF-Token on every change",
            "security": [],
            "requestBody": _body({"name": _STRING, "password": _STRING}, ["name", "password"]),
            "responses": _ok("logged in", {"$ref": "#/components/schemas/Me"})}},
        "/api/logout": {"post": {"summary": "End the cookie session", "responses": _ok("out")}},
        "/api/me": {"get": {"summary": "Who is asking, with the CSRF token of a cookie session",
                            "responses": _ok("me", {"$ref": "#/components/schemas/Me"})}},
        "/api/status": {"get": {"summary": "Version, uptime, counts and counters",
                                "responses": _ok("status", {"type": "object"})}},
        "/api/events": {"get": {
            "summary": "Server-sent events: device.online, device.offline, session.started, "
                       "session.progress, session.ended, security.banned; data is JSON",
            "responses": {"200": {"description": "event stream",
                                  "content": {"text/event-stream": {}}}}}},
        "/api/devices": {
            "get": {"summary": "All devices with last-seen, or with ?online=1 the online ones",
                    "parameters": [_query("online", "string", "1: online devices only")],
                    "responses": _ok("devices", {"oneOf": [_list("Device"), _list("Online")]})},
            "post": {"summary": "Add a device to a user",
                     "requestBody": _body({"user": _STRING, "device": _STRING}, ["user", "device"]),
                     "responses": _ok("added", _MESSAGE, "201")}},
        "/api/devices/{user}/{device}": {
            "patch": {"summary": "Disable or enable a device; disabling takes it offline",
                      "parameters": _path_params("user", "device"),
                      "requestBody": _body({"disabled": {"type": "boolean"}}, ["disabled"]),
                      "responses": _ok("changed", _MESSAGE)},
            "delete": {"summary": "Remove a device (and its binding)",
                       "parameters": _path_params("user", "device"),
                       "responses": _ok("removed", _MESSAGE)}},
        "/api/users": {
            "get": {"summary": "Users", "responses": _ok("users", _list("User"))},
            "post": {"summary": "Add a user",
                     "requestBody": _body({"name": _STRING, "password": _STRING}, ["name", "password"]),
                     "responses": _ok("added", _MESSAGE, "201")}},
        "/api/users/import": {"post": {
            "summary": "Add or update users in one transaction",
            "requestBody": _body({"users": {"type": "array", "items": {
                "type": "object", "properties": {"name": _STRING, "password": _STRING}}}},
                ["users"]),
            "responses": _ok("imported", _MESSAGE)}},
        "/api/users/{name}": {
            "patch": {"summary": "Disable or enable a user, or change the password",
                      "parameters": _path_params("name"),
                      "requestBody": _body({"disabled": {"type": "boolean"}, "password": _STRING}, []),
                      "responses": _ok("changed", _MESSAGE)},
            "delete": {"summary": "Remove a user with its devices and shares",
                       "parameters": _path_params("name"), "responses": _ok("removed", _MESSAGE)}},
        "/api/users/{name}/password": {"post": {
            "summary": "Reset a user's password", "parameters": _path_params("name"),
            "requestBody": _body({"password": _STRING}, ["password"]),
            "responses": _ok("changed", _MESSAGE)}},
        "/api/shares": {
            "get": {"summary": "Shares", "responses": _ok("shares", _list("Share"))},
            "post": {"summary": "Share USER/DEVICE with another user",
                     "requestBody": _body({"device": _STRING, "user": _STRING}, ["device", "user"]),
                     "responses": _ok("shared", _MESSAGE, "201")}},
        "/api/shares/{owner}/{device}/{user}": {"delete": {
            "summary": "Stop sharing", "parameters": _path_params("owner", "device", "user"),
            "responses": _ok("removed", _MESSAGE)}},
        "/api/sessions": {"get": {"summary": "Active sessions with live progress and rate",
                                  "responses": _ok("sessions", _list("Session"))}},
        "/api/sessions/history": {"get": {
            "summary": "Ended sessions, newest first, filtered and paged",
            "parameters": [
                _query("device", "string", "USER/DEVICE as caller or callee"),
                _query("user", "string", "a user as caller or callee"),
                _query("outcome", "string", "ended or failed"),
                _query("since", "number", "started at or after (Unix seconds)"),
                _query("until", "number", "started before (Unix seconds)"),
                _query("limit", "integer", "1-1000, default 100"),
                _query("offset", "integer", "rows to skip"),
            ],
            "responses": _ok("history", {"type": "object", "properties": {
                "sessions": _list("Session"), "total": {"type": "integer"},
                "limit": {"type": "integer"}, "offset": {"type": "integer"}}})}},
        "/api/admins": {
            "get": {"summary": "Admin accounts", "responses": _ok("admins", {"type": "array"})},
            "post": {"summary": "Add an admin account",
                     "requestBody": _body({"name": _STRING, "password": _STRING, "role": _ROLE},
                                          ["name", "password"]),
                     "responses": _ok("added", _MESSAGE, "201")}},
        "/api/admins/{name}": {"delete": {"summary": "Remove an admin account",
                                          "parameters": _path_params("name"),
                                          "responses": _ok("removed", _MESSAGE)}},
        "/api/tokens": {
            "get": {"summary": "API tokens (names and roles; the tokens are never kept)",
                    "responses": _ok("tokens", {"type": "array"})},
            "post": {"summary": "Create an API token; it is shown this once",
                     "requestBody": _body({"name": _STRING, "role": _ROLE}, ["name"]),
                     "responses": _ok("created", {"type": "object", "properties": {
                         "name": _STRING, "role": _ROLE, "token": _STRING}}, "201")}},
        "/api/tokens/{name}": {"delete": {"summary": "Revoke an API token",
                                          "parameters": _path_params("name"),
                                          "responses": _ok("revoked", _MESSAGE)}},
        "/api/openapi.json": {"get": {"summary": "This document",
                                      "responses": _ok("OpenAPI", {"type": "object"})}},
    }
    number, nullable = {"type": "number"}, {"type": ["number", "null"]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "sipsync admin API", "version": version,
                 "description": "Changes need the admin role; viewer reads. Cookie sessions "
                                "send X-CSRF-Token on every change; bearer tokens need not."},
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "sipsync_session"},
            },
            "responses": {"Error": {"description": "a refusal", "content": {_JSON: {"schema": {
                "$ref": "#/components/schemas/Error"}}}}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "status"], "properties": {
                    "error": _STRING, "status": {"type": "integer"}}},
                "Message": {"type": "object", "properties": {"message": _STRING}},
                "Me": {"type": "object", "properties": {"name": _STRING, "role": _ROLE,
                                                         "csrf": _STRING}},
                "User": {"type": "object", "properties": {
                    "name": _STRING, "disabled": {"type": "boolean"},
                    "devices": {"type": "integer"}, "created_at": number}},
                "Device": {"type": "object", "properties": {
                    "user": _STRING, "device": _STRING, "online": {"type": "boolean"},
                    "disabled": {"type": "boolean"}, "last_seen": nullable,
                    "created_at": number}},
                "Online": {"type": "object", "properties": {
                    "user": _STRING, "device": _STRING, "address": _STRING,
                    "transport": _STRING, "contact": _STRING, "user_agent": _STRING,
                    "registered_at": number, "last_seen": number, "expires_at": number,
                    "expires_in": number}},
                "Share": {"type": "object", "properties": {
                    "device": _STRING, "owner": _STRING, "device_name": _STRING,
                    "user": _STRING}},
                "Session": {"type": "object", "properties": {
                    "call_id": _STRING, "caller": _STRING, "callee": _STRING,
                    "data_type": {"type": ["string", "null"]},
                    "protocol": {"type": ["string", "null"]},
                    "dataset": {"type": ["string", "null"]}, "state": _STRING,
                    "status": {"type": ["integer", "null"]}, "reason": _STRING,
                    "started_at": number, "established_at": nullable, "ended_at": nullable,
                    "duration": nullable, "rate": nullable,
                    # "daemon": a live sync started it by itself; "" when it was asked for
                    "started_by": _STRING,
                    "progress": {"type": "object", "properties": {
                        "phase": _STRING, "bytes": {"type": "integer"},
                        "records": {"type": "integer"}, "bytes_total": {"type": "integer"},
                        "records_total": {"type": "integer"}, "error": _STRING}}}},
            },
        },
    }
