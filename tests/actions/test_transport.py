"""One connection per endpoint: kept alive between requests, opened again when the
receiver closed it, dropped when an answer is not read to its end."""

import socket
import threading

import pytest

from triage.actions.transport import READ_LIMIT, EndpointConnection


class OneAnswerServer:
    """HTTP/1.1 on 127.0.0.1 that answers one request per connection, then closes it
    without saying so (no `Connection: close`), as a receiver's idle timeout does."""

    def __init__(self, body: bytes = b"ok") -> None:
        self.body = body
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests += 1
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(self.body), self.body)
                )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def private(settings):
    settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE = True


def test_a_connection_the_receiver_closed_is_opened_again(private):
    server = OneAnswerServer()
    try:
        with EndpointConnection(server.url, timeout=2) as connection:
            results = [connection.post(body=b"{}", headers={}) for _ in range(3)]
    finally:
        server.close()
    assert [r.status_code for r in results] == [200, 200, 200]
    assert server.requests == 3 and server.connections == 3


def test_an_answer_too_long_to_read_drops_the_connection(private):
    server = OneAnswerServer(body=b"x" * (READ_LIMIT * 3))
    try:
        with EndpointConnection(server.url, timeout=2) as connection:
            first = connection.post(body=b"{}", headers={})
            assert connection.conn is None  # not reused with an answer half read
            second = connection.post(body=b"{}", headers={})
    finally:
        server.close()
    assert (first.status_code, second.status_code) == (200, 200)
    assert len(first.excerpt) == 500
