"""The admin HTTP API against a running server: every endpoint, who may call it, and the status
and message that bad input gets."""

from __future__ import annotations

import pytest

from ..waiting import wait_until
from .conftest import ADMIN_PASSWORD, VIEWER_PASSWORD
from .traffic import sip_register

READS = ["/api/status", "/api/devices", "/api/devices?online=1", "/api/users", "/api/shares",
         "/api/sessions", "/api/sessions/history", "/api/admins", "/api/tokens", "/api/me",
         "/api/openapi.json", "/metrics"]


def test_healthz_answers_without_credentials(admin_server):
    with admin_server.client() as http:
        response = http.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", READS + ["/api/events", "/api/nosuch"])
def test_everything_else_refuses_a_request_without_credentials(admin_server, path):
    with admin_server.client() as http:
        response = http.get(path)
    assert response.status_code == 401
    assert response.json()["error"] == "log in or send 'Authorization: Bearer TOKEN'"
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("path", READS)
def test_a_wrong_token_is_refused_with_401(admin_server, path):
    with admin_server.client("ssk_not-a-token") as http:
        response = http.get(path)
    assert response.status_code == 401 and response.json()["error"] == "invalid API token"


def test_basic_auth_is_not_understood(admin_server):
    with admin_server.client() as http:
        response = http.get("/api/status", headers={"Authorization": "Basic cm9vdDpwdw=="})
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"]


@pytest.mark.parametrize("path", READS)
def test_a_viewer_token_reads_everything(admin_server, path):
    with admin_server.client(admin_server.viewer_token) as http:
        assert http.get(path).status_code == 200


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/users", {"name": "v1", "password": "pw"}),
    ("PATCH", "/api/users/v1", {"disabled": True}),
    ("POST", "/api/users/v1/password", {"password": "x"}),
    ("DELETE", "/api/users/v1", None),
    ("POST", "/api/users/import", {"users": []}),
    ("POST", "/api/devices", {"user": "v1", "device": "d"}),
    ("PATCH", "/api/devices/v1/d", {"disabled": True}),
    ("DELETE", "/api/devices/v1/d", None),
    ("POST", "/api/shares", {"device": "v1/d", "user": "v2"}),
    ("DELETE", "/api/shares/v1/d/v2", None),
    ("POST", "/api/admins", {"name": "x", "password": "y"}),
    ("DELETE", "/api/admins/root", None),
    ("POST", "/api/tokens", {"name": "x"}),
    ("DELETE", "/api/tokens/ci-admin", None),
])
def test_a_viewer_may_not_change_anything(admin_server, method, path, body):
    with admin_server.client(admin_server.viewer_token) as http:
        response = http.request(method, path, json=body)
    assert response.status_code == 403
    assert response.json()["error"] == "ci-viewer has the viewer role, which may only read"


def test_status_tells_version_uptime_and_counts(admin_server):
    with admin_server.client(admin_server.admin_token) as http:
        status = http.get("/api/status").json()
    assert status["version"] == "0.1.0" and status["uptime"] >= 0
    assert status["sip"]["port"] == admin_server.sip_port
    assert set(status["counts"]) == {"users", "devices", "shares", "online", "active_sessions"}


def test_a_user_is_created_changed_disabled_and_deleted(admin_server):
    with admin_server.client(admin_server.admin_token) as http:
        created = http.post("/api/users", json={"name": "uma", "password": "pw-1"})
        assert created.status_code == 201 and created.json() == {"message": "added user uma"}
        assert http.post("/api/users", json={"name": "uma", "password": "pw"}).json() == {
            "error": "user 'uma' exists", "status": 409}
        assert http.patch("/api/users/uma", json={"disabled": True}).status_code == 200
        assert [u["disabled"] for u in http.get("/api/users").json() if u["name"] == "uma"] == [True]
        reset = http.post("/api/users/uma/password", json={"password": "pw-2"})
        assert reset.json() == {"message": "changed the password of uma"}
        assert http.patch("/api/users/uma", json={"disabled": False, "password": "pw-3"}).status_code == 200
        assert http.delete("/api/users/uma").json() == {"message": "removed user uma"}
        assert "uma" not in [u["name"] for u in http.get("/api/users").json()]


def test_users_are_imported_in_one_request(admin_server):
    rows = [{"name": f"imp{i}", "password": f"pw{i}"} for i in range(50)]
    with admin_server.client(admin_server.admin_token) as http:
        answer = http.post("/api/users/import", json={"users": rows})
        assert answer.status_code == 200 and answer.json()["imported"] == 50
        names = {u["name"] for u in http.get("/api/users").json()}
    assert {r["name"] for r in rows} <= names


def test_devices_and_shares_are_added_listed_and_removed(admin_server):
    with admin_server.client(admin_server.admin_token) as http:
        http.post("/api/users", json={"name": "dora", "password": "pw"})
        http.post("/api/users", json={"name": "finn", "password": "pw"})
        assert http.post("/api/devices", json={"user": "dora", "device": "tab"}).status_code == 201
        device = [d for d in http.get("/api/devices").json() if d["user"] == "dora"]
        assert device == [{"user": "dora", "device": "tab", "online": False, "disabled": False,
                           "last_seen": None, "created_at": device[0]["created_at"]}]
        shared = http.post("/api/shares", json={"device": "dora/tab", "user": "finn"})
        assert shared.status_code == 201 and shared.json()["message"] == "shared dora/tab with finn"
        assert {"device": "dora/tab", "owner": "dora", "device_name": "tab", "user": "finn"} in \
            http.get("/api/shares").json()
        assert http.delete("/api/shares/dora/tab/finn").status_code == 200
        assert http.delete("/api/devices/dora/tab").json() == {"message": "removed device dora/tab"}
        assert http.get("/api/devices?online=1").json() == []


@pytest.mark.parametrize("method, path, body, message", [
    ("PATCH", "/api/users/nobody", {"disabled": True}, "no user 'nobody'"),
    ("POST", "/api/users/nobody/password", {"password": "x"}, "no user 'nobody'"),
    ("DELETE", "/api/users/nobody", None, "no user 'nobody'"),
    ("POST", "/api/devices", {"user": "nobody", "device": "d"}, "no user 'nobody'"),
    ("DELETE", "/api/devices/nobody/d", None, "no device nobody/d"),
    ("PATCH", "/api/devices/nobody/d", {"disabled": True}, "no device nobody/d"),
    ("DELETE", "/api/shares/nobody/d/x", None, "nobody/d is not shared with x"),
    ("POST", "/api/shares", {"device": "nobody/d", "user": "x"}, "no device nobody/d or no user 'x'"),
    ("DELETE", "/api/admins/nobody", None, "no admin 'nobody'"),
    ("DELETE", "/api/tokens/nobody", None, "no token 'nobody'"),
])
def test_unknown_names_get_404_with_what_is_missing(admin_server, method, path, body, message):
    with admin_server.client(admin_server.admin_token) as http:
        response = http.request(method, path, json=body)
    assert response.status_code == 404
    assert response.json() == {"error": message, "status": 404}


@pytest.mark.parametrize("method, path, body, message", [
    ("POST", "/api/users", {"name": "bad name", "password": "x"},
     "invalid user name 'bad name': letters, digits, '._+-', at most 64"),
    ("POST", "/api/users", {"name": "x" * 65, "password": "x"}, "invalid user name"),
    ("POST", "/api/users", {"name": "ok"}, "'password' is required and must be a non-empty string"),
    ("POST", "/api/devices", {"user": "ok", "device": "a/b"}, "invalid device name 'a/b'"),
    ("POST", "/api/shares", {"device": "nodevice", "user": "x"}, "expected USER/DEVICE"),
    ("PATCH", "/api/users/ok", {"disabled": "yes"}, "'disabled' must be true or false"),
    ("PATCH", "/api/users/ok", {"colour": "red"}, "send 'disabled' (true or false)"),
    ("PATCH", "/api/devices/ok/d", {"disabled": "yes"}, "'disabled' must be true or false"),
    ("PATCH", "/api/devices/ok/d", {}, "send 'disabled' (true or false)"),
    ("PATCH", "/api/devices/ok/d", {"disabled": True, "colour": "red"}, "send 'disabled'"),
    ("PATCH", "/api/devices/ok/-d", {"disabled": True}, "invalid device name '-d'"),
    ("DELETE", "/api/users/-x", None, "invalid user name '-x'"),
    ("POST", "/api/users/import", {"users": [{"name": "a"}]}, "'users' must be a list"),
    ("POST", "/api/users/import", {"users": [{"name": "a b", "password": "x"}]},
     "row 1: invalid user name 'a b'"),
    ("POST", "/api/tokens", {"name": "t", "role": "root"}, "'role' must be one of: admin, viewer"),
    ("POST", "/api/users", [1, 2], "the body must be a JSON object"),
    ("GET", "/api/sessions/history?outcome=won", None, "'outcome' must be 'ended' or 'failed'"),
    ("GET", "/api/sessions/history?limit=0", None, "'limit' must be between 1 and 1000"),
    ("GET", "/api/sessions/history?since=yesterday", None, "'since' must be a number"),
    ("GET", "/api/sessions/history?device=nodevice", None, "expected USER/DEVICE"),
])
def test_bad_input_gets_400_naming_what_is_wrong(admin_server, method, path, body, message):
    with admin_server.client(admin_server.admin_token) as http:
        response = http.request(method, path, json=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


def test_a_body_that_is_not_json_gets_400(admin_server):
    with admin_server.client(admin_server.admin_token) as http:
        response = http.post("/api/users", content=b"{name", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"] == "the body is not valid JSON"


def test_a_body_too_large_gets_413(admin_server):
    with admin_server.client(admin_server.admin_token) as http:
        response = http.post("/api/users", json={"name": "big", "password": "x" * 300_000})
    assert response.status_code == 413
    assert response.json()["error"] == "request body too large: at most 262144 bytes"


def test_unknown_endpoints_and_methods_answer_in_json(admin_server):
    with admin_server.client(admin_server.admin_token) as http:
        missing = http.get("/api/nosuch")
        wrong = http.put("/api/users")
    assert missing.status_code == 404 and missing.json()["error"] == "no such endpoint: /api/nosuch"
    assert wrong.status_code == 405 and wrong.json()["error"] == "PUT is not allowed on /api/users"


def test_tokens_are_created_shown_once_and_revoked(admin_server):
    with admin_server.client(admin_server.admin_token) as http:
        created = http.post("/api/tokens", json={"name": "script", "role": "viewer"}).json()
        assert created["token"].startswith("ssk_") and created["role"] == "viewer"
        listed = http.get("/api/tokens").json()
        assert {"script", "ci-admin"} <= {t["name"] for t in listed}
        assert all("token" not in t and "token_hash" not in t for t in listed)
    with admin_server.client(created["token"]) as script:
        assert script.get("/api/me").json() == {"name": "script", "role": "viewer", "by_token": True}
    with admin_server.client(admin_server.admin_token) as http:
        assert http.delete("/api/tokens/script").status_code == 200
    with admin_server.client(created["token"]) as script:
        assert script.get("/api/me").status_code == 401


def test_admin_accounts_are_added_listed_and_removed(admin_server):
    with admin_server.client(admin_server.admin_token) as http:
        assert http.post("/api/admins", json={"name": "ops", "password": "ops-pw",
                                              "role": "viewer"}).status_code == 201
        admins = http.get("/api/admins").json()
        assert {"root": "admin", "watcher": "viewer", "ops": "viewer"}.items() <= \
            {a["name"]: a["role"] for a in admins}.items()
        assert all("password_hash" not in a for a in admins)
        assert http.delete("/api/admins/ops").status_code == 200


def login(http, name: str, password: str):
    return http.post("/api/login", json={"name": name, "password": password})


def test_login_sets_an_httponly_strict_cookie_and_returns_a_csrf_token(admin_server):
    with admin_server.client() as http:
        response = login(http, "root", ADMIN_PASSWORD)
        assert response.status_code == 200
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # served over plain HTTP on loopback
        assert response.json()["role"] == "admin" and len(response.json()["csrf"]) > 20
        me = http.get("/api/me").json()
        assert me["name"] == "root" and me["csrf"] == response.json()["csrf"]


def test_a_change_from_a_cookie_session_needs_the_csrf_token(admin_server):
    with admin_server.client() as http:
        csrf = login(http, "root", ADMIN_PASSWORD).json()["csrf"]
        forged = http.post("/api/users", json={"name": "csrf1", "password": "pw"})
        assert forged.status_code == 403
        assert forged.json()["error"] == "missing or wrong X-CSRF-Token header"
        wrong = http.post("/api/users", json={"name": "csrf1", "password": "pw"},
                          headers={"X-CSRF-Token": "guess"})
        assert wrong.status_code == 403
        right = http.post("/api/users", json={"name": "csrf1", "password": "pw"},
                          headers={"X-CSRF-Token": csrf})
        assert right.status_code == 201


def test_a_device_is_disabled_and_enabled_again_from_a_cookie_session_with_csrf(admin_server):
    with admin_server.client(admin_server.admin_token) as http:
        http.post("/api/users", json={"name": "dina", "password": "pw"})
        http.post("/api/devices", json={"user": "dina", "device": "pad"})
    with admin_server.client() as http:
        csrf = login(http, "root", ADMIN_PASSWORD).json()["csrf"]
        forged = http.patch("/api/devices/dina/pad", json={"disabled": True})
        assert forged.status_code == 403
        disabled = http.patch("/api/devices/dina/pad", json={"disabled": True},
                              headers={"X-CSRF-Token": csrf})
        assert disabled.json() == {"message": "disabled device dina/pad"}
        assert device_flags(http, "dina") == {"pad": True}
        enabled = http.patch("/api/devices/dina/pad", json={"disabled": False},
                             headers={"X-CSRF-Token": csrf})
        assert enabled.json() == {"message": "enabled device dina/pad"}
        assert device_flags(http, "dina") == {"pad": False}


def test_disabling_a_device_takes_it_offline_and_its_register_gets_403(admin_server):
    port = admin_server.sip_port
    assert sip_register(port, "dv", "dv-pw", "pad").status_code == 200
    with admin_server.client(admin_server.admin_token) as http:
        assert ("dv", "pad") in online(http)
        # A device made by its first REGISTER reaches the store with the next write-behind.
        wait_until(lambda: "pad" in device_flags(http, "dv"), what="dv/pad in the store")
        assert http.patch("/api/devices/dv/pad", json={"disabled": True}).status_code == 200
        wait_until(lambda: ("dv", "pad") not in online(http), what="dv/pad offline")
        wait_until(lambda: "dv/pad disabled by an admin" in admin_server.logs(),
                   what="the server logging dv/pad disabled")
        refused = sip_register(port, "dv", "dv-pw", "pad")
        assert (refused.status_code, refused.reason_phrase) == (403, "Device disabled")
        assert sip_register(port, "dv", "dv-pw", "phone").status_code == 200
        assert http.patch("/api/devices/dv/pad", json={"disabled": False}).status_code == 200
        # The server picks the change up within a second.
        wait_until(lambda: sip_register(port, "dv", "dv-pw", "pad").status_code == 200,
                   what="dv/pad registering again", interval=0.2)


def device_flags(http, user: str) -> dict[str, bool]:
    return {d["device"]: d["disabled"] for d in http.get("/api/devices").json() if d["user"] == user}


def online(http) -> set[tuple[str, str]]:
    return {(d["user"], d["device"]) for d in http.get("/api/devices?online=1").json()}


def test_a_viewer_logged_in_may_read_but_not_change(admin_server):
    with admin_server.client() as http:
        csrf = login(http, "watcher", VIEWER_PASSWORD).json()["csrf"]
        assert http.get("/api/users").status_code == 200
        response = http.post("/api/users", json={"name": "v9", "password": "pw"},
                             headers={"X-CSRF-Token": csrf})
    assert response.status_code == 403 and "viewer role" in response.json()["error"]


def test_logout_ends_the_cookie_session(admin_server):
    with admin_server.client() as http:
        csrf = login(http, "root", ADMIN_PASSWORD).json()["csrf"]
        assert http.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert http.get("/api/me").status_code == 401


@pytest.mark.parametrize("name, password", [("root", "wrong"), ("nobody", "pw")])
def test_a_wrong_login_gets_401_without_saying_which_part_was_wrong(admin_server, name, password):
    with admin_server.client() as http:
        response = login(http, name, password)
    assert response.status_code == 401 and response.json()["error"] == "wrong name or password"
    assert "Set-Cookie" not in response.headers


def test_repeated_failed_logins_are_throttled(fresh_admin_server):
    with fresh_admin_server.client() as http:
        codes = [login(http, "root", f"guess{i}").status_code for i in range(11)]
        assert codes == [401] * 10 + [429]
        # Even the right password waits now: guessing must not pay.
        assert login(http, "root", ADMIN_PASSWORD).status_code == 429


def test_the_dashboard_sends_a_stranger_to_the_login_page(admin_server):
    with admin_server.client() as http:
        root = http.get("/")
        page = http.get("/login")
        script = http.get("/static/app.js")
    assert root.status_code == 303 and root.headers["Location"] == "/login"
    assert page.status_code == 200 and "login-form" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert script.status_code == 200 and "EventSource" in script.text


def test_the_openapi_document_describes_every_route(admin_server):
    with admin_server.client(admin_server.admin_token) as http:
        document = http.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    described = {(path, method) for path, item in document["paths"].items() for method in item}
    from control_server.admin.api import AdminApi

    # The routes as the app registers them, without starting one.
    class _Server:
        counts = metrics = None

    api = AdminApi(_Server(), admin_server.data_dir)  # type: ignore[arg-type]
    try:
        routes = {(r.resource.canonical, r.method.lower()) for r in api.app.router.routes()
                  if r.method != "HEAD" and r.resource.canonical.startswith(("/api", "/metrics",
                                                                             "/healthz"))}
    finally:
        api.close()
    assert routes <= described, routes - described
