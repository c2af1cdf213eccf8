"""A loopback HTTP server that answers byte for byte what a test says: status lines, headers and bodies no real
framework would send (the sandbox speaks well-formed HTTP through uvicorn; this one does not have to).

Each connection carries one request and one answer, then closes. `answer(method, target, count)` returns the
answer's bytes, or an iterable of chunks sent one after another until the client hangs up (a body without end);
`count` is how many requests for that target came before this one.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable

Answer = Callable[[str, str, int], "bytes | Iterable[bytes]"]


def http(status: bytes | str, body: bytes | str = b"", headers: dict[str, str] | None = None) -> bytes:
    """An answer with `Content-Length` and `Connection: close`: `status` is the whole status line's tail
    (`200 OK`, `999 Odd`) or, given with a leading `HTTP/`, the whole line."""
    status = status.encode() if isinstance(status, str) else status
    body = body.encode() if isinstance(body, str) else body
    line = status if status.startswith(b"HTTP/") else b"HTTP/1.1 " + status
    head = [line, b"Content-Type: application/json", b"Content-Length: %d" % len(body), b"Connection: close"]
    head += [f"{name}: {value}".encode("latin-1") for name, value in (headers or {}).items()]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class RawServer:
    """`url` is `http://127.0.0.1:PORT/api/v1`; `requests` lists (method, target) as received; `sent` counts the
    bytes written to clients."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[tuple[str, str]] = []
        self.sent = 0
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self._running = True
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/api/v1"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._running = False
        self._thread.join(10)
        self._socket.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while self._running:
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(30)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                length = next(
                    (
                        int(line.split(":", 1)[1])
                        for line in lines[1:]
                        if line.lower().startswith("content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                with self._lock:
                    self.requests.append((method, target))
                    count = self._seen[target]
                    self._seen[target] += 1
                answer = self.answer(method, target, count)
                for chunk in [answer] if isinstance(answer, bytes) else answer:
                    connection.sendall(chunk)
                    with self._lock:
                        self.sent += len(chunk)
            except OSError:  # the client hung up: what a body without end is for
                return
