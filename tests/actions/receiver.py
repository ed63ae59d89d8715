"""A real webhook receiver on 127.0.0.1 for the tests: it verifies every signature with
the published Standard Webhooks algorithm and counts deliveries per event id.

Faults are scripted per request: an int answers with that status, "hang" answers only
after `hang_seconds` (past the sender's timeout), "redirect" answers 307 to /elsewhere.
With `keep_alive` it speaks HTTP/1.1 and keeps connections open between requests; each
receipt notes the connection (the client's port) it came on.
"""

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    event_id: str
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool
    path: str
    answer: object = 200
    peer: int = 0


@dataclass
class Receiver:
    secret: str = ""
    script: list[Any] = field(default_factory=list)
    hang_seconds: float = 3.0
    keep_alive: bool = False
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def counts(self) -> Counter[str]:
        return Counter(r.event_id for r in self.received)

    def event_ids(self) -> list[str]:
        return [r.event_id for r in self.received]

    def wait_for(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= n, f"received {len(self.received)} of {n}"

    def start(self) -> "Receiver":
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            @property  # type: ignore[override]
            def protocol_version(self) -> str:
                return "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(raw, headers)
                    verified = True
                except (WebhookVerificationError, ValueError):
                    verified = False
                with lock:
                    action = receiver.script.pop(0) if receiver.script else 200
                    receiver.received.append(
                        Received(
                            headers.get("webhook-id", ""),
                            headers,
                            json.loads(raw),
                            verified,
                            self.path,
                            action,
                            self.client_address[1],
                        )
                    )
                if action == "hang":
                    time.sleep(receiver.hang_seconds)
                    action = 200
                if action == "redirect":
                    self.send_response(307)
                    self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(int(action))
                body = b'{"ok": true}' if int(action) < 300 else b"receiver says no"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
