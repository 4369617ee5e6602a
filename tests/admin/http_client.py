"""A small blocking HTTP client for tests of the admin API, on the standard library: it keeps the
cookies a server sets, follows no redirect, and can read a response as a stream of lines."""

from __future__ import annotations

import http.client
import json as jsonlib
import socket
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit


class Response:
    def __init__(self, status: int, headers: http.client.HTTPMessage, content: bytes) -> None:
        self.status_code = status
        self.headers = headers  # looked up without regard to case
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self):
        return jsonlib.loads(self.content)


class StreamedResponse:
    """A response whose body is read line by line as it arrives, until `close`."""

    def __init__(self, connection: http.client.HTTPConnection,
                 response: http.client.HTTPResponse) -> None:
        self._connection = connection
        self._response = response
        self.status_code = response.status
        self.headers = response.headers

    def iter_lines(self):
        while line := self._response.readline():
            yield line.decode().rstrip("\r\n")

    def close(self) -> None:
        # Shut the socket first: a thread blocked reading it wakes up at once.
        if self._connection.sock is not None:
            try:
                self._connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._connection.close()


class Client:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None,
                 timeout: float = 10.0) -> None:
        url = urlsplit(base_url)
        self._host, self._port = url.hostname, url.port
        self._headers = dict(headers or {})
        self._timeout = timeout
        self.cookies: dict[str, str] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass  # each request has its own connection

    def request(self, method: str, path: str, *, json=None, content: bytes | None = None,
                headers: dict[str, str] | None = None, params: dict | None = None) -> Response:
        connection, response = self._send(method, path, json, content, headers, params)
        try:
            return Response(response.status, response.headers, response.read())
        finally:
            connection.close()

    def get(self, path: str, **options) -> Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options) -> Response:
        return self.request("POST", path, **options)

    def put(self, path: str, **options) -> Response:
        return self.request("PUT", path, **options)

    def patch(self, path: str, **options) -> Response:
        return self.request("PATCH", path, **options)

    def delete(self, path: str, **options) -> Response:
        return self.request("DELETE", path, **options)

    def stream(self, method: str, path: str) -> StreamedResponse:
        connection, response = self._send(method, path, None, None, None, None)
        return StreamedResponse(connection, response)

    def _send(self, method, path, json, content, headers, params):
        sent = {**self._headers, **(headers or {})}
        if json is not None:
            content = jsonlib.dumps(json).encode()
            sent.setdefault("Content-Type", "application/json")
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if params:
            path += ("&" if "?" in path else "?") + urlencode(params)
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        connection.request(method, path, body=content, headers=sent)
        response = connection.getresponse()
        self._keep_cookies(response.headers)
        return connection, response

    def _keep_cookies(self, headers: http.client.HTTPMessage) -> None:
        for header in headers.get_all("Set-Cookie") or ():
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
