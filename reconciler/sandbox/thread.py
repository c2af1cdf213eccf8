"""Serving a Sandbox over HTTP: uvicorn in a background thread, on a socket bound before it starts."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable

import uvicorn

from reconciler.sandbox.app import Sandbox

#: How long `start` waits for uvicorn to serve.
START_SECONDS = 10.0
#: How long stopping waits for requests still being answered before it cuts them (a `hang` fault's request
#: would otherwise hold the server for its whole hang).
STOP_GRACE_SECONDS = 1


class SandboxStartError(RuntimeError):
    """The sandbox could not listen (the message names the host and port), or did not start."""


class ServerThread:
    """Runs a Sandbox under uvicorn in a background thread (port 0 = an ephemeral one).

    The socket is bound and listening when the constructor returns, so a port in use fails here, with a
    SandboxStartError naming it. `tls` is (certificate file, key file) to serve HTTPS.
    """

    def __init__(
        self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None
    ) -> None:
        self.sandbox = sandbox
        self.host = host
        self.socket = _listening_socket(host, port)
        self.port: int = self.socket.getsockname()[1]
        certfile, keyfile = tls or (None, None)
        config = uvicorn.Config(
            sandbox,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=STOP_GRACE_SECONDS,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        self.scheme = "https" if tls else "http"
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True, name="reconciler-sandbox")

    @property
    def url(self) -> str:
        """The API's base URL, as `--api-url` takes it."""
        return f"{self.scheme}://{_authority(self.host, self.port)}/api/v1"

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=_fastest_loop()) as runner:
            runner.run(self.server.serve(sockets=[self.socket]))

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.stop()
                raise SandboxStartError(f"the sandbox on {_authority(self.host, self.port)} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        self.socket.close()


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listening_socket(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this: without it, the response's headers and body go out as two
        # segments and the second waits ~40 ms for the client's delayed ACK (Nagle), capping throughput.
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.bind((host, port))
        listener.listen(2048)  # now, not when uvicorn starts: another server cannot take the port between
    except OSError as exc:
        listener.close()
        reason = (exc.strerror or str(exc)).rstrip(".")
        raise SandboxStartError(
            f"cannot listen on {_authority(host, port)}: {reason[:1].lower()}{reason[1:]}"
        ) from None
    return listener


def _fastest_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (the sandbox extra brings it on Linux and macOS), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class _QuietDrops(logging.Filter):
    """Hide uvicorn's error log for the `drop` fault: ending a response early is what the fault is for."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, RuntimeError) and "shorter than Content-Length" in str(error))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
