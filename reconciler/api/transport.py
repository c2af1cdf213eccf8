"""HTTP/1.1 exchanges on libcurl's multi interface (pycurl), driven by the running asyncio loop.

Why libcurl: it is what `curl --parallel` runs on. Connection reuse, writing the request, parsing the answer,
decompression, TLS and timeouts all happen in C; Python hands over a URL and a body and gets back the status, the
body and one header. Measured against the sandbox (BENCHMARKS.md), aiohttp spent about three times the CPU per
request, and importing it took longer than the whole start-up budget.

How the loop drives libcurl (its "multi_socket" API): libcurl says which sockets to watch (`_on_socket`) and when
to wake it (`_on_timer`); the loop's readers, writers and timers call `socket_action`, after which finished
transfers are collected. A connection idle between two requests keeps its reader registered (registering
again costs two system calls and the selector's bookkeeping, per request: a quarter of the transport's CPU).
libcurl may then close that socket without a word; the kernel drops a closed socket from epoll by itself, and
`_new_socket` forgets a registration left for a descriptor number before libcurl uses the number again.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pycurl

#: The largest answer body read; a bigger one is abandoned and flagged, never buffered whole.
MAX_BODY_BYTES = 1 << 20

_POLL_IN, _POLL_OUT, _POLL_REMOVE = pycurl.POLL_IN, pycurl.POLL_OUT, pycurl.POLL_REMOVE
_TIMEOUT_SOCKET = pycurl.SOCKET_TIMEOUT
_RETRY_AFTER = b"retry-after:"


class TransportError(Exception):
    """No HTTP answer; `str()` is libcurl's one-line description, `code` its error code."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class TimedOut(TransportError):
    """No complete answer within the timeout."""


class ConnectFailed(TransportError):
    """The connection could not be made; `reason` says why (the OS's words where there are some)."""

    def __init__(self, message: str, code: int, reason: str) -> None:
        super().__init__(message, code)
        self.reason = reason


class CertificateRejected(TransportError):
    """The server's certificate did not verify; `verify_code` is OpenSSL's (0 when only the host name failed)."""

    def __init__(self, message: str, code: int, verify_code: int) -> None:
        super().__init__(message, code)
        self.verify_code = verify_code


class RawAnswer(NamedTuple):
    """The API's answer as read off the wire, before the client judges it into an `Answer` (api/answer.py):
    `body` is empty when `oversized` (larger than MAX_BODY_BYTES); `retry_after` is read for an answer that is not
    a 2xx only (None for a success)."""

    status: int
    body: bytes
    retry_after: str | None
    oversized: bool = False


class _Transfer:
    """One reusable easy handle and what its current request has received so far.

    The header lines go to a buffer that libcurl fills through its C `write`, read only for an answer that is
    not a success (the one place Retry-After matters): a Python callback per header line measured several
    microseconds per request."""

    __slots__ = ("handle", "chunks", "size", "oversized", "headers", "finished")

    def __init__(self, handle: pycurl.Curl) -> None:
        self.handle = handle
        self.chunks: list[bytes] = []
        self.size = 0
        self.oversized = False
        self.headers = io.BytesIO()
        self.finished: asyncio.Future[None] | None = None
        handle.setopt(pycurl.WRITEFUNCTION, self._write)
        handle.setopt(pycurl.HEADERFUNCTION, self.headers.write)

    def reset(self) -> None:
        self.chunks = []
        self.size = 0
        self.oversized = False
        self.headers.seek(0)
        self.headers.truncate()

    def _write(self, chunk: bytes) -> int | None:
        self.size += len(chunk)
        if self.size > MAX_BODY_BYTES:
            self.oversized = True
            return 0  # anything but len(chunk) makes libcurl abandon the transfer
        self.chunks.append(chunk)
        return None

    def retry_after(self) -> str | None:
        """The Retry-After of the last answer received (after a 100 Continue, say, only the final one counts)."""
        value = None
        for line in self.headers.getvalue().split(b"\n"):
            if line[:5] == b"HTTP/":
                value = None
            elif line[:12].lower() == _RETRY_AFTER:
                value = line[12:].strip().decode("latin-1")
        return value


class _Handles:
    """libcurl's easy handles, one per request in flight, each set up once (the common headers, the timeout, the
    trusted roots) and reused by the next request of its kind (method, with a body or none)."""

    __slots__ = (
        "_common",
        "_timeout_ms",
        "_ca_bundle",
        "_https",
        "_roots",
        "_free",
        "_every",
        "_on_new_socket",
    )

    def __init__(
        self,
        headers: dict[str, str],
        timeout: float,
        ca_bundle: str | None,
        https: bool,
        on_new_socket: Callable[[int, int], int],
    ) -> None:
        self._common = [f"{name}: {value}" for name, value in headers.items()] + ["Expect:"]
        self._timeout_ms = max(1, round(timeout * 1000))
        self._ca_bundle = ca_bundle
        self._https = https
        self._roots: tuple[str | None, str | None, bytes | None] | None = None
        self._free: dict[tuple[str, bool], list[_Transfer]] = {}
        self._every: list[_Transfer] = []
        self._on_new_socket = on_new_socket  # libcurl's SOCKOPTFUNCTION: the session's

    def take(self, method: str, with_body: bool) -> _Transfer:
        """A handle set up for `method` (with a JSON body or none): a free one, or a new one."""
        free = self._free.setdefault((method, with_body), [])
        if free:
            transfer = free.pop()
            transfer.reset()
            return transfer
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        handle.setopt(pycurl.PATH_AS_IS, 1)  # the path goes out exactly as built (its segments are encoded)
        handle.setopt(pycurl.PROXY, "")  # like the rest of the tool, no proxy from the environment
        handle.setopt(pycurl.ACCEPT_ENCODING, "")  # every encoding libcurl can decode
        handle.setopt(pycurl.TIMEOUT_MS, self._timeout_ms)
        handle.setopt(pycurl.DNS_CACHE_TIMEOUT, 300)
        handle.setopt(pycurl.SOCKOPTFUNCTION, self._on_new_socket)
        if self._https:
            self._trust(handle)
        headers = self._common
        if with_body:
            headers = [*headers, "Content-Type: application/json"]
            handle.setopt(pycurl.CUSTOMREQUEST, method)
        elif method == "GET":
            handle.setopt(pycurl.HTTPGET, 1)
        else:
            handle.setopt(pycurl.CUSTOMREQUEST, method)
        handle.setopt(pycurl.HTTPHEADER, headers)
        transfer = _Transfer(handle)
        self._every.append(transfer)
        return transfer

    def give_back(self, transfer: _Transfer, method: str, with_body: bool) -> None:
        """`transfer`, taken for `method` (with a body or none), is free again: its connection stays pooled."""
        self._free[(method, with_body)].append(transfer)

    def close(self) -> None:
        for transfer in self._every:
            transfer.handle.close()
        self._every.clear()

    def _trust(self, handle: pycurl.Curl) -> None:
        """The system's trusted roots (as Python's ssl module finds them), plus `ca_bundle`'s when given.

        Set explicitly: a libcurl built elsewhere (pycurl's wheels bring their own) may look for the roots in
        another distribution's place."""
        if self._roots is None:
            import ssl  # ~20 ms of start-up, only for https

            system = ssl.get_default_verify_paths()
            cafile = system.cafile if system.cafile and os.path.isfile(system.cafile) else None
            capath = system.capath if system.capath and os.path.isdir(system.capath) else None
            blob = None
            if self._ca_bundle is not None:  # added to the system's roots, not in their place
                blob = (Path(cafile).read_bytes() + b"\n" if cafile else b"") + Path(
                    self._ca_bundle
                ).read_bytes()
            self._roots = (cafile, capath, blob)
        cafile, capath, blob = self._roots
        if capath:
            handle.setopt(pycurl.CAPATH, capath)
        if blob is not None:
            handle.setopt(pycurl.CAINFO_BLOB, blob)
        elif cafile:
            handle.setopt(pycurl.CAINFO, cafile)


class CurlSession:
    """At most `max_connections` keep-alive connections, used by one asyncio loop (created inside it)."""

    def __init__(
        self,
        headers: dict[str, str],
        max_connections: int,
        timeout: float,
        ca_bundle: str | None = None,
        https: bool = True,
    ) -> None:
        """`https`: whether TLS is needed (the trusted roots are loaded only then)."""
        self._loop = asyncio.get_running_loop()
        self._handles = _Handles(headers, timeout, ca_bundle, https, self._new_socket)
        self._running: dict[pycurl.Curl, _Transfer] = {}
        self._reading: dict[int, bool] = {}  # registered readers: whether libcurl wants them now
        self._writing: set[int] = set()
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None  # the wake-up pending on the loop
        self._timer_at = 0.0  # when it comes (loop time)
        self._deadline: float | None = None  # when libcurl wants its next wake-up (loop time), if ever
        self._closed = False
        multi = self._multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, max_connections)
        multi.setopt(pycurl.M_MAXCONNECTS, max_connections)
        multi.setopt(pycurl.M_PIPELINING, 0)  # one request per connection at a time, as HTTP/1.1 keep-alive

    async def request(self, method: str, url: str, body: bytes | None) -> RawAnswer:
        """Send one request and read its answer; raise TransportError (or a subclass) when there is none."""
        if self._closed:
            raise TransportError("the HTTP session is closed")
        transfer = self._handles.take(method, body is not None)
        handle = transfer.handle
        handle.setopt(pycurl.URL, url)
        if body is not None:
            handle.setopt(pycurl.POSTFIELDS, body)
        finished = transfer.finished = self._loop.create_future()
        try:
            self._multi.add_handle(handle)
            self._running[handle] = transfer
            await finished
        finally:
            if self._running.pop(handle, None) is not None:  # cancelled while in flight: abandon the transfer
                with contextlib.suppress(pycurl.error):
                    self._multi.remove_handle(handle)
            transfer.finished = None
            self._handles.give_back(transfer, method, body is not None)
            # A failure's traceback holds this frame: without the future it holds no cycle (future, error,
            # traceback, frame), so the error is freed at once, with the collector paused (collector.py).
            del finished
        status = handle.getinfo(pycurl.RESPONSE_CODE)
        retry_after = None if 200 <= status < 300 else transfer.retry_after()
        if transfer.oversized:
            return RawAnswer(status, b"", retry_after, oversized=True)
        chunks = transfer.chunks
        content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return RawAnswer(status, content, retry_after)

    def close(self) -> None:
        """Abandon transfers in flight, close every connection and free libcurl's handles."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for fd in list(self._reading):
            self._loop.remove_reader(fd)
        for fd in self._writing:
            self._loop.remove_writer(fd)
        self._reading.clear()
        self._writing.clear()
        for handle, transfer in list(self._running.items()):
            self._multi.remove_handle(handle)
            if transfer.finished is not None and not transfer.finished.done():
                transfer.finished.set_exception(TransportError("the HTTP session was closed"))
        self._running.clear()
        self._multi.close()  # closes the pooled connections
        self._handles.close()

    # -- libcurl's callbacks -----------------------------------------------------------------------------------
    def _on_socket(self, what: int, fd: int, multi: object, socketp: object) -> None:
        loop = self._loop
        wants_write = what != _POLL_REMOVE and bool(what & _POLL_OUT)
        if wants_write and fd not in self._writing:
            self._writing.add(fd)
            loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        elif not wants_write and fd in self._writing:
            self._writing.discard(fd)
            loop.remove_writer(fd)
        wants_read = what != _POLL_REMOVE and bool(what & _POLL_IN)
        if fd in self._reading:
            self._reading[fd] = wants_read  # kept registered while idle: see the module docstring
        elif wants_read:
            self._reading[fd] = True
            loop.add_reader(fd, self._readable, fd)

    def _new_socket(self, fd: int, purpose: int) -> int:
        """A socket libcurl just made: a registration kept for an earlier socket of that number is stale."""
        if self._reading.pop(fd, None) is not None:
            self._loop.remove_reader(fd)  # the selector's own entry; epoll forgot the closed socket already
        if fd in self._writing:
            self._writing.discard(fd)
            self._loop.remove_writer(fd)
        return 0  # CURL_SOCKOPT_OK

    def _on_timer(self, milliseconds: int) -> None:
        """libcurl's next deadline: -1 none, 0 at once. A pending wake-up that comes no later is kept.

        libcurl moves its deadline after nearly every transfer (each has a --timeout); replacing the loop's
        timer each time cost more than the transfer's own Python. A wake-up that comes early costs one idle
        `socket_action` (which libcurl allows), after which `_act` waits for the deadline told."""
        if milliseconds < 0:
            self._deadline = None  # a pending wake-up stays: one idle `socket_action` at worst
            return
        now = self._loop.time()
        self._deadline = now + milliseconds / 1000
        if self._timer is not None:
            if self._timer_at <= self._deadline:
                return
            self._timer.cancel()
        self._wake_at(self._deadline, now)

    def _wake_at(self, moment: float, now: float) -> None:
        if moment <= now:
            self._timer = self._loop.call_soon(self._act, _TIMEOUT_SOCKET, 0)
            self._timer_at = now
        else:
            self._timer = self._loop.call_at(moment, self._act, _TIMEOUT_SOCKET, 0)
            self._timer_at = moment

    def _readable(self, fd: int) -> None:
        if not self._reading.get(fd):  # an idle connection became readable: the server closed it, say
            self._reading.pop(fd, None)
            self._loop.remove_reader(fd)
            return
        self._act(fd, pycurl.CSELECT_IN)

    def _act(self, fd: int, event: int) -> None:
        if fd == _TIMEOUT_SOCKET:
            self._timer = None
        if self._closed:
            return
        multi = self._multi
        multi.socket_action(fd, event)
        while True:
            queued, succeeded, failed = multi.info_read()
            for handle in succeeded:
                self._finish(handle, None)
            for handle, code, message in failed:
                self._finish(handle, _failure(handle, code, message))
            if not queued:
                break
        if self._timer is None and self._deadline is not None:
            # Woken before libcurl's deadline, and libcurl told none since: recent versions tell it again
            # after a wake-up, older ones only when it changes; so it is set here, never sooner than 1 ms on.
            now = self._loop.time()
            self._wake_at(max(self._deadline, now + 0.001), now)

    def _finish(self, handle: pycurl.Curl, error: TransportError | None) -> None:
        self._multi.remove_handle(handle)
        transfer = self._running.pop(handle, None)
        if transfer is None or transfer.finished is None or transfer.finished.done():
            return
        if error is None or (transfer.oversized and error.code == pycurl.E_WRITE_ERROR):
            transfer.finished.set_result(None)
        else:
            transfer.finished.set_exception(error)


def _failure(handle: pycurl.Curl, code: int, message: str) -> TransportError:
    message = message or f"libcurl error {code}"
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return TimedOut(message, code)
    if code == pycurl.E_PEER_FAILED_VERIFICATION:
        return CertificateRejected(message, code, handle.getinfo(pycurl.SSL_VERIFYRESULT))
    if code == pycurl.E_COULDNT_RESOLVE_HOST:
        return ConnectFailed(message, code, "the host name does not resolve")
    if code == pycurl.E_COULDNT_CONNECT:
        errno = handle.getinfo(pycurl.OS_ERRNO)
        return ConnectFailed(message, code, os.strerror(errno) if errno else message)
    return TransportError(message, code)
