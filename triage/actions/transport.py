"""Sending a webhook: signed, pinned to checked addresses, never redirected, timed out.

An `EndpointConnection` sends a batch of POSTs to one endpoint over one kept-alive
connection. The URL is checked (triage.actions.endpoints) when the connection opens and
it connects to the very addresses that were checked, in turn until one answers: the
name is never resolved again (a second answer could point inside: rebinding). Each
request has its own timeout, as a lone request always had.
"""

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from standardwebhooks.webhooks import Webhook

from triage.actions.endpoints import Destination, EndpointError, IPAddress, check_destination

EXCERPT_CHARS = 500
USER_AGENT = "Triage-Webhooks/1"
# Read at most this much of an answer; a longer one is cut and its connection dropped.
READ_LIMIT = EXCERPT_CHARS * 4


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    excerpt: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_headers(*, secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The Standard Webhooks headers: id, timestamp and `v1,<base64 HMAC-SHA256>`."""
    signature = Webhook(secret).sign(
        msg_id=msg_id, timestamp=datetime.fromtimestamp(timestamp, tz=UTC), data=body
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def _open_socket(address: IPAddress, port: int, timeout: float | None) -> socket.socket:
    sock = socket.create_connection((str(address), port), timeout)
    # http.client writes a request's headers and body separately: with Nagle's algorithm
    # the body then waits for the receiver's delayed ACK (40 ms) on a kept-alive
    # connection. urllib3 sets this too.
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a given address; the Host header still names the host."""

    def __init__(self, host: str, port: int, *, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = _open_socket(self.address, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to a given address, with SNI and certificate checks for the host."""

    def __init__(self, host: str, port: int, *, address: IPAddress, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        sock = _open_socket(self.address, self.port, self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


# Raised when a kept-alive connection was closed by the receiver between two requests;
# the request is then sent once more on a fresh connection.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class EndpointConnection:
    """POSTs to one URL over one connection, kept open between requests.

    Used as a context manager; `post` never raises: a refused connection, a timeout or
    a malformed answer is an AttemptResult with an error.
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.destination: Destination | None = None
        self.refused = ""  # why the URL may not be used, once checked

    def __enter__(self) -> "EndpointConnection":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def post(self, *, body: bytes, headers: dict[str, str]) -> AttemptResult:
        reused = self.conn is not None
        if self.conn is None and (error := self._connect()):
            return AttemptResult(None, error=error)
        assert self.conn is not None and self.destination is not None
        try:
            return self._exchange(self.destination.path, body, headers)
        except _STALE as exc:
            self.close()
            if not reused:
                return AttemptResult(None, error=f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS])
        # The receiver closed an idle connection: once more on a fresh one.
        if error := self._connect():
            return AttemptResult(None, error=error)
        assert self.conn is not None
        try:
            return self._exchange(self.destination.path, body, headers)
        except _STALE as exc:
            self.close()
            return AttemptResult(None, error=f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS])

    def _connect(self) -> str:
        """Open a connection to a checked address; the reason if none could be opened."""
        if self.refused:
            return self.refused
        if self.destination is None:
            try:
                self.destination = check_destination(self.url)
            except EndpointError as exc:
                self.refused = str(exc)
                return self.refused
        destination = self.destination
        kind = _PinnedHTTPSConnection if destination.scheme == "https" else _PinnedHTTPConnection
        error = ""
        for address in destination.addresses:
            conn = kind(destination.host, destination.port, address=address, timeout=self.timeout)
            try:
                conn.connect()
            except TimeoutError:
                error = f"timed out after {self.timeout:g}s connecting to {address}"
                conn.close()
                continue
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS]
                conn.close()
                continue
            self.conn = conn
            return ""
        return error or "no address to connect to"

    def _exchange(self, path: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        """One request and its answer; the connection is kept only if it can serve another."""
        assert self.conn is not None
        # The timeout bounds each socket read; the deadline bounds the whole answer.
        deadline = time.monotonic() + self.timeout
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            response = self.conn.getresponse()
            chunks, size, finished = [], 0, False
            while size < READ_LIMIT and time.monotonic() < deadline:
                chunk = response.read1(4096)
                if not chunk:
                    finished = True
                    break
                chunks.append(chunk)
                size += len(chunk)
            if (finished or response.isclosed()) and not response.will_close:
                response.close()  # read to its end: the connection can serve the next one
            else:
                self.close()
            excerpt = b"".join(chunks).decode("utf-8", errors="replace")[:EXCERPT_CHARS]
            return AttemptResult(response.status, excerpt=excerpt)
        except _STALE:
            raise
        except TimeoutError:
            self.close()
            return AttemptResult(None, error=f"timed out after {self.timeout:g}s")
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return AttemptResult(None, error=f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS])


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> AttemptResult:
    """One POST on a connection of its own. http.client never follows redirects: a 3xx
    is just a failed attempt."""
    with EndpointConnection(url, timeout=timeout) as connection:
        return connection.post(body=body, headers=headers)
