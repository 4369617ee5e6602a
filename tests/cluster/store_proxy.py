"""A TCP relay between one server and PostgreSQL that a test can cut, as a network cut would:
the connections through it are closed and new ones refused until it is restored. The fault is
injected, not hoped for; the server and PostgreSQL on either side are the real ones."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class StoreProxy:
    def __init__(self, store_url: str) -> None:
        parts = urlsplit(store_url)
        self._store_url = store_url
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self._stopped = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        """The store's URL through this relay."""
        parts = urlsplit(self._store_url)
        credentials = parts.netloc.rpartition("@")[0]
        at = f"{credentials}@" if credentials else ""
        return urlunsplit(parts._replace(netloc=f"{at}127.0.0.1:{self.port}"))

    def start(self) -> StoreProxy:
        self._acceptor.start()
        return self

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def stop(self) -> None:
        self._stopped = True
        self.cut()
        _close(self._listener)
        self._acceptor.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._cut:
                    _close(client)
                    continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(target)
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
