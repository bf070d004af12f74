"""A tiny reverse proxy for browser tests: it adds headers to each connection's first request.

It stands in for a login proxy in front of the dashboard (for example nginx after oauth2-proxy),
configured well (``replace``: drop the client's copies of the headers it sets) or badly
(``append``: keep them, so a forged header arrives twice). The browser's websocket to
``/_stcore/stream`` is a connection of its own, and its handshake is where Streamlit reads the
headers, so rewriting the first request of each connection covers the identity check.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

HEAD_LIMIT = 65_536


@dataclass
class HeaderRelay:
    """Listens on a loopback port and forwards to ``upstream_port`` with ``headers`` added."""

    upstream_port: int
    headers: Sequence[tuple[str, str]]
    mode: str = "replace"
    """``replace`` drops client-sent headers of the same names first; ``append`` keeps them."""
    port: int = 0
    _listener: socket.socket = field(init=False, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)

    def start(self) -> HeaderRelay:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.ExitStack() as stack:
            stack.enter_context(client)
            upstream = stack.enter_context(
                socket.create_connection(("127.0.0.1", self.upstream_port))
            )
            head = b""
            while b"\r\n\r\n" not in head and len(head) < HEAD_LIMIT:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            upstream.sendall(self._rewrite(head) + b"\r\n\r\n" + rest)
            back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join(timeout=5)

    def _rewrite(self, head: bytes) -> bytes:
        request_line, *lines = head.decode("latin-1").split("\r\n")
        names = {name.casefold() for name, _ in self.headers}
        if self.mode == "replace":
            lines = [line for line in lines if _name(line) not in names]
        lines += [f"{name}: {value}" for name, value in self.headers]
        return "\r\n".join([request_line, *lines]).encode("latin-1")


def _name(line: str) -> str:
    return line.split(":", 1)[0].strip().casefold()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65_536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
